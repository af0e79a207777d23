/*
 * mvccfx.h: small stores for the unit tests (server/mvcc/mvcc.h): open one in a scratch
 * directory, put and delete keys, and write its snapshot file (the database as
 * mvcc_snapshot_fd copies it, then its SHA-256, as `snapshot save` stores it). Every step is
 * asserted. Header-only; include it after <cmocka.h> (it includes testfile.h).
 */
#ifndef CETCD_TEST_MVCCFX_H
#define CETCD_TEST_MVCCFX_H

#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "server/mvcc/mvcc.h"
#include "testfile.h"

/* A store in dir (created if missing), without fsyncs; defer: deferred durability. */
static inline mvcc *mvccfx_open(const char *dir, bool defer)
{
    mvcc_options o = {.dir = dir, .no_sync = true, .defer_durability = defer};
    mvcc *m = NULL;

    assert_int_equal(mvcc_open(&o, &m), 0);
    return m;
}

/* Puts k = v (lease 0: none) inside the caller's batch. */
static inline void mvccfx_put(mvcc *m, const char *k, const char *v, int64_t lease)
{
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__PutResponse *resp = NULL;

    r.key = (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
    r.value = (ProtobufCBinaryData){strlen(v), (uint8_t *)v};
    r.lease = lease;
    assert_int_equal(mvcc_put(m, &r, &resp), 0);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* Deletes the key k inside the caller's batch. */
static inline void mvccfx_del(mvcc *m, const char *k)
{
    Etcdserverpb__DeleteRangeRequest r = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    Etcdserverpb__DeleteRangeResponse *resp = NULL;

    r.key = (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
    assert_int_equal(mvcc_delete(m, &r, &resp), 0);
    protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* Replaces path with m's snapshot (mvcc_snapshot_fd, outside a batch), followed by its
 * SHA-256 when with_hash; sha (unless NULL) gets the SHA-256 of the database bytes. */
static inline void mvccfx_snapshot_file(mvcc *m, const char *path, bool with_hash,
                                        uint8_t sha[32])
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    uint8_t sum[32], *db;
    size_t len;

    assert_true(fd >= 0);
    assert_int_equal(mvcc_snapshot_fd(m, fd), 0);
    assert_int_equal(close(fd), 0);
    db = testfile_read(path, &len);
    testfile_sha256(db, len, sum);
    free(db);
    if (with_hash) {
        fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, sum, sizeof(sum)), (ssize_t)sizeof(sum));
        assert_int_equal(close(fd), 0);
    }
    if (sha)
        memcpy(sha, sum, sizeof(sum));
}

#endif
