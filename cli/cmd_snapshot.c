/*
 * cmd_snapshot.c: cetcdctl snapshot save / status (restore is cmd_restore.c's).
 *
 * save FILE (etcdctl 3.4): streams Maintenance.Snapshot of the one endpoint into FILE.part
 * (mode 0600, truncated if left over), fsyncs it, verifies it (snapfile_verify: whole pages
 * plus a SHA-256 that matches), renames it to FILE and fsyncs the directory, then prints
 * "Snapshot saved at FILE". Any failure removes FILE.part and exits 5, as etcdctl.
 *
 * save --dir DIR --prefix NAME [--retention N] [--result-file PATH] (cetcd extension, the
 * operator's backup CronJob relies on it exactly):
 *   - the file is DIR/<NAME>-<YYYYMMDDTHHMMSSZ>-r<revision>.db: the UTC time at the start, the
 *     revision of the saved data (read from the verified file: the last key's main revision
 *     for an etcd-format file, cetcd's or etcd's; the store's revision for an old cetcd LMDB
 *     file; etcd 3.4's stream carries no header); written as DIR/<NAME>-<stamp>.part first, same fsync/verify/rename steps;
 *   - then, when N > 0, the files named <NAME>-<8 digits>T<6 digits>Z-r<digits>.db beyond the
 *     newest N are deleted, oldest first (time, then revision, order); nothing else in DIR is
 *     ever touched;
 *   - success prints one JSON line on stdout and writes the same line to PATH:
 *       {"file":"<name>","revision":R,"size":S,"sha256":"<hex>","time":"<RFC3339 UTC>",
 *        "deleted":["<name>",...]}
 *     size is the whole file (database plus hash), sha256 its trailing hash;
 *   - failure writes {"error":"<message>"} to PATH, prints "Error: <message>" on stderr, exits
 *     non-zero (128 bad arguments, 5 a failed transfer, 1 a failure after the file was
 *     published) and leaves no .part behind, also when SIGINT, SIGTERM or SIGHUP ends the run
 *     (the handler removes the .part and writes {"error":"snapshot save interrupted by a
 *     signal"} to PATH).
 *
 * status FILE [-w simple|json|table|fields] (etcdctl 3.4's columns hash, revision, total keys,
 * total size): the file is verified first (a hash, when present, must match; a file without
 * one, a copied db file, is accepted, as etcdctl does), then read in place:
 *   etcd-format file (etcd's, and cetcd's current snapshots): bbolt reader (common/bbolt.h),
 *   etcd's own numbers, so etcdctl and cetcdctl agree on the same file;
 *   old cetcd (LMDB) file: mvcc_stat_file (LMDB read-only): hash = CRC-32C over each table's name then its
 *   keys and values in order, revision = the store's, total size = pages in use * page size.
 */
#include "ctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomicfile.h"
#include "bbolt.h"
#include "fdio.h"
#include "mvcc/mvcc.h"
#include "snapfile.h"

#define MSG_LEN 10240           /* room for two paths */
#define STAMP_LEN 16            /* YYYYMMDDTHHMMSSZ */
#define MAX_BACKUPS 100000

/* What `snapshot status` prints. */
struct snap_status {
    uint32_t hash;
    int64_t revision;
    uint64_t total_keys;
    int64_t total_size;
};

/* ---------------------------------------------------------------- status */

/* etcd file: the bbolt reader over a read-only mapping of the database part. */
static int status_etcd(const char *path, uint64_t db_size, struct snap_status *out, char *msg)
{
    struct bbolt_status bs;
    void *map;
    int fd, rc;

    if (db_size == 0 || db_size > SIZE_MAX)
        return ce_errf(msg, MSG_LEN, CE_CORRUPT, "snapshot file is empty");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ce_errf(msg, MSG_LEN, CE_IO, "open %s: %s", path, strerror(errno));
    map = mmap(NULL, (size_t)db_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return ce_errf(msg, MSG_LEN, CE_IO, "mmap %s: %s", path, strerror(errno));
    rc = bbolt_etcd_status(map, (size_t)db_size, &bs, msg, MSG_LEN);
    munmap(map, (size_t)db_size);
    if (rc == 0) {
        out->hash = bs.hash;
        out->revision = bs.revision;
        out->total_keys = bs.total_keys;
        out->total_size = bs.total_size;
    } else if (rc != CE_CORRUPT || !msg[0]) {
        snprintf(msg, MSG_LEN, "%s", ce_strerror(rc));
    }
    return rc;
}

static int status_cetcd(const char *path, struct snap_status *out, char *msg)
{
    mvcc_file_stat fs;
    int rc = mvcc_stat_file(path, &fs, msg, MSG_LEN);

    if (rc)
        return rc;
    out->hash = fs.hash;
    out->revision = fs.revision;
    out->total_keys = fs.total_keys;
    out->total_size = fs.total_size;
    return 0;
}

/* Verifies path (the hash required or not) and reads its status. 0 or CE_*, msg set. */
static int file_status(const char *path, bool require_hash, struct snapfile_info *info,
                       struct snap_status *st, char *msg)
{
    int rc = snapfile_verify(path, require_hash, info, msg, MSG_LEN);

    if (rc)
        return rc;
    msg[0] = 0;
    if (info->kind == SNAPFILE_ETCD)
        return status_etcd(path, info->db_size, st, msg);
    return status_cetcd(path, st, msg);
}

static void print_status(const struct ctl *c, const struct snap_status *s)
{
    char size[32], hash[16], rev[24], keys[24];
    struct jw w = {stdout, false};

    switch (c->fmt) {
    case OUT_JSON:
        ctl_jw_obj(&w, NULL);
        ctl_jw_u64(&w, "hash", s->hash);
        ctl_jw_i64(&w, "revision", s->revision);
        ctl_jw_u64(&w, "totalKey", s->total_keys);
        ctl_jw_i64(&w, "totalSize", s->total_size);
        ctl_jw_end_obj(&w);
        putchar('\n');
        return;
    case OUT_FIELDS:
        printf("\"Hash\" : %" PRIu32 "\n\"Revision\" : %" PRId64 "\n\"Keys\" : %" PRIu64
               "\n\"Size\" : %" PRId64 "\n", s->hash, s->revision, s->total_keys, s->total_size);
        return;
    default:
        break;
    }
    ctl_out_human_bytes((uint64_t)s->total_size, size, sizeof(size));
    snprintf(hash, sizeof(hash), "%" PRIx32, s->hash);
    snprintf(rev, sizeof(rev), "%" PRId64, s->revision);
    snprintf(keys, sizeof(keys), "%" PRIu64, s->total_keys);
    if (c->fmt == OUT_TABLE) {
        static const char *const hdr[] = {"HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"};
        const char *const row[] = {hash, rev, keys, size};
        struct table t;
        ctl_table_init(&t, hdr, 4);
        if (ctl_table_add(&t, row) == 0)
            ctl_table_print(&t, stdout);
        ctl_table_free(&t);
        return;
    }
    printf("%s, %s, %s, %s\n", hash, rev, keys, size);
}

static int cmd_status(struct ctl *c)
{
    struct snapfile_info info;
    struct snap_status st;
    char msg[MSG_LEN];
    int rc;

    if (c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "snapshot status requires exactly one argument");
    rc = file_status(c->args[0], false, &info, &st, msg);
    if (rc == CE_NOTFOUND)
        return ctl_fail(EXIT_ERROR, "stat %s: no such file or directory", c->args[0]);
    if (rc)
        return ctl_fail(EXIT_ERROR, "%s", msg[0] ? msg : ce_strerror(rc));
    print_status(c, &st);
    return EXIT_OK;
}

/* ---------------------------------------------------------------- save */

struct sink {
    int fd;
    int err;            /* errno of a failed write */
};

static int sink_write(void *ctx, const void *data, size_t len)
{
    struct sink *s = ctx;

    if (fd_write_full(s->fd, data, len) == 0)
        return 0;
    s->err = errno;
    return CE_IO;
}

/* The directory part of path ("." if none), into buf. */
static void dir_of(const char *path, char *buf, size_t sz)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(buf, sz, ".");
    else if (slash == path)
        snprintf(buf, sz, "/");
    else
        snprintf(buf, sz, "%.*s", (int)(slash - path), path);
}

/* The stream's failure as etcdctl words it. */
static void stream_msg(cetcd_client *cl, const char *ep, int rc, const struct sink *s,
                       const char *part, char *msg)
{
    char e[128], buf[MSG_LEN];

    if (s->err) {
        ctl_go_errno(s->err, e, sizeof(e));
        snprintf(msg, MSG_LEN, "write %s: %s", part, e);
    } else if (rc == CE_UNREACHABLE || rc == CE_TIMEOUT) {
        snprintf(msg, MSG_LEN, "%s: context deadline exceeded", ep);
    } else {
        snprintf(msg, MSG_LEN, "%s", ctl_err_text(cl, rc, buf, sizeof(buf)));
    }
}

/* The .part file being written, removed by a terminating signal too (a CronJob's pod killed
 * at its deadline leaves no .part behind); g_have_part says g_part is complete. */
static char g_part[4096];
static volatile sig_atomic_t g_have_part;
/* backup mode: the result file gets this line when a signal ends the run */
static char g_result[4096];
static volatile sig_atomic_t g_have_result;
static const char sig_json[] = "{\"error\":\"snapshot save interrupted by a signal\"}\n";

static void on_signal(int sig)
{
    int fd;

    if (g_have_part)
        unlink(g_part);
    if (g_have_result && (fd = open(g_result, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) >= 0) {
        if (write(fd, sig_json, sizeof(sig_json) - 1) < 0) {
            /* nothing more can be done in a signal handler */
        }
        close(fd);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void part_track(const char *part)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa = {.sa_handler = on_signal};

    g_have_part = 0;
    snprintf(g_part, sizeof(g_part), "%s", part);
    g_have_part = 1;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
}

static void part_untrack(void) { g_have_part = 0; }

/* Streams the snapshot into part, fsyncs and closes it, then verifies it. On failure part is
 * removed and msg says why. */
static int fetch(cetcd_client *cl, const char *ep, const char *part, struct snapfile_info *info,
                 char *msg)
{
    struct sink s = {.fd = -1};
    char e[128];
    int rc;

    part_track(part);
    s.fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (s.fd < 0) {
        ctl_go_errno(errno, e, sizeof(e));
        snprintf(msg, MSG_LEN, "could not open %s (open %s: %s)", part, part, e);
        part_untrack();
        return CE_IO;
    }
    rc = cetcd_snapshot(cl, NULL, sink_write, &s);
    if (rc) {
        stream_msg(cl, ep, rc, &s, part, msg);
        goto out_close;
    }
    if (fsync(s.fd) != 0) {
        ctl_go_errno(errno, e, sizeof(e));
        rc = ce_errf(msg, MSG_LEN, CE_IO, "fsync %s: %s", part, e);
    }
out_close:
    if (close(s.fd) != 0 && !rc) {
        ctl_go_errno(errno, e, sizeof(e));
        rc = ce_errf(msg, MSG_LEN, CE_IO, "close %s: %s", part, e);
    }
    if (!rc)
        rc = snapfile_verify(part, true, info, msg, MSG_LEN);
    if (rc) {
        unlink(part);
        part_untrack();
    }
    return rc;
}

/* Renames part to path and makes the rename durable; on failure part is removed. */
static int publish(const char *part, const char *path, char *msg)
{
    char dir[4096], e[128];

    if (rename(part, path) != 0) {
        ctl_go_errno(errno, e, sizeof(e));
        snprintf(msg, MSG_LEN, "could not rename %s to %s (%s)", part, path, e);
        unlink(part);
        part_untrack();
        return CE_IO;
    }
    part_untrack();
    dir_of(path, dir, sizeof(dir));
    if (atomic_sync_dir(dir) != 0)
        return ce_errf(msg, MSG_LEN, CE_IO, "fsync of directory %s failed", dir);
    return 0;
}

static int save_file(struct ctl *c)
{
    struct snapfile_info info;
    cetcd_client *cl;
    char part[4096], msg[MSG_LEN];
    int rc;

    if ((rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    snprintf(part, sizeof(part), "%s.part", c->args[0]);
    rc = fetch(cl, c->endpoints[0], part, &info, msg);
    if (rc == 0)
        rc = publish(part, c->args[0], msg);
    cetcd_client_free(cl);
    if (rc)
        return ctl_fail(EXIT_INTERRUPTED, "%s", msg);
    printf("Snapshot saved at %s\n", c->args[0]);
    return EXIT_OK;
}

/* ---------------------------------------------------------------- backup mode */

struct backup {
    const char *dir, *prefix, *result_file;
    long retention;
    char stamp[STAMP_LEN + 1];  /* YYYYMMDDTHHMMSSZ */
    char when[32];              /* RFC 3339, UTC */
    char name[512];             /* the file written, in dir */
    struct snapfile_info info;
    int64_t revision;
    char **deleted;
    size_t ndeleted;
};

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return n > 0;
}

/* Whether name is <prefix>-<8 digits>T<6 digits>Z-r<1..19 digits>.db; *stamp gets the stamp. */
static bool backup_name(const char *name, const char *prefix, const char **stamp)
{
    size_t pl = strlen(prefix), nl = strlen(name);
    const char *s, *r;

    if (nl < pl + 1 + STAMP_LEN + 2 + 1 + 3 || strncmp(name, prefix, pl) || name[pl] != '-')
        return false;
    s = name + pl + 1;
    if (!all_digits(s, 8) || s[8] != 'T' || !all_digits(s + 9, 6) || s[15] != 'Z')
        return false;
    r = s + STAMP_LEN;
    if (r[0] != '-' || r[1] != 'r' || strcmp(name + nl - 3, ".db"))
        return false;
    if (!all_digits(r + 2, (size_t)(name + nl - 3 - (r + 2))) || name + nl - 3 - (r + 2) > 19)
        return false;
    *stamp = s;
    return true;
}

static const char *g_prefix;    /* for the qsort comparator */

/* Time order: the stamp, then the revision as a number. */
static int backup_cmp(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b, *sx, *sy;
    int c;

    backup_name(x, g_prefix, &sx);
    backup_name(y, g_prefix, &sy);
    if ((c = strncmp(sx, sy, STAMP_LEN)))
        return c;
    unsigned long long rx = strtoull(sx + STAMP_LEN + 2, NULL, 10);
    unsigned long long ry = strtoull(sy + STAMP_LEN + 2, NULL, 10);
    return (rx > ry) - (rx < ry);
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The backup files in dir, sorted oldest first. */
static int list_backups(DIR *d, const char *prefix, char ***out, size_t *n, char *msg)
{
    char **v = NULL;
    size_t cap = 0, cnt = 0;
    struct dirent *e;
    const char *stamp;

    while ((e = readdir(d))) {
        if (!backup_name(e->d_name, prefix, &stamp))
            continue;
        if (cnt == cap) {
            char **nv = cnt < MAX_BACKUPS ? realloc(v, (cap ? cap * 2 : 16) * sizeof(*v)) : NULL;
            if (!nv)
                goto out_nomem;
            v = nv;
            cap = cap ? cap * 2 : 16;
        }
        if (!(v[cnt] = strdup(e->d_name)))
            goto out_nomem;
        cnt++;
    }
    g_prefix = prefix;
    if (cnt)
        qsort(v, cnt, sizeof(*v), backup_cmp);
    *out = v;
    *n = cnt;
    return 0;
out_nomem:
    free_names(v, cnt);
    return ce_errf(msg, MSG_LEN, CE_NOMEM, "retention: out of memory listing the directory");
}

/* Deletes the oldest backups beyond the newest b->retention; b->deleted lists them. */
static int apply_retention(struct backup *b, char *msg)
{
    char **v = NULL;
    size_t n = 0, drop;
    DIR *d;
    int rc;

    if (b->retention <= 0)
        return 0;
    d = opendir(b->dir);
    if (!d)
        return ce_errf(msg, MSG_LEN, CE_IO, "retention: open %s: %s", b->dir, strerror(errno));
    rc = list_backups(d, b->prefix, &v, &n, msg);
    if (rc)
        goto out_closedir;
    drop = n > (size_t)b->retention ? n - (size_t)b->retention : 0;
    b->deleted = calloc(drop ? drop : 1, sizeof(char *));
    if (!b->deleted) {
        rc = ce_errf(msg, MSG_LEN, CE_NOMEM, "retention: out of memory");
        goto out_free;
    }
    for (size_t i = 0; i < drop; i++) {
        if (unlinkat(dirfd(d), v[i], 0) != 0) {
            fprintf(stderr, "warning: retention: could not delete %s/%s: %s\n", b->dir, v[i],
                    strerror(errno));
            continue;
        }
        b->deleted[b->ndeleted++] = v[i];
        v[i] = NULL;
    }
    if (b->ndeleted && fsync(dirfd(d)) != 0)
        fprintf(stderr, "warning: retention: fsync %s: %s\n", b->dir, strerror(errno));
out_free:
    free_names(v, n);
out_closedir:
    closedir(d);
    return rc;
}

/* The result line (no newline), malloc'd. */
static char *result_json(const struct backup *b)
{
    char *buf = NULL, hex[65];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct jw w = {f, false};

    if (!f)
        return NULL;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", b->info.sha256[i]);
    ctl_jw_obj(&w, NULL);
    ctl_jw_str(&w, "file", b->name, strlen(b->name));
    ctl_jw_i64(&w, "revision", b->revision);
    ctl_jw_u64(&w, "size", b->info.file_size);
    ctl_jw_str(&w, "sha256", hex, 64);
    ctl_jw_str(&w, "time", b->when, strlen(b->when));
    ctl_jw_arr(&w, "deleted");
    for (size_t i = 0; i < b->ndeleted; i++)
        ctl_jw_str(&w, NULL, b->deleted[i], strlen(b->deleted[i]));
    ctl_jw_end_arr(&w);
    ctl_jw_end_obj(&w);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static char *error_json(const char *message)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct jw w = {f, false};

    if (!f)
        return NULL;
    ctl_jw_obj(&w, NULL);
    ctl_jw_str(&w, "error", message, strlen(message));
    ctl_jw_end_obj(&w);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Writes line + "\n" to path (the pod's termination log). 0 or CE_IO. */
static int write_result(const char *path, const char *line)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    size_t n = strlen(line);
    int rc = 0;

    if (fd < 0)
        return CE_IO;
    if (write(fd, line, n) != (ssize_t)n || write(fd, "\n", 1) != 1)
        rc = CE_IO;
    if (close(fd) != 0)
        rc = CE_IO;
    return rc;
}

/* A failure in backup mode: the result file, then etcdctl's error line. */
static int backup_fail(const struct backup *b, int code, const char *message)
{
    char *j;

    g_have_result = 0;
    if (b->result_file && (j = error_json(message))) {
        if (write_result(b->result_file, j))
            fprintf(stderr, "warning: could not write %s: %s\n", b->result_file,
                    strerror(errno));
        free(j);
    }
    return ctl_fail(code, "%s", message);
}

static int backup_args(struct ctl *c, struct backup *b, char *msg)
{
    const char *r = ctl_flag(c, "retention");
    char *end;

    b->dir = ctl_flag(c, "dir");
    b->prefix = ctl_flag(c, "prefix");
    b->result_file = ctl_flag(c, "result-file");
    if (c->n_args != 0)
        return ce_errf(msg, MSG_LEN, CE_INVAL, "snapshot save --dir takes no file argument");
    if (!b->dir || !*b->dir)
        return ce_errf(msg, MSG_LEN, CE_INVAL, "snapshot save: --dir must name a directory");
    if (!b->prefix || !*b->prefix || strchr(b->prefix, '/') || !strcmp(b->prefix, "true") ||
        strlen(b->prefix) > 200 || b->prefix[0] == '.')
        return ce_errf(msg, MSG_LEN, CE_INVAL, "snapshot save --dir: --prefix NAME is required "
                       "(a file name prefix without '/')");
    b->retention = 0;
    if (r) {
        errno = 0;
        b->retention = strtol(r, &end, 10);
        if (errno || end == r || *end || b->retention < 0 || b->retention > MAX_BACKUPS)
            return ce_errf(msg, MSG_LEN, CE_INVAL, "snapshot save: --retention must be an "
                           "integer from 0 to %d, got %s", MAX_BACKUPS, r);
    }
    return 0;
}

static int backup_stamp(struct backup *b, char *msg)
{
    struct timespec ts;
    struct tm tm;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm))
        return ce_errf(msg, MSG_LEN, CE_IO, "cannot read the clock");
    strftime(b->stamp, sizeof(b->stamp), "%Y%m%dT%H%M%SZ", &tm);
    strftime(b->when, sizeof(b->when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return 0;
}

/* The revision of the verified file at part (its status' revision). */
static int backup_revision(const char *part, struct backup *b, char *msg)
{
    struct snap_status st;
    int rc;

    msg[0] = 0;
    rc = b->info.kind == SNAPFILE_ETCD ? status_etcd(part, b->info.db_size, &st, msg)
                                       : status_cetcd(part, &st, msg);
    if (rc)
        return rc;
    b->revision = st.revision;
    return 0;
}

/* Fetches, verifies, names and publishes the backup file. */
static int backup_fetch(struct ctl *c, struct backup *b, char *msg)
{
    char part[4096], path[4096];
    cetcd_client *cl;
    int rc;

    if (snprintf(part, sizeof(part), "%s/%s-%s.part", b->dir, b->prefix, b->stamp) >=
        (int)sizeof(part))
        return ce_errf(msg, MSG_LEN, CE_INVAL, "snapshot save: --dir path too long");
    if ((rc = ctl_client(c, NULL, 0, &cl)))
        return ce_errf(msg, MSG_LEN, rc, "cannot create a client for %s", c->endpoints[0]);
    rc = fetch(cl, c->endpoints[0], part, &b->info, msg);
    cetcd_client_free(cl);
    if (rc)
        return rc;
    if ((rc = backup_revision(part, b, msg))) {
        unlink(part);
        part_untrack();
        return rc;
    }
    snprintf(b->name, sizeof(b->name), "%s-%s-r%" PRId64 ".db", b->prefix, b->stamp,
             b->revision);
    snprintf(path, sizeof(path), "%s/%s", b->dir, b->name);
    return publish(part, path, msg);
}

static int save_backup(struct ctl *c)
{
    struct backup b = {0};
    char msg[MSG_LEN];
    char *line;
    int rc;

    b.result_file = ctl_flag(c, "result-file");
    if (b.result_file && strlen(b.result_file) < sizeof(g_result)) {
        strcpy(g_result, b.result_file);
        g_have_result = 1;
    }
    if (backup_args(c, &b, msg))
        return backup_fail(&b, EXIT_BAD_ARGS, msg);
    if (c->n_endpoints != 1)
        return backup_fail(&b, EXIT_BAD_ARGS,
                           "snapshot must be requested to one selected node, not multiple");
    if (backup_stamp(&b, msg) || backup_fetch(c, &b, msg))
        return backup_fail(&b, EXIT_INTERRUPTED, msg);
    rc = apply_retention(&b, msg);
    if (rc == 0 && !(line = result_json(&b)))
        rc = CE_NOMEM, snprintf(msg, MSG_LEN, "out of memory");
    if (rc) {
        free_names(b.deleted, b.ndeleted);
        return backup_fail(&b, EXIT_ERROR, msg);
    }
    puts(line);
    fflush(stdout);
    g_have_result = 0;
    if (b.result_file && write_result(b.result_file, line)) {
        rc = ctl_fail(EXIT_ERROR, "could not write %s: %s", b.result_file, strerror(errno));
    }
    free(line);
    free_names(b.deleted, b.ndeleted);
    return rc;
}

static bool backup_mode(const struct ctl *c)
{
    return ctl_flag(c, "dir") || ctl_flag(c, "prefix") || ctl_flag(c, "retention") ||
           ctl_flag(c, "result-file");
}

static int cmd_save(struct ctl *c)
{
    if (backup_mode(c))
        return save_backup(c);
    if (c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "snapshot save expects one argument");
    if (c->n_endpoints != 1) {
        fputs("Error: snapshot must be requested to one selected node, not multiple [", stderr);
        for (size_t i = 0; i < c->n_endpoints; i++)
            fprintf(stderr, "%s%s", i ? " " : "", c->endpoints[i]);
        fputs("]\n", stderr);
        return EXIT_INTERRUPTED;
    }
    return save_file(c);
}

int ctl_cmd_snapshot(struct ctl *c, const char *sub)
{
    if (!strcmp(sub, "save"))
        return cmd_save(c);
    if (!strcmp(sub, "status"))
        return cmd_status(c);
    return ctl_cmd_snapshot_restore(c);
}
