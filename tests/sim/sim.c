/*
 * sim.c: the simulator's command line, the seed loop, failure reports and the trace.
 *
 *   sim --seeds N [--first S]   run seeds S .. S+N-1 (S = 1 by default)
 *   sim --seed S [--verbose]    run one seed; --verbose prints every step (the replay)
 *
 * Exit status 0 only if every seed passed. A failure prints
 *   sim: seed S FAILED at step K: <invariant>: <details>
 *   replay: make sim SEED=S
 * and the last line sums up the run. Wall time is measured for the summary only; nothing a
 * seed does depends on it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

void sim_fail(sim *s, const char *invariant, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    s->fail_step = s->step;
    int k = snprintf(s->fail_msg, sizeof s->fail_msg, "%s: ", invariant);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail_msg + k, sizeof s->fail_msg - (size_t)k, fmt, ap);
    va_end(ap);
    sim_trace(s, "FAILED: %s", s->fail_msg);
}

void sim_trace(sim *s, const char *fmt, ...)
{
    if (!s->verbose)
        return;
    printf("%7llu ", (unsigned long long)s->step);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

prop *sim_prop(sim *s, uint64_t uid)
{
    s->props = sim_grow(s->props, &s->props_cap, (size_t)uid + 1, sizeof(prop));
    return &s->props[uid];
}

readq *sim_read(sim *s, uint64_t ctx)
{
    s->reads = sim_grow(s->reads, &s->reads_cap, (size_t)ctx + 1, sizeof(readq));
    return &s->reads[ctx];
}

typedef struct args {
    uint64_t first;
    uint64_t n;
    bool verbose;
} args;

static int usage(void)
{
    fprintf(stderr, "usage: sim --seeds N [--first S] | --seed S [--verbose]\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s)
        return false;
    *out = strtoull(s, &end, 10);
    return *end == 0;
}

static bool parse_args(int argc, char **argv, args *a)
{
    *a = (args){.first = 1, .n = 500};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--verbose") == 0) {
            a->verbose = true;
        } else if (strcmp(argv[i], "--seeds") == 0 && parse_u64(v, &a->n)) {
            i++;
        } else if (strcmp(argv[i], "--first") == 0 && parse_u64(v, &a->first)) {
            i++;
        } else if (strcmp(argv[i], "--seed") == 0 && parse_u64(v, &a->first)) {
            a->n = 1;
            i++;
        } else {
            return false;
        }
    }
    return true;
}

static void add_stats(sim_stats *t, const sim_stats *s)
{
    uint64_t *dst = (uint64_t *)t;
    const uint64_t *src = (const uint64_t *)s;
    for (size_t i = 0; i < sizeof(*t) / sizeof(uint64_t); i++)
        dst[i] += src[i];
}

static bool run_seed(uint64_t seed, bool verbose, sim_stats *total)
{
    sim *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->seed = seed;
    s->verbose = verbose;
    bool ok = sim_run(s);
    if (!ok) {
        printf("sim: seed %llu FAILED at step %llu: %s\n", (unsigned long long)seed,
               (unsigned long long)s->fail_step, s->fail_msg);
        printf("replay: make sim SEED=%llu\n", (unsigned long long)seed);
        fflush(stdout);
    }
    add_stats(total, &s->st);
    sim_free(s);
    free(s);
    return ok;
}

int main(int argc, char **argv)
{
    args a;
    if (!parse_args(argc, argv, &a) || a.n == 0)
        return usage();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sim_stats st = {0};
    uint64_t failed = 0;
    for (uint64_t seed = a.first; seed < a.first + a.n; seed++)
        failed += !run_seed(seed, a.verbose, &st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("sim: %llu seeds (%llu failed), %llu steps, %llu ticks, %llu leaders, %llu entries "
           "applied, %llu proposals acknowledged, %llu reads, %llu snapshots installed, %llu "
           "taken, %llu crashes (%llu before sync), %llu conf changes, %llu messages (%llu "
           "lost), %.1f s\n", (unsigned long long)a.n, (unsigned long long)failed,
           (unsigned long long)st.steps, (unsigned long long)st.ticks,
           (unsigned long long)st.leaders, (unsigned long long)st.commits,
           (unsigned long long)st.acked, (unsigned long long)st.reads,
           (unsigned long long)st.snapshots, (unsigned long long)st.compactions,
           (unsigned long long)st.crashes, (unsigned long long)st.torn,
           (unsigned long long)st.conf_changes, (unsigned long long)st.msgs,
           (unsigned long long)st.dropped, secs);
    return failed ? 1 : 0;
}
