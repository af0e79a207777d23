/*
 * resolve.c: host names of peer URLs resolved without blocking the loop. getaddrinfo() can
 * take seconds (an unresponsive DNS server, a pod name not published yet), and the loop must
 * keep Raft ticking, so each lookup runs on a short-lived detached thread, which stores the
 * result in its request and signals the resolver's eventfd; the loop then delivers it.
 *
 * Invariants: one process-wide mutex guards every request's state and the eventfd write.
 * A request is freed by exactly one side: the loop when it delivers a done request (or cancels
 * one that is already done), the thread when it finds its request abandoned. The thread
 * writes to the eventfd only while holding the mutex and only if the request is not
 * abandoned, and resolver_fini abandons every request (under the mutex) before closing the
 * eventfd, so a thread never writes to a closed descriptor.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "peer_int.h"

enum { RQ_PENDING, RQ_DONE, RQ_ABANDONED };

struct resolve_req {
    resolve_req *prev, *next; /* r->reqs: loop side only */
    int state;                /* guarded by mu */
    int efd;                  /* valid while not abandoned */
    char host[256], port[16];
    int gai;
    struct addrinfo *res;
    resolve_cb cb;
    void *arg;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

struct addrinfo *addrinfo_v4_first(struct addrinfo *res)
{
    struct addrinfo *v4 = NULL, **v4t = &v4, *other = NULL, **ot = &other, *next;

    for (; res; res = next) {
        next = res->ai_next;
        res->ai_next = NULL;
        if (res->ai_family == AF_INET) {
            *v4t = res;
            v4t = &res->ai_next;
        } else {
            *ot = res;
            ot = &res->ai_next;
        }
    }
    *v4t = other;
    return v4;
}

int resolve_numeric(const char *host, const char *port, struct addrinfo **res)
{
    struct addrinfo hints = {0};

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, res))
        return CE_NOTFOUND;
    return 0;
}

static void *resolve_thread(void *arg)
{
    resolve_req *q = arg;
    struct addrinfo hints = {0}, *res = NULL;
    int gai;
    uint64_t one = 1;

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    gai = getaddrinfo(q->host, q->port, &hints, &res);
    pthread_mutex_lock(&mu);
    if (q->state == RQ_ABANDONED) {
        pthread_mutex_unlock(&mu);
        if (!gai)
            freeaddrinfo(res);
        free(q);
        return NULL;
    }
    q->gai = gai;
    q->res = gai ? NULL : addrinfo_v4_first(res);
    q->state = RQ_DONE;
    if (write(q->efd, &one, sizeof(one)) < 0) {
        /* the counter is already non-zero: the loop will look */
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void unlink_req(resolver *r, resolve_req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        r->reqs = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

/* The first done request, unlinked; NULL if none. */
static resolve_req *take_done(resolver *r)
{
    resolve_req *q;

    pthread_mutex_lock(&mu);
    for (q = r->reqs; q && q->state != RQ_DONE; q = q->next)
        ;
    pthread_mutex_unlock(&mu);
    if (q)
        unlink_req(r, q);
    return q;
}

static void efd_cb(evloop *l, ev_io *w, int events)
{
    resolver *r = w->data;
    resolve_req *q;
    uint64_t v;

    (void)l;
    (void)events;
    if (read(r->efd, &v, sizeof(v)) < 0) {
        /* spurious wake-up */
    }
    /* A callback may cancel or start other requests: take them one at a time. */
    while ((q = take_done(r))) {
        resolve_cb cb = q->cb;
        void *arg = q->arg;
        int gai = q->gai;
        struct addrinfo *res = q->res;

        free(q);
        cb(arg, gai, res);
    }
}

int resolver_init(resolver *r, evloop *loop)
{
    int rc;

    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0)
        return ce_from_errno(errno);
    rc = evloop_io_start(loop, &r->io, r->efd, EV_READ, efd_cb, r);
    if (rc) {
        close(r->efd);
        r->efd = -1;
    }
    return rc;
}

void resolve_cancel(resolver *r, resolve_req *q)
{
    bool done;

    unlink_req(r, q);
    pthread_mutex_lock(&mu);
    done = q->state == RQ_DONE;
    if (!done)
        q->state = RQ_ABANDONED; /* the thread frees it */
    pthread_mutex_unlock(&mu);
    if (done) {
        if (q->res)
            freeaddrinfo(q->res);
        free(q);
    }
}

void resolver_fini(resolver *r)
{
    if (r->efd < 0)
        return;
    while (r->reqs)
        resolve_cancel(r, r->reqs);
    evloop_io_stop(r->loop, &r->io);
    close(r->efd);
    r->efd = -1;
}

int resolve_start(resolver *r, const char *host, const char *port, resolve_cb cb, void *arg,
                  resolve_req **out)
{
    resolve_req *q = calloc(1, sizeof(*q));
    pthread_attr_t attr;
    pthread_t th;
    int rc;

    if (!q)
        return CE_NOMEM;
    if (strlen(host) >= sizeof(q->host) || strlen(port) >= sizeof(q->port)) {
        free(q);
        return CE_INVAL;
    }
    strcpy(q->host, host);
    strcpy(q->port, port);
    q->efd = r->efd;
    q->cb = cb;
    q->arg = arg;
    q->state = RQ_PENDING;
    q->next = r->reqs;
    if (r->reqs)
        r->reqs->prev = q;
    r->reqs = q;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&th, &attr, resolve_thread, q);
    pthread_attr_destroy(&attr);
    if (rc) {
        unlink_req(r, q);
        free(q);
        return CE_AGAIN;
    }
    *out = q;
    return 0;
}
