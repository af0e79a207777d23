/*
 * metrics.c: renders a member's counters in the Prometheus text format (version 0.0.4), with
 * the names, types, labels and help texts of etcd 3.4 (checked against a real etcd 3.4.23
 * /metrics by tests/integration/metrics.sh).
 *
 * Invariants: every family is announced once (# HELP, # TYPE) before its samples; histograms
 * give cumulative _bucket{le=...} samples ending with le="+Inf" (= _count), then _sum and
 * _count; counters never go down while the process lives. grpc_server_handled_total has a
 * sample for every method and every one of the 17 gRPC codes, as etcd pre-registers them.
 */
#include "metrics.h"
#include "err.h"
#include "peer/peer.h"
#include "version.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct text {
    char *buf;
    size_t len, cap;
    bool oom;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        char *nb = realloc(t->buf, t->cap * 2 + (size_t)n);
        if (!nb) {
            t->oom = true;
            return;
        }
        t->buf = nb;
        t->cap = t->cap * 2 + (size_t)n;
    }
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(struct text *t, const char *name, const char *type, const char *help, double v)
{
    family(t, name, type, help);
    put(t, "%s %.17g\n", name, v);
}

/* The samples of one histogram; labels is "" or `name="value"` pairs joined by commas. */
static void histo_samples(struct text *t, const char *name, const char *labels, const histo *h)
{
    const char *sep = *labels ? "," : "";

    for (int i = 0; i < h->n; i++)
        put(t, "%s_bucket{%s%sle=\"%.17g\"} %llu\n", name, labels, sep, histo_bound(h, i),
            (unsigned long long)h->buckets[i]);
    put(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)h->count);
    if (*labels)
        put(t, "%s_sum{%s} %.17g\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
            (unsigned long long)h->count);
    else
        put(t, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

static void histogram(struct text *t, const char *name, const char *help, const histo *h)
{
    family(t, name, "histogram", help);
    histo_samples(t, name, "", h);
}

/* ---- server ---- */

static void server_family(struct text *t, const node_status *st, uint64_t quota)
{
    metric(t, "etcd_server_has_leader", "gauge", "Whether or not a leader exists. 1 is existence, 0 is not.", st->leader != 0);
    metric(t, "etcd_server_is_leader", "gauge", "Whether or not this member is a leader. 1 if is, 0 otherwise.", st->leader && st->leader == st->member_id);
    metric(t, "etcd_server_is_learner", "gauge", "Whether or not this member is a learner. 1 if is, 0 otherwise.", st->is_learner);
    metric(t, "etcd_server_leader_changes_seen_total", "counter", "The number of leader changes seen.", (double)st->leader_changes);
    metric(t, "etcd_server_proposals_committed_total", "gauge", "The total number of consensus proposals committed.", (double)st->commit_index);
    metric(t, "etcd_server_proposals_applied_total", "gauge", "The total number of consensus proposals applied.", (double)st->applied_index);
    metric(t, "etcd_server_proposals_pending", "gauge", "The current number of pending proposals to commit.", (double)st->proposals_pending);
    metric(t, "etcd_server_proposals_failed_total", "counter", "The total number of failed proposals seen.", (double)st->proposals_failed);
    metric(t, "etcd_server_quota_backend_bytes", "gauge", "Current backend storage quota size in bytes.", (double)quota);
    family(t, "etcd_server_id", "gauge", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.");
    put(t, "etcd_server_id{server_id=\"%016llx\"} 1\n", (unsigned long long)st->member_id);
    family(t, "etcd_server_version", "gauge", "Which version is running. 1 for 'server_version' label with current version.");
    put(t, "etcd_server_version{server_version=\"%s\"} 1\n", CETCD_ETCD_API_VERSION);
    family(t, "etcd_cluster_version", "gauge", "Which version is running. 1 for 'cluster_version' label with current cluster version");
    put(t, "etcd_cluster_version{cluster_version=\"%.3s\"} 1\n", CETCD_ETCD_CLUSTER_VERSION);
}

static void health_family(struct text *t, const metrics_source *src)
{
    metric(t, "etcd_server_health_success", "counter", "The total number of successful health checks", (double)src->health_success);
    metric(t, "etcd_server_health_failures", "counter", "The total number of failed health checks", (double)src->health_failures);
}

/* ---- disk, mvcc, network ---- */

static void disk_family(struct text *t, const node *n, const node_metrics *nm)
{
    /* a gauge in etcd 3.4, though it only grows */
    metric(t, "etcd_disk_wal_write_bytes_total", "gauge", "Total number of bytes written in WAL.", (double)node_wal_bytes(n));
    histogram(t, "etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.", &nm->wal_fsync);
    histogram(t, "etcd_disk_backend_commit_duration_seconds", "The latency distributions of commit called by backend.", &nm->backend_commit);
    histogram(t, "etcd_disk_backend_defrag_duration_seconds", "The latency distribution of backend defragmentation.", &nm->defrag);
    metric(t, "etcd_disk_defrag_inflight", "gauge", "Whether or not defrag is active on the member. 1 means active, 0 means not.", nm->defrag_inflight);
}

static void mvcc_family(struct text *t, const node_status *st, const node_metrics *nm, double ranges)
{
    metric(t, "etcd_mvcc_db_total_size_in_bytes", "gauge", "Total size of the underlying database physically allocated in bytes.", (double)st->db_size);
    metric(t, "etcd_mvcc_db_total_size_in_use_in_bytes", "gauge", "Total size of the underlying database logically in use in bytes.", (double)st->db_size_in_use);
    metric(t, "etcd_debugging_mvcc_db_total_size_in_bytes", "gauge", "Total size of the underlying database physically allocated in bytes.", (double)st->db_size);
    metric(t, "etcd_debugging_mvcc_current_revision", "gauge", "The current revision of store.", (double)st->revision);
    metric(t, "etcd_debugging_mvcc_compact_revision", "gauge", "The revision of the last compaction in store.", (double)st->compact_revision);
    metric(t, "etcd_mvcc_put_total", "counter", "Total number of puts seen by this member.", (double)nm->puts);
    metric(t, "etcd_mvcc_delete_total", "counter", "Total number of deletes seen by this member.", (double)nm->deletes);
    metric(t, "etcd_mvcc_txn_total", "counter", "Total number of txns seen by this member.", (double)nm->txns);
    metric(t, "etcd_mvcc_range_total", "counter", "Total number of ranges seen by this member.", ranges);
}

#define MAX_PEER_STATS 64

static void watch_family(struct text *t, const watch_hub_stats *w)
{
    metric(t, "etcd_debugging_mvcc_watch_stream_total", "gauge", "Total number of watch streams.", (double)w->streams);
    metric(t, "etcd_debugging_mvcc_watcher_total", "gauge", "Total number of watchers.", (double)w->watchers);
    metric(t, "etcd_debugging_mvcc_slow_watcher_total", "gauge", "Total number of unsynced slow watchers.", (double)w->unsynced);
    metric(t, "etcd_debugging_mvcc_events_total", "counter", "Total number of events sent by this member.", (double)w->events);
}

static void network_family(struct text *t, node *n, const node_status *st, const node_metrics *nm)
{
    static const char *name = "etcd_network_peer_round_trip_time_seconds";
    peer_stats ps[MAX_PEER_STATS];
    size_t np = node_peer_stats(n, ps, MAX_PEER_STATS);
    char labels[64];

    family(t, name, "histogram", "Round-Trip-Time histogram between peers");
    for (size_t i = 0; i < nm->npeers; i++) {
        snprintf(labels, sizeof(labels), "To=\"%016llx\"", (unsigned long long)nm->peers[i].id);
        histo_samples(t, name, labels, &nm->peers[i].rtt);
    }
    family(t, "etcd_network_peer_sent_bytes_total", "counter", "The total number of bytes sent to peers.");
    for (size_t i = 0; i < np; i++)
        put(t, "etcd_network_peer_sent_bytes_total{To=\"%016llx\"} %llu\n", (unsigned long long)ps[i].id,
            (unsigned long long)ps[i].sent_bytes);
    family(t, "etcd_network_peer_received_bytes_total", "counter", "The total number of bytes received from peers.");
    for (size_t i = 0; i < np; i++)
        put(t, "etcd_network_peer_received_bytes_total{From=\"%016llx\"} %llu\n", (unsigned long long)ps[i].id,
            (unsigned long long)ps[i].recv_bytes);
    family(t, "etcd_network_active_peers", "gauge", "The current number of active peer connections.");
    for (size_t i = 0; i < np; i++)
        put(t, "etcd_network_active_peers{Local=\"%016llx\",Remote=\"%016llx\"} %d\n",
            (unsigned long long)st->member_id, (unsigned long long)ps[i].id, ps[i].active ? 1 : 0);
}

/* ---- gRPC ---- */

static const char *const code_names[RPC_NCODES] = {
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
};

static const char *grpc_type(const rpc_method *m)
{
    if (m->client_stream)
        return m->server_stream ? "bidi_stream" : "client_stream";
    return m->server_stream ? "server_stream" : "unary";
}

/* `grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"` from "/etcdserverpb.KV/Put". */
static void method_labels(const rpc_method *m, char *buf, size_t size)
{
    const char *path = m->grpc_path + 1, *slash = strchr(path, '/');
    int svc = slash ? (int)(slash - path) : 0;

    snprintf(buf, size, "grpc_method=\"%s\",grpc_service=\"%.*s\",grpc_type=\"%s\"",
             slash ? slash + 1 : path, svc, path, grpc_type(m));
}

static void grpc_counter(struct text *t, const metrics_source *src, const rpc_method_stats *stats,
                         size_t n, const char *name, size_t field)
{
    char labels[256];

    for (size_t i = 0; i < n && src->methods[i].grpc_path; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&stats[i] + field, sizeof(v));
        method_labels(&src->methods[i], labels, sizeof(labels));
        put(t, "%s{%s} %llu\n", name, labels, (unsigned long long)v);
    }
}

static void grpc_family(struct text *t, const metrics_source *src)
{
    size_t n = 0;
    const rpc_method_stats *stats = src->rpc ? rpc_server_stats(src->rpc, &n) : NULL;
    char labels[256];

    family(t, "grpc_server_handled_total", "counter", "Total number of RPCs completed on the server, regardless of success or failure.");
    for (int code = 0; stats && code < RPC_NCODES; code++)
        for (size_t i = 0; i < n && src->methods[i].grpc_path; i++) {
            method_labels(&src->methods[i], labels, sizeof(labels));
            put(t, "grpc_server_handled_total{grpc_code=\"%s\",%s} %llu\n", code_names[code], labels,
                (unsigned long long)stats[i].handled[code]);
        }
    family(t, "grpc_server_msg_received_total", "counter", "Total number of RPC stream messages received on the server.");
    if (stats)
        grpc_counter(t, src, stats, n, "grpc_server_msg_received_total", offsetof(rpc_method_stats, msg_received));
    family(t, "grpc_server_msg_sent_total", "counter", "Total number of gRPC stream messages sent by the server.");
    if (stats)
        grpc_counter(t, src, stats, n, "grpc_server_msg_sent_total", offsetof(rpc_method_stats, msg_sent));
    family(t, "grpc_server_started_total", "counter", "Total number of RPCs started on the server.");
    if (stats)
        grpc_counter(t, src, stats, n, "grpc_server_started_total", offsetof(rpc_method_stats, started));
}

static void client_bytes(struct text *t, const metrics_source *src)
{
    uint64_t in = 0, out = 0;

    if (src->rpc)
        rpc_server_msg_bytes(src->rpc, &in, &out);
    metric(t, "etcd_network_client_grpc_received_bytes_total", "counter", "The total number of bytes received from grpc clients.", (double)in);
    metric(t, "etcd_network_client_grpc_sent_bytes_total", "counter", "The total number of bytes sent to grpc clients.", (double)out);
}

/* Ranges seen: the Range calls started (etcd counts each Range request once). */
static double ranges_seen(const metrics_source *src)
{
    size_t n = 0;
    const rpc_method_stats *stats = src->rpc ? rpc_server_stats(src->rpc, &n) : NULL;

    for (size_t i = 0; stats && i < n && src->methods[i].grpc_path; i++)
        if (!strcmp(src->methods[i].grpc_path, "/etcdserverpb.KV/Range"))
            return (double)stats[i].started;
    return 0;
}

/* ---- process ---- */

struct proc_stat {
    double cpu_seconds, start_seconds, vsize, rss;
};

/* Boot time (seconds since the epoch) from /proc/stat's "btime" line; 0 if unknown. */
static double boot_time(void)
{
    char line[256];
    double bt = 0;
    FILE *f = fopen("/proc/stat", "r");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %lf", &bt) == 1)
            break;
    fclose(f);
    return bt;
}

/* /proc/self/stat: utime (14), stime (15), starttime (22) in clock ticks, vsize (23) in bytes,
 * rss (24) in pages; the fields after the parenthesised command name. */
static void read_proc_stat(struct proc_stat *ps)
{
    char buf[1024], *p;
    unsigned long long utime, stime, start, vsize;
    long rss, tick = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/self/stat", "r");
    size_t len;

    memset(ps, 0, sizeof(*ps));
    if (!f)
        return;
    len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = 0;
    p = strrchr(buf, ')');
    if (!p || tick <= 0 ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu %llu %ld",
               &utime, &stime, &start, &vsize, &rss) != 5)
        return;
    ps->cpu_seconds = (double)(utime + stime) / (double)tick;
    ps->start_seconds = boot_time() + (double)start / (double)tick;
    ps->vsize = (double)vsize;
    ps->rss = (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static double open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    double n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static double rlimit_of(int resource)
{
    struct rlimit rl;

    if (getrlimit(resource, &rl))
        return 0;
    return rl.rlim_cur == RLIM_INFINITY ? 18446744073709551615.0 : (double)rl.rlim_cur;
}

static void process_family(struct text *t)
{
    struct proc_stat ps;
    double fds = open_fds(), max_fds = rlimit_of(RLIMIT_NOFILE);

    read_proc_stat(&ps);
    metric(t, "os_fd_limit", "gauge", "The file descriptor limit.", max_fds);
    metric(t, "os_fd_used", "gauge", "The number of used file descriptors.", fds);
    metric(t, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", ps.cpu_seconds);
    metric(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds);
    metric(t, "process_open_fds", "gauge", "Number of open file descriptors.", fds);
    metric(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", ps.rss);
    metric(t, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", ps.start_seconds);
    metric(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", ps.vsize);
    metric(t, "process_virtual_memory_max_bytes", "gauge", "Maximum amount of virtual memory available in bytes.", rlimit_of(RLIMIT_AS));
}

int metrics_render(const metrics_source *src, char **out, size_t *len)
{
    struct text t = {malloc(65536), 0, 65536, false};
    const node_metrics *nm = node_get_metrics(src->node);
    node_status st;

    if (!t.buf)
        return CE_NOMEM;
    node_get_status(src->node, &st);
    server_family(&t, &st, src->quota_bytes);
    health_family(&t, src);
    disk_family(&t, src->node, nm);
    mvcc_family(&t, &st, nm, ranges_seen(src));
    watch_family(&t, &src->watch);
    network_family(&t, src->node, &st, nm);
    grpc_family(&t, src);
    client_bytes(&t, src);
    process_family(&t);
    if (t.oom) {
        free(t.buf);
        return CE_NOMEM;
    }
    *out = t.buf;
    *len = t.len;
    return 0;
}
