/*
 * config.c: etcd-compatible flags, ETCD_* variables and the YAML --config-file (libyaml).
 *
 * One table lists every option once: its flag name (which is also its YAML key and, upper-cased
 * with underscores, its environment variable), its kind and where it is stored. All three
 * sources go through the same setter, so a value is validated identically wherever it comes
 * from. Flags etcd has but cetcd does not act on (yet) are accepted and recorded as such, so
 * existing configurations start; truly unknown flags are refused.
 */
#include "config.h"
#include "urlcheck.h"
#include "err.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum kind { K_STR, K_URLS, K_UINT, K_BOOL, K_DURATION, K_IGNORED };

struct option {
    const char *name;
    enum kind kind;
    size_t off;          /* offset in struct config (unused for K_IGNORED) */
    uint64_t min, max;   /* K_UINT range */
};

#define OPT(n, k, field) {n, k, offsetof(config, field), 0, 0}
#define UOPT(n, field, lo, hi) {n, K_UINT, offsetof(config, field), lo, hi}
#define IGN(n, k) {n, K_IGNORED, (size_t)(k), 0, 0}

static const struct option options[] = {
    OPT("name", K_STR, name),
    OPT("data-dir", K_STR, data_dir),
    OPT("wal-dir", K_STR, wal_dir),
    OPT("listen-client-urls", K_URLS, listen_client_urls),
    OPT("advertise-client-urls", K_URLS, advertise_client_urls),
    OPT("listen-peer-urls", K_URLS, listen_peer_urls),
    OPT("initial-advertise-peer-urls", K_URLS, initial_advertise_peer_urls),
    OPT("listen-metrics-urls", K_URLS, listen_metrics_urls),
    OPT("initial-cluster", K_STR, initial_cluster),
    OPT("initial-cluster-token", K_STR, initial_cluster_token),
    OPT("initial-cluster-state", K_STR, initial_cluster_state),
    OPT("bootstrap-dir", K_STR, bootstrap_dir), /* cetcd extension (node_bootstrap.c) */
    OPT("force-new-cluster", K_BOOL, force_new_cluster),
    UOPT("heartbeat-interval", heartbeat_ms, 1, 60000),
    UOPT("election-timeout", election_ms, 1, 600000),
    UOPT("snapshot-count", snapshot_count, 1, UINT64_MAX / 2),
    UOPT("quota-backend-bytes", quota_backend_bytes, 0, (uint64_t)1 << 43),
    UOPT("max-request-bytes", max_request_bytes, 1, (uint64_t)1 << 31),
    UOPT("max-txn-ops", max_txn_ops, 1, 1 << 20),
    UOPT("auth-token-ttl", auth_token_ttl, 1, 1u << 30),
    UOPT("max-snapshots", max_snapshots, 0, 1 << 20),
    UOPT("max-wals", max_wals, 0, 1 << 20),
    OPT("log-level", K_STR, log_level),
    OPT("auto-compaction-mode", K_STR, auto_compaction_mode),
    OPT("auto-compaction-retention", K_STR, auto_compaction_retention),
    OPT("unsafe-no-fsync", K_BOOL, unsafe_no_fsync),
    OPT("pre-vote", K_BOOL, pre_vote),
    OPT("strict-reconfig-check", K_BOOL, strict_reconfig_check),
    OPT("cert-file", K_STR, client_tls.cert_file),
    OPT("key-file", K_STR, client_tls.key_file),
    OPT("trusted-ca-file", K_STR, client_tls.trusted_ca_file),
    OPT("client-cert-auth", K_BOOL, client_tls.client_cert_auth),
    OPT("auto-tls", K_BOOL, client_tls.auto_tls),
    OPT("peer-cert-file", K_STR, peer_tls.cert_file),
    OPT("peer-key-file", K_STR, peer_tls.key_file),
    OPT("peer-trusted-ca-file", K_STR, peer_tls.trusted_ca_file),
    OPT("peer-client-cert-auth", K_BOOL, peer_tls.client_cert_auth),
    OPT("peer-auto-tls", K_BOOL, peer_tls.auto_tls),
    OPT("version", K_BOOL, show_version),
    OPT("help", K_BOOL, show_help),
    OPT("config-file", K_STR, config_file),
    OPT("experimental-watch-progress-notify-interval", K_DURATION, watch_progress_notify_ms),
    /* etcd flags accepted for compatibility; cetcd has no use for them */
    IGN("logger", K_STR),
    IGN("log-outputs", K_STR),
    IGN("enable-v2", K_BOOL),
    IGN("enable-pprof", K_BOOL),
    IGN("metrics", K_STR),
    IGN("cors", K_STR),
    IGN("debug", K_BOOL),
    IGN("discovery", K_STR),
    IGN("discovery-srv", K_STR),
    IGN("discovery-fallback", K_STR),
    IGN("discovery-proxy", K_STR),
    IGN("proxy", K_STR),
    IGN("enable-grpc-gateway", K_BOOL),
    IGN("grpc-keepalive-min-time", K_STR),
    IGN("grpc-keepalive-interval", K_STR),
    IGN("grpc-keepalive-timeout", K_STR),
    IGN("client-crl-file", K_STR),
    IGN("peer-crl-file", K_STR),
    IGN("cipher-suites", K_STR),
    IGN("peer-cert-allowed-cn", K_STR),
    IGN("cert-allowed-cn", K_STR),
    IGN("self-signed-cert-validity", K_STR),
    IGN("backend-batch-interval", K_STR),
    IGN("backend-batch-limit", K_STR),
    IGN("quota-backend-bytes-ratio", K_STR),
    IGN("host-whitelist", K_STR),
    IGN("auth-token", K_STR),
    IGN("bcrypt-cost", K_STR),
    IGN("experimental-initial-corrupt-check", K_BOOL),
    IGN("experimental-corrupt-check-time", K_STR),
    IGN("experimental-enable-lease-checkpoint", K_BOOL),
    IGN("experimental-compaction-batch-limit", K_STR),
    IGN("experimental-peer-skip-client-san-verification", K_BOOL),
    IGN("experimental-backend-bbolt-freelist-type", K_STR),
    {0, K_STR, 0, 0, 0},
};

static const struct option *find_option(const char *name, size_t len)
{
    for (const struct option *o = options; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return 0;
}

static void fail(config *cfg, const char *fmt, const char *a, const char *b)
{
    snprintf(cfg->error, sizeof(cfg->error), fmt, a, b);
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "TRUE") ||
        !strcmp(v, "True"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "f") || !strcmp(v, "FALSE") ||
             !strcmp(v, "False"))
        *out = false;
    else
        return CE_INVAL;
    return 0;
}

/* One "<number>[.<fraction>]<unit>" term of a Go duration, in ns; *p advances past it. */
static int duration_term(const char **p, double *ns)
{
    static const struct { const char *u; double ns; } units[] = {
        {"ns", 1}, {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3}, {"ms", 1e6},
        {"s", 1e9}, {"m", 60e9}, {"h", 3600e9},
    };
    char *end;
    double x;

    size_t span = strspn(*p, "0123456789.");

    if (span == 0)
        return CE_INVAL;
    errno = 0;
    x = strtod(*p, &end);
    if (errno || end != *p + span)   /* digits and one dot only: no sign, exponent or hex */
        return CE_INVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        size_t n = strlen(units[i].u);
        /* "m" must not take the "m" of "ms" */
        if (!strncmp(end, units[i].u, n) && !(n == 1 && end[0] == 'm' && end[1] == 's')) {
            *ns += x * units[i].ns;
            *p = end + n;
            return 0;
        }
    }
    return CE_INVAL;
}

/* Go's time.ParseDuration ("10m", "1m30s", "250ms", "0"; no sign), in milliseconds (a
 * positive duration below 1 ms counts as 1 ms). */
static int parse_duration_ms(const char *v, uint64_t *out)
{
    double ns = 0;

    if (!strcmp(v, "0")) {
        *out = 0;
        return 0;
    }
    if (!*v)
        return CE_INVAL;
    while (*v)
        if (duration_term(&v, &ns))
            return CE_INVAL;
    if (ns > 9.2e18)
        return CE_INVAL;
    *out = ns > 0 && ns < 1e6 ? 1 : (uint64_t)(ns / 1e6);
    return 0;
}

static int parse_uint(const char *v, const struct option *o, uint64_t *out)
{
    char *end;
    unsigned long long x;

    if (!*v || !isdigit((unsigned char)*v))
        return CE_INVAL;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno || *end || x < o->min || x > o->max)
        return CE_INVAL;
    *out = x;
    return 0;
}

/* "http(s)://host:port" (port 0..65535, host non-empty), or a unix socket URL. */
static bool valid_url(const char *u)
{
    if (!strncmp(u, "unix://", 7) || !strncmp(u, "unixs://", 8))
        return true;
    return url_is_http(u, true, 0);
}

static void urls_free(config_urls *u)
{
    for (int i = 0; i < u->n; i++)
        free(u->list[i]);
    u->n = 0;
}

static int parse_urls(const char *v, config_urls *u)
{
    config_urls tmp = {0};
    const char *p = v;

    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || tmp.n == CONFIG_MAX_URLS)
            goto out_bad;
        tmp.list[tmp.n] = strndup(p, len);
        if (!tmp.list[tmp.n] || !valid_url(tmp.list[tmp.n++]))
            goto out_bad;
        p += len + (comma ? 1 : 0);
    }
    if (tmp.n == 0)
        goto out_bad;
    urls_free(u);
    *u = tmp;
    return 0;

out_bad:
    urls_free(&tmp);
    return CE_INVAL;
}

/* Stores value for option o; origin is "flag --x", "variable ETCD_X" or "key x" for errors. */
static int set_option(config *cfg, const struct option *o, const char *v, const char *origin)
{
    void *field = (char *)cfg + o->off;
    bool b;

    switch (o->kind) {
    case K_IGNORED:
        log_debug("config: %s accepted and ignored by cetcd", origin);
        return 0;
    case K_STR:
        free(*(char **)field);
        *(char **)field = strdup(v);
        return *(char **)field ? 0 : CE_NOMEM;
    case K_URLS:
        if (parse_urls(v, field) == 0)
            return 0;
        fail(cfg, "invalid value \"%s\" for %s: expected a comma-separated list of http(s)://host:port URLs", v, origin);
        return CE_INVAL;
    case K_UINT:
        if (parse_uint(v, o, field) == 0)
            return 0;
        fail(cfg, "invalid value \"%s\" for %s: expected a non-negative integer in range", v, origin);
        return CE_INVAL;
    case K_DURATION:
        if (parse_duration_ms(v, field) == 0)
            return 0;
        fail(cfg, "invalid value \"%s\" for %s: parse error", v, origin);
        return CE_INVAL;
    case K_BOOL:
        if (parse_bool(v, &b) == 0) {
            *(bool *)field = b;
            return 0;
        }
        fail(cfg, "invalid boolean value \"%s\" for %s", v, origin);
        return CE_INVAL;
    }
    return CE_INVAL;
}

static bool is_bool(const struct option *o)
{
    return o->kind == K_BOOL || (o->kind == K_IGNORED && o->off == K_BOOL);
}

/* Go's flag syntax: -f, --f, -f=v, --f=v, and "-f v" for non-boolean flags. */
static int parse_args(config *cfg, int argc, char **argv, bool seen[])
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *val;
        const struct option *o;
        char origin[160];
        size_t len;

        if (a[0] != '-' || a[1] == 0) {
            fail(cfg, "unexpected argument \"%s\"%s (cetcd takes only flags)", a, "");
            return CE_INVAL;
        }
        name = a + (a[1] == '-' ? 2 : 1);
        eq = strchr(name, '=');
        len = eq ? (size_t)(eq - name) : strlen(name);
        o = find_option(name, len);
        snprintf(origin, sizeof(origin), "flag --%.*s", (int)len, name);
        if (!o) {
            fail(cfg, "unknown flag --%s%s", eq ? strndupa(name, len) : name, "");
            return CE_INVAL;
        }
        if (eq)
            val = eq + 1;
        else if (is_bool(o))
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fail(cfg, "flag needs an argument: --%s%s", o->name, "");
            return CE_INVAL;
        }
        if (set_option(cfg, o, val, origin))
            return CE_INVAL;
        seen[o - options] = true;
    }
    return 0;
}

/* ETCD_FOO_BAR for every option not given as a flag. */
static int parse_env(config *cfg, char **envp, const bool seen[])
{
    for (const struct option *o = options; o->name; o++) {
        char var[96], origin[128];
        const char *v;
        size_t i;

        if (seen[o - options] || !strcmp(o->name, "help") || !strcmp(o->name, "version"))
            continue;
        memcpy(var, "ETCD_", 5);
        for (i = 0; o->name[i] && i < sizeof(var) - 6; i++)
            var[5 + i] = o->name[i] == '-' ? '_' : (char)toupper((unsigned char)o->name[i]);
        var[5 + i] = 0;
        v = 0;
        for (char **e = envp; e && *e; e++)
            if (!strncmp(*e, var, 5 + i) && (*e)[5 + i] == '=')
                v = *e + 6 + i;
        if (!v)
            continue;
        snprintf(origin, sizeof(origin), "variable %s", var);
        if (set_option(cfg, o, v, origin))
            return CE_INVAL;
    }
    return 0;
}

/* YAML: a mapping of option names to scalars, plus etcd's client-transport-security and
 * peer-transport-security sub-mappings. Sequences of URLs are joined with commas. */
static int yaml_set(config *cfg, const char *prefix, const char *key, const char *val)
{
    char name[128], origin[160];
    const struct option *o;

    snprintf(name, sizeof(name), "%s%s", prefix, key);
    o = find_option(name, strlen(name));
    snprintf(origin, sizeof(origin), "key %s in %s", name, cfg->config_file);
    if (!o || !strcmp(name, "config-file")) {
        fail(cfg, "unknown %s%s", origin, "");
        return CE_INVAL;
    }
    return set_option(cfg, o, val, origin);
}

static char *yaml_scalar_or_seq(yaml_document_t *doc, yaml_node_t *v)
{
    char *out;
    size_t len = 0, cap = 1;

    if (v->type == YAML_SCALAR_NODE)
        return strndup((char *)v->data.scalar.value, v->data.scalar.length);
    if (v->type != YAML_SEQUENCE_NODE)
        return 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *n = yaml_document_get_node(doc, *it);
        if (!n || n->type != YAML_SCALAR_NODE)
            return 0;
        cap += n->data.scalar.length + 1;
    }
    out = calloc(1, cap);
    for (yaml_node_item_t *it = v->data.sequence.items.start; out && it < v->data.sequence.items.top; it++) {
        yaml_node_t *n = yaml_document_get_node(doc, *it);
        if (len)
            out[len++] = ',';
        memcpy(out + len, n->data.scalar.value, n->data.scalar.length);
        len += n->data.scalar.length;
    }
    return out;
}

static int yaml_mapping(config *cfg, yaml_document_t *doc, yaml_node_t *map, const char *prefix)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        const char *key;
        char *val;
        int rc;

        if (!k || !v || k->type != YAML_SCALAR_NODE) {
            fail(cfg, "bad YAML in %s: mapping keys must be scalars%s", cfg->config_file, "");
            return CE_INVAL;
        }
        key = (const char *)k->data.scalar.value;
        if (v->type == YAML_MAPPING_NODE && (!strcmp(key, "client-transport-security") ||
                                             !strcmp(key, "peer-transport-security"))) {
            rc = yaml_mapping(cfg, doc, v, key[0] == 'p' ? "peer-" : "");
            if (rc)
                return rc;
            continue;
        }
        if (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0)
            continue; /* etcd's sample config leaves unused keys empty (null) */
        val = yaml_scalar_or_seq(doc, v);
        if (!val) {
            fail(cfg, "bad value for key %s in %s", key, cfg->config_file);
            return CE_INVAL;
        }
        rc = yaml_set(cfg, prefix, key, val);
        free(val);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_yaml_file(config *cfg)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    FILE *f = fopen(cfg->config_file, "rb");
    int rc = CE_INVAL;

    if (!f) {
        fail(cfg, "cannot open config file %s: %s", cfg->config_file, strerror(errno));
        return CE_INVAL;
    }
    if (!yaml_parser_initialize(&parser))
        goto out_close;
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(cfg->error, sizeof(cfg->error), "bad YAML in %s: %s at line %zu", cfg->config_file,
                 parser.problem ? parser.problem : "parse error", parser.problem_mark.line + 1);
        goto out_parser;
    }
    root = yaml_document_get_root_node(&doc);
    if (!root)
        rc = 0;
    else if (root->type != YAML_MAPPING_NODE)
        fail(cfg, "bad YAML in %s: the top level must be a mapping%s", cfg->config_file, "");
    else
        rc = yaml_mapping(cfg, &doc, root, "");
    yaml_document_delete(&doc);
out_parser:
    yaml_parser_delete(&parser);
out_close:
    fclose(f);
    return rc;
}

static int set_default(config *cfg, const char *name, const char *v)
{
    const struct option *o = find_option(name, strlen(name));
    void *field = (char *)cfg + o->off;

    if (o->kind == K_STR && *(char **)field)
        return 0;
    if (o->kind == K_URLS && ((config_urls *)field)->n)
        return 0;
    if ((o->kind == K_UINT || o->kind == K_DURATION) && *(uint64_t *)field)
        return 0;
    return set_option(cfg, o, v, name);
}

static int apply_defaults(config *cfg)
{
    char buf[600];
    int rc = 0;

    rc |= set_default(cfg, "name", "default");
    snprintf(buf, sizeof(buf), "%s.etcd", cfg->name);
    rc |= set_default(cfg, "data-dir", buf);
    rc |= set_default(cfg, "listen-client-urls", "http://localhost:2379");
    rc |= set_default(cfg, "advertise-client-urls", "http://localhost:2379");
    rc |= set_default(cfg, "listen-peer-urls", "http://localhost:2380");
    rc |= set_default(cfg, "initial-advertise-peer-urls", "http://localhost:2380");
    snprintf(buf, sizeof(buf), "%s=%s", cfg->name, cfg->initial_advertise_peer_urls.list[0]);
    rc |= set_default(cfg, "initial-cluster", buf);
    rc |= set_default(cfg, "initial-cluster-token", "etcd-cluster");
    rc |= set_default(cfg, "initial-cluster-state", "new");
    rc |= set_default(cfg, "heartbeat-interval", "100");
    rc |= set_default(cfg, "election-timeout", "1000");
    rc |= set_default(cfg, "auth-token-ttl", "300");
    rc |= set_default(cfg, "snapshot-count", "100000");
    rc |= set_default(cfg, "max-request-bytes", "1572864");
    rc |= set_default(cfg, "max-txn-ops", "128");
    rc |= set_default(cfg, "log-level", "info");
    rc |= set_default(cfg, "auto-compaction-mode", "periodic");
    rc |= set_default(cfg, "experimental-watch-progress-notify-interval", "10m");
    if (!cfg->quota_backend_bytes)
        cfg->quota_backend_bytes = (uint64_t)2 << 30;
    return rc ? CE_NOMEM : 0;
}

static int validate(config *cfg)
{
    enum log_level lvl;

    if (strcmp(cfg->initial_cluster_state, "new") && strcmp(cfg->initial_cluster_state, "existing")) {
        fail(cfg, "invalid value \"%s\" for --initial-cluster-state: must be \"new\" or \"existing\"%s",
             cfg->initial_cluster_state, "");
        return CE_INVAL;
    }
    if (cfg->election_ms < 5 * cfg->heartbeat_ms) {
        snprintf(cfg->error, sizeof(cfg->error),
                 "--election-timeout[%llums] should be at least as 5 times as --heartbeat-interval[%llums]",
                 (unsigned long long)cfg->election_ms, (unsigned long long)cfg->heartbeat_ms);
        return CE_INVAL;
    }
    if (cfg->election_ms > 50000) {
        fail(cfg, "--election-timeout is too long, and should be set less than 50 seconds%s%s", "", "");
        return CE_INVAL;
    }
    if (log_parse_level(cfg->log_level, &lvl)) {
        fail(cfg, "invalid value \"%s\" for --log-level: want debug, info, warn, error, panic or fatal%s",
             cfg->log_level, "");
        return CE_INVAL;
    }
    if (strcmp(cfg->auto_compaction_mode, "periodic") && strcmp(cfg->auto_compaction_mode, "revision")) {
        fail(cfg, "invalid value \"%s\" for --auto-compaction-mode: must be \"periodic\" or \"revision\"%s",
             cfg->auto_compaction_mode, "");
        return CE_INVAL;
    }
    return 0;
}

int config_parse(config *cfg, int argc, char **argv, char **envp)
{
    bool seen[sizeof(options) / sizeof(options[0])] = {0};
    int rc;

    /* Boolean defaults that are true (a given flag or variable overrides them). etcd 3.4
     * defaults --pre-vote to false; cetcd follows etcd 3.5 (true): a member rejoining after
     * a partition then cannot depose a healthy leader. */
    cfg->pre_vote = true;
    cfg->strict_reconfig_check = true;
    rc = parse_args(cfg, argc, argv, seen);
    if (rc)
        return rc;
    if (cfg->show_help || cfg->show_version)
        return 0;
    if (cfg->config_file) {
        rc = parse_yaml_file(cfg);
        if (rc)
            return rc;
    } else {
        rc = parse_env(cfg, envp, seen);
        if (rc)
            return rc;
    }
    rc = apply_defaults(cfg);
    if (rc) {
        fail(cfg, "out of memory%s%s", "", "");
        return rc;
    }
    return validate(cfg);
}

void config_free(config *cfg)
{
    for (const struct option *o = options; o->name; o++) {
        void *field = (char *)cfg + o->off;
        if (o->kind == K_STR)
            free(*(char **)field);
        else if (o->kind == K_URLS)
            urls_free(field);
    }
}

const char *config_usage(void)
{
    return "Usage:\n\n"
           "  cetcd [flags]\n"
           "    Start a cetcd member (etcd v3 API compatible).\n"
           "  cetcd --version\n"
           "  cetcd -h | --help\n\n"
           "Every flag can also be given as an ETCD_<FLAG> environment variable (upper case,\n"
           "dashes as underscores), or as a key of the YAML file named by --config-file.\n\n"
           "Member:\n"
           "  --name 'default'                    human-readable name for this member\n"
           "  --data-dir '${name}.etcd'           path to the data directory\n"
           "  --wal-dir ''                        dedicated WAL directory\n"
           "  --snapshot-count '100000'           committed transactions that trigger a snapshot\n"
           "  --heartbeat-interval '100'          time (ms) of a heartbeat interval\n"
           "  --election-timeout '1000'           time (ms) for an election to time out\n"
           "  --auth-token-ttl '300'              seconds a simple auth token lives after its last use\n"
           "  --listen-peer-urls 'http://localhost:2380'\n"
           "  --listen-client-urls 'http://localhost:2379'\n"
           "  --listen-metrics-urls ''            extra URLs answering /metrics and /health\n"
           "  --quota-backend-bytes '0'           backend size quota (0 = 2 GiB)\n"
           "  --max-request-bytes '1572864'       largest client request accepted\n"
           "  --max-txn-ops '128'                 most operations in one transaction\n"
           "  --experimental-watch-progress-notify-interval '10m'\n"
           "                                      period of watch progress notifications\n\n"
           "Clustering:\n"
           "  --initial-advertise-peer-urls 'http://localhost:2380'\n"
           "  --initial-cluster 'default=http://localhost:2380'\n"
           "  --initial-cluster-state 'new'       'new' or 'existing'\n"
           "  --initial-cluster-token 'etcd-cluster'\n"
           "  --bootstrap-dir ''                  cetcd extension: a member without a WAL reads\n"
           "                                      DIR/<name> (key=value lines) and takes its\n"
           "                                      initial-cluster and initial-cluster-state over\n"
           "                                      the flags; refuses to start if it is missing or\n"
           "                                      says joined=true (the data was lost)\n"
           "  --advertise-client-urls 'http://localhost:2379'\n"
           "  --force-new-cluster 'false'         restart as a one-member cluster, keeping the data\n"
           "  --pre-vote 'true'\n"
           "  --strict-reconfig-check 'true'\n"
           "  --auto-compaction-mode 'periodic'   'periodic' or 'revision'\n"
           "  --auto-compaction-retention '0'\n\n"
           "Security:\n"
           "  --cert-file, --key-file, --trusted-ca-file, --client-cert-auth, --auto-tls\n"
           "  --peer-cert-file, --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth,\n"
           "  --peer-auto-tls\n\n"
           "Logging:\n"
           "  --log-level 'info'                  debug, info, warn, error, panic or fatal\n\n"
           "Unsafe:\n"
           "  --unsafe-no-fsync 'false'           do not fsync (tests only: loses data on crash)\n";
}
