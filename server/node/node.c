/*
 * node.c: one cetcd member: Raft driven by ticks and messages, the WAL, the MVCC store.
 *
 * Everything runs on the event loop's thread. Requests arriving during one loop iteration
 * are proposed to Raft; the flush hook at the end of the iteration then drains Raft's updates:
 * persist entries and hard state (one fsync for the whole batch: group commit), send messages,
 * apply committed entries to the store in one write batch, answer the waiting requests, and
 * resolve linearizable reads whose read index is applied.
 *
 * Invariants:
 *  - a write is answered only after its entry was applied, which happens only after it was
 *    committed, i.e. durable on a quorum (for one member: after its own fsync);
 *  - an entry at or below the store's consistent index is never applied again (after a crash,
 *    Raft may re-deliver entries the store already holds);
 *  - request IDs carry the member ID's low 16 bits and a counter seeded from the clock, so IDs
 *    do not collide across members or restarts.
 *
 * Data directory layout (etcd's, where it has one):
 *   <data-dir>/member/wal/      WAL segments (server/wal/wal.c documents the format)
 *   <data-dir>/member/snap/     Raft snapshot metadata files (server/snap/snap.c)
 *   <data-dir>/member/db/       the LMDB store (server/mvcc/)
 *   <data-dir>/member/members.json  the member list (server/node/members.c), rewritten
 *                                   atomically when membership changes
 *   <data-dir>/member/snap/peer-<from>-<index>.XXXXXX  a snapshot's store file received from
 *                                   the leader (an LMDB data.mdb), renamed over db/data.mdb
 *                                   when installed; leftovers are deleted at start-up
 * WAL metadata: the text "member_id=<hex> cluster_id=<hex>".
 */
#include "node.h"
#include "atomicfile.h"
#include "auth/auth.h"
#include "err.h"
#include "paths.h"
#include "log.h"
#include "members.h"
#include "node_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void on_tick(evloop *l, ev_timer *t)
{
    node *n = t->data;

    (void)l;
    raft_tick(n->raft);
}

/* Every STORE_FLUSH_MS the store's applied batches become durable in one LMDB commit (etcd's
 * backend batch interval). Until then the WAL holds them. */
#define STORE_FLUSH_MS 100
/* Request timeouts, publishing our attributes and leader-transfer deadlines are checked this
 * often. */
#define HOUSEKEEPING_MS 250

/* glibc keeps freed heap. After a burst, once the member is idle (no write applied and no read
 * served for a tick), give it back to the system, once per burst: trimming under load costs
 * latency. */
static void maybe_trim(node *n)
{
    uint64_t start;

    if (n->applied != n->applied_last_tick || n->reads != n->reads_last_tick)
        return;
    if (n->applied == n->trimmed_at && n->reads == n->trimmed_reads)
        return;
    start = evloop_now_ms();
    n->trimmed_at = n->applied;
    n->trimmed_reads = n->reads;
    malloc_trim(0);
    if (evloop_now_ms() - start >= NODE_SLOW_MS)
        log_warn("node: returning freed memory took %llu ms",
                 (unsigned long long)(evloop_now_ms() - start));
}

static void on_store_flush(evloop *l, ev_timer *t)
{
    node *n = t->data;

    (void)l;
    maybe_trim(n);
    n->applied_last_tick = n->applied;
    n->reads_last_tick = n->reads;
    if (!mvcc_has_unflushed(n->store))
        return;
    node_store_flush(n);
}

/* Makes the store's applied batches durable; warns when that stalled the loop. */
void node_store_flush(node *n)
{
    uint64_t start = evloop_now_ms(), took;
    double t0 = histo_now();
    int rc;

    rc = mvcc_flush(n->store);
    histo_observe(&n->metrics.backend_commit, histo_now() - t0);
    took = evloop_now_ms() - start;
    n->unflushed = 0;
    /* LMDB (MDB_NOMETASYNC) syncs a commit's data but not its meta page; the next commit's
     * sync covers that. So what the previous flush covered is durable now, whatever happens. */
    n->durable_index = n->flushed_index;
    n->flushed_index = mvcc_consistent_index(n->store);
    if (n->flushed_index > n->applied)
        n->flushed_index = n->applied; /* an installed snapshot's copy runs ahead of the log */
    if (took >= NODE_SLOW_MS)
        log_warn("node: flushing the store took %llu ms", (unsigned long long)took);
    if (rc) {
        log_error("node: flushing the store failed: %s; stopping", ce_strerror(rc));
        exit(1);
    }
}

static void fsync_observed(void *arg, double seconds)
{
    node *n = arg;

    histo_observe(&n->metrics.wal_fsync, seconds);
}

uint64_t node_next_id(node *n)
{
    return ((n->member_id & 0xffff) << 48) | (++n->id_counter & 0xffffffffffffull);
}

/* Packs req under a new request ID, proposes it and registers cb; *out is the waiter. */
static int propose(node *n, const Cetcdpb__InternalRequest *req, node_write_cb cb, void *ctx,
                   pending **out)
{
    Cetcdpb__InternalRequest copy = *req;
    uint8_t stackbuf[4096], *buf = stackbuf;
    size_t len;
    pending *p;
    int rc;

    copy.id = node_next_id(n);
    len = protobuf_c_message_get_packed_size(&copy.base);
    if (len > sizeof(stackbuf)) {
        buf = malloc(len);
        if (!buf)
            return CE_NOMEM;
    }
    protobuf_c_message_pack(&copy.base, buf);
    rc = raft_propose(n->raft, buf, len);
    if (buf != stackbuf)
        free(buf);
    if (rc) {
        n->proposals_failed++;
        return rc;
    }
    rc = pending_add(&n->waiting, copy.id, cb, 0, ctx, &p);
    if (rc)
        return rc; /* the entry still applies; nobody waits for it */
    p->since_ms = evloop_now_ms();
    p->term = raft_term(n->raft);
    n->proposals_pending++;
    *out = p;
    return 0;
}

/* No room for a client write (alarms.c): this member raises NOSPACE for itself, once, and the
 * client hears "database space exceeded" after the alarm is applied, so a following `alarm
 * list` shows it, as with etcd. */
static int refuse_for_space(node *n, node_write_cb cb, void *ctx, uint64_t *handle)
{
    Etcdserverpb__AlarmRequest ar = ETCDSERVERPB__ALARM_REQUEST__INIT;
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    pending *p;

    if (node_alarm_raised_by(n, n->member_id, ETCDSERVERPB__ALARM_TYPE__NOSPACE))
        return CE_NO_SPACE;
    ar.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
    ar.memberid = n->member_id;
    ar.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_ALARM;
    ir.alarm = &ar;
    if (propose(n, &ir, cb, ctx, &p) != 0)
        return CE_NO_SPACE;
    p->answer_err = CE_NO_SPACE;
    *handle = p->id;
    return 0;
}

int node_propose(node *n, const Cetcdpb__InternalRequest *req, node_write_cb cb, void *ctx,
                 uint64_t *handle)
{
    uint64_t cost = node_quota_cost(req);
    pending *p;
    int rc;

    if (cost && !mvcc_has_room(n->store, cost))
        return refuse_for_space(n, cb, ctx, handle);
    rc = propose(n, req, cb, ctx, &p);
    if (rc == 0)
        *handle = p->id;
    return rc;
}

int node_read_index(node *n, node_read_cb cb, void *ctx, uint64_t *handle)
{
    uint64_t id = node_next_id(n);
    pending *p;
    int rc;

    rc = raft_read_index(n->raft, id);
    if (rc)
        return rc;
    rc = pending_add(&n->waiting, id, 0, cb, ctx, &p);
    if (rc)
        return rc;
    p->since_ms = evloop_now_ms();
    *handle = id;
    return 0;
}

void node_cancel(node *n, uint64_t handle)
{
    pending *p;

    if (handle && handle == n->transfer.id) {
        n->transfer.id = 0;
        n->transfer.cb = 0;
        return;
    }
    p = pending_take(&n->waiting, handle);
    if (!p)
        return;
    if (p->rcb) {
        p->cancelled = true; /* freed when the read FIFO reaches it */
        return;
    }
    n->proposals_pending--;
    free(p);
}

void node_fill_header(node *n, Etcdserverpb__ResponseHeader *h)
{
    h->cluster_id = n->cluster_id;
    h->member_id = n->member_id;
    h->raft_term = raft_term(n->raft);
    if (!h->revision)
        h->revision = mvcc_rev(n->store);
}

void node_get_status(node *n, node_status *st)
{
    memset(st, 0, sizeof(*st));
    st->nalarms = n->nalarms;
    st->cluster_id = n->cluster_id;
    st->member_id = n->member_id;
    st->leader = raft_leader(n->raft);
    st->term = raft_term(n->raft);
    st->commit_index = raft_commit_index(n->raft);
    st->applied_index = n->applied;
    st->is_learner = raft_is_learner(n->raft);
    st->db_size = mvcc_db_size(n->store);
    st->db_size_in_use = mvcc_db_size_in_use(n->store);
    st->revision = mvcc_rev(n->store);
    st->compact_revision = mvcc_compact_rev(n->store);
    st->leader_changes = n->leader_changes;
    st->proposals_committed = n->proposals_committed;
    st->proposals_applied = n->proposals_applied;
    st->proposals_pending = n->proposals_pending;
    st->proposals_failed = n->proposals_failed;
}

void node_note_read(node *n)
{
    n->reads++;
}

mvcc *node_store(node *n)
{
    return n->store;
}

struct auth *node_auth(node *n)
{
    return n->auth;
}

uint32_t node_max_request_bytes(const node *n)
{
    return n->cfg.max_request_bytes;
}

const node_metrics *node_get_metrics(const node *n)
{
    return &n->metrics;
}

uint64_t node_wal_bytes(const node *n)
{
    return n->wal ? wal_bytes_written(n->wal) : 0;
}

/* ---- start-up ---------------------------------------------------------------------------- */

static void paths_init(node *n)
{
    snprintf(n->member_dir, sizeof(n->member_dir), "%s/member", n->cfg.data_dir);
    if (n->cfg.wal_dir)
        snprintf(n->wal_dir, sizeof(n->wal_dir), "%s", n->cfg.wal_dir);
    else
        snprintf(n->wal_dir, sizeof(n->wal_dir), "%s/wal", n->member_dir);
    snprintf(n->snap_dir, sizeof(n->snap_dir), "%s/snap", n->member_dir);
    snprintf(n->db_dir, sizeof(n->db_dir), "%s/db", n->member_dir);
    snprintf(n->members_path, sizeof(n->members_path), "%s/members.json", n->member_dir);
}

static void set_self_client_urls(node *n)
{
    for (size_t i = 0; i < n->nmembers; i++) {
        node_member *m = &n->members[i];
        if (m->id != n->member_id)
            continue;
        m->nclient = 0;
        for (int j = 0; j < n->cfg.nadvertise_client && j < NODE_MAX_URLS; j++)
            snprintf(m->client_urls[m->nclient++], sizeof(m->client_urls[0]), "%s",
                     n->cfg.advertise_client_urls[j]);
        snprintf(m->name, sizeof(m->name), "%s", n->cfg.name);
    }
}

/* Rewrites members.json atomically (common/atomicfile.h). */
int node_save_members(node *n)
{
    char *json = members_to_json(n->members, n->nmembers, n->cluster_id);
    int rc;

    if (!json)
        return CE_NOMEM;
    rc = atomic_write_path(n->members_path, json, strlen(json), !n->cfg.unsafe_no_fsync);
    free(json);
    return rc;
}

int node_load_members(node *n, const char *path)
{
    char buf[65536];
    node_member *ms = 0;
    size_t count = 0;
    uint64_t cid;
    ssize_t len;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

    if (fd < 0)
        return ce_from_errno(errno);
    len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len <= 0)
        return CE_CORRUPT;
    buf[len] = 0;
    rc = members_from_json(buf, &ms, &count, &cid);
    if (rc) {
        log_error("node: cannot read member list %s", path);
        return rc;
    }
    free(n->members);
    n->members = ms;
    n->nmembers = count;
    return 0;
}

/* Fresh member of a new cluster: members from --initial-cluster, our own ID found by name. */
static int bootstrap_members(node *n)
{
    char err[256];
    int rc;

    rc = members_parse_initial(n->cfg.initial_cluster, n->cfg.initial_cluster_token, &n->members,
                               &n->nmembers, err, sizeof(err));
    if (rc) {
        log_error("node: %s", err);
        return rc;
    }
    for (size_t i = 0; i < n->nmembers; i++)
        if (!strcmp(n->members[i].name, n->cfg.name))
            n->member_id = n->members[i].id;
    if (!n->member_id) {
        log_error("node: couldn't find local name \"%s\" in the initial cluster configuration",
                  n->cfg.name);
        return CE_INVAL;
    }
    n->cluster_id = members_cluster_id(n->members, n->nmembers);
    return 0;
}

static int parse_wal_metadata(node *n, const char *meta)
{
    unsigned long long mid, cid;

    if (!meta || sscanf(meta, "member_id=%llx cluster_id=%llx", &mid, &cid) != 2) {
        log_error("node: WAL metadata is unreadable");
        return CE_CORRUPT;
    }
    n->member_id = mid;
    n->cluster_id = cid;
    return 0;
}

static int create_wal(node *n)
{
    char meta[128];
    int rc;

    snprintf(meta, sizeof(meta), "member_id=%016" PRIx64 " cluster_id=%016" PRIx64, n->member_id,
             n->cluster_id);
    rc = wal_create(n->wal_dir, (const uint8_t *)meta, strlen(meta), &n->wal);
    if (rc)
        log_error("node: cannot create WAL in %s: %s", n->wal_dir, ce_strerror(rc));
    return rc;
}

/* A fresh member: of a new cluster (bootstrap entries for every --initial-cluster member),
 * or joining an existing one (no peers: it waits for the leader). */
static int open_new(node *n, raft_peer **peers, size_t *npeers)
{
    int rc;

    rc = n->cfg.initial_cluster_new ? bootstrap_members(n) : node_join_existing(n);
    if (rc)
        return rc;
    set_self_client_urls(n);
    /* The member list first: a WAL that exists always has one beside it. */
    rc = node_save_members(n);
    if (!rc)
        rc = create_wal(n);
    if (rc || !n->cfg.initial_cluster_new)
        return rc;
    *peers = calloc(n->nmembers, sizeof(**peers));
    if (!*peers)
        return CE_NOMEM;
    for (size_t i = 0; i < n->nmembers; i++)
        (*peers)[i].id = n->members[i].id;
    *npeers = n->nmembers;
    log_info("node: starting a new cluster %016" PRIx64 " as member %016" PRIx64 " (%s)",
             n->cluster_id, n->member_id, n->cfg.name);
    return 0;
}

static int open_existing(node *n, wal_replay *rp, raft_snapshot_meta *snap)
{
    int rc;

    rc = node_snapshot_load(n, snap);
    if (rc)
        return rc;
    rc = wal_open(n->wal_dir, snap->index, &n->wal, rp);
    if (rc) {
        log_error("node: cannot open the WAL in %s: %s", n->wal_dir, ce_strerror(rc));
        return rc;
    }
    rc = parse_wal_metadata(n, rp->metadata);
    if (rc)
        return rc;
    rc = node_load_members(n, n->members_path);
    if (rc)
        return rc;
    if (n->cfg.force_new_cluster) {
        rc = node_force_new_cluster(n, rp, snap);
        if (rc)
            return rc;
    }
    set_self_client_urls(n);
    log_info("node: restarting member %016" PRIx64 " of cluster %016" PRIx64
             " (term %" PRIu64 ", commit %" PRIu64 ", %zu WAL entries after snapshot %" PRIu64 ")",
             n->member_id, n->cluster_id, rp->hs.term, rp->hs.commit, rp->nents, snap->index);
    return 0;
}

int node_unlink_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return ce_from_errno(errno);
    while ((e = readdir(d)) != 0)
        if (e->d_name[0] != '.' && !strncmp(e->d_name, prefix, strlen(prefix)))
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    return 0;
}

/* A WAL without a hard state never had a batch synced (every member's first batch carries
 * one), so nothing in it was acknowledged: it is the torn first write of a member that must
 * start afresh, as if the WAL did not exist. */
static int discard_unsynced_wal(node *n, wal_replay *rp)
{
    log_warn("node: the WAL in %s holds no synced state (a torn first write); starting afresh",
             n->wal_dir);
    wal_close(n->wal);
    n->wal = 0;
    wal_replay_free(rp);
    memset(rp, 0, sizeof(*rp));
    free(n->members);
    n->members = 0;
    n->nmembers = 0;
    return node_unlink_prefixed(n->wal_dir, "");
}

static int raft_open(node *n, const wal_replay *rp, const raft_snapshot_meta *snap,
                     const raft_peer *peers, size_t npeers)
{
    raft_config rc_cfg = {0};
    raft_restore rs = {0};
    raft_entry *ents = 0;
    uint64_t ci = mvcc_consistent_index(n->store);
    int rc;

    rc_cfg.id = n->member_id;
    rc_cfg.heartbeat_tick = 1;
    rc_cfg.election_tick = (int)(n->cfg.election_ms / n->cfg.heartbeat_ms);
    rc_cfg.seed = n->member_id ^ (uint64_t)time(0);
    rc_cfg.pre_vote = n->cfg.pre_vote;
    rc_cfg.check_quorum = true;
    if (rp && rp->nents) {
        ents = calloc(rp->nents, sizeof(*ents));
        if (!ents)
            return CE_NOMEM;
        for (size_t i = 0; i < rp->nents; i++) {
            ents[i].term = rp->ents[i].term;
            ents[i].index = rp->ents[i].index;
            ents[i].type = (raft_entry_type)rp->ents[i].type;
            ents[i].data = rp->ents[i].data;
            ents[i].len = rp->ents[i].len;
        }
    }
    if (rp && rp->has_hs) {
        rs.hard_state.term = rp->hs.term;
        rs.hard_state.vote = rp->hs.vote;
        rs.hard_state.commit = rp->hs.commit;
    }
    if (snap)
        rs.snapshot = *snap;
    rs.entries = ents;
    rs.n_entries = rp ? rp->nents : 0;
    rs.peers = peers;
    rs.n_peers = npeers;
    /* The store may be ahead of the persisted commit index (commit changes are not fsynced on
     * their own); Raft re-commits those entries and apply skips them (consistent index). */
    rc_cfg.applied = ci < rs.hard_state.commit ? ci : rs.hard_state.commit;
    if (rc_cfg.applied < rs.snapshot.index)
        rc_cfg.applied = rs.snapshot.index;
    n->applied = rc_cfg.applied;
    rc = raft_new(&rc_cfg, &rs, &n->raft);
    free(ents);
    if (rc)
        log_error("node: cannot restore Raft state: %s", ce_strerror(rc));
    return rc;
}

void node_set_store_listener(node *n, node_store_fn fn, void *arg)
{
    n->store_fn = fn;
    n->store_arg = arg;
    if (fn)
        fn(arg, n->store);
}

int node_open_store(node *n)
{
    int rc = node_open_store_file(n);

    return rc ? rc : node_lease_load(n);
}

int node_open_store_file(node *n)
{
    mvcc_options mo = {0};
    int rc;

    mo.dir = n->db_dir;
    mo.quota_bytes = n->cfg.quota_backend_bytes;
    mo.max_txn_ops = n->cfg.max_txn_ops;
    mo.no_sync = n->cfg.unsafe_no_fsync;
    mo.defer_durability = true; /* the WAL covers what the store has not flushed yet */
    rc = mvcc_open(&mo, &n->store);
    if (rc) {
        log_error("node: cannot open the store in %s: %s", n->db_dir, ce_strerror(rc));
        return rc;
    }
    if (n->auth)
        auth_store_changed(n->auth);
    return 0;
}

static int open_all(node *n)
{
    raft_snapshot_meta snap = {0};
    wal_replay rp;
    raft_peer *peers = 0;
    size_t npeers = 0;
    bool fresh;
    int rc;

    memset(&rp, 0, sizeof(rp));
    paths_init(n);
    /* Before anything is created: a refused member leaves its data directory as it was. */
    if (!wal_exists(n->wal_dir)) {
        rc = node_bootstrap_apply(n);
        if (rc)
            return rc;
    }
    rc = path_mkdirs(n->member_dir);
    if (!rc)
        rc = path_mkdirs(n->snap_dir);
    if (rc) {
        log_error("node: cannot create %s: %s", n->member_dir, ce_strerror(rc));
        return rc;
    }
    rc = node_open_store(n);
    if (!rc)
        rc = node_alarms_load(n);
    if (rc)
        return rc;
    fresh = !wal_exists(n->wal_dir);
    if (!fresh) {
        rc = open_existing(n, &rp, &snap);
        if (!rc && !rp.has_hs && !snap.index) {
            rc = discard_unsynced_wal(n, &rp);
            fresh = true;
            if (!rc)
                rc = node_bootstrap_apply(n);
        }
    }
    if (fresh && !rc)
        rc = open_new(n, &peers, &npeers);
    if (!rc)
        rc = raft_open(n, fresh ? 0 : &rp, fresh ? 0 : &snap, peers, npeers);
    free(peers);
    wal_replay_free(&rp);
    node_snapshot_meta_release(&snap);
    if (rc)
        return rc;
    wal_set_sync_observer(n->wal, fsync_observed, n);
    wal_set_unsafe_no_fsync(n->wal, n->cfg.unsafe_no_fsync);
    return 0;
}

int node_new(const node_config *cfg, evloop *loop, node **out)
{
    node *n = calloc(1, sizeof(*n));
    int rc;

    if (!n)
        return CE_NOMEM;
    n->cfg = *cfg;
    n->loop = loop;
    rc = auth_new(cfg->auth_token_ttl, &n->auth);
    if (rc)
        goto out_free;
    histo_init(&n->metrics.wal_fsync, 0.001, 2, 14);
    histo_init(&n->metrics.backend_commit, 0.001, 2, 14);
    histo_init(&n->metrics.defrag, 0.1, 2, 13);
    n->id_counter = ((uint64_t)time(0) & 0xffffffffull) << 14;
    rc = pending_init(&n->waiting);
    if (rc)
        goto out_free;
    rc = open_all(n);
    if (rc)
        goto out_free;
    n->last_snapshot_index = n->applied;
    n->request_timeout_ms = 5000 + 2 * (uint64_t)cfg->election_ms;
    rc = evloop_add_flush(loop, node_flush, n);
    if (rc)
        goto out_free;
    /* node_flush ends with peer_flush: what one loop iteration queued leaves in one write. */
    rc = node_peers_start(n);
    if (rc)
        goto out_free;
    *out = n;
    return 0;

out_free:
    node_free(n);
    return rc;
}

int node_start(node *n)
{
    raft_conf_state cs;

    evloop_timer_start(n->loop, &n->tick, n->cfg.heartbeat_ms, n->cfg.heartbeat_ms, on_tick, n);
    evloop_timer_start(n->loop, &n->store_flush, STORE_FLUSH_MS, STORE_FLUSH_MS, on_store_flush, n);
    evloop_timer_start(n->loop, &n->housekeeping, HOUSEKEEPING_MS, HOUSEKEEPING_MS,
                       node_housekeeping, n);
    node_lease_start(n);
    raft_conf_state_get(n->raft, &cs);
    /* A lone voter need not wait an election timeout to lead. */
    if (cs.n_voters == 1 && cs.voters[0] == n->member_id)
        raft_campaign(n->raft);
    node_flush(n->loop, n);
    return 0;
}

static bool started_before(const pending *p, uint64_t before)
{
    return p->since_ms < before;
}

static bool proposed_before_term(const pending *p, uint64_t term)
{
    return p->wcb && p->term < term;
}

/* Fails every waiter match(p, arg) picks. */
static void fail_matching(node *n, int err, bool (*match)(const pending *, uint64_t),
                          uint64_t arg)
{
    pending *expired = 0;

    /* Collected first, answered after: a callback may add requests to the table. */
    for (size_t i = 0; i < n->waiting.nbuckets; i++) {
        pending *p = n->waiting.buckets[i], *next;
        for (; p; p = next) {
            next = p->hnext;
            if (!match(p, arg))
                continue;
            pending_take(&n->waiting, p->id);
            p->hnext = expired;
            expired = p;
        }
    }
    while (expired) {
        pending *p = expired;
        expired = p->hnext;
        if (p->wcb) {
            n->proposals_pending--;
            n->proposals_failed++;
            p->wcb(p->ctx, err, 0);
            free(p);
        } else {
            p->cancelled = true; /* freed when the read FIFO reaches it */
            p->rcb(p->ctx, err);
        }
    }
}

void node_fail_waiters(node *n, int err, uint64_t before)
{
    fail_matching(n, err, started_before, before);
}

void node_fail_lost_writes(node *n, uint64_t term)
{
    fail_matching(n, CE_TIMEOUT_LEADER_FAIL, proposed_before_term, term);
}

void node_free(node *n)
{
    if (!n)
        return;
    if (n->loop) {
        evloop_timer_stop(n->loop, &n->tick);
        evloop_timer_stop(n->loop, &n->store_flush);
        evloop_timer_stop(n->loop, &n->housekeeping);
        evloop_timer_stop(n->loop, &n->exit_timer);
    }
    if (n->transfer.id && n->transfer.cb)
        n->transfer.cb(n->transfer.ctx, CE_STOPPED);
    node_peers_stop(n);
    if (n->waiting.buckets) {
        node_fail_waiters(n, CE_STOPPED, UINT64_MAX);
        pending_fini(&n->waiting);
    }
    raft_free(n->raft);
    wal_close(n->wal);
    mvcc_close(n->store);
    node_lease_free(n);
    auth_free(n->auth);
    free(n->members);
    free(n->boot_initial_cluster);
    free(n);
}
