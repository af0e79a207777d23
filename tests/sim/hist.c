/*
 * hist.c: the global record the checks compare every member against, over one seed:
 *   - the history: the entry applied at each index (the first member to apply an index
 *     writes it; every later apply of that index must be identical);
 *   - the membership after every applied conf change (conf at any index by binary search);
 *   - what is known committed: the term of each committed index and the term of the member
 *     that first saw it committed (the entry was committed in that term or earlier);
 *   - the leader of each term;
 *   - every (index, term) ever written by any member with its payload hash and the term of
 *     the entry before it: log matching is checked against it, write by write.
 * Invariants: history and confs only grow; a table slot, once filled, never changes.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void *sim_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    p = realloc(p, c * elem);
    if (!p)
        abort();
    memset((char *)p + *cap * elem, 0, (c - *cap) * elem);
    *cap = c;
    return p;
}

void hist_init(hist *h)
{
    memset(h, 0, sizeof(*h));
}

void hist_free(hist *h)
{
    free(h->v);
    free(h->gc_term);
    free(h->gc_obs);
    free(h->confs);
    free(h->leader_of);
    free(h->tab);
    memset(h, 0, sizeof(*h));
}

sconf hist_conf_at(const hist *h, uint64_t index)
{
    size_t lo = 0, hi = h->n_confs; /* first conf with index > the one asked */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (h->confs[mid].index <= index)
            lo = mid + 1;
        else
            hi = mid;
    }
    sconf none = {0, 0};
    return lo ? h->confs[lo - 1].conf : none;
}

sconf hist_conf_now(const hist *h)
{
    sconf none = {0, 0};
    return h->n_confs ? h->confs[h->n_confs - 1].conf : none;
}

void hist_push_conf(hist *h, uint64_t index, sconf c)
{
    h->confs = sim_grow(h->confs, &h->cap_confs, h->n_confs + 1, sizeof(*h->confs));
    h->confs[h->n_confs].index = index;
    h->confs[h->n_confs].conf = c;
    h->n_confs++;
}

void hist_push(hist *h, sval v)
{
    h->v = sim_grow(h->v, &h->cap, h->n + 1, sizeof(sval));
    h->v[h->n++] = v;
}

void hist_reserve_gc(hist *h, uint64_t index)
{
    size_t cap = h->gc_cap;
    h->gc_term = sim_grow(h->gc_term, &cap, (size_t)index + 1, sizeof(uint64_t));
    cap = h->gc_cap;
    h->gc_obs = sim_grow(h->gc_obs, &cap, (size_t)index + 1, sizeof(uint64_t));
    h->gc_cap = cap;
}

uint64_t *hist_leader_slot(hist *h, uint64_t term)
{
    h->leader_of = sim_grow(h->leader_of, &h->leader_cap, (size_t)term + 1, sizeof(uint64_t));
    return &h->leader_of[term];
}

static size_t slot_of(uint64_t index, uint64_t term, size_t cap)
{
    uint64_t x = index * 0x9E3779B97F4A7C15ull ^ (term + 0x632BE59BD9B4E019ull);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (size_t)(x & (cap - 1));
}

static void rehash(hist *h)
{
    size_t old_cap = h->tab_cap;
    kv_ent *old = h->tab;
    h->tab_cap = old_cap ? old_cap * 2 : 1024;
    h->tab = calloc(h->tab_cap, sizeof(kv_ent));
    if (!h->tab)
        abort();
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].index)
            continue;
        size_t j = slot_of(old[i].index, old[i].term, h->tab_cap);
        while (h->tab[j].index)
            j = (j + 1) & (h->tab_cap - 1);
        h->tab[j] = old[i];
    }
    free(old);
}

kv_ent *hist_entry_slot(hist *h, uint64_t index, uint64_t term)
{
    if (2 * (h->tab_n + 1) > h->tab_cap)
        rehash(h);
    size_t j = slot_of(index, term, h->tab_cap);
    while (h->tab[j].index && (h->tab[j].index != index || h->tab[j].term != term))
        j = (j + 1) & (h->tab_cap - 1);
    if (!h->tab[j].index)
        h->tab_n++; /* the caller fills it */
    return &h->tab[j];
}
