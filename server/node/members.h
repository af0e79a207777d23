/*
 * members.h: cluster membership as etcd derives it. Member IDs are the first 8 bytes (big
 * endian) of SHA-1 over the member's sorted peer URLs joined, then the cluster token; the
 * cluster ID is the first 8 bytes of SHA-1 over the sorted member IDs (8 bytes big endian
 * each). So the same --initial-cluster and token give the same IDs as etcd would.
 */
#ifndef CETCD_MEMBERS_H
#define CETCD_MEMBERS_H

#include "node.h"

/* Parses "n1=http://a:2380,n1=http://b:2380,n2=http://c:2380" into members (peer URLs grouped
 * by name, IDs computed with token). *out malloc'd. CE_INVAL with a message in err. */
int members_parse_initial(const char *initial_cluster, const char *token, node_member **out,
                          size_t *count, char *err, size_t errlen);
uint64_t members_cluster_id(const node_member *m, size_t count);
/* Serialises members to JSON text (malloc'd) and back; used in snapshots and members file. */
char *members_to_json(const node_member *m, size_t count, uint64_t cluster_id);
int members_from_json(const char *json, node_member **out, size_t *count, uint64_t *cluster_id);

#endif
