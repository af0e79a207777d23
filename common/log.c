/*
 * log.c: the stderr logger of log.h. Each record is formatted into one buffer and written
 * with a single write(2), so lines from different threads never interleave.
 */
#include "log.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level current = LOG_INFO;
static const char *names[] = {"debug", "info", "warn", "error", "fatal"};

void log_set_level(enum log_level lvl)
{
    current = lvl;
}

int log_parse_level(const char *s, enum log_level *out)
{
    for (int i = 0; i <= LOG_FATAL; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcmp(s, "panic") == 0 || strcmp(s, "dpanic") == 0) {
        *out = LOG_FATAL;
        return 0;
    }
    return CE_INVAL;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;

    if (lvl < current)
        return;
    gettimeofday(&tv, 0);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s ", (long)(tv.tv_usec / 1000),
                          names[lvl]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n = strlen(line);
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    if (write(2, line, n) < 0) {
        /* nowhere left to report it */
    }
}
