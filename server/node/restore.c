/*
 * restore.c: offline restore of a snapshot file into a new data directory (what it builds, the
 * IDs and the atomicity rules are documented in restore.h).
 *
 * Steps, in this order: check the flags (members, own name, advertise URLs) -> check the target
 * directories (absent or empty) -> verify the file (snapfile_verify) -> build everything in
 * temporary directories -> move the WAL segment(s) into a separate --wal-dir -> rename the
 * member directory into place. Invariant: nothing is created before the checks passed, and
 * every failure after that removes what this restore created (tracked in struct plan), so a
 * refused or failed restore leaves the directories as they were.
 */
#include "restore.h"
#include "atomicfile.h"
#include "err.h"
#include "fdio.h"
#include "members.h"
#include "mvcc/mvcc.h"
#include "snap/snap.h"
#include "snapfile.h"
#include "wal/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_PREFIX ".cetcd-restore."
#define RESTORE_TERM 1
#define COPY_CHUNK (1u << 20)
#define MAX_MOVED 16

struct plan {
    const struct node_restore_opts *o;
    node_member *members;
    size_t nmembers;
    uint64_t member_id, cluster_id, index;
    int64_t revision;
    uint8_t sha[32];              /* of the database bytes copied */
    struct snapfile_info info;
    bool wal_separate;            /* else the WAL lives at member/<wal_rel> */
    const char *wal_rel;
    char data_top[PATH_MAX];      /* topmost directory created for data_dir ("" = none) */
    char wal_top[PATH_MAX];       /* the same for a separate wal_dir */
    char tmp[PATH_MAX];           /* <data_dir>/.cetcd-restore.XXXXXX ("" = not made) */
    char wtmp[PATH_MAX];          /* <wal_dir>/.cetcd-restore.XXXXXX, WAL built in its wal/ */
    char moved[MAX_MOVED][NAME_MAX + 1]; /* segment names moved into wal_dir */
    size_t nmoved;
    bool committed;               /* the member directory is in place: nothing to undo */
    char *err;
    size_t errsz;
};

static int fail(struct plan *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* rc, with the message in the caller's buffer. */
static int fail(struct plan *p, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rc = ce_verrf(p->err, p->errsz, rc, fmt, ap);
    va_end(ap);
    return rc;
}

static int path_join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);

    return n < 0 || (size_t)n >= cap ? CE_INVAL : 0;
}

static uint64_t be64_get(const uint8_t *b)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return v;
}

/* ---- checks ------------------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* urls[0..n) sorted and joined with ',' into out. */
static void join_sorted(const char **urls, size_t n, char *out, size_t cap)
{
    size_t len = 0;

    qsort(urls, n, sizeof(*urls), cmp_str);
    out[0] = 0;
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "," : "", urls[i]);
}

/* etcd's rule: the advertised peer URLs are exactly this member's URLs in --initial-cluster. */
static int check_advertise(struct plan *p, const node_member *self)
{
    const char *adv[NODE_MAX_URLS], *mine[NODE_MAX_URLS];
    char a[NODE_MAX_URLS * 257], m[NODE_MAX_URLS * 257];
    size_t na = p->o->nadvertise_peer;

    if (na == 0)
        return 0;
    if (na > NODE_MAX_URLS)
        return fail(p, CE_INVAL, "too many --initial-advertise-peer-urls");
    for (size_t i = 0; i < na; i++)
        adv[i] = p->o->advertise_peer_urls[i];
    for (int i = 0; i < self->npeer; i++)
        mine[i] = self->peer_urls[i];
    join_sorted(adv, na, a, sizeof(a));
    join_sorted(mine, (size_t)self->npeer, m, sizeof(m));
    if (!strcmp(a, m))
        return 0;
    return fail(p, CE_INVAL, "--initial-cluster has %s=%s but missing from "
                "--initial-advertise-peer-urls=%s (resolved urls: \"%s\" != \"%s\")",
                self->name, m, a, a, m);
}

/* A peer URL given to two members would make their IDs collide or their traffic mix. */
static int check_duplicates(struct plan *p)
{
    for (size_t i = 0; i < p->nmembers; i++)
        for (int u = 0; u < p->members[i].npeer; u++)
            for (size_t j = i + 1; j < p->nmembers; j++)
                for (int v = 0; v < p->members[j].npeer; v++)
                    if (!strcmp(p->members[i].peer_urls[u], p->members[j].peer_urls[v]))
                        return fail(p, CE_INVAL, "--initial-cluster has duplicate peer URL %s "
                                    "(members %s and %s)", p->members[i].peer_urls[u],
                                    p->members[i].name, p->members[j].name);
    return 0;
}

static int check_members(struct plan *p)
{
    const node_member *self = NULL;
    char msg[256];
    int rc;

    if (!p->o->initial_cluster || !p->o->name)
        return fail(p, CE_INVAL, "restore needs a member name and --initial-cluster");
    rc = members_parse_initial(p->o->initial_cluster, p->o->initial_cluster_token, &p->members,
                               &p->nmembers, msg, sizeof(msg));
    if (rc)
        return fail(p, rc, "%s", msg);
    for (size_t i = 0; i < p->nmembers; i++)
        if (!strcmp(p->members[i].name, p->o->name))
            self = &p->members[i];
    if (!self)
        return fail(p, CE_INVAL, "couldn't find local name \"%s\" in the initial cluster "
                    "configuration", p->o->name);
    p->member_id = self->id;
    rc = check_duplicates(p);
    return rc ? rc : check_advertise(p, self);
}

/* True for an entry a restore ignores in a target directory: ".", "..", its own leftovers. */
static bool ignorable(const char *name)
{
    return !strcmp(name, ".") || !strcmp(name, "..") ||
           !strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX));
}

/* dir must be absent, or a directory holding nothing but restore leftovers. */
static int check_target(struct plan *p, const char *dir, const char *what)
{
    struct stat st;
    struct dirent *e;
    DIR *d;
    bool empty = true;

    if (stat(dir, &st) != 0)
        return errno == ENOENT ? 0 : fail(p, ce_from_errno(errno), "%s \"%s\": %s", what, dir,
                                          strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(p, CE_EXISTS, "%s \"%s\" exists and is not a directory", what, dir);
    d = opendir(dir);
    if (!d)
        return fail(p, ce_from_errno(errno), "%s \"%s\" cannot be read: %s", what, dir,
                    strerror(errno));
    while (empty && (e = readdir(d)) != NULL)
        empty = ignorable(e->d_name);
    closedir(d);
    return empty ? 0 : fail(p, CE_EXISTS, "%s \"%s\" exists and is not empty", what, dir);
}

/* Where the WAL goes: inside the member directory (default, or a --wal-dir under it), or a
 * separate directory. */
static void plan_wal(struct plan *p)
{
    const char *w = p->o->wal_dir, *d = p->o->data_dir;
    size_t dl = strlen(d);

    p->wal_rel = "wal";
    if (!w || !*w)
        return;
    if (!strncmp(w, d, dl) && !strncmp(w + dl, "/member", 7) &&
        (w[dl + 7] == 0 || w[dl + 7] == '/')) {
        p->wal_rel = w[dl + 7] ? w + dl + 8 : "";
        return;
    }
    p->wal_separate = true;
}

static int check_file(struct plan *p)
{
    char msg[512];
    int rc;

    rc = snapfile_verify(p->o->snapshot_path, !p->o->skip_hash_check, &p->info, msg, sizeof(msg));
    if (rc)
        return fail(p, rc, "%s", msg);
    if (p->info.kind != SNAPFILE_CETCD && p->info.kind != SNAPFILE_ETCD)
        return fail(p, CE_CORRUPT, "%s is not a snapshot file", p->o->snapshot_path);
    return 0;
}

/* ---- directories --------------------------------------------------------------------------- */

/* mkdir -p path, recording in top the topmost directory it created ("" if none). */
static int mkdirs_track(const char *path, char *top, size_t topsz)
{
    char tmp[PATH_MAX];

    top[0] = 0;
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return CE_INVAL;
    for (char *c = tmp + 1;; c++) {
        bool end = *c == 0;
        if (!end && *c != '/')
            continue;
        *c = 0;
        if (mkdir(tmp, 0700) == 0) {
            if (!top[0])
                snprintf(top, topsz, "%s", tmp);
        } else if (errno != EEXIST) {
            return ce_from_errno(errno);
        }
        if (end)
            return 0;
        *c = '/';
    }
}

/* Removes path and its parents up to top (a directory this restore created), if empty. */
static void unmake_dirs(const char *path, const char *top)
{
    char buf[PATH_MAX];
    char *slash;

    if (!top[0])
        return;
    snprintf(buf, sizeof(buf), "%s", path);
    for (;;) {
        rmdir(buf);
        if (!strcmp(buf, top) || !(slash = strrchr(buf, '/')) || slash == buf)
            return;
        *slash = 0;
    }
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path)
{
    if (path[0])
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Deletes the .cetcd-restore.* leftovers of a crashed restore in dir. */
static void remove_leftovers(const char *dir)
{
    char path[PATH_MAX];
    struct dirent *e;
    DIR *d = opendir(dir);

    if (!d)
        return;
    while ((e = readdir(d)) != NULL)
        if (!strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) &&
            !path_join(path, sizeof(path), dir, e->d_name))
            remove_tree(path);
    closedir(d);
}

/* Creates dir if missing (tracked in top) and deletes restore leftovers in it. */
static int prepare_dir(struct plan *p, const char *dir, char *top, const char *what)
{
    int rc = mkdirs_track(dir, top, PATH_MAX);

    if (rc)
        return fail(p, rc, "cannot create %s \"%s\": %s", what, dir, ce_strerror(rc));
    remove_leftovers(dir);
    return 0;
}

/* Both target directories ready, leftovers gone, before any temporary directory is made (the
 * WAL directory may be the data directory itself). */
static int prepare_dirs(struct plan *p)
{
    int rc = prepare_dir(p, p->o->data_dir, p->data_top, "data-dir");

    if (!rc && p->wal_separate)
        rc = prepare_dir(p, p->o->wal_dir, p->wal_top, "wal-dir");
    return rc;
}

/* A fresh temporary directory inside dir, into tmp. */
static int make_tmp(struct plan *p, const char *dir, char *tmp, const char *what)
{
    int rc;

    if (snprintf(tmp, PATH_MAX, "%s/" TMP_PREFIX "XXXXXX", dir) >= PATH_MAX) {
        tmp[0] = 0;
        return fail(p, CE_INVAL, "%s path too long", what);
    }
    if (!mkdtemp(tmp)) {
        rc = ce_from_errno(errno);
        tmp[0] = 0;
        return fail(p, rc, "cannot create a directory in %s \"%s\": %s", what, dir,
                    strerror(errno));
    }
    return 0;
}

/* Makes <tmp>/member/<sub> for each sub (NULL-terminated). */
static int make_member_dirs(struct plan *p, const char *const *subs)
{
    char path[PATH_MAX];

    for (; *subs; subs++) {
        if (snprintf(path, sizeof(path), "%s/member%s%s", p->tmp, **subs ? "/" : "", *subs) >=
            (int)sizeof(path))
            return fail(p, CE_INVAL, "data-dir path too long");
        if (mkdir(path, 0700) != 0)
            return fail(p, ce_from_errno(errno), "cannot create %s: %s", path, strerror(errno));
    }
    return 0;
}

/* ---- the store ----------------------------------------------------------------------------- */

/* Copies len bytes of in to out, hashing them into ctx. */
static int copy_hashed(struct plan *p, int in, int out, uint64_t len, EVP_MD_CTX *ctx)
{
    uint8_t *buf = malloc(COPY_CHUNK);
    int rc = buf ? 0 : CE_NOMEM;

    while (!rc && len) {
        size_t want = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK, got;
        if ((rc = fd_read_upto(in, buf, want, &got)) != 0 || got < want) {
            rc = fail(p, rc ? rc : CE_CORRUPT, "reading %s: %s", p->o->snapshot_path,
                      rc ? strerror(errno) : "the file shrank while it was being restored");
            break;
        }
        if (EVP_DigestUpdate(ctx, buf, got) != 1)
            rc = CE_NOMEM;
        if (!rc)
            rc = fd_write_full(out, buf, got);
        len -= got;
    }
    free(buf);
    return rc;
}

/* The database bytes of the snapshot file into <tmp>/member/db/data.mdb, hashed; the hash must
 * still be the one verified (the file did not change in between). */
static int copy_db(struct plan *p)
{
    char dst[PATH_MAX];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int in, out, rc;

    if (!ctx)
        return CE_NOMEM;
    if (path_join(dst, sizeof(dst), p->tmp, "member/db/data.mdb")) {
        rc = fail(p, CE_INVAL, "data-dir path too long");
        goto out_free_ctx;
    }
    in = open(p->o->snapshot_path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        rc = fail(p, ce_from_errno(errno), "open %s: %s", p->o->snapshot_path, strerror(errno));
        goto out_free_ctx;
    }
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = fail(p, ce_from_errno(errno), "create %s: %s", dst, strerror(errno));
        goto out_close_in;
    }
    rc = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : CE_NOMEM;
    if (!rc)
        rc = copy_hashed(p, in, out, p->info.db_size, ctx);
    if (!rc && EVP_DigestFinal_ex(ctx, p->sha, NULL) != 1)
        rc = CE_NOMEM;
    if (!rc && fsync(out) != 0)
        rc = fail(p, ce_from_errno(errno), "fsync %s: %s", dst, strerror(errno));
    if (!rc && p->info.has_hash && memcmp(p->sha, p->info.sha256, 32) != 0)
        rc = fail(p, CE_CORRUPT, "%s changed while it was being restored (sha256 differs from "
                  "the verified one)", p->o->snapshot_path);
    close(out);
out_close_in:
    close(in);
out_free_ctx:
    EVP_MD_CTX_free(ctx);
    if (rc && p->err && !p->err[0])
        fail(p, rc, "copying %s: %s", p->o->snapshot_path, ce_strerror(rc));
    return rc;
}

/* An etcd-format (bbolt) snapshot, cetcd's or etcd's: the database bytes mapped read-only,
 * hashed (still the verified hash: the file did not change in between), and imported into a new
 * store at <tmp>/member/db (mvcc_import_bbolt). */
static int import_db(struct plan *p)
{
    char dir[PATH_MAX], msg[512];
    size_t len = (size_t)p->info.db_size;
    void *map;
    int fd, rc;

    if (path_join(dir, sizeof(dir), p->tmp, "member/db"))
        return fail(p, CE_INVAL, "data-dir path too long");
    fd = open(p->o->snapshot_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(p, ce_from_errno(errno), "open %s: %s", p->o->snapshot_path, strerror(errno));
    map = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (map == MAP_FAILED) {
        rc = fail(p, len ? ce_from_errno(errno) : CE_CORRUPT, "mmap %s: %s", p->o->snapshot_path,
                  len ? strerror(errno) : "empty database");
        goto out_close;
    }
    rc = EVP_Digest(map, len, p->sha, NULL, EVP_sha256(), NULL) == 1 ? 0 : CE_NOMEM;
    if (!rc && p->info.has_hash && memcmp(p->sha, p->info.sha256, 32) != 0)
        rc = fail(p, CE_CORRUPT, "%s changed while it was being restored (sha256 differs from "
                  "the verified one)", p->o->snapshot_path);
    if (!rc && (rc = mvcc_import_bbolt(dir, map, len, msg, sizeof(msg))) != 0)
        fail(p, rc, "%s: %s", p->o->snapshot_path, msg);
    munmap(map, len);
out_close:
    close(fd);
    return rc;
}

/* The new cluster's ID: see restore.h. */
static void derive_cluster_id(struct plan *p)
{
    uint8_t in[40], md[EVP_MAX_MD_SIZE];
    uint64_t base = members_cluster_id(p->members, p->nmembers);
    unsigned int mdlen = 0;

    for (int i = 0; i < 8; i++)
        in[i] = (uint8_t)(base >> (56 - 8 * i));
    memcpy(in + 8, p->sha, 32);
    EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL);
    p->cluster_id = be64_get(md);
}

/* Opens the copied store, sets its consistent index to I = old index + 1 (term 1) and makes
 * that durable (mvcc_sync: the meta page too). */
static int set_store_index(struct plan *p)
{
    char dir[PATH_MAX], lock[PATH_MAX];
    mvcc_options mo = {0};
    mvcc *m;
    int rc;

    if (path_join(dir, sizeof(dir), p->tmp, "member/db"))
        return fail(p, CE_INVAL, "data-dir path too long");
    mo.dir = dir;
    rc = mvcc_open(&mo, &m);
    if (rc)
        return fail(p, rc, "%s: the store in it cannot be opened: %s", p->o->snapshot_path,
                    ce_strerror(rc));
    p->index = mvcc_consistent_index(m) + 1;
    p->revision = mvcc_rev(m);
    rc = mvcc_begin(m);
    if (!rc)
        rc = mvcc_commit(m, p->index, RESTORE_TERM);
    if (!rc)
        rc = mvcc_sync(m);
    mvcc_close(m);
    if (path_join(lock, sizeof(lock), dir, "lock.mdb") == 0)
        unlink(lock);
    return rc ? fail(p, rc, "cannot set the restored store's index: %s", ce_strerror(rc)) : 0;
}

/* ---- member list, Raft snapshot, WAL ----------------------------------------------------- */

static int write_members(struct plan *p)
{
    char path[PATH_MAX], *json = members_to_json(p->members, p->nmembers, p->cluster_id);
    int rc;

    if (!json)
        return fail(p, CE_NOMEM, "out of memory");
    rc = path_join(path, sizeof(path), p->tmp, "member/members.json");
    if (!rc)
        rc = atomic_write_path(path, json, strlen(json), true);
    free(json);
    return rc ? fail(p, rc, "cannot write %s: %s", path, ce_strerror(rc)) : 0;
}

static int write_snap(struct plan *p)
{
    char dir[PATH_MAX], *json = members_to_json(p->members, p->nmembers, p->cluster_id);
    uint64_t *voters = calloc(p->nmembers, sizeof(*voters));
    snap_meta m = {0};
    int rc = CE_NOMEM;

    if (!json || !voters)
        goto out_free;
    for (size_t i = 0; i < p->nmembers; i++)
        voters[i] = p->members[i].id;
    m.index = p->index;
    m.term = RESTORE_TERM;
    m.voters = voters;
    m.nvoters = p->nmembers;
    m.data = (uint8_t *)json;
    m.len = strlen(json);
    rc = path_join(dir, sizeof(dir), p->tmp, "member/snap");
    if (!rc)
        rc = snap_save(dir, &m);
out_free:
    free(voters);
    free(json);
    return rc ? fail(p, rc, "cannot write the Raft snapshot: %s", ce_strerror(rc)) : 0;
}

/* A WAL in dir at index I: metadata, snapshot marker (I, 1), hard state {1, none, I}. */
static int write_wal(struct plan *p, const char *dir)
{
    char meta[128];
    wal_snapshot mark = {p->index, RESTORE_TERM};
    wal_hardstate hs = {RESTORE_TERM, 0, p->index};
    wal *w;
    int rc;

    snprintf(meta, sizeof(meta), "member_id=%016" PRIx64 " cluster_id=%016" PRIx64, p->member_id,
             p->cluster_id);
    rc = wal_create(dir, (const uint8_t *)meta, strlen(meta), &w);
    if (rc)
        return fail(p, rc, "cannot create the WAL in %s: %s", dir, ce_strerror(rc));
    rc = wal_save_snapshot(w, &mark);
    if (!rc)
        rc = wal_save(w, &hs, NULL, 0);
    if (!rc)
        rc = wal_sync(w);
    wal_close(w);
    return rc ? fail(p, rc, "cannot write the WAL in %s: %s", dir, ce_strerror(rc)) : 0;
}

/* ---- building and committing --------------------------------------------------------------- */

static int build_wal(struct plan *p)
{
    char dir[PATH_MAX];
    int rc;

    if (p->wal_separate) {
        rc = make_tmp(p, p->o->wal_dir, p->wtmp, "wal-dir");
        if (!rc && path_join(dir, sizeof(dir), p->wtmp, "wal"))
            rc = fail(p, CE_INVAL, "wal-dir path too long");
        return rc ? rc : write_wal(p, dir);
    }
    if (snprintf(dir, sizeof(dir), "%s/member%s%s", p->tmp, *p->wal_rel ? "/" : "", p->wal_rel) >=
        (int)sizeof(dir))
        return fail(p, CE_INVAL, "wal-dir path too long");
    return write_wal(p, dir);
}

static int build(struct plan *p)
{
    static const char *const subs[] = {"", "db", "snap", NULL};
    char member[PATH_MAX];
    int rc;

    rc = prepare_dirs(p);
    if (!rc)
        rc = make_tmp(p, p->o->data_dir, p->tmp, "data-dir");
    if (!rc)
        rc = make_member_dirs(p, subs);
    if (!rc)
        rc = p->info.kind == SNAPFILE_ETCD ? import_db(p) : copy_db(p);
    if (rc)
        return rc;
    derive_cluster_id(p);
    rc = set_store_index(p);
    if (!rc)
        rc = write_members(p);
    if (!rc)
        rc = write_snap(p);
    if (!rc)
        rc = build_wal(p);
    if (rc)
        return rc;
    rc = path_join(member, sizeof(member), p->tmp, "member");
    if (!rc)
        rc = atomic_sync_dir(member);
    return rc ? fail(p, rc, "fsync %s: %s", member, ce_strerror(rc)) : 0;
}

/* Moves the segment files of <wtmp>/wal into wal_dir (each rename atomic), then syncs
 * wal_dir. */
static int commit_wal(struct plan *p)
{
    char src[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
    struct dirent *e;
    DIR *d = NULL;
    int rc = 0;

    if (!path_join(src, sizeof(src), p->wtmp, "wal"))
        d = opendir(src);
    if (!d)
        return fail(p, ce_from_errno(errno), "cannot read %s: %s", src, strerror(errno));
    while (!rc && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (p->nmoved == MAX_MOVED || path_join(from, sizeof(from), src, e->d_name) ||
            path_join(to, sizeof(to), p->o->wal_dir, e->d_name))
            rc = CE_INVAL;
        else if (rename(from, to) != 0)
            rc = ce_from_errno(errno);
        else
            snprintf(p->moved[p->nmoved++], sizeof(p->moved[0]), "%s", e->d_name);
    }
    closedir(d);
    if (!rc)
        rc = atomic_sync_dir(p->o->wal_dir);
    return rc ? fail(p, rc, "cannot move the WAL into %s: %s", p->o->wal_dir, ce_strerror(rc))
              : 0;
}

/* The WAL first, then the member directory: a crash in between leaves a WAL without a store
 * and snapshot, which cetcd refuses to start from, never a fresh member beside old data. */
static int commit(struct plan *p)
{
    char from[PATH_MAX], to[PATH_MAX];
    int rc = p->wal_separate ? commit_wal(p) : 0;

    if (rc)
        return rc;
    if (path_join(from, sizeof(from), p->tmp, "member") ||
        path_join(to, sizeof(to), p->o->data_dir, "member"))
        return fail(p, CE_INVAL, "data-dir path too long");
    if (rename(from, to) != 0)
        return fail(p, ce_from_errno(errno), "cannot rename %s to %s: %s", from, to,
                    strerror(errno));
    p->committed = true;
    rc = atomic_sync_dir(p->o->data_dir);
    rmdir(p->tmp);
    if (p->wal_separate)
        remove_tree(p->wtmp);
    return rc ? fail(p, rc, "fsync %s: %s", p->o->data_dir, ce_strerror(rc)) : 0;
}

/* Removes everything this restore created (it failed before the final rename). */
static void undo(struct plan *p)
{
    char path[PATH_MAX];

    if (p->committed)
        return;
    for (size_t i = 0; i < p->nmoved; i++)
        if (!path_join(path, sizeof(path), p->o->wal_dir, p->moved[i]))
            unlink(path);
    remove_tree(p->tmp);
    remove_tree(p->wtmp);
    unmake_dirs(p->o->data_dir, p->data_top);
    if (p->wal_separate)
        unmake_dirs(p->o->wal_dir, p->wal_top);
}

static int checks(struct plan *p)
{
    int rc;

    if (!p->o->snapshot_path || !p->o->data_dir || !*p->o->data_dir)
        return fail(p, CE_INVAL, "restore needs a snapshot file and a data directory");
    rc = check_members(p);
    if (rc)
        return rc;
    plan_wal(p);
    rc = check_target(p, p->o->data_dir, "data-dir");
    if (!rc && p->wal_separate)
        rc = check_target(p, p->o->wal_dir, "wal-dir");
    return rc ? rc : check_file(p);
}

static void report(const struct plan *p)
{
    struct node_restore_result *r = p->o->result;

    if (!r)
        return;
    r->cluster_id = p->cluster_id;
    r->member_id = p->member_id;
    r->index = p->index;
    r->revision = p->revision;
    r->nmembers = p->nmembers;
}

int node_restore(const struct node_restore_opts *o, char *err, size_t errsz)
{
    struct plan *p = calloc(1, sizeof(*p));
    int rc;

    if (!p)
        return CE_NOMEM;
    p->o = o;
    p->err = err;
    p->errsz = errsz;
    if (err && errsz)
        err[0] = 0;
    rc = checks(p);
    if (rc)
        goto out_free;
    rc = build(p);
    if (!rc)
        rc = commit(p);
    if (rc)
        undo(p);
    else
        report(p);
out_free:
    free(p->members);
    free(p);
    return rc;
}
