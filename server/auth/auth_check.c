/*
 * auth_check.c: the in-memory copy of the auth store and the permission checks.
 *
 * The copy (users and roles unpacked, sorted by name as the table keeps them, the enabled
 * flag, the revision) is rebuilt from the store whenever it is stale: after every applied
 * auth change, after a Raft snapshot replaced the store, or when asked about another store
 * object. With auth disabled a check costs one flag test after the first rebuild.
 *
 * A request's key range is permitted when the union of the matching permissions of the
 * user's roles covers all of it (etcd's interval-tree Contains): each permission and the
 * request are turned into half-open intervals [from, to) of byte strings, where a single key
 * k is [k, k+"\0") and a range_end of "\0" means no upper bound.
 */
#include <stdlib.h>
#include <string.h>

#include "auth_int.h"
#include "err.h"

/* ---- the copy ------------------------------------------------------------------------------ */

void auth__cache_clear(auth *a)
{
    for (size_t i = 0; i < a->nusers; i++)
        authpb__user__free_unpacked(a->users[i], 0);
    for (size_t i = 0; i < a->nroles; i++)
        authpb__role__free_unpacked(a->roles[i], 0);
    free(a->users);
    free(a->roles);
    a->users = 0;
    a->roles = 0;
    a->nusers = a->nroles = 0;
}

struct collect {
    void **v;
    size_t n, cap;
    bool role;
};

static int collect_rec(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct collect *c = arg;
    void *msg;

    (void)key;
    (void)klen;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        void **v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return CE_NOMEM;
        c->v = v;
        c->cap = cap;
    }
    msg = c->role ? (void *)authpb__role__unpack(0, vlen, val) : (void *)authpb__user__unpack(0, vlen, val);
    if (!msg)
        return CE_CORRUPT;
    c->v[c->n++] = msg;
    return 0;
}

static int load_all(mvcc *m, const char *prefix, bool role, struct collect *c)
{
    c->role = role;
    return mvcc_auth_walk(m, prefix, strlen(prefix), collect_rec, c);
}

int auth__refresh(auth *a, mvcc *m)
{
    struct collect u = {0}, r = {0};
    int rc;

    if (!a->stale && a->store == m)
        return 0;
    auth__cache_clear(a);
    rc = load_all(m, AUTH_USER_PREFIX, false, &u);
    if (rc == 0)
        rc = load_all(m, AUTH_ROLE_PREFIX, true, &r);
    a->users = (Authpb__User **)u.v;
    a->nusers = u.n;
    a->roles = (Authpb__Role **)r.v;
    a->nroles = r.n;
    if (rc) {
        auth__cache_clear(a);
        return rc;
    }
    a->enabled = auth__read_enabled(m);
    a->rev = auth__read_revision(m);
    a->store = m;
    a->stale = false;
    return 0;
}

static int name_cmp(const ProtobufCBinaryData *n, const char *name)
{
    size_t len = strlen(name), k = n->len < len ? n->len : len;
    int c = k ? memcmp(n->data, name, k) : 0;

    if (c)
        return c;
    return n->len < len ? -1 : n->len > len;
}

const ProtobufCBinaryData *auth__user_name(const auth *a, size_t i)
{
    return &a->users[i]->name;
}

const ProtobufCBinaryData *auth__role_name(const auth *a, size_t i)
{
    return &a->roles[i]->name;
}

/* Binary search over n records sorted by name; true with *at set when name is found. */
static bool find_sorted(const auth *a, size_t n, const ProtobufCBinaryData *(*name_at)(const auth *, size_t),
                        const char *name, size_t *at)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(name_at(a, mid), name);
        if (!c) {
            *at = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

const Authpb__User *auth__find_user(const auth *a, const char *name)
{
    size_t i;

    return find_sorted(a, a->nusers, auth__user_name, name, &i) ? a->users[i] : 0;
}

const Authpb__Role *auth__find_role(const auth *a, const char *name)
{
    size_t i;

    return find_sorted(a, a->nroles, auth__role_name, name, &i) ? a->roles[i] : 0;
}

bool auth_is_enabled(auth *a, mvcc *m)
{
    return auth__refresh(a, m) == 0 && a->enabled;
}

uint64_t auth_revision(auth *a, mvcc *m)
{
    return auth__refresh(a, m) == 0 ? a->rev : 0;
}

/* ---- intervals --------------------------------------------------------------------------------- */

/* A bound: the bytes p[0..n), followed by one zero byte when z; or +infinity when inf. */
typedef struct bound {
    const uint8_t *p;
    size_t n;
    bool z, inf;
} bound;

typedef struct ivl {
    bound from, to;
} ivl;

static int bound_cmp(const bound *x, const bound *y)
{
    size_t xn = x->n + x->z, yn = y->n + y->z, k = xn < yn ? xn : yn;

    if (x->inf || y->inf)
        return x->inf - y->inf;
    for (size_t i = 0; i < k; i++) {
        uint8_t a = i < x->n ? x->p[i] : 0, b = i < y->n ? y->p[i] : 0;
        if (a != b)
            return a < b ? -1 : 1;
    }
    return xn < yn ? -1 : xn > yn;
}

static ivl make_ivl(const ProtobufCBinaryData *key, const ProtobufCBinaryData *end)
{
    ivl v = {{key->data, key->len, false, false}, {key->data, key->len, true, false}};

    if (end->len == 1 && end->data[0] == 0)
        v.to.inf = true;
    else if (end->len)
        v.to = (bound){end->data, end->len, false, false};
    return v;
}

static bool perm_matches(const Authpb__Permission *p, bool write)
{
    if (p->permtype == AUTHPB__PERMISSION__TYPE__READWRITE)
        return true;
    return write ? p->permtype == AUTHPB__PERMISSION__TYPE__WRITE
                 : p->permtype == AUTHPB__PERMISSION__TYPE__READ;
}

/* Advances cur over the permissions of role that start at or before it; true if it moved. */
static bool extend(const Authpb__Role *role, bool write, bound *cur)
{
    bool moved = false;

    for (size_t i = 0; i < role->n_keypermission; i++) {
        const Authpb__Permission *p = role->keypermission[i];
        ivl pv;
        if (!perm_matches(p, write))
            continue;
        pv = make_ivl(&p->key, &p->range_end);
        if (bound_cmp(&pv.from, cur) <= 0 && bound_cmp(&pv.to, cur) > 0) {
            *cur = pv.to;
            moved = true;
        }
    }
    return moved;
}

/* The user's roles cover [want.from, want.to): walk cur forward over permissions until it
 * reaches want.to or nothing extends it (each pass moves cur strictly forward). */
static bool covered(const auth *a, const Authpb__User *u, ivl want, bool write)
{
    bound cur = want.from;
    bool moved = true;

    if (bound_cmp(&want.from, &want.to) >= 0)
        return true;             /* an empty range asks for nothing */
    while (moved && bound_cmp(&cur, &want.to) < 0) {
        moved = false;
        for (size_t i = 0; i < u->n_roles; i++) {
            const Authpb__Role *r = auth__find_role(a, u->roles[i]);
            if (r && extend(r, write, &cur))
                moved = true;
        }
    }
    return bound_cmp(&cur, &want.to) >= 0;
}

static bool is_root(const Authpb__User *u)
{
    for (size_t i = 0; i < u->n_roles; i++)
        if (!strcmp(u->roles[i], AUTH_ROOT))
            return true;
    return false;
}

/* The user a check concerns: 0 with *u NULL when auth is off (everything allowed). */
static int subject(auth *a, mvcc *m, const char *user, const Authpb__User **u)
{
    int rc = auth__refresh(a, m);

    *u = 0;
    if (rc || !a->enabled)
        return rc;
    if (!user || !*user)
        return CE_USER_EMPTY;
    *u = auth__find_user(a, user);
    return *u ? 0 : CE_PERMISSION_DENIED;
}

int auth_check_range(auth *a, mvcc *m, const char *user, const ProtobufCBinaryData *key,
                     const ProtobufCBinaryData *range_end, bool write)
{
    const Authpb__User *u;
    int rc = subject(a, m, user, &u);

    if (rc || !u || is_root(u))
        return rc;
    return covered(a, u, make_ivl(key, range_end), write) ? 0 : CE_PERMISSION_DENIED;
}

static int check_ops(auth *a, const Authpb__User *u, Etcdserverpb__RequestOp **ops, size_t n);

static int check_one(const auth *a, const Authpb__User *u, const ProtobufCBinaryData *key,
                     const ProtobufCBinaryData *end, bool write)
{
    return covered(a, u, make_ivl(key, end), write) ? 0 : CE_PERMISSION_DENIED;
}

static int check_op(auth *a, const Authpb__User *u, const Etcdserverpb__RequestOp *op)
{
    static const ProtobufCBinaryData none = {0, 0};
    int rc;

    switch (op->request_case) {
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        return check_one(a, u, &op->request_range->key, &op->request_range->range_end, false);
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        rc = check_one(a, u, &op->request_put->key, &none, true);
        if (!rc && op->request_put->prev_kv)
            rc = check_one(a, u, &op->request_put->key, &none, false);
        return rc;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        rc = check_one(a, u, &op->request_delete_range->key, &op->request_delete_range->range_end, true);
        if (!rc && op->request_delete_range->prev_kv)
            rc = check_one(a, u, &op->request_delete_range->key,
                           &op->request_delete_range->range_end, false);
        return rc;
    case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
        const Etcdserverpb__TxnRequest *t = op->request_txn;
        for (size_t i = 0; i < t->n_compare; i++)
            if ((rc = check_one(a, u, &t->compare[i]->key, &t->compare[i]->range_end, false)))
                return rc;
        rc = check_ops(a, u, t->success, t->n_success);
        return rc ? rc : check_ops(a, u, t->failure, t->n_failure);
    }
    default:
        return 0;
    }
}

static int check_ops(auth *a, const Authpb__User *u, Etcdserverpb__RequestOp **ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = check_op(a, u, ops[i]);
        if (rc)
            return rc;
    }
    return 0;
}

int auth_check_txn(auth *a, mvcc *m, const char *user, const Etcdserverpb__TxnRequest *t)
{
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    const Authpb__User *u;
    int rc = subject(a, m, user, &u);

    if (rc || !u || is_root(u))
        return rc;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    op.request_txn = (Etcdserverpb__TxnRequest *)t;
    return check_op(a, u, &op);
}

int auth_check_request(auth *a, mvcc *m, const char *user, const Cetcdpb__InternalRequest *ir)
{
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    const Authpb__User *u;
    int rc;

    switch (ir->request_case) {
    case CETCDPB__INTERNAL_REQUEST__REQUEST_PUT:
        op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        op.request_put = ir->put;
        break;
    case CETCDPB__INTERNAL_REQUEST__REQUEST_DELETE_RANGE:
        op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        op.request_delete_range = ir->delete_range;
        break;
    case CETCDPB__INTERNAL_REQUEST__REQUEST_TXN:
        op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
        op.request_txn = ir->txn;
        break;
    default:
        return 0;
    }
    rc = subject(a, m, user, &u);
    if (rc || !u || is_root(u))
        return rc;
    return check_op(a, u, &op);
}

int auth_check_at_apply(auth *a, mvcc *m, const Cetcdpb__InternalRequest *ir)
{
    if (ir->auth_revision == auth_revision(a, m))
        return 0;
    return auth_check_request(a, m, ir->auth_user && *ir->auth_user ? ir->auth_user : 0, ir);
}

int auth_check_admin(auth *a, mvcc *m, const char *user)
{
    const Authpb__User *u;
    int rc = subject(a, m, user, &u);

    if (rc || !u)
        return rc;
    return is_root(u) ? 0 : CE_PERMISSION_DENIED;
}

bool auth_user_has_role(auth *a, mvcc *m, const char *user, const char *role)
{
    const Authpb__User *u;

    if (subject(a, m, user, &u) || !u)
        return false;
    for (size_t i = 0; i < u->n_roles; i++)
        if (!strcmp(u->roles[i], role))
            return true;
    return false;
}
