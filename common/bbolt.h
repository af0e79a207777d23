/*
 * bbolt.h: a read-only reader of bbolt database images (etcd 3.4's backend file), enough to
 * walk every bucket and compute what `etcdctl snapshot status` prints for an etcd snapshot.
 *
 * The image is a byte buffer the caller owns (typically a read-only mmap of the file) and
 * keeps alive while the reader is used. The format is documented byte by byte in bbolt.c.
 *
 * Invariants: nothing in the image is trusted. Every page number, element offset and length
 * is checked against the image before it is read; every page is visited at most once per walk
 * (a page reached twice, a cycle or a shared subtree, is corruption), and the tree depth is
 * bounded, so any input, however malformed, ends in bounded time with CE_CORRUPT and a
 * message, never a crash.
 */
#ifndef CETCD_BBOLT_H
#define CETCD_BBOLT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bbolt_fmt.h"

/* The fields of a meta page that the reader uses. */
struct bbolt_meta {
    uint32_t page_size;
    uint64_t root;      /* root bucket's root page */
    uint64_t freelist;  /* freelist page, or ~0 when the freelist is not synced (etcd) */
    uint64_t pgid;      /* high-water mark: pages in use; tx size = pgid * page_size */
    uint64_t txid;
};

/*
 * The current meta of an image whose first len bytes are at head (len may be shorter than the
 * whole image: only the two meta pages are read): of the two meta pages, the one with the
 * higher txid whose magic, version and checksum are valid, as bbolt chooses. CE_CORRUPT with a
 * message in err (may be NULL when errsz is 0) when neither is valid.
 */
int bbolt_meta_read(const void *head, size_t len, struct bbolt_meta *out, char *err,
                    size_t errsz);

/* True if head (at least 24 bytes) begins with a bbolt meta page (magic at offset 16). */
bool bbolt_is_image(const void *head, size_t len);

struct bbolt;
/* Opens a reader over image[0..len): reads the current meta, checks the page size and that
 * pgid * page_size <= len. 0, CE_NOMEM or CE_CORRUPT (message in err). */
int bbolt_open(const void *image, size_t len, struct bbolt **out, char *err, size_t errsz);
void bbolt_close(struct bbolt *db);
const struct bbolt_meta *bbolt_meta_of(const struct bbolt *db);

/*
 * Calls fn for every key/value pair of the bucket named by path[0..depth) (depth 0: the root
 * bucket, whose keys are the top-level bucket names), in key order, as bbolt's
 * Bucket.ForEach: an entry that is itself a bucket is reported with is_bucket true and its
 * value NULL, 0. fn returning non-zero stops the walk with that code. CE_NOTFOUND when a
 * bucket on the path does not exist, CE_CORRUPT (message in err) on malformed pages.
 */
typedef int (*bbolt_kv_fn)(void *arg, const uint8_t *k, size_t klen, const uint8_t *v,
                           size_t vlen, bool is_bucket);
struct bbolt_name {
    const uint8_t *p;
    size_t len;
};
int bbolt_foreach(struct bbolt *db, const struct bbolt_name *path, size_t depth,
                  bbolt_kv_fn fn, void *arg, char *err, size_t errsz);

/*
 * etcd's snapshot status of an image (etcdctl 3.4 `snapshot status`): hash = CRC-32C over, for
 * each top-level bucket in name order, its name and then each of its keys and values in order;
 * revision = the main revision (first 8 bytes, big-endian) of the last key of bucket "key";
 * total_keys = entries in all top-level buckets; total_size = pgid * page_size.
 */
struct bbolt_status {
    uint32_t hash;
    int64_t revision;
    uint64_t total_keys;
    int64_t total_size;
};
int bbolt_etcd_status(const void *image, size_t len, struct bbolt_status *out, char *err,
                      size_t errsz);

#endif
