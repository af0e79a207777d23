/*
 * restore.c: spec.restore in one reconcile pass (operator.h: op_restore_*).
 *
 * A cluster with spec.restore {claimName, file} starts every member from the snapshot file: the
 * SEED step (execute.c) writes the bootstrap entries of all spec.size members at once
 * (initial-cluster-state=new, initial-cluster = all of them, restore-from=/restore/<file>) and
 * creates the StatefulSet with that many replicas; the pods mount the claim read-only at
 * /restore (resources/build.c) and each member restores the file into its empty data
 * directory before it starts (cetcd --bootstrap-dir, server/node/restore.h). From there the
 * usual reconcile takes over: MARK_JOINED rewrites each entry without restore-from.
 *
 * status.restore {claimName, file, phase, revision, clusterID, message}:
 *   Restoring  members are starting; message: why a member's container last exited, from its
 *              termination message (the cetcd container falls back to its log tail), if any
 *   Restored   the cluster converged and every member's HashKV at one revision is equal;
 *              revision (that revision) and clusterID recorded; final: never recomputed
 *   Failed     converged, but the members' hashes differ at one revision (message: each
 *              member's hash); checked again on each pass
 * Once Restored, status.restore stays, even after spec.restore is removed (which only drops the
 * claim from the pods, rolling them); removed before that, the record goes with it.
 * spec.restore on a cluster that was not created from it (no status.restore, a StatefulSet or
 * entry 0 already there, and entry 0 without restore-from) is refused: the CRD only allows
 * spec.restore at creation; an API server without CEL lets it through, and the operator then
 * marks the spec Invalid rather than act on a half-understood cluster.
 */
#include "operator.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "backup.h"
#include "bootstrap.h"
#include "err.h"
#include "runtime/olog.h"

static const cJSON *old_restore(const struct op_observed *o)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o->cluster, "status"),
                                            "restore");
}

static const char *old_phase(const struct op_observed *o)
{
    return k8s_str(old_restore(o), "phase", NULL);
}

/* Entry 0 carries restore-from: the cluster was seeded from the snapshot. */
static bool seeded_from_snapshot(const struct ec_spec *s, const struct op_observed *o)
{
    char pod[EC_NAME_MAX], err[128];
    const char *v = k8s_str(o->cm, "data", ec_pod_name(s, 0, pod, sizeof(pod)), NULL);
    struct bootstrap_entry e;
    bool yes;

    if (!v || bootstrap_entry_parse(v, strlen(v), &e, err, sizeof(err)))
        return false;
    yes = e.restore_from != NULL;
    bootstrap_entry_clear(&e);
    return yes;
}

bool op_restore_refused(const struct ec_spec *s, const struct op_observed *o, char *why,
                        size_t n)
{
    if (!s->restore.claim_name || old_phase(o))
        return false;
    if (!o->sts && !o->in.entries[0].present)
        return false;
    if (seeded_from_snapshot(s, o))
        return false;
    snprintf(why, n, "spec.restore: this cluster already exists and was not created from a "
             "snapshot; a restore makes a new cluster: create a new EtcdCluster with "
             "spec.restore (and remove spec.restore from this one)");
    return true;
}

bool op_restore_seeding(const struct ec_spec *s, const struct op_observed *o)
{
    const char *ph = old_phase(o);

    return s->restore.claim_name && !o->in.entries[0].present && !(ph && !strcmp(ph, "Restored"));
}

/* ---- the data check ---- */

struct hashes {
    int n;
    char name[PLAN_MAX][EC_NAME_MAX];
    int64_t rev[PLAN_MAX];
    uint32_t hash[PLAN_MAX];
};

/* HashKV at `rev` (0 = the current revision) on every member; 0 or the failure in msg. */
static int hash_all(cetcd_client *c, const struct ec_spec *s, const struct op_observed *o,
                    int64_t rev, struct hashes *h, char *msg, size_t n)
{
    h->n = 0;
    for (size_t i = 0; i < o->n_members && h->n < PLAN_MAX; i++) {
        const struct op_member *m = &o->members[i];
        struct cetcd_hash_kv_resp r = {0};
        int rc = cetcd_hash_kv(c, m->client_url, rev, &r);
        if (m->ordinal >= 0)
            ec_pod_name(s, m->ordinal, h->name[h->n], sizeof(h->name[h->n]));
        else
            snprintf(h->name[h->n], sizeof(h->name[h->n]), "%s", m->name);
        if (rc)
            snprintf(msg, n, "checking the members' data: HashKV at %s: %s", h->name[h->n],
                     cetcd_client_errmsg(c));
        h->rev[h->n] = r.header.revision;
        h->hash[h->n++] = r.hash;
        cetcd_hash_kv_resp_free(&r);
        if (rc)
            return rc;
    }
    return 0;
}

/* The lowest revision the members answered at, and whether they all answered at it. */
static int64_t lowest_revision(const struct hashes *h, bool *all_same)
{
    int64_t lo = h->n ? h->rev[0] : 0;

    *all_same = true;
    for (int i = 1; i < h->n; i++) {
        *all_same &= h->rev[i] == h->rev[0];
        lo = h->rev[i] < lo ? h->rev[i] : lo;
    }
    return lo;
}

/* 0 if every hash is the first one's, else CE_CORRUPT and each member's hash in msg. */
static int compare_hashes(const struct hashes *h, int64_t rev, char *msg, size_t n)
{
    size_t off;
    int i = 1;

    while (i < h->n && h->hash[i] == h->hash[0])
        i++;
    if (i >= h->n)
        return 0;
    off = (size_t)snprintf(msg, n, "the members' data differ after the restore: at revision "
                           "%" PRId64, rev);
    for (int k = 0; k < h->n && off < n; k++)
        off += (size_t)snprintf(msg + off, n - off, "%s %s hash %08" PRIx32, k ? "," : ":",
                                h->name[k], h->hash[k]);
    return CE_CORRUPT;
}

/* 0: every member has the same hash at one revision (*rev); CE_CORRUPT: they differ (msg says
 * how); another code: the check could not be made (msg says why). When writes came between the
 * answers (different revisions), every member is asked again at the lowest one. */
static int check_data(const struct ec_spec *s, const struct op_observed *o, int64_t *rev,
                      char *msg, size_t n)
{
    cetcd_client *c = NULL;
    struct hashes h;
    bool same;
    int rc = op_cetcd_client(s, o, s->size, &c);

    if (rc) {
        snprintf(msg, n, "checking the members' data: no client");
        return rc;
    }
    rc = hash_all(c, s, o, 0, &h, msg, n);
    *rev = rc ? 0 : lowest_revision(&h, &same);
    if (!rc && !same)
        rc = hash_all(c, s, o, *rev, &h, msg, n);
    cetcd_client_free(c);
    return rc ? rc : compare_hashes(&h, *rev, msg, n);
}

/* Why a member's container last exited (the cause in its termination message), if it did. */
static void member_exit_message(const struct ec_spec *s, const struct op_observed *o, char *msg,
                                size_t n)
{
    char cause[400];

    for (int i = 0; i < s->size && i < PLAN_MAX; i++) {
        const cJSON *cs = cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o->pods[i], "status"),
                                             "containerStatuses"), 0);
        const char *m = k8s_str(cs, "lastState", "terminated", "message", NULL);
        if (!m)
            m = k8s_str(cs, "state", "terminated", "message", NULL);
        if (!m)
            continue;
        backup_exit_cause(m, cause, sizeof(cause));
        if (cause[0]) {
            snprintf(msg, n, "%s-%d: %s", s->name, i, cause);
            return;
        }
    }
}

static cJSON *new_status(const struct ec_spec *s, const char *phase, int64_t rev,
                         uint64_t cluster_id, const char *msg)
{
    cJSON *r = cJSON_CreateObject();
    char id[17];

    cJSON_AddStringToObject(r, "claimName", s->restore.claim_name);
    cJSON_AddStringToObject(r, "file", s->restore.file);
    cJSON_AddStringToObject(r, "phase", phase);
    if (rev)
        cJSON_AddNumberToObject(r, "revision", (double)rev);
    if (cluster_id) {
        snprintf(id, sizeof(id), "%016" PRIx64, cluster_id);
        cJSON_AddStringToObject(r, "clusterID", id);
    }
    if (msg && msg[0])
        cJSON_AddStringToObject(r, "message", msg);
    return r;
}

void op_restore_status(const struct ec_spec *s, struct op_observed *o,
                       const struct plan_step *st)
{
    const char *ph = old_phase(o);
    char msg[512] = "";
    int64_t rev = 0;
    int rc;

    if (ph && !strcmp(ph, "Restored")) {
        o->restore = cJSON_Duplicate(old_restore(o), true);
        return;
    }
    if (!s->restore.claim_name)
        return; /* never set, or removed before the restore was verified: nothing to record */
    if (st->action != PLAN_NONE || (int)o->n_members != s->size) {
        member_exit_message(s, o, msg, sizeof(msg));
        o->restore = new_status(s, "Restoring", 0, 0, msg);
        return;
    }
    rc = check_data(s, o, &rev, msg, sizeof(msg));
    if (rc && rc != CE_CORRUPT)
        o->restore = new_status(s, "Restoring", 0, 0, msg);
    else
        o->restore = new_status(s, rc ? "Failed" : "Restored", rev, o->cluster_id,
                                rc ? msg : NULL);
}

static bool turned(const cJSON *old, const cJSON *now, const char *phase)
{
    const char *o = k8s_str(old, "phase", NULL), *n = k8s_str(now, "phase", NULL);
    return n && !strcmp(n, phase) && !(o && !strcmp(o, phase));
}

void op_restore_events(struct op *op, const struct op_observed *o, const cJSON *old,
                       const cJSON *now)
{
    char ev[768];
    const cJSON *rev = cJSON_GetObjectItemCaseSensitive(now, "revision");

    if (turned(old, now, "Restored")) {
        snprintf(ev, sizeof(ev), "restored from %s/%s: every member holds the same data at "
                 "revision %.0f (cluster ID %s)", k8s_str(now, "claimName", NULL),
                 k8s_str(now, "file", NULL), cJSON_IsNumber(rev) ? rev->valuedouble : 0.0,
                 k8s_str(now, "clusterID", NULL) ? k8s_str(now, "clusterID", NULL) : "?");
        k8s_event(op->k8s, o->cluster, "Normal", "Restored", ev, OP_COMPONENT);
    } else if (turned(old, now, "Failed")) {
        snprintf(ev, sizeof(ev), "%s", k8s_str(now, "message", NULL)
                                           ? k8s_str(now, "message", NULL)
                                           : "the restored members' data differ");
        olog(OLOG_ERROR, ev, "namespace", k8s_str(o->cluster, "metadata", "namespace", NULL),
             "cluster", k8s_str(o->cluster, "metadata", "name", NULL), NULL);
        k8s_event(op->k8s, o->cluster, "Warning", "RestoreFailed", ev, OP_COMPONENT);
    }
}
