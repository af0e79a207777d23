/*
 * txn_parse.c: etcdctl's interactive txn syntax, parsed into client structs.
 *
 * A compare line is `<target>("<key>") <op> "<value>"`, target one of ver|version, c|create,
 * m|mod, val|value, lease; op one of = != < >; key and value are Go-quoted strings (\" \\ \n \t
 * \xNN \NNN escapes). A request line is `put|get|del` with etcdctl's flags and 1-2 arguments; an
 * argument is a bare word, a 'single-quoted' string or a "Go-quoted" string (cetcd_argify, which
 * `cetcdctl watch -i` uses for its lines too). Everything the parsed structs point to lives in
 * the caller's arena.
 */
#include "client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Decodes a Go-quoted string starting at *p (on the opening quote); advances past it. */
static int unquote(const char **p, struct cetcd_mem **m, char **out, size_t *outlen)
{
    const char *s = *p + 1;
    size_t n = 0;
    char *buf;

    if (**p != '"')
        return CE_INVAL;
    buf = cetcd_mem_alloc(m, strlen(s) + 1);
    if (!buf)
        return CE_NOMEM;
    for (; *s && *s != '"'; s++) {
        if (*s != '\\') {
            buf[n++] = *s;
            continue;
        }
        s++;
        switch (*s) {
        case 'n': buf[n++] = '\n'; break;
        case 't': buf[n++] = '\t'; break;
        case 'r': buf[n++] = '\r'; break;
        case 'a': buf[n++] = '\a'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'v': buf[n++] = '\v'; break;
        case '\\': case '"': case '\'': buf[n++] = *s; break;
        case 'x': {
            char hex[3] = {0};
            if (!s[1] || !s[2])
                return CE_INVAL;
            hex[0] = s[1];
            hex[1] = s[2];
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end)
                return CE_INVAL;
            buf[n++] = (char)v;
            s += 2;
            break;
        }
        default:
            if (*s >= '0' && *s <= '7' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' &&
                s[2] <= '7') {
                buf[n++] = (char)(((s[0] - '0') << 6) | ((s[1] - '0') << 3) | (s[2] - '0'));
                s += 2;
                break;
            }
            return CE_INVAL;
        }
    }
    if (*s != '"')
        return CE_INVAL;
    buf[n] = 0;
    *out = buf;
    *outlen = n;
    *p = s + 1;
    return 0;
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    return s;
}

static int parse_target(const char *s, size_t n, enum cetcd_cmp_target *t)
{
    static const struct {
        const char *word;
        enum cetcd_cmp_target t;
    } words[] = {{"ver", CETCD_CMP_VERSION}, {"version", CETCD_CMP_VERSION},
                 {"c", CETCD_CMP_CREATE},    {"create", CETCD_CMP_CREATE},
                 {"m", CETCD_CMP_MOD},       {"mod", CETCD_CMP_MOD},
                 {"val", CETCD_CMP_VALUE},   {"value", CETCD_CMP_VALUE},
                 {"lease", CETCD_CMP_LEASE}};

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i].word) == n && !memcmp(words[i].word, s, n)) {
            *t = words[i].t;
            return 0;
        }
    return CE_INVAL;
}

static int parse_cmp_op(const char **p, enum cetcd_cmp_result *r)
{
    const char *s = *p;

    if (s[0] == '!' && s[1] == '=') {
        *r = CETCD_CMP_NOT_EQUAL;
        *p = s + 2;
    } else if (*s == '=' || *s == '<' || *s == '>') {
        *r = *s == '=' ? CETCD_CMP_EQUAL : *s == '<' ? CETCD_CMP_LESS : CETCD_CMP_GREATER;
        *p = s + 1;
    } else {
        return CE_INVAL;
    }
    return (**p == ' ' || **p == '\t') ? 0 : CE_INVAL;
}

static int parse_int(const char *s, int base, int64_t *v)
{
    char *end;

    if (!*s)
        return CE_INVAL;
    errno = 0;
    *v = strtoll(s, &end, base);
    return (errno || *end) ? CE_INVAL : 0;
}

int cetcd_txn_parse_compare(const char *line, struct cetcd_mem **mem, struct cetcd_compare *out)
{
    const char *s = skip_ws(line), *lp = strchr(s, '(');
    char *key, *val;
    size_t klen, vlen;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!lp || parse_target(s, (size_t)(lp - s), &out->target))
        return CE_INVAL;
    s = lp + 1;
    if ((rc = unquote(&s, mem, &key, &klen)))
        return rc;
    if (*s++ != ')')
        return CE_INVAL;
    s = skip_ws(s);
    if (parse_cmp_op(&s, &out->result))
        return CE_INVAL;
    s = skip_ws(s);
    if ((rc = unquote(&s, mem, &val, &vlen)))
        return rc;
    if (*skip_ws(s))
        return CE_INVAL;
    out->key = key;
    out->key_len = klen;
    if (out->target == CETCD_CMP_VALUE) {
        out->value = val;
        out->value_len = vlen;
        return 0;
    }
    if (out->target == CETCD_CMP_LEASE && parse_int(val, 10, &out->number) == 0)
        return 0;
    return parse_int(val, out->target == CETCD_CMP_LEASE ? 16 : 10, &out->number);
}

/* ---------------------------------------------------------------- request lines */

#define MAX_ARGS 16

struct args {
    char *v[MAX_ARGS];
    size_t len[MAX_ARGS];
    size_t n;
};

int cetcd_argify(const char *s, struct cetcd_mem **m, char **argv, size_t *lens, size_t max)
{
    size_t n = 0, len;
    int rc;

    for (s = skip_ws(s); *s; s = skip_ws(s)) {
        if (n == max)
            return CE_INVAL;
        if (*s == '"') {
            if ((rc = unquote(&s, m, &argv[n], &len)))
                return rc;
        } else if (*s == '\'') {
            const char *e = strchr(s + 1, '\'');
            if (!e)
                return CE_INVAL;
            len = (size_t)(e - s - 1);
            argv[n] = cetcd_mem_dup(m, s + 1, len);
            s = e + 1;
        } else {
            const char *e = s;
            while (*e && *e != ' ' && *e != '\t' && *e != '\r' && *e != '\n')
                e++;
            len = (size_t)(e - s);
            argv[n] = cetcd_mem_dup(m, s, len);
            s = e;
        }
        if (!argv[n])
            return CE_NOMEM;
        if (lens)
            lens[n] = len;
        n++;
    }
    return (int)n;
}

/* Splits a line into arguments as etcdctl's argify does. */
static int argify(const char *s, struct cetcd_mem **m, struct args *a)
{
    int n = cetcd_argify(s, m, a->v, a->len, MAX_ARGS);

    if (n < 0)
        return n;
    a->n = (size_t)n;
    return 0;
}

/* "--name" or "--name=value": returns the value ("" if none) when arg names this flag. */
static const char *flag(const char *arg, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(arg, "--", 2) || strncmp(arg + 2, name, n))
        return NULL;
    if (arg[2 + n] == 0)
        return "";
    return arg[2 + n] == '=' ? arg + 3 + n : NULL;
}

static bool bool_flag(const char *arg, const char *name, bool *v)
{
    const char *val = flag(arg, name);

    if (!val)
        return false;
    *v = !*val || !strcmp(val, "true");
    return true;
}

static int parse_put(struct args *a, struct cetcd_put_req *p)
{
    const char *pos[2];
    size_t pl[2], np = 0;
    const char *v;

    for (size_t i = 1; i < a->n; i++) {
        if (bool_flag(a->v[i], "prev-kv", &p->prev_kv) ||
            bool_flag(a->v[i], "ignore-value", &p->ignore_value) ||
            bool_flag(a->v[i], "ignore-lease", &p->ignore_lease))
            continue;
        if ((v = flag(a->v[i], "lease"))) {
            if (parse_int(v, 16, &p->lease))
                return CE_INVAL;
            continue;
        }
        if (a->v[i][0] == '-' && a->v[i][1] == '-')
            return CE_INVAL;
        if (np == 2)
            return CE_INVAL;
        pos[np] = a->v[i];
        pl[np++] = a->len[i];
    }
    if (np < 1 || (np < 2 && !p->ignore_value))
        return CE_INVAL;
    p->key = pos[0];
    p->key_len = pl[0];
    if (np == 2) {
        p->value = pos[1];
        p->value_len = pl[1];
    }
    return 0;
}

static int parse_sort(const char *v, struct cetcd_range_req *r, bool order)
{
    static const char *const targets[] = {"KEY", "VERSION", "CREATE", "MODIFY", "VALUE"};

    if (order) {
        if (!strcmp(v, "ASCEND"))
            r->sort_order = CETCD_SORT_ASCEND;
        else if (!strcmp(v, "DESCEND"))
            r->sort_order = CETCD_SORT_DESCEND;
        else
            return *v ? CE_INVAL : 0;
        return 0;
    }
    for (int i = 0; i < 5; i++)
        if (!strcmp(v, targets[i])) {
            r->sort_target = (enum cetcd_sort_target)i;
            return 0;
        }
    return *v ? CE_INVAL : 0;
}

static int range_flag(const char *arg, struct cetcd_range_req *r)
{
    const char *v;

    if (bool_flag(arg, "prefix", &r->prefix) || bool_flag(arg, "from-key", &r->from_key) ||
        bool_flag(arg, "keys-only", &r->keys_only) || bool_flag(arg, "count-only", &r->count_only))
        return 0;
    if ((v = flag(arg, "limit")))
        return parse_int(v, 10, &r->limit);
    if ((v = flag(arg, "rev")))
        return parse_int(v, 10, &r->revision);
    if ((v = flag(arg, "sort-by")))
        return parse_sort(v, r, false);
    if ((v = flag(arg, "order")))
        return parse_sort(v, r, true);
    if ((v = flag(arg, "consistency"))) {
        r->serializable = !strcmp(v, "s");
        return (!strcmp(v, "s") || !strcmp(v, "l")) ? 0 : CE_INVAL;
    }
    if ((v = flag(arg, "print-value-only")))
        return 0;
    return CE_INVAL;
}

/* Positional arguments key [range_end] for get and del. */
static int key_args(struct args *a, size_t i, const char **pos, size_t *pl, size_t *np)
{
    if (*np == 2)
        return CE_INVAL;
    pos[*np] = a->v[i];
    pl[(*np)++] = a->len[i];
    return 0;
}

static int parse_get(struct args *a, struct cetcd_range_req *r)
{
    const char *pos[2];
    size_t pl[2], np = 0;

    for (size_t i = 1; i < a->n; i++) {
        int rc = (a->v[i][0] == '-' && a->v[i][1] == '-') ? range_flag(a->v[i], r)
                                                          : key_args(a, i, pos, pl, &np);
        if (rc)
            return rc;
    }
    if (np < 1 || (np == 2 && (r->prefix || r->from_key)) || (r->prefix && r->from_key))
        return CE_INVAL;
    r->key = pos[0];
    r->key_len = pl[0];
    if (np == 2) {
        r->range_end = pos[1];
        r->range_end_len = pl[1];
    }
    return 0;
}

static int parse_del(struct args *a, struct cetcd_delete_req *d)
{
    const char *pos[2];
    size_t pl[2], np = 0;

    for (size_t i = 1; i < a->n; i++) {
        if (bool_flag(a->v[i], "prefix", &d->prefix) ||
            bool_flag(a->v[i], "from-key", &d->from_key) ||
            bool_flag(a->v[i], "prev-kv", &d->prev_kv))
            continue;
        if (a->v[i][0] == '-' && a->v[i][1] == '-')
            return CE_INVAL;
        if (key_args(a, i, pos, pl, &np))
            return CE_INVAL;
    }
    if (np < 1 || (np == 2 && (d->prefix || d->from_key)) || (d->prefix && d->from_key))
        return CE_INVAL;
    d->key = pos[0];
    d->key_len = pl[0];
    if (np == 2) {
        d->range_end = pos[1];
        d->range_end_len = pl[1];
    }
    return 0;
}

int cetcd_txn_parse_op(const char *line, struct cetcd_mem **mem, struct cetcd_op *out)
{
    struct args a;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = argify(line, mem, &a)))
        return rc;
    if (a.n < 2)
        return CE_INVAL;
    if (!strcmp(a.v[0], "put")) {
        out->type = CETCD_OP_PUT;
        return parse_put(&a, &out->u.put);
    }
    if (!strcmp(a.v[0], "get")) {
        out->type = CETCD_OP_RANGE;
        return parse_get(&a, &out->u.range);
    }
    if (!strcmp(a.v[0], "del")) {
        out->type = CETCD_OP_DELETE;
        return parse_del(&a, &out->u.del);
    }
    return CE_INVAL;
}
