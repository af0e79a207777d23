/*
 * metrics.c: the operator's Prometheus registry (contract and text format in metrics.h).
 *
 * Layout: the registry keeps its families in an array sorted by name, each family its series
 * in an array sorted by label text; lookups are binary searches and rendering is one walk in
 * order, which is what makes the output deterministic. A histogram series keeps one
 * (non-cumulative) count per bound; the +Inf bucket is the total count; render accumulates.
 *
 * Invariants: every name and label text stored has been validated, so rendering never needs
 * to escape or check anything but HELP text; all fields are guarded by the registry mutex,
 * which is never held while a collector runs.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytebuf.h"
#include "err.h"

#define MAX_BUCKETS 32
#define MAX_COLLECTORS 8

const double metrics_default_buckets[11] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

struct series {
    char *labels;
    double value;      /* counter, gauge */
    double sum;        /* histogram */
    uint64_t count;    /* histogram: observations, i.e. the +Inf bucket */
    uint64_t *buckets; /* histogram: observations with bounds[i-1] < v <= bounds[i] */
};

struct family {
    char *name;
    char *help;
    enum metric_type type;
    double bounds[MAX_BUCKETS];
    size_t nbounds;
    struct series **series; /* sorted by labels */
    size_t nseries, cap;
};

struct collector {
    metrics_collect_fn fn;
    void *arg;
};

struct metrics {
    pthread_mutex_t mu;
    struct family **fams; /* sorted by name */
    size_t nfams, cap;
    struct collector coll[MAX_COLLECTORS];
    int ncoll;
    pthread_mutex_t op_mu; /* serializes metrics_register_operator */
    bool operator_registered;
};

/* ---- validation ---- */

static bool name_char(char c, bool first, bool colon_ok)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon_ok;
    return !first && c >= '0' && c <= '9';
}

static bool valid_name(const char *s, bool colon_ok)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++)
        if (!name_char(*p, p == s, colon_ok))
            return false;
    return true;
}

/* Skips one quoted label value at p (after its opening quote); the position after the closing
 * quote, or NULL if the value is unterminated or has a raw newline or a bad escape. */
static const char *skip_value(const char *p)
{
    for (; *p; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\n')
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p != '\\' && *p != '"' && *p != 'n')
                return NULL;
        }
    }
    return NULL;
}

/* name="value"(,name="value")* or empty */
static bool valid_labels(const char *s)
{
    const char *p = s;

    if (*p == '\0')
        return true;
    for (;;) {
        const char *start = p;

        while (name_char(*p, p == start, false))
            p++;
        if (p == start || p[0] != '=' || p[1] != '"')
            return false;
        p = skip_value(p + 2);
        if (!p)
            return false;
        if (*p == '\0')
            return true;
        if (*p++ != ',')
            return false;
    }
}

/* ---- lookup ---- */

/* Index of key in an array of pointers to structs sorted by the string at key_off in each
 * struct, or where it would go (*found false). Families are sorted by name, series by labels. */
static size_t sorted_index(void *const *arr, size_t n, size_t key_off, const char *key,
                           bool *found)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(*(char *const *)((const char *)arr[mid] + key_off), key);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static size_t fam_index(const metrics *m, const char *name, bool *found)
{
    return sorted_index((void *const *)m->fams, m->nfams, offsetof(struct family, name), name,
                        found);
}

static struct family *fam_find(const metrics *m, const char *name)
{
    bool found;
    size_t i;

    if (!name)
        return NULL;
    i = fam_index(m, name, &found);
    return found ? m->fams[i] : NULL;
}

static size_t series_index(const struct family *f, const char *labels, bool *found)
{
    return sorted_index((void *const *)f->series, f->nseries, offsetof(struct series, labels),
                        labels, found);
}

/* Grows an array of pointers to hold one more. */
static int grow(void ***arr, size_t n, size_t *cap)
{
    void **p;
    size_t ncap;

    if (n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 8;
    p = realloc(*arr, ncap * sizeof(*p));
    if (!p)
        return CE_NOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static void series_free(struct series *s)
{
    if (!s)
        return;
    free(s->labels);
    free(s->buckets);
    free(s);
}

static struct series *series_new(const struct family *f, const char *labels)
{
    struct series *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->labels = strdup(labels);
    if (f->type == METRIC_HISTOGRAM)
        s->buckets = calloc(f->nbounds ? f->nbounds : 1, sizeof(*s->buckets));
    if (!s->labels || (f->type == METRIC_HISTOGRAM && !s->buckets)) {
        series_free(s);
        return NULL;
    }
    return s;
}

/* The series of (name, labels) of the given type, created if absent. Called locked. */
static int series_get(metrics *m, const char *name, const char *labels, enum metric_type type,
                      struct series **out)
{
    struct family *f = fam_find(m, name);
    struct series *s;
    bool found;
    size_t i;

    if (!f)
        return CE_NOTFOUND;
    if (f->type != type)
        return CE_INVAL;
    if (!labels)
        labels = "";
    i = series_index(f, labels, &found);
    if (found) {
        *out = f->series[i];
        return 0;
    }
    if (!valid_labels(labels))
        return CE_INVAL;
    if (grow((void ***)&f->series, f->nseries, &f->cap) != 0)
        return CE_NOMEM;
    s = series_new(f, labels);
    if (!s)
        return CE_NOMEM;
    memmove(&f->series[i + 1], &f->series[i], (f->nseries - i) * sizeof(*f->series));
    f->series[i] = s;
    f->nseries++;
    *out = s;
    return 0;
}

/* ---- registry ---- */

int metrics_new(metrics **out)
{
    metrics *m = calloc(1, sizeof(*m));

    if (!m)
        return CE_NOMEM;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->op_mu, NULL);
    *out = m;
    return 0;
}

static void family_free(struct family *f)
{
    for (size_t i = 0; i < f->nseries; i++)
        series_free(f->series[i]);
    free(f->series);
    free(f->name);
    free(f->help);
    free(f);
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nfams; i++)
        family_free(m->fams[i]);
    free(m->fams);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->op_mu);
    free(m);
}

static int check_buckets(const double *b, size_t n)
{
    if (n == 0 || n > MAX_BUCKETS)
        return CE_INVAL;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(b[i]) || (i > 0 && b[i] <= b[i - 1]))
            return CE_INVAL;
    return 0;
}

static struct family *family_new(enum metric_type type, const char *name, const char *help,
                                 const double *buckets, size_t nbuckets)
{
    struct family *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (!f->name || !f->help) {
        family_free(f);
        return NULL;
    }
    if (type == METRIC_HISTOGRAM) {
        memcpy(f->bounds, buckets, nbuckets * sizeof(*buckets));
        f->nbounds = nbuckets;
    }
    return f;
}

int metrics_register(metrics *m, enum metric_type type, const char *name, const char *help,
                     const double *buckets, size_t nbuckets)
{
    struct family *f;
    bool found;
    size_t i;
    int rc = 0;

    if (type == METRIC_HISTOGRAM && !buckets) {
        buckets = metrics_default_buckets;
        nbuckets = sizeof(metrics_default_buckets) / sizeof(metrics_default_buckets[0]);
    }
    if (!valid_name(name, true) || (type == METRIC_HISTOGRAM && check_buckets(buckets, nbuckets)))
        return CE_INVAL;
    pthread_mutex_lock(&m->mu);
    i = fam_index(m, name, &found);
    if (found) {
        rc = m->fams[i]->type == type ? 0 : CE_EXISTS;
        goto out_unlock;
    }
    rc = grow((void ***)&m->fams, m->nfams, &m->cap);
    if (rc != 0)
        goto out_unlock;
    f = family_new(type, name, help, buckets, nbuckets);
    if (!f) {
        rc = CE_NOMEM;
        goto out_unlock;
    }
    memmove(&m->fams[i + 1], &m->fams[i], (m->nfams - i) * sizeof(*m->fams));
    m->fams[i] = f;
    m->nfams++;
out_unlock:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- updates ---- */

enum op { OP_ADD, OP_SET };

static int update(metrics *m, const char *name, const char *labels, enum metric_type type,
                  enum op op, double v)
{
    struct series *s;
    int rc;

    pthread_mutex_lock(&m->mu);
    rc = series_get(m, name, labels, type, &s);
    if (rc == 0) {
        if (op == OP_SET)
            s->value = v;
        else
            s->value += v;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int metrics_counter_add(metrics *m, const char *name, const char *labels, double v)
{
    if (!(v >= 0))
        return CE_INVAL;
    return update(m, name, labels, METRIC_COUNTER, OP_ADD, v);
}

int metrics_gauge_set(metrics *m, const char *name, const char *labels, double v)
{
    return update(m, name, labels, METRIC_GAUGE, OP_SET, v);
}

int metrics_gauge_add(metrics *m, const char *name, const char *labels, double v)
{
    return update(m, name, labels, METRIC_GAUGE, OP_ADD, v);
}

int metrics_observe(metrics *m, const char *name, const char *labels, double v)
{
    struct family *f;
    struct series *s;
    int rc;

    if (isnan(v))
        return CE_INVAL;
    pthread_mutex_lock(&m->mu);
    rc = series_get(m, name, labels, METRIC_HISTOGRAM, &s);
    if (rc == 0) {
        f = fam_find(m, name);
        for (size_t i = 0; i < f->nbounds; i++) {
            if (v <= f->bounds[i]) {
                s->buckets[i]++;
                break;
            }
        }
        s->count++;
        s->sum += v;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int metrics_value(metrics *m, const char *name, const char *labels, double *out)
{
    struct family *f;
    bool found = false;
    size_t i;
    int rc = CE_NOTFOUND;

    pthread_mutex_lock(&m->mu);
    f = fam_find(m, name);
    if (f && f->type != METRIC_HISTOGRAM) {
        i = series_index(f, labels ? labels : "", &found);
        if (found) {
            *out = f->series[i]->value;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static bool prefix_match(const char *labels, const char *prefix, size_t plen)
{
    return strncmp(labels, prefix, plen) == 0 &&
           (plen == 0 || labels[plen] == '\0' || labels[plen] == ',');
}

int metrics_remove(metrics *m, const char *name, const char *prefix)
{
    struct family *f;
    size_t plen = prefix ? strlen(prefix) : 0;
    size_t kept = 0;
    int removed = 0;

    pthread_mutex_lock(&m->mu);
    f = fam_find(m, name);
    for (size_t i = 0; f && i < f->nseries; i++) {
        if (prefix_match(f->series[i]->labels, prefix ? prefix : "", plen)) {
            series_free(f->series[i]);
            removed++;
        } else {
            f->series[kept++] = f->series[i];
        }
    }
    if (f)
        f->nseries = kept;
    pthread_mutex_unlock(&m->mu);
    return removed;
}

int metrics_add_collector(metrics *m, metrics_collect_fn fn, void *arg)
{
    int rc = CE_NOMEM;

    pthread_mutex_lock(&m->mu);
    if (m->ncoll < MAX_COLLECTORS) {
        m->coll[m->ncoll].fn = fn;
        m->coll[m->ncoll].arg = arg;
        m->ncoll++;
        rc = 0;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- exposition ---- */

/* Prometheus float text: integers plainly, others in the shortest round-tripping %g. */
static void fmt_value(double v, char *buf, size_t size)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, size, "%.0f", v == 0 ? 0.0 : v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
}

static int put_help(bytebuf *b, const struct family *f)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    int rc = bytebuf_printf(b, "# HELP %s ", f->name);

    for (const char *p = f->help; rc == 0 && *p; p++) {
        if (*p == '\\')
            rc = bytebuf_append(b, "\\\\", 2);
        else if (*p == '\n')
            rc = bytebuf_append(b, "\\n", 2);
        else
            rc = bytebuf_append(b, p, 1);
    }
    return rc ? rc : bytebuf_printf(b, "\n# TYPE %s %s\n", f->name, types[f->type]);
}

/* name{labels} value, braces omitted for an empty label set */
static int put_sample(bytebuf *b, const char *name, const char *suffix, const char *labels,
                      const char *extra, double v)
{
    char val[40];
    bool any = *labels || *extra;

    fmt_value(v, val, sizeof(val));
    return bytebuf_printf(b, "%s%s%s%s%s%s%s %s\n", name, suffix, any ? "{" : "", labels,
                          *labels && *extra ? "," : "", extra, any ? "}" : "", val);
}

static int put_histogram(bytebuf *b, const struct family *f, const struct series *s)
{
    char le[64], bound[40];
    uint64_t cum = 0;
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < f->nbounds; i++) {
        cum += s->buckets[i];
        fmt_value(f->bounds[i], bound, sizeof(bound));
        snprintf(le, sizeof(le), "le=\"%s\"", bound);
        rc = put_sample(b, f->name, "_bucket", s->labels, le, (double)cum);
    }
    if (rc == 0)
        rc = put_sample(b, f->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
    if (rc == 0)
        rc = put_sample(b, f->name, "_sum", s->labels, "", s->sum);
    if (rc == 0)
        rc = put_sample(b, f->name, "_count", s->labels, "", (double)s->count);
    return rc;
}

static int put_family(bytebuf *b, const struct family *f)
{
    int rc;

    if (f->nseries == 0)
        return 0;
    rc = put_help(b, f);
    for (size_t i = 0; rc == 0 && i < f->nseries; i++) {
        const struct series *s = f->series[i];

        if (f->type == METRIC_HISTOGRAM)
            rc = put_histogram(b, f, s);
        else
            rc = put_sample(b, f->name, "", s->labels, "", s->value);
    }
    return rc;
}

static void run_collectors(metrics *m)
{
    struct collector coll[MAX_COLLECTORS];
    int n;

    pthread_mutex_lock(&m->mu);
    n = m->ncoll;
    memcpy(coll, m->coll, sizeof(coll));
    pthread_mutex_unlock(&m->mu);
    for (int i = 0; i < n; i++)
        coll[i].fn(m, coll[i].arg);
}

int metrics_render_text(metrics *m, char **out, size_t *len)
{
    bytebuf b = {0};
    int rc = 0;

    run_collectors(m);
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; rc == 0 && i < m->nfams; i++)
        rc = put_family(&b, m->fams[i]);
    pthread_mutex_unlock(&m->mu);
    if (rc == 0)
        rc = bytebuf_append(&b, "", 1); /* the NUL; also allocates for an empty registry */
    if (rc != 0) {
        bytebuf_free(&b);
        return rc;
    }
    *len = bytebuf_size(&b) - 1;
    *out = (char *)b.p; /* off is 0: nothing was consumed */
    return 0;
}

/* ---- label rendering ---- */

/* Appends s to buf at *pos; false (and *pos untouched) if it does not fit with its NUL. */
static bool append(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
    if (n >= size - *pos)
        return false;
    memcpy(buf + *pos, s, n);
    *pos += n;
    buf[*pos] = '\0';
    return true;
}

static int put_label(char *buf, size_t size, size_t *pos, const char *k, const char *v)
{
    bool ok;

    if (!valid_name(k, false) || !v)
        return CE_INVAL;
    ok = (*pos == 0 || append(buf, size, pos, ",", 1)) && append(buf, size, pos, k, strlen(k)) &&
         append(buf, size, pos, "=\"", 2);
    for (const char *p = v; ok && *p; p++) {
        if (*p == '\\')
            ok = append(buf, size, pos, "\\\\", 2);
        else if (*p == '"')
            ok = append(buf, size, pos, "\\\"", 2);
        else if (*p == '\n')
            ok = append(buf, size, pos, "\\n", 2);
        else
            ok = append(buf, size, pos, p, 1);
    }
    return ok && append(buf, size, pos, "\"", 1) ? 0 : CE_INVAL;
}

int metrics_labels(char *buf, size_t size, ...)
{
    va_list ap;
    const char *k;
    size_t pos = 0;
    int rc = 0;

    if (size == 0)
        return CE_INVAL;
    buf[0] = '\0';
    va_start(ap, size);
    while (rc == 0 && (k = va_arg(ap, const char *)) != NULL)
        rc = put_label(buf, size, &pos, k, va_arg(ap, const char *));
    va_end(ap);
    if (rc != 0)
        buf[0] = '\0';
    return rc;
}

/* ---- the operator's families ---- */

struct fam_def {
    enum metric_type type;
    const char *name, *help;
};

static const struct fam_def operator_fams[] = {
    {METRIC_COUNTER, M_RECONCILE_TOTAL, "Total number of reconciliations per controller"},
    {METRIC_COUNTER, M_RECONCILE_ERRORS, "Total number of reconciliation errors per controller"},
    {METRIC_HISTOGRAM, M_RECONCILE_TIME, "Length of time per reconciliation per controller"},
    {METRIC_GAUGE, M_WQ_DEPTH, "Current depth of workqueue"},
    {METRIC_COUNTER, M_WQ_ADDS, "Total number of adds handled by workqueue"},
    {METRIC_COUNTER, M_WQ_RETRIES, "Total number of retries handled by workqueue"},
    {METRIC_GAUGE, M_LEADER_STATUS,
     "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 "
     "indicates master. 'name' is the string used to identify the lease. Please make sure to "
     "group by name."},
    {METRIC_GAUGE, M_CLUSTER_MEMBERS, "Number of members in the cluster's member list"},
    {METRIC_GAUGE, M_CLUSTER_READY, "Number of members of the cluster that are healthy"},
    {METRIC_GAUGE, M_CLUSTER_QUORUM, "1 if the cluster has quorum (healthy voters > voters/2), else 0"},
    {METRIC_COUNTER, M_MEMBERSHIP_CHANGES,
     "Total number of membership changes made by the operator, by action"},
    {METRIC_GAUGE, M_BACKUP_LAST_SUCCESS,
     "Time of the cluster's newest successful backup (status.backup.lastSuccess), seconds since "
     "the epoch"},
    {METRIC_GAUGE, M_BACKUP_LAST_FAILURE,
     "Time of the cluster's newest failed backup (status.backup.lastFailure), seconds since the "
     "epoch"},
    {METRIC_GAUGE, M_PROCESS_START, "Start time of the process since unix epoch in seconds."},
    {METRIC_GAUGE, M_PROCESS_RSS, "Resident memory size in bytes."},
};

/* Seconds since the epoch when this process started: boot time + starttime (field 22 of
 * /proc/self/stat, in clock ticks); the current time if /proc cannot tell. */
static double process_start_time(void)
{
    char buf[1024], *p;
    unsigned long long start = 0, btime = 0;
    long tck = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

    if (f)
        fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    /* after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
     * stime cutime cstime priority nice threads itrealvalue starttime(22) */
    if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
                           "%*d %*d %*d %llu", &start) == 1) {
        f = fopen("/proc/stat", "r");
        while (f && fgets(buf, sizeof(buf), f))
            if (sscanf(buf, "btime %llu", &btime) == 1)
                break;
        if (f)
            fclose(f);
    }
    if (btime == 0 || tck <= 0)
        return (double)time(NULL);
    return (double)btime + (double)start / (double)tck;
}

static void collect_rss(metrics *m, void *arg)
{
    unsigned long long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");

    (void)arg;
    if (!f)
        return;
    if (fscanf(f, "%llu %llu", &size, &resident) == 2)
        metrics_gauge_set(m, M_PROCESS_RSS, "", (double)resident * (double)sysconf(_SC_PAGESIZE));
    fclose(f);
}

int metrics_register_operator(metrics *m)
{
    int rc = 0;

    pthread_mutex_lock(&m->op_mu);
    if (m->operator_registered)
        goto out_unlock;
    for (size_t i = 0; rc == 0 && i < sizeof(operator_fams) / sizeof(operator_fams[0]); i++)
        rc = metrics_register(m, operator_fams[i].type, operator_fams[i].name,
                              operator_fams[i].help, NULL, 0);
    if (rc == 0)
        rc = metrics_gauge_set(m, M_PROCESS_START, "", process_start_time());
    if (rc == 0)
        rc = metrics_add_collector(m, collect_rss, NULL);
    m->operator_registered = rc == 0;
out_unlock:
    pthread_mutex_unlock(&m->op_mu);
    return rc;
}
