/*
 * node_apply.c: the update loop of a member, run once per event-loop iteration (flush hook).
 *
 * For each Raft update, in the order Raft requires (see raft.h): send the messages that need
 * no persistence, append entries and hard state to the WAL and fsync once, send the messages
 * that report durable state, apply committed entries to the store in one batch, record read
 * states, advance. Then answer the waiters: proposals whose entries were applied (after the
 * store batch committed, so an answer never precedes its data), and reads whose index is
 * applied. A failure to persist or apply is fatal for the process: continuing could
 * acknowledge writes that are not durable.
 */
#include "auth/auth.h"
#include "err.h"
#include "log.h"
#include "node_int.h"

#include <stdlib.h>
#include <string.h>

void node_fatal(const char *what, int rc)
{
    log_error("node: %s failed: %s; stopping to protect acknowledged data", what, ce_strerror(rc));
    exit(1);
}

void node_batch_push(struct batch *b, uint64_t id, int err, ProtobufCMessage *resp)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct outcome *v = realloc(b->v, cap * sizeof(*v));
        if (!v)
            node_fatal("allocating apply results", CE_NOMEM);
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n].id = id;
    b->v[b->n].err = err;
    b->v[b->n].resp = resp;
    b->n++;
}

static int apply_compaction(node *n, const Etcdserverpb__CompactionRequest *r, ProtobufCMessage **out)
{
    Etcdserverpb__CompactionResponse *resp;
    Etcdserverpb__ResponseHeader *h;
    int rc = mvcc_compact(n->store, r->revision);

    if (rc)
        return rc;
    resp = malloc(sizeof(*resp));
    h = malloc(sizeof(*h));
    if (!resp || !h) {
        free(resp);
        free(h);
        return CE_NOMEM;
    }
    etcdserverpb__compaction_response__init(resp);
    etcdserverpb__response_header__init(h);
    h->revision = mvcc_rev(n->store);
    resp->header = h;
    *out = &resp->base;
    return 0;
}

/* Applies one InternalRequest (the entry at index); the response (if any) goes to *out. */
static int apply_request(node *n, const Cetcdpb__InternalRequest *req, uint64_t index,
                         ProtobufCMessage **out)
{
    int rc = 0;

    if (req->request_case != CETCDPB__INTERNAL_REQUEST__REQUEST_MEMBER_ATTR &&
        req->request_case != CETCDPB__INTERNAL_REQUEST__REQUEST_REFUSAL)
        rc = node_alarm_gate(n, req);
    if (!rc)
        rc = auth_check_at_apply(n->auth, n->store, req);
    if (rc)
        return rc;
    switch (req->request_case) {
    case CETCDPB__INTERNAL_REQUEST__REQUEST_ALARM:
        return node_alarm_apply(n, req->alarm, out);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_PUT:
        n->metrics.puts++;
        return mvcc_put(n->store, req->put, (Etcdserverpb__PutResponse **)out);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_DELETE_RANGE:
        n->metrics.deletes++;
        return mvcc_delete(n->store, req->delete_range, (Etcdserverpb__DeleteRangeResponse **)out);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_TXN:
        n->metrics.txns++;
        return mvcc_txn(n->store, req->txn, (Etcdserverpb__TxnResponse **)out);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_COMPACTION:
        return apply_compaction(n, req->compaction, out);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_MEMBER_ATTR:
        return node_member_attr_apply(n, req->member_attr);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_REFUSAL:
        return req->refusal->code < 0 ? req->refusal->code : CE_INVAL;
    case CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_GRANT:
    case CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_REVOKE:
    case CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_RENEW:
    case CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_EXPIRE:
        return node_lease_apply(n, req, index, out);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_AUTH:
        return auth_apply(n->auth, n->store, req->auth, index, out);
    default:
        return CE_UNSUPPORTED;
    }
}

static void apply_normal(node *n, const raft_entry *e, struct batch *b)
{
    Cetcdpb__InternalRequest *req;
    ProtobufCMessage *resp = 0;
    int rc;

    if (e->len == 0) { /* a new leader's empty entry: earlier terms' unapplied writes are lost */
        if (e->term > n->lost_before_term)
            n->lost_before_term = e->term;
        return;
    }
    req = cetcdpb__internal_request__unpack(0, e->len, e->data);
    if (!req) {
        log_error("node: entry %llu is not a valid request; skipped", (unsigned long long)e->index);
        return;
    }
    rc = apply_request(n, req, e->index, &resp);
    if (rc == 0)
        node_lease_track(n, req, resp);
    n->proposals_applied++;
    if (req->id && pending_find(&n->waiting, req->id))
        node_batch_push(b, req->id, rc, resp);
    else if (resp)
        protobuf_c_message_free_unpacked(resp, 0);
    cetcdpb__internal_request__free_unpacked(req, 0);
}

static void apply_committed(node *n, const raft_update *u, struct batch *b)
{
    uint64_t ci = mvcc_consistent_index(n->store);
    const raft_entry *last = 0;
    int rc;

    if (!u->n_committed)
        return;
    rc = mvcc_begin(n->store);
    if (rc)
        node_fatal("starting a store batch", rc);
    for (size_t i = 0; i < u->n_committed; i++) {
        const raft_entry *e = &u->committed[i];
        n->term_ring[e->index % NODE_TERM_RING] = e->term;
        if (e->type == RAFT_ENTRY_CONF_CHANGE)
            node_conf_change_apply(n, e, b);
        else if (e->index > ci)
            apply_normal(n, e, b);
        last = e;
    }
    n->proposals_committed += u->n_committed;
    n->unflushed += u->n_committed;
    rc = mvcc_commit(n->store, last->index > ci ? last->index : ci, last->term);
    if (rc)
        node_fatal("committing a store batch", rc);
    n->applied = last->index;
}

static void persist(node *n, const raft_update *u)
{
    wal_hardstate hs = {u->hard_state.term, u->hard_state.vote, u->hard_state.commit};
    wal_entry stack[64] = {{0}}, *ents = stack;
    int rc;

    if (!u->n_entries && !u->hard_state_changed)
        return;
    if (u->n_entries > 64) {
        ents = malloc(u->n_entries * sizeof(*ents));
        if (!ents)
            node_fatal("persisting entries", CE_NOMEM);
    }
    for (size_t i = 0; i < u->n_entries; i++) {
        ents[i].term = u->entries[i].term;
        ents[i].index = u->entries[i].index;
        ents[i].type = (uint8_t)u->entries[i].type;
        ents[i].data = u->entries[i].data;
        ents[i].len = u->entries[i].len;
    }
    rc = wal_save(n->wal, u->hard_state_changed ? &hs : 0, ents, u->n_entries);
    if (ents != stack)
        free(ents);
    if (rc)
        node_fatal("appending to the WAL", rc);
    if (u->must_sync) {
        rc = wal_sync(n->wal);
        if (rc)
            node_fatal("syncing the WAL", rc);
    }
}

static void note_soft_state(node *n, const raft_update *u)
{
    if (!u->soft_state_changed)
        return;
    if (u->soft_state.leader != n->leader && u->soft_state.leader != RAFT_NONE) {
        n->leader_changes++;
        log_info("node: leader is %016llx at term %llu", (unsigned long long)u->soft_state.leader,
                 (unsigned long long)u->hard_state.term);
    }
    n->leader = u->soft_state.leader;
}

static void note_read_states(node *n, const raft_update *u)
{
    for (size_t i = 0; i < u->n_read_states; i++) {
        pending *p = pending_find(&n->waiting, u->read_states[i].ctx);
        if (p && p->rcb)
            p->read_index = u->read_states[i].index ? u->read_states[i].index : 1;
    }
}

static void answer_writes(node *n, struct batch *b)
{
    int err;

    for (size_t i = 0; i < b->n; i++) {
        pending *p = pending_take(&n->waiting, b->v[i].id);
        ProtobufCMessage *resp = b->v[i].resp;
        if (!p) {
            if (resp)
                protobuf_c_message_free_unpacked(resp, 0);
            continue;
        }
        n->proposals_pending--;
        err = b->v[i].err ? b->v[i].err : p->answer_err;
        p->wcb(p->ctx, err, err ? 0 : resp);
        if (err && resp)
            protobuf_c_message_free_unpacked(resp, 0);
        free(p);
    }
    b->n = 0;
}

/* After the writes this batch applied were answered (node_int.h, node_fail_lost_writes). */
static void fail_lost_writes(node *n)
{
    uint64_t term = n->lost_before_term;

    if (!term)
        return;
    n->lost_before_term = 0;
    node_fail_lost_writes(n, term);
}

/* Reads are answered in arrival order once their read index is applied. */
static void answer_reads(node *n)
{
    pending_table *t = &n->waiting;

    while (t->rhead) {
        pending *p = t->rhead;
        if (!p->cancelled && (!p->read_index || p->read_index > n->applied))
            break;
        t->rhead = p->rnext;
        if (!t->rhead)
            t->rtail = 0;
        if (!p->cancelled) {
            pending_take(t, p->id);
            p->rcb(p->ctx, 0);
        }
        free(p);
    }
}

/* Bounds Raft's in-memory log (see NODE_LOG_MAX); a refusal (a conf change applied after the
 * point) just waits for a later flush. */
static void trim_raft_log(node *n)
{
    uint64_t first = raft_first_index(n->raft), at;

    if (n->applied < first || n->applied - first < NODE_LOG_MAX)
        return;
    at = n->applied - NODE_LOG_KEEP;
    raft_compact(n->raft, at, n->term_ring[at % NODE_TERM_RING]);
}

/* A member left as the only voter (force-new-cluster, or the others were removed) leads at
 * once instead of waiting for an election timeout. */
static void campaign_if_alone(node *n)
{
    raft_conf_state cs;

    if (raft_get_role(n->raft) == RAFT_LEADER)
        return;
    raft_conf_state_get(n->raft, &cs);
    if (cs.n_voters == 1 && cs.voters[0] == n->member_id)
        raft_campaign(n->raft);
}

void node_flush(evloop *l, void *arg)
{
    node *n = arg;
    struct batch b = {0};

    (void)l;
    if (n->in_flush || !n->raft)
        return;
    n->in_flush = true;
    campaign_if_alone(n);
    while (raft_has_update(n->raft)) {
        raft_update u;
        raft_get_update(n->raft, &u);
        note_soft_state(n, &u);
        if (u.snapshot)
            node_snapshot_install(n, u.snapshot);
        node_peers_send(n, u.msgs, u.n_msgs);
        persist(n, &u);
        node_peers_send(n, u.msgs_after_persist, u.n_msgs_after_persist);
        apply_committed(n, &u, &b);
        note_read_states(n, &u);
        raft_advance(n->raft, &u);
        answer_writes(n, &b);
        fail_lost_writes(n);
        answer_reads(n);
    }
    answer_reads(n);
    if (n->unflushed >= NODE_FLUSH_ENTRIES)
        node_store_flush(n);
    node_maybe_snapshot(n);
    trim_raft_log(n);
    node_check_transfer(n);
    if (n->leader != RAFT_NONE && !n->published)
        node_maybe_publish(n);
    node_peers_flush(n);
    free(b.v);
    n->in_flush = false;
}
