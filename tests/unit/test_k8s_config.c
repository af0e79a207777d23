/*
 * test_k8s_config.c: unit tests of the Kubernetes client's configuration loading
 * (controller/k8s/config.c, yamljson.c): kubeconfig current-context and named contexts,
 * base64 "-data" fields, file paths relative to the kubeconfig's directory, tokenFile, context
 * namespace, insecure-skip-tls-verify, every missing or bad field refused with CE_K8S_CONFIG and
 * a message naming it, and the in-cluster configuration read from a service-account directory
 * given by K8S_SA_DIR. Files live in a fresh temporary directory removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "k8s/k8s.h"
#include "k8s/k8s_int.h"

static char tmpdir[64];

static void write_file(const char *rel, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *path_of(const char *rel)
{
    static char path[256];

    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    return path;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/k8scfg.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    if (mkdir(path_of("sub"), 0700) || mkdir(path_of("sa"), 0700))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    const char *files[] = {"sub/kc", "sub/ca.crt", "sub/tok", "sub/c.crt", "sub/c.key", "bad",
                           "sa/token", "sa/ca.crt", "sa/namespace", "kc2", NULL};

    (void)state;
    for (size_t i = 0; files[i]; i++)
        unlink(path_of(files[i]));
    rmdir(path_of("sub"));
    rmdir(path_of("sa"));
    rmdir(tmpdir);
    return 0;
}

/* "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n" and friends, base64. */
#define CA_PEM "-----BEGIN CERTIFICATE-----\nQ0E=\n-----END CERTIFICATE-----\n"
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClEwRT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
#define CRT_PEM "cert-bytes\n"
#define CRT_B64 "Y2VydC1ieXRlcwo="
#define KEY_PEM "key-bytes\n"
#define KEY_B64 "a2V5LWJ5dGVzCg=="

static const char *KC =
    "apiVersion: v1\n"
    "kind: Config\n"
    "current-context: one\n"
    "clusters:\n"
    "- name: c1\n"
    "  cluster:\n"
    "    server: https://127.0.0.1:6443/\n"
    "    certificate-authority-data: " CA_B64 "\n"
    "- name: c2\n"
    "  cluster:\n"
    "    server: https://10.0.0.2:443\n"
    "    certificate-authority: ca.crt\n"
    "- name: c3\n"
    "  cluster:\n"
    "    server: http://h:80\n"
    "    insecure-skip-tls-verify: true\n"
    "- name: noserver\n"
    "  cluster: {certificate-authority-data: " CA_B64 "}\n"
    "- name: badca\n"
    "  cluster: {server: 'https://x', certificate-authority-data: '!!notbase64'}\n"
    "- name: missingca\n"
    "  cluster: {server: 'https://x', certificate-authority: nothere.crt}\n"
    "contexts:\n"
    "- name: one\n"
    "  context: {cluster: c1, user: u-token, namespace: ns-one}\n"
    "- name: two\n"
    "  context:\n"
    "    cluster: c2\n"
    "    user: u-files\n"
    "- name: three\n"
    "  context: {cluster: c3, user: u-data, namespace: ns3}\n"
    "- name: tokfile\n"
    "  context: {cluster: c3, user: u-tokfile}\n"
    "- name: anon\n"
    "  context: {cluster: c3}\n"
    "- name: no-cluster\n"
    "  context: {user: u-token}\n"
    "- name: ghost-cluster\n"
    "  context: {cluster: nope, user: u-token}\n"
    "- name: ghost-user\n"
    "  context: {cluster: c1, user: nobody}\n"
    "- name: ctx-noserver\n"
    "  context: {cluster: noserver}\n"
    "- name: ctx-badca\n"
    "  context: {cluster: badca}\n"
    "- name: ctx-missingca\n"
    "  context: {cluster: missingca}\n"
    "- name: halfcert\n"
    "  context: {cluster: c3, user: u-half}\n"
    "- name: exec\n"
    "  context: {cluster: c3, user: u-exec}\n"
    "users:\n"
    "- name: u-token\n"
    "  user: {token: abc.def}\n"
    "- name: u-files\n"
    "  user:\n"
    "    client-certificate: c.crt\n"
    "    client-key: c.key\n"
    "- name: u-data\n"
    "  user:\n"
    "    client-certificate-data: " CRT_B64 "\n"
    "    client-key-data: " KEY_B64 "\n"
    "    client-key: ignored-because-data-wins.key\n"
    "- name: u-tokfile\n"
    "  user: {tokenFile: tok}\n"
    "- name: u-half\n"
    "  user: {client-certificate-data: " CRT_B64 "}\n"
    "- name: u-exec\n"
    "  user:\n"
    "    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}\n";

static void write_kubeconfig(void)
{
    write_file("sub/kc", KC);
    write_file("sub/ca.crt", CA_PEM);
    write_file("sub/c.crt", CRT_PEM);
    write_file("sub/c.key", KEY_PEM);
    write_file("sub/tok", "file-token\n\n");
}

static struct k8s_config *load_ok(const char *ctx)
{
    struct k8s_config *cfg = NULL;
    int rc = k8s_config_load(path_of("sub/kc"), ctx, &cfg);

    if (rc)
        fail_msg("context %s: rc %d: %s", ctx ? ctx : "(current)", rc, k8s_errmsg());
    assert_non_null(cfg);
    assert_string_equal(k8s_errmsg(), "");
    return cfg;
}

static void test_current_context(void **state)
{
    struct k8s_config *cfg;

    (void)state;
    write_kubeconfig();
    cfg = load_ok(NULL);
    assert_string_equal(cfg->server, "https://127.0.0.1:6443/");
    assert_string_equal(cfg->ca_pem, CA_PEM);
    assert_null(cfg->ca_file);
    assert_string_equal(cfg->token, "abc.def");
    assert_string_equal(cfg->namespace, "ns-one");
    assert_false(cfg->insecure);
    assert_null(cfg->cert_file);
    assert_null(cfg->cert_pem);
    k8s_config_free(cfg);
}

static void test_named_context_files(void **state)
{
    struct k8s_config *cfg;
    char want[256];

    (void)state;
    write_kubeconfig();
    cfg = load_ok("two");
    assert_string_equal(cfg->server, "https://10.0.0.2:443");
    snprintf(want, sizeof(want), "%s/sub/ca.crt", tmpdir);
    assert_string_equal(cfg->ca_file, want); /* relative to the kubeconfig, not the cwd */
    snprintf(want, sizeof(want), "%s/sub/c.crt", tmpdir);
    assert_string_equal(cfg->cert_file, want);
    snprintf(want, sizeof(want), "%s/sub/c.key", tmpdir);
    assert_string_equal(cfg->key_file, want);
    assert_null(cfg->ca_pem);
    assert_null(cfg->token);
    assert_null(cfg->namespace);
    k8s_config_free(cfg);
}

static void test_data_fields_and_insecure(void **state)
{
    struct k8s_config *cfg;

    (void)state;
    write_kubeconfig();
    cfg = load_ok("three");
    assert_true(cfg->insecure);
    assert_string_equal(cfg->cert_pem, CRT_PEM);
    assert_string_equal(cfg->key_pem, KEY_PEM); /* -data wins over the (missing) file */
    assert_null(cfg->key_file);
    assert_null(cfg->ca_pem);
    assert_null(cfg->ca_file);
    assert_string_equal(cfg->namespace, "ns3");
    k8s_config_free(cfg);
}

static void test_token_file_and_anonymous(void **state)
{
    struct k8s_config *cfg;

    (void)state;
    write_kubeconfig();
    cfg = load_ok("tokfile");
    assert_string_equal(cfg->token, "file-token"); /* trailing newlines stripped */
    k8s_config_free(cfg);
    cfg = load_ok("anon");
    assert_null(cfg->token);
    assert_null(cfg->cert_pem);
    assert_string_equal(cfg->server, "http://h:80");
    k8s_config_free(cfg);
}

/* Loading context ctx fails with CE_K8S_CONFIG and a message containing each needle. */
static void expect_config_error(const char *kc, const char *ctx, const char *n1, const char *n2)
{
    struct k8s_config *cfg = (struct k8s_config *)&cfg;
    int rc = k8s_config_load(kc, ctx, &cfg);

    assert_int_equal(rc, CE_K8S_CONFIG);
    assert_null(cfg);
    if (!strstr(k8s_errmsg(), n1) || (n2 && !strstr(k8s_errmsg(), n2)))
        fail_msg("context %s: message \"%s\" lacks \"%s\"/\"%s\"", ctx ? ctx : "-", k8s_errmsg(),
                 n1, n2 ? n2 : "");
}

static void test_kubeconfig_errors(void **state)
{
    char kc[256];

    (void)state;
    snprintf(kc, sizeof(kc), "%s", path_of("sub/kc")); /* path_of's buffer is reused */
    write_kubeconfig();
    expect_config_error(kc, "missing", "context \"missing\" not found", kc);
    expect_config_error(kc, "no-cluster", "context \"no-cluster\" names no cluster", NULL);
    expect_config_error(kc, "ghost-cluster", "cluster \"nope\" not found", NULL);
    expect_config_error(kc, "ghost-user", "user \"nobody\" not found", NULL);
    expect_config_error(kc, "ctx-noserver", "cluster \"noserver\" has no server", NULL);
    expect_config_error(kc, "ctx-badca", "certificate-authority-data is not valid base64", NULL);
    expect_config_error(kc, "ctx-missingca", "certificate-authority", "nothere.crt");
    expect_config_error(kc, "halfcert", "user \"u-half\" has a client certificate without", NULL);
    expect_config_error(kc, "exec", "exec/auth-provider", "u-exec");
    unlink(path_of("sub/tok"));
    expect_config_error(kc, "tokfile", "tokenFile", "sub/tok");

    write_file("kc2", "apiVersion: v1\nclusters: []\n");
    expect_config_error(path_of("kc2"), NULL, "no current-context and no context given", NULL);
    write_file("kc2", "clusters: [unclosed\n");
    expect_config_error(path_of("kc2"), NULL, "invalid YAML at line", NULL);
    write_file("kc2", "- just\n- a list\n");
    expect_config_error(path_of("kc2"), NULL, "not a YAML mapping", NULL);
    expect_config_error(path_of("nonexistent"), NULL, "kubeconfig", "No such file");
}

static void test_yaml_anchors_and_bombs(void **state)
{
    cJSON *j = NULL;
    const char *ok = "base: &b {server: 'https://a', x: [1, 2]}\ncopy: *b\n";
    char bomb[2048];
    int n;

    (void)state;
    assert_int_equal(k8s_yaml_to_json(ok, strlen(ok), &j), 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "copy"),
                                                                 "server")),
                        "https://a");
    cJSON_Delete(j);
    /* a billion laughs: 9 levels of 10 aliases each */
    n = snprintf(bomb, sizeof(bomb), "a: &a [x,x,x,x,x,x,x,x,x,x]\n");
    for (char c = 'b'; c <= 'j'; c++)
        n += snprintf(bomb + n, sizeof(bomb) - (size_t)n, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n",
                      c, c, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
    assert_int_equal(k8s_yaml_to_json(bomb, (size_t)n, &j), CE_K8S_CONFIG);
    assert_null(j);
}

static void set_sa_env(const char *host)
{
    setenv("K8S_SA_DIR", path_of("sa"), 1);
    setenv("KUBERNETES_SERVICE_HOST", host, 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
}

static void test_in_cluster(void **state)
{
    struct k8s_config *cfg = NULL;
    char want[256];

    (void)state;
    write_file("sa/token", "sa-token\n");
    write_file("sa/ca.crt", CA_PEM);
    write_file("sa/namespace", "team-a");
    set_sa_env("10.96.0.1");
    assert_int_equal(k8s_config_in_cluster(&cfg), 0);
    assert_string_equal(cfg->server, "https://10.96.0.1:443");
    assert_string_equal(cfg->token, "sa-token");
    snprintf(want, sizeof(want), "%s/sa/ca.crt", tmpdir);
    assert_string_equal(cfg->ca_file, want);
    assert_string_equal(cfg->namespace, "team-a");
    k8s_config_free(cfg);
    /* k8s_config_load(NULL) is the in-cluster config; an IPv6 host gets brackets */
    set_sa_env("fd00::1");
    unlink(path_of("sa/namespace"));
    unlink(path_of("sa/ca.crt"));
    assert_int_equal(k8s_config_load(NULL, NULL, &cfg), 0);
    assert_string_equal(cfg->server, "https://[fd00::1]:443");
    assert_null(cfg->ca_file);
    assert_null(cfg->namespace);
    k8s_config_free(cfg);
}

static void test_in_cluster_errors(void **state)
{
    struct k8s_config *cfg = NULL;

    (void)state;
    set_sa_env("10.96.0.1");
    unlink(path_of("sa/token"));
    assert_int_equal(k8s_config_in_cluster(&cfg), CE_K8S_CONFIG);
    assert_null(cfg);
    assert_non_null(strstr(k8s_errmsg(), "sa/token"));
    write_file("sa/token", "\n");
    assert_int_equal(k8s_config_in_cluster(&cfg), CE_K8S_CONFIG);
    assert_non_null(strstr(k8s_errmsg(), "is empty"));
    write_file("sa/token", "t");
    unsetenv("KUBERNETES_SERVICE_HOST");
    assert_int_equal(k8s_config_in_cluster(&cfg), CE_K8S_CONFIG);
    assert_non_null(strstr(k8s_errmsg(), "KUBERNETES_SERVICE_HOST"));
    unsetenv("K8S_SA_DIR");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_client_rejects_bad_server(void **state)
{
    struct k8s_config cfg = {.server = "ftp://x"};
    k8s_client *c = (k8s_client *)&cfg;

    (void)state;
    assert_int_equal(k8s_client_new(&cfg, &c), CE_K8S_CONFIG);
    assert_null(c);
    assert_non_null(strstr(k8s_errmsg(), "ftp://x"));
    cfg.server = "https://h:1//";
    cfg.namespace = "ns";
    assert_int_equal(k8s_client_new(&cfg, &c), 0);
    assert_string_equal(k8s_client_namespace(c), "ns");
    k8s_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_current_context),
        cmocka_unit_test(test_named_context_files),
        cmocka_unit_test(test_data_fields_and_insecure),
        cmocka_unit_test(test_token_file_and_anonymous),
        cmocka_unit_test(test_kubeconfig_errors),
        cmocka_unit_test(test_yaml_anchors_and_bombs),
        cmocka_unit_test(test_in_cluster),
        cmocka_unit_test(test_in_cluster_errors),
        cmocka_unit_test(test_client_rejects_bad_server),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
