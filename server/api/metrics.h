/*
 * metrics.h: the Prometheus text exposition of a member's metrics, with etcd's metric names,
 * types and help texts, so that existing dashboards and alert rules work unchanged.
 */
#ifndef CETCD_METRICS_H
#define CETCD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "node/node.h"

/* Renders every metric into a malloc'd text (*out, *len). 0 or CE_NOMEM. */
int metrics_render(node *n, uint64_t quota_bytes, char **out, size_t *len);

#endif
