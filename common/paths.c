/*
 * paths.c: path helpers (contract in paths.h). No length limit: paths are copied to the heap.
 */
#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"

char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);

    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int path_mkdirs(const char *dir)
{
    char *p = strdup(dir);
    int rc = 0;

    if (!p)
        return CE_NOMEM;
    for (char *s = p + 1; rc == 0 && *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            rc = ce_from_errno(errno);
        *s = '/';
    }
    if (rc == 0 && mkdir(p, 0700) != 0 && errno != EEXIST)
        rc = ce_from_errno(errno);
    free(p);
    return rc;
}
