/*
 * services.c: etcd's v3 services on the node, registered with the client-port transport.
 *
 * Writes (Put, DeleteRange, Txn, Compact) are validated, wrapped in an InternalRequest and
 * proposed; the call is answered from the node's callback once the entry is applied.
 * Linearizable reads wait for the node's read barrier, serializable ones read at once. Every
 * handler that waits keeps the node handle in the call's data, and cancels it in on_close, so
 * a client that disconnects never receives a late callback.
 */
#include "services.h"
#include "services_int.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "pbutil.h"
#include "rpc.h"
#include "tls.h"
#include "version.h"

#include "health.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

services *svc_of(rpc_call *c)
{
    return rpc_call_ctx(c);
}

void svc_free_msg(void *m)
{
    if (m)
        protobuf_c_message_free_unpacked(m, 0);
}

/* Requests carrying "hasleader" (etcdctl's require-leader) fail fast without a leader. */
static bool leader_required_missing(rpc_call *c)
{
    const char *v = rpc_call_metadata(c, "hasleader");
    node_status st;

    if (!v || strcmp(v, "true"))
        return false;
    node_get_status(svc_of(c)->node, &st);
    return st.leader == 0;
}

/* Every etcd response has `ResponseHeader header = 1`: fill cluster/member/term there. */
static void fill_header(services *s, ProtobufCMessage *resp)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(resp->descriptor, "header");
    Etcdserverpb__ResponseHeader **hp;

    if (!f)
        return;
    hp = (Etcdserverpb__ResponseHeader **)((char *)resp + f->offset);
    if (!*hp) {
        *hp = malloc(sizeof(**hp));
        if (!*hp)
            return;
        etcdserverpb__response_header__init(*hp);
    }
    node_fill_header(s->node, *hp);
}

void svc_reply(rpc_call *c, ProtobufCMessage *resp)
{
    /* etcd's Alarm answers carry no header at all (its apply path never fills one) */
    if (resp->descriptor != &etcdserverpb__alarm_response__descriptor)
        fill_header(svc_of(c), resp);
    rpc_send(c, resp);
    rpc_finish(c, 0);
    svc_free_msg(resp);
}

/* etcd's Cluster service answers with {cluster_id, member_id, raft_term}: no revision. */
void svc_cluster_reply(rpc_call *c, ProtobufCMessage *resp)
{
    Etcdserverpb__MemberListResponse *any = (Etcdserverpb__MemberListResponse *)resp;

    fill_header(svc_of(c), resp);
    if (any->header)
        any->header->revision = 0;
    rpc_send(c, resp);
    rpc_finish(c, 0);
    svc_free_msg(resp);
}

struct waiting *svc_waiting_new(rpc_call *c, ProtobufCMessage *req)
{
    struct waiting *w = calloc(1, sizeof(*w));

    if (!w)
        return 0;
    w->s = svc_of(c);
    w->call = c;
    w->req = req;
    rpc_call_set_data(c, w);
    return w;
}

void svc_waiting_free(struct waiting *w)
{
    rpc_call_set_data(w->call, 0);
    svc_free_msg(w->req);
    free(w);
}

void svc_on_close_waiting(rpc_call *c)
{
    struct waiting *w = rpc_call_data(c);

    if (!w)
        return;
    node_cancel(w->s->node, w->handle);
    svc_waiting_free(w);
}

/* A request carrying an unknown or expired token (gRPC "token", gateway "Authorization") is
 * refused, as etcd 3.4 does with auth on or off (services_auth.c). */
int svc_token_error(const rpc_call *c)
{
    const char *user;

    return svc_auth_user((rpc_call *)c, &user);
}

bool svc_learner_refused(rpc_call *c, ProtobufCMessage *req)
{
    if (!node_is_learner(svc_of(c)->node))
        return false;
    svc_free_msg(req);
    rpc_finish(c, CE_LEARNER_NOT_SUPPORTED);
    return true;
}

/* ---- writes ---------------------------------------------------------------------------- */

void svc_finish_waiting(struct waiting *w, int err, ProtobufCMessage *resp,
                        void (*reply)(rpc_call *c, ProtobufCMessage *resp))
{
    rpc_call *c = w->call;

    svc_waiting_free(w);
    if (!err && !resp)
        err = CE_NOMEM;
    if (err) {
        rpc_finish(c, err);
        return;
    }
    reply(c, resp);
}

static void write_done(void *ctx, int err, ProtobufCMessage *resp)
{
    svc_finish_waiting(ctx, err, resp, svc_reply);
}

static int propose(rpc_call *c, Cetcdpb__InternalRequest *ir)
{
    services *s = svc_of(c);
    struct waiting *w;
    int rc;

    pb_strip_unknown(&ir->base);
    if (protobuf_c_message_get_packed_size(&ir->base) > node_max_request_bytes(s->node))
        return CE_REQ_TOO_LARGE;
    w = svc_waiting_new(c, 0);
    if (!w)
        return CE_NOMEM;
    rc = node_propose(s->node, ir, write_done, w, &w->handle);
    if (rc)
        svc_waiting_free(w);
    return rc;
}

/* Proposes ir (which wraps the client's request m) unless validation failed with rc; the
 * call is answered from write_done, or here on failure. Frees m. */
static void submit(rpc_call *c, ProtobufCMessage *m, Cetcdpb__InternalRequest *ir, int rc)
{
    if (node_is_learner(svc_of(c)->node))
        rc = CE_LEARNER_NOT_SUPPORTED;
    if (!rc)
        rc = svc_check_write(c, ir);
    if (!rc)
        rc = propose(c, ir);
    svc_free_msg(m);
    if (rc)
        rpc_finish(c, rc);
}

#define INTERNAL(req_case, field, value)                                                       \
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;                             \
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_##req_case;                           \
    ir.field = (value)

static void kv_put(rpc_call *c, ProtobufCMessage *m)
{
    INTERNAL(PUT, put, (Etcdserverpb__PutRequest *)m);
    submit(c, m, &ir, mvcc_check_put(ir.put));
}

static void kv_delete(rpc_call *c, ProtobufCMessage *m)
{
    INTERNAL(DELETE_RANGE, delete_range, (Etcdserverpb__DeleteRangeRequest *)m);
    submit(c, m, &ir, mvcc_check_delete(ir.delete_range));
}

static void kv_txn(rpc_call *c, ProtobufCMessage *m)
{
    INTERNAL(TXN, txn, (Etcdserverpb__TxnRequest *)m);
    submit(c, m, &ir, mvcc_check_txn(node_store(svc_of(c)->node), ir.txn));
}

/* etcd refuses a compaction to a compacted or future revision before proposing it. */
static int check_compact(mvcc *store, const Etcdserverpb__CompactionRequest *r)
{
    if (r->revision <= mvcc_compact_rev(store))
        return CE_COMPACTED;
    return r->revision > mvcc_rev(store) ? CE_FUTURE_REV : 0;
}

static void kv_compact(rpc_call *c, ProtobufCMessage *m)
{
    INTERNAL(COMPACTION, compaction, (Etcdserverpb__CompactionRequest *)m);
    submit(c, m, &ir, check_compact(node_store(svc_of(c)->node), ir.compaction));
}

/* ---- reads ----------------------------------------------------------------------------- */

static void do_range(rpc_call *c, Etcdserverpb__RangeRequest *r)
{
    Etcdserverpb__RangeResponse *resp = 0;
    int rc = mvcc_range(node_store(svc_of(c)->node), r, &resp);

    node_note_read(svc_of(c)->node);
    if (rc) {
        rpc_finish(c, rc);
        return;
    }
    svc_reply(c, &resp->base);
}

static void range_ready(void *ctx, int err)
{
    struct waiting *w = ctx;
    rpc_call *c = w->call;
    Etcdserverpb__RangeRequest *r = (Etcdserverpb__RangeRequest *)w->req;

    w->req = 0;
    svc_waiting_free(w);
    if (err)
        rpc_finish(c, err);
    else
        do_range(c, r);
    svc_free_msg(r);
}

static void kv_range(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__RangeRequest *r = (Etcdserverpb__RangeRequest *)m;
    struct waiting *w;
    int rc = mvcc_check_range(r);

    if (!r->serializable && node_is_learner(svc_of(c)->node))
        rc = CE_LEARNER_NOT_SUPPORTED;
    if (!rc && leader_required_missing(c))
        rc = CE_NO_LEADER;
    if (!rc)
        rc = svc_check_range(c, &r->key, &r->range_end, false);
    if (!rc && r->serializable) {
        do_range(c, r);
        svc_free_msg(m);
        return;
    }
    if (!rc) {
        w = svc_waiting_new(c, m);
        if (!w)
            rc = CE_NOMEM;
        else if ((rc = node_read_index(svc_of(c)->node, range_ready, w, &w->handle)) != 0) {
            w->req = 0;
            svc_waiting_free(w);
        } else {
            return;
        }
    }
    svc_free_msg(m);
    rpc_finish(c, rc);
}

/* ---- cluster and maintenance ------------------------------------------------------------- */

static void cluster_member_list(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__MemberListResponse *resp;

    if (svc_learner_refused(c, m))
        return;
    svc_free_msg(m);
    resp = malloc(sizeof(*resp));
    if (!resp) {
        rpc_finish(c, CE_NOMEM);
        return;
    }
    etcdserverpb__member_list_response__init(resp);
    resp->members = node_member_list(svc_of(c)->node, &resp->n_members);
    svc_cluster_reply(c, &resp->base);
}

/* etcd lists each active alarm in Status.errors as "memberID:<id> alarm:<TYPE> ". */
static void status_errors(node *n, Etcdserverpb__StatusResponse *resp)
{
    Etcdserverpb__AlarmResponse al = ETCDSERVERPB__ALARM_RESPONSE__INIT;
    char buf[96];

    if (node_alarms(n, &al) == 0 && al.n_alarms) {
        resp->errors = calloc(al.n_alarms, sizeof(*resp->errors));
        for (size_t i = 0; resp->errors && i < al.n_alarms; i++) {
            snprintf(buf, sizeof(buf), "memberID:%llu alarm:%s ",
                     (unsigned long long)al.alarms[i]->memberid,
                     al.alarms[i]->alarm == ETCDSERVERPB__ALARM_TYPE__NOSPACE ? "NOSPACE" : "CORRUPT");
            resp->errors[resp->n_errors++] = strdup(buf);
        }
    }
    for (size_t i = 0; i < al.n_alarms; i++)
        free(al.alarms[i]);
    free(al.alarms);
}

static void maint_status(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__StatusResponse *resp = malloc(sizeof(*resp));
    node_status st;

    svc_free_msg(m);
    if (!resp) {
        rpc_finish(c, CE_NOMEM);
        return;
    }
    node_get_status(svc_of(c)->node, &st);
    etcdserverpb__status_response__init(resp);
    resp->version = strdup(CETCD_ETCD_API_VERSION);
    resp->dbsize = st.db_size;
    resp->leader = st.leader;
    resp->raftindex = st.commit_index;
    resp->raftterm = st.term;
    resp->raftappliedindex = st.applied_index;
    resp->dbsizeinuse = st.db_size_in_use;
    resp->islearner = st.is_learner;
    status_errors(svc_of(c)->node, resp);
    svc_reply(c, &resp->base);
}

static void maint_hash_kv(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__HashKVRequest *r = (Etcdserverpb__HashKVRequest *)m;
    Etcdserverpb__HashKVResponse *resp = malloc(sizeof(*resp));
    uint32_t hash = 0;
    int64_t crev = 0;
    int rc = resp ? mvcc_hash_kv(node_store(svc_of(c)->node), r->revision, &hash, &crev) : CE_NOMEM;

    if (svc_maint_refused(c, m)) {
        free(resp);
        return;
    }

    svc_free_msg(m);
    if (rc) {
        free(resp);
        rpc_finish(c, rc);
        return;
    }
    etcdserverpb__hash_kvresponse__init(resp);
    resp->hash = hash;
    resp->compact_revision = crev;
    svc_reply(c, &resp->base);
}

static void maint_hash(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__HashResponse *resp = malloc(sizeof(*resp));
    uint32_t hash = 0;
    int64_t crev = 0;
    int rc = resp ? mvcc_hash_kv(node_store(svc_of(c)->node), 0, &hash, &crev) : CE_NOMEM;

    if (svc_maint_refused(c, m)) {
        free(resp);
        return;
    }

    svc_free_msg(m);
    if (rc) {
        free(resp);
        rpc_finish(c, rc);
        return;
    }
    etcdserverpb__hash_response__init(resp);
    resp->hash = hash;
    svc_reply(c, &resp->base);
}

/* GET is answered from the member's copy; ACTIVATE and DEACTIVATE go through Raft. */
static void maint_alarm(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__AlarmRequest *r = (Etcdserverpb__AlarmRequest *)m;
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    Etcdserverpb__AlarmResponse *resp;
    int rc;

    if (svc_learner_refused(c, m))
        return;

    if (r->action != ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET) {
        ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_ALARM;
        ir.alarm = r;
        submit(c, m, &ir, 0);
        return;
    }
    svc_free_msg(m);
    resp = malloc(sizeof(*resp));
    if (!resp) {
        rpc_finish(c, CE_NOMEM);
        return;
    }
    etcdserverpb__alarm_response__init(resp);
    rc = node_alarms(svc_of(c)->node, resp);
    if (rc) {
        svc_free_msg(resp);
        rpc_finish(c, rc);
        return;
    }
    svc_reply(c, &resp->base);
}

/* Maintenance.Defragment: this member's store only, as etcd (node_defrag.c). */
static void maint_defrag(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__DefragmentResponse *resp = malloc(sizeof(*resp));
    int rc;

    if (svc_maint_refused(c, m)) {
        free(resp);
        return;
    }

    svc_free_msg(m);
    if (!resp) {
        rpc_finish(c, CE_NOMEM);
        return;
    }
    rc = node_defrag(svc_of(c)->node);
    if (rc) {
        free(resp);
        rpc_finish(c, rc);
        return;
    }
    etcdserverpb__defragment_response__init(resp);
    svc_reply(c, &resp->base);
}

static void health_check(rpc_call *c, ProtobufCMessage *m)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    node_status st;

    svc_free_msg(m);
    node_get_status(svc_of(c)->node, &st);
    resp.status = st.leader ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                            : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    rpc_send(c, &resp.base);
    rpc_finish(c, 0);
}

#define D(x) &etcdserverpb__##x##__descriptor
#define UNARY(g, h, req, resp, fn, close) {g, h, req, resp, false, false, fn, close}

static const rpc_method methods[] = {
    UNARY("/etcdserverpb.KV/Range", "/v3/kv/range", D(range_request), D(range_response), kv_range, svc_on_close_waiting),
    UNARY("/etcdserverpb.KV/Put", "/v3/kv/put", D(put_request), D(put_response), kv_put, svc_on_close_waiting),
    UNARY("/etcdserverpb.KV/DeleteRange", "/v3/kv/deleterange", D(delete_range_request), D(delete_range_response), kv_delete, svc_on_close_waiting),
    UNARY("/etcdserverpb.KV/Txn", "/v3/kv/txn", D(txn_request), D(txn_response), kv_txn, svc_on_close_waiting),
    UNARY("/etcdserverpb.KV/Compact", "/v3/kv/compaction", D(compaction_request), D(compaction_response), kv_compact, svc_on_close_waiting),
    UNARY("/etcdserverpb.Cluster/MemberAdd", "/v3/cluster/member/add", D(member_add_request), D(member_add_response), svc_member_add, svc_on_close_waiting),
    UNARY("/etcdserverpb.Cluster/MemberRemove", "/v3/cluster/member/remove", D(member_remove_request), D(member_remove_response), svc_member_remove, svc_on_close_waiting),
    UNARY("/etcdserverpb.Cluster/MemberUpdate", "/v3/cluster/member/update", D(member_update_request), D(member_update_response), svc_member_update, svc_on_close_waiting),
    UNARY("/etcdserverpb.Cluster/MemberPromote", "/v3/cluster/member/promote", D(member_promote_request), D(member_promote_response), svc_member_promote, svc_on_close_waiting),
    UNARY("/etcdserverpb.Maintenance/MoveLeader", "/v3/maintenance/transfer-leadership", D(move_leader_request), D(move_leader_response), svc_move_leader, svc_on_close_waiting),
    UNARY("/etcdserverpb.Cluster/MemberList", "/v3/cluster/member/list", D(member_list_request), D(member_list_response), cluster_member_list, 0),
    UNARY("/etcdserverpb.Maintenance/Status", "/v3/maintenance/status", D(status_request), D(status_response), maint_status, 0),
    UNARY("/etcdserverpb.Maintenance/HashKV", "/v3/maintenance/hashkv", D(hash_kvrequest), D(hash_kvresponse), maint_hash_kv, 0),
    UNARY("/etcdserverpb.Maintenance/Hash", "/v3/maintenance/hash", D(hash_request), D(hash_response), maint_hash, 0),
    UNARY("/etcdserverpb.Maintenance/Alarm", "/v3/maintenance/alarm", D(alarm_request), D(alarm_response), maint_alarm, 0),
    UNARY("/etcdserverpb.Maintenance/Defragment", "/v3/maintenance/defragment", D(defragment_request), D(defragment_response), maint_defrag, 0),
    UNARY("/etcdserverpb.Lease/LeaseGrant", "/v3/lease/grant", D(lease_grant_request), D(lease_grant_response), svc_lease_grant, svc_on_close_waiting),
    UNARY("/etcdserverpb.Lease/LeaseRevoke", "/v3/lease/revoke", D(lease_revoke_request), D(lease_revoke_response), svc_lease_revoke, svc_on_close_waiting),
    UNARY("/etcdserverpb.Lease/LeaseTimeToLive", "/v3/lease/timetolive", D(lease_time_to_live_request), D(lease_time_to_live_response), svc_lease_ttl, svc_on_close_waiting),
    UNARY("/etcdserverpb.Lease/LeaseLeases", "/v3/lease/leases", D(lease_leases_request), D(lease_leases_response), svc_lease_leases, svc_on_close_waiting),
    {"/etcdserverpb.Lease/LeaseKeepAlive", "/v3/lease/keepalive", D(lease_keep_alive_request), D(lease_keep_alive_response), true, true, svc_lease_keepalive, svc_lease_keepalive_close, svc_lease_keepalive_end},
    {"/etcdserverpb.Watch/Watch", "/v3/watch", D(watch_request), D(watch_response), true, true, svc_watch, svc_watch_close, svc_watch_end},
    {"/etcdserverpb.Maintenance/Snapshot", "/v3/maintenance/snapshot", D(snapshot_request), D(snapshot_response), false, true, svc_snapshot, svc_snapshot_close, 0, svc_snapshot_writable},
    SVC_AUTH_METHODS,
    UNARY("/grpc.health.v1.Health/Check", 0, &grpc__health__v1__health_check_request__descriptor, &grpc__health__v1__health_check_response__descriptor, health_check, 0),
    {0, 0, 0, 0, false, false, 0, 0},
};

/* ---- plain HTTP -------------------------------------------------------------------------- */

static int set_body(rpc_http_reply *r, int status, const char *type, const char *text)
{
    r->status = status;
    r->content_type = type;
    r->body = strdup(text);
    r->len = r->body ? strlen(r->body) : 0;
    return status;
}


/* ---- /health ----
 * etcd 3.4's answer: {"health":"false"} (503) while an alarm is active or no leader is known;
 * otherwise a quorum read (etcd 3.4 proposes a v2 QGET; here a ReadIndex barrier, as etcd 3.5's
 * Range) must complete within HEALTH_TIMEOUT_MS (etcd's 1 s), else false. The true answer is
 * 200 {"health":"true"}, the false one 503 {"health":"false"}\n (Go's http.Error adds the
 * newline), both text/plain as etcd's. Every answer counts in etcd_server_health_success or
 * _failures; a check whose client went away before the answer counts in neither. */
#define HEALTH_TIMEOUT_MS 1000

/* A /health call waiting for its read barrier (the call's data). */
struct health_wait {
    services *s;
    rpc_call *call;
    uint64_t handle;
    ev_timer timer;
};

static int health_answer(services *s, bool ok, rpc_http_reply *r)
{
    if (ok)
        s->health_ok++;
    else
        s->health_failed++;
    return ok ? set_body(r, 200, "text/plain; charset=utf-8", "{\"health\":\"true\"}")
              : set_body(r, 503, "text/plain; charset=utf-8", "{\"health\":\"false\"}\n");
}

static void health_wait_free(struct health_wait *w)
{
    evloop_timer_stop(w->s->loop, &w->timer);
    rpc_call_set_data(w->call, NULL);
    free(w);
}

static void health_end(struct health_wait *w, bool ok)
{
    rpc_http_reply r = {0};
    rpc_call *c = w->call;
    services *s = w->s;

    health_wait_free(w);
    health_answer(s, ok, &r);
    rpc_http_answer(c, &r);
}

static void health_read_done(void *ctx, int err)
{
    health_end(ctx, err == 0);
}

static void health_timeout(evloop *l, ev_timer *t)
{
    struct health_wait *w = t->data;

    (void)l;
    node_cancel(w->s->node, w->handle);
    health_end(w, false);
}

/* http_close: the client of a waiting /health went away (or the server stops). */
static void health_close(rpc_call *c)
{
    struct health_wait *w = rpc_call_data(c);

    if (!w)
        return;
    node_cancel(w->s->node, w->handle);
    health_wait_free(w);
}

static int health(services *s, rpc_call *c, rpc_http_reply *r)
{
    struct health_wait *w;
    node_status st;

    node_get_status(s->node, &st);
    if (!st.leader || st.nalarms)
        return health_answer(s, false, r);
    w = calloc(1, sizeof(*w));
    if (!w)
        return health_answer(s, false, r);
    w->s = s;
    w->call = c;
    if (node_read_index(s->node, health_read_done, w, &w->handle)) {
        free(w);
        return health_answer(s, false, r);
    }
    rpc_call_set_data(c, w);
    evloop_timer_start(s->loop, &w->timer, HEALTH_TIMEOUT_MS, 0, health_timeout, w);
    return RPC_HTTP_LATER;
}

static int metrics(services *s, rpc_http_reply *r)
{
    metrics_source src = {s->node, s->rpc, methods, s->quota_bytes, s->health_ok, s->health_failed, {0}};

    svc_watch_stats(s, &src.watch);

    r->status = 200;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (metrics_render(&src, &r->body, &r->len))
        return set_body(r, 500, "text/plain", "out of memory");
    return 200;
}

static int http_get(void *ctx, rpc_call *c, const char *path, rpc_http_reply *r);

/* The --listen-metrics-urls listener: plain HTTP GETs only, no service methods. */
static const rpc_method no_methods[] = {{0, 0, 0, 0, false, false, 0, 0}};

/* The transport settings both listeners share: URLs, methods, this context, the GET paths. */
static rpc_server_config server_config(services *s, const config *cfg, const config_urls *urls,
                                       const rpc_method *m)
{
    rpc_server_config c = {0};

    c.listen_urls = (const char *const *)urls->list;
    c.nlisten = urls->n;
    c.methods = m;
    c.ctx = s;
    c.http_get = http_get;
    c.http_close = health_close;
    c.max_request_bytes = (uint32_t)cfg->max_request_bytes;
    return c;
}

/* TLS of the client port (H8): rc_cfg->tls points into *tls (freed after rpc_server_new). */
static int client_tls(const config *cfg, rpc_server_config *rc_cfg, tls_setup *tls, bool *use)
{
    int rc = tls_setup_from_config(&cfg->client_tls, cfg->data_dir, "client",
                                   (const char *const *)cfg->listen_client_urls.list,
                                   cfg->listen_client_urls.n, tls, use);

    rc_cfg->tls = rc || !*use ? NULL : &tls->files;
    return rc;
}

/* --listen-metrics-urls: /metrics and /health; https:// ones with the client port's
 * certificate and client-certificate rule, as etcd. */
static int metrics_listen(services *s, evloop *loop, const config *cfg)
{
    rpc_server_config mc;
    tls_setup tls;
    bool use_tls;
    int rc;

    if (!cfg->listen_metrics_urls.n)
        return 0;
    mc = server_config(s, cfg, &cfg->listen_metrics_urls, no_methods);
    if ((rc = client_tls(cfg, &mc, &tls, &use_tls)))
        return rc;
    rc = rpc_server_new(loop, &mc, &s->metrics_rpc);
    tls_setup_fini(&tls);
    if (rc)
        log_error("services: cannot listen on %s: %s", cfg->listen_metrics_urls.list[0], ce_strerror(rc));
    return rc;
}

/* The GET paths: /version, /health, /readyz and /livez (cetcd's: ready = a leader is known;
 * live = the loop answers), /metrics. c NULL: only whether the path exists. */
static int http_get(void *ctx, rpc_call *c, const char *path, rpc_http_reply *r)
{
    static const char *const paths[] = {"/version", "/health", "/readyz", "/livez", "/metrics"};
    services *s = ctx;
    node_status st;

    if (!c) {
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
            if (!strcmp(path, paths[i]))
                return 200;
        return 0;
    }
    if (!strcmp(path, "/version"))
        return set_body(r, 200, "application/json",
                        "{\"etcdserver\":\"" CETCD_ETCD_API_VERSION "\",\"etcdcluster\":\""
                        CETCD_ETCD_CLUSTER_VERSION "\",\"cetcd\":\"" CETCD_VERSION "\"}");
    if (!strcmp(path, "/health"))
        return health(s, c, r);
    if (!strcmp(path, "/livez"))
        return set_body(r, 200, "text/plain", "ok");
    if (!strcmp(path, "/readyz")) {
        node_get_status(s->node, &st);
        return st.leader ? set_body(r, 200, "text/plain", "ok")
                         : set_body(r, 503, "text/plain", "[-]leader failed: etcdserver: no leader\n");
    }
    if (!strcmp(path, "/metrics"))
        return metrics(s, r);
    return 0;
}

int services_new(evloop *loop, node *n, const config *cfg, services **out)
{
    services *s = calloc(1, sizeof(*s));
    rpc_server_config rc_cfg;
    tls_setup tls;
    bool use_tls;
    int rc;

    if (!s)
        return CE_NOMEM;
    s->node = n;
    s->loop = loop;
    s->quota_bytes = cfg->quota_backend_bytes;
    rc_cfg = server_config(s, cfg, &cfg->listen_client_urls, methods);
    rc = svc_watch_init(s, loop, cfg);
    if (rc)
        goto out_free;
    rc = client_tls(cfg, &rc_cfg, &tls, &use_tls);
    if (rc)
        goto out_watch;
    rc = rpc_server_new(loop, &rc_cfg, &s->rpc);
    tls_setup_fini(&tls);
    if (rc) {
        log_error("services: cannot listen on %s: %s", cfg->listen_client_urls.list[0], ce_strerror(rc));
        goto out_watch;
    }
    rc = metrics_listen(s, loop, cfg);
    if (rc) {
        services_free(s);
        return rc;
    }
    *out = s;
    return 0;
out_watch:
    svc_watch_fini(s);
out_free:
    free(s);
    return rc;
}

void services_free(services *s)
{
    if (!s)
        return;
    rpc_server_free(s->metrics_rpc);
    rpc_server_free(s->rpc);
    svc_snapshot_fini(s);
    svc_watch_fini(s);
    free(s);
}
