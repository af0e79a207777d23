/*
 * lease.h: the lessor, cetcd's in-memory table of leases (etcd's lessor), with no I/O and no
 * clock of its own: every function that needs the time takes now_ms (the caller's monotonic
 * milliseconds).
 *
 * Per lease it keeps the ID, the granted TTL (seconds), the local expiry (ms), renewed_index
 * (the Raft index of the entry that last granted or renewed it: replicated state, equal on
 * every member) and the set of keys attached to it. Every key is attached to at most one
 * lease; the lessor mirrors the store exactly: a key is attached to L if and only if its live
 * KeyValue has lease = L (the node keeps it so by tracking every applied put, delete, txn and
 * revoke).
 *
 * Expiry: a min-heap ordered by (check_ms, id) gives the leader the leases due for
 * revocation in O(k log n) without scanning. check_ms is the expiry, or, once the lease was
 * handed out by lessor_expired, the time it may be handed out again (the caller's retry
 * delay); invariant: check_ms >= expiry_ms, so a lease whose check_ms has passed is expired.
 *
 * Invariants: IDs are unique (never 0: 0 means "no lease"); for every lease, heap position
 * and key positions are kept in the nodes that refer back to them; the key tree is an AVL
 * tree ordered by byte-wise comparison (shorter prefix first), as the store orders keys.
 */
#ifndef CETCD_LEASE_H
#define CETCD_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* etcd's MaxLeaseTTL: a larger TTL is refused ("too large lease TTL"). */
#define LESSOR_MAX_TTL 9000000000ll

typedef struct lessor lessor;

typedef struct lessor_info {
    int64_t id;
    int64_t ttl;                 /* granted TTL, seconds */
    uint64_t expiry_ms;          /* local clock */
    uint64_t renewed_index;
    size_t nkeys;
} lessor_info;

/* A lease whose expiry passed: what the leader proposes to revoke. */
typedef struct lessor_due {
    int64_t id;
    uint64_t renewed_index;
} lessor_due;

int lessor_new(lessor **out);
void lessor_free(lessor *l);
/* Drops every lease and attachment. */
void lessor_clear(lessor *l);

/* A new lease with expiry now + ttl. 0, CE_LEASE_EXISTS, CE_LEASE_NOT_FOUND (id 0), CE_NOMEM. */
int lessor_grant(lessor *l, int64_t id, int64_t ttl, uint64_t index, uint64_t now_ms);
/* expiry = now + ttl, renewed_index = index. 0 or CE_LEASE_NOT_FOUND. */
int lessor_renew(lessor *l, int64_t id, uint64_t index, uint64_t now_ms);
/* Removes the lease and detaches its keys. 0 or CE_LEASE_NOT_FOUND. */
int lessor_revoke(lessor *l, int64_t id);
bool lessor_exists(const lessor *l, int64_t id);
/* False if there is no such lease. */
bool lessor_get(const lessor *l, int64_t id, lessor_info *out);
/* The expiry rule: an expiry decided when the lease had renewed_index applies only if the
 * lease still exists with that renewed_index (no renewal committed since). */
bool lessor_expiry_applies(const lessor *l, int64_t id, uint64_t renewed_index);
size_t lessor_count(const lessor *l);
/* Every lease ID, by expiry (earliest first, as etcd lists them; ties by ID), into a heap
 * array (*ids NULL when there is none). 0 or CE_NOMEM. */
int lessor_ids(const lessor *l, int64_t **ids, size_t *n);

/* Attaches key to lease id (detaching it from any other); id 0 only detaches.
 * 0, CE_LEASE_NOT_FOUND (unknown id: nothing changes), CE_NOMEM. */
int lessor_attach(lessor *l, const void *key, size_t len, int64_t id);
/* The lease key is attached to, 0 if none. */
int64_t lessor_key_lease(const lessor *l, const void *key, size_t len);
/* Detaches every key in etcd's range [key, end): end empty = key alone, end "\0" = every key
 * >= key. 0 or CE_NOMEM (then nothing changed). */
int lessor_detach_range(lessor *l, const ProtobufCBinaryData *key, const ProtobufCBinaryData *end);
/* Keys attached to any lease. */
size_t lessor_attached(const lessor *l);
/* The keys attached to id in ascending order, as views into the lessor (valid until the next
 * change) in a heap array the caller frees (*keys NULL when there is none). 0,
 * CE_LEASE_NOT_FOUND or CE_NOMEM. */
int lessor_keys(const lessor *l, int64_t id, ProtobufCBinaryData **keys, size_t *n);

/* This member became leader: every expiry becomes max(expiry, now + grace). */
void lessor_promote(lessor *l, uint64_t now_ms, uint64_t grace_ms);
/* Up to max leases expired at now_ms, earliest first; each is not handed out again before
 * now + retry_ms unless it is renewed (or promoted) meanwhile. Returns how many. */
size_t lessor_expired(lessor *l, uint64_t now_ms, uint64_t retry_ms, lessor_due *out, size_t max);

#endif
