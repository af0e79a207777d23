/*
 * evloop.h: the single-threaded event loop every cetcd process runs on (epoll).
 *
 * Three kinds of callbacks: fd watchers (readable/writable), timers (one-shot or periodic,
 * millisecond resolution, monotonic clock) and "flush" hooks, which run once per loop
 * iteration after all ready events were handled and before the loop blocks again. Flush hooks
 * are what make group commit natural: every request that arrived in one iteration is proposed,
 * then one flush persists them all with a single fsync.
 *
 * Invariants: callbacks run on the loop's thread only; a watcher or timer removed inside a
 * callback is never called again, even later in the same iteration. evloop_wake() is the one
 * call that is safe from another thread.
 */
#ifndef CETCD_EVLOOP_H
#define CETCD_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct evloop evloop;
typedef struct ev_io ev_io;
typedef struct ev_timer ev_timer;

enum { EV_READ = 1, EV_WRITE = 2 };

typedef void (*ev_io_fn)(evloop *l, ev_io *w, int events);
typedef void (*ev_timer_fn)(evloop *l, ev_timer *t);
typedef void (*ev_flush_fn)(evloop *l, void *arg);

struct ev_io {
    int fd;
    int events;           /* EV_READ | EV_WRITE currently watched */
    ev_io_fn cb;
    void *data;           /* owner's pointer */
    bool active;
};

struct ev_timer {
    uint64_t due_ms;      /* monotonic ms when it fires next */
    uint64_t period_ms;   /* 0 = one-shot */
    ev_timer_fn cb;
    void *data;
    bool active;
    ev_timer *next;       /* internal list link */
};

int evloop_new(evloop **out);
void evloop_free(evloop *l);

/* Watches w->fd for events; call again to change the events; 0 or CE_*. */
int evloop_io_start(evloop *l, ev_io *w, int fd, int events, ev_io_fn cb, void *data);
int evloop_io_set(evloop *l, ev_io *w, int events);
void evloop_io_stop(evloop *l, ev_io *w);

void evloop_timer_start(evloop *l, ev_timer *t, uint64_t after_ms, uint64_t period_ms,
                        ev_timer_fn cb, void *data);
void evloop_timer_stop(evloop *l, ev_timer *t);

/* At most 8 flush hooks; 0 or CE_NOMEM. */
int evloop_add_flush(evloop *l, ev_flush_fn fn, void *arg);

/* Runs until evloop_stop() (also one called before run started); returns 0 or CE_*. */
int evloop_run(evloop *l);
void evloop_stop(evloop *l);
/* Makes a blocked evloop_run return from its wait (thread- and signal-safe). */
void evloop_wake(evloop *l);

/* Monotonic milliseconds, the loop's clock. */
uint64_t evloop_now_ms(void);

#endif
