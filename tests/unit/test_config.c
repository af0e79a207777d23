/*
 * test_config.c: etcd-compatible configuration (flags, ETCD_* variables, YAML file) and the
 * member/cluster ID derivation, checked against IDs real etcd computes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "err.h"
#include "node/members.h"

static int parse(config *c, char **argv, char **env)
{
    int argc = 0;

    while (argv[argc])
        argc++;
    memset(c, 0, sizeof(*c));
    return config_parse(c, argc, argv, env);
}

static void test_defaults(void **state)
{
    char *argv[] = {"cetcd", 0}, *env[] = {0};
    config c;

    (void)state;
    assert_int_equal(parse(&c, argv, env), 0);
    assert_string_equal(c.name, "default");
    assert_string_equal(c.data_dir, "default.etcd");
    assert_string_equal(c.listen_client_urls.list[0], "http://localhost:2379");
    assert_string_equal(c.initial_cluster, "default=http://localhost:2380");
    assert_int_equal(c.heartbeat_ms, 100);
    assert_int_equal(c.election_ms, 1000);
    assert_int_equal(c.snapshot_count, 100000);
    assert_int_equal(c.max_request_bytes, 1572864);
    assert_int_equal(c.max_txn_ops, 128);
    config_free(&c);
}

static void test_flag_forms(void **state)
{
    char *argv[] = {"cetcd", "--name=n1", "-data-dir", "/tmp/x", "--force-new-cluster",
                    "--listen-client-urls", "http://127.0.0.1:1,http://127.0.0.2:2",
                    "--heartbeat-interval=50", "--election-timeout", "500", 0};
    char *env[] = {0};
    config c;

    (void)state;
    assert_int_equal(parse(&c, argv, env), 0);
    assert_string_equal(c.name, "n1");
    assert_string_equal(c.data_dir, "/tmp/x");
    assert_true(c.force_new_cluster);
    assert_int_equal(c.listen_client_urls.n, 2);
    assert_string_equal(c.listen_client_urls.list[1], "http://127.0.0.2:2");
    assert_int_equal(c.heartbeat_ms, 50);
    assert_int_equal(c.election_ms, 500);
    config_free(&c);
}

static void test_env_and_precedence(void **state)
{
    char *argv[] = {"cetcd", "--name", "fromflag", 0};
    char *env[] = {"ETCD_NAME=fromenv", "ETCD_DATA_DIR=/var/lib/etcd",
                   "ETCD_INITIAL_CLUSTER_STATE=existing", "ETCD_SNAPSHOT_COUNT=1000", 0};
    config c;

    (void)state;
    assert_int_equal(parse(&c, argv, env), 0);
    assert_string_equal(c.name, "fromflag"); /* a flag wins over its variable */
    assert_string_equal(c.data_dir, "/var/lib/etcd");
    assert_string_equal(c.initial_cluster_state, "existing");
    assert_int_equal(c.snapshot_count, 1000);
    config_free(&c);
}

static void test_errors_name_the_problem(void **state)
{
    char *unknown[] = {"cetcd", "--no-such-flag=1", 0};
    char *badnum[] = {"cetcd", "--heartbeat-interval=abc", 0};
    char *neg[] = {"cetcd", "--snapshot-count=-1", 0};
    char *badurl[] = {"cetcd", "--listen-client-urls=localhost:2379", 0};
    char *badstate[] = {"cetcd", "--initial-cluster-state=old", 0};
    char *badenv[] = {"ETCD_MAX_TXN_OPS=many", 0}, *env[] = {0}, *plain[] = {"cetcd", 0};
    config c;

    (void)state;
    assert_int_equal(parse(&c, unknown, env), CE_INVAL);
    assert_non_null(strstr(c.error, "--no-such-flag"));
    config_free(&c);
    assert_int_equal(parse(&c, badnum, env), CE_INVAL);
    assert_non_null(strstr(c.error, "--heartbeat-interval"));
    config_free(&c);
    assert_int_equal(parse(&c, neg, env), CE_INVAL);
    assert_non_null(strstr(c.error, "--snapshot-count"));
    config_free(&c);
    assert_int_equal(parse(&c, badurl, env), CE_INVAL);
    assert_non_null(strstr(c.error, "--listen-client-urls"));
    config_free(&c);
    assert_int_equal(parse(&c, badstate, env), CE_INVAL);
    assert_non_null(strstr(c.error, "initial-cluster-state"));
    config_free(&c);
    assert_int_equal(parse(&c, plain, badenv), CE_INVAL);
    assert_non_null(strstr(c.error, "ETCD_MAX_TXN_OPS"));
    assert_null(strchr(c.error, '\n'));
    config_free(&c);
}

static void test_yaml_file(void **state)
{
    char path[] = "/tmp/cetcd-conf-XXXXXX";
    int fd = mkstemp(path);
    const char *yaml = "name: 'infra1'\n"
                       "data-dir: /tmp/infra1\n"
                       "wal-dir:\n"
                       "snapshot-count: 5000\n"
                       "heartbeat-interval: 100\n"
                       "election-timeout: 1000\n"
                       "listen-client-urls: http://127.0.0.1:12379\n"
                       "advertise-client-urls: [\"http://127.0.0.1:12379\"]\n"
                       "initial-cluster: infra1=http://127.0.0.1:12380\n"
                       "initial-cluster-state: 'new'\n"
                       "client-transport-security:\n"
                       "  client-cert-auth: false\n"
                       "  trusted-ca-file: /etc/ca.crt\n"
                       "peer-transport-security:\n"
                       "  cert-file: /etc/peer.crt\n";
    char arg[64];
    char *argv[] = {"cetcd", arg, 0}, *env[] = {"ETCD_NAME=ignored", 0};
    config c;

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, strlen(yaml)), (int)strlen(yaml));
    close(fd);
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    assert_int_equal(parse(&c, argv, env), 0);
    assert_string_equal(c.name, "infra1");
    assert_int_equal(c.snapshot_count, 5000);
    assert_string_equal(c.advertise_client_urls.list[0], "http://127.0.0.1:12379");
    assert_string_equal(c.client_tls.trusted_ca_file, "/etc/ca.crt");
    assert_string_equal(c.peer_tls.cert_file, "/etc/peer.crt");
    assert_null(c.wal_dir);
    config_free(&c);
    unlink(path);
}

static void test_yaml_unknown_key(void **state)
{
    char path[] = "/tmp/cetcd-conf-XXXXXX";
    int fd = mkstemp(path);
    const char *yaml = "name: a\nno-such-key: 1\n";
    char arg[64];
    char *argv[] = {"cetcd", arg, 0}, *env[] = {0};
    config c;

    (void)state;
    assert_int_equal(write(fd, yaml, strlen(yaml)), (int)strlen(yaml));
    close(fd);
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    assert_int_equal(parse(&c, argv, env), CE_INVAL);
    assert_non_null(strstr(c.error, "no-such-key"));
    config_free(&c);
    unlink(path);
}

/* etcd's well-known IDs for its default single-member configuration. */
static void test_ids_match_etcd(void **state)
{
    node_member *m = 0;
    size_t n = 0;
    char err[128];

    (void)state;
    assert_int_equal(members_parse_initial("default=http://localhost:2380", "etcd-cluster", &m, &n,
                                           err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_true(m[0].id == 0x8e9e05c52164694dull);
    assert_true(members_cluster_id(m, n) == 0xcdf818194e3a8c32ull);
    free(m);
}

static void test_initial_cluster_groups_urls(void **state)
{
    node_member *m = 0, *back = 0;
    size_t n = 0, nb = 0;
    uint64_t cid = 0;
    char err[128], *json;

    (void)state;
    assert_int_equal(members_parse_initial("a=http://1:2380,b=http://2:2380,a=http://0:2380", "t",
                                           &m, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_int_equal(m[0].npeer, 2);
    assert_string_equal(m[0].peer_urls[0], "http://0:2380"); /* sorted, as etcd hashes them */
    json = members_to_json(m, n, 42);
    assert_int_equal(members_from_json(json, &back, &nb, &cid), 0);
    assert_int_equal(nb, 2);
    assert_true(back[1].id == m[1].id);
    assert_int_equal(cid, 42);
    free(json);
    free(back);
    free(m);
    assert_int_equal(members_parse_initial("a", "t", &m, &n, err, sizeof(err)), CE_INVAL);
    assert_int_equal(members_parse_initial("=http://x:1", "t", &m, &n, err, sizeof(err)), CE_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flag_forms),
        cmocka_unit_test(test_env_and_precedence),
        cmocka_unit_test(test_errors_name_the_problem),
        cmocka_unit_test(test_yaml_file),
        cmocka_unit_test(test_yaml_unknown_key),
        cmocka_unit_test(test_ids_match_etcd),
        cmocka_unit_test(test_initial_cluster_groups_urls),
    };
    return cmocka_run_group_tests(tests, 0, 0);
}
