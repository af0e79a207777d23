/*
 * node_recover.c: the two start-ups that are not "new cluster" or "restart": joining an
 * existing cluster (--initial-cluster-state existing, after `member add`) and
 * --force-new-cluster (the seeds' recovery from losing a majority).
 *
 * Joining: the member asks a running member (a peer URL of --initial-cluster other than its
 * own) for the cluster ID and the member list, finds itself by its advertised peer URLs (the
 * URLs given to `member add`), creates its WAL and waits for the leader's entries or snapshot.
 *
 * Forcing a new cluster (etcd's semantics): the WAL's uncommitted tail is dropped; one
 * conf-change entry per other member removing it (and one adding this member as a voter if it
 * was a learner) is appended at the commit index, committed and synced. Applying them after
 * the restart leaves a one-member cluster that keeps the data, the cluster ID and its member
 * ID; more members can then be added as usual. Invariant: nothing is ever appended past the
 * commit index of the old cluster except these entries.
 */
#include "err.h"
#include "log.h"
#include "members.h"
#include "node_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- joining ------------------------------------------------------------------------------ */

static bool has_url(const node_member *m, const char *url)
{
    for (int i = 0; i < m->npeer; i++)
        if (!strcmp(m->peer_urls[i], url))
            return true;
    return false;
}

/* Our record in the fetched list: the one with our advertised peer URLs. */
static node_member *find_self(node *n)
{
    for (size_t i = 0; i < n->nmembers; i++)
        for (int j = 0; j < n->cfg.nadvertise_peer; j++)
            if (has_url(&n->members[i], n->cfg.advertise_peer_urls[j]))
                return &n->members[i];
    return 0;
}

int node_join_existing(node *n)
{
    node_member *self;
    int rc = node_fetch_members(n);

    if (rc)
        return rc;
    self = find_self(n);
    if (!self) {
        log_error("node: the cluster has no member with peer URL %s; add this member first "
                  "(etcdctl member add %s --peer-urls=%s)", n->cfg.advertise_peer_urls[0],
                  n->cfg.name, n->cfg.advertise_peer_urls[0]);
        return CE_INVAL;
    }
    n->member_id = self->id;
    log_info("node: joining cluster %016" PRIx64 " as member %016" PRIx64 " (%s)", n->cluster_id,
             n->member_id, n->cfg.name);
    return 0;
}

/* ---- force-new-cluster -------------------------------------------------------------------- */

struct idset {
    uint64_t ids[64];
    bool learner[64];
    size_t n;
};

static void set_put(struct idset *s, uint64_t id, bool learner)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->ids[i] == id) {
            s->learner[i] = learner;
            return;
        }
    if (s->n < 64) {
        s->ids[s->n] = id;
        s->learner[s->n++] = learner;
    }
}

static void set_del(struct idset *s, uint64_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->ids[i] == id) {
            s->ids[i] = s->ids[--s->n];
            s->learner[i] = s->learner[s->n];
            return;
        }
}

/* The membership as of the commit index: the snapshot's conf, then every committed change. */
static void conf_at_commit(const wal_replay *rp, const raft_snapshot_meta *snap, struct idset *s)
{
    raft_conf_change cc;

    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < snap->conf.n_voters; i++)
        set_put(s, snap->conf.voters[i], false);
    for (size_t i = 0; i < snap->conf.n_learners; i++)
        set_put(s, snap->conf.learners[i], true);
    for (size_t i = 0; i < rp->nents && rp->ents[i].index <= rp->hs.commit; i++) {
        const wal_entry *e = &rp->ents[i];
        if (e->type != RAFT_ENTRY_CONF_CHANGE || raft_conf_change_decode(e->data, e->len, &cc))
            continue;
        if (cc.type == RAFT_CC_ADD_VOTER || cc.type == RAFT_CC_PROMOTE)
            set_put(s, cc.node_id, false);
        else if (cc.type == RAFT_CC_ADD_LEARNER)
            set_put(s, cc.node_id, true);
        else if (cc.type == RAFT_CC_REMOVE)
            set_del(s, cc.node_id);
    }
}

static int append_change(wal_entry *e, uint64_t term, uint64_t index, raft_conf_change_type type,
                         uint64_t id)
{
    raft_conf_change cc = {type, id, 0, 0};
    uint8_t *buf;
    size_t len;
    int rc = raft_conf_change_encode(&cc, &buf, &len);

    if (rc)
        return rc;
    e->term = term;
    e->index = index;
    e->type = RAFT_ENTRY_CONF_CHANGE;
    e->data = buf;
    e->len = len;
    return 0;
}

static int write_removals(node *n, const wal_replay *rp, const struct idset *s)
{
    wal_entry ents[65];
    wal_hardstate hs = rp->hs;
    uint64_t index = rp->hs.commit;
    size_t k = 0;
    int rc = 0;
    bool self_voter = false;

    for (size_t i = 0; i < s->n; i++) {
        if (s->ids[i] == n->member_id) {
            self_voter = !s->learner[i];
            continue;
        }
        rc = append_change(&ents[k], hs.term, ++index, RAFT_CC_REMOVE, s->ids[i]);
        if (rc)
            goto out_free;
        k++;
    }
    if (!self_voter) {
        rc = append_change(&ents[k], hs.term, ++index, RAFT_CC_ADD_VOTER, n->member_id);
        if (rc)
            goto out_free;
        k++;
    }
    hs.commit = index;
    if (k)
        rc = wal_save(n->wal, &hs, ents, k);
    if (!rc)
        rc = wal_sync(n->wal);
    log_info("node: --force-new-cluster: %zu membership entries appended at commit %" PRIu64
             "; this member is now the only one", k, rp->hs.commit);
out_free:
    for (size_t i = 0; i < k; i++)
        free((void *)ents[i].data);
    return rc;
}

int node_force_new_cluster(node *n, wal_replay *rp, const raft_snapshot_meta *snap)
{
    struct idset s;
    uint64_t snap_index = snap->index;
    int rc;

    conf_at_commit(rp, snap, &s);
    rc = write_removals(n, rp, &s);
    if (rc) {
        log_error("node: --force-new-cluster failed: %s", ce_strerror(rc));
        return rc;
    }
    /* Read the WAL again: it now ends at the new commit index. */
    wal_close(n->wal);
    n->wal = 0;
    wal_replay_free(rp);
    memset(rp, 0, sizeof(*rp));
    rc = wal_open(n->wal_dir, snap_index, &n->wal, rp);
    if (rc)
        log_error("node: cannot reopen the WAL in %s: %s", n->wal_dir, ce_strerror(rc));
    return rc;
}
