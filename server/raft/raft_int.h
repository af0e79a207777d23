/*
 * raft_int.h: internals shared by the files of server/raft/ (not for other modules).
 *
 * rdata: entry payloads are reference-counted byte blocks, so an entry held by the log, by an
 * outgoing MsgApp and by the update's committed slice is stored once. A block is a small header
 * followed by the bytes; the pointer handed around points at the bytes. Len 0 payloads are NULL.
 *
 * rlog: the in-memory log: snapshot point plus the entries after it, all in one array (the
 * node's WAL holds the same entries on disk). Invariants:
 *   snap_index < ents[i].index == snap_index + 1 + i            (contiguous)
 *   snap_index <= applied <= committed <= last index
 *   snap_index <= stabled <= last index; entries in (stabled, last] are not yet durable
 *
 * rprogress: the leader's view of one member (etcd-raft's tracker.Progress), with the inflight
 * window of MsgApp not yet acknowledged in replicate state. Invariant: match < next.
 */
#ifndef CETCD_RAFT_INT_H
#define CETCD_RAFT_INT_H

#include "raft.h"

/* ---- rdata (log.c) ---- */
uint8_t *rdata_new(const uint8_t *data, size_t len); /* NULL for len 0 or on OOM (check len) */
void rdata_ref(const uint8_t *p);
void rdata_unref(const uint8_t *p);

/* ---- rlog (log.c) ---- */
typedef struct rlog {
    uint64_t snap_index;
    uint64_t snap_term;
    raft_entry *ents;
    size_t n;
    size_t cap;
    uint64_t committed;
    uint64_t applied;
    uint64_t stabled;
} rlog;

void rlog_init(rlog *l, uint64_t snap_index, uint64_t snap_term);
void rlog_destroy(rlog *l);
uint64_t rlog_last_index(const rlog *l);
uint64_t rlog_first_index(const rlog *l);
uint64_t rlog_last_term(const rlog *l);
/* Term of entry i; false when i is compacted (< snap_index) or beyond the last index. */
bool rlog_term(const rlog *l, uint64_t i, uint64_t *term);
bool rlog_match_term(const rlog *l, uint64_t i, uint64_t term);
bool rlog_is_up_to_date(const rlog *l, uint64_t last_index, uint64_t last_term);
const raft_entry *rlog_entry(const rlog *l, uint64_t i);
/* Appends copies (payloads copied into rdata blocks) after truncating anything from
 * ents[0].index on. Caller guarantees snap_index < ents[0].index <= last + 1. */
int rlog_append(rlog *l, const raft_entry *ents, size_t n);
/* Appends a new entry copying data into a fresh rdata block. */
int rlog_append_new(rlog *l, uint64_t term, raft_entry_type type, const uint8_t *data,
                    size_t len);
/* Follower append (etcd maybeAppend): returns true and *lastnew when (index, log_term)
 * matches; entries that conflict are replaced. *err set on OOM. */
bool rlog_maybe_append(rlog *l, uint64_t index, uint64_t log_term, uint64_t commit,
                       const raft_entry *ents, size_t n, uint64_t *lastnew, int *err);
/* The largest index <= index whose term is <= term (etcd's findConflictByTerm), with its term
 * (0 if unknown): where a rejected probe can resume, skipping a whole divergent term at once. */
uint64_t rlog_find_conflict_by_term(const rlog *l, uint64_t index, uint64_t term,
                                    uint64_t *found_term);
void rlog_commit_to(rlog *l, uint64_t c);
/* Commits up to idx if idx > committed and its term is `term`. */
bool rlog_maybe_commit(rlog *l, uint64_t idx, uint64_t term);
/* Entries [lo, hi) limited to max_bytes of data (at least one); false if lo is compacted. */
bool rlog_slice(const rlog *l, uint64_t lo, uint64_t hi, size_t max_bytes,
                const raft_entry **out, size_t *n);
/* Drops everything and restarts the log at a snapshot. */
void rlog_restore(rlog *l, uint64_t index, uint64_t term);
/* Drops entries up to index (inclusive); index must be in [snap_index, stabled]. */
void rlog_compact(rlog *l, uint64_t index);

/* ---- progress (progress.c) ---- */
typedef struct inflights {
    uint64_t *buf;
    size_t start;
    size_t count;
    size_t size;
} inflights;

typedef struct rprogress {
    uint64_t id;
    uint64_t match;
    uint64_t next;
    uint64_t pending_snapshot; /* index of the snapshot sent (state snapshot) */
    uint64_t ack_round;        /* highest read-index heartbeat round acknowledged */
    raft_progress_state state;
    bool probe_sent;
    bool recent_active;
    bool is_learner;
    int8_t vote; /* 0 none, 1 granted, -1 rejected (elections) */
    inflights ins;
} rprogress;

int progress_init(rprogress *p, uint64_t id, bool learner, uint64_t next, size_t max_inflight);
void progress_destroy(rprogress *p);
void progress_reset(rprogress *p, uint64_t next);
void progress_become_probe(rprogress *p);
void progress_become_replicate(rprogress *p);
void progress_become_snapshot(rprogress *p, uint64_t snap_index);
bool progress_maybe_update(rprogress *p, uint64_t n);
bool progress_maybe_decr_to(rprogress *p, uint64_t rejected, uint64_t hint);
bool progress_is_paused(const rprogress *p);
void progress_sent_entries(rprogress *p, uint64_t last);
bool inflights_full(const inflights *in);
void inflights_add(inflights *in, uint64_t idx);
void inflights_free_le(inflights *in, uint64_t idx);
void inflights_free_first(inflights *in);
void inflights_reset(inflights *in);

/* ---- the state machine (raft.c: lifecycle, update batch, membership; step.c: roles) ---- */
typedef struct msgq {
    raft_msg *v;
    size_t n;
    size_t cap;
} msgq;

typedef struct read_req {
    uint64_t ctx;
    uint64_t from;  /* requester (this member or a follower that forwarded it) */
    uint64_t index; /* commit index when the read was accepted */
    uint64_t round; /* heartbeat round confirming it; 0 = waits for a commit in this term */
} read_req;

struct raft {
    uint64_t id;
    int election_tick;
    int heartbeat_tick;
    bool pre_vote;
    bool check_quorum;
    size_t max_inflight;
    size_t max_size;
    uint64_t rng;

    /* Hard state. Invariant: vote is RAFT_NONE or a member voted for in `term`. */
    uint64_t term;
    uint64_t vote;
    /* Soft state. Invariant: lead == id iff role == RAFT_LEADER. */
    uint64_t lead;
    raft_role role;

    rlog log;

    /* Membership: one progress per voter and learner (this member included when a member). */
    rprogress *prs;
    size_t n_prs;
    size_t cap_prs;
    uint64_t *conf_ids; /* voters then learners, rebuilt on every change */
    size_t n_voters;
    size_t n_learners;
    uint64_t *scratch; /* n_prs slots for quorum computations */

    int election_elapsed;
    int heartbeat_elapsed;
    int randomized_timeout; /* Invariant: in [election_tick, 2 * election_tick) */
    uint64_t lead_transferee;
    /* Leader: index of the last conf change appended. Invariant: at most one conf change in
     * (applied, last]: a new one is refused while pending_conf_index > applied. */
    uint64_t pending_conf_index;
    /* Conf changes up to here are already in effect though maybe not applied by the node
     * (the bootstrap entries of a new cluster). */
    uint64_t conf_in_effect;
    /* Leader: proposals appended since the last update, not yet sent. Sending them once per
     * update batches every proposal of a loop iteration into one MsgApp per follower. */
    bool appends_pending;
    /* Leader: reads are waiting for a heartbeat round, sent at the next get_update. */
    bool read_heartbeat_pending;
    /* Follower: a MsgTimeoutNow arrived while a committed conf change was unapplied; the
     * forced campaign starts once it is applied (raft_advance). Cleared on a term change. */
    bool timeout_now_pending;

    raft_snapshot_meta snap;         /* latest snapshot point (owned conf arrays) */
    raft_snapshot_meta pending_snap; /* to install (index 0 = none), owned */

    read_req *reads;
    size_t n_reads;
    size_t cap_reads;
    uint64_t read_round;
    raft_read_state *rstates;
    size_t n_rstates;
    size_t cap_rstates;

    msgq msgs;       /* queued since the last get_update */
    msgq msgs_after;
    /* Handed out by get_update, released by advance. Swapped with the queues above, so
     * anything queued in between (raft_apply_conf_change while applying) goes into the next
     * update and never moves what the caller is still reading. */
    msgq out_msgs;
    msgq out_after;
    raft_read_state *out_rstates;
    size_t n_out_rstates;
    size_t cap_out_rstates;
    raft_hard_state prev_hs;
    raft_soft_state prev_ss;
};

/* raft.c: shared plumbing */
rprogress *raft__find(raft *r, uint64_t id);
int raft__send(raft *r, raft_msg *m); /* takes ownership of m's arrays, even on error */
/* Sends a copy of proto (or an empty message) with type and recipient set; lost on OOM. */
void raft__send_type(raft *r, raft_msg_type type, uint64_t to, raft_msg *proto);
void raft__msg_release(raft_msg *m);
int raft__conf_copy(const raft_conf_state *src, raft_conf_state *dst);
void raft__conf_free(raft_conf_state *c);
size_t raft__quorum(const raft *r);
bool raft__promotable(const raft *r);
int raft__add_read_state(raft *r, uint64_t ctx, uint64_t index);
int raft__set_conf(raft *r, const raft_conf_state *cs);

static inline bool raft__is_candidate(const raft *r)
{
    return r->role == RAFT_CANDIDATE || r->role == RAFT_PRE_CANDIDATE;
}

/* election.c */
void raft__reset_timeout(raft *r);
void raft__become_follower(raft *r, uint64_t term, uint64_t lead);
int raft__hup(raft *r, bool transfer);
void raft__handle_vote(raft *r, const raft_msg *m);
/* A (pre-)vote refusal carries the refuser's commit index and its term there (commit,
 * log_term), from which the candidate learns what it holds is committed: a voter that missed
 * the commit of the conf change making it (nearly) the only voter may otherwise need the vote
 * of a demoted or removed member that refuses it (longer log) and never campaigns itself. */
void raft__send_vote_reject(raft *r, raft_msg_type type, uint64_t to);
void raft__learn_commit(raft *r, const raft_msg *m);
int raft__step_candidate(raft *r, const raft_msg *m);

/* replication.c */
bool raft__send_append(raft *r, rprogress *pr, bool send_if_empty);
void raft__bcast_append(raft *r);
/* Sends what the leader deferred to the update: new entries, a read-index heartbeat round. */
void raft__flush_appends(raft *r);
void raft__bcast_heartbeat(raft *r);
/* The largest value a quorum of voters reached, for the uint64_t field at field_off of
 * rprogress (this member counts as self_value). */
uint64_t raft__quorum_value(raft *r, size_t field_off, uint64_t self_value);
bool raft__maybe_commit(raft *r);
int raft__handle_append(raft *r, const raft_msg *m);
void raft__handle_heartbeat(raft *r, const raft_msg *m);
int raft__handle_snapshot(raft *r, const raft_msg *m);
void raft__leader_app_resp(raft *r, rprogress *pr, const raft_msg *m);
void raft__leader_heartbeat_resp(raft *r, rprogress *pr, const raft_msg *m);

/* readindex.c */
void raft__activate_reads(raft *r);
void raft__release_reads(raft *r);
int raft__read_index(raft *r, uint64_t from, uint64_t ctx);

/* step.c */
void raft__abort_transfer(raft *r);
void raft__send_timeout_now(raft *r, uint64_t to);
int raft__propose_entry(raft *r, raft_entry_type type, const uint8_t *data, size_t len);
int raft__transfer(raft *r, uint64_t to);
/* A leader that is no longer a voter hands leadership to the most up-to-date voter. */
void raft__hand_over(raft *r);

#endif
