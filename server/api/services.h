/*
 * services.h: etcd's v3 services (KV, Cluster, Maintenance, health, ...) on top of the node,
 * served through the client-port transport (rpc.h), plus the plain HTTP endpoints
 * (/version, /health, /metrics). Error codes become gRPC/HTTP statuses only below this layer's
 * transport.
 */
#ifndef CETCD_SERVICES_H
#define CETCD_SERVICES_H

#include "config.h"
#include "evloop.h"
#include "node/node.h"

typedef struct services services;

int services_new(evloop *loop, node *n, const config *cfg, services **out);
void services_free(services *s);

#endif
