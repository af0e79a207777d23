/*
 * operator.h: what the reconciler shares with main.c, and the reconciler's inner steps.
 *
 * main.c owns one `struct op` for the process: the Kubernetes client, one informer cache per
 * watched resource (EtcdClusters, and the StatefulSets, ConfigMaps, CronJobs and Jobs the
 * operator owns, selected by label app.kubernetes.io/managed-by=cetcd-operator; pods and PVCs,
 * members' and backups' alike, by app.kubernetes.io/name=cetcd), the work queue of cluster keys
 * ("ns/name") and the metrics. Workers call op_reconcile for one key at a time; the queue guarantees no key is
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
    k8s_informer *clusters, *sts, *pods, *pvcs, *cms, *cronjobs, *jobs;
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

/* spec.tls / spec.auth for one pass (security.c): the operator's client credentials, root's
 * password, and what the condition Secured says. */
struct op_security {
    char *ca, *cert, *key;       /* PEM of the client Secret (spec.tls), or NULL */
    char *password;              /* root's (spec.auth), or NULL */
    const char *reason;          /* condition Secured: its reason (NULL without tls and auth) */
    bool ok;                     /* Secured=True */
    bool auth_known;             /* op_auth_ensure reached the members and set the verdict */
    char message[256];
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
    cJSON *backup;               /* the new status.backup (backup.c), NULL if none */
    cJSON *restore;              /* the new status.restore (restore.c), NULL if none */
    struct op_security sec;      /* credentials and the Secured condition (security.c) */
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
/* Create `want` (taken) when missing, merge-patch it when its owned fields differ from the live
 * object (`cached`, or a GET when NULL); nothing when equal (ensure.c). */
int op_ensure_object(struct op *op, const struct k8s_res *r, const char *ns, cJSON *want,
                     const cJSON *cached);

/* backups (backup.c): the backup claim and CronJob as spec.backup says (the CronJob deleted
 * without it), the Job of a new cetcd.io/backup-now token, and o->backup. Paused: o->backup
 * only. */
int op_backup(struct op *op, const struct ec_spec *s, struct op_observed *o);
/* Events for what changed between two status.backup objects: BackupCompleted (Normal) for a
 * new lastSuccess, BackupFailed (Warning) for a new lastFailure. */
void op_backup_events(struct op *op, const struct op_observed *o, const cJSON *old,
                      const cJSON *now);

/* restores (restore.c) */
/* spec.restore set on a cluster that was not created from it: true, with the reason. */
bool op_restore_refused(const struct ec_spec *s, const struct op_observed *o, char *why,
                        size_t n);
/* The SEED step makes every member from the snapshot (execute.c): spec.restore, no entry yet
 * and the restore not yet verified. */
bool op_restore_seeding(const struct ec_spec *s, const struct op_observed *o);
/* o->restore: the restore's progress, and once the cluster has converged (step NONE) the
 * check that every member holds the same data (HashKV). */
void op_restore_status(const struct ec_spec *s, struct op_observed *o,
                       const struct plan_step *st);
/* Events for a status.restore change: Restored (Normal), RestoreFailed (Warning). */
void op_restore_events(struct op *op, const struct op_observed *o, const cJSON *old,
                       const cJSON *now);
/* A cetcd client for the members' client URLs (endpoints of pods 0..n-1), with the pass's
 * client certificate and, where needed, a token for root (security.c). */
int op_cetcd_client(const struct ec_spec *s, const struct op_observed *o, int n,
                    cetcd_client **out);

/* How many member endpoints a pass may call: pods 0..n-1 that exist or have an entry. */
int op_endpoint_count(const struct op_observed *o);

/* security (security.c) */
/* Issues the Secrets spec.tls.caSecret asks for when missing, loads the client certificate
 * and root's password into o->sec. A missing or bad Secret: o->sec says why, CE_* returned. */
int op_security_prepare(struct op *op, const struct ec_spec *s, struct op_observed *o);
/* With spec.auth, once the cluster has converged (step NONE): root exists with the Secret's
 * password and the root role, and authentication is enabled. Sets o->sec. */
void op_auth_ensure(struct op *op, const struct ec_spec *s, struct op_observed *o,
                    const struct plan_step *st);
void op_security_clear(struct op_security *sec);
/* Drops the cached root token of this cluster (a member refused it). */
void op_token_forget(const struct ec_spec *s);

#endif
