/*
 * snap.c: Raft snapshot metadata files: save (atomic, durable), load the newest valid one
 * (damaged ones renamed to .broken), purge old ones.
 *
 * FILE NAME: "<term:016x>-<index:016x>.snap" (lower-case hex), as etcd names its snapshots.
 * Written as "<name>.tmp", fsynced, renamed to <name>, then the directory is fsynced.
 *
 * FILE FORMAT (all integers little-endian):
 *     offset       size    field
 *     0            8       magic "cetcdSNP"
 *     8            4       version = 1
 *     12           4       zero
 *     16           8       index (>= 1; must equal the file name's)
 *     24           8       term (must equal the file name's)
 *     32           4       nvoters
 *     36           4       nlearners
 *     40           8       len: length of the opaque blob
 *     48           8*nv    voter ids
 *     ...          8*nl    learner ids
 *     ...          len     blob
 *     end-4        4       crc32c(0, every byte before it)
 * A file is valid iff its size is exactly 52 + 8*(nvoters + nlearners) + len (at most
 * SNAP_MAX_FILE), the magic, version and zero field match, the CRC matches, and index and term
 * match the name. Anything else is damage: the file is renamed to "<name>.broken".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "snap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fdio.h"
#include "log.h"
#include "crc32c.h"
#include "atomicfile.h"
#include "hexname.h"
#include "lebytes.h"

#define MAGIC "cetcdSNP"
#define VERSION 1
#define FIXED 48
#define SNAP_MAX_FILE (512u * 1024 * 1024)
#define NAME_LEN 38 /* 16 hex, '-', 16 hex, ".snap" */

struct snapname {
    uint64_t term, index;
    char name[NAME_LEN + 1];
};

static bool parse_name(const char *name, struct snapname *sn)
{
    if (strlen(name) != NAME_LEN || name[16] != '-' || strcmp(name + 33, ".snap") != 0)
        return false;
    memcpy(sn->name, name, NAME_LEN + 1);
    return hex16_parse(name, &sn->term) && hex16_parse(name + 17, &sn->index);
}

static bool is_tmp_name(const char *name)
{
    size_t n = strlen(name);
    return n == NAME_LEN + 4 && strcmp(name + NAME_LEN, ".tmp") == 0;
}

/* Newest first: higher index, then higher term. */
static int cmp_newest_first(const void *a, const void *b)
{
    const struct snapname *x = a, *y = b;
    if (x->index != y->index)
        return x->index > y->index ? -1 : 1;
    if (x->term != y->term)
        return x->term > y->term ? -1 : 1;
    return 0;
}

static int push_name(struct snapname **v, size_t *n, size_t *cap, const struct snapname *sn)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct snapname *p = realloc(*v, nc * sizeof *p);
        if (!p)
            return CE_NOMEM;
        *v = p;
        *cap = nc;
    }
    (*v)[(*n)++] = *sn;
    return 0;
}

/* Lists the .snap files of dir, newest first; removes leftover .tmp files if remove_tmp. */
static int list_snaps(int dfd, bool remove_tmp, struct snapname **out, size_t *n)
{
    int dup_fd = dup(dfd);
    if (dup_fd < 0)
        return ce_from_errno(errno);
    DIR *d = fdopendir(dup_fd);
    if (!d) {
        close(dup_fd);
        return ce_from_errno(errno);
    }
    struct snapname *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct snapname sn;
        if (parse_name(de->d_name, &sn))
            rc = push_name(&v, &cnt, &cap, &sn);
        else if (remove_tmp && is_tmp_name(de->d_name))
            unlinkat(dfd, de->d_name, 0);
    }
    closedir(d);
    if (rc != 0) {
        free(v);
        return rc;
    }
    if (cnt > 1)
        qsort(v, cnt, sizeof *v, cmp_newest_first);
    *out = v;
    *n = cnt;
    return 0;
}

static int open_dir(const char *dir, int *dfd)
{
    *dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dfd >= 0)
        return 0;
    return errno == ENOENT ? CE_NOTFOUND : ce_from_errno(errno);
}

/* ---------- save ---------- */

static size_t encoded_size(const snap_meta *m)
{
    return FIXED + 8 * (m->nvoters + m->nlearners) + m->len + 4;
}

static void encode(const snap_meta *m, uint8_t *buf, size_t size)
{
    memcpy(buf, MAGIC, 8);
    le_put32(buf + 8, VERSION);
    le_put32(buf + 12, 0);
    le_put64(buf + 16, m->index);
    le_put64(buf + 24, m->term);
    le_put32(buf + 32, (uint32_t)m->nvoters);
    le_put32(buf + 36, (uint32_t)m->nlearners);
    le_put64(buf + 40, m->len);
    uint8_t *p = buf + FIXED;
    for (size_t i = 0; i < m->nvoters; i++, p += 8)
        le_put64(p, m->voters[i]);
    for (size_t i = 0; i < m->nlearners; i++, p += 8)
        le_put64(p, m->learners[i]);
    if (m->len)
        memcpy(p, m->data, m->len);
    le_put32(buf + size - 4, crc32c(0, buf, size - 4));
}

static bool meta_valid(const snap_meta *m)
{
    return m->index > 0 && m->nvoters <= UINT32_MAX / 8 && m->nlearners <= UINT32_MAX / 8 &&
           m->len <= SNAP_MAX_FILE && (m->nvoters == 0 || m->voters) &&
           (m->nlearners == 0 || m->learners) && (m->len == 0 || m->data) &&
           encoded_size(m) <= SNAP_MAX_FILE;
}

/* Creates dir if missing (one level) and makes its entry durable. */
static int ensure_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0)
        return errno == EEXIST ? 0 : ce_from_errno(errno);
    char *parent = strdup(dir);
    if (!parent)
        return CE_NOMEM;
    char *slash = strrchr(parent, '/');
    const char *path = ".";
    if (slash == parent) {
        path = "/";
    } else if (slash) {
        *slash = '\0';
        path = parent;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : ce_from_errno(errno);
    if (fd >= 0)
        close(fd);
    free(parent);
    return rc;
}

int snap_save(const char *dir, const snap_meta *m)
{
    if (!meta_valid(m))
        return CE_INVAL;
    int rc = ensure_dir(dir);
    if (rc != 0)
        return rc;
    int dfd;
    rc = open_dir(dir, &dfd);
    if (rc != 0)
        return rc;
    size_t size = encoded_size(m);
    uint8_t *buf = malloc(size);
    if (!buf) {
        rc = CE_NOMEM;
        goto out_close_dir;
    }
    encode(m, buf, size);
    char name[NAME_LEN + 1];
    snprintf(name, sizeof name, "%016llx-%016llx.snap", (unsigned long long)m->term,
             (unsigned long long)m->index);
    rc = atomic_write(dfd, name, buf, size, true);
    free(buf);
out_close_dir:
    close(dfd);
    return rc;
}

/* ---------- load ---------- */

void snap_meta_free(snap_meta *m)
{
    if (!m)
        return;
    free(m->voters);
    free(m->learners);
    free(m->data);
    memset(m, 0, sizeof *m);
}

/* Reads the whole file (at most SNAP_MAX_FILE; larger is CE_CORRUPT). */
static int read_file(int dfd, const char *name, uint8_t **out, size_t *len)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ce_from_errno(errno);
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : ce_from_errno(errno);
    if (rc == 0 && (st.st_size < 0 || (uint64_t)st.st_size > SNAP_MAX_FILE))
        rc = CE_CORRUPT;
    uint8_t *buf = NULL;
    size_t n = rc == 0 ? (size_t)st.st_size : 0, got = 0;
    if (rc == 0 && !(buf = malloc(n ? n : 1)))
        rc = CE_NOMEM;
    if (rc == 0)
        rc = fd_read_upto(fd, buf, n, &got);
    close(fd);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = got;
    return 0;
}

static int copy_ids(const uint8_t *p, size_t n, uint64_t **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    *out = malloc(n * sizeof **out);
    if (!*out)
        return CE_NOMEM;
    for (size_t i = 0; i < n; i++)
        (*out)[i] = le_get64(p + 8 * i);
    return 0;
}

/* Checks and decodes a file's bytes; CE_CORRUPT if they are not a valid snapshot for sn. */
static int decode(const struct snapname *sn, const uint8_t *buf, size_t size, snap_meta *m)
{
    memset(m, 0, sizeof *m);
    if (size < FIXED + 4 || memcmp(buf, MAGIC, 8) != 0 || le_get32(buf + 8) != VERSION ||
        le_get32(buf + 12) != 0)
        return CE_CORRUPT;
    uint64_t nv = le_get32(buf + 32), nl = le_get32(buf + 36), len = le_get64(buf + 40);
    if (len > SNAP_MAX_FILE || FIXED + 8 * (nv + nl) + len + 4 != size)
        return CE_CORRUPT;
    if (crc32c(0, buf, size - 4) != le_get32(buf + size - 4))
        return CE_CORRUPT;
    m->index = le_get64(buf + 16);
    m->term = le_get64(buf + 24);
    if (m->index != sn->index || m->term != sn->term || m->index == 0)
        return CE_CORRUPT;
    const uint8_t *p = buf + FIXED;
    int rc = copy_ids(p, nv, &m->voters);
    m->nvoters = nv;
    if (rc == 0)
        rc = copy_ids(p + 8 * nv, nl, &m->learners);
    m->nlearners = nl;
    if (rc == 0 && len && !(m->data = malloc(len)))
        rc = CE_NOMEM;
    if (rc == 0 && len)
        memcpy(m->data, p + 8 * (nv + nl), len);
    m->len = len;
    if (rc != 0)
        snap_meta_free(m);
    return rc;
}

static void mark_broken(int dfd, const char *dir, const char *name)
{
    char broken[NAME_LEN + 8];
    snprintf(broken, sizeof broken, "%s.broken", name);
    log_warn("snap: damaged snapshot file=%s/%s renamed to %s", dir, name, broken);
    if (renameat(dfd, name, dfd, broken) != 0)
        log_error("snap: rename %s/%s: %s", dir, name, strerror(errno));
    else
        fsync(dfd);
}

/* Loads one file: 0, CE_CORRUPT (already renamed away), or another error. */
static int load_one(int dfd, const char *dir, const struct snapname *sn, snap_meta *out)
{
    uint8_t *buf = NULL;
    size_t size = 0;
    int rc = read_file(dfd, sn->name, &buf, &size);
    if (rc == 0) {
        rc = decode(sn, buf, size, out);
        free(buf);
    }
    if (rc == CE_CORRUPT)
        mark_broken(dfd, dir, sn->name);
    return rc;
}

int snap_load_newest_upto(const char *dir, uint64_t max_index, snap_meta *out)
{
    memset(out, 0, sizeof *out);
    int dfd;
    int rc = open_dir(dir, &dfd);
    if (rc != 0)
        return rc;
    struct snapname *v = NULL;
    size_t n = 0;
    rc = list_snaps(dfd, false, &v, &n);
    if (rc != 0)
        goto out_close_dir;
    rc = CE_NOTFOUND;
    for (size_t i = 0; i < n && (rc == CE_NOTFOUND || rc == CE_CORRUPT); i++) {
        if (v[i].index > max_index)
            continue;
        rc = load_one(dfd, dir, &v[i], out);
    }
    if (rc == CE_CORRUPT)
        rc = CE_NOTFOUND;
    free(v);
out_close_dir:
    close(dfd);
    return rc;
}

int snap_load_newest(const char *dir, snap_meta *out)
{
    return snap_load_newest_upto(dir, UINT64_MAX, out);
}

/* ---------- purge ---------- */

int snap_purge(const char *dir, size_t keep)
{
    int dfd;
    int rc = open_dir(dir, &dfd);
    if (rc != 0)
        return rc == CE_NOTFOUND ? 0 : rc;
    struct snapname *v = NULL;
    size_t n = 0;
    rc = list_snaps(dfd, true, &v, &n);
    for (size_t i = keep; rc == 0 && i < n; i++)
        if (unlinkat(dfd, v[i].name, 0) != 0 && errno != ENOENT)
            rc = ce_from_errno(errno);
    if (rc == 0 && n > keep && fsync(dfd) != 0)
        rc = ce_from_errno(errno);
    free(v);
    close(dfd);
    return rc;
}
