/*
 * test_resources.c: the EtcdCluster spec parser, the names, the object builders and the
 * "already converged" comparison of controller/resources/.
 *
 * Builders are checked against whole expected objects in tests/unit/data/resources/ (one .json per object),
 * written by hand from the operator design (/tmp/op/design.md, docs/operator.md), not produced
 * by the code under test. Objects compare as parsed JSON trees (key order aside, jsonfile.h); a
 * mismatch prints every differing path with the expected and the built value. The data
 * directory is found next to this file (__FILE__), or in $RESOURCES_DATA_DIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jsonfile.h"
#include "resources/resources.h"

/* ---- helpers: expected objects (jsonfile.h), parsing ---- */

static cJSON *load_json(const char *name)
{
    return jsonfile_load("RESOURCES_DATA_DIR", "resources", name);
}

static void assert_json_file(const cJSON *got, const char *file)
{
    jsonfile_assert(got, "RESOURCES_DATA_DIR", "resources", file);
}

static void parse_file(const char *file, struct ec_spec *s)
{
    char err[512];
    cJSON *obj = load_json(file);
    int rc = ec_spec_parse(obj, s, err, sizeof(err));

    if (rc)
        fail_msg("%s: %s", file, err);
    cJSON_Delete(obj);
}

static int parse_text(const char *text, struct ec_spec *s, char *err, size_t errsz)
{
    cJSON *obj = cJSON_Parse(text);
    int rc;

    if (!obj)
        fail_msg("bad test JSON: %s", text);
    rc = ec_spec_parse(obj, s, err, errsz);
    cJSON_Delete(obj);
    return rc;
}

#define MD "\"metadata\":{\"name\":\"etcd3\",\"namespace\":\"db\",\"uid\":\"0a1b2c3d-1111-2222-3333-444455556666\"}"

/* ---- ec_spec_parse ---- */

static void test_parse_defaults(void **state)
{
    struct ec_spec s;
    char err[256];

    (void)state;
    assert_int_equal(parse_text("{\"metadata\":{\"name\":\"a\",\"uid\":\"u1\"}}", &s, err,
                                sizeof(err)), 0);
    assert_string_equal(s.name, "a");
    assert_string_equal(s.ns, "default");
    assert_string_equal(s.uid, "u1");
    assert_int_equal(s.generation, 0);
    assert_int_equal(s.size, 3);
    assert_null(s.version);
    assert_string_equal(s.image, EC_DEFAULT_IMAGE);
    assert_false(s.empty_dir);
    assert_string_equal(s.storage_size, "1Gi");
    assert_null(s.storage_class);
    assert_null(s.resources);
    assert_null(s.pod_template);
    assert_int_equal(s.options.heartbeat_ms, 0);
    assert_int_equal(s.options.election_ms, 0);
    assert_int_equal(s.options.quota_backend_bytes, 0);
    assert_null(s.options.auto_compaction_mode);
    assert_null(s.options.auto_compaction_retention);
    assert_int_equal(s.options.snapshot_count, 0);
    assert_null(s.options.extra_args);
    assert_false(s.paused);
    ec_spec_clear(&s);
    assert_null(s.name);

    /* an empty spec and a null spec are the defaults too */
    assert_int_equal(parse_text("{" MD ",\"spec\":{}}", &s, err, sizeof(err)), 0);
    assert_int_equal(s.size, 3);
    ec_spec_clear(&s);
    assert_int_equal(parse_text("{" MD ",\"spec\":null}", &s, err, sizeof(err)), 0);
    assert_int_equal(s.size, 3);
    ec_spec_clear(&s);
    ec_spec_clear(NULL);
}

static void test_parse_full(void **state)
{
    struct ec_spec s;

    (void)state;
    parse_file("cluster_full.json", &s);
    assert_string_equal(s.name, "prod");
    assert_string_equal(s.ns, "infra");
    assert_int_equal(s.generation, 7);
    assert_int_equal(s.size, 5);
    assert_string_equal(s.version, "0.2.0");
    assert_string_equal(s.image, "cetcd:0.2.0");
    assert_string_equal(s.storage_size, "10Gi");
    assert_string_equal(s.storage_class, "fast-ssd");
    /* the number 0.5 became the quantity "0.5" */
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(s.resources, "requests"),
                                            "cpu")->valuestring, "0.5");
    assert_non_null(cJSON_GetObjectItem(s.pod_template, "affinity"));
    assert_int_equal(s.options.heartbeat_ms, 200);
    assert_int_equal(s.options.election_ms, 2000);
    assert_true(s.options.quota_backend_bytes == 8589934592LL);
    assert_string_equal(s.options.auto_compaction_mode, "periodic");
    assert_string_equal(s.options.auto_compaction_retention, "1h");
    assert_int_equal(s.options.snapshot_count, 50000);
    assert_string_equal(s.options.extra_args[0], "--max-txn-ops=256");
    assert_string_equal(s.options.extra_args[1], "--log-level=debug");
    assert_null(s.options.extra_args[2]);
    assert_false(s.paused);
    ec_spec_clear(&s);
}

static void test_parse_image_and_storage(void **state)
{
    struct ec_spec s;
    char err[256];

    (void)state;
    /* spec.image wins over spec.version */
    assert_int_equal(parse_text("{" MD ",\"spec\":{\"version\":\"9.9\",\"image\":"
                                "\"registry.local:5000/cetcd@sha256:abc\"}}", &s, err,
                                sizeof(err)), 0);
    assert_string_equal(s.image, "registry.local:5000/cetcd@sha256:abc");
    assert_string_equal(s.version, "9.9");
    ec_spec_clear(&s);
    /* a storage size given as a number of bytes; size 1, 7 accepted; paused */
    assert_int_equal(parse_text("{" MD ",\"spec\":{\"size\":7,\"paused\":true,"
                                "\"storage\":{\"size\":1073741824,\"storageClassName\":\"\"}}}",
                                &s, err, sizeof(err)), 0);
    assert_string_equal(s.storage_size, "1073741824");
    assert_string_equal(s.storage_class, "");
    assert_int_equal(s.size, 7);
    assert_true(s.paused);
    ec_spec_clear(&s);
    assert_int_equal(parse_text("{" MD ",\"spec\":{\"size\":1,\"storage\":{\"emptyDir\":"
                                "{\"medium\":\"Memory\"}}}}", &s, err, sizeof(err)), 0);
    assert_true(s.empty_dir);
    assert_int_equal(s.size, 1);
    ec_spec_clear(&s);
}

struct refusal {
    const char *json;
    const char *needle; /* must appear in the message */
};

static const struct refusal refusals[] = {
    {"[]", "not a JSON object"},
    {"{}", "metadata: missing"},
    {"{\"metadata\":{\"uid\":\"u\"}}", "metadata.name: missing"},
    {"{\"metadata\":{\"name\":\"Etcd\",\"uid\":\"u\"}}", "metadata.name: \"Etcd\""},
    {"{\"metadata\":{\"name\":\"3etcd\",\"uid\":\"u\"}}", "metadata.name"},
    {"{\"metadata\":{\"name\":\"etcd-\",\"uid\":\"u\"}}", "metadata.name"},
    {"{\"metadata\":{\"name\":\"a234567890123456789012345678901234567890123456789012x\","
     "\"uid\":\"u\"}}", "at most 52"},
    {"{\"metadata\":{\"name\":\"a\",\"namespace\":\"Bad_NS\",\"uid\":\"u\"}}",
     "metadata.namespace"},
    {"{\"metadata\":{\"name\":\"a\"}}", "metadata.uid: missing"},
    {"{\"metadata\":{\"name\":\"a\",\"uid\":\"\"}}", "metadata.uid: must not be empty"},
    {"{" MD ",\"spec\":[]}", "spec: must be an object"},
    {"{" MD ",\"spec\":{\"size\":0}}", "spec.size: must be an integer from 1 to 7"},
    {"{" MD ",\"spec\":{\"size\":9}}", "spec.size: must be an integer from 1 to 7"},
    {"{" MD ",\"spec\":{\"size\":-3}}", "spec.size"},
    {"{" MD ",\"spec\":{\"size\":3.5}}", "spec.size"},
    {"{" MD ",\"spec\":{\"size\":\"3\"}}", "spec.size: must be an integer"},
    {"{" MD ",\"spec\":{\"size\":2}}", "spec.size: 2 is even"},
    {"{" MD ",\"spec\":{\"size\":4}}",
     "spec.size: 4 is even: an even number of members tolerates no more failures than one "
     "member fewer (quorum needs a majority, 3 of 4, so 4 members survive 1 failure, as 3 do)"},
    {"{" MD ",\"spec\":{\"size\":6}}", "survive 2 failures, as 5 do) while adding one more "
     "member to wait for; use 5 or 7"},
    {"{" MD ",\"spec\":{\"version\":\"bad tag\"}}", "spec.version"},
    {"{" MD ",\"spec\":{\"version\":3}}", "spec.version: must be a string"},
    {"{" MD ",\"spec\":{\"image\":\"\"}}", "spec.image: must not be empty"},
    {"{" MD ",\"spec\":{\"image\":\"a b\"}}", "spec.image"},
    {"{" MD ",\"spec\":{\"storage\":[]}}", "spec.storage: must be an object"},
    {"{" MD ",\"spec\":{\"storage\":{\"size\":\"1GB\"}}}",
     "spec.storage.size: \"1GB\" is not a quantity"},
    {"{" MD ",\"spec\":{\"storage\":{\"size\":\"Gi\"}}}", "not a quantity"},
    {"{" MD ",\"spec\":{\"storage\":{\"size\":\"1.2.3Gi\"}}}", "not a quantity"},
    {"{" MD ",\"spec\":{\"storage\":{\"size\":\"0\"}}}", "must be positive"},
    {"{" MD ",\"spec\":{\"storage\":{\"size\":\"-1Gi\"}}}", "must be positive"},
    {"{" MD ",\"spec\":{\"storage\":{\"size\":true}}}", "spec.storage.size: must be a quantity"},
    {"{" MD ",\"spec\":{\"storage\":{\"storageClassName\":5}}}",
     "spec.storage.storageClassName: must be a string"},
    {"{" MD ",\"spec\":{\"storage\":{\"emptyDir\":true}}}", "spec.storage.emptyDir"},
    {"{" MD ",\"spec\":{\"storage\":{\"emptyDir\":{},\"storageClassName\":\"x\"}}}",
     "exclude each other"},
    {"{" MD ",\"spec\":{\"resources\":\"big\"}}", "spec.resources: must be an object"},
    {"{" MD ",\"spec\":{\"resources\":{\"request\":{}}}}", "spec.resources.request: unknown"},
    {"{" MD ",\"spec\":{\"resources\":{\"limits\":[]}}}", "spec.resources.limits: must be"},
    {"{" MD ",\"spec\":{\"resources\":{\"requests\":{\"cpu\":\"lots\"}}}}",
     "spec.resources.requests.cpu: \"lots\" is not a quantity"},
    {"{" MD ",\"spec\":{\"resources\":{\"limits\":{\"memory\":-5}}}}", "must be non-negative"},
    {"{" MD ",\"spec\":{\"podTemplate\":3}}", "spec.podTemplate: must be an object"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"labels\":{\"cls\":\"x\"}}}}",
     "spec.podTemplate.labels.cls: this label is set by the operator"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"labels\":{\"app.kubernetes.io/instance\":\"x\"}}}}",
     "set by the operator"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"labels\":{\"a\":\"has space\"}}}}",
     "not a valid label value"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"labels\":{\"a\":1}}}}",
     "spec.podTemplate.labels.a: must be a string"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"annotations\":{\"a\":true}}}}",
     "spec.podTemplate.annotations.a: must be a string"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"nodeSelector\":[]}}}",
     "spec.podTemplate.nodeSelector: must be an object"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"affinity\":[]}}}", "spec.podTemplate.affinity"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"tolerations\":{}}}}",
     "spec.podTemplate.tolerations: must be an array"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"tolerations\":[\"x\"]}}}",
     "every toleration must be an object"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"priorityClassName\":1}}}",
     "spec.podTemplate.priorityClassName"},
    {"{" MD ",\"spec\":{\"podTemplate\":{\"hostNetwork\":true}}}",
     "spec.podTemplate.hostNetwork: unknown field"},
    {"{" MD ",\"spec\":{\"options\":[]}}", "spec.options: must be an object"},
    {"{" MD ",\"spec\":{\"options\":{\"heartbeat\":100}}}",
     "spec.options.heartbeat: unknown option"},
    {"{" MD ",\"spec\":{\"options\":{\"heartbeatInterval\":0}}}",
     "spec.options.heartbeatInterval: must be an integer from 1 to 60000"},
    {"{" MD ",\"spec\":{\"options\":{\"heartbeatInterval\":\"100\"}}}",
     "spec.options.heartbeatInterval: must be an integer"},
    {"{" MD ",\"spec\":{\"options\":{\"electionTimeout\":60000}}}",
     "spec.options.electionTimeout: must be an integer from 1 to 50000"},
    {"{" MD ",\"spec\":{\"options\":{\"electionTimeout\":400}}}",
     "spec.options.electionTimeout: 400 ms must be at least 5 times heartbeatInterval (100 ms)"},
    {"{" MD ",\"spec\":{\"options\":{\"heartbeatInterval\":300}}}",
     "1000 ms must be at least 5 times heartbeatInterval (300 ms)"},
    {"{" MD ",\"spec\":{\"options\":{\"quotaBackendBytes\":-1}}}",
     "spec.options.quotaBackendBytes"},
    {"{" MD ",\"spec\":{\"options\":{\"quotaBackendBytes\":8796093022209}}}",
     "spec.options.quotaBackendBytes"},
    {"{" MD ",\"spec\":{\"options\":{\"autoCompactionMode\":\"hourly\"}}}",
     "spec.options.autoCompactionMode: \"hourly\" must be periodic or revision"},
    {"{" MD ",\"spec\":{\"options\":{\"autoCompactionRetention\":\"\"}}}",
     "spec.options.autoCompactionRetention: must not be empty"},
    {"{" MD ",\"spec\":{\"options\":{\"autoCompactionRetention\":\"1 h\"}}}",
     "spec.options.autoCompactionRetention"},
    {"{" MD ",\"spec\":{\"options\":{\"autoCompactionRetention\":1}}}",
     "spec.options.autoCompactionRetention: must be a string"},
    {"{" MD ",\"spec\":{\"options\":{\"snapshotCount\":0}}}", "spec.options.snapshotCount"},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":\"--x\"}}}",
     "spec.options.extraArgs: must be an array"},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"--a\",7]}}}",
     "spec.options.extraArgs[1]: must be a string"},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"-log-level=debug\"]}}}",
     "spec.options.extraArgs[0]: \"-log-level=debug\" must be a flag starting with \"--\""},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"debug\"]}}}", "starting with \"--\""},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"--\"]}}}", "starting with \"--\""},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"--=x\"]}}}", "starting with \"--\""},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"--ok\",\"--name=x\"]}}}",
     "spec.options.extraArgs[1]: --name is set by the operator"},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"--initial-cluster-state\"]}}}",
     "--initial-cluster-state is set by the operator"},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"--heartbeat-interval=5\"]}}}",
     "--heartbeat-interval: use spec.options.heartbeatInterval instead"},
    {"{" MD ",\"spec\":{\"paused\":\"yes\"}}", "spec.paused: must be true or false"},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"--cert-file=/x\"]}}}",
     "--cert-file: use spec.tls instead"},
    {"{" MD ",\"spec\":{\"options\":{\"extraArgs\":[\"--peer-auto-tls\"]}}}",
     "--peer-auto-tls: use spec.tls instead"},
    {"{" MD ",\"spec\":{\"tls\":true}}", "spec.tls: must be an object"},
    {"{" MD ",\"spec\":{\"tls\":{}}}", "spec.tls: set caSecret"},
    {"{" MD ",\"spec\":{\"tls\":{\"caSecret\":\"ca\",\"serverSecret\":\"s\"}}}",
     "not a mix"},
    {"{" MD ",\"spec\":{\"tls\":{\"serverSecret\":\"s\",\"peerSecret\":\"p\"}}}",
     "not a mix"},
    {"{" MD ",\"spec\":{\"tls\":{\"caSecret\":\"Bad_Name\"}}}",
     "spec.tls.caSecret: \"Bad_Name\" is not a valid Secret name"},
    {"{" MD ",\"spec\":{\"tls\":{\"caSecret\":\"\"}}}", "spec.tls.caSecret"},
    {"{" MD ",\"spec\":{\"tls\":{\"ca\":\"x\"}}}", "spec.tls.ca: unknown field"},
    {"{" MD ",\"spec\":{\"auth\":{}}}", "spec.auth.rootSecret: missing"},
    {"{" MD ",\"spec\":{\"auth\":{\"rootSecret\":7}}}",
     "spec.auth.rootSecret: must be a string"},
    {"{" MD ",\"spec\":{\"auth\":{\"root\":\"x\"}}}", "spec.auth.root: unknown field"},
};

static void test_parse_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        struct ec_spec s;
        char err[512];
        int rc = parse_text(refusals[i].json, &s, err, sizeof(err));

        if (rc != CE_INVAL || !strstr(err, refusals[i].needle))
            fail_msg("case %zu %s: rc %d, message \"%s\", expected \"%s\"", i,
                     refusals[i].json, rc, err, refusals[i].needle);
        /* a refusal leaves nothing allocated and the struct cleared */
        assert_null(s.name);
        assert_null(s.image);
        assert_null(s.options.extra_args);
    }
}

static void test_parse_even_size_explains(void **state)
{
    struct ec_spec s;
    char err[512];

    (void)state;
    assert_int_equal(parse_text("{" MD ",\"spec\":{\"size\":4}}", &s, err, sizeof(err)),
                     CE_INVAL);
    assert_non_null(strstr(err, "even"));
    assert_non_null(strstr(err, "majority"));
    assert_non_null(strstr(err, "use 3 or 5"));
}

static void test_parse_small_err_buffer(void **state)
{
    struct ec_spec s;
    char err[9];

    (void)state;
    memset(err, 'x', sizeof(err));
    assert_int_equal(parse_text("{" MD ",\"spec\":{\"size\":4}}", &s, err, sizeof(err)),
                     CE_INVAL);
    assert_int_equal(strlen(err), 8);
    assert_int_equal(parse_text("{" MD ",\"spec\":{\"size\":4}}", &s, NULL, 0), CE_INVAL);
}

/* ---- quantities ---- */

static void test_quantity(void **state)
{
    static const struct {
        const char *s;
        long double v;
    } ok[] = {
        {"1Gi", 1073741824.0L}, {"512Mi", 536870912.0L}, {"1Ki", 1024.0L},
        {"2Ei", 2305843009213693952.0L}, {"500m", 0.5L}, {"1", 1.0L}, {"0", 0.0L},
        {"1.5", 1.5L}, {".5", 0.5L}, {"5.", 5.0L}, {"1k", 1000.0L}, {"1M", 1e6L},
        {"1G", 1e9L}, {"1E", 1e18L}, {"1e3", 1000.0L}, {"1E3", 1000.0L}, {"2e-3", 0.002L},
        {"+4", 4.0L}, {"-1", -1.0L}, {"100n", 1e-7L}, {"3u", 3e-6L}, {"1T", 1e12L},
        {"1P", 1e15L}, {"1Ti", 1099511627776.0L},
    };
    static const char *const bad[] = {
        "", "Gi", "1GB", "1gi", "1 Gi", "1.2.3", "1e", "1e+", "1ee3", "1Gi ", "0x10", "--1",
        "1e99", ".", "+", "1KiB", "1.5.Gi",
        ("12345678901234567890123456789012345678901234567890" "12345678901234567890"),
    };
    long double v;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (!ec_quantity_parse(ok[i].s, &v))
            fail_msg("%s refused", ok[i].s);
        long double d = v - ok[i].v;
        if (d < 0)
            d = -d;
        if (d > 1e-12L * (ok[i].v < 0 ? -ok[i].v : ok[i].v) + 1e-20L)
            fail_msg("%s parsed as %Lg, want %Lg", ok[i].s, v, ok[i].v);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ec_quantity_parse(bad[i], &v))
            fail_msg("\"%s\" accepted", bad[i]);
    assert_false(ec_quantity_parse(NULL, &v));
    assert_true(ec_quantity_equal("1Gi", "1024Mi"));
    assert_true(ec_quantity_equal("0.5", "500m"));
    assert_true(ec_quantity_equal("100m", "0.1"));
    assert_true(ec_quantity_equal("1e3", "1k"));
    assert_true(ec_quantity_equal("0", "0m"));
    assert_false(ec_quantity_equal("1Gi", "1G"));
    assert_false(ec_quantity_equal("500m", "600m"));
    assert_false(ec_quantity_equal("1Gi", "junk"));
}

/* ---- names ---- */

static void test_names(void **state)
{
    struct ec_spec s;
    char buf[EC_NAME_MAX];

    (void)state;
    parse_file("cluster_min.json", &s);
    assert_string_equal(ec_pod_name(&s, 2, buf, sizeof(buf)), "etcd3-2");
    assert_string_equal(ec_peer_url(&s, 0, buf, sizeof(buf)),
                        "http://etcd3-0.etcd3-peer.db.svc:2380");
    assert_string_equal(ec_client_url(&s, 4, buf, sizeof(buf)),
                        "http://etcd3-4.etcd3-peer.db.svc:2379");
    assert_string_equal(ec_pvc_name(&s, 1, buf, sizeof(buf)), "data-etcd3-1");
    assert_string_equal(ec_configmap_name(&s, buf, sizeof(buf)), "etcd3-members");
    assert_string_equal(ec_headless_name(&s, buf, sizeof(buf)), "etcd3-peer");
    assert_string_equal(ec_cluster_token(&s, buf, sizeof(buf)), "etcd3-0a1b2c3d");
    assert_string_equal(ec_selector_string(&s, buf, sizeof(buf)),
                        "cls=etcd3,app.kubernetes.io/instance=etcd3");
    /* a short buffer truncates, never overflows */
    assert_string_equal(ec_peer_url(&s, 0, buf, 8), "http://");
    ec_spec_clear(&s);
}

static void test_ordinal_of_peer_url(void **state)
{
    static const char *const foreign[] = {
        "", "http://etcd3-01.etcd3-peer.db.svc:2380", "http://etcd3--1.etcd3-peer.db.svc:2380",
        "http://etcd3-.etcd3-peer.db.svc:2380", "http://etcd3-1.etcd3-peer.db.svc:2379",
        "http://etcd3-1.etcd3-peer.other.svc:2380", "https://etcd3-1.etcd3-peer.db.svc:2380",
        "http://etcd3-1.etcd3-peer.db.svc:2380/", "http://etcd30-1.etcd30-peer.db.svc:2380",
        "http://etcd-1.etcd-peer.db.svc:2380", "http://etcd3-1.etcd3-peer.db.svc",
        "http://etcd3-99999.etcd3-peer.db.svc:2380", "http://etcd3-1x.etcd3-peer.db.svc:2380",
        "http://10.0.0.1:2380",
    };
    struct ec_spec s;
    char buf[EC_NAME_MAX];

    (void)state;
    parse_file("cluster_min.json", &s);
    for (int i = 0; i < 12; i++)
        assert_int_equal(ec_ordinal_of_peer_url(&s, ec_peer_url(&s, i, buf, sizeof(buf))), i);
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
        if (ec_ordinal_of_peer_url(&s, foreign[i]) != -1)
            fail_msg("%s taken as ours", foreign[i]);
    assert_int_equal(ec_ordinal_of_peer_url(&s, NULL), -1);
    ec_spec_clear(&s);
}

/* ---- builders ---- */

static void test_labels(void **state)
{
    struct ec_spec s;
    cJSON *l;

    (void)state;
    parse_file("cluster_min.json", &s);
    l = ec_labels(&s);
    assert_int_equal(cJSON_GetArraySize(l), 4);
    assert_string_equal(cJSON_GetObjectItem(l, "app.kubernetes.io/name")->valuestring, "cetcd");
    assert_string_equal(cJSON_GetObjectItem(l, "app.kubernetes.io/instance")->valuestring,
                        "etcd3");
    assert_string_equal(cJSON_GetObjectItem(l, "app.kubernetes.io/managed-by")->valuestring,
                        "cetcd-operator");
    assert_string_equal(cJSON_GetObjectItem(l, "cls")->valuestring, "etcd3");
    cJSON_Delete(l);
    ec_spec_clear(&s);
}

static void test_build_services(void **state)
{
    struct ec_spec s;
    cJSON *o;

    (void)state;
    parse_file("cluster_min.json", &s);
    o = ec_build_client_service(&s);
    assert_json_file(o, "client_service.json");
    cJSON_Delete(o);
    o = ec_build_headless_service(&s);
    assert_json_file(o, "headless_service.json");
    cJSON_Delete(o);
    ec_spec_clear(&s);
}

static void test_build_pdb(void **state)
{
    struct ec_spec s;
    cJSON *o;

    (void)state;
    parse_file("cluster_min.json", &s);
    o = ec_build_pdb(&s);
    assert_json_file(o, "pdb.json");
    cJSON_Delete(o);
    ec_spec_clear(&s);
    parse_file("cluster_full.json", &s);
    o = ec_build_pdb(&s);
    assert_json_file(o, "pdb_full.json");
    cJSON_Delete(o);
    ec_spec_clear(&s);
    /* minAvailable is a majority for every allowed size */
    parse_file("cluster_emptydir.json", &s);
    for (int size = 1; size <= 7; size += 2) {
        s.size = size;
        o = ec_build_pdb(&s);
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "spec"), "minAvailable")
                             ->valueint, size / 2 + 1);
        cJSON_Delete(o);
    }
    ec_spec_clear(&s);
}

static void test_build_configmap(void **state)
{
    struct ec_spec s;
    cJSON *data = cJSON_CreateObject(), *o;
    char *text;

    (void)state;
    parse_file("cluster_min.json", &s);
    /* given out of order, with one non-string value that is not an entry */
    cJSON_AddStringToObject(data, "etcd3-1",
                            "initial-cluster-state=existing\ninitial-cluster=etcd3-0=http://"
                            "etcd3-0.etcd3-peer.db.svc:2380,etcd3-1=http://etcd3-1.etcd3-peer.db"
                            ".svc:2380\njoined=false\n");
    cJSON_AddNumberToObject(data, "bogus", 1);
    cJSON_AddStringToObject(data, "etcd3-0",
                            "initial-cluster-state=new\ninitial-cluster=etcd3-0=http://etcd3-0."
                            "etcd3-peer.db.svc:2380\njoined=true\n");
    o = ec_build_configmap(&s, data);
    assert_json_file(o, "configmap.json");
    /* keys sorted, whatever the input order */
    text = cJSON_PrintUnformatted(cJSON_GetObjectItem(o, "data"));
    assert_true(strstr(text, "\"etcd3-0\"") < strstr(text, "\"etcd3-1\""));
    free(text);
    cJSON_Delete(o);
    cJSON_Delete(data);
    /* no entries yet: an empty data map */
    o = ec_build_configmap(&s, NULL);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(o, "data")));
    assert_null(cJSON_GetObjectItem(o, "data")->child);
    cJSON_Delete(o);
    ec_spec_clear(&s);
}

/* ---- spec.tls, spec.auth ---- */

static void test_tls_parse_and_names(void **state)
{
    struct ec_spec s;
    char buf[EC_NAME_MAX], err[256];

    (void)state;
    parse_file("cluster_tls.json", &s);
    assert_true(s.tls.enabled);
    assert_string_equal(s.tls.ca_secret, "etcd3-ca");
    assert_string_equal(s.tls.server_secret, "etcd3-server-tls");
    assert_string_equal(s.tls.peer_secret, "etcd3-peer-tls");
    assert_string_equal(s.tls.client_secret, "etcd3-client-tls");
    assert_string_equal(s.auth.root_secret, "etcd3-root");
    assert_string_equal(ec_peer_url(&s, 1, buf, sizeof(buf)), "https://etcd3-1.etcd3-peer.db.svc:2380");
    assert_string_equal(ec_client_url(&s, 2, buf, sizeof(buf)), "https://etcd3-2.etcd3-peer.db.svc:2379");
    assert_int_equal(ec_ordinal_of_peer_url(&s, "https://etcd3-1.etcd3-peer.db.svc:2380"), 1);
    assert_int_equal(ec_ordinal_of_peer_url(&s, "http://etcd3-1.etcd3-peer.db.svc:2380"), -1);
    ec_spec_clear(&s);
    /* the user's own three Secrets, used as named */
    assert_int_equal(parse_text("{" MD ",\"spec\":{\"tls\":{\"serverSecret\":\"a\",\"peerSecret\":"
                                "\"b\",\"clientSecret\":\"c\"}}}", &s, err, sizeof(err)), 0);
    assert_null(s.tls.ca_secret);
    assert_string_equal(ec_tls_secret_name(&s, EC_TLS_SERVER), "a");
    assert_string_equal(ec_tls_secret_name(&s, EC_TLS_PEER), "b");
    assert_string_equal(ec_tls_secret_name(&s, EC_TLS_CLIENT), "c");
    ec_spec_clear(&s);
}

static void test_tls_profiles(void **state)
{
    struct ec_spec s;
    struct ec_tls_profile p;

    (void)state;
    parse_file("cluster_tls.json", &s);
    ec_tls_profile(&s, EC_TLS_SERVER, &p);
    assert_string_equal(p.cn, "etcd3");
    assert_true(p.server && p.client);
    assert_int_equal(p.n_sans, 8);
    assert_string_equal(p.sans[0], "*.etcd3-peer.db.svc");
    assert_string_equal(p.sans[1], "*.etcd3-peer.db.svc.cluster.local");
    assert_string_equal(p.sans[2], "etcd3");
    assert_string_equal(p.sans[4], "etcd3.db.svc");
    assert_string_equal(p.sans[7], "127.0.0.1");
    ec_tls_profile(&s, EC_TLS_PEER, &p);
    assert_string_equal(p.cn, "etcd3-peer");
    assert_int_equal(p.n_sans, 2);
    ec_tls_profile(&s, EC_TLS_CLIENT, &p);
    assert_string_equal(p.cn, "root"); /* client-cert-auth takes the CN as the user */
    assert_true(p.client && !p.server);
    assert_int_equal(p.n_sans, 0);
    ec_spec_clear(&s);
}

static void test_build_statefulset_tls(void **state)
{
    struct ec_spec s;
    cJSON *o;

    (void)state;
    parse_file("cluster_tls.json", &s);
    o = ec_build_statefulset(&s, 3);
    assert_json_file(o, "statefulset_tls.json");
    cJSON_Delete(o);
    ec_spec_clear(&s);
}

static void test_build_tls_secret(void **state)
{
    struct ec_spec s;
    cJSON *o;

    (void)state;
    parse_file("cluster_tls.json", &s);
    o = ec_build_tls_secret(&s, EC_TLS_PEER, "CA", "CERT", "KEY");
    assert_string_equal(cJSON_GetObjectItem(o, "type")->valuestring, "kubernetes.io/tls");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "name")->valuestring,
                        "etcd3-peer-tls");
    cJSON *data = cJSON_GetObjectItem(o, "data");
    assert_string_equal(cJSON_GetObjectItem(data, "ca.crt")->valuestring, "Q0E=");
    assert_string_equal(cJSON_GetObjectItem(data, "tls.crt")->valuestring, "Q0VSVA==");
    assert_string_equal(cJSON_GetObjectItem(data, "tls.key")->valuestring, "S0VZ");
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "ownerReferences"));
    cJSON_Delete(o);
    ec_spec_clear(&s);
}

static void test_build_statefulset(void **state)
{
    struct ec_spec s;
    cJSON *o;

    (void)state;
    parse_file("cluster_min.json", &s);
    o = ec_build_statefulset(&s, 3);
    assert_json_file(o, "statefulset.json");
    cJSON_Delete(o);
    ec_spec_clear(&s);

    /* replicas is the argument, not spec.size (5) */
    parse_file("cluster_full.json", &s);
    o = ec_build_statefulset(&s, 4);
    assert_json_file(o, "statefulset_full.json");
    cJSON_Delete(o);
    ec_spec_clear(&s);

    parse_file("cluster_emptydir.json", &s);
    o = ec_build_statefulset(&s, 1);
    assert_json_file(o, "statefulset_emptydir.json");
    cJSON_Delete(o);
    ec_spec_clear(&s);
}

static void test_build_empty_user_maps_omitted(void **state)
{
    struct ec_spec s;
    char err[256];
    cJSON *o, *tpl;

    (void)state;
    assert_int_equal(parse_text("{" MD ",\"spec\":{\"resources\":{},\"podTemplate\":{"
                                "\"labels\":{},\"annotations\":{},\"nodeSelector\":{},"
                                "\"tolerations\":[],\"affinity\":{},\"priorityClassName\":\"\"}"
                                ",\"options\":{\"extraArgs\":[]}}}", &s, err, sizeof(err)), 0);
    o = ec_build_statefulset(&s, 3);
    assert_json_file(o, "statefulset.json"); /* same as with none of them */
    tpl = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "spec"), "template");
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(tpl, "metadata"), "annotations"));
    cJSON_Delete(o);
    ec_spec_clear(&s);
}

/* Same spec, same bytes: the reconciler and the tests rely on a fixed key order. */
static void test_build_deterministic(void **state)
{
    cJSON *(*const one[])(const struct ec_spec *) = {
        ec_build_client_service, ec_build_headless_service, ec_build_pdb, ec_labels,
    };
    struct ec_spec s;
    cJSON *a, *b;

    (void)state;
    parse_file("cluster_full.json", &s);
    for (size_t i = 0; i <= sizeof(one) / sizeof(one[0]); i++) {
        a = i < sizeof(one) / sizeof(one[0]) ? one[i](&s) : ec_build_statefulset(&s, 5);
        b = i < sizeof(one) / sizeof(one[0]) ? one[i](&s) : ec_build_statefulset(&s, 5);
        jsonfile_assert_same_print(a, b);
    }
    ec_spec_clear(&s);
}

/* ---- ec_owned_fields_equal ---- */

static cJSON *at(cJSON *o, const char *path)
{
    char key[128];
    const char *p = path;

    while (o && *p) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        if (key[0] >= '0' && key[0] <= '9')
            o = cJSON_GetArrayItem(o, atoi(key));
        else
            o = cJSON_GetObjectItemCaseSensitive(o, key);
        p += n + (p[n] == '.');
    }
    return o;
}

static void set_str(cJSON *o, const char *path, const char *key, const char *v)
{
    cJSON *parent = at(o, path);

    assert_non_null(parent);
    cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
    assert_non_null(cJSON_AddStringToObject(parent, key, v));
}

static void set_num(cJSON *o, const char *path, const char *key, double v)
{
    cJSON *parent = at(o, path);

    assert_non_null(parent);
    cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
    assert_non_null(cJSON_AddNumberToObject(parent, key, v));
}

/* What an API server returns for a created StatefulSet: defaults and bookkeeping added. */
static cJSON *live_statefulset(const cJSON *built)
{
    cJSON *o = cJSON_Duplicate(built, true);
    cJSON *c = at(o, "spec.template.spec.containers.0");

    set_str(o, "metadata", "resourceVersion", "12345");
    set_str(o, "metadata", "uid", "live-uid");
    set_str(o, "metadata.labels", "added-by-someone", "x");
    set_num(o, "metadata", "generation", 2);
    set_num(o, "spec", "revisionHistoryLimit", 10);
    set_num(o, "spec.updateStrategy", "x-partition", 0);
    cJSON_AddObjectToObject(at(o, "spec.template.metadata"), "creationTimestamp");
    set_str(o, "spec.template.spec", "restartPolicy", "Always");
    set_str(o, "spec.template.spec", "dnsPolicy", "ClusterFirst");
    set_str(c, "", "terminationMessagePath", "/dev/termination-log");
    set_str(c, "", "imagePullPolicy", "IfNotPresent");
    set_str(c, "env.0.valueFrom.fieldRef", "apiVersion", "v1");
    set_num(c, "readinessProbe", "timeoutSeconds", 1);
    set_num(c, "readinessProbe", "successThreshold", 1);
    set_num(o, "spec.template.spec.volumes.0.configMap", "defaultMode", 420);
    cJSON_AddItemToObject(o, "status", cJSON_Parse("{\"replicas\":3,\"readyReplicas\":2}"));
    return o;
}

static void test_equal_tolerates_server_defaults(void **state)
{
    struct ec_spec s;
    cJSON *want, *have, *res;

    (void)state;
    parse_file("cluster_full.json", &s);
    want = ec_build_statefulset(&s, 5);
    assert_true(ec_owned_fields_equal(want, want));
    have = live_statefulset(want);
    assert_true(ec_owned_fields_equal(want, have));
    /* the server rewrites quantities into canonical form */
    res = at(have, "spec.template.spec.containers.0.resources");
    set_str(res, "requests", "cpu", "500m");
    set_str(res, "limits", "memory", "1024Mi");
    set_str(have, "spec.volumeClaimTemplates.0.spec.resources.requests", "storage", "10240Mi");
    assert_true(ec_owned_fields_equal(want, have));
    /* and drops Go zero values: false, 0, "" */
    cJSON_DeleteItemFromObject(at(have, "spec.template.spec.containers.0.securityContext"),
                               "allowPrivilegeEscalation");
    cJSON_DeleteItemFromObject(at(have, "spec.template.spec"), "enableServiceLinks");
    assert_true(ec_owned_fields_equal(want, have));
    cJSON_Delete(have);
    cJSON_Delete(want);
    ec_spec_clear(&s);
}

static void test_equal_services(void **state)
{
    struct ec_spec s;
    cJSON *want, *have;

    (void)state;
    parse_file("cluster_min.json", &s);
    want = ec_build_client_service(&s);
    have = cJSON_Duplicate(want, true);
    set_str(have, "spec", "clusterIP", "10.96.0.17");
    cJSON_AddItemToObject(at(have, "spec"), "clusterIPs", cJSON_Parse("[\"10.96.0.17\"]"));
    set_str(have, "spec", "sessionAffinity", "None");
    assert_true(ec_owned_fields_equal(want, have));
    /* a changed port is a difference */
    set_num(have, "spec.ports.0", "port", 2479);
    assert_false(ec_owned_fields_equal(want, have));
    cJSON_Delete(have);
    cJSON_Delete(want);
    want = ec_build_headless_service(&s);
    have = cJSON_Duplicate(want, true);
    set_str(have, "spec.ports.1", "targetPort", "2380");
    assert_false(ec_owned_fields_equal(want, have)); /* a string is not a quantity here */
    cJSON_Delete(have);
    cJSON_Delete(want);
    ec_spec_clear(&s);
}

typedef void (*mutate_fn)(cJSON *have);

static void m_replicas(cJSON *h) { set_num(h, "spec", "replicas", 4); }
static void m_image(cJSON *h) { set_str(h, "spec.template.spec.containers.0", "image", "x:1"); }
static void m_env_value(cJSON *h)
{
    set_str(h, "spec.template.spec.containers.0.env.9", "value", "/elsewhere");
}
/* the same number, spelled differently: only quantities compare by value */
static void m_env_spelling(cJSON *h)
{
    set_str(h, "spec.template.spec.containers.0.env.10", "value", "2e2");
}
static void m_env_extra(cJSON *h)
{
    cJSON_AddItemToArray(at(h, "spec.template.spec.containers.0.env"),
                         cJSON_Parse("{\"name\":\"X\",\"value\":\"1\"}"));
}
static void m_env_missing(cJSON *h)
{
    cJSON_DeleteItemFromArray(at(h, "spec.template.spec.containers.0.env"), 3);
}
static void m_label_missing(cJSON *h) { cJSON_DeleteItemFromObject(at(h, "metadata.labels"), "cls"); }
static void m_label_value(cJSON *h) { set_str(h, "metadata.labels", "cls", "other"); }
static void m_labels_gone(cJSON *h) { cJSON_DeleteItemFromObject(at(h, "metadata"), "labels"); }
static void m_owner_missing(cJSON *h)
{
    cJSON_DeleteItemFromObject(at(h, "metadata"), "ownerReferences");
}
static void m_owner_other(cJSON *h) { set_str(h, "metadata.ownerReferences.0", "uid", "zzz"); }
static void m_owner_flag(cJSON *h)
{
    cJSON_ReplaceItemInObject(at(h, "metadata.ownerReferences.0"), "controller",
                              cJSON_CreateFalse());
}
static void m_cpu(cJSON *h)
{
    set_str(h, "spec.template.spec.containers.0.resources.requests", "cpu", "600m");
}
static void m_type(cJSON *h) { set_str(h, "spec", "replicas", "5"); }
static void m_spec_gone(cJSON *h) { cJSON_DeleteItemFromObject(h, "spec"); }
static void m_toleration(cJSON *h)
{
    set_str(h, "spec.template.spec.tolerations.0", "effect", "NoExecute");
}
static void m_true_dropped(cJSON *h)
{
    cJSON_DeleteItemFromObject(at(h, "spec.template.spec.securityContext"), "runAsNonRoot");
}

static void test_equal_sees_differences(void **state)
{
    static const struct {
        const char *what;
        mutate_fn fn;
    } cases[] = {
        {"replicas", m_replicas}, {"image", m_image}, {"env value", m_env_value},
        {"env spelling", m_env_spelling},
        {"extra env", m_env_extra}, {"missing env", m_env_missing},
        {"missing label", m_label_missing}, {"label value", m_label_value},
        {"no labels", m_labels_gone}, {"no owner refs", m_owner_missing},
        {"other owner", m_owner_other}, {"owner not controller", m_owner_flag},
        {"cpu quantity", m_cpu}, {"number vs string", m_type}, {"no spec", m_spec_gone},
        {"toleration", m_toleration}, {"true dropped", m_true_dropped},
    };
    struct ec_spec s;
    cJSON *want, *have;

    (void)state;
    parse_file("cluster_full.json", &s);
    want = ec_build_statefulset(&s, 5);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        have = live_statefulset(want);
        cases[i].fn(have);
        if (ec_owned_fields_equal(want, have))
            fail_msg("%s: not seen as a difference", cases[i].what);
        cJSON_Delete(have);
    }
    assert_false(ec_owned_fields_equal(want, NULL));
    assert_false(ec_owned_fields_equal(NULL, want));
    cJSON_Delete(want);
    ec_spec_clear(&s);
}

static void test_equal_configmap_data_exact(void **state)
{
    struct ec_spec s;
    cJSON *data = cJSON_Parse("{\"etcd3-0\":\"joined=true\\n\"}");
    cJSON *want, *have;

    (void)state;
    parse_file("cluster_min.json", &s);
    want = ec_build_configmap(&s, data);
    have = cJSON_Duplicate(want, true);
    set_str(have, "metadata", "resourceVersion", "7");
    assert_true(ec_owned_fields_equal(want, have));
    set_str(have, "data", "etcd3-1", "joined=false\n"); /* a stale entry */
    assert_false(ec_owned_fields_equal(want, have));
    cJSON_DeleteItemFromObject(at(have, "data"), "etcd3-1");
    set_str(have, "data", "etcd3-0", "joined=false\n");
    assert_false(ec_owned_fields_equal(want, have));
    cJSON_DeleteItemFromObject(have, "data");
    assert_false(ec_owned_fields_equal(want, have));
    cJSON_Delete(have);
    cJSON_Delete(want);
    /* an empty map matches a live ConfigMap without data (the server omits it) */
    want = ec_build_configmap(&s, NULL);
    have = cJSON_Duplicate(want, true);
    cJSON_DeleteItemFromObject(have, "data");
    assert_true(ec_owned_fields_equal(want, have));
    cJSON_Delete(have);
    cJSON_Delete(want);
    cJSON_Delete(data);
    ec_spec_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_parse_image_and_storage),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_parse_even_size_explains),
        cmocka_unit_test(test_parse_small_err_buffer),
        cmocka_unit_test(test_quantity),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ordinal_of_peer_url),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_build_services),
        cmocka_unit_test(test_build_pdb),
        cmocka_unit_test(test_build_configmap),
        cmocka_unit_test(test_build_statefulset),
        cmocka_unit_test(test_tls_parse_and_names),
        cmocka_unit_test(test_tls_profiles),
        cmocka_unit_test(test_build_statefulset_tls),
        cmocka_unit_test(test_build_tls_secret),
        cmocka_unit_test(test_build_empty_user_maps_omitted),
        cmocka_unit_test(test_build_deterministic),
        cmocka_unit_test(test_equal_tolerates_server_defaults),
        cmocka_unit_test(test_equal_services),
        cmocka_unit_test(test_equal_sees_differences),
        cmocka_unit_test(test_equal_configmap_data_exact),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
