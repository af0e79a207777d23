/*
 * bytebuf.h: the growable byte buffer the client-port transport and the peer transport queue
 * their input and output in. Live bytes are p[off, len); free room p[len, cap). Consuming
 * advances off (no copy); reserving compacts when that reclaims more than it moves, else
 * grows the allocation by doubling. Invariant: off <= len <= cap; an empty buffer has
 * off == len == 0.
 */
#ifndef CETCD_BYTEBUF_H
#define CETCD_BYTEBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct bytebuf {
    uint8_t *p;
    size_t off, len, cap;
} bytebuf;

static inline size_t bytebuf_size(const bytebuf *b) { return b->len - b->off; }
static inline uint8_t *bytebuf_data(const bytebuf *b) { return b->p + b->off; }

/* Makes room for extra more bytes at p + len. 0 or CE_NOMEM. */
int bytebuf_reserve(bytebuf *b, size_t extra);
int bytebuf_append(bytebuf *b, const void *data, size_t n);
int bytebuf_printf(bytebuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bytebuf_consume(bytebuf *b, size_t n);
/* Releases the memory of an empty buffer whose capacity exceeds keep. */
void bytebuf_trim(bytebuf *b, size_t keep);
void bytebuf_free(bytebuf *b);

#endif
