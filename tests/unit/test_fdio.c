/*
 * test_fdio.c: whole-buffer reads and writes (common/fdio.h).
 *
 * - Short transfers are continued: a SOCK_SEQPACKET pair hands out one record per read, so
 *   reading three records' worth takes three reads and must return all of them, in order.
 * - End of file: fd_read_upto / fd_pread_upto stop there and say how much came;
 *   fd_pread_full refuses an early end with CE_IO and errno EIO.
 * - Offsets: fd_pwrite_full / fd_pread_full work at the offsets given and leave the file
 *   position alone; fd_write_full appends at the position.
 * - Errors come back as ce_from_errno with errno kept: writing to a read-only descriptor
 *   (EBADF), reading from a write-only one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "fdio.h"

/* An unnamed scratch file, read-write. */
static int scratch(void)
{
    char path[] = "/tmp/test_fdio.XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

static void test_short_reads_continued(void **state)
{
    int sv[2];
    char buf[64];
    size_t got = 0;

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    assert_int_equal(write(sv[0], "abc", 3), 3);
    assert_int_equal(write(sv[0], "defg", 4), 4);
    assert_int_equal(write(sv[0], "hi", 2), 2);
    /* exactly the three records: three reads */
    assert_int_equal(fd_read_upto(sv[1], buf, 9, &got), 0);
    assert_int_equal(got, 9);
    assert_memory_equal(buf, "abcdefghi", 9);
    /* more asked than comes: stops at the end (the writer closed) */
    assert_int_equal(write(sv[0], "jk", 2), 2);
    close(sv[0]);
    assert_int_equal(fd_read_upto(sv[1], buf, sizeof(buf), &got), 0);
    assert_int_equal(got, 2);
    assert_memory_equal(buf, "jk", 2);
    close(sv[1]);
}

static void test_end_of_file(void **state)
{
    int fd = scratch();
    char buf[32];
    size_t got = 99;

    (void)state;
    assert_int_equal(fd_write_full(fd, "0123456789", 10), 0);
    assert_int_equal(fd_pread_upto(fd, buf, sizeof(buf), 4, &got), 0);
    assert_int_equal(got, 6);
    assert_memory_equal(buf, "456789", 6);
    assert_int_equal(fd_pread_full(fd, buf, 5, 3), 0);
    assert_memory_equal(buf, "34567", 5);
    errno = 0;
    assert_int_equal(fd_pread_full(fd, buf, 8, 5), CE_IO);
    assert_int_equal(errno, EIO);
    assert_int_equal(fd_pread_full(fd, buf, 1, 10), CE_IO);
    assert_int_equal(fd_pread_full(fd, buf, 0, 10), 0);
    /* the position is where the write left it: at the end */
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 10);
    assert_int_equal(fd_read_upto(fd, buf, sizeof(buf), &got), 0);
    assert_int_equal(got, 0);
    close(fd);
}

static void test_offsets(void **state)
{
    int fd = scratch();
    char buf[16];

    (void)state;
    assert_int_equal(fd_pwrite_full(fd, "world", 5, 6), 0);
    assert_int_equal(fd_pwrite_full(fd, "hello ", 6, 0), 0);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
    assert_int_equal(fd_pread_full(fd, buf, 11, 0), 0);
    assert_memory_equal(buf, "hello world", 11);
    assert_int_equal(lseek(fd, 0, SEEK_END), 11);
    assert_int_equal(fd_write_full(fd, "!", 1), 0);
    assert_int_equal(fd_pread_full(fd, buf, 12, 0), 0);
    assert_memory_equal(buf, "hello world!", 12);
    close(fd);
}

static void test_errors(void **state)
{
    int fd = scratch(), ro, wo;
    char path[64], buf[4];
    size_t got = 99;

    (void)state;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ro = open(path, O_RDONLY);
    wo = open(path, O_WRONLY);
    assert_true(ro >= 0 && wo >= 0);
    errno = 0;
    assert_int_equal(fd_write_full(ro, "x", 1), CE_IO);
    assert_int_equal(errno, EBADF);
    errno = 0;
    assert_int_equal(fd_pwrite_full(ro, "x", 1, 0), CE_IO);
    assert_int_equal(errno, EBADF);
    errno = 0;
    assert_int_equal(fd_read_upto(wo, buf, sizeof(buf), &got), CE_IO);
    assert_int_equal(errno, EBADF);
    assert_int_equal(got, 0);
    errno = 0;
    assert_int_equal(fd_pread_full(wo, buf, sizeof(buf), 0), CE_IO);
    assert_int_equal(errno, EBADF);
    close(ro);
    close(wo);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_reads_continued),
        cmocka_unit_test(test_end_of_file),
        cmocka_unit_test(test_offsets),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
