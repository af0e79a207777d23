/*
 * backup.h: the EtcdCluster's status.backup, read from its backup Jobs. Pure: no I/O, no clock.
 *
 * A backup Job's pod runs `cetcdctl snapshot save --dir ... --result-file /dev/termination-log`
 * (controller/resources/backup.c), which leaves one JSON line in the container's termination
 * message, read back from the pod's status (containerStatuses[].state.terminated.message, or
 * lastState.terminated.message):
 *   success  {"file":"<name>","revision":R,"size":S,"sha256":"<hex>","time":"<RFC3339 UTC>",
 *             "deleted":["<name>",...]}
 *   failure  {"error":"<message>"}
 * status.backup (every key optional):
 *   lastSuccess     {time, file, revision, size, sha256, job}: the newest successful backup;
 *                   time is the result's (when the snapshot was taken)
 *   lastFailure     {time, job, message}: the newest failed backup Job; time is when the Job
 *                   failed; message is the CLI's error, else the cause in the pod's termination
 *                   message (its log tail: backup_exit_cause), else its exit code, else the
 *                   Job's failure condition
 *   handledRequest  the last cetcd.io/backup-now token a Job was made for
 * Records are never forgotten: a Job removed by the CronJob's history limit leaves its record in
 * place, and a record is replaced only by a newer one (time, then Job name, compared as
 * strings: RFC3339 UTC times of one format order by time). So a steady cluster's status.backup
 * is stable byte for byte.
 * The condition BackupSucceeded (only with spec.backup): True/BackupCompleted when the newest
 * record is a success, False/BackupFailed when it is a failure, Unknown/NoBackupYet without any.
 */
#ifndef CETCD_BACKUP_H
#define CETCD_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define BACKUP_CONDITION "BackupSucceeded"
#define BACKUP_MESSAGE_MAX 512 /* longest failure message kept (bytes, cut at a character) */

/* One parsed result line. */
struct backup_result {
    bool ok;                 /* the success shape; else error holds the message */
    char file[256];
    int64_t revision, size;
    char sha256[65];
    char time[40];
    char error[BACKUP_MESSAGE_MAX];
};

/* msg: a termination message. 0, or CE_INVAL when it is neither shape (not JSON, a field of the
 * wrong type, a file name with '/', a sha256 that is not 64 hex digits...). */
int backup_result_parse(const char *msg, struct backup_result *out);

/* The cause of a failure in a termination message that is a log tail (FallbackToLogsOnError):
 * of the error lines that end it, the first (a program logs the cause, then gives up in general
 * words), else its last line; a leading timestamp and level word are dropped, so the same failure
 * gives the same text on every restart. One cleaned line in dst ("" if text has none). */
void backup_exit_cause(const char *text, char *dst, size_t n);

/* The new status.backup. old: the current one (NULL if none); jobs: a JSON array of this
 * cluster's backup Jobs; pods: a JSON array of pods (those of other Jobs are ignored);
 * handled: the request token just handled, or NULL to keep old's. A Complete Job whose pod is
 * not seen Succeeded (the pod cache may lag the Job cache) gives a record without its result
 * (time = the Job's completionTime); a record of the same Job with its result replaces it on a
 * later pass (the pod's change queues one). NULL when there is nothing to record (or out of
 * memory). */
cJSON *backup_status_build(const cJSON *old, const cJSON *jobs, const cJSON *pods,
                           const char *handled);

/* An RFC 3339 UTC time ("2024-05-01T03:00:02Z", fractions of a second allowed) as seconds since
 * the epoch; false if it is not one. */
bool backup_time_seconds(const char *rfc3339, double *out);

/* The condition BackupSucceeded for a status.backup (NULL = none yet): status "True", "False"
 * or "Unknown", its reason, and a message (no volatile numbers beyond the record's own). */
void backup_condition(const cJSON *backup, const char **status, const char **reason, char *msg,
                      size_t msgsz);

#endif
