/*
 * spec.c: reads an EtcdCluster (cetcd.io/v1alpha1) into struct ec_spec, with defaults, and
 * refuses what would build a broken cluster.
 *
 * The CRD schema already types most fields, but the operator does not trust it (an older CRD, a
 * schema without CEL support, a hand-made object in a test): everything is checked again here
 * and a refusal names the field, e.g. "spec.storage.size: \"1GB\" is not a quantity". Rules:
 *   metadata.name       DNS-1035 label of at most 52 characters (so C-peer, the pod names and the
 *                       StatefulSet's controller-revision-hash label stay valid); uid required
 *   metadata.namespace  DNS-1123 label, default "default"
 *   spec.size           1, 3, 5 or 7, default 3 (even sizes refused: see even_size_message)
 *   spec.version/image  image = spec.image, else "cetcd:<version>", else EC_DEFAULT_IMAGE
 *   spec.storage        size: a positive quantity (string or number), default "1Gi";
 *                       storageClassName: string; emptyDir: object (contents not used)
 *   spec.resources      {requests, limits}: maps of name -> non-negative quantity; numbers are
 *                       rewritten as strings so the built objects carry one spelling
 *   spec.podTemplate    labels/annotations/nodeSelector: string maps (labels may not set the
 *                       operator's own keys); affinity: object; tolerations: array of objects;
 *                       priorityClassName: string
 *   spec.options        cetcd's own limits: heartbeatInterval 1..60000 ms, electionTimeout
 *                       1..50000 ms and at least 5 heartbeats, quotaBackendBytes 0..2^43,
 *                       autoCompactionMode periodic|revision, autoCompactionRetention non-empty,
 *                       snapshotCount >= 1, extraArgs strings "--flag[=value]" that do not
 *                       set a flag the operator sets itself
 *   spec.paused         bool
 *   spec.backup         schedule: a CronJob schedule (ec_cron_check), required; retention:
 *                       1..10000, default 7; suspend: bool; storage: exactly one of
 *                       existingClaim (a PVC name) and size (a positive quantity, with an
 *                       optional storageClassName); metadata.name at most EC_BACKUP_NAME_MAX
 *                       characters (the CronJob C-backup's name must fit 52)
 *   spec.restore        claimName: a PVC name; file: a relative path inside it (parts of
 *                       letters, digits, '.', '_', '-'; no "." or ".." part), both required
 *   spec.tls            caSecret alone (the operator issues C-server-tls, C-peer-tls and
 *                       C-client-tls from it), or all of serverSecret, peerSecret and
 *                       clientSecret; Secret names are DNS-1123 subdomains
 *   spec.auth           rootSecret: a Secret name, required
 * Unknown fields inside spec.resources, spec.podTemplate, spec.options, spec.backup,
 * spec.restore, spec.tls and spec.auth are refused (a typo
 * would otherwise be silently ignored); unknown top-level spec fields are ignored, as the API
 * server prunes them anyway. On any refusal *out is left cleared.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "resources/resources.h"

#define NAME_MAX_LEN 52
#define NS_MAX_LEN 63
#define LABEL_VALUE_MAX 63
#define IMAGE_MAX_LEN 512
#define VERSION_MAX_LEN 128
#define MAX_EXTRA_ARGS 64
#define DEFAULT_SIZE 3
#define MAX_SIZE 7
#define DEFAULT_HEARTBEAT_MS 100
#define DEFAULT_ELECTION_MS 1000
#define MAX_HEARTBEAT_MS 60000
#define MAX_ELECTION_MS 50000
#define MAX_QUOTA_BYTES (1LL << 43)
#define MAX_SAFE_INT (1LL << 53)
#define DEFAULT_RETENTION 7
#define MAX_RETENTION 10000
#define SUBDOMAIN_MAX 253
#define RESTORE_FILE_MAX 1024

struct ctx {
    char *err;
    size_t errsz;
};

static int fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct ctx *c, const char *fmt, ...)
{
    va_list ap;

    if (c->err && c->errsz) {
        va_start(ap, fmt);
        vsnprintf(c->err, c->errsz, fmt, ap);
        va_end(ap);
    }
    return CE_INVAL;
}

static const cJSON *get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

static bool absent(const cJSON *v)
{
    return !v || cJSON_IsNull(v);
}

static int dup_str(const char *s, char **out)
{
    *out = strdup(s);
    return *out ? 0 : CE_NOMEM;
}

/* ---- scalar readers: absent leaves *out untouched and returns 0 ---- */

static int read_string(struct ctx *c, const cJSON *v, const char *path, bool nonempty,
                       char **out)
{
    if (absent(v))
        return 0;
    if (!cJSON_IsString(v))
        return fail(c, "%s: must be a string", path);
    if (nonempty && !v->valuestring[0])
        return fail(c, "%s: must not be empty", path);
    free(*out);
    return dup_str(v->valuestring, out);
}

static int read_int(struct ctx *c, const cJSON *v, const char *path, long long lo, long long hi,
                    long long *out)
{
    double d;

    if (absent(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return fail(c, "%s: must be an integer", path);
    d = v->valuedouble;
    if (d != floor(d) || d < (double)lo || d > (double)hi)
        return fail(c, "%s: must be an integer from %lld to %lld (got %g)", path, lo, hi, d);
    *out = (long long)d;
    return 0;
}

static int read_bool(struct ctx *c, const cJSON *v, const char *path, bool *out)
{
    if (absent(v))
        return 0;
    if (!cJSON_IsBool(v))
        return fail(c, "%s: must be true or false", path);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A quantity given as a string or a number, as its string spelling (malloc'd). */
static int read_quantity(struct ctx *c, const cJSON *v, const char *path, bool positive,
                         char **out)
{
    char num[64];
    const char *s;
    long double val;

    if (cJSON_IsString(v)) {
        s = v->valuestring;
    } else if (cJSON_IsNumber(v)) {
        snprintf(num, sizeof(num), "%.15g", v->valuedouble);
        s = num;
    } else {
        return fail(c, "%s: must be a quantity such as \"1Gi\" or \"500m\"", path);
    }
    if (!ec_quantity_parse(s, &val))
        return fail(c, "%s: \"%s\" is not a quantity (examples: \"1Gi\", \"512Mi\", \"500m\")",
                    path, s);
    if (val < 0 || (positive && val == 0))
        return fail(c, "%s: \"%s\" must be %s", path, s, positive ? "positive" : "non-negative");
    free(*out);
    return dup_str(s, out);
}

/* ---- names ---- */

static bool dns_label(const char *s, size_t max, bool letter_first)
{
    size_t n = strlen(s);

    if (n == 0 || n > max || s[n - 1] == '-')
        return false;
    if (letter_first ? !(s[0] >= 'a' && s[0] <= 'z') : s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return false;
    }
    return true;
}

static int parse_metadata(struct ctx *c, const cJSON *md, struct ec_spec *out)
{
    long long gen = 0;
    int rc;

    if (!cJSON_IsObject(md))
        return fail(c, "metadata: missing");
    if (!cJSON_IsString(get(md, "name")))
        return fail(c, "metadata.name: missing");
    if (!dns_label(get(md, "name")->valuestring, NAME_MAX_LEN, true))
        return fail(c, "metadata.name: \"%s\" must be at most %d lower-case letters, digits and "
                    "'-', start with a letter and end with a letter or digit (it names the "
                    "Services, the StatefulSet and its pods)", get(md, "name")->valuestring,
                    NAME_MAX_LEN);
    if ((rc = dup_str(get(md, "name")->valuestring, &out->name)))
        return rc;
    if ((rc = read_string(c, get(md, "namespace"), "metadata.namespace", true, &out->ns)))
        return rc;
    if (!out->ns && (rc = dup_str("default", &out->ns)))
        return rc;
    if (!dns_label(out->ns, NS_MAX_LEN, false))
        return fail(c, "metadata.namespace: \"%s\" is not a valid namespace", out->ns);
    if ((rc = read_string(c, get(md, "uid"), "metadata.uid", true, &out->uid)))
        return rc;
    if (!out->uid)
        return fail(c, "metadata.uid: missing (the owner references need it)");
    if ((rc = read_int(c, get(md, "generation"), "metadata.generation", 0, MAX_SAFE_INT, &gen)))
        return rc;
    out->generation = gen;
    return 0;
}

/* ---- spec.size ---- */

static int parse_size(struct ctx *c, const cJSON *v, int *out)
{
    long long n = DEFAULT_SIZE;
    int rc;

    if ((rc = read_int(c, v, "spec.size", 1, MAX_SIZE, &n)))
        return rc;
    if (n % 2 == 0)
        return fail(c, "spec.size: %lld is even: an even number of members tolerates no more "
                    "failures than one member fewer (quorum needs a majority, %lld of %lld, so "
                    "%lld members survive %lld failure%s, as %lld do) while adding one more "
                    "member to wait for; use %lld or %lld",
                    n, n / 2 + 1, n, n, (n - 1) / 2, (n - 1) / 2 == 1 ? "" : "s", n - 1, n - 1,
                    n + 1);
    *out = (int)n;
    return 0;
}

/* ---- spec.version, spec.image ---- */

static bool tag_chars(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > VERSION_MAX_LEN || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static bool image_chars(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > IMAGE_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    return true;
}

static int parse_image(struct ctx *c, const cJSON *spec, struct ec_spec *out)
{
    char buf[VERSION_MAX_LEN + 16];
    int rc;

    if ((rc = read_string(c, get(spec, "version"), "spec.version", true, &out->version)))
        return rc;
    if (out->version && !tag_chars(out->version))
        return fail(c, "spec.version: \"%s\" is not a valid image tag", out->version);
    if ((rc = read_string(c, get(spec, "image"), "spec.image", true, &out->image)))
        return rc;
    if (out->image && !image_chars(out->image))
        return fail(c, "spec.image: \"%s\" is not a valid image reference", out->image);
    if (out->image)
        return 0;
    if (!out->version)
        return dup_str(EC_DEFAULT_IMAGE, &out->image);
    snprintf(buf, sizeof(buf), "cetcd:%s", out->version);
    return dup_str(buf, &out->image);
}

/* ---- spec.storage ---- */

static int parse_storage(struct ctx *c, const cJSON *st, struct ec_spec *out)
{
    const cJSON *ed;
    int rc;

    if (!absent(st) && !cJSON_IsObject(st))
        return fail(c, "spec.storage: must be an object");
    if (!absent(get(st, "size")) &&
        (rc = read_quantity(c, get(st, "size"), "spec.storage.size", true, &out->storage_size)))
        return rc;
    if (!out->storage_size && (rc = dup_str("1Gi", &out->storage_size)))
        return rc;
    if ((rc = read_string(c, get(st, "storageClassName"), "spec.storage.storageClassName", false,
                          &out->storage_class)))
        return rc;
    ed = get(st, "emptyDir");
    if (absent(ed))
        return 0;
    if (!cJSON_IsObject(ed))
        return fail(c, "spec.storage.emptyDir: must be an object ({} for the defaults)");
    if (out->storage_class)
        return fail(c, "spec.storage: storageClassName and emptyDir exclude each other "
                    "(emptyDir keeps the data on the node, with no volume claim)");
    out->empty_dir = true;
    return 0;
}

/* ---- spec.resources ---- */

static int parse_quantity_map(struct ctx *c, const cJSON *m, const char *path, cJSON *dst)
{
    char sub[160];
    char *q = NULL;
    const cJSON *e;
    int rc;

    if (!cJSON_IsObject(m))
        return fail(c, "%s: must be an object of resource name -> quantity", path);
    cJSON_ArrayForEach(e, m) {
        snprintf(sub, sizeof(sub), "%s.%s", path, e->string);
        if ((rc = read_quantity(c, e, sub, false, &q)))
            return rc;
        rc = cJSON_AddStringToObject(dst, e->string, q) ? 0 : CE_NOMEM;
        free(q);
        q = NULL;
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_resources(struct ctx *c, const cJSON *r, struct ec_spec *out)
{
    const cJSON *e;
    cJSON *m;
    int rc;

    if (absent(r))
        return 0;
    if (!cJSON_IsObject(r))
        return fail(c, "spec.resources: must be an object with requests and limits");
    if (!(out->resources = cJSON_CreateObject()))
        return CE_NOMEM;
    cJSON_ArrayForEach(e, r) {
        char path[64];
        if (strcmp(e->string, "requests") != 0 && strcmp(e->string, "limits") != 0)
            return fail(c, "spec.resources.%.40s: unknown field (requests or limits)", e->string);
        if (cJSON_IsNull(e))
            continue;
        snprintf(path, sizeof(path), "spec.resources.%s", e->string);
        if (!(m = cJSON_AddObjectToObject(out->resources, e->string)))
            return CE_NOMEM;
        if ((rc = parse_quantity_map(c, e, path, m)))
            return rc;
    }
    return 0;
}

/* ---- spec.podTemplate ---- */

static const char *const operator_labels[] = {
    "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
    "cls", "ins",
};

static bool operator_label(const char *k)
{
    for (size_t i = 0; i < sizeof(operator_labels) / sizeof(operator_labels[0]); i++)
        if (strcmp(k, operator_labels[i]) == 0)
            return true;
    return false;
}

static bool label_value_ok(const char *v)
{
    size_t n = strlen(v);

    if (n > LABEL_VALUE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static int check_string_map(struct ctx *c, const cJSON *m, const char *path)
{
    const cJSON *e;

    if (!cJSON_IsObject(m))
        return fail(c, "%s: must be an object of string values", path);
    cJSON_ArrayForEach(e, m) {
        if (!e->string[0])
            return fail(c, "%s: keys must not be empty", path);
        if (!cJSON_IsString(e))
            return fail(c, "%s.%s: must be a string", path, e->string);
    }
    return 0;
}

static int check_labels(struct ctx *c, const cJSON *m)
{
    const cJSON *e;
    int rc;

    if ((rc = check_string_map(c, m, "spec.podTemplate.labels")))
        return rc;
    cJSON_ArrayForEach(e, m) {
        if (operator_label(e->string))
            return fail(c, "spec.podTemplate.labels.%s: this label is set by the operator",
                        e->string);
        if (!label_value_ok(e->valuestring))
            return fail(c, "spec.podTemplate.labels.%s: \"%s\" is not a valid label value (at "
                        "most 63 letters, digits, '-', '_', '.')", e->string, e->valuestring);
    }
    return 0;
}

static int check_tolerations(struct ctx *c, const cJSON *t)
{
    const cJSON *e;

    if (!cJSON_IsArray(t))
        return fail(c, "spec.podTemplate.tolerations: must be an array of tolerations");
    cJSON_ArrayForEach(e, t)
        if (!cJSON_IsObject(e))
            return fail(c, "spec.podTemplate.tolerations: every toleration must be an object");
    return 0;
}

static int check_pod_field(struct ctx *c, const cJSON *e)
{
    const char *k = e->string;

    if (cJSON_IsNull(e))
        return 0;
    if (!strcmp(k, "labels"))
        return check_labels(c, e);
    if (!strcmp(k, "annotations"))
        return check_string_map(c, e, "spec.podTemplate.annotations");
    if (!strcmp(k, "nodeSelector"))
        return check_string_map(c, e, "spec.podTemplate.nodeSelector");
    if (!strcmp(k, "affinity"))
        return cJSON_IsObject(e) ? 0 : fail(c, "spec.podTemplate.affinity: must be an object");
    if (!strcmp(k, "tolerations"))
        return check_tolerations(c, e);
    if (!strcmp(k, "priorityClassName"))
        return cJSON_IsString(e) ? 0
                                 : fail(c, "spec.podTemplate.priorityClassName: must be a string");
    return fail(c, "spec.podTemplate.%.40s: unknown field (labels, annotations, affinity, "
                "nodeSelector, tolerations, priorityClassName)", k);
}

static int parse_pod_template(struct ctx *c, const cJSON *pt, struct ec_spec *out)
{
    const cJSON *e;
    int rc;

    if (absent(pt))
        return 0;
    if (!cJSON_IsObject(pt))
        return fail(c, "spec.podTemplate: must be an object");
    cJSON_ArrayForEach(e, pt)
        if ((rc = check_pod_field(c, e)))
            return rc;
    out->pod_template = cJSON_Duplicate(pt, true);
    return out->pod_template ? 0 : CE_NOMEM;
}

/* ---- spec.options ---- */

/* Flags the operator sets itself (env or volume) and what to use instead, if anything. */
static const struct {
    const char *flag, *instead;
} owned_flags[] = {
    {"name", NULL}, {"data-dir", NULL}, {"wal-dir", NULL}, {"listen-client-urls", NULL},
    {"listen-peer-urls", NULL}, {"listen-metrics-urls", NULL}, {"advertise-client-urls", NULL},
    {"initial-advertise-peer-urls", NULL}, {"initial-cluster", NULL},
    {"initial-cluster-state", NULL}, {"initial-cluster-token", NULL}, {"bootstrap-dir", NULL},
    {"force-new-cluster", NULL}, {"config-file", NULL},
    {"heartbeat-interval", "spec.options.heartbeatInterval"},
    {"election-timeout", "spec.options.electionTimeout"},
    {"quota-backend-bytes", "spec.options.quotaBackendBytes"},
    {"auto-compaction-mode", "spec.options.autoCompactionMode"},
    {"auto-compaction-retention", "spec.options.autoCompactionRetention"},
    {"snapshot-count", "spec.options.snapshotCount"},
    {"cert-file", "spec.tls"}, {"key-file", "spec.tls"}, {"trusted-ca-file", "spec.tls"},
    {"client-cert-auth", "spec.tls"}, {"auto-tls", "spec.tls"},
    {"peer-cert-file", "spec.tls"}, {"peer-key-file", "spec.tls"},
    {"peer-trusted-ca-file", "spec.tls"}, {"peer-client-cert-auth", "spec.tls"},
    {"peer-auto-tls", "spec.tls"},
};

static int check_extra_arg(struct ctx *c, int i, const char *a)
{
    size_t n = strcspn(a + 2, "=");

    if (strncmp(a, "--", 2) != 0 || n == 0)
        return fail(c, "spec.options.extraArgs[%d]: \"%s\" must be a flag starting with \"--\"",
                    i, a);
    for (size_t k = 0; k < sizeof(owned_flags) / sizeof(owned_flags[0]); k++) {
        if (strlen(owned_flags[k].flag) != n || strncmp(a + 2, owned_flags[k].flag, n) != 0)
            continue;
        if (owned_flags[k].instead)
            return fail(c, "spec.options.extraArgs[%d]: --%s: use %s instead", i,
                        owned_flags[k].flag, owned_flags[k].instead);
        return fail(c, "spec.options.extraArgs[%d]: --%s is set by the operator", i,
                    owned_flags[k].flag);
    }
    return 0;
}

static int parse_extra_args(struct ctx *c, const cJSON *arr, struct ec_options *o)
{
    const cJSON *e;
    int n, i = 0, rc;

    if (absent(arr))
        return 0;
    if (!cJSON_IsArray(arr))
        return fail(c, "spec.options.extraArgs: must be an array of strings");
    n = cJSON_GetArraySize(arr);
    if (n > MAX_EXTRA_ARGS)
        return fail(c, "spec.options.extraArgs: at most %d arguments", MAX_EXTRA_ARGS);
    if (!(o->extra_args = calloc((size_t)n + 1, sizeof(char *))))
        return CE_NOMEM;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsString(e))
            return fail(c, "spec.options.extraArgs[%d]: must be a string", i);
        if ((rc = check_extra_arg(c, i, e->valuestring)))
            return rc;
        if ((rc = dup_str(e->valuestring, &o->extra_args[i++])))
            return rc;
    }
    return 0;
}

static int check_timing(struct ctx *c, const struct ec_options *o)
{
    long hb = o->heartbeat_ms ? o->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
    long el = o->election_ms ? o->election_ms : DEFAULT_ELECTION_MS;

    if (el < 5 * hb)
        return fail(c, "spec.options.electionTimeout: %ld ms must be at least 5 times "
                    "heartbeatInterval (%ld ms)", el, hb);
    return 0;
}

static int check_compaction(struct ctx *c, const struct ec_options *o)
{
    const char *m = o->auto_compaction_mode;
    const char *r = o->auto_compaction_retention;

    if (m && strcmp(m, "periodic") != 0 && strcmp(m, "revision") != 0)
        return fail(c, "spec.options.autoCompactionMode: \"%s\" must be periodic or revision", m);
    for (const char *p = r; p && *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || *p == '.'))
            return fail(c, "spec.options.autoCompactionRetention: \"%s\" must be a number or a "
                        "duration such as \"1h\" or \"30m\"", r);
    return 0;
}

static const char *const option_keys[] = {
    "heartbeatInterval", "electionTimeout", "quotaBackendBytes", "autoCompactionMode",
    "autoCompactionRetention", "snapshotCount", "extraArgs",
};

static int check_option_keys(struct ctx *c, const cJSON *opt)
{
    const cJSON *e;
    size_t k, n = sizeof(option_keys) / sizeof(option_keys[0]);

    cJSON_ArrayForEach(e, opt) {
        for (k = 0; k < n && strcmp(e->string, option_keys[k]) != 0; k++)
            ;
        if (k == n)
            return fail(c, "spec.options.%.40s: unknown option", e->string);
    }
    return 0;
}

static int parse_options(struct ctx *c, const cJSON *opt, struct ec_options *o)
{
    long long hb = 0, el = 0, quota = 0, snap = 0;
    int rc;

    if (absent(opt))
        return 0;
    if (!cJSON_IsObject(opt))
        return fail(c, "spec.options: must be an object");
    if ((rc = check_option_keys(c, opt)) ||
        (rc = read_int(c, get(opt, "heartbeatInterval"), "spec.options.heartbeatInterval", 1,
                       MAX_HEARTBEAT_MS, &hb)) ||
        (rc = read_int(c, get(opt, "electionTimeout"), "spec.options.electionTimeout", 1,
                       MAX_ELECTION_MS, &el)) ||
        (rc = read_int(c, get(opt, "quotaBackendBytes"), "spec.options.quotaBackendBytes", 0,
                       MAX_QUOTA_BYTES, &quota)) ||
        (rc = read_int(c, get(opt, "snapshotCount"), "spec.options.snapshotCount", 1,
                       MAX_SAFE_INT, &snap)) ||
        (rc = read_string(c, get(opt, "autoCompactionMode"), "spec.options.autoCompactionMode",
                          true, &o->auto_compaction_mode)) ||
        (rc = read_string(c, get(opt, "autoCompactionRetention"),
                          "spec.options.autoCompactionRetention", true,
                          &o->auto_compaction_retention)))
        return rc;
    o->heartbeat_ms = (long)hb;
    o->election_ms = (long)el;
    o->quota_backend_bytes = quota;
    o->snapshot_count = snap;
    if ((rc = check_timing(c, o)) || (rc = check_compaction(c, o)))
        return rc;
    return parse_extra_args(c, get(opt, "extraArgs"), o);
}

/* ---- spec.backup, spec.restore ---- */

/* A DNS-1123 subdomain (the name of a PVC): labels of [a-z0-9-] joined by '.', each starting
 * and ending with a letter or digit, at most 253 characters in all. */
static bool dns_subdomain(const char *s)
{
    size_t n = strlen(s);
    const char *p = s;

    if (n == 0 || n > SUBDOMAIN_MAX)
        return false;
    while (*p) {
        size_t k = strcspn(p, ".");
        char label[SUBDOMAIN_MAX + 1];
        snprintf(label, sizeof(label), "%.*s", (int)k, p);
        if (!dns_label(label, SUBDOMAIN_MAX, false))
            return false;
        p += k;
        if (*p == '.' && !*++p)
            return false;
    }
    return true;
}

/* Every key of obj is one of keys[] (NULL-terminated); else the refusal names the first other. */
static int check_keys(struct ctx *c, const cJSON *obj, const char *path,
                      const char *const *keys, const char *hint)
{
    const cJSON *e;

    cJSON_ArrayForEach(e, obj) {
        const char *const *k = keys;
        while (*k && strcmp(*k, e->string) != 0)
            k++;
        if (!*k)
            return fail(c, "%s.%.40s: unknown field (%s)", path, e->string, hint);
    }
    return 0;
}

static int parse_backup_storage(struct ctx *c, const cJSON *st, struct ec_backup *b)
{
    static const char *const keys[] = {"existingClaim", "size", "storageClassName", NULL};
    int rc;

    if (absent(st))
        return fail(c, "spec.backup.storage: missing (existingClaim, or size for a claim the "
                    "operator makes)");
    if (!cJSON_IsObject(st))
        return fail(c, "spec.backup.storage: must be an object");
    if ((rc = check_keys(c, st, "spec.backup.storage", keys,
                         "existingClaim, size, storageClassName")) ||
        (rc = read_string(c, get(st, "existingClaim"), "spec.backup.storage.existingClaim", true,
                          &b->existing_claim)) ||
        (rc = read_string(c, get(st, "storageClassName"),
                          "spec.backup.storage.storageClassName", false, &b->storage_class)))
        return rc;
    if (!absent(get(st, "size")) &&
        (rc = read_quantity(c, get(st, "size"), "spec.backup.storage.size", true,
                            &b->storage_size)))
        return rc;
    if (!b->existing_claim == !b->storage_size)
        return fail(c, "spec.backup.storage: set exactly one of existingClaim (a claim you made) "
                    "and size (the operator makes the claim <name>-backup)");
    if (b->existing_claim && !dns_subdomain(b->existing_claim))
        return fail(c, "spec.backup.storage.existingClaim: \"%s\" is not a valid claim name",
                    b->existing_claim);
    if (b->existing_claim && b->storage_class)
        return fail(c, "spec.backup.storage: storageClassName goes with size (a claim the "
                    "operator makes), not with existingClaim");
    return 0;
}

static int parse_backup(struct ctx *c, const cJSON *bk, const char *name, struct ec_backup *b)
{
    static const char *const keys[] = {"schedule", "retention", "suspend", "storage", NULL};
    long long retention = DEFAULT_RETENTION;
    char why[160];
    int rc;

    if (absent(bk))
        return 0;
    if (!cJSON_IsObject(bk))
        return fail(c, "spec.backup: must be an object");
    if ((rc = check_keys(c, bk, "spec.backup", keys, "schedule, retention, suspend, storage")))
        return rc;
    b->enabled = true;
    if (strlen(name) > EC_BACKUP_NAME_MAX)
        return fail(c, "metadata.name: \"%s\" is longer than %d characters, too long for "
                    "spec.backup (the CronJob %s-backup must fit Kubernetes' 52)", name,
                    EC_BACKUP_NAME_MAX, name);
    if ((rc = read_string(c, get(bk, "schedule"), "spec.backup.schedule", true, &b->schedule)))
        return rc;
    if (!b->schedule)
        return fail(c, "spec.backup.schedule: missing (a cron schedule such as \"0 3 * * *\")");
    if (!ec_cron_check(b->schedule, why, sizeof(why)))
        return fail(c, "spec.backup.schedule: \"%s\": %s", b->schedule, why);
    if ((rc = read_int(c, get(bk, "retention"), "spec.backup.retention", 1, MAX_RETENTION,
                       &retention)) ||
        (rc = read_bool(c, get(bk, "suspend"), "spec.backup.suspend", &b->suspend)))
        return rc;
    b->retention = (int)retention;
    return parse_backup_storage(c, get(bk, "storage"), b);
}

/* A relative path of parts made of letters, digits, '.', '_' and '-', none "." or "..". */
static bool restore_file_ok(const char *f)
{
    size_t n = strlen(f);
    const char *p = f;

    if (n == 0 || n > RESTORE_FILE_MAX || f[0] == '/')
        return false;
    while (*p) {
        size_t k = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
        if (k == 0 || (k == 1 && p[0] == '.') || (k == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += k;
        if (*p && (*p != '/' || !p[1]))
            return false;
        p += *p == '/';
    }
    return true;
}

static int parse_restore(struct ctx *c, const cJSON *rs, struct ec_restore *r)
{
    static const char *const keys[] = {"claimName", "file", NULL};
    int rc;

    if (absent(rs))
        return 0;
    if (!cJSON_IsObject(rs))
        return fail(c, "spec.restore: must be an object");
    if ((rc = check_keys(c, rs, "spec.restore", keys, "claimName, file")) ||
        (rc = read_string(c, get(rs, "claimName"), "spec.restore.claimName", true,
                          &r->claim_name)) ||
        (rc = read_string(c, get(rs, "file"), "spec.restore.file", true, &r->file)))
        return rc;
    if (!r->claim_name || !r->file)
        return fail(c, "spec.restore: claimName and file are both required");
    if (!dns_subdomain(r->claim_name))
        return fail(c, "spec.restore.claimName: \"%s\" is not a valid claim name",
                    r->claim_name);
    if (!restore_file_ok(r->file))
        return fail(c, "spec.restore.file: \"%s\" must be a path inside the claim: parts of "
                    "letters, digits, '.', '_' and '-' separated by '/', no \".\" or \"..\"",
                    r->file);
    return 0;
}

/* ---- spec.tls, spec.auth ---- */

static int read_secret_name(struct ctx *c, const cJSON *obj, const char *key, const char *path,
                            char **out)
{
    int rc = read_string(c, get(obj, key), path, true, out);

    if (rc == 0 && *out && !dns_subdomain(*out))
        return fail(c, "%s: \"%s\" is not a valid Secret name", path, *out);
    return rc;
}

/* "<name>-<what>-tls": the Secrets the operator issues. */
static int issued_name(const char *name, const char *what, char **out)
{
    size_t n = strlen(name) + strlen(what) + 6;

    if (!(*out = malloc(n)))
        return CE_NOMEM;
    snprintf(*out, n, "%s-%s-tls", name, what);
    return 0;
}

static int parse_tls(struct ctx *c, const cJSON *t, const char *name, struct ec_tls *o)
{
    static const char *const keys[] = {"caSecret", "serverSecret", "peerSecret", "clientSecret",
                                       NULL};
    int rc, given;

    if (absent(t))
        return 0;
    if (!cJSON_IsObject(t))
        return fail(c, "spec.tls: must be an object");
    if ((rc = check_keys(c, t, "spec.tls", keys,
                         "caSecret, or serverSecret, peerSecret and clientSecret")) ||
        (rc = read_secret_name(c, t, "caSecret", "spec.tls.caSecret", &o->ca_secret)) ||
        (rc = read_secret_name(c, t, "serverSecret", "spec.tls.serverSecret",
                               &o->server_secret)) ||
        (rc = read_secret_name(c, t, "peerSecret", "spec.tls.peerSecret", &o->peer_secret)) ||
        (rc = read_secret_name(c, t, "clientSecret", "spec.tls.clientSecret",
                               &o->client_secret)))
        return rc;
    given = !!o->server_secret + !!o->peer_secret + !!o->client_secret;
    if (o->ca_secret ? given != 0 : given != 3)
        return fail(c, "spec.tls: set caSecret (the operator issues the certificates), or all "
                    "of serverSecret, peerSecret and clientSecret, not a mix");
    o->enabled = true;
    if (!o->ca_secret)
        return 0;
    if ((rc = issued_name(name, "server", &o->server_secret)) ||
        (rc = issued_name(name, "peer", &o->peer_secret)))
        return rc;
    return issued_name(name, "client", &o->client_secret);
}

static int parse_auth(struct ctx *c, const cJSON *a, struct ec_auth *o)
{
    static const char *const keys[] = {"rootSecret", NULL};
    int rc;

    if (absent(a))
        return 0;
    if (!cJSON_IsObject(a))
        return fail(c, "spec.auth: must be an object");
    if ((rc = check_keys(c, a, "spec.auth", keys, "rootSecret")) ||
        (rc = read_secret_name(c, a, "rootSecret", "spec.auth.rootSecret", &o->root_secret)))
        return rc;
    if (!o->root_secret)
        return fail(c, "spec.auth.rootSecret: missing (a Secret whose key \"password\" is "
                    "root's password)");
    return 0;
}

/* ---- whole object ---- */

static int parse_spec(struct ctx *c, const cJSON *spec, struct ec_spec *out)
{
    int rc;

    if (!absent(spec) && !cJSON_IsObject(spec))
        return fail(c, "spec: must be an object");
    if ((rc = parse_size(c, get(spec, "size"), &out->size)) ||
        (rc = parse_image(c, spec, out)) ||
        (rc = parse_storage(c, get(spec, "storage"), out)) ||
        (rc = parse_resources(c, get(spec, "resources"), out)) ||
        (rc = parse_pod_template(c, get(spec, "podTemplate"), out)) ||
        (rc = parse_options(c, get(spec, "options"), &out->options)) ||
        (rc = parse_backup(c, get(spec, "backup"), out->name, &out->backup)) ||
        (rc = parse_restore(c, get(spec, "restore"), &out->restore)) ||
        (rc = parse_tls(c, get(spec, "tls"), out->name, &out->tls)) ||
        (rc = parse_auth(c, get(spec, "auth"), &out->auth)))
        return rc;
    return read_bool(c, get(spec, "paused"), "spec.paused", &out->paused);
}

int ec_spec_parse(const cJSON *obj, struct ec_spec *out, char *err, size_t errsz)
{
    struct ctx c = {err, errsz};
    int rc;

    memset(out, 0, sizeof(*out));
    if (err && errsz)
        err[0] = '\0';
    if (!cJSON_IsObject(obj))
        rc = fail(&c, "EtcdCluster: not a JSON object");
    else if (!(rc = parse_metadata(&c, get(obj, "metadata"), out)))
        rc = parse_spec(&c, get(obj, "spec"), out);
    if (rc == CE_NOMEM)
        fail(&c, "out of memory");
    if (rc)
        ec_spec_clear(out);
    return rc;
}

void ec_spec_clear(struct ec_spec *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->ns);
    free(s->uid);
    free(s->version);
    free(s->image);
    free(s->storage_size);
    free(s->storage_class);
    cJSON_Delete(s->resources);
    cJSON_Delete(s->pod_template);
    free(s->options.auto_compaction_mode);
    free(s->options.auto_compaction_retention);
    for (char **a = s->options.extra_args; a && *a; a++)
        free(*a);
    free(s->options.extra_args);
    free(s->backup.schedule);
    free(s->backup.existing_claim);
    free(s->backup.storage_size);
    free(s->backup.storage_class);
    free(s->restore.claim_name);
    free(s->restore.file);
    free(s->tls.ca_secret);
    free(s->tls.server_secret);
    free(s->tls.peer_secret);
    free(s->tls.client_secret);
    free(s->auth.root_secret);
    memset(s, 0, sizeof(*s));
}
