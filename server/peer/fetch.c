/*
 * fetch.c: peer_fetch_members, the blocking client of the member-list request (HELLO kind 3,
 * answered by MEMBERS or ERROR; wire.c). Used once at start-up by a member joining an existing
 * cluster, before its loop runs, so it blocks (poll with a deadline) instead of using the loop.
 * An https:// URL is spoken over TLS (peer_fetch_members_tls): a context made for the one
 * request, the handshake polled like the rest.
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
#include "api/tls.h"

/* The connection: a socket, and its TLS session for https://. */
typedef struct fetch_link {
    int fd;
    tls_sess *tls;
} fetch_link;

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

/* The poll events a TLS session waits for after CE_AGAIN (else `plain`). */
static short tls_events(const fetch_link *l, short plain)
{
    if (!l->tls)
        return plain;
    return tls_sess_wants_write(l->tls) ? POLLOUT : POLLIN;
}

/* >0 bytes, CE_AGAIN, or CE_UNREACHABLE. */
static ssize_t link_send(fetch_link *l, const void *p, size_t len)
{
    ssize_t n;

    if (l->tls) {
        n = tls_sess_write(l->tls, p, len);
        return n == CE_AGAIN || n > 0 ? n : CE_UNREACHABLE;
    }
    n = send(l->fd, p, len, MSG_NOSIGNAL);
    if (n > 0)
        return n;
    return n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) ? CE_AGAIN
                                                                              : CE_UNREACHABLE;
}

/* >0 bytes, CE_AGAIN, or CE_UNREACHABLE (closed too). */
static ssize_t link_recv(fetch_link *l, void *p, size_t len)
{
    ssize_t n;

    if (l->tls) {
        n = tls_sess_read(l->tls, p, len);
        return n == CE_AGAIN || n > 0 ? n : CE_UNREACHABLE;
    }
    n = recv(l->fd, p, len, 0);
    if (n > 0)
        return n;
    return n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) ? CE_AGAIN
                                                                              : CE_UNREACHABLE;
}

static int send_all(fetch_link *l, const bytebuf *b, uint64_t deadline)
{
    size_t off = 0;

    while (off < bytebuf_size(b)) {
        ssize_t n = link_send(l, bytebuf_data(b) + off, bytebuf_size(b) - off);
        int rc;

        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n != CE_AGAIN)
            return CE_UNREACHABLE;
        rc = wait_fd(l->fd, tls_events(l, POLLOUT), deadline);
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

static int read_answer(fetch_link *l, const char *url, uint64_t deadline, char **json,
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
        n = link_recv(l, in.p + in.len, in.cap - in.len);
        if (n == CE_AGAIN) {
            rc = wait_fd(l->fd, tls_events(l, POLLIN), deadline);
            if (rc)
                break;
            continue;
        }
        if (n <= 0) {
            rc = CE_UNREACHABLE;
            break;
        }
        in.len += (size_t)n;
    }
    bytebuf_free(&in);
    return rc;
}

static int exchange(fetch_link *l, const char *url, uint64_t deadline, char **json,
                    uint64_t *cluster_id)
{
    hello h = {PEER_VERSION, HK_MEMBERS, 0, 0, 0};
    uint8_t hb[HELLO_LEN];
    bytebuf out = {0};
    int rc;

    hello_encode(hb, &h);
    rc = frame_put(&out, FR_HELLO, hb, sizeof(hb), NULL, 0);
    if (!rc)
        rc = send_all(l, &out, deadline);
    bytebuf_free(&out);
    if (!rc)
        rc = read_answer(l, url, deadline, json, cluster_id);
    return rc;
}

/* The TLS handshake of l (client side, for host), polled until the deadline. */
static int tls_connect(fetch_link *l, tls_ctx *x, const char *host, uint64_t deadline)
{
    int rc = tls_sess_new(x, l->fd, host, &l->tls);

    while (!rc) {
        rc = tls_sess_handshake(l->tls);
        if (rc != CE_AGAIN)
            break;
        rc = wait_fd(l->fd, tls_events(l, POLLIN), deadline);
    }
    return rc == CE_IO ? CE_UNREACHABLE : rc;
}

int peer_fetch_members(const char *url, int timeout_ms, char **json, uint64_t *cluster_id)
{
    return peer_fetch_members_tls(url, NULL, timeout_ms, json, cluster_id);
}

int peer_fetch_members_tls(const char *url, const tls_files *tls, int timeout_ms, char **json,
                           uint64_t *cluster_id)
{
    char host[256], port[16];
    tls_ctx *x = NULL;
    fetch_link l = {-1, NULL};
    struct addrinfo hints = {0}, *res, *ai;
    uint64_t deadline;
    int rc, fd = -1;

    rc = url_parse(url, host, sizeof(host), port, sizeof(port));
    if (rc || timeout_ms <= 0 || !json || !cluster_id)
        return rc ? rc : CE_INVAL;
    if (url_is_tls(url) && !tls) {
        log_error("peer: %s: https:// peer URL but no peer TLS configured", url);
        return CE_UNSUPPORTED;
    }
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
    l.fd = fd;
    if (url_is_tls(url)) {
        rc = tls_ctx_new_client(tls, "peer", &x);
        rc = rc ? rc : tls_connect(&l, x, host, deadline);
    }
    if (!rc)
        rc = exchange(&l, url, deadline, json, cluster_id);
    tls_sess_free(l.tls);
    tls_ctx_free(x);
    close(fd);
    return rc;
}
