/*
 * model.c: the small value types of the simulator: the seeded PRNG (xoshiro256**, seeded
 * through splitmix64), memberships as bitmasks, and reference-counted state machine snapshots.
 *
 * Invariants: the PRNG is the only source of randomness of a seed; a membership mask never
 * holds an id as both voter and learner; a snapshot's vals hold exactly `index` values and
 * never change after creation (shared by disks and messages in flight).
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rng_seed(rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t rng_below(rng *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

bool rng_chance(rng *r, unsigned permille)
{
    return rng_next(r) % 1000 < permille;
}

sconf sconf_from_raft(const raft_conf_state *cs)
{
    sconf c = {0, 0};
    for (size_t i = 0; i < cs->n_voters; i++)
        if (cs->voters[i] >= 1 && cs->voters[i] <= SIM_MAX_IDS)
            c.voters |= sconf_bit(cs->voters[i]);
    for (size_t i = 0; i < cs->n_learners; i++)
        if (cs->learners[i] >= 1 && cs->learners[i] <= SIM_MAX_IDS)
            c.learners |= sconf_bit(cs->learners[i]);
    return c;
}

sconf sconf_apply(sconf c, const raft_conf_change *cc)
{
    if (cc->node_id < 1 || cc->node_id > SIM_MAX_IDS)
        return c;
    uint64_t b = sconf_bit(cc->node_id);
    switch (cc->type) {
    case RAFT_CC_ADD_VOTER:
        c.learners &= ~b;
        c.voters |= b;
        break;
    case RAFT_CC_ADD_LEARNER:
        c.voters &= ~b;
        c.learners |= b;
        break;
    case RAFT_CC_PROMOTE:
        if (c.learners & b) {
            c.learners &= ~b;
            c.voters |= b;
        }
        break;
    case RAFT_CC_REMOVE:
        c.voters &= ~b;
        c.learners &= ~b;
        break;
    case RAFT_CC_UPDATE:
        break;
    }
    return c;
}

ssnap *ssnap_new(uint64_t index, uint64_t term, sconf conf, const sval *vals)
{
    ssnap *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->refs = 1;
    s->index = index;
    s->term = term;
    s->conf = conf;
    s->vals = malloc((index ? index : 1) * sizeof(sval));
    if (!s->vals)
        abort();
    if (index)
        memcpy(s->vals, vals, index * sizeof(sval));
    return s;
}

void ssnap_ref(ssnap *s)
{
    if (s)
        s->refs++;
}

void ssnap_unref(ssnap *s)
{
    if (!s || --s->refs)
        return;
    free(s->vals);
    free(s);
}
