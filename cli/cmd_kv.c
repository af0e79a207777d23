/*
 * cmd_kv.c: cetcdctl's key-value commands: put, get, del, txn, compaction. Argument checks,
 * messages and exit codes follow etcdctl 3.4's; results go through out.c.
 */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static int parse_i64(const char *s, int base, int64_t *v)
{
    char *end;

    errno = 0;
    *v = strtoll(s, &end, base);
    return (!*s || *end || errno) ? CE_INVAL : 0;
}

/* Reads all of stdin (put's value when not given as an argument). */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap), *p;

    if (!buf)
        return NULL;
    while ((r = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += r;
        if (n == cap) {
            p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
        }
    }
    *len = n;
    return buf;
}

/* get and del: KEY [RANGE_END]; a range end is refused with --prefix or --from-key. */
static int key_range_args(const struct ctl *c, bool open_ended, const char **key, size_t *key_len,
                          const char **end, size_t *end_len)
{
    if (open_ended && c->n_args > 1)
        return ctl_fail(EXIT_BAD_ARGS, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set");
    *key = c->args[0];
    *key_len = strlen(*key);
    if (c->n_args > 1) {
        *end = c->args[1];
        *end_len = strlen(*end);
    }
    return 0;
}

static int no_table(const struct ctl *c)
{
    if (c->fmt == OUT_TABLE)
        return ctl_fail(EXIT_BAD_FEATURE, "table not supported as output format");
    return 0;
}

int ctl_cmd_put(struct ctl *c)
{
    struct cetcd_put_req req = {0};
    struct cetcd_put_resp resp;
    cetcd_client *cl;
    const char *lease = ctl_flag(c, "lease");
    char *stdin_buf = NULL;
    int rc;

    if (c->n_args == 0)
        return ctl_fail(EXIT_BAD_ARGS, "put command needs 1 argument and input from stdin or 2 arguments");
    req.key = c->args[0];
    req.key_len = strlen(req.key);
    req.ignore_value = ctl_bool(c, "ignore-value");
    req.ignore_lease = ctl_bool(c, "ignore-lease");
    req.prev_kv = ctl_bool(c, "prev-kv");
    if (req.ignore_value && c->n_args > 1)
        return ctl_fail(EXIT_BAD_ARGS, "put command needs only 1 argument when 'ignore-value' is set");
    if (lease && parse_i64(lease, 16, &req.lease)) /* given empty: etcdctl refuses it too */
        return ctl_fail(EXIT_BAD_ARGS, "bad lease ID (strconv.ParseInt: parsing \"%s\": invalid syntax), expecting ID in Hex", lease);
    if (req.ignore_lease && req.lease)
        return ctl_fail(EXIT_BAD_ARGS, "put command needs no lease ID when 'ignore-lease' is set");
    if (c->n_args > 1) {
        req.value = c->args[1];
        req.value_len = strlen(req.value);
    } else if (!req.ignore_value) {
        stdin_buf = read_stdin(&req.value_len);
        if (!stdin_buf)
            return ctl_fail(EXIT_ERROR, "out of memory");
        req.value = stdin_buf;
    }
    if ((rc = no_table(c)) || (rc = ctl_client(c, NULL, 0, &cl)))
        goto out_free_stdin;
    rc = cetcd_put(cl, &req, &resp);
    if (rc) {
        rc = ctl_fail_call(cl, rc, NULL);
    } else {
        ctl_out_put(c, &resp);
        cetcd_put_resp_free(&resp);
    }
    cetcd_client_free(cl);
out_free_stdin:
    free(stdin_buf);
    return rc;
}

static int parse_sort(const struct ctl *c, struct cetcd_range_req *r)
{
    static const char *const targets[] = {"KEY", "VERSION", "CREATE", "MODIFY", "VALUE"};
    const char *order = ctl_flag(c, "order"), *by = ctl_flag(c, "sort-by");
    char up[32];
    bool found = false;

    if (order && *order) {
        snprintf(up, sizeof(up), "%s", order);
        for (char *p = up; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        if (!strcmp(up, "ASCEND"))
            r->sort_order = CETCD_SORT_ASCEND;
        else if (!strcmp(up, "DESCEND"))
            r->sort_order = CETCD_SORT_DESCEND;
        else
            return ctl_fail(EXIT_BAD_FEATURE, "bad sort order %s", order);
    }
    if (by && *by) {
        snprintf(up, sizeof(up), "%s", by);
        for (char *p = up; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        for (int i = 0; i < 5; i++)
            if (!strcmp(up, targets[i])) {
                r->sort_target = (enum cetcd_sort_target)i;
                found = true;
            }
        if (!found)
            return ctl_fail(EXIT_BAD_FEATURE, "bad sort target %s", by);
    }
    if (r->sort_target == CETCD_SORT_KEY && r->sort_order == CETCD_SORT_ASCEND)
        r->sort_order = CETCD_SORT_NONE; /* clientv3.WithSort: the server's default order */
    return 0;
}

static int parse_range_flags(const struct ctl *c, struct cetcd_range_req *r)
{
    const char *v;

    r->prefix = ctl_bool(c, "prefix");
    r->from_key = ctl_bool(c, "from-key");
    r->keys_only = ctl_bool(c, "keys-only");
    r->count_only = ctl_bool(c, "count-only");
    if (r->prefix && r->from_key)
        return ctl_fail(EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one");
    if ((v = ctl_flag(c, "limit")) && parse_i64(v, 10, &r->limit))
        return ctl_fail(EXIT_BAD_ARGS, "invalid argument \"%s\" for \"--limit\" flag", v);
    if ((v = ctl_flag(c, "rev")) && parse_i64(v, 10, &r->revision))
        return ctl_fail(EXIT_BAD_ARGS, "invalid argument \"%s\" for \"--rev\" flag", v);
    if ((v = ctl_flag(c, "consistency"))) {
        if (!strcmp(v, "s"))
            r->serializable = true;
        else if (strcmp(v, "l"))
            return ctl_fail(EXIT_BAD_FEATURE, "unknown consistency flag \"%s\"", v);
    }
    return parse_sort(c, r);
}

int ctl_cmd_get(struct ctl *c)
{
    struct cetcd_range_req req = {0};
    struct cetcd_range_resp resp;
    cetcd_client *cl;
    int rc;

    if (c->n_args < 1 || c->n_args > 2)
        return ctl_fail(EXIT_BAD_ARGS, "get command needs one argument as key and an optional argument as range_end");
    if ((rc = parse_range_flags(c, &req)))
        return rc;
    if ((rc = key_range_args(c, req.prefix || req.from_key, &req.key, &req.key_len,
                             &req.range_end, &req.range_end_len)))
        return rc;
    if ((rc = no_table(c)) || (rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    rc = cetcd_range(cl, &req, &resp);
    if (rc) {
        rc = ctl_fail_call(cl, rc, NULL);
    } else {
        ctl_out_get(c, &resp, ctl_bool(c, "print-value-only"));
        cetcd_range_resp_free(&resp);
    }
    cetcd_client_free(cl);
    return rc;
}

int ctl_cmd_del(struct ctl *c)
{
    struct cetcd_delete_req req = {0};
    struct cetcd_delete_resp resp;
    cetcd_client *cl;
    int rc;

    if (c->n_args < 1 || c->n_args > 2)
        return ctl_fail(EXIT_BAD_ARGS, "del command needs one argument as key and an optional argument as range_end");
    req.prefix = ctl_bool(c, "prefix");
    req.from_key = ctl_bool(c, "from-key");
    req.prev_kv = ctl_bool(c, "prev-kv");
    if (req.prefix && req.from_key)
        return ctl_fail(EXIT_BAD_ARGS, "`--prefix` and `--from-key` cannot be set at the same time, choose one");
    if ((rc = key_range_args(c, req.prefix || req.from_key, &req.key, &req.key_len,
                             &req.range_end, &req.range_end_len)))
        return rc;
    if ((rc = no_table(c)) || (rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    rc = cetcd_delete(cl, &req, &resp);
    if (rc) {
        rc = ctl_fail_call(cl, rc, NULL);
    } else {
        ctl_out_del(c, &resp);
        cetcd_delete_resp_free(&resp);
    }
    cetcd_client_free(cl);
    return rc;
}

/* ---------------------------------------------------------------- txn */

#define TXN_MAX 128

struct txn_input {
    struct cetcd_mem *mem;
    struct cetcd_compare cmps[TXN_MAX];
    struct cetcd_op succ[TXN_MAX], fail[TXN_MAX];
    size_t n_cmps, n_succ, n_fail;
    char *line;
    size_t cap;
};

/* Reads one line; like Go's ReadString('\n'), a last line without '\n' is an EOF error.
 * Returns 1 for a non-empty trimmed line, 0 for an empty one, -1 on EOF. */
static int read_line(struct txn_input *in, char **out)
{
    ssize_t n = getline(&in->line, &in->cap, stdin);
    char *s;

    if (n < 0 || in->line[n - 1] != '\n')
        return -1;
    s = in->line;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    for (n = (ssize_t)strlen(s); n > 0 && strchr(" \t\r\n", s[n - 1]); n--)
        s[n - 1] = 0;
    *out = s;
    return *s ? 1 : 0;
}

static int read_compares(struct txn_input *in)
{
    char *line;
    int r;

    while ((r = read_line(in, &line)) == 1) {
        if (in->n_cmps == TXN_MAX)
            return ctl_fail(EXIT_INVALID_INPUT, "too many compares");
        if (cetcd_txn_parse_compare(line, &in->mem, &in->cmps[in->n_cmps++]))
            return ctl_fail(EXIT_INVALID_INPUT, "malformed comparison: %s", line);
    }
    return r < 0 ? ctl_fail(EXIT_INVALID_INPUT, "EOF") : 0;
}

static int read_ops(struct txn_input *in, struct cetcd_op *ops, size_t *n)
{
    char *line;
    int r;

    while ((r = read_line(in, &line)) == 1) {
        if (*n == TXN_MAX)
            return ctl_fail(EXIT_INVALID_INPUT, "too many operations");
        if (cetcd_txn_parse_op(line, &in->mem, &ops[(*n)++]))
            return ctl_fail(EXIT_INVALID_INPUT, "invalid txn request: %s", line);
    }
    return r < 0 ? ctl_fail(EXIT_INVALID_INPUT, "EOF") : 0;
}

static int read_txn(struct txn_input *in, bool interactive)
{
    int rc;

    if (interactive)
        puts("compares:");
    if ((rc = read_compares(in)))
        return rc;
    if (interactive)
        puts("success requests (get, put, del):");
    if ((rc = read_ops(in, in->succ, &in->n_succ)))
        return rc;
    if (interactive)
        puts("failure requests (get, put, del):");
    return read_ops(in, in->fail, &in->n_fail);
}

int ctl_cmd_txn(struct ctl *c)
{
    static struct txn_input in;
    struct cetcd_txn_req req;
    struct cetcd_txn_resp resp;
    cetcd_client *cl;
    int rc;

    if (c->n_args != 0)
        return ctl_fail(EXIT_BAD_ARGS, "txn command does not accept argument");
    if ((rc = no_table(c)) || (rc = read_txn(&in, ctl_bool(c, "interactive"))))
        goto out_free_input;
    req = (struct cetcd_txn_req){in.cmps, in.n_cmps, in.succ, in.n_succ, in.fail, in.n_fail};
    if ((rc = ctl_client(c, NULL, 0, &cl)))
        goto out_free_input;
    rc = cetcd_txn(cl, &req, &resp);
    if (rc) {
        rc = ctl_fail_call(cl, rc, NULL);
    } else {
        ctl_out_txn(c, &resp);
        cetcd_txn_resp_free(&resp);
    }
    cetcd_client_free(cl);
out_free_input:
    cetcd_mem_free(in.mem);
    free(in.line);
    return rc;
}

int ctl_cmd_compaction(struct ctl *c)
{
    struct cetcd_header_resp resp;
    cetcd_client *cl;
    int64_t rev;
    int rc;

    if (c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "compaction command needs 1 argument");
    if (parse_i64(c->args[0], 10, &rev))
        return ctl_fail(EXIT_ERROR, "strconv.ParseInt: parsing \"%s\": invalid syntax", c->args[0]);
    if ((rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    rc = cetcd_compact(cl, rev, ctl_bool(c, "physical"), &resp);
    if (rc) {
        rc = ctl_fail_call(cl, rc, NULL);
    } else {
        printf("compacted revision %" PRId64 "\n", rev);
        cetcd_header_resp_free(&resp);
    }
    cetcd_client_free(cl);
    return rc;
}
