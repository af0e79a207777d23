/*
 * test_peer.c: the peer transport (server/peer/) with real sockets on 127.0.0.1: several
 * transports share one event loop (member i has id i + 1), and the test waits on conditions by
 * running the loop with a 1 ms checking timer, never by sleeping (except where the passage of
 * time is the subject: backoff, timeouts).
 *
 * Covered: delivery both ways, many messages in order, large entries, with and without the
 * caller's peer_flush; queue bound and one on_unreachable per iteration; reconnect after a
 * restart; backoff bounded (attempt count and reconnect delay); unknown recipient, wrong
 * recipient, cluster-id mismatch, unknown sender retried until added, removed member told so
 * (on_removed once); URL updates redial; dialing by host name (resolver thread); snapshots
 * (a few MiB arrive intact, the sender hears ok; dead peer, short data file, bad arguments);
 * garbage on the peer port (randomized: PEER_SEED=<n> replays); peer_fetch_members (answer,
 * refusal, closed port, silent listener timeout, bad URLs); peer_new argument errors; a handler
 * removing the sender of the message it is handling; every descriptor close-on-exec, and none
 * left open after a test (teardown counts them).
 *
 * Run: hack/unit.sh tests/unit/test_peer.c server/peer/[*].c server/raft/[*].c  (brackets:
 *      this comment's; in a shell write the globs plainly). PEER_LOG=1 shows the log lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "err.h"
#include "evloop.h"
#include "lebytes.h"
#include "log.h"
#include "server/peer/peer.h"
#include "server/peer/peer_int.h"

#define MAXM 3
#define CLUSTER 0xC1u
#define MAXIDS 8

struct fx;

struct member {
    struct fx *fx;
    uint64_t id;
    peer_transport *t;
    int port;
    /* received messages: per sender, the next expected sequence number (index) */
    uint64_t next_seq[MAXIDS];
    uint64_t nmsgs;
    int bad_msgs;
    uint64_t nheartbeats;
    /* handlers' observations */
    int unreachable[MAXIDS];
    int removed;
    int snaps;
    raft_msg snap_m;          /* scalar fields only */
    uint64_t snap_voters[4], snap_learners[4];
    char snap_path[512];
    char snap_extra[256];
    size_t snap_extra_len;
    bool keep_snap_file;
    bool resend_on_unreachable;   /* on_unreachable sends to ids 3 and 4 again */
    uint64_t remove_sender_after; /* on_msg removes the sender after this many messages */
    int sent_ok[MAXIDS], sent_fail[MAXIDS];
};

struct fx {
    int fds_at_setup;
    bool lenient_fds;         /* a resolver thread may still hold a DNS socket */
    evloop *loop;
    struct member m[MAXM];
    char dir[64];
    bool use_flush;
    ev_timer check;
    bool (*pred)(struct fx *, void *);
    void *arg;
    uint64_t deadline;
    bool met;
};

/* ---- descriptors ---- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    if (d)
        closedir(d);
    return n;
}

static bool inherited[1024]; /* open before the first test: the harness's, not ours */

static void note_inherited(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

    while (d && (de = readdir(d))) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] != '.' && fd >= 0 && fd < 1024 && fd != dirfd(d))
            inherited[fd] = true;
    }
    if (d)
        closedir(d);
}

/* Every descriptor we opened is close-on-exec (the directory's own one excepted). */
static bool all_cloexec(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    bool ok = true;

    while (d && (de = readdir(d))) {
        int fd = atoi(de->d_name);
        if (de->d_name[0] == '.' || fd <= 2 || fd == dirfd(d) || (fd < 1024 && inherited[fd]))
            continue;
        if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
            char link[64], target[256] = "";
            snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
            if (readlink(link, target, sizeof(target) - 1) < 0)
                target[0] = 0;
            printf("fd %d (%s) is not close-on-exec\n", fd, target);
            ok = false;
        }
    }
    if (d)
        closedir(d);
    return ok;
}

static int send_heartbeat(struct member *from, uint64_t to);

/* ---- handlers ---- */

static uint8_t entry_byte(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 31 + i * 7);
}

static void on_msg(void *ctx, const raft_msg *m)
{
    struct member *me = ctx;

    if (m->to != me->id || m->from >= MAXIDS) {
        me->bad_msgs++;
        return;
    }
    if (m->type == RAFT_MSG_HEARTBEAT) {
        me->nheartbeats++;
        return;
    }
    if (m->index != me->next_seq[m->from] || m->n_entries != 1 ||
        m->entries[0].index != m->index) {
        me->bad_msgs++;
    } else {
        for (size_t i = 0; i < m->entries[0].len; i++)
            if (m->entries[0].data[i] != entry_byte(m->index, i)) {
                me->bad_msgs++;
                break;
            }
    }
    me->next_seq[m->from] = m->index + 1;
    me->nmsgs++;
    if (me->remove_sender_after && me->nmsgs == me->remove_sender_after)
        peer_remove(me->t, m->from); /* closes the connection being read */
}

static void on_snapshot(void *ctx, const raft_msg *m, const uint8_t *extra, size_t extra_len,
                        const char *path)
{
    struct member *me = ctx;

    me->snaps++;
    if (!all_cloexec())
        me->bad_msgs++;
    me->snap_m = *m;
    me->snap_m.entries = NULL;
    for (size_t i = 0; i < m->snapshot.conf.n_voters && i < 4; i++)
        me->snap_voters[i] = m->snapshot.conf.voters[i];
    for (size_t i = 0; i < m->snapshot.conf.n_learners && i < 4; i++)
        me->snap_learners[i] = m->snapshot.conf.learners[i];
    snprintf(me->snap_path, sizeof(me->snap_path), "%s", path);
    me->snap_extra_len = extra_len < sizeof(me->snap_extra) ? extra_len : sizeof(me->snap_extra);
    memcpy(me->snap_extra, extra, me->snap_extra_len);
    if (!me->keep_snap_file)
        unlink(path);
}

static void on_snapshot_sent(void *ctx, uint64_t to, bool ok)
{
    struct member *me = ctx;

    if (to < MAXIDS)
        (ok ? me->sent_ok : me->sent_fail)[to]++;
}

static void on_unreachable(void *ctx, uint64_t id)
{
    struct member *me = ctx;

    if (id < MAXIDS)
        me->unreachable[id]++;
    if (me->resend_on_unreachable) {
        send_heartbeat(me, 3); /* dropped again: flags both once more */
        send_heartbeat(me, 4);
    }
}

static void on_removed(void *ctx)
{
    struct member *me = ctx;

    me->removed++;
}

static atomic_int members_refuse;

static int members_json(void *ctx, char **json)
{
    (void)ctx;
    if (atomic_load(&members_refuse))
        return CE_NOTFOUND;
    *json = strdup("{\"members\":[{\"id\":\"2\"}]}");
    return *json ? 0 : CE_NOMEM;
}

/* ---- fixture ---- */

static void flush_hook(evloop *l, void *arg)
{
    struct fx *fx = arg;

    (void)l;
    if (!fx->use_flush)
        return;
    for (int i = 0; i < MAXM; i++)
        if (fx->m[i].t)
            peer_flush(fx->m[i].t);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    if (!fx)
        return -1;
    fx->fds_at_setup = count_fds();
    if (evloop_new(&fx->loop))
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_peer.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    if (evloop_add_flush(fx->loop, flush_hook, fx))
        return -1;
    *state = fx;
    return 0;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[512];

    if (!d)
        return;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int files_in(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int teardown(void **state)
{
    struct fx *fx = *state;

    for (int i = 0; i < MAXM; i++)
        peer_free(fx->m[i].t);
    evloop_free(fx->loop);
    rm_dir(fx->dir);
    if (!fx->lenient_fds && count_fds() != fx->fds_at_setup) {
        printf("descriptor leak: %d open before, %d after\n", fx->fds_at_setup, count_fds());
        free(fx);
        return -1;
    }
    free(fx);
    return 0;
}

static int start_member_cluster(struct fx *fx, int i, int port, uint64_t cluster)
{
    struct member *me = &fx->m[i];
    char url[64];
    const char *urls[] = {url};
    peer_config cfg = {0};
    int rc;

    if (!me->id) {
        me->id = (uint64_t)i + 1;
        me->fx = fx;
        for (int s = 0; s < MAXIDS; s++)
            me->next_seq[s] = 1;
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    cfg.member_id = me->id;
    cfg.cluster_id = cluster;
    cfg.listen_urls = urls;
    cfg.nlisten = 1;
    cfg.snap_dir = fx->dir;
    cfg.h = (peer_handlers){me, on_msg, on_snapshot, on_snapshot_sent, on_unreachable,
                            on_removed, members_json};
    rc = peer_new(fx->loop, &cfg, &me->t);
    if (!rc)
        me->port = peer_listen_port(me->t, 0);
    return rc;
}

static void start_member(struct fx *fx, int i, int port)
{
    assert_int_equal(start_member_cluster(fx, i, port, CLUSTER), 0);
    assert_true(fx->m[i].port > 0);
}

static void stop_member(struct fx *fx, int i)
{
    peer_free(fx->m[i].t);
    fx->m[i].t = NULL;
}

/* a knows b at b's listen port. */
static void add_peer(struct fx *fx, int a, int b)
{
    char url[64];
    const char *urls[] = {url};

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fx->m[b].port);
    assert_int_equal(peer_add(fx->m[a].t, fx->m[b].id, urls, 1), 0);
}

static void add_peer_url(struct fx *fx, int a, uint64_t id, const char *url)
{
    const char *urls[] = {url};

    assert_int_equal(peer_add(fx->m[a].t, id, urls, 1), 0);
}

static void check_cb(evloop *l, ev_timer *tm)
{
    struct fx *fx = tm->data;

    if (fx->pred && fx->pred(fx, fx->arg)) {
        fx->met = true;
        evloop_stop(l);
    } else if (evloop_now_ms() >= fx->deadline) {
        evloop_stop(l);
    }
}

/* Runs the loop until pred holds (true) or timeout_ms passed (false). */
static bool run_until(struct fx *fx, bool (*pred)(struct fx *, void *), void *arg,
                      uint64_t timeout_ms)
{
    fx->pred = pred;
    fx->arg = arg;
    fx->met = false;
    fx->deadline = evloop_now_ms() + timeout_ms;
    if (pred && pred(fx, arg))
        return true;
    evloop_timer_start(fx->loop, &fx->check, 1, 1, check_cb, fx);
    assert_int_equal(evloop_run(fx->loop), 0);
    evloop_timer_stop(fx->loop, &fx->check);
    return fx->met;
}

/* Runs the loop for ms (the subject is what happens meanwhile). */
static void run_for(struct fx *fx, uint64_t ms)
{
    run_until(fx, NULL, NULL, ms);
}

static bool both_active(struct fx *fx, void *arg)
{
    const int *ab = arg;
    struct member *a = &fx->m[ab[0]], *b = &fx->m[ab[1]];

    return peer_is_active(a->t, b->id) && peer_is_active(b->t, a->id);
}

static bool active(struct fx *fx, void *arg)
{
    const int *ab = arg;

    return peer_is_active(fx->m[ab[0]].t, fx->m[ab[1]].id);
}

static bool not_active(struct fx *fx, void *arg)
{
    return !active(fx, arg);
}

static void connect_pair(struct fx *fx, int a, int b)
{
    int ab[2] = {a, b};

    add_peer(fx, a, b);
    add_peer(fx, b, a);
    assert_true(run_until(fx, both_active, ab, 3000));
}

struct count_goal {
    int who;
    uint64_t n;
};

static bool got_msgs(struct fx *fx, void *arg)
{
    const struct count_goal *g = arg;

    return fx->m[g->who].nmsgs >= g->n;
}

static bool got_two(struct fx *fx, void *arg)
{
    const struct count_goal *g = arg;

    return got_msgs(fx, (void *)&g[0]) && got_msgs(fx, (void *)&g[1]);
}

/* A MsgApp carrying sequence number seq as its index and one entry of len bytes. */
static int send_seq(struct member *from, uint64_t to, uint64_t seq, size_t len)
{
    static uint8_t buf[3u << 20];
    raft_entry e = {.term = 1, .index = seq, .type = RAFT_ENTRY_NORMAL, .data = buf, .len = len};
    raft_msg m = {.type = RAFT_MSG_APP, .to = to, .from = from->id, .term = 1, .index = seq,
                  .log_term = 1, .commit = seq, .entries = &e, .n_entries = 1};

    for (size_t i = 0; i < len; i++)
        buf[i] = entry_byte(seq, i);
    return peer_send(from->t, &m);
}

static int send_heartbeat(struct member *from, uint64_t to)
{
    raft_msg m = {.type = RAFT_MSG_HEARTBEAT, .to = to, .from = from->id, .term = 1};

    return peer_send(from->t, &m);
}

/* ---- message delivery ---- */

static void delivery(struct fx *fx)
{
    struct member *a = &fx->m[0], *b = &fx->m[1];
    uint64_t seq_a = 1, seq_b = 1;

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    assert_true(peer_active_since_ms(a->t, 2) > 0);
    assert_true(all_cloexec());
    assert_false(peer_is_active(a->t, 99));
    assert_int_equal(peer_active_since_ms(a->t, 99), 0);
    for (int round = 0; round < 10; round++) {
        struct count_goal g[2] = {{1, 0}, {0, 0}};

        for (int i = 0; i < 1000; i++) {
            /* mostly small entries, now and then a 2 MiB one */
            size_t len = i == 500 ? (2u << 20) : (size_t)(seq_a % 300);
            assert_int_equal(send_seq(a, 2, seq_a++, len), 0);
            assert_int_equal(send_seq(b, 1, seq_b, (size_t)(seq_b % 50)), 0);
            seq_b++;
        }
        g[0].n = seq_a - 1;
        g[1].n = seq_b - 1;
        assert_true(run_until(fx, got_two, g, 5000));
    }
    assert_int_equal(b->nmsgs, 10000);
    assert_int_equal(a->nmsgs, 10000);
    assert_int_equal(a->bad_msgs + b->bad_msgs, 0);
    assert_int_equal(a->unreachable[2] + b->unreachable[1], 0);
}

static void test_delivery_timer_flush(void **state)
{
    delivery(*state);
}

static void test_delivery_caller_flush(void **state)
{
    struct fx *fx = *state;

    fx->use_flush = true;
    delivery(fx);
}

static bool unreachable_reported(struct fx *fx, void *arg)
{
    const int *who_id = arg;

    return fx->m[who_id[0]].unreachable[who_id[1]] > 0;
}

static void test_queue_bound(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0], *b = &fx->m[1];
    struct count_goal g = {1, PEER_QUEUE_MSGS};
    int who_id[2] = {0, 2}, dropped = 0;

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    /* No loop iteration in between: nothing is written, the queue fills. */
    for (uint64_t seq = 1; seq <= PEER_QUEUE_MSGS + 100; seq++) {
        int rc = send_seq(a, 2, seq <= PEER_QUEUE_MSGS ? seq : PEER_QUEUE_MSGS + 1, 8);
        if (rc == CE_AGAIN)
            dropped++;
        else
            assert_int_equal(rc, 0);
    }
    assert_int_equal(dropped, 100);
    assert_true(run_until(fx, got_msgs, &g, 5000));
    assert_true(run_until(fx, unreachable_reported, who_id, 1000));
    run_for(fx, 20);
    assert_int_equal(a->unreachable[2], 1); /* once for the 100 drops */
    assert_int_equal(b->nmsgs, PEER_QUEUE_MSGS);
    assert_int_equal(b->bad_msgs, 0);
    /* The queue is usable again. */
    assert_int_equal(send_seq(a, 2, PEER_QUEUE_MSGS + 1, 8), 0);
    g.n = PEER_QUEUE_MSGS + 1;
    assert_true(run_until(fx, got_msgs, &g, 2000));
}

/* ---- reconnection and backoff ---- */

static void test_reconnect_after_restart(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0], *b = &fx->m[1];
    int ab[2] = {0, 1}, who_id[2] = {0, 2};
    struct count_goal g = {1, 1};
    uint64_t t0;
    int port;

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    port = b->port;
    stop_member(fx, 1);
    assert_true(run_until(fx, not_active, ab, 2000));
    assert_true(run_until(fx, unreachable_reported, who_id, 1000));
    assert_int_equal(send_heartbeat(a, 2), CE_AGAIN); /* backing off: dropped at once */
    start_member(fx, 1, port);
    add_peer(fx, 1, 0);
    t0 = evloop_now_ms();
    assert_true(run_until(fx, both_active, ab, 3000));
    assert_true(evloop_now_ms() - t0 < 1500);
    for (int i = 0; i < 5; i++)
        assert_int_equal(send_seq(a, 2, b->next_seq[1] + (uint64_t)i, 16), 0);
    g.n = 5;
    assert_true(run_until(fx, got_msgs, &g, 2000));
    assert_int_equal(b->bad_msgs, 0);
}

struct raw_listener {
    int fd;
    ev_io io;
    int accepts;
    uint64_t at[64]; /* when each attempt arrived */
};

static void raw_accept_cb(evloop *l, ev_io *w, int events)
{
    struct raw_listener *rl = w->data;
    int fd;

    (void)l;
    (void)events;
    while ((fd = accept4(rl->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        if (rl->accepts < 64)
            rl->at[rl->accepts] = evloop_now_ms();
        rl->accepts++;
        close(fd);
    }
}

static int listen_any(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A port nothing listens on (bound once, then closed). */
static int dead_port(void)
{
    int port, fd = listen_any(&port);

    close(fd);
    return port;
}

static void test_backoff_bounded(void **state)
{
    struct fx *fx = *state;
    struct raw_listener rl = {0};
    int port, ab[2] = {0, 1};
    uint64_t t0, gap, max_gap = 0;
    char url[64];

    start_member(fx, 0, 0);
    rl.fd = listen_any(&port);
    assert_int_equal(evloop_io_start(fx->loop, &rl.io, rl.fd, EV_READ, raw_accept_cb, &rl), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    add_peer_url(fx, 0, 2, url);
    /* Every attempt is accepted and closed at once: 50, 100, 200, 400, 800, then 1000 ms
     * apart (the cap). */
    run_for(fx, 4200);
    printf("backoff: %d attempts in 4.2 s, gaps:", rl.accepts);
    for (int i = 1; i < rl.accepts && i < 64; i++) {
        gap = rl.at[i] - rl.at[i - 1];
        printf(" %" PRIu64, gap);
        assert_true(gap + 20 >= (i < 6 ? (25u << i) : 1000u)); /* it grows... */
        assert_true(gap <= 1300);                              /* ...up to the cap */
        if (gap > max_gap)
            max_gap = gap;
    }
    printf("\n");
    assert_true(rl.accepts >= 7 && rl.accepts <= 10);
    assert_true(max_gap >= 950);
    assert_false(peer_is_active(fx->m[0].t, 2));
    evloop_io_stop(fx->loop, &rl.io);
    close(rl.fd);
    /* At the cap, a member appearing there is reached within about a second. */
    start_member(fx, 1, port);
    add_peer(fx, 1, 0);
    t0 = evloop_now_ms();
    assert_true(run_until(fx, active, ab, 3000));
    printf("backoff: reconnected after %" PRIu64 " ms\n", evloop_now_ms() - t0);
    assert_true(evloop_now_ms() - t0 <= 1200);
    /* The handshake reset the backoff: after a restart the next attempts come fast again. */
    stop_member(fx, 1);
    assert_true(run_until(fx, not_active, ab, 2000));
    start_member(fx, 1, port);
    add_peer(fx, 1, 0);
    t0 = evloop_now_ms();
    assert_true(run_until(fx, active, ab, 3000));
    printf("backoff: reconnected after a restart in %" PRIu64 " ms\n", evloop_now_ms() - t0);
    assert_true(evloop_now_ms() - t0 <= 700);
}

static void test_dead_peer_does_not_stall(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0];
    struct count_goal g = {1, 0};
    int who_id[2] = {0, 3};
    char url[64];

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", dead_port());
    add_peer_url(fx, 0, 3, url);
    for (uint64_t seq = 1; seq <= 2000; seq++) {
        int rc = send_heartbeat(a, 3);
        assert_true(rc == 0 || rc == CE_AGAIN);
        assert_int_equal(send_seq(a, 2, seq, 32), 0);
        if (seq % 200 == 0) {
            g.n = seq;
            assert_true(run_until(fx, got_msgs, &g, 1000));
        }
    }
    assert_true(run_until(fx, unreachable_reported, who_id, 1000));
    assert_false(peer_is_active(a->t, 3));
}

static bool both_reported_twice(struct fx *fx, void *arg)
{
    (void)arg;
    return fx->m[0].unreachable[3] >= 2 && fx->m[0].unreachable[4] >= 2;
}

static void test_unreachable_handler_sends_again(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0];
    char url[64];

    start_member(fx, 0, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", dead_port());
    add_peer_url(fx, 0, 3, url);
    add_peer_url(fx, 0, 4, url);
    run_for(fx, 30); /* both refused: backing off, so sends are dropped */
    a->resend_on_unreachable = true;
    assert_int_equal(send_heartbeat(a, 3), CE_AGAIN);
    assert_int_equal(send_heartbeat(a, 4), CE_AGAIN);
    /* Each tick reports each peer once; the handler's new drops wait for the next tick. */
    assert_true(run_until(fx, both_reported_twice, NULL, 1000));
    a->resend_on_unreachable = false;
}

/* ---- handshake refusals ---- */

static void test_unknown_and_wrong_recipient(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0], *b = &fx->m[1];
    int who_id[2] = {0, 3};
    char url[64];

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    assert_int_equal(send_heartbeat(a, 99), CE_NOTFOUND);
    /* Member 3 "lives" at b's address: b refuses a stream meant for 3. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", b->port);
    add_peer_url(fx, 0, 3, url);
    assert_int_equal(send_heartbeat(a, 3), 0); /* queued while connecting */
    assert_true(run_until(fx, unreachable_reported, who_id, 2000));
    run_for(fx, 200);
    assert_false(peer_is_active(a->t, 3));
    assert_int_equal(b->nheartbeats + b->nmsgs, 0);
    assert_int_equal(b->bad_msgs, 0);
    assert_true(peer_is_active(a->t, 2)); /* the real stream is unharmed */
}

static void test_cluster_mismatch(void **state)
{
    struct fx *fx = *state;
    int ab[2] = {0, 1};

    assert_int_equal(start_member_cluster(fx, 0, 0, 0xAAA), 0);
    assert_int_equal(start_member_cluster(fx, 1, 0, 0xBBB), 0);
    fx->m[0].port = peer_listen_port(fx->m[0].t, 0);
    fx->m[1].port = peer_listen_port(fx->m[1].t, 0);
    add_peer(fx, 0, 1);
    add_peer(fx, 1, 0);
    run_for(fx, 300);
    assert_false(peer_is_active(fx->m[0].t, 2));
    assert_false(peer_is_active(fx->m[1].t, 1));
    /* The same cluster id on both: the retries get through. */
    peer_set_cluster_id(fx->m[0].t, 0xBBB);
    assert_true(run_until(fx, both_active, ab, 3000));
}

static void test_unknown_sender_retried(void **state)
{
    struct fx *fx = *state;
    int ab[2] = {0, 1};

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    add_peer(fx, 0, 1); /* b does not know a (yet) */
    run_for(fx, 300);
    assert_false(peer_is_active(fx->m[0].t, 2));
    add_peer(fx, 1, 0); /* its conf change applied: a gets in on a retry */
    assert_true(run_until(fx, both_active, ab, 3000));
}

static bool got_removed(struct fx *fx, void *arg)
{
    (void)arg;
    return fx->m[0].removed > 0;
}

static void test_removed_member_told(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0], *b = &fx->m[1];

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    peer_remove(b->t, 1);
    assert_int_equal(send_heartbeat(b, 1), CE_NOTFOUND);
    assert_true(run_until(fx, got_removed, NULL, 3000));
    run_for(fx, 300); /* more retries, more REMOVED answers: still one call */
    assert_int_equal(a->removed, 1);
    assert_false(peer_is_active(a->t, 2));
    /* Re-adding clears the removed mark. */
    add_peer(fx, 1, 0);
    int ab[2] = {0, 1};
    assert_true(run_until(fx, both_active, ab, 3000));
}

static void test_handler_removes_sender(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0], *b = &fx->m[1];

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    b->remove_sender_after = 10;
    for (uint64_t s = 1; s <= 100; s++) /* all in one write: b reads them in one go */
        assert_int_equal(send_seq(a, 2, s, 8), 0);
    assert_true(run_until(fx, got_removed, NULL, 3000));
    assert_int_equal(b->nmsgs, 10); /* nothing delivered after the removal */
    assert_int_equal(b->bad_msgs, 0);
}

static void test_add_updates_urls(void **state)
{
    struct fx *fx = *state;
    int ab[2] = {0, 1};
    char url[64];
    uint64_t t0;

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    add_peer(fx, 1, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", dead_port());
    add_peer_url(fx, 0, 2, url);
    run_for(fx, 1200); /* backoff grows to its cap */
    assert_false(peer_is_active(fx->m[0].t, 2));
    add_peer_url(fx, 0, 2, url); /* the same URL again: nothing changes */
    t0 = evloop_now_ms();
    add_peer(fx, 0, 1); /* the new URL is dialed at once */
    assert_true(run_until(fx, active, ab, 2000));
    assert_true(evloop_now_ms() - t0 < 500);
    assert_int_equal(peer_add(fx->m[0].t, 1, (const char *const[]){url}, 1), 0); /* self */
}

static void test_dial_by_host_name(void **state)
{
    struct fx *fx = *state;
    struct count_goal g = {1, 3};
    int ab[2] = {0, 1};
    char url[64];

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    snprintf(url, sizeof(url), "http://localhost:%d", fx->m[1].port);
    add_peer_url(fx, 0, 2, url);
    add_peer(fx, 1, 0);
    assert_true(run_until(fx, both_active, ab, 5000));
    for (uint64_t s = 1; s <= 3; s++)
        assert_int_equal(send_seq(&fx->m[0], 2, s, 10), 0);
    assert_true(run_until(fx, got_msgs, &g, 2000));
    fx->lenient_fds = true;
    /* A name that does not resolve fails quietly and is retried, never blocking the loop. */
    add_peer_url(fx, 0, 3, "http://no-such-host.invalid:2380");
    run_for(fx, 100);
    assert_false(peer_is_active(fx->m[0].t, 3));
}

/* ---- snapshots ---- */

static int make_data_file(struct fx *fx, const char *name, size_t len, uint8_t **copy)
{
    char path[512];
    uint8_t *d = malloc(len ? len : 1);
    uint64_t x = 88172645463325252ull;
    int fd;

    assert_non_null(d);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d[i] = (uint8_t)x;
    }
    snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, d, len), (ssize_t)len);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    unlink(path);
    if (copy)
        *copy = d;
    else
        free(d);
    return fd;
}

static raft_msg snap_msg(uint64_t from, uint64_t to)
{
    static uint64_t voters[] = {1, 2}, learners[] = {3};
    raft_msg m = {.type = RAFT_MSG_SNAP, .to = to, .from = from, .term = 3};

    m.snapshot.index = 777;
    m.snapshot.term = 3;
    m.snapshot.conf = (raft_conf_state){voters, 2, learners, 1};
    return m;
}

static bool snap_done(struct fx *fx, void *arg)
{
    (void)arg;
    return fx->m[1].snaps == 1 && fx->m[0].sent_ok[2] == 1;
}

static void test_snapshot_arrives_intact(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0], *b = &fx->m[1];
    const size_t len = (5u << 20) + 123;
    const char *extra = "{\"members\":[{\"id\":\"1\"},{\"id\":\"2\"}]}";
    raft_msg m = snap_msg(1, 2);
    struct count_goal g = {1, 0};
    uint8_t *want, *got;
    int fd;

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    b->keep_snap_file = true;
    fd = make_data_file(fx, "data", len, &want);
    assert_int_equal(peer_send_snapshot(a->t, &m, (const uint8_t *)extra, strlen(extra), fd,
                                        len), 0);
    /* Messages keep flowing on the stream meanwhile. */
    for (uint64_t s = 1; s <= 100; s++)
        assert_int_equal(send_seq(a, 2, s, 100), 0);
    g.n = 100;
    assert_true(run_until(fx, got_msgs, &g, 3000));
    assert_true(run_until(fx, snap_done, NULL, 10000));
    assert_int_equal(a->sent_fail[2], 0);
    assert_int_equal(b->bad_msgs, 0); /* includes: every fd close-on-exec mid-transfer */
    assert_int_equal(b->snap_m.type, RAFT_MSG_SNAP);
    assert_int_equal(b->snap_m.from, 1);
    assert_int_equal(b->snap_m.snapshot.index, 777);
    assert_int_equal(b->snap_m.snapshot.term, 3);
    assert_int_equal(b->snap_m.snapshot.conf.n_voters, 2);
    assert_int_equal(b->snap_voters[1], 2);
    assert_int_equal(b->snap_m.snapshot.conf.n_learners, 1);
    assert_int_equal(b->snap_learners[0], 3);
    assert_int_equal(b->snap_extra_len, strlen(extra));
    assert_memory_equal(b->snap_extra, extra, strlen(extra));
    /* The file is in snap_dir and holds exactly the data. */
    assert_int_equal(strncmp(b->snap_path, fx->dir, strlen(fx->dir)), 0);
    got = malloc(len + 1);
    fd = open(b->snap_path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, got, len + 1), (ssize_t)len);
    close(fd);
    assert_memory_equal(got, want, len);
    unlink(b->snap_path);
    assert_int_equal(files_in(fx->dir), 0);
    free(got);
    free(want);
}

static bool sent_failed(struct fx *fx, void *arg)
{
    const int *who_id = arg;

    return fx->m[who_id[0]].sent_fail[who_id[1]] > 0;
}

static bool dir_empty(struct fx *fx, void *arg)
{
    (void)arg;
    return files_in(fx->dir) == 0;
}

static void test_snapshot_failures(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0], *b = &fx->m[1];
    int to_dead[2] = {0, 3}, to_b[2] = {0, 2};
    raft_msg m = snap_msg(1, 3), hb = {.type = RAFT_MSG_HEARTBEAT, .to = 2, .from = 1};
    char url[64];

    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    /* A dead peer: reported false, promptly. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", dead_port());
    add_peer_url(fx, 0, 3, url);
    assert_int_equal(peer_send_snapshot(a->t, &m, NULL, 0, make_data_file(fx, "d1", 1000, NULL),
                                        1000), 0);
    assert_true(run_until(fx, sent_failed, to_dead, 3000));
    assert_int_equal(a->sent_ok[3], 0);
    /* A data file shorter than announced: false, and the receiver drops its partial file. */
    m = snap_msg(1, 2);
    assert_int_equal(peer_send_snapshot(a->t, &m, NULL, 0,
                                        make_data_file(fx, "d2", 3000000, NULL), 4000000), 0);
    assert_true(run_until(fx, sent_failed, to_b, 3000));
    assert_true(run_until(fx, dir_empty, NULL, 3000));
    assert_int_equal(b->snaps, 0);
    /* Refused at once (no callback): unknown peer, not a MsgSnap. */
    m = snap_msg(1, 99);
    assert_int_equal(peer_send_snapshot(a->t, &m, NULL, 0, make_data_file(fx, "d3", 10, NULL), 10),
                     CE_NOTFOUND);
    assert_int_equal(peer_send_snapshot(a->t, &hb, NULL, 0, make_data_file(fx, "d4", 10, NULL), 10),
                     CE_INVAL);
    run_for(fx, 50);
    assert_int_equal(a->sent_fail[2], 1);
    assert_int_equal(a->sent_ok[2], 0);
    assert_true(peer_is_active(a->t, 2));
}

/* ---- garbage on the peer port ---- */

struct raw_client {
    int fd;
    ev_io io;
    bool closed;
    size_t got;
};

static void raw_client_cb(evloop *l, ev_io *w, int events)
{
    struct raw_client *rc = w->data;
    char buf[4096];
    ssize_t n;

    (void)events;
    while ((n = recv(rc->fd, buf, sizeof(buf), 0)) > 0)
        rc->got += (size_t)n;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        rc->closed = true;
        evloop_io_stop(l, w);
    }
}

static bool raw_closed(struct fx *fx, void *arg)
{
    (void)fx;
    return ((struct raw_client *)arg)->closed;
}

static int raw_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Sends bytes to b's port, half-closes, and waits until b closes the connection. */
static void throw_at(struct fx *fx, int port, const uint8_t *p, size_t n)
{
    struct raw_client rc = {0};

    rc.fd = raw_connect(port);
    assert_int_equal(send(rc.fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
    shutdown(rc.fd, SHUT_WR);
    fcntl(rc.fd, F_SETFL, O_NONBLOCK);
    assert_int_equal(evloop_io_start(fx->loop, &rc.io, rc.fd, EV_READ, raw_client_cb, &rc), 0);
    assert_true(run_until(fx, raw_closed, &rc, 3000));
    evloop_io_stop(fx->loop, &rc.io);
    close(rc.fd);
}

static size_t put_frame(uint8_t *out, uint8_t type, const void *p, size_t n)
{
    uint32_t crc = crc32c(crc32c(0, &type, 1), p, n);

    le_put32(out, (uint32_t)n);
    out[4] = type;
    le_put32(out + 5, crc);
    memcpy(out + FRAME_HDR, p, n);
    return FRAME_HDR + n;
}

static size_t put_hello(uint8_t *out, uint8_t kind, uint64_t from, uint64_t to)
{
    hello h = {PEER_VERSION, kind, from, to, CLUSTER};
    uint8_t hb[HELLO_LEN];

    hello_encode(hb, &h);
    return put_frame(out, FR_HELLO, hb, sizeof(hb));
}

static void test_garbage_on_peer_port(void **state)
{
    struct fx *fx = *state;
    struct member *a = &fx->m[0], *b = &fx->m[1];
    const char *env = getenv("PEER_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : (unsigned)time(NULL);
    static uint8_t buf[8192];
    struct count_goal g = {1, 0};
    size_t n;
    int ab[2] = {0, 1};

    printf("garbage: seed %u (PEER_SEED=%u replays)\n", seed, seed);
    srand(seed);
    start_member(fx, 0, 0);
    start_member(fx, 1, 0);
    connect_pair(fx, 0, 1);
    /* random bytes */
    for (size_t i = 0; i < 4096; i++)
        buf[i] = (uint8_t)rand();
    throw_at(fx, b->port, buf, 4096);
    /* a huge length */
    memset(buf, 0xff, FRAME_HDR);
    throw_at(fx, b->port, buf, FRAME_HDR);
    /* a HELLO with a bad CRC */
    n = put_hello(buf, HK_STREAM, 1, 2);
    buf[6] ^= 1;
    throw_at(fx, b->port, buf, n);
    /* an unknown connection kind: refused with ERROR */
    n = put_hello(buf, 9, 1, 2);
    throw_at(fx, b->port, buf, n);
    /* a valid handshake, then a MSG frame whose payload is not a Raft message */
    n = put_hello(buf, HK_STREAM, 1, 2);
    for (size_t i = 0; i < 100; i++)
        buf[n + FRAME_HDR + i] = (uint8_t)rand();
    n += put_frame(buf + n, FR_MSG, buf + n + FRAME_HDR, 100);
    throw_at(fx, b->port, buf, n);
    /* a snapshot connection whose header frame is nonsense */
    n = put_hello(buf, HK_SNAP, 1, 2);
    n += put_frame(buf + n, FR_SNAP_HEADER, "\x01\x02\x03", 3);
    throw_at(fx, b->port, buf, n);
    /* a valid handshake from 1, then messages that claim another sender or recipient */
    {
        raft_msg forged = {.type = RAFT_MSG_HEARTBEAT, .to = 2, .from = 5, .term = 1};
        uint8_t *enc;
        size_t elen;

        n = put_hello(buf, HK_STREAM, 1, 2);
        assert_int_equal(raft_msg_encode(&forged, &enc, &elen), 0);
        n += put_frame(buf + n, FR_MSG, enc, elen);
        free(enc);
        forged.from = 1;
        forged.to = 7;
        assert_int_equal(raft_msg_encode(&forged, &enc, &elen), 0);
        n += put_frame(buf + n, FR_MSG, enc, elen);
        free(enc);
        throw_at(fx, b->port, buf, n);
        assert_int_equal(b->nheartbeats + b->nmsgs, 0);
        /* a good heartbeat damaged in flight (one payload bit, CRC not updated) */
        forged.to = 2;
        n = put_hello(buf, HK_STREAM, 1, 2);
        assert_int_equal(raft_msg_encode(&forged, &enc, &elen), 0);
        put_frame(buf + n, FR_MSG, enc, elen);
        free(enc);
        buf[n + FRAME_HDR + 20] ^= 0x10; /* the term */
        throw_at(fx, b->port, buf, n + FRAME_HDR + elen);
        assert_int_equal(b->nheartbeats + b->nmsgs, 0);
    }
    /* snapshot frames that lie: fewer bytes than announced, a wrong CRC, too many bytes */
    for (int lie = 0; lie < 3; lie++) {
        raft_msg sm = snap_msg(1, 2);
        uint8_t *enc, hdr[SNAP_HEADER_FIXED + 256], chunk[100], end[SNAP_END_LEN];
        size_t elen;

        memset(chunk, 'x', sizeof(chunk));
        assert_int_equal(raft_msg_encode(&sm, &enc, &elen), 0);
        assert_true(elen <= 256);
        le_put64(hdr, lie == 0 ? 200 : 100); /* announced length */
        le_put32(hdr + 8, 0);
        memcpy(hdr + SNAP_HEADER_FIXED, enc, elen);
        free(enc);
        n = put_hello(buf, HK_SNAP, 1, 2);
        n += put_frame(buf + n, FR_SNAP_HEADER, hdr, SNAP_HEADER_FIXED + elen);
        n += put_frame(buf + n, FR_SNAP_CHUNK, chunk, sizeof(chunk));
        if (lie == 2)
            n += put_frame(buf + n, FR_SNAP_CHUNK, chunk, 1);
        le_put64(end, lie == 0 ? 200 : 100);
        le_put32(end + 8, crc32c(0, chunk, sizeof(chunk)) ^ (lie == 1 ? 1u : 0u));
        n += put_frame(buf + n, FR_SNAP_END, end, sizeof(end));
        throw_at(fx, b->port, buf, n);
        assert_int_equal(b->snaps, 0);
        assert_int_equal(files_in(fx->dir), 0);
    }
    /* fuzz: a valid handshake, then random frame types and bytes with valid CRCs */
    for (int round = 0; round < 30; round++) {
        size_t len = (size_t)(rand() % 200);
        n = put_hello(buf, (uint8_t)(1 + rand() % 3), 1, 2);
        for (size_t i = 0; i < len; i++)
            buf[4096 + i] = (uint8_t)rand();
        n += put_frame(buf + n, (uint8_t)(rand() % 12), buf + 4096, len);
        throw_at(fx, b->port, buf, n);
    }
    /* b still works (a's stream may have been replaced by a forged one: wait for it) */
    assert_true(run_until(fx, both_active, ab, 3000));
    for (uint64_t s = 1; s <= 50; s++)
        assert_int_equal(send_seq(a, 2, s, 20), 0);
    g.n = 50;
    assert_true(run_until(fx, got_msgs, &g, 3000));
    assert_int_equal(b->bad_msgs, 0);
    assert_int_equal(b->snaps, 0);
    assert_int_equal(files_in(fx->dir), 0);
}

/* ---- member list ---- */

static void *loop_thread(void *arg)
{
    evloop_run(arg);
    return NULL;
}

static void test_fetch_members(void **state)
{
    struct fx *fx = *state;
    pthread_t th;
    char url[64], *json = NULL;
    uint64_t cid = 0, t0;
    int port;

    start_member(fx, 1, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fx->m[1].port);
    assert_int_equal(pthread_create(&th, NULL, loop_thread, fx->loop), 0);
    assert_int_equal(peer_fetch_members(url, 2000, &json, &cid), 0);
    assert_string_equal(json, "{\"members\":[{\"id\":\"2\"}]}");
    assert_int_equal(cid, CLUSTER);
    free(json);
    json = NULL;
    atomic_store(&members_refuse, 1);
    assert_int_equal(peer_fetch_members(url, 2000, &json, &cid), CE_UNREACHABLE);
    atomic_store(&members_refuse, 0);
    assert_null(json);
    evloop_stop(fx->loop);
    pthread_join(th, NULL);

    /* a closed port: refused at once, not a timeout */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", dead_port());
    t0 = evloop_now_ms();
    assert_int_equal(peer_fetch_members(url, 2000, &json, &cid), CE_UNREACHABLE);
    assert_true(evloop_now_ms() - t0 < 500);
    /* a listener that never answers: the timeout, and no more */
    int silent = listen_any(&port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    t0 = evloop_now_ms();
    assert_int_equal(peer_fetch_members(url, 200, &json, &cid), CE_TIMEOUT);
    assert_true(evloop_now_ms() - t0 >= 190 && evloop_now_ms() - t0 < 1500);
    close(silent);
    /* bad arguments */
    assert_int_equal(peer_fetch_members("https://127.0.0.1:1", 100, &json, &cid), CE_UNSUPPORTED);
    assert_int_equal(peer_fetch_members("127.0.0.1:1", 100, &json, &cid), CE_INVAL);
    assert_int_equal(peer_fetch_members("http://127.0.0.1:99999", 100, &json, &cid), CE_INVAL);
    assert_int_equal(peer_fetch_members(url, 0, &json, &cid), CE_INVAL);
    assert_null(json);
}

static void test_new_and_add_errors(void **state)
{
    struct fx *fx = *state;
    peer_config cfg = {.member_id = 1};
    peer_transport *t;
    const char *https[] = {"https://127.0.0.1:0"}, *bad[] = {"127.0.0.1:0"},
               *good[] = {"http://127.0.0.1:0"}, *v6[] = {"http://[::1]:0"};
    char used[64];
    const char *inuse[] = {used};

    cfg.listen_urls = https;
    cfg.nlisten = 1;
    assert_int_equal(peer_new(fx->loop, &cfg, &t), CE_UNSUPPORTED);
    cfg.listen_urls = bad;
    assert_int_equal(peer_new(fx->loop, &cfg, &t), CE_INVAL);
    cfg.listen_urls = good;
    cfg.member_id = 0;
    assert_int_equal(peer_new(fx->loop, &cfg, &t), CE_INVAL);
    cfg.member_id = 1;
    start_member(fx, 0, 0);
    snprintf(used, sizeof(used), "http://127.0.0.1:%d", fx->m[0].port);
    cfg.listen_urls = inuse;
    assert_true(peer_new(fx->loop, &cfg, &t) < 0);
    /* IPv6 loopback (if the host has it), no peers: fine. */
    cfg.listen_urls = v6;
    if (peer_new(fx->loop, &cfg, &t) == 0) {
        assert_true(peer_listen_port(t, 0) > 0);
        assert_int_equal(peer_listen_port(t, 1), -1);
        peer_free(t);
    }
    assert_int_equal(peer_add(fx->m[0].t, 2, https, 1), CE_UNSUPPORTED);
    assert_int_equal(peer_add(fx->m[0].t, 2, bad, 1), CE_INVAL);
    assert_int_equal(peer_add(fx->m[0].t, 0, good, 1), CE_INVAL);
    assert_int_equal(peer_add(fx->m[0].t, 2, good, 0), CE_INVAL);
    assert_int_equal(peer_add(fx->m[0].t, 1, good, 1), 0); /* self: ignored */
    assert_false(peer_is_active(fx->m[0].t, 1));
    peer_remove(fx->m[0].t, 42); /* unknown: just remembered */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivery_timer_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_caller_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backoff_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_peer_does_not_stall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_handler_sends_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_wrong_recipient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_sender_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_member_told, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_removes_sender, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_updates_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dial_by_host_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_arrives_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_on_peer_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_and_add_errors, setup, teardown),
    };

    log_set_level(getenv("PEER_LOG") ? LOG_DEBUG : LOG_ERROR);
    note_inherited();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
