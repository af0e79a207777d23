/*
 * node_lease.c: leases on a member: the lessor (server/lease/) kept equal to the store, the
 * lease entries of the Raft log, and the leader's expiry of leases.
 *
 * Every lease change is an InternalRequest applied on every member in log order:
 *   lease_grant   ID chosen by the proposer (never 0), TTL already raised to the minimum;
 *   lease_revoke  a client's revoke;
 *   lease_renew   a keepalive: renewed_index = the entry's index, expiry = now + TTL;
 *   lease_expire  {id, renewed_index}, proposed by the leader: revokes the lease only if
 *                 its renewed_index is still that one (a renewal committed in between wins).
 * A revoke deletes the lease's keys in one revision and its record (mvcc_lease_revoke).
 * The lease record (ID, TTL, renewed_index) is written in the apply batch, so the store's
 * consistent index covers it; expiries are local (evloop clock) and are set to now + TTL by
 * every grant or renewal applied, and for all leases when the lessor is rebuilt from the store
 * (start, WAL replay, installed snapshot). A member that becomes leader extends every expiry
 * to at least now + election timeout before it expires anything.
 *
 * Attachments: the lessor follows every applied put (its lease, or none: a put without a
 * lease detaches; ignore_lease keeps the old one), delete range and the executed branch of a
 * txn (found from the TxnResponse, nested txns too), and is rebuilt at load from the live keys.
 * Invariant: after each applied entry, key K is attached to L in the lessor iff the store's
 * live K has lease L. A failure to keep that (out of memory) stops the process.
 *
 * Only the leader expires: every LEASE_TICK_MS it proposes lease_expire for up to
 * EXPIRE_PER_TICK expired leases (etcd's 1,000 revocations per second), and a lease so
 * proposed is not proposed again before a request timeout unless it is renewed meanwhile.
 */
#include "err.h"
#include "lease/lease.h"
#include "log.h"
#include "node_int.h"

#include <stdlib.h>
#include <string.h>

#define LEASE_TICK_MS 250
#define EXPIRE_PER_TICK (1000 * LEASE_TICK_MS / 1000)

/* ---- loading ----------------------------------------------------------------------------- */

static bool lease_exists(void *arg, int64_t lease)
{
    node *n = arg;

    return lessor_exists(n->lessor, lease);
}

static int load_lease(void *arg, const mvcc_lease *l)
{
    node *n = arg;

    return lessor_grant(n->lessor, l->id, l->ttl, l->renewed_index, evloop_now_ms());
}

static int load_key(void *arg, const ProtobufCBinaryData *key, int64_t lease)
{
    node *n = arg;
    int rc = lessor_attach(n->lessor, key->data, key->len, lease);

    if (rc == CE_LEASE_NOT_FOUND) {
        log_warn("node: a key names lease %016llx, which does not exist; ignored",
                 (unsigned long long)lease);
        return 0;
    }
    return rc;
}

void node_lease_attach_store(node *n)
{
    mvcc_set_lease_checker(n->store, lease_exists, n);
}

int node_lease_load(node *n)
{
    int rc;

    if (!n->lessor && (rc = lessor_new(&n->lessor)) != 0)
        return rc;
    lessor_clear(n->lessor);
    rc = mvcc_lease_list(n->store, load_lease, n);
    if (!rc && lessor_count(n->lessor))
        rc = mvcc_lease_attached(n->store, load_key, n);
    if (rc) {
        log_error("node: cannot load the leases: %s", ce_strerror(rc));
        return rc;
    }
    mvcc_set_lease_checker(n->store, lease_exists, n);
    if (lessor_count(n->lessor))
        log_info("node: %zu leases loaded, %zu keys attached", lessor_count(n->lessor),
                 lessor_attached(n->lessor));
    return 0;
}

/* ---- apply ------------------------------------------------------------------------------- */

static int grant_response(int64_t id, int64_t ttl, ProtobufCMessage **out)
{
    Etcdserverpb__LeaseGrantResponse *resp = malloc(sizeof(*resp));

    if (!resp)
        return CE_NOMEM;
    etcdserverpb__lease_grant_response__init(resp);
    resp->id = id;
    resp->ttl = ttl;
    *out = &resp->base;
    return 0;
}

static int keepalive_response(int64_t id, int64_t ttl, ProtobufCMessage **out)
{
    Etcdserverpb__LeaseKeepAliveResponse *resp = malloc(sizeof(*resp));

    if (!resp)
        return CE_NOMEM;
    etcdserverpb__lease_keep_alive_response__init(resp);
    resp->id = id;
    resp->ttl = ttl;
    *out = &resp->base;
    return 0;
}

static int apply_grant(node *n, const Etcdserverpb__LeaseGrantRequest *r, uint64_t index,
                       ProtobufCMessage **out)
{
    mvcc_lease ml = {r->id, r->ttl, index};
    int rc;

    if (r->ttl > LESSOR_MAX_TTL)
        return CE_LEASE_TTL_LARGE;
    if (r->id == 0)
        return CE_LEASE_NOT_FOUND;
    if (lessor_exists(n->lessor, r->id))
        return CE_LEASE_EXISTS;
    if ((rc = grant_response(r->id, r->ttl, out)) != 0)
        return rc;
    if ((rc = mvcc_lease_put(n->store, &ml)) != 0)
        return rc;
    rc = lessor_grant(n->lessor, r->id, r->ttl, index, evloop_now_ms());
    if (rc)
        node_fatal("granting a lease", rc);
    return 0;
}

static int apply_renew(node *n, int64_t id, uint64_t index, ProtobufCMessage **out)
{
    lessor_info info;
    mvcc_lease ml;
    int rc;

    if (!lessor_get(n->lessor, id, &info))
        return CE_LEASE_NOT_FOUND;
    if ((rc = keepalive_response(id, info.ttl, out)) != 0)
        return rc;
    ml.id = id;
    ml.ttl = info.ttl;
    ml.renewed_index = index;
    if ((rc = mvcc_lease_put(n->store, &ml)) != 0)
        return rc;
    return lessor_renew(n->lessor, id, index, evloop_now_ms());
}

/* Deletes the lease's keys (one revision) and the lease, in the store and the lessor. */
static int revoke(node *n, int64_t id, ProtobufCMessage **out)
{
    ProtobufCBinaryData *keys;
    size_t nkeys;
    int rc = lessor_keys(n->lessor, id, &keys, &nkeys);

    if (rc)
        return rc;
    rc = mvcc_lease_revoke(n->store, id, keys, nkeys, (Etcdserverpb__LeaseRevokeResponse **)out);
    free(keys);
    if (rc)
        return rc;
    return lessor_revoke(n->lessor, id);
}

static int apply_expire(node *n, const Cetcdpb__LeaseExpire *r)
{
    if (!lessor_expiry_applies(n->lessor, r->id, r->renewed_index))
        return 0; /* revoked already, or renewed after the leader saw it expire */
    log_debug("node: lease %016llx expired", (unsigned long long)r->id);
    return revoke(n, r->id, NULL);
}

int node_lease_apply(node *n, const Cetcdpb__InternalRequest *req, uint64_t index,
                     ProtobufCMessage **out)
{
    switch (req->request_case) {
    case CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_GRANT:
        return apply_grant(n, req->lease_grant, index, out);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_REVOKE:
        return revoke(n, req->lease_revoke->id, out);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_RENEW:
        return apply_renew(n, req->lease_renew->id, index, out);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_EXPIRE:
        return apply_expire(n, req->lease_expire);
    default:
        return CE_UNSUPPORTED;
    }
}

/* ---- following attachments --------------------------------------------------------------- */

static void track_put(node *n, const Etcdserverpb__PutRequest *r)
{
    if (r->ignore_lease || (!r->lease && !lessor_attached(n->lessor)))
        return;
    if (lessor_attach(n->lessor, r->key.data, r->key.len, r->lease))
        node_fatal("attaching a key to its lease", CE_NOMEM);
}

static void track_delete(node *n, const Etcdserverpb__DeleteRangeRequest *r)
{
    if (!lessor_attached(n->lessor))
        return;
    if (lessor_detach_range(n->lessor, &r->key, &r->range_end))
        node_fatal("detaching deleted keys from their leases", CE_NOMEM);
}

/* The ops of the branch the txn executed, in order, nested txns by their own responses. */
static void track_txn(node *n, const Etcdserverpb__TxnRequest *r,
                      const Etcdserverpb__TxnResponse *resp)
{
    Etcdserverpb__RequestOp **ops = resp->succeeded ? r->success : r->failure;
    size_t nops = resp->succeeded ? r->n_success : r->n_failure;

    for (size_t i = 0; i < nops && i < resp->n_responses; i++) {
        const Etcdserverpb__ResponseOp *ro = resp->responses[i];
        switch (ops[i]->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
            track_put(n, ops[i]->request_put);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            track_delete(n, ops[i]->request_delete_range);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
            if (ro->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN)
                track_txn(n, ops[i]->request_txn, ro->response_txn);
            break;
        default:
            break;
        }
    }
}

void node_lease_track(node *n, const Cetcdpb__InternalRequest *req, const ProtobufCMessage *resp)
{
    switch (req->request_case) {
    case CETCDPB__INTERNAL_REQUEST__REQUEST_PUT:
        track_put(n, req->put);
        break;
    case CETCDPB__INTERNAL_REQUEST__REQUEST_DELETE_RANGE:
        track_delete(n, req->delete_range);
        break;
    case CETCDPB__INTERNAL_REQUEST__REQUEST_TXN:
        if (resp)
            track_txn(n, req->txn, (const Etcdserverpb__TxnResponse *)resp);
        break;
    default:
        break;
    }
}

/* ---- expiry (leader) --------------------------------------------------------------------- */

static void expire_done(void *ctx, int err, ProtobufCMessage *resp)
{
    (void)ctx;
    (void)err;
    if (resp)
        protobuf_c_message_free_unpacked(resp, 0);
}

static void propose_expire(node *n, const lessor_due *d)
{
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    Cetcdpb__LeaseExpire le = CETCDPB__LEASE_EXPIRE__INIT;
    uint64_t handle;
    int rc;

    le.id = d->id;
    le.renewed_index = d->renewed_index;
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_EXPIRE;
    ir.lease_expire = &le;
    rc = node_propose(n, &ir, expire_done, n, &handle);
    if (rc) /* proposed again after the retry delay */
        log_debug("node: proposing the expiry of lease %016llx failed: %s",
                  (unsigned long long)d->id, ce_strerror(rc));
}

static void on_lease_tick(evloop *l, ev_timer *t)
{
    node *n = t->data;
    lessor_due due[EXPIRE_PER_TICK];
    uint64_t now = evloop_now_ms();
    size_t count;

    (void)l;
    if (raft_get_role(n->raft) != RAFT_LEADER) {
        n->lease_lead_term = 0;
        return;
    }
    if (n->lease_lead_term != raft_term(n->raft)) {
        lessor_promote(n->lessor, now, n->cfg.election_ms);
        n->lease_lead_term = raft_term(n->raft);
    }
    count = lessor_expired(n->lessor, now, n->request_timeout_ms, due, EXPIRE_PER_TICK);
    for (size_t i = 0; i < count; i++)
        propose_expire(n, &due[i]);
}

void node_lease_start(node *n)
{
    evloop_timer_start(n->loop, &n->lease_tick, LEASE_TICK_MS, LEASE_TICK_MS, on_lease_tick, n);
}

void node_lease_free(node *n)
{
    if (n->loop)
        evloop_timer_stop(n->loop, &n->lease_tick);
    lessor_free(n->lessor);
    n->lessor = NULL;
}

/* ---- requests ---------------------------------------------------------------------------- */

/* etcd's minimum TTL: (3 x election ticks / 2) heartbeats, rounded up to whole seconds. */
static int64_t min_ttl(const node *n)
{
    uint64_t ticks = n->cfg.election_ms / n->cfg.heartbeat_ms;
    uint64_t ms = (3 * ticks / 2) * n->cfg.heartbeat_ms;

    return (int64_t)((ms + 999) / 1000);
}

int node_lease_grant(node *n, const Etcdserverpb__LeaseGrantRequest *r, node_write_cb cb,
                     void *ctx, uint64_t *handle)
{
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;

    if (r->ttl > LESSOR_MAX_TTL)
        return CE_LEASE_TTL_LARGE;
    g.ttl = r->ttl < min_ttl(n) ? min_ttl(n) : r->ttl;
    g.id = r->id;
    while (g.id == 0 || (r->id == 0 && lessor_exists(n->lessor, g.id)))
        g.id = (int64_t)(node_next_id(n) & INT64_MAX);
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_GRANT;
    ir.lease_grant = &g;
    return node_propose(n, &ir, cb, ctx, handle);
}

int node_lease_revoke(node *n, int64_t id, node_write_cb cb, void *ctx, uint64_t *handle)
{
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    Etcdserverpb__LeaseRevokeRequest r = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;

    r.id = id;
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_REVOKE;
    ir.lease_revoke = &r;
    return node_propose(n, &ir, cb, ctx, handle);
}

int node_lease_renew(node *n, int64_t id, node_write_cb cb, void *ctx, uint64_t *handle)
{
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    Etcdserverpb__LeaseKeepAliveRequest r = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;

    r.id = id;
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_RENEW;
    ir.lease_renew = &r;
    return node_propose(n, &ir, cb, ctx, handle);
}

static int copy_keys(const lessor *l, int64_t id, Etcdserverpb__LeaseTimeToLiveResponse *resp)
{
    ProtobufCBinaryData *keys;
    size_t nkeys;
    int rc = lessor_keys(l, id, &keys, &nkeys);

    if (rc || !nkeys)
        return rc;
    resp->keys = calloc(nkeys, sizeof(*resp->keys));
    for (size_t i = 0; resp->keys && i < nkeys; i++, resp->n_keys++) {
        resp->keys[i].data = malloc(keys[i].len ? keys[i].len : 1);
        if (!resp->keys[i].data)
            break;
        memcpy(resp->keys[i].data, keys[i].data, keys[i].len);
        resp->keys[i].len = keys[i].len;
    }
    rc = resp->keys && resp->n_keys == nkeys ? 0 : CE_NOMEM;
    free(keys);
    return rc;
}

int node_lease_time_to_live(node *n, const Etcdserverpb__LeaseTimeToLiveRequest *r,
                            Etcdserverpb__LeaseTimeToLiveResponse *resp)
{
    uint64_t now = evloop_now_ms();
    lessor_info info;

    resp->id = r->id;
    if (!lessor_get(n->lessor, r->id, &info)) {
        resp->ttl = -1; /* etcd's answer for an unknown lease */
        return 0;
    }
    resp->ttl = info.expiry_ms > now ? (int64_t)((info.expiry_ms - now) / 1000) : 0;
    resp->grantedttl = info.ttl;
    return r->keys ? copy_keys(n->lessor, r->id, resp) : 0;
}

int node_lease_leases(node *n, Etcdserverpb__LeaseLeasesResponse *resp)
{
    int64_t *ids;
    size_t count;
    int rc = lessor_ids(n->lessor, &ids, &count);

    if (rc || !count)
        return rc;
    resp->leases = calloc(count, sizeof(*resp->leases));
    for (size_t i = 0; resp->leases && i < count; i++, resp->n_leases++) {
        resp->leases[i] = malloc(sizeof(**resp->leases));
        if (!resp->leases[i])
            break;
        etcdserverpb__lease_status__init(resp->leases[i]);
        resp->leases[i]->id = ids[i];
    }
    rc = resp->leases && resp->n_leases == count ? 0 : CE_NOMEM;
    free(ids);
    return rc;
}
