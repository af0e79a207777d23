/*
 * snapfile.c: recognising and verifying snapshot files (see snapfile.h).
 *
 * File layout (both kinds):
 *   [0, db_size)             the database image, whole pages of page_size bytes
 *   [db_size, db_size + 32)  SHA-256 of bytes [0, db_size) (absent in a copied db file)
 * so a file with the hash has size % page_size == 32 (and size % 512 == 32, etcd's test).
 *
 * cetcd image: an LMDB data file (64-bit LMDB 0.9, native little-endian). Pages 0 and 1 are
 * meta pages; the current one has the higher txnid. Bytes of a meta page:
 *   0   u64  page number          8  u16 pad        10  u16 flags (0x08 = meta)
 *   12  u16  lower, 14 u16 upper
 *   16  u32  magic 0xBEEFC0DE     20  u32 version (1)
 *   24  u64  address              32  u64 map size
 *   40  48-byte free-list DB record; its first u32 (offset 40) holds the page size
 *   88  48-byte main DB record
 *   136 u64  last page number in use
 *   144 u64  txnid
 * The image holds pages 0 .. last page, so db_size >= (last + 1) * page_size.
 *
 * etcd image: a bbolt file (see bbolt.c for its byte layout); page size and the high-water
 * mark pgid come from its current meta page, and db_size >= pgid * page_size.
 *
 * Verification order: open and size; kind from the first page (an unknown kind with a hash
 * that does not match is reported as corrupt, one that matches as "not a snapshot file");
 * page size from the meta; size shape (whole pages, with or without the 32-byte hash);
 * the image long enough for its meta; then the SHA-256 over the whole image, streamed.
 * Invariant: nothing read from the file is used before it is checked; err always names the
 * problem on failure.
 */
#include "snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bbolt.h"
#include "err.h"
#include "fdio.h"
#include "lebytes.h"

#define HASH_LEN 32
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_VERSION 1u
#define LMDB_META_END 152
#define HEAD_MAX (2 * 65536 + 4096)
#define READ_CHUNK (1u << 20)

/* What the meta pages say about the image. */
struct layout {
    enum snapfile_kind kind;
    uint32_t page_size;
    uint64_t min_size;      /* bytes the image must have at least */
};

static bool lmdb_is_image(const uint8_t *h, size_t len)
{
    return len >= 24 && le_get32(h + 16) == LMDB_MAGIC;
}

enum snapfile_kind snapfile_kind_of(const void *head, size_t len)
{
    if (lmdb_is_image(head, len))
        return SNAPFILE_CETCD;
    if (bbolt_is_image(head, len))
        return SNAPFILE_ETCD;
    return SNAPFILE_UNKNOWN;
}

const char *snapfile_kind_name(enum snapfile_kind k)
{
    return k == SNAPFILE_CETCD ? "cetcd" : k == SNAPFILE_ETCD ? "etcd" : "unknown";
}

/* LMDB: page size from meta 0, then the newer valid meta's last page. */
static int lmdb_layout(const uint8_t *h, size_t len, struct layout *l, char *err, size_t errsz)
{
    uint64_t best_txn = 0, last = 0;
    bool found = false;
    uint32_t ps;

    if (len < LMDB_META_END)
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is truncated: %zu bytes cannot hold "
                       "the LMDB meta page", len);
    ps = le_get32(h + 40);
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)))
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is corrupt: LMDB page size %u", ps);
    for (int i = 0; i < 2; i++) {
        const uint8_t *m = h + (size_t)i * ps;
        if ((size_t)i * ps + LMDB_META_END > len)
            break;
        if (le_get32(m + 16) != LMDB_MAGIC || le_get32(m + 20) != LMDB_VERSION)
            continue;
        if (!found || le_get64(m + 144) > best_txn) {
            best_txn = le_get64(m + 144);
            last = le_get64(m + 136);
            found = true;
        }
    }
    if (!found || last < 1 || last > UINT64_MAX / ps - 1)
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is corrupt: no valid LMDB meta page");
    l->kind = SNAPFILE_CETCD;
    l->page_size = ps;
    l->min_size = (last + 1) * ps;
    return 0;
}

static int bbolt_layout(const uint8_t *h, size_t len, struct layout *l, char *err, size_t errsz)
{
    struct bbolt_meta m;
    char why[160];

    if (bbolt_meta_read(h, len, &m, why, sizeof(why)))
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is corrupt: %s", why);
    if (m.pgid < 2 || m.pgid > UINT64_MAX / m.page_size)
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is corrupt: bbolt meta says %llu "
                       "pages", (unsigned long long)m.pgid);
    l->kind = SNAPFILE_ETCD;
    l->page_size = m.page_size;
    l->min_size = m.pgid * m.page_size;
    return 0;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* SHA-256 of the fd's first n bytes, read from offset 0. */
static int sha256_prefix(int fd, uint64_t n, uint8_t out[HASH_LEN], char *err, size_t errsz)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t *buf = malloc(READ_CHUNK);
    uint64_t off = 0;
    unsigned int mdlen = 0;
    int rc = 0;

    if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        rc = ce_errf(err, errsz, CE_NOMEM, "snapshot file: out of memory");
        goto out_free;
    }
    (void)posix_fadvise(fd, 0, (off_t)n, POSIX_FADV_SEQUENTIAL);
    while (off < n) {
        size_t want = n - off < READ_CHUNK ? (size_t)(n - off) : READ_CHUNK, got;
        int r = fd_pread_upto(fd, buf, want, off, &got);
        if (r || got < want) {
            rc = ce_errf(err, errsz, CE_IO, "snapshot file: read failed at offset %llu: %s",
                         (unsigned long long)(off + got), r ? strerror(errno) : "unexpected end");
            goto out_free;
        }
        if (!EVP_DigestUpdate(md, buf, got)) {
            rc = ce_errf(err, errsz, CE_NOMEM, "snapshot file: sha256 failed");
            goto out_free;
        }
        off += got;
    }
    if (!EVP_DigestFinal_ex(md, out, &mdlen) || mdlen != HASH_LEN)
        rc = ce_errf(err, errsz, CE_NOMEM, "snapshot file: sha256 failed");
out_free:
    free(buf);
    EVP_MD_CTX_free(md);
    return rc;
}

/* Compares the trailing hash with the image's; fills info's hash fields. */
static int check_hash(int fd, struct snapfile_info *in, char *err, size_t errsz)
{
    uint8_t sum[HASH_LEN];
    char want[2 * HASH_LEN + 1], got[2 * HASH_LEN + 1];
    int rc;

    if (fd_pread_full(fd, in->sha256, HASH_LEN, in->db_size))
        return ce_errf(err, errsz, CE_IO, "snapshot file: cannot read the sha256: %s",
                       strerror(errno));
    if ((rc = sha256_prefix(fd, in->db_size, sum, err, errsz)))
        return rc;
    if (memcmp(sum, in->sha256, HASH_LEN)) {
        hex(in->sha256, HASH_LEN, want);
        hex(sum, HASH_LEN, got);
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is corrupt: sha256 checksum mismatch "
                       "(expected %s, got %s)", want, got);
    }
    return 0;
}

/* A file of unknown kind: corrupt if it carries a hash that does not match, else not ours. */
static int unknown_kind(int fd, struct snapfile_info *in, char *err, size_t errsz)
{
    int rc;

    if (in->file_size >= 4096 + HASH_LEN && in->file_size % 512 == HASH_LEN) {
        in->db_size = in->file_size - HASH_LEN;
        rc = check_hash(fd, in, err, errsz);
        if (rc)
            return rc;
    }
    return ce_errf(err, errsz, CE_CORRUPT, "not a snapshot file: neither a cetcd (LMDB) nor an "
                   "etcd (bbolt) database");
}

/* Size shape for the kind: whole pages, then optionally the 32-byte hash. */
static int check_shape(const struct layout *l, bool require_hash, struct snapfile_info *in,
                       char *err, size_t errsz)
{
    uint64_t rem = in->file_size % l->page_size;

    if (rem == HASH_LEN) {
        in->has_hash = true;
        in->db_size = in->file_size - HASH_LEN;
    } else if (rem == 0) {
        in->db_size = in->file_size;
        if (require_hash)
            return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is truncated or has no sha256: "
                           "%llu bytes is whole %u-byte pages without the trailing sha256",
                           (unsigned long long)in->file_size, l->page_size);
    } else {
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is truncated: %llu bytes is not "
                       "whole %u-byte pages%s", (unsigned long long)in->file_size, l->page_size,
                       require_hash ? " plus a sha256" : " (with or without a sha256)");
    }
    if (in->db_size < l->min_size)
        return ce_errf(err, errsz, CE_CORRUPT, "snapshot file is truncated: the %s database needs "
                       "%llu bytes, the file has %llu", snapfile_kind_name(l->kind),
                       (unsigned long long)l->min_size, (unsigned long long)in->db_size);
    return 0;
}

static int verify_fd(int fd, bool require_hash, struct snapfile_info *in, char *err,
                     size_t errsz)
{
    uint8_t *head;
    size_t hl = in->file_size < HEAD_MAX ? (size_t)in->file_size : HEAD_MAX;
    struct layout l = {0};
    int rc;

    head = malloc(hl ? hl : 1);
    if (!head)
        return ce_errf(err, errsz, CE_NOMEM, "snapshot file: out of memory");
    if (fd_pread_full(fd, head, hl, 0)) {
        rc = ce_errf(err, errsz, CE_IO, "snapshot file: read failed: %s", strerror(errno));
        goto out_free_head;
    }
    in->kind = snapfile_kind_of(head, hl);
    if (in->kind == SNAPFILE_UNKNOWN) {
        rc = unknown_kind(fd, in, err, errsz);
        goto out_free_head;
    }
    rc = in->kind == SNAPFILE_CETCD ? lmdb_layout(head, hl, &l, err, errsz)
                                    : bbolt_layout(head, hl, &l, err, errsz);
    /* a damaged meta page in a file with a hash: the hash names the damage best */
    if (rc == CE_CORRUPT && in->file_size % 512 == HASH_LEN && in->file_size > HASH_LEN) {
        in->db_size = in->file_size - HASH_LEN;
        int hrc = check_hash(fd, in, err, errsz);
        if (hrc)
            rc = hrc;
        goto out_free_head;
    }
    if (rc == 0)
        rc = check_shape(&l, require_hash, in, err, errsz);
    if (rc == 0 && in->has_hash)
        rc = check_hash(fd, in, err, errsz);
out_free_head:
    free(head);
    return rc;
}

int snapfile_verify(const char *path, bool require_hash, struct snapfile_info *out,
                    char *err, size_t errsz)
{
    struct snapfile_info in = {0};
    struct stat st;
    int fd, rc;

    if (err && errsz)
        err[0] = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ce_errf(err, errsz, errno == ENOENT ? CE_NOTFOUND : ce_from_errno(errno),
                       "cannot open snapshot file %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = ce_errf(err, errsz, ce_from_errno(errno), "cannot stat snapshot file %s: %s", path,
                     strerror(errno));
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ce_errf(err, errsz, CE_INVAL, "snapshot file %s is not a regular file", path);
        goto out_close;
    }
    in.file_size = (uint64_t)st.st_size;
    in.db_size = in.file_size;
    rc = verify_fd(fd, require_hash, &in, err, errsz);
    if (rc == 0 && out)
        *out = in;
out_close:
    close(fd);
    return rc;
}
