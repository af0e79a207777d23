/*
 * node_snap.c: Raft snapshots of a member. The store (LMDB) is the snapshot's data; a snapshot
 * file (server/snap/) records the index, term and conf state it covers plus the member list.
 *
 * A snapshot is taken every --snapshot-count entries, at the store's durable index (what an
 * earlier flush made durable, see node_store_flush), so taking it costs no store sync. Steps,
 * each safe to crash after: write the snapshot file -> append a snapshot marker to the WAL
 * (synced) -> let Raft drop entries up to the index -> delete WAL segments wholly before the
 * index -> keep the newest few snapshot files. Invariant: the WAL is trimmed only behind a
 * durable store state.
 */
#include "err.h"
#include "log.h"
#include "members.h"
#include "node_int.h"
#include "snap/snap.h"

#include <stdlib.h>
#include <string.h>

#define KEEP_SNAPSHOTS 5

static uint64_t *copy_ids(const uint64_t *ids, size_t n)
{
    uint64_t *c = malloc((n ? n : 1) * sizeof(*c));

    if (c && n)
        memcpy(c, ids, n * sizeof(*c));
    return c;
}

int node_snapshot_load(node *n, raft_snapshot_meta *out)
{
    snap_meta m;
    int rc;

    memset(out, 0, sizeof(*out));
    memset(&m, 0, sizeof(m));
    rc = snap_load_newest(n->snap_dir, &m);
    if (rc == CE_NOTFOUND)
        return 0;
    if (rc) {
        log_error("node: cannot load a snapshot from %s: %s", n->snap_dir, ce_strerror(rc));
        return rc;
    }
    out->index = m.index;
    out->term = m.term;
    out->conf.voters = copy_ids(m.voters, m.nvoters);
    out->conf.n_voters = m.nvoters;
    out->conf.learners = copy_ids(m.learners, m.nlearners);
    out->conf.n_learners = m.nlearners;
    snap_meta_free(&m);
    if (!out->conf.voters || !out->conf.learners) {
        node_snapshot_meta_release(out);
        return CE_NOMEM;
    }
    return 0;
}

void node_snapshot_meta_release(raft_snapshot_meta *m)
{
    free((void *)m->conf.voters);
    free((void *)m->conf.learners);
    memset(m, 0, sizeof(*m));
}

int node_snapshot_write(node *n, uint64_t index, uint64_t term, const raft_conf_state *cs)
{
    snap_meta m;
    char *blob = members_to_json(n->members, n->nmembers, n->cluster_id);
    int rc;

    if (!blob)
        return CE_NOMEM;
    memset(&m, 0, sizeof(m));
    m.index = index;
    m.term = term;
    m.voters = (uint64_t *)cs->voters;
    m.nvoters = cs->n_voters;
    m.learners = (uint64_t *)cs->learners;
    m.nlearners = cs->n_learners;
    m.data = (uint8_t *)blob;
    m.len = strlen(blob);
    rc = snap_save(n->snap_dir, &m);
    free(blob);
    return rc;
}

void node_maybe_snapshot(node *n)
{
    uint64_t index = n->durable_index, term, start;
    raft_conf_state cs;
    wal_snapshot marker;
    int rc;

    if (!index || index <= n->last_snapshot_index ||
        index - n->last_snapshot_index < n->cfg.snapshot_count ||
        n->applied - index >= NODE_TERM_RING)
        return;
    term = n->term_ring[index % NODE_TERM_RING];
    marker.index = index;
    marker.term = term;
    start = evloop_now_ms();
    raft_conf_state_get(n->raft, &cs);
    rc = node_snapshot_write(n, index, term, &cs);
    if (!rc)
        rc = wal_save_snapshot(n->wal, &marker);
    if (rc) {
        log_error("node: snapshot at index %llu failed: %s", (unsigned long long)index, ce_strerror(rc));
        return;
    }
    n->last_snapshot_index = index;
    if (raft_compact(n->raft, index, term) == 0)
        wal_release_to(n->wal, index);
    snap_purge(n->snap_dir, KEEP_SNAPSHOTS);
    log_info("node: snapshot taken at index %llu (term %llu) in %llu ms", (unsigned long long)index,
             (unsigned long long)term, (unsigned long long)(evloop_now_ms() - start));
}
