/*
 * evloop.c: epoll implementation of evloop.h.
 *
 * Timers live in an unsorted singly linked list: cetcd has a handful (raft tick, lease
 * checks, periodic sync), so a scan per iteration is cheaper than a heap. Wake-ups come
 * through an eventfd registered like any other fd.
 */
#include "evloop.h"
#include "err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_FLUSH 8
#define MAX_EVENTS 256

struct flush_hook {
    ev_flush_fn fn;
    void *arg;
};

struct evloop {
    int epfd;
    int wakefd;
    bool stopping;
    ev_timer *timers;
    struct flush_hook flush[MAX_FLUSH];
    int nflush;
    struct epoll_event *pending;  /* the batch being dispatched, so io_stop can scrub it */
    int npending;
};

static char stale_marker;         /* data.ptr of a scrubbed event */

uint64_t evloop_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int evloop_new(evloop **out)
{
    evloop *l = calloc(1, sizeof(*l));
    struct epoll_event ev = {.events = EPOLLIN};

    if (!l)
        return CE_NOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        goto out_free;
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wakefd < 0)
        goto out_close_ep;
    ev.data.ptr = 0;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) < 0)
        goto out_close_wake;
    *out = l;
    return 0;

out_close_wake:
    close(l->wakefd);
out_close_ep:
    close(l->epfd);
out_free:
    free(l);
    return CE_IO;
}

void evloop_free(evloop *l)
{
    if (!l)
        return;
    close(l->wakefd);
    close(l->epfd);
    free(l);
}

static uint32_t to_epoll(int events)
{
    return (uint32_t)((events & EV_READ ? EPOLLIN | EPOLLRDHUP : 0) | (events & EV_WRITE ? EPOLLOUT : 0));
}

int evloop_io_start(evloop *l, ev_io *w, int fd, int events, ev_io_fn cb, void *data)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};

    w->fd = fd;
    w->events = events;
    w->cb = cb;
    w->data = data;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return ce_from_errno(errno);
    w->active = true;
    return 0;
}

int evloop_io_set(evloop *l, ev_io *w, int events)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = w};

    if (!w->active || w->events == events)
        return 0;
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0)
        return ce_from_errno(errno);
    w->events = events;
    return 0;
}

void evloop_io_stop(evloop *l, ev_io *w)
{
    if (!w->active)
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, 0);
    w->active = false;
    /* the owner may free w right after this: forget it in the batch under dispatch */
    for (int i = 0; i < l->npending; i++)
        if (l->pending[i].data.ptr == w)
            l->pending[i].data.ptr = &stale_marker;
}

void evloop_timer_start(evloop *l, ev_timer *t, uint64_t after_ms, uint64_t period_ms,
                        ev_timer_fn cb, void *data)
{
    evloop_timer_stop(l, t);
    t->due_ms = evloop_now_ms() + after_ms;
    t->period_ms = period_ms;
    t->cb = cb;
    t->data = data;
    t->active = true;
    t->next = l->timers;
    l->timers = t;
}

void evloop_timer_stop(evloop *l, ev_timer *t)
{
    ev_timer **pp;

    if (!t->active)
        return;
    for (pp = &l->timers; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    t->active = false;
    t->next = 0;
}

int evloop_add_flush(evloop *l, ev_flush_fn fn, void *arg)
{
    if (l->nflush == MAX_FLUSH)
        return CE_NOMEM;
    l->flush[l->nflush].fn = fn;
    l->flush[l->nflush].arg = arg;
    l->nflush++;
    return 0;
}

void evloop_stop(evloop *l)
{
    l->stopping = true;
    evloop_wake(l);
}

void evloop_wake(evloop *l)
{
    uint64_t one = 1;

    if (write(l->wakefd, &one, sizeof(one)) < 0) {
        /* already signalled: the counter is non-zero */
    }
}

/* Milliseconds until the next timer is due (-1 = none). */
static int next_timeout(evloop *l, uint64_t now)
{
    int64_t best = -1;

    for (ev_timer *t = l->timers; t; t = t->next) {
        int64_t d = t->due_ms > now ? (int64_t)(t->due_ms - now) : 0;
        if (best < 0 || d < best)
            best = d;
    }
    return best > 1000 ? 1000 : (int)best;
}

/* Fires due timers; a callback may start or stop timers, so restart the scan after each. */
static void run_timers(evloop *l)
{
    uint64_t now = evloop_now_ms();
    bool fired = true;

    while (fired) {
        fired = false;
        for (ev_timer *t = l->timers; t; t = t->next) {
            if (t->due_ms > now)
                continue;
            if (t->period_ms) {
                t->due_ms += t->period_ms;
                if (t->due_ms <= now)
                    t->due_ms = now + t->period_ms;
            } else {
                evloop_timer_stop(l, t);
            }
            t->cb(l, t);
            fired = true;
            break;
        }
    }
}

static void run_flush(evloop *l)
{
    for (int i = 0; i < l->nflush; i++)
        l->flush[i].fn(l, l->flush[i].arg);
}

static void dispatch(evloop *l, struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        ev_io *w = evs[i].data.ptr;
        int ev = 0;

        if (w == (void *)&stale_marker)
            continue;
        if (!w) {
            uint64_t v;
            if (read(l->wakefd, &v, sizeof(v)) < 0) {
                /* spurious */
            }
            continue;
        }
        if (!w->active)
            continue;
        if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            ev |= EV_READ;
        if (evs[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            ev |= EV_WRITE;
        w->cb(l, w, ev & (w->events | EV_READ));
    }
}

int evloop_run(evloop *l)
{
    struct epoll_event evs[MAX_EVENTS];

    while (!l->stopping) {
        int n, timeout;

        run_flush(l);
        timeout = next_timeout(l, evloop_now_ms());
        n = epoll_wait(l->epfd, evs, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ce_from_errno(errno);
        }
        l->pending = evs;
        l->npending = n;
        dispatch(l, evs, n);
        l->npending = 0;
        run_timers(l);
    }
    l->stopping = false; /* a stop asked before run() started still counts, once */
    return 0;
}
