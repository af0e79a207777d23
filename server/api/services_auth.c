/*
 * services_auth.c: etcd's Auth service, and the identity and permission checks every other
 * service calls (services_int.h, "Auth").
 *
 * Identity of a call (etcd 3.4's AuthInfoFromCtx): the simple token in gRPC metadata "token"
 * or the gateway's "Authorization" header names the user (an unknown or expired token fails
 * with "etcdserver: invalid auth token", whether auth is on or not, as etcd's); without a
 * token, the CN of a client certificate verified under --client-cert-auth is the user;
 * otherwise there is none (refused with "user name is empty" while auth is enabled).
 *
 * Changes (enable, disable, user and role changes, Authenticate) are proposed as a
 * cetcdpb.AuthRequest and answered once applied. Passwords are hashed here, before proposing,
 * so the log holds only hashes; Authenticate checks the password here too. Both are slow on
 * purpose (PBKDF2), so they run on a thread (auth/pwjob.h) while the call waits; a call
 * closed meanwhile cancels its job (svc_auth_close).
 * Reads (AuthStatus, UserGet/List, RoleGet/List) answer from this member's applied state.
 * Administrative methods need the root role while auth is enabled; a user may get itself and
 * the roles it holds (etcd's exceptions).
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/pwjob.h"
#include "err.h"
#include "evloop.h"
#include "services_int.h"

static auth *auth_of(rpc_call *c)
{
    return node_auth(svc_of(c)->node);
}

static mvcc *store_of(rpc_call *c)
{
    return node_store(svc_of(c)->node);
}

/* ---- identity and checks ------------------------------------------------------------------- */

int svc_auth_user(rpc_call *c, const char **user)
{
    const char *t = rpc_call_metadata(c, "token");

    *user = 0;
    if (!t)
        t = rpc_call_metadata(c, "authorization");
    if (t && *t)
        return auth_token_user(auth_of(c), t, evloop_now_ms(), user);
    *user = rpc_call_tls_cn(c);
    return 0;
}

int svc_check_range(rpc_call *c, const ProtobufCBinaryData *key,
                    const ProtobufCBinaryData *range_end, bool write)
{
    const char *user;
    int rc = svc_auth_user(c, &user);

    return rc ? rc : auth_check_range(auth_of(c), store_of(c), user, key, range_end, write);
}

int svc_check_admin(rpc_call *c)
{
    const char *user;
    int rc = svc_auth_user(c, &user);

    return rc ? rc : auth_check_admin(auth_of(c), store_of(c), user);
}

int svc_check_maint(rpc_call *c)
{
    int rc = svc_check_admin(c);

    return rc == CE_PERMISSION_DENIED ? CE_AUTH_STORE_DENIED : rc;
}

bool svc_maint_refused(rpc_call *c, ProtobufCMessage *req)
{
    int rc;

    if (svc_learner_refused(c, req))
        return true;
    if ((rc = svc_check_maint(c)) == 0)
        return false;
    svc_free_msg(req);
    rpc_finish(c, rc);
    return true;
}

int svc_check_lease_keys(rpc_call *c, int64_t id)
{
    Etcdserverpb__LeaseTimeToLiveRequest r = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    Etcdserverpb__LeaseTimeToLiveResponse resp = ETCDSERVERPB__LEASE_TIME_TO_LIVE_RESPONSE__INIT;
    static const ProtobufCBinaryData none = {0, 0};
    const char *user;
    int rc = svc_auth_user(c, &user);

    if (rc || !auth_is_enabled(auth_of(c), store_of(c)) || !auth_check_admin(auth_of(c), store_of(c), user))
        return rc;
    r.id = id;
    r.keys = true;
    rc = node_lease_time_to_live(svc_of(c)->node, &r, &resp);
    for (size_t i = 0; !rc && i < resp.n_keys; i++)
        rc = auth_check_range(auth_of(c), store_of(c), user, &resp.keys[i], &none, true);
    for (size_t i = 0; i < resp.n_keys; i++)
        free(resp.keys[i].data);
    free(resp.keys);
    return rc;
}

int svc_check_write(rpc_call *c, Cetcdpb__InternalRequest *ir)
{
    const char *user;
    int rc = svc_auth_user(c, &user);

    if (rc)
        return rc;
    if ((rc = auth_check_request(auth_of(c), store_of(c), user, ir)) != 0)
        return rc;
    ir->auth_revision = auth_revision(auth_of(c), store_of(c));
    ir->auth_user = ir->auth_revision && user ? (char *)user : ir->auth_user;
    return 0;
}

/* ---- proposing a change --------------------------------------------------------------------- */

static void auth_written(void *ctx, int err, ProtobufCMessage *resp)
{
    svc_finish_waiting(ctx, err, resp, svc_reply);
}

/* Proposes ar; the call is answered from auth_written, or here on failure. */
static void propose_auth(rpc_call *c, Cetcdpb__AuthRequest *ar)
{
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    struct waiting *w;
    int rc = node_is_learner(svc_of(c)->node) ? CE_LEARNER_NOT_SUPPORTED : 0;

    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_AUTH;
    ir.auth = ar;
    w = rc ? 0 : svc_waiting_new(c, 0);
    if (!rc && !w)
        rc = CE_NOMEM;
    if (!rc && (rc = node_propose(svc_of(c)->node, &ir, auth_written, w, &w->handle)) != 0)
        svc_waiting_free(w);
    if (rc)
        rpc_finish(c, rc);
}

/* The admin check, then the proposal of op (which wraps m); frees m. */
#define ADMIN_PROPOSE(c, m, OPCASE, field, type)                                              \
    do {                                                                                      \
        Cetcdpb__AuthRequest ar = CETCDPB__AUTH_REQUEST__INIT;                                \
        int rc_ = svc_check_admin(c);                                                         \
        ar.op_case = CETCDPB__AUTH_REQUEST__OP_##OPCASE;                                      \
        ar.field = (type *)(m);                                                               \
        if (rc_)                                                                              \
            rpc_finish(c, rc_);                                                               \
        else                                                                                  \
            propose_auth(c, &ar);                                                             \
        svc_free_msg(m);                                                                      \
    } while (0)

void svc_auth_enable(rpc_call *c, ProtobufCMessage *m)
{
    ADMIN_PROPOSE(c, m, ENABLE, enable, Etcdserverpb__AuthEnableRequest);
}

void svc_auth_disable(rpc_call *c, ProtobufCMessage *m)
{
    ADMIN_PROPOSE(c, m, DISABLE, disable, Etcdserverpb__AuthDisableRequest);
}

void svc_user_delete(rpc_call *c, ProtobufCMessage *m)
{
    ADMIN_PROPOSE(c, m, USER_DELETE, user_delete, Etcdserverpb__AuthUserDeleteRequest);
}

void svc_user_grant_role(rpc_call *c, ProtobufCMessage *m)
{
    ADMIN_PROPOSE(c, m, USER_GRANT_ROLE, user_grant_role, Etcdserverpb__AuthUserGrantRoleRequest);
}

void svc_user_revoke_role(rpc_call *c, ProtobufCMessage *m)
{
    ADMIN_PROPOSE(c, m, USER_REVOKE_ROLE, user_revoke_role, Etcdserverpb__AuthUserRevokeRoleRequest);
}

void svc_role_add(rpc_call *c, ProtobufCMessage *m)
{
    ADMIN_PROPOSE(c, m, ROLE_ADD, role_add, Etcdserverpb__AuthRoleAddRequest);
}

void svc_role_delete(rpc_call *c, ProtobufCMessage *m)
{
    ADMIN_PROPOSE(c, m, ROLE_DELETE, role_delete, Etcdserverpb__AuthRoleDeleteRequest);
}

void svc_role_grant(rpc_call *c, ProtobufCMessage *m)
{
    ADMIN_PROPOSE(c, m, ROLE_GRANT_PERMISSION, role_grant_permission,
                  Etcdserverpb__AuthRoleGrantPermissionRequest);
}

void svc_role_revoke(rpc_call *c, ProtobufCMessage *m)
{
    ADMIN_PROPOSE(c, m, ROLE_REVOKE_PERMISSION, role_revoke_permission,
                  Etcdserverpb__AuthRoleRevokePermissionRequest);
}

/* ---- password work off the loop ------------------------------------------------------------- */

/* A call whose password is being hashed or checked (auth/pwjob.h); listed in the services so
 * that its on_close (svc_auth_close) can cancel the job. */
enum pw_kind { PW_AUTHENTICATE, PW_USER_ADD, PW_PASSWD };
struct pw_wait {
    struct pw_wait *next;
    rpc_call *call;
    auth_pwjob *job;
    enum pw_kind kind;
    ProtobufCMessage *req;
};

static void pw_unlink(services *s, struct pw_wait *p)
{
    struct pw_wait **pp = &s->pw_waits;

    while (*pp && *pp != p)
        pp = &(*pp)->next;
    if (*pp)
        *pp = p->next;
}

/* Wipes the password and installs hash (taken) as the request's hashedPassword. */
static void set_hash(char **password, char **hashed, char *hash)
{
    if (*password && **password)
        memset(*password, 0, strlen(*password));
    if (*hashed && **hashed)     /* an unset string is protobuf-c's static "" */
        free(*hashed);
    *hashed = hash;
}

static void propose_authenticate(rpc_call *c, const Etcdserverpb__AuthenticateRequest *r)
{
    Cetcdpb__AuthRequest ar = CETCDPB__AUTH_REQUEST__INIT;
    Cetcdpb__AuthAuthenticate au = CETCDPB__AUTH_AUTHENTICATE__INIT;
    char prefix[17];
    int rc = auth_token_prefix(prefix);

    if (rc) {
        rpc_finish(c, rc);
        return;
    }
    au.name = r->name;
    au.token_prefix = prefix;
    ar.op_case = CETCDPB__AUTH_REQUEST__OP_AUTHENTICATE;
    ar.authenticate = &au;
    propose_auth(c, &ar);
}

/* The job ended: go on with the request (propose it), or answer the error. */
static void pw_done(void *arg, int rc, char *hash)
{
    struct pw_wait *p = arg;
    rpc_call *c = p->call;
    ProtobufCMessage *m = p->req;
    Cetcdpb__AuthRequest ar = CETCDPB__AUTH_REQUEST__INIT;

    pw_unlink(svc_of(c), p);
    if (rc) {
        free(hash);
        rpc_finish(c, rc);
    } else if (p->kind == PW_AUTHENTICATE) {
        propose_authenticate(c, (Etcdserverpb__AuthenticateRequest *)m);
    } else if (p->kind == PW_USER_ADD) {
        Etcdserverpb__AuthUserAddRequest *r = (Etcdserverpb__AuthUserAddRequest *)m;
        set_hash(&r->password, &r->hashedpassword, hash);
        ar.op_case = CETCDPB__AUTH_REQUEST__OP_USER_ADD;
        ar.user_add = r;
        propose_auth(c, &ar);
    } else {
        Etcdserverpb__AuthUserChangePasswordRequest *r = (Etcdserverpb__AuthUserChangePasswordRequest *)m;
        set_hash(&r->password, &r->hashedpassword, hash);
        ar.op_case = CETCDPB__AUTH_REQUEST__OP_USER_CHANGE_PASSWORD;
        ar.user_change_password = r;
        propose_auth(c, &ar);
    }
    svc_free_msg(m);
    free(p);
}

/* Starts the job for m (a check against hash when hash, else hashing password); the call is
 * answered from pw_done, or here on failure. Takes m. */
static void pw_start(rpc_call *c, ProtobufCMessage *m, enum pw_kind kind, const char *hash,
                     const char *password)
{
    services *s = svc_of(c);
    struct pw_wait *p = calloc(1, sizeof(*p));
    int rc = CE_NOMEM;

    if (p) {
        p->call = c;
        p->kind = kind;
        p->req = m;
        rc = hash ? auth_pwjob_check(s->loop, hash, password, pw_done, p, &p->job)
                  : auth_pwjob_hash(s->loop, password, pw_done, p, &p->job);
    }
    if (rc) {
        free(p);
        svc_free_msg(m);
        rpc_finish(c, rc);
        return;
    }
    p->next = s->pw_waits;
    s->pw_waits = p;
}

void svc_auth_close(rpc_call *c)
{
    services *s = svc_of(c);

    for (struct pw_wait *p = s->pw_waits; p; p = p->next) {
        if (p->call != c)
            continue;
        pw_unlink(s, p);
        auth_pwjob_cancel(p->job);
        svc_free_msg(p->req);
        free(p);
        return;
    }
    svc_on_close_waiting(c);
}

/* UserAdd and UserChangePassword: the admin check, then the password hashed off the loop
 * (none to hash: proposed at once). */
static void hash_then_propose(rpc_call *c, ProtobufCMessage *m, enum pw_kind kind,
                              const char *password)
{
    Cetcdpb__AuthRequest ar = CETCDPB__AUTH_REQUEST__INIT;

    if (password && *password) {
        pw_start(c, m, kind, NULL, password);
        return;
    }
    if (kind == PW_USER_ADD) {
        ar.op_case = CETCDPB__AUTH_REQUEST__OP_USER_ADD;
        ar.user_add = (Etcdserverpb__AuthUserAddRequest *)m;
    } else {
        ar.op_case = CETCDPB__AUTH_REQUEST__OP_USER_CHANGE_PASSWORD;
        ar.user_change_password = (Etcdserverpb__AuthUserChangePasswordRequest *)m;
    }
    propose_auth(c, &ar);
    svc_free_msg(m);
}

void svc_user_add(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__AuthUserAddRequest *r = (Etcdserverpb__AuthUserAddRequest *)m;
    bool nopw = r->options && r->options->no_password;
    int rc = svc_check_admin(c);

    if (!rc && (!r->name || !*r->name))
        rc = CE_USER_EMPTY;
    if (rc) {
        svc_free_msg(m);
        rpc_finish(c, rc);
        return;
    }
    hash_then_propose(c, m, PW_USER_ADD, nopw ? NULL : r->password);
}

void svc_user_passwd(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__AuthUserChangePasswordRequest *r = (Etcdserverpb__AuthUserChangePasswordRequest *)m;
    int rc = svc_check_admin(c);

    if (rc) {
        svc_free_msg(m);
        rpc_finish(c, rc);
        return;
    }
    hash_then_propose(c, m, PW_PASSWD, r->password);
}

/* The stored hash is read here; the comparison runs off the loop. */
void svc_authenticate(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__AuthenticateRequest *r = (Etcdserverpb__AuthenticateRequest *)m;
    char *hash;
    int rc = auth_user_hash(auth_of(c), store_of(c), r->name, &hash);

    if (rc) {
        svc_free_msg(m);
        rpc_finish(c, rc);
        return;
    }
    pw_start(c, m, PW_AUTHENTICATE, hash, r->password);
    free(hash);
}

/* ---- reads ------------------------------------------------------------------------------------ */

/* Finishes with rc (freeing resp) unless it is 0, then replies resp. */
static void reply_or_fail(rpc_call *c, int rc, ProtobufCMessage *resp)
{
    if (rc) {
        svc_free_msg(resp);
        rpc_finish(c, rc);
        return;
    }
    svc_reply(c, resp);
}

void svc_auth_status(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__AuthStatusResponse *resp = malloc(sizeof(*resp));
    const char *user;
    int rc = svc_auth_user(c, &user);

    svc_free_msg(m);
    if (!resp) {
        rpc_finish(c, CE_NOMEM);
        return;
    }
    etcdserverpb__auth_status_response__init(resp);
    resp->enabled = auth_is_enabled(auth_of(c), store_of(c));
    resp->authrevision = auth_revision(auth_of(c), store_of(c));
    reply_or_fail(c, rc, &resp->base);
}

void svc_user_get(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__AuthUserGetRequest *r = (Etcdserverpb__AuthUserGetRequest *)m;
    Etcdserverpb__AuthUserGetResponse *resp = malloc(sizeof(*resp));
    const char *user;
    int rc = svc_auth_user(c, &user);

    if (!rc && (!user || !r->name || strcmp(user, r->name)))
        rc = auth_check_admin(auth_of(c), store_of(c), user);
    if (resp)
        etcdserverpb__auth_user_get_response__init(resp);
    else
        rc = CE_NOMEM;
    if (!rc)
        rc = auth_user_roles(auth_of(c), store_of(c), r->name ? r->name : "", &resp->roles,
                             &resp->n_roles);
    svc_free_msg(m);
    reply_or_fail(c, rc, resp ? &resp->base : 0);
}

void svc_role_get(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__AuthRoleGetRequest *r = (Etcdserverpb__AuthRoleGetRequest *)m;
    Etcdserverpb__AuthRoleGetResponse *resp = malloc(sizeof(*resp));
    const char *role = r->role ? r->role : "";
    const char *user;
    int rc = svc_auth_user(c, &user);

    if (!rc && !auth_user_has_role(auth_of(c), store_of(c), user, role))
        rc = auth_check_admin(auth_of(c), store_of(c), user);
    if (resp)
        etcdserverpb__auth_role_get_response__init(resp);
    else
        rc = CE_NOMEM;
    if (!rc)
        rc = auth_role_perms(auth_of(c), store_of(c), role, &resp->perm, &resp->n_perm);
    svc_free_msg(m);
    reply_or_fail(c, rc, resp ? &resp->base : 0);
}

void svc_user_list(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__AuthUserListResponse *resp = malloc(sizeof(*resp));
    int rc = svc_check_admin(c);

    svc_free_msg(m);
    if (resp)
        etcdserverpb__auth_user_list_response__init(resp);
    else
        rc = CE_NOMEM;
    if (!rc)
        rc = auth_user_names(auth_of(c), store_of(c), &resp->users, &resp->n_users);
    reply_or_fail(c, rc, resp ? &resp->base : 0);
}

void svc_role_list(rpc_call *c, ProtobufCMessage *m)
{
    Etcdserverpb__AuthRoleListResponse *resp = malloc(sizeof(*resp));
    int rc = svc_check_admin(c);

    svc_free_msg(m);
    if (resp)
        etcdserverpb__auth_role_list_response__init(resp);
    else
        rc = CE_NOMEM;
    if (!rc)
        rc = auth_role_names(auth_of(c), store_of(c), &resp->roles, &resp->n_roles);
    reply_or_fail(c, rc, resp ? &resp->base : 0);
}
