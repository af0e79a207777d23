/*
 * services_int.h: what the service files (services.c: KV, Maintenance, health, plain HTTP;
 * services_cluster.c: Cluster membership and MoveLeader; services_lease.c, services_watch.c,
 * services_snapshot.c: the streams) share. Not for other modules.
 */
#ifndef CETCD_SERVICES_INT_H
#define CETCD_SERVICES_INT_H

#include "node/node.h"
#include "rpc.h"
#include "services.h"

struct services {
    node *node;
    rpc_server *rpc;
    uint64_t quota_bytes;
    struct watch_svc *watch;      /* services_watch.c */
    evloop *loop;
    struct snap_job *snaps;       /* services_snapshot.c: every snapshot not yet freed */
    unsigned nsnaps;
};

/* What a waiting call keeps: the node handle, and for reads the request. */
struct waiting {
    services *s;
    rpc_call *call;
    uint64_t handle;
    ProtobufCMessage *req;
};

services *svc_of(rpc_call *c);
void svc_free_msg(void *m);
/* Fills the header, sends resp, finishes the call OK, frees resp. */
void svc_reply(rpc_call *c, ProtobufCMessage *resp);
/* The same with the Cluster service's header (no revision). */
void svc_cluster_reply(rpc_call *c, ProtobufCMessage *resp);
struct waiting *svc_waiting_new(rpc_call *c, ProtobufCMessage *req);
void svc_waiting_free(struct waiting *w);
/* The node answered the waiting call w: frees w, then finishes the call with err, or with
 * reply(c, resp). */
void svc_finish_waiting(struct waiting *w, int err, ProtobufCMessage *resp,
                        void (*reply)(rpc_call *c, ProtobufCMessage *resp));
/* on_close of a call that may wait on the node: cancels the node handle. */
void svc_on_close_waiting(rpc_call *c);
/* CE_INVALID_TOKEN when the call carries an auth token (none is valid yet), else 0. */
int svc_token_error(const rpc_call *c);
/* etcd's learner rule: a learner serves only Status and serializable Range. Finishes the call
 * with "rpc not supported for learner" (and frees req) when refused. */
bool svc_learner_refused(rpc_call *c, ProtobufCMessage *req);

/* The Cluster service's membership methods and Maintenance.MoveLeader (services_cluster.c). */
void svc_member_add(rpc_call *c, ProtobufCMessage *m);
void svc_member_remove(rpc_call *c, ProtobufCMessage *m);
void svc_member_update(rpc_call *c, ProtobufCMessage *m);
void svc_member_promote(rpc_call *c, ProtobufCMessage *m);
void svc_move_leader(rpc_call *c, ProtobufCMessage *m);

/* The Lease service (services_lease.c). */
void svc_lease_grant(rpc_call *c, ProtobufCMessage *m);
void svc_lease_revoke(rpc_call *c, ProtobufCMessage *m);
void svc_lease_ttl(rpc_call *c, ProtobufCMessage *m);
void svc_lease_leases(rpc_call *c, ProtobufCMessage *m);
void svc_lease_keepalive(rpc_call *c, ProtobufCMessage *m);
void svc_lease_keepalive_close(rpc_call *c);
void svc_lease_keepalive_end(rpc_call *c);

/* The Watch service (services_watch.c): its hub and leader monitor live from init to fini
 * (fini after the transport is freed, which ends every call). */
int svc_watch_init(services *s, evloop *loop, const config *cfg);
void svc_watch_fini(services *s);
void svc_watch(rpc_call *c, ProtobufCMessage *m);
void svc_watch_close(rpc_call *c);
void svc_watch_end(rpc_call *c);

/* Maintenance.Snapshot (services_snapshot.c). svc_snapshot_fini runs after the transport is
 * freed (every call closed): it stops and waits for the copies still running, frees the rest. */
void svc_snapshot(rpc_call *c, ProtobufCMessage *m);
void svc_snapshot_close(rpc_call *c);
void svc_snapshot_writable(rpc_call *c);
void svc_snapshot_fini(services *s);

#endif
