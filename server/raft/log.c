/*
 * log.c: the in-memory Raft log (etcd-raft's raftLog + unstable merged into one array) and the
 * reference-counted entry payloads.
 *
 * The log holds the snapshot point (snap_index, snap_term) and every entry after it in one
 * contiguous array, so slices handed to the caller (entries to persist, committed entries,
 * MsgApp batches) are plain pointers into it. Invariants (also in raft_int.h):
 *   ents[i].index == snap_index + 1 + i
 *   snap_index <= applied <= committed <= last index
 *   snap_index <= stabled <= last index   (stabled: last index known durable)
 * A truncation below stabled lowers stabled, so the replaced entries are persisted again.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft_int.h"

typedef struct rdata_hdr {
    size_t refs;
} rdata_hdr;

static rdata_hdr *hdr_of(const uint8_t *p)
{
    return (rdata_hdr *)(void *)((uint8_t *)(uintptr_t)p - sizeof(rdata_hdr));
}

uint8_t *rdata_new(const uint8_t *data, size_t len)
{
    if (len == 0)
        return NULL;
    rdata_hdr *h = malloc(sizeof(*h) + len);
    if (!h)
        return NULL;
    h->refs = 1;
    uint8_t *p = (uint8_t *)(h + 1);
    memcpy(p, data, len);
    return p;
}

void rdata_ref(const uint8_t *p)
{
    if (p)
        hdr_of(p)->refs++;
}

void rdata_unref(const uint8_t *p)
{
    if (!p)
        return;
    rdata_hdr *h = hdr_of(p);
    if (--h->refs == 0)
        free(h);
}

void rlog_init(rlog *l, uint64_t snap_index, uint64_t snap_term)
{
    memset(l, 0, sizeof(*l));
    l->snap_index = snap_index;
    l->snap_term = snap_term;
    l->committed = snap_index;
    l->applied = snap_index;
    l->stabled = snap_index;
}

static void drop_from(rlog *l, size_t pos)
{
    for (size_t i = pos; i < l->n; i++)
        rdata_unref(l->ents[i].data);
    l->n = pos;
}

void rlog_destroy(rlog *l)
{
    drop_from(l, 0);
    free(l->ents);
    l->ents = NULL;
    l->cap = 0;
}

uint64_t rlog_last_index(const rlog *l)
{
    return l->snap_index + l->n;
}

uint64_t rlog_first_index(const rlog *l)
{
    return l->snap_index + 1;
}

uint64_t rlog_last_term(const rlog *l)
{
    return l->n ? l->ents[l->n - 1].term : l->snap_term;
}

bool rlog_term(const rlog *l, uint64_t i, uint64_t *term)
{
    if (i == l->snap_index) {
        *term = l->snap_term;
        return true;
    }
    if (i < l->snap_index || i > rlog_last_index(l))
        return false;
    *term = l->ents[i - l->snap_index - 1].term;
    return true;
}

bool rlog_match_term(const rlog *l, uint64_t i, uint64_t term)
{
    uint64_t t;
    return rlog_term(l, i, &t) && t == term;
}

/* Raft §5.4.1: a candidate's log is at least as up to date as ours. */
bool rlog_is_up_to_date(const rlog *l, uint64_t last_index, uint64_t last_term)
{
    uint64_t my_term = rlog_last_term(l);
    return last_term > my_term || (last_term == my_term && last_index >= rlog_last_index(l));
}

const raft_entry *rlog_entry(const rlog *l, uint64_t i)
{
    if (i <= l->snap_index || i > rlog_last_index(l))
        return NULL;
    return &l->ents[i - l->snap_index - 1];
}

static int reserve(rlog *l, size_t need)
{
    if (need <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : 64;
    while (cap < need)
        cap *= 2;
    raft_entry *e = realloc(l->ents, cap * sizeof(*e));
    if (!e)
        return CE_NOMEM;
    l->ents = e;
    l->cap = cap;
    return 0;
}

/* Truncates everything from index `from` on (from > snap_index). */
static void truncate_from(rlog *l, uint64_t from)
{
    if (from > rlog_last_index(l))
        return;
    drop_from(l, (size_t)(from - l->snap_index - 1));
    /* Invariant: stabled <= last index. */
    if (l->stabled >= from)
        l->stabled = from - 1;
}

int rlog_append(rlog *l, const raft_entry *ents, size_t n)
{
    if (n == 0)
        return 0;
    truncate_from(l, ents[0].index);
    int rc = reserve(l, l->n + n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        raft_entry *e = &l->ents[l->n];
        *e = ents[i];
        e->index = rlog_last_index(l) + 1;
        e->data = rdata_new(ents[i].data, ents[i].len);
        if (e->len && !e->data)
            return CE_NOMEM; /* the log stays consistent: shorter, nothing half-added */
        l->n++;
    }
    return 0;
}

int rlog_append_new(rlog *l, uint64_t term, raft_entry_type type, const uint8_t *data,
                    size_t len)
{
    int rc = reserve(l, l->n + 1);
    if (rc)
        return rc;
    uint8_t *copy = rdata_new(data, len);
    if (len && !copy)
        return CE_NOMEM;
    raft_entry *e = &l->ents[l->n++];
    e->term = term;
    e->index = rlog_last_index(l);
    e->type = type;
    e->data = copy;
    e->len = len;
    return 0;
}

/* First entry of ents whose term differs from ours (or that we lack); 0 if none. */
static uint64_t find_conflict(const rlog *l, const raft_entry *ents, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!rlog_match_term(l, ents[i].index, ents[i].term))
            return ents[i].index;
    return 0;
}

bool rlog_maybe_append(rlog *l, uint64_t index, uint64_t log_term, uint64_t commit,
                       const raft_entry *ents, size_t n, uint64_t *lastnew, int *err)
{
    *err = 0;
    if (!rlog_match_term(l, index, log_term))
        return false;
    *lastnew = index + n;
    uint64_t ci = find_conflict(l, ents, n);
    if (ci != 0) {
        /* Invariant: committed entries never conflict (Log Matching + Leader Completeness);
         * a conflict at or below committed means a corrupt leader: refuse to truncate. */
        if (ci <= l->committed) {
            *err = CE_CORRUPT;
            return false;
        }
        *err = rlog_append(l, ents + (ci - index - 1), (size_t)(index + n - ci + 1));
        if (*err)
            return false;
    }
    rlog_commit_to(l, commit < *lastnew ? commit : *lastnew);
    return true;
}

uint64_t rlog_find_conflict_by_term(const rlog *l, uint64_t index, uint64_t term,
                                    uint64_t *found_term)
{
    uint64_t last = rlog_last_index(l);
    if (index > last)
        index = last;
    uint64_t t = 0;
    while (rlog_term(l, index, &t) && t > term && index > l->snap_index)
        index--;
    if (!rlog_term(l, index, &t))
        t = 0;
    *found_term = t;
    return index;
}

void rlog_commit_to(rlog *l, uint64_t c)
{
    /* Invariant: committed never decreases and never passes the last index. */
    if (c > rlog_last_index(l))
        c = rlog_last_index(l);
    if (c > l->committed)
        l->committed = c;
}

bool rlog_maybe_commit(rlog *l, uint64_t idx, uint64_t term)
{
    /* Raft §5.4.2: only entries of the current term are committed by counting replicas. */
    if (idx > l->committed && rlog_match_term(l, idx, term)) {
        rlog_commit_to(l, idx);
        return true;
    }
    return false;
}

bool rlog_slice(const rlog *l, uint64_t lo, uint64_t hi, size_t max_bytes,
                const raft_entry **out, size_t *n)
{
    *n = 0;
    *out = NULL;
    if (lo <= l->snap_index)
        return false;
    uint64_t last = rlog_last_index(l);
    if (hi > last + 1)
        hi = last + 1;
    if (lo >= hi)
        return true;
    const raft_entry *first = &l->ents[lo - l->snap_index - 1];
    size_t want = (size_t)(hi - lo), bytes = 0, k = 0;
    for (; k < want; k++) {
        bytes += first[k].len;
        if (k > 0 && bytes > max_bytes)
            break;
    }
    *out = first;
    *n = k;
    return true;
}

void rlog_restore(rlog *l, uint64_t index, uint64_t term)
{
    drop_from(l, 0);
    l->snap_index = index;
    l->snap_term = term;
    l->committed = index;
    l->stabled = index;
    /* applied moves to index when the caller advances past the snapshot. */
}

void rlog_compact(rlog *l, uint64_t index)
{
    if (index <= l->snap_index)
        return;
    size_t k = (size_t)(index - l->snap_index);
    uint64_t term = l->ents[k - 1].term;
    for (size_t i = 0; i < k; i++)
        rdata_unref(l->ents[i].data);
    memmove(l->ents, l->ents + k, (l->n - k) * sizeof(*l->ents));
    l->n -= k;
    l->snap_index = index;
    l->snap_term = term;
}
