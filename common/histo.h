/*
 * histo.h: a fixed-bucket histogram with exponential bounds, the shape of Prometheus'
 * ExponentialBuckets(start, factor, n) that etcd's latency metrics use.
 *
 * Invariants: bucket i counts the observations <= start * factor^i (cumulative, as the
 * exposition format wants); count counts every observation, including those above the last
 * bound (the "+Inf" bucket); sum adds every observed value. No allocation; single-threaded.
 */
#ifndef CETCD_HISTO_H
#define CETCD_HISTO_H

#include <stdint.h>

#define HISTO_MAX_BUCKETS 20

typedef struct histo {
    double start, factor;
    int n;                               /* buckets in use, <= HISTO_MAX_BUCKETS */
    uint64_t buckets[HISTO_MAX_BUCKETS]; /* cumulative counts */
    uint64_t count;
    double sum;
} histo;

/* n is clamped to 1..HISTO_MAX_BUCKETS. */
void histo_init(histo *h, double start, double factor, int n);
void histo_observe(histo *h, double v);
/* The upper bound of bucket i. */
double histo_bound(const histo *h, int i);

/* Seconds since an arbitrary start (CLOCK_MONOTONIC), for measuring durations. */
double histo_now(void);

#endif
