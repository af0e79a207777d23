/*
 * execute.c: carries out the one membership step the planner chose.
 *
 * Each step is a single change in one place, so a crash between steps leaves a state the
 * planner recognises (plan.h): a cetcd call (MemberAdd as learner, MemberPromote, MoveLeader,
 * MemberRemove), one bootstrap entry in ConfigMap C-members (merge patch of one data key; null
 * deletes it), the StatefulSet's replicas (merge patch), or one deletion (pod, PVC). The only
 * two-write step is SEED (entry 0, then the StatefulSet with one replica); a crash between the
 * two is finished by the planner's "entry 0 present, StatefulSet missing" rule. A cluster made
 * from a snapshot (spec.restore, restore.c) is seeded with every member at once: the entries
 * of all spec.size members in one merge patch (each new, all of them in initial-cluster,
 * restore-from the snapshot), then the StatefulSet with spec.size replicas; the members start
 * together, each from its own copy of the snapshot. Failpoints
 * (failpoint.h) sit after MemberAdd, after a StatefulSet scale, after MemberRemove and before
 * MemberPromote. Every change that alters membership is also recorded as an Event on the
 * EtcdCluster and counted in cetcd_operator_membership_changes_total.
 */
#include "operator.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "err.h"
#include "runtime/failpoint.h"
#include "runtime/metrics.h"
#include "runtime/olog.h"

static void announce(struct op *op, const struct ec_spec *s, const struct op_observed *o,
                     const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void announce(struct op *op, const struct ec_spec *s, const struct op_observed *o,
                     const char *reason, const char *fmt, ...)
{
    char msg[512], labels[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    olog(OLOG_INFO, msg, "cluster", s->name, "namespace", s->ns, "reason", reason, NULL);
    k8s_event(op->k8s, o->cluster, "Normal", reason, msg, OP_COMPONENT);
    metrics_labels(labels, sizeof labels, "namespace", s->ns, "cluster", s->name, "action", reason,
                   NULL);
    metrics_counter_add(op->metrics, M_MEMBERSHIP_CHANGES, labels, 1);
}

static const struct op_member *member_by_id(const struct op_observed *o, uint64_t id)
{
    for (size_t i = 0; i < o->n_members; i++)
        if (o->members[i].id == id)
            return &o->members[i];
    return NULL;
}

/* "name=peerURL,..." of every member, unstarted ones named after their pod. */
static int initial_cluster(const struct ec_spec *s, const struct op_observed *o, char *buf,
                           size_t n)
{
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; i < o->n_members; i++) {
        const struct op_member *m = &o->members[i];
        char pod[128];
        const char *name = m->ordinal >= 0 ? ec_pod_name(s, m->ordinal, pod, sizeof pod) : m->name;
        int w = snprintf(buf + off, n - off, "%s%s=%s", off ? "," : "", name, m->peer_url);
        if (w < 0 || (size_t)w >= n - off)
            return CE_INVAL;
        off += (size_t)w;
    }
    return 0;
}

/* Entries e[0..n-1] of ordinals first..first+n-1 (e NULL: delete that one entry) in one
 * merge patch of the ConfigMap. */
static int patch_entries(struct op *op, const struct ec_spec *s, int first,
                         const struct bootstrap_entry *e, int n)
{
    char cm[128], pod[128];
    cJSON *patch = cJSON_CreateObject();
    cJSON *data = cJSON_AddObjectToObject(patch, "data");
    int rc = data ? 0 : CE_NOMEM;
    for (int i = 0; !rc && i < n; i++) {
        char *text = NULL;
        ec_pod_name(s, first + i, pod, sizeof pod);
        rc = e ? bootstrap_entry_format(&e[i], &text) : 0;
        if (!rc && !(text ? cJSON_AddStringToObject(data, pod, text)
                          : cJSON_AddNullToObject(data, pod)))
            rc = CE_NOMEM;
        free(text);
    }
    if (!rc)
        rc = k8s_patch(op->k8s, &K8S_CONFIGMAPS, s->ns, ec_configmap_name(s, cm, sizeof cm),
                       patch, NULL);
    cJSON_Delete(patch);
    return rc;
}

static int patch_entry(struct op *op, const struct ec_spec *s, int ordinal,
                       const struct bootstrap_entry *e)
{
    return patch_entries(op, s, ordinal, e, 1);
}

/* Every member's entry for a cluster made from a snapshot (restore.c); *replicas = their
 * number. */
static int write_restore_entries(struct op *op, const struct ec_spec *s, int *replicas)
{
    char ic[PLAN_MAX * 2 * EC_NAME_MAX], from[EC_NAME_MAX + 1100], pod[128], url[256];
    struct bootstrap_entry e[PLAN_MAX];
    size_t off = 0;
    int n = s->size < PLAN_MAX ? s->size : PLAN_MAX - 1;
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(ic + off, sizeof ic - off, "%s%s=%s", i ? "," : "",
                                ec_pod_name(s, i, pod, sizeof pod),
                                ec_peer_url(s, i, url, sizeof url));
    ec_restore_path(s, from, sizeof from);
    for (int i = 0; i < n; i++)
        e[i] = (struct bootstrap_entry){.state_new = true, .initial_cluster = ic,
                                        .restore_from = from};
    *replicas = n;
    return patch_entries(op, s, 0, e, n);
}

static int seed(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    char url[256], pod[128], ic[512];
    int rc, replicas = 1; /* a deleted StatefulSet comes back with every recorded member */
    bool restore = op_restore_seeding(s, o);
    ec_peer_url(s, 0, url, sizeof url);
    snprintf(ic, sizeof ic, "%s=%s", ec_pod_name(s, 0, pod, sizeof pod), url);
    struct bootstrap_entry e = {.state_new = true, .initial_cluster = ic,
                                .data_uid = o->in.pods[0].data_uid};
    if (restore)
        rc = write_restore_entries(op, s, &replicas);
    else
        rc = o->in.entries[0].present ? 0 : patch_entry(op, s, 0, &e);
    if (rc || o->sts)
        return rc;
    for (int i = 0; i < PLAN_MAX; i++)
        if (o->in.entries[i].present && i + 1 > replicas)
            replicas = i + 1;
    cJSON *sts = ec_build_statefulset(s, replicas);
    rc = k8s_create(op->k8s, &K8S_STATEFULSETS, s->ns, sts, NULL);
    cJSON_Delete(sts);
    if (!rc && restore)
        announce(op, s, o, "Restoring", "starting %d members from the snapshot %s/%s", replicas,
                 s->restore.claim_name, s->restore.file);
    else if (!rc)
        announce(op, s, o, "Bootstrapping", "starting %s as the first member", pod);
    return rc == CE_EXISTS ? 0 : rc;
}

/* Entry k: existing, every member, member k's id, and the volume present now: the "stamp" of
 * a replacement (plan.c: DELETE_POD) before the member joins, its data identity after. */
static int write_entry(struct op *op, const struct ec_spec *s, struct op_observed *o, int k,
                       bool joined)
{
    char ic[2048];
    int rc = initial_cluster(s, o, ic, sizeof ic);
    if (rc)
        return rc;
    struct bootstrap_entry e = {.state_new = false, .initial_cluster = ic, .joined = joined,
                                .data_uid = o->in.pods[k].data_uid};
    for (size_t i = 0; i < o->n_members; i++)
        if (o->members[i].ordinal == k)
            e.member_id = o->members[i].id;
    return patch_entry(op, s, k, &e);
}

/* Deletes pod k so it restarts from its new entry, then clears the entry's stamp so the
 * planner does not delete it again. */
static int restart_pod(struct op *op, const struct ec_spec *s, struct op_observed *o, int k)
{
    char pod[128], err[128];
    struct bootstrap_entry e;
    const char *v = k8s_str(o->cm, "data", ec_pod_name(s, k, pod, sizeof pod), NULL);
    int rc = k8s_delete(op->k8s, &K8S_PODS, s->ns, pod, NULL);
    if (rc && rc != CE_NOTFOUND)
        return rc;
    announce(op, s, o, "MemberRestarted", "restarted %s to join with its new entry", pod);
    if (!v || bootstrap_entry_parse(v, strlen(v), &e, err, sizeof err))
        return 0;
    free(e.data_uid);
    e.data_uid = NULL;
    rc = patch_entry(op, s, k, &e);
    bootstrap_entry_clear(&e);
    return rc;
}

static int scale_sts(struct op *op, const struct ec_spec *s, struct op_observed *o, int n)
{
    cJSON *patch = cJSON_CreateObject();
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(patch, "spec"), "replicas", n);
    int rc = k8s_patch(op->k8s, &K8S_STATEFULSETS, s->ns, s->name, patch, NULL);
    cJSON_Delete(patch);
    if (rc)
        return rc;
    announce(op, s, o, "ScaledStatefulSet", "StatefulSet %s scaled from %d to %d", s->name,
             o->in.sts_replicas, n);
    failpoint_hit("after-sts-scale");
    return 0;
}

static int cetcd_step(struct op *op, const struct ec_spec *s, struct op_observed *o,
                      const struct plan_step *st)
{
    cetcd_client *c = NULL;
    struct cetcd_member_resp mr = {0};
    struct cetcd_header_resp hr = {0};
    char url[256], pod[128];
    int n = o->in.sts_replicas > 0 ? o->in.sts_replicas : 1;
    int rc = op_cetcd_client(s, o, n > st->ordinal + 1 ? n : st->ordinal + 1, &c);
    if (rc)
        return rc;
    if (st->ordinal >= 0)
        ec_pod_name(s, st->ordinal, pod, sizeof pod);
    else
        snprintf(pod, sizeof pod, "%016" PRIx64, st->member_id);
    switch (st->action) {
    case PLAN_ADD_LEARNER: {
        const char *urls[1] = {ec_peer_url(s, st->ordinal, url, sizeof url)};
        rc = cetcd_member_add(c, urls, 1, true, &mr);
        if (!rc) {
            announce(op, s, o, "MemberAdded", "added %s as a learner (member %016" PRIx64 ")",
                     pod, mr.member.id);
            failpoint_hit("after-member-add");
        }
        break;
    }
    case PLAN_PROMOTE:
        failpoint_hit("before-promote");
        rc = cetcd_member_promote(c, st->member_id, &mr);
        if (!rc)
            announce(op, s, o, "MemberPromoted", "promoted %s to voting member", pod);
        break;
    case PLAN_MOVE_LEADER: {
        const struct op_member *from = member_by_id(o, st->member_id);
        const struct op_member *to = member_by_id(o, st->target_id);
        rc = from ? cetcd_move_leader(c, from->client_url, st->target_id, &hr) : CE_NOTFOUND;
        if (!rc)
            announce(op, s, o, "LeaderMoved", "moved leadership from %s to %s", pod,
                     to ? to->name : "?");
        break;
    }
    case PLAN_REMOVE_MEMBER:
        rc = cetcd_member_remove(c, st->member_id, &mr);
        if (!rc) {
            announce(op, s, o, "MemberRemoved", "removed %s (member %016" PRIx64 ")", pod,
                     st->member_id);
            failpoint_hit("after-member-remove");
        }
        break;
    default:
        rc = CE_INVAL;
    }
    if (rc)
        olog(OLOG_WARN, "cetcd call failed", "cluster", s->name, "namespace", s->ns, "step",
             plan_action_name(st->action), "error", cetcd_client_errmsg(c), NULL);
    cetcd_member_resp_free(&mr);
    cetcd_header_resp_free(&hr);
    cetcd_client_free(c);
    return rc;
}

static int delete_one(struct op *op, const struct k8s_res *r, const struct ec_spec *s,
                      const char *name)
{
    int rc = k8s_delete(op->k8s, r, s->ns, name, NULL);
    olog(OLOG_INFO, "deleted", "kind", r->kind, "namespace", s->ns, "name", name, NULL);
    return rc == CE_NOTFOUND ? 0 : rc;
}

int op_execute(struct op *op, const struct ec_spec *s, struct op_observed *o,
               const struct plan_step *st)
{
    char name[128];
    switch (st->action) {
    case PLAN_SEED:
        return seed(op, s, o);
    case PLAN_WRITE_ENTRY:
        return write_entry(op, s, o, st->ordinal, false);
    case PLAN_MARK_JOINED:
        return write_entry(op, s, o, st->ordinal, true);
    case PLAN_DELETE_ENTRY:
        return patch_entry(op, s, st->ordinal, NULL);
    case PLAN_SCALE_STS:
        return scale_sts(op, s, o, st->replicas);
    case PLAN_DELETE_PVC:
        return delete_one(op, &K8S_PVCS, s, ec_pvc_name(s, st->ordinal, name, sizeof name));
    case PLAN_DELETE_POD:
        return restart_pod(op, s, o, st->ordinal);
    case PLAN_ADD_LEARNER:
    case PLAN_PROMOTE:
    case PLAN_MOVE_LEADER:
    case PLAN_REMOVE_MEMBER:
        return cetcd_step(op, s, o, st);
    default:
        return 0;
    }
}
