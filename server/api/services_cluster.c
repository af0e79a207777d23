/*
 * services_cluster.c: etcd's Cluster service (MemberAdd, MemberRemove, MemberUpdate,
 * MemberPromote; MemberList is in services.c) and Maintenance.MoveLeader.
 *
 * Each membership call is checked and proposed by the node (node_member_*) and answered when
 * the conf-change entry is applied on this member, with etcd's response: the Cluster header
 * (cluster, member, term; no revision) and the member list after the change. MoveLeader is
 * answered once the target leads. A call that goes away cancels its node handle (on_close),
 * so a late answer never reaches a dead call.
 */
#include "err.h"
#include "services_int.h"

#include <stdlib.h>

static void change_done(void *ctx, int err, ProtobufCMessage *resp)
{
    svc_finish_waiting(ctx, err, resp, svc_cluster_reply);
}

/* Starts a waiting call, runs op, and finishes the call at once if op refused. Membership
 * changes need root while auth is enabled (etcd's admin check). */
#define START_CHANGE(c, m, op_call)                                                            \
    do {                                                                                       \
        struct waiting *w;                                                                     \
        int rc_;                                                                               \
        if (svc_learner_refused((c), (m)))                                                     \
            return;                                                                            \
        if ((rc_ = svc_check_admin(c)) != 0) {                                                 \
            svc_free_msg(m);                                                                   \
            rpc_finish((c), rc_);                                                              \
            return;                                                                            \
        }                                                                                      \
        w = svc_waiting_new((c), (m));                                                         \
        rc_ = w ? (op_call) : CE_NOMEM;                                                        \
        if (rc_) {                                                                             \
            if (w)                                                                             \
                svc_waiting_free(w);                                                           \
            else                                                                               \
                svc_free_msg(m);                                                               \
            rpc_finish((c), rc_);                                                              \
        }                                                                                      \
    } while (0)

void svc_member_add(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__MemberAddRequest *r = (Etcdserverpb__MemberAddRequest *)m;

    START_CHANGE(c, m, node_member_add(w->s->node, r->peerurls, r->n_peerurls, r->islearner,
                                       change_done, w, &w->handle));
}

void svc_member_remove(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__MemberRemoveRequest *r = (Etcdserverpb__MemberRemoveRequest *)m;

    START_CHANGE(c, m, node_member_remove(w->s->node, r->id, change_done, w, &w->handle));
}

void svc_member_update(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__MemberUpdateRequest *r = (Etcdserverpb__MemberUpdateRequest *)m;

    START_CHANGE(c, m, node_member_update(w->s->node, r->id, r->peerurls, r->n_peerurls,
                                          change_done, w, &w->handle));
}

void svc_member_promote(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__MemberPromoteRequest *r = (Etcdserverpb__MemberPromoteRequest *)m;

    START_CHANGE(c, m, node_member_promote(w->s->node, r->id, change_done, w, &w->handle));
}

static void moved(void *ctx, int err)
{
    struct waiting *w = ctx;
    rpc_call *c = w->call;
    Etcdserverpb__MoveLeaderResponse *resp;

    svc_waiting_free(w);
    if (err) {
        rpc_finish(c, err);
        return;
    }
    resp = malloc(sizeof(*resp));
    if (!resp) {
        rpc_finish(c, CE_NOMEM);
        return;
    }
    etcdserverpb__move_leader_response__init(resp);
    svc_reply(c, &resp->base);
}

void svc_move_leader(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__MoveLeaderRequest *r = (Etcdserverpb__MoveLeaderRequest *)m;
    int rc = svc_check_maint(c);

    if (rc) {
        svc_free_msg(m);
        rpc_finish(c, rc);
        return;
    }
    START_CHANGE(c, m, node_move_leader(w->s->node, r->targetid, moved, w, &w->handle));
}
