/*
 * fnv1a.h: the 64-bit FNV-1a hash (offset basis 0xcbf29ce484222325, prime 0x100000001b3; for
 * each byte: xor it in, then multiply). bbolt's meta-page checksum is this hash, and the watch
 * hub hashes keys with it.
 */
#ifndef CETCD_FNV1A_H
#define CETCD_FNV1A_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t fnv1a64(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#endif
