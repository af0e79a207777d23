/*
 * auth.c: the auth store's records and the application of replicated auth changes.
 *
 * Records in the mvcc store's "auth" table (mvcc_auth_*), all written inside the batch that
 * applies the Raft entry:
 *   "enabled"          1 byte: 1 = authentication enabled, 0 (or absent) = disabled
 *   "revision"         8 bytes: the auth revision, uint64 big-endian (absent = 0); +1 for
 *                      every change that modified the store (etcd's authRevision)
 *   "user/" + name     protobuf authpb.User: name, password = the PBKDF2 hash string (empty
 *                      for a user added with no_password), roles sorted bytewise, options
 *   "role/" + name     protobuf authpb.Role: name, keyPermission sorted by (key, range_end)
 * The role "root" need not have a record: granting it is always allowed (etcd's rule).
 *
 * Invariant: a request either fails before writing anything, or writes all its records and
 * bumps the revision; on failure the batch stays usable (no partial change is left: every
 * validation happens before the first write).
 */
#include <stdlib.h>
#include <string.h>

#include "auth_int.h"
#include "err.h"
#include "evloop.h"

/* ---- records ----------------------------------------------------------------------------- */

/* Builds the record key prefix + name (not NUL-terminated) into a fresh buffer. */
static char *rec_key(const char *prefix, const char *name, size_t *klen)
{
    size_t plen = strlen(prefix), nlen = strlen(name);
    char *key = malloc(plen + nlen ? plen + nlen : 1);

    if (key) {
        memcpy(key, prefix, plen);
        memcpy(key + plen, name, nlen);
        *klen = plen + nlen;
    }
    return key;
}

static int put_msg(mvcc *m, const char *prefix, const char *name, const ProtobufCMessage *msg)
{
    size_t klen, len = protobuf_c_message_get_packed_size(msg);
    char *key = rec_key(prefix, name, &klen);
    uint8_t *val = malloc(len ? len : 1);
    int rc = CE_NOMEM;

    if (key && val) {
        protobuf_c_message_pack(msg, val);
        rc = mvcc_auth_put(m, key, klen, val, len);
    }
    free(key);
    free(val);
    return rc;
}

static int del_rec(mvcc *m, const char *prefix, const char *name)
{
    size_t klen;
    char *key = rec_key(prefix, name, &klen);
    int rc;

    if (!key)
        return CE_NOMEM;
    rc = mvcc_auth_del(m, key, klen);
    free(key);
    return rc;
}

static int load_rec(mvcc *m, const char *prefix, const char *name, void **val, size_t *len)
{
    size_t klen;
    char *key = rec_key(prefix, name, &klen);
    int rc;

    if (!key)
        return CE_NOMEM;
    rc = mvcc_auth_get(m, key, klen, val, len);
    free(key);
    return rc;
}

/* Reads and unpacks the desc message stored under prefix + name; absent = notfound. */
static int load_msg(mvcc *m, const char *prefix, const char *name, const ProtobufCMessageDescriptor *desc,
                    int notfound, ProtobufCMessage **out)
{
    void *v;
    size_t len;
    int rc = load_rec(m, prefix, name, &v, &len);

    if (rc)
        return rc == CE_NOTFOUND ? notfound : rc;
    *out = protobuf_c_message_unpack(desc, 0, len, v);
    free(v);
    return *out ? 0 : CE_CORRUPT;
}

int auth__load_user(mvcc *m, const char *name, Authpb__User **u)
{
    ProtobufCMessage *msg;
    int rc = load_msg(m, AUTH_USER_PREFIX, name, &authpb__user__descriptor, CE_USER_NOT_FOUND, &msg);

    if (rc == 0)
        *u = (Authpb__User *)msg;
    return rc;
}

int auth__load_role(mvcc *m, const char *name, Authpb__Role **r)
{
    ProtobufCMessage *msg;
    int rc = load_msg(m, AUTH_ROLE_PREFIX, name, &authpb__role__descriptor, CE_ROLE_NOT_FOUND, &msg);

    if (rc == 0)
        *r = (Authpb__Role *)msg;
    return rc;
}

/* 0 if the record under prefix + name exists and parses, else load_msg's error. */
static int rec_check(mvcc *m, const char *prefix, const char *name, const ProtobufCMessageDescriptor *desc,
                     int notfound)
{
    ProtobufCMessage *msg;
    int rc = load_msg(m, prefix, name, desc, notfound, &msg);

    if (rc == 0)
        protobuf_c_message_free_unpacked(msg, 0);
    return rc;
}

static int user_check(mvcc *m, const char *name)
{
    return rec_check(m, AUTH_USER_PREFIX, name, &authpb__user__descriptor, CE_USER_NOT_FOUND);
}

static int role_check(mvcc *m, const char *name)
{
    return rec_check(m, AUTH_ROLE_PREFIX, name, &authpb__role__descriptor, CE_ROLE_NOT_FOUND);
}

/* Whether name may be deleted: root is protected while auth is on, and it must exist. */
static int deletable(mvcc *m, const char *name, int (*check)(mvcc *, const char *))
{
    if (auth__read_enabled(m) && !strcmp(name, AUTH_ROOT))
        return CE_INVALID_AUTH_MGMT;
    return check(m, name);
}

bool auth__read_enabled(mvcc *m)
{
    void *v;
    size_t len;
    bool on;

    if (mvcc_auth_get(m, AUTH_KEY_ENABLED, strlen(AUTH_KEY_ENABLED), &v, &len))
        return false;
    on = len == 1 && *(uint8_t *)v == 1;
    free(v);
    return on;
}

uint64_t auth__read_revision(mvcc *m)
{
    void *v;
    size_t len;
    uint64_t rev = 0;

    if (mvcc_auth_get(m, AUTH_KEY_REVISION, strlen(AUTH_KEY_REVISION), &v, &len))
        return 0;
    for (size_t i = 0; len == 8 && i < 8; i++)
        rev = rev << 8 | ((uint8_t *)v)[i];
    free(v);
    return rev;
}

static int bump_revision(auth *a, mvcc *m)
{
    uint64_t rev = auth__read_revision(m) + 1;
    uint8_t b[8];

    for (int i = 7; i >= 0; i--, rev >>= 8)
        b[i] = (uint8_t)rev;
    a->stale = true;
    return mvcc_auth_put(m, AUTH_KEY_REVISION, strlen(AUTH_KEY_REVISION), b, sizeof(b));
}

static int set_enabled(auth *a, mvcc *m, bool on)
{
    uint8_t b = on ? 1 : 0;
    int rc = mvcc_auth_put(m, AUTH_KEY_ENABLED, strlen(AUTH_KEY_ENABLED), &b, 1);

    return rc ? rc : bump_revision(a, m);
}

/* ---- responses ---------------------------------------------------------------------------- */

/* Every auth response is a header-only message but Authenticate's: allocate one of desc. */
static int empty_resp(const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    ProtobufCMessage *msg = malloc(desc->sizeof_message);

    if (!msg)
        return CE_NOMEM;
    desc->message_init(msg);
    *out = msg;
    return 0;
}

/* ---- users ---------------------------------------------------------------------------------- */

static bool has_name(char **v, size_t n, const char *name, size_t *at)
{
    size_t i = 0;

    while (i < n && strcmp(v[i], name) < 0)
        i++;
    *at = i;
    return i < n && !strcmp(v[i], name);
}

/* A fresh copy of the n elements of size bytes at v with *x inserted at index at (<= n). */
static void *insert_copy(const void *v, size_t n, size_t at, const void *x, size_t size)
{
    char *out = malloc((n + 1) * size);

    if (!out)
        return 0;
    if (n) {
        memcpy(out, v, at * size);
        memcpy(out + (at + 1) * size, (const char *)v + at * size, (n - at) * size);
    }
    memcpy(out + at * size, x, size);
    return out;
}

static int user_add(auth *a, mvcc *m, const Etcdserverpb__AuthUserAddRequest *r)
{
    Authpb__User u = AUTHPB__USER__INIT;
    Authpb__UserAddOptions opt = AUTHPB__USER_ADD_OPTIONS__INIT;
    bool nopw = r->options && r->options->no_password;
    int rc;

    if (!r->name || !*r->name)
        return CE_USER_EMPTY;
    rc = user_check(m, r->name);
    if (rc == 0)
        return CE_USER_EXISTS;
    if (rc != CE_USER_NOT_FOUND)
        return rc;
    u.name.data = (uint8_t *)r->name;
    u.name.len = strlen(r->name);
    if (!nopw && r->hashedpassword) {
        u.password.data = (uint8_t *)r->hashedpassword;
        u.password.len = strlen(r->hashedpassword);
    }
    opt.no_password = nopw;
    u.options = &opt;
    rc = put_msg(m, AUTH_USER_PREFIX, r->name, &u.base);
    return rc ? rc : bump_revision(a, m);
}

static int user_delete(auth *a, mvcc *m, const char *name)
{
    int rc;

    if ((rc = deletable(m, name, user_check)) != 0)
        return rc;
    rc = del_rec(m, AUTH_USER_PREFIX, name);
    if (rc == 0)
        rc = bump_revision(a, m);
    auth__tokens_drop_user(a, name);
    return rc;
}

static int user_passwd(auth *a, mvcc *m, const Etcdserverpb__AuthUserChangePasswordRequest *r)
{
    Authpb__User *u;
    ProtobufCBinaryData old;
    int rc;

    if ((rc = auth__load_user(m, r->name, &u)) != 0)
        return rc;
    old = u->password;
    u->password.data = (uint8_t *)r->hashedpassword;
    u->password.len = r->hashedpassword ? strlen(r->hashedpassword) : 0;
    rc = put_msg(m, AUTH_USER_PREFIX, r->name, &u->base);
    u->password = old;
    authpb__user__free_unpacked(u, 0);
    if (rc == 0)
        rc = bump_revision(a, m);
    auth__tokens_drop_user(a, r->name);
    return rc;
}

static int user_grant(auth *a, mvcc *m, const Etcdserverpb__AuthUserGrantRoleRequest *r)
{
    Authpb__User *u;
    char **roles, **old;
    size_t at, n;
    int rc;

    if ((rc = auth__load_user(m, r->user, &u)) != 0)
        return rc;
    if (strcmp(r->role, AUTH_ROOT) && (rc = role_check(m, r->role)) != 0)
        goto out_free_user;
    if (has_name(u->roles, u->n_roles, r->role, &at))
        goto out_free_user;      /* etcd ignores a second grant */
    roles = insert_copy(u->roles, u->n_roles, at, &r->role, sizeof(*roles));
    if (!roles) {
        rc = CE_NOMEM;
        goto out_free_user;
    }
    old = u->roles;
    n = u->n_roles;
    u->roles = roles;
    u->n_roles = n + 1;
    rc = put_msg(m, AUTH_USER_PREFIX, r->user, &u->base);
    u->roles = old;
    u->n_roles = n;
    free(roles);
    if (rc == 0)
        rc = bump_revision(a, m);
out_free_user:
    authpb__user__free_unpacked(u, 0);
    return rc;
}

static int user_revoke(auth *a, mvcc *m, const Etcdserverpb__AuthUserRevokeRoleRequest *r)
{
    Authpb__User *u;
    char *gone;
    size_t at;
    int rc;

    if (auth__read_enabled(m) && !strcmp(r->name, AUTH_ROOT) && !strcmp(r->role, AUTH_ROOT))
        return CE_INVALID_AUTH_MGMT;
    if ((rc = auth__load_user(m, r->name, &u)) != 0)
        return rc;
    if (!has_name(u->roles, u->n_roles, r->role, &at)) {
        rc = CE_ROLE_NOT_GRANTED;
        goto out_free_user;
    }
    gone = u->roles[at];
    memmove(u->roles + at, u->roles + at + 1, (u->n_roles - at - 1) * sizeof(*u->roles));
    u->n_roles--;
    rc = put_msg(m, AUTH_USER_PREFIX, r->name, &u->base);
    u->roles[u->n_roles++] = gone;   /* every pointer stays for free_unpacked */
    if (rc == 0)
        rc = bump_revision(a, m);
out_free_user:
    authpb__user__free_unpacked(u, 0);
    return rc;
}

/* ---- roles ---------------------------------------------------------------------------------- */

static int role_add(auth *a, mvcc *m, const char *name)
{
    Authpb__Role role = AUTHPB__ROLE__INIT;
    int rc;

    if (!name || !*name)
        return CE_ROLE_EMPTY;
    rc = role_check(m, name);
    if (rc == 0)
        return CE_ROLE_EXISTS;
    if (rc != CE_ROLE_NOT_FOUND)
        return rc;
    role.name.data = (uint8_t *)name;
    role.name.len = strlen(name);
    rc = put_msg(m, AUTH_ROLE_PREFIX, name, &role.base);
    return rc ? rc : bump_revision(a, m);
}

struct strip_ctx {
    mvcc *m;
    const char *role;
    char **names;               /* users holding the role */
    size_t n, cap;
};

static int collect_holder(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct strip_ctx *s = arg;
    Authpb__User *u = authpb__user__unpack(0, vlen, val);
    size_t at;
    int rc = 0;

    (void)key;
    (void)klen;
    if (!u)
        return CE_CORRUPT;
    if (has_name(u->roles, u->n_roles, s->role, &at)) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            char **v = realloc(s->names, cap * sizeof(*v));
            if (!v)
                rc = CE_NOMEM;
            else {
                s->names = v;
                s->cap = cap;
            }
        }
        if (!rc && !(s->names[s->n] = strndup((char *)u->name.data, u->name.len)))
            rc = CE_NOMEM;
        if (!rc)
            s->n++;
    }
    authpb__user__free_unpacked(u, 0);
    return rc;
}

/* Removes role from every user holding it (etcd does so when a role is deleted). */
static int strip_role(auth *a, mvcc *m, const char *role)
{
    struct strip_ctx s = {m, role, 0, 0, 0};
    int rc = mvcc_auth_walk(m, AUTH_USER_PREFIX, strlen(AUTH_USER_PREFIX), collect_holder, &s);

    for (size_t i = 0; i < s.n; i++) {
        Etcdserverpb__AuthUserRevokeRoleRequest r = ETCDSERVERPB__AUTH_USER_REVOKE_ROLE_REQUEST__INIT;
        r.name = s.names[i];
        r.role = (char *)role;
        if (!rc)
            rc = user_revoke(a, m, &r);
        free(s.names[i]);
    }
    free(s.names);
    return rc;
}

static int role_delete(auth *a, mvcc *m, const char *name)
{
    int rc;

    if ((rc = deletable(m, name, role_check)) != 0)
        return rc;
    rc = del_rec(m, AUTH_ROLE_PREFIX, name);
    if (rc == 0)
        rc = strip_role(a, m, name);
    return rc ? rc : bump_revision(a, m);
}

static int bytes_cmp(const ProtobufCBinaryData *x, const ProtobufCBinaryData *y)
{
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->data, y->data, n) : 0;

    if (c)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static int perm_cmp(const Authpb__Permission *p, const ProtobufCBinaryData *key,
                    const ProtobufCBinaryData *end)
{
    int c = bytes_cmp(&p->key, key);

    return c ? c : bytes_cmp(&p->range_end, end);
}

static int role_grant(auth *a, mvcc *m, const Etcdserverpb__AuthRoleGrantPermissionRequest *r)
{
    Authpb__Role *role;
    Authpb__Permission **perms, **old;
    size_t at = 0, n;
    int rc;

    if (!r->perm)
        return CE_INVAL;
    if ((rc = auth__load_role(m, r->name, &role)) != 0)
        return rc;
    while (at < role->n_keypermission &&
           perm_cmp(role->keypermission[at], &r->perm->key, &r->perm->range_end) < 0)
        at++;
    if (at < role->n_keypermission &&
        !perm_cmp(role->keypermission[at], &r->perm->key, &r->perm->range_end)) {
        role->keypermission[at]->permtype = r->perm->permtype;   /* etcd updates the type */
        rc = put_msg(m, AUTH_ROLE_PREFIX, r->name, &role->base);
        goto out_bump;
    }
    perms = insert_copy(role->keypermission, role->n_keypermission, at, &r->perm, sizeof(*perms));
    if (!perms) {
        rc = CE_NOMEM;
        goto out_free_role;
    }
    old = role->keypermission;
    n = role->n_keypermission;
    role->keypermission = perms;
    role->n_keypermission = n + 1;
    rc = put_msg(m, AUTH_ROLE_PREFIX, r->name, &role->base);
    role->keypermission = old;
    role->n_keypermission = n;
    free(perms);
out_bump:
    if (rc == 0)
        rc = bump_revision(a, m);
out_free_role:
    authpb__role__free_unpacked(role, 0);
    return rc;
}

static int role_revoke(auth *a, mvcc *m, const Etcdserverpb__AuthRoleRevokePermissionRequest *r)
{
    Authpb__Role *role;
    Authpb__Permission *gone;
    size_t at = 0;
    int rc;

    if ((rc = auth__load_role(m, r->role, &role)) != 0)
        return rc;
    while (at < role->n_keypermission && perm_cmp(role->keypermission[at], &r->key, &r->range_end))
        at++;
    if (at == role->n_keypermission) {
        rc = CE_PERM_NOT_GRANTED;
        goto out_free_role;
    }
    gone = role->keypermission[at];
    memmove(role->keypermission + at, role->keypermission + at + 1,
            (role->n_keypermission - at - 1) * sizeof(*role->keypermission));
    role->n_keypermission--;
    rc = put_msg(m, AUTH_ROLE_PREFIX, r->role, &role->base);
    role->keypermission[role->n_keypermission++] = gone;
    if (rc == 0)
        rc = bump_revision(a, m);
out_free_role:
    authpb__role__free_unpacked(role, 0);
    return rc;
}

/* ---- enable, disable, authenticate ------------------------------------------------------------ */

static int enable(auth *a, mvcc *m)
{
    Authpb__User *root;
    size_t at;
    bool has;
    int rc;

    if (auth__read_enabled(m))
        return 0;
    rc = auth__load_user(m, AUTH_ROOT, &root);
    if (rc)
        return rc == CE_USER_NOT_FOUND ? CE_ROOT_NOT_EXIST : rc;
    has = has_name(root->roles, root->n_roles, AUTH_ROOT, &at);
    authpb__user__free_unpacked(root, 0);
    return has ? set_enabled(a, m, true) : CE_ROOT_ROLE_NOT_EXIST;
}

static int disable(auth *a, mvcc *m)
{
    if (!auth__read_enabled(m))
        return 0;
    auth__tokens_drop_user(a, 0);
    return set_enabled(a, m, false);
}

static int authenticate(auth *a, mvcc *m, const Cetcdpb__AuthAuthenticate *r, uint64_t index,
                        ProtobufCMessage **out)
{
    Etcdserverpb__AuthenticateResponse *resp;
    Authpb__User *u;
    int rc;

    if (!auth__read_enabled(m))
        return CE_AUTH_NOT_ENABLED;
    if (auth__load_user(m, r->name, &u))
        return CE_AUTH_FAILED;
    authpb__user__free_unpacked(u, 0);
    if ((rc = empty_resp(&etcdserverpb__authenticate_response__descriptor, out)) != 0)
        return rc;
    resp = (Etcdserverpb__AuthenticateResponse *)*out;
    rc = auth__token_assign(a, r->token_prefix, index, r->name, evloop_now_ms(), &resp->token);
    if (rc) {
        free(resp);
        *out = 0;
    }
    return rc;
}

static const ProtobufCMessageDescriptor *resp_desc(Cetcdpb__AuthRequest__OpCase op)
{
    switch (op) {
    case CETCDPB__AUTH_REQUEST__OP_ENABLE: return &etcdserverpb__auth_enable_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_DISABLE: return &etcdserverpb__auth_disable_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_USER_ADD: return &etcdserverpb__auth_user_add_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_USER_DELETE: return &etcdserverpb__auth_user_delete_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_USER_CHANGE_PASSWORD: return &etcdserverpb__auth_user_change_password_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_USER_GRANT_ROLE: return &etcdserverpb__auth_user_grant_role_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_USER_REVOKE_ROLE: return &etcdserverpb__auth_user_revoke_role_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_ROLE_ADD: return &etcdserverpb__auth_role_add_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_ROLE_DELETE: return &etcdserverpb__auth_role_delete_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_ROLE_GRANT_PERMISSION: return &etcdserverpb__auth_role_grant_permission_response__descriptor;
    case CETCDPB__AUTH_REQUEST__OP_ROLE_REVOKE_PERMISSION: return &etcdserverpb__auth_role_revoke_permission_response__descriptor;
    default: return 0;
    }
}

static int apply_op(auth *a, mvcc *m, const Cetcdpb__AuthRequest *r)
{
    switch (r->op_case) {
    case CETCDPB__AUTH_REQUEST__OP_ENABLE: return enable(a, m);
    case CETCDPB__AUTH_REQUEST__OP_DISABLE: return disable(a, m);
    case CETCDPB__AUTH_REQUEST__OP_USER_ADD: return user_add(a, m, r->user_add);
    case CETCDPB__AUTH_REQUEST__OP_USER_DELETE: return user_delete(a, m, r->user_delete->name);
    case CETCDPB__AUTH_REQUEST__OP_USER_CHANGE_PASSWORD: return user_passwd(a, m, r->user_change_password);
    case CETCDPB__AUTH_REQUEST__OP_USER_GRANT_ROLE: return user_grant(a, m, r->user_grant_role);
    case CETCDPB__AUTH_REQUEST__OP_USER_REVOKE_ROLE: return user_revoke(a, m, r->user_revoke_role);
    case CETCDPB__AUTH_REQUEST__OP_ROLE_ADD: return role_add(a, m, r->role_add->name);
    case CETCDPB__AUTH_REQUEST__OP_ROLE_DELETE: return role_delete(a, m, r->role_delete->role);
    case CETCDPB__AUTH_REQUEST__OP_ROLE_GRANT_PERMISSION: return role_grant(a, m, r->role_grant_permission);
    case CETCDPB__AUTH_REQUEST__OP_ROLE_REVOKE_PERMISSION: return role_revoke(a, m, r->role_revoke_permission);
    default: return CE_UNSUPPORTED;
    }
}

int auth_apply(auth *a, mvcc *m, const Cetcdpb__AuthRequest *r, uint64_t index,
               ProtobufCMessage **out)
{
    const ProtobufCMessageDescriptor *d;
    int rc;

    *out = 0;
    if (r->op_case == CETCDPB__AUTH_REQUEST__OP_AUTHENTICATE)
        return authenticate(a, m, r->authenticate, index, out);
    d = resp_desc(r->op_case);
    if (!d)
        return CE_UNSUPPORTED;
    rc = apply_op(a, m, r);
    a->stale = true;
    return rc ? rc : empty_resp(d, out);
}

int auth_new(uint32_t token_ttl_s, auth **out)
{
    auth *a = calloc(1, sizeof(*a));

    if (!a)
        return CE_NOMEM;
    a->ttl_ms = (uint64_t)(token_ttl_s ? token_ttl_s : AUTH_TOKEN_TTL_DEFAULT) * 1000;
    a->stale = true;
    *out = a;
    return 0;
}

void auth_free(auth *a)
{
    if (!a)
        return;
    auth__cache_clear(a);
    auth__tokens_free(a);
    free(a);
}

void auth_store_changed(auth *a)
{
    a->stale = true;
}
