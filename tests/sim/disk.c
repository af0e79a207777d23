/*
 * disk.c: a member's simulated disk: the WAL (hard state, entries, snapshot marker), the
 * snapshot file and the store's durable state machine.
 *
 * Two images: `cur` is everything the member wrote, `dur` what survives a crash. A write
 * changes `cur` at once and is queued as an op; disk_sync applies the queue to `dur`. A crash
 * applies a random prefix of the queue to `dur` (the tail of the last kept entry batch may be
 * cut too: a torn write) and forgets the rest, then `cur` = `dur`. Within one update batch the
 * member writes the snapshot, then entries, then the hard state, in the order of our WAL
 * (wal_save writes entries before the hard state), so a prefix is what a torn WAL tail leaves.
 *
 * Snapshot taking (disk_compact: the node saves the snapshot file, then purges the WAL) is
 * durable at once, like the node's synced snapshot file. The store (`sm`) is flushed on its own
 * schedule (disk_sm_flush), so it may be ahead of the durable commit index or behind it, as
 * the node's LMDB store is. Installing a received snapshot (DOP_SNAP) replaces the store with
 * the snapshot's values when it becomes durable.
 *
 * Invariants: in both images ents[k].index == snapshot index + 1 + k; the op queue holds only
 * what was written since the last sync (between update batches: hard states only, since every
 * batch with entries or a snapshot is synced).
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    return p;
}

static void image_free(dimage *im)
{
    ssnap_unref(im->snap);
    free(im->ents);
    memset(im, 0, sizeof(*im));
}

static void image_copy(dimage *dst, const dimage *src)
{
    ssnap_unref(dst->snap);
    dst->hs = src->hs;
    dst->snap = src->snap;
    ssnap_ref(dst->snap);
    if (dst->cap < src->n) {
        dst->ents = xrealloc(dst->ents, src->n * sizeof(sent));
        dst->cap = src->n;
    }
    if (src->n)
        memcpy(dst->ents, src->ents, src->n * sizeof(sent));
    dst->n = src->n;
}

uint64_t dimage_snap_index(const dimage *im)
{
    return im->snap ? im->snap->index : 0;
}

uint64_t dimage_snap_term(const dimage *im)
{
    return im->snap ? im->snap->term : 0;
}

uint64_t dimage_last(const dimage *im)
{
    return dimage_snap_index(im) + im->n;
}

bool dimage_term(const dimage *im, uint64_t i, uint64_t *term)
{
    uint64_t si = dimage_snap_index(im);
    if (i == si) {
        *term = dimage_snap_term(im);
        return true;
    }
    if (i < si || i > dimage_last(im))
        return false;
    *term = im->ents[i - si - 1].term;
    return true;
}

const sent *dimage_entry(const dimage *im, uint64_t i)
{
    uint64_t si = dimage_snap_index(im);
    if (i <= si || i > dimage_last(im))
        return NULL;
    return &im->ents[i - si - 1];
}

static void image_set_snap(dimage *im, ssnap *s)
{
    ssnap_ref(s);
    ssnap_unref(im->snap);
    im->snap = s;
    im->n = 0;
}

/* Appends e[0..n) after truncating the image from e[0].index on. */
static void image_append(dimage *im, const sent *e, size_t n)
{
    if (n == 0)
        return;
    uint64_t si = dimage_snap_index(im);
    size_t pos = (size_t)(e[0].index - si - 1);
    if (im->cap < pos + n) {
        size_t cap = im->cap ? im->cap : 64;
        while (cap < pos + n)
            cap *= 2;
        im->ents = xrealloc(im->ents, cap * sizeof(sent));
        im->cap = cap;
    }
    memcpy(im->ents + pos, e, n * sizeof(sent));
    im->n = pos + n;
}

/* Drops entries up to index (inclusive) and records s as the snapshot. */
static void image_compact(dimage *im, ssnap *s)
{
    uint64_t si = dimage_snap_index(im);
    if (s->index < si)
        return;
    size_t k = s->index - si;
    if (k > im->n)
        k = im->n;
    if (im->n > k)
        memmove(im->ents, im->ents + k, (im->n - k) * sizeof(sent));
    im->n -= k;
    ssnap_ref(s);
    ssnap_unref(im->snap);
    im->snap = s;
}

void disk_init(disk *d)
{
    memset(d, 0, sizeof(*d));
}

static void drop_ops(disk *d)
{
    for (size_t i = 0; i < d->n_ops; i++) {
        ssnap_unref(d->ops[i].snap);
        free(d->ops[i].ents);
    }
    d->n_ops = 0;
}

void disk_free(disk *d)
{
    drop_ops(d);
    free(d->ops);
    image_free(&d->dur);
    image_free(&d->cur);
    free(d->sm);
    memset(d, 0, sizeof(*d));
}

static dop *push_op(disk *d, dop_kind kind)
{
    if (d->n_ops == d->cap_ops) {
        d->cap_ops = d->cap_ops ? d->cap_ops * 2 : 8;
        d->ops = xrealloc(d->ops, d->cap_ops * sizeof(dop));
    }
    dop *o = &d->ops[d->n_ops++];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    return o;
}

void disk_write_snap(disk *d, ssnap *s)
{
    image_set_snap(&d->cur, s);
    dop *o = push_op(d, DOP_SNAP);
    o->snap = s;
    ssnap_ref(s);
}

static bool to_sent(const raft_entry *e, sent *out)
{
    if (e->len > SIM_DATA_MAX || (e->len && !e->data))
        return false;
    memset(out, 0, sizeof(*out));
    out->term = e->term;
    out->index = e->index;
    out->type = (uint8_t)e->type;
    out->len = (uint8_t)e->len;
    if (e->len)
        memcpy(out->data, e->data, e->len);
    return true;
}

bool disk_write_ents(disk *d, const raft_entry *e, size_t n)
{
    if (n == 0)
        return true;
    uint64_t si = dimage_snap_index(&d->cur);
    if (e[0].index <= si || e[0].index > dimage_last(&d->cur) + 1)
        return false;
    sent *copy = xrealloc(NULL, n * sizeof(sent));
    for (size_t i = 0; i < n; i++) {
        if (!to_sent(&e[i], &copy[i]) || e[i].index != e[0].index + i) {
            free(copy);
            return false;
        }
    }
    image_append(&d->cur, copy, n);
    dop *o = push_op(d, DOP_ENTS);
    o->ents = copy;
    o->n = n;
    return true;
}

void disk_write_hs(disk *d, raft_hard_state hs)
{
    d->cur.hs = hs;
    push_op(d, DOP_HS)->hs = hs;
}

static void sm_replace(disk *d, const sval *vals, size_t n)
{
    if (d->sm_cap < n) {
        d->sm = xrealloc(d->sm, n * sizeof(sval));
        d->sm_cap = n;
    }
    if (n)
        memcpy(d->sm, vals, n * sizeof(sval));
    d->sm_n = n;
}

/* Applies op o to the durable image; `keep` entries of an entry batch (all: o->n). */
static void apply_op(disk *d, const dop *o, size_t keep)
{
    switch (o->kind) {
    case DOP_SNAP:
        image_set_snap(&d->dur, o->snap);
        sm_replace(d, o->snap->vals, o->snap->index);
        break;
    case DOP_ENTS:
        image_append(&d->dur, o->ents, keep);
        break;
    case DOP_HS:
        d->dur.hs = o->hs;
        break;
    }
}

void disk_sync(disk *d)
{
    for (size_t i = 0; i < d->n_ops; i++)
        apply_op(d, &d->ops[i], d->ops[i].n);
    drop_ops(d);
}

size_t disk_crash(disk *d, rng *r, size_t *n_ops)
{
    *n_ops = d->n_ops;
    size_t keep = d->n_ops ? (size_t)rng_below(r, d->n_ops + 1) : 0;
    for (size_t i = 0; i < keep; i++) {
        const dop *o = &d->ops[i];
        size_t k = o->n;
        if (i + 1 == keep && o->kind == DOP_ENTS)
            k = 1 + (size_t)rng_below(r, o->n); /* a torn batch keeps a prefix */
        apply_op(d, o, k);
    }
    drop_ops(d);
    image_copy(&d->cur, &d->dur);
    return keep;
}

void disk_compact(disk *d, ssnap *s)
{
    image_compact(&d->cur, s);
    image_compact(&d->dur, s);
}

void disk_sm_flush(disk *d, const sval *vals, size_t n)
{
    /* Both are prefixes of one history (checked on apply): only the tail is copied. */
    size_t from = d->sm_n < n ? d->sm_n : n;
    if (d->sm_cap < n) {
        size_t cap = d->sm_cap ? d->sm_cap : 64;
        while (cap < n)
            cap *= 2;
        d->sm = xrealloc(d->sm, cap * sizeof(sval));
        d->sm_cap = cap;
    }
    if (n > from)
        memcpy(d->sm + from, vals + from, (n - from) * sizeof(sval));
    d->sm_n = n;
}
