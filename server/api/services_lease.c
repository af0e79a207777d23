/*
 * services_lease.c: etcd's Lease service (Grant, Revoke, KeepAlive, TimeToLive, Leases).
 * Not implemented yet: every method answers UNIMPLEMENTED.
 */
#include "services_int.h"

#include "err.h"

static void unimplemented(rpc_call *c, ProtobufCMessage *m)
{
    svc_free_msg(m);
    rpc_finish(c, CE_UNIMPLEMENTED);
}

void svc_lease_grant(rpc_call *c, ProtobufCMessage *m) { unimplemented(c, m); }
void svc_lease_revoke(rpc_call *c, ProtobufCMessage *m) { unimplemented(c, m); }
void svc_lease_ttl(rpc_call *c, ProtobufCMessage *m) { unimplemented(c, m); }
void svc_lease_leases(rpc_call *c, ProtobufCMessage *m) { unimplemented(c, m); }
void svc_lease_keepalive(rpc_call *c, ProtobufCMessage *m) { unimplemented(c, m); }
void svc_lease_keepalive_close(rpc_call *c) { (void)c; }
void svc_lease_keepalive_end(rpc_call *c) { rpc_finish(c, 0); }
