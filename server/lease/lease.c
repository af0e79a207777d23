/*
 * lease.c: the lessor (lease.h): three structures over the same leases and keys.
 *
 *   - leases by ID: an open-addressing hash table (linear probing, power-of-two capacity, at
 *     most half full, deletion by backward shift, so no tombstones);
 *   - leases by due time: a binary min-heap on (check_ms, id); each lease knows its position;
 *   - attached keys: one AVL tree of key nodes ordered like the store's keys, for lookups on
 *     every put and for range deletes; each lease also holds an unordered array of its key
 *     nodes (each node knows its position there: O(1) attach and detach), sorted on demand.
 *
 * Invariants: a key node is in the tree iff it is in exactly one lease's array, at its `pos`;
 * heap[i]->heap_pos == i; a failed call (CE_NOMEM) leaves every structure as it was.
 */
#include "lease.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

struct lkey {
    struct lkey *left, *right;
    int height;
    struct lease *lease;
    size_t pos;                  /* index in lease->keys */
    size_t len;
    uint8_t data[];
};

struct lease {
    int64_t id, ttl;
    uint64_t expiry_ms, check_ms, renewed_index;
    size_t heap_pos;
    struct lkey **keys;
    size_t nkeys, capkeys;
};

struct lessor {
    struct lease **slots;        /* hash table, cap slots */
    size_t cap, n;
    struct lease **heap;         /* n entries, capheap allocated */
    size_t capheap;
    struct lkey *root;
    size_t nattached;
};

/* ---- leases by ID ---------------------------------------------------------------------- */

static uint64_t mix(int64_t id)
{
    uint64_t x = (uint64_t)id;

    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* The slot holding id, or the empty slot where it would go. */
static size_t slot_of(const lessor *l, int64_t id)
{
    size_t mask = l->cap - 1, i = mix(id) & mask;

    while (l->slots[i] && l->slots[i]->id != id)
        i = (i + 1) & mask;
    return i;
}

static struct lease *find(const lessor *l, int64_t id)
{
    return id ? l->slots[slot_of(l, id)] : NULL;
}

static int slots_grow(lessor *l)
{
    struct lease **old = l->slots;
    size_t oldcap = l->cap;

    l->slots = calloc(oldcap * 2, sizeof(*l->slots));
    if (!l->slots) {
        l->slots = old;
        return CE_NOMEM;
    }
    l->cap = oldcap * 2;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i])
            l->slots[slot_of(l, old[i]->id)] = old[i];
    free(old);
    return 0;
}

/* Empties slot i, moving later members of its probe run back so lookups still find them. */
static void slot_remove(lessor *l, size_t i)
{
    size_t mask = l->cap - 1, j = i;

    l->slots[i] = NULL;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (!l->slots[j])
            break;
        home = mix(l->slots[j]->id) & mask;
        /* stays if its home lies cyclically in (i, j] */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        l->slots[i] = l->slots[j];
        l->slots[j] = NULL;
        i = j;
    }
}

/* ---- leases by due time ---------------------------------------------------------------- */

static bool due_before(const struct lease *a, const struct lease *b)
{
    return a->check_ms != b->check_ms ? a->check_ms < b->check_ms : a->id < b->id;
}

static void heap_set(lessor *l, size_t i, struct lease *x)
{
    l->heap[i] = x;
    x->heap_pos = i;
}

static void sift_up(lessor *l, size_t i)
{
    struct lease *x = l->heap[i];

    while (i > 0 && due_before(x, l->heap[(i - 1) / 2])) {
        heap_set(l, i, l->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(l, i, x);
}

static void sift_down(lessor *l, size_t i)
{
    struct lease *x = l->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->n)
            break;
        if (c + 1 < l->n && due_before(l->heap[c + 1], l->heap[c]))
            c++;
        if (!due_before(l->heap[c], x))
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, x);
}

static void heap_fix(lessor *l, size_t i)
{
    if (i > 0 && due_before(l->heap[i], l->heap[(i - 1) / 2]))
        sift_up(l, i);
    else
        sift_down(l, i);
}

static void heap_remove(lessor *l, struct lease *x)
{
    size_t i = x->heap_pos;
    struct lease *last = l->heap[--l->n];

    if (last == x)
        return;
    heap_set(l, i, last);
    heap_fix(l, i);
}

/* ---- attached keys: AVL tree ----------------------------------------------------------- */

static int kcmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static int height(const struct lkey *t)
{
    return t ? t->height : 0;
}

static void update(struct lkey *t)
{
    int hl = height(t->left), hr = height(t->right);

    t->height = 1 + (hl > hr ? hl : hr);
}

static struct lkey *rotate_right(struct lkey *t)
{
    struct lkey *x = t->left;

    t->left = x->right;
    x->right = t;
    update(t);
    update(x);
    return x;
}

static struct lkey *rotate_left(struct lkey *t)
{
    struct lkey *x = t->right;

    t->right = x->left;
    x->left = t;
    update(t);
    update(x);
    return x;
}

static struct lkey *balance(struct lkey *t)
{
    int bf;

    update(t);
    bf = height(t->left) - height(t->right);
    if (bf > 1) {
        if (height(t->left->left) < height(t->left->right))
            t->left = rotate_left(t->left);
        return rotate_right(t);
    }
    if (bf < -1) {
        if (height(t->right->right) < height(t->right->left))
            t->right = rotate_right(t->right);
        return rotate_left(t);
    }
    return t;
}

/* x must not be in the tree yet. */
static struct lkey *avl_insert(struct lkey *t, struct lkey *x)
{
    if (!t) {
        x->left = x->right = NULL;
        x->height = 1;
        return x;
    }
    if (kcmp(x->data, x->len, t->data, t->len) < 0)
        t->left = avl_insert(t->left, x);
    else
        t->right = avl_insert(t->right, x);
    return balance(t);
}

static struct lkey *avl_unlink_min(struct lkey *t, struct lkey **min)
{
    if (!t->left) {
        *min = t;
        return t->right;
    }
    t->left = avl_unlink_min(t->left, min);
    return balance(t);
}

/* Unlinks node x (which is in the tree) without freeing it. */
static struct lkey *avl_unlink(struct lkey *t, const struct lkey *x)
{
    struct lkey *succ, *right;
    int c;

    if (t == x) {
        if (!t->right)
            return t->left;
        right = avl_unlink_min(t->right, &succ);
        succ->right = right;
        succ->left = t->left;
        return balance(succ);
    }
    c = kcmp(x->data, x->len, t->data, t->len);
    if (c < 0)
        t->left = avl_unlink(t->left, x);
    else
        t->right = avl_unlink(t->right, x);
    return balance(t);
}

static struct lkey *avl_find(struct lkey *t, const void *key, size_t len)
{
    while (t) {
        int c = kcmp(key, len, t->data, t->len);
        if (c == 0)
            return t;
        t = c < 0 ? t->left : t->right;
    }
    return NULL;
}

static void avl_free(struct lkey *t)
{
    while (t) {
        struct lkey *right = t->right;
        avl_free(t->left);
        free(t);
        t = right;
    }
}

/* ---- a lease's key array --------------------------------------------------------------- */

static int keys_reserve(struct lease *ls)
{
    size_t cap;
    struct lkey **v;

    if (ls->nkeys < ls->capkeys)
        return 0;
    cap = ls->capkeys ? ls->capkeys * 2 : 4;
    v = realloc(ls->keys, cap * sizeof(*v));
    if (!v)
        return CE_NOMEM;
    ls->keys = v;
    ls->capkeys = cap;
    return 0;
}

/* Needs keys_reserve(ls) first. */
static void keys_add(struct lease *ls, struct lkey *k)
{
    k->lease = ls;
    k->pos = ls->nkeys;
    ls->keys[ls->nkeys++] = k;
}

static void keys_drop(struct lease *ls, struct lkey *k)
{
    struct lkey *last = ls->keys[--ls->nkeys];

    ls->keys[k->pos] = last;
    last->pos = k->pos;
}

/* Removes k from its lease and the tree, and frees it. */
static void key_detach(lessor *l, struct lkey *k)
{
    keys_drop(k->lease, k);
    l->root = avl_unlink(l->root, k);
    l->nattached--;
    free(k);
}

/* ---- public: lifecycle ----------------------------------------------------------------- */

#define INITIAL_SLOTS 16

int lessor_new(lessor **out)
{
    lessor *l = calloc(1, sizeof(*l));

    if (!l)
        return CE_NOMEM;
    l->slots = calloc(INITIAL_SLOTS, sizeof(*l->slots));
    if (!l->slots) {
        free(l);
        return CE_NOMEM;
    }
    l->cap = INITIAL_SLOTS;
    *out = l;
    return 0;
}

static void lease_free(struct lease *ls)
{
    free(ls->keys);
    free(ls);
}

void lessor_clear(lessor *l)
{
    for (size_t i = 0; i < l->n; i++)
        lease_free(l->heap[i]);
    memset(l->slots, 0, l->cap * sizeof(*l->slots));
    l->n = 0;
    avl_free(l->root);
    l->root = NULL;
    l->nattached = 0;
}

void lessor_free(lessor *l)
{
    if (!l)
        return;
    lessor_clear(l);
    free(l->slots);
    free(l->heap);
    free(l);
}

/* ---- public: leases -------------------------------------------------------------------- */

static int heap_reserve(lessor *l)
{
    size_t cap;
    struct lease **v;

    if (l->n < l->capheap)
        return 0;
    cap = l->capheap ? l->capheap * 2 : INITIAL_SLOTS;
    v = realloc(l->heap, cap * sizeof(*v));
    if (!v)
        return CE_NOMEM;
    l->heap = v;
    l->capheap = cap;
    return 0;
}

static uint64_t expiry_of(int64_t ttl, uint64_t now_ms)
{
    return now_ms + (ttl > 0 ? (uint64_t)ttl * 1000 : 0);
}

int lessor_grant(lessor *l, int64_t id, int64_t ttl, uint64_t index, uint64_t now_ms)
{
    struct lease *ls;

    if (id == 0)
        return CE_LEASE_NOT_FOUND;
    if (find(l, id))
        return CE_LEASE_EXISTS;
    if ((l->n + 1) * 2 > l->cap && slots_grow(l))
        return CE_NOMEM;
    if (heap_reserve(l))
        return CE_NOMEM;
    ls = calloc(1, sizeof(*ls));
    if (!ls)
        return CE_NOMEM;
    ls->id = id;
    ls->ttl = ttl;
    ls->renewed_index = index;
    ls->expiry_ms = ls->check_ms = expiry_of(ttl, now_ms);
    l->slots[slot_of(l, id)] = ls;
    heap_set(l, l->n++, ls);
    sift_up(l, l->n - 1);
    return 0;
}

int lessor_renew(lessor *l, int64_t id, uint64_t index, uint64_t now_ms)
{
    struct lease *ls = find(l, id);

    if (!ls)
        return CE_LEASE_NOT_FOUND;
    ls->renewed_index = index;
    ls->expiry_ms = ls->check_ms = expiry_of(ls->ttl, now_ms);
    heap_fix(l, ls->heap_pos);
    return 0;
}

int lessor_revoke(lessor *l, int64_t id)
{
    struct lease *ls = find(l, id);

    if (!ls)
        return CE_LEASE_NOT_FOUND;
    while (ls->nkeys)
        key_detach(l, ls->keys[ls->nkeys - 1]);
    heap_remove(l, ls);
    slot_remove(l, slot_of(l, id));
    lease_free(ls);
    return 0;
}

bool lessor_exists(const lessor *l, int64_t id)
{
    return find(l, id) != NULL;
}

bool lessor_get(const lessor *l, int64_t id, lessor_info *out)
{
    const struct lease *ls = find(l, id);

    if (!ls)
        return false;
    out->id = ls->id;
    out->ttl = ls->ttl;
    out->expiry_ms = ls->expiry_ms;
    out->renewed_index = ls->renewed_index;
    out->nkeys = ls->nkeys;
    return true;
}

bool lessor_expiry_applies(const lessor *l, int64_t id, uint64_t renewed_index)
{
    const struct lease *ls = find(l, id);

    return ls && ls->renewed_index == renewed_index;
}

size_t lessor_count(const lessor *l)
{
    return l->n;
}

static int expiry_cmp(const void *a, const void *b)
{
    const struct lease *x = *(struct lease *const *)a, *y = *(struct lease *const *)b;

    if (x->expiry_ms != y->expiry_ms)
        return x->expiry_ms < y->expiry_ms ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int lessor_ids(const lessor *l, int64_t **ids, size_t *n)
{
    struct lease **v;

    *ids = NULL;
    *n = 0;
    if (!l->n)
        return 0;
    v = malloc(l->n * sizeof(*v));
    *ids = malloc(l->n * sizeof(**ids));
    if (!v || !*ids) {
        free(v);
        free(*ids);
        *ids = NULL;
        return CE_NOMEM;
    }
    memcpy(v, l->heap, l->n * sizeof(*v));
    qsort(v, l->n, sizeof(*v), expiry_cmp);
    for (size_t i = 0; i < l->n; i++)
        (*ids)[i] = v[i]->id;
    free(v);
    *n = l->n;
    return 0;
}

/* ---- public: attachments --------------------------------------------------------------- */

static int move_key(struct lkey *k, struct lease *to)
{
    if (keys_reserve(to))
        return CE_NOMEM;
    keys_drop(k->lease, k);
    keys_add(to, k);
    return 0;
}

static int new_key(lessor *l, const void *key, size_t len, struct lease *to)
{
    struct lkey *k;

    if (keys_reserve(to))
        return CE_NOMEM;
    k = malloc(sizeof(*k) + len);
    if (!k)
        return CE_NOMEM;
    k->len = len;
    memcpy(k->data, key, len);
    keys_add(to, k);
    l->root = avl_insert(l->root, k);
    l->nattached++;
    return 0;
}

int lessor_attach(lessor *l, const void *key, size_t len, int64_t id)
{
    struct lease *to = NULL;
    struct lkey *k;

    if (id && !(to = find(l, id)))
        return CE_LEASE_NOT_FOUND;
    k = avl_find(l->root, key, len);
    if (k && k->lease == to)
        return 0;
    if (!to) {
        if (k)
            key_detach(l, k);
        return 0;
    }
    return k ? move_key(k, to) : new_key(l, key, len, to);
}

int64_t lessor_key_lease(const lessor *l, const void *key, size_t len)
{
    const struct lkey *k = avl_find(l->root, key, len);

    return k ? k->lease->id : 0;
}

size_t lessor_attached(const lessor *l)
{
    return l->nattached;
}

struct kvec {
    struct lkey **v;
    size_t n;
};

/* The nodes of t in [key, end) (end NULL = no bound), in order; v has room for all. */
static void collect(struct lkey *t, const ProtobufCBinaryData *key, const ProtobufCBinaryData *end,
                    struct kvec *v)
{
    while (t) {
        bool above = kcmp(t->data, t->len, key->data, key->len) >= 0;
        bool below = !end || kcmp(t->data, t->len, end->data, end->len) < 0;
        if (above)
            collect(t->left, key, end, v);
        if (above && below)
            v->v[v->n++] = t;
        if (!below)
            return;
        t = t->right;
    }
}

int lessor_detach_range(lessor *l, const ProtobufCBinaryData *key, const ProtobufCBinaryData *end)
{
    bool unbounded = end->len == 1 && end->data[0] == 0;
    struct kvec v = {NULL, 0};

    if (end->len == 0)
        return lessor_attach(l, key->data, key->len, 0);
    if (!l->nattached)
        return 0;
    v.v = malloc(l->nattached * sizeof(*v.v));
    if (!v.v)
        return CE_NOMEM;
    collect(l->root, key, unbounded ? NULL : end, &v);
    for (size_t i = 0; i < v.n; i++)
        key_detach(l, v.v[i]);
    free(v.v);
    return 0;
}

static int view_cmp(const void *a, const void *b)
{
    const ProtobufCBinaryData *x = a, *y = b;

    return kcmp(x->data, x->len, y->data, y->len);
}

int lessor_keys(const lessor *l, int64_t id, ProtobufCBinaryData **keys, size_t *n)
{
    const struct lease *ls = find(l, id);

    *keys = NULL;
    *n = 0;
    if (!ls)
        return CE_LEASE_NOT_FOUND;
    if (!ls->nkeys)
        return 0;
    *keys = malloc(ls->nkeys * sizeof(**keys));
    if (!*keys)
        return CE_NOMEM;
    for (size_t i = 0; i < ls->nkeys; i++) {
        (*keys)[i].data = ls->keys[i]->data;
        (*keys)[i].len = ls->keys[i]->len;
    }
    qsort(*keys, ls->nkeys, sizeof(**keys), view_cmp);
    *n = ls->nkeys;
    return 0;
}

/* ---- public: time ---------------------------------------------------------------------- */

void lessor_promote(lessor *l, uint64_t now_ms, uint64_t grace_ms)
{
    uint64_t floor_ms = now_ms + grace_ms;

    for (size_t i = 0; i < l->n; i++) {
        struct lease *ls = l->heap[i];
        if (ls->expiry_ms < floor_ms)
            ls->expiry_ms = floor_ms;
        ls->check_ms = ls->expiry_ms;
    }
    for (size_t i = l->n / 2; i-- > 0;)
        sift_down(l, i);
}

size_t lessor_expired(lessor *l, uint64_t now_ms, uint64_t retry_ms, lessor_due *out, size_t max)
{
    size_t count = 0;

    while (count < max && l->n && l->heap[0]->check_ms <= now_ms) {
        struct lease *ls = l->heap[0];
        out[count].id = ls->id;
        out[count].renewed_index = ls->renewed_index;
        count++;
        ls->check_ms = now_ms + (retry_ms ? retry_ms : 1);
        sift_down(l, 0);
    }
    return count;
}
