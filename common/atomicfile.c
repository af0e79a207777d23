/*
 * atomicfile.c: atomic small-file replacement (see atomicfile.h).
 */
#include "atomicfile.h"
#include "err.h"
#include "fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int atomic_write(int dfd, const char *name, const void *buf, size_t size, bool sync)
{
    char tmp[512];
    int fd, rc;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", name) >= (int)sizeof tmp)
        return CE_INVAL;
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ce_from_errno(errno);
    rc = fd_write_full(fd, buf, size);
    if (!rc && sync && fsync(fd) != 0)
        rc = ce_from_errno(errno);
    close(fd);
    if (!rc && renameat(dfd, tmp, dfd, name) != 0)
        rc = ce_from_errno(errno);
    if (rc) {
        unlinkat(dfd, tmp, 0);
        return rc;
    }
    return !sync || fsync(dfd) == 0 ? 0 : ce_from_errno(errno);
}

int atomic_write_path(const char *path, const void *buf, size_t size, bool sync)
{
    char *d = strdup(path), *b = strdup(path);
    int dfd = -1, rc = CE_NOMEM;

    if (!d || !b)
        goto out_free;
    dfd = open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = ce_from_errno(errno);
        goto out_free;
    }
    rc = atomic_write(dfd, basename(b), buf, size, sync);
    close(dfd);
out_free:
    free(d);
    free(b);
    return rc;
}

int atomic_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return ce_from_errno(errno);
    if (fsync(fd) != 0)
        rc = ce_from_errno(errno);
    close(fd);
    return rc;
}
