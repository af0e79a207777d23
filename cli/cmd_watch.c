/*
 * cmd_watch.c: cetcdctl watch, as etcdctl 3.4.23 does it:
 *
 *   watch [--prefix] [--rev N] [--prev-kv] <key or prefix> [range_end] [--] [exec-command args..]
 *   watch -i            then lines `watch [--prefix] [--rev N] [--prev-kv] key [end] [-- cmd..]`
 *                       or `progress` on stdin
 *
 * ETCDCTL_WATCH_KEY / ETCDCTL_WATCH_RANGE_END stand in for the key arguments. Every response the
 * stream delivers is shown with display.Watch's format (out.c), after "watch was canceled (why)"
 * on stderr for a cancel and "progress notify: REV" for a progress notification; with an
 * exec-command, the command then runs once per event (exec.c). As clientv3 does, "created"
 * responses are not shown, a refused create (created and canceled, with a reason) is shown as
 * an error response (no header, events null), and any other server cancel without a compact
 * revision closes the watch silently.
 *
 * Ends (etcdctl's codes): a canceled watch -> "Error: watch is canceled by the server", 5; in
 * -i mode stdin's end -> "Error: Error reading watch request line: EOF", 3; a failed
 * exec-command -> 1; -w table -> 4 at the first response; argument errors -> 128 (a bad --rev
 * value: 1). SIGINT, SIGTERM and SIGHUP end it as they end etcdctl, by the signal itself, after
 * the streams are closed and stdout flushed (a self-pipe wakes the poll loop).
 *
 * Departures: `progress` asks the server's revision on a separate request
 * (cetcd_watchset_progress), as the JSON gateway cannot carry it on the watch stream itself;
 * a 'single-quoted' word of an -i line is taken as it is, where etcdctl 3.4's argify cuts it
 * to the line's word count (`args[i][1:len(args)-1]`, a bug).
 */
#include "ctl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUIT (-10000) /* callback return: end with ss->quit (-1: by the signal); not a CE_* */
#define LINE_MAX_BYTES (16u << 20)
#define LINE_MAX_WORDS 64

struct session {
    struct ctl *c;
    cetcd_client *cl;
    cetcd_watchset *ws;
    const char *env_key, *env_range;
    int quit;                /* exit code asked for by a callback; -1: die by the signal */
    struct watch *watches;   /* every watch's context, freed at the end */
};

/* One watch: its callback context. */
struct watch {
    struct watch *next;
    struct session *ss;
    char **exec;             /* NULL or the exec-command, NULL-terminated (list malloc'd) */
    struct cetcd_mem *mem;   /* the words of its -i line */
};

/* The options of one watch, from the command line or an -i line. */
struct wopts {
    bool prefix, prev_kv;
    int64_t rev;
    const char *args[LINE_MAX_WORDS]; /* key [range_end] (after the env key) */
    size_t n_args;
    char **exec;
};

/* ---------------------------------------------------------------- Go-style messages */

/* s as Go's %q, into buf (cut short if it does not fit). */
static const char *goq(char *buf, size_t sz, const char *s)
{
    FILE *f = fmemopen(buf, sz - 1, "w");

    buf[0] = 0;
    if (f) {
        ctl_go_quote_f(f, s, strlen(s));
        fclose(f);
    }
    buf[sz - 1] = 0;
    return buf;
}

/* pflag's int64 flag: strconv.ParseInt(s, 0, 64); *why (static text) on failure. */
static int parse_rev(const char *s, int64_t *v, const char **why)
{
    char *end;

    errno = 0;
    *v = strtoll(s, &end, 0);
    if (!*s || isspace((unsigned char)*s) || *end) {
        *why = "invalid syntax";
        return CE_INVAL;
    }
    if (errno == ERANGE) {
        *why = "value out of range";
        return CE_INVAL;
    }
    return 0;
}

/* `invalid argument "x" for "--rev" flag: strconv.ParseInt: parsing "x": <why>` */
static int bad_rev(int code, const char *s, const char *why)
{
    char q[512];

    goq(q, sizeof(q), s);
    return ctl_fail(code, "invalid argument %s for \"--rev\" flag: strconv.ParseInt: parsing %s: %s",
                    q, q, why);
}

/* ---------------------------------------------------------------- signals */

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    int saved = errno;

    got_signal = sig;
    if (write(sig_pipe[1], "s", 1) < 0) { /* full pipe: a wake-up is already pending */
    }
    errno = saved;
}

static int signals_catch(void)
{
    struct sigaction sa = {0};

    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK))
        return ctl_fail(EXIT_ERROR, "pipe: %s", strerror(errno));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}

/* Ends the process by the signal caught, as the default action would have. */
static int die_by_signal(void)
{
    int sig = got_signal;

    fflush(stdout);
    fflush(stderr);
    signal(sig, SIG_DFL);
    raise(sig);
    return 128 + sig; /* not reached unless the signal is blocked */
}

/* ---------------------------------------------------------------- responses */

/* clientv3's WatchResponse.Err() text for a canceled response. */
static const char *cancel_text(const struct cetcd_watch_resp *r)
{
    if (r->error)
        return *r->cancel_reason ? r->cancel_reason : ce_strerror(r->error);
    if (r->compact_revision)
        return ce_strerror(CE_COMPACTED);
    return *r->cancel_reason ? r->cancel_reason : ce_strerror(CE_FUTURE_REV);
}

static bool is_progress(const struct cetcd_watch_resp *r)
{
    return !r->n_events && !r->canceled && !r->created && !r->compact_revision &&
           r->header.revision != 0;
}

static int on_resp(void *ctx, const struct cetcd_watch_resp *r)
{
    struct watch *w = ctx;
    struct session *ss = w->ss;
    struct cetcd_watch_resp refused;
    int rc;

    if (r->canceled && r->created && !r->error) {
        /* a refused create (e.g. "mvcc: watcher range is empty"): clientv3 turns it into an
         * error response of its own, with no header and no events */
        refused = (struct cetcd_watch_resp){.canceled = true, .error = CE_INVAL,
                                            .cancel_reason = r->cancel_reason};
        r = &refused;
    } else if (r->canceled && !r->error && !r->compact_revision) {
        return 1; /* clientv3 closes these without a word */
    } else if (r->created) {
        return 0;
    }
    if (r->canceled) {
        fflush(stdout);
        fprintf(stderr, "watch was canceled (%s)\n", cancel_text(r));
    }
    if (is_progress(r))
        printf("progress notify: %" PRId64 "\n", r->header.revision);
    if ((rc = ctl_out_watch(ss->c, r)))
        goto out_quit;
    fflush(stdout);
    for (size_t i = 0; w->exec && i < r->n_events; i++) {
        if (got_signal) { /* etcdctl would be gone already */
            rc = -1;
            goto out_quit;
        }
        if ((rc = ctl_exec_event(w->exec, r->header.revision, &r->events[i])))
            goto out_quit;
    }
    return r->canceled ? 1 : 0;

out_quit:
    ss->quit = rc;
    return QUIT;
}

/* ---------------------------------------------------------------- starting a watch */

/* getWatchChan: the key arguments (env key first) become a request; errors are etcdctl's. */
static int build_req(const struct session *ss, const struct wopts *o, struct cetcd_watch_req *r,
                     const char **err)
{
    const char *keys[LINE_MAX_WORDS + 2];
    size_t n = 0;

    if (ss->env_key && *ss->env_key) {
        keys[n++] = ss->env_key;
        if (ss->env_range && *ss->env_range)
            keys[n++] = ss->env_range;
    }
    for (size_t i = 0; i < o->n_args; i++)
        keys[n++] = o->args[i];
    *err = NULL;
    if (n < 1)
        *err = "bad number of arguments";
    else if (n == 2 && o->prefix)
        *err = "`range_end` and `--prefix` are mutually exclusive";
    if (*err)
        return CE_INVAL;
    *r = (struct cetcd_watch_req){.key = keys[0], .key_len = strlen(keys[0]),
                                  .prefix = o->prefix, .start_revision = o->rev,
                                  .prev_kv = o->prev_kv, .require_leader = true};
    if (n == 2) {
        r->range_end = keys[1];
        r->range_end_len = strlen(keys[1]);
    }
    return 0;
}

/* Keeps a copy of the exec-command's word list (the words themselves outlive w). */
static int set_exec(struct watch *w, char *const *exec)
{
    size_t k = 0;

    if (!exec)
        return 0;
    while (exec[k])
        k++;
    w->exec = malloc((k + 1) * sizeof(char *));
    if (!w->exec)
        return CE_NOMEM;
    memcpy(w->exec, exec, (k + 1) * sizeof(char *));
    return 0;
}

/* Opens the stream (req's strings are copied by the library). w is the session's from now. */
static int start_watch(struct session *ss, const struct cetcd_watch_req *req, struct watch *w)
{
    int rc;

    w->ss = ss;
    w->next = ss->watches;
    ss->watches = w;
    if ((rc = cetcd_watchset_add(ss->ws, req, on_resp, w)))
        return ctl_fail(EXIT_ERROR, "%s", ce_strerror(rc));
    return 0;
}

static void session_free(struct session *ss)
{
    cetcd_watchset_free(ss->ws);
    while (ss->watches) {
        struct watch *w = ss->watches;
        ss->watches = w->next;
        cetcd_mem_free(w->mem);
        free(w->exec);
        free(w);
    }
    cetcd_client_free(ss->cl);
}

/* ---------------------------------------------------------------- -i lines */

/* A boolean flag's value (pflag: strconv.ParseBool). */
static int line_bool(const char *name, const char *v, bool *out)
{
    char q[256];

    if (!v || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "t") || !strcmp(v, "T") ||
        !strcmp(v, "TRUE") || !strcmp(v, "True")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "f") || !strcmp(v, "F") ||
        !strcmp(v, "FALSE") || !strcmp(v, "False")) {
        *out = false;
        return 0;
    }
    goq(q, sizeof(q), v);
    return ctl_fail(EXIT_BAD_ARGS, "invalid argument %s for \"%s\" flag: strconv.ParseBool: parsing %s: invalid syntax",
                    q, name, q);
}

/* One "--name[=v]" or "-x[=v]" word of an -i line; *i may move past a separate --rev value. */
static int line_flag(char **w, size_t n, size_t *i, struct wopts *o)
{
    const char *a = w[*i], *eq = strchr(a, '='), *v = eq ? eq + 1 : NULL, *why;
    bool lng = a[1] == '-', ignored;
    size_t len = eq ? (size_t)(eq - a) : strlen(a);

#define IS(s) (len == strlen(s) && !strncmp(a, s, len))
    if (IS("--prefix"))
        return line_bool("--prefix", v, &o->prefix);
    if (IS("--prev-kv"))
        return line_bool("--prev-kv", v, &o->prev_kv);
    if (IS("--interactive") || IS("-i"))
        return line_bool(lng ? "--interactive" : "-i", v, &ignored);
    if (IS("--rev")) {
        if (!v && *i + 1 >= n)
            return ctl_fail(EXIT_BAD_ARGS, "flag needs an argument: --rev");
        v = v ? v : w[++*i];
        return parse_rev(v, &o->rev, &why) ? bad_rev(EXIT_BAD_ARGS, v, why) : 0;
    }
    if (IS("--help") || IS("-h"))
        return ctl_fail(EXIT_BAD_ARGS, "pflag: help requested");
#undef IS
    if (lng)
        return ctl_fail(EXIT_BAD_ARGS, "unknown flag: %.*s", (int)len, a);
    return ctl_fail(EXIT_BAD_ARGS, "unknown shorthand flag: '%c' in %s", a[1], a);
}

/* Parses the words after "watch" as pflag does (parseWatchArgs, interactive). A returned
 * non-zero code has been reported and ends the program, as etcdctl's ExitWithError. */
static int line_opts(const struct session *ss, char **w, size_t n, struct wopts *o)
{
    size_t i, dd = n;
    int rc;

    memset(o, 0, sizeof(*o));
    for (i = 0; i < n && strcmp(w[i], "--"); i++)
        ;
    if (i < n && i == n - 1)
        return ctl_fail(EXIT_BAD_ARGS, "bad number of arguments (found separator --, but no commands)");
    for (i = 0; i < n; i++) {
        if (!strcmp(w[i], "--")) {
            dd = i;
            break;
        }
        if (w[i][0] == '-' && w[i][1]) {
            if ((rc = line_flag(w, n, &i, o)))
                return rc;
        } else {
            o->args[o->n_args++] = w[i];
        }
    }
    if (dd == n && !(ss->env_key && *ss->env_key) && !o->n_args)
        return ctl_fail(EXIT_BAD_ARGS, "bad number of arguments");
    if (dd == n && o->n_args && ss->env_key && *ss->env_key)
        return ctl_fail(EXIT_BAD_ARGS, "bad number of arguments (found conflicting environment key)");
    if (dd < n)
        o->exec = &w[dd + 1];
    return 0;
}

/* One `watch ...` line: a new stream, or "Invalid command" and on, or the program's end. */
static int line_watch(struct session *ss, const char *l, struct watch *w, char **words, size_t n)
{
    struct cetcd_watch_req req;
    struct wopts o;
    const char *err;
    int rc;

    if (n < 2 && !(ss->env_key && *ss->env_key)) {
        fprintf(stderr, "Invalid command %s (command type or key is not provided)\n", l);
        return -1;
    }
    if ((rc = line_opts(ss, words + 1, n - 1, &o)))
        return rc;
    if (build_req(ss, &o, &req, &err)) {
        fprintf(stderr, "Invalid command %s (%s)\n", l, err);
        return -1;
    }
    if (set_exec(w, o.exec))
        return ctl_fail(EXIT_ERROR, "out of memory");
    return start_watch(ss, &req, w);
}

/* One line of stdin (without its "\n"): 0 or -1 to go on, else the exit code. */
static int do_line(struct session *ss, const char *l)
{
    char *words[LINE_MAX_WORDS + 1];
    struct watch *w = calloc(1, sizeof(*w));
    int n, rc = -1;

    if (!w)
        return ctl_fail(EXIT_ERROR, "out of memory");
    n = cetcd_argify(l, &w->mem, words, NULL, LINE_MAX_WORDS);
    if (n < 0) {
        rc = ctl_fail(EXIT_INVALID_INPUT, "%s", n == CE_NOMEM ? "out of memory" : "invalid syntax");
    } else if (n < 1) {
        fprintf(stderr, "Invalid command: %s (watch and progress supported)\n", l);
    } else if (!strcmp(words[0], "watch")) {
        words[n] = NULL;
        rc = line_watch(ss, l, w, words, (size_t)n);
        if (ss->watches == w)
            return rc; /* the session owns w now */
    } else if (!strcmp(words[0], "progress")) {
        rc = cetcd_watchset_progress(ss->ws) == QUIT ? ss->quit : -1;
    } else {
        fprintf(stderr, "Invalid command %s (only support watch)\n", l);
    }
    cetcd_mem_free(w->mem);
    free(w->exec);
    free(w);
    return rc;
}

struct linebuf {
    char *p;
    size_t len, cap;
};

/* Reads what stdin has and runs each complete line; 0 to go on, else the exit code. */
static int read_lines(struct session *ss, struct linebuf *b)
{
    char tmp[4096], *nl;
    ssize_t r = read(STDIN_FILENO, tmp, sizeof(tmp));
    int rc;

    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (r <= 0)
        return ctl_fail(EXIT_INVALID_INPUT, "Error reading watch request line: %s",
                        r == 0 ? "EOF" : strerror(errno));
    if (b->len + (size_t)r + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap < b->len + (size_t)r + 1)
            cap *= 2;
        char *p = cap <= LINE_MAX_BYTES ? realloc(b->p, cap) : NULL;
        if (!p)
            return ctl_fail(EXIT_INVALID_INPUT, "Error reading watch request line: line too long");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, tmp, (size_t)r);
    b->len += (size_t)r;
    b->p[b->len] = 0;
    while ((nl = memchr(b->p, '\n', b->len))) {
        *nl = 0;
        rc = do_line(ss, b->p);
        b->len -= (size_t)(nl + 1 - b->p);
        memmove(b->p, nl + 1, b->len + 1);
        if (rc > 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- the loops */

static int run_interactive(struct session *ss)
{
    const int fds[2] = {sig_pipe[0], STDIN_FILENO};
    struct linebuf b = {0};
    int rc, ready;

    for (;;) {
        rc = cetcd_watchset_poll(ss->ws, fds, 2, -1, &ready);
        if (rc == QUIT) {
            rc = ss->quit;
            break;
        }
        if (rc) {
            rc = ctl_fail(EXIT_ERROR, "%s", ce_strerror(rc));
            break;
        }
        if (ready == 0) {
            rc = -1;
            break;
        }
        if (ready == 1 && (rc = read_lines(ss, &b)))
            break;
    }
    free(b.p);
    return rc;
}

static int run_one(struct session *ss)
{
    int rc, ready;

    while (cetcd_watchset_count(ss->ws) > 0) {
        rc = cetcd_watchset_poll(ss->ws, &sig_pipe[0], 1, -1, &ready);
        if (rc == QUIT)
            return ss->quit;
        if (rc)
            return ctl_fail(EXIT_ERROR, "%s", ce_strerror(rc));
        if (ready == 0)
            return -1;
    }
    return ctl_fail(EXIT_INTERRUPTED, "watch is canceled by the server");
}

/* parseWatchArgs for the command line: key arguments before "--", the exec-command after. */
static int cmd_opts(struct session *ss, struct ctl *c, struct wopts *o, char **exec_buf)
{
    const char *rev = ctl_flag(c, "rev"), *why;
    int dd = c->dashdash;
    bool env = ss->env_key && *ss->env_key;

    memset(o, 0, sizeof(*o));
    if (rev && parse_rev(rev, &o->rev, &why))
        return CE_INVAL; /* checked (and reported) by ctl_cmd_watch */
    o->prefix = ctl_bool(c, "prefix");
    o->prev_kv = ctl_bool(c, "prev-kv");
    if (dd >= 0 && dd == c->n_args)
        return ctl_fail(EXIT_BAD_ARGS, "bad number of arguments (found separator --, but no commands)");
    o->n_args = (size_t)(dd >= 0 ? dd : c->n_args);
    if (o->n_args > LINE_MAX_WORDS)
        return ctl_fail(EXIT_BAD_ARGS, "too many arguments");
    for (size_t i = 0; i < o->n_args; i++)
        o->args[i] = c->args[i];
    if (env && o->n_args)
        return ctl_fail(EXIT_BAD_ARGS, "bad number of arguments (found conflicting environment key)");
    if (dd >= 0) {
        for (int i = dd; i < c->n_args; i++)
            exec_buf[i - dd] = (char *)c->args[i];
        exec_buf[c->n_args - dd] = NULL;
        o->exec = exec_buf;
    }
    return 0;
}

static int watch_cmdline(struct session *ss, struct ctl *c)
{
    char *exec_buf[CTL_MAX_ARGS + 1];
    struct cetcd_watch_req req;
    struct wopts o;
    const char *err;
    struct watch *w;
    int rc;

    if ((rc = cmd_opts(ss, c, &o, exec_buf)))
        return rc;
    if ((rc = ctl_client(c, NULL, 0, &ss->cl)))
        return rc;
    if (build_req(ss, &o, &req, &err))
        return ctl_fail(EXIT_BAD_ARGS, "%s", err);
    if ((rc = cetcd_watchset_new(ss->cl, &ss->ws)))
        return ctl_fail(EXIT_ERROR, "%s", ce_strerror(rc));
    if (!(w = calloc(1, sizeof(*w))) || set_exec(w, o.exec)) {
        free(w);
        return ctl_fail(EXIT_ERROR, "out of memory");
    }
    if ((rc = start_watch(ss, &req, w)))
        return rc;
    return run_one(ss);
}

static int watch_interactive(struct session *ss, struct ctl *c)
{
    int rc;

    if ((rc = ctl_client(c, NULL, 0, &ss->cl)))
        return rc;
    if ((rc = cetcd_watchset_new(ss->cl, &ss->ws)))
        return ctl_fail(EXIT_ERROR, "%s", ce_strerror(rc));
    return run_interactive(ss);
}

int ctl_cmd_watch(struct ctl *c)
{
    struct session ss = {.c = c};
    const char *rev = ctl_flag(c, "rev"), *why;
    char q[512];
    int64_t v;
    int rc;

    if (rev && parse_rev(rev, &v, &why)) /* cobra's flag parsing comes first */
        return bad_rev(EXIT_ERROR, rev, why);
    ss.env_key = getenv("ETCDCTL_WATCH_KEY");
    ss.env_range = getenv("ETCDCTL_WATCH_RANGE_END");
    if (!(ss.env_key && *ss.env_key) && ss.env_range && *ss.env_range)
        return ctl_fail(EXIT_BAD_ARGS, "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END=%s",
                        goq(q, sizeof(q), ss.env_range));
    if ((rc = signals_catch()))
        return rc;
    rc = ctl_bool(c, "interactive") ? watch_interactive(&ss, c) : watch_cmdline(&ss, c);
    session_free(&ss);
    fflush(stdout);
    if (rc == -1 && got_signal)
        rc = die_by_signal();
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    return rc;
}
