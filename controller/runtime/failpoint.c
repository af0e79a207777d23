/*
 * failpoint.c: env-driven crash points (contract in failpoint.h).
 *
 * Invariant: with CETCD_OPERATOR_FAILPOINT_FILE set, the marker file is created (O_EXCL, so two
 * racing processes cannot both fire) and synced before _exit, so a failpoint fires at most once
 * across restarts even when the crash is immediately followed by a node failure.
 */
#include "failpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "olog.h"

#define FP_ENV "CETCD_OPERATOR_FAILPOINT"
#define FP_FILE_ENV "CETCD_OPERATOR_FAILPOINT_FILE"

/* True if the comma-separated list holds name as one whole item (surrounding blanks ignored). */
static bool list_has(const char *list, const char *name)
{
    size_t nlen = strlen(name);

    while (*list) {
        const char *end = strchr(list, ',');
        size_t len = end ? (size_t)(end - list) : strlen(list);

        while (len > 0 && (*list == ' ' || *list == '\t'))
            list++, len--;
        while (len > 0 && (list[len - 1] == ' ' || list[len - 1] == '\t'))
            len--;
        if (len == nlen && nlen > 0 && memcmp(list, name, len) == 0)
            return true;
        if (!end)
            break;
        list = end + 1;
    }
    return false;
}

bool failpoint_armed(const char *name)
{
    const char *list = getenv(FP_ENV);

    return name && list && list_has(list, name);
}

/* Creates the once-only marker; true if this process is the one that created it. */
static bool claim_marker(const char *path, const char *name)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

    if (fd < 0) {
        if (errno != EEXIST)
            olog(OLOG_ERROR, "failpoint: cannot create marker file, not firing", "failpoint",
                 name, "file", path, "error", strerror(errno), NULL);
        return false;
    }
    /* best effort: the file's existence is what marks the failpoint as fired */
    if (write(fd, name, strlen(name)) == (ssize_t)strlen(name))
        (void)fsync(fd);
    close(fd);
    return true;
}

void failpoint_hit(const char *name)
{
    const char *path;

    if (!failpoint_armed(name))
        return;
    path = getenv(FP_FILE_ENV);
    if (path && *path && !claim_marker(path, name))
        return;
    olog(OLOG_ERROR, "failpoint: exiting", "failpoint", name, NULL);
    _exit(42);
}
