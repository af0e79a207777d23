/*
 * fetch.c: peer_fetch_members, the blocking client of the member-list request (HELLO kind 3,
 * answered by MEMBERS or ERROR; wire.c). Used once at start-up by a member joining an existing
 * cluster, before its loop runs, so it blocks (poll with a deadline) instead of using the loop.
 * Invariant: never waits past the deadline, whatever the other side does (silence, a byte at a
 * time, garbage); the socket is closed on every path.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "lebytes.h"
#include "log.h"
#include "peer_int.h"

/* Waits for events on fd until the deadline. 0, CE_TIMEOUT or CE_IO. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = evloop_now_ms();
        struct pollfd pfd = {fd, events, 0};
        int n;

        if (now >= deadline)
            return CE_TIMEOUT;
        n = poll(&pfd, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return CE_IO;
        if (n > 0)
            return 0;
    }
}

/* A connected socket to ai (-1 and *rc = CE_UNREACHABLE or CE_TIMEOUT otherwise). */
static int connect_until(const struct addrinfo *ai, uint64_t deadline, int *rc)
{
    int fd = socket_for(ai), err = 0;
    socklen_t len = sizeof(err);

    *rc = CE_UNREACHABLE;
    if (fd < 0)
        return -1;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno == EINPROGRESS) {
        *rc = wait_fd(fd, POLLOUT, deadline);
        if (!*rc && !getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) && !err)
            return fd;
        if (!*rc)
            *rc = CE_UNREACHABLE;
    }
    close(fd);
    return -1;
}

static int send_all(int fd, const bytebuf *b, uint64_t deadline)
{
    size_t off = 0;

    while (off < bytebuf_size(b)) {
        ssize_t n = send(fd, bytebuf_data(b) + off, bytebuf_size(b) - off, MSG_NOSIGNAL);
        int rc;

        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return CE_UNREACHABLE;
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc)
            return rc;
    }
    return 0;
}

/* Interprets the answer frame. */
static int take_answer(const char *url, const frame *f, char **json, uint64_t *cluster_id)
{
    char text[128];
    uint64_t id, cluster;
    uint32_t code;

    if (f->type == FR_MEMBERS && f->len >= MEMBERS_FIXED) {
        size_t n = f->len - MEMBERS_FIXED;
        char *s = malloc(n + 1);
        if (!s)
            return CE_NOMEM;
        memcpy(s, f->data + MEMBERS_FIXED, n);
        s[n] = 0;
        *json = s;
        *cluster_id = le_get64(f->data);
        return 0;
    }
    if (f->type == FR_ERROR &&
        !error_decode(f->data, f->len, &code, &id, &cluster, text, sizeof(text))) {
        log_warn("peer: %s declined the member list request: %s", url, peer_error_name(code));
        return CE_UNREACHABLE;
    }
    return CE_CORRUPT;
}

static int read_answer(int fd, const char *url, uint64_t deadline, char **json,
                       uint64_t *cluster_id)
{
    bytebuf in = {0};
    int rc;

    for (;;) {
        frame f;
        size_t need;
        ssize_t n;

        rc = frame_parse(bytebuf_data(&in), bytebuf_size(&in), MEMBERS_FIXED + PEER_MAX_JSON, &f, &need);
        if (rc == 1) {
            rc = take_answer(url, &f, json, cluster_id);
            break;
        }
        if (rc < 0)
            break;
        rc = bytebuf_reserve(&in, need - bytebuf_size(&in) > 65536 ? need - bytebuf_size(&in) : 65536);
        if (rc)
            break;
        rc = wait_fd(fd, POLLIN, deadline);
        if (rc)
            break;
        n = recv(fd, in.p + in.len, in.cap - in.len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n <= 0) {
            rc = CE_UNREACHABLE;
            break;
        }
        in.len += (size_t)n;
    }
    bytebuf_free(&in);
    return rc;
}

static int exchange(int fd, const char *url, uint64_t deadline, char **json,
                    uint64_t *cluster_id)
{
    hello h = {PEER_VERSION, HK_MEMBERS, 0, 0, 0};
    uint8_t hb[HELLO_LEN];
    bytebuf out = {0};
    int rc;

    hello_encode(hb, &h);
    rc = frame_put(&out, FR_HELLO, hb, sizeof(hb), NULL, 0);
    if (!rc)
        rc = send_all(fd, &out, deadline);
    bytebuf_free(&out);
    if (!rc)
        rc = read_answer(fd, url, deadline, json, cluster_id);
    return rc;
}

int peer_fetch_members(const char *url, int timeout_ms, char **json, uint64_t *cluster_id)
{
    char host[256], port[16];
    struct addrinfo hints = {0}, *res, *ai;
    uint64_t deadline;
    int rc, fd = -1;

    rc = url_parse(url, host, sizeof(host), port, sizeof(port));
    if (rc || timeout_ms <= 0 || !json || !cluster_id)
        return rc ? rc : CE_INVAL;
    deadline = evloop_now_ms() + (uint64_t)timeout_ms;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &res)) {
        log_warn("peer: cannot resolve %s", url);
        return CE_UNREACHABLE;
    }
    res = addrinfo_v4_first(res);
    for (ai = res; ai && fd < 0 && rc != CE_TIMEOUT; ai = ai->ai_next)
        fd = connect_until(ai, deadline, &rc);
    freeaddrinfo(res);
    if (fd < 0)
        return rc;
    rc = exchange(fd, url, deadline, json, cluster_id);
    close(fd);
    return rc;
}
