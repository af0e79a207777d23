/*
 * operator.h: what the reconciler shares with main.c, and the reconciler's inner steps.
 *
 * main.c owns one `struct op` for the process: the Kubernetes client, one informer cache per
 * watched resource (EtcdClusters, and the StatefulSets, pods, PVCs and ConfigMaps the operator
 * owns, selected by label app.kubernetes.io/managed-by=cetcd-operator or, for pods and PVCs,
 * app.kubernetes.io/name=cetcd), the work queue of cluster keys ("ns/name") and the
 * metrics. Workers call op_reconcile for one key at a time; the queue guarantees no key is
 * reconciled by two workers at once. A pass reads only from the caches and from cetcd,
 * writes to the API server only what differs from the desired state, performs at most one
 * membership step (plan.h), and returns how soon the key should be looked at again.
 */
#ifndef CETCD_OPERATOR_H
#define CETCD_OPERATOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "k8s/k8s.h"
#include "plan.h"
#include "resources/resources.h"
#include "runtime/metrics.h"
#include "client/cetcd_client.h"

#define OP_COMPONENT "cetcd-operator"
#define OP_MANAGED_SELECTOR "app.kubernetes.io/managed-by=cetcd-operator"
#define OP_POD_SELECTOR "app.kubernetes.io/name=cetcd"

struct op {
    k8s_client *k8s;
    k8s_informer *clusters, *sts, *pods, *pvcs, *cms;
    metrics *metrics;
    atomic_bool *stop;
};

/* One observed member of the cetcd cluster (from MemberList and each member's Status). */
struct op_member {
    uint64_t id;
    char name[64];
    char peer_url[256];
    char client_url[256];
    int ordinal;
    bool learner, healthy, leader;
    uint64_t raft_index;
};

/* Everything a pass observed; filled by op_observe, released by op_observed_clear. */
struct op_observed {
    struct plan_input in;
    cJSON *cluster;              /* the EtcdCluster (cache copy) */
    cJSON *sts, *cm;             /* cache copies, NULL if absent */
    cJSON *pods[PLAN_MAX];       /* by ordinal, NULL if absent */
    struct op_member members[PLAN_MAX * 2];
    size_t n_members;
    uint64_t cluster_id, leader_id;
    char member_error[256];      /* why the member list could not be read */
};

/* Result of one pass: when to look again (0 = only on the next change event). */
struct op_result {
    long requeue_ms;
    bool error;
};

struct op_result op_reconcile(struct op *op, const char *ns, const char *name);

/* inner steps (observe.c, ensure.c, execute.c, status.c) */
int op_observe(struct op *op, const struct ec_spec *s, struct op_observed *o);
void op_observed_clear(struct op_observed *o);
int op_ensure_objects(struct op *op, const struct ec_spec *s, struct op_observed *o);
int op_execute(struct op *op, const struct ec_spec *s, struct op_observed *o,
               const struct plan_step *st);
int op_write_status(struct op *op, const struct ec_spec *s, const struct op_observed *o,
                    const struct plan_step *st);
/* A cetcd client for the members' client URLs (endpoints of pods 0..n-1). */
int op_cetcd_client(const struct ec_spec *s, int n, cetcd_client **out);

#endif
