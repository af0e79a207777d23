/*
 * ops.c: the typed operations of cetcd_client.h. Each one builds its request with the codec,
 * makes one gateway call (http.c) and decodes the answer into an arena owned by the result.
 *
 * Gateway paths used (etcd 3.4 names): /v3/kv/{range,put,deleterange,txn,compaction},
 * /v3/lease/{grant,revoke,timetolive,leases,keepalive}, /v3/cluster/member/{list,add,remove,
 * update,promote}, /v3/maintenance/{status,alarm,defragment,hashkv,transfer-leadership,snapshot},
 * (hashkv is etcd 3.5's path: etcd 3.4's gateway maps /hash to Hash only, so HashKV fails there)
 * /v3/auth/authenticate. On failure the result is left zeroed (nothing to free).
 */
#include "client_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*decode_fn)(const cJSON *j, struct cetcd_mem **m, void *out);

/* Calls path with body (consumed), decodes into out, whose first member is the arena pointer. */
static int call_decode(cetcd_client *c, const char *ep, const char *path, cJSON *body,
                       decode_fn decode, void *out, size_t outsz)
{
    struct cetcd_mem **mem = out;
    cJSON *resp = NULL;
    int rc;

    memset(out, 0, outsz);
    rc = cetcd_http_call(c, ep, path, body, &resp);
    cJSON_Delete(body);
    if (rc)
        return rc;
    rc = decode(resp, mem, out);
    cJSON_Delete(resp);
    if (rc) {
        cetcd_mem_free(*mem);
        memset(out, 0, outsz);
    }
    return rc;
}

static int dec_range(const cJSON *j, struct cetcd_mem **m, void *o)
{
    return cetcd_codec_range_resp(j, m, o);
}

static int dec_put(const cJSON *j, struct cetcd_mem **m, void *o)
{
    return cetcd_codec_put_resp(j, m, o);
}

static int dec_delete(const cJSON *j, struct cetcd_mem **m, void *o)
{
    return cetcd_codec_delete_resp(j, m, o);
}

static int dec_txn(const cJSON *j, struct cetcd_mem **m, void *o)
{
    return cetcd_codec_txn_resp(j, m, o);
}

static int dec_header(const cJSON *j, struct cetcd_mem **m, void *o)
{
    (void)m;
    return cetcd_codec_header(j, &((struct cetcd_header_resp *)o)->header);
}

static int dec_member(const cJSON *j, struct cetcd_mem **m, void *o)
{
    return cetcd_codec_member_resp(j, m, o);
}

static int dec_status(const cJSON *j, struct cetcd_mem **m, void *o)
{
    return cetcd_codec_status_resp(j, m, o);
}

static int dec_alarm(const cJSON *j, struct cetcd_mem **m, void *o)
{
    return cetcd_codec_alarm_resp(j, m, o);
}

static int dec_lease_ttl(const cJSON *j, struct cetcd_mem **m, void *o)
{
    return cetcd_codec_lease_ttl_resp(j, m, o);
}

static int dec_lease_grant(const cJSON *j, struct cetcd_mem **m, void *o)
{
    struct cetcd_lease_grant_resp *r = o;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const char *s = cJSON_IsString(e) ? e->valuestring : "";
    int rc;

    if ((rc = cetcd_codec_header(j, &r->header)) || (rc = cetcd_codec_i64(j, "ID", &r->id)) ||
        (rc = cetcd_codec_i64(j, "TTL", &r->ttl)))
        return rc;
    r->error = cetcd_mem_dup(m, s, strlen(s));
    return r->error ? 0 : CE_NOMEM;
}

static int dec_lease_list(const cJSON *j, struct cetcd_mem **m, void *o)
{
    struct cetcd_lease_list_resp *r = o;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "leases"), *it;
    size_t i = 0;
    int rc;

    if ((rc = cetcd_codec_header(j, &r->header)))
        return rc;
    if (!arr || cJSON_IsNull(arr))
        return 0;
    if (!cJSON_IsArray(arr))
        return CE_CORRUPT;
    r->n_ids = (size_t)cJSON_GetArraySize(arr);
    r->ids = cetcd_mem_alloc(m, sizeof(int64_t) * (r->n_ids + 1));
    if (!r->ids)
        return CE_NOMEM;
    cJSON_ArrayForEach(it, arr) {
        if ((rc = cetcd_codec_i64(it, "ID", &r->ids[i++])))
            return rc;
    }
    return 0;
}

static int dec_hash_kv(const cJSON *j, struct cetcd_mem **m, void *o)
{
    struct cetcd_hash_kv_resp *r = o;
    uint64_t h;
    int rc;

    (void)m;
    if ((rc = cetcd_codec_header(j, &r->header)) || (rc = cetcd_codec_u64(j, "hash", &h)) ||
        (rc = cetcd_codec_i64(j, "compact_revision", &r->compact_revision)))
        return rc;
    r->hash = (uint32_t)h;
    return 0;
}

/* ---------------------------------------------------------------- KV */

int cetcd_range(cetcd_client *c, const struct cetcd_range_req *req, struct cetcd_range_resp *out)
{
    cJSON *b = cetcd_codec_range_req(req);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/kv/range", b, dec_range, out, sizeof(*out));
}

int cetcd_put(cetcd_client *c, const struct cetcd_put_req *req, struct cetcd_put_resp *out)
{
    cJSON *b = cetcd_codec_put_req(req);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/kv/put", b, dec_put, out, sizeof(*out));
}

int cetcd_delete(cetcd_client *c, const struct cetcd_delete_req *req, struct cetcd_delete_resp *out)
{
    cJSON *b = cetcd_codec_delete_req(req);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/kv/deleterange", b, dec_delete, out, sizeof(*out));
}

int cetcd_txn(cetcd_client *c, const struct cetcd_txn_req *req, struct cetcd_txn_resp *out)
{
    cJSON *b = cetcd_codec_txn_req(req);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/kv/txn", b, dec_txn, out, sizeof(*out));
}

static cJSON *obj_i64(const char *name, int64_t v)
{
    cJSON *o = cJSON_CreateObject();

    if (o && !cetcd_codec_add_i64(o, name, v)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *obj_u64(const char *name, uint64_t v)
{
    cJSON *o = cJSON_CreateObject();

    if (o && !cetcd_codec_add_u64(o, name, v)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int cetcd_compact(cetcd_client *c, int64_t revision, bool physical, struct cetcd_header_resp *out)
{
    cJSON *b = obj_i64("revision", revision);

    if (b && physical && !cJSON_AddTrueToObject(b, "physical")) {
        cJSON_Delete(b);
        b = NULL;
    }
    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/kv/compaction", b, dec_header, out, sizeof(*out));
}

/* ---------------------------------------------------------------- Lease */

int cetcd_lease_grant(cetcd_client *c, int64_t ttl, int64_t id, struct cetcd_lease_grant_resp *out)
{
    cJSON *b = obj_i64("TTL", ttl);

    if (b && !cetcd_codec_add_i64(b, "ID", id)) {
        cJSON_Delete(b);
        b = NULL;
    }
    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/lease/grant", b, dec_lease_grant, out, sizeof(*out));
}

int cetcd_lease_revoke(cetcd_client *c, int64_t id, struct cetcd_header_resp *out)
{
    cJSON *b = obj_i64("ID", id);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/lease/revoke", b, dec_header, out, sizeof(*out));
}

int cetcd_lease_timetolive(cetcd_client *c, int64_t id, bool keys, struct cetcd_lease_ttl_resp *out)
{
    cJSON *b = obj_i64("ID", id);

    if (b && keys && !cJSON_AddTrueToObject(b, "keys")) {
        cJSON_Delete(b);
        b = NULL;
    }
    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/lease/timetolive", b, dec_lease_ttl, out, sizeof(*out));
}

int cetcd_lease_leases(cetcd_client *c, struct cetcd_lease_list_resp *out)
{
    cJSON *b = cJSON_CreateObject();

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/lease/leases", b, dec_lease_list, out, sizeof(*out));
}

struct ka_ctx {
    struct cetcd_lease_ttl_resp *out;
    int rc;
};

static int ka_result(void *ctx, const cJSON *result)
{
    struct ka_ctx *k = ctx;

    k->rc = cetcd_codec_lease_ttl_resp(result, &k->out->mem, k->out);
    return k->rc ? k->rc : 1;
}

int cetcd_lease_keepalive_once(cetcd_client *c, int64_t id, struct cetcd_lease_ttl_resp *out)
{
    struct ka_ctx k = {out, CE_CORRUPT};
    cJSON *b = obj_i64("ID", id);
    int rc;

    memset(out, 0, sizeof(*out));
    if (!b)
        return CE_NOMEM;
    rc = cetcd_http_stream(c, NULL, "/v3/lease/keepalive", b, true, ka_result, &k);
    cJSON_Delete(b);
    if (!rc && k.rc)
        rc = k.rc; /* the stream ended without a result */
    if (rc) {
        cetcd_mem_free(out->mem);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

/* ---------------------------------------------------------------- Cluster */

int cetcd_member_list(cetcd_client *c, struct cetcd_member_resp *out)
{
    cJSON *b = cJSON_CreateObject();

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/cluster/member/list", b, dec_member, out, sizeof(*out));
}

static cJSON *urls_body(uint64_t id, const char *const *urls, size_t n)
{
    cJSON *b = obj_u64("ID", id), *arr;

    if (!b)
        return NULL;
    arr = cJSON_AddArrayToObject(b, "peerURLs");
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *s = cJSON_CreateString(urls[i]);
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            arr = NULL;
        }
    }
    if (!arr) {
        cJSON_Delete(b);
        return NULL;
    }
    return b;
}

int cetcd_member_add(cetcd_client *c, const char *const *peer_urls, size_t n, bool learner,
                     struct cetcd_member_resp *out)
{
    cJSON *b = urls_body(0, peer_urls, n);

    if (b && learner && !cJSON_AddTrueToObject(b, "isLearner")) {
        cJSON_Delete(b);
        b = NULL;
    }
    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/cluster/member/add", b, dec_member, out, sizeof(*out));
}

int cetcd_member_remove(cetcd_client *c, uint64_t id, struct cetcd_member_resp *out)
{
    cJSON *b = obj_u64("ID", id);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/cluster/member/remove", b, dec_member, out, sizeof(*out));
}

int cetcd_member_update(cetcd_client *c, uint64_t id, const char *const *peer_urls, size_t n,
                        struct cetcd_member_resp *out)
{
    cJSON *b = urls_body(id, peer_urls, n);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/cluster/member/update", b, dec_member, out, sizeof(*out));
}

int cetcd_member_promote(cetcd_client *c, uint64_t id, struct cetcd_member_resp *out)
{
    cJSON *b = obj_u64("ID", id);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/cluster/member/promote", b, dec_member, out, sizeof(*out));
}

/* ---------------------------------------------------------------- Maintenance */

/* An endpoint given by the caller, normalized ("host:port" -> "http://host:port"). */
static const char *norm_ep(const char *ep, char *buf, size_t sz)
{
    if (!ep)
        return NULL;
    return cetcd_endpoint_normalize(ep, false, buf, sz) ? ep : buf;
}

int cetcd_status(cetcd_client *c, const char *endpoint, struct cetcd_status_resp *out)
{
    char buf[1024];
    cJSON *b = cJSON_CreateObject();

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, norm_ep(endpoint, buf, sizeof(buf)), "/v3/maintenance/status", b,
                       dec_status, out, sizeof(*out));
}

static int alarm_call(cetcd_client *c, const char *action, uint64_t member_id,
                      enum cetcd_alarm_type alarm, struct cetcd_alarm_resp *out)
{
    static const char *const names[] = {"NONE", "NOSPACE", "CORRUPT"};
    cJSON *b = obj_u64("memberID", member_id);

    if (b && (!cJSON_AddStringToObject(b, "action", action) ||
              (alarm && (unsigned)alarm <= 2 &&
               !cJSON_AddStringToObject(b, "alarm", names[alarm])))) {
        cJSON_Delete(b);
        b = NULL;
    }
    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, NULL, "/v3/maintenance/alarm", b, dec_alarm, out, sizeof(*out));
}

int cetcd_alarm_list(cetcd_client *c, struct cetcd_alarm_resp *out)
{
    return alarm_call(c, "GET", 0, CETCD_ALARM_NONE, out);
}

/* Disarms every listed alarm one by one (as clientv3 does for an empty AlarmMember); the result
 * holds the last answer's header and every alarm deactivated. */
static int disarm_all(cetcd_client *c, struct cetcd_alarm_resp *out)
{
    struct cetcd_alarm_resp list, one;
    int rc = cetcd_alarm_list(c, &list);

    memset(out, 0, sizeof(*out));
    if (rc)
        return rc;
    out->header = list.header;
    if (list.n_alarms) {
        out->alarms = cetcd_mem_alloc(&out->mem, sizeof(*out->alarms) * list.n_alarms);
        if (!out->alarms) {
            rc = CE_NOMEM;
            goto out_free_list;
        }
    }
    for (size_t i = 0; i < list.n_alarms; i++) {
        rc = alarm_call(c, "DEACTIVATE", list.alarms[i].member_id, list.alarms[i].alarm, &one);
        if (rc)
            goto out_free_list;
        out->header = one.header;
        for (size_t k = 0; k < one.n_alarms && out->n_alarms < list.n_alarms; k++)
            out->alarms[out->n_alarms++] = one.alarms[k];
        cetcd_alarm_resp_free(&one);
    }
out_free_list:
    cetcd_alarm_resp_free(&list);
    if (rc)
        cetcd_alarm_resp_free(out);
    return rc;
}

int cetcd_alarm_disarm(cetcd_client *c, uint64_t member_id, enum cetcd_alarm_type alarm,
                       struct cetcd_alarm_resp *out)
{
    if (member_id == 0 && alarm == CETCD_ALARM_NONE)
        return disarm_all(c, out);
    return alarm_call(c, "DEACTIVATE", member_id, alarm, out);
}

int cetcd_defragment(cetcd_client *c, const char *endpoint, struct cetcd_header_resp *out)
{
    char buf[1024];
    cJSON *b = cJSON_CreateObject();

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, norm_ep(endpoint, buf, sizeof(buf)), "/v3/maintenance/defragment", b,
                       dec_header, out, sizeof(*out));
}

int cetcd_hash_kv(cetcd_client *c, const char *endpoint, int64_t revision,
                  struct cetcd_hash_kv_resp *out)
{
    char buf[1024];
    cJSON *b = obj_i64("revision", revision);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, norm_ep(endpoint, buf, sizeof(buf)), "/v3/maintenance/hashkv", b,
                       dec_hash_kv, out, sizeof(*out));
}

int cetcd_move_leader(cetcd_client *c, const char *endpoint, uint64_t target_id,
                      struct cetcd_header_resp *out)
{
    char buf[1024];
    cJSON *b = obj_u64("targetID", target_id);

    if (!b)
        return memset(out, 0, sizeof(*out)), CE_NOMEM;
    return call_decode(c, norm_ep(endpoint, buf, sizeof(buf)),
                       "/v3/maintenance/transfer-leadership", b, dec_header, out, sizeof(*out));
}

struct snap_ctx {
    cetcd_blob_sink sink;
    void *ctx;
    char *buf;
    size_t cap;
};

static int snap_result(void *ctx, const cJSON *result)
{
    struct snap_ctx *s = ctx;
    const cJSON *blob = cJSON_GetObjectItemCaseSensitive(result, "blob");
    size_t len, n;

    if (!blob || cJSON_IsNull(blob))
        return 0;
    if (!cJSON_IsString(blob))
        return CE_CORRUPT;
    len = strlen(blob->valuestring);
    if (len / 4 * 3 + 4 > s->cap) {
        char *p = realloc(s->buf, len / 4 * 3 + 4);
        if (!p)
            return CE_NOMEM;
        s->buf = p;
        s->cap = len / 4 * 3 + 4;
    }
    if (cetcd_b64_decode(blob->valuestring, len, s->buf, &n))
        return CE_CORRUPT;
    return s->sink(s->ctx, s->buf, n);
}

int cetcd_snapshot(cetcd_client *c, const char *endpoint, cetcd_blob_sink sink, void *ctx)
{
    char buf[1024];
    struct snap_ctx s = {sink, ctx, NULL, 0};
    cJSON *b = cJSON_CreateObject();
    int rc;

    if (!b)
        return CE_NOMEM;
    rc = cetcd_http_stream(c, norm_ep(endpoint, buf, sizeof(buf)), "/v3/maintenance/snapshot", b,
                           false, snap_result, &s);
    cJSON_Delete(b);
    free(s.buf);
    return rc;
}

/* ---------------------------------------------------------------- Auth */

int cetcd_authenticate(cetcd_client *c, const char *user, const char *password)
{
    cJSON *b = cJSON_CreateObject(), *resp = NULL;
    const cJSON *tok;
    int rc = CE_NOMEM;

    if (!b || !cJSON_AddStringToObject(b, "name", user) ||
        !cJSON_AddStringToObject(b, "password", password))
        goto out_free_body;
    rc = cetcd_http_call(c, NULL, "/v3/auth/authenticate", b, &resp);
    if (rc)
        goto out_free_body;
    tok = cJSON_GetObjectItemCaseSensitive(resp, "token");
    rc = cJSON_IsString(tok) ? cetcd_client_set_token(c, tok->valuestring) : CE_CORRUPT;
    cJSON_Delete(resp);
out_free_body:
    cJSON_Delete(b);
    return rc;
}

/* ---------------------------------------------------------------- freeing */

#define DEFINE_FREE(fn, type)              \
    void fn(struct type *r)                \
    {                                      \
        if (!r)                            \
            return;                        \
        cetcd_mem_free(r->mem);            \
        memset(r, 0, sizeof(*r));          \
    }

DEFINE_FREE(cetcd_range_resp_free, cetcd_range_resp)
DEFINE_FREE(cetcd_put_resp_free, cetcd_put_resp)
DEFINE_FREE(cetcd_delete_resp_free, cetcd_delete_resp)
DEFINE_FREE(cetcd_txn_resp_free, cetcd_txn_resp)
DEFINE_FREE(cetcd_header_resp_free, cetcd_header_resp)
DEFINE_FREE(cetcd_lease_grant_resp_free, cetcd_lease_grant_resp)
DEFINE_FREE(cetcd_lease_ttl_resp_free, cetcd_lease_ttl_resp)
DEFINE_FREE(cetcd_lease_list_resp_free, cetcd_lease_list_resp)
DEFINE_FREE(cetcd_member_resp_free, cetcd_member_resp)
DEFINE_FREE(cetcd_status_resp_free, cetcd_status_resp)
DEFINE_FREE(cetcd_alarm_resp_free, cetcd_alarm_resp)
DEFINE_FREE(cetcd_hash_kv_resp_free, cetcd_hash_kv_resp)
