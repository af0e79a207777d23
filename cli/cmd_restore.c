/*
 * cmd_restore.c: `cetcdctl snapshot restore FILE`, offline, as etcdctl 3.4's: builds a new data
 * directory from a snapshot file (server/node/restore.h does the work) for one member of a new
 * cluster. Flags and defaults are etcdctl's:
 *   --name                          "default"
 *   --data-dir                      "<name>.etcd"
 *   --wal-dir                       "" (= <data-dir>/member/wal)
 *   --initial-cluster               "default=http://localhost:2380"
 *   --initial-cluster-token         "etcd-cluster"
 *   --initial-advertise-peer-urls   "http://localhost:2380" (comma-separated)
 *   --skip-hash-check               false
 * Like etcdctl it prints nothing on stdout: a progress line and the outcome go to stderr, a
 * refusal is "Error: <message>" with exit code 1 (128 for a wrong argument count). Unlike
 * etcdctl 3.4, an existing EMPTY data directory is accepted (the seeds' procedure empties it
 * with `rm -rf DIR/<everything>`), and a refused or failed restore leaves nothing behind.
 */
#include "ctl.h"
#include "node/restore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ADV_URLS 8

/* flag value or its default */
static const char *flag_or(const struct ctl *c, const char *name, const char *def)
{
    const char *v = ctl_flag(c, name);

    return v ? v : def;
}

/* Splits the comma-separated list in buf (modified) into urls; the count, or -1 if too many. */
static int split_urls(char *buf, const char **urls, int cap)
{
    int n = 0;

    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (!*tok)
            continue;
        if (n == cap)
            return -1;
        urls[n++] = tok;
    }
    return n;
}

int ctl_cmd_snapshot_restore(struct ctl *c)
{
    struct node_restore_opts o = {0};
    struct node_restore_result r;
    const char *urls[MAX_ADV_URLS];
    char data_dir[1024], err[1024], *adv;
    int n, rc;

    if (c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "snapshot restore requires exactly one argument");
    o.snapshot_path = c->args[0];
    o.name = flag_or(c, "name", "default");
    snprintf(data_dir, sizeof(data_dir), "%s.etcd", o.name);
    o.data_dir = flag_or(c, "data-dir", data_dir);
    o.wal_dir = flag_or(c, "wal-dir", NULL);
    o.initial_cluster = flag_or(c, "initial-cluster", "default=http://localhost:2380");
    o.initial_cluster_token = flag_or(c, "initial-cluster-token", "etcd-cluster");
    o.skip_hash_check = ctl_bool(c, "skip-hash-check");
    adv = strdup(flag_or(c, "initial-advertise-peer-urls", "http://localhost:2380"));
    if (!adv)
        return ctl_fail(EXIT_ERROR, "out of memory");
    n = split_urls(adv, urls, MAX_ADV_URLS);
    if (n <= 0) {
        free(adv);
        return ctl_fail(EXIT_BAD_ARGS, "--initial-advertise-peer-urls: want 1 to %d URLs",
                        MAX_ADV_URLS);
    }
    o.advertise_peer_urls = urls;
    o.nadvertise_peer = (size_t)n;
    o.result = &r;
    fprintf(stderr, "restoring snapshot %s into data-dir %s (wal-dir %s)\n", o.snapshot_path,
            o.data_dir, o.wal_dir && *o.wal_dir ? o.wal_dir : "<data-dir>/member/wal");
    rc = node_restore(&o, err, sizeof(err));
    free(adv);
    if (rc)
        return ctl_fail(EXIT_ERROR, "%s", err[0] ? err : ce_strerror(rc));
    fprintf(stderr, "restored snapshot %s: cluster %016" PRIx64 " of %zu members, member %016"
            PRIx64 " (%s), revision %" PRId64 ", raft index %" PRIu64 "\n", o.snapshot_path,
            r.cluster_id, r.nmembers, r.member_id, o.name, r.revision, r.index);
    return EXIT_OK;
}
