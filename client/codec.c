/*
 * codec.c: JSON for etcd's v3 gateway, both directions, with no I/O.
 *
 * Requests are built as cJSON trees with rpc.proto field names: bytes in standard base64,
 * int64/uint64 as decimal strings, zero values left out (except compare targets, whose oneof
 * presence matters), enums by name. Responses are read leniently: an int64 may come as a string
 * or a number, a missing field is zero. Everything a decoded response points to is allocated in
 * the arena given, so a half-decoded response is released by freeing that arena.
 * Error bodies `{"error":"..","message":"..","code":N}` are mapped to CE_* codes: etcd's message
 * first (exact match against err.h's table), then the gRPC code, then the HTTP status.
 */
#include "client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- builders */

bool cetcd_codec_add_i64(cJSON *o, const char *name, int64_t v)
{
    char buf[24];

    if (v == 0)
        return true;
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return cJSON_AddStringToObject(o, name, buf) != NULL;
}

bool cetcd_codec_add_u64(cJSON *o, const char *name, uint64_t v)
{
    char buf[24];

    if (v == 0)
        return true;
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return cJSON_AddStringToObject(o, name, buf) != NULL;
}

static bool add_bytes_always(cJSON *o, const char *name, const char *p, size_t n)
{
    char stackbuf[256];
    size_t need = cetcd_b64_encoded_len(n) + 1;
    char *buf = need <= sizeof(stackbuf) ? stackbuf : malloc(need);
    bool ok;

    if (!buf)
        return false;
    cetcd_b64_encode(p, n, buf);
    ok = cJSON_AddStringToObject(o, name, buf) != NULL;
    if (buf != stackbuf)
        free(buf);
    return ok;
}

bool cetcd_codec_add_bytes(cJSON *o, const char *name, const char *p, size_t n)
{
    if (n == 0)
        return true;
    return add_bytes_always(o, name, p, n);
}

static bool add_bool(cJSON *o, const char *name, bool v)
{
    return !v || cJSON_AddTrueToObject(o, name) != NULL;
}

/* Sets range_end from an explicit end, prefix or from_key. */
static bool add_range_end(cJSON *o, const char *key, size_t key_len, const char *end,
                          size_t end_len, bool prefix, bool from_key)
{
    char stackbuf[256];
    char *buf;
    bool ok;
    size_t n;

    if (from_key)
        return add_bytes_always(o, "range_end", "", 1);
    if (!prefix)
        return end ? add_bytes_always(o, "range_end", end, end_len) : true;
    buf = key_len < sizeof(stackbuf) ? stackbuf : malloc(key_len + 1);
    if (!buf)
        return false;
    n = cetcd_prefix_end(key, key_len, buf);
    ok = add_bytes_always(o, "range_end", buf, n);
    if (buf != stackbuf)
        free(buf);
    return ok;
}

/* The key; an empty key with prefix/from-key means "every key" and becomes "\0" (as etcd's
 * clientv3 does), since the server rejects an empty key. */
static bool add_key(cJSON *o, const char *key, size_t len, bool whole_space)
{
    if (len == 0 && whole_space)
        return add_bytes_always(o, "key", "", 1);
    return cetcd_codec_add_bytes(o, "key", key, len);
}

static const char *const sort_orders[] = {"NONE", "ASCEND", "DESCEND"};
static const char *const sort_targets[] = {"KEY", "VERSION", "CREATE", "MOD", "VALUE"};
static const char *const cmp_results[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
static const char *const cmp_targets[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};

static bool fill_range(cJSON *o, const void *req)
{
    const struct cetcd_range_req *r = req;

    return add_key(o, r->key, r->key_len, r->prefix || r->from_key) &&
           add_range_end(o, r->key, r->key_len, r->range_end, r->range_end_len, r->prefix,
                         r->from_key) &&
           cetcd_codec_add_i64(o, "limit", r->limit) &&
           cetcd_codec_add_i64(o, "revision", r->revision) &&
           ((unsigned)r->sort_order == 0 || (unsigned)r->sort_order > 2 ||
            cJSON_AddStringToObject(o, "sort_order", sort_orders[r->sort_order])) &&
           ((unsigned)r->sort_target == 0 || (unsigned)r->sort_target > 4 ||
            cJSON_AddStringToObject(o, "sort_target", sort_targets[r->sort_target])) &&
           add_bool(o, "serializable", r->serializable) && add_bool(o, "keys_only", r->keys_only) &&
           add_bool(o, "count_only", r->count_only) &&
           cetcd_codec_add_i64(o, "min_mod_revision", r->min_mod_revision) &&
           cetcd_codec_add_i64(o, "max_mod_revision", r->max_mod_revision) &&
           cetcd_codec_add_i64(o, "min_create_revision", r->min_create_revision) &&
           cetcd_codec_add_i64(o, "max_create_revision", r->max_create_revision);
}

static bool fill_put(cJSON *o, const void *req)
{
    const struct cetcd_put_req *r = req;

    return cetcd_codec_add_bytes(o, "key", r->key, r->key_len) &&
           cetcd_codec_add_bytes(o, "value", r->value, r->value_len) &&
           cetcd_codec_add_i64(o, "lease", r->lease) && add_bool(o, "prev_kv", r->prev_kv) &&
           add_bool(o, "ignore_value", r->ignore_value) &&
           add_bool(o, "ignore_lease", r->ignore_lease);
}

static bool fill_delete(cJSON *o, const void *req)
{
    const struct cetcd_delete_req *r = req;

    return add_key(o, r->key, r->key_len, r->prefix || r->from_key) &&
           add_range_end(o, r->key, r->key_len, r->range_end, r->range_end_len, r->prefix,
                         r->from_key) &&
           add_bool(o, "prev_kv", r->prev_kv);
}

typedef bool (*fill_fn)(cJSON *o, const void *req);

static cJSON *build(fill_fn fill, const void *req)
{
    cJSON *o = cJSON_CreateObject();

    if (o && !fill(o, req)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

cJSON *cetcd_codec_range_req(const struct cetcd_range_req *r)
{
    return build(fill_range, r);
}

cJSON *cetcd_codec_put_req(const struct cetcd_put_req *r)
{
    return build(fill_put, r);
}

cJSON *cetcd_codec_delete_req(const struct cetcd_delete_req *r)
{
    return build(fill_delete, r);
}

static bool fill_compare(cJSON *o, const struct cetcd_compare *c)
{
    static const char *const fields[] = {"version", "create_revision", "mod_revision", "value",
                                         "lease"};
    char buf[24];

    if ((unsigned)c->result > 3 || (unsigned)c->target > 4)
        return false;
    if (!cJSON_AddStringToObject(o, "result", cmp_results[c->result]) ||
        !cJSON_AddStringToObject(o, "target", cmp_targets[c->target]) ||
        !cetcd_codec_add_bytes(o, "key", c->key, c->key_len) ||
        !(c->range_end ? add_bytes_always(o, "range_end", c->range_end, c->range_end_len) : true))
        return false;
    if (c->target == CETCD_CMP_VALUE)
        return add_bytes_always(o, "value", c->value ? c->value : "", c->value_len);
    snprintf(buf, sizeof(buf), "%" PRId64, c->number);
    return cJSON_AddStringToObject(o, fields[c->target], buf) != NULL;
}

static bool fill_txn(cJSON *o, const void *req);

static bool add_op(cJSON *arr, const struct cetcd_op *op)
{
    static const char *const names[] = {"request_range", "request_put", "request_delete_range",
                                        "request_txn"};
    static const fill_fn fills[] = {fill_range, fill_put,
                                    fill_delete, fill_txn};
    cJSON *wrap, *inner;
    const void *req;

    if ((unsigned)op->type > 3)
        return false;
    wrap = cJSON_CreateObject();
    if (!wrap || !cJSON_AddItemToArray(arr, wrap))
        return cJSON_Delete(wrap), false;
    inner = cJSON_AddObjectToObject(wrap, names[op->type]);
    if (!inner)
        return false;
    req = op->type == CETCD_OP_RANGE ? (const void *)&op->u.range
          : op->type == CETCD_OP_PUT ? (const void *)&op->u.put
          : op->type == CETCD_OP_DELETE ? (const void *)&op->u.del
                                        : (const void *)op->u.txn;
    return req && fills[op->type](inner, req);
}

static bool add_ops(cJSON *o, const char *name, const struct cetcd_op *ops, size_t n)
{
    cJSON *arr;

    if (n == 0)
        return true;
    arr = cJSON_AddArrayToObject(o, name);
    if (!arr)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!add_op(arr, &ops[i]))
            return false;
    return true;
}

static bool fill_txn(cJSON *o, const void *req)
{
    const struct cetcd_txn_req *r = req;

    if (r->n_compare) {
        cJSON *arr = cJSON_AddArrayToObject(o, "compare");
        if (!arr)
            return false;
        for (size_t i = 0; i < r->n_compare; i++) {
            cJSON *c = cJSON_CreateObject();
            if (!c || !cJSON_AddItemToArray(arr, c))
                return cJSON_Delete(c), false;
            if (!fill_compare(c, &r->compare[i]))
                return false;
        }
    }
    return add_ops(o, "success", r->success, r->n_success) &&
           add_ops(o, "failure", r->failure, r->n_failure);
}

cJSON *cetcd_codec_txn_req(const struct cetcd_txn_req *r)
{
    return build(fill_txn, r);
}

/* ---------------------------------------------------------------- decoders */

static int parse_u64(const cJSON *it, uint64_t *v)
{
    char *end;

    if (cJSON_IsNumber(it)) {
        if (it->valuedouble < 0 || it->valuedouble >= 18446744073709551616.0)
            return CE_CORRUPT;
        *v = (uint64_t)it->valuedouble;
        return 0;
    }
    if (!cJSON_IsString(it) || !it->valuestring[0] || it->valuestring[0] == '-')
        return CE_CORRUPT;
    errno = 0;
    *v = strtoull(it->valuestring, &end, 10);
    return (errno || *end) ? CE_CORRUPT : 0;
}

int cetcd_codec_u64(const cJSON *o, const char *name, uint64_t *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

    *v = 0;
    if (!it || cJSON_IsNull(it))
        return 0;
    return parse_u64(it, v);
}

int cetcd_codec_i64(const cJSON *o, const char *name, int64_t *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    char *end;

    *v = 0;
    if (!it || cJSON_IsNull(it))
        return 0;
    if (cJSON_IsNumber(it)) {
        if (it->valuedouble < -9223372036854775808.0 || it->valuedouble >= 9223372036854775808.0)
            return CE_CORRUPT;
        *v = (int64_t)it->valuedouble;
        return 0;
    }
    if (!cJSON_IsString(it) || !it->valuestring[0])
        return CE_CORRUPT;
    errno = 0;
    *v = strtoll(it->valuestring, &end, 10);
    return (errno || *end) ? CE_CORRUPT : 0;
}

static bool get_bool(const cJSON *o, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static int decode_b64(const char *s, struct cetcd_mem **m, char **p, size_t *n)
{
    size_t len = strlen(s);
    char *buf = cetcd_mem_alloc(m, len / 4 * 3 + 4);

    if (!buf)
        return CE_NOMEM;
    if (cetcd_b64_decode(s, len, buf, n))
        return CE_CORRUPT;
    buf[*n] = 0;
    *p = buf;
    return 0;
}

int cetcd_codec_bytes(const cJSON *o, const char *name, struct cetcd_mem **m, char **p, size_t *n)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);

    *n = 0;
    if (!it || cJSON_IsNull(it)) {
        *p = cetcd_mem_dup(m, "", 0);
        return *p ? 0 : CE_NOMEM;
    }
    if (!cJSON_IsString(it))
        return CE_CORRUPT;
    return decode_b64(it->valuestring, m, p, n);
}

static int get_string(const cJSON *o, const char *name, struct cetcd_mem **m, char **out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    const char *s = cJSON_IsString(it) ? it->valuestring : "";

    if (it && !cJSON_IsNull(it) && !cJSON_IsString(it))
        return CE_CORRUPT;
    *out = cetcd_mem_dup(m, s, strlen(s));
    return *out ? 0 : CE_NOMEM;
}

int cetcd_codec_header(const cJSON *resp, struct cetcd_header *h)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(resp, "header");
    int rc;

    memset(h, 0, sizeof(*h));
    if (!o || cJSON_IsNull(o))
        return 0;
    if (!cJSON_IsObject(o))
        return CE_CORRUPT;
    h->present = true;
    if ((rc = cetcd_codec_u64(o, "cluster_id", &h->cluster_id)) ||
        (rc = cetcd_codec_u64(o, "member_id", &h->member_id)) ||
        (rc = cetcd_codec_i64(o, "revision", &h->revision)) ||
        (rc = cetcd_codec_u64(o, "raft_term", &h->raft_term)))
        return rc;
    return 0;
}

static int decode_kv(const cJSON *o, struct cetcd_mem **m, struct cetcd_kv *kv)
{
    int rc;

    if (!cJSON_IsObject(o))
        return CE_CORRUPT;
    if ((rc = cetcd_codec_bytes(o, "key", m, &kv->key, &kv->key_len)) ||
        (rc = cetcd_codec_bytes(o, "value", m, &kv->value, &kv->value_len)) ||
        (rc = cetcd_codec_i64(o, "create_revision", &kv->create_revision)) ||
        (rc = cetcd_codec_i64(o, "mod_revision", &kv->mod_revision)) ||
        (rc = cetcd_codec_i64(o, "version", &kv->version)) ||
        (rc = cetcd_codec_i64(o, "lease", &kv->lease)))
        return rc;
    return 0;
}

/* Allocates *out with one element per array item of o[name] (0 if absent). */
static int get_array(const cJSON *o, const char *name, struct cetcd_mem **m, size_t elem,
                     void **out, size_t *n, const cJSON **arr)
{
    *arr = cJSON_GetObjectItemCaseSensitive(o, name);
    *n = 0;
    *out = NULL;
    if (!*arr || cJSON_IsNull(*arr))
        return 0;
    if (!cJSON_IsArray(*arr))
        return CE_CORRUPT;
    *n = (size_t)cJSON_GetArraySize(*arr);
    if (*n == 0)
        return 0;
    *out = cetcd_mem_alloc(m, elem * *n);
    return *out ? 0 : CE_NOMEM;
}

static int decode_kvs(const cJSON *o, const char *name, struct cetcd_mem **m,
                      struct cetcd_kv **kvs, size_t *n)
{
    const cJSON *arr, *it;
    size_t i = 0;
    int rc = get_array(o, name, m, sizeof(**kvs), (void **)kvs, n, &arr);

    if (rc || !*n)
        return rc;
    cJSON_ArrayForEach(it, arr) {
        if ((rc = decode_kv(it, m, &(*kvs)[i++])))
            return rc;
    }
    return 0;
}

static int decode_strings(const cJSON *o, const char *name, struct cetcd_mem **m, char ***out,
                          size_t *n)
{
    const cJSON *arr, *it;
    size_t i = 0;
    int rc = get_array(o, name, m, sizeof(char *), (void **)out, n, &arr);

    if (rc || !*n)
        return rc;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it))
            return CE_CORRUPT;
        (*out)[i] = cetcd_mem_dup(m, it->valuestring, strlen(it->valuestring));
        if (!(*out)[i++])
            return CE_NOMEM;
    }
    return 0;
}

int cetcd_codec_range_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_range_resp *out)
{
    int rc;

    if ((rc = cetcd_codec_header(j, &out->header)) ||
        (rc = decode_kvs(j, "kvs", m, &out->kvs, &out->n_kvs)) ||
        (rc = cetcd_codec_i64(j, "count", &out->count)))
        return rc;
    out->more = get_bool(j, "more");
    return 0;
}

int cetcd_codec_put_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_put_resp *out)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prev_kv");
    int rc = cetcd_codec_header(j, &out->header);

    if (rc || !p || cJSON_IsNull(p))
        return rc;
    out->prev_kv = cetcd_mem_alloc(m, sizeof(*out->prev_kv));
    if (!out->prev_kv)
        return CE_NOMEM;
    return decode_kv(p, m, out->prev_kv);
}

int cetcd_codec_delete_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_delete_resp *out)
{
    int rc;

    if ((rc = cetcd_codec_header(j, &out->header)) ||
        (rc = cetcd_codec_i64(j, "deleted", &out->deleted)))
        return rc;
    return decode_kvs(j, "prev_kvs", m, &out->prev_kvs, &out->n_prev_kvs);
}

static int decode_op_resp(const cJSON *o, struct cetcd_mem **m, struct cetcd_op_resp *r)
{
    const cJSON *it;

    if ((it = cJSON_GetObjectItemCaseSensitive(o, "response_range"))) {
        r->type = CETCD_OP_RANGE;
        return cetcd_codec_range_resp(it, m, &r->u.range);
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(o, "response_put"))) {
        r->type = CETCD_OP_PUT;
        return cetcd_codec_put_resp(it, m, &r->u.put);
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(o, "response_delete_range"))) {
        r->type = CETCD_OP_DELETE;
        return cetcd_codec_delete_resp(it, m, &r->u.del);
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(o, "response_txn"))) {
        r->type = CETCD_OP_TXN;
        r->u.txn = cetcd_mem_alloc(m, sizeof(*r->u.txn));
        if (!r->u.txn)
            return CE_NOMEM;
        return cetcd_codec_txn_resp(it, m, r->u.txn);
    }
    return CE_CORRUPT;
}

int cetcd_codec_txn_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_txn_resp *out)
{
    const cJSON *arr, *it;
    size_t i = 0;
    int rc;

    if ((rc = cetcd_codec_header(j, &out->header)))
        return rc;
    out->succeeded = get_bool(j, "succeeded");
    rc = get_array(j, "responses", m, sizeof(*out->responses), (void **)&out->responses,
                   &out->n_responses, &arr);
    if (rc || !out->n_responses)
        return rc;
    cJSON_ArrayForEach(it, arr) {
        if ((rc = decode_op_resp(it, m, &out->responses[i++])))
            return rc;
    }
    return 0;
}

static int decode_member(const cJSON *o, struct cetcd_mem **m, struct cetcd_member *mb)
{
    int rc;

    if (!cJSON_IsObject(o))
        return CE_CORRUPT;
    if ((rc = cetcd_codec_u64(o, "ID", &mb->id)) || (rc = get_string(o, "name", m, &mb->name)) ||
        (rc = decode_strings(o, "peerURLs", m, &mb->peer_urls, &mb->n_peer_urls)) ||
        (rc = decode_strings(o, "clientURLs", m, &mb->client_urls, &mb->n_client_urls)))
        return rc;
    mb->is_learner = get_bool(o, "isLearner");
    return 0;
}

int cetcd_codec_member_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_member_resp *out)
{
    const cJSON *arr, *it, *one = cJSON_GetObjectItemCaseSensitive(j, "member");
    size_t i = 0;
    int rc;

    if ((rc = cetcd_codec_header(j, &out->header)))
        return rc;
    if (one && (rc = decode_member(one, m, &out->member)))
        return rc;
    rc = get_array(j, "members", m, sizeof(*out->members), (void **)&out->members,
                   &out->n_members, &arr);
    if (rc || !out->n_members)
        return rc;
    cJSON_ArrayForEach(it, arr) {
        if ((rc = decode_member(it, m, &out->members[i++])))
            return rc;
    }
    return 0;
}

int cetcd_codec_status_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_status_resp *out)
{
    int rc;

    if ((rc = cetcd_codec_header(j, &out->header)) ||
        (rc = get_string(j, "version", m, &out->version)) ||
        (rc = cetcd_codec_i64(j, "dbSize", &out->db_size)) ||
        (rc = cetcd_codec_u64(j, "leader", &out->leader)) ||
        (rc = cetcd_codec_u64(j, "raftIndex", &out->raft_index)) ||
        (rc = cetcd_codec_u64(j, "raftTerm", &out->raft_term)) ||
        (rc = cetcd_codec_u64(j, "raftAppliedIndex", &out->raft_applied_index)) ||
        (rc = decode_strings(j, "errors", m, &out->errors, &out->n_errors)) ||
        (rc = cetcd_codec_i64(j, "dbSizeInUse", &out->db_size_in_use)))
        return rc;
    out->is_learner = get_bool(j, "isLearner");
    return 0;
}

static enum cetcd_alarm_type alarm_from_json(const cJSON *it)
{
    if (cJSON_IsNumber(it))
        return it->valueint == 1 ? CETCD_ALARM_NOSPACE
               : it->valueint == 2 ? CETCD_ALARM_CORRUPT : CETCD_ALARM_NONE;
    if (cJSON_IsString(it)) {
        if (!strcmp(it->valuestring, "NOSPACE"))
            return CETCD_ALARM_NOSPACE;
        if (!strcmp(it->valuestring, "CORRUPT"))
            return CETCD_ALARM_CORRUPT;
    }
    return CETCD_ALARM_NONE;
}

int cetcd_codec_alarm_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_alarm_resp *out)
{
    const cJSON *arr, *it;
    size_t i = 0;
    int rc;

    if ((rc = cetcd_codec_header(j, &out->header)))
        return rc;
    rc = get_array(j, "alarms", m, sizeof(*out->alarms), (void **)&out->alarms, &out->n_alarms,
                   &arr);
    if (rc || !out->n_alarms)
        return rc;
    cJSON_ArrayForEach(it, arr) {
        struct cetcd_alarm *a = &out->alarms[i++];
        if ((rc = cetcd_codec_u64(it, "memberID", &a->member_id)))
            return rc;
        a->alarm = alarm_from_json(cJSON_GetObjectItemCaseSensitive(it, "alarm"));
    }
    return 0;
}

int cetcd_codec_lease_ttl_resp(const cJSON *j, struct cetcd_mem **m,
                               struct cetcd_lease_ttl_resp *out)
{
    const cJSON *arr, *it;
    size_t i = 0;
    int rc;

    if ((rc = cetcd_codec_header(j, &out->header)) || (rc = cetcd_codec_i64(j, "ID", &out->id)) ||
        (rc = cetcd_codec_i64(j, "TTL", &out->ttl)) ||
        (rc = cetcd_codec_i64(j, "grantedTTL", &out->granted_ttl)))
        return rc;
    rc = get_array(j, "keys", m, sizeof(*out->keys), (void **)&out->keys, &out->n_keys, &arr);
    if (rc || !out->n_keys)
        return rc;
    cJSON_ArrayForEach(it, arr) {
        struct cetcd_kv *kv = &out->keys[i++];
        if (!cJSON_IsString(it))
            return CE_CORRUPT;
        if ((rc = decode_b64(it->valuestring, m, &kv->key, &kv->key_len)))
            return rc;
        kv->value = kv->key + kv->key_len; /* "" */
    }
    return 0;
}

/* ---------------------------------------------------------------- watch */

static bool add_filters(cJSON *o, const struct cetcd_watch_req *r)
{
    cJSON *arr;

    if (!r->no_put && !r->no_delete)
        return true;
    arr = cJSON_AddArrayToObject(o, "filters");
    if (!arr)
        return false;
    if (r->no_put && !cJSON_AddItemToArray(arr, cJSON_CreateString("NOPUT")))
        return false;
    return !r->no_delete || cJSON_AddItemToArray(arr, cJSON_CreateString("NODELETE"));
}

static bool fill_watch(cJSON *o, const struct cetcd_watch_req *r, int64_t start)
{
    return add_key(o, r->key, r->key_len, r->prefix || r->from_key) &&
           add_range_end(o, r->key, r->key_len, r->range_end, r->range_end_len, r->prefix,
                         r->from_key) &&
           cetcd_codec_add_i64(o, "start_revision", start > 0 ? start : r->start_revision) &&
           add_bool(o, "progress_notify", r->progress_notify) && add_filters(o, r) &&
           add_bool(o, "prev_kv", r->prev_kv);
}

cJSON *cetcd_codec_watch_create(const struct cetcd_watch_req *r, int64_t start_revision)
{
    cJSON *o = cJSON_CreateObject(), *cr;

    if (!o)
        return NULL;
    cr = cJSON_AddObjectToObject(o, "create_request");
    if (!cr || !fill_watch(cr, r, start_revision)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* "PUT"/"DELETE" (gateway enum names) or 0/1; absent is PUT. */
static int decode_event_type(const cJSON *o, enum cetcd_event_type *t)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, "type");

    *t = CETCD_EVENT_PUT;
    if (!it || cJSON_IsNull(it))
        return 0;
    if (cJSON_IsString(it) && (!strcmp(it->valuestring, "PUT") ||
                               !strcmp(it->valuestring, "DELETE"))) {
        *t = it->valuestring[0] == 'D' ? CETCD_EVENT_DELETE : CETCD_EVENT_PUT;
        return 0;
    }
    if (cJSON_IsNumber(it) && (it->valueint == 0 || it->valueint == 1)) {
        *t = (enum cetcd_event_type)it->valueint;
        return 0;
    }
    return CE_CORRUPT;
}

static int decode_event(const cJSON *o, struct cetcd_mem **m, struct cetcd_event *e)
{
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(o, "kv");
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(o, "prev_kv");
    int rc;

    if (!cJSON_IsObject(o) || decode_event_type(o, &e->type))
        return CE_CORRUPT;
    if (kv && !cJSON_IsNull(kv)) {
        if ((rc = decode_kv(kv, m, &e->kv)))
            return rc;
    } else if (!(e->kv.key = e->kv.value = cetcd_mem_dup(m, "", 0))) {
        return CE_NOMEM;
    }
    if (!prev || cJSON_IsNull(prev))
        return 0;
    e->prev_kv = cetcd_mem_alloc(m, sizeof(*e->prev_kv));
    return e->prev_kv ? decode_kv(prev, m, e->prev_kv) : CE_NOMEM;
}

int cetcd_codec_watch_resp(const cJSON *j, struct cetcd_mem **m, struct cetcd_watch_resp *out)
{
    const cJSON *arr, *it;
    size_t i = 0;
    int rc;

    if ((rc = cetcd_codec_header(j, &out->header)) ||
        (rc = cetcd_codec_i64(j, "watch_id", &out->watch_id)) ||
        (rc = cetcd_codec_i64(j, "compact_revision", &out->compact_revision)) ||
        (rc = get_string(j, "cancel_reason", m, &out->cancel_reason)))
        return rc;
    out->created = get_bool(j, "created");
    out->canceled = get_bool(j, "canceled");
    out->fragment = get_bool(j, "fragment");
    rc = get_array(j, "events", m, sizeof(*out->events), (void **)&out->events, &out->n_events,
                   &arr);
    if (rc || !out->n_events)
        return rc;
    cJSON_ArrayForEach(it, arr) {
        if ((rc = decode_event(it, m, &out->events[i++])))
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- errors */

struct msg_row {
    int code;
    const char *msg;
};

static const struct msg_row msg_table[] = {
#define CE_MSG_ROW_(name, value, grpc, msg) {value, msg},
    CE_ERRORS(CE_MSG_ROW_)
#undef CE_MSG_ROW_
};

int cetcd_codec_grpc_to_ce(int grpc_code)
{
    switch (grpc_code) {
    case 0:
        return 0;
    case 3:  /* InvalidArgument */
    case 11: /* OutOfRange */
        return CE_INVAL;
    case 4: /* DeadlineExceeded */
        return CE_TIMEOUT;
    case 5:
        return CE_NOTFOUND;
    case 6:
        return CE_EXISTS;
    case 7:
        return CE_PERMISSION_DENIED;
    case 8:
        return CE_TOO_MANY_REQS;
    case 12:
        return CE_UNIMPLEMENTED;
    case 14:
        return CE_AGAIN;
    case 16:
        return CE_INVALID_TOKEN;
    default:
        return CE_IO;
    }
}

static int http_to_ce(long status)
{
    switch (status) {
    case 400:
        return CE_INVAL;
    case 401:
        return CE_INVALID_TOKEN;
    case 403:
        return CE_PERMISSION_DENIED;
    case 404:
        return CE_UNIMPLEMENTED;
    case 429:
        return CE_TOO_MANY_REQS;
    case 503:
        return CE_AGAIN;
    case 504:
        return CE_TIMEOUT;
    default:
        return CE_IO;
    }
}

static void copy_msg(char *msg, size_t msgsz, const char *s, size_t n)
{
    if (!msgsz)
        return;
    if (n >= msgsz)
        n = msgsz - 1;
    memcpy(msg, s, n);
    msg[n] = 0;
}

/* CE_* for an error: etcd's exact message first, then the gRPC code, then the HTTP status. */
static int map_error(const char *message, int grpc_code, long http_status)
{
    for (size_t i = 0; message && i < sizeof(msg_table) / sizeof(msg_table[0]); i++)
        if (!strcmp(msg_table[i].msg, message))
            return msg_table[i].code;
    return grpc_code ? cetcd_codec_grpc_to_ce(grpc_code) : http_to_ce(http_status);
}

int cetcd_codec_error(const char *body, size_t len, long http_status, char *msg, size_t msgsz,
                      int *grpc_code)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "code");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(j, "error");
    int rc;

    if (cJSON_IsObject(stream)) { /* a streaming call refused before its first message */
        rc = cetcd_codec_stream_error(stream, msg, msgsz, grpc_code);
        cJSON_Delete(j);
        return rc;
    }
    *grpc_code = cJSON_IsNumber(code) ? code->valueint : 0;
    if (!cJSON_IsString(m))
        m = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(m)) {
        copy_msg(msg, msgsz, m->valuestring, strlen(m->valuestring));
        rc = map_error(m->valuestring, *grpc_code, http_status);
    } else {
        while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r'))
            len--;
        copy_msg(msg, msgsz, body, len);
        rc = map_error(NULL, *grpc_code, http_status);
    }
    cJSON_Delete(j);
    return rc;
}

int cetcd_codec_stream_error(const cJSON *err, char *msg, size_t msgsz, int *grpc_code)
{
    const cJSON *m = cJSON_IsString(err) ? err : cJSON_GetObjectItemCaseSensitive(err, "message");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "grpc_code");
    const cJSON *http = cJSON_GetObjectItemCaseSensitive(err, "http_code");
    const char *text = cJSON_IsString(m) ? m->valuestring : "";

    if (!cJSON_IsNumber(code))
        code = cJSON_GetObjectItemCaseSensitive(err, "code");
    *grpc_code = cJSON_IsNumber(code) ? code->valueint : 0;
    copy_msg(msg, msgsz, text, strlen(text));
    return map_error(text, *grpc_code, cJSON_IsNumber(http) ? (long)http->valueint : 500);
}
