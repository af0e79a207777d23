/*
 * out.c: cetcdctl's output formats, byte-compatible with etcdctl 3.4.
 *
 * simple: etcdctl's printer_simple (key line, value line; "OK"; deleted count; SUCCESS/FAILURE).
 * json:   Go's encoding/json applied to etcdctl's response structs: field order of the Go struct,
 *         zero fields left out where the struct says omitempty, numbers unquoted (uint64 too),
 *         []byte as standard base64, strings HTML-escaped (<, >, & as \u003c...).
 * fields: etcdctl's printer_fields ("Key" : "foo" lines, Go %q quoting) for put/get/del/txn
 *         and watch.
 * table:  olekukonko/tablewriter as etcdctl configures it: every column as wide as its widest
 *         cell, headers centred, cells right-aligned, "+---+" borders.
 */
#include "ctl.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- JSON writer */

static void ctl_jw_key(struct jw *w, const char *key)
{
    if (w->need_comma)
        fputc(',', w->f);
    w->need_comma = true;
    if (key)
        fprintf(w->f, "\"%s\":", key);
}

void ctl_jw_obj(struct jw *w, const char *key)
{
    ctl_jw_key(w, key);
    fputc('{', w->f);
    w->need_comma = false;
}

void ctl_jw_end_obj(struct jw *w)
{
    fputc('}', w->f);
    w->need_comma = true;
}

void ctl_jw_arr(struct jw *w, const char *key)
{
    ctl_jw_key(w, key);
    fputc('[', w->f);
    w->need_comma = false;
}

void ctl_jw_end_arr(struct jw *w)
{
    fputc(']', w->f);
    w->need_comma = true;
}

void ctl_jw_u64(struct jw *w, const char *key, uint64_t v)
{
    ctl_jw_key(w, key);
    fprintf(w->f, "%" PRIu64, v);
}

void ctl_jw_i64(struct jw *w, const char *key, int64_t v)
{
    ctl_jw_key(w, key);
    fprintf(w->f, "%" PRId64, v);
}

void ctl_jw_bool(struct jw *w, const char *key, bool v)
{
    ctl_jw_key(w, key);
    fputs(v ? "true" : "false", w->f);
}

void ctl_jw_null(struct jw *w, const char *key)
{
    ctl_jw_key(w, key);
    fputs("null", w->f);
}

/* Length of a valid UTF-8 sequence at s (max n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        len = 2, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        len = 3, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void ctl_jw_str(struct jw *w, const char *key, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;

    ctl_jw_key(w, key);
    fputc('"', w->f);
    for (size_t i = 0; i < n;) {
        unsigned char ch = s[i];
        size_t l;
        if (ch == '"' || ch == '\\') {
            fputc('\\', w->f);
            fputc(ch, w->f);
        } else if (ch == '\n') {
            fputs("\\n", w->f);
        } else if (ch == '\r') {
            fputs("\\r", w->f);
        } else if (ch == '\t') {
            fputs("\\t", w->f);
        } else if (ch < 0x20 || ch == '<' || ch == '>' || ch == '&') {
            fprintf(w->f, "\\u00%02x", ch);
        } else if (ch >= 0x80) {
            l = utf8_len(s + i, n - i);
            if (!l) {
                fputs("\\ufffd", w->f);
                i++;
                continue;
            }
            if (l == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 &&
                (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
                fprintf(w->f, "\\u202%c", s[i + 2] == 0xa8 ? '8' : '9');
            else
                fwrite(s + i, 1, l, w->f);
            i += l;
            continue;
        } else {
            fputc(ch, w->f);
        }
        i++;
    }
    fputc('"', w->f);
}

void ctl_jw_b64(struct jw *w, const char *key, const char *s, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)s;
    size_t i;

    ctl_jw_key(w, key);
    fputc('"', w->f);
    for (i = 0; i + 2 < n; i += 3) {
        fputc(t[p[i] >> 2], w->f);
        fputc(t[((p[i] & 3) << 4) | (p[i + 1] >> 4)], w->f);
        fputc(t[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)], w->f);
        fputc(t[p[i + 2] & 63], w->f);
    }
    if (n - i == 1)
        fprintf(w->f, "%c%c==", t[p[i] >> 2], t[(p[i] & 3) << 4]);
    else if (n - i == 2)
        fprintf(w->f, "%c%c%c=", t[p[i] >> 2], t[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
                t[(p[i + 1] & 15) << 2]);
    fputc('"', w->f);
}

void ctl_jw_header_flat(struct jw *w, const struct cetcd_header *h)
{
    if (h->cluster_id)
        ctl_jw_u64(w, "cluster_id", h->cluster_id);
    if (h->member_id)
        ctl_jw_u64(w, "member_id", h->member_id);
    if (h->revision)
        ctl_jw_i64(w, "revision", h->revision);
    if (h->raft_term)
        ctl_jw_u64(w, "raft_term", h->raft_term);
}

void ctl_jw_header(struct jw *w, const struct cetcd_header *h)
{
    if (!h->present)
        return;
    ctl_jw_obj(w, "header");
    ctl_jw_header_flat(w, h);
    ctl_jw_end_obj(w);
}

void ctl_jw_kv(struct jw *w, const char *key, const struct cetcd_kv *kv)
{
    ctl_jw_obj(w, key);
    if (kv->key_len)
        ctl_jw_b64(w, "key", kv->key, kv->key_len);
    if (kv->create_revision)
        ctl_jw_i64(w, "create_revision", kv->create_revision);
    if (kv->mod_revision)
        ctl_jw_i64(w, "mod_revision", kv->mod_revision);
    if (kv->version)
        ctl_jw_i64(w, "version", kv->version);
    if (kv->value_len)
        ctl_jw_b64(w, "value", kv->value, kv->value_len);
    if (kv->lease)
        ctl_jw_i64(w, "lease", kv->lease);
    ctl_jw_end_obj(w);
}

static void ctl_jw_kvs(struct jw *w, const char *key, const struct cetcd_kv *kvs, size_t n)
{
    if (!n)
        return;
    ctl_jw_arr(w, key);
    for (size_t i = 0; i < n; i++)
        ctl_jw_kv(w, NULL, &kvs[i]);
    ctl_jw_end_arr(w);
}

void ctl_jw_range_body(struct jw *w, const struct cetcd_range_resp *r)
{
    ctl_jw_header(w, &r->header);
    ctl_jw_kvs(w, "kvs", r->kvs, r->n_kvs);
    if (r->more)
        ctl_jw_bool(w, "more", true);
    if (r->count)
        ctl_jw_i64(w, "count", r->count);
}

void ctl_jw_put_body(struct jw *w, const struct cetcd_put_resp *r)
{
    ctl_jw_header(w, &r->header);
    if (r->prev_kv)
        ctl_jw_kv(w, "prev_kv", r->prev_kv);
}

void ctl_jw_del_body(struct jw *w, const struct cetcd_delete_resp *r)
{
    ctl_jw_header(w, &r->header);
    if (r->deleted)
        ctl_jw_i64(w, "deleted", r->deleted);
    ctl_jw_kvs(w, "prev_kvs", r->prev_kvs, r->n_prev_kvs);
}

void ctl_jw_txn_body(struct jw *w, const struct cetcd_txn_resp *r)
{
    static const char *const names[] = {"ResponseRange", "ResponsePut", "ResponseDeleteRange",
                                        "ResponseTxn"};

    ctl_jw_header(w, &r->header);
    if (r->succeeded)
        ctl_jw_bool(w, "succeeded", true);
    if (!r->n_responses)
        return;
    ctl_jw_arr(w, "responses");
    for (size_t i = 0; i < r->n_responses; i++) {
        const struct cetcd_op_resp *op = &r->responses[i];
        ctl_jw_obj(w, NULL);
        ctl_jw_obj(w, "Response");
        ctl_jw_obj(w, names[op->type]);
        if (op->type == CETCD_OP_RANGE)
            ctl_jw_range_body(w, &op->u.range);
        else if (op->type == CETCD_OP_PUT)
            ctl_jw_put_body(w, &op->u.put);
        else if (op->type == CETCD_OP_DELETE)
            ctl_jw_del_body(w, &op->u.del);
        else
            ctl_jw_txn_body(w, op->u.txn);
        ctl_jw_end_obj(w);
        ctl_jw_end_obj(w);
        ctl_jw_end_obj(w);
    }
    ctl_jw_end_arr(w);
}

/* ---------------------------------------------------------------- fields format */

void ctl_go_errno(int err, char *buf, size_t sz)
{
    snprintf(buf, sz, "%s", strerror(err));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');
}

/* Go's strconv.Quote (%q): printable runes as they are, the rest escaped. */
void ctl_go_quote_f(FILE *f, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;

    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char ch = s[i];
        static const char esc[] = "\a\b\f\n\r\t\v", name[] = "abfnrtv";
        const char *e = ch ? strchr(esc, ch) : NULL;
        if (ch == '"' || ch == '\\') {
            fprintf(f, "\\%c", ch);
        } else if (e) {
            fprintf(f, "\\%c", name[e - esc]);
        } else if (ch < 0x20 || ch == 0x7f) {
            fprintf(f, "\\x%02x", ch);
        } else if (ch >= 0x80) {
            size_t l = utf8_len(s + i, n - i);
            uint32_t cp;
            if (!l) {
                fprintf(f, "\\x%02x", ch);
                i++;
                continue;
            }
            if (l == 2)
                cp = (uint32_t)(s[i] & 0x1f) << 6 | (s[i + 1] & 0x3f);
            else if (l == 3)
                cp = (uint32_t)(s[i] & 0x0f) << 12 | (uint32_t)(s[i + 1] & 0x3f) << 6 |
                     (s[i + 2] & 0x3f);
            else
                cp = 0x10000; /* beyond the BMP: treated as printable */
            if ((cp >= 0x80 && cp <= 0xa0) || cp == 0xad || cp == 0x2028 || cp == 0x2029 ||
                cp == 0xfeff)
                fprintf(f, "\\u%04x", cp);
            else
                fwrite(s + i, 1, l, f);
            i += l;
            continue;
        } else {
            fputc(ch, f);
        }
        i++;
    }
    fputc('"', f);
}

void ctl_go_quote(const char *s, size_t n)
{
    ctl_go_quote_f(stdout, s, n);
}

void ctl_fields_hdr(const struct cetcd_header *h)
{
    printf("\"ClusterID\" : %" PRIu64 "\n\"MemberID\" : %" PRIu64 "\n\"Revision\" : %" PRId64
           "\n\"RaftTerm\" : %" PRIu64 "\n",
           h->cluster_id, h->member_id, h->revision, h->raft_term);
}

static void fields_kv(const char *pfx, const struct cetcd_kv *kv)
{
    printf("\"%sKey\" : ", pfx);
    ctl_go_quote(kv->key, kv->key_len);
    printf("\n\"%sCreateRevision\" : %" PRId64 "\n\"%sModRevision\" : %" PRId64
           "\n\"%sVersion\" : %" PRId64 "\n\"%sValue\" : ", pfx, kv->create_revision, pfx,
           kv->mod_revision, pfx, kv->version, pfx);
    ctl_go_quote(kv->value, kv->value_len);
    printf("\n\"%sLease\" : %" PRId64 "\n", pfx, kv->lease);
}

static void fields_get(const struct cetcd_range_resp *r)
{
    ctl_fields_hdr(&r->header);
    for (size_t i = 0; i < r->n_kvs; i++)
        fields_kv("", &r->kvs[i]);
    printf("\"More\" : %s\n\"Count\" : %" PRId64 "\n", r->more ? "true" : "false", r->count);
}

static void fields_put(const struct cetcd_put_resp *r)
{
    ctl_fields_hdr(&r->header);
    if (r->prev_kv)
        fields_kv("Prev", r->prev_kv);
}

static void fields_del(const struct cetcd_delete_resp *r)
{
    ctl_fields_hdr(&r->header);
    printf("\"Deleted\" : %" PRId64 "\n", r->deleted);
    for (size_t i = 0; i < r->n_prev_kvs; i++)
        fields_kv("Prev", &r->prev_kvs[i]);
}

static void fields_txn(const struct cetcd_txn_resp *r)
{
    ctl_fields_hdr(&r->header);
    printf("\"Succeeded\" : %s\n", r->succeeded ? "true" : "false");
    for (size_t i = 0; i < r->n_responses; i++) {
        const struct cetcd_op_resp *op = &r->responses[i];
        if (op->type == CETCD_OP_RANGE)
            fields_get(&op->u.range);
        else if (op->type == CETCD_OP_PUT)
            fields_put(&op->u.put);
        else if (op->type == CETCD_OP_DELETE)
            fields_del(&op->u.del);
        else
            fields_txn(op->u.txn);
    }
}

/* ---------------------------------------------------------------- simple printers */

static void print_bytes(const struct ctl *c, const char *s, size_t n)
{
    if (!c->hex) {
        fwrite(s, 1, n, stdout);
        return;
    }
    for (size_t i = 0; i < n; i++)
        printf("\\x%02x", (unsigned char)s[i]);
}

void ctl_out_kv(const struct ctl *c, const struct cetcd_kv *kv, bool value_only)
{
    if (!value_only) {
        print_bytes(c, kv->key, kv->key_len);
        putchar('\n');
    }
    print_bytes(c, kv->value, kv->value_len);
    putchar('\n');
}

typedef void (*body_fn)(struct jw *w, const void *r);

static void print_json(body_fn fn, const void *r)
{
    struct jw w = {stdout, false};

    ctl_jw_obj(&w, NULL);
    fn(&w, r);
    ctl_jw_end_obj(&w);
    putchar('\n');
}

static void range_body(struct jw *w, const void *r)
{
    ctl_jw_range_body(w, r);
}

static void put_body(struct jw *w, const void *r)
{
    ctl_jw_put_body(w, r);
}

static void del_body(struct jw *w, const void *r)
{
    ctl_jw_del_body(w, r);
}

static void txn_body(struct jw *w, const void *r)
{
    ctl_jw_txn_body(w, r);
}

void ctl_out_get(const struct ctl *c, const struct cetcd_range_resp *r, bool value_only)
{
    if (c->fmt == OUT_JSON) {
        print_json(range_body, r);
        return;
    }
    if (c->fmt == OUT_FIELDS) {
        fields_get(r);
        return;
    }
    for (size_t i = 0; i < r->n_kvs; i++)
        ctl_out_kv(c, &r->kvs[i], value_only);
}

void ctl_out_put(const struct ctl *c, const struct cetcd_put_resp *r)
{
    if (c->fmt == OUT_JSON) {
        print_json(put_body, r);
        return;
    }
    if (c->fmt == OUT_FIELDS) {
        fields_put(r);
        return;
    }
    puts("OK");
    if (r->prev_kv)
        ctl_out_kv(c, r->prev_kv, false);
}

void ctl_out_del(const struct ctl *c, const struct cetcd_delete_resp *r)
{
    if (c->fmt == OUT_JSON) {
        print_json(del_body, r);
        return;
    }
    if (c->fmt == OUT_FIELDS) {
        fields_del(r);
        return;
    }
    printf("%" PRId64 "\n", r->deleted);
    for (size_t i = 0; i < r->n_prev_kvs; i++)
        ctl_out_kv(c, &r->prev_kvs[i], false);
}

static void txn_simple(const struct ctl *c, const struct cetcd_txn_resp *r)
{
    puts(r->succeeded ? "SUCCESS" : "FAILURE");
    for (size_t i = 0; i < r->n_responses; i++) {
        const struct cetcd_op_resp *op = &r->responses[i];
        putchar('\n');
        if (op->type == CETCD_OP_RANGE)
            ctl_out_get(c, &op->u.range, false);
        else if (op->type == CETCD_OP_PUT)
            ctl_out_put(c, &op->u.put);
        else if (op->type == CETCD_OP_DELETE)
            ctl_out_del(c, &op->u.del);
        else
            txn_simple(c, op->u.txn);
    }
}

void ctl_out_txn(const struct ctl *c, const struct cetcd_txn_resp *r)
{
    if (c->fmt == OUT_JSON)
        print_json(txn_body, r);
    else if (c->fmt == OUT_FIELDS)
        fields_txn(r);
    else
        txn_simple(c, r);
}

/* ---------------------------------------------------------------- watch */

static const char *event_name(enum cetcd_event_type t)
{
    return t == CETCD_EVENT_DELETE ? "DELETE" : "PUT";
}

/* clientv3.WatchResponse as encoding/json writes it: the exported fields, none omitted; Events
 * is [] for a server's response and null for one clientv3 makes up (a stream error). */
static void watch_json(const struct cetcd_watch_resp *r)
{
    struct jw w = {stdout, false};

    ctl_jw_obj(&w, NULL);
    ctl_jw_obj(&w, "Header");
    ctl_jw_header_flat(&w, &r->header);
    ctl_jw_end_obj(&w);
    if (r->error) {
        ctl_jw_null(&w, "Events");
    } else {
        ctl_jw_arr(&w, "Events");
        for (size_t i = 0; i < r->n_events; i++) {
            const struct cetcd_event *e = &r->events[i];
            ctl_jw_obj(&w, NULL);
            if (e->type != CETCD_EVENT_PUT)
                ctl_jw_i64(&w, "type", (int64_t)e->type);
            ctl_jw_kv(&w, "kv", &e->kv);
            if (e->prev_kv)
                ctl_jw_kv(&w, "prev_kv", e->prev_kv);
            ctl_jw_end_obj(&w);
        }
        ctl_jw_end_arr(&w);
    }
    ctl_jw_i64(&w, "CompactRevision", r->compact_revision);
    ctl_jw_bool(&w, "Canceled", r->canceled);
    ctl_jw_bool(&w, "Created", r->created);
    ctl_jw_end_obj(&w);
    putchar('\n');
}

static void watch_fields(const struct cetcd_watch_resp *r)
{
    ctl_fields_hdr(&r->header);
    for (size_t i = 0; i < r->n_events; i++) {
        printf("\"Type\" : %s\n", event_name(r->events[i].type));
        if (r->events[i].prev_kv)
            fields_kv("Prev", r->events[i].prev_kv);
        fields_kv("", &r->events[i].kv);
    }
}

int ctl_out_watch(const struct ctl *c, const struct cetcd_watch_resp *r)
{
    if (c->fmt == OUT_TABLE)
        return ctl_fail(EXIT_BAD_FEATURE, "table not supported as output format");
    if (c->fmt == OUT_JSON) {
        watch_json(r);
    } else if (c->fmt == OUT_FIELDS) {
        watch_fields(r);
    } else {
        for (size_t i = 0; i < r->n_events; i++) {
            puts(event_name(r->events[i].type));
            if (r->events[i].prev_kv)
                ctl_out_kv(c, r->events[i].prev_kv, false);
            ctl_out_kv(c, &r->events[i].kv, false);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- humanize, durations */

void ctl_out_human_bytes(uint64_t n, char *buf, size_t sz)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
    double val;
    int e;

    if (n < 10) {
        snprintf(buf, sz, "%" PRIu64 " B", n);
        return;
    }
    e = (int)floor(log((double)n) / log(1000.0));
    if (e > 6)
        e = 6;
    val = floor((double)n / pow(1000.0, e) * 10 + 0.5) / 10;
    snprintf(buf, sz, val < 10 ? "%.1f %s" : "%.0f %s", val, units[e]);
}

/* Appends v / 10^prec as "int.frac" with trailing zeros (and a bare dot) removed. */
static int fmt_frac(char *buf, size_t sz, uint64_t v, int prec, const char *unit)
{
    uint64_t p = 1;
    char frac[24];
    int n;

    for (int i = 0; i < prec && i < 18; i++)
        p *= 10;
    if (prec > 18)
        prec = 18;
    if (snprintf(frac, sizeof(frac), "%0*" PRIu64, prec, v % p) >= (int)sizeof(frac))
        return -1;
    for (n = prec; n > 0 && frac[n - 1] == '0'; n--)
        frac[n - 1] = 0;
    if (n)
        return snprintf(buf, sz, "%" PRIu64 ".%s%s", v / p, frac, unit);
    return snprintf(buf, sz, "%" PRIu64 "%s", v / p, unit);
}

void ctl_out_go_duration(int64_t ns, char *buf, size_t sz)
{
    uint64_t u = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    const char *neg = ns < 0 ? "-" : "";
    char tmp[64];

    if (u == 0) {
        snprintf(buf, sz, "0s");
        return;
    }
    if (u < 1000) {
        snprintf(buf, sz, "%s%" PRIu64 "ns", neg, u);
        return;
    }
    if (u < 1000000) {
        fmt_frac(tmp, sizeof(tmp), u, 3, "µs");
    } else if (u < 1000000000) {
        fmt_frac(tmp, sizeof(tmp), u, 6, "ms");
    } else {
        uint64_t secs = u / 1000000000, h = secs / 3600, m = secs / 60 % 60;
        char s[32];
        fmt_frac(s, sizeof(s), u % 60000000000ULL, 9, "s");
        if (h)
            snprintf(tmp, sizeof(tmp), "%" PRIu64 "h%" PRIu64 "m%s", h, m, s);
        else if (m)
            snprintf(tmp, sizeof(tmp), "%" PRIu64 "m%s", m, s);
        else
            snprintf(tmp, sizeof(tmp), "%s", s);
    }
    snprintf(buf, sz, "%s%s", neg, tmp);
}

/* ---------------------------------------------------------------- tables */

void ctl_table_init(struct table *t, const char *const *headers, int ncols)
{
    memset(t, 0, sizeof(*t));
    t->headers = headers;
    t->ncols = ncols;
}

int ctl_table_add(struct table *t, const char *const *cells)
{
    char **row;

    if (t->nrows == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        char ***rows = realloc(t->rows, sizeof(*rows) * (size_t)cap);
        if (!rows)
            return CE_NOMEM;
        t->rows = rows;
        t->cap = cap;
    }
    row = calloc((size_t)t->ncols, sizeof(char *));
    if (!row)
        return CE_NOMEM;
    t->rows[t->nrows++] = row;
    for (int i = 0; i < t->ncols; i++)
        if (!(row[i] = strdup(cells[i])))
            return CE_NOMEM;
    return 0;
}

/* Display width: UTF-8 code points. */
static size_t width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

static void border(const struct table *t, const size_t *w, FILE *f)
{
    for (int i = 0; i < t->ncols; i++) {
        fputc('+', f);
        for (size_t k = 0; k < w[i] + 2; k++)
            fputc('-', f);
    }
    fputs("+\n", f);
}

static void pad(FILE *f, size_t n)
{
    while (n--)
        fputc(' ', f);
}

void ctl_table_print(const struct table *t, FILE *f)
{
    size_t w[32] = {0};
    int nc = t->ncols > 32 ? 32 : t->ncols;

    for (int i = 0; i < nc; i++) {
        w[i] = width(t->headers[i]);
        for (int r = 0; r < t->nrows; r++)
            if (width(t->rows[r][i]) > w[i])
                w[i] = width(t->rows[r][i]);
    }
    border(t, w, f);
    for (int i = 0; i < nc; i++) {
        size_t gap = w[i] - width(t->headers[i]);
        fputs("| ", f);
        pad(f, gap / 2);
        fputs(t->headers[i], f);
        pad(f, gap - gap / 2);
        fputc(' ', f);
    }
    fputs("|\n", f);
    border(t, w, f);
    for (int r = 0; r < t->nrows; r++) {
        for (int i = 0; i < nc; i++) {
            fputs("| ", f);
            pad(f, w[i] - width(t->rows[r][i]));
            fputs(t->rows[r][i], f);
            fputc(' ', f);
        }
        fputs("|\n", f);
    }
    border(t, w, f);
}

void ctl_table_free(struct table *t)
{
    for (int r = 0; r < t->nrows; r++) {
        for (int i = 0; i < t->ncols; i++)
            free(t->rows[r][i]);
        free(t->rows[r]);
    }
    free(t->rows);
    memset(t, 0, sizeof(*t));
}
