/*
 * auth_int.h: what the files of server/auth/ share (auth.c: applying changes to the store's
 * records; auth_check.c: the in-memory copy and the permission checks; auth_token.c: simple
 * tokens and password hashing). Not for other modules.
 */
#ifndef CETCD_AUTH_INT_H
#define CETCD_AUTH_INT_H

#include "auth.h"

/* Record keys in the mvcc "auth" table (formats in auth.c). */
#define AUTH_KEY_ENABLED "enabled"
#define AUTH_KEY_REVISION "revision"
#define AUTH_USER_PREFIX "user/"
#define AUTH_ROLE_PREFIX "role/"

struct auth_token {
    char *token;
    char *user;
    uint64_t expire_ms;
    struct auth_token *next;      /* hash chain */
};

struct auth {
    uint64_t ttl_ms;
    /* The copy the checks read. Invariant: when !stale and store == the store checked,
     * these mirror its table (users and roles sorted by name). */
    bool stale;
    mvcc *store;
    bool enabled;
    uint64_t rev;
    Authpb__User **users;
    size_t nusers;
    Authpb__Role **roles;
    size_t nroles;
    /* Simple tokens (auth_token.c): chained hash table, nbuckets a power of two (or 0). */
    struct auth_token **tbuckets;
    size_t nbuckets, ntokens, sweep_at;
};

/* auth_check.c: brings the copy up to date with m. 0 or CE_*. */
int auth__refresh(auth *a, mvcc *m);
/* The name of the i-th cached user / role (i < nusers / nroles). */
const ProtobufCBinaryData *auth__user_name(const auth *a, size_t i);
const ProtobufCBinaryData *auth__role_name(const auth *a, size_t i);
const Authpb__User *auth__find_user(const auth *a, const char *name);
const Authpb__Role *auth__find_role(const auth *a, const char *name);
void auth__cache_clear(auth *a);

/* auth_token.c */
int auth__token_assign(auth *a, const char *prefix, uint64_t index, const char *user,
                       uint64_t now_ms, char **token);
void auth__tokens_drop_user(auth *a, const char *user);   /* NULL = every token */
void auth__tokens_free(auth *a);

/* auth.c: reading the table's records. */
bool auth__read_enabled(mvcc *m);
uint64_t auth__read_revision(mvcc *m);
int auth__load_user(mvcc *m, const char *name, Authpb__User **u);
int auth__load_role(mvcc *m, const char *name, Authpb__Role **r);

#endif
