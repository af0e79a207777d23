/*
 * bbolt_write.h: a bulk loader that writes a bbolt 1.3 database file (etcd 3.4's backend
 * format, documented in bbolt.c; constants in bbolt_fmt.h) from data given in order.
 *
 * Use: bbolt_writer_new(fd) -> for each top-level bucket, in strictly increasing name order:
 * bbolt_writer_bucket(name), then bbolt_writer_put(key, value) for its entries in strictly
 * increasing key order -> bbolt_writer_finish (size of the file) -> bbolt_writer_free.
 * Keys compare as bbolt does (bytewise, a prefix first). Buckets nested in buckets are not
 * supported (etcd 3.4 uses none).
 *
 * Streaming: pages are written to fd as soon as they are full; memory holds one page per tree
 * level of the bucket being written (plus a value larger than a page while it is written), never
 * the whole database.
 *
 * Invariants: the file at fd (a regular file, written with pwrite from offset 0, truncated
 * first) holds no valid meta page until bbolt_writer_finish has written every other page, so a
 * writer that failed, was abandoned or was freed early leaves a file every bbolt reader refuses.
 * The first error is sticky: every later call returns it. Errors: CE_INVAL (keys or bucket
 * names out of order, empty or too long, a put before any bucket, a call after finish),
 * CE_NOMEM, CE_IO or another ce_from_errno code from the file.
 */
#ifndef CETCD_BBOLT_WRITE_H
#define CETCD_BBOLT_WRITE_H

#include <stddef.h>
#include <stdint.h>

#define BBOLT_WRITE_PAGE_SIZE 4096u

struct bbolt_writer;

/* A writer into fd (truncated to 0 here). 0, CE_NOMEM or the truncate/write error. */
int bbolt_writer_new(int fd, struct bbolt_writer **out);

/* Ends the bucket being written, if any, and begins the top-level bucket name. */
int bbolt_writer_bucket(struct bbolt_writer *w, const void *name, size_t len);

/* Adds key -> value to the current bucket (key 1..32768 bytes). */
int bbolt_writer_put(struct bbolt_writer *w, const void *key, size_t klen, const void *val,
                     size_t vlen);

/* Ends the last bucket, writes the root bucket, an empty freelist page and the two meta pages.
 * *size (may be NULL) gets the file's size: pages in use x page size. */
int bbolt_writer_finish(struct bbolt_writer *w, uint64_t *size);

void bbolt_writer_free(struct bbolt_writer *w);

#endif
