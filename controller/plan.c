/*
 * plan.c: the membership planner (plan.h). Pure: no I/O, no clock, no memory between calls.
 *
 * Vocabulary. "Member k" is the cetcd member whose peer URL is pod C-k's; "entry k" the
 * bootstrap entry of C-k (common/bootstrap.h); "volume k" the data identity pods[k].data_uid
 * (PVC data-C-k's uid, or the pod's uid with emptyDir; "" when unknown). A voter is a
 * non-learner member, started or not, ours or foreign; a member is healthy when its Status
 * answered and named a leader. quorum(v, h) means h >= v/2 + 1.
 *   - entry k is current for learner m: present, existing, not joined, member-id == m's id.
 *   - entry k is stamped: not joined and its data-uid equals volume k while pod k exists. A
 *     not-joined entry records the volume that existed when it was written; a pod on that
 *     volume may have started before the entry existed and not have read it (Kubernetes
 *     refreshes ConfigMap volumes late, kube-lite never), so it is restarted once. A pod
 *     made later gets a new volume in a scale-up (its PVC did not exist), so no stamp matches.
 *   - volume k was replaced: entry k joined, its data-uid and volume k both known and
 *     different. The member that ran there recorded another volume: this one is new. A fresh
 *     member refuses to start under a joined entry (cetcd --bootstrap-dir), so it is empty.
 *   - member k lost its data: a voter whose volume was replaced (entry member-id k's or 0).
 *   - target = 1 + the highest ordinal with a member or an entry (0 if none).
 *
 * What the reconciler must do for each step (the rules below rely on exactly this):
 *   SEED          write entry 0 {new, C-0 alone, stamp} unless present; if there is no
 *                 StatefulSet, create it with replicas = 1 + the highest entry (at least 1;
 *                 rule 4 raises it for members beyond). Both halves are no-ops when already
 *                 done, so a SEED planned from a stale view is harmless.
 *   WRITE_ENTRY k write entry k {existing, initial-cluster = every member, joined=false,
 *                 member-id = step.member_id, data-uid = the stamp}.
 *                 The stamp = pods[k].data_uid as observed ("" = none). It is taken whether or
 *                 not the pod is seen (caches lag); a stamp naming a volume no pod has any
 *                 more never matches, so a wrong one costs at most one needless restart.
 *   DELETE_POD k  delete pod k, THEN rewrite entry k unchanged but without data-uid. The
 *                 trigger is the stamp, so the step fires once (twice if the reconciler
 *                 stops between the two writes: the second deletion hits a pod that is
 *                 starting, which is harmless).
 *   MARK_JOINED k write entry k {existing, every member, joined=true, member-id = member k's,
 *                 data-uid = volume k}.
 *   SCALE_STS r, ADD_LEARNER k (learner, peer URL of k), PROMOTE id, MOVE_LEADER id->target,
 *   REMOVE_MEMBER id, DELETE_ENTRY k, DELETE_PVC k: that one call.
 *
 * Rules, first match wins (each names the state it recognises):
 *  0. size outside 1..PLAN_MAX-1, a member ordinal out of range, or two members on one
 *     ordinal: WAIT (never act on a state we do not understand).
 *  1. No StatefulSet: SEED (brings it back with every recorded member). No entry at all, no
 *     member known and no pod ready: SEED (a new cluster; pods without a WAL refuse to start
 *     without an entry and pods with one ignore it, so writing entry 0 cannot hurt them).
 *  2. Member list unreadable: DELETE_POD of the lowest stamped, unready, not terminating pod
 *     (the seed's pod started before entry 0); else SCALE_STS to 1 + highest entry if below
 *     (after SEED); else WAIT. Never a membership change or a deletion of data without the
 *     member list.
 *  3. No member matches a pod of ours: WAIT (ForeignMember).
 *  4. StatefulSet below 1 + the highest ordinal of a voter or of a learner with a current
 *     entry: SCALE_STS up to it (crash after WRITE_ENTRY; replicas lowered by hand). Not a
 *     membership change, and missing pods are a common cause of rule 5, so it comes first.
 *  5. healthy voters < voters/2+1: QUORUM_LOST.
 *  6. Cleanup after removals (crash after MemberRemove / entry delete / StatefulSet scale):
 *     a. from the top, an entry k with no member: kept when k < size and volume k was
 *        replaced (a replacement, rule 10); WAIT (StaleVolume, manual: delete PVC and pod)
 *        when k < size, a member sits above k and volume k is the removed member's; else
 *        DELETE_ENTRY k.
 *     b. replicas > target: SCALE_STS target (only ordinals with no member and no entry go).
 *     c. k >= replicas with no member: pod k exists -> WAIT (terminating); PVC k -> DELETE_PVC.
 *  7. The lowest learner k (at most one exists, see 10 and 12):
 *     k >= size -> REMOVE_MEMBER (the scale-up is abandoned; no quorum effect);
 *     entry not current -> WRITE_ENTRY (crash after MemberAdd; replacement);
 *     unstarted, entry stamped, pod not ready/terminating -> DELETE_POD;
 *     started, pod ready, caught up -> PROMOTE if quorum(voters+1, healthy+1), else WAIT
 *     (crash before MemberPromote);
 *     else WAIT (pod starting, learner catching up).
 *  8. A started voter k with pod k ready, not lost, whose entry is absent, not joined, of
 *     another member id, or lacks a known volume uid: MARK_JOINED (crash after promote;
 *     also rebuilds lost entries of a running cluster).
 *  9. A foreign member (ordinal -1): WAIT; it is never touched, and nothing below (new
 *     membership changes) happens while it is there.
 * 10. k < size with no member and volume k replaced: ADD_LEARNER k (the replacement's add).
 * 11. A voter k that lost its data: leader -> MOVE_LEADER (to the lowest-ordinal healthy
 *     started voter); else REMOVE_MEMBER if quorum(voters-1, healthy without it); else WAIT.
 * 12. The lowest k < size with no member (scale up, or a gap left by a member removed while
 *     a higher one stays): every voter started, healthy and its entry joined (rule 8 done)
 *     -> ADD_LEARNER k; else WAIT.
 * 13. The top member k >= size: leader -> MOVE_LEADER; REMOVE_MEMBER if quorum holds
 *     without it; else WAIT.
 * 14. A member not healthy or its pod not ready: WAIT; otherwise NONE.
 * Invariants this yields: ADD_LEARNER only with no learner and no member on that ordinal;
 * REMOVE_MEMBER and PROMOTE only when quorum holds afterwards, and a removal only when no
 * other change is half done (rules 6-10 come first); nothing is deleted while members are
 * unknown; an ordinal is reused only with no volume, a replaced (empty) volume, or as a gap.
 */
#include "plan.h"

#include <string.h>

#define UID_LEN sizeof(((struct plan_pod *)0)->data_uid)

/* Facts derived once from the input. */
struct view {
    const struct plan_input *in;
    const struct plan_member *at[PLAN_MAX]; /* the member of each ordinal, NULL if none */
    int voters, healthy_voters, learners;
    int top_member;                         /* highest ordinal with a member, -1 */
    bool foreign;
};

/* ---- small predicates ------------------------------------------------------------------ */

static bool uid_known(const char *u)
{
    return u[0] != 0;
}

static bool uid_eq(const char *a, const char *b)
{
    return strncmp(a, b, UID_LEN) == 0;
}

static bool quorum(int voters, int healthy)
{
    return voters > 0 && healthy >= voters / 2 + 1;
}

static bool entry_current(const struct plan_entry *e, const struct plan_member *m)
{
    return e->present && !e->state_new && !e->joined && e->member_id == m->id;
}

static bool stamped(const struct plan_entry *e, const struct plan_pod *p)
{
    return e->present && !e->joined && uid_known(e->data_uid) && p->exists &&
           uid_eq(e->data_uid, p->data_uid);
}

static bool restart_due(const struct plan_entry *e, const struct plan_pod *p)
{
    return stamped(e, p) && !p->ready && !p->terminating;
}

static bool volume_replaced(const struct plan_entry *e, const struct plan_pod *p)
{
    return e->present && e->joined && uid_known(e->data_uid) && uid_known(p->data_uid) &&
           !uid_eq(e->data_uid, p->data_uid);
}

static bool data_lost(const struct view *v, int k)
{
    const struct plan_member *m = v->at[k];
    const struct plan_entry *e = &v->in->entries[k];

    return m && !m->learner && volume_replaced(e, &v->in->pods[k]) &&
           (e->member_id == 0 || e->member_id == m->id);
}

/* ---- step constructors ----------------------------------------------------------------- */

static bool step(struct plan_step *out, enum plan_action a, int ordinal, const char *reason,
                 const char *message)
{
    memset(out, 0, sizeof(*out));
    out->action = a;
    out->ordinal = ordinal;
    out->reason = reason;
    out->message = message;
    return true;
}

static bool member_step(struct plan_step *out, enum plan_action a, int k, uint64_t id,
                        const char *reason, const char *message)
{
    step(out, a, k, reason, message);
    out->member_id = id;
    return true;
}

static bool scale(struct plan_step *out, int replicas, const char *reason, const char *message)
{
    step(out, PLAN_SCALE_STS, -1, reason, message);
    out->replicas = replicas;
    return true;
}

static bool wait_step(struct plan_step *out, const char *reason, const char *message)
{
    return step(out, PLAN_WAIT, -1, reason, message);
}

/* MOVE_LEADER away from member k to the lowest-ordinal healthy started voter; WAIT if none. */
static bool move_leader(const struct view *v, int k, const char *reason, struct plan_step *out)
{
    for (int j = 0; j < PLAN_MAX; j++) {
        const struct plan_member *t = v->at[j];
        if (j == k || !t || t->learner || !t->started || !t->healthy)
            continue;
        member_step(out, PLAN_MOVE_LEADER, k, v->at[k]->id, reason,
                    "moving leadership away from the member about to be removed");
        out->target_id = t->id;
        return true;
    }
    return wait_step(out, reason, "no healthy member can take over leadership");
}

/* REMOVE_MEMBER k if quorum holds without it (MOVE_LEADER first if it leads). */
static bool remove_voter(const struct view *v, int k, const char *reason, const char *message,
                         struct plan_step *out)
{
    const struct plan_member *m = v->at[k];

    if (m->leader)
        return move_leader(v, k, reason, out);
    if (!quorum(v->voters - 1, v->healthy_voters - (m->healthy ? 1 : 0)))
        return wait_step(out, reason, "removing the member now would lose quorum");
    return member_step(out, PLAN_REMOVE_MEMBER, k, m->id, reason, message);
}

/* ---- the view ---------------------------------------------------------------------------- */

/* False (with a WAIT in out) on a state the rules do not cover. */
static bool view_build(const struct plan_input *in, struct view *v, struct plan_step *out)
{
    memset(v, 0, sizeof(*v));
    v->in = in;
    v->top_member = -1;
    if (in->size < 1 || in->size >= PLAN_MAX)
        return !wait_step(out, "InvalidSpec", "spec.size is outside the supported range");
    if (!in->members_known)
        return true;
    if (in->n_members > PLAN_MAX * 2)
        return !wait_step(out, "InvalidState", "the member list is longer than any cluster we run");
    for (size_t i = 0; i < in->n_members; i++) {
        const struct plan_member *m = &in->members[i];
        if (m->ordinal < -1 || m->ordinal >= PLAN_MAX)
            return !wait_step(out, "InvalidState", "a member's ordinal is out of range");
        if (m->ordinal >= 0 && v->at[m->ordinal])
            return !wait_step(out, "ConflictingMembers",
                              "two members have the peer URL of one pod; resolve it by hand");
        if (m->ordinal < 0)
            v->foreign = true;
        else
            v->at[m->ordinal] = m;
        if (m->ordinal > v->top_member)
            v->top_member = m->ordinal;
        if (m->learner)
            v->learners++;
        else {
            v->voters++;
            v->healthy_voters += m->healthy ? 1 : 0;
        }
    }
    return true;
}

static int highest_entry(const struct plan_input *in)
{
    int top = -1;

    for (int k = 0; k < PLAN_MAX; k++)
        if (in->entries[k].present)
            top = k;
    return top;
}

/* ---- the rules, in order ----------------------------------------------------------------- */

static bool rule_seed(const struct view *v, struct plan_step *out)
{
    const struct plan_input *in = v->in;

    if (in->sts_replicas < 0)
        return step(out, PLAN_SEED, 0, "Bootstrapping", "creating the StatefulSet");
    if (highest_entry(in) >= 0 || (in->members_known && in->n_members > 0))
        return false;
    for (int k = 0; k < PLAN_MAX; k++)
        if (in->pods[k].ready)
            return false;
    return step(out, PLAN_SEED, 0, "Bootstrapping", "starting the first member");
}

static bool rule_members_unknown(const struct view *v, struct plan_step *out)
{
    const struct plan_input *in = v->in;
    int want = highest_entry(in) + 1;
    bool pods = false;

    if (in->members_known)
        return false;
    for (int k = 0; k < PLAN_MAX; k++) {
        if (restart_due(&in->entries[k], &in->pods[k]))
            return step(out, PLAN_DELETE_POD, k, "Bootstrapping",
                        "restarting a pod that started before its membership entry was written");
        pods |= in->pods[k].exists;
    }
    if (in->sts_replicas < want)
        return scale(out, want, "Bootstrapping",
                     "scaling the StatefulSet up to the recorded members");
    return wait_step(out, "WaitingForMembers",
                     pods ? "waiting for members to answer" : "waiting for pods to start");
}

static bool rule_no_own_member(const struct view *v, struct plan_step *out)
{
    if (v->top_member >= 0)
        return false;
    return wait_step(out, "ForeignMember",
                     "no member of the cluster matches a pod of this cluster");
}

static bool rule_cover_members(const struct view *v, struct plan_step *out)
{
    int want = 0;
    bool learner = false;

    for (int k = 0; k < PLAN_MAX; k++) {
        const struct plan_member *m = v->at[k];
        if (m && (!m->learner || entry_current(&v->in->entries[k], m))) {
            want = k + 1;
            learner = m->learner;
        }
    }
    if (v->in->sts_replicas >= want)
        return false;
    if (learner)
        return scale(out, want, "ScalingUp", "scaling the StatefulSet up to start the new learner");
    return scale(out, want, "Recovering", "scaling the StatefulSet up to run every member");
}

static bool rule_quorum(const struct view *v, struct plan_step *out)
{
    if (quorum(v->voters, v->healthy_voters))
        return false;
    return step(out, PLAN_QUORUM_LOST, -1, "QuorumLost",
                "fewer than a majority of the voting members are healthy; no membership change "
                "is possible");
}

/* 6a: entries of ordinals without a member. */
static bool cleanup_entries(const struct view *v, struct plan_step *out)
{
    const struct plan_input *in = v->in;

    for (int k = PLAN_MAX - 1; k >= 0; k--) {
        const struct plan_entry *e = &in->entries[k];
        const struct plan_pod *p = &in->pods[k];
        if (!e->present || v->at[k])
            continue;
        if (k < in->size && volume_replaced(e, p))
            continue;
        if (k < in->size && k < v->top_member && e->joined && uid_known(p->data_uid) &&
            uid_eq(e->data_uid, p->data_uid))
            return wait_step(out, "StaleVolume",
                             "a pod between members holds the data of a removed member; delete "
                             "its PVC and pod so that it can be added again");
        return step(out, PLAN_DELETE_ENTRY, k, k >= in->size ? "ScalingDown" : "Recovering",
                    "deleting the membership entry of a removed member");
    }
    return false;
}

/* 6b, 6c: the StatefulSet, pods and PVCs above the last member. */
static bool cleanup_pods(const struct view *v, struct plan_step *out)
{
    const struct plan_input *in = v->in;
    int target = 0;

    for (int k = 0; k < PLAN_MAX; k++)
        if (v->at[k] || in->entries[k].present)
            target = k + 1;
    if (in->sts_replicas > target)
        return scale(out, target, "ScalingDown",
                     "scaling the StatefulSet down past removed members");
    for (int k = in->sts_replicas; k < PLAN_MAX; k++) {
        if (v->at[k])
            continue;
        if (in->pods[k].exists)
            return wait_step(out, "ScalingDown",
                             "waiting for the pod of a removed member to go away");
        if (in->pvc_exists[k])
            return step(out, PLAN_DELETE_PVC, k, "ScalingDown",
                        "deleting the volume of a removed member");
    }
    return false;
}

static bool rule_learner(const struct view *v, struct plan_step *out)
{
    const struct plan_input *in = v->in;

    for (int k = 0; k < PLAN_MAX; k++) {
        const struct plan_member *m = v->at[k];
        const struct plan_entry *e = &in->entries[k];
        const struct plan_pod *p = &in->pods[k];
        if (!m || !m->learner)
            continue;
        if (k >= in->size)
            return member_step(out, PLAN_REMOVE_MEMBER, k, m->id, "ScalingDown",
                               "removing a learner the cluster no longer needs");
        if (!entry_current(e, m))
            return member_step(out, PLAN_WRITE_ENTRY, k, m->id, "AddingMember",
                               "writing the membership entry of the new learner");
        if (!m->started && restart_due(e, p))
            return member_step(out, PLAN_DELETE_POD, k, m->id, "AddingMember",
                               "restarting a pod that started before its membership entry "
                               "was written");
        if (!m->started || !p->ready || !m->caught_up)
            return wait_step(out, "AddingMember", "waiting for the learner to start and catch up");
        if (!quorum(v->voters + 1, v->healthy_voters + 1))
            return wait_step(out, "AddingMember", "promoting the learner now would lose quorum");
        return member_step(out, PLAN_PROMOTE, k, m->id, "AddingMember",
                           "promoting the caught-up learner to a voting member");
    }
    return false;
}

static bool rule_mark_joined(const struct view *v, struct plan_step *out)
{
    for (int k = 0; k < PLAN_MAX; k++) {
        const struct plan_member *m = v->at[k];
        const struct plan_entry *e = &v->in->entries[k];
        const struct plan_pod *p = &v->in->pods[k];
        if (!m || m->learner || !m->started || !p->ready || data_lost(v, k))
            continue;
        if (!e->present || !e->joined || e->member_id != m->id ||
            (!uid_known(e->data_uid) && uid_known(p->data_uid)))
            return member_step(out, PLAN_MARK_JOINED, k, m->id, "AddingMember",
                               "recording that the member has joined with its data");
    }
    return false;
}

static bool rule_foreign(const struct view *v, struct plan_step *out)
{
    if (!v->foreign)
        return false;
    return wait_step(out, "ForeignMember",
                     "a member that matches no pod of this cluster is present; it is left alone "
                     "and no membership change is made until it is removed");
}

static bool rule_replace_add(const struct view *v, struct plan_step *out)
{
    const struct plan_input *in = v->in;

    for (int k = 0; k < in->size; k++)
        if (!v->at[k] && volume_replaced(&in->entries[k], &in->pods[k]) && v->learners == 0)
            return step(out, PLAN_ADD_LEARNER, k, "ReplacingMember",
                        "adding a learner in place of the member whose data was lost");
    return false;
}

static bool rule_data_loss(const struct view *v, struct plan_step *out)
{
    for (int k = 0; k < PLAN_MAX; k++)
        if (data_lost(v, k))
            return remove_voter(v, k, "ReplacingMember",
                                "removing the member whose data was lost", out);
    return false;
}

/* Every voter of ours started, healthy and recorded as joined: nothing half done. */
static bool voters_settled(const struct view *v)
{
    for (int k = 0; k < PLAN_MAX; k++) {
        const struct plan_member *m = v->at[k];
        const struct plan_entry *e = &v->in->entries[k];
        if (m && !m->learner &&
            (!m->started || !m->healthy || !e->joined || e->member_id != m->id))
            return false;
    }
    return true;
}

static bool rule_grow(const struct view *v, struct plan_step *out)
{
    for (int k = 0; k < v->in->size; k++) {
        if (v->at[k])
            continue;
        if (v->learners || v->in->entries[k].present)
            return wait_step(out, "ScalingUp", "waiting for the previous change to finish");
        if (!voters_settled(v))
            return wait_step(out, "ScalingUp",
                             "waiting for every member to be healthy and recorded as joined "
                             "before adding one");
        return step(out, PLAN_ADD_LEARNER, k, "ScalingUp", "adding a new member as a learner");
    }
    return false;
}

static bool rule_shrink(const struct view *v, struct plan_step *out)
{
    if (v->top_member < v->in->size)
        return false;
    return remove_voter(v, v->top_member, "ScalingDown", "removing the highest member", out);
}

static bool rule_settled(const struct view *v, struct plan_step *out)
{
    for (int k = 0; k < PLAN_MAX; k++)
        if (v->at[k] && (!v->at[k]->healthy || !v->in->pods[k].ready))
            return wait_step(out, "WaitingForMembers", "waiting for every member to be healthy");
    return step(out, PLAN_NONE, -1, "Converged", "the cluster matches its spec");
}

void plan_next(const struct plan_input *in, struct plan_step *out)
{
    static bool (*const rules[])(const struct view *, struct plan_step *) = {
        rule_seed,        rule_members_unknown, rule_no_own_member, rule_cover_members,
        rule_quorum,      cleanup_entries,      cleanup_pods,       rule_learner,
        rule_mark_joined, rule_foreign,         rule_replace_add,   rule_data_loss,
        rule_grow,        rule_shrink,          rule_settled,
    };
    struct view v;

    if (!view_build(in, &v, out))
        return;
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (rules[i](&v, out))
            return;
}

const char *plan_action_name(enum plan_action a)
{
    static const char *const names[] = {
        [PLAN_NONE] = "none",
        [PLAN_WAIT] = "wait",
        [PLAN_QUORUM_LOST] = "quorum-lost",
        [PLAN_SEED] = "seed",
        [PLAN_ADD_LEARNER] = "add-learner",
        [PLAN_WRITE_ENTRY] = "write-entry",
        [PLAN_SCALE_STS] = "scale-statefulset",
        [PLAN_PROMOTE] = "promote",
        [PLAN_MARK_JOINED] = "mark-joined",
        [PLAN_MOVE_LEADER] = "move-leader",
        [PLAN_REMOVE_MEMBER] = "remove-member",
        [PLAN_DELETE_ENTRY] = "delete-entry",
        [PLAN_DELETE_PVC] = "delete-pvc",
        [PLAN_DELETE_POD] = "delete-pod",
    };

    if ((unsigned)a >= sizeof(names) / sizeof(names[0]) || !names[a])
        return "unknown";
    return names[a];
}
