/*
 * restore.h: offline restore of a snapshot file (common/snapfile.h) into a new data directory,
 * from which cetcd starts as a restarted member of a NEW cluster holding the snapshot's data.
 * Used by `cetcdctl snapshot restore` and by a member whose bootstrap entry says restore-from.
 * The file is recognised by its content: an etcd-format (bbolt) snapshot, what cetcd's and etcd
 * 3.4's Maintenance.Snapshot send, is imported into a new store (mvcc_import_bbolt: keys with
 * their revisions and versions, compaction point, consistent index, leases, auth); an older
 * cetcd snapshot (its LMDB file) is copied as the store.
 *
 * What a restore builds (the layout node.c documents), every member of the new cluster alike:
 *   member/db/data.mdb     the snapshot's store (imported or copied), its consistent index set to
 *                          I and term to 1,
 *                          where I = the snapshot's consistent index + 1 (the store's index only
 *                          grows, so I is the lowest index every restored member can agree on
 *                          without rewriting history); revisions, compaction point and leases
 *                          are kept as they were (leases expire a TTL after the new cluster
 *                          starts unless kept alive, as etcd's restore keeps them). The store
 *                          holds no membership, so nothing else in it is rewritten.
 *   member/members.json    the new members (names, peer URLs; client URLs are published by each
 *                          member when it starts), with the new cluster ID
 *   member/snap/<1>-<I>.snap  a Raft snapshot at (I, term 1) whose voters are the new members
 *   WAL (member/wal or --wal-dir)  metadata "member_id=.. cluster_id=..", a snapshot marker at
 *                          (I, 1) and the hard state {term 1, vote none, commit I}
 * So each member starts at index I with the same log (empty after the snapshot) and the new
 * voters, elects a leader and carries on; a member added later gets a Raft snapshot from it.
 *
 * IDs: member IDs are those of a new cluster with the same --initial-cluster and token
 * (members_parse_initial: SHA-1 of the sorted peer URLs and the token). The cluster ID is the
 * first 8 bytes (big-endian) of SHA-256 over the 8-byte big-endian ID a new cluster of these
 * members would get (members_cluster_id) followed by the 32-byte SHA-256 of the snapshot's
 * database bytes. So every member restored from the same file with the same flags agrees, and a
 * restore never gets the old cluster's ID (even with the old token and URLs): members of the old
 * cluster are refused by the peer transport.
 *
 * Atomicity: nothing is created before every check passed (flags, target directories, the
 * file's hash). The member directory is built in <data-dir>/.cetcd-restore.XXXXXX and renamed to
 * <data-dir>/member at the end; a separate --wal-dir gets its segment moved in (from
 * <wal-dir>/.cetcd-restore.XXXXXX/wal) just before. A failed restore removes what it created
 * (including a data or WAL directory it had to create), so the directories are as they were.
 * A crash mid-way can leave a .cetcd-restore.* directory: a later restore deletes it (it does
 * not count as content); a crash between the WAL move and the member rename leaves a WAL that
 * cetcd refuses to start from (entries missing), never a member that starts wrongly.
 */
#ifndef CETCD_NODE_RESTORE_H
#define CETCD_NODE_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a successful restore made (for the caller's report). */
struct node_restore_result {
    uint64_t cluster_id;
    uint64_t member_id;
    uint64_t index;          /* Raft index the member starts at */
    int64_t revision;        /* the store's revision */
    size_t nmembers;
};

struct node_restore_opts {
    const char *snapshot_path;
    const char *name;                     /* this member's name in initial_cluster */
    const char *data_dir;
    const char *wal_dir;                  /* NULL or "" = <data_dir>/member/wal */
    const char *initial_cluster;          /* "n1=http://a:2380,n2=..." */
    const char *initial_cluster_token;
    const char *const *advertise_peer_urls; /* must equal this member's URLs in initial_cluster */
    size_t nadvertise_peer;
    bool skip_hash_check;                 /* accept a database file without the trailing hash */
    struct node_restore_result *result;   /* filled on success when not NULL */
};

/*
 * Restores o->snapshot_path into o->data_dir (and o->wal_dir) as described above. Refuses, with
 * a one-line message in err and nothing created or changed:
 *   CE_INVAL   a bad --initial-cluster, name not in it ("couldn't find local name ..."), advertise
 *              URLs not this member's (etcd's message), duplicate members;
 *   CE_EXISTS  a data or WAL directory that exists and holds anything ("data-dir \"X\" exists
 *              and is not empty"), or is not a directory;
 *   CE_CORRUPT / CE_NOTFOUND / CE_IO  the file: missing, truncated, checksum mismatch, not a
 *              snapshot (snapfile_verify's message), a store LMDB cannot open, a bbolt
 *              database that is malformed or not etcd's schema (the importer's message);
 *   CE_INVAL   a bbolt snapshot holding a key cetcd cannot store (longer than 511 bytes);
 *   CE_IO / CE_NOMEM  while building (what was created is removed again).
 */
int node_restore(const struct node_restore_opts *o, char *err, size_t errsz);

#endif
