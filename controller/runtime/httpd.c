/*
 * httpd.c: the operator's HTTP/1.1 endpoint for /metrics, /healthz and /readyz (contract in
 * httpd.h).
 *
 * One thread runs a poll loop over the listening socket, a wake pipe (written by httpd_stop)
 * and up to MAX_CONNS non-blocking connections. A connection is READING until its request
 * head ends (an empty line), then WRITING its whole response, then DRAINING: its write side
 * is shut (FIN) and whatever the client still sends (a body, the rest of an oversized head)
 * is read and dropped until it closes or DRAIN_MS pass, so that closing with unread input
 * does not reset the connection before the client has read the response. The response is
 * built in full before the first write.
 *
 * Invariants: conns[0..nconns) are live connections, each with a deadline (READ_TIMEOUT_MS
 * after accept while reading, WRITE_TIMEOUT_MS after the request while writing, DRAIN_MS
 * after the response while draining) after which it is closed; a request head never exceeds MAX_HEAD bytes of buffer; the listening socket is
 * left out of the poll set while all slots are taken (or for a moment after accept fails for
 * lack of descriptors), so the loop never spins.
 */
#include "httpd.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bytebuf.h"
#include "err.h"
#include "runtime/olog.h"

#define MAX_CONNS 64
#define MAX_HEAD 8192
#define READ_TIMEOUT_MS 2000
#define WRITE_TIMEOUT_MS 5000
#define DRAIN_MS 1000
#define ACCEPT_PAUSE_MS 100
#define LOGGER "httpd"

enum conn_state { READING, WRITING, DRAINING };

struct conn {
    int fd;
    int64_t deadline;  /* monotonic ms */
    enum conn_state state;
    size_t head_len;
    char head[MAX_HEAD + 1];
    bytebuf out;       /* the response while writing */
};

struct httpd {
    int lfd;
    int wake[2];       /* httpd_stop writes wake[1] */
    int port;
    pthread_t thread;
    atomic_bool ready;
    metrics *metrics;
    struct conn *conns[MAX_CONNS];
    int nconns;
    int64_t accept_paused_until;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- responses ---- */

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* Queues the whole response in c->out and switches c to WRITING. */
static void respond(struct conn *c, int status, const char *ctype, const char *body,
                    size_t len, bool head_only)
{
    int rc = bytebuf_printf(&c->out,
                            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                            "%sConnection: close\r\n\r\n",
                            status, status_text(status), ctype, len,
                            status == 405 ? "Allow: GET, HEAD\r\n" : "");

    if (rc == 0 && !head_only)
        rc = bytebuf_append(&c->out, body, len);
    if (rc != 0)
        bytebuf_free(&c->out); /* out of memory: the connection just closes */
    c->state = WRITING;
    c->deadline = now_ms() + WRITE_TIMEOUT_MS;
}

static void respond_text(struct conn *c, int status, const char *body, bool head_only)
{
    respond(c, status, "text/plain; charset=utf-8", body, strlen(body), head_only);
}

static void respond_metrics(httpd *h, struct conn *c, bool head_only)
{
    static const char ctype[] = "text/plain; version=0.0.4; charset=utf-8";
    char *text = NULL;
    size_t len = 0;

    if (h->metrics && metrics_render_text(h->metrics, &text, &len) != 0) {
        respond_text(c, 500, "cannot render metrics\n", head_only);
        return;
    }
    respond(c, 200, ctype, text ? text : "", len, head_only);
    free(text);
}

/* ---- request parsing ---- */

static bool token_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/*
 * Splits the request line "METHOD SP target SP HTTP/1.x" of a complete head. The path (the
 * target up to '?') is copied into path. false if the line is malformed.
 */
static bool parse_request_line(const char *head, char *method, size_t msize, char *path,
                               size_t psize)
{
    const char *p = head, *sp1, *sp2, *eol = strpbrk(head, "\r\n");
    size_t mlen, plen;

    for (sp1 = p; sp1 < eol && token_char(*sp1); sp1++)
        ;
    mlen = (size_t)(sp1 - p);
    if (sp1 >= eol || *sp1 != ' ' || mlen == 0 || mlen >= msize)
        return false;
    sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (!sp2 || sp1[1] != '/')
        return false;
    plen = strcspn(sp1 + 1, "? ");
    if (plen >= psize)
        plen = psize - 1; /* a long path is simply not one of ours */
    for (const char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return false;
    if ((size_t)(eol - sp2 - 1) != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
        (sp2[8] != '0' && sp2[8] != '1'))
        return false;
    memcpy(method, p, mlen);
    method[mlen] = '\0';
    memcpy(path, sp1 + 1, plen);
    path[plen] = '\0';
    return true;
}

static void ready_text(struct conn *c, bool ready, bool head_only)
{
    respond_text(c, ready ? 200 : 503, ready ? "ok" : "not ready", head_only);
}

static void route(httpd *h, struct conn *c)
{
    char method[16], path[256];
    bool head_only;

    if (!parse_request_line(c->head, method, sizeof(method), path, sizeof(path))) {
        respond_text(c, 400, "bad request\n", false);
        return;
    }
    head_only = strcmp(method, "HEAD") == 0;
    if (!head_only && strcmp(method, "GET") != 0)
        respond_text(c, 405, "method not allowed\n", false);
    else if (strcmp(path, "/metrics") == 0)
        respond_metrics(h, c, head_only);
    else if (strcmp(path, "/healthz") == 0)
        respond_text(c, 200, "ok", head_only);
    else if (strcmp(path, "/readyz") == 0)
        ready_text(c, atomic_load(&h->ready), head_only);
    else
        respond_text(c, 404, "404 page not found\n", head_only);
}

/* ---- connections ---- */

static void conn_close(httpd *h, int i)
{
    struct conn *c = h->conns[i];

    close(c->fd);
    bytebuf_free(&c->out);
    free(c);
    h->conns[i] = h->conns[--h->nconns];
}

/* The head is complete once an empty line ends it (CRLF CRLF, or bare LF LF). */
static bool head_complete(const struct conn *c)
{
    return strstr(c->head, "\r\n\r\n") || strstr(c->head, "\n\n");
}

/* Reads what is available; false if the connection must be closed. */
static bool conn_read(httpd *h, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->head + c->head_len, MAX_HEAD - c->head_len, 0);

        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        if (n == 0)
            return false; /* closed before a whole request */
        if (memchr(c->head + c->head_len, '\0', (size_t)n)) {
            respond_text(c, 400, "bad request\n", false);
            return true;
        }
        c->head_len += (size_t)n;
        c->head[c->head_len] = '\0';
        if (head_complete(c)) {
            route(h, c);
            return true;
        }
        if (c->head_len == MAX_HEAD) {
            respond_text(c, 431, "request header too large\n", false);
            return true;
        }
    }
}

/* Writes what the socket takes; at the end shuts the write side and starts DRAINING.
 * false if the connection failed. */
static bool conn_write(struct conn *c)
{
    while (bytebuf_size(&c->out) > 0) {
        ssize_t n = send(c->fd, bytebuf_data(&c->out), bytebuf_size(&c->out), MSG_NOSIGNAL);

        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        bytebuf_consume(&c->out, (size_t)n);
    }
    bytebuf_free(&c->out);
    shutdown(c->fd, SHUT_WR);
    c->state = DRAINING;
    c->deadline = now_ms() + DRAIN_MS;
    return true;
}

/* Reads and drops input; false once the client has closed (or failed). */
static bool conn_drain(struct conn *c)
{
    char scratch[4096];

    for (;;) {
        ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);

        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        if (n == 0)
            return false;
    }
}

static void conn_event(httpd *h, int i, short revents)
{
    struct conn *c = h->conns[i];
    bool keep = true;

    if (revents & POLLNVAL)
        keep = false;
    else if (c->state == READING && (revents & (POLLIN | POLLHUP | POLLERR)))
        keep = conn_read(h, c);
    else if (c->state == DRAINING && (revents & (POLLIN | POLLHUP | POLLERR)))
        keep = conn_drain(c);
    if (keep && c->state == WRITING)
        keep = conn_write(c); /* try at once: the socket is usually writable */
    if (keep && c->state == DRAINING && (revents & POLLERR))
        keep = false;
    if (!keep)
        conn_close(h, i);
}

static void accept_all(httpd *h)
{
    while (h->nconns < MAX_CONNS) {
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                olog_named(OLOG_WARN, LOGGER, "accept failed", "error", strerror(errno), NULL);
                h->accept_paused_until = now_ms() + ACCEPT_PAUSE_MS;
            }
            return;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->deadline = now_ms() + READ_TIMEOUT_MS;
        h->conns[h->nconns++] = c;
    }
}

/* ---- the loop ---- */

/* Fills fds (wake pipe, listener if accepting, then one per connection, in conns order);
 * returns the poll timeout in ms (-1 = none). *nfds, *lidx (-1 if the listener is out). */
static int build_pollset(httpd *h, struct pollfd *fds, int *nfds, int *lidx, int64_t now)
{
    int64_t next = INT64_MAX;
    int n = 0;

    fds[n++] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
    *lidx = -1;
    if (h->nconns < MAX_CONNS && now >= h->accept_paused_until) {
        *lidx = n;
        fds[n++] = (struct pollfd){.fd = h->lfd, .events = POLLIN};
    } else if (h->nconns < MAX_CONNS) {
        next = h->accept_paused_until;
    }
    for (int i = 0; i < h->nconns; i++) {
        struct conn *c = h->conns[i];

        fds[n++] = (struct pollfd){.fd = c->fd, .events = c->state == WRITING ? POLLOUT : POLLIN};
        if (c->deadline < next)
            next = c->deadline;
    }
    *nfds = n;
    if (next == INT64_MAX)
        return -1;
    return next <= now ? 0 : (int)(next - now);
}

static void expire(httpd *h, int64_t now)
{
    for (int i = h->nconns - 1; i >= 0; i--)
        if (h->conns[i]->deadline <= now)
            conn_close(h, i);
}

static void *serve(void *arg)
{
    httpd *h = arg;
    struct pollfd fds[MAX_CONNS + 2];
    struct conn *polled[MAX_CONNS];
    int nfds, lidx, base, npolled;

    for (;;) {
        int timeout = build_pollset(h, fds, &nfds, &lidx, now_ms());

        npolled = h->nconns;
        memcpy(polled, h->conns, sizeof(polled[0]) * (size_t)npolled);
        base = nfds - npolled;
        if (poll(fds, (nfds_t)nfds, timeout) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            break; /* httpd_stop */
        /* connections by identity: closing one reorders conns[] */
        for (int j = 0; j < npolled; j++) {
            for (int i = 0; fds[base + j].revents && i < h->nconns; i++) {
                if (h->conns[i] == polled[j]) {
                    conn_event(h, i, fds[base + j].revents);
                    break;
                }
            }
        }
        expire(h, now_ms());
        if (lidx >= 0 && (fds[lidx].revents & POLLIN))
            accept_all(h);
    }
    return NULL;
}

/* ---- start / stop ---- */

/* Splits "host:port" ("[v6]:port", ":port") into host (NULL = any IPv4) and port. */
static int split_addr(const char *addr, char *host, size_t hsize, char *port, size_t psize)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t hlen;

    if (!colon || strlen(colon + 1) == 0 || strlen(colon + 1) >= psize ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) > 65535)
        return CE_INVAL;
    hlen = (size_t)(colon - addr);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']')
        h++, hlen -= 2;
    if (hlen >= hsize || memchr(h, '[', hlen) || memchr(h, ']', hlen))
        return CE_INVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (hlen == 0)
        snprintf(host, hsize, "0.0.0.0");
    snprintf(port, psize, "%s", colon + 1);
    return 0;
}

static int bind_listener(const char *addr, int *fd_out, int *port_out)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res, *ai;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[256], port[8];
    int fd = -1, one = 1, err = 0;

    if (split_addr(addr, host, sizeof(host), port, sizeof(port)) != 0 ||
        getaddrinfo(host, port, &hints, &res) != 0)
        return CE_INVAL;
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        olog_named(OLOG_ERROR, LOGGER, "cannot listen", "address", addr, "error",
                   strerror(err), NULL);
        return CE_IO;
    }
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return 0;
}

int httpd_start(const char *addr, metrics *m, httpd **out)
{
    httpd *h;
    int rc;

    *out = NULL;
    if (!addr || !*addr)
        return CE_INVAL;
    if (strcmp(addr, "0") == 0)
        return 0;
    h = calloc(1, sizeof(*h));
    if (!h)
        return CE_NOMEM;
    h->metrics = m;
    rc = bind_listener(addr, &h->lfd, &h->port);
    if (rc != 0)
        goto out_free_h;
    rc = pipe2(h->wake, O_CLOEXEC) == 0 ? 0 : ce_from_errno(errno);
    if (rc != 0)
        goto out_close_lfd;
    rc = pthread_create(&h->thread, NULL, serve, h) == 0 ? 0 : CE_NOMEM;
    if (rc != 0)
        goto out_close_pipe;
    olog_named(OLOG_INFO, LOGGER, "serving", "address", addr, "port", OLOG_I64(h->port), NULL);
    *out = h;
    return 0;
out_close_pipe:
    close(h->wake[0]);
    close(h->wake[1]);
out_close_lfd:
    close(h->lfd);
out_free_h:
    free(h);
    return rc;
}

int httpd_port(const httpd *h) { return h ? h->port : 0; }

void httpd_set_ready(httpd *h, bool ready)
{
    if (h)
        atomic_store(&h->ready, ready);
}

void httpd_stop(httpd *h)
{
    if (!h)
        return;
    while (write(h->wake[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(h->thread, NULL);
    while (h->nconns > 0)
        conn_close(h, h->nconns - 1);
    close(h->wake[0]);
    close(h->wake[1]);
    close(h->lfd);
    free(h);
}
