/*
 * quantity.c: Kubernetes resource quantities ("1Gi", "500m", "2.5e3"), parsed by value.
 *
 * The grammar is Kubernetes' own:
 *   quantity  ::= signedNumber suffix
 *   number    ::= digits | digits "." | digits "." digits | "." digits
 *   suffix    ::= binarySI (Ki Mi Gi Ti Pi Ei) | decimalSI (n u m "" k M G T P E)
 *               | ("e" | "E") signedInteger
 * "E" alone is exa; "E" followed by digits is an exponent. The API server rewrites quantities
 * into a canonical form ("0.5Gi" comes back as "512Mi", "0.5" cpu as "500m"), so the operator
 * compares quantities by value, never by spelling. Values are long doubles; two quantities are
 * equal when they agree to 1 part in 10^12, far finer than any two distinct quantities a user
 * writes, and immune to the rounding of decimal fractions such as "100m".
 */
#include <string.h>

#include "resources/resources.h"

#define QTY_MAX_LEN 64
#define QTY_MAX_EXP 40

struct suffix {
    const char *s;
    int pow10;  /* value multiplied by 10^pow10 ... */
    int pow2;   /* ... and by 2^pow2 */
};

static const struct suffix suffixes[] = {
    {"Ki", 0, 10}, {"Mi", 0, 20}, {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50}, {"Ei", 0, 60},
    {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},  {"", 0, 0},    {"k", 3, 0},   {"M", 6, 0},
    {"G", 9, 0},   {"T", 12, 0},  {"P", 15, 0},  {"E", 18, 0},
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* digits with an optional fraction; the mantissa and the count of fraction digits. */
static bool parse_number(const char **p, long double *mant, int *frac)
{
    const char *c = *p;
    int ndigits = 0;
    bool dot = false;

    *mant = 0;
    *frac = 0;
    for (;; c++) {
        if (is_digit(*c)) {
            *mant = *mant * 10 + (*c - '0');
            ndigits++;
            *frac += dot;
        } else if (*c == '.' && !dot) {
            dot = true;
        } else {
            break;
        }
    }
    *p = c;
    return ndigits > 0;
}

/* "e" or "E" followed by a signed integer, the whole rest of the string. */
static bool parse_exponent(const char *c, int *exp)
{
    int sign = 1, v = 0;

    if (*c != 'e' && *c != 'E')
        return false;
    c++;
    if (*c == '+' || *c == '-')
        sign = *c++ == '-' ? -1 : 1;
    if (!is_digit(*c))
        return false;
    for (; is_digit(*c); c++) {
        v = v * 10 + (*c - '0');
        if (v > QTY_MAX_EXP)
            return false;
    }
    *exp = sign * v;
    return *c == '\0';
}

static bool parse_suffix(const char *c, int *pow10, int *pow2)
{
    *pow10 = 0;
    *pow2 = 0;
    if (parse_exponent(c, pow10))
        return true;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        if (strcmp(c, suffixes[i].s) == 0) {
            *pow10 = suffixes[i].pow10;
            *pow2 = suffixes[i].pow2;
            return true;
        }
    }
    return false;
}

static long double scale(long double v, int pow10, int pow2)
{
    for (; pow10 > 0; pow10--)
        v *= 10;
    for (; pow10 < 0; pow10++)
        v /= 10;
    for (; pow2 > 0; pow2--)
        v *= 2;
    return v;
}

bool ec_quantity_parse(const char *s, long double *out)
{
    const char *c = s;
    long double mant;
    int frac, pow10, pow2, sign = 1;

    if (!s || strlen(s) > QTY_MAX_LEN)
        return false;
    if (*c == '+' || *c == '-')
        sign = *c++ == '-' ? -1 : 1;
    if (!parse_number(&c, &mant, &frac) || !parse_suffix(c, &pow10, &pow2))
        return false;
    *out = sign * scale(mant, pow10 - frac, pow2);
    return true;
}

bool ec_quantity_equal(const char *a, const char *b)
{
    long double x, y, diff, mag;

    if (!ec_quantity_parse(a, &x) || !ec_quantity_parse(b, &y))
        return false;
    diff = x > y ? x - y : y - x;
    mag = x < 0 ? -x : x;
    if ((y < 0 ? -y : y) > mag)
        mag = y < 0 ? -y : y;
    return diff <= mag * 1e-12L;
}
