/*
 * histo.c: exponential-bucket histograms (see histo.h). Observing walks the buckets from the
 * top and stops at the first bound below the value, so the common (fast) observations touch
 * every bucket once, as cumulative counts require.
 */
#include "histo.h"

#include <time.h>

void histo_init(histo *h, double start, double factor, int n)
{
    h->start = start;
    h->factor = factor;
    h->n = n < 1 ? 1 : n > HISTO_MAX_BUCKETS ? HISTO_MAX_BUCKETS : n;
    for (int i = 0; i < HISTO_MAX_BUCKETS; i++)
        h->buckets[i] = 0;
    h->count = 0;
    h->sum = 0;
}

double histo_bound(const histo *h, int i)
{
    double b = h->start;

    while (i-- > 0)
        b *= h->factor;
    return b;
}

void histo_observe(histo *h, double v)
{
    double bound = h->start;

    for (int i = 0; i < h->n; i++, bound *= h->factor)
        if (v <= bound)
            h->buckets[i]++;
    h->count++;
    h->sum += v;
}

double histo_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
