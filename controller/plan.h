/*
 * plan.h: the membership planner. Pure: observed state in, the next single step out.
 *
 * The reconciler observes the cluster (StatefulSet replicas, pods, the membership ConfigMap
 * entries, cetcd's member list and each member's status) into a plan_input and executes the one
 * step plan_next returns, then observes again. Every step is safe to repeat, and the planner
 * recognises every intermediate state a crash can leave (after MemberAdd, after the StatefulSet
 * scale, after MemberRemove, before MemberPromote) from observation alone, with no memory of
 * what it did before. Ordinals index pods C-0..C-(PLAN_MAX-1); members are matched to ordinals
 * by their peer URL (an unstarted member has no name yet).
 */
#ifndef CETCD_PLAN_H
#define CETCD_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLAN_MAX 8 /* sizes are 1..7; one spare ordinal during a replacement */

enum plan_action {
    PLAN_NONE,          /* converged: nothing to do */
    PLAN_WAIT,          /* something is in progress (pod starting, learner catching up): requeue */
    PLAN_QUORUM_LOST,   /* no membership change possible: report Degraded/QuorumLost */
    PLAN_SEED,          /* write entry for ordinal 0 (state=new, itself only); then STS 1 */
    PLAN_ADD_LEARNER,   /* MemberAdd(peer URL of ordinal, learner) */
    PLAN_WRITE_ENTRY,   /* write the bootstrap entry of `ordinal` (existing, current members) */
    PLAN_SCALE_STS,     /* set StatefulSet replicas to `replicas` */
    PLAN_PROMOTE,       /* MemberPromote(member_id) */
    PLAN_MARK_JOINED,   /* entry of `ordinal`: joined=true, member-id, data-uid */
    PLAN_MOVE_LEADER,   /* MoveLeader from member_id to target_id */
    PLAN_REMOVE_MEMBER, /* MemberRemove(member_id) of `ordinal` */
    PLAN_DELETE_ENTRY,  /* delete the bootstrap entry of `ordinal` */
    PLAN_DELETE_PVC,    /* delete PVC of `ordinal` (its pod is gone, ordinal >= replicas) */
    PLAN_DELETE_POD,    /* delete pod `ordinal` so it restarts from its (new) entry */
};

struct plan_member {
    uint64_t id;
    int ordinal;     /* from the peer URL; -1 if it matches no pod of this cluster */
    bool started;    /* has a name (has run) */
    bool learner;
    bool healthy;    /* its status call answered and it sees a leader */
    bool leader;
    bool caught_up;  /* learner: applied index close to the leader's */
};

struct plan_pod {
    bool exists;
    bool ready;
    bool terminating;
    char data_uid[64]; /* PVC uid (or pod uid with emptyDir); "" if unknown (PVC not bound yet) */
};

struct plan_entry {
    bool present;
    bool state_new;
    bool joined;
    uint64_t member_id;
    char data_uid[64];
};

struct plan_input {
    int size;                 /* spec.size */
    int sts_replicas;         /* -1: no StatefulSet yet */
    bool members_known;       /* the member list could be read (some member answered) */
    struct plan_member members[PLAN_MAX * 2];
    size_t n_members;
    struct plan_pod pods[PLAN_MAX];
    struct plan_entry entries[PLAN_MAX];
    bool pvc_exists[PLAN_MAX];
};

struct plan_step {
    enum plan_action action;
    int ordinal;          /* -1 when not about one ordinal */
    uint64_t member_id;
    uint64_t target_id;   /* MOVE_LEADER */
    int replicas;         /* SCALE_STS */
    const char *reason;   /* short CamelCase reason for the Progressing condition, e.g. "ScalingUp" */
    const char *message;  /* static human text, e.g. "adding C-3 as a learner" without the name */
};

/* The next step for in. Never fails: unexpected states give PLAN_WAIT with a message. */
void plan_next(const struct plan_input *in, struct plan_step *out);
const char *plan_action_name(enum plan_action a);

#endif
