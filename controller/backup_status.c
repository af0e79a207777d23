/*
 * backup_status.c: status.backup from the backup Jobs and their pods (backup.h). Pure.
 *
 * A Job is finished when its condition Complete or Failed is True. Its pods are the pods whose
 * ownerReferences name the Job's uid. A Complete Job's record comes from its Succeeded pod's
 * result line; a Failed Job's from its newest Failed pod (by finishedAt). The newest record of
 * each kind is compared with the one already in the status and kept if newer (backup.h).
 */
#include "backup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "k8s/k8s.h"

/* ---- the result line ---- */

static bool hex64(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == 64 && !s[n];
}

static bool copy_str(const cJSON *v, char *dst, size_t n)
{
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= n)
        return false;
    snprintf(dst, n, "%s", v->valuestring);
    return true;
}

static bool read_count(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static const char *or_else(const char *s, const char *dflt)
{
    return s ? s : dflt;
}

/* One line of printable text in dst (at most n-1 bytes, cut before a partial UTF-8
 * character): control characters become spaces, runs of spaces one, ends trimmed. */
static void clean_line(const char *src, size_t len, char *dst, size_t n)
{
    size_t o = 0, i;

    for (i = 0; i < len && src[i]; i++) {
        char ch = (unsigned char)src[i] < ' ' || src[i] == 0x7f ? ' ' : src[i];
        if (ch == ' ' && (o == 0 || dst[o - 1] == ' '))
            continue;
        if (o + 1 >= n)
            break;
        dst[o++] = ch;
    }
    if (i < len && src[i]) { /* cut: drop a multi-byte character left incomplete */
        size_t k = o;
        while (k > 0 && ((unsigned char)dst[k - 1] & 0xc0) == 0x80)
            k--;
        if (k > 0 && (unsigned char)dst[k - 1] >= 0xc0) {
            unsigned char lead = (unsigned char)dst[k - 1];
            size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (o - (k - 1) < need)
                o = k - 1;
        }
    }
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = 0;
}

int backup_result_parse(const char *msg, struct backup_result *out)
{
    cJSON *j = msg ? cJSON_Parse(msg) : NULL;
    const cJSON *e;
    int rc = CE_INVAL;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(j))
        goto out_free;
    e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (e) {
        if (cJSON_IsString(e)) {
            clean_line(e->valuestring, strlen(e->valuestring), out->error, sizeof(out->error));
            rc = out->error[0] ? 0 : CE_INVAL;
        }
        goto out_free;
    }
    out->ok = copy_str(cJSON_GetObjectItemCaseSensitive(j, "file"), out->file, sizeof(out->file)) &&
              out->file[0] && !strchr(out->file, '/') &&
              read_count(cJSON_GetObjectItemCaseSensitive(j, "revision"), &out->revision) &&
              read_count(cJSON_GetObjectItemCaseSensitive(j, "size"), &out->size) &&
              copy_str(cJSON_GetObjectItemCaseSensitive(j, "sha256"), out->sha256,
                       sizeof(out->sha256)) && hex64(out->sha256) &&
              copy_str(cJSON_GetObjectItemCaseSensitive(j, "time"), out->time, sizeof(out->time)) &&
              out->time[0];
    rc = out->ok ? 0 : CE_INVAL;
out_free:
    cJSON_Delete(j);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- Jobs and pods ---- */

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

/* "Complete" or "Failed" (its condition True), else NULL; *when = the time it finished. */
static const char *job_outcome(const cJSON *job, const char **when)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, get(get(job, "status"), "conditions")) {
        const char *t = k8s_str(c, "type", NULL), *st = k8s_str(c, "status", NULL);
        if (!t || !st || strcmp(st, "True") || (strcmp(t, "Complete") && strcmp(t, "Failed")))
            continue;
        *when = !strcmp(t, "Complete") ? k8s_str(job, "status", "completionTime", NULL) : NULL;
        if (!*when)
            *when = k8s_str(c, "lastTransitionTime", NULL);
        if (!*when)
            *when = "";
        return t;
    }
    return NULL;
}

static bool owned_by(const cJSON *pod, const char *uid)
{
    const cJSON *r;

    cJSON_ArrayForEach(r, get(get(pod, "metadata"), "ownerReferences")) {
        const char *u = k8s_str(r, "uid", NULL);
        if (u && !strcmp(u, uid))
            return true;
    }
    return false;
}

/* The terminated state of the pod's (first) container: state, else lastState. */
static const cJSON *terminated(const cJSON *pod)
{
    const cJSON *cs = cJSON_GetArrayItem(get(get(pod, "status"), "containerStatuses"), 0);
    const cJSON *t = get(get(cs, "state"), "terminated");

    return t ? t : get(get(cs, "lastState"), "terminated");
}

/* The pod of job in phase `phase` that finished last (NULL if none). */
static const cJSON *job_pod(const cJSON *job, const cJSON *pods, const char *phase)
{
    const char *uid = k8s_str(job, "metadata", "uid", NULL);
    const cJSON *p, *best = NULL;
    const char *best_t = "";

    if (!uid)
        return NULL;
    cJSON_ArrayForEach(p, pods) {
        const char *ph = k8s_str(p, "status", "phase", NULL);
        const char *t = k8s_str(terminated(p), "finishedAt", NULL);
        if (!ph || strcmp(ph, phase) || !owned_by(p, uid))
            continue;
        if (!best || (t && strcmp(t, best_t) > 0)) {
            best = p;
            best_t = t ? t : "";
        }
    }
    return best;
}

/* ---- records ---- */

struct record {
    bool set;
    bool from_old;          /* the record already in status, kept as it is */
    char time[40];
    char job[256];
    struct backup_result r; /* success: r.ok when the result is known; failure: r.error */
};

/* a replaces b: a newer time; in the same second (times have whole seconds) the higher
 * revision, as a cluster's revisions only grow; then the Job name. For one Job, a known result
 * over none. */
static bool newer(const struct record *a, const struct record *b)
{
    int c;

    if (!b->set || !a->set)
        return a->set && !b->set;
    if (!strcmp(a->job, b->job))
        return a->r.ok && !b->r.ok;
    c = strcmp(a->time, b->time);
    if (c == 0 && a->r.ok && b->r.ok && a->r.revision != b->r.revision)
        return a->r.revision > b->r.revision;
    return c > 0 || (c == 0 && strcmp(a->job, b->job) > 0);
}

static void success_record(const cJSON *job, const cJSON *pods, const char *when,
                           struct record *out)
{
    const char *msg = k8s_str(terminated(job_pod(job, pods, "Succeeded")), "message", NULL);

    memset(out, 0, sizeof(*out));
    out->set = true;
    snprintf(out->job, sizeof(out->job), "%s", k8s_str(job, "metadata", "name", NULL));
    if (msg && !backup_result_parse(msg, &out->r) && out->r.ok) {
        snprintf(out->time, sizeof(out->time), "%s", out->r.time);
        return;
    }
    memset(&out->r, 0, sizeof(out->r)); /* no result (yet): time and job only */
    snprintf(out->time, sizeof(out->time), "%s", when);
}

/* Skips a leading log timestamp ("2024-05-01T03:00:00.123Z") and level word at *p. */
static const char *skip_log_prefix(const char *p, const char *end, bool *error)
{
    static const char *const levels[] = {"error", "fatal", "panic", "warn", "info", "debug"};
    const char *q = p;

    *error = false;
    while (q < end && *q != ' ' && *q != '\t')
        q++;
    if (q - p < 10 || p[0] < '0' || p[0] > '9' || !memchr(p, 'T', (size_t)(q - p)))
        return p; /* no timestamp */
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        size_t n = strlen(levels[i]);
        if ((size_t)(end - q) > n && !strncmp(q, levels[i], n) && (q[n] == ' ' || q[n] == '\t')) {
            *error = i < 3;
            for (q += n; q < end && (*q == ' ' || *q == '\t'); q++)
                ;
            break;
        }
    }
    return q;
}

void backup_exit_cause(const char *text, char *dst, size_t n)
{
    const char *end = text + strlen(text), *best = NULL, *best_end = NULL;

    dst[0] = 0;
    while (end > text) {
        const char *e = end, *b;
        bool error;
        while (e > text && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' '))
            e--;
        for (b = e; b > text && b[-1] != '\n'; b--)
            ;
        if (b == e)
            break;
        const char *body = skip_log_prefix(b, e, &error);
        if (best && !error)
            break;
        best = body;
        best_end = e;
        end = b;
        if (!error)
            break; /* the last line is no error line: it is the cause */
    }
    if (best)
        clean_line(best, (size_t)(best_end - best), dst, n);
}

/* The Job's Failed condition as "Reason: message". */
static void condition_message(const cJSON *job, char *dst, size_t n)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, get(get(job, "status"), "conditions")) {
        const char *ty = k8s_str(c, "type", NULL);
        if (ty && !strcmp(ty, "Failed")) {
            char raw[BACKUP_MESSAGE_MAX];
            snprintf(raw, sizeof(raw), "%s: %s", or_else(k8s_str(c, "reason", NULL), "Failed"),
                     or_else(k8s_str(c, "message", NULL), "the backup Job failed"));
            clean_line(raw, sizeof(raw), dst, n);
            return;
        }
    }
    snprintf(dst, n, "the backup Job failed");
}

static void failure_message(const cJSON *job, const cJSON *pod, char *dst, size_t n)
{
    const cJSON *t = terminated(pod);
    const char *msg = k8s_str(t, "message", NULL), *reason = k8s_str(t, "reason", NULL);
    const cJSON *code = get(t, "exitCode");
    struct backup_result r;

    dst[0] = 0;
    if (msg && !backup_result_parse(msg, &r) && !r.ok) {
        snprintf(dst, n, "%s", r.error);
        return;
    }
    if (msg)
        backup_exit_cause(msg, dst, n);
    if (!dst[0] && cJSON_IsNumber(code))
        snprintf(dst, n, "the backup container exited with code %d%s%s", code->valueint,
                 reason ? ": " : "", or_else(reason, ""));
    if (!dst[0])
        condition_message(job, dst, n);
}

static void failure_record(const cJSON *job, const cJSON *pods, const char *when,
                           struct record *out)
{
    memset(out, 0, sizeof(*out));
    out->set = true;
    snprintf(out->job, sizeof(out->job), "%s", k8s_str(job, "metadata", "name", NULL));
    snprintf(out->time, sizeof(out->time), "%s", when);
    failure_message(job, job_pod(job, pods, "Failed"), out->r.error, sizeof(out->r.error));
}

/* The record already in status (kind "lastSuccess" or "lastFailure"). */
static void old_record(const cJSON *old, const char *kind, struct record *out)
{
    const cJSON *o = get(old, kind);
    const char *t = k8s_str(o, "time", NULL), *j = k8s_str(o, "job", NULL);

    memset(out, 0, sizeof(*out));
    if (!t || !j)
        return;
    out->set = out->from_old = true;
    out->r.ok = k8s_str(o, "file", NULL) != NULL;
    if (cJSON_IsNumber(get(o, "revision")))
        out->r.revision = (int64_t)get(o, "revision")->valuedouble;
    snprintf(out->time, sizeof(out->time), "%s", t);
    snprintf(out->job, sizeof(out->job), "%s", j);
}

static bool put_record(cJSON *st, const cJSON *old, const char *kind, const struct record *rec)
{
    cJSON *o;

    if (!rec->set)
        return true;
    if (rec->from_old)
        return cJSON_AddItemToObject(st, kind, cJSON_Duplicate(get(old, kind), true));
    if (!(o = cJSON_AddObjectToObject(st, kind)) || !cJSON_AddStringToObject(o, "time", rec->time))
        return false;
    if (rec->r.ok && (!cJSON_AddStringToObject(o, "file", rec->r.file) ||
                      !cJSON_AddNumberToObject(o, "revision", (double)rec->r.revision) ||
                      !cJSON_AddNumberToObject(o, "size", (double)rec->r.size) ||
                      !cJSON_AddStringToObject(o, "sha256", rec->r.sha256)))
        return false;
    if (!cJSON_AddStringToObject(o, "job", rec->job))
        return false;
    return rec->r.ok || !rec->r.error[0] || cJSON_AddStringToObject(o, "message", rec->r.error);
}

cJSON *backup_status_build(const cJSON *old, const cJSON *jobs, const cJSON *pods,
                           const char *handled)
{
    struct record succ, fail, rec;
    const cJSON *job;
    cJSON *st;

    old_record(old, "lastSuccess", &succ);
    old_record(old, "lastFailure", &fail);
    cJSON_ArrayForEach(job, jobs) {
        const char *when = NULL, *outcome = job_outcome(job, &when);
        bool ok_job = outcome && !strcmp(outcome, "Complete");
        if (!outcome || !k8s_str(job, "metadata", "name", NULL))
            continue;
        if (ok_job)
            success_record(job, pods, when, &rec);
        else
            failure_record(job, pods, when, &rec);
        if (newer(&rec, ok_job ? &succ : &fail))
            *(ok_job ? &succ : &fail) = rec;
    }
    if (!handled)
        handled = k8s_str(old, "handledRequest", NULL);
    if (!succ.set && !fail.set && !handled)
        return NULL;
    st = cJSON_CreateObject();
    if (!st || !put_record(st, old, "lastSuccess", &succ) ||
        !put_record(st, old, "lastFailure", &fail) ||
        (handled && !cJSON_AddStringToObject(st, "handledRequest", handled))) {
        cJSON_Delete(st);
        return NULL;
    }
    return st;
}

void backup_condition(const cJSON *backup, const char **status, const char **reason, char *msg,
                      size_t msgsz)
{
    const cJSON *s = get(backup, "lastSuccess"), *f = get(backup, "lastFailure");
    const char *st = k8s_str(s, "time", NULL), *ft = k8s_str(f, "time", NULL);

    if (st && (!ft || strcmp(st, ft) >= 0)) {
        *status = "True";
        *reason = "BackupCompleted";
        if (k8s_str(s, "file", NULL))
            snprintf(msg, msgsz, "the last backup %s (revision %.0f) was taken at %s by job %s",
                     k8s_str(s, "file", NULL),
                     cJSON_IsNumber(get(s, "revision")) ? get(s, "revision")->valuedouble : 0.0,
                     st, or_else(k8s_str(s, "job", NULL), "?"));
        else
            snprintf(msg, msgsz, "job %s completed at %s", or_else(k8s_str(s, "job", NULL), "?"),
                     st);
    } else if (ft) {
        *status = "False";
        *reason = "BackupFailed";
        snprintf(msg, msgsz, "job %s failed at %s: %s", or_else(k8s_str(f, "job", NULL), "?"),
                 ft, or_else(k8s_str(f, "message", NULL), ""));
    } else {
        *status = "Unknown";
        *reason = "NoBackupYet";
        snprintf(msg, msgsz, "no backup has finished yet");
    }
}

bool backup_time_seconds(const char *rfc3339, double *out)
{
    struct tm tm = {0};
    const char *p = rfc3339 ? strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    double frac = 0;

    if (!p)
        return false;
    if (*p == '.') {
        char *end;
        frac = strtod(p, &end);
        if (end == p + 1)
            return false;
        p = end;
    }
    if (strcmp(p, "Z"))
        return false;
    *out = (double)timegm(&tm) + frac;
    return true;
}
