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
    wal *wal;
    mvcc *store;
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
    uint64_t leader;              /* last leader seen, to count changes */
    struct node_alarm alarms[NODE_MAX_ALARMS];
    size_t nalarms;
    bool nospace_proposed;        /* a NOSPACE activation is in flight */
    bool quota_hit;               /* a write failed for lack of space in this flush */
    bool in_flush;
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
    uint64_t fsync_buckets[NODE_FSYNC_BUCKETS];
    uint64_t fsync_count;
    double fsync_sum;
};

/* Flush hook: drains Raft's updates (node_apply.c). */
void node_flush(evloop *l, void *arg);
int node_save_members(node *n);
void node_store_flush(node *n);

/* Alarms (alarms.c): load at start, apply a replicated AlarmRequest, list, and the gate that
 * refuses writes while NOSPACE or CORRUPT is active (0 or CE_NO_SPACE / CE_CORRUPT_ALARM). */
int node_alarms_load(node *n);
int node_alarm_apply(node *n, const Etcdserverpb__AlarmRequest *r, ProtobufCMessage **out);
bool node_alarm_active(const node *n, int type);
int node_alarm_gate(const node *n, const Cetcdpb__InternalRequest *req);

/* Snapshots (node_snap.c): load the newest snapshot's metadata at start (zero meta if none;
 * conf arrays owned by the node until node_snapshot_meta_release), and take one when
 * --snapshot-count entries were applied since the last. */
int node_snapshot_load(node *n, raft_snapshot_meta *out);
void node_snapshot_meta_release(raft_snapshot_meta *m);
void node_maybe_snapshot(node *n);

#endif
