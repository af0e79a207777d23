/*
 * raft.h: the pure Raft state machine of cetcd (design of etcd-io/raft: Step + Ready/Advance).
 *
 * No I/O, no clock, no global randomness. Time advances only through raft_tick(); the only
 * randomness (election-timeout jitter) comes from a PRNG seeded by raft_config.seed. Everything
 * observable leaves through the update batch (raft_get_update), so the same inputs always give
 * the same outputs: the node and the simulator drive it identically.
 *
 * Driving loop (the node):
 *     raft_tick() every heartbeat/election "tick"; raft_step() for every peer message;
 *     raft_propose()/raft_read_index()/... for local requests; then
 *     while (raft_has_update(r)) {
 *         raft_update u; raft_get_update(r, &u);
 *         1. if u.snapshot: install the snapshot data the node received for it and persist
 *            its metadata (after this, applied == u.snapshot->index);
 *         2. u.msgs may be sent at once (before, during or after persisting);
 *         3. persist u.entries (append; an entry with an index already in the WAL replaces it
 *            and everything after it) and u.hard_state if u.hard_state_changed; fsync when
 *            u.must_sync;
 *         4. only then send u.msgs_after_persist;
 *         5. apply u.committed in order (for a RAFT_ENTRY_CONF_CHANGE entry: decode it with
 *            raft_conf_change_decode and call raft_apply_conf_change); u.committed may include
 *            entries of u.entries, hence persist (3) before applying;
 *         6. hand u.read_states to the waiting reads (read once applied >= index);
 *         7. raft_advance(r, &u).
 *     }
 * must_sync is false when only the commit index changed (etcd does not fsync for that
 * either: a lost commit index is re-learned from the leader).
 *
 * Which messages wait for persistence (u.msgs_after_persist): every message a member sends
 * that reports its own durable state: MsgAppResp (including the answer to MsgSnap),
 * MsgVoteResp, MsgPreVoteResp, MsgHeartbeatResp. Everything else (MsgApp, MsgHeartbeat, MsgSnap,
 * MsgVote, MsgPreVote, MsgProp, MsgReadIndex, MsgReadIndexResp, MsgTimeoutNow,
 * MsgTransferLeader) goes in u.msgs; but when term or vote changed in the batch, u.msgs is
 * empty and every message is in u.msgs_after_persist (a new candidate's or leader's messages
 * must not outlive a crash that forgets its vote). A leader counts its own log as replicated
 * only up to what an advance reported persisted ("commits what is durable"). A leader's
 * proposals are sent to followers when the update is taken, so all proposals of one loop
 * iteration share one MsgApp per follower.
 *
 * Snapshots: raft carries only snapshot METADATA. A leader whose follower is behind the
 * compacted log emits MsgSnap {snapshot: index, term, conf}; the node sends its snapshot data
 * for that index along with it and then calls raft_report_snapshot(to, ok). The receiving
 * node stores the data, then steps the MsgSnap; if raft accepts it, the next update carries
 * u.snapshot (install it, step 1 above), otherwise the data is stale and can be dropped.
 * A snapshot is accepted even if its conf does not hold the receiver (a member added after
 * the leader's last snapshot learns of its addition from the entries that follow).
 *
 * Ownership: every pointer in a raft_update points into memory owned by the raft instance and
 * stays valid until raft_advance(). Between raft_get_update() and raft_advance() the caller
 * may call only the const accessors and raft_apply_conf_change() (step 5); anything that call
 * queues (messages, read states, newly committed entries) comes out in the NEXT update and
 * never disturbs the current one. Messages given to raft_step() and data given to
 * raft_propose() are copied; the caller keeps them. Update batches are not size-limited:
 * everything pending comes out at once.
 *
 * Conf-change rule: single-step changes only; a change takes effect when its entry is APPLIED
 * (the node calls raft_apply_conf_change), like etcd-raft. A leader refuses a new change while
 * an earlier one is still unapplied (CE_AGAIN). A leader that applies its own removal or
 * demotion hands over: it keeps leading (refusing proposals) until the most up-to-date voter
 * holds its whole log, sends it MsgTimeoutNow and steps down. Raft cannot tell a demotion
 * (ADD_LEARNER of a voter) from re-adding a member removed meanwhile: the membership layer
 * must never propose an id it removed (etcd refuses removed ids). On restart, conf-change
 * entries in
 * (snapshot.index, config.applied] are re-applied internally, so the conf state after raft_new
 * is the one the node had when it stopped.
 */
#ifndef CETCD_RAFT_H
#define CETCD_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct raft raft;

#define RAFT_NONE 0 /* "no node": no leader, no vote */

typedef enum raft_role {
    RAFT_FOLLOWER = 0,
    RAFT_CANDIDATE = 1,
    RAFT_LEADER = 2,
    RAFT_PRE_CANDIDATE = 3,
} raft_role;

typedef enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0,
    RAFT_ENTRY_CONF_CHANGE = 1,
} raft_entry_type;

typedef struct raft_entry {
    uint64_t term;
    uint64_t index;
    raft_entry_type type;
    const uint8_t *data; /* may be NULL when len == 0 (e.g. the empty entry of a new leader) */
    size_t len;
} raft_entry;

typedef struct raft_conf_state {
    const uint64_t *voters;
    size_t n_voters;
    const uint64_t *learners;
    size_t n_learners;
} raft_conf_state;

typedef struct raft_hard_state {
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
} raft_hard_state;

typedef struct raft_soft_state {
    uint64_t leader;
    raft_role role;
} raft_soft_state;

typedef struct raft_snapshot_meta {
    uint64_t index; /* 0 = no snapshot */
    uint64_t term;
    raft_conf_state conf;
} raft_snapshot_meta;

typedef enum raft_msg_type {
    RAFT_MSG_APP = 1,
    RAFT_MSG_APP_RESP = 2,
    RAFT_MSG_VOTE = 3,
    RAFT_MSG_VOTE_RESP = 4,
    RAFT_MSG_PRE_VOTE = 5,
    RAFT_MSG_PRE_VOTE_RESP = 6,
    RAFT_MSG_HEARTBEAT = 7,
    RAFT_MSG_HEARTBEAT_RESP = 8,
    RAFT_MSG_SNAP = 9,
    RAFT_MSG_PROP = 10,
    RAFT_MSG_READ_INDEX = 11,
    RAFT_MSG_READ_INDEX_RESP = 12,
    RAFT_MSG_TIMEOUT_NOW = 13,
    RAFT_MSG_TRANSFER_LEADER = 14,
} raft_msg_type;
#define RAFT_MSG_TYPE_MAX 14

typedef struct raft_msg {
    raft_msg_type type;
    uint64_t to;
    uint64_t from;
    uint64_t term;     /* 0 for the termless forwarded requests: MsgProp, MsgReadIndex,
                        * MsgTransferLeader */
    uint64_t log_term; /* MsgApp: term of entry `index`; votes: term of candidate's last entry;
                        * (Pre)VoteResp reject: the refuser's term at `commit`;
                        * MsgAppResp reject: follower's term at reject_hint */
    uint64_t index;    /* MsgApp: index before entries; votes: last index; AppResp: match
                        * (reject: the rejected MsgApp's index); ReadIndexResp: read index */
    uint64_t commit;   /* (Pre)VoteResp reject: the refuser's commit index, from which the
                        * candidate learns that what it holds is committed (Log Matching);
                        * MsgApp, MsgHeartbeat: leader's commit (capped to the follower's match
                        * for heartbeats) */
    uint64_t reject_hint; /* MsgAppResp reject: largest follower index that may match (its
                           * term <= the rejected log_term); the probe resumes there */
    uint64_t context;     /* MsgReadIndex(Resp): request ctx; MsgHeartbeat(Resp): read-index
                           * round; MsgTransferLeader: the transferee */
    bool reject;
    bool transfer;        /* MsgVote/MsgPreVote: campaign forced by leader transfer */
    raft_entry *entries;
    size_t n_entries;
    raft_snapshot_meta snapshot; /* MsgSnap only */
} raft_msg;

typedef struct raft_read_state {
    uint64_t ctx;   /* the context given to raft_read_index */
    uint64_t index; /* read once applied >= index */
} raft_read_state;

typedef struct raft_update {
    raft_hard_state hard_state;
    bool hard_state_changed;
    raft_soft_state soft_state;
    bool soft_state_changed;
    const raft_snapshot_meta *snapshot; /* NULL, or a snapshot to install before entries */
    const raft_entry *entries;          /* to persist, ascending, contiguous */
    size_t n_entries;
    const raft_msg *msgs; /* may be sent before persisting (empty when term or vote changed in
                           * this batch: then every message waits for persistence) */
    size_t n_msgs;
    const raft_msg *msgs_after_persist; /* send only after entries + hard state are durable */
    size_t n_msgs_after_persist;
    const raft_entry *committed; /* to apply, ascending, contiguous */
    size_t n_committed;
    const raft_read_state *read_states;
    size_t n_read_states;
    bool must_sync; /* entries, vote or term changed: fsync before msgs_after_persist */
} raft_update;

typedef struct raft_config {
    uint64_t id;             /* this member, != 0 */
    int election_tick;       /* election timeout in ticks; > heartbeat_tick */
    int heartbeat_tick;      /* leader heartbeat interval in ticks; >= 1 */
    uint64_t seed;           /* PRNG seed for election jitter */
    bool pre_vote;
    bool check_quorum;       /* leader steps down without a quorum of recent responses; enables
                              * the leader lease (votes ignored within election_tick of a leader) */
    size_t max_inflight_msgs;   /* MsgApp in flight per follower in replicate state (0 = 256) */
    size_t max_size_per_msg;    /* bytes of entry data per MsgApp (0 = 1 MiB); >= 1 entry */
    uint64_t applied;           /* restart: last index the node applied (snapshot index <=
                                 * applied <= commit); (applied, commit] are re-delivered */
} raft_config;

typedef struct raft_peer {
    uint64_t id;
    const uint8_t *context; /* put in the bootstrap conf-change entry (member info) */
    size_t context_len;
} raft_peer;

/* State restored from disk. All zero plus peers = a brand-new cluster: raft writes one
 * AddVoter conf-change entry per peer at term 1 (indexes 1..n_peers), committed, for the node
 * to persist and apply like any other (the membership is in effect at once). All zero and no
 * peers = a member joining an existing cluster: it waits for the leader's MsgApp/MsgSnap.
 * Otherwise peers must be empty. The arrays are copied.
 * A hard state whose term is below the last entry's (a torn WAL tail kept entries but not the
 * hard state written after them) is accepted: the member resumes in that entry's term with no
 * vote, and the first update persists it. A hard state of term 0 with entries or a snapshot
 * means no batch was ever synced (every member's first batch has a hard state), so nothing on
 * that disk was acknowledged: the node should discard it and start afresh (bootstrap again
 * with its peers, or join empty), as etcd does without a WAL; raft, given it, would wait for
 * a leader with no membership (the bootstrap entries are not known committed). */
typedef struct raft_restore {
    raft_hard_state hard_state;
    raft_snapshot_meta snapshot;
    const raft_entry *entries; /* entries after snapshot.index, contiguous */
    size_t n_entries;
    const raft_peer *peers;
    size_t n_peers;
} raft_restore;

typedef enum raft_conf_change_type {
    RAFT_CC_ADD_VOTER = 0,
    RAFT_CC_REMOVE = 1,
    RAFT_CC_UPDATE = 2,      /* no membership effect; context carries new member info */
    RAFT_CC_ADD_LEARNER = 3,
    RAFT_CC_PROMOTE = 4,     /* learner -> voter */
} raft_conf_change_type;

typedef struct raft_conf_change {
    raft_conf_change_type type;
    uint64_t node_id;
    const uint8_t *context; /* opaque to raft (the node's member record) */
    size_t context_len;
} raft_conf_change;

typedef enum raft_progress_state {
    RAFT_PROGRESS_PROBE = 0,
    RAFT_PROGRESS_REPLICATE = 1,
    RAFT_PROGRESS_SNAPSHOT = 2,
} raft_progress_state;

typedef struct raft_progress_info {
    uint64_t match;
    uint64_t next;
    raft_progress_state state;
    bool is_learner;
    bool recent_active;
} raft_progress_info;

/* Lifecycle. Returns 0, CE_INVAL (bad config or inconsistent restore state) or CE_NOMEM. */
int raft_new(const raft_config *cfg, const raft_restore *rs, raft **out);
void raft_free(raft *r);

/* Inputs. */
void raft_tick(raft *r);
/* Returns 0; CE_INVAL for a malformed message (unknown type, wrong sender or recipient,
 * non-contiguous entries), which is dropped; CE_CORRUPT if a leader tries to overwrite a
 * committed entry (dropped); for a forwarded request (MsgProp, MsgReadIndex,
 * MsgTransferLeader) the error its local call would give (CE_NO_LEADER, CE_NOT_LEADER,
 * CE_AGAIN, CE_BAD_LEADER_TRANSFER, CE_INVAL for a conf change the leader refuses): the
 * request is dropped, the sender times out. A MsgReadIndex reaching a non-leader is not
 * forwarded again (CE_NOT_LEADER): the answer would come back to the forwarder, not the
 * member that asked. */
int raft_step(raft *r, const raft_msg *m);
/* CE_NO_LEADER if no leader is known (follower or candidate), CE_NOT_LEADER on a leader that
 * is transferring leadership or was removed; a follower (or learner) with a leader forwards the
 * proposal (MsgProp, termless) and returns 0; a forwarded proposal can still be dropped. */
int raft_propose(raft *r, const uint8_t *data, size_t len);
/* As raft_propose; CE_AGAIN while an earlier conf change is unapplied (leader only),
 * CE_INVAL for a change that makes no sense (remove/update an unknown member, promote a
 * non-learner, remove or demote the last voter; checked on the leader, for forwarded
 * proposals too). ADD_VOTER of a learner promotes it; ADD_LEARNER of a
 * voter demotes it; adding an existing member in its role is a no-op. */
int raft_propose_conf_change(raft *r, const raft_conf_change *cc);
/* Starts a linearizable read; the answer comes back as a read state with the same ctx.
 * CE_NO_LEADER if no leader is known. Not answered (silently dropped) if leadership is lost. */
int raft_read_index(raft *r, uint64_t ctx);
/* Asks the leader to hand leadership to `to` (forwarded when called on a follower).
 * CE_BAD_LEADER_TRANSFER if `to` is not a voter (on the leader), CE_NO_LEADER. Proposals are
 * refused (CE_NOT_LEADER) until the transfer completes or times out (election_tick). */
int raft_transfer_leader(raft *r, uint64_t to);
/* Starts an election now (pre-vote first when enabled). CE_INVAL for a learner/non-member,
 * CE_AGAIN while a committed conf change is unapplied (bootstrap entries excepted: a fresh
 * single member may campaign right after raft_new). 0 (no-op) on a leader. */
int raft_campaign(raft *r);
void raft_report_unreachable(raft *r, uint64_t id);
/* The node finished (ok) or failed to send the snapshot of a MsgSnap to id. */
void raft_report_snapshot(raft *r, uint64_t id, bool ok);
/* Applies a committed conf change (call when applying its entry); *out (optional) gets the
 * new conf state, whose arrays stay valid until the next mutating call. */
int raft_apply_conf_change(raft *r, const raft_conf_change *cc, raft_conf_state *out);
/* The node took a snapshot at index (<= applied index; term = that entry's term): entries up
 * to index are dropped from memory and the snapshot meta (with the current conf state) is
 * what followers behind it will be sent. CE_INVAL if index > applied, the term mismatches, or
 * a conf change was applied after index (the current conf state would not be index's).
 * Compacting a little below applied (etcd keeps 5000 entries) lets slow followers catch up
 * from the log instead of a snapshot. The log is only ever trimmed here: call it. */
int raft_compact(raft *r, uint64_t index, uint64_t term);

/* Output batch. */
bool raft_has_update(const raft *r);
void raft_get_update(raft *r, raft_update *u);
void raft_advance(raft *r, const raft_update *u);

/* Status. */
uint64_t raft_id(const raft *r);
uint64_t raft_term(const raft *r);
uint64_t raft_leader(const raft *r);
raft_role raft_get_role(const raft *r);
uint64_t raft_commit_index(const raft *r);
uint64_t raft_applied_index(const raft *r);
uint64_t raft_last_index(const raft *r);
uint64_t raft_first_index(const raft *r); /* first entry kept in memory (snapshot index + 1) */
/* Arrays valid until the next mutating call. */
void raft_conf_state_get(const raft *r, raft_conf_state *out);
bool raft_is_learner(const raft *r);
/* Leader only: CE_NOT_LEADER on others, CE_NOTFOUND for an unknown member. */
int raft_progress(const raft *r, uint64_t id, raft_progress_info *out);

/* Conf-change entry data: 1 byte type, 8 bytes node id (little endian), then context. */
int raft_conf_change_encode(const raft_conf_change *cc, uint8_t **buf, size_t *len);
/* Decodes without copying: cc->context points into data. CE_CORRUPT on bad input. */
int raft_conf_change_decode(const uint8_t *data, size_t len, raft_conf_change *cc);

/* Peer wire format (documented in msg.c). encode: *buf malloc'd, caller frees with free();
 * CE_INVAL for an unencodable message. decode: m owns its arrays afterwards, release with
 * raft_msg_free(); on error (CE_CORRUPT, CE_NOMEM) nothing is owned. Decoding checks framing
 * only; raft_step validates the content. */
int raft_msg_encode(const raft_msg *m, uint8_t **buf, size_t *len);
int raft_msg_decode(const uint8_t *buf, size_t len, raft_msg *m);
void raft_msg_free(raft_msg *m);
const char *raft_msg_type_name(raft_msg_type t);

#endif
