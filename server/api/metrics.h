/*
 * metrics.h: the Prometheus text exposition (format 0.0.4) of a member's metrics, with etcd
 * 3.4's metric names, types, label names and help texts, so that existing dashboards and alert
 * rules (etcd_server_*, etcd_disk_*, etcd_network_*, etcd_mvcc_*, grpc_server_*, process_*)
 * work unchanged. The numbers live where they happen (node: Raft, WAL, backend, peers;
 * transport: per-method gRPC counters); this module only reads and formats them.
 */
#ifndef CETCD_METRICS_H
#define CETCD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "node/node.h"
#include "rpc.h"
#include "watch/watch.h"

typedef struct metrics_source {
    node *node;
    const rpc_server *rpc;             /* may be NULL: no grpc_server_* samples */
    const rpc_method *methods;         /* the table the rpc server was given */
    uint64_t quota_bytes;              /* --quota-backend-bytes */
    uint64_t health_success, health_failures;  /* /health answers so far */
    watch_hub_stats watch;             /* streams, watchers, events sent */
} metrics_source;

/* Renders every metric into a malloc'd text (*out, *len). 0 or CE_NOMEM. */
int metrics_render(const metrics_source *src, char **out, size_t *len);

#endif
