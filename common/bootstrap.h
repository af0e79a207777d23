/*
 * bootstrap.h: the membership entry a fresh cetcd member reads to learn how to start.
 *
 * The operator keeps one entry per member in the ConfigMap `<cluster>-members` (key = member
 * name); Kubernetes mounts it as a directory, one file per key, and `cetcd --bootstrap-dir DIR`
 * reads DIR/<name> when its data directory holds no WAL yet. This file owns the format:
 *
 *   initial-cluster-state=new|existing   how to start (etcd's flag of the same name)
 *   initial-cluster=n1=url1,n2=url2      the membership to start with (etcd's flag)
 *   joined=true|false                    true once the member has run with data: a fresh data
 *                                        directory under a joined entry means the data was lost
 *   member-id=<16 hex digits>            operator bookkeeping, not read by the server
 *   data-uid=<uid>                       operator bookkeeping (uid of the member's volume)
 *   restore-from=<absolute path>         start the new cluster from this snapshot file: the
 *                                        member restores it into its empty data directory
 *                                        (server/node/restore.h) first; only with
 *                                        initial-cluster-state=new
 *
 * One "key=value" per line; blank lines and lines starting with '#' are skipped; keys not
 * listed are ignored (forward compatible); a line without '=' or a bad value is an error.
 * bootstrap_entry_format writes the keys in the order above, so the same entry always gives
 * the same bytes (the operator compares text to avoid needless writes).
 */
#ifndef CETCD_BOOTSTRAP_H
#define CETCD_BOOTSTRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bootstrap_entry {
    bool state_new;           /* initial-cluster-state=new (else existing) */
    char *initial_cluster;    /* malloc'd, NULL if absent */
    bool joined;
    uint64_t member_id;       /* 0 if absent */
    char *data_uid;           /* malloc'd, NULL if absent */
    char *restore_from;       /* malloc'd, NULL if absent */
};

/* Parses text (len bytes, need not be NUL-terminated) into *out (zeroed first).
 * CE_INVAL with a message in err ("line 2: ...") on malformed input. */
int bootstrap_entry_parse(const char *text, size_t len, struct bootstrap_entry *out, char *err,
                          size_t errsz);
/* The entry as text (malloc'd, NUL-terminated) in *out. */
int bootstrap_entry_format(const struct bootstrap_entry *e, char **out);
void bootstrap_entry_clear(struct bootstrap_entry *e);

#endif
