/*
 * auth_token.c: simple tokens, password hashing, and the Auth service's reads.
 *
 * Simple tokens (etcd's --auth-token simple): "<16 random letters>.<Raft index>", assigned
 * on every member when the Authenticate entry is applied; each lives ttl after its last use.
 * They sit in a chained hash table (FNV-1a of the token, power-of-two buckets, doubled once
 * tokens outnumber buckets), so a request's lookup costs one short chain however many
 * clients hold tokens. Expired tokens go when a lookup meets them, and a few chains are swept
 * round robin at each new token, so tokens never presented again do not pile up.
 *
 * Password hash string: "$pbkdf2-sha256$<iterations>$<32 hex: 16-byte salt>$<64 hex: 32-byte
 * PBKDF2-HMAC-SHA256>". Verification recomputes with the stored salt and iterations and
 * compares in constant time. A bcrypt hash ("$2a$<cost>$...", etcd's, carried over by a
 * restored etcd snapshot) is verified with libcrypt's crypt_r; new hashes are always PBKDF2.
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth_int.h"
#include "err.h"
#include "fnv1a.h"

#define PBKDF2_ITER 100000
#define TOKEN_BUCKETS_MIN 16
#define TOKEN_SWEEP_PER_ASSIGN 4
#define SALT_LEN 16
#define HASH_LEN 32

/* ---- tokens ------------------------------------------------------------------------------------ */

static size_t bucket_of(const auth *a, const char *token)
{
    return (size_t)fnv1a64(token, strlen(token)) & (a->nbuckets - 1);
}

static void token_free(struct auth_token *t)
{
    free(t->token);
    free(t->user);
    free(t);
}

/* Unlinks and frees *link's token; *link then names the next one. */
static void token_unlink(auth *a, struct auth_token **link)
{
    struct auth_token *t = *link;

    *link = t->next;
    token_free(t);
    a->ntokens--;
}

/* Drops the expired tokens of one chain. */
static void sweep_bucket(auth *a, size_t b, uint64_t now_ms)
{
    struct auth_token **link = &a->tbuckets[b];

    while (*link) {
        if ((*link)->expire_ms <= now_ms)
            token_unlink(a, link);
        else
            link = &(*link)->next;
    }
}

/* A few chains per new token, round robin: tokens nobody presents again still go, and the
 * table stays proportional to the live tokens without a timer. */
static void sweep_some(auth *a, uint64_t now_ms)
{
    for (int i = 0; i < TOKEN_SWEEP_PER_ASSIGN && a->nbuckets; i++) {
        sweep_bucket(a, a->sweep_at, now_ms);
        a->sweep_at = (a->sweep_at + 1) & (a->nbuckets - 1);
    }
}

/* Doubles the table (or makes the first) once tokens outnumber chains. */
static int grow(auth *a)
{
    size_t n = a->nbuckets ? a->nbuckets * 2 : TOKEN_BUCKETS_MIN;
    struct auth_token **nb = calloc(n, sizeof(*nb)), **old = a->tbuckets;
    size_t oldn = a->nbuckets;

    if (!nb)
        return CE_NOMEM;
    a->tbuckets = nb;
    a->nbuckets = n;
    a->sweep_at = 0;
    for (size_t i = 0; i < oldn; i++) {
        while (old[i]) {
            struct auth_token *t = old[i];
            size_t b = bucket_of(a, t->token);
            old[i] = t->next;
            t->next = nb[b];
            nb[b] = t;
        }
    }
    free(old);
    return 0;
}

int auth__token_assign(auth *a, const char *prefix, uint64_t index, const char *user,
                       uint64_t now_ms, char **token)
{
    char buf[64];
    struct auth_token *t;
    size_t b;

    if (!prefix || !*prefix || strlen(prefix) > 32)
        return CE_INVAL;
    snprintf(buf, sizeof(buf), "%s.%llu", prefix, (unsigned long long)index);
    sweep_some(a, now_ms);
    if (a->ntokens >= a->nbuckets && grow(a))
        return CE_NOMEM;
    t = calloc(1, sizeof(*t));
    *token = strdup(buf);
    if (!t || !*token || !(t->token = strdup(buf)) || !(t->user = strdup(user))) {
        free(*token);
        *token = 0;
        if (t)
            token_free(t);
        return CE_NOMEM;
    }
    t->expire_ms = now_ms + a->ttl_ms;
    b = bucket_of(a, buf);
    t->next = a->tbuckets[b];
    a->tbuckets[b] = t;
    a->ntokens++;
    return 0;
}

int auth_token_user(auth *a, const char *token, uint64_t now_ms, const char **user)
{
    struct auth_token **link;

    if (!a->nbuckets)
        return CE_INVALID_TOKEN;
    link = &a->tbuckets[bucket_of(a, token)];
    while (*link) {
        struct auth_token *t = *link;
        if (t->expire_ms <= now_ms) {
            token_unlink(a, link);
            continue;
        }
        if (!strcmp(t->token, token)) {
            t->expire_ms = now_ms + a->ttl_ms;
            *user = t->user;
            return 0;
        }
        link = &t->next;
    }
    return CE_INVALID_TOKEN;
}

void auth__tokens_drop_user(auth *a, const char *user)
{
    for (size_t b = 0; b < a->nbuckets; b++) {
        struct auth_token **link = &a->tbuckets[b];
        while (*link) {
            if (!user || !strcmp((*link)->user, user))
                token_unlink(a, link);
            else
                link = &(*link)->next;
        }
    }
}

void auth__tokens_free(auth *a)
{
    auth__tokens_drop_user(a, 0);
    free(a->tbuckets);
    a->tbuckets = 0;
    a->nbuckets = 0;
}

int auth_token_prefix(char buf[17])
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    unsigned char r[16];

    if (RAND_bytes(r, sizeof(r)) != 1)
        return CE_IO;
    for (int i = 0; i < 16; i++)
        buf[i] = letters[r[i] % 52];
    buf[16] = 0;
    return 0;
}

/* ---- passwords ---------------------------------------------------------------------------------- */

static void to_hex(const uint8_t *p, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = 0;
}

static bool from_hex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + j];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return false;
            v = v << 4 | d;
        }
        out[i] = (uint8_t)v;
    }
    return true;
}

static int derive(const char *pw, const uint8_t *salt, unsigned iter, uint8_t out[HASH_LEN])
{
    return PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, SALT_LEN, (int)iter, EVP_sha256(),
                             HASH_LEN, out) == 1 ? 0 : CE_IO;
}

int auth_hash_password(const char *password, char **hash)
{
    uint8_t salt[SALT_LEN], h[HASH_LEN];
    char sx[2 * SALT_LEN + 1], hx[2 * HASH_LEN + 1], buf[160];
    int rc;

    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return CE_IO;
    if ((rc = derive(password, salt, PBKDF2_ITER, h)) != 0)
        return rc;
    to_hex(salt, SALT_LEN, sx);
    to_hex(h, HASH_LEN, hx);
    snprintf(buf, sizeof(buf), "$pbkdf2-sha256$%u$%s$%s", PBKDF2_ITER, sx, hx);
    *hash = strdup(buf);
    return *hash ? 0 : CE_NOMEM;
}

/* etcd's own hashes (bcrypt, "$2a$", from a migrated etcd snapshot) checked by libcrypt, so
 * users keep their passwords when a cluster moves from etcd to cetcd. */
static bool bcrypt_matches(const char *hash, const char *password)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    size_t n = strlen(hash);
    const char *out;
    bool ok;

    if (!cd)
        return false;
    out = crypt_r(password, hash, cd);
    ok = out && out[0] != '*' && strlen(out) == n && CRYPTO_memcmp(out, hash, n) == 0;
    OPENSSL_cleanse(cd, sizeof(*cd));
    free(cd);
    return ok;
}

static bool is_bcrypt(const char *hash)
{
    return !strncmp(hash, "$2a$", 4) || !strncmp(hash, "$2b$", 4) || !strncmp(hash, "$2y$", 4);
}

bool auth_password_matches(const char *hash, const char *password)
{
    uint8_t salt[SALT_LEN], want[HASH_LEN], got[HASH_LEN];
    unsigned iter;
    int off = 0;

    if (hash && is_bcrypt(hash))
        return bcrypt_matches(hash, password);
    if (!hash || sscanf(hash, "$pbkdf2-sha256$%u$%n", &iter, &off) != 1 || !off)
        return false;
    if (iter == 0 || iter > 10000000 || strlen(hash + off) != 2 * SALT_LEN + 1 + 2 * HASH_LEN ||
        hash[off + 2 * SALT_LEN] != '$')
        return false;
    if (!from_hex(hash + off, SALT_LEN, salt) || !from_hex(hash + off + 2 * SALT_LEN + 1, HASH_LEN, want))
        return false;
    if (derive(password, salt, iter, got))
        return false;
    return CRYPTO_memcmp(got, want, HASH_LEN) == 0;
}

int auth_user_hash(auth *a, mvcc *m, const char *user, char **hash)
{
    const Authpb__User *u;
    int rc = auth__refresh(a, m);

    if (rc)
        return rc;
    if (!a->enabled)
        return CE_AUTH_NOT_ENABLED;
    u = user ? auth__find_user(a, user) : 0;
    if (!u || !u->password.len || (u->options && u->options->no_password))
        return CE_AUTH_FAILED;
    *hash = strndup((const char *)u->password.data, u->password.len);
    return *hash ? 0 : CE_NOMEM;
}

int auth_check_password(auth *a, mvcc *m, const char *user, const char *password)
{
    char *hash;
    bool ok;
    int rc = auth_user_hash(a, m, user, &hash);

    if (rc)
        return rc;
    ok = auth_password_matches(hash, password ? password : "");
    free(hash);
    return ok ? 0 : CE_AUTH_FAILED;
}

/* ---- reads for the Auth service ----------------------------------------------------------------- */

static char *bytes_str(const ProtobufCBinaryData *b)
{
    return strndup(b->len ? (const char *)b->data : "", b->len);
}

static void free_names(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int auth_user_roles(auth *a, mvcc *m, const char *user, char ***roles, size_t *n)
{
    const Authpb__User *u;
    int rc = auth__refresh(a, m);

    if (rc)
        return rc;
    u = auth__find_user(a, user);
    if (!u)
        return CE_USER_NOT_FOUND;
    *roles = calloc(u->n_roles ? u->n_roles : 1, sizeof(**roles));
    if (!*roles)
        return CE_NOMEM;
    for (*n = 0; *n < u->n_roles; (*n)++)
        if (!((*roles)[*n] = strdup(u->roles[*n]))) {
            free_names(*roles, *n);
            return CE_NOMEM;
        }
    return 0;
}

static Authpb__Permission *perm_dup(const Authpb__Permission *p)
{
    Authpb__Permission *q = malloc(sizeof(*q));

    if (!q)
        return 0;
    authpb__permission__init(q);
    q->permtype = p->permtype;
    q->key.data = malloc(p->key.len ? p->key.len : 1);
    q->range_end.data = malloc(p->range_end.len ? p->range_end.len : 1);
    if (!q->key.data || !q->range_end.data) {
        free(q->key.data);
        free(q->range_end.data);
        free(q);
        return 0;
    }
    q->key.len = p->key.len;
    q->range_end.len = p->range_end.len;
    if (p->key.len)
        memcpy(q->key.data, p->key.data, p->key.len);
    if (p->range_end.len)
        memcpy(q->range_end.data, p->range_end.data, p->range_end.len);
    return q;
}

int auth_role_perms(auth *a, mvcc *m, const char *role, Authpb__Permission ***perms, size_t *n)
{
    const Authpb__Role *r;
    int rc = auth__refresh(a, m);

    if (rc)
        return rc;
    r = auth__find_role(a, role);
    if (!r)
        return CE_ROLE_NOT_FOUND;
    *perms = calloc(r->n_keypermission ? r->n_keypermission : 1, sizeof(**perms));
    if (!*perms)
        return CE_NOMEM;
    for (*n = 0; *n < r->n_keypermission; (*n)++)
        if (!((*perms)[*n] = perm_dup(r->keypermission[*n]))) {
            for (size_t i = 0; i < *n; i++)
                authpb__permission__free_unpacked((*perms)[i], 0);
            free(*perms);
            return CE_NOMEM;
        }
    return 0;
}

/* Refreshes the cache and copies the names of its users (users) or roles (!users). */
static int copy_names(auth *a, mvcc *m, bool users, char ***names, size_t *n)
{
    const ProtobufCBinaryData *(*name_at)(const auth *, size_t) = users ? auth__user_name : auth__role_name;
    size_t count;
    int rc = auth__refresh(a, m);

    if (rc)
        return rc;
    count = users ? a->nusers : a->nroles;
    *names = calloc(count ? count : 1, sizeof(**names));
    if (!*names)
        return CE_NOMEM;
    for (*n = 0; *n < count; (*n)++)
        if (!((*names)[*n] = bytes_str(name_at(a, *n)))) {
            free_names(*names, *n);
            return CE_NOMEM;
        }
    return 0;
}

int auth_user_names(auth *a, mvcc *m, char ***names, size_t *n)
{
    return copy_names(a, m, true, names, n);
}

int auth_role_names(auth *a, mvcc *m, char ***names, size_t *n)
{
    return copy_names(a, m, false, names, n);
}
