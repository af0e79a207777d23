/*
 * backup.c: spec.backup in one reconcile pass (operator.h: op_backup, op_backup_events).
 *
 * Objects: with spec.backup, the claim C-backup (unless storage.existingClaim names another) is
 * created once and never changed or deleted by the operator (backups outlive the cluster; a
 * resize is the user's), and the CronJob C-backup is created or patched to the built one
 * (controller/resources/backup.c); without spec.backup an existing CronJob C-backup is deleted
 * (its Jobs with it). Reads come from the caches, so a steady cluster costs no writes.
 *
 * On-demand backups: the annotation cetcd.io/backup-now: <token> on the EtcdCluster asks for one
 * backup per token. When the token differs from status.backup.handledRequest, the operator
 * creates the Job C-backup-now-<hash of token> from the CronJob's template, then records the
 * token (status is written at the end of the pass). The Job's name is a function of the token,
 * so a pass that created it and stopped before recording the token finds it at the next pass
 * (AlreadyExists, same token annotation) and only records it. A paused cluster gets no new Job.
 *
 * Status: status.backup is computed by backup_status_build (backup.h) from this cluster's backup
 * Jobs (label app.kubernetes.io/instance=C, component=backup) and their pods, both from the
 * caches; op_backup_events posts an Event for each new record.
 */
#include "operator.h"

#include <stdio.h>
#include <string.h>

#include "backup.h"
#include "err.h"
#include "runtime/olog.h"

#define TOKEN_MAX 253

static int ensure_claim(struct op *op, const struct ec_spec *s)
{
    char name[EC_NAME_MAX];
    cJSON *have, *want;
    int rc;

    if (s->backup.existing_claim)
        return 0;
    have = k8s_informer_get(op->pvcs, s->ns, ec_backup_name(s, name, sizeof(name)));
    if (have) {
        cJSON_Delete(have);
        return 0;
    }
    if (!(want = ec_build_backup_pvc(s)))
        return CE_NOMEM;
    rc = k8s_create(op->k8s, &K8S_PVCS, s->ns, want, NULL);
    olog(rc && rc != CE_EXISTS ? OLOG_ERROR : OLOG_INFO, rc ? "create failed" : "created", "kind",
         "PersistentVolumeClaim", "namespace", s->ns, "name", name, "error",
         rc ? k8s_errmsg() : "", NULL);
    cJSON_Delete(want);
    return rc == CE_EXISTS ? 0 : rc;
}

/* The CronJob C-backup if it is this cluster's (its owner reference names our uid). */
static cJSON *our_cronjob(struct op *op, const struct ec_spec *s)
{
    char name[EC_NAME_MAX];
    cJSON *cj = k8s_informer_get(op->cronjobs, s->ns, ec_backup_name(s, name, sizeof(name)));
    const cJSON *r;

    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(cj, "metadata"),
                              "ownerReferences")) {
        const char *uid = k8s_str(r, "uid", NULL);
        if (uid && !strcmp(uid, s->uid))
            return cj;
    }
    cJSON_Delete(cj);
    return NULL;
}

static int ensure_cronjob(struct op *op, const struct ec_spec *s, const cJSON *cj)
{
    char name[EC_NAME_MAX];
    int rc;

    if (s->backup.enabled)
        return op_ensure_object(op, &K8S_CRONJOBS, s->ns, ec_build_backup_cronjob(s), cj);
    if (!cj)
        return 0;
    rc = k8s_delete(op->k8s, &K8S_CRONJOBS, s->ns, ec_backup_name(s, name, sizeof(name)),
                    k8s_str(cj, "metadata", "uid", NULL));
    olog(rc && rc != CE_NOTFOUND ? OLOG_ERROR : OLOG_INFO,
         "deleted the backup CronJob (spec.backup is gone)", "namespace", s->ns, "name", name,
         "error", rc ? k8s_errmsg() : "", NULL);
    return rc == CE_NOTFOUND ? 0 : rc;
}

/* The Job of request `token` exists already: ours (same token) or another request's. */
static bool job_has_token(struct op *op, const struct ec_spec *s, const char *token)
{
    char name[EC_NAME_MAX];
    cJSON *job = NULL;
    bool same;

    if (k8s_get(op->k8s, &K8S_JOBS, s->ns, ec_backup_job_name(s, token, name, sizeof(name)),
                &job))
        return false;
    same = k8s_str(job, "metadata", "annotations", EC_BACKUP_NOW_ANNOTATION, NULL) &&
           !strcmp(k8s_str(job, "metadata", "annotations", EC_BACKUP_NOW_ANNOTATION, NULL),
                   token);
    cJSON_Delete(job);
    return same;
}

/* Makes the Job of a new backup-now token; *handled = the token once it needs no more work. */
static int backup_now(struct op *op, const struct ec_spec *s, struct op_observed *o,
                      const cJSON *cj, const char **handled)
{
    const char *token = k8s_str(o->cluster, "metadata", "annotations", EC_BACKUP_NOW_ANNOTATION,
                                NULL);
    const char *done = k8s_str(o->cluster, "status", "backup", "handledRequest", NULL);
    const char *uid = k8s_str(cj, "metadata", "uid", NULL);
    char name[EC_NAME_MAX], msg[512];
    cJSON *job;
    int rc;

    if (!token || !token[0] || (done && !strcmp(done, token)))
        return 0;
    *handled = token;
    if (!s->backup.enabled || strlen(token) > TOKEN_MAX) {
        k8s_event(op->k8s, o->cluster, "Warning", "BackupRequestIgnored",
                  !s->backup.enabled ? "annotation " EC_BACKUP_NOW_ANNOTATION " is set but "
                                       "spec.backup is not: there is no backup to run"
                                     : "annotation " EC_BACKUP_NOW_ANNOTATION ": the token is "
                                       "longer than 253 characters",
                  OP_COMPONENT);
        return 0;
    }
    if (!uid) {
        *handled = NULL; /* the CronJob is not in the cache yet: its arrival queues a pass */
        return 0;
    }
    if (!(job = ec_build_backup_job(s, token, uid)))
        return CE_NOMEM;
    ec_backup_job_name(s, token, name, sizeof(name));
    rc = k8s_create(op->k8s, &K8S_JOBS, s->ns, job, NULL);
    cJSON_Delete(job);
    if (rc == CE_EXISTS && !job_has_token(op, s, token)) {
        snprintf(msg, sizeof(msg), "annotation %s: %s: a Job %s of another request already "
                 "exists; delete it or use another token", EC_BACKUP_NOW_ANNOTATION, token, name);
        k8s_event(op->k8s, o->cluster, "Warning", "BackupRequestIgnored", msg, OP_COMPONENT);
        return 0;
    }
    if (rc && rc != CE_EXISTS) {
        *handled = NULL;
        olog(OLOG_ERROR, "backup job create failed", "namespace", s->ns, "name", name, "error",
             k8s_errmsg(), NULL);
        return rc;
    }
    if (!rc) {
        snprintf(msg, sizeof(msg), "started backup job %s for request %s", name, token);
        olog(OLOG_INFO, msg, "cluster", s->name, "namespace", s->ns, NULL);
        k8s_event(op->k8s, o->cluster, "Normal", "BackupRequested", msg, OP_COMPONENT);
    }
    return 0;
}

/* This cluster's backup Jobs, and the pods that may be theirs, from the caches. */
static void backup_jobs(struct op *op, const struct ec_spec *s, cJSON **jobs, cJSON **pods)
{
    cJSON *all = k8s_informer_list(op->jobs, s->ns, "app.kubernetes.io/instance", s->name);
    cJSON *j = all ? all->child : NULL;

    while (j) {
        cJSON *next = j->next;
        const char *comp = k8s_str(j, "metadata", "labels", "app.kubernetes.io/component", NULL);
        if (!comp || strcmp(comp, "backup"))
            cJSON_Delete(cJSON_DetachItemViaPointer(all, j));
        j = next;
    }
    *jobs = all;
    *pods = k8s_informer_list(op->pods, s->ns, "app.kubernetes.io/component", "backup");
}

int op_backup(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    const char *handled = NULL;
    cJSON *cj = our_cronjob(op, s), *jobs, *pods;
    int rc = 0;

    if (!s->paused) {
        rc = s->backup.enabled ? ensure_claim(op, s) : 0;
        if (!rc)
            rc = ensure_cronjob(op, s, cj);
        if (!rc)
            rc = backup_now(op, s, o, cj, &handled);
    }
    backup_jobs(op, s, &jobs, &pods);
    o->backup = backup_status_build(cJSON_GetObjectItemCaseSensitive(
                                        cJSON_GetObjectItemCaseSensitive(o->cluster, "status"),
                                        "backup"),
                                    jobs, pods, handled);
    cJSON_Delete(jobs);
    cJSON_Delete(pods);
    cJSON_Delete(cj);
    return rc;
}

static bool new_record(const cJSON *old, const cJSON *now, const char *kind)
{
    const char *nj = k8s_str(now, kind, "job", NULL), *oj = k8s_str(old, kind, "job", NULL);
    return nj && (!oj || strcmp(nj, oj));
}

void op_backup_events(struct op *op, const struct op_observed *o, const cJSON *old,
                      const cJSON *now)
{
    char msg[1024];

    if (new_record(old, now, "lastSuccess")) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(now, "lastSuccess");
        const cJSON *rev = cJSON_GetObjectItemCaseSensitive(r, "revision");
        if (k8s_str(r, "file", NULL))
            snprintf(msg, sizeof(msg), "job %s saved %s (revision %.0f)",
                     k8s_str(r, "job", NULL), k8s_str(r, "file", NULL),
                     cJSON_IsNumber(rev) ? rev->valuedouble : 0.0);
        else
            snprintf(msg, sizeof(msg), "job %s completed", k8s_str(r, "job", NULL));
        k8s_event(op->k8s, o->cluster, "Normal", "BackupCompleted", msg, OP_COMPONENT);
    }
    if (new_record(old, now, "lastFailure")) {
        snprintf(msg, sizeof(msg), "job %s failed: %s", k8s_str(now, "lastFailure", "job", NULL),
                 k8s_str(now, "lastFailure", "message", NULL)
                     ? k8s_str(now, "lastFailure", "message", NULL)
                     : "");
        olog(OLOG_WARN, "backup failed", "namespace", k8s_str(o->cluster, "metadata",
                                                               "namespace", NULL),
             "cluster", k8s_str(o->cluster, "metadata", "name", NULL), "error", msg, NULL);
        k8s_event(op->k8s, o->cluster, "Warning", "BackupFailed", msg, OP_COMPONENT);
    }
}
