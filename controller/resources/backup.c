/*
 * backup.c: the backup objects of one EtcdCluster (spec.backup), their names, the cron schedule
 * check, and the restore path (spec.restore).
 *
 * For cluster C in namespace N with spec.backup:
 *   CronJob C-backup   owned by the EtcdCluster (deleted with it); schedule and suspend from the
 *                      spec, timeZone Etc/UTC, concurrencyPolicy Forbid, history 3 succeeded /
 *                      1 failed; each Job: backoffLimit 1, activeDeadlineSeconds 3600 (a run
 *                      that hangs ends as a failure), one pod running, on the cluster's image,
 *                        cetcdctl --endpoints=http://C.N.svc:2379 snapshot save --dir /backup
 *                          --prefix C --retention R --result-file /dev/termination-log
 *                      (https:// with spec.tls, the client certificate Secret at
 *                      /etc/cetcd/tls/client and ETCDCTL_CACERT/CERT/KEY naming it; with
 *                      spec.auth ETCDCTL_USER=root and ETCDCTL_PASSWORD from the root Secret)
 *                      with the backup claim at /backup (the CLI writes its one-line JSON
 *                      result, or {"error": ...}, to the termination log; the operator reads
 *                      it back from the pod's status: controller/backup.h)
 *   Job C-backup-now-<hash>  one per request token (annotation cetcd.io/backup-now), from the
 *                      same template, owned by the CronJob as `kubectl create job --from` does
 *   PVC C-backup       only without storage.existingClaim; NOT owned by the EtcdCluster:
 *                      backups must outlive the cluster they saved
 * Labels of all of them and of the backup pods: app.kubernetes.io/{name: cetcd, instance: C,
 * managed-by: cetcd-operator, component: backup}, never `cls`, so the client Service, the PDB
 * and the StatefulSet (selector cls + instance) never take a backup pod for a member.
 * Pure and deterministic like build.c: same spec, same bytes.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resources/build_int.h"

#define CLIENT_PORT 2379
#define BACKUP_MOUNT "/backup"
#define TERMINATION_LOG "/dev/termination-log"
#define JOB_BACKOFF_LIMIT 1
#define JOB_DEADLINE_SECONDS 3600
#define HISTORY_SUCCEEDED 3
#define HISTORY_FAILED 1

/* ---- names ---- */

const char *ec_backup_name(const struct ec_spec *s, char *buf, size_t n)
{
    snprintf(buf, n, "%s-backup", s->name);
    return buf;
}

const char *ec_backup_claim(const struct ec_spec *s, char *buf, size_t n)
{
    if (s->backup.existing_claim) {
        snprintf(buf, n, "%s", s->backup.existing_claim);
        return buf;
    }
    return ec_backup_name(s, buf, n);
}

/* 64-bit FNV-1a */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

const char *ec_backup_job_name(const struct ec_spec *s, const char *token, char *buf, size_t n)
{
    snprintf(buf, n, "%s-backup-now-%06x", s->name, (unsigned)(fnv1a(token) & 0xffffff));
    return buf;
}

const char *ec_restore_path(const struct ec_spec *s, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", EC_RESTORE_MOUNT, s->restore.file ? s->restore.file : "");
    return buf;
}

/* ---- cron schedules (the grammar of Kubernetes' parser, robfig/cron's standard one) ---- */

struct cron_field {
    const char *what;
    int lo, hi;
    const char *const *names; /* names[i] is value lo + i, or NULL */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct cron_field cron_fields[5] = {
    {"minute", 0, 59, NULL},     {"hour", 0, 23, NULL},         {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names}, {"day of week", 0, 6, day_names},
};

/* A decimal number at [p, end), or -1. */
static int cron_number(const char *p, const char *end)
{
    long v = 0;

    if (p == end)
        return -1;
    for (const char *q = p; q < end; q++)
        if (!isdigit((unsigned char)*q) || (v = v * 10 + (*q - '0')) > 1000)
            return -1;
    return (int)v;
}

/* A number or (for month and day of week) a three-letter name at [p, end): value or -1. */
static int cron_value(const struct cron_field *f, const char *p, const char *end)
{
    if (p < end && isdigit((unsigned char)*p))
        return cron_number(p, end);
    for (int i = 0; f->names && f->names[i]; i++)
        if (end - p == 3 && strncasecmp(p, f->names[i], 3) == 0)
            return f->lo + i;
    return -1;
}

static bool cron_fail(char *err, size_t errsz, const struct cron_field *f, const char *p,
                      const char *end, const char *why)
{
    snprintf(err, errsz, "%s \"%.*s\": %s", f->what, (int)(end - p), p, why);
    return false;
}

/* One element of a list: "*", "?", "a", "a-b", each optionally followed by "/step". */
static bool cron_range(const struct cron_field *f, const char *p, const char *end, char *err,
                       size_t errsz)
{
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *stop = slash ? slash : end;
    const char *dash = memchr(p, '-', (size_t)(stop - p));
    char why[64];
    int a, b;

    if (slash && cron_number(slash + 1, end) <= 0)
        return cron_fail(err, errsz, f, p, end, "the step must be a positive number");
    if (stop - p == 1 && (*p == '*' || *p == '?'))
        return true;
    a = cron_value(f, p, dash ? dash : stop);
    b = dash ? cron_value(f, dash + 1, stop) : a;
    if (a < 0 || b < 0)
        return cron_fail(err, errsz, f, p, end, f->names ? "not a number, a name, '*' or a range"
                                                         : "not a number, '*' or a range");
    snprintf(why, sizeof(why), "out of range (%d..%d)", f->lo, f->hi);
    if (a < f->lo || b > f->hi)
        return cron_fail(err, errsz, f, p, end, why);
    if (a > b)
        return cron_fail(err, errsz, f, p, end, "the range ends before it starts");
    return true;
}

static bool cron_list(const struct cron_field *f, const char *field, const char *end, char *err,
                      size_t errsz)
{
    const char *p = field;

    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (e == p)
            return cron_fail(err, errsz, f, field, end, "an empty list element");
        if (!cron_range(f, p, e, err, errsz))
            return false;
        if (!comma)
            break;
        p = comma + 1;
    }
    return true;
}

bool ec_cron_check(const char *expr, char *err, size_t errsz)
{
    static const char *const macros[] = {"@yearly", "@annually", "@monthly", "@weekly",
                                         "@daily", "@midnight", "@hourly", NULL};
    const char *p = expr;
    int nf = 0;

    for (int i = 0; macros[i]; i++)
        if (!strcmp(expr, macros[i]))
            return true;
    if (expr[0] == '@' || !strncmp(expr, "TZ=", 3) || !strncmp(expr, "CRON_TZ=", 8)) {
        snprintf(err, errsz, "use five fields (minute hour day-of-month month day-of-week, in "
                 "UTC) or one of @yearly, @monthly, @weekly, @daily, @hourly");
        return false;
    }
    while (*p) {
        const char *end;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        end = p + strcspn(p, " \t");
        if (nf == 5) {
            snprintf(err, errsz, "more than five fields");
            return false;
        }
        if (!cron_list(&cron_fields[nf++], p, end, err, errsz))
            return false;
        p = end;
    }
    if (nf != 5) {
        snprintf(err, errsz, "%d field%s: a schedule has five (minute hour day-of-month month "
                 "day-of-week)", nf, nf == 1 ? "" : "s");
        return false;
    }
    return true;
}

/* ---- builders ---- */

static void put_backup_labels(cJSON *m, const struct ec_spec *s, bool *ok)
{
    rb_str(m, "app.kubernetes.io/name", "cetcd", ok);
    rb_str(m, "app.kubernetes.io/instance", s->name, ok);
    rb_str(m, "app.kubernetes.io/managed-by", "cetcd-operator", ok);
    rb_str(m, "app.kubernetes.io/component", "backup", ok);
}

/* {apiVersion, kind, metadata{name, namespace, labels}} */
static cJSON *new_backup_object(const struct ec_spec *s, const char *api, const char *kind,
                                const char *name, cJSON **md, bool *ok)
{
    cJSON *o = rb_track(cJSON_CreateObject(), ok);

    rb_str(o, "apiVersion", api, ok);
    rb_str(o, "kind", kind, ok);
    *md = rb_obj(o, "metadata", ok);
    rb_str(*md, "name", name, ok);
    rb_str(*md, "namespace", s->ns, ok);
    put_backup_labels(rb_obj(*md, "labels", ok), s, ok);
    return o;
}

static void put_env_value(cJSON *env, const char *name, const char *value, bool *ok)
{
    cJSON *e = rb_push_obj(env, ok);

    rb_str(e, "name", name, ok);
    rb_str(e, "value", value, ok);
}

/* cetcdctl's ETCDCTL_* settings for a secured cluster: the client certificate (spec.tls) and
 * root's password from its Secret (spec.auth). Nothing for an open cluster. */
static void put_backup_env(cJSON *c, const struct ec_spec *s, bool *ok)
{
    cJSON *env, *e, *ref;

    if (!s->tls.enabled && !s->auth.root_secret)
        return;
    env = rb_arr(c, "env", ok);
    if (s->tls.enabled) {
        put_env_value(env, "ETCDCTL_CACERT", EC_TLS_MOUNT "/client/ca.crt", ok);
        put_env_value(env, "ETCDCTL_CERT", EC_TLS_MOUNT "/client/tls.crt", ok);
        put_env_value(env, "ETCDCTL_KEY", EC_TLS_MOUNT "/client/tls.key", ok);
    }
    if (!s->auth.root_secret)
        return;
    put_env_value(env, "ETCDCTL_USER", EC_ROOT_USER, ok);
    e = rb_push_obj(env, ok);
    rb_str(e, "name", "ETCDCTL_PASSWORD", ok);
    ref = rb_obj(rb_obj(e, "valueFrom", ok), "secretKeyRef", ok);
    rb_str(ref, "name", s->auth.root_secret, ok);
    rb_str(ref, "key", EC_ROOT_PASSWORD_KEY, ok);
}

static void put_backup_container(cJSON *containers, const struct ec_spec *s, bool *ok)
{
    cJSON *c = rb_push_obj(containers, ok), *args, *mounts;
    char buf[2 * EC_NAME_MAX];

    rb_str(c, "name", "backup", ok);
    rb_str(c, "image", s->image, ok);
    rb_push_str(rb_arr(c, "command", ok), "cetcdctl", ok);
    args = rb_arr(c, "args", ok);
    snprintf(buf, sizeof(buf), "--endpoints=%s://%s.%s.svc:%d", ec_scheme(s), s->name, s->ns,
             CLIENT_PORT);
    rb_push_str(args, buf, ok);
    rb_push_str(args, "snapshot", ok);
    rb_push_str(args, "save", ok);
    rb_push_str(args, "--dir", ok);
    rb_push_str(args, BACKUP_MOUNT, ok);
    rb_push_str(args, "--prefix", ok);
    rb_push_str(args, s->name, ok);
    rb_push_str(args, "--retention", ok);
    snprintf(buf, sizeof(buf), "%d", s->backup.retention);
    rb_push_str(args, buf, ok);
    rb_push_str(args, "--result-file", ok);
    rb_push_str(args, TERMINATION_LOG, ok);
    put_backup_env(c, s, ok);
    mounts = rb_arr(c, "volumeMounts", ok);
    rb_mount(mounts, "backup", BACKUP_MOUNT, false, ok);
    if (s->tls.enabled)
        rb_mount(mounts, "tls-client", EC_TLS_MOUNT "/client", true, ok);
    rb_str(c, "terminationMessagePath", TERMINATION_LOG, ok);
    rb_str(c, "terminationMessagePolicy", "FallbackToLogsOnError", ok);
    rb_container_security(c, ok);
}

/* The Job spec of every backup run (CronJob jobTemplate.spec, and the on-demand Jobs). */
static void put_job_spec(cJSON *spec, const struct ec_spec *s, bool *ok)
{
    char claim[EC_NAME_MAX];
    cJSON *tpl, *pod, *vol, *vols;

    rb_num(spec, "backoffLimit", JOB_BACKOFF_LIMIT, ok);
    rb_num(spec, "activeDeadlineSeconds", JOB_DEADLINE_SECONDS, ok);
    tpl = rb_obj(spec, "template", ok);
    put_backup_labels(rb_obj(rb_obj(tpl, "metadata", ok), "labels", ok), s, ok);
    pod = rb_obj(tpl, "spec", ok);
    rb_str(pod, "restartPolicy", "Never", ok);
    rb_bool(pod, "enableServiceLinks", false, ok);
    rb_pod_security(pod, ok);
    put_backup_container(rb_arr(pod, "containers", ok), s, ok);
    vols = rb_arr(pod, "volumes", ok);
    vol = rb_push_obj(vols, ok);
    rb_str(vol, "name", "backup", ok);
    rb_str(rb_obj(vol, "persistentVolumeClaim", ok), "claimName",
           ec_backup_claim(s, claim, sizeof(claim)), ok);
    if (s->tls.enabled)
        rb_secret_volume(vols, "tls-client", s->tls.client_secret, ok);
}

cJSON *ec_build_backup_cronjob(const struct ec_spec *s)
{
    char name[EC_NAME_MAX];
    bool ok = true;
    cJSON *md, *o = new_backup_object(s, "batch/v1", "CronJob",
                                      ec_backup_name(s, name, sizeof(name)), &md, &ok);
    cJSON *spec = rb_obj(o, "spec", &ok), *jt;

    rb_owner_ref(rb_arr(md, "ownerReferences", &ok), s, &ok);
    rb_str(spec, "schedule", s->backup.schedule ? s->backup.schedule : "", &ok);
    rb_str(spec, "timeZone", "Etc/UTC", &ok);
    rb_str(spec, "concurrencyPolicy", "Forbid", &ok);
    rb_bool(spec, "suspend", s->backup.suspend, &ok);
    rb_num(spec, "successfulJobsHistoryLimit", HISTORY_SUCCEEDED, &ok);
    rb_num(spec, "failedJobsHistoryLimit", HISTORY_FAILED, &ok);
    jt = rb_obj(spec, "jobTemplate", &ok);
    put_backup_labels(rb_obj(rb_obj(jt, "metadata", &ok), "labels", &ok), s, &ok);
    put_job_spec(rb_obj(jt, "spec", &ok), s, &ok);
    return rb_finish(o, ok);
}

cJSON *ec_build_backup_job(const struct ec_spec *s, const char *token, const char *cronjob_uid)
{
    char name[EC_NAME_MAX], cj[EC_NAME_MAX];
    bool ok = true;
    cJSON *md, *o = new_backup_object(s, "batch/v1", "Job",
                                      ec_backup_job_name(s, token, name, sizeof(name)), &md, &ok);
    cJSON *ann = rb_obj(md, "annotations", &ok);
    cJSON *ref = rb_push_obj(rb_arr(md, "ownerReferences", &ok), &ok);

    rb_str(ann, EC_BACKUP_NOW_ANNOTATION, token, &ok);
    rb_str(ann, "cronjob.kubernetes.io/instantiate", "manual", &ok);
    rb_str(ref, "apiVersion", "batch/v1", &ok);
    rb_str(ref, "kind", "CronJob", &ok);
    rb_str(ref, "name", ec_backup_name(s, cj, sizeof(cj)), &ok);
    rb_str(ref, "uid", cronjob_uid, &ok);
    rb_bool(ref, "controller", true, &ok);
    rb_bool(ref, "blockOwnerDeletion", true, &ok);
    put_job_spec(rb_obj(o, "spec", &ok), s, &ok);
    return rb_finish(o, ok);
}

cJSON *ec_build_backup_pvc(const struct ec_spec *s)
{
    char name[EC_NAME_MAX];
    bool ok = true;
    cJSON *md, *o = new_backup_object(s, "v1", "PersistentVolumeClaim",
                                      ec_backup_name(s, name, sizeof(name)), &md, &ok);
    cJSON *spec = rb_obj(o, "spec", &ok);

    rb_push_str(rb_arr(spec, "accessModes", &ok), "ReadWriteOnce", &ok);
    rb_str(rb_obj(rb_obj(spec, "resources", &ok), "requests", &ok), "storage",
           s->backup.storage_size ? s->backup.storage_size : "1Gi", &ok);
    if (s->backup.storage_class)
        rb_str(spec, "storageClassName", s->backup.storage_class, &ok);
    return rb_finish(o, ok);
}
