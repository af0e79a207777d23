/*
 * fdio.c: whole-buffer reads and writes, retried after EINTR and short transfers (fdio.h).
 * Invariant: every loop advances by what the call moved and stops at 0 bytes left, at an end
 * of file (reads) or at the first error other than EINTR.
 */
#include "fdio.h"

#include <errno.h>
#include <unistd.h>

#include "err.h"

/* One read (pread when off >= 0): bytes moved, or -1 with errno set. */
static ssize_t read_at(int fd, void *buf, size_t n, int64_t off)
{
    return off < 0 ? read(fd, buf, n) : pread(fd, buf, n, (off_t)off);
}

static ssize_t write_at(int fd, const void *buf, size_t n, int64_t off)
{
    return off < 0 ? write(fd, buf, n) : pwrite(fd, buf, n, (off_t)off);
}

static int read_loop(int fd, uint8_t *buf, size_t n, int64_t off, size_t *got)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = read_at(fd, buf + done, n - done, off < 0 ? -1 : off + (int64_t)done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *got = done;
            return ce_from_errno(errno);
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static int write_loop(int fd, const uint8_t *buf, size_t n, int64_t off)
{
    size_t done = 0;

    while (done < n) {
        ssize_t w = write_at(fd, buf + done, n - done, off < 0 ? -1 : off + (int64_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return ce_from_errno(errno);
        }
        done += (size_t)w;
    }
    return 0;
}

/* The exact variant: an early end of file is CE_IO. */
static int exactly(int rc, size_t got, size_t n)
{
    if (rc || got == n)
        return rc;
    errno = EIO;
    return CE_IO;
}

int fd_read_upto(int fd, void *buf, size_t n, size_t *got)
{
    return read_loop(fd, buf, n, -1, got);
}

int fd_pread_upto(int fd, void *buf, size_t n, uint64_t off, size_t *got)
{
    return read_loop(fd, buf, n, (int64_t)off, got);
}

int fd_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got;
    int rc = read_loop(fd, buf, n, (int64_t)off, &got);

    return exactly(rc, got, n);
}

int fd_write_full(int fd, const void *buf, size_t n)
{
    return write_loop(fd, buf, n, -1);
}

int fd_pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
    return write_loop(fd, buf, n, (int64_t)off);
}
