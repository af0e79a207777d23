/*
 * auth.h: etcd v3 authentication and role-based access control.
 *
 * The auth store (users, roles, their permissions, the enabled flag and the auth revision)
 * lives in the mvcc store's "auth" table (records documented in auth.c) and changes only by
 * applying a replicated cetcdpb.AuthRequest (auth_apply, called by the node inside its store
 * batch), so every member holds the same auth state at the same Raft index, and restarts and
 * Raft snapshots carry it. Permission checks (auth_check_*) read an in-memory copy rebuilt
 * from the table after any change (auth_apply or auth_store_changed marks it stale).
 *
 * Tokens are etcd's "simple" tokens: Authenticate is proposed with a random prefix drawn by
 * the proposer; applied, every member assigns "<prefix>.<entry index>" to the user, valid
 * for the TTL (--auth-token-ttl, default 300 s) after its last use. They live in memory only
 * (as etcd's): a restarted member forgets them and clients authenticate again.
 *
 * Passwords: PBKDF2-HMAC-SHA256 with a 16-byte random salt (auth_hash_password, format
 * "$pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>"); slow on purpose, so the API hashes
 * before proposing (the log never holds a password) and verifies before Authenticate.
 *
 * Semantics and errors are etcd 3.4's: with auth disabled every check passes; enabled, a
 * request without a user fails CE_USER_EMPTY, a user with the role "root" may do anything,
 * others need a READ / WRITE / READWRITE permission whose keys (a key, a range, or a prefix
 * written as a range) together cover the whole requested range.
 */
#ifndef CETCD_AUTH_H
#define CETCD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.pb-c.h"
#include "internal.pb-c.h"
#include "mvcc/mvcc.h"

typedef struct auth auth;

#define AUTH_TOKEN_TTL_DEFAULT 300
#define AUTH_ROOT "root"

int auth_new(uint32_t token_ttl_s, auth **out);
void auth_free(auth *a);

/* Applies one replicated auth change on store m inside its open batch (entry `index`). On
 * success *out is the etcd response (heap; header with revision only, or none), else CE_*
 * and the store is unchanged. */
int auth_apply(auth *a, mvcc *m, const Cetcdpb__AuthRequest *r, uint64_t index,
               ProtobufCMessage **out);
/* The store object was replaced (a Raft snapshot was installed): rebuild from it. */
void auth_store_changed(auth *a);

/* State for AuthStatus and the fast path of every check. */
bool auth_is_enabled(auth *a, mvcc *m);
uint64_t auth_revision(auth *a, mvcc *m);

/* The user a simple token names (valid until the next call into this module), refreshing
 * its TTL; CE_INVALID_TOKEN when unknown or expired. now_ms: a monotonic clock. */
int auth_token_user(auth *a, const char *token, uint64_t now_ms, const char **user);
/* Draws a random token prefix (16 letters) into buf[17]. 0 or CE_IO. */
int auth_token_prefix(char buf[17]);

/* Checks: 0 when permitted (always when auth is disabled), CE_USER_EMPTY for no user,
 * CE_PERMISSION_DENIED otherwise. range_end as etcd's (empty = the key alone, "\0" = every
 * key from key on). */
int auth_check_range(auth *a, mvcc *m, const char *user, const ProtobufCBinaryData *key,
                     const ProtobufCBinaryData *range_end, bool write);
int auth_check_txn(auth *a, mvcc *m, const char *user, const Etcdserverpb__TxnRequest *t);
/* What one write touches: a Put's key (and its read for prev_kv), a DeleteRange's range (read
 * too for prev_kv), every key and compare of a Txn; other kinds pass. */
int auth_check_request(auth *a, mvcc *m, const char *user, const Cetcdpb__InternalRequest *ir);
/* At apply: re-checks ir (with the user it records) when the auth store changed since it was
 * checked (ir->auth_revision differs from the current revision); else 0. */
int auth_check_at_apply(auth *a, mvcc *m, const Cetcdpb__InternalRequest *ir);
/* The user holds the root role (etcd's admin operations). */
int auth_check_admin(auth *a, mvcc *m, const char *user);
/* The user holds role (RoleGet of one's own role is allowed without root). */
bool auth_user_has_role(auth *a, mvcc *m, const char *user, const char *role);

/* Passwords. auth_hash_password is slow (tens of ms): call it off the event loop or accept
 * the stall. */
int auth_hash_password(const char *password, char **hash);
bool auth_password_matches(const char *hash, const char *password);
/* Authenticate's check: CE_AUTH_NOT_ENABLED, CE_AUTH_FAILED (unknown user, no-password user,
 * wrong password), or 0. Slow (one hash). */
int auth_check_password(auth *a, mvcc *m, const char *user, const char *password);
/* Its fast half, for checking off the loop (pwjob.h): the user's stored hash (malloc'd), or
 * CE_AUTH_NOT_ENABLED / CE_AUTH_FAILED (unknown user, or one without a password). */
int auth_user_hash(auth *a, mvcc *m, const char *user, char **hash);

/* Reads for the Auth service, from the store (heap results, the caller frees):
 * UserGet's roles, RoleGet's permissions, sorted names for UserList / RoleList. */
int auth_user_roles(auth *a, mvcc *m, const char *user, char ***roles, size_t *n);
int auth_role_perms(auth *a, mvcc *m, const char *role, Authpb__Permission ***perms, size_t *n);
int auth_user_names(auth *a, mvcc *m, char ***names, size_t *n);
int auth_role_names(auth *a, mvcc *m, char ***names, size_t *n);

#endif
