/*
 * snapfile.h: recognising and verifying a snapshot file (what `snapshot save` writes, what
 * `snapshot restore` and the operator's backups read).
 *
 * A snapshot file is a database file followed by the 32-byte SHA-256 of every byte before it:
 *   etcd:  a bbolt file in etcd 3.4's backend schema (meta page magic 0xED0CDAED; page size in
 *          the meta, 4096 on amd64): what etcd 3.4 saves AND what cetcd's Maintenance.Snapshot
 *          streams now (mvcc_copy_export, server/mvcc/bbolt_export.c);
 *   cetcd: an LMDB data file (4096-byte pages; meta page magic 0xBEEFC0DE), what cetcd's
 *          snapshots were before (mvcc_copy_run's copy, free pages included; mvcc_snapshot_fd
 *          writes a compacted one): still read and restored, for existing backups.
 * Both have whole pages before the hash, so size % 512 == 32 marks a file carrying the hash
 * (etcd's own test). Anything else is "not a snapshot file". The byte layouts are documented in
 * snapfile.c.
 *
 * Invariant: snapfile_verify never trusts the file: every size and offset it reads is checked
 * before use, and any failure leaves a one-line message naming the problem in err.
 */
#ifndef CETCD_SNAPFILE_H
#define CETCD_SNAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum snapfile_kind { SNAPFILE_UNKNOWN, SNAPFILE_CETCD, SNAPFILE_ETCD };

struct snapfile_info {
    enum snapfile_kind kind;
    uint64_t file_size;      /* whole file */
    uint64_t db_size;        /* bytes before the hash (== file_size if no hash) */
    bool has_hash;
    uint8_t sha256[32];      /* the trailing hash, when has_hash */
};

/* Checks path: readable, kind known, size plausible for the kind (whole pages), trailing
 * SHA-256 present and equal to the content's. CE_CORRUPT (or CE_NOTFOUND/CE_IO) with a
 * one-line message in err naming the problem, e.g.
 *   "snapshot file is truncated: 123 bytes is not whole 4096-byte pages plus a sha256"
 *   "snapshot file is corrupt: sha256 checksum mismatch (expected ab12.., got cd34..)"
 * require_hash=false accepts a file without the trailing hash (etcd's --skip-hash-check
 * for restore of a copied db file); a hash that is present is still checked.
 * out may be NULL; err may be NULL when errsz is 0. */
int snapfile_verify(const char *path, bool require_hash, struct snapfile_info *out,
                    char *err, size_t errsz);

/* The kind of a database image from its first bytes (at least the first page's meta header:
 * 64 bytes suffice for both kinds); SNAPFILE_UNKNOWN if neither magic is where it belongs. */
enum snapfile_kind snapfile_kind_of(const void *head, size_t len);

/* "cetcd", "etcd" or "unknown". */
const char *snapfile_kind_name(enum snapfile_kind k);

#endif
