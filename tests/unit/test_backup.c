/*
 * test_backup.c: the operator's backups and restores that need no API server: spec.backup and
 * spec.restore parsing (controller/resources/spec.c), cron schedules, the CronJob, Job, PVC and
 * restore StatefulSet builders (controller/resources/backup.c, build.c), the result line of
 * `cetcdctl snapshot save --result-file` and status.backup with its condition
 * (controller/backup_status.c).
 *
 * Built objects are compared whole with hand-written files in tests/unit/data/backup/ (and
 * data/resources/ for the shared base), through jsonfile.h. status_cases.json holds the
 * status.backup cases: each one an old status.backup, the Jobs and pods seen, the request
 * handled, and the expected status.backup and condition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "err.h"
#include "jsonfile.h"
#include "resources/resources.h"

#define DATA_ENV "BACKUP_DATA_DIR"

static void parse_file(const char *file, struct ec_spec *s)
{
    char err[512];
    cJSON *obj = jsonfile_load(DATA_ENV, "backup", file);
    int rc = ec_spec_parse(obj, s, err, sizeof(err));

    if (rc)
        fail_msg("%s: %s", file, err);
    cJSON_Delete(obj);
}

static int parse_spec(const char *name, const char *spec, struct ec_spec *s, char *err,
                      size_t errsz)
{
    char text[2048];
    cJSON *obj;
    int rc;

    snprintf(text, sizeof(text), "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"db\","
             "\"uid\":\"u-1\"},\"spec\":%s}", name, spec);
    obj = cJSON_Parse(text);
    if (!obj)
        fail_msg("bad test JSON: %s", text);
    rc = ec_spec_parse(obj, s, err, errsz);
    cJSON_Delete(obj);
    return rc;
}

/* ---- spec.backup, spec.restore ---- */

static void test_parse_backup(void **state)
{
    struct ec_spec s;
    char err[512];

    (void)state;
    parse_file("cluster_backup.json", &s);
    assert_true(s.backup.enabled);
    assert_string_equal(s.backup.schedule, "0 3 * * *");
    assert_int_equal(s.backup.retention, 5);
    assert_false(s.backup.suspend);
    assert_null(s.backup.existing_claim);
    assert_string_equal(s.backup.storage_size, "5Gi");
    assert_string_equal(s.backup.storage_class, "slow");
    assert_null(s.restore.claim_name);
    ec_spec_clear(&s);

    /* defaults: retention 7, not suspended; an existing claim instead of a size */
    assert_int_equal(parse_spec("a", "{\"backup\":{\"schedule\":\"@daily\",\"storage\":"
                                "{\"existingClaim\":\"nfs-backups\"}}}", &s, err, sizeof(err)), 0);
    assert_int_equal(s.backup.retention, 7);
    assert_false(s.backup.suspend);
    assert_string_equal(s.backup.existing_claim, "nfs-backups");
    assert_null(s.backup.storage_size);
    ec_spec_clear(&s);

    /* no spec.backup: disabled */
    assert_int_equal(parse_spec("a", "{}", &s, err, sizeof(err)), 0);
    assert_false(s.backup.enabled);
    assert_null(s.backup.schedule);
    ec_spec_clear(&s);
}

static void test_parse_restore(void **state)
{
    struct ec_spec s;
    char err[512], buf[256];

    (void)state;
    parse_file("cluster_restore.json", &s);
    assert_string_equal(s.restore.claim_name, "old-backup");
    assert_string_equal(s.restore.file, "old-20240501T030000Z-r42.db");
    assert_string_equal(ec_restore_path(&s, buf, sizeof(buf)),
                        "/restore/old-20240501T030000Z-r42.db");
    ec_spec_clear(&s);

    assert_int_equal(parse_spec("a", "{\"restore\":{\"claimName\":\"nfs.claims-1\",\"file\":"
                                "\"2024/05/a_b-c.db\"}}", &s, err, sizeof(err)), 0);
    assert_string_equal(ec_restore_path(&s, buf, sizeof(buf)), "/restore/2024/05/a_b-c.db");
    ec_spec_clear(&s);
}

/* Each refusal names the field and why. */
static void test_parse_refusals(void **state)
{
    static const struct {
        const char *name, *spec, *msg;
    } cases[] = {
        {"a", "{\"backup\":{\"storage\":{\"size\":\"1Gi\"}}}", "spec.backup.schedule: missing"},
        {"a", "{\"backup\":{\"schedule\":\"0 3 * *\",\"storage\":{\"size\":\"1Gi\"}}}",
         "spec.backup.schedule: \"0 3 * *\": 4 fields"},
        {"a", "{\"backup\":{\"schedule\":\"61 3 * * *\",\"storage\":{\"size\":\"1Gi\"}}}",
         "minute \"61\": out of range (0..59)"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\"}}", "spec.backup.storage: missing"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\",\"storage\":{}}}",
         "spec.backup.storage: set exactly one of existingClaim"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\",\"storage\":{\"size\":\"1Gi\","
              "\"existingClaim\":\"c\"}}}", "spec.backup.storage: set exactly one"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\",\"storage\":{\"existingClaim\":\"c\","
              "\"storageClassName\":\"x\"}}}", "storageClassName goes with size"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\",\"storage\":{\"existingClaim\":\"Bad_Name\"}}}",
         "spec.backup.storage.existingClaim: \"Bad_Name\" is not a valid claim name"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\",\"storage\":{\"size\":\"1GB\"}}}",
         "spec.backup.storage.size: \"1GB\" is not a quantity"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\",\"retention\":0,\"storage\":{\"size\":1}}}",
         "spec.backup.retention: must be an integer from 1 to 10000"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\",\"suspend\":\"yes\",\"storage\":{\"size\":1}}}",
         "spec.backup.suspend: must be true or false"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\",\"storage\":{\"size\":1},\"keep\":3}}",
         "spec.backup.keep: unknown field"},
        {"a", "{\"backup\":{\"schedule\":\"@daily\",\"storage\":{\"size\":1,\"class\":\"x\"}}}",
         "spec.backup.storage.class: unknown field"},
        {"a", "{\"backup\":[]}", "spec.backup: must be an object"},
        {"abcdefghij-abcdefghij-abcdefghij-abcdefghij-xy",
         "{\"backup\":{\"schedule\":\"@daily\",\"storage\":{\"size\":1}}}",
         "metadata.name: \"abcdefghij-abcdefghij-abcdefghij-abcdefghij-xy\" is longer than 45"},
        {"a", "{\"restore\":{\"claimName\":\"c\"}}", "spec.restore: claimName and file are both"},
        {"a", "{\"restore\":{\"file\":\"x.db\"}}", "spec.restore: claimName and file are both"},
        {"a", "{\"restore\":{\"claimName\":\"c\",\"file\":\"../x.db\"}}",
         "spec.restore.file: \"../x.db\" must be a path inside the claim"},
        {"a", "{\"restore\":{\"claimName\":\"c\",\"file\":\"/x.db\"}}", "spec.restore.file"},
        {"a", "{\"restore\":{\"claimName\":\"c\",\"file\":\"a//x.db\"}}", "spec.restore.file"},
        {"a", "{\"restore\":{\"claimName\":\"c\",\"file\":\"a/./x.db\"}}", "spec.restore.file"},
        {"a", "{\"restore\":{\"claimName\":\"c\",\"file\":\"a/\"}}", "spec.restore.file"},
        {"a", "{\"restore\":{\"claimName\":\"c\",\"file\":\"x y.db\"}}", "spec.restore.file"},
        {"a", "{\"restore\":{\"claimName\":\"c.\",\"file\":\"x.db\"}}",
         "spec.restore.claimName: \"c.\" is not a valid claim name"},
        {"a", "{\"restore\":{\"claimName\":\"c\",\"file\":\"x.db\",\"at\":1}}",
         "spec.restore.at: unknown field"},
    };
    struct ec_spec s;
    char err[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse_spec(cases[i].name, cases[i].spec, &s, err, sizeof(err));
        if (rc != CE_INVAL || !strstr(err, cases[i].msg))
            fail_msg("spec %s: rc %d, error \"%s\", want one containing \"%s\"", cases[i].spec,
                     rc, err, cases[i].msg);
        assert_null(s.name); /* left cleared */
    }
}

static void test_cron(void **state)
{
    static const char *const good[] = {
        "0 3 * * *", "*/15 * * * *", "0 0 1 jan,JUL *", "0 0 * * mon-fri", "5,10-20/5 1 1-31 * ?",
        "  0   3 * * *  ", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
        "@hourly", "0 0 30 2 *", "1/5 * * * *",
    };
    static const struct {
        const char *expr, *msg;
    } bad[] = {
        {"", "0 fields"},
        {"* * * *", "4 fields"},
        {"* * * * * *", "more than five fields"},
        {"@every 1h", "use five fields"},
        {"TZ=UTC 0 3 * * *", "use five fields"},
        {"60 * * * *", "minute \"60\": out of range (0..59)"},
        {"0 24 * * *", "hour \"24\": out of range (0..23)"},
        {"0 0 0 * *", "day of month \"0\": out of range (1..31)"},
        {"0 0 * 13 *", "month \"13\": out of range (1..12)"},
        {"0 0 * * 7", "day of week \"7\": out of range (0..6)"},
        {"5-1 * * * *", "the range ends before it starts"},
        {"*/0 * * * *", "the step must be a positive number"},
        {"1,,2 * * * *", "an empty list element"},
        {"a * * * *", "minute \"a\": not a number, '*' or a range"},
        {"0 0 * foo *", "month \"foo\": not a number, a name, '*' or a range"},
        {"0 0 * * sun-", "day of week \"sun-\""},
    };
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!ec_cron_check(good[i], err, sizeof(err)))
            fail_msg("\"%s\" refused: %s", good[i], err);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = 0;
        if (ec_cron_check(bad[i].expr, err, sizeof(err)) || !strstr(err, bad[i].msg))
            fail_msg("\"%s\": error \"%s\", want one containing \"%s\"", bad[i].expr, err,
                     bad[i].msg);
    }
}

/* ---- builders ---- */

static void test_build_cronjob_job_pvc(void **state)
{
    struct ec_spec s;
    char buf[256];
    cJSON *o;

    (void)state;
    parse_file("cluster_backup.json", &s);
    o = ec_build_backup_cronjob(&s);
    jsonfile_assert(o, DATA_ENV, "backup", "cronjob.json");
    cJSON_Delete(o);
    o = ec_build_backup_job(&s, "nightly-2024-05-01", "cj-uid-1");
    jsonfile_assert(o, DATA_ENV, "backup", "backup_job.json");
    cJSON_Delete(o);
    o = ec_build_backup_pvc(&s);
    jsonfile_assert(o, DATA_ENV, "backup", "backup_pvc.json");
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "metadata"), "ownerReferences"));
    cJSON_Delete(o);
    assert_string_equal(ec_backup_name(&s, buf, sizeof(buf)), "etcd3-backup");
    assert_string_equal(ec_backup_claim(&s, buf, sizeof(buf)), "etcd3-backup");
    ec_spec_clear(&s);
}

static const cJSON *path(const cJSON *o, const char *const *keys)
{
    for (; o && *keys; keys++)
        o = (*keys)[0] >= '0' && (*keys)[0] <= '9' ? cJSON_GetArrayItem(o, atoi(*keys))
                                                   : cJSON_GetObjectItemCaseSensitive(o, *keys);
    return o;
}

/* suspend and an existing claim reach the CronJob; the builder is deterministic */
static void test_build_cronjob_variants(void **state)
{
    static const char *const suspend[] = {"spec", "suspend", NULL};
    static const char *const claim[] = {"spec", "jobTemplate", "spec", "template", "spec",
                                        "volumes", "0", "persistentVolumeClaim", "claimName",
                                        NULL};
    static const char *const retention[] = {"spec", "jobTemplate", "spec", "template", "spec",
                                            "containers", "0", "args", "8", NULL};
    struct ec_spec s;
    char err[256], buf[256];
    cJSON *a, *b;

    (void)state;
    assert_int_equal(parse_spec("etcd", "{\"backup\":{\"schedule\":\"@hourly\",\"suspend\":true,"
                                "\"retention\":12,\"storage\":{\"existingClaim\":\"nfs\"}}}",
                                &s, err, sizeof(err)), 0);
    a = ec_build_backup_cronjob(&s);
    b = ec_build_backup_cronjob(&s);
    assert_true(cJSON_IsTrue(path(a, suspend)));
    assert_string_equal(cJSON_GetStringValue(path(a, claim)), "nfs");
    assert_string_equal(cJSON_GetStringValue(path(a, retention)), "12");
    assert_string_equal(ec_backup_claim(&s, buf, sizeof(buf)), "nfs");
    jsonfile_assert_same_print(a, b);
    ec_spec_clear(&s);
}

/* spec.tls and spec.auth reach the backup container: https, the client Secret mounted and
 * named by ETCDCTL_CACERT/CERT/KEY, root with its password from the Secret */
static void test_build_cronjob_secured(void **state)
{
    static const char *const pod[] = {"spec", "jobTemplate", "spec", "template", "spec", NULL};
    struct ec_spec s;
    char err[256];
    const cJSON *c, *env, *e;
    cJSON *a;
    int found = 0;

    (void)state;
    assert_int_equal(parse_spec("etcd", "{\"backup\":{\"schedule\":\"@daily\",\"storage\":"
                                "{\"size\":\"1Gi\"}},\"tls\":{\"caSecret\":\"ca\"},"
                                "\"auth\":{\"rootSecret\":\"pw\"}}", &s, err, sizeof(err)), 0);
    a = ec_build_backup_cronjob(&s);
    c = cJSON_GetArrayItem(cJSON_GetObjectItem(path(a, pod), "containers"), 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "args"), 0)),
                        "--endpoints=https://etcd.db.svc:2379");
    env = cJSON_GetObjectItem(c, "env");
    cJSON_ArrayForEach(e, env) {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(e, "value"));
        if (!strcmp(n, "ETCDCTL_CERT"))
            found += !strcmp(v, "/etc/cetcd/tls/client/tls.crt");
        if (!strcmp(n, "ETCDCTL_USER"))
            found += !strcmp(v, "root");
        if (!strcmp(n, "ETCDCTL_PASSWORD")) {
            const cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(e, "valueFrom"), "secretKeyRef");
            found += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "name")), "pw") &&
                     !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(ref, "key")), "password");
        }
    }
    assert_int_equal(found, 3);
    e = cJSON_GetArrayItem(cJSON_GetObjectItem(path(a, pod), "volumes"), 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(e, "secret"),
                                                                 "secretName")), "etcd-client-tls");
    e = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "volumeMounts"), 1);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(e, "mountPath")), "/etc/cetcd/tls/client");
    cJSON_Delete(a);
    ec_spec_clear(&s);
}

static void test_job_names(void **state)
{
    struct ec_spec s;
    char err[256], a[256], b[256];

    (void)state;
    /* the longest name spec.backup allows: 45 characters; the Job name fits 63 */
    assert_int_equal(parse_spec("abcdefghij-abcdefghij-abcdefghij-abcdefghij-x",
                                "{\"backup\":{\"schedule\":\"@daily\",\"storage\":{\"size\":1}}}",
                                &s, err, sizeof(err)), 0);
    ec_backup_job_name(&s, "t1", a, sizeof(a));
    assert_int_equal(strlen(a), 63);
    assert_string_equal(ec_backup_job_name(&s, "t1", b, sizeof(b)), a); /* stable */
    assert_string_not_equal(ec_backup_job_name(&s, "t2", b, sizeof(b)), a);
    assert_int_equal(strncmp(a, "abcdefghij-abcdefghij-abcdefghij-abcdefghij-x-backup-now-", 57),
                     0);
    ec_spec_clear(&s);
}

static void test_build_restore_statefulset(void **state)
{
    static const char *const policy[] = {"spec", "template", "spec", "containers", "0",
                                         "terminationMessagePolicy", NULL};
    struct ec_spec s;
    cJSON *o;

    (void)state;
    parse_file("cluster_restore.json", &s);
    o = ec_build_statefulset(&s, 3);
    jsonfile_assert(o, DATA_ENV, "backup", "statefulset_restore.json");
    /* a member that refuses its restore file shows why in its pod status */
    assert_string_equal(cJSON_GetStringValue(path(o, policy)), "FallbackToLogsOnError");
    cJSON_Delete(o);
    ec_spec_clear(&s);
}

/* ---- the result line ---- */

#define SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static void test_result_parse(void **state)
{
    static const char *const invalid[] = {
        NULL, "", "not json", "[]", "{}", "{\"error\":1}", "{\"error\":\"\"}",
        "{\"file\":\"a.db\",\"revision\":1,\"size\":2,\"sha256\":\"" SHA "\"}", /* no time */
        "{\"file\":\"d/a.db\",\"revision\":1,\"size\":2,\"sha256\":\"" SHA "\",\"time\":\"t\"}",
        "{\"file\":\"a.db\",\"revision\":-1,\"size\":2,\"sha256\":\"" SHA "\",\"time\":\"t\"}",
        "{\"file\":\"a.db\",\"revision\":1.5,\"size\":2,\"sha256\":\"" SHA "\",\"time\":\"t\"}",
        "{\"file\":\"a.db\",\"revision\":1,\"size\":\"2\",\"sha256\":\"" SHA "\",\"time\":\"t\"}",
        "{\"file\":\"a.db\",\"revision\":1,\"size\":2,\"sha256\":\"abc\",\"time\":\"t\"}",
        "{\"file\":\"a.db\",\"revision\":1,\"size\":2,\"sha256\":\"" SHA "0\",\"time\":\"t\"}",
        "{\"file\":\"\",\"revision\":1,\"size\":2,\"sha256\":\"" SHA "\",\"time\":\"t\"}",
    };
    struct backup_result r;
    char big[4096], *p;

    (void)state;
    assert_int_equal(backup_result_parse(
                         "{\"file\":\"etcd3-20240501T030002Z-r1234.db\",\"revision\":1234,"
                         "\"size\":2101280,\"sha256\":\"" SHA "\",\"time\":\"2024-05-01T03:00:02Z\","
                         "\"deleted\":[\"x\"]}\n", &r), 0);
    assert_true(r.ok);
    assert_string_equal(r.file, "etcd3-20240501T030002Z-r1234.db");
    assert_int_equal(r.revision, 1234);
    assert_int_equal(r.size, 2101280);
    assert_string_equal(r.sha256, SHA);
    assert_string_equal(r.time, "2024-05-01T03:00:02Z");

    assert_int_equal(backup_result_parse("{\"error\":\"dial tcp:\\n\\tconnection refused \"}",
                                         &r), 0);
    assert_false(r.ok);
    assert_string_equal(r.error, "dial tcp: connection refused");

    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        if (backup_result_parse(invalid[i], &r) != CE_INVAL)
            fail_msg("accepted: %s", invalid[i] ? invalid[i] : "(null)");
        assert_false(r.ok);
        assert_string_equal(r.file, "");
    }

    /* a long error is cut below BACKUP_MESSAGE_MAX bytes, never inside a UTF-8 character */
    p = big + snprintf(big, sizeof(big), "{\"error\":\"");
    for (int i = 0; i < 300; i++)
        p += snprintf(p, 4, "\xc3\xa9"); /* é, two bytes */
    snprintf(p, 3, "\"}");
    assert_int_equal(backup_result_parse(big, &r), 0);
    assert_true(strlen(r.error) < BACKUP_MESSAGE_MAX);
    assert_int_equal(strlen(r.error) % 2, 0);
    assert_int_equal(strlen(r.error), BACKUP_MESSAGE_MAX - 2);
}

/* The cause in a log tail: the first of the error lines that end it, timestamp and level cut. */
static void test_exit_cause(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"2026-11-21T04:30:08.008Z info  node: starting\n"
         "2026-11-21T04:30:08.008Z error node: member r-0 cannot restore from /restore/bad.db: "
         "snapshot file is corrupt: sha256 checksum mismatch\n"
         "2026-11-21T04:30:08.009Z error cetcd: etcdserver: invalid argument\n",
         "node: member r-0 cannot restore from /restore/bad.db: snapshot file is corrupt: sha256 "
         "checksum mismatch"},
        {"starting\nError: snapshot save: no space left on device\n\n",
         "Error: snapshot save: no space left on device"},
        {"2024-01-01T00:00:00Z warn w\n2024-01-01T00:00:01Z error e1\n"
         "2024-01-01T00:00:02Z fatal e2", "e1"},
        {"2024-01-01T00:00:00Z error e0\n2024-01-01T00:00:01Z info stopping\n", "stopping"},
        {"only line", "only line"},
        {"2024-05-01 not a timestamp", "2024-05-01 not a timestamp"},
        {"\n\n  \n", ""},
        {"", ""},
    };
    char got[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        backup_exit_cause(cases[i].text, got, sizeof(got));
        if (strcmp(got, cases[i].want))
            fail_msg("case %zu: \"%s\", want \"%s\"", i, got, cases[i].want);
    }
}

static void test_time_seconds(void **state)
{
    double t = 0;

    (void)state;
    assert_true(backup_time_seconds("2024-05-01T03:00:02Z", &t));
    assert_true(t == 1714532402.0);
    assert_true(backup_time_seconds("1970-01-01T00:00:01.5Z", &t));
    assert_true(t == 1.5);
    assert_false(backup_time_seconds("2024-05-01T03:00:02", &t));      /* no zone */
    assert_false(backup_time_seconds("2024-05-01T03:00:02+02:00", &t)); /* not UTC */
    assert_false(backup_time_seconds("2024-05-01 03:00:02Z", &t));
    assert_false(backup_time_seconds("2024-05-01T03:00:02.Z", &t));
    assert_false(backup_time_seconds("", &t));
    assert_false(backup_time_seconds(NULL, &t));
}

/* ---- status.backup ---- */

static void test_status_cases(void **state)
{
    cJSON *cases = jsonfile_load(DATA_ENV, "backup", "status_cases.json");
    const cJSON *c;
    int n = 0;

    (void)state;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(c, "name"));
        const cJSON *old = cJSON_GetObjectItem(c, "old"), *want = cJSON_GetObjectItem(c, "want");
        const cJSON *cond = cJSON_GetObjectItem(c, "condition");
        const char *handled = cJSON_GetStringValue(cJSON_GetObjectItem(c, "handled"));
        const char *st, *reason;
        char msg[1024];
        cJSON *got;

        fprintf(stderr, "  case: %s\n", name);
        got = backup_status_build(cJSON_IsNull(old) ? NULL : old, cJSON_GetObjectItem(c, "jobs"),
                                  cJSON_GetObjectItem(c, "pods"), handled);
        if (cJSON_IsNull(want))
            assert_null(got);
        else
            jsonfile_assert_equal(got, want, name);
        backup_condition(got, &st, &reason, msg, sizeof(msg));
        assert_string_equal(st, cJSON_GetStringValue(cJSON_GetArrayItem(cond, 0)));
        assert_string_equal(reason, cJSON_GetStringValue(cJSON_GetArrayItem(cond, 1)));
        assert_string_equal(msg, cJSON_GetStringValue(cJSON_GetArrayItem(cond, 2)));
        cJSON_Delete(got);
        n++;
    }
    assert_true(n >= 10);
    cJSON_Delete(cases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_backup),
        cmocka_unit_test(test_parse_restore),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_cron),
        cmocka_unit_test(test_build_cronjob_job_pvc),
        cmocka_unit_test(test_build_cronjob_variants),
        cmocka_unit_test(test_build_cronjob_secured),
        cmocka_unit_test(test_job_names),
        cmocka_unit_test(test_build_restore_statefulset),
        cmocka_unit_test(test_result_parse),
        cmocka_unit_test(test_exit_cause),
        cmocka_unit_test(test_time_seconds),
        cmocka_unit_test(test_status_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
