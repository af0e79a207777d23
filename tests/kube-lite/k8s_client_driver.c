/*
 * k8s_client_driver.c: drives the operator's Kubernetes client (controller/k8s/) against a real
 * kube-lite, for tests/kube-lite/k8s_client.sh (which builds it under ASan+UBSan).
 *
 *   k8s_client_driver kubeconfig PATH NS TAG   configuration from a kubeconfig file
 *   k8s_client_driver incluster NS TAG         in-cluster configuration (KUBERNETES_SERVICE_*,
 *                                              K8S_SA_DIR or the mounted service account)
 * Works in namespace NS (created if missing) on objects whose names carry TAG, so several runs
 * can share one kube-lite. Needs the CRD widgets.k8sclient.cetcd.io (namespaced, status
 * subresource) that the script installs. Prints one line per check, `ok - TAG: what` or
 * `not ok - TAG: what: detail`; exits 0 when every check passed. Everything it creates it
 * deletes. Waits are bounded (condition variables with deadlines).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "k8s/k8s.h"

static const struct k8s_res NAMESPACES = {"v1", "namespaces", "Namespace", false};
static const struct k8s_res WIDGETS = {"k8sclient.cetcd.io/v1", "widgets", "Widget", true};

static const char *tag, *ns;
static int failures;

static void check(bool ok, const char *what, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        printf("ok - %s: %s\n", tag, what);
    } else {
        failures++;
        printf("not ok - %s: %s: ", tag, what);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
}

static const char *jstr(const cJSON *o, const char *a, const char *b)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);

    if (b)
        x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_GetStringValue(x) ? cJSON_GetStringValue(x) : "";
}

static cJSON *jparse(const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return cJSON_Parse(buf);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- plain verbs */

static void ensure_namespace(k8s_client *c)
{
    cJSON *o = jparse("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", ns);
    int rc = k8s_create(c, &NAMESPACES, NULL, o, NULL);

    check(rc == 0 || rc == CE_EXISTS, "create the namespace (cluster-scoped) or find it there",
          "rc %d: %s", rc, k8s_errmsg());
    rc = k8s_get(c, &NAMESPACES, NULL, ns, NULL);
    check(rc == 0, "get the namespace", "rc %d: %s", rc, k8s_errmsg());
    cJSON_Delete(o);
}

/* Creates cm-TAG, checks create-again, get and list; returns the created object. */
static cJSON *configmap_create(k8s_client *c, const char *name)
{
    cJSON *o, *out = NULL, *created = NULL, *items;
    char sel[64];
    int rc;

    o = jparse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
               "\"labels\":{\"drv\":\"%s\"}},\"data\":{\"a\":\"1\"}}", name, tag);
    rc = k8s_create(c, &K8S_CONFIGMAPS, ns, o, &created);
    check(rc == 0 && *jstr(created, "metadata", "uid"), "create a ConfigMap", "rc %d: %s", rc, k8s_errmsg());
    rc = k8s_create(c, &K8S_CONFIGMAPS, ns, o, NULL);
    check(rc == CE_EXISTS && strstr(k8s_errmsg(), "already exists"),
          "create it again: CE_EXISTS, \"already exists\"", "rc %d: %s", rc, k8s_errmsg());
    rc = k8s_get(c, &K8S_CONFIGMAPS, ns, name, &out);
    check(rc == 0 && !strcmp(jstr(out, "data", "a"), "1"), "get it", "rc %d: %s", rc, k8s_errmsg());
    cJSON_Delete(out);
    snprintf(sel, sizeof(sel), "drv=%s", tag);
    rc = k8s_list(c, &K8S_CONFIGMAPS, ns, sel, &out);
    items = cJSON_GetObjectItem(out, "items");
    check(rc == 0 && cJSON_GetArraySize(items) == 1 &&
          !strcmp(jstr(cJSON_GetArrayItem(items, 0), "kind", NULL), "ConfigMap"),
          "list by label selector: one item, with its kind", "rc %d: %s", rc, k8s_errmsg());
    cJSON_Delete(out);
    cJSON_Delete(o);
    return created;
}

/* Merge patch, then an update from the stale object (conflict) and from the fresh one. */
static void configmap_update(k8s_client *c, const char *name, cJSON *stale)
{
    cJSON *patch = jparse("{\"data\":{\"b\":\"2\"}}"), *out = NULL, *fresh = NULL;
    int rc = k8s_patch(c, &K8S_CONFIGMAPS, ns, name, patch, &out);

    check(rc == 0 && !strcmp(jstr(out, "data", "a"), "1") && !strcmp(jstr(out, "data", "b"), "2") &&
          strcmp(jstr(out, "metadata", "resourceVersion"), jstr(stale, "metadata", "resourceVersion")),
          "merge patch adds a key and bumps resourceVersion", "rc %d: %s", rc, k8s_errmsg());
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(stale, "data"), "a", cJSON_CreateString("x"));
    rc = k8s_update(c, &K8S_CONFIGMAPS, ns, name, stale, NULL);
    check(rc == CE_K8S_CONFLICT && strstr(k8s_errmsg(), "has been modified"),
          "update with a stale resourceVersion: CE_K8S_CONFLICT", "rc %d: %s", rc, k8s_errmsg());
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(out, "data"), "a", cJSON_CreateString("y"));
    rc = k8s_update(c, &K8S_CONFIGMAPS, ns, name, out, &fresh);
    check(rc == 0 && !strcmp(jstr(fresh, "data", "a"), "y"), "update with the current resourceVersion",
          "rc %d: %s", rc, k8s_errmsg());
    check(!strcmp(k8s_errmsg(), ""), "a success leaves k8s_errmsg empty", "%s", k8s_errmsg());
    cJSON_Delete(fresh);
    cJSON_Delete(out);
    cJSON_Delete(patch);
}

static void invalid_and_missing(k8s_client *c)
{
    cJSON *o = jparse("{\"metadata\":{\"name\":\"Bad_Name\"}}");
    int rc = k8s_create(c, &K8S_CONFIGMAPS, ns, o, NULL);

    check(rc == CE_K8S_INVALID && strstr(k8s_errmsg(), "Invalid value"),
          "invalid name: CE_K8S_INVALID with the API server's message", "rc %d: %s", rc, k8s_errmsg());
    rc = k8s_get(c, &K8S_CONFIGMAPS, ns, "no-such-cm", NULL);
    check(rc == CE_NOTFOUND && strstr(k8s_errmsg(), "not found"), "get a missing object: CE_NOTFOUND",
          "rc %d: %s", rc, k8s_errmsg());
    cJSON_Delete(o);
}

static void status_subresource(k8s_client *c)
{
    char name[64];
    cJSON *o, *st, *out = NULL;
    int rc;

    snprintf(name, sizeof(name), "w-%s", tag);
    o = jparse("{\"apiVersion\":\"k8sclient.cetcd.io/v1\",\"kind\":\"Widget\",\"metadata\":{\"name\":"
               "\"%s\"},\"spec\":{\"size\":1}}", name);
    rc = k8s_create(c, &WIDGETS, ns, o, NULL);
    check(rc == 0, "create a custom resource (Widget)", "rc %d: %s", rc, k8s_errmsg());
    st = jparse("{\"status\":{\"phase\":\"Ready\"}}");
    rc = k8s_patch_status(c, &WIDGETS, ns, name, st, &out);
    check(rc == 0 && !strcmp(jstr(out, "status", "phase"), "Ready"), "merge patch of /status",
          "rc %d: %s", rc, k8s_errmsg());
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(out, "status"), "phase", cJSON_CreateString("Done"));
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(out, "spec"), "size", cJSON_CreateNumber(9));
    rc = k8s_update_status(c, &WIDGETS, ns, name, out, NULL);
    cJSON_Delete(out);
    rc = rc ? rc : k8s_get(c, &WIDGETS, ns, name, &out);
    check(rc == 0 && !strcmp(jstr(out, "status", "phase"), "Done") &&
          cJSON_GetObjectItem(cJSON_GetObjectItem(out, "spec"), "size")->valueint == 1,
          "PUT /status changes status only", "rc %d: %s", rc, k8s_errmsg());
    cJSON_Delete(out);
    rc = k8s_delete(c, &WIDGETS, ns, name, NULL);
    check(rc == 0, "delete the Widget", "rc %d: %s", rc, k8s_errmsg());
    cJSON_Delete(st);
    cJSON_Delete(o);
}

static const cJSON *find_event(const cJSON *list, const char *uid)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, cJSON_GetObjectItem(list, "items"))
        if (!strcmp(jstr(e, "involvedObject", "uid"), uid) && !strcmp(jstr(e, "reason", NULL), "DriverTest"))
            return e;
    return NULL;
}

static void event(k8s_client *c, const char *name)
{
    cJSON *obj = NULL, *list = NULL;
    const cJSON *e;
    int rc = k8s_get(c, &K8S_CONFIGMAPS, ns, name, &obj);

    rc = rc ? rc : k8s_event(c, obj, "Warning", "DriverTest", "the driver was here", "cetcd-operator");
    check(rc == 0, "record an Event about the ConfigMap", "rc %d: %s", rc, k8s_errmsg());
    rc = k8s_list(c, &K8S_EVENTS, ns, NULL, &list);
    e = find_event(list, jstr(obj, "metadata", "uid"));
    check(rc == 0 && e && !strcmp(jstr(e, "type", NULL), "Warning") &&
          !strcmp(jstr(e, "involvedObject", "kind"), "ConfigMap") &&
          !strcmp(jstr(e, "involvedObject", "name"), name) &&
          !strcmp(jstr(e, "source", "component"), "cetcd-operator") &&
          !strcmp(jstr(e, "message", NULL), "the driver was here"),
          "the Event is listed with its involvedObject, type, source", "rc %d: %s", rc, k8s_errmsg());
    if (e)
        k8s_delete(c, &K8S_EVENTS, ns, jstr(e, "metadata", "name"), NULL);
    cJSON_Delete(list);
    cJSON_Delete(obj);
}

static void delete_checks(k8s_client *c, const char *name, const char *uid)
{
    int rc = k8s_delete(c, &K8S_CONFIGMAPS, ns, name, "00000000-0000-0000-0000-000000000000");

    check(rc == CE_K8S_CONFLICT, "delete with a wrong uid precondition: CE_K8S_CONFLICT", "rc %d: %s",
          rc, k8s_errmsg());
    rc = k8s_delete(c, &K8S_CONFIGMAPS, ns, name, uid);
    check(rc == 0, "delete with the right uid precondition", "rc %d: %s", rc, k8s_errmsg());
    rc = k8s_delete(c, &K8S_CONFIGMAPS, ns, name, NULL);
    check(rc == CE_NOTFOUND, "delete again: CE_NOTFOUND", "rc %d: %s", rc, k8s_errmsg());
    rc = k8s_get(c, &K8S_CONFIGMAPS, ns, name, NULL);
    check(rc == CE_NOTFOUND, "get after delete: CE_NOTFOUND", "rc %d: %s", rc, k8s_errmsg());
}

/* ---------------------------------------------------------------- informer */

struct notes {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sets, dels;
    char last[128]; /* "SET name rv" or "DEL name" */
};

static struct notes NT = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, ""};

static void on_change(void *ctx, const cJSON *obj, bool deleted)
{
    (void)ctx;
    pthread_mutex_lock(&NT.mu);
    if (deleted)
        NT.dels++;
    else
        NT.sets++;
    snprintf(NT.last, sizeof(NT.last), "%s %s %s", deleted ? "DEL" : "SET",
             jstr(obj, "metadata", "name"), deleted ? "" : jstr(obj, "metadata", "resourceVersion"));
    pthread_cond_broadcast(&NT.cv);
    pthread_mutex_unlock(&NT.mu);
}

/* Waits up to 10 s until sets >= s and dels >= d. */
static bool wait_notes(int s, int d)
{
    double end = now_ms() + 10000;
    bool ok;

    pthread_mutex_lock(&NT.mu);
    while ((NT.sets < s || NT.dels < d) && now_ms() < end) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&NT.cv, &NT.mu, &ts);
    }
    ok = NT.sets >= s && NT.dels >= d;
    pthread_mutex_unlock(&NT.mu);
    return ok;
}

static cJSON *inf_cm(const char *name)
{
    return jparse("{\"metadata\":{\"name\":\"%s\",\"labels\":{\"inf\":\"%s\"}},\"data\":{\"v\":\"0\"}}",
                  name, tag);
}

struct writer {
    k8s_client *c;
    int id, errors;
};

static void *writer_run(void *arg)
{
    struct writer *w = arg;
    char name[64];

    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "par-%s-%d-%d", tag, w->id, i);
        cJSON *o = inf_cm(name);
        if (k8s_create(w->c, &K8S_CONFIGMAPS, ns, o, NULL) ||
            k8s_delete(w->c, &K8S_CONFIGMAPS, ns, name, NULL))
            w->errors++;
        cJSON_Delete(o);
    }
    return NULL;
}

static void parallel_writers(k8s_client *c, int sets0, int dels0)
{
    struct writer w[3];
    pthread_t th[3];
    int errors = 0;

    for (int i = 0; i < 3; i++) {
        w[i] = (struct writer){c, i, 0};
        pthread_create(&th[i], NULL, writer_run, &w[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        errors += w[i].errors;
    }
    check(errors == 0, "3 threads create and delete 15 ConfigMaps through one client", "%d errors", errors);
    check(wait_notes(sets0 + 15, dels0 + 15), "the informer saw all 15 created and deleted",
          "sets %d dels %d", NT.sets, NT.dels);
}

static void informer(k8s_client *c)
{
    char sel[64], pre[64], name[64];
    k8s_informer *inf = NULL;
    cJSON *o = NULL, *patch, *got;
    int rc;

    snprintf(sel, sizeof(sel), "inf=%s", tag);
    snprintf(pre, sizeof(pre), "inf-pre-%s", tag);
    snprintf(name, sizeof(name), "inf-new-%s", tag);
    o = inf_cm(pre);
    k8s_create(c, &K8S_CONFIGMAPS, ns, o, NULL);
    cJSON_Delete(o);
    rc = k8s_informer_new(c, &K8S_CONFIGMAPS, ns, sel, on_change, NULL, &inf);
    rc = rc ? rc : k8s_informer_start(inf);
    check(rc == 0 && k8s_informer_wait_synced(inf, 10000) && wait_notes(1, 0), "informer lists and is synced",
          "rc %d: %s", rc, k8s_errmsg());
    got = k8s_informer_get(inf, ns, pre);
    check(got != NULL, "the listed object is in the cache", "missing");
    cJSON_Delete(got);
    o = inf_cm(name);
    rc = k8s_create(c, &K8S_CONFIGMAPS, ns, o, NULL);
    check(rc == 0 && wait_notes(2, 0), "a created object is notified (watch)", "rc %d: %s", rc, k8s_errmsg());
    patch = jparse("{\"data\":{\"v\":\"1\"}}");
    rc = k8s_patch(c, &K8S_CONFIGMAPS, ns, name, patch, NULL);
    check(rc == 0 && wait_notes(3, 0), "a patched object is notified", "rc %d", rc);
    got = k8s_informer_get(inf, ns, name);
    check(!strcmp(jstr(got, "data", "v"), "1"), "the cache has the patched object", "v=%s", jstr(got, "data", "v"));
    cJSON_Delete(got);
    rc = k8s_delete(c, &K8S_CONFIGMAPS, ns, name, NULL);
    check(rc == 0 && wait_notes(3, 1), "a deleted object is notified", "rc %d", rc);
    got = k8s_informer_get(inf, ns, name);
    check(!got, "and is gone from the cache", "still there");
    cJSON_Delete(got);
    parallel_writers(c, 3, 1);
    got = k8s_informer_list(inf, ns, "inf", tag);
    check(cJSON_GetArraySize(got) == 1, "the cache holds just the listed object again", "%d objects",
          cJSON_GetArraySize(got));
    cJSON_Delete(got);
    k8s_informer_free(inf);
    k8s_delete(c, &K8S_CONFIGMAPS, ns, pre, NULL);
    cJSON_Delete(o);
    cJSON_Delete(patch);
}

/* ---------------------------------------------------------------- TLS */

static void tls_checks(const struct k8s_config *cfg)
{
    struct k8s_config bare = *cfg;
    k8s_client *c;
    int rc;

    if (strncmp(cfg->server, "https://", 8) || !(cfg->ca_pem || cfg->ca_file))
        return;
    bare.ca_pem = bare.ca_file = NULL;
    rc = k8s_client_new(&bare, &c);
    rc = rc ? rc : k8s_get(c, &NAMESPACES, NULL, ns, NULL);
    check(rc == CE_UNREACHABLE, "https without the cluster CA is refused (CE_UNREACHABLE)", "rc %d: %s",
          rc, k8s_errmsg());
    k8s_client_free(c);
    bare.insecure = true;
    rc = k8s_client_new(&bare, &c);
    rc = rc ? rc : k8s_get(c, &NAMESPACES, NULL, ns, NULL);
    check(rc == 0, "insecure-skip-tls-verify connects without the CA", "rc %d: %s", rc, k8s_errmsg());
    k8s_client_free(c);
}

static int load(int argc, char **argv, struct k8s_config **cfg)
{
    if (argc == 5 && !strcmp(argv[1], "kubeconfig")) {
        ns = argv[3];
        tag = argv[4];
        return k8s_config_load(argv[2], NULL, cfg);
    }
    if (argc == 4 && !strcmp(argv[1], "incluster")) {
        ns = argv[2];
        tag = argv[3];
        return k8s_config_in_cluster(cfg);
    }
    fprintf(stderr, "usage: %s kubeconfig PATH NS TAG | incluster NS TAG\n", argv[0]);
    exit(2);
}

int main(int argc, char **argv)
{
    struct k8s_config *cfg = NULL;
    k8s_client *c = NULL;
    cJSON *created;
    char name[64], *uid;
    int rc = load(argc, argv, &cfg);

    check(rc == 0, "load the configuration", "rc %d: %s", rc, k8s_errmsg());
    rc = rc ? rc : k8s_client_new(cfg, &c);
    check(rc == 0, "create the client", "rc %d: %s", rc, k8s_errmsg());
    if (rc)
        return 1;
    printf("# server %s\n", cfg->server);
    ensure_namespace(c);
    snprintf(name, sizeof(name), "cm-%s", tag);
    created = configmap_create(c, name);
    uid = strdup(jstr(created, "metadata", "uid"));
    configmap_update(c, name, created);
    cJSON_Delete(created);
    invalid_and_missing(c);
    status_subresource(c);
    event(c, name);
    delete_checks(c, name, uid);
    informer(c);
    tls_checks(cfg);
    free(uid);
    k8s_client_free(c);
    k8s_config_free(cfg);
    return failures ? 1 : 0;
}
