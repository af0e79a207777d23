/*
 * status.c: the EtcdCluster's status, written only when it changes.
 *
 * Status is computed from the pass's observation and the planner's step: phase (Creating,
 * Restoring, Scaling, Healing, Running, Degraded, Paused), the member table, leader, clusterID,
 * size, readyMembers (healthy voting members), the label selector for the scale subresource,
 * status.backup and status.restore (computed by backup.c and restore.c), and three conditions:
 * Available (a leader and a healthy quorum), Progressing (a step is under way; reason and
 * message from the planner) and Degraded (quorum lost or a member unhealthy), plus
 * BackupSucceeded with spec.backup (backup.h) and Secured with spec.tls or spec.auth (TLS
 * Secrets in place, authentication on: security.c).
 * Messages hold no volatile numbers, so a steady cluster's status is byte-for-byte stable; a
 * condition keeps its lastTransitionTime while its status is unchanged. The new status is
 * compared with the cached one and patched (merge patch on /status, absent keys nulled) only
 * when different. A condition newly turning Degraded=True/QuorumLost posts a Warning Event, and
 * so do new backup records and restore outcomes (op_backup_events, op_restore_events).
 */
#include "operator.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backup.h"
#include "err.h"
#include "runtime/metrics.h"
#include "runtime/olog.h"

struct cond {
    const char *type, *status, *reason;
    char message[768];
};

/* status.restore.phase is `phase` */
static bool restore_is(const struct op_observed *o, const char *phase)
{
    const char *p = k8s_str(o->restore, "phase", NULL);
    return p && !strcmp(p, phase);
}

static const char *phase_of(const struct ec_spec *s, const struct plan_step *st,
                            const struct op_observed *o)
{
    if (s->paused)
        return "Paused";
    if (restore_is(o, "Restoring"))
        return "Restoring"; /* members start together: no quorum until they all have */
    if (st->action == PLAN_QUORUM_LOST || restore_is(o, "Failed"))
        return "Degraded";
    if (!o->leader_id)
        return o->n_members ? "Degraded" : "Creating";
    if (st->action == PLAN_NONE)
        return "Running";
    if (st->action == PLAN_SEED)
        return "Creating";
    if (st->reason && (!strcmp(st->reason, "Replacing") || !strcmp(st->reason, "Healing")))
        return "Healing";
    return "Scaling";
}

static void count(const struct op_observed *o, int *voters, int *healthy, int *unhealthy)
{
    *voters = *healthy = *unhealthy = 0;
    for (size_t i = 0; i < o->n_members; i++) {
        const struct op_member *m = &o->members[i];
        if (!m->learner) {
            (*voters)++;
            *healthy += m->healthy;
        }
        *unhealthy += !m->healthy;
    }
}

static void conditions(const struct ec_spec *s, const struct op_observed *o,
                       const struct plan_step *st, struct cond c[3])
{
    int voters, healthy, unhealthy;
    count(o, &voters, &healthy, &unhealthy);
    bool avail = o->leader_id && voters && healthy >= voters / 2 + 1;
    c[0] = (struct cond){"Available", avail ? "True" : "False",
                         avail ? "QuorumHealthy" : (o->n_members ? "NoQuorum" : "NoMembers")};
    snprintf(c[0].message, sizeof c[0].message, "%d of %d voting members healthy", healthy,
             voters);
    bool starting = st->action == PLAN_QUORUM_LOST && restore_is(o, "Restoring");
    bool busy = st->action != PLAN_NONE && (st->action != PLAN_QUORUM_LOST || starting) &&
                !s->paused;
    c[1] = (struct cond){"Progressing", busy ? "True" : "False",
                         s->paused  ? "Paused"
                         : starting ? "Restoring"
                         : busy     ? (st->reason ? st->reason : "Reconciling")
                                    : "Reconciled"};
    snprintf(c[1].message, sizeof c[1].message, "%s",
             s->paused  ? "spec.paused is true: the operator makes no changes"
             : starting ? "the members are starting from the snapshot"
             : busy     ? (st->message ? st->message : plan_action_name(st->action))
                        : "members match spec.size");
    bool lost = st->action == PLAN_QUORUM_LOST && !restore_is(o, "Restoring");
    bool mismatch = restore_is(o, "Failed");
    c[2] = (struct cond){"Degraded", lost || unhealthy || mismatch ? "True" : "False",
                         lost       ? "QuorumLost"
                         : mismatch ? "RestoreDataMismatch"
                         : unhealthy ? "MemberUnhealthy"
                                     : "AllMembersHealthy"};
    if (mismatch)
        snprintf(c[2].message, sizeof c[2].message, "%s",
                 k8s_str(o->restore, "message", NULL) ? k8s_str(o->restore, "message", NULL)
                                                      : "the restored members' data differ");
    else if (lost)
        snprintf(c[2].message, sizeof c[2].message,
                 "only %d of %d voting members healthy: no membership change until quorum "
                 "returns; restore the failed members (see the recovery guide)",
                 healthy, voters);
    else
        snprintf(c[2].message, sizeof c[2].message, "%d of %zu members unhealthy", unhealthy,
                 o->n_members);
}

/* Secured (spec.tls / spec.auth): what security.c found, or pending until it could tell. */
static void secured_condition(const struct ec_spec *s, const struct op_observed *o,
                              struct cond *c)
{
    const struct op_security *sec = &o->sec;
    bool auth_unknown = s->auth.root_secret && sec->ok && !sec->auth_known;

    c->type = "Secured";
    if (!sec->reason || auth_unknown) {
        c->status = "False";
        c->reason = "AuthPending";
        snprintf(c->message, sizeof c->message, "%s",
                 "authentication is enabled once every member has joined");
        return;
    }
    c->status = sec->ok ? "True" : "False";
    c->reason = sec->reason;
    snprintf(c->message, sizeof c->message, "%s", sec->message);
}

static const cJSON *old_condition(const cJSON *old_status, const char *type)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(old_status, "conditions")) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "type");
        if (cJSON_IsString(t) && !strcmp(t->valuestring, type))
            return c;
    }
    return NULL;
}

static void now_rfc3339(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void add_condition(cJSON *arr, const struct cond *c, const cJSON *old_status,
                          long long gen)
{
    const cJSON *old = old_condition(old_status, c->type);
    const cJSON *os = cJSON_GetObjectItemCaseSensitive(old, "status");
    const cJSON *ot = cJSON_GetObjectItemCaseSensitive(old, "lastTransitionTime");
    char ts[32];
    if (cJSON_IsString(os) && !strcmp(os->valuestring, c->status) && cJSON_IsString(ot))
        snprintf(ts, sizeof ts, "%s", ot->valuestring);
    else
        now_rfc3339(ts, sizeof ts);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", c->type);
    cJSON_AddStringToObject(j, "status", c->status);
    cJSON_AddStringToObject(j, "reason", c->reason);
    cJSON_AddStringToObject(j, "message", c->message);
    cJSON_AddStringToObject(j, "lastTransitionTime", ts);
    cJSON_AddNumberToObject(j, "observedGeneration", (double)gen);
    cJSON_AddItemToArray(arr, j);
}

static void add_members(cJSON *st, const struct ec_spec *s, const struct op_observed *o)
{
    cJSON *arr = cJSON_AddArrayToObject(st, "members");
    for (size_t i = 0; i < o->n_members; i++) {
        const struct op_member *m = &o->members[i];
        char id[17], pod[128];
        snprintf(id, sizeof id, "%016" PRIx64, m->id);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", m->ordinal >= 0
                                               ? ec_pod_name(s, m->ordinal, pod, sizeof pod)
                                               : m->name);
        cJSON_AddStringToObject(j, "id", id);
        cJSON_AddStringToObject(j, "peerURL", m->peer_url);
        cJSON_AddStringToObject(j, "clientURL", m->client_url);
        cJSON_AddBoolToObject(j, "isLearner", m->learner);
        cJSON_AddBoolToObject(j, "isLeader", m->leader);
        cJSON_AddBoolToObject(j, "healthy", m->healthy);
        cJSON_AddItemToArray(arr, j);
        if (m->leader)
            cJSON_AddStringToObject(st, "leader", cJSON_GetObjectItem(j, "name")->valuestring);
    }
}

static cJSON *build_status(const struct ec_spec *s, const struct op_observed *o,
                           const struct plan_step *st, const cJSON *old)
{
    struct cond c[5];
    int nc = 3;
    int voters, healthy, unhealthy;
    char buf[128];
    count(o, &voters, &healthy, &unhealthy);
    conditions(s, o, st, c);
    if (s->backup.enabled) {
        c[nc].type = BACKUP_CONDITION;
        backup_condition(o->backup, &c[nc].status, &c[nc].reason, c[nc].message,
                         sizeof(c[nc].message));
        nc++;
    }
    if (s->tls.enabled || s->auth.root_secret)
        secured_condition(s, o, &c[nc++]);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "observedGeneration", (double)s->generation);
    cJSON_AddStringToObject(j, "phase", phase_of(s, st, o));
    cJSON_AddNumberToObject(j, "size", (double)o->n_members);
    cJSON_AddStringToObject(j, "selector", ec_selector_string(s, buf, sizeof buf));
    if (o->cluster_id) {
        snprintf(buf, sizeof buf, "%016" PRIx64, o->cluster_id);
        cJSON_AddStringToObject(j, "clusterID", buf);
    }
    add_members(j, s, o);
    cJSON_AddNumberToObject(j, "readyMembers", healthy);
    if (o->backup)
        cJSON_AddItemToObject(j, "backup", cJSON_Duplicate(o->backup, true));
    if (o->restore)
        cJSON_AddItemToObject(j, "restore", cJSON_Duplicate(o->restore, true));
    cJSON *arr = cJSON_AddArrayToObject(j, "conditions");
    for (int i = 0; i < nc; i++)
        add_condition(arr, &c[i], old, s->generation);
    return j;
}

static bool quorum_newly_lost(const cJSON *old, const cJSON *now)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(old_condition(old, "Degraded"), "reason");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(old_condition(now, "Degraded"), "reason");
    return cJSON_IsString(n) && !strcmp(n->valuestring, "QuorumLost") &&
           !(cJSON_IsString(o) && !strcmp(o->valuestring, "QuorumLost"));
}

static void export_gauges(metrics *m, const struct ec_spec *s, const cJSON *st)
{
    char labels[256];
    metrics_labels(labels, sizeof labels, "namespace", s->ns, "cluster", s->name, NULL);
    metrics_gauge_set(m, M_CLUSTER_MEMBERS, labels, cJSON_GetObjectItem(st, "size")->valuedouble);
    metrics_gauge_set(m, M_CLUSTER_READY, labels,
                      cJSON_GetObjectItem(st, "readyMembers")->valuedouble);
    const cJSON *avail = cJSON_GetObjectItemCaseSensitive(old_condition(st, "Available"), "status");
    metrics_gauge_set(m, M_CLUSTER_QUORUM, labels,
                      cJSON_IsString(avail) && !strcmp(avail->valuestring, "True"));
    double t;
    if (backup_time_seconds(k8s_str(st, "backup", "lastSuccess", "time", NULL), &t))
        metrics_gauge_set(m, M_BACKUP_LAST_SUCCESS, labels, t);
    if (backup_time_seconds(k8s_str(st, "backup", "lastFailure", "time", NULL), &t))
        metrics_gauge_set(m, M_BACKUP_LAST_FAILURE, labels, t);
}

/* merge patch body: the new status with every owned key it lacks set to null */
static cJSON *status_patch(cJSON *st)
{
    static const char *const owned[] = {"leader", "clusterID", "backup", "restore"};
    cJSON *patch = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (!cJSON_GetObjectItemCaseSensitive(st, owned[i]))
            cJSON_AddNullToObject(st, owned[i]);
    cJSON_AddItemToObject(patch, "status", st);
    return patch;
}

int op_write_status(struct op *op, const struct ec_spec *s, const struct op_observed *o,
                    const struct plan_step *step)
{
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(o->cluster, "status");
    cJSON *st = build_status(s, o, step, old);
    export_gauges(op->metrics, s, st);
    if (old && cJSON_Compare(st, old, true)) {
        cJSON_Delete(st);
        return 0;
    }
    if (quorum_newly_lost(old, st))
        k8s_event(op->k8s, o->cluster, "Warning", "QuorumLost",
                  cJSON_GetObjectItem(old_condition(st, "Degraded"), "message")->valuestring,
                  OP_COMPONENT);
    op_backup_events(op, o, cJSON_GetObjectItemCaseSensitive(old, "backup"), o->backup);
    op_restore_events(op, o, cJSON_GetObjectItemCaseSensitive(old, "restore"), o->restore);
    cJSON *patch = status_patch(st);
    int rc = k8s_patch_status(op->k8s, &K8S_ETCDCLUSTERS, s->ns, s->name, patch, NULL);
    if (rc)
        olog(OLOG_WARN, "status write failed", "cluster", s->name, "namespace", s->ns, "error",
             k8s_errmsg(), NULL);
    cJSON_Delete(patch);
    return rc;
}
