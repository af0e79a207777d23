/*
 * metrics.h: a small thread-safe Prometheus registry for the operator (text format 0.0.4).
 *
 * A registry holds metric families (name, type, HELP text; histograms also their bucket
 * bounds); a family holds series, one per label set. A label set is passed as the pre-rendered
 * text between the braces, `controller="etcdcluster",result="success"` ("" or NULL = no
 * labels); metrics_labels() renders one with its values escaped. A series is created on first
 * use; a label set that is not well formed (name="escaped value" pairs, comma-separated) is
 * refused with CE_INVAL, so the exposition is always valid.
 *
 * Exposition (metrics_render_text): families sorted by name, each as
 *   # HELP <name> <help, with \ and newline escaped>
 *   # TYPE <name> counter|gauge|histogram
 * then its series sorted by label text (byte order). Counter/gauge: `name{labels} value`.
 * Histogram: `name_bucket{labels,le="<bound>"} <cumulative count>` for each bound and
 * le="+Inf", then `name_sum{labels} <sum>` and `name_count{labels} <count>`. A family without
 * series is omitted (as client_golang does). Values: integral values below 1e15 in magnitude
 * print as integers ("3", "-1"), others in the shortest %g form that round-trips
 * ("0.25", "1.5e+20"), and +Inf, -Inf, NaN.
 *
 * All calls are safe from any thread (one mutex per registry). Collectors registered with
 * metrics_add_collector run at the start of every render, outside the lock, to refresh
 * gauges that are sampled (process RSS).
 */
#ifndef CETCD_METRICS_H
#define CETCD_METRICS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct metrics metrics;

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

/* controller-runtime's reconcile-time buckets: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 */
extern const double metrics_default_buckets[11];

int metrics_new(metrics **out);
void metrics_free(metrics *m);

/*
 * Registers a family. name: [a-zA-Z_:][a-zA-Z0-9_:]*. buckets (histograms only; NULL =
 * metrics_default_buckets): strictly increasing finite bounds, at most 32. Registering the same
 * name again with the same type is a no-op returning 0; with another type CE_EXISTS.
 * 0, CE_INVAL, CE_EXISTS or CE_NOMEM.
 */
int metrics_register(metrics *m, enum metric_type type, const char *name, const char *help,
                     const double *buckets, size_t nbuckets);

/* Updates of one series. CE_NOTFOUND: no such family; CE_INVAL: wrong type for the call,
 * malformed labels, or a negative/NaN counter increment; CE_NOMEM. */
int metrics_counter_add(metrics *m, const char *name, const char *labels, double v);
int metrics_gauge_set(metrics *m, const char *name, const char *labels, double v);
int metrics_gauge_add(metrics *m, const char *name, const char *labels, double v);
int metrics_observe(metrics *m, const char *name, const char *labels, double v);
/* Current value of a counter or gauge series (tests, status). CE_NOTFOUND if absent. */
int metrics_value(metrics *m, const char *name, const char *labels, double *out);

/* Removes the series whose label text equals prefix or starts with prefix followed by ','
 * (so `namespace="a",cluster="b"` removes every action of that cluster but not cluster "bc").
 * prefix "" removes all series of the family. Returns how many were removed. */
int metrics_remove(metrics *m, const char *name, const char *prefix);

/* Renders the exposition into a malloc'd NUL-terminated string (*len excludes the NUL).
 * 0 or CE_NOMEM. */
int metrics_render_text(metrics *m, char **out, size_t *len);

/* Runs fn(m, arg) at the start of each render. At most 8 collectors; 0 or CE_NOMEM. */
typedef void (*metrics_collect_fn)(metrics *m, void *arg);
int metrics_add_collector(metrics *m, metrics_collect_fn fn, void *arg);

/*
 * Renders key/value pairs (NULL-terminated list of const char *) into buf as label text:
 *   metrics_labels(buf, sizeof buf, "namespace", ns, "cluster", name, NULL)
 *   -> namespace="default",cluster="a\"b"
 * Values are escaped (\\, \", \n). 0, or CE_INVAL if a name is invalid, a value NULL or the
 * text does not fit in size bytes (buf then holds "").
 */
int metrics_labels(char *buf, size_t size, ...) __attribute__((sentinel));

/*
 * Registers every family the operator exports (idempotent; HELP texts as controller-runtime
 * and client_golang write them):
 *   controller_runtime_reconcile_total{controller,result}            counter
 *   controller_runtime_reconcile_errors_total{controller}            counter
 *   controller_runtime_reconcile_time_seconds{controller}            histogram (default buckets)
 *   workqueue_depth{name}                                            gauge
 *   workqueue_adds_total{name}                                       counter
 *   workqueue_retries_total{name}                                    counter
 *   leader_election_master_status{name}                              gauge
 *   cetcd_operator_cluster_members{namespace,cluster}                gauge
 *   cetcd_operator_cluster_ready_members{namespace,cluster}          gauge
 *   cetcd_operator_cluster_quorum{namespace,cluster}                 gauge (1/0)
 *   cetcd_operator_membership_changes_total{namespace,cluster,action} counter
 *   cetcd_operator_backup_last_success_timestamp_seconds{namespace,cluster}   gauge
 *   cetcd_operator_backup_last_failure_timestamp_seconds{namespace,cluster}   gauge
 *   process_start_time_seconds                                       gauge (set here, from
 *                                                                    /proc/self/stat)
 *   process_resident_memory_bytes                                    gauge (sampled at each
 *                                                                    render, /proc/self/statm)
 * 0 or CE_NOMEM.
 */
int metrics_register_operator(metrics *m);

/* Family names, so callers cannot misspell them. */
#define M_RECONCILE_TOTAL "controller_runtime_reconcile_total"
#define M_RECONCILE_ERRORS "controller_runtime_reconcile_errors_total"
#define M_RECONCILE_TIME "controller_runtime_reconcile_time_seconds"
#define M_WQ_DEPTH "workqueue_depth"
#define M_WQ_ADDS "workqueue_adds_total"
#define M_WQ_RETRIES "workqueue_retries_total"
#define M_LEADER_STATUS "leader_election_master_status"
#define M_CLUSTER_MEMBERS "cetcd_operator_cluster_members"
#define M_CLUSTER_READY "cetcd_operator_cluster_ready_members"
#define M_CLUSTER_QUORUM "cetcd_operator_cluster_quorum"
#define M_MEMBERSHIP_CHANGES "cetcd_operator_membership_changes_total"
#define M_BACKUP_LAST_SUCCESS "cetcd_operator_backup_last_success_timestamp_seconds"
#define M_BACKUP_LAST_FAILURE "cetcd_operator_backup_last_failure_timestamp_seconds"
#define M_PROCESS_START "process_start_time_seconds"
#define M_PROCESS_RSS "process_resident_memory_bytes"

#endif
