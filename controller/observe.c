/*
 * observe.c: one pass's view of a cluster, from the informer caches and from cetcd itself.
 *
 * Kubernetes side (caches only, no API calls): the StatefulSet's spec.replicas, each pod
 * C-<i> (exists, ready, terminating), each PVC data-C-<i> (exists, uid), and the bootstrap
 * entries in ConfigMap C-members. cetcd side: MemberList through the client URLs of the pods
 * that may run (ordinals below max(replicas, entries)), then Status from every member to learn
 * whether it answers, who leads, and how far each member's log is. A member is healthy when
 * its Status answers and names a leader. A learner is caught up when its log is within 10% (and
 * at least 100 entries) of the leader's, the rule cetcd and etcd apply to MemberPromote.
 * The data identity of an ordinal is its PVC's uid, or with emptyDir the pod's uid: a change
 * of identity under a joined entry means the member's data is gone.
 */
#include "operator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "err.h"

static bool pod_ready(const cJSON *pod)
{
    const cJSON *conds = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(pod, "status"), "conditions");
    const cJSON *c;
    cJSON_ArrayForEach(c, conds) {
        const char *t = k8s_str(c, "type", NULL), *st = k8s_str(c, "status", NULL);
        if (t && st && !strcmp(t, "Ready"))
            return !strcmp(st, "True");
    }
    return false;
}

static void observe_pods(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    char name[128];
    for (int i = 0; i < PLAN_MAX; i++) {
        ec_pod_name(s, i, name, sizeof name);
        cJSON *pod = k8s_informer_get(op->pods, s->ns, name);
        struct plan_pod *pp = &o->in.pods[i];
        o->pods[i] = pod;
        if (!pod)
            continue;
        pp->exists = true;
        pp->ready = pod_ready(pod);
        pp->terminating = k8s_str(pod, "metadata", "deletionTimestamp", NULL) != NULL;
        if (s->empty_dir && k8s_str(pod, "metadata", "uid", NULL))
            snprintf(pp->data_uid, sizeof pp->data_uid, "%s", k8s_str(pod, "metadata", "uid", NULL));
    }
}

static void observe_pvcs(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    char name[128];
    for (int i = 0; i < PLAN_MAX; i++) {
        ec_pvc_name(s, i, name, sizeof name);
        cJSON *pvc = k8s_informer_get(op->pvcs, s->ns, name);
        if (!pvc)
            continue;
        bool gone = k8s_str(pvc, "metadata", "deletionTimestamp", NULL) != NULL;
        o->in.pvc_exists[i] = true;
        if (!s->empty_dir && !gone && k8s_str(pvc, "metadata", "uid", NULL))
            snprintf(o->in.pods[i].data_uid, sizeof o->in.pods[i].data_uid, "%s",
                     k8s_str(pvc, "metadata", "uid", NULL));
        cJSON_Delete(pvc);
    }
}

static void observe_entries(const struct ec_spec *s, struct op_observed *o)
{
    char name[128];
    for (int i = 0; i < PLAN_MAX; i++) {
        const char *v = k8s_str(o->cm, "data", ec_pod_name(s, i, name, sizeof name), NULL);
        struct bootstrap_entry e;
        char err[128];
        if (!v || bootstrap_entry_parse(v, strlen(v), &e, err, sizeof err))
            continue;
        struct plan_entry *pe = &o->in.entries[i];
        pe->present = true;
        pe->state_new = e.state_new;
        pe->joined = e.joined;
        pe->member_id = e.member_id;
        snprintf(pe->data_uid, sizeof pe->data_uid, "%s", e.data_uid ? e.data_uid : "");
        bootstrap_entry_clear(&e);
    }
}

int op_endpoint_count(const struct op_observed *o)
{
    int n = o->in.sts_replicas > 0 ? o->in.sts_replicas : 0;
    for (int i = 0; i < PLAN_MAX; i++)
        if ((o->in.entries[i].present || o->in.pods[i].exists) && i + 1 > n)
            n = i + 1;
    return n;
}

static void copy_member(const struct ec_spec *s, const struct cetcd_member *m, struct op_member *om)
{
    memset(om, 0, sizeof *om);
    om->id = m->id;
    snprintf(om->name, sizeof om->name, "%s", m->name ? m->name : "");
    if (m->n_peer_urls)
        snprintf(om->peer_url, sizeof om->peer_url, "%s", m->peer_urls[0]);
    if (m->n_client_urls)
        snprintf(om->client_url, sizeof om->client_url, "%s", m->client_urls[0]);
    om->ordinal = ec_ordinal_of_peer_url(s, om->peer_url);
    om->learner = m->is_learner;
    if (!om->client_url[0] && om->ordinal >= 0)
        ec_client_url(s, om->ordinal, om->client_url, sizeof om->client_url);
}

static void observe_status(cetcd_client *c, struct op_observed *o, struct op_member *om)
{
    struct cetcd_status_resp st = {0};
    if (!om->client_url[0] || cetcd_status(c, om->client_url, &st))
        return;
    om->healthy = st.leader != 0;
    om->raft_index = st.raft_index;
    if (st.leader) {
        o->leader_id = st.leader;
        o->cluster_id = st.header.cluster_id;
    }
    cetcd_status_resp_free(&st);
}

static bool caught_up(const struct op_observed *o, const struct op_member *m)
{
    const struct op_member *leader = NULL;
    for (size_t i = 0; i < o->n_members; i++)
        if (o->members[i].id == o->leader_id)
            leader = &o->members[i];
    if (!leader || !m->healthy || !leader->raft_index)
        return false;
    uint64_t slack = leader->raft_index / 10 > 100 ? leader->raft_index / 10 : 100;
    return m->raft_index + slack >= leader->raft_index;
}

static void fill_plan_members(struct op_observed *o)
{
    for (size_t i = 0; i < o->n_members; i++) {
        struct op_member *m = &o->members[i];
        struct plan_member *pm = &o->in.members[i];
        m->leader = m->id == o->leader_id;
        pm->id = m->id;
        pm->ordinal = m->ordinal;
        pm->started = m->name[0] != 0;
        pm->learner = m->learner;
        pm->healthy = m->healthy;
        pm->leader = m->leader;
        pm->caught_up = m->learner && caught_up(o, m);
    }
    o->in.n_members = o->n_members;
}

static void observe_members(const struct ec_spec *s, struct op_observed *o)
{
    int n = op_endpoint_count(o);
    cetcd_client *c = NULL;
    struct cetcd_member_resp ml = {0};
    if (n == 0 || op_cetcd_client(s, o, n, &c))
        return;
    if (cetcd_member_list(c, &ml)) {
        snprintf(o->member_error, sizeof o->member_error, "%s", cetcd_client_errmsg(c));
        if (strstr(o->member_error, ce_strerror(CE_INVALID_TOKEN)))
            op_token_forget(s);
        goto out_client;
    }
    o->in.members_known = true;
    for (size_t i = 0; i < ml.n_members && o->n_members < PLAN_MAX * 2; i++)
        copy_member(s, &ml.members[i], &o->members[o->n_members++]);
    for (size_t i = 0; i < o->n_members; i++)
        observe_status(c, o, &o->members[i]);
    fill_plan_members(o);
    cetcd_member_resp_free(&ml);
out_client:
    cetcd_client_free(c);
}

int op_observe(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    char name[128];
    o->in.size = s->size;
    o->sts = k8s_informer_get(op->sts, s->ns, s->name);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(o->sts, "spec"), "replicas");
    o->in.sts_replicas = o->sts ? (cJSON_IsNumber(r) ? r->valueint : 1) : -1;
    o->cm = k8s_informer_get(op->cms, s->ns, ec_configmap_name(s, name, sizeof name));
    observe_pods(op, s, o);
    observe_pvcs(op, s, o);
    observe_entries(s, o);
    observe_members(s, o);
    return 0;
}

void op_observed_clear(struct op_observed *o)
{
    cJSON_Delete(o->cluster);
    cJSON_Delete(o->sts);
    cJSON_Delete(o->cm);
    for (int i = 0; i < PLAN_MAX; i++)
        cJSON_Delete(o->pods[i]);
    cJSON_Delete(o->backup);
    cJSON_Delete(o->restore);
    op_security_clear(&o->sec);
    memset(o, 0, sizeof *o);
}
