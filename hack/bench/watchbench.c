/*
 * hack/bench/watchbench.c: the load tool of the watch and lease benchmarks (hack/bench/watch.sh).
 * A tool, not product code: it speaks gRPC (HTTP/2 prior knowledge, nghttp2's client API) to any
 * etcd v3 server, so the same binary measures etcd 3.4 and cetcd.
 *
 *   watchbench watch [options]: W watchers on one prefix, spread over S Watch streams on C
 *     connections (stream j on connection j mod C, W/S watchers per stream), all created before
 *     any put; then N puts of distinct keys under the prefix from separate connections at a fixed
 *     concurrency (closed loop). Every value starts with its send time. Counts the events each
 *     watcher receives until all have N (or the timeout: missing events are a failure), checks
 *     that every event is a PUT under the prefix, that each watcher's revisions strictly increase
 *     and that none gets more than N, and reports events/s (events / time from the first put to
 *     the last event) and put-to-event latency p50/p99 over every event.
 *   watchbench lease [options]: grants L leases (TTL), keeps all of them alive over K
 *     LeaseKeepAlive streams for T seconds as fast as the server answers (each lease has exactly
 *     one renewal in flight: when its answer arrives it is renewed again), reports renewals/s and
 *     renewal latency p50/p99, then asks LeaseTimeToLive of every lease: all must be alive.
 * With --pid (repeatable) it reads the server's CPU time (utime+stime, /proc/PID/stat) at the
 * start and end of each phase and samples its RSS (/proc/PID/statm) every 100 ms; with several
 * PIDs (a cluster) the figures are sums. Its own CPU time per phase is reported too, so a
 * saturated tool is visible.
 *
 * Output: `# ...` comment lines, then one line `RESULT key=value ...` (see print_watch and
 * print_lease). Exit status 0: measured and every check passed; 1: measured but a check failed
 * (missing or disordered events, failed puts, dead leases); 2: could not run (connection refused,
 * a gRPC error such as UNIMPLEMENTED, bad options).
 *
 * Threads: watch mode runs the watchers on one thread and the puts on another (each with its own
 * epoll loop and connections, nothing shared but atomics and the phase table); lease mode runs on
 * one thread; the main thread opens the connections before the workers start, then samples RSS.
 * A connection belongs to exactly one worker thread.
 *
 * Wire formats (gRPC over HTTP/2, as etcd serves it):
 *   request: HEADERS :method POST, :scheme http, :path /etcdserverpb.<Service>/<Method>,
 *   :authority host:port, content-type application/grpc, te trailers; then DATA carrying
 *   length-prefixed messages, each:
 *     byte 0       compressed flag, always 0 (no compression is negotiated)
 *     bytes 1..4   message length, big-endian u32
 *     bytes 5..    the protobuf message
 *   A unary call ends its DATA with END_STREAM; a stream never does (connections are dropped at
 *   the end). The answer: HEADERS (:status 200), DATA with the same framing, trailers carrying
 *   grpc-status (0 = OK) and grpc-message.
 *   Put value (VALUE_SIZE >= 8 bytes): bytes 0..7 the CLOCK_MONOTONIC send time in nanoseconds,
 *   little-endian u64; the rest 'x'. Keys: PREFIX + 8 decimal digits (0-padded index). PREFIX
 *   is unique per run (/watchbench/<pid>-<time>/) unless given.
 *   The hot path (WatchResponse, LeaseKeepAliveResponse) is scanned in place rather than
 *   unpacked: WatchResponse fields 2 watch_id (varint), 3 created, 4 canceled, 6 cancel_reason,
 *   11 events (repeated, length-delimited mvccpb.Event: field 1 type, 2 kv = mvccpb.KeyValue:
 *   field 1 key bytes, 3 mod_revision varint, 5 value bytes); LeaseKeepAliveResponse fields 2 ID,
 *   3 TTL (varints). Unknown fields are skipped. Requests and the other answers use the
 *   protobuf-c code generated from proto/.
 *
 * Latencies go into a log-linear histogram of microseconds (64 sub-buckets per power of two,
 * under 1.6 % error), so every event counts without storing 10 million samples.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "rpc.pb-c.h"

#define MAX_PIDS 8
#define MAX_EPS 8
#define RBUF_SIZE (256 * 1024)
#define WBUF_FILL (64 * 1024)
#define H_BUCKETS (64 * 40)

/* --- options -------------------------------------------------------------------------------- */

static struct {
    const char *mode;
    char eps[MAX_EPS][64]; /* host:port, watch/keepalive connections round-robin */
    int neps;
    char put_ep[64]; /* puts (watch mode) and unary lease calls; default eps[0] */
    int pids[MAX_PIDS];
    int npids;
    int watchers, streams, conns, keys, put_conns, put_conc, value_size;
    int leases, ttl, ka_streams, ka_conns, seconds, unary_conc;
    int timeout, stall;
    char prefix[128];
} opt = {
    .watchers = 1000, .streams = 100, .conns = 10, .keys = 10000, .put_conns = 1,
    .put_conc = 16, .value_size = 32, .leases = 1000, .ttl = 30, .ka_streams = 10,
    .ka_conns = 10, .seconds = 10, .unary_conc = 16, .timeout = 120, .stall = 15,
};

static void usage(void)
{
    fprintf(stderr,
            "usage: watchbench watch|lease --endpoint HOST:PORT[,HOST:PORT...] [--pid PID]...\n"
            "  watch: [--watchers 1000] [--streams 100] [--conns 10] [--keys 10000]\n"
            "         [--put-endpoint HOST:PORT] [--put-conns 1] [--put-concurrency 16]\n"
            "         [--value-size 32] [--prefix P] [--timeout 120] [--stall 15]\n"
            "  lease: [--leases 1000] [--ttl 30] [--ka-streams 10] [--ka-conns 10]\n"
            "         [--seconds 10] [--unary-concurrency 16] [--put-endpoint HOST:PORT]\n");
    exit(2);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("watchbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* --- growable byte buffer ------------------------------------------------------------------ */

struct buf {
    uint8_t *p;
    size_t len, cap;
};

/* Room for n more bytes at b->p + b->len (the caller advances len). */
static uint8_t *buf_room(struct buf *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) die("out of memory");
        b->cap = cap;
    }
    return b->p + b->len;
}

static void buf_append(struct buf *b, const void *d, size_t n)
{
    memcpy(buf_room(b, n), d, n);
    b->len += n;
}

static void buf_consume(struct buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* --- latency histogram (microseconds, log-linear) ------------------------------------------ */

struct hist {
    uint64_t n;
    uint64_t b[H_BUCKETS];
};

static unsigned hist_index(uint64_t us)
{
    if (us < 64) return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* >= 6 */
    unsigned i = (e - 5) * 64 + (unsigned)((us >> (e - 6)) & 63);
    return i < H_BUCKETS ? i : H_BUCKETS - 1;
}

/* The middle of bucket i, in microseconds. */
static double hist_mid(unsigned i)
{
    if (i < 64) return i;
    unsigned e = i / 64 + 5;
    uint64_t lo = (uint64_t)(64 + i % 64) << (e - 6);
    return (double)lo + (double)((uint64_t)1 << (e - 6)) / 2.0;
}

static void hist_add(struct hist *h, uint64_t ns)
{
    h->b[hist_index(ns / 1000)]++;
    h->n++;
}

/* The q-quantile (0 < q <= 1) in milliseconds; 0 for an empty histogram. */
static double hist_ms(const struct hist *h, double q)
{
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999), seen = 0;
    if (rank == 0) rank = 1;
    for (unsigned i = 0; i < H_BUCKETS && h->n; i++) {
        seen += h->b[i];
        if (seen >= rank) return hist_mid(i) / 1000.0;
    }
    return 0;
}

/* --- server and own resource usage, per phase ----------------------------------------------- */

enum { PH_CREATE, PH_DELIVER, PH_GRANT, PH_KEEPALIVE, PH_N };

struct phase {
    bool on, used;
    uint64_t t0, t1;           /* monotonic ns */
    uint64_t cpu0, cpu1;       /* server utime+stime, clock ticks, summed over the PIDs */
    uint64_t rss0, rss_peak, rss_end; /* server RSS, KiB, summed */
    double self0, self1;       /* this tool's CPU seconds */
};

static struct phase phases[PH_N];
static pthread_mutex_t ph_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ph_cv = PTHREAD_COND_INITIALIZER;
static int workers_running; /* under ph_mu */

static uint64_t pid_cpu_ticks(int pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    const char *p = strrchr(line, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (uint64_t)ut + st;
}

static uint64_t pid_rss_kib(int pid)
{
    char path[64];
    unsigned long size = 0, res = 0;
    snprintf(path, sizeof path, "/proc/%d/statm", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    if (fscanf(f, "%lu %lu", &size, &res) != 2) res = 0;
    fclose(f);
    return (uint64_t)res * ((uint64_t)sysconf(_SC_PAGESIZE) / 1024);
}

static uint64_t server_cpu(void)
{
    uint64_t t = 0;
    for (int i = 0; i < opt.npids; i++) t += pid_cpu_ticks(opt.pids[i]);
    return t;
}

static uint64_t server_rss(void)
{
    uint64_t k = 0;
    for (int i = 0; i < opt.npids; i++) k += pid_rss_kib(opt.pids[i]);
    return k;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void phase_begin(int i)
{
    pthread_mutex_lock(&ph_mu);
    struct phase *p = &phases[i];
    p->on = p->used = true;
    p->t0 = now_ns();
    p->cpu0 = server_cpu();
    p->rss0 = p->rss_peak = server_rss();
    p->self0 = self_cpu();
    pthread_mutex_unlock(&ph_mu);
}

static void phase_end(int i)
{
    pthread_mutex_lock(&ph_mu);
    struct phase *p = &phases[i];
    p->on = false;
    p->t1 = now_ns();
    p->cpu1 = server_cpu();
    p->rss_end = server_rss();
    if (p->rss_end > p->rss_peak) p->rss_peak = p->rss_end;
    p->self1 = self_cpu();
    pthread_mutex_unlock(&ph_mu);
}

/* Main thread: samples the server's RSS into the running phases every 100 ms until the workers
 * are done. */
static void sample_until_done(void)
{
    pthread_mutex_lock(&ph_mu);
    while (workers_running > 0) {
        for (int i = 0; i < PH_N; i++) {
            if (!phases[i].on) continue;
            uint64_t r = server_rss();
            if (r > phases[i].rss_peak) phases[i].rss_peak = r;
        }
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 100000000;
        if (dl.tv_nsec >= 1000000000) dl.tv_sec++, dl.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&ph_cv, &ph_mu, &dl);
    }
    pthread_mutex_unlock(&ph_mu);
}

/* Starts a worker thread counted by sample_until_done; the worker calls worker_exit. */
static void worker_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    pthread_mutex_lock(&ph_mu);
    workers_running++;
    pthread_mutex_unlock(&ph_mu);
    if (pthread_create(t, NULL, fn, arg)) die("pthread_create failed");
}

static void worker_exit(void)
{
    pthread_mutex_lock(&ph_mu);
    if (--workers_running == 0) pthread_cond_broadcast(&ph_cv);
    pthread_mutex_unlock(&ph_mu);
}

static double ph_cpu(int i)
{
    return (double)(phases[i].cpu1 - phases[i].cpu0) / (double)sysconf(_SC_CLK_TCK);
}

static double ph_secs(int i) { return secs(phases[i].t1 - phases[i].t0); }
static double mib(uint64_t kib) { return (double)kib / 1024.0; }

/* --- protobuf scanning (hot path) ----------------------------------------------------------- */

struct pbf {
    uint32_t num, wt;
    uint64_t v;         /* varint and fixed values */
    const uint8_t *d;   /* length-delimited payload */
    size_t n;
};

static bool pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned s = 0; s < 64 && *p < end; s += 7) {
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << s;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* The next field at *p: 1 when one was read, 0 at the end, -1 when malformed. */
static int pb_next(const uint8_t **p, const uint8_t *end, struct pbf *f)
{
    uint64_t key;
    if (*p >= end) return 0;
    if (!pb_varint(p, end, &key)) return -1;
    f->num = (uint32_t)(key >> 3);
    f->wt = (uint32_t)(key & 7);
    switch (f->wt) {
    case 0: return pb_varint(p, end, &f->v) ? 1 : -1;
    case 1:
    case 5: {
        size_t w = f->wt == 1 ? 8 : 4;
        if ((size_t)(end - *p) < w) return -1;
        f->v = 0;
        for (size_t i = 0; i < w; i++) f->v |= (uint64_t)(*p)[i] << (8 * i);
        *p += w;
        return 1;
    }
    case 2:
        if (!pb_varint(p, end, &f->v) || f->v > (uint64_t)(end - *p)) return -1;
        f->d = *p;
        f->n = (size_t)f->v;
        *p += f->n;
        return 1;
    default: return -1;
    }
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* --- connections and gRPC streams ----------------------------------------------------------- */

struct loop;

struct conn {
    int fd;
    bool pollout, dead;
    nghttp2_session *s;
    struct loop *lp;
    char authority[64];
    struct buf w;
    size_t woff;
};

struct gstream {
    struct conn *c;
    int32_t id;
    struct buf out; /* framed messages not yet handed to nghttp2 */
    size_t out_off;
    bool out_eof, deferred;
    struct buf in;  /* a partial message */
    int http_status, grpc_status; /* grpc_status -1 until the trailers */
    char grpc_msg[160];
    void (*on_msg)(struct gstream *, const uint8_t *, size_t);
    void (*on_close)(struct gstream *, uint32_t h2err);
};

struct loop {
    int ep;
    struct conn *c[64];
    int nc;
    uint64_t now; /* time of the last read: the receipt time of what it carried */
    char err[256];
    uint8_t rbuf[RBUF_SIZE];
};

static void loop_init(struct loop *lp)
{
    memset(lp, 0, sizeof *lp);
    lp->ep = epoll_create1(EPOLL_CLOEXEC);
    if (lp->ep < 0) die("epoll_create1: %s", strerror(errno));
}

static void conn_fail(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!c->lp->err[0]) vsnprintf(c->lp->err, sizeof c->lp->err, fmt, ap);
    va_end(ap);
    c->dead = true;
}

static ssize_t gs_read(nghttp2_session *s, int32_t sid, uint8_t *b, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
    (void)s, (void)sid, (void)ud;
    struct gstream *st = src->ptr;
    size_t avail = st->out.len - st->out_off, n = avail < len ? avail : len;
    if (avail == 0) {
        if (st->out_eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    memcpy(b, st->out.p + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out.len) {
        st->out.len = st->out_off = 0;
        if (st->out_eof) *flags |= NGHTTP2_DATA_FLAG_EOF;
    } else if (st->out_off > 65536) {
        buf_consume(&st->out, st->out_off);
        st->out_off = 0;
    }
    return (ssize_t)n;
}

/* Appends one framed message; wakes the stream's deferred DATA. */
static void gs_send(struct gstream *st, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = buf_room(&st->out, 5 + n);
    p[0] = 0;
    p[1] = (uint8_t)(n >> 24), p[2] = (uint8_t)(n >> 16), p[3] = (uint8_t)(n >> 8), p[4] = (uint8_t)n;
    protobuf_c_message_pack(m, p + 5);
    st->out.len += 5 + n;
    if (st->deferred && st->id > 0) {
        st->deferred = false;
        nghttp2_session_resume_data(st->c->s, st->id);
    }
}

#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

/* Opens the call; queued messages (and out_eof) go out with the next flush. */
static int gs_open(struct gstream *st, struct conn *c, const char *path)
{
    nghttp2_nv h[] = {
        NV(":method", "POST"), NV(":scheme", "http"), NV(":path", path),
        NV(":authority", c->authority), NV("content-type", "application/grpc"),
        NV("te", "trailers"), NV("user-agent", "watchbench"),
    };
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = gs_read};
    st->c = c;
    st->grpc_status = -1;
    st->id = nghttp2_submit_request(c->s, NULL, h, sizeof h / sizeof h[0], &dp, st);
    if (st->id < 0) {
        conn_fail(c, "submit %s: %s", path, nghttp2_strerror(st->id));
        return -1;
    }
    return 0;
}

static void gs_free(struct gstream *st)
{
    free(st->out.p);
    free(st->in.p);
}

/* Calls on_msg for every complete message in d; returns the bytes consumed. */
static size_t gs_parse(struct gstream *st, const uint8_t *d, size_t n)
{
    size_t off = 0;
    while (n - off >= 5) {
        uint32_t len = (uint32_t)d[off + 1] << 24 | (uint32_t)d[off + 2] << 16 |
                       (uint32_t)d[off + 3] << 8 | d[off + 4];
        if (d[off] != 0) {
            conn_fail(st->c, "compressed gRPC message on stream %d", st->id);
            return n;
        }
        if (n - off - 5 < len) break;
        st->on_msg(st, d + off + 5, len);
        off += 5 + (size_t)len;
    }
    return off;
}

static void gs_feed(struct gstream *st, const uint8_t *d, size_t n)
{
    if (st->in.len == 0) { /* common case: parse in place, keep only a partial tail */
        size_t used = gs_parse(st, d, n);
        if (used < n) buf_append(&st->in, d + used, n - used);
        return;
    }
    buf_append(&st->in, d, n);
    buf_consume(&st->in, gs_parse(st, st->in.p, st->in.len));
}

static int cb_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name, size_t nl,
                     const uint8_t *val, size_t vl, uint8_t flags, void *ud)
{
    (void)flags, (void)ud;
    struct gstream *st = nghttp2_session_get_stream_user_data(s, fr->hd.stream_id);
    if (!st) return 0;
    if (nl == 7 && !memcmp(name, ":status", 7)) st->http_status = atoi((const char *)val);
    else if (nl == 11 && !memcmp(name, "grpc-status", 11)) st->grpc_status = atoi((const char *)val);
    else if (nl == 12 && !memcmp(name, "grpc-message", 12))
        snprintf(st->grpc_msg, sizeof st->grpc_msg, "%.*s", (int)vl, (const char *)val);
    return 0;
}

static int cb_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d, size_t n, void *ud)
{
    (void)flags, (void)ud;
    struct gstream *st = nghttp2_session_get_stream_user_data(s, sid);
    if (st && st->on_msg) gs_feed(st, d, n);
    return 0;
}

static int cb_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud)
{
    (void)ud;
    struct gstream *st = nghttp2_session_get_stream_user_data(s, sid);
    if (!st) return 0;
    if (st->on_close) st->on_close(st, err); /* may free st */
    return 0;
}

static void set_pollout(struct conn *c, bool on)
{
    if (c->pollout == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(c->lp->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->pollout = on;
}

/* Hands nghttp2's pending frames to the socket, coalesced into few writes. */
static void conn_flush(struct conn *c)
{
    while (!c->dead) {
        if (c->woff == c->w.len) c->w.len = c->woff = 0;
        while (c->w.len - c->woff < WBUF_FILL) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(c->s, &d);
            if (n < 0) {
                conn_fail(c, "nghttp2 send: %s", nghttp2_strerror((int)n));
                return;
            }
            if (n == 0) break;
            buf_append(&c->w, d, (size_t)n);
        }
        if (c->woff == c->w.len) {
            set_pollout(c, false);
            return;
        }
        ssize_t w = send(c->fd, c->w.p + c->woff, c->w.len - c->woff, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            set_pollout(c, true);
            return;
        }
        if (w < 0) {
            conn_fail(c, "send to %s: %s", c->authority, strerror(errno));
            return;
        }
        c->woff += (size_t)w;
    }
}

static void conn_read(struct conn *c)
{
    struct loop *lp = c->lp;
    for (int k = 0; k < 16 && !c->dead; k++) {
        ssize_t n = recv(c->fd, lp->rbuf, RBUF_SIZE, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            conn_fail(c, "connection to %s closed: %s", c->authority, n ? strerror(errno) : "EOF");
            return;
        }
        lp->now = now_ns();
        ssize_t r = nghttp2_session_mem_recv(c->s, lp->rbuf, (size_t)n);
        if (r < 0) {
            conn_fail(c, "nghttp2 recv: %s", nghttp2_strerror((int)r));
            return;
        }
        if ((size_t)n < RBUF_SIZE) return;
    }
}

static int tcp_connect(const char *ep)
{
    char host[64];
    const char *colon = strrchr(ep, ':');
    if (!colon || (size_t)(colon - ep) >= sizeof host) die("bad endpoint '%s' (HOST:PORT)", ep);
    snprintf(host, sizeof host, "%.*s", (int)(colon - ep), ep);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) die("cannot resolve '%s'", ep);
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) die("connect %s: %s", ep, strerror(errno));
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl: %s", strerror(errno));
    return fd;
}

static nghttp2_session_callbacks *callbacks(void)
{
    static nghttp2_session_callbacks *cbs;
    if (cbs) return cbs; /* set up once, by main, before the threads start */
    if (nghttp2_session_callbacks_new(&cbs)) die("out of memory");
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_close);
    return cbs;
}

/* Connects, registers with the loop and queues the preface: big windows, so flow control never
 * throttles the server. */
static struct conn *conn_new(struct loop *lp, const char *ep)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c || lp->nc == (int)(sizeof lp->c / sizeof lp->c[0])) die("too many connections");
    c->lp = lp;
    c->fd = tcp_connect(ep);
    snprintf(c->authority, sizeof c->authority, "%s", ep);
    if (nghttp2_session_client_new(&c->s, callbacks(), c)) die("out of memory");
    nghttp2_settings_entry set[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16 << 20},
    };
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, set, 2);
    nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
    lp->c[lp->nc++] = c;
    return c;
}

static void loop_free(struct loop *lp)
{
    for (int i = 0; i < lp->nc; i++) {
        nghttp2_session_del(lp->c[i]->s); /* its stream close callbacks do not run */
        close(lp->c[i]->fd);
        free(lp->c[i]->w.p);
        free(lp->c[i]);
    }
    close(lp->ep);
    lp->nc = 0;
}

/* Runs the loop until step(arg) says done (0), a connection dies (-1, lp->err says why) or the
 * deadline passes (-2). step runs after each round of reads, before the writes. */
static int loop_run(struct loop *lp, bool (*step)(void *), void *arg, uint64_t deadline)
{
    struct epoll_event ev[64];
    for (;;) {
        bool done = step(arg);
        for (int i = 0; i < lp->nc; i++) conn_flush(lp->c[i]);
        for (int i = 0; i < lp->nc; i++)
            if (lp->c[i]->dead) return -1;
        if (done) return 0;
        if (now_ns() >= deadline) return -2;
        int n = epoll_wait(lp->ep, ev, 64, 10);
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) conn_read(c);
        }
    }
}

static uint64_t deadline_in(int s) { return now_ns() + (uint64_t)s * 1000000000u; }

/* A stream that ended early: the gRPC status says why (e.g. 12 UNIMPLEMENTED). */
static void stream_ended(struct gstream *st, const char *what, uint32_t h2err)
{
    conn_fail(st->c, "%s stream ended: HTTP %d, grpc-status %d (%s), h2 error %u", what,
              st->http_status, st->grpc_status, st->grpc_msg, h2err);
}

/* --- unary calls at a fixed concurrency ----------------------------------------------------- */

struct upool;

struct ucall {
    struct gstream g; /* first: the stream callbacks cast back */
    struct upool *p;
    uint32_t i;
    uint64_t t_sent;
    bool answered;
};

struct upool {
    const char *path;
    struct conn **c;
    int nc;
    uint32_t total, next, ok, failed, inflight, conc;
    void (*fill)(struct upool *, struct ucall *);          /* sends request u->i */
    bool (*answer)(struct upool *, struct ucall *, const uint8_t *, size_t); /* false: failed */
    uint64_t t_first, t_last;
    struct hist lat;
    char err[256];
};

static void ucall_msg(struct gstream *st, const uint8_t *d, size_t n)
{
    struct ucall *u = (struct ucall *)st;
    u->answered = u->p->answer(u->p, u, d, n);
}

static void ucall_close(struct gstream *st, uint32_t h2err)
{
    struct ucall *u = (struct ucall *)st;
    struct upool *p = u->p;
    uint64_t t = st->c->lp->now;
    if (u->answered && st->grpc_status == 0) {
        p->ok++;
        hist_add(&p->lat, t - u->t_sent);
        p->t_last = t;
    } else {
        p->failed++;
        if (!p->err[0])
            snprintf(p->err, sizeof p->err, "%s #%u: HTTP %d, grpc-status %d (%s), h2 error %u",
                     p->path, u->i, st->http_status, st->grpc_status, st->grpc_msg, h2err);
    }
    p->inflight--;
    gs_free(st);
    free(u);
}

/* Starts calls until conc are in flight or all have been started. */
static void upool_kick(struct upool *p)
{
    while (p->inflight < p->conc && p->next < p->total) {
        struct ucall *u = calloc(1, sizeof *u);
        if (!u) die("out of memory");
        u->p = p;
        u->i = p->next++;
        u->g.on_msg = ucall_msg;
        u->g.on_close = ucall_close;
        u->g.out_eof = true;
        u->t_sent = now_ns();
        if (!p->t_first) p->t_first = u->t_sent;
        p->fill(p, u);
        p->inflight++;
        if (gs_open(&u->g, p->c[u->i % (uint32_t)p->nc], p->path) < 0) {
            gs_free(&u->g);
            free(u);
            return;
        }
    }
}

static bool upool_step(void *arg)
{
    struct upool *p = arg;
    upool_kick(p);
    return p->ok + p->failed == p->total;
}

/* --- watch mode ----------------------------------------------------------------------------- */

struct watcher {
    int64_t id, last_rev;
    uint32_t events;
};

struct wstream {
    struct gstream g; /* first */
    struct watcher *w;
    uint32_t nw, created;
};

static struct {
    struct loop lp;
    struct wstream *ws;
    struct watcher *w;
    uint32_t created, complete;
    uint64_t events, disorder, malformed, foreign, responses;
    uint64_t t_last_event;
    struct hist lat;
    struct buf create_req; /* one framed WatchRequest, the same for every watcher */
    char prefix_end[160];
    char cancel[200];
} W;

static struct {
    struct loop lp;
    struct upool pool;
    struct buf value;
    struct buf key;
} P;

static atomic_bool go_puts, puts_done, abort_run;
static atomic_uint_fast64_t t_first_put, t_puts_done;

static struct watcher *find_watcher(struct wstream *s, int64_t id)
{
    /* servers number a stream's watchers in creation order, so try that slot first */
    int64_t k = s->created ? id - s->w[0].id : -1;
    if (k >= 0 && k < (int64_t)s->created && s->w[k].id == id) return &s->w[k];
    for (uint32_t i = 0; i < s->created; i++)
        if (s->w[i].id == id) return &s->w[i];
    return NULL;
}

/* One mvccpb.Event: checks that it is a PUT of a key under the prefix with a timestamped value
 * and a revision above the watcher's last, counts it for watcher w, records its latency. */
static void on_event(struct watcher *w, const uint8_t *d, size_t n, uint64_t now)
{
    const uint8_t *p = d, *end = d + n, *val = NULL;
    struct pbf f;
    int64_t rev = 0;
    size_t vlen = 0, plen = strlen(opt.prefix);
    bool put = true, ours = false;
    while (pb_next(&p, end, &f) > 0) {
        if (f.num == 1 && f.wt == 0) put = f.v == 0;
        if (f.num != 2 || f.wt != 2) continue;
        const uint8_t *q = f.d, *qe = f.d + f.n;
        struct pbf g;
        while (pb_next(&q, qe, &g) > 0) {
            if (g.num == 1 && g.wt == 2) ours = g.n > plen && !memcmp(g.d, opt.prefix, plen);
            if (g.num == 3 && g.wt == 0) rev = (int64_t)g.v;
            if (g.num == 5 && g.wt == 2) val = g.d, vlen = g.n;
        }
    }
    if (!put || !ours || !val || vlen < 8) {
        W.malformed++;
        return;
    }
    if (rev <= w->last_rev) {
        W.disorder++;
        return;
    }
    w->last_rev = rev;
    uint64_t ts = le64(val);
    hist_add(&W.lat, now > ts ? now - ts : 0);
    W.events++;
    W.t_last_event = now;
    if (++w->events == (uint32_t)opt.keys) W.complete++;
}

static void watch_msg(struct gstream *st, const uint8_t *d, size_t n)
{
    struct wstream *s = (struct wstream *)st;
    const uint8_t *p = d, *end = d + n;
    struct pbf f;
    int64_t id = 0;
    bool created = false, canceled = false;
    int r;
    while ((r = pb_next(&p, end, &f)) > 0) {
        if (f.num == 2 && f.wt == 0) id = (int64_t)f.v;
        else if (f.num == 3 && f.wt == 0) created = f.v != 0;
        else if (f.num == 4 && f.wt == 0) canceled = f.v != 0;
        else if (f.num == 6 && f.wt == 2 && !W.cancel[0])
            snprintf(W.cancel, sizeof W.cancel, "%.*s", (int)f.n, (const char *)f.d);
    }
    if (r < 0) {
        W.malformed++;
        return;
    }
    if (canceled) {
        conn_fail(st->c, "watch %" PRId64 " canceled: %s", id, W.cancel);
        return;
    }
    if (created) {
        if (s->created == s->nw) {
            conn_fail(st->c, "more created answers than creates");
            return;
        }
        s->w[s->created++].id = id;
        W.created++;
    }
    struct watcher *w = NULL;
    for (p = d; pb_next(&p, end, &f) > 0;) {
        if (f.num != 11 || f.wt != 2) continue;
        if (!w && !(w = find_watcher(s, id))) {
            W.foreign++;
            return;
        }
        on_event(w, f.d, f.n, st->c->lp->now);
    }
    if (w) W.responses++;
}

static void watch_close(struct gstream *st, uint32_t h2err) { stream_ended(st, "Watch", h2err); }

/* The framed WatchRequest{create_request{key: prefix, range_end: prefix + 1}}. */
static void build_create_req(void)
{
    size_t n = strlen(opt.prefix);
    memcpy(W.prefix_end, opt.prefix, n);
    W.prefix_end[n - 1]++; /* the prefix ends in '/', never 0xff */
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key = (ProtobufCBinaryData){n, (uint8_t *)opt.prefix};
    cr.range_end = (ProtobufCBinaryData){n, (uint8_t *)W.prefix_end};
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    struct gstream tmp = {0};
    gs_send(&tmp, &req.base);
    W.create_req = tmp.out;
}

static void open_watch_streams(void)
{
    W.ws = calloc((size_t)opt.streams, sizeof *W.ws);
    W.w = calloc((size_t)opt.watchers, sizeof *W.w);
    if (!W.ws || !W.w) die("out of memory");
    uint32_t first = 0;
    for (int j = 0; j < opt.streams; j++) {
        struct wstream *s = &W.ws[j];
        s->nw = (uint32_t)(opt.watchers / opt.streams + (j < opt.watchers % opt.streams));
        s->w = W.w + first;
        first += s->nw;
        s->g.on_msg = watch_msg;
        s->g.on_close = watch_close;
        for (uint32_t k = 0; k < s->nw; k++) buf_append(&s->g.out, W.create_req.p, W.create_req.len);
        gs_open(&s->g, W.lp.c[j % opt.conns], "/etcdserverpb.Watch/Watch");
    }
}

static bool all_created(void *arg)
{
    (void)arg;
    return W.created == (uint32_t)opt.watchers || atomic_load(&abort_run);
}

static uint64_t last_progress;

/* Done when every watcher has every key; gives up when the puts failed, or nothing arrived for
 * --stall seconds after the last put was acknowledged. */
static bool all_delivered(void *arg)
{
    (void)arg;
    if (W.complete == (uint32_t)opt.watchers || atomic_load(&abort_run)) return true;
    uint64_t t = now_ns();
    if (W.t_last_event > last_progress) last_progress = W.t_last_event;
    return atomic_load(&puts_done) && t > last_progress &&
           t - last_progress > (uint64_t)opt.stall * 1000000000u;
}

static void *watch_thread(void *arg)
{
    (void)arg;
    int rc;
    phase_begin(PH_CREATE);
    open_watch_streams();
    rc = loop_run(&W.lp, all_created, NULL, deadline_in(opt.timeout));
    phase_end(PH_CREATE);
    if (rc == 0 && !atomic_load(&abort_run)) {
        printf("# %d watchers created in %.3f s\n", opt.watchers, ph_secs(PH_CREATE));
        fflush(stdout);
        phase_begin(PH_DELIVER);
        last_progress = now_ns();
        atomic_store(&go_puts, true);
        rc = loop_run(&W.lp, all_delivered, NULL, deadline_in(opt.timeout));
        phase_end(PH_DELIVER);
    }
    if (rc == -1) fprintf(stderr, "watchbench: watchers: %s\n", W.lp.err);
    if (rc == -2) fprintf(stderr, "watchbench: watchers: timed out after %d s\n", opt.timeout);
    if (rc == -1 || W.created < (uint32_t)opt.watchers) atomic_store(&abort_run, true);
    worker_exit();
    return NULL;
}

static void put_fill(struct upool *p, struct ucall *u)
{
    (void)p;
    P.key.len = 0;
    int kn = snprintf((char *)buf_room(&P.key, 160), 160, "%s%08u", opt.prefix, u->i);
    uint64_t t = u->t_sent;
    for (int i = 0; i < 8; i++) P.value.p[i] = (uint8_t)(t >> (8 * i));
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){(size_t)kn, P.key.p};
    req.value = (ProtobufCBinaryData){P.value.len, P.value.p};
    gs_send(&u->g, &req.base);
}

static bool put_answer(struct upool *p, struct ucall *u, const uint8_t *d, size_t n)
{
    (void)p, (void)u, (void)d, (void)n;
    return true;
}

static bool puts_may_start(void *arg)
{
    (void)arg;
    return atomic_load(&go_puts) || atomic_load(&abort_run);
}

static void *put_thread(void *arg)
{
    (void)arg;
    struct upool *p = &P.pool;
    P.value.len = (size_t)opt.value_size;
    memset(buf_room(&P.value, P.value.len), 'x', P.value.len);
    *p = (struct upool){.path = "/etcdserverpb.KV/Put", .c = P.lp.c, .nc = P.lp.nc,
                        .total = (uint32_t)opt.keys, .conc = (uint32_t)opt.put_conc,
                        .fill = put_fill, .answer = put_answer};
    /* keep the connections' h2 handshakes served while the watchers are being created */
    int rc = loop_run(&P.lp, puts_may_start, NULL, deadline_in(opt.timeout * 2));
    if (rc == 0 && !atomic_load(&abort_run)) {
        rc = loop_run(&P.lp, upool_step, p, deadline_in(opt.timeout));
        atomic_store(&t_first_put, p->t_first);
    }
    atomic_store(&t_puts_done, now_ns());
    if (rc == -1) fprintf(stderr, "watchbench: puts: %s\n", P.lp.err);
    if (rc == -2) fprintf(stderr, "watchbench: puts: timed out, %u of %u done\n", p->ok, p->total);
    if (p->failed) fprintf(stderr, "watchbench: %u puts failed, first: %s\n", p->failed, p->err);
    if (rc != 0 || p->failed) atomic_store(&abort_run, true);
    atomic_store(&puts_done, true);
    worker_exit();
    return NULL;
}

static int print_watch(void)
{
    struct upool *p = &P.pool;
    uint64_t expected = (uint64_t)opt.watchers * (uint64_t)opt.keys, t0 = atomic_load(&t_first_put);
    uint64_t missing = 0, extra = 0;
    for (int i = 0; i < opt.watchers; i++) {
        uint32_t got = W.w[i].events, want = (uint32_t)opt.keys;
        if (got < want) missing += want - got;
        else extra += got - want;
    }
    double span = t0 && W.t_last_event > t0 ? secs(W.t_last_event - t0) : 0;
    double put_span = p->t_last > p->t_first ? secs(p->t_last - p->t_first) : 0;
    bool ok = !missing && !extra && !W.disorder && !W.malformed && !W.foreign && !p->failed;
    printf("# %" PRIu64 " of %" PRIu64 " events in %.3f s (%u of %d watchers complete, %.1f events "
           "per WatchResponse); %u puts in %.3f s; missing %" PRIu64 ", extra %" PRIu64 ", disordered %"
           PRIu64 ", malformed %" PRIu64 ", unknown watch id %" PRIu64 "\n",
           W.events, expected, span, W.complete, opt.watchers,
           W.responses ? (double)W.events / (double)W.responses : 0, p->ok, put_span, missing, extra,
           W.disorder, W.malformed, W.foreign);
    printf("RESULT mode=watch ok=%d watchers=%d streams=%d conns=%d keys=%d put_conc=%d "
           "value_size=%d create_s=%.3f events=%" PRIu64 " missing=%" PRIu64 " bad_events=%" PRIu64
           " events_per_s=%.0f lat_p50_ms=%.2f lat_p99_ms=%.2f lat_max_ms=%.2f puts_per_s=%.0f "
           "put_p99_ms=%.2f deliver_s=%.3f srv_cpu_create_s=%.2f srv_rss_before_mib=%.1f "
           "srv_rss_created_mib=%.1f "
           "srv_cpu_deliver_s=%.2f srv_cpu_us_per_event=%.3f srv_rss_peak_mib=%.1f "
           "tool_cpu_deliver_s=%.2f\n",
           ok, opt.watchers, opt.streams, opt.conns, opt.keys, opt.put_conc, opt.value_size,
           ph_secs(PH_CREATE), W.events, missing, extra + W.disorder + W.malformed + W.foreign,
           span > 0 ? (double)W.events / span : 0,
           hist_ms(&W.lat, 0.5), hist_ms(&W.lat, 0.99), hist_ms(&W.lat, 1.0),
           put_span > 0 ? p->ok / put_span : 0, hist_ms(&p->lat, 0.99), ph_secs(PH_DELIVER),
           ph_cpu(PH_CREATE), mib(phases[PH_CREATE].rss0), mib(phases[PH_CREATE].rss_end), ph_cpu(PH_DELIVER),
           W.events ? ph_cpu(PH_DELIVER) * 1e6 / (double)W.events : 0,
           mib(phases[PH_DELIVER].rss_peak), phases[PH_DELIVER].self1 - phases[PH_DELIVER].self0);
    return ok ? 0 : 1;
}

static int run_watch(void)
{
    pthread_t wt, pt;
    if (!opt.prefix[0])
        snprintf(opt.prefix, sizeof opt.prefix, "/watchbench/%d-%ld/", (int)getpid(), (long)time(NULL));
    if (opt.prefix[strlen(opt.prefix) - 1] != '/') die("--prefix must end in '/'");
    build_create_req();
    loop_init(&W.lp);
    loop_init(&P.lp);
    /* connected here, so that a refused connection ends the run before any thread starts */
    for (int i = 0; i < opt.conns; i++) conn_new(&W.lp, opt.eps[i % opt.neps]);
    for (int i = 0; i < opt.put_conns; i++) conn_new(&P.lp, opt.put_ep);
    worker_start(&wt, watch_thread, NULL);
    worker_start(&pt, put_thread, NULL);
    sample_until_done();
    pthread_join(wt, NULL);
    pthread_join(pt, NULL);
    if (W.created < (uint32_t)opt.watchers) return 2;
    int rc = print_watch();
    loop_free(&W.lp);
    loop_free(&P.lp);
    for (int j = 0; j < opt.streams; j++) gs_free(&W.ws[j].g);
    free(W.ws);
    free(W.w);
    free(W.create_req.p);
    free(P.key.p);
    free(P.value.p);
    return rc;
}

/* --- lease mode ----------------------------------------------------------------------------- */

struct lease {
    int64_t id;
    uint64_t sent; /* send time of the renewal in flight, 0 = none */
    uint32_t stream;
};

struct lstream {
    struct gstream g; /* first */
    uint32_t first, n;
};

static struct {
    struct loop lp;
    struct lease *l;
    uint32_t *slot; /* open-addressing table: lease ID -> index + 1 */
    uint32_t slots;
    struct lstream *ls;
    struct conn *unary[1];
    bool stopping;
    uint64_t renewals, expired, unexpected, outstanding, unanswered, alive, t_first, t_last;
    struct hist lat;
    int64_t ttl_min;
} L;

static uint32_t id_hash(int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15u;
    return (uint32_t)(x >> 32);
}

static void lease_index_add(uint32_t i)
{
    uint32_t h = id_hash(L.l[i].id) & (L.slots - 1);
    while (L.slot[h]) h = (h + 1) & (L.slots - 1);
    L.slot[h] = i + 1;
}

static struct lease *lease_find(int64_t id)
{
    for (uint32_t h = id_hash(id) & (L.slots - 1); L.slot[h]; h = (h + 1) & (L.slots - 1))
        if (L.l[L.slot[h] - 1].id == id) return &L.l[L.slot[h] - 1];
    return NULL;
}

static void grant_fill(struct upool *p, struct ucall *u)
{
    (void)p;
    Etcdserverpb__LeaseGrantRequest req = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    req.ttl = opt.ttl;
    gs_send(&u->g, &req.base);
}

static bool grant_answer(struct upool *p, struct ucall *u, const uint8_t *d, size_t n)
{
    Etcdserverpb__LeaseGrantResponse *r = etcdserverpb__lease_grant_response__unpack(NULL, n, d);
    bool ok = r && r->id != 0 && !(r->error && r->error[0]);
    if (ok) L.l[u->i].id = r->id;
    else if (!p->err[0])
        snprintf(p->err, sizeof p->err, "LeaseGrant: %s", r && r->error ? r->error : "no ID");
    if (r) etcdserverpb__lease_grant_response__free_unpacked(r, NULL);
    return ok;
}

static void ttl_fill(struct upool *p, struct ucall *u)
{
    (void)p;
    Etcdserverpb__LeaseTimeToLiveRequest req = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    req.id = L.l[u->i].id;
    gs_send(&u->g, &req.base);
}

static void revoke_fill(struct upool *p, struct ucall *u)
{
    (void)p;
    Etcdserverpb__LeaseRevokeRequest req = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    req.id = L.l[u->i].id;
    gs_send(&u->g, &req.base);
}

static bool revoke_answer(struct upool *p, struct ucall *u, const uint8_t *d, size_t n)
{
    (void)p, (void)u, (void)d, (void)n;
    return true;
}

static bool ttl_answer(struct upool *p, struct ucall *u, const uint8_t *d, size_t n)
{
    (void)p, (void)u;
    Etcdserverpb__LeaseTimeToLiveResponse *r = etcdserverpb__lease_time_to_live_response__unpack(NULL, n, d);
    if (!r) return false;
    if (r->ttl > 0) L.alive++;
    if (r->ttl > 0 && (L.ttl_min < 0 || r->ttl < L.ttl_min)) L.ttl_min = r->ttl;
    etcdserverpb__lease_time_to_live_response__free_unpacked(r, NULL);
    return true;
}

static void renew(struct lstream *s, struct lease *l)
{
    Etcdserverpb__LeaseKeepAliveRequest req = ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    req.id = l->id;
    l->sent = now_ns();
    L.outstanding++;
    gs_send(&s->g, &req.base);
}

static void keepalive_msg(struct gstream *st, const uint8_t *d, size_t n)
{
    const uint8_t *p = d, *end = d + n;
    struct pbf f;
    int64_t id = 0, ttl = 0;
    uint64_t t = st->c->lp->now;
    while (pb_next(&p, end, &f) > 0) {
        if (f.num == 2 && f.wt == 0) id = (int64_t)f.v;
        if (f.num == 3 && f.wt == 0) ttl = (int64_t)f.v;
    }
    struct lease *l = lease_find(id);
    if (!l || !l->sent) {
        L.unexpected++;
        return;
    }
    hist_add(&L.lat, t - l->sent);
    l->sent = 0;
    L.outstanding--;
    L.renewals++;
    L.t_last = t;
    if (ttl <= 0) L.expired++;
    if (!L.stopping) renew((struct lstream *)st, l);
}

static void keepalive_close(struct gstream *st, uint32_t h2err) { stream_ended(st, "LeaseKeepAlive", h2err); }

static void open_keepalive_streams(void)
{
    int base = 1; /* L.lp.c[0] carries the unary calls */
    L.ls = calloc((size_t)opt.ka_streams, sizeof *L.ls);
    if (!L.ls) die("out of memory");
    uint32_t first = 0;
    for (int j = 0; j < opt.ka_streams; j++) {
        struct lstream *s = &L.ls[j];
        s->first = first;
        s->n = (uint32_t)(opt.leases / opt.ka_streams + (j < opt.leases % opt.ka_streams));
        first += s->n;
        s->g.on_msg = keepalive_msg;
        s->g.on_close = keepalive_close;
        gs_open(&s->g, L.lp.c[base + j % opt.ka_conns], "/etcdserverpb.Lease/LeaseKeepAlive");
    }
}

static bool keepalive_step(void *arg)
{
    uint64_t *stop_at = arg;
    if (!L.t_first) { /* the first round: one renewal per lease */
        L.t_first = now_ns();
        for (int j = 0; j < opt.ka_streams; j++)
            for (uint32_t k = 0; k < L.ls[j].n; k++) renew(&L.ls[j], &L.l[L.ls[j].first + k]);
    }
    if (!L.stopping && now_ns() >= *stop_at) L.stopping = true;
    return L.stopping && L.outstanding == 0;
}

static int run_unary(struct upool *p, const char *path, void (*fill)(struct upool *, struct ucall *),
                     bool (*answer)(struct upool *, struct ucall *, const uint8_t *, size_t))
{
    *p = (struct upool){.path = path, .c = L.unary, .nc = 1, .total = (uint32_t)opt.leases,
                        .conc = (uint32_t)opt.unary_conc, .fill = fill, .answer = answer};
    int rc = loop_run(&L.lp, upool_step, p, deadline_in(opt.timeout));
    if (rc == -1) fprintf(stderr, "watchbench: %s: %s\n", path, L.lp.err);
    if (rc == -2) fprintf(stderr, "watchbench: %s: timed out\n", path);
    if (p->failed) fprintf(stderr, "watchbench: %u calls failed, first: %s\n", p->failed, p->err);
    return rc == 0 && !p->failed ? 0 : -1;
}

/* grant, keep alive, check; then revoke (not measured), so that the next run finds no leases
 * expiring. 0: measured; 2: could not run. */
static int lease_phases(struct upool *pools)
{
    struct upool *grant = &pools[0], *check = &pools[1], *revoke = &pools[2];
    phase_begin(PH_GRANT);
    int rc = run_unary(grant, "/etcdserverpb.Lease/LeaseGrant", grant_fill, grant_answer);
    phase_end(PH_GRANT);
    if (rc) return 2;
    for (uint32_t i = 0; i < (uint32_t)opt.leases; i++) lease_index_add(i);
    printf("# %d leases granted in %.3f s\n", opt.leases, ph_secs(PH_GRANT));
    fflush(stdout);
    open_keepalive_streams();
    uint64_t stop_at = deadline_in(opt.seconds);
    phase_begin(PH_KEEPALIVE);
    rc = loop_run(&L.lp, keepalive_step, &stop_at, stop_at + (uint64_t)opt.timeout * 1000000000u);
    phase_end(PH_KEEPALIVE);
    L.unanswered = L.outstanding;
    if (rc == -1) fprintf(stderr, "watchbench: keepalive: %s\n", L.lp.err);
    if (rc == -2) fprintf(stderr, "watchbench: keepalive: %" PRIu64 " renewals unanswered after %d s\n",
                          L.outstanding, opt.timeout);
    if (rc == -1 || L.renewals == 0) return 2;
    L.ttl_min = -1;
    if (run_unary(check, "/etcdserverpb.Lease/LeaseTimeToLive", ttl_fill, ttl_answer)) return 2;
    if (run_unary(revoke, "/etcdserverpb.Lease/LeaseRevoke", revoke_fill, revoke_answer))
        fprintf(stderr, "watchbench: warning: revoking the leases failed\n");
    return 0;
}

static int print_lease(void)
{
    double span = L.t_last > L.t_first ? secs(L.t_last - L.t_first) : 0;
    bool ok = L.alive == (uint64_t)opt.leases && !L.expired && !L.unexpected && !L.unanswered;
    printf("# %" PRIu64 " renewals in %.3f s over %d streams; %" PRIu64 " answered TTL <= 0, %" PRIu64
           " unexpected, %" PRIu64 " unanswered; %" PRIu64 " of %d leases alive at the end "
           "(min TTL %" PRId64 ")\n",
           L.renewals, span, opt.ka_streams, L.expired, L.unexpected, L.unanswered, L.alive,
           opt.leases, L.ttl_min);
    printf("RESULT mode=lease ok=%d leases=%d ttl=%d ka_streams=%d ka_conns=%d seconds=%d "
           "srv_rss_before_mib=%.1f grant_s=%.3f grants_per_s=%.0f renewals=%" PRIu64
           " renewals_per_s=%.0f lat_p50_ms=%.2f "
           "lat_p99_ms=%.2f alive=%" PRIu64 " expired=%" PRIu64 " srv_cpu_grant_s=%.2f "
           "srv_cpu_keepalive_s=%.2f srv_cpu_us_per_renewal=%.2f srv_rss_granted_mib=%.1f "
           "srv_rss_peak_mib=%.1f tool_cpu_keepalive_s=%.2f\n",
           ok, opt.leases, opt.ttl, opt.ka_streams, opt.ka_conns, opt.seconds,
           mib(phases[PH_GRANT].rss0), ph_secs(PH_GRANT),
           ph_secs(PH_GRANT) > 0 ? opt.leases / ph_secs(PH_GRANT) : 0, L.renewals,
           span > 0 ? (double)L.renewals / span : 0, hist_ms(&L.lat, 0.5), hist_ms(&L.lat, 0.99),
           L.alive, L.expired, ph_cpu(PH_GRANT), ph_cpu(PH_KEEPALIVE),
           L.renewals ? ph_cpu(PH_KEEPALIVE) * 1e6 / (double)L.renewals : 0,
           mib(phases[PH_GRANT].rss_end), mib(phases[PH_KEEPALIVE].rss_peak),
           phases[PH_KEEPALIVE].self1 - phases[PH_KEEPALIVE].self0);
    return ok ? 0 : 1;
}

static int lease_rc;

static void *lease_thread(void *arg)
{
    lease_rc = lease_phases(arg);
    worker_exit();
    return NULL;
}

static int run_lease(void)
{
    static struct upool pools[3];
    pthread_t t;
    L.l = calloc((size_t)opt.leases, sizeof *L.l);
    for (L.slots = 1; L.slots < 2u * (uint32_t)opt.leases; L.slots *= 2) {}
    L.slot = calloc(L.slots, sizeof *L.slot);
    if (!L.l || !L.slot) die("out of memory");
    loop_init(&L.lp);
    L.unary[0] = conn_new(&L.lp, opt.put_ep);
    for (int i = 0; i < opt.ka_conns; i++) conn_new(&L.lp, opt.eps[i % opt.neps]);
    worker_start(&t, lease_thread, pools);
    sample_until_done();
    pthread_join(t, NULL);
    if (lease_rc == 2) return 2;
    int rc = print_lease();
    loop_free(&L.lp);
    for (int j = 0; j < opt.ka_streams; j++) gs_free(&L.ls[j].g);
    free(L.ls);
    free(L.l);
    free(L.slot);
    return rc;
}

/* --- main ----------------------------------------------------------------------------------- */

static int num_arg(const char *name, const char *v, int lo)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || n < lo || n > 100000000) die("%s: bad number '%s'", name, v);
    return (int)n;
}

static void parse_endpoints(const char *v)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", v);
    for (char *s = strtok(tmp, ","); s; s = strtok(NULL, ",")) {
        if (opt.neps == MAX_EPS || strlen(s) >= sizeof opt.eps[0]) die("too many or too long endpoints");
        snprintf(opt.eps[opt.neps++], sizeof opt.eps[0], "%s", s);
    }
}

static void parse_args(int argc, char **argv)
{
    static const struct { const char *name; int *v; int lo; } nums[] = {
        {"--watchers", &opt.watchers, 1}, {"--streams", &opt.streams, 1}, {"--conns", &opt.conns, 1},
        {"--keys", &opt.keys, 1}, {"--put-conns", &opt.put_conns, 1}, {"--put-concurrency", &opt.put_conc, 1},
        {"--value-size", &opt.value_size, 8}, {"--leases", &opt.leases, 1}, {"--ttl", &opt.ttl, 1},
        {"--ka-streams", &opt.ka_streams, 1}, {"--ka-conns", &opt.ka_conns, 1},
        {"--seconds", &opt.seconds, 1}, {"--unary-concurrency", &opt.unary_conc, 1},
        {"--timeout", &opt.timeout, 1}, {"--stall", &opt.stall, 1},
    };
    if (argc < 2) usage();
    opt.mode = argv[1];
    for (int i = 2; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t j;
        if (!v) usage();
        for (j = 0; j < sizeof nums / sizeof nums[0]; j++)
            if (!strcmp(k, nums[j].name)) break;
        if (j < sizeof nums / sizeof nums[0]) *nums[j].v = num_arg(k, v, nums[j].lo);
        else if (!strcmp(k, "--endpoint") || !strcmp(k, "--endpoints")) parse_endpoints(v);
        else if (!strcmp(k, "--put-endpoint")) snprintf(opt.put_ep, sizeof opt.put_ep, "%s", v);
        else if (!strcmp(k, "--prefix")) snprintf(opt.prefix, sizeof opt.prefix, "%s", v);
        else if (!strcmp(k, "--pid") && opt.npids < MAX_PIDS) opt.pids[opt.npids++] = num_arg(k, v, 1);
        else usage();
    }
    if (!opt.neps) usage();
    if (!opt.put_ep[0]) snprintf(opt.put_ep, sizeof opt.put_ep, "%s", opt.eps[0]);
    if (opt.streams > opt.watchers || opt.ka_streams > opt.leases)
        die("more streams than watchers or leases");
    if (opt.conns > 60 || opt.ka_conns > 60 || opt.put_conns > 60) die("at most 60 connections");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    callbacks();
    if (!strcmp(opt.mode, "watch")) return run_watch();
    if (!strcmp(opt.mode, "lease")) return run_lease();
    usage();
}
