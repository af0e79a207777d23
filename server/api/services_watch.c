/*
 * services_watch.c: etcd's Watch service (one bidirectional stream, many watchers).
 * Not implemented yet: answers UNIMPLEMENTED.
 */
#include "services_int.h"

#include "err.h"

void svc_watch(rpc_call *c, ProtobufCMessage *m)
{
    svc_free_msg(m);
    rpc_finish(c, CE_UNIMPLEMENTED);
}

void svc_watch_close(rpc_call *c) { (void)c; }
void svc_watch_end(rpc_call *c) { (void)c; }
