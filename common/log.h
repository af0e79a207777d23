/*
 * log.h: leveled logging to stderr, one line per record, in the JSON-ish key=value form
 * etcd's zap logger users grep for: `2026-11-20T22:01:57.123Z info  wal: cut torn tail file=...`.
 * The level is process-global (set once at start-up from --log-level).
 */
#ifndef CETCD_LOG_H
#define CETCD_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL };

void log_set_level(enum log_level lvl);
/* Parses "debug|info|warn|error|panic|fatal"; returns 0 or CE_INVAL. */
int log_parse_level(const char *s, enum log_level *out);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
