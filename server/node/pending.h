/*
 * pending.h: requests waiting on the node, keyed by request ID: proposals waiting for their
 * entry to be applied, and linearizable reads waiting for their read index to be applied.
 * A chained hash table (power-of-two buckets) plus a FIFO of reads. Invariant: an entry is in
 * the table until it is answered or cancelled; reads stay in the FIFO until answered, a
 * cancelled read is only marked and skipped.
 */
#ifndef CETCD_PENDING_H
#define CETCD_PENDING_H

#include "node.h"

typedef struct pending pending;
struct pending {
    uint64_t id;
    node_write_cb wcb;        /* set for proposals */
    node_read_cb rcb;         /* set for reads */
    void *ctx;
    uint64_t read_index;      /* reads: known once raft answers; 0 = not yet */
    uint64_t since_ms;        /* when the request started (request timeout) */
    bool cancelled;
    int answer_err;           /* proposals: answer with this error whatever the entry gives */
    uint64_t term;            /* proposals: the Raft term when proposed */
    pending *hnext;           /* hash chain */
    pending *rnext;           /* read FIFO */
};

typedef struct pending_table {
    pending **buckets;
    size_t nbuckets;
    size_t count;
    pending *rhead, *rtail;   /* reads in arrival order */
} pending_table;

int pending_init(pending_table *t);
void pending_fini(pending_table *t);
/* Adds a new waiter; *out set. CE_NOMEM. */
int pending_add(pending_table *t, uint64_t id, node_write_cb wcb, node_read_cb rcb, void *ctx,
                pending **out);
/* Removes and returns the waiter with id, or NULL. Reads stay linked in the FIFO, marked. */
pending *pending_take(pending_table *t, uint64_t id);
pending *pending_find(pending_table *t, uint64_t id);

#endif
