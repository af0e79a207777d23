/*
 * transport_tlsrelay.c: WebSockets over TLS. The WebSocket bridge (ws.c) hands a raw socket to
 * libwebsockets in its own thread, but a TLS connection's session lives on our loop. So when a
 * TLS connection upgrades, its socket and session move to a relay, and the bridge gets one end
 * of a socketpair instead; the relay copies decrypted client bytes into the pair and encrypts
 * what libwebsockets writes back, on the transport's loop.
 *
 * Invariants: each direction buffers at most RELAY_HIGH bytes (reading its source stops above
 * it); an EOF from the client (close_notify or FIN) becomes a half-close of the pair once the
 * bytes before it are delivered; the relay ends when libwebsockets closes its end and what it
 * wrote is sent (close_notify then close), or when the TLS side fails; a relay is on its
 * server's list until freed, and rpc_server_free frees those left.
 */
#include "transport_int.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "server/api/tls.h"

#define RELAY_HIGH (256u * 1024u)
#define RELAY_CHUNK (64u * 1024u)   /* at least one TLS record: nothing left inside OpenSSL */

struct tls_relay {
    evloop *loop;
    tls_relay **head;          /* the server's list */
    tls_relay *next, *prev;
    int tfd;                   /* the client's TLS socket */
    tls_sess *tls;
    ev_io tio;
    int pfd;                   /* our end of the socketpair (libwebsockets has the other) */
    ev_io pio;
    bytebuf up;                /* decrypted from the client, for libwebsockets */
    bytebuf down;              /* from libwebsockets, to encrypt for the client */
    bool t_eof, p_eof, p_shut, failed;
};

static void relay_free(tls_relay *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        *r->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    evloop_io_stop(r->loop, &r->tio);
    evloop_io_stop(r->loop, &r->pio);
    tls_sess_free(r->tls);   /* close_notify, unless the session failed */
    close(r->tfd);
    close(r->pfd);
    bytebuf_free(&r->up);
    bytebuf_free(&r->down);
    free(r);
}

void tlsrelay_free_all(tls_relay **head)
{
    while (*head)
        relay_free(*head);
}

/* Client -> pair. */
static void pump_up(tls_relay *r)
{
    while (!r->t_eof && !r->failed && bytebuf_size(&r->up) < RELAY_HIGH) {
        ssize_t n;

        if (bytebuf_reserve(&r->up, RELAY_CHUNK)) {
            r->failed = true;
            return;
        }
        n = tls_sess_read(r->tls, r->up.p + r->up.len, r->up.cap - r->up.len);
        if (n == CE_AGAIN)
            break;
        if (n == 0)
            r->t_eof = true;
        else if (n < 0)
            r->failed = true;
        else
            r->up.len += (size_t)n;
    }
    while (bytebuf_size(&r->up) > 0) {
        ssize_t n = send(r->pfd, bytebuf_data(&r->up), bytebuf_size(&r->up), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (!(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
                r->p_eof = true;   /* libwebsockets is gone: nothing more to deliver */
            break;
        }
        bytebuf_consume(&r->up, (size_t)n);
    }
    if (r->p_eof)
        bytebuf_consume(&r->up, bytebuf_size(&r->up));
    if (r->t_eof && bytebuf_size(&r->up) == 0 && !r->p_shut) {
        shutdown(r->pfd, SHUT_WR);
        r->p_shut = true;
    }
}

/* Pair -> client. */
static void pump_down(tls_relay *r)
{
    while (!r->p_eof && bytebuf_size(&r->down) < RELAY_HIGH) {
        ssize_t n;

        if (bytebuf_reserve(&r->down, RELAY_CHUNK)) {
            r->failed = true;
            return;
        }
        n = recv(r->pfd, r->down.p + r->down.len, r->down.cap - r->down.len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0)
            r->p_eof = true;
        else
            r->down.len += (size_t)n;
    }
    while (!r->failed && bytebuf_size(&r->down) > 0) {
        ssize_t n = tls_sess_write(r->tls, bytebuf_data(&r->down), bytebuf_size(&r->down));
        if (n == CE_AGAIN)
            break;
        if (n < 0)
            r->failed = true;
        else
            bytebuf_consume(&r->down, (size_t)n);
    }
}

static bool relay_done(const tls_relay *r)
{
    return r->failed || (r->p_eof && bytebuf_size(&r->down) == 0);
}

static int relay_watch(tls_relay *r)
{
    int t = (!r->t_eof && bytebuf_size(&r->up) < RELAY_HIGH ? EV_READ : 0) |
            (bytebuf_size(&r->down) > 0 || tls_sess_wants_write(r->tls) ? EV_WRITE : 0);
    int p = (!r->p_eof && bytebuf_size(&r->down) < RELAY_HIGH ? EV_READ : 0) |
            (bytebuf_size(&r->up) > 0 ? EV_WRITE : 0);
    int rc = 0;

    if (t != r->tio.events)
        rc = evloop_io_set(r->loop, &r->tio, t);
    if (!rc && p != r->pio.events)
        rc = evloop_io_set(r->loop, &r->pio, p);
    return rc;
}

static void relay_cb(evloop *l, ev_io *w, int events)
{
    tls_relay *r = w->data;

    (void)l;
    (void)events;
    pump_up(r);
    pump_down(r);
    if (relay_done(r) || relay_watch(r))
        relay_free(r);
}

int tlsrelay_start(evloop *loop, tls_relay **head, int fd, tls_sess *tls, int *plain_fd)
{
    tls_relay *r = calloc(1, sizeof(*r));
    int sp[2];

    if (!r || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp)) {
        free(r);
        tls_sess_free(tls);
        close(fd);
        return CE_NOMEM;
    }
    r->loop = loop;
    r->head = head;
    r->tfd = fd;
    r->tls = tls;
    r->pfd = sp[0];
    r->next = *head;
    if (*head)
        (*head)->prev = r;
    *head = r;
    if (evloop_io_start(loop, &r->tio, fd, EV_READ, relay_cb, r) ||
        evloop_io_start(loop, &r->pio, sp[0], EV_READ, relay_cb, r)) {
        relay_free(r);
        close(sp[1]);
        return CE_NOMEM;
    }
    *plain_fd = sp[1];
    return 0;
}
