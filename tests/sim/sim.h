/*
 * sim.h: the deterministic Raft simulator (cetcd issue 3): types shared by its files.
 *
 * One process drives 1 to 7 raft instances (server/raft) exactly as the node does (raft.h's
 * driving loop) over a simulated network (net.c: drop, delay, duplicate, reorder, partition)
 * and simulated disks (disk.c: writes are volatile until synced; a crash keeps a random prefix
 * of the unsynced writes). Members crash, restart from their disk, join and leave (member.c,
 * run.c). After every step check.c verifies the safety invariants; after the faults heal,
 * run.c checks liveness (a leader within a bound, a final proposal committed, convergence).
 *
 * Determinism: every random choice comes from the one xoshiro256** generator of the seed
 * (struct sim.rng), including raft_config.seed; nothing reads the clock, addresses are never
 * compared or hashed. The same seed gives the same trace, byte for byte (--verbose).
 *
 * Identifiers: member ids are 1..SIM_MAX_IDS (never reused), so a membership is two bitmasks.
 * Every entry's payload carries a unique 64-bit "uid" (proposals and conf changes share one
 * counter), which is what the state machine records: sval {term, uid} per applied index.
 */
#ifndef CETCD_SIM_H
#define CETCD_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/raft/raft.h"

#define SIM_MAX_LIVE 7   /* members running at once (in the conf or joining it) */
#define SIM_MAX_IDS 60   /* ids ever used in one seed; membership fits in a uint64_t mask */
#define SIM_DATA_MAX 24  /* bytes of an entry payload (uid + padding, or a conf change) */
#define SIM_BOOT_UID (1ull << 62) /* uid space of the bootstrap conf changes: | member id */

/* ---- PRNG: xoshiro256**, seeded through splitmix64 ---- */
typedef struct rng {
    uint64_t s[4];
} rng;

void rng_seed(rng *r, uint64_t seed);
/* Grows array p (capacity *cap elements of elem bytes) to hold need, zeroing the new part;
 * aborts when out of memory (a simulation cannot go on without its state). */
void *sim_grow(void *p, size_t *cap, size_t need, size_t elem);
uint64_t rng_next(rng *r);
uint64_t rng_below(rng *r, uint64_t n); /* uniform in [0, n); 0 when n == 0 */
bool rng_chance(rng *r, unsigned permille);

/* ---- membership as bitmasks: bit (id - 1) ---- */
typedef struct sconf {
    uint64_t voters;
    uint64_t learners;
} sconf;

static inline uint64_t sconf_bit(uint64_t id) { return 1ull << (id - 1); }
static inline bool sconf_has(sconf c, uint64_t id)
{
    return ((c.voters | c.learners) & sconf_bit(id)) != 0;
}
static inline bool sconf_eq(sconf a, sconf b)
{
    return a.voters == b.voters && a.learners == b.learners;
}
sconf sconf_from_raft(const raft_conf_state *cs);
/* Applies one conf change the way raft does (no-op for impossible ones). */
sconf sconf_apply(sconf c, const raft_conf_change *cc);

/* ---- state machine values and snapshots ---- */
typedef struct sval {
    uint64_t term;
    uint64_t uid; /* 0 for a leader's empty entry */
} sval;

/* A state machine snapshot (the "snapshot file"): reference counted, shared by the disk
 * images of its owner and by MsgSnap in flight. vals[i] is index i + 1. */
typedef struct ssnap {
    size_t refs;
    uint64_t index;
    uint64_t term;
    sconf conf;
    sval *vals;
} ssnap;

ssnap *ssnap_new(uint64_t index, uint64_t term, sconf conf, const sval *vals);
void ssnap_ref(ssnap *s);
void ssnap_unref(ssnap *s);

/* ---- disk (disk.c) ---- */
typedef struct sent {
    uint64_t term;
    uint64_t index;
    uint8_t type;
    uint8_t len;
    uint8_t data[SIM_DATA_MAX];
} sent;

typedef struct dimage {
    raft_hard_state hs;
    ssnap *snap; /* NULL: no snapshot (index 0) */
    sent *ents;  /* entries after the snapshot index, contiguous */
    size_t n;
    size_t cap;
} dimage;

typedef enum dop_kind { DOP_SNAP, DOP_ENTS, DOP_HS } dop_kind;

typedef struct dop {
    dop_kind kind;
    ssnap *snap;
    sent *ents;
    size_t n;
    raft_hard_state hs;
} dop;

typedef struct disk {
    dimage dur;  /* what survives a crash */
    dimage cur;  /* what the member has written (dur + ops) */
    dop *ops;    /* writes since the last sync, in order */
    size_t n_ops;
    size_t cap_ops;
    sval *sm;    /* the state machine as durably flushed (the node's store) */
    size_t sm_n;
    size_t sm_cap;
} disk;

void disk_init(disk *d);
void disk_free(disk *d);
uint64_t dimage_snap_index(const dimage *im);
uint64_t dimage_snap_term(const dimage *im);
uint64_t dimage_last(const dimage *im);
/* Term of index i in the image (the snapshot's at its index); false if unknown. */
bool dimage_term(const dimage *im, uint64_t i, uint64_t *term);
const sent *dimage_entry(const dimage *im, uint64_t i);
/* Volatile writes. disk_write_ents returns false when the entries cannot be written there
 * (not contiguous, a gap after the log, below the snapshot, a payload too long). */
void disk_write_snap(disk *d, ssnap *s);
bool disk_write_ents(disk *d, const raft_entry *e, size_t n);
void disk_write_hs(disk *d, raft_hard_state hs);
void disk_sync(disk *d);
/* Loses the unsynced writes but a random prefix (maybe a partial entry batch); returns the
 * number of writes kept (whole or partial) out of *n_ops. */
size_t disk_crash(disk *d, rng *r, size_t *n_ops);
/* The node took a snapshot: durable at once (snapshot file written, log compacted). */
void disk_compact(disk *d, ssnap *s);
/* The store made its applied state durable (vals[0..n)). */
void disk_sm_flush(disk *d, const sval *vals, size_t n);

/* ---- network (net.c) ---- */
typedef struct wmsg {
    uint64_t at;    /* step of delivery */
    uint64_t order; /* random tie-break among messages of one step */
    uint64_t from;
    uint64_t to;
    uint8_t *buf;   /* raft_msg_encode output */
    size_t len;
    ssnap *snap;    /* the snapshot data travelling with a MsgSnap */
    uint32_t from_inc; /* sender's incarnation (for raft_report_snapshot) */
} wmsg;

typedef struct net {
    wmsg *heap; /* min-heap on (at, order) */
    size_t n;
    size_t cap;
    uint8_t group[SIM_MAX_IDS + 1]; /* partition group per member; messages cross no groups */
    bool partitioned;
} net;

struct sim;
void net_init(net *n);
void net_free(net *n);
void net_send(struct sim *s, uint64_t from, const raft_msg *m);
/* Delivers every message due at the current step. */
void net_deliver_due(struct sim *s);
/* Splits the members into random groups, or isolates member `alone` (when not 0). */
void net_partition(struct sim *s, uint64_t alone);
void net_heal(struct sim *s);

/* ---- members (member.c) ---- */
typedef enum mstate {
    M_UNUSED = 0,
    M_UP,
    M_DOWN,
    M_STOPPED, /* removed from the cluster and shut down for good */
} mstate;

typedef struct member {
    uint64_t id;
    mstate state;
    uint32_t inc; /* incarnation: +1 on every start */
    raft *r;
    raft_config cfg;
    disk d;
    sval *sm; /* the applied state: sm[i] is index i + 1 */
    size_t sm_n;
    size_t sm_cap;
    ssnap **rx;     /* data of the MsgSnap received since the last drain */
    size_t n_rx;
    size_t cap_rx;
    bool boot;       /* an initial member: bootstraps again if no hard state was synced */
    bool was_member; /* has been in the committed conf */
    bool remove_proposed; /* never re-added after that (etcd refuses removed ids) */
    uint64_t add_tick; /* tick of the last proposal adding it (0: none) */
    uint64_t removed_at; /* history index of its removal (0: not removed) */
    bool doomed; /* crashes at the start of the next step */
    /* checker state, reset on every start */
    uint64_t seen_commit;
    uint64_t seen_term;
    uint64_t seen_vote;
    uint64_t lc_term; /* leader completeness: term checked, next index to check */
    uint64_t lc_next;
} member;

void member_start_new(struct sim *s, uint64_t id, const raft_peer *peers, size_t n_peers);
void member_crash(struct sim *s, member *m, bool torn);
void member_restart(struct sim *s, member *m);
void member_stop(struct sim *s, member *m);
void member_free(member *m);
/* The node's loop: process update batches until raft has none. */
void member_drain(struct sim *s, member *m);
void member_deliver(struct sim *s, member *m, const raft_msg *msg, ssnap *snap);
/* Takes a snapshot at (about) the applied index when the log grew past snap_count. */
void member_maybe_compact(struct sim *s, member *m);
uint64_t member_durable_applied(const member *m);
/* Payload of a normal proposal for uid. */
size_t sim_proposal_data(uint64_t uid, uint8_t *buf);

/* ---- history and invariants (check.c, hist.c) ---- */
typedef struct kv_ent {
    uint64_t index; /* 0 = empty slot */
    uint64_t term;
    uint64_t data_hash; /* FNV-1a of type and payload */
    uint64_t prev_term;
} kv_ent;

typedef struct hist {
    sval *v;       /* v[i] = the entry applied at index i + 1 (first applier decides) */
    size_t n;
    size_t cap;
    uint64_t *gc_term;   /* committed entry's term per index (0: unknown), [0] unused */
    uint64_t *gc_obs;    /* term of the member that first saw it committed */
    size_t gc_cap;
    uint64_t gmax;       /* highest index known committed */
    struct { uint64_t index; sconf conf; } *confs; /* conf after each conf change */
    size_t n_confs;
    size_t cap_confs;
    uint64_t *leader_of; /* term -> leader id */
    size_t leader_cap;
    kv_ent *tab;         /* (index, term) -> entry, for log matching */
    size_t tab_cap;
    size_t tab_n;
} hist;

void hist_init(hist *h);
void hist_free(hist *h);
sconf hist_conf_at(const hist *h, uint64_t index);
sconf hist_conf_now(const hist *h);
void hist_push_conf(hist *h, uint64_t index, sconf c);
void hist_push(hist *h, sval v);
void hist_reserve_gc(hist *h, uint64_t index);
uint64_t *hist_leader_slot(hist *h, uint64_t term);
/* The log-matching record of (index, term): found, or a fresh slot (index 0) to fill. */
kv_ent *hist_entry_slot(hist *h, uint64_t index, uint64_t term);

/* The checks report through sim_fail; they return false when they failed. */
bool check_written_entry(struct sim *s, member *m, const sent *e, uint64_t prev_term);
/* Log matching for m's entries [from, to], checked once durable: what a crash loses was never
 * sent either (the batch that makes a leader sends nothing before it is synced). */
bool check_log(struct sim *s, member *m, uint64_t from, uint64_t to);
bool check_committed(struct sim *s, uint64_t index, uint64_t term, uint64_t obs_term);
bool check_applied(struct sim *s, member *m, const sval *v, uint64_t index, uint8_t type,
                   const raft_conf_change *cc);
void check_snapshot_vals(struct sim *s, member *m, const ssnap *sn);
void check_read_state(struct sim *s, member *m, const raft_read_state *rs);
void check_member(struct sim *s, member *m);
void check_final(struct sim *s, uint64_t leader);

/* ---- the simulation (run.c, sim.c) ---- */
typedef struct sim_params {
    int n_initial;
    int election_tick;
    int heartbeat_tick;
    bool pre_vote;
    bool check_quorum;
    size_t max_inflight;
    size_t max_size;
    uint64_t steps_per_tick;
    uint64_t fault_steps;
    unsigned drop_pm, dup_pm, delay_max;
    unsigned part_pm, heal_pm, crash_pm, torn_pm, restart_pm, reboot_pm;
    unsigned prop_pm, read_pm, conf_pm, transfer_pm, unreach_pm, snapfail_pm;
    unsigned flush_pm, bgsync_pm, skew_pm;
    unsigned doom_pm; /* a leader that just committed or was elected crashes next step */
    uint64_t snap_count;
    uint64_t snap_keep;
} sim_params;

typedef struct sim_stats {
    uint64_t steps, ticks, msgs, dropped, leaders, commits, snapshots, compactions;
    uint64_t crashes, torn, restarts, conf_changes, proposals, acked, reads;
} sim_stats;

typedef struct prop {
    uint64_t proposer; /* member id, 0 if the proposal was refused */
    uint32_t inc;
    uint64_t acked_at; /* index at which the proposer applied it (0: not acknowledged) */
} prop;

typedef struct readq {
    uint64_t issuer;
    uint64_t min_index; /* highest commit index known when issued */
} readq;

enum { PHASE_FAULT, PHASE_HEAL };

typedef struct sim {
    uint64_t seed;
    bool verbose;
    rng rng;
    sim_params p;
    uint64_t step;
    int phase;
    member m[SIM_MAX_IDS + 1]; /* by id; m[0] unused */
    uint64_t next_id;
    net net;
    hist h;
    prop *props; /* by uid */
    size_t props_cap;
    uint64_t next_uid;
    uint64_t final_uid; /* the liveness phase's proposal */
    readq *reads; /* by ctx */
    size_t reads_cap;
    uint64_t next_ctx;
    bool failed;
    uint64_t fail_step;
    char fail_msg[768];
    sim_stats st;
} sim;

/* actors.c: the clients, the operator and the faults of one step. */
void actors_clients(struct sim *s);
void actors_faults(struct sim *s);

/* Runs one seed; false on a failed invariant (s->fail_msg says which). */
bool sim_run(sim *s);
void sim_free(sim *s);
void sim_fail(sim *s, const char *invariant, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sim_trace(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
member *sim_member(sim *s, uint64_t id); /* NULL if not running (up or down) */
prop *sim_prop(sim *s, uint64_t uid);    /* grows the table */
readq *sim_read(sim *s, uint64_t ctx);

#endif
