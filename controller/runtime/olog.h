/*
 * olog.h: the operator's structured log. One JSON object per line on stderr, the shape
 * controller-runtime's zap logger writes, so log tooling for Kubernetes operators reads it:
 *
 *   {"ts":"2026-11-21T10:00:00.123Z","level":"info","logger":"leader-election",
 *    "msg":"acquired lease","lease":"cetcd-system/cetcd-operator","transitions":3}
 *
 * Field order is fixed: ts (RFC 3339, UTC, milliseconds), level (debug|info|warn|error),
 * logger, msg, then the caller's key/value pairs in the order given. Keys and string values
 * are JSON-escaped (quotes, backslash, control characters; invalid UTF-8 bytes become U+FFFD);
 * a NULL string value is written as null. Integer values (OLOG_I64) are JSON numbers.
 *
 * Thread-safe: a line is built in memory and written with one locked write loop, so lines
 * from different threads never interleave. Records below the level set by olog_set_level
 * (default info) cost one comparison.
 */
#ifndef CETCD_OLOG_H
#define CETCD_OLOG_H

#include <stdbool.h>
#include <stdint.h>

enum olog_level { OLOG_DEBUG = 0, OLOG_INFO, OLOG_WARN, OLOG_ERROR };

/* Parses "debug|info|warn|error" (as --log-level takes it); 0 or CE_INVAL. */
int olog_parse_level(const char *s, enum olog_level *out);
void olog_set_level(enum olog_level lvl);
bool olog_enabled(enum olog_level lvl);
/* The "logger" of records written by olog() (default "cetcd-operator"); the string is
 * copied (at most 63 bytes kept). Set it once at start-up. */
void olog_set_default_logger(const char *name);
/* Where lines go (default 2 = stderr). For tests. */
void olog_set_fd(int fd);

/* Marks an int64 value in the key/value list: "members", OLOG_I64(n). */
extern const char olog_int_tag[];
#define OLOG_I64(v) olog_int_tag, (int64_t)(v)

/*
 * Writes one record. The variadic part is key/value pairs ended by a NULL key:
 *   olog(OLOG_INFO, "scaled", "cluster", name, "replicas", OLOG_I64(3), NULL);
 * A value is a const char * (NULL allowed) or OLOG_I64(int expression).
 */
void olog(enum olog_level lvl, const char *msg, ...) __attribute__((sentinel));
/* Same, with an explicit logger name ("leader-election", "controller.etcdcluster", ...). */
void olog_named(enum olog_level lvl, const char *logger, const char *msg, ...)
    __attribute__((sentinel));

#endif
