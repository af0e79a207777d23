/*
 * metrics.c: renders node status counters in the Prometheus text format (version 0.0.4).
 * Names follow etcd 3.4/3.5 exactly (etcd_server_*, etcd_disk_*, etcd_mvcc_*, process_*).
 */
#include "metrics.h"
#include "err.h"
#include "version.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void metric(struct text *t, const char *name, const char *type, const char *help, double v)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void fsync_histogram(struct text *t, node *n)
{
    static const char *name = "etcd_disk_wal_fsync_duration_seconds";
    uint64_t counts[NODE_FSYNC_BUCKETS], count;
    double sum, bound = 0.001;

    node_fsync_histogram(n, counts, &count, &sum);
    put(t, "# HELP %s The latency distributions of fsync called by WAL.\n# TYPE %s histogram\n", name, name);
    for (int i = 0; i < NODE_FSYNC_BUCKETS; i++, bound *= 2)
        put(t, "%s_bucket{le=\"%g\"} %llu\n", name, bound, (unsigned long long)counts[i]);
    put(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
        (unsigned long long)count, name, sum, name, (unsigned long long)count);
}

static double resident_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

int metrics_render(node *n, uint64_t quota_bytes, char **out, size_t *len)
{
    struct text t = {malloc(8192), 0, 8192, false};
    node_status st;

    if (!t.buf)
        return CE_NOMEM;
    node_get_status(n, &st);
    metric(&t, "etcd_server_has_leader", "gauge", "Whether or not a leader exists. 1 is existence, 0 is not.", st.leader != 0);
    metric(&t, "etcd_server_is_leader", "gauge", "Whether or not this member is a leader. 1 if is, 0 otherwise.", st.leader && st.leader == st.member_id);
    metric(&t, "etcd_server_is_learner", "gauge", "Whether or not this member is a learner. 1 if is, 0 otherwise.", st.is_learner);
    metric(&t, "etcd_server_leader_changes_seen_total", "counter", "The number of leader changes seen.", (double)st.leader_changes);
    metric(&t, "etcd_server_proposals_committed_total", "gauge", "The total number of consensus proposals committed.", (double)st.commit_index);
    metric(&t, "etcd_server_proposals_applied_total", "gauge", "The total number of consensus proposals applied.", (double)st.applied_index);
    metric(&t, "etcd_server_proposals_pending", "gauge", "The current number of pending proposals to commit.", (double)st.proposals_pending);
    metric(&t, "etcd_server_proposals_failed_total", "counter", "The total number of failed proposals seen.", (double)st.proposals_failed);
    metric(&t, "etcd_server_quota_backend_bytes", "gauge", "Current backend storage quota size in bytes.", (double)quota_bytes);
    put(&t, "# HELP etcd_server_id Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.\n"
            "# TYPE etcd_server_id gauge\netcd_server_id{server_id=\"%016llx\"} 1\n", (unsigned long long)st.member_id);
    put(&t, "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n"
            "# TYPE etcd_server_version gauge\netcd_server_version{server_version=\"%s\"} 1\n", CETCD_ETCD_API_VERSION);
    put(&t, "# HELP etcd_cluster_version Which version is running. 1 for 'cluster_version' label with current cluster version\n"
            "# TYPE etcd_cluster_version gauge\netcd_cluster_version{cluster_version=\"3.5\"} 1\n");
    metric(&t, "etcd_mvcc_db_total_size_in_bytes", "gauge", "Total size of the underlying database physically allocated in bytes.", (double)st.db_size);
    metric(&t, "etcd_mvcc_db_total_size_in_use_in_bytes", "gauge", "Total size of the underlying database logically in use in bytes.", (double)st.db_size_in_use);
    metric(&t, "etcd_debugging_mvcc_current_revision", "gauge", "The current revision of store.", (double)st.revision);
    metric(&t, "etcd_debugging_mvcc_compact_revision", "gauge", "The revision of the last compaction in store.", (double)st.compact_revision);
    fsync_histogram(&t, n);
    metric(&t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", resident_bytes());
    if (t.oom) {
        free(t.buf);
        return CE_NOMEM;
    }
    *out = t.buf;
    *len = t.len;
    return 0;
}
