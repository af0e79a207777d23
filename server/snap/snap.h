/*
 * snap.h: Raft snapshot metadata files in one directory: the snapshot's index and term, the
 * configuration (voters, learners) and an opaque caller blob (e.g. the member list JSON).
 * The key-value data itself lives in the MVCC backend, not here.
 *
 * Invariants: a file named <term:016x>-<index:016x>.snap either does not exist or is complete
 * and CRC-checked (written to a .tmp, fsynced, renamed, directory fsynced); a damaged one is
 * renamed to <name>.broken and skipped, never loaded. Format documented at the top of snap.c.
 */
#ifndef CETCD_SNAP_H
#define CETCD_SNAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct snap_meta {
    uint64_t index, term;
    uint64_t *voters;
    size_t nvoters;
    uint64_t *learners;
    size_t nlearners;
    uint8_t *data;          /* opaque blob; NULL when len == 0 */
    size_t len;
} snap_meta;

/* Writes <term>-<index>.snap in dir (created if missing, one level) atomically and durably.
 * The caller keeps ownership of m's arrays. CE_INVAL for index 0. */
int snap_save(const char *dir, const snap_meta *m);
/* Loads the newest valid snapshot (highest index, then term) into *out, which the caller frees
 * with snap_meta_free. Damaged files are logged (log_warn), renamed to .broken and skipped.
 * CE_NOTFOUND if there is no valid one (or no dir). */
int snap_load_newest(const char *dir, snap_meta *out);
/* Like snap_load_newest, but only among snapshots with index <= max_index (e.g. the newest one
 * the WAL has a marker for). */
int snap_load_newest_upto(const char *dir, uint64_t max_index, snap_meta *out);
/* Deletes all but the newest keep .snap files (and leftover .tmp files). */
int snap_purge(const char *dir, size_t keep);
/* Frees the arrays of m and zeroes it; a zeroed m is fine. */
void snap_meta_free(snap_meta *m);

#endif
