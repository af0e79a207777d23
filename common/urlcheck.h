/*
 * urlcheck.h: the one check of an etcd-style member URL, "http://host:port" or
 * "https://host:port" (host non-empty, numeric port), shared by the configuration (listen and
 * advertise flags) and the membership API (peer URLs given to member add/update). Header-only:
 * a pure string check.
 */
#ifndef CETCD_URLCHECK_H
#define CETCD_URLCHECK_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* allow_path: a path may follow the port ("http://h:1/x"), as etcd's flags tolerate;
 * min_port: 0 for listen URLs (any free port), 1 for a member's peer URL. */
static inline bool url_is_http(const char *u, bool allow_path, long min_port)
{
    const char *host, *colon;
    char *end;
    long port;

    if (!strncmp(u, "http://", 7))
        host = u + 7;
    else if (!strncmp(u, "https://", 8))
        host = u + 8;
    else
        return false;
    colon = strrchr(host, ':');
    if (!colon || colon == host || (!allow_path && strchr(colon, '/')))
        return false;
    port = strtol(colon + 1, &end, 10);
    return end != colon + 1 && (*end == 0 || (allow_path && *end == '/')) && port >= min_port &&
           port <= 65535;
}

#endif
