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
#include "watch/watch.h"

struct services {
    node *node;
    rpc_server *rpc;
    rpc_server *metrics_rpc;      /* --listen-metrics-urls: /metrics and /health only, or NULL */
    uint64_t health_ok, health_failed;  /* /health answers (etcd_server_health_*) */
    uint64_t quota_bytes;
    struct watch_svc *watch;      /* services_watch.c */
    struct pw_wait *pw_waits;     /* services_auth.c: calls waiting on password work */
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

/* Auth (services_auth.c). The user a call acts as: its token's (CE_INVALID_TOKEN when unknown
 * or expired), else its verified TLS client certificate's CN, else NULL. The checks return 0
 * when permitted (always with auth disabled), CE_USER_EMPTY without a user, CE_PERMISSION_DENIED,
 * or the token's error. svc_check_write covers what one InternalRequest touches (Put and
 * DeleteRange keys, prev_kv reads, every key and compare of a Txn; other kinds only need a
 * valid identity) and records the user and auth revision in ir for the check at apply (the
 * user string stays the token table's: propose ir before returning to the loop). */
int svc_auth_user(rpc_call *c, const char **user);
int svc_check_range(rpc_call *c, const ProtobufCBinaryData *key,
                    const ProtobufCBinaryData *range_end, bool write);
int svc_check_write(rpc_call *c, Cetcdpb__InternalRequest *ir);
int svc_check_admin(rpc_call *c);
/* on_close of Authenticate, UserAdd, UserChangePassword: cancels password work in progress,
 * else svc_on_close_waiting. */
void svc_auth_close(rpc_call *c);
/* The admin check of etcd 3.4's Maintenance service (Defragment, Snapshot, Hash, HashKV,
 * MoveLeader), which answers with the auth store's untranslated error: CE_AUTH_STORE_DENIED. */
int svc_check_maint(rpc_call *c);
/* svc_learner_refused, then svc_check_maint: finishes the call (and frees req) when refused. */
bool svc_maint_refused(rpc_call *c, ProtobufCMessage *req);
/* LeaseRevoke's check: write permission on every key attached to lease id. */
int svc_check_lease_keys(rpc_call *c, int64_t id);
/* The Auth service's methods. */
void svc_auth_enable(rpc_call *c, ProtobufCMessage *m);
void svc_auth_disable(rpc_call *c, ProtobufCMessage *m);
void svc_auth_status(rpc_call *c, ProtobufCMessage *m);
void svc_authenticate(rpc_call *c, ProtobufCMessage *m);
void svc_user_add(rpc_call *c, ProtobufCMessage *m);
void svc_user_get(rpc_call *c, ProtobufCMessage *m);
void svc_user_list(rpc_call *c, ProtobufCMessage *m);
void svc_user_delete(rpc_call *c, ProtobufCMessage *m);
void svc_user_passwd(rpc_call *c, ProtobufCMessage *m);
void svc_user_grant_role(rpc_call *c, ProtobufCMessage *m);
void svc_user_revoke_role(rpc_call *c, ProtobufCMessage *m);
void svc_role_add(rpc_call *c, ProtobufCMessage *m);
void svc_role_get(rpc_call *c, ProtobufCMessage *m);
void svc_role_list(rpc_call *c, ProtobufCMessage *m);
void svc_role_delete(rpc_call *c, ProtobufCMessage *m);
void svc_role_grant(rpc_call *c, ProtobufCMessage *m);
void svc_role_revoke(rpc_call *c, ProtobufCMessage *m);
#define SVC_AUTH_D(x) &etcdserverpb__##x##__descriptor
#define SVC_AUTH_M(g, h, req, resp, fn, close)                                                  \
    {"/etcdserverpb.Auth/" g, "/v3/auth/" h, SVC_AUTH_D(req), SVC_AUTH_D(resp), false, false, fn, close}
/* The Auth service's entries of the method table (etcd's gRPC and gateway paths). */
#define SVC_AUTH_METHODS                                                                        \
    SVC_AUTH_M("AuthEnable", "enable", auth_enable_request, auth_enable_response, svc_auth_enable, svc_on_close_waiting), \
    SVC_AUTH_M("AuthDisable", "disable", auth_disable_request, auth_disable_response, svc_auth_disable, svc_on_close_waiting), \
    SVC_AUTH_M("AuthStatus", "status", auth_status_request, auth_status_response, svc_auth_status, 0), \
    SVC_AUTH_M("Authenticate", "authenticate", authenticate_request, authenticate_response, svc_authenticate, svc_auth_close), \
    SVC_AUTH_M("UserAdd", "user/add", auth_user_add_request, auth_user_add_response, svc_user_add, svc_auth_close), \
    SVC_AUTH_M("UserGet", "user/get", auth_user_get_request, auth_user_get_response, svc_user_get, 0), \
    SVC_AUTH_M("UserList", "user/list", auth_user_list_request, auth_user_list_response, svc_user_list, 0), \
    SVC_AUTH_M("UserDelete", "user/delete", auth_user_delete_request, auth_user_delete_response, svc_user_delete, svc_on_close_waiting), \
    SVC_AUTH_M("UserChangePassword", "user/changepw", auth_user_change_password_request, auth_user_change_password_response, svc_user_passwd, svc_auth_close), \
    SVC_AUTH_M("UserGrantRole", "user/grant", auth_user_grant_role_request, auth_user_grant_role_response, svc_user_grant_role, svc_on_close_waiting), \
    SVC_AUTH_M("UserRevokeRole", "user/revoke", auth_user_revoke_role_request, auth_user_revoke_role_response, svc_user_revoke_role, svc_on_close_waiting), \
    SVC_AUTH_M("RoleAdd", "role/add", auth_role_add_request, auth_role_add_response, svc_role_add, svc_on_close_waiting), \
    SVC_AUTH_M("RoleGet", "role/get", auth_role_get_request, auth_role_get_response, svc_role_get, 0), \
    SVC_AUTH_M("RoleList", "role/list", auth_role_list_request, auth_role_list_response, svc_role_list, 0), \
    SVC_AUTH_M("RoleDelete", "role/delete", auth_role_delete_request, auth_role_delete_response, svc_role_delete, svc_on_close_waiting), \
    SVC_AUTH_M("RoleGrantPermission", "role/grant", auth_role_grant_permission_request, auth_role_grant_permission_response, svc_role_grant, svc_on_close_waiting), \
    SVC_AUTH_M("RoleRevokePermission", "role/revoke", auth_role_revoke_permission_request, auth_role_revoke_permission_response, svc_role_revoke, svc_on_close_waiting)

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
/* The watch hub's counters (zeros before init), for /metrics. */
void svc_watch_stats(const services *s, watch_hub_stats *st);
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
