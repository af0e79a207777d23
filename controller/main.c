/*
 * main.c: the cetcd-operator process.
 *
 * Start-up: flags -> Kubernetes config (--kubeconfig, else in-cluster when
 * KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG or ~/.kube/config) -> the /metrics,
 * /healthz and /readyz server -> leader election (--leader-elect: a coordination.k8s.io Lease,
 * so two replicas never act at once) -> informers for EtcdClusters and the objects the
 * operator owns (StatefulSets, ConfigMaps, pods, PVCs, and the backup CronJobs and Jobs) -> once
 * every cache has synced, worker threads reconcile cluster keys from the
 * work queue. Any change to a cluster or to an object it owns queues that cluster's key.
 * Signals: SIGTERM and SIGINT stop the process cleanly (workers finish their pass, the Lease
 * is released so a standby takes over at once); losing the Lease ends the process with
 * status 1 at once, as controller-runtime does, because another replica may already be acting.
 * Signals are blocked in every thread and taken synchronously by the main thread (sigwait).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "operator.h"
#include "runtime/httpd.h"
#include "runtime/leader.h"
#include "runtime/metrics.h"
#include "runtime/olog.h"
#include "runtime/workqueue.h"
#include "server/version.h"

#define MAX_WORKERS 8
#define CONTROLLER "etcdcluster"

struct flags {
    const char *kubeconfig, *context, *ns, *metrics_addr, *log_level;
    const char *le_namespace, *le_id;
    bool leader_elect;
    int workers;
};

struct proc {
    struct flags f;
    struct op op;
    wq *queue;
    leader *le;
    httpd *http;
    pthread_t workers[MAX_WORKERS];
    int n_workers;
    atomic_bool stop;
    atomic_bool lost;
    atomic_bool leading;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cetcd-operator [flags]\n"
            "  --kubeconfig PATH          kubeconfig file (default: in-cluster config, else\n"
            "                             $KUBECONFIG or ~/.kube/config)\n"
            "  --context NAME             kubeconfig context (default: current-context)\n"
            "  --namespace NS             watch one namespace (default: all namespaces)\n"
            "  --metrics-addr ADDR        /metrics, /healthz, /readyz listen address (default :8080;\n"
            "                             0 disables)\n"
            "  --leader-elect             elect a leader through a coordination.k8s.io Lease\n"
            "  --leader-election-namespace NS  namespace of the Lease (default: $POD_NAMESPACE,\n"
            "                             else the config's namespace, else cetcd-system)\n"
            "  --leader-election-id NAME  name of the Lease (default cetcd-operator)\n"
            "  --workers N                clusters reconciled in parallel (1..%d, default 2)\n"
            "  --log-level LEVEL          debug|info|warn|error (default info)\n"
            "  --version, --help\n"
            "env: CETCD_OPERATOR_FAILPOINT, CETCD_OPERATOR_FAILPOINT_FILE (tests only)\n",
            MAX_WORKERS);
}

static int parse_flags(int argc, char **argv, struct flags *f)
{
    enum { O_KC = 1, O_CTX, O_NS, O_MA, O_LE, O_LENS, O_LEID, O_W, O_LL, O_VER, O_HELP };
    static const struct option opts[] = {
        {"kubeconfig", required_argument, 0, O_KC}, {"context", required_argument, 0, O_CTX},
        {"namespace", required_argument, 0, O_NS}, {"metrics-addr", required_argument, 0, O_MA},
        {"leader-elect", optional_argument, 0, O_LE},
        {"leader-election-namespace", required_argument, 0, O_LENS},
        {"leader-election-id", required_argument, 0, O_LEID},
        {"workers", required_argument, 0, O_W}, {"log-level", required_argument, 0, O_LL},
        {"version", no_argument, 0, O_VER}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
    *f = (struct flags){.metrics_addr = ":8080", .log_level = "info", .le_id = "cetcd-operator",
                        .workers = 2};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_KC: f->kubeconfig = optarg; break;
        case O_CTX: f->context = optarg; break;
        case O_NS: f->ns = *optarg ? optarg : NULL; break;
        case O_MA: f->metrics_addr = optarg; break;
        case O_LE: f->leader_elect = !optarg || !strcmp(optarg, "true"); break;
        case O_LENS: f->le_namespace = optarg; break;
        case O_LEID: f->le_id = optarg; break;
        case O_W: f->workers = atoi(optarg); break;
        case O_LL: f->log_level = optarg; break;
        case O_VER: printf("cetcd-operator %s\n", CETCD_VERSION); exit(0);
        case O_HELP: case 'h': usage(stdout); exit(0);
        default: usage(stderr); return CE_INVAL;
        }
    }
    if (optind < argc || f->workers < 1 || f->workers > MAX_WORKERS) {
        usage(stderr);
        return CE_INVAL;
    }
    return 0;
}

static int load_config(const struct flags *f, struct k8s_config **cfg)
{
    if (f->kubeconfig)
        return k8s_config_load(f->kubeconfig, f->context, cfg);
    if (getenv("KUBERNETES_SERVICE_HOST"))
        return k8s_config_in_cluster(cfg);
    char path[4096];
    const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
    if (env && *env)
        snprintf(path, sizeof path, "%s", env);
    else
        snprintf(path, sizeof path, "%s/.kube/config", home ? home : "");
    return k8s_config_load(path, f->context, cfg);
}

/* ---- work queue feeding ---- */

static void enqueue(struct proc *p, const char *ns, const char *name)
{
    char key[512];
    if (!ns || !name)
        return;
    snprintf(key, sizeof key, "%s/%s", ns, name);
    wq_add(p->queue, key);
}

static void enqueue_cluster(void *ctx, const cJSON *obj, bool deleted)
{
    (void)deleted;
    enqueue(ctx, k8s_str(obj, "metadata", "namespace", NULL),
            k8s_str(obj, "metadata", "name", NULL));
}

/* an owned object: its cluster is the app.kubernetes.io/instance label */
static void enqueue_owner(void *ctx, const cJSON *obj, bool deleted)
{
    (void)deleted;
    enqueue(ctx, k8s_str(obj, "metadata", "namespace", NULL),
            k8s_str(obj, "metadata", "labels", "app.kubernetes.io/instance", NULL));
}

static void record_pass(metrics *m, const struct op_result *r, const struct timespec *t0,
                        const struct timespec *t1)
{
    char labels[128];
    double secs = (double)(t1->tv_sec - t0->tv_sec) + (double)(t1->tv_nsec - t0->tv_nsec) / 1e9;
    metrics_labels(labels, sizeof labels, "controller", CONTROLLER, "result",
                   r->error ? "error" : r->requeue_ms && r->requeue_ms < 30000 ? "requeue_after"
                                                                              : "success",
                   NULL);
    metrics_counter_add(m, M_RECONCILE_TOTAL, labels, 1);
    metrics_labels(labels, sizeof labels, "controller", CONTROLLER, NULL);
    metrics_observe(m, M_RECONCILE_TIME, labels, secs);
    if (r->error)
        metrics_counter_add(m, M_RECONCILE_ERRORS, labels, 1);
}

static void *worker_main(void *arg)
{
    struct proc *p = arg;
    char *key;
    while (wq_get(p->queue, &key) == 0) {
        char *slash = strchr(key, '/');
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        *slash = 0;
        struct op_result r = op_reconcile(&p->op, key, slash + 1);
        *slash = '/';
        clock_gettime(CLOCK_MONOTONIC, &t1);
        record_pass(p->op.metrics, &r, &t0, &t1);
        if (r.error) {
            wq_add_rate_limited(p->queue, key);
        } else {
            wq_forget(p->queue, key);
            if (r.requeue_ms)
                wq_add_after(p->queue, key, r.requeue_ms);
        }
        wq_done(p->queue, key);
        free(key);
    }
    return NULL;
}

/* ---- controllers ---- */

static int informer(struct proc *p, const struct k8s_res *r, const char *sel, k8s_notify_fn fn,
                    k8s_informer **out)
{
    int rc = k8s_informer_new(p->op.k8s, r, p->f.ns, sel, fn, p, out);
    return rc ? rc : k8s_informer_start(*out);
}

/* Waits for every cache's first list. SIGTERM/SIGINT stay pending meanwhile (the main thread
 * takes signals with sigwait), so the wait checks for them between one-second waits. */
static bool wait_synced(struct proc *p)
{
    k8s_informer *const infs[] = {p->op.clusters, p->op.sts, p->op.pods, p->op.pvcs,
                                  p->op.cms,      p->op.cronjobs, p->op.jobs};
    for (size_t i = 0; i < sizeof infs / sizeof infs[0]; i++) {
        while (!k8s_informer_wait_synced(infs[i], 1000)) {
            sigset_t pend;
            sigpending(&pend);
            if (sigismember(&pend, SIGTERM) || sigismember(&pend, SIGINT))
                return false;
        }
    }
    return true;
}

static int start_controllers(struct proc *p)
{
    struct op *o = &p->op;
    int rc = informer(p, &K8S_ETCDCLUSTERS, NULL, enqueue_cluster, &o->clusters);
    if (!rc)
        rc = informer(p, &K8S_STATEFULSETS, OP_MANAGED_SELECTOR, enqueue_owner, &o->sts);
    if (!rc)
        rc = informer(p, &K8S_CONFIGMAPS, OP_MANAGED_SELECTOR, enqueue_owner, &o->cms);
    if (!rc)
        rc = informer(p, &K8S_PODS, OP_POD_SELECTOR, enqueue_owner, &o->pods);
    if (!rc)
        rc = informer(p, &K8S_PVCS, OP_POD_SELECTOR, enqueue_owner, &o->pvcs);
    if (!rc)
        rc = informer(p, &K8S_CRONJOBS, OP_MANAGED_SELECTOR, enqueue_owner, &o->cronjobs);
    if (!rc)
        rc = informer(p, &K8S_JOBS, OP_MANAGED_SELECTOR, enqueue_owner, &o->jobs);
    if (rc)
        return rc;
    if (!wait_synced(p))
        return 0; /* a stop signal is pending: wait_signals takes it */
    olog(OLOG_INFO, "caches synced; starting workers", "workers", OLOG_I64(p->f.workers), NULL);
    for (; p->n_workers < p->f.workers; p->n_workers++)
        if (pthread_create(&p->workers[p->n_workers], NULL, worker_main, p))
            return CE_NOMEM;
    httpd_set_ready(p->http, true);
    return 0;
}

static void stop_controllers(struct proc *p)
{
    struct op *o = &p->op;
    wq_shutdown(p->queue);
    for (int i = 0; i < p->n_workers; i++)
        pthread_join(p->workers[i], NULL);
    k8s_informer_free(o->clusters);
    k8s_informer_free(o->sts);
    k8s_informer_free(o->cms);
    k8s_informer_free(o->pods);
    k8s_informer_free(o->pvcs);
    k8s_informer_free(o->cronjobs);
    k8s_informer_free(o->jobs);
}

/* ---- leader election ---- */

static void on_started(void *ctx)
{
    struct proc *p = ctx;
    olog(OLOG_INFO, "became leader", "lease", p->f.le_id, NULL);
    atomic_store(&p->leading, true);
    kill(getpid(), SIGUSR1); /* the main thread starts the controllers */
}

static void on_lost(void *ctx)
{
    struct proc *p = ctx;
    olog(OLOG_ERROR, "leader election lost: exiting, another replica may be acting", "lease",
         p->f.le_id, NULL);
    _exit(1); /* as controller-runtime: no further write may race the new leader */
}

static const char *le_namespace(const struct flags *f, const struct k8s_config *cfg)
{
    if (f->le_namespace)
        return f->le_namespace;
    if (getenv("POD_NAMESPACE"))
        return getenv("POD_NAMESPACE");
    return cfg->namespace ? cfg->namespace : "cetcd-system";
}

static int start_election(struct proc *p, const struct k8s_config *cfg)
{
    char host[256], identity[320];
    if (gethostname(host, sizeof host))
        snprintf(host, sizeof host, "unknown");
    /* The pod name alone: a restarted container (the previous one has exited) resumes its
     * own Lease at once instead of waiting for it to expire. */
    if (getenv("POD_NAME"))
        snprintf(identity, sizeof identity, "%s", getenv("POD_NAME"));
    else
        snprintf(identity, sizeof identity, "%s_%ld", host, (long)getpid());
    struct leader_opts lo = {.namespace = le_namespace(&p->f, cfg), .name = p->f.le_id,
                             .identity = identity, .on_started = on_started,
                             .on_lost = on_lost, .arg = p, .metrics = p->op.metrics};
    int rc = leader_new(p->op.k8s, &lo, &p->le);
    return rc ? rc : leader_start(p->le);
}

/* ---- main ---- */

static int wait_signals(struct proc *p, const sigset_t *set)
{
    for (;;) {
        int sig;
        if (sigwait(set, &sig))
            continue;
        if (sig == SIGUSR1 && !atomic_load(&p->stop)) {
            int rc = start_controllers(p);
            if (rc)
                return rc;
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            olog(OLOG_INFO, "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
            return 0;
        }
    }
}

static int run(struct proc *p, const struct k8s_config *cfg, const sigset_t *set)
{
    int rc = httpd_start(p->f.metrics_addr, p->op.metrics, &p->http);
    if (rc) {
        olog(OLOG_ERROR, "cannot listen", "addr", p->f.metrics_addr, NULL);
        return rc;
    }
    if (p->f.leader_elect)
        rc = start_election(p, cfg);
    else
        rc = start_controllers(p);
    if (!rc)
        rc = wait_signals(p, set);
    atomic_store(&p->stop, true);
    stop_controllers(p);
    atomic_store(&p->stop, false); /* workers are gone: let the Lease release go through */
    if (p->le) {
        leader_stop(p->le, !atomic_load(&p->lost));
        leader_free(p->le);
    }
    httpd_stop(p->http);
    return rc;
}

int main(int argc, char **argv)
{
    static struct proc p;
    struct k8s_config *cfg = NULL;
    enum olog_level lvl;
    sigset_t set;
    if (parse_flags(argc, argv, &p.f))
        return 2;
    if (olog_parse_level(p.f.log_level, &lvl)) {
        fprintf(stderr, "cetcd-operator: invalid --log-level %s\n", p.f.log_level);
        return 2;
    }
    olog_set_level(lvl);
    olog_set_default_logger("cetcd-operator");
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = load_config(&p.f, &cfg);
    if (rc) {
        olog(OLOG_ERROR, "kubernetes configuration", "error", k8s_errmsg(), NULL);
        return 1;
    }
    rc = metrics_new(&p.op.metrics);
    if (!rc)
        rc = metrics_register_operator(p.op.metrics);
    if (!rc)
        rc = k8s_client_new(cfg, &p.op.k8s);
    struct wq_opts wo = {.name = CONTROLLER, .metrics = p.op.metrics};
    if (!rc)
        rc = wq_new(&wo, &p.queue);
    if (!rc) {
        p.op.stop = &p.stop;
        k8s_client_set_stop(p.op.k8s, &p.stop);
        olog(OLOG_INFO, "starting", "version", CETCD_VERSION, "server", cfg->server,
             "namespace", p.f.ns ? p.f.ns : "(all)", NULL);
        rc = run(&p, cfg, &set);
    }
    wq_free(p.queue);
    k8s_client_free(p.op.k8s);
    k8s_config_free(cfg);
    metrics_free(p.op.metrics);
    olog(OLOG_INFO, "stopped", NULL);
    return rc || atomic_load(&p.lost) ? 1 : 0;
}
