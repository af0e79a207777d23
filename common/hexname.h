/*
 * hexname.h: the 16-digit lower-case hexadecimal numbers in WAL segment and snapshot file
 * names ("<16 hex>-<16 hex>.wal", ".snap").
 */
#ifndef CETCD_HEXNAME_H
#define CETCD_HEXNAME_H

#include <stdbool.h>
#include <stdint.h>

/* Parses exactly 16 lower-case hex digits at s; false on any other character. */
static inline bool hex16_parse(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return false;
        v = (v << 4) | (uint64_t)d;
    }
    *out = v;
    return true;
}

#endif
