/*
 * node.h: the member itself. The only module that knows Raft, the WAL, snapshots and the MVCC
 * store together: it drives the Raft state machine with ticks and messages, persists what Raft
 * asks to persist (WAL append + one fsync per loop iteration: group commit), sends what it asks
 * to send, applies committed entries to the store in one LMDB batch, and wakes the requests
 * waiting on them.
 *
 * The API layer (server/api/) calls only this header plus the read side of mvcc.h.
 *
 * Callback rule (libuv's): when a function taking a callback returns an error, the callback is
 * never called; when it returns 0 the callback is called exactly once, unless the caller
 * cancels the handle first, after which it is never called.
 *
 * A write is answered only after its entry is durable on a quorum and applied.
 */
#ifndef CETCD_NODE_H
#define CETCD_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evloop.h"
#include "histo.h"
#include "internal.pb-c.h"
#include "mvcc/mvcc.h"
#include "rpc.pb-c.h"

typedef struct node node;

#define NODE_MAX_URLS 8

typedef struct node_member {
    uint64_t id;
    char name[64];
    char peer_urls[NODE_MAX_URLS][256];
    int npeer;
    char client_urls[NODE_MAX_URLS][256];
    int nclient;
    bool is_learner;
} node_member;

typedef struct node_config {
    const char *name;
    const char *data_dir;
    const char *wal_dir;               /* NULL = <data_dir>/member/wal */
    const char *initial_cluster;       /* "n1=http://a:2380,n2=..." */
    const char *initial_cluster_token;
    bool initial_cluster_new;          /* --initial-cluster-state new (else existing) */
    const char *bootstrap_dir;         /* --bootstrap-dir: NULL = none (node_bootstrap.c) */
    bool force_new_cluster;
    const char *const *advertise_client_urls;
    int nadvertise_client;
    const char *const *advertise_peer_urls;
    int nadvertise_peer;
    const char *const *listen_peer_urls;
    int nlisten_peer;
    /* Peer TLS (api/tls.h; H8): server side for https:// listen URLs, client side for dialing
     * https:// peer URLs; NULL = none. Must outlive the node. */
    const struct tls_files *peer_tls_server;
    const struct tls_files *peer_tls_client;
    bool pre_vote;                     /* --pre-vote (default true) */
    bool strict_reconfig_check;        /* --strict-reconfig-check (default true) */
    uint32_t heartbeat_ms;             /* --heartbeat-interval, default 100 */
    uint32_t election_ms;              /* --election-timeout, default 1000 */
    uint64_t snapshot_count;           /* --snapshot-count, default 100000 */
    uint64_t quota_backend_bytes;      /* default 2 GiB */
    uint32_t max_txn_ops;              /* default 128 */
    uint32_t max_request_bytes;        /* default 1.5 MiB */
    bool unsafe_no_fsync;              /* --unsafe-no-fsync: tests and benchmarks only */
    uint32_t auth_token_ttl;           /* --auth-token-ttl seconds; 0 = 300 */
} node_config;

/* Status for Maintenance.Status, /metrics and /health. */
typedef struct node_status {
    uint64_t cluster_id;
    uint64_t member_id;
    uint64_t leader;                   /* 0 = none known */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    bool is_learner;
    int64_t db_size;
    int64_t db_size_in_use;
    int64_t revision;
    int64_t compact_revision;
    uint64_t leader_changes;           /* leader changes seen */
    uint64_t proposals_committed;
    uint64_t proposals_applied;
    uint64_t proposals_pending;
    uint64_t proposals_failed;
    size_t nalarms;                    /* active alarms */
} node_status;

int node_new(const node_config *cfg, evloop *loop, node **out);
/* Starts raft ticking (after node_new replayed the WAL and store). */
int node_start(node *n);
void node_free(node *n);

/*
 * Proposes a client write. req is packed immediately (the caller keeps ownership). When the
 * entry is applied, cb gets err 0 and resp, a heap message the callback owns (PutResponse,
 * DeleteRangeResponse, TxnResponse, CompactionResponse ...) with its header filled; or an err
 * and NULL. *handle identifies the request for node_cancel().
 */
typedef void (*node_write_cb)(void *ctx, int err, ProtobufCMessage *resp);
int node_propose(node *n, const Cetcdpb__InternalRequest *req, node_write_cb cb, void *ctx,
                 uint64_t *handle);

/* Linearizable read barrier: cb(ctx, 0) once this member has applied everything committed
 * when the call was made and has confirmed it is (or follows) the current leader. */
typedef void (*node_read_cb)(void *ctx, int err);
int node_read_index(node *n, node_read_cb cb, void *ctx, uint64_t *handle);

/* The callback of a pending proposal or read will not be called. */
void node_cancel(node *n, uint64_t handle);

/* Fills cluster_id, member_id, raft_term and revision (current store revision). */
void node_fill_header(node *n, Etcdserverpb__ResponseHeader *h);
void node_get_status(node *n, node_status *st);
/* The member list as etcd's messages, for a response (freed with it); *count set. */
Etcdserverpb__Member **node_member_list(node *n, size_t *count);
/* Current alarms into resp->alarms (heap, freed with the response). 0 or CE_NOMEM. */
int node_alarms(node *n, Etcdserverpb__AlarmResponse *resp);
/* Maintenance.Defragment of this member's store (node_defrag.c): rewrites the data file
 * compacted and swaps it in, giving the free pages back to the file system. Blocks the loop
 * while it copies (etcd blocks every request meanwhile too). 0 or CE_*; on an error after the
 * old store was closed the member stops (node_fatal), since it cannot serve without one. */
int node_defrag(node *n);

/*
 * Membership (node_members.c), as etcd's Cluster service. Each change is one Raft conf-change
 * entry; cb gets the etcd response (MemberAddResponse, MemberRemoveResponse,
 * MemberUpdateResponse, MemberPromoteResponse; header not filled) once the entry is applied
 * on this member. Checked before proposing, with etcd's errors: bad or duplicate peer URLs,
 * unknown member, a second learner, a promote of a learner not yet in sync with the leader,
 * and (with --strict-reconfig-check) a change that would leave fewer started voters than a
 * quorum.
 */
int node_member_add(node *n, char **peer_urls, size_t nurls, bool learner, node_write_cb cb,
                    void *ctx, uint64_t *handle);
int node_member_remove(node *n, uint64_t id, node_write_cb cb, void *ctx, uint64_t *handle);
int node_member_update(node *n, uint64_t id, char **peer_urls, size_t nurls, node_write_cb cb,
                       void *ctx, uint64_t *handle);
int node_member_promote(node *n, uint64_t id, node_write_cb cb, void *ctx, uint64_t *handle);
/* Hands leadership to target (etcd's MoveLeader): only on the leader (CE_NOT_LEADER), to a
 * voter (CE_BAD_LEADER_TRANSFER); cb(ctx, 0) once target leads, CE_TIMEOUT_TRANSFER if it
 * did not within the request timeout. */
int node_move_leader(node *n, uint64_t target, node_read_cb cb, void *ctx, uint64_t *handle);
/*
 * Leases (node_lease.c), as etcd's Lease service. Grant, revoke and renew (a keepalive) go
 * through Raft; cb gets a LeaseGrantResponse, LeaseRevokeResponse or LeaseKeepAliveResponse
 * (header revision at most set) once the entry is applied on this member, or etcd's error:
 * CE_LEASE_EXISTS, CE_LEASE_NOT_FOUND (revoke or renew of an unknown lease), CE_NO_SPACE
 * (grant under the NOSPACE alarm). node_lease_grant chooses a fresh positive ID when r->ID is
 * 0, raises the TTL to the minimum (ceil(1.5 x election timeout) seconds) and refuses one
 * above 9,000,000,000 s with CE_LEASE_TTL_LARGE before proposing.
 */
int node_lease_grant(node *n, const Etcdserverpb__LeaseGrantRequest *r, node_write_cb cb,
                     void *ctx, uint64_t *handle);
int node_lease_revoke(node *n, int64_t id, node_write_cb cb, void *ctx, uint64_t *handle);
int node_lease_renew(node *n, int64_t id, node_write_cb cb, void *ctx, uint64_t *handle);
/* Answers from this member's lessor (call after node_read_index for a linearizable answer):
 * ID, remaining TTL in whole seconds (-1 for an unknown lease), granted TTL and, if r->keys,
 * the attached keys in key order; every lease ID, the earliest expiry first (etcd's order). The arrays are heap, freed with
 * the response. 0 or CE_NOMEM. */
int node_lease_time_to_live(node *n, const Etcdserverpb__LeaseTimeToLiveRequest *r,
                            Etcdserverpb__LeaseTimeToLiveResponse *resp);
int node_lease_leases(node *n, Etcdserverpb__LeaseLeasesResponse *resp);

/* This member is a learner (serves only serializable reads and Status, etcd's rule). */
bool node_is_learner(node *n);

/* A read was served from the store (activity: the node returns freed memory only when idle). */
void node_note_read(node *n);

/* Told the store the node applies to, at once and again whenever a snapshot received from the
 * leader replaced it (a new mvcc object: event sinks must be set on it again, and history
 * readers must re-read from their next revision). One listener (the watch hub). */
typedef void (*node_store_fn)(void *arg, mvcc *store);
void node_set_store_listener(node *n, node_store_fn fn, void *arg);

/* The store, for reads. */
mvcc *node_store(node *n);
/* The auth store (server/auth/auth.h): its checks read node_store(n). */
struct auth *node_auth(node *n);

/* Point-in-time copies of the store made off the loop (node_copy.c), for Maintenance.Snapshot
 * (NODE_COPY_BBOLT: etcd 3.4's backend format, mvcc_copy_export) and the data of Raft snapshots
 * between members (NODE_COPY_LMDB: the store's own LMDB file, mvcc_copy_run). node_copy_start
 * (on the loop) pins the store as it is now (mvcc_copy_begin) and starts a thread that writes
 * that state in the kind asked into an unnamed temp file beside the store; then done(arg, rc) is
 * called once, on the loop, after the thread ended and the pin was released: rc 0 = the file
 * (node_copy_fd, or the caller's after node_copy_take_fd) holds node_copy_size bytes from offset
 * 0 (for NODE_COPY_BBOLT the size is known only from then on), the store at revision
 * node_copy_rev with the consistent index of the start. A failed start returns CE_* and never
 * calls done. node_copy_stop makes a running copy end soon (done then says CE_STOPPED, or 0 if
 * it had finished). node_copy_free (done may call it) stops and joins a running copy without
 * calling done, closes the file unless taken, and frees. */
typedef struct node_copy node_copy;
typedef void (*node_copy_fn)(void *arg, int rc);
enum node_copy_kind { NODE_COPY_LMDB, NODE_COPY_BBOLT };
int node_copy_start(node *n, enum node_copy_kind kind, node_copy_fn done, void *arg,
                    node_copy **out);
int64_t node_copy_rev(const node_copy *c);
uint64_t node_copy_size(const node_copy *c);
int node_copy_fd(const node_copy *c);
int node_copy_take_fd(node_copy *c);
void node_copy_stop(node_copy *c);
void node_copy_free(node_copy *c);
uint32_t node_max_request_bytes(const node *n);

/* Latency histograms and counters that only the node sees, for /metrics (server/api/metrics.c
 * renders them with etcd's names). Buckets are etcd's: fsync and backend commit
 * 0.001 * 2^i (i < 14) seconds; peer round trip 0.0001 * 2^i (i < 14) seconds. */
#define NODE_RTT_PEERS 16
typedef struct node_peer_rtt {
    uint64_t id;                       /* the peer (label To) */
    double hb_sent;                    /* histo_now() of the unanswered heartbeat, 0 if none */
    histo rtt;                         /* heartbeat -> heartbeat response, measured by a leader */
} node_peer_rtt;
typedef struct node_metrics {
    histo wal_fsync;                   /* etcd_disk_wal_fsync_duration_seconds */
    histo backend_commit;              /* etcd_disk_backend_commit_duration_seconds */
    histo defrag;                      /* etcd_disk_backend_defrag_duration_seconds: .1 * 2^i, 13 */
    bool defrag_inflight;              /* etcd_disk_defrag_inflight */
    size_t npeers;
    node_peer_rtt peers[NODE_RTT_PEERS];
    uint64_t puts, deletes, txns;      /* etcd_mvcc_{put,delete,txn}_total (applied) */
} node_metrics;
const node_metrics *node_get_metrics(const node *n);
/* etcd_disk_wal_write_bytes_total: bytes written to the WAL since start. */
uint64_t node_wal_bytes(const node *n);
/* Per-peer traffic (peer/peer.h's peer_stats): up to max entries, their number returned. */
struct peer_stats;
size_t node_peer_stats(const node *n, struct peer_stats *out, size_t max);

#endif
