/*
 * reconcile.c: one pass over one EtcdCluster.
 *
 * Order: read the EtcdCluster from the cache (gone or being deleted: nothing to do, owner
 * references clean up) -> parse and validate its spec (invalid: status says why, no other
 * change) -> observe the StatefulSet, pods, PVCs, bootstrap entries and cetcd's members (a
 * spec.restore the cluster was not created from is refused like an invalid spec) -> ensure
 * the Services, PDB, ConfigMap and StatefulSet template -> ask the planner for the next single
 * step -> carry it out -> backups: the CronJob, the claim, an on-demand Job, status.backup
 * (backup.c; a failure there is reported but does not stop the membership work) -> the
 * restore's progress and data check (restore.c) -> write status if it changed. The TLS
 * Secrets and root's password are read (and issued) before anything talks to the members, and
 * authentication is enabled once the cluster has converged (security.c). A paused
 * cluster is observed and its status kept, but nothing else is written. The pass returns
 * when to look again: soon while a step is under way or a restore is not yet verified, on a
 * slow resync when converged (cetcd's health is not in Kubernetes, so it must be polled), with
 * backoff after an error.
 */
#include "operator.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "runtime/olog.h"

#define REQUEUE_STEP_MS 300
#define REQUEUE_WAIT_MS 1500
#define REQUEUE_QUORUM_MS 5000
#define RESYNC_MS 30000

static void invalid_spec(struct op *op, const cJSON *cluster, const char *ns, const char *name,
                         const char *why)
{
    const char *phase = k8s_str(cluster, "status", "phase", NULL);
    if (phase && !strcmp(phase, "Invalid"))
        return;
    olog(OLOG_ERROR, "invalid spec", "cluster", name, "namespace", ns, "error", why, NULL);
    k8s_event(op->k8s, cluster, "Warning", "InvalidSpec", why, OP_COMPONENT);
    cJSON *patch = cJSON_CreateObject();
    cJSON *st = cJSON_AddObjectToObject(patch, "status");
    cJSON_AddStringToObject(st, "phase", "Invalid");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "type", "Degraded");
    cJSON_AddStringToObject(c, "status", "True");
    cJSON_AddStringToObject(c, "reason", "InvalidSpec");
    cJSON_AddStringToObject(c, "message", why);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(st, "conditions"), c);
    k8s_patch_status(op->k8s, &K8S_ETCDCLUSTERS, ns, name, patch, NULL);
    cJSON_Delete(patch);
}

static long requeue_for(const struct plan_step *st, const struct op_observed *o)
{
    const char *restore = k8s_str(o->restore, "phase", NULL);

    if (restore && !strcmp(restore, "Restoring"))
        return st->action == PLAN_NONE || st->action == PLAN_QUORUM_LOST ? REQUEUE_WAIT_MS
                                                                        : REQUEUE_STEP_MS;
    if (restore && !strcmp(restore, "Failed") && st->action == PLAN_NONE)
        return REQUEUE_QUORUM_MS;
    switch (st->action) {
    case PLAN_NONE:
        return RESYNC_MS;
    case PLAN_WAIT:
        return REQUEUE_WAIT_MS;
    case PLAN_QUORUM_LOST:
        return REQUEUE_QUORUM_MS;
    default:
        return REQUEUE_STEP_MS;
    }
}

static struct op_result reconcile_spec(struct op *op, const struct ec_spec *s,
                                       struct op_observed *o)
{
    struct op_result res = {0};
    struct plan_step st;
    char why[512];
    op_security_prepare(op, s, o); /* a bad Secret shows in condition Secured */
    op_observe(op, s, o);
    if (op_restore_refused(s, o, why, sizeof why)) {
        invalid_spec(op, o->cluster, s->ns, s->name, why);
        return res;
    }
    int rc = s->paused ? 0 : op_ensure_objects(op, s, o);
    if (rc)
        return (struct op_result){.error = true};
    plan_next(&o->in, &st);
    if (!s->paused && st.action != PLAN_NONE && st.action != PLAN_WAIT &&
        st.action != PLAN_QUORUM_LOST) {
        olog(OLOG_INFO, "step", "cluster", s->name, "namespace", s->ns, "action",
             plan_action_name(st.action), "reason", st.reason ? st.reason : "",
             "message", st.message ? st.message : "", NULL);
        rc = op_execute(op, s, o, &st);
    }
    if (!s->paused)
        op_auth_ensure(op, s, o, &st);
    int brc = op_backup(op, s, o);
    op_restore_status(s, o, &st);
    op_write_status(op, s, o, &st);
    res.requeue_ms = requeue_for(&st, o);
    res.error = rc != 0 || brc != 0;
    return res;
}

struct op_result op_reconcile(struct op *op, const char *ns, const char *name)
{
    struct op_observed o = {0};
    struct ec_spec s = {0};
    struct op_result res = {0};
    char err[256];
    o.cluster = k8s_informer_get(op->clusters, ns, name);
    if (!o.cluster)
        goto out; /* deleted: owner references remove what it owned */
    if (k8s_str(o.cluster, "metadata", "deletionTimestamp", NULL))
        goto out;
    if (ec_spec_parse(o.cluster, &s, err, sizeof err)) {
        invalid_spec(op, o.cluster, ns, name, err);
        goto out;
    }
    res = reconcile_spec(op, &s, &o);
    ec_spec_clear(&s);
out:
    op_observed_clear(&o);
    return res;
}
