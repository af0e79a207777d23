/*
 * wal.h: the write-ahead log of a member: Raft entries, hard states and snapshot markers,
 * appended to CRC-framed segment files in one directory and made durable by wal_sync().
 *
 * The WAL knows nothing of Raft's types (server/node/ converts). Invariants the caller may rely
 * on: nothing saved is durable before wal_sync() returned 0; after a crash, wal_open() returns
 * exactly a prefix of what was saved that includes everything synced; a record damaged before
 * the end of the log makes wal_open() fail with CE_CORRUPT (never a silent loss). The on-disk
 * format is documented at the top of wal.c. A wal handle is used by one thread.
 */
#ifndef CETCD_WAL_H
#define CETCD_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wal wal;

/* One Raft log entry. data/len is the opaque payload; type is the caller's entry kind. */
typedef struct wal_entry {
    uint64_t term, index;
    uint8_t type;
    const uint8_t *data;
    size_t len;
} wal_entry;

typedef struct wal_hardstate {
    uint64_t term, vote, commit;
} wal_hardstate;

/* A snapshot marker: "a snapshot at (index, term) exists"; entries up to index may go. */
typedef struct wal_snapshot {
    uint64_t index, term;
} wal_snapshot;

/*
 * What replay found: the newest hard state, the newest snapshot marker (zero if none), and every
 * entry with index > the snap_index given to wal_open, in index order, contiguous, starting at
 * snap_index + 1. An entry whose index is <= an earlier one replaced that earlier one and all
 * after it (a new leader truncated the tail). metadata is the blob given to wal_create, with a
 * terminating NUL added (not counted in metadata_len). Everything is owned by the result and
 * freed by wal_replay_free (entry data pointers included).
 */
typedef struct wal_replay {
    wal_hardstate hs;
    bool has_hs;
    wal_snapshot snap;
    bool has_snap;
    wal_entry *ents;
    size_t nents;
    char *metadata;
    size_t metadata_len;
} wal_replay;

/* Default segment size; wal_set_segment_bytes changes it (tests use small ones). */
#define WAL_SEGMENT_BYTES (64u * 1024 * 1024)

/* Creates dir (and missing parents) and its first segment. metadata: the member/cluster ids
 * blob, stored in every segment header. CE_EXISTS if dir already holds a segment. */
int wal_create(const char *dir, const uint8_t *metadata, size_t len, wal **out);
/* True if dir holds at least one segment file. */
bool wal_exists(const char *dir);
/*
 * Replays the WAL in dir into *rp (which the caller frees with wal_replay_free; on error it is
 * left empty), cuts off a torn tail (log_warn naming the file and offset), and opens the WAL
 * for appending. Entries with index <= snap_index are skipped. Errors: CE_NOTFOUND if dir
 * holds no segment; CE_CORRUPT if a record is damaged anywhere but at the very end (after
 * log_error "wal: corrupt record in <file> at offset <n> ..."), if a segment is missing, or if
 * the entries after snap_index are not exactly snap_index + 1 .. the log's end (e.g. the
 * caller's snapshot is older than the WAL's snapshot marker and the entries between are gone).
 */
int wal_open(const char *dir, uint64_t snap_index, wal **out, wal_replay *rp);
void wal_replay_free(wal_replay *rp);

/*
 * Appends entries, then the hard state (hs NULL if unchanged), to a userspace buffer; buffered
 * bytes go to the file with one write() at wal_sync (or here, once over 1 MiB). An entry whose
 * index is <= the last saved one truncates the log from there. CE_INVAL (nothing saved) for an
 * index 0 or a gap (index > wal_last_index() + 1): after installing a snapshot received from
 * the leader, save its marker first (wal_save_snapshot), then entries from its index + 1.
 * Cuts a new segment when the current one is full (that syncs the old one first).
 * After any I/O error the handle is failed: every later call returns CE_IO.
 */
int wal_save(wal *w, const wal_hardstate *hs, const wal_entry *ents, size_t n);
/* Appends a snapshot marker and syncs. Order when taking or installing a snapshot: snap_save
 * (the file), then wal_save_snapshot, then wal_release_to(index) and snap_purge. On restart:
 * snap_load_newest, then wal_open(dir, that index). */
int wal_save_snapshot(wal *w, const wal_snapshot *s);
/* The same for a snapshot received from the leader and installed: Raft discarded its whole log,
 * so the log restarts after s->index (entries above it saved earlier are void on replay) and
 * the next entry saved must be s->index + 1. */
int wal_install_snapshot(wal *w, const wal_snapshot *s);
/* Writes out the buffer and fdatasyncs: only after it returns 0 may anything saved be
 * acknowledged. Cheap no-op when nothing was saved since the last sync. */
int wal_sync(wal *w);
/* Deletes whole segments older than the one holding index (that one and later are kept; the
 * segment being written is never deleted). Call with the index of a durable snapshot. */
int wal_release_to(wal *w, uint64_t index);
/* Syncs what is buffered (best effort) and frees the handle. NULL is a no-op. */
void wal_close(wal *w);

/* fsync latency observer for metrics: fn(arg, seconds) after every fdatasync of a segment. */
void wal_set_sync_observer(wal *w, void (*fn)(void *arg, double seconds), void *arg);
/* Record bytes written to segments since open (not segment headers or zero fill). */
uint64_t wal_bytes_written(const wal *w);
/* Segment size at which a new segment is cut (minimum 4096). */
void wal_set_segment_bytes(wal *w, uint64_t bytes);
/* Disables fdatasync (--unsafe-no-fsync: tests and benchmarks only). */
void wal_set_unsafe_no_fsync(wal *w, bool on);
/* The log's end: the index of the last entry saved, or of a snapshot marker saved after it if
 * that is higher (0 if neither). The next entry saved may have at most this index + 1. */
uint64_t wal_last_index(const wal *w);

#endif
