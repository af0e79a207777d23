/*
 * fdio.h: whole-buffer reads and writes on a blocking file descriptor. read(2) and write(2)
 * may move fewer bytes than asked and fail with EINTR; these loop until the whole buffer is
 * done, the file ends (reads) or a real error comes.
 *
 * Errors: 0 or ce_from_errno(errno), with errno left as the failed call set it, so a caller may
 * still name it (strerror). A write that moves nothing without an error (which a regular file
 * never does) fails as EIO. The p-variants use an explicit offset (below 2^63) and leave the
 * file position alone; the others read or write at, and move, the position.
 */
#ifndef CETCD_FDIO_H
#define CETCD_FDIO_H

#include <stddef.h>
#include <stdint.h>

/* Reads until n bytes arrived or the file ended; *got = bytes read (< n at the end, or those
 * read before an error). */
int fd_read_upto(int fd, void *buf, size_t n, size_t *got);
int fd_pread_upto(int fd, void *buf, size_t n, uint64_t off, size_t *got);
/* Reads exactly n bytes from off; CE_IO (errno EIO) when the file ends first. */
int fd_pread_full(int fd, void *buf, size_t n, uint64_t off);
/* Writes all n bytes. */
int fd_write_full(int fd, const void *buf, size_t n);
int fd_pwrite_full(int fd, const void *buf, size_t n, uint64_t off);

#endif
