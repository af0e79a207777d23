/*
 * node_int.h: the node's state, shared by node.c (lifecycle, requests), node_apply.c (the
 * update loop: persist, send, apply, answer) and node_snap.c (snapshots). Not for other modules.
 */
#ifndef CETCD_NODE_INT_H
#define CETCD_NODE_INT_H

#include "node.h"
#include "pending.h"
#include "raft/raft.h"
#include "wal/wal.h"

#define NODE_MAX_ALARMS 64
/* Raft keeps at most this many applied entries in memory (the WAL has them all); older ones
 * are compacted away, leaving NODE_LOG_KEEP for followers that lag a little (etcd's
 * SnapshotCatchUpEntries). A ring of recent applied terms gives the compaction point's term. */
#define NODE_LOG_MAX 10000
#define NODE_LOG_KEEP 5000
#define NODE_TERM_RING 8192
/* The store is flushed every STORE_FLUSH_MS (node.c), and sooner once this many entries are
 * unflushed: a flush's cost grows with the pages it writes, and it blocks the loop. */
#define NODE_FLUSH_ENTRIES 1000
/* Disk work on the loop that takes longer than this is logged. */
#define NODE_SLOW_MS 50

/* One applied entry's outcome, answered after the store batch commits (node_apply.c). */
struct outcome {
    uint64_t id;
    int err;
    ProtobufCMessage *resp;
};

struct batch {
    struct outcome *v;
    size_t n, cap;
};

/* A leader transfer some client waits on (node_move_leader). */
struct transfer_wait {
    uint64_t id;                  /* pending-table handle; 0 = none */
    uint64_t target;
    uint64_t deadline_ms;
    node_read_cb cb;
    void *ctx;
};

struct node_alarm {
    uint64_t member;
    int type;                     /* etcdserverpb.AlarmType */
};

struct node {
    node_config cfg;
    evloop *loop;
    ev_timer tick;
    ev_timer store_flush;
    raft *raft;
    struct peer_transport *peers;
    ev_timer housekeeping;        /* request timeouts, publish, leader-transfer waits */
    uint64_t request_timeout_ms;  /* etcd's: 5 s + 2 x election timeout */
    struct transfer_wait transfer;
    bool published;               /* our name and client URLs are in the replicated record */
    bool publishing;              /* a publish proposal is in flight */
    bool removed;                 /* this member was removed from the cluster: exiting */
    uint64_t removed_at_ms;
    ev_timer exit_timer;
    char *incoming_snap;          /* received snapshot data file waiting for raft to accept it */
    uint64_t incoming_snap_index;
    node_member *incoming_members; /* the member list that came with it */
    size_t incoming_nmembers;
    struct snap_send *snap_sends; /* MsgSnaps whose data is being copied (node_peer.c) */
    wal *wal;
    mvcc *store;
    struct lessor *lessor;        /* leases; mirrors the store (node_lease.c) */
    struct auth *auth;            /* users, roles, tokens (server/auth/); reads the store */
    ev_timer lease_tick;          /* the leader's expiry check */
    uint64_t lease_lead_term;     /* term in which the lessor was promoted; 0 = not leading */
    node_store_fn store_fn;       /* node_set_store_listener */
    void *store_arg;
    uint64_t member_id;
    uint64_t cluster_id;
    node_member *members;
    size_t nmembers;
    pending_table waiting;
    uint64_t id_counter;
    /* Invariant: applied <= raft commit index; entries <= applied are in the store. */
    uint64_t applied;
    uint64_t term_ring[NODE_TERM_RING];   /* term of applied entry i at i % NODE_TERM_RING */
    uint64_t last_snapshot_index;
    uint64_t applied_last_tick;
    uint64_t unflushed;           /* entries applied since the last store flush */
    uint64_t flushed_index;       /* consistent index the last store flush covered */
    /* Invariant: the store holds every entry <= durable_index even after a power loss. */
    uint64_t durable_index;   /* applied index at the previous store-flush tick */
    uint64_t trimmed_at;          /* applied index at the last malloc_trim */
    uint64_t reads, reads_last_tick, trimmed_reads; /* reads served (node_note_read) */
    uint64_t leader;              /* last leader seen, to count changes */
    struct node_alarm alarms[NODE_MAX_ALARMS];
    size_t nalarms;
    uint64_t lost_before_term;    /* a new leader's first entry was applied in this flush: fail
                                   * the writes proposed before its term (node_apply.c) */
    bool in_flush;
    char *boot_initial_cluster;   /* --initial-cluster from the bootstrap entry (owned) */
    bool boot_read;               /* the bootstrap entry was consulted (node_bootstrap.c) */
    char member_dir[900];
    char wal_dir[1024];
    char snap_dir[1100];
    char db_dir[1100];
    char members_path[1100];
    /* metrics */
    uint64_t leader_changes;
    uint64_t proposals_committed;
    uint64_t proposals_applied;
    uint64_t proposals_pending;
    uint64_t proposals_failed;
    node_metrics metrics;         /* histograms and counters for /metrics (node.h) */
};

/* Flush hook: drains Raft's updates (node_apply.c). */
void node_flush(evloop *l, void *arg);
void node_batch_push(struct batch *b, uint64_t id, int err, ProtobufCMessage *resp);
void node_fatal(const char *what, int rc);

/* Membership (node_members.c): apply a committed conf-change entry (member records, peer
 * transport, members.json, the waiting client's answer into b), apply a published member
 * record, check forwarded promotes on the leader, publish our own attributes, the
 * leader-transfer wait, and request timeouts. */
void node_conf_change_apply(node *n, const raft_entry *e, struct batch *b);
int node_member_attr_apply(node *n, const Etcdserverpb__Member *m);
bool node_promote_refused(node *n, const raft_msg *m);
void node_housekeeping(evloop *l, ev_timer *t);
void node_maybe_publish(node *n);
/* Answers every waiter that started before started_before (evloop ms) with err: request
 * timeouts, and CE_STOPPED for all at shutdown. */
void node_fail_waiters(node *n, int err, uint64_t started_before);
/* A leader of `term` has had its first (empty) entry applied here: every write still waiting
 * that was proposed in an earlier term is lost for certain (Raft: entries of earlier terms that
 * will ever commit lie before that entry, and all of those are applied), so it fails now with
 * "request timed out, possibly due to previous leader failure" instead of at its deadline. */
void node_fail_lost_writes(node *n, uint64_t term);
/* Logs etcd's message and ends the process (status 0): this member was removed. */
void node_exit_removed(void);
/* Deletes the entries of dir whose names start with prefix ("" = all but dot files). */
int node_unlink_prefixed(const char *dir, const char *prefix);
/* A fresh member with --bootstrap-dir (node_bootstrap.c): reads DIR/<name> once and takes its
 * initial-cluster and initial-cluster-state over the flags; CE_NOTFOUND (no entry: not added
 * yet) or CE_INVAL (entry says joined: data lost; or unreadable), after one log_error line. */
int node_bootstrap_apply(node *n);
void node_check_transfer(node *n);
node_member *node_member_find(node *n, uint64_t id);
int node_member_delete(node *n, uint64_t id);

/* Peers (node_peer.c): the transport on the peer URLs, messages out, snapshots in and out. */
int node_peers_start(node *n);
void node_peers_stop(node *n);
void node_peers_send(node *n, const raft_msg *m, size_t count);
void node_peers_flush(node *n);
void node_peer_sync(node *n, const node_member *m);  /* add or update a member's peer URLs */
void node_peer_drop(node *n, uint64_t id);
/* When our connection to id came up (evloop_now_ms), 0 if it is down. */
uint64_t node_peer_since_ms(node *n, uint64_t id);
/* Installs the snapshot raft accepted (update step 1). Fatal on failure. */
void node_snapshot_install(node *n, const raft_snapshot_meta *s);
/* Joining an existing cluster: the member list from a running member's peer URL. */
int node_fetch_members(node *n);

/* Start-up variants (node_recover.c): join an existing cluster (sets member_id, cluster_id,
 * members), and rewrite a restored WAL for --force-new-cluster (rp is re-read). */
int node_join_existing(node *n);
int node_force_new_cluster(node *n, wal_replay *rp, const raft_snapshot_meta *snap);
int node_save_members(node *n);
/* Replaces the member records with the list in a members.json-format file. */
int node_load_members(node *n, const char *path);
/* A request ID no other member or earlier run uses: the member ID's low 16 bits, a counter. */
uint64_t node_next_id(node *n);
int node_open_store(node *n);
/* The store file only (no lease reload): node_open_store's first half, for a store reopened
 * with the same content (defragmentation). */
int node_open_store_file(node *n);
void node_store_flush(node *n);

/* Alarms (alarms.c): load at start, apply a replicated AlarmRequest, list, and the gate that
 * refuses writes while NOSPACE or CORRUPT is active (0 or CE_NO_SPACE / CE_CORRUPT_ALARM). */
int node_alarms_load(node *n);
int node_alarm_apply(node *n, const Etcdserverpb__AlarmRequest *r, ProtobufCMessage **out);
bool node_alarm_active(const node *n, int type);
bool node_alarm_raised_by(const node *n, uint64_t member, int type);
int node_alarm_gate(const node *n, const Cetcdpb__InternalRequest *req);
/* etcd's estimate of the bytes a client write adds to the store (0: not a quota'd write). */
uint64_t node_quota_cost(const Cetcdpb__InternalRequest *req);

/* Leases (node_lease.c): rebuild the lessor from the store (at open and whenever a snapshot
 * replaced the store; also wires the store's lease checker), apply a lease entry of the log
 * at index, follow the key attachments of an applied put/delete/txn (resp: its response),
 * and the leader's expiry timer. */
int node_lease_load(node *n);
/* Points a reopened store (same content: defragmentation) at the lessor, which keeps its
 * leases and their deadlines. */
void node_lease_attach_store(node *n);
int node_lease_apply(node *n, const Cetcdpb__InternalRequest *req, uint64_t index,
                     ProtobufCMessage **out);
void node_lease_track(node *n, const Cetcdpb__InternalRequest *req, const ProtobufCMessage *resp);
void node_lease_start(node *n);
void node_lease_free(node *n);

/* Snapshots (node_snap.c): load the newest snapshot's metadata at start (zero meta if none;
 * conf arrays owned by the node until node_snapshot_meta_release), and take one when
 * --snapshot-count entries were applied since the last. */
int node_snapshot_load(node *n, raft_snapshot_meta *out);
void node_snapshot_meta_release(raft_snapshot_meta *m);
void node_maybe_snapshot(node *n);
/* Writes the snapshot file for (index, term) with conf and the current member list. */
int node_snapshot_write(node *n, uint64_t index, uint64_t term, const raft_conf_state *cs);

#endif
