/*
 * node_copy.c: point-in-time copies of the store made off the loop (see node.h), for
 * Maintenance.Snapshot (server/api/services_snapshot.c: etcd's bbolt format, so etcd's tools
 * read it) and the data of Raft snapshots sent to followers (node_peer.c: the LMDB file itself,
 * which a follower installs as its store). The two kinds share everything but the thread's work.
 *
 * node_copy_start, on the loop: an unnamed temp file beside the store (mvcc_tmpfile), the
 * state pinned (mvcc_copy_begin: one flush and an LMDB read transaction, so the copy is the
 * store as it is at this call: its revision, and its consistent index = the applied index
 * now), an eventfd the loop watches, and a thread that runs mvcc_copy_run (NODE_COPY_LMDB) or
 * mvcc_copy_export (NODE_COPY_BBOLT, which also sets the size) into the file and then writes
 * the eventfd. When the loop sees it: join, unpin (mvcc_copy_end, on the loop as
 * snapcopy.c requires), then the owner's done(arg, rc).
 *
 * Invariants: thread_live while the thread may run (rc is written by the thread and read only
 * after the join); the pin lives until the join; done is called at most once, last, and never
 * after node_copy_free; nothing touches the copy after done returns (done may free it). The
 * temp file has no name: closing it deletes it, whatever happened.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "err.h"
#include "node_int.h"

struct node_copy {
    evloop *loop;
    mvcc_copy *pin;                /* NULL once released */
    int fd;                        /* the temp file; -1 once taken */
    int efd;                       /* the thread's "done" */
    ev_io done_io;
    pthread_t thread;
    bool thread_live;
    int rc;                        /* the thread's result */
    int64_t rev;
    uint64_t size;
    enum node_copy_kind kind;
    node_copy_fn done;
    void *arg;
};

static void *copy_thread(void *arg)
{
    node_copy *c = arg;
    uint64_t one = 1;

    if (c->kind == NODE_COPY_BBOLT)
        c->rc = mvcc_copy_export(c->pin, c->fd, &c->size);
    else
        c->rc = mvcc_copy_run(c->pin, c->fd);
    while (write(c->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    return NULL;
}

/* Ends the thread and unpins. */
static void reap(node_copy *c)
{
    pthread_join(c->thread, NULL);
    c->thread_live = false;
    mvcc_copy_end(c->pin);
    c->pin = NULL;
}

static void copy_done(evloop *l, ev_io *w, int events)
{
    node_copy *c = w->data;
    uint64_t v;

    (void)events;
    if (read(c->efd, &v, sizeof(v)) < 0 && errno == EAGAIN)
        return;                   /* not yet */
    evloop_io_stop(l, &c->done_io);
    reap(c);
    c->done(c->arg, c->rc);
}

/* The file, the pin, the eventfd and its watcher, the thread. */
static int copy_setup(node *n, node_copy *c)
{
    int rc;

    if ((rc = mvcc_tmpfile(n->store, &c->fd)) != 0)
        return rc;
    if ((rc = mvcc_copy_begin(n->store, &c->pin)) != 0) {
        c->pin = NULL;
        return rc;
    }
    c->rev = mvcc_copy_rev(c->pin);
    c->size = c->kind == NODE_COPY_LMDB ? mvcc_copy_size(c->pin) : 0;
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0)
        return ce_from_errno(errno);
    if ((rc = evloop_io_start(c->loop, &c->done_io, c->efd, EV_READ, copy_done, c)) != 0)
        return rc;
    if (pthread_create(&c->thread, NULL, copy_thread, c))
        return CE_NOMEM;
    c->thread_live = true;
    return 0;
}

int node_copy_start(node *n, enum node_copy_kind kind, node_copy_fn done, void *arg,
                    node_copy **out)
{
    node_copy *c = calloc(1, sizeof(*c));
    int rc;

    if (!c)
        return CE_NOMEM;
    c->loop = n->loop;
    c->fd = c->efd = -1;
    c->kind = kind;
    c->done = done;
    c->arg = arg;
    rc = copy_setup(n, c);
    if (rc) {
        node_copy_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int64_t node_copy_rev(const node_copy *c) { return c->rev; }
uint64_t node_copy_size(const node_copy *c) { return c->size; }
int node_copy_fd(const node_copy *c) { return c->fd; }

int node_copy_take_fd(node_copy *c)
{
    int fd = c->fd;

    c->fd = -1;
    return fd;
}

void node_copy_stop(node_copy *c)
{
    if (c->thread_live)
        mvcc_copy_stop(c->pin);
}

void node_copy_free(node_copy *c)
{
    if (!c)
        return;
    if (c->thread_live) {
        mvcc_copy_stop(c->pin);
        reap(c);
    }
    evloop_io_stop(c->loop, &c->done_io);
    if (c->efd >= 0)
        close(c->efd);
    mvcc_copy_end(c->pin);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}
