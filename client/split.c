/*
 * split.c: finds the top-level JSON objects in a byte stream that arrives in pieces of any size,
 * as the gateway's streams do (`{"result":{...}}\n{"result":{...}}\n...`, libcurl having removed
 * the chunked framing; a piece may end anywhere, inside a string or an escape).
 *
 * The scanner keeps its state (nesting depth, inside a string, after a backslash) across pieces,
 * so every byte is looked at once. An object lying wholly inside one piece is handed to the
 * callback where it lies, without a copy; only an object cut by a piece boundary is copied, and
 * only its own bytes, into a buffer that never grows past `max` (CE_MSG_TOO_LARGE instead).
 * Bytes between objects (the newline after each) are skipped up to the next '{'.
 *
 * Invariant: buf holds exactly the bytes of the pending object seen so far; len > 0 iff an
 * object started in an earlier piece is still open (depth > 0).
 */
#include "client_internal.h"

#include <stdlib.h>
#include <string.h>

void cetcd_splitter_init(struct cetcd_splitter *s, size_t max, cetcd_object_fn fn, void *ctx)
{
    memset(s, 0, sizeof(*s));
    s->max = max;
    s->fn = fn;
    s->ctx = ctx;
}

void cetcd_splitter_reset(struct cetcd_splitter *s)
{
    s->len = 0;
    s->depth = 0;
    s->in_str = false;
    s->esc = false;
}

void cetcd_splitter_free(struct cetcd_splitter *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}

bool cetcd_splitter_pending(const struct cetcd_splitter *s)
{
    return s->depth > 0;
}

/* Appends n bytes to the pending object, within max. */
static int keep(struct cetcd_splitter *s, const char *p, size_t n)
{
    if (n > s->max || s->len > s->max - n)
        return CE_MSG_TOO_LARGE;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return CE_NOMEM;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

/* Advances the string/escape state over one byte inside an object; true if it was consumed. */
static bool in_string(struct cetcd_splitter *s, char ch)
{
    if (!s->in_str) {
        s->in_str = ch == '"';
        return s->in_str;
    }
    if (s->esc)
        s->esc = false;
    else if (ch == '\\')
        s->esc = true;
    else if (ch == '"')
        s->in_str = false;
    return true;
}

/* The object ending at p[i] is complete: hand it over (from buf if it began earlier). */
static int emit(struct cetcd_splitter *s, const char *p, size_t start, size_t i, bool carried)
{
    int rc;

    if (!carried)
        return s->fn(s->ctx, p + start, i + 1 - start);
    if ((rc = keep(s, p, i + 1)))
        return rc;
    rc = s->fn(s->ctx, s->buf, s->len);
    s->len = 0;
    return rc;
}

int cetcd_splitter_feed(struct cetcd_splitter *s, const char *p, size_t n)
{
    bool carried = s->depth > 0;
    size_t start = 0;
    int rc;

    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (s->depth == 0) {
            if (ch == '{') {
                s->depth = 1;
                start = i;
            }
            continue;
        }
        if (in_string(s, ch))
            continue;
        if (ch == '{') {
            s->depth++;
        } else if (ch == '}' && --s->depth == 0) {
            if ((rc = emit(s, p, start, i, carried)))
                return rc;
            carried = false;
        }
    }
    if (s->depth == 0)
        return 0;
    return carried ? keep(s, p, n) : keep(s, p + start, n - start);
}
