/*
 * node_bootstrap.c: --bootstrap-dir, cetcd's extension for running under an operator.
 *
 * The operator records each member's start-up in a membership entry (format: common/bootstrap.h)
 * that Kubernetes mounts as DIR/<member name>. A member whose data directory holds no WAL reads
 * its entry once, before anything is created on disk, and starts with the entry's
 * initial-cluster and initial-cluster-state instead of the flags. It refuses to start when:
 *   - there is no entry: the operator has not added the member to the cluster yet, so neither
 *     "new" (a second cluster) nor "existing" (no such member) would be right;
 *   - the entry says joined=true: this member has run with data before, and an empty data
 *     directory now means that data was lost; rejoining under the old member ID would let it
 *     vote with an empty log, so it must be removed and added back as a new member;
 *   - the entry says restore-from=FILE (only with initial-cluster-state=new) and the restore
 *     fails: the file is missing, truncated or altered, or the data directory is not empty.
 * restore-from: the member restores FILE into its data directory (server/node/restore.h) with
 * its --name, the entry's initial-cluster, --initial-cluster-token and
 * --initial-advertise-peer-urls, then starts from it as a restarted member of the new cluster
 * (the WAL now exists). Every member of the entry's initial-cluster restored from the same file
 * with the same token gets the same cluster ID.
 * Invariant: a member with a WAL never reads DIR (as etcd ignores --initial-cluster then); a
 * member that read its entry has n->cfg.initial_cluster pointing at n->boot_initial_cluster.
 */
#include "bootstrap.h"
#include "err.h"
#include "fdio.h"
#include "log.h"
#include "node_int.h"
#include "restore.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENTRY_MAX (64 * 1024) /* a ConfigMap value; entries are a few hundred bytes */

/* A member name that names one file inside DIR. */
static bool name_is_file(const char *name)
{
    return name[0] && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

/* Reads path into buf (NUL-terminated, *len bytes); CE_NOTFOUND if it does not exist. */
static int read_entry(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? CE_NOTFOUND : ce_from_errno(errno);
    rc = fd_read_upto(fd, buf, cap - 1, len);
    close(fd);
    buf[*len] = 0;
    if (rc)
        return rc;
    return *len == cap - 1 ? CE_INVAL : 0;
}

/* restore-from: the snapshot file into the (empty) data directory, as `snapshot restore`. */
static int restore_entry(node *n, const char *path, const struct bootstrap_entry *e)
{
    struct node_restore_opts o = {0};
    struct node_restore_result r;
    char err[1024];
    int rc;

    o.snapshot_path = e->restore_from;
    o.name = n->cfg.name;
    o.data_dir = n->cfg.data_dir;
    o.wal_dir = n->cfg.wal_dir;
    o.initial_cluster = e->initial_cluster;
    o.initial_cluster_token = n->cfg.initial_cluster_token;
    o.advertise_peer_urls = n->cfg.advertise_peer_urls;
    o.nadvertise_peer = (size_t)n->cfg.nadvertise_peer;
    o.result = &r;
    rc = node_restore(&o, err, sizeof(err));
    if (rc) {
        log_error("node: member %s cannot restore from %s (bootstrap entry %s): %s",
                  n->cfg.name, e->restore_from, path, err);
        return rc == CE_NOMEM ? rc : CE_INVAL;
    }
    log_info("node: member %s restored %s into %s: cluster %016" PRIx64 " of %zu members, "
             "member %016" PRIx64 ", revision %" PRId64 ", index %" PRIu64, n->cfg.name,
             e->restore_from, n->cfg.data_dir, r.cluster_id, r.nmembers, r.member_id,
             r.revision, r.index);
    return 0;
}

/* The entry decides the start-up; refusals are logged here, one line each. */
static int apply_entry(node *n, const char *path, const struct bootstrap_entry *e)
{
    const char *name = n->cfg.name;
    int rc;

    if (e->joined) {
        log_error("node: member %s already joined the cluster but its data directory %s is "
                  "empty: its data was lost; remove it and add it back as a new member "
                  "(bootstrap entry %s says joined=true)", name, n->cfg.data_dir, path);
        return CE_INVAL;
    }
    if (e->restore_from) {
        rc = restore_entry(n, path, e);
        if (rc)
            return rc;
    }
    n->boot_initial_cluster = strdup(e->initial_cluster);
    if (!n->boot_initial_cluster)
        return CE_NOMEM;
    n->cfg.initial_cluster = n->boot_initial_cluster;
    n->cfg.initial_cluster_new = e->state_new;
    log_info("node: member %s starts from bootstrap entry %s: initial-cluster-state=%s "
             "initial-cluster=%s%s%s", name, path, e->state_new ? "new" : "existing",
             e->initial_cluster, e->restore_from ? " restore-from=" : "",
             e->restore_from ? e->restore_from : "");
    return 0;
}

int node_bootstrap_apply(node *n)
{
    const char *dir = n->cfg.bootstrap_dir, *name = n->cfg.name;
    struct bootstrap_entry e;
    char path[1200], err[256], *buf;
    size_t len = 0;
    int rc;

    if (!dir || !dir[0] || n->boot_read)
        return 0;
    n->boot_read = true;
    if (!name_is_file(name)) {
        log_error("node: member name \"%s\" cannot name a bootstrap entry in %s", name, dir);
        return CE_INVAL;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    buf = malloc(ENTRY_MAX);
    if (!buf)
        return CE_NOMEM;
    rc = read_entry(path, buf, ENTRY_MAX, &len);
    if (rc == CE_NOTFOUND)
        log_error("node: member %s has no bootstrap entry in %s: it has not been added to the "
                  "cluster yet (no file %s)", name, dir, path);
    else if (rc)
        log_error("node: cannot read bootstrap entry %s of member %s: %s", path, name,
                  rc == CE_INVAL ? "larger than 64 KiB" : ce_strerror(rc));
    if (rc)
        goto out_free_buf;
    rc = bootstrap_entry_parse(buf, len, &e, err, sizeof(err));
    if (rc) {
        log_error("node: bad bootstrap entry %s of member %s: %s", path, name, err);
        goto out_free_buf;
    }
    rc = apply_entry(n, path, &e);
    bootstrap_entry_clear(&e);
out_free_buf:
    free(buf);
    return rc;
}
