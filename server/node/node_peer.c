/*
 * node_peer.c: the member's side of the peer transport (server/peer/): Raft messages out and
 * in, snapshots out and in, and the member list for a member that joins.
 *
 * Snapshot data: a MsgSnap from Raft carries only metadata; the data sent with it is a
 * consistent copy of the whole store plus the member list (members.json text) as the
 * transfer's side payload. The copy is pinned when the MsgSnap comes out of Raft and written
 * off the loop (node_copy: an LMDB file, free pages included, whose consistent index is the
 * applied index at that moment, >= the snapshot's index; the member list is taken at the same
 * moment); the transfer starts when the copy is done, unless the term changed meanwhile. The
 * receiver steps the MsgSnap as soon as the file is complete and installs it in the same loop
 * callback if Raft accepts it: replaces the store's file, the member list and the snapshot
 * metadata. Entries between the snapshot's index and the copy's consistent index arrive again
 * from the leader and are skipped by the store (consistent index), conf changes among them
 * re-apply idempotently.
 *
 * Invariant: a received data file is installed only for the snapshot Raft accepted (same
 * index); any other is deleted.
 */
#include "atomicfile.h"
#include "err.h"
#include "log.h"
#include "members.h"
#include "node_int.h"
#include "peer/peer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- round-trip times ----------------------------------------------------------------------- */

/* The RTT slot of peer id, made on first use; NULL when the table is full. */
static node_peer_rtt *rtt_slot(node *n, uint64_t id)
{
    node_metrics *nm = &n->metrics;

    for (size_t i = 0; i < nm->npeers; i++)
        if (nm->peers[i].id == id)
            return &nm->peers[i];
    if (nm->npeers == NODE_RTT_PEERS)
        return NULL;
    nm->peers[nm->npeers].id = id;
    nm->peers[nm->npeers].hb_sent = 0;
    histo_init(&nm->peers[nm->npeers].rtt, 0.0001, 2, 14);
    return &nm->peers[nm->npeers++];
}

/* etcd_network_peer_round_trip_time_seconds, as a leader sees it: from a heartbeat leaving
 * to its response arriving. Only the oldest unanswered heartbeat is timed, so a lost one
 * counts once, as one long round trip, when a later response arrives. */
static void rtt_sent(node *n, const raft_msg *m)
{
    node_peer_rtt *p;

    if (m->type != RAFT_MSG_HEARTBEAT || !(p = rtt_slot(n, m->to)) || p->hb_sent)
        return;
    p->hb_sent = histo_now();
}

static void rtt_received(node *n, const raft_msg *m)
{
    node_peer_rtt *p;

    if (m->type != RAFT_MSG_HEARTBEAT_RESP || !(p = rtt_slot(n, m->from)) || !p->hb_sent)
        return;
    histo_observe(&p->rtt, histo_now() - p->hb_sent);
    p->hb_sent = 0;
}

/* ---- transport callbacks ------------------------------------------------------------------ */

static void on_msg(void *ctx, const raft_msg *m)
{
    node *n = ctx;
    int rc;

    rtt_received(n, m);
    if (node_promote_refused(n, m))
        return;
    rc = raft_step(n->raft, m);
    if (rc && rc != CE_NO_LEADER && rc != CE_NOT_LEADER && rc != CE_AGAIN)
        log_debug("node: message %s from %016" PRIx64 " dropped: %s", raft_msg_type_name(m->type),
                  m->from, ce_strerror(rc));
}

static void drop_incoming(node *n)
{
    if (n->incoming_snap)
        unlink(n->incoming_snap);
    free(n->incoming_snap);
    free(n->incoming_members);
    n->incoming_snap = 0;
    n->incoming_snap_index = 0;
    n->incoming_members = 0;
    n->incoming_nmembers = 0;
}

/* The member list that came with a snapshot (members.json text). */
static int parse_incoming_members(node *n, const uint8_t *extra, size_t len)
{
    char *text = malloc(len + 1);
    uint64_t cid;
    int rc;

    if (!text)
        return CE_NOMEM;
    memcpy(text, extra, len);
    text[len] = 0;
    rc = members_from_json(text, &n->incoming_members, &n->incoming_nmembers, &cid);
    free(text);
    return rc;
}

static void on_snapshot(void *ctx, const raft_msg *m, const uint8_t *extra, size_t extra_len,
                        const char *path)
{
    node *n = ctx;
    int rc;

    drop_incoming(n);
    n->incoming_snap = strdup(path);
    rc = n->incoming_snap ? parse_incoming_members(n, extra, extra_len) : CE_NOMEM;
    if (rc) {
        log_error("node: cannot keep the received snapshot: %s", ce_strerror(rc));
        if (!n->incoming_snap)
            unlink(path);
        drop_incoming(n);
        return;
    }
    n->incoming_snap_index = m->snapshot.index;
    log_info("node: received snapshot at index %" PRIu64 " (term %" PRIu64 ") from %016" PRIx64,
             m->snapshot.index, m->snapshot.term, m->from);
    on_msg(n, m);
    /* Install now (Raft's update carries it if accepted), before another MsgSnap can replace
     * the data; data Raft refused (stale) is dropped. */
    node_flush(n->loop, n);
    drop_incoming(n);
}

static void on_snapshot_sent(void *ctx, uint64_t to, bool ok)
{
    node *n = ctx;

    log_info("node: snapshot to %016" PRIx64 " %s", to, ok ? "sent" : "failed");
    raft_report_snapshot(n->raft, to, ok);
}

static void on_unreachable(void *ctx, uint64_t id)
{
    node *n = ctx;

    raft_report_unreachable(n->raft, id);
}

static void on_removed(void *ctx)
{
    (void)ctx;
    node_exit_removed();
}

static int members_json(void *ctx, char **json)
{
    node *n = ctx;

    *json = members_to_json(n->members, n->nmembers, n->cluster_id);
    return *json ? 0 : CE_NOMEM;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

void node_peer_sync(node *n, const node_member *m)
{
    const char *urls[NODE_MAX_URLS];

    if (!n->peers || m->id == n->member_id)
        return;
    for (int i = 0; i < m->npeer; i++)
        urls[i] = m->peer_urls[i];
    if (peer_add(n->peers, m->id, urls, m->npeer))
        log_warn("node: cannot reach member %016" PRIx64 " at %s", m->id,
                 m->npeer ? urls[0] : "(no peer URL)");
}

void node_peer_drop(node *n, uint64_t id)
{
    if (n->peers)
        peer_remove(n->peers, id);
}

uint64_t node_peer_since_ms(node *n, uint64_t id)
{
    return n->peers ? peer_active_since_ms(n->peers, id) : 0;
}

int node_peers_start(node *n)
{
    peer_config pc;
    int rc;

    memset(&pc, 0, sizeof(pc));
    pc.member_id = n->member_id;
    pc.cluster_id = n->cluster_id;
    pc.listen_urls = n->cfg.listen_peer_urls;
    pc.nlisten = n->cfg.nlisten_peer;
    pc.snap_dir = n->snap_dir;
    pc.tls_server = n->cfg.peer_tls_server;
    pc.tls_client = n->cfg.peer_tls_client;
    pc.h.ctx = n;
    pc.h.on_msg = on_msg;
    pc.h.on_snapshot = on_snapshot;
    pc.h.on_snapshot_sent = on_snapshot_sent;
    pc.h.on_unreachable = on_unreachable;
    pc.h.on_removed = on_removed;
    pc.h.members_json = members_json;
    if (!pc.nlisten)
        return 0; /* embedded (unit tests): no peers */
    node_unlink_prefixed(n->snap_dir, "peer-"); /* received snapshot files a crash left */
    rc = peer_new(n->loop, &pc, &n->peers);
    if (rc) {
        log_error("node: cannot listen for peers on %s: %s", pc.listen_urls[0], ce_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < n->nmembers; i++)
        node_peer_sync(n, &n->members[i]);
    return 0;
}

static void snap_send_free(struct snap_send *s);

void node_peers_stop(node *n)
{
    while (n->snap_sends)
        snap_send_free(n->snap_sends);
    peer_free(n->peers);
    n->peers = 0;
    drop_incoming(n);
}

/* ---- sending ------------------------------------------------------------------------------ */

/* A MsgSnap waiting for its data: the store copied off the loop (node_copy), then sent. */
struct snap_send {
    node *n;
    raft_msg m;                    /* the MsgSnap; m.snapshot.conf points into ids */
    uint64_t *ids;                 /* its voters, then its learners */
    char *extra;                   /* members.json as it was when the copy was pinned */
    node_copy *copy;
    struct snap_send *next, *prev; /* on n->snap_sends */
};

static void snap_send_free(struct snap_send *s)
{
    node *n = s->n;

    if (s->prev)
        s->prev->next = s->next;
    else
        n->snap_sends = s->next;
    if (s->next)
        s->next->prev = s->prev;
    node_copy_free(s->copy);
    free(s->extra);
    free(s->ids);
    free(s);
}

/* The MsgSnap, its conf arrays copied (valid beyond this update). */
static int keep_msg(struct snap_send *s, const raft_msg *m)
{
    const raft_conf_state *cs = &m->snapshot.conf;
    size_t nv = cs->n_voters, nl = cs->n_learners;

    s->m = *m;
    s->m.entries = NULL;
    s->m.n_entries = 0;
    s->ids = malloc((nv + nl ? nv + nl : 1) * sizeof(uint64_t));
    if (!s->ids)
        return CE_NOMEM;
    if (nv)
        memcpy(s->ids, cs->voters, nv * sizeof(uint64_t));
    if (nl)
        memcpy(s->ids + nv, cs->learners, nl * sizeof(uint64_t));
    s->m.snapshot.conf.voters = s->ids;
    s->m.snapshot.conf.learners = s->ids + nv;
    return 0;
}

static void snap_failed(node *n, uint64_t to, int rc)
{
    log_warn("node: cannot send a snapshot to %016" PRIx64 ": %s", to, ce_strerror(rc));
    raft_report_snapshot(n->raft, to, false);
}

/* The copy is done: hand it to the transport (which owns the file from then on). A MsgSnap of
 * an earlier term is dropped unreported: that leadership is over, and a report would touch the
 * progress of a later one. */
static void snap_copied(void *arg, int rc)
{
    struct snap_send *s = arg;
    node *n = s->n;
    uint64_t size = node_copy_size(s->copy);

    if (raft_term(n->raft) != s->m.term) {
        log_info("node: snapshot to %016" PRIx64 " dropped: term %" PRIu64 " is over", s->m.to,
                 s->m.term);
        snap_send_free(s);
        return;
    }
    if (!rc)
        rc = peer_send_snapshot(n->peers, &s->m, (const uint8_t *)s->extra, strlen(s->extra),
                                node_copy_take_fd(s->copy), size);
    if (rc)
        snap_failed(n, s->m.to, rc);
    else
        log_info("node: sending snapshot at index %" PRIu64 " (%" PRIu64 " bytes) to %016"
                 PRIx64, s->m.snapshot.index, size, s->m.to);
    snap_send_free(s);
}

/* A MsgSnap: its data is a copy of the store made off the loop, pinned now, so its consistent
 * index is the applied index now (>= the snapshot's); the member list of this moment goes with
 * it. The send happens when the copy is done (snap_copied). */
static void send_snapshot(node *n, const raft_msg *m)
{
    struct snap_send *s = calloc(1, sizeof(*s));
    int rc = s ? 0 : CE_NOMEM;

    if (!rc) {
        s->n = n;
        s->next = n->snap_sends;
        if (n->snap_sends)
            n->snap_sends->prev = s;
        n->snap_sends = s;
        rc = keep_msg(s, m);
    }
    if (!rc && !(s->extra = members_to_json(n->members, n->nmembers, n->cluster_id)))
        rc = CE_NOMEM;
    if (!rc)
        rc = node_copy_start(n, NODE_COPY_LMDB, snap_copied, s, &s->copy);
    if (rc) {
        if (s)
            snap_send_free(s);
        snap_failed(n, m->to, rc);
    }
}

size_t node_peer_stats(const node *n, struct peer_stats *out, size_t max)
{
    return n->peers ? peer_get_stats(n->peers, out, max) : 0;
}

/* Everything queued in this loop iteration leaves now: one write per peer. */
void node_peers_flush(node *n)
{
    if (n->peers)
        peer_flush(n->peers);
}

void node_peers_send(node *n, const raft_msg *m, size_t count)
{
    if (!n->peers)
        return;
    for (size_t i = 0; i < count; i++) {
        if (m[i].type == RAFT_MSG_SNAP) {
            send_snapshot(n, &m[i]);
        } else {
            rtt_sent(n, &m[i]);
            peer_send(n->peers, &m[i]);
        }
    }
}

/* ---- installing a received snapshot ------------------------------------------------------- */

/* Swaps the store's data file for the received one (same file system: a rename). */
static int replace_store(node *n, const char *path)
{
    char dst[1200];
    int rc;

    mvcc_close(n->store);
    n->store = 0;
    snprintf(dst, sizeof(dst), "%s/data.mdb", n->db_dir);
    if (rename(path, dst))
        return ce_from_errno(errno);
    rc = atomic_sync_dir(n->db_dir);
    if (rc)
        return rc;
    return node_open_store(n);
}

void node_snapshot_install(node *n, const raft_snapshot_meta *s)
{
    wal_snapshot marker = {s->index, s->term};
    int rc;

    if (!n->incoming_snap || n->incoming_snap_index != s->index)
        node_fatal("installing a snapshot whose data never arrived", CE_NOTFOUND);
    free(n->members);
    n->members = n->incoming_members;
    n->nmembers = n->incoming_nmembers;
    n->incoming_members = 0;
    rc = replace_store(n, n->incoming_snap);
    if (!rc)
        rc = node_save_members(n);
    if (!rc)
        rc = node_snapshot_write(n, s->index, s->term, &s->conf);
    if (!rc)
        rc = wal_install_snapshot(n->wal, &marker);
    if (rc)
        node_fatal("installing a snapshot", rc);
    free(n->incoming_snap); /* renamed into the store: nothing to unlink */
    n->incoming_snap = 0;
    n->incoming_snap_index = 0;
    for (size_t i = 0; i < n->nmembers; i++)
        node_peer_sync(n, &n->members[i]);
    n->applied = s->index;
    if (n->store_fn)
        n->store_fn(n->store_arg, n->store);
    n->last_snapshot_index = s->index;
    /* The copy may hold entries past s->index whose terms this member learns only when they
     * are re-delivered; until then snapshots are taken at s->index at most. */
    n->term_ring[s->index % NODE_TERM_RING] = s->term;
    n->durable_index = n->flushed_index = s->index;
    n->unflushed = 0;
    log_info("node: installed snapshot at index %" PRIu64 " (store at index %" PRIu64 ", "
             "revision %lld)", s->index, mvcc_consistent_index(n->store),
             (long long)mvcc_rev(n->store));
}

/* ---- joining ------------------------------------------------------------------------------ */

static bool is_own_url(const node *n, const char *url)
{
    for (int i = 0; i < n->cfg.nadvertise_peer; i++)
        if (!strcmp(n->cfg.advertise_peer_urls[i], url))
            return true;
    return false;
}

static int fetch_from(node *n, const char *url)
{
    char *json = 0;
    uint64_t cid = 0;
    int rc = peer_fetch_members_tls(url, n->cfg.peer_tls_client, 2000, &json, &cid);

    if (rc)
        return rc;
    free(n->members);
    n->members = 0;
    rc = members_from_json(json, &n->members, &n->nmembers, &n->cluster_id);
    free(json);
    return rc;
}

int node_fetch_members(node *n)
{
    node_member *init = 0;
    size_t count = 0;
    char err[256];
    int rc;

    rc = members_parse_initial(n->cfg.initial_cluster, n->cfg.initial_cluster_token, &init,
                               &count, err, sizeof(err));
    if (rc) {
        log_error("node: %s", err);
        return rc;
    }
    rc = CE_UNREACHABLE;
    for (size_t i = 0; i < count && rc; i++)
        for (int j = 0; j < init[i].npeer && rc; j++)
            if (!is_own_url(n, init[i].peer_urls[j]))
                rc = fetch_from(n, init[i].peer_urls[j]);
    free(init);
    if (rc)
        log_error("node: cannot fetch the member list from any peer in --initial-cluster "
                  "(joining an existing cluster needs one running member): %s", ce_strerror(rc));
    return rc;
}
