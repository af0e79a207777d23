/*
 * test_plan.c: the membership planner (controller/plan.h).
 *
 * Part 1, a table: one observed state per rule and per crash point (after MemberAdd, after the
 * StatefulSet scale, after MemberRemove, before MemberPromote), quorum loss, a leader that must
 * leave, data-loss replacement, foreign members, and the expected next step.
 *
 * Part 2, a simulator: a model of the world (cetcd members, StatefulSet, pods, PVCs, the
 * bootstrap entries) in which each step has the effect the real one has, and time advances in
 * ticks (the StatefulSet controller creates and removes pods, a pod starts one tick after it
 * is created and reads its entry as mounted at creation, as kube-lite does, learners catch up
 * one tick after starting, leaders get elected, sometimes at random), and the planner sometimes
 * sees the previous pass's Kubernetes objects (informer lag). Walks 1->3->5->3->1,
 * 1->5, 5->1, 3->7, random size changes and data losses run with crashes injected at random
 * (before a step's effect, between the two writes of a two-write step, after it with no time
 * passing) and check at every step: at most one learner, never two members on one ordinal,
 * no removal while another change is half done, quorum never lost by a step, no deletion of
 * a member's entry or volume, and convergence within a bounded number of passes.
 * Randomized: prints its seed; PLAN_SEED=<n> replays (PLAN_RUNS=<n> runs per walk).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plan.h"

/* ===================================== part 1: table ======================================= */

#define ID(k) ((uint64_t)0x100 + (uint64_t)(k))
#define NEW_ID 0x999u

static void set_uid(char *dst, const char *fmt, int k)
{
    snprintf(dst, 64, fmt, k);
}

/* A healthy cluster of n members C-0..C-(n-1) with spec.size = size; C-0 leads. */
static void converged(struct plan_input *in, int size, int n)
{
    memset(in, 0, sizeof(*in));
    in->size = size;
    in->sts_replicas = n;
    in->members_known = true;
    for (int k = 0; k < n; k++) {
        struct plan_member *m = &in->members[in->n_members++];
        m->id = ID(k);
        m->ordinal = k;
        m->started = m->healthy = true;
        m->leader = k == 0;
        in->pods[k].exists = in->pods[k].ready = true;
        set_uid(in->pods[k].data_uid, "vol-%d", k);
        in->pvc_exists[k] = true;
        in->entries[k].present = in->entries[k].joined = true;
        in->entries[k].member_id = ID(k);
        set_uid(in->entries[k].data_uid, "vol-%d", k);
    }
}

static struct plan_member *member(struct plan_input *in, int k)
{
    for (size_t i = 0; i < in->n_members; i++)
        if (in->members[i].ordinal == k)
            return &in->members[i];
    return NULL;
}

static void drop_member(struct plan_input *in, int k)
{
    struct plan_member *m = member(in, k);
    size_t i = (size_t)(m - in->members);

    memmove(m, m + 1, (in->n_members - i - 1) * sizeof(*m));
    in->n_members--;
}

static struct plan_member *add_member(struct plan_input *in, int k, uint64_t id, bool learner)
{
    struct plan_member *m = &in->members[in->n_members++];

    memset(m, 0, sizeof(*m));
    m->id = id;
    m->ordinal = k;
    m->learner = learner;
    return m;
}

static void lead(struct plan_input *in, int k)
{
    for (size_t i = 0; i < in->n_members; i++)
        in->members[i].leader = in->members[i].ordinal == k;
}

static void learner_entry(struct plan_input *in, int k, uint64_t id)
{
    memset(&in->entries[k], 0, sizeof(in->entries[k]));
    in->entries[k].present = true;
    in->entries[k].member_id = id;
}

/* -- seeding -- */
static void c_seed_nothing(struct plan_input *in)
{
    memset(in, 0, sizeof(*in));
    in->size = 3;
    in->sts_replicas = -1;
}
static void c_seed_sts_without_entries(struct plan_input *in)
{
    c_seed_nothing(in);
    in->sts_replicas = 0;
}
static void c_seed_then_scale(struct plan_input *in)
{
    c_seed_sts_without_entries(in);
    in->entries[0].present = in->entries[0].state_new = true;
}
static void c_seed_pod_started_first(struct plan_input *in)
{
    c_seed_then_scale(in);
    in->sts_replicas = 1;
    in->pods[0].exists = true;
    strcpy(in->pods[0].data_uid, "vol-0");
    strcpy(in->entries[0].data_uid, "vol-0");
    in->pvc_exists[0] = true;
}
static void c_seed_pod_restarted(struct plan_input *in)
{
    c_seed_pod_started_first(in);
    in->entries[0].data_uid[0] = 0; /* DELETE_POD cleared the stamp */
}
static void c_sts_deleted(struct plan_input *in)
{
    converged(in, 3, 3);
    in->sts_replicas = -1;
    in->members_known = false;
}
static void c_no_entries_but_ready_pod(struct plan_input *in)
{
    converged(in, 3, 3);
    memset(in->entries, 0, sizeof(in->entries));
    in->members_known = false;
    in->n_members = 0;
}
static void c_no_entries_members_known(struct plan_input *in)
{
    converged(in, 3, 3);
    memset(in->entries, 0, sizeof(in->entries));
}
static void c_unknown_never_deletes(struct plan_input *in)
{
    converged(in, 3, 3);
    in->members_known = false;
    in->n_members = 0;
    in->pvc_exists[4] = true;
    in->entries[4].present = true;
    in->sts_replicas = 5;
}
/* -- steady state, scale up -- */
static void c_converged(struct plan_input *in)
{
    converged(in, 3, 3);
}
static void c_scale_up(struct plan_input *in)
{
    converged(in, 5, 3);
}
static void c_after_member_add(struct plan_input *in)
{
    c_scale_up(in);
    add_member(in, 3, NEW_ID, true);
}
static void c_after_entry(struct plan_input *in)
{
    c_after_member_add(in);
    learner_entry(in, 3, NEW_ID);
}
static void c_after_sts_scale(struct plan_input *in)
{
    c_after_entry(in);
    in->sts_replicas = 4;
    in->pods[3].exists = true;
    strcpy(in->pods[3].data_uid, "vol-3");
    in->pvc_exists[3] = true;
}
static void c_pvc_not_bound(struct plan_input *in)
{
    c_after_sts_scale(in);
    in->pods[3].data_uid[0] = 0; /* unknown volume: nothing to compare a stamp with */
}
static void c_learner_catching_up(struct plan_input *in)
{
    c_after_sts_scale(in);
    member(in, 3)->started = member(in, 3)->healthy = true;
    in->pods[3].ready = true;
}
static void c_before_promote(struct plan_input *in)
{
    c_learner_catching_up(in);
    member(in, 3)->caught_up = true;
}
static void c_after_promote(struct plan_input *in)
{
    c_before_promote(in);
    member(in, 3)->learner = false;
    member(in, 3)->caught_up = false;
}
static void c_promoted_pod_not_ready(struct plan_input *in)
{
    c_after_promote(in);
    in->pods[3].ready = false;
}
static void c_joined_without_uid(struct plan_input *in)
{
    converged(in, 3, 3);
    in->entries[2].data_uid[0] = 0;
}
static void c_second_learner_waits(struct plan_input *in)
{
    c_learner_catching_up(in);
}
static void c_scale_up_waits_for_health(struct plan_input *in)
{
    converged(in, 5, 3);
    member(in, 2)->healthy = false;
}
static void c_learner_abandoned(struct plan_input *in)
{
    c_before_promote(in);
    in->size = 3;
}
/* -- scale down -- */
static void c_scale_down(struct plan_input *in)
{
    converged(in, 3, 5);
}
static void c_leader_leaving(struct plan_input *in)
{
    converged(in, 3, 5);
    lead(in, 4);
}
static void c_leader_leaving_skips_unhealthy(struct plan_input *in)
{
    c_leader_leaving(in);
    member(in, 0)->healthy = false;
}
static void c_after_member_remove(struct plan_input *in)
{
    converged(in, 3, 5);
    drop_member(in, 4);
    in->pods[4].ready = false;
}
static void c_after_entry_delete(struct plan_input *in)
{
    c_after_member_remove(in);
    in->entries[4].present = false;
}
static void c_pod_terminating(struct plan_input *in)
{
    c_after_entry_delete(in);
    in->sts_replicas = 4;
    in->pods[4].terminating = true;
}
static void c_pvc_left(struct plan_input *in)
{
    c_pod_terminating(in);
    memset(&in->pods[4], 0, sizeof(in->pods[4]));
    strcpy(in->pods[4].data_uid, "vol-4");
}
static void c_sts_raised_by_hand(struct plan_input *in)
{
    converged(in, 3, 3);
    in->sts_replicas = 5;
    in->pods[3].exists = in->pods[4].exists = true;
}
static void c_size_raised_mid_scale_down(struct plan_input *in)
{
    c_after_member_remove(in);
    in->size = 5;
}
static void c_stale_volume_between_members(struct plan_input *in)
{
    converged(in, 5, 4);
    drop_member(in, 2);
    in->pods[2].ready = false;
}
static void c_gap_without_entry(struct plan_input *in)
{
    c_stale_volume_between_members(in);
    in->entries[2].present = false;
}
/* -- quorum -- */
static void c_quorum_lost(struct plan_input *in)
{
    converged(in, 3, 3);
    member(in, 1)->healthy = member(in, 2)->healthy = false;
}
static void c_quorum_lost_pods_missing(struct plan_input *in)
{
    c_quorum_lost(in);
    in->sts_replicas = 1;
    in->pods[1].exists = in->pods[2].exists = false;
}
/* -- data loss -- */
static void c_data_lost(struct plan_input *in)
{
    converged(in, 3, 3);
    strcpy(in->pods[1].data_uid, "vol-1b");
    in->pods[1].ready = false;
    member(in, 1)->healthy = false;
}
static void c_entry_of_other_member(struct plan_input *in)
{
    converged(in, 3, 3);
    in->entries[2].member_id = 0x555;
    strcpy(in->entries[2].data_uid, "vol-x");
}
static void c_data_lost_leader_flag(struct plan_input *in)
{
    c_data_lost(in);
    lead(in, 1);
}
static void c_data_lost_but_healthy(struct plan_input *in)
{
    converged(in, 3, 3);
    strcpy(in->pods[1].data_uid, "vol-1b");
    member(in, 2)->healthy = false;
}
static void c_after_lost_member_removed(struct plan_input *in)
{
    c_data_lost(in);
    drop_member(in, 1);
}
static void c_replacement_added(struct plan_input *in)
{
    c_after_lost_member_removed(in);
    add_member(in, 1, NEW_ID, true);
}
static void c_replacement_entry_stamped(struct plan_input *in)
{
    c_replacement_added(in);
    learner_entry(in, 1, NEW_ID);
    strcpy(in->entries[1].data_uid, "vol-1b");
}
static void c_replacement_pod_restarted(struct plan_input *in)
{
    c_replacement_entry_stamped(in);
    in->entries[1].data_uid[0] = 0;
}
static void c_replacement_pod_terminating(struct plan_input *in)
{
    c_replacement_entry_stamped(in);
    in->pods[1].terminating = true;
}
static void c_replacement_not_wanted(struct plan_input *in)
{
    c_after_lost_member_removed(in);
    in->size = 1;
    lead(in, 0);
}
/* -- foreign and invalid -- */
static void c_foreign_member(struct plan_input *in)
{
    converged(in, 5, 3);
    struct plan_member *f = add_member(in, -1, 0x777, false);
    f->started = f->healthy = true;
}
static void c_only_foreign(struct plan_input *in)
{
    memset(in, 0, sizeof(*in));
    in->size = 3;
    in->sts_replicas = 1;
    in->members_known = true;
    add_member(in, -1, 0x777, false)->healthy = true;
}
static void c_two_members_one_ordinal(struct plan_input *in)
{
    converged(in, 3, 3);
    add_member(in, 2, NEW_ID, true);
}
static void c_bad_size(struct plan_input *in)
{
    converged(in, 3, 3);
    in->size = 0;
}

struct tcase {
    const char *name;
    void (*build)(struct plan_input *);
    enum plan_action want;
    int ordinal;        /* checked unless -2 */
    int replicas;       /* checked for SCALE_STS */
    uint64_t member_id; /* checked unless 0 */
    uint64_t target_id; /* checked unless 0 */
};

static const struct tcase cases[] = {
    {"seed: nothing yet", c_seed_nothing, PLAN_SEED, 0, 0, 0, 0},
    {"seed: StatefulSet without entries", c_seed_sts_without_entries, PLAN_SEED, 0, 0, 0, 0},
    {"seed: entry 0 written, scale to 1", c_seed_then_scale, PLAN_SCALE_STS, -2, 1, 0, 0},
    {"seed: pod 0 started before entry 0", c_seed_pod_started_first, PLAN_DELETE_POD, 0, 0, 0, 0},
    {"seed: pod 0 restarted once, no loop", c_seed_pod_restarted, PLAN_WAIT, -2, 0, 0, 0},
    {"StatefulSet deleted: bring it back", c_sts_deleted, PLAN_SEED, 0, 0, 0, 0},
    {"no entries but a ready pod: no seed", c_no_entries_but_ready_pod, PLAN_WAIT, -2, 0, 0, 0},
    {"entries lost, members known: rebuild", c_no_entries_members_known, PLAN_MARK_JOINED, 0, 0, ID(0), 0},
    {"members unknown: never delete", c_unknown_never_deletes, PLAN_WAIT, -2, 0, 0, 0},
    {"converged", c_converged, PLAN_NONE, -2, 0, 0, 0},
    {"scale up: add learner", c_scale_up, PLAN_ADD_LEARNER, 3, 0, 0, 0},
    {"crash after member add: write entry", c_after_member_add, PLAN_WRITE_ENTRY, 3, 0, NEW_ID, 0},
    {"entry written: scale StatefulSet", c_after_entry, PLAN_SCALE_STS, -2, 4, 0, 0},
    {"crash after StatefulSet scale: wait", c_after_sts_scale, PLAN_WAIT, -2, 0, 0, 0},
    {"volume unknown: no restart", c_pvc_not_bound, PLAN_WAIT, -2, 0, 0, 0},
    {"learner catching up: wait", c_learner_catching_up, PLAN_WAIT, -2, 0, 0, 0},
    {"crash before promote: promote", c_before_promote, PLAN_PROMOTE, 3, 0, NEW_ID, 0},
    {"crash after promote: mark joined", c_after_promote, PLAN_MARK_JOINED, 3, 0, NEW_ID, 0},
    {"promoted, pod not ready: no mark, no add", c_promoted_pod_not_ready, PLAN_WAIT, -2, 0, 0, 0},
    {"joined entry without uid: record it", c_joined_without_uid, PLAN_MARK_JOINED, 2, 0, ID(2), 0},
    {"one learner at a time", c_second_learner_waits, PLAN_WAIT, -2, 0, 0, 0},
    {"scale up waits for health", c_scale_up_waits_for_health, PLAN_WAIT, -2, 0, 0, 0},
    {"size lowered under a learner: remove it", c_learner_abandoned, PLAN_REMOVE_MEMBER, 3, 0, NEW_ID, 0},
    {"scale down: remove top", c_scale_down, PLAN_REMOVE_MEMBER, 4, 0, ID(4), 0},
    {"leader leaving: move leader", c_leader_leaving, PLAN_MOVE_LEADER, 4, 0, ID(4), ID(0)},
    {"leader leaving: healthy target", c_leader_leaving_skips_unhealthy, PLAN_MOVE_LEADER, 4, 0, ID(4), ID(1)},
    {"crash after member remove: delete entry", c_after_member_remove, PLAN_DELETE_ENTRY, 4, 0, 0, 0},
    {"entry deleted: scale StatefulSet down", c_after_entry_delete, PLAN_SCALE_STS, -2, 4, 0, 0},
    {"crash after scale down: pod terminating", c_pod_terminating, PLAN_WAIT, -2, 0, 0, 0},
    {"pod gone: delete PVC", c_pvc_left, PLAN_DELETE_PVC, 4, 0, 0, 0},
    {"StatefulSet raised by hand: scale back", c_sts_raised_by_hand, PLAN_SCALE_STS, -2, 3, 0, 0},
    {"size raised mid scale-down: clean first", c_size_raised_mid_scale_down, PLAN_DELETE_ENTRY, 4, 0, 0, 0},
    {"stale volume between members: manual", c_stale_volume_between_members, PLAN_WAIT, -2, 0, 0, 0},
    {"gap without entry: add learner", c_gap_without_entry, PLAN_ADD_LEARNER, 2, 0, 0, 0},
    {"quorum lost", c_quorum_lost, PLAN_QUORUM_LOST, -2, 0, 0, 0},
    {"quorum lost, pods missing: restore", c_quorum_lost_pods_missing, PLAN_SCALE_STS, -2, 3, 0, 0},
    {"data lost: remove member", c_data_lost, PLAN_REMOVE_MEMBER, 1, 0, ID(1), 0},
    {"entry of another member id: re-record", c_entry_of_other_member, PLAN_MARK_JOINED, 2, 0, ID(2), 0},
    {"data lost, flagged leader: move first", c_data_lost_leader_flag, PLAN_MOVE_LEADER, 1, 0, ID(1), ID(0)},
    {"data lost, removal would lose quorum", c_data_lost_but_healthy, PLAN_WAIT, -2, 0, 0, 0},
    {"replacement: add learner", c_after_lost_member_removed, PLAN_ADD_LEARNER, 1, 0, 0, 0},
    {"replacement: write entry", c_replacement_added, PLAN_WRITE_ENTRY, 1, 0, NEW_ID, 0},
    {"replacement: restart stale pod", c_replacement_entry_stamped, PLAN_DELETE_POD, 1, 0, 0, 0},
    {"replacement: pod restarted, no loop", c_replacement_pod_restarted, PLAN_WAIT, -2, 0, 0, 0},
    {"replacement: pod terminating, wait", c_replacement_pod_terminating, PLAN_WAIT, -2, 0, 0, 0},
    {"replacement not wanted: delete entry", c_replacement_not_wanted, PLAN_DELETE_ENTRY, 1, 0, 0, 0},
    {"foreign member: wait, no change", c_foreign_member, PLAN_WAIT, -2, 0, 0, 0},
    {"only foreign members: wait", c_only_foreign, PLAN_WAIT, -2, 0, 0, 0},
    {"two members on one ordinal: wait", c_two_members_one_ordinal, PLAN_WAIT, -2, 0, 0, 0},
    {"size out of range: wait", c_bad_size, PLAN_WAIT, -2, 0, 0, 0},
};

static void test_table(void **state)
{
    int bad = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct tcase *c = &cases[i];
        struct plan_input in;
        struct plan_step st;

        c->build(&in);
        memset(&st, 0xa5, sizeof(st));
        plan_next(&in, &st);
        bool ok = st.action == c->want && (c->ordinal == -2 || st.ordinal == c->ordinal) &&
                  (c->want != PLAN_SCALE_STS || st.replicas == c->replicas) &&
                  (!c->member_id || st.member_id == c->member_id) &&
                  (!c->target_id || st.target_id == c->target_id) && st.reason && st.message;
        if (!ok) {
            bad++;
            print_error("case \"%s\": got %s ordinal %d replicas %d member %" PRIx64
                        " target %" PRIx64 " (%s: %s); want %s\n", c->name,
                        plan_action_name(st.action), st.ordinal, st.replicas, st.member_id,
                        st.target_id, st.reason ? st.reason : "-", st.message ? st.message : "-",
                        plan_action_name(c->want));
        }
    }
    assert_int_equal(bad, 0);
}

/* The planner is a function of its input: same input, same step; input untouched. */
static void test_pure(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct plan_input in, copy;
        struct plan_step a, b;

        cases[i].build(&in);
        memcpy(&copy, &in, sizeof(in));
        plan_next(&in, &a);
        plan_next(&in, &b);
        assert_memory_equal(&in, &copy, sizeof(in));
        assert_int_equal(a.action, b.action);
        assert_int_equal(a.ordinal, b.ordinal);
        assert_true(a.member_id == b.member_id && a.target_id == b.target_id);
    }
}

static void test_action_names(void **state)
{
    (void)state;
    assert_string_equal(plan_action_name(PLAN_NONE), "none");
    assert_string_equal(plan_action_name(PLAN_DELETE_POD), "delete-pod");
    assert_string_equal(plan_action_name((enum plan_action)99), "unknown");
    for (int a = PLAN_NONE; a <= PLAN_DELETE_POD; a++)
        assert_string_not_equal(plan_action_name((enum plan_action)a), "unknown");
}

/* =================================== part 2: simulator ===================================== */

struct rng {
    uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

static int rnd_int(struct rng *r, int n)
{
    return (int)(rnd(r) % (uint64_t)n);
}

struct smember {
    uint64_t id;
    int ord;
    bool learner, started, caught_up;
    int start_tick;
};

struct spod {
    bool exists, terminating, running, ready;
    int age;
    uint64_t runs;             /* member id the process runs as */
    struct plan_entry mounted; /* the entry as it was when the pod was created */
};

struct spvc {
    bool exists;
    char uid[64];
    uint64_t wal; /* member id whose WAL is on it; 0 = empty */
};

#define TRACE 48

struct sim {
    struct rng rng;
    int size, sts, tick;
    struct smember m[PLAN_MAX * 2];
    int nm;
    struct spod pod[PLAN_MAX];
    struct spvc pvc[PLAN_MAX];
    struct plan_entry entry[PLAN_MAX];
    uint64_t leader, next_id;
    int next_uid;
    char violation[256];
    char trace[TRACE][128];
    int ntrace;
    long actions[PLAN_DELETE_POD + 1]; /* steps planned, crashed ones included */
    long removed, pods_deleted;        /* removals and pod deletions that took effect */
    struct plan_input last;            /* the previous pass's view (informer lag) */
    bool have_last;
    int max_passes;
};

static void violate(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void violate(struct sim *s, const char *fmt, ...)
{
    va_list ap;

    if (s->violation[0])
        return;
    va_start(ap, fmt);
    vsnprintf(s->violation, sizeof(s->violation), fmt, ap);
    va_end(ap);
}

static int find_id(const struct sim *s, uint64_t id)
{
    for (int i = 0; i < s->nm; i++)
        if (s->m[i].id == id)
            return i;
    return -1;
}

static int find_ord(const struct sim *s, int k)
{
    for (int i = 0; i < s->nm; i++)
        if (s->m[i].ord == k)
            return i;
    return -1;
}

static bool running(const struct sim *s, uint64_t id)
{
    for (int k = 0; k < PLAN_MAX; k++)
        if (s->pod[k].exists && s->pod[k].running && s->pod[k].runs == id)
            return true;
    return false;
}

static int count_voters(const struct sim *s, bool only_running)
{
    int n = 0;

    for (int i = 0; i < s->nm; i++)
        if (!s->m[i].learner && (!only_running || running(s, s->m[i].id)))
            n++;
    return n;
}

static bool has_quorum(const struct sim *s)
{
    int v = count_voters(s, false);

    return v > 0 && count_voters(s, true) >= v / 2 + 1;
}

static int count_learners(const struct sim *s)
{
    int n = 0;

    for (int i = 0; i < s->nm; i++)
        n += s->m[i].learner;
    return n;
}

static void stop_process(struct sim *s, int k)
{
    s->pod[k].running = s->pod[k].ready = false;
    s->pod[k].runs = 0;
}

static void run_as(struct sim *s, int k, int i)
{
    s->pod[k].running = true;
    s->pod[k].runs = s->m[i].id;
    if (!s->m[i].started) {
        s->m[i].started = true;
        s->m[i].start_tick = s->tick;
    }
}

/* cetcd starting in pod k: from its WAL, else from the entry mounted when the pod was made. */
static void start_process(struct sim *s, int k)
{
    struct spvc *v = &s->pvc[k];
    const struct plan_entry *e = &s->pod[k].mounted;
    int i;

    if (!v->exists)
        return;
    if (v->wal) {
        i = find_id(s, v->wal);
        if (i >= 0)
            run_as(s, k, i);
        return; /* a removed member's WAL: it exits */
    }
    if (!e->present || e->joined)
        return; /* --bootstrap-dir refuses */
    if (e->state_new) {
        if (s->nm > 0) {
            violate(s, "pod %d would bootstrap a second cluster", k);
            return;
        }
        s->m[s->nm++] = (struct smember){.id = s->next_id++, .ord = k};
        v->wal = s->m[s->nm - 1].id;
        run_as(s, k, s->nm - 1);
        return;
    }
    i = find_ord(s, k);
    if (i < 0)
        return; /* not a member: join refused */
    if (!s->m[i].learner)
        violate(s, "voter %d restarted with an empty data directory", k);
    v->wal = s->m[i].id;
    run_as(s, k, i);
}

static void create_pod(struct sim *s, int k)
{
    memset(&s->pod[k], 0, sizeof(s->pod[k]));
    s->pod[k].exists = true;
    s->pod[k].mounted = s->entry[k];
    if (!s->pvc[k].exists) {
        s->pvc[k].exists = true;
        snprintf(s->pvc[k].uid, sizeof(s->pvc[k].uid), "uid-%d", s->next_uid++);
        s->pvc[k].wal = 0;
    }
}

static void elect(struct sim *s)
{
    int cand[PLAN_MAX * 2], n = 0;

    for (int i = 0; i < s->nm; i++)
        if (!s->m[i].learner && running(s, s->m[i].id))
            cand[n++] = i;
    s->leader = n ? s->m[cand[rnd_int(&s->rng, n)]].id : 0;
}

/* One unit of time in the world. */
static void tick(struct sim *s)
{
    s->tick++;
    for (int k = 0; k < PLAN_MAX; k++)
        if (s->pod[k].exists && s->pod[k].terminating)
            memset(&s->pod[k], 0, sizeof(s->pod[k]));
    for (int k = 0; k < PLAN_MAX; k++) {
        if (k < s->sts && !s->pod[k].exists)
            create_pod(s, k);
        else if (k >= s->sts && s->pod[k].exists && !s->pod[k].terminating) {
            stop_process(s, k);
            s->pod[k].terminating = true;
        }
    }
    for (int k = 0; k < PLAN_MAX; k++) {
        struct spod *p = &s->pod[k];
        if (p->exists && !p->terminating && !p->running && p->age >= 1)
            start_process(s, k);
        if (p->exists)
            p->age++;
    }
    for (int i = 0; i < s->nm; i++)
        if (s->m[i].learner && running(s, s->m[i].id) && s->m[i].start_tick < s->tick)
            s->m[i].caught_up = true;
    if (!has_quorum(s))
        s->leader = 0;
    else if (!s->leader || find_id(s, s->leader) < 0 || !running(s, s->leader) ||
             rnd_int(&s->rng, 4) == 0)
        elect(s);
    for (int k = 0; k < PLAN_MAX; k++)
        s->pod[k].ready = s->pod[k].running && s->leader;
}

/* What the reconciler's observe step would see. */
static void observe(const struct sim *s, struct plan_input *in)
{
    memset(in, 0, sizeof(*in));
    in->size = s->size;
    in->sts_replicas = s->sts;
    for (int k = 0; k < PLAN_MAX; k++)
        in->members_known |= s->pod[k].running;
    for (int i = 0; in->members_known && i < s->nm; i++) {
        struct plan_member *m = &in->members[in->n_members++];
        bool run = running(s, s->m[i].id);
        m->id = s->m[i].id;
        m->ordinal = s->m[i].ord;
        m->started = s->m[i].started;
        m->learner = s->m[i].learner;
        m->healthy = run && s->leader;
        m->leader = s->m[i].id == s->leader;
        m->caught_up = s->m[i].learner && s->m[i].caught_up && run;
    }
    for (int k = 0; k < PLAN_MAX; k++) {
        in->pods[k].exists = s->pod[k].exists;
        in->pods[k].ready = s->pod[k].ready;
        in->pods[k].terminating = s->pod[k].terminating;
        if (s->pvc[k].exists)
            memcpy(in->pods[k].data_uid, s->pvc[k].uid, sizeof(in->pods[k].data_uid));
        in->entries[k] = s->entry[k];
        in->pvc_exists[k] = s->pvc[k].exists;
    }
}

/* The stamp WRITE_ENTRY and SEED record: the volume as observed. */
static void stamp(const struct plan_input *in, int k, char *dst)
{
    memcpy(dst, in->pods[k].data_uid, 64);
}

enum crash { C_NONE, C_BEFORE, C_MID, C_AFTER };

/* Safety checks on a step before it takes effect. */
static void check_step(struct sim *s, const struct plan_input *in, const struct plan_step *st)
{
    int k = st->ordinal, i = k >= 0 && k < PLAN_MAX ? find_ord(s, k) : -1;

    switch (st->action) {
    case PLAN_ADD_LEARNER:
        if (count_learners(s))
            violate(s, "a second learner added");
        if (i >= 0)
            violate(s, "learner added on ordinal %d which has a member", k);
        break;
    case PLAN_REMOVE_MEMBER: {
        int j = find_id(s, st->member_id);
        if (j < 0)
            break;
        if (st->member_id == s->leader)
            violate(s, "the leader removed");
        if (count_learners(s) - s->m[j].learner > 0)
            violate(s, "member removed while a learner is being added");
        for (int o = 0; o < PLAN_MAX; o++)
            if (s->entry[o].present && find_ord(s, o) < 0)
                violate(s, "member removed while entry %d awaits its member", o);
        for (int o = s->sts > 0 ? s->sts : 0; o < PLAN_MAX; o++)
            if (s->pvc[o].exists && o != s->m[j].ord)
                violate(s, "member removed while PVC %d awaits deletion", o);
        if (!s->m[j].learner) {
            int v = count_voters(s, false) - 1;
            int r = count_voters(s, true) - running(s, st->member_id);
            if (has_quorum(s) && !(v > 0 && r >= v / 2 + 1))
                violate(s, "removal of %d would lose quorum", s->m[j].ord);
        }
        break;
    }
    case PLAN_PROMOTE: {
        int j = find_id(s, st->member_id);
        if (j < 0 || !s->m[j].learner || !s->m[j].caught_up || !running(s, st->member_id))
            violate(s, "promote of a member that is not a caught-up running learner");
        break;
    }
    case PLAN_WRITE_ENTRY:
        if (i < 0 || !s->m[i].learner)
            violate(s, "entry %d rewritten as not joined for a non-learner", k);
        break;
    case PLAN_MARK_JOINED:
        if (i < 0 || s->m[i].learner || !running(s, s->m[i].id))
            violate(s, "entry %d marked joined for a member not running as a voter", k);
        break;
    case PLAN_DELETE_ENTRY:
        if (i >= 0)
            violate(s, "entry %d of a member deleted", k);
        break;
    case PLAN_DELETE_PVC:
        if (i >= 0 || s->pod[k].exists || (s->pvc[k].wal && find_id(s, s->pvc[k].wal) >= 0))
            violate(s, "PVC %d deleted while its pod or member lives", k);
        break;
    case PLAN_SCALE_STS:
        for (int j = 0; j < s->nm; j++)
            if (!s->m[j].learner && s->m[j].ord >= st->replicas)
                violate(s, "StatefulSet scaled to %d under voter %d", st->replicas, s->m[j].ord);
        break;
    case PLAN_SEED: /* execute writes entry 0 only if absent in the view */
        if (s->entry[0].present && s->entry[0].joined && !in->entries[0].present)
            violate(s, "seed would overwrite the joined entry 0");
        break;
    default:
        break;
    }
}

/* The reconciler carrying out st (plan.c's "What the reconciler must do"). */
static void execute(struct sim *s, const struct plan_input *in, const struct plan_step *st,
                    enum crash c)
{
    int k = st->ordinal, i;
    struct plan_entry *e = k >= 0 && k < PLAN_MAX ? &s->entry[k] : NULL;

    if (c == C_BEFORE)
        return;
    switch (st->action) {
    case PLAN_SEED:
        if (!in->entries[0].present) { /* as the reconciler does: from its view */
            s->entry[0] = (struct plan_entry){.present = true, .state_new = true};
            stamp(in, 0, s->entry[0].data_uid);
        }
        if (c == C_MID || s->sts >= 0)
            break;
        s->sts = 1;
        for (int o = 0; o < PLAN_MAX; o++)
            if (s->entry[o].present)
                s->sts = o + 1;
        break;
    case PLAN_ADD_LEARNER:
        if (find_ord(s, k) < 0) /* cetcd: "Peer URLs already exists" otherwise */
            s->m[s->nm++] = (struct smember){.id = s->next_id++, .ord = k, .learner = true};
        break;
    case PLAN_WRITE_ENTRY:
        *e = (struct plan_entry){.present = true, .member_id = st->member_id};
        stamp(in, k, e->data_uid);
        break;
    case PLAN_SCALE_STS:
        s->sts = st->replicas;
        break;
    case PLAN_PROMOTE:
        i = find_id(s, st->member_id);
        if (i >= 0 && s->m[i].learner && s->m[i].caught_up)
            s->m[i].learner = false;
        break;
    case PLAN_MARK_JOINED:
        i = find_ord(s, k);
        *e = (struct plan_entry){.present = true, .joined = true, .member_id = s->m[i].id};
        memcpy(e->data_uid, in->pods[k].data_uid, sizeof(e->data_uid));
        break;
    case PLAN_MOVE_LEADER:
        i = find_id(s, st->target_id);
        if (s->leader == st->member_id && i >= 0 && !s->m[i].learner && running(s, st->target_id))
            s->leader = st->target_id;
        break;
    case PLAN_REMOVE_MEMBER:
        i = find_id(s, st->member_id);
        if (i < 0)
            break;
        for (int o = 0; o < PLAN_MAX; o++)
            if (s->pod[o].runs == st->member_id)
                stop_process(s, o);
        if (s->leader == st->member_id)
            s->leader = 0;
        s->m[i] = s->m[--s->nm];
        s->removed++;
        break;
    case PLAN_DELETE_ENTRY:
        memset(e, 0, sizeof(*e));
        break;
    case PLAN_DELETE_PVC:
        memset(&s->pvc[k], 0, sizeof(s->pvc[k]));
        break;
    case PLAN_DELETE_POD:
        if (s->pod[k].exists) {
            stop_process(s, k);
            s->pod[k].terminating = true;
            s->pods_deleted++;
        }
        if (c != C_MID)
            e->data_uid[0] = 0;
        break;
    default:
        break;
    }
}

static bool at_goal(const struct sim *s)
{
    if (s->sts != s->size || s->nm != s->size || count_learners(s))
        return false;
    for (int k = 0; k < PLAN_MAX; k++) {
        int i = find_ord(s, k);
        const struct plan_entry *e = &s->entry[k];
        if (k >= s->size) {
            if (i >= 0 || e->present || s->pod[k].exists || s->pvc[k].exists)
                return false;
            continue;
        }
        if (i < 0 || !s->m[i].started || !s->pod[k].ready || !e->present || !e->joined ||
            e->member_id != s->m[i].id || strcmp(e->data_uid, s->pvc[k].uid))
            return false;
    }
    return true;
}

static void trace(struct sim *s, const struct plan_step *st, enum crash c)
{
    static const char *const cn[] = {"", " [crash before]", " [crash mid]", " [crash after]"};

    snprintf(s->trace[s->ntrace++ % TRACE], sizeof(s->trace[0]),
             "t%d size %d sts %d: %s ord %d repl %d%s (%s)", s->tick, s->size, s->sts,
             plan_action_name(st->action), st->ordinal, st->replicas, cn[c], st->message);
}

static void dump_trace(const struct sim *s)
{
    int from = s->ntrace > TRACE ? s->ntrace - TRACE : 0;

    for (int n = from; n < s->ntrace; n++)
        print_error("  %s\n", s->trace[n % TRACE]);
}

static enum crash pick_crash(struct sim *s, enum plan_action a)
{
    int r = rnd_int(&s->rng, 100);

    if (a == PLAN_NONE || a == PLAN_WAIT || a == PLAN_QUORUM_LOST)
        return C_NONE;
    return r < 8 ? C_BEFORE : r < 14 ? C_MID : r < 22 ? C_AFTER : C_NONE;
}

/* Informer caches lag: sometimes the Kubernetes half of the view is the previous pass's (the
 * member list comes from cetcd and is always current). */
static void lag(struct sim *s, struct plan_input *in)
{
    struct plan_input fresh = *in;

    if (s->have_last && rnd_int(&s->rng, 8) == 0) {
        in->sts_replicas = s->last.sts_replicas;
        memcpy(in->pods, s->last.pods, sizeof(in->pods));
        memcpy(in->entries, s->last.entries, sizeof(in->entries));
        memcpy(in->pvc_exists, s->last.pvc_exists, sizeof(in->pvc_exists));
    }
    s->last = fresh;
    s->have_last = true;
}

/* One reconcile pass plus the time that passes after it. Returns the step taken. */
static enum plan_action pass(struct sim *s)
{
    struct plan_input in;
    struct plan_step st;
    enum crash c;
    bool q;

    observe(s, &in);
    lag(s, &in);
    plan_next(&in, &st);
    c = pick_crash(s, st.action);
    trace(s, &st, c);
    s->actions[st.action]++;
    if (c != C_BEFORE)
        check_step(s, &in, &st);
    q = has_quorum(s);
    execute(s, &in, &st, c);
    if (q && !has_quorum(s))
        violate(s, "quorum lost by %s", plan_action_name(st.action));
    if (count_learners(s) > 1)
        violate(s, "two learners");
    for (int i = 0; i < s->nm; i++)
        if (s->m[i].ord >= 0 && find_ord(s, s->m[i].ord) != i)
            violate(s, "two members on ordinal %d", s->m[i].ord);
    /* a crashed operator restarts at once (no time passes); otherwise a tick, sometimes two */
    if (c == C_NONE || rnd_int(&s->rng, 2))
        tick(s);
    if (rnd_int(&s->rng, 8) == 0)
        tick(s);
    return st.action;
}

/* Runs passes until the planner says NONE at the goal; false on a violation or no progress. */
static bool converge(struct sim *s, int budget)
{
    for (int n = 0; n < budget; n++) {
        if (pass(s) == PLAN_NONE && at_goal(s)) {
            if (n > s->max_passes)
                s->max_passes = n;
            return true;
        }
        if (s->violation[0])
            return false;
    }
    violate(s, "no convergence to size %d within %d passes", s->size, budget);
    return false;
}

static void sim_init(struct sim *s, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->rng.s = seed * 0x9E3779B97F4A7C15ull + 1;
    s->sts = -1;
    s->next_id = 0x1000;
}

static int budget_for(int from, int to)
{
    int d = from > to ? from - to : to - from;

    return 60 + 40 * (d + 1);
}

static uint64_t base_seed(void)
{
    const char *e = getenv("PLAN_SEED");
    static uint64_t seed;

    if (!seed) {
        seed = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL);
        if (!seed)
            seed = 1;
        print_message("test_plan: seed %" PRIu64 " (replay with PLAN_SEED=%" PRIu64 ")\n", seed,
                      seed);
    }
    return seed;
}

static int runs(int dflt)
{
    const char *e = getenv("PLAN_RUNS");

    return e ? atoi(e) : dflt;
}

static void fail_run(struct sim *s, uint64_t seed, const char *what)
{
    print_error("%s: %s (run seed %" PRIu64 "; PLAN_SEED=%" PRIu64 " PLAN_RUNS=1 replays it)\n",
                what, s->violation, seed, seed);
    dump_trace(s);
    fail();
}

/* Walks through sizes[0..n): from nothing to sizes[0], then each next size. */
static void walk(const int *sizes, int n, const char *name, long totals[])
{
    uint64_t seed0 = base_seed();
    int worst = 0;

    for (int r = 0; r < runs(150); r++) {
        uint64_t seed = seed0 + (uint64_t)r;
        struct sim s;

        sim_init(&s, seed);
        for (int p = 0; p < n; p++) {
            s.size = sizes[p];
            if (!converge(&s, budget_for(p ? sizes[p - 1] : 0, sizes[p])))
                fail_run(&s, seed, name);
        }
        for (int a = 0; a <= PLAN_DELETE_POD; a++)
            totals[a] += s.actions[a];
        worst = s.max_passes > worst ? s.max_passes : worst;
    }
    print_message("walk %s: at most %d passes per size change\n", name, worst);
}

static void test_walks(void **state)
{
    static const int w1[] = {1, 3, 5, 3, 1}, w2[] = {1, 5}, w3[] = {5, 1}, w4[] = {3, 7};
    long totals[PLAN_DELETE_POD + 1] = {0};

    (void)state;
    walk(w1, 5, "1->3->5->3->1", totals);
    walk(w2, 2, "1->5", totals);
    walk(w3, 2, "5->1", totals);
    walk(w4, 2, "3->7", totals);
    /* the walks went through every step of growing and shrinking, crashes included */
    assert_true(totals[PLAN_SEED] > 0 && totals[PLAN_ADD_LEARNER] > 0 &&
                totals[PLAN_WRITE_ENTRY] > 0 && totals[PLAN_PROMOTE] > 0 &&
                totals[PLAN_MARK_JOINED] > 0 && totals[PLAN_MOVE_LEADER] > 0 &&
                totals[PLAN_REMOVE_MEMBER] > 0 && totals[PLAN_DELETE_ENTRY] > 0 &&
                totals[PLAN_DELETE_PVC] > 0 && totals[PLAN_SCALE_STS] > 0);
}

/* spec.size changes at random moments, mid-change included; then the last size must hold. */
static void test_random_size_changes(void **state)
{
    uint64_t seed0 = base_seed();

    (void)state;
    for (int r = 0; r < runs(150); r++) {
        uint64_t seed = seed0 + 1000000 + (uint64_t)r;
        struct sim s;

        sim_init(&s, seed);
        s.size = 1 + rnd_int(&s.rng, 7);
        for (int change = 0; change < 6; change++) {
            int steps = rnd_int(&s.rng, 30);
            for (int n = 0; n < steps && !s.violation[0]; n++)
                pass(&s);
            if (s.violation[0])
                fail_run(&s, seed, "random sizes");
            s.size = 1 + rnd_int(&s.rng, 7);
        }
        if (!converge(&s, budget_for(0, 7) * 2))
            fail_run(&s, seed, "random sizes");
    }
}

/* Wipes the volume of a random joined member (a new PVC) and restarts its pod. */
static void lose_data(struct sim *s)
{
    int k = rnd_int(&s->rng, s->size), i = find_ord(s, k);

    assert_true(i >= 0);
    s->pvc[k].wal = 0;
    snprintf(s->pvc[k].uid, sizeof(s->pvc[k].uid), "uid-%d", s->next_uid++);
    stop_process(s, k);
    s->pod[k].terminating = true;
}

static void test_data_loss(void **state)
{
    uint64_t seed0 = base_seed();
    long replaced = 0, restarts = 0;

    (void)state;
    for (int r = 0; r < runs(150); r++) {
        uint64_t seed = seed0 + 2000000 + (uint64_t)r;
        struct sim s;

        sim_init(&s, seed);
        s.size = 3 + 2 * rnd_int(&s.rng, 2);
        if (!converge(&s, budget_for(0, s.size)))
            fail_run(&s, seed, "data loss: initial");
        for (int loss = 0; loss < 3; loss++) {
            long removed = s.removed;
            lose_data(&s);
            if (!converge(&s, budget_for(0, 2)))
                fail_run(&s, seed, "data loss");
            replaced += s.removed - removed;
        }
        restarts += s.pods_deleted;
    }
    /* every loss was handled by remove + re-add, and the stale pods were restarted */
    assert_int_equal(replaced, 3L * runs(150));
    assert_true(restarts >= replaced);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_pure),
        cmocka_unit_test(test_action_names),
        cmocka_unit_test(test_walks),
        cmocka_unit_test(test_random_size_changes),
        cmocka_unit_test(test_data_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
