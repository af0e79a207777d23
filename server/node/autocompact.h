/*
 * autocompact.h: etcd 3.4's auto-compaction (--auto-compaction-mode, --auto-compaction-retention),
 * run by the leader: it proposes a Compaction through Raft like a client's `etcdctl compact`.
 *
 * periodic: retention is a duration ("30m", "1h30m", "10s", "500ms") or a bare number of hours
 *   ("1" = 1h); "0" disables. Every interval = min(retention, 1h) / 10 the current revision is
 *   sampled; once the samples span the retention, the store is compacted to the revision it had
 *   `retention` ago, then again every min(retention, 1h) (etcd: a 72h retention compacts
 *   hourly, each time to the revision of 72 h before).
 * revision: retention is a number of revisions N; "0" disables. Every 5 minutes, the store is
 *   compacted to (current revision - N) when that is above the compaction point.
 * Only the leader compacts; a member that is not the leader drops its samples (a new leader
 * starts its own window, as etcd's compactor resumes). A refused compaction (already compacted)
 * is only logged.
 */
#ifndef CETCD_AUTOCOMPACT_H
#define CETCD_AUTOCOMPACT_H

#include <stdint.h>

#include "evloop.h"
#include "node.h"

typedef struct autocompact autocompact;

/* Parses the flags: *period_ms (periodic) or *revisions (revision) set, the other 0; both 0
 * when disabled. CE_INVAL (message logged, as etcd's) on a malformed retention. */
int autocompact_parse(const char *mode, const char *retention, uint64_t *period_ms,
                      int64_t *revisions);

/* Starts the compactor; *out is NULL (and 0 returned) when auto-compaction is disabled.
 * check_ms: the revision mode's check interval (0 = etcd's 5 minutes; tests use less). */
int autocompact_new(evloop *loop, node *n, const char *mode, const char *retention,
                    uint64_t check_ms, autocompact **out);
void autocompact_free(autocompact *a);

#endif
