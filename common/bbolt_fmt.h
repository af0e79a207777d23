/*
 * bbolt_fmt.h: the layout constants of bbolt 1.3 database files (etcd 3.4's backend), shared by
 * the reader (bbolt.c, which documents the format byte by byte) and the writer
 * (bbolt_write.c). Nothing here is a function: sizes, offsets and flag values only.
 */
#ifndef CETCD_BBOLT_FMT_H
#define CETCD_BBOLT_FMT_H

#define BBOLT_MAGIC 0xED0CDAEDu
#define BBOLT_VERSION 2u

#define BBOLT_PAGE_HDR 16          /* id u64, flags u16, count u16, overflow u32 */
#define BBOLT_ELEM_SIZE 16         /* a leaf or branch element */
#define BBOLT_BUCKET_HDR 16        /* a bucket value: root page u64, sequence u64 */
#define BBOLT_META_CHECKSUM_END 72 /* FNV-1a 64 over meta bytes 16..71, stored at 72 */

/* page flags */
#define BBOLT_F_BRANCH 0x01
#define BBOLT_F_LEAF 0x02
#define BBOLT_F_META 0x04
#define BBOLT_F_FREELIST 0x10

/* leaf element flag: the value is a bucket */
#define BBOLT_LEAF_BUCKET 0x01

/* meta page offsets (from the page's first byte) */
#define BBOLT_META_MAGIC 16
#define BBOLT_META_VERSION 20
#define BBOLT_META_PSIZE 24
#define BBOLT_META_FLAGS 28
#define BBOLT_META_ROOT 32
#define BBOLT_META_SEQ 40
#define BBOLT_META_FREELIST 48
#define BBOLT_META_PGID 56
#define BBOLT_META_TXID 64

/* bbolt's limits (bolt.MaxKeySize, MaxValueSize) and its inline-bucket threshold (a bucket
 * whose only page, header included, is at most page size / 4 is stored inside its value) */
#define BBOLT_MAX_KEY 32768u
#define BBOLT_MAX_VALUE ((1u << 31) - 2)
#define BBOLT_INLINE_DIV 4

#endif
