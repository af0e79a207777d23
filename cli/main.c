/*
 * main.c: cetcdctl entry point: global flags (as etcdctl 3.4, with ETCDCTL_* environment
 * fallbacks), command dispatch, help text and client construction.
 *
 * Command line model (cobra/pflag's): flags may appear anywhere, before or after the command
 * words; `--name=value`, `--name value`, `-x value`, `-xvalue`; boolean flags take no separate
 * value (`--flag=false` works); `--` ends flag parsing. The command words are the first one or
 * two positionals ("get", "lease grant"); the rest are the command's arguments. One flag changes
 * kind with the command: --prefix is a boolean (get, del, watch) except after the words
 * `snapshot save`, where it takes a value (the backup file name prefix).
 */
#include "ctl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct flag_def {
    const char *name;
    char shorthand;
    bool takes_value;
    /* takes a value only after these command words (else a boolean): --prefix is a boolean
     * for get/del/watch and a file name prefix for `snapshot save --dir` */
    const char *value_after;
};

static const struct flag_def flag_defs[] = {
    /* global */
    {"endpoints", 0, true}, {"write-out", 'w', true}, {"dial-timeout", 0, true},
    {"command-timeout", 0, true}, {"user", 0, true}, {"password", 0, true},
    {"cacert", 0, true}, {"cert", 0, true}, {"key", 0, true},
    {"discovery-srv", 'd', true}, {"discovery-srv-name", 0, true},
    {"keepalive-time", 0, true}, {"keepalive-timeout", 0, true},
    {"hex", 0, false}, {"debug", 0, false}, {"insecure-skip-tls-verify", 0, false},
    {"insecure-transport", 0, false}, {"insecure-discovery", 0, false}, {"help", 'h', false},
    /* per command */
    {"lease", 0, true}, {"limit", 0, true}, {"rev", 0, true}, {"sort-by", 0, true},
    {"order", 0, true}, {"consistency", 0, true}, {"peer-urls", 0, true},
    {"prev-kv", 0, false}, {"ignore-value", 0, false}, {"ignore-lease", 0, false},
    {"prefix", 0, false, "snapshot save"}, {"from-key", 0, false}, {"keys-only", 0, false},
    {"count-only", 0, false}, {"print-value-only", 0, false}, {"interactive", 'i', false},
    {"physical", 0, false}, {"cluster", 0, false}, {"keys", 0, false}, {"once", 0, false},
    {"learner", 0, false}, {"no-password", 0, false}, {"detail", 0, false},
    /* snapshot save (backup mode; --prefix above takes a value there) and snapshot restore */
    {"dir", 0, true}, {"retention", 0, true}, {"result-file", 0, true},
    {"name", 0, true}, {"data-dir", 0, true}, {"wal-dir", 0, true},
    {"initial-cluster", 0, true}, {"initial-cluster-token", 0, true},
    {"initial-advertise-peer-urls", 0, true}, {"skip-hash-check", 0, false},
};

#define N_GLOBAL_FLAGS 19

struct command {
    const char *name, *sub;
    const char *flags; /* space-separated command flags */
    const char *usage;
};

static const struct command commands[] = {
    {"put", NULL, "prev-kv lease ignore-value ignore-lease", "Puts the given key into the store"},
    {"get", NULL, "consistency from-key keys-only count-only limit order prefix print-value-only rev sort-by",
     "Gets the key or a range of keys"},
    {"del", NULL, "prefix from-key prev-kv", "Removes the specified key or range of keys [key, range_end)"},
    {"txn", NULL, "interactive", "Txn processes all the requests in one transaction"},
    {"compaction", NULL, "physical", "Compacts the event history in etcd"},
    {"lease", "grant", "", "Creates leases"},
    {"lease", "revoke", "", "Revokes leases"},
    {"lease", "timetolive", "keys", "Get lease information"},
    {"lease", "list", "", "List all active leases"},
    {"lease", "keep-alive", "once", "Keeps leases alive (renew)"},
    {"watch", NULL, "interactive prefix rev prev-kv", "Watches events stream on keys or prefixes"},
    {"member", "add", "peer-urls learner", "Adds a member into the cluster"},
    {"member", "remove", "", "Removes a member from the cluster"},
    {"member", "update", "peer-urls", "Updates a member in the cluster"},
    {"member", "list", "", "Lists all members in the cluster"},
    {"member", "promote", "", "Promotes a non-voting member in the cluster"},
    {"endpoint", "health", "cluster", "Checks the healthiness of endpoints specified in `--endpoints` flag"},
    {"endpoint", "status", "cluster", "Prints out the status of endpoints specified in `--endpoints` flag"},
    {"endpoint", "hashkv", "cluster rev", "Prints the KV history hash for each endpoint in --endpoints"},
    {"alarm", "disarm", "", "Disarms all alarms"},
    {"alarm", "list", "", "Lists all alarms"},
    {"defrag", NULL, "cluster", "Defragments the storage of the etcd members with given endpoints"},
    {"move-leader", NULL, "", "Transfers leadership to another etcd cluster member."},
    {"snapshot", "save", "dir prefix retention result-file",
     "Stores an etcd node backend snapshot to a given file"},
    {"snapshot", "status", "", "Gets backend snapshot status of a given file"},
    {"snapshot", "restore",
     "name data-dir wal-dir initial-cluster initial-cluster-token initial-advertise-peer-urls "
     "skip-hash-check",
     "Restores an etcd member snapshot to an etcd directory"},
    {"auth", "enable", "", "Enables authentication"},
    {"auth", "disable", "", "Disables authentication"},
    {"user", "add", "no-password interactive", "Adds a new user"},
    {"user", "delete", "", "Deletes a user"},
    {"user", "get", "detail", "Gets detailed information of a user"},
    {"user", "list", "", "Lists all users"},
    {"user", "passwd", "interactive", "Changes password of user"},
    {"user", "grant-role", "", "Grants a role to a user"},
    {"user", "revoke-role", "", "Revokes a role from a user"},
    {"role", "add", "", "Adds a new role"},
    {"role", "delete", "", "Deletes a role"},
    {"role", "get", "", "Gets detailed information of a role"},
    {"role", "list", "", "Lists all roles"},
    {"role", "grant-permission", "prefix from-key", "Grants a key to a role"},
    {"role", "revoke-permission", "prefix from-key", "Revokes a key from a role"},
    {"version", NULL, "", "Prints the version of etcdctl"},
    {"help", NULL, "", "Help about any command"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

int ctl_fail(int code, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("Error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

/* gRPC status code names, as grpc-go prints them. */
static const char *const grpc_code_names[] = {
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"};

const char *ctl_err_text(cetcd_client *cl, int rc, char *buf, size_t n)
{
    const char *msg = cetcd_client_errmsg(cl);
    int code = cetcd_client_grpc_code(cl);

    if (rc == CE_UNREACHABLE || rc == CE_TIMEOUT)
        return "context deadline exceeded";
    if (!msg || !*msg)
        return ce_strerror(rc);
    if (!strncmp(msg, "etcdserver: ", 12) || code <= 0 ||
        code >= (int)(sizeof(grpc_code_names) / sizeof(grpc_code_names[0])))
        return msg;
    snprintf(buf, n, "rpc error: code = %s desc = %s", grpc_code_names[code], msg);
    return buf;
}

int ctl_fail_call(cetcd_client *cl, int rc, const char *prefix)
{
    char buf[1200];
    const char *msg = ctl_err_text(cl, rc, buf, sizeof(buf));

    if (prefix)
        return ctl_fail(EXIT_ERROR, "%s (%s)", prefix, msg);
    return ctl_fail(EXIT_ERROR, "%s", msg);
}

const char *ctl_flag(const struct ctl *c, const char *name)
{
    for (int i = c->n_flags - 1; i >= 0; i--)
        if (!strcmp(c->flags[i].name, name))
            return c->flags[i].value;
    return NULL;
}

bool ctl_bool(const struct ctl *c, const char *name)
{
    const char *v = ctl_flag(c, name);

    return v && (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "TRUE"));
}

static const struct flag_def *find_flag(const char *name, size_t len, char shorthand)
{
    for (size_t i = 0; i < sizeof(flag_defs) / sizeof(flag_defs[0]); i++) {
        const struct flag_def *d = &flag_defs[i];
        if (shorthand ? d->shorthand == shorthand
                      : (strlen(d->name) == len && !strncmp(d->name, name, len)))
            return d;
    }
    return NULL;
}

static int add_flag(struct ctl *c, const char *name, const char *value)
{
    if (c->n_flags == CTL_MAX_FLAGS)
        return ctl_fail(EXIT_BAD_ARGS, "too many flags");
    c->flags[c->n_flags].name = name;
    c->flags[c->n_flags++].value = value;
    return 0;
}

/* Whether the positionals seen so far begin with the command words cmd ("snapshot save"). */
static bool after_words(const struct ctl *c, const char *cmd)
{
    size_t n0 = strcspn(cmd, " ");

    return c->n_args >= 2 && strlen(c->args[0]) == n0 && !strncmp(c->args[0], cmd, n0) &&
           !strcmp(c->args[1], cmd + n0 + 1);
}

/* Parses one flag at argv[*i]; may consume the next argument as its value. */
static int parse_flag(struct ctl *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *eq, *val = NULL;
    const struct flag_def *d;

    if (a[1] == '-') {
        eq = strchr(a + 2, '=');
        d = find_flag(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2), 0);
        if (!d)
            return ctl_fail(EXIT_ERROR, "unknown flag: %.*s", eq ? (int)(eq - a) : (int)strlen(a),
                            a);
        val = eq ? eq + 1 : NULL;
    } else {
        d = find_flag(NULL, 0, a[1]);
        if (!d)
            return ctl_fail(EXIT_ERROR, "unknown shorthand flag: '%c' in %s", a[1], a);
        val = a[2] ? a + 2 + (a[2] == '=') : NULL;
    }
    if (!d->takes_value && !(d->value_after && after_words(c, d->value_after)))
        return add_flag(c, d->name, val ? val : "true");
    if (!val) {
        if (*i + 1 >= argc)
            return ctl_fail(EXIT_ERROR, "flag needs an argument: %s", a);
        val = argv[++*i];
    }
    return add_flag(c, d->name, val);
}

static int parse_argv(struct ctl *c, int argc, char **argv)
{
    bool flags_done = false;
    int rc;

    c->dashdash = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!flags_done && !strcmp(a, "--")) {
            flags_done = true;
            c->dashdash = c->n_args;
            continue;
        }
        if (!flags_done && a[0] == '-' && a[1]) {
            if ((rc = parse_flag(c, argc, argv, &i)))
                return rc;
            continue;
        }
        if (c->n_args == CTL_MAX_ARGS)
            return ctl_fail(EXIT_BAD_ARGS, "too many arguments");
        c->args[c->n_args++] = a;
    }
    return 0;
}

/* "5s", "500ms", "1m30s", "2" (seconds) -> milliseconds; -1 on error. */
static long parse_duration_ms(const char *s)
{
    double total = 0;
    char *end;

    if (!*s)
        return -1;
    while (*s) {
        double v = strtod(s, &end);
        if (end == s)
            return -1;
        s = end;
        if (!strncmp(s, "ms", 2))
            total += v, s += 2;
        else if (!strncmp(s, "us", 2) || !strncmp(s, "µs", 3))
            total += v / 1000, s += (*s == 'u' ? 2 : 3);
        else if (!strncmp(s, "ns", 2))
            total += v / 1e6, s += 2;
        else if (*s == 's')
            total += v * 1000, s++;
        else if (*s == 'm')
            total += v * 60000, s++;
        else if (*s == 'h')
            total += v * 3600000, s++;
        else if (!*s)
            total += v * 1000;
        else
            return -1;
    }
    return (long)total;
}

static const char *flag_or_env(const struct ctl *c, const char *name, const char *env)
{
    const char *v = ctl_flag(c, name);

    return v ? v : getenv(env);
}

static int split_endpoints(struct ctl *c, const char *list)
{
    char *save = NULL, *tok;

    free(c->endpoints_buf);
    c->endpoints_buf = strdup(list);
    if (!c->endpoints_buf)
        return ctl_fail(EXIT_ERROR, "out of memory");
    c->n_endpoints = 0;
    for (tok = strtok_r(c->endpoints_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (c->n_endpoints == CTL_MAX_EPS)
            return ctl_fail(EXIT_BAD_ARGS, "too many endpoints");
        c->endpoints[c->n_endpoints++] = tok;
    }
    if (!c->n_endpoints)
        return ctl_fail(EXIT_BAD_ARGS, "no endpoints given");
    return 0;
}

/* --endpoints is a string slice: repeated flags accumulate (pflag), else ETCDCTL_ENDPOINTS. */
static int endpoints_setting(struct ctl *c)
{
    size_t len = 1;
    char *all;
    int rc;

    for (int i = 0; i < c->n_flags; i++)
        if (!strcmp(c->flags[i].name, "endpoints"))
            len += strlen(c->flags[i].value) + 1;
    if (len == 1) {
        const char *v = getenv("ETCDCTL_ENDPOINTS");
        return split_endpoints(c, v && *v ? v : "127.0.0.1:2379");
    }
    all = calloc(1, len);
    if (!all)
        return ctl_fail(EXIT_ERROR, "out of memory");
    for (int i = 0; i < c->n_flags; i++)
        if (!strcmp(c->flags[i].name, "endpoints")) {
            if (*all)
                strcat(all, ",");
            strcat(all, c->flags[i].value);
        }
    rc = split_endpoints(c, all);
    free(all);
    return rc;
}

static int parse_format(struct ctl *c)
{
    const char *w = flag_or_env(c, "write-out", "ETCDCTL_WRITE_OUT");

    if (!w || !strcmp(w, "simple"))
        c->fmt = OUT_SIMPLE;
    else if (!strcmp(w, "json"))
        c->fmt = OUT_JSON;
    else if (!strcmp(w, "table"))
        c->fmt = OUT_TABLE;
    else if (!strcmp(w, "fields"))
        c->fmt = OUT_FIELDS;
    else
        return ctl_fail(EXIT_BAD_FEATURE, "unsupported output format");
    return 0;
}

static int parse_globals(struct ctl *c)
{
    const char *v;
    int rc;

    if ((rc = endpoints_setting(c)) || (rc = parse_format(c)))
        return rc;
    v = flag_or_env(c, "dial-timeout", "ETCDCTL_DIAL_TIMEOUT");
    c->dial_ms = v ? parse_duration_ms(v) : 2000;
    v = flag_or_env(c, "command-timeout", "ETCDCTL_COMMAND_TIMEOUT");
    c->cmd_ms = v ? parse_duration_ms(v) : 5000;
    if (c->dial_ms < 0 || c->cmd_ms < 0)
        return ctl_fail(EXIT_BAD_ARGS, "invalid duration");
    c->cacert = flag_or_env(c, "cacert", "ETCDCTL_CACERT");
    c->cert = flag_or_env(c, "cert", "ETCDCTL_CERT");
    c->key = flag_or_env(c, "key", "ETCDCTL_KEY");
    c->user = flag_or_env(c, "user", "ETCDCTL_USER");
    c->password = flag_or_env(c, "password", "ETCDCTL_PASSWORD");
    v = flag_or_env(c, "insecure-skip-tls-verify", "ETCDCTL_INSECURE_SKIP_TLS_VERIFY");
    c->insecure_skip_verify = v && strcmp(v, "false");
    v = flag_or_env(c, "hex", "ETCDCTL_HEX");
    c->hex = v && strcmp(v, "false");
    return 0;
}

static int authenticate(struct ctl *c, cetcd_client *cl)
{
    char user[256];
    const char *pass = c->password, *colon = strchr(c->user, ':');
    int rc;

    if (colon && !pass) {
        snprintf(user, sizeof(user), "%.*s", (int)(colon - c->user), c->user);
        pass = colon + 1;
    } else {
        snprintf(user, sizeof(user), "%s", c->user);
    }
    if (!pass)
        return ctl_fail(EXIT_BAD_ARGS, "password not given for user %s", user);
    rc = cetcd_authenticate(cl, user, pass);
    if (rc) {
        const char *msg =
            rc == CE_UNREACHABLE ? "context deadline exceeded" : cetcd_client_errmsg(cl);
        return ctl_fail(EXIT_BAD_CONN, "%s", msg);
    }
    return 0;
}

int ctl_client(struct ctl *c, const char *const *eps, size_t n, cetcd_client **out)
{
    struct cetcd_client_opts o = {
        .endpoints = eps ? eps : c->endpoints,
        .n_endpoints = eps ? n : c->n_endpoints,
        .dial_timeout_ms = c->dial_ms,
        .command_timeout_ms = c->cmd_ms,
        .cacert = c->cacert,
        .cert = c->cert,
        .key = c->key,
        .insecure_skip_verify = c->insecure_skip_verify,
        .use_tls = ctl_flag(c, "insecure-transport") && !ctl_bool(c, "insecure-transport"),
    };
    int rc = cetcd_client_new(&o, out);

    if (rc)
        return ctl_fail(EXIT_BAD_CONN, "%s", ce_strerror(rc));
    if (c->user && (rc = authenticate(c, *out))) {
        cetcd_client_free(*out);
        *out = NULL;
        return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- help */

static void print_global_flags(void)
{
    puts("GLOBAL OPTIONS:\n"
         "      --cacert=\"\"\t\t\t\tverify certificates of TLS-enabled secure servers using this CA bundle\n"
         "      --cert=\"\"\t\t\t\t\tidentify secure client using this TLS certificate file\n"
         "      --command-timeout=5s\t\t\ttimeout for short running command (excluding dial timeout)\n"
         "      --dial-timeout=2s\t\t\t\tdial timeout for client connections\n"
         "      --endpoints=[127.0.0.1:2379]\t\tgRPC endpoints\n"
         "      --hex[=false]\t\t\t\tprint byte strings as hex encoded strings\n"
         "      --insecure-skip-tls-verify[=false]\tskip server certificate verification\n"
         "      --key=\"\"\t\t\t\t\tidentify secure client using this TLS key file\n"
         "      --password=\"\"\t\t\t\tpassword for authentication (if this option is used, --user option shouldn't include password)\n"
         "      --user=\"\"\t\t\t\t\tusername[:password] for authentication\n"
         "  -w, --write-out=\"simple\"\t\t\tset the output format (json, simple, table)");
}

static void print_help(void)
{
    puts("NAME:\n\tcetcdctl - A simple command line client for cetcd and etcd3.\n\n"
         "USAGE:\n\tcetcdctl [flags]\n\n"
         "VERSION:\n\t0.1.0\n\n"
         "API VERSION:\n\t3.4\n\n\nCOMMANDS:");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s%s%s", commands[i].name, commands[i].sub ? " " : "",
                 commands[i].sub ? commands[i].sub : "");
        printf("\t%-24s%s\n", name, commands[i].usage);
    }
    puts("");
    print_global_flags();
}

static void print_command_help(const struct command *cmd)
{
    printf("NAME:\n\t%s%s%s - %s\n\nOPTIONS:\n", cmd->name, cmd->sub ? " " : "",
           cmd->sub ? cmd->sub : "", cmd->usage);
    const char *f = cmd->flags;
    while (*f) {
        size_t n = strcspn(f, " ");
        printf("      --%.*s\n", (int)n, f);
        f += n;
        f += *f == ' ';
    }
    puts("");
    print_global_flags();
}

/* ---------------------------------------------------------------- dispatch */

static const struct command *find_command(struct ctl *c, int *words)
{
    const char *name = c->n_args > 0 ? c->args[0] : NULL;
    const char *sub = c->n_args > 1 ? c->args[1] : NULL;

    if (!name)
        return NULL;
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name))
            continue;
        if (!commands[i].sub) {
            *words = 1;
            return &commands[i];
        }
        if (sub && !strcmp(commands[i].sub, sub)) {
            *words = 2;
            return &commands[i];
        }
    }
    return NULL;
}

static bool is_group(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(commands[i].name, name) && commands[i].sub)
            return true;
    return false;
}

/* Every flag given must be global or belong to the command. */
static int check_flags(const struct ctl *c, const struct command *cmd)
{
    for (int i = 0; i < c->n_flags; i++) {
        const char *name = c->flags[i].name;
        bool ok = false;
        for (int g = 0; g < N_GLOBAL_FLAGS && !ok; g++)
            ok = !strcmp(flag_defs[g].name, name);
        const char *p = strstr(cmd->flags, name);
        size_t n = strlen(name);
        while (p && !ok) {
            ok = (p == cmd->flags || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0);
            p = strstr(p + 1, name);
        }
        if (!ok)
            return ctl_fail(EXIT_ERROR, "unknown flag: --%s", name);
    }
    return 0;
}

static int run(struct ctl *c, const struct command *cmd)
{
    const char *n = cmd->name;

    if (!strcmp(n, "put"))
        return ctl_cmd_put(c);
    if (!strcmp(n, "get"))
        return ctl_cmd_get(c);
    if (!strcmp(n, "del"))
        return ctl_cmd_del(c);
    if (!strcmp(n, "txn"))
        return ctl_cmd_txn(c);
    if (!strcmp(n, "compaction"))
        return ctl_cmd_compaction(c);
    if (!strcmp(n, "lease"))
        return ctl_cmd_lease(c, cmd->sub);
    if (!strcmp(n, "member"))
        return ctl_cmd_member(c, cmd->sub);
    if (!strcmp(n, "endpoint"))
        return ctl_cmd_endpoint(c, cmd->sub);
    if (!strcmp(n, "alarm"))
        return ctl_cmd_alarm(c, cmd->sub);
    if (!strcmp(n, "defrag"))
        return ctl_cmd_defrag(c);
    if (!strcmp(n, "move-leader"))
        return ctl_cmd_move_leader(c);
    if (!strcmp(n, "snapshot"))
        return ctl_cmd_snapshot(c, cmd->sub);
    if (!strcmp(n, "watch"))
        return ctl_cmd_watch(c);
    if (!strcmp(n, "auth"))
        return ctl_cmd_auth(c, cmd->sub);
    if (!strcmp(n, "user"))
        return ctl_cmd_user(c, cmd->sub);
    if (!strcmp(n, "role"))
        return ctl_cmd_role(c, cmd->sub);
    if (!strcmp(n, "version")) {
        puts("cetcdctl version: 0.1.0\nAPI version: 3.4");
        return 0;
    }
    print_help();
    return 0;
}

int main(int argc, char **argv)
{
    static struct ctl c;
    const struct command *cmd;
    int words = 0, rc;

    if ((rc = parse_argv(&c, argc, argv)))
        return rc;
    cmd = find_command(&c, &words);
    if (!cmd) {
        if (c.n_args == 0 || ctl_bool(&c, "help")) {
            print_help();
            return 0;
        }
        if (is_group(c.args[0]) && c.n_args == 1) {
            print_help();
            return 0;
        }
        const char *bad = c.args[c.n_args > 1 && is_group(c.args[0]) ? 1 : 0];
        fprintf(stderr, "Error: unknown command \"%s\" for \"cetcdctl\"\n"
                        "Run 'cetcdctl --help' for usage.\n"
                        "Error: unknown command \"%s\" for \"cetcdctl\"\n", bad, bad);
        return EXIT_ERROR;
    }
    if (ctl_bool(&c, "help")) {
        print_command_help(cmd);
        return 0;
    }
    if ((rc = check_flags(&c, cmd)) || (rc = parse_globals(&c)))
        goto out_free_endpoints;
    memmove(c.args, c.args + words, sizeof(c.args[0]) * (size_t)(c.n_args - words));
    c.n_args -= words;
    if (c.dashdash >= 0)
        c.dashdash = c.dashdash >= words ? c.dashdash - words : 0;
    rc = run(&c, cmd);
    fflush(stdout);
out_free_endpoints:
    free(c.endpoints_buf);
    return rc;
}
