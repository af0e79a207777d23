/*
 * test_auth.c: server/auth/ on a real mvcc store: applying auth changes (etcd's errors and
 * root rules), persistence across a reopen, permission checks (keys, ranges, prefixes, Txn
 * compares and ops), simple tokens with their TTL, and password hashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "server/auth/auth.h"
#include "server/auth/auth_int.h"
#include "server/auth/pwjob.h"
#include "err.h"
#include "evloop.h"
#include "mvccfx.h"
#include "tmpdir.h"

struct fx {
    char dir[64];
    mvcc *m;
    auth *a;
    uint64_t index;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    strcpy(f->dir, "/tmp/test_auth.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->m = mvccfx_open(f->dir, false);
    assert_int_equal(auth_new(300, &f->a), 0);
    f->index = 10;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    auth_free(f->a);
    mvcc_close(f->m);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Applies r in its own batch; returns the apply's code (the response is dropped, except
 * Authenticate's token, copied to token if given). */
static int apply(struct fx *f, const Cetcdpb__AuthRequest *r, char *token)
{
    ProtobufCMessage *out = 0;
    int rc;

    f->index++;
    assert_int_equal(mvcc_begin(f->m), 0);
    rc = auth_apply(f->a, f->m, r, f->index, &out);
    assert_int_equal(mvcc_commit(f->m, f->index, 1), 0);
    if (rc == 0)
        assert_non_null(out);
    if (out && token)
        strcpy(token, ((Etcdserverpb__AuthenticateResponse *)out)->token);
    if (out)
        protobuf_c_message_free_unpacked(out, 0);
    return rc;
}

static int user_add(struct fx *f, const char *name, const char *pw)
{
    Cetcdpb__AuthRequest r = CETCDPB__AUTH_REQUEST__INIT;
    Etcdserverpb__AuthUserAddRequest u = ETCDSERVERPB__AUTH_USER_ADD_REQUEST__INIT;
    char *hash = 0;
    int rc;

    assert_int_equal(auth_hash_password(pw, &hash), 0);
    u.name = (char *)name;
    u.hashedpassword = hash;
    r.op_case = CETCDPB__AUTH_REQUEST__OP_USER_ADD;
    r.user_add = &u;
    rc = apply(f, &r, 0);
    free(hash);
    return rc;
}

static int role_add(struct fx *f, const char *name)
{
    Cetcdpb__AuthRequest r = CETCDPB__AUTH_REQUEST__INIT;
    Etcdserverpb__AuthRoleAddRequest q = ETCDSERVERPB__AUTH_ROLE_ADD_REQUEST__INIT;

    q.name = (char *)name;
    r.op_case = CETCDPB__AUTH_REQUEST__OP_ROLE_ADD;
    r.role_add = &q;
    return apply(f, &r, 0);
}

static int grant_role(struct fx *f, const char *user, const char *role)
{
    Cetcdpb__AuthRequest r = CETCDPB__AUTH_REQUEST__INIT;
    Etcdserverpb__AuthUserGrantRoleRequest q = ETCDSERVERPB__AUTH_USER_GRANT_ROLE_REQUEST__INIT;

    q.user = (char *)user;
    q.role = (char *)role;
    r.op_case = CETCDPB__AUTH_REQUEST__OP_USER_GRANT_ROLE;
    r.user_grant_role = &q;
    return apply(f, &r, 0);
}

static int grant_perm(struct fx *f, const char *role, int type, const char *key, size_t klen,
                      const char *end, size_t elen)
{
    Cetcdpb__AuthRequest r = CETCDPB__AUTH_REQUEST__INIT;
    Etcdserverpb__AuthRoleGrantPermissionRequest q = ETCDSERVERPB__AUTH_ROLE_GRANT_PERMISSION_REQUEST__INIT;
    Authpb__Permission p = AUTHPB__PERMISSION__INIT;

    p.permtype = type;
    p.key = (ProtobufCBinaryData){klen, (uint8_t *)key};
    p.range_end = (ProtobufCBinaryData){elen, (uint8_t *)end};
    q.name = (char *)role;
    q.perm = &p;
    r.op_case = CETCDPB__AUTH_REQUEST__OP_ROLE_GRANT_PERMISSION;
    r.role_grant_permission = &q;
    return apply(f, &r, 0);
}

static int simple(struct fx *f, Cetcdpb__AuthRequest__OpCase op)
{
    Cetcdpb__AuthRequest r = CETCDPB__AUTH_REQUEST__INIT;
    Etcdserverpb__AuthEnableRequest e = ETCDSERVERPB__AUTH_ENABLE_REQUEST__INIT;
    Etcdserverpb__AuthDisableRequest d = ETCDSERVERPB__AUTH_DISABLE_REQUEST__INIT;

    r.op_case = op;
    if (op == CETCDPB__AUTH_REQUEST__OP_ENABLE)
        r.enable = &e;
    else
        r.disable = &d;
    return apply(f, &r, 0);
}

static int check(struct fx *f, const char *user, const char *key, const char *end, size_t elen,
                 bool write)
{
    ProtobufCBinaryData k = {strlen(key), (uint8_t *)key}, e = {elen, (uint8_t *)end};

    return auth_check_range(f->a, f->m, user, &k, &e, write);
}

/* The seed's example: root, and a user whose role reads and writes /config/ only. */
static void make_config_user(struct fx *f)
{
    assert_int_equal(user_add(f, "root", "rootpw"), 0);
    assert_int_equal(grant_role(f, "root", "root"), 0);
    assert_int_equal(role_add(f, "cfg"), 0);
    assert_int_equal(grant_perm(f, "cfg", AUTHPB__PERMISSION__TYPE__READWRITE, "/config/", 8,
                                "/config0", 8), 0);
    assert_int_equal(user_add(f, "app", "apppw"), 0);
    assert_int_equal(grant_role(f, "app", "cfg"), 0);
}

static void test_enable_needs_root(void **state)
{
    struct fx *f = *state;

    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), CE_ROOT_NOT_EXIST);
    assert_int_equal(user_add(f, "root", "pw"), 0);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), CE_ROOT_ROLE_NOT_EXIST);
    assert_int_equal(grant_role(f, "root", "root"), 0);
    assert_false(auth_is_enabled(f->a, f->m));
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), 0);
    assert_true(auth_is_enabled(f->a, f->m));
    assert_int_equal(user_add(f, "root", "x"), CE_USER_EXISTS);
    assert_int_equal(user_add(f, "", "x"), CE_USER_EMPTY);
    assert_int_equal(role_add(f, ""), CE_ROLE_EMPTY);
    assert_int_equal(grant_role(f, "nobody", "root"), CE_USER_NOT_FOUND);
    assert_int_equal(grant_role(f, "root", "nope"), CE_ROLE_NOT_FOUND);
}

static void test_root_protected_while_enabled(void **state)
{
    struct fx *f = *state;
    Cetcdpb__AuthRequest r = CETCDPB__AUTH_REQUEST__INIT;
    Etcdserverpb__AuthUserDeleteRequest d = ETCDSERVERPB__AUTH_USER_DELETE_REQUEST__INIT;

    make_config_user(f);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), 0);
    d.name = "root";
    r.op_case = CETCDPB__AUTH_REQUEST__OP_USER_DELETE;
    r.user_delete = &d;
    assert_int_equal(apply(f, &r, 0), CE_INVALID_AUTH_MGMT);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_DISABLE), 0);
    assert_int_equal(apply(f, &r, 0), 0);
    assert_int_equal(apply(f, &r, 0), CE_USER_NOT_FOUND);
}

static void test_checks(void **state)
{
    struct fx *f = *state;
    uint64_t rev;

    make_config_user(f);
    /* disabled: everything passes, even without a user */
    assert_int_equal(check(f, 0, "/other", "", 0, true), 0);
    rev = auth_revision(f->a, f->m);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), 0);
    assert_true(auth_revision(f->a, f->m) > rev);
    assert_int_equal(check(f, 0, "/config/a", "", 0, false), CE_USER_EMPTY);
    assert_int_equal(check(f, "app", "/config/a", "", 0, false), 0);
    assert_int_equal(check(f, "app", "/config/a", "", 0, true), 0);
    assert_int_equal(check(f, "app", "/config/", "/config0", 8, false), 0);
    assert_int_equal(check(f, "app", "/config/a", "/config/b", 9, false), 0);
    assert_int_equal(check(f, "app", "/other", "", 0, false), CE_PERMISSION_DENIED);
    assert_int_equal(check(f, "app", "/config/", "/config1", 8, false), CE_PERMISSION_DENIED);
    assert_int_equal(check(f, "app", "/config/", "\0", 1, false), CE_PERMISSION_DENIED);
    assert_int_equal(check(f, "ghost", "/config/a", "", 0, false), CE_PERMISSION_DENIED);
    assert_int_equal(check(f, "root", "/anything", "\0", 1, true), 0);
    assert_int_equal(auth_check_admin(f->a, f->m, "app"), CE_PERMISSION_DENIED);
    assert_int_equal(auth_check_admin(f->a, f->m, "root"), 0);
    /* adjacent permissions cover together; a read-only one does not give writes */
    assert_int_equal(role_add(f, "ab"), 0);
    assert_int_equal(grant_perm(f, "ab", AUTHPB__PERMISSION__TYPE__READ, "a", 1, "m", 1), 0);
    assert_int_equal(grant_perm(f, "ab", AUTHPB__PERMISSION__TYPE__READ, "m", 1, "", 0), 0);
    assert_int_equal(grant_perm(f, "ab", AUTHPB__PERMISSION__TYPE__READ, "m\0", 2, "z", 1), 0);
    assert_int_equal(grant_role(f, "app", "ab"), 0);
    assert_int_equal(check(f, "app", "b", "y", 1, false), 0);
    assert_int_equal(check(f, "app", "b", "z\0", 2, false), CE_PERMISSION_DENIED);
    assert_int_equal(check(f, "app", "b", "", 0, true), CE_PERMISSION_DENIED);
}

static void test_txn_checks_every_key(void **state)
{
    struct fx *f = *state;
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT, *cmps[1] = {&cmp};
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT, *ops[1] = {&op};
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;

    make_config_user(f);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), 0);
    cmp.key = (ProtobufCBinaryData){9, (uint8_t *)"/config/a"};
    put.key = (ProtobufCBinaryData){9, (uint8_t *)"/config/b"};
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op.request_put = &put;
    t.compare = cmps;
    t.n_compare = 1;
    t.failure = ops;
    t.n_failure = 1;
    assert_int_equal(auth_check_txn(f->a, f->m, "app", &t), 0);
    cmp.key = (ProtobufCBinaryData){6, (uint8_t *)"/other"};
    assert_int_equal(auth_check_txn(f->a, f->m, "app", &t), CE_PERMISSION_DENIED);
    cmp.key = (ProtobufCBinaryData){9, (uint8_t *)"/config/a"};
    put.key = (ProtobufCBinaryData){6, (uint8_t *)"/other"};
    assert_int_equal(auth_check_txn(f->a, f->m, "app", &t), CE_PERMISSION_DENIED);
    assert_int_equal(auth_check_txn(f->a, f->m, "root", &t), 0);
}

/* A write checked at one auth revision is checked again at apply if the store changed since. */
static void test_check_at_apply(void **state)
{
    struct fx *f = *state;
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    Cetcdpb__AuthRequest r = CETCDPB__AUTH_REQUEST__INIT;
    Etcdserverpb__AuthUserRevokeRoleRequest q = ETCDSERVERPB__AUTH_USER_REVOKE_ROLE_REQUEST__INIT;

    make_config_user(f);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), 0);
    put.key = (ProtobufCBinaryData){9, (uint8_t *)"/config/a"};
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_PUT;
    ir.put = &put;
    assert_int_equal(auth_check_request(f->a, f->m, "app", &ir), 0);
    ir.auth_user = "app";
    ir.auth_revision = auth_revision(f->a, f->m);
    assert_int_equal(auth_check_at_apply(f->a, f->m, &ir), 0);
    q.name = "app";
    q.role = "cfg";
    r.op_case = CETCDPB__AUTH_REQUEST__OP_USER_REVOKE_ROLE;
    r.user_revoke_role = &q;
    assert_int_equal(apply(f, &r, 0), 0);
    assert_int_equal(auth_check_at_apply(f->a, f->m, &ir), CE_PERMISSION_DENIED);
    /* proposed before auth was ever configured: checked again, no user */
    ir.auth_user = "";
    ir.auth_revision = 0;
    assert_int_equal(auth_check_at_apply(f->a, f->m, &ir), CE_USER_EMPTY);
}

static void test_persists_and_survives_disable(void **state)
{
    struct fx *f = *state;
    mvcc_options o = {.dir = f->dir, .no_sync = true};
    char **names;
    size_t n;

    make_config_user(f);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), 0);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_DISABLE), 0);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), 0);
    mvcc_close(f->m);
    assert_int_equal(mvcc_open(&o, &f->m), 0);
    auth_store_changed(f->a);
    assert_true(auth_is_enabled(f->a, f->m));
    assert_int_equal(auth_user_names(f->a, f->m, &names, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "app");
    assert_string_equal(names[1], "root");
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    assert_int_equal(check(f, "app", "/config/x", "", 0, true), 0);
    assert_int_equal(auth_check_password(f->a, f->m, "app", "apppw"), 0);
    assert_int_equal(auth_check_password(f->a, f->m, "app", "wrong"), CE_AUTH_FAILED);
    assert_int_equal(auth_check_password(f->a, f->m, "nobody", "apppw"), CE_AUTH_FAILED);
}

static void test_tokens(void **state)
{
    struct fx *f = *state;
    Cetcdpb__AuthRequest r = CETCDPB__AUTH_REQUEST__INIT;
    Cetcdpb__AuthAuthenticate au = CETCDPB__AUTH_AUTHENTICATE__INIT;
    char prefix[17], token[64];
    const char *user;
    uint64_t now = evloop_now_ms();

    assert_int_equal(auth_token_prefix(prefix), 0);
    assert_int_equal(strlen(prefix), 16);
    au.name = "app";
    au.token_prefix = prefix;
    r.op_case = CETCDPB__AUTH_REQUEST__OP_AUTHENTICATE;
    r.authenticate = &au;
    make_config_user(f);
    assert_int_equal(apply(f, &r, token), CE_AUTH_NOT_ENABLED);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_ENABLE), 0);
    assert_int_equal(apply(f, &r, token), 0);
    assert_int_equal(strncmp(token, prefix, 16), 0);
    assert_int_equal(auth_token_user(f->a, token, now, &user), 0);
    assert_string_equal(user, "app");
    assert_int_equal(auth_token_user(f->a, "bogus.1", now, &user), CE_INVALID_TOKEN);
    /* used at now + 299 s it lives until now + 599 s */
    assert_int_equal(auth_token_user(f->a, token, now + 299000, &user), 0);
    assert_int_equal(auth_token_user(f->a, token, now + 598000, &user), 0);
    assert_int_equal(auth_token_user(f->a, token, now + 598000 + 300000, &user), CE_INVALID_TOKEN);
    /* disabling drops every token */
    assert_int_equal(apply(f, &r, token), 0);
    assert_int_equal(simple(f, CETCDPB__AUTH_REQUEST__OP_DISABLE), 0);
    assert_int_equal(auth_token_user(f->a, token, now, &user), CE_INVALID_TOKEN);
}

/* Many clients' tokens: each resolves to its user in the hash table; a user's tokens go with
 * it; tokens nobody presents again are swept out as new ones are assigned. */
static void test_token_table(void **state)
{
    enum { N = 3000, TTL_MS = 300000 };
    struct fx *f = *state;
    char prefix[17], user[16], *tok, **toks = calloc(N, sizeof(*toks));
    const char *got;
    uint64_t now = 1000;

    assert_non_null(toks);
    for (int i = 0; i < N; i++) {
        snprintf(prefix, sizeof(prefix), "p%015d", i);
        snprintf(user, sizeof(user), "u%d", i % 10);
        assert_int_equal(auth__token_assign(f->a, prefix, (uint64_t)i + 1, user, now, &toks[i]), 0);
    }
    assert_int_equal(f->a->ntokens, N);
    assert_true(f->a->nbuckets >= N);
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof(user), "u%d", i % 10);
        assert_int_equal(auth_token_user(f->a, toks[i], now, &got), 0);
        assert_string_equal(got, user);
    }
    auth__tokens_drop_user(f->a, "u7");
    assert_int_equal(f->a->ntokens, N - N / 10);
    assert_int_equal(auth_token_user(f->a, toks[7], now, &got), CE_INVALID_TOKEN);
    assert_int_equal(auth_token_user(f->a, toks[8], now, &got), 0);
    /* a TTL later, N new tokens sweep 4 chains each: every old one is gone */
    now += TTL_MS + 1;
    for (int i = 0; i < N; i++) {
        snprintf(prefix, sizeof(prefix), "q%015d", i);
        assert_int_equal(auth__token_assign(f->a, prefix, (uint64_t)i + 1, "new", now, &tok), 0);
        free(tok);
    }
    assert_int_equal(f->a->ntokens, N);
    for (int i = 0; i < N; i++)
        free(toks[i]);
    free(toks);
}

static void test_password_hash(void **state)
{
    char *h1, *h2;

    (void)state;
    assert_int_equal(auth_hash_password("s3cret", &h1), 0);
    assert_int_equal(auth_hash_password("s3cret", &h2), 0);
    assert_string_not_equal(h1, h2);             /* salted */
    assert_true(auth_password_matches(h1, "s3cret"));
    assert_false(auth_password_matches(h1, "s3cre"));
    assert_false(auth_password_matches("$pbkdf2-sha256$1$zz$zz", "x"));
    assert_false(auth_password_matches("", "x"));
    h2[strlen(h2) - 1] ^= 1;
    assert_false(auth_password_matches(h2, "s3cret"));
    free(h1);
    free(h2);
}

/* etcd's bcrypt hashes (a migrated etcd snapshot's users) verify: the published OpenBSD /
 * John the Ripper test vectors, and a near miss of each */
static void test_password_bcrypt(void **state)
{
    (void)state;
    assert_true(auth_password_matches("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"));
    assert_true(auth_password_matches("$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK", "U*U*"));
    assert_false(auth_password_matches("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U*"));
    assert_false(auth_password_matches("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeX", "U*U"));
    assert_false(auth_password_matches("$2a$05$short", "U*U"));
    assert_false(auth_password_matches("$2a$", ""));
}

struct pwres {
    evloop *l;
    int calls, rc;
    char *hash;
};

static void pw_cb(void *arg, int rc, char *hash)
{
    struct pwres *r = arg;

    r->calls++;
    r->rc = rc;
    if (hash)
        r->hash = hash;
    evloop_stop(r->l);
}

/* Hashing and checking run on a thread and report once on the loop; a cancelled job never
 * reports (and leaks nothing: ASan). */
static void test_pwjob(void **state)
{
    struct pwres r = {0};
    auth_pwjob *j;

    (void)state;
    assert_int_equal(evloop_new(&r.l), 0);
    assert_int_equal(auth_pwjob_hash(r.l, "pw1", pw_cb, &r, &j), 0);
    assert_int_equal(evloop_run(r.l), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.rc, 0);
    assert_non_null(r.hash);
    assert_true(auth_password_matches(r.hash, "pw1"));
    assert_int_equal(auth_pwjob_check(r.l, r.hash, "pw2", pw_cb, &r, &j), 0);
    assert_int_equal(evloop_run(r.l), 0);
    assert_int_equal(r.calls, 2);
    assert_int_equal(r.rc, CE_AUTH_FAILED);
    assert_int_equal(auth_pwjob_check(r.l, r.hash, "pw1", pw_cb, &r, &j), 0);
    assert_int_equal(evloop_run(r.l), 0);
    assert_int_equal(r.calls, 3);
    assert_int_equal(r.rc, 0);
    assert_int_equal(auth_pwjob_hash(r.l, "pw3", pw_cb, &r, &j), 0);
    auth_pwjob_cancel(j);
    assert_int_equal(r.calls, 3);
    free(r.hash);
    evloop_free(r.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enable_needs_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_protected_while_enabled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_checks_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_at_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persists_and_survives_disable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test(test_password_hash),
        cmocka_unit_test(test_password_bcrypt),
        cmocka_unit_test(test_pwjob),
    };

    return cmocka_run_group_tests(tests, 0, 0);
}
