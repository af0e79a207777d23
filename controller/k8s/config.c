/*
 * config.c: where the client's configuration comes from: a kubeconfig file or the in-cluster
 * service account.
 *
 * kubeconfig (YAML; the fields read):
 *   current-context: NAME
 *   contexts: [{name, context: {cluster, user, namespace}}]
 *   clusters: [{name, cluster: {server, certificate-authority | certificate-authority-data,
 *               insecure-skip-tls-verify}}]
 *   users:    [{name, user: {token | tokenFile, client-certificate | client-certificate-data,
 *               client-key | client-key-data}}]
 * "-data" fields are standard base64 of PEM and win over the file fields; file paths are
 * relative to the kubeconfig's own directory; tokenFile is read at load time. A user with only
 * exec or auth-provider credentials is refused (not supported).
 * In-cluster: server https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, token (required),
 * ca.crt (used when present) and namespace (optional) from the service-account directory,
 * /var/run/secrets/kubernetes.io/serviceaccount, or $K8S_SA_DIR when set (for tests).
 * Every failure is CE_K8S_CONFIG (CE_NOMEM aside) with a message naming the file and the field
 * in k8s_errmsg(); nothing is half-filled: *out is set only on success.
 */
#include "k8s_int.h"

#include "base64.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FILE (16u << 20)
#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* ---------------------------------------------------------------- small helpers */

/* Reads a whole file (at most MAX_FILE bytes) as a NUL-terminated string. */
static int read_text(const char *path, const char *what, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct k8s_buf b = {0};
    char chunk[4096];
    size_t n;
    int rc = 0;

    *out = NULL;
    if (!f)
        return k8s_fail(CE_K8S_CONFIG, "%s %s: %s", what, path, strerror(errno));
    while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = b.len + n > MAX_FILE ? k8s_fail(CE_K8S_CONFIG, "%s %s: too large", what, path)
                                  : k8s_buf_add(&b, chunk, n);
    if (!rc && ferror(f))
        rc = k8s_fail(CE_K8S_CONFIG, "%s %s: read error", what, path);
    if (!rc && !b.p)
        rc = k8s_buf_add(&b, "", 0);
    fclose(f);
    if (rc) {
        k8s_buf_free(&b);
        return rc;
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return 0;
}

static void rstrip(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
}


static const char *str_of(const cJSON *o, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));

    return s && *s ? s : NULL;
}

static bool truthy(const char *s)
{
    return s && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") ||
                 !strcmp(s, "yes") || !strcmp(s, "on"));
}

/* The `inner` object of the entry named `name` in the list root[list]. */
static const cJSON *named(const cJSON *root, const char *list, const char *name, const char *inner)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, list)) {
        const char *n = str_of(it, "name");

        if (n && !strcmp(n, name)) {
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(it, inner);
            return o ? o : it; /* an entry without its inner map is an empty one */
        }
    }
    return NULL;
}

void k8s_config_free(struct k8s_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->server);
    free(cfg->ca_file);
    free(cfg->ca_pem);
    free(cfg->cert_file);
    free(cfg->key_file);
    free(cfg->cert_pem);
    free(cfg->key_pem);
    free(cfg->token);
    free(cfg->namespace);
    free(cfg);
}

/* ---------------------------------------------------------------- kubeconfig */

struct kc {
    const char *path; /* the kubeconfig */
    char *dir;        /* its directory, "" when it has none */
    const cJSON *root;
    struct k8s_config *cfg;
};

static int set_str(char **dst, const char *s)
{
    if (!s)
        return 0;
    return (*dst = strdup(s)) ? 0 : CE_NOMEM;
}

/* A path from the kubeconfig, made relative to its directory, that must be readable. */
static int set_path(struct kc *k, char **dst, const char *p, const char *field)
{
    if (!p)
        return 0;
    if (p[0] == '/' || !*k->dir)
        *dst = strdup(p);
    else if (asprintf(dst, "%s/%s", k->dir, p) < 0)
        *dst = NULL;
    if (!*dst)
        return CE_NOMEM;
    if (access(*dst, R_OK))
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: %s %s: %s", k->path, field, *dst,
                        strerror(errno));
    return 0;
}

static int set_data(struct kc *k, char **dst, const char *b64, const char *field)
{
    int rc;

    if (!b64)
        return 0;
    if ((rc = cetcd_b64_decode_text(b64, dst)) == CE_CORRUPT)
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: %s is not valid base64", k->path, field);
    return rc;
}

static int load_cluster(struct kc *k, const char *name)
{
    const cJSON *cl = named(k->root, "clusters", name, "cluster");
    struct k8s_config *cfg = k->cfg;
    const char *ca_data;
    int rc;

    if (!cl)
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: cluster \"%s\" not found", k->path, name);
    if (!str_of(cl, "server"))
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: cluster \"%s\" has no server", k->path, name);
    cfg->insecure = truthy(str_of(cl, "insecure-skip-tls-verify"));
    if ((rc = set_str(&cfg->server, str_of(cl, "server"))))
        return rc;
    if ((ca_data = str_of(cl, "certificate-authority-data")))
        return set_data(k, &cfg->ca_pem, ca_data, "certificate-authority-data");
    return set_path(k, &cfg->ca_file, str_of(cl, "certificate-authority"), "certificate-authority");
}

static int load_token(struct kc *k, const cJSON *u)
{
    const char *file = str_of(u, "tokenFile");
    char *path = NULL;
    int rc;

    if (str_of(u, "token") || !file)
        return set_str(&k->cfg->token, str_of(u, "token"));
    if ((rc = set_path(k, &path, file, "tokenFile")) ||
        (rc = read_text(path, "tokenFile", &k->cfg->token, NULL)))
        goto out_free_path;
    rstrip(k->cfg->token);

out_free_path:
    free(path);
    return rc;
}

/* client-certificate[-data] and client-key[-data] ("-data" wins). */
static int load_cert_pair(struct kc *k, const cJSON *u)
{
    struct k8s_config *cfg = k->cfg;
    const char *cd = str_of(u, "client-certificate-data"), *kd = str_of(u, "client-key-data");
    int rc;

    if ((rc = cd ? set_data(k, &cfg->cert_pem, cd, "client-certificate-data")
                 : set_path(k, &cfg->cert_file, str_of(u, "client-certificate"), "client-certificate")))
        return rc;
    return kd ? set_data(k, &cfg->key_pem, kd, "client-key-data")
              : set_path(k, &cfg->key_file, str_of(u, "client-key"), "client-key");
}

static int load_user(struct kc *k, const char *name)
{
    const cJSON *u = named(k->root, "users", name, "user");
    struct k8s_config *cfg = k->cfg;
    int rc;

    if (!u)
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: user \"%s\" not found", k->path, name);
    if ((rc = load_token(k, u)) || (rc = load_cert_pair(k, u)))
        return rc;
    if (!(cfg->cert_file || cfg->cert_pem) != !(cfg->key_file || cfg->key_pem))
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: user \"%s\" has a client certificate "
                        "without its key (or a key without its certificate)", k->path, name);
    if (!cfg->token && !cfg->cert_file && !cfg->cert_pem &&
        (cJSON_HasObjectItem(u, "exec") || cJSON_HasObjectItem(u, "auth-provider")))
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: user \"%s\" uses exec/auth-provider "
                        "credentials, which this client does not support", k->path, name);
    return 0;
}

static int load_context(struct kc *k, const char *context)
{
    const char *name = context ? context : str_of(k->root, "current-context");
    const cJSON *ctx;
    int rc;

    if (!name)
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: no current-context and no context given",
                        k->path);
    if (!(ctx = named(k->root, "contexts", name, "context")))
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: context \"%s\" not found", k->path, name);
    if (!str_of(ctx, "cluster"))
        return k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: context \"%s\" names no cluster", k->path,
                        name);
    if ((rc = load_cluster(k, str_of(ctx, "cluster"))) ||
        (str_of(ctx, "user") && (rc = load_user(k, str_of(ctx, "user")))))
        return rc;
    return set_str(&k->cfg->namespace, str_of(ctx, "namespace"));
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        return strdup("");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static int parse_kubeconfig(const char *path, cJSON **root)
{
    char *text;
    size_t len;
    int rc;

    if ((rc = read_text(path, "kubeconfig", &text, &len)))
        return rc;
    rc = k8s_yaml_to_json(text, len, root);
    free(text);
    if (rc == CE_K8S_CONFIG) {
        char why[512];

        snprintf(why, sizeof(why), "%s", k8s_errmsg());
        return k8s_fail(rc, "kubeconfig %s: %s", path, why);
    }
    if (!rc && !cJSON_IsObject(*root))
        rc = k8s_fail(CE_K8S_CONFIG, "kubeconfig %s: not a YAML mapping", path);
    return rc;
}

int k8s_config_load(const char *kubeconfig, const char *context, struct k8s_config **out)
{
    struct kc k = {.path = kubeconfig};
    cJSON *root = NULL;
    int rc;

    *out = NULL;
    if (!kubeconfig)
        return k8s_config_in_cluster(out);
    if ((rc = parse_kubeconfig(kubeconfig, &root)))
        goto out_free;
    k.root = root;
    k.cfg = calloc(1, sizeof(*k.cfg));
    k.dir = dir_of(kubeconfig);
    if (!k.cfg || !k.dir) {
        rc = CE_NOMEM;
        goto out_free;
    }
    if (!(rc = load_context(&k, context))) {
        *out = k.cfg;
        k.cfg = NULL;
        k8s_set_errmsg("%s", "");
    }

out_free:
    k8s_config_free(k.cfg);
    free(k.dir);
    cJSON_Delete(root);
    return rc;
}

/* ---------------------------------------------------------------- in-cluster */

static int sa_file(const char *dir, const char *name, bool required, char **out)
{
    char path[4096];
    int rc;

    *out = NULL;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!required && access(path, R_OK))
        return 0;
    if ((rc = read_text(path, "service account file", out, NULL)))
        return rc;
    rstrip(*out);
    return 0;
}

static int in_cluster_server(struct k8s_config *cfg)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
    int n;

    if (!host || !*host || !port || !*port)
        return k8s_fail(CE_K8S_CONFIG, "in-cluster config: KUBERNETES_SERVICE_HOST and "
                        "KUBERNETES_SERVICE_PORT must be set (not running in a pod?)");
    n = strchr(host, ':') ? asprintf(&cfg->server, "https://[%s]:%s", host, port)
                          : asprintf(&cfg->server, "https://%s:%s", host, port);
    if (n < 0) {
        cfg->server = NULL;
        return CE_NOMEM;
    }
    return 0;
}

static int in_cluster_ca(struct k8s_config *cfg, const char *dir)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/ca.crt", dir);
    if (access(path, R_OK))
        return 0; /* no CA mounted: the system's trust store */
    return (cfg->ca_file = strdup(path)) ? 0 : CE_NOMEM;
}

int k8s_config_in_cluster(struct k8s_config **out)
{
    const char *dir = getenv("K8S_SA_DIR");
    struct k8s_config *cfg;
    int rc;

    *out = NULL;
    if (!dir || !*dir)
        dir = SA_DIR;
    if (!(cfg = calloc(1, sizeof(*cfg))))
        return CE_NOMEM;
    if ((rc = in_cluster_server(cfg)) || (rc = sa_file(dir, "token", true, &cfg->token)) ||
        (rc = sa_file(dir, "namespace", false, &cfg->namespace)) || (rc = in_cluster_ca(cfg, dir)))
        goto out_free_cfg;
    if (cfg->namespace && !*cfg->namespace) {
        free(cfg->namespace);
        cfg->namespace = NULL;
    }
    if (!*cfg->token) {
        rc = k8s_fail(CE_K8S_CONFIG, "in-cluster config: %s/token is empty", dir);
        goto out_free_cfg;
    }
    *out = cfg;
    k8s_set_errmsg("%s", "");
    return 0;

out_free_cfg:
    k8s_config_free(cfg);
    return rc;
}
