/*
 * net.c: the simulated network between members.
 *
 * Every message is encoded with raft_msg_encode when sent and decoded on delivery, so the
 * wire format is exercised by every exchange. A sent message gets a delivery step (now + 1 +
 * a random delay) and a random tie-break, and sits in a min-heap on (step, tie-break): random
 * delays reorder messages. It may be queued twice (duplicate). On delivery it is lost if the
 * recipient is not up, if a partition separates the two members, or at random (drop rate of
 * the fault phase). A MsgSnap carries the sender's snapshot data (the snapshot file matching
 * the message's metadata, checked at send); when it is delivered or lost the sender is told
 * with raft_report_snapshot, and a loss to a down or partitioned member is sometimes reported
 * with raft_report_unreachable, as a transport would. Those reports are made at delivery
 * time, never while the sender is between raft_get_update and raft_advance.
 *
 * Invariant: a message is delivered at most once per copy, never before the step after it
 * was sent, and only between members of one partition group.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "sim.h"

void net_init(net *n)
{
    memset(n, 0, sizeof(*n));
}

static void wmsg_free(wmsg *w)
{
    free(w->buf);
    ssnap_unref(w->snap);
}

void net_free(net *n)
{
    for (size_t i = 0; i < n->n; i++)
        wmsg_free(&n->heap[i]);
    free(n->heap);
    memset(n, 0, sizeof(*n));
}

static bool before(const wmsg *a, const wmsg *b)
{
    return a->at < b->at || (a->at == b->at && a->order < b->order);
}

static void swap(wmsg *a, wmsg *b)
{
    wmsg t = *a;
    *a = *b;
    *b = t;
}

static void heap_push(net *n, const wmsg *w)
{
    if (n->n == n->cap) {
        n->cap = n->cap ? n->cap * 2 : 256;
        n->heap = realloc(n->heap, n->cap * sizeof(wmsg));
        if (!n->heap)
            abort();
    }
    size_t i = n->n++;
    n->heap[i] = *w;
    while (i > 0 && before(&n->heap[i], &n->heap[(i - 1) / 2])) {
        swap(&n->heap[i], &n->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
}

static wmsg heap_pop(net *n)
{
    wmsg top = n->heap[0];
    n->heap[0] = n->heap[--n->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n->n && before(&n->heap[l], &n->heap[m]))
            m = l;
        if (r < n->n && before(&n->heap[r], &n->heap[m]))
            m = r;
        if (m == i)
            break;
        swap(&n->heap[i], &n->heap[m]);
        i = m;
    }
    return top;
}

static uint64_t delay(sim *s)
{
    if (s->phase == PHASE_HEAL)
        return 1 + rng_below(&s->rng, 2);
    return 1 + rng_below(&s->rng, s->p.delay_max);
}

/* The snapshot file a MsgSnap from m stands for; NULL (and a failure) if m has none. */
static ssnap *snap_for(sim *s, member *m, const raft_msg *msg)
{
    ssnap *sn = m->d.cur.snap;
    const raft_snapshot_meta *meta = &msg->snapshot;
    if (!sn || sn->index != meta->index || sn->term != meta->term ||
        !sconf_eq(sn->conf, sconf_from_raft(&meta->conf))) {
        sim_fail(s, "snapshot data", "m%llu sends MsgSnap %llu/%llu but its snapshot is %llu/%llu",
                 (unsigned long long)m->id, (unsigned long long)meta->index,
                 (unsigned long long)meta->term, (unsigned long long)(sn ? sn->index : 0),
                 (unsigned long long)(sn ? sn->term : 0));
        return NULL;
    }
    return sn;
}

void net_send(sim *s, uint64_t from, const raft_msg *m)
{
    member *src = &s->m[from];
    wmsg w = {.from = from, .to = m->to, .from_inc = src->inc};
    if (m->from != from || m->to == RAFT_NONE || m->to == from) {
        sim_fail(s, "message", "m%llu sends %s from %llu to %llu", (unsigned long long)from,
                 raft_msg_type_name(m->type), (unsigned long long)m->from,
                 (unsigned long long)m->to);
        return;
    }
    if (m->type == RAFT_MSG_SNAP && !(w.snap = snap_for(s, src, m)))
        return;
    int rc = raft_msg_encode(m, &w.buf, &w.len);
    if (rc) {
        sim_fail(s, "message", "raft_msg_encode(%s) = %d", raft_msg_type_name(m->type), rc);
        return;
    }
    s->st.msgs++;
    ssnap_ref(w.snap);
    w.at = s->step + delay(s);
    w.order = rng_next(&s->rng);
    bool dup = s->phase == PHASE_FAULT && m->type != RAFT_MSG_PROP &&
               rng_chance(&s->rng, s->p.dup_pm);
    if (dup) {
        /* Proposals are not duplicated: deduplicating client requests is the node's job. */
        wmsg c = w;
        c.buf = malloc(w.len);
        if (!c.buf)
            abort();
        memcpy(c.buf, w.buf, w.len);
        ssnap_ref(c.snap);
        c.at = s->step + delay(s);
        c.order = rng_next(&s->rng);
        heap_push(&s->net, &c);
    }
    heap_push(&s->net, &w);
}

/* Why w is lost (NULL: delivered). */
static const char *loss(sim *s, const wmsg *w, member *dst)
{
    if (!dst || dst->state != M_UP)
        return "down";
    if (s->net.group[w->from] != s->net.group[w->to])
        return "partition";
    uint64_t removed = s->m[w->from].removed_at;
    if (s->phase == PHASE_HEAL && removed && raft_applied_index(dst->r) >= removed)
        return "from a removed member"; /* etcd's transport drops those once it applied it */
    if (s->phase == PHASE_FAULT && rng_chance(&s->rng, s->p.drop_pm))
        return "drop";
    if (w->snap && s->phase == PHASE_FAULT && rng_chance(&s->rng, s->p.snapfail_pm))
        return "snapshot transfer failed";
    return NULL;
}

/* The transport's reports to the sender, if it still runs the incarnation that sent. */
static void report(sim *s, const wmsg *w, bool delivered, bool unreachable)
{
    member *src = sim_member(s, w->from);
    if (!src || src->state != M_UP || src->inc != w->from_inc)
        return;
    if (w->snap) {
        raft_report_snapshot(src->r, w->to, delivered);
        sim_trace(s, "m%llu report snapshot to m%llu: %s", (unsigned long long)w->from,
                  (unsigned long long)w->to, delivered ? "ok" : "failed");
    }
    if (unreachable && rng_chance(&s->rng, s->p.unreach_pm)) {
        raft_report_unreachable(src->r, w->to);
        sim_trace(s, "m%llu report unreachable m%llu", (unsigned long long)w->from,
                  (unsigned long long)w->to);
    }
}

static void deliver_one(sim *s, wmsg *w)
{
    member *dst = sim_member(s, w->to);
    const char *why = loss(s, w, dst);
    if (why) {
        s->st.dropped++;
        if (s->verbose) {
            raft_msg m;
            if (raft_msg_decode(w->buf, w->len, &m) == 0) {
                sim_trace(s, "lost %s m%llu->m%llu (%s)", raft_msg_type_name(m.type),
                          (unsigned long long)w->from, (unsigned long long)w->to, why);
                raft_msg_free(&m);
            }
        }
        report(s, w, false, strcmp(why, "down") == 0 || strcmp(why, "partition") == 0);
        return;
    }
    raft_msg m;
    int rc = raft_msg_decode(w->buf, w->len, &m);
    if (rc) {
        sim_fail(s, "message", "raft_msg_decode = %d for a message raft encoded", rc);
        return;
    }
    member_deliver(s, dst, &m, w->snap);
    raft_msg_free(&m);
    report(s, w, true, false);
}

void net_deliver_due(sim *s)
{
    while (s->net.n && s->net.heap[0].at <= s->step && !s->failed) {
        wmsg w = heap_pop(&s->net);
        deliver_one(s, &w);
        wmsg_free(&w);
    }
}

void net_partition(sim *s, uint64_t alone)
{
    unsigned groups = 2 + (unsigned)rng_below(&s->rng, 2);
    for (uint64_t id = 1; id < s->next_id; id++)
        s->net.group[id] = alone ? (id == alone) : (uint8_t)rng_below(&s->rng, groups);
    s->net.partitioned = true;
    if (s->verbose) {
        char buf[256];
        size_t k = 0;
        for (uint64_t id = 1; id < s->next_id && k + 16 < sizeof buf; id++)
            if (sim_member(s, id))
                k += (size_t)snprintf(buf + k, sizeof buf - k, " m%llu:%u",
                                      (unsigned long long)id, s->net.group[id]);
        buf[k] = 0;
        sim_trace(s, "partition%s", buf);
    }
}

void net_heal(sim *s)
{
    memset(s->net.group, 0, sizeof(s->net.group));
    if (s->net.partitioned)
        sim_trace(s, "partition healed");
    s->net.partitioned = false;
}
