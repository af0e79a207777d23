/*
 * olog.c: the operator's JSON-lines logger (format in olog.h).
 *
 * Invariants: a record is rendered completely into a private buffer before the output lock is
 * taken, and the lock is held for the whole write loop, so a line is never split or mixed with
 * another thread's; the output never contains a raw control character or invalid UTF-8, so
 * every line is one valid JSON object. A record that cannot be allocated is dropped.
 */
#include "olog.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytebuf.h"
#include "err.h"

const char olog_int_tag[] = "olog-int64";

static _Atomic int g_level = OLOG_INFO;
static _Atomic int g_fd = 2;
static char g_logger[64] = "cetcd-operator";
static pthread_mutex_t g_out_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int olog_parse_level(const char *s, enum olog_level *out)
{
    for (int i = 0; s && i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum olog_level)i;
            return 0;
        }
    }
    return CE_INVAL;
}

void olog_set_level(enum olog_level lvl) { atomic_store(&g_level, (int)lvl); }

bool olog_enabled(enum olog_level lvl) { return (int)lvl >= atomic_load(&g_level); }

void olog_set_default_logger(const char *name)
{
    pthread_mutex_lock(&g_out_lock);
    snprintf(g_logger, sizeof(g_logger), "%s", name ? name : "");
    pthread_mutex_unlock(&g_out_lock);
}

void olog_set_fd(int fd) { atomic_store(&g_fd, fd); }

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 if it is invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2, cp = s[0] & 0x1f, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, cp = s[0] & 0x0f, min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4, cp = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Appends s as a JSON string literal (with the quotes). */
static int put_json_string(bytebuf *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    int rc = bytebuf_append(b, "\"", 1);

    for (size_t i = 0; i < n && rc == 0;) {
        unsigned char c = s[i];
        size_t len;

        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = bytebuf_append(b, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            rc = c == '\n' ? bytebuf_append(b, "\\n", 2)
                 : c == '\t' ? bytebuf_append(b, "\\t", 2)
                 : c == '\r' ? bytebuf_append(b, "\\r", 2)
                             : bytebuf_printf(b, "\\u%04x", c);
            i++;
        } else if ((len = utf8_len(s + i, n - i)) == 0) {
            rc = bytebuf_append(b, "\\ufffd", 6);
            i++;
        } else {
            rc = bytebuf_append(b, s + i, len);
            i += len;
        }
    }
    return rc ? rc : bytebuf_append(b, "\"", 1);
}

static int put_timestamp(bytebuf *b)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    return bytebuf_printf(b, "{\"ts\":\"%s.%03ldZ\"", buf, ts.tv_nsec / 1000000);
}

/* Appends ,"key":value for each pair of the list until its NULL key. */
static int put_pairs(bytebuf *b, va_list ap)
{
    const char *key;
    int rc = 0;

    while (rc == 0 && (key = va_arg(ap, const char *)) != NULL) {
        const char *val = va_arg(ap, const char *);

        rc = bytebuf_append(b, ",", 1);
        if (rc == 0)
            rc = put_json_string(b, key);
        if (rc == 0)
            rc = bytebuf_append(b, ":", 1);
        if (rc != 0)
            break;
        if (val == olog_int_tag)
            rc = bytebuf_printf(b, "%lld", (long long)va_arg(ap, int64_t));
        else if (val == NULL)
            rc = bytebuf_append(b, "null", 4);
        else
            rc = put_json_string(b, val);
    }
    return rc;
}

static void write_line(const bytebuf *b)
{
    const uint8_t *p = bytebuf_data(b);
    size_t left = bytebuf_size(b);
    int fd = atomic_load(&g_fd);

    while (left > 0) {
        ssize_t w = write(fd, p, left);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        left -= (size_t)w;
    }
}

static void vlog(enum olog_level lvl, const char *logger, const char *msg, va_list ap)
{
    bytebuf b = {0};
    int rc;

    if (!olog_enabled(lvl) || (int)lvl < 0 || (int)lvl > OLOG_ERROR)
        return;
    rc = put_timestamp(&b);
    if (rc == 0)
        rc = bytebuf_printf(&b, ",\"level\":\"%s\",\"logger\":", level_names[lvl]);
    if (rc == 0)
        rc = put_json_string(&b, logger);
    if (rc == 0)
        rc = bytebuf_append(&b, ",\"msg\":", 7);
    if (rc == 0)
        rc = put_json_string(&b, msg ? msg : "");
    if (rc == 0)
        rc = put_pairs(&b, ap);
    if (rc == 0)
        rc = bytebuf_append(&b, "}\n", 2);
    if (rc == 0) {
        pthread_mutex_lock(&g_out_lock);
        write_line(&b);
        pthread_mutex_unlock(&g_out_lock);
    }
    bytebuf_free(&b);
}

void olog(enum olog_level lvl, const char *msg, ...)
{
    char logger[sizeof(g_logger)];
    va_list ap;

    if (!olog_enabled(lvl))
        return;
    pthread_mutex_lock(&g_out_lock);
    memcpy(logger, g_logger, sizeof(logger));
    pthread_mutex_unlock(&g_out_lock);
    va_start(ap, msg);
    vlog(lvl, logger, msg, ap);
    va_end(ap);
}

void olog_named(enum olog_level lvl, const char *logger, const char *msg, ...)
{
    va_list ap;

    va_start(ap, msg);
    vlog(lvl, logger ? logger : "", msg, ap);
    va_end(ap);
}
