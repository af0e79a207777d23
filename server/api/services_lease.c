/*
 * services_lease.c: etcd's Lease service (Grant, Revoke, KeepAlive, TimeToLive, Leases) on
 * the node's lease API (node.h, "Leases").
 *
 * Grant and Revoke are proposals answered when applied. TimeToLive and Leases wait for the
 * node's read barrier, then answer from this member's lessor, so a lease acknowledged by any
 * member is visible. Learners refuse all of them (etcd's rule for every Lease RPC).
 *
 * KeepAlive is a bidirectional stream: each request {ID} is proposed as a renewal, and
 * answered {ID, TTL} once applied, in the order the renewals apply; an unknown lease is
 * answered TTL 0, not an error (etcd's). When the client half-closes, the stream ends OK
 * after the renewals in flight were answered (etcd's loop answers each request before it
 * reads the next); that is also the gateway's POST /v3/lease/keepalive: one JSON request,
 * one chunk {"result":{...}}. Invariant: every renewal in flight is on its stream's list and
 * holds a node handle; on_close cancels them all, so no callback reaches a dead call.
 */
#include "services_int.h"

#include "err.h"

#include <stdlib.h>

/* ---- Grant, Revoke ---------------------------------------------------------------------- */

static void lease_written(void *ctx, int err, ProtobufCMessage *resp)
{
    svc_finish_waiting(ctx, err, resp, svc_reply);
}

void svc_lease_grant(rpc_call *c, ProtobufCMessage *m)
{
    struct waiting *w;
    int rc;

    if (svc_learner_refused(c, m))
        return;
    if ((rc = svc_token_error(c))) {
        svc_free_msg(m);
        rpc_finish(c, rc);
        return;
    }
    w = svc_waiting_new(c, 0);
    rc = w ? node_lease_grant(svc_of(c)->node, (Etcdserverpb__LeaseGrantRequest *)m,
                              lease_written, w, &w->handle)
           : CE_NOMEM;
    svc_free_msg(m);
    if (!rc)
        return;
    if (w)
        svc_waiting_free(w);
    rpc_finish(c, rc);
}

void svc_lease_revoke(rpc_call *c, ProtobufCMessage *m)
{
    int64_t id = ((Etcdserverpb__LeaseRevokeRequest *)m)->id;
    struct waiting *w;
    int rc;

    if (svc_learner_refused(c, m))
        return;
    svc_free_msg(m);
    if ((rc = svc_check_lease_keys(c, id))) {
        rpc_finish(c, rc);
        return;
    }
    w = svc_waiting_new(c, 0);
    rc = w ? node_lease_revoke(svc_of(c)->node, id, lease_written, w, &w->handle) : CE_NOMEM;
    if (!rc)
        return;
    if (w)
        svc_waiting_free(w);
    rpc_finish(c, rc);
}

/* ---- TimeToLive, Leases: after a read barrier -------------------------------------------- */

/* Waits for the read barrier with m kept in the call's waiting record; ready(ctx) follows. */
static void after_barrier(rpc_call *c, ProtobufCMessage *m, node_read_cb ready)
{
    struct waiting *w;
    int rc;

    if (svc_learner_refused(c, m))
        return;
    w = svc_waiting_new(c, m);
    if (!w) {
        svc_free_msg(m);
        rpc_finish(c, CE_NOMEM);
        return;
    }
    rc = node_read_index(svc_of(c)->node, ready, w, &w->handle);
    if (rc) {
        svc_waiting_free(w); /* frees m */
        rpc_finish(c, rc);
    }
}

/* Takes the request out of w and frees w; NULL (call finished) on err. */
static ProtobufCMessage *barrier_passed(struct waiting *w, int err)
{
    rpc_call *c = w->call;
    ProtobufCMessage *req = w->req;

    w->req = 0;
    svc_waiting_free(w);
    if (!err)
        return req;
    svc_free_msg(req);
    rpc_finish(c, err);
    return NULL;
}

/* Replies with resp, or fails the call with rc (resp, possibly NULL, freed). */
static void answer(rpc_call *c, int rc, ProtobufCMessage *resp)
{
    if (rc) {
        svc_free_msg(resp);
        rpc_finish(c, rc);
        return;
    }
    svc_reply(c, resp);
}

static void ttl_ready(void *ctx, int err)
{
    rpc_call *c = ((struct waiting *)ctx)->call;
    Etcdserverpb__LeaseTimeToLiveRequest *r = (void *)barrier_passed(ctx, err);
    Etcdserverpb__LeaseTimeToLiveResponse *resp;
    int rc;

    if (!r)
        return;
    resp = malloc(sizeof(*resp));
    if (resp) {
        etcdserverpb__lease_time_to_live_response__init(resp);
        rc = node_lease_time_to_live(svc_of(c)->node, r, resp);
    } else {
        rc = CE_NOMEM;
    }
    svc_free_msg(r);
    answer(c, rc, &resp->base);
}

void svc_lease_ttl(rpc_call *c, ProtobufCMessage *m)
{
    after_barrier(c, m, ttl_ready);
}

static void leases_ready(void *ctx, int err)
{
    rpc_call *c = ((struct waiting *)ctx)->call;
    ProtobufCMessage *r = barrier_passed(ctx, err);
    Etcdserverpb__LeaseLeasesResponse *resp;
    int rc;

    if (!r)
        return;
    svc_free_msg(r);
    resp = malloc(sizeof(*resp));
    if (resp) {
        etcdserverpb__lease_leases_response__init(resp);
        rc = node_lease_leases(svc_of(c)->node, resp);
    } else {
        rc = CE_NOMEM;
    }
    answer(c, rc, &resp->base);
}

void svc_lease_leases(rpc_call *c, ProtobufCMessage *m)
{
    after_barrier(c, m, leases_ready);
}

/* ---- KeepAlive -------------------------------------------------------------------------- */

struct ka_stream;

struct renewal {
    struct ka_stream *st;
    uint64_t handle;
    int64_t id;
    struct renewal *prev, *next;
};

struct ka_stream {
    rpc_call *call;
    struct renewal *head;         /* renewals in flight */
    bool ending;                  /* the client half-closed: finish when none is in flight */
};

static struct ka_stream *stream_of(rpc_call *c)
{
    struct ka_stream *st = rpc_call_data(c);

    if (st)
        return st;
    st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->call = c;
    rpc_call_set_data(c, st);
    return st;
}

static void renewal_unlink(struct renewal *rn)
{
    if (rn->prev)
        rn->prev->next = rn->next;
    else
        rn->st->head = rn->next;
    if (rn->next)
        rn->next->prev = rn->prev;
}

/* Sends {header, ID, TTL}: resp as applied, or TTL 0 when resp is NULL (unknown lease). */
static int send_keepalive(rpc_call *c, int64_t id, ProtobufCMessage *resp)
{
    Etcdserverpb__LeaseKeepAliveResponse unknown = ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
    Etcdserverpb__LeaseKeepAliveResponse *r = resp ? (void *)resp : &unknown;
    Etcdserverpb__ResponseHeader *h = malloc(sizeof(*h));

    if (!h)
        return CE_NOMEM;
    etcdserverpb__response_header__init(h);
    node_fill_header(svc_of(c)->node, h);
    unknown.id = id;
    if (r->header)
        etcdserverpb__response_header__free_unpacked(r->header, NULL);
    r->header = h;
    rpc_send(c, &r->base);
    if (r == &unknown)
        free(h);
    else
        svc_free_msg(resp);
    return 0;
}

static void renewed(void *ctx, int err, ProtobufCMessage *resp)
{
    struct renewal *rn = ctx;
    struct ka_stream *st = rn->st;
    rpc_call *c = st->call;
    int64_t id = rn->id;

    renewal_unlink(rn);
    free(rn);
    if (err == CE_LEASE_NOT_FOUND)
        err = 0;                  /* etcd answers TTL 0 */
    if (!err)
        err = send_keepalive(c, id, resp);
    else
        svc_free_msg(resp);
    if (err)
        rpc_finish(c, err);       /* on_close cancels the others */
    else if (st->ending && !st->head)
        rpc_finish(c, 0);
}

void svc_lease_keepalive(rpc_call *c, ProtobufCMessage *m)
{
    int64_t id = ((Etcdserverpb__LeaseKeepAliveRequest *)m)->id;
    struct ka_stream *st;
    struct renewal *rn;
    int rc;

    if (svc_learner_refused(c, m))
        return;
    svc_free_msg(m);
    st = stream_of(c);
    rn = st ? calloc(1, sizeof(*rn)) : NULL;
    if (!rn) {
        rpc_finish(c, CE_NOMEM);
        return;
    }
    rn->st = st;
    rn->id = id;
    rc = node_lease_renew(svc_of(c)->node, id, renewed, rn, &rn->handle);
    if (rc) {
        free(rn);
        rpc_finish(c, rc);
        return;
    }
    rn->next = st->head;
    if (st->head)
        st->head->prev = rn;
    st->head = rn;
}

void svc_lease_keepalive_close(rpc_call *c)
{
    struct ka_stream *st = rpc_call_data(c);

    if (!st)
        return;
    while (st->head) {
        struct renewal *rn = st->head;
        node_cancel(svc_of(c)->node, rn->handle);
        renewal_unlink(rn);
        free(rn);
    }
    rpc_call_set_data(c, 0);
    free(st);
}

void svc_lease_keepalive_end(rpc_call *c)
{
    struct ka_stream *st = rpc_call_data(c);

    if (!st || !st->head) {
        rpc_finish(c, 0);
        return;
    }
    st->ending = true;
}
