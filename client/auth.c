/*
 * auth.c: etcd's Auth service through the JSON gateway (POST /v3/auth/...), for cetcdctl's
 * auth, user and role commands. Requests are built with the codec's helpers (bytes as base64,
 * enums by name); answers are decoded into arena-backed results (cetcd_client.h, "Auth").
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cetcd_client.h"
#include "client_internal.h"

/* POSTs body (deleted here) to path, dropping the answer; CE_NOMEM when body is NULL. */
static int call_plain(cetcd_client *c, const char *path, cJSON *body)
{
    cJSON *resp = NULL;
    int rc = body ? cetcd_http_call(c, NULL, path, body, &resp) : CE_NOMEM;

    cJSON_Delete(resp);
    cJSON_Delete(body);
    return rc;
}

/* {"k1":v1,"k2":v2} with string values (k2 may be NULL), or NULL on OOM. */
static cJSON *strings(const char *k1, const char *v1, const char *k2, const char *v2)
{
    cJSON *b = cJSON_CreateObject();

    if (b && k1 && !cJSON_AddStringToObject(b, k1, v1))
        goto out_free;
    if (b && k2 && !cJSON_AddStringToObject(b, k2, v2))
        goto out_free;
    return b;
out_free:
    cJSON_Delete(b);
    return NULL;
}

int cetcd_auth_enable(cetcd_client *c)
{
    return call_plain(c, "/v3/auth/enable", cJSON_CreateObject());
}

int cetcd_auth_disable(cetcd_client *c)
{
    return call_plain(c, "/v3/auth/disable", cJSON_CreateObject());
}

int cetcd_user_add(cetcd_client *c, const char *name, const char *password, bool no_password)
{
    cJSON *b = strings("name", name, "password", password ? password : ""), *o;

    if (b && no_password) {
        o = cJSON_AddObjectToObject(b, "options");
        if (!o || !cJSON_AddBoolToObject(o, "no_password", true)) {
            cJSON_Delete(b);
            b = NULL;
        }
    }
    return call_plain(c, "/v3/auth/user/add", b);
}

int cetcd_user_delete(cetcd_client *c, const char *name)
{
    return call_plain(c, "/v3/auth/user/delete", strings("name", name, NULL, NULL));
}

int cetcd_user_passwd(cetcd_client *c, const char *name, const char *password)
{
    return call_plain(c, "/v3/auth/user/changepw", strings("name", name, "password", password));
}

int cetcd_user_grant_role(cetcd_client *c, const char *user, const char *role)
{
    return call_plain(c, "/v3/auth/user/grant", strings("user", user, "role", role));
}

int cetcd_user_revoke_role(cetcd_client *c, const char *user, const char *role)
{
    return call_plain(c, "/v3/auth/user/revoke", strings("name", user, "role", role));
}

int cetcd_role_add(cetcd_client *c, const char *name)
{
    return call_plain(c, "/v3/auth/role/add", strings("name", name, NULL, NULL));
}

int cetcd_role_delete(cetcd_client *c, const char *name)
{
    return call_plain(c, "/v3/auth/role/delete", strings("role", name, NULL, NULL));
}

static const char *const perm_names[] = {"READ", "WRITE", "READWRITE"};

int cetcd_role_grant(cetcd_client *c, const char *role, const struct cetcd_perm *p)
{
    cJSON *b = strings("name", role, NULL, NULL), *perm;

    if (!b || p->type < 0 || p->type > 2)
        goto out_free;
    perm = cJSON_AddObjectToObject(b, "perm");
    if (!perm || !cJSON_AddStringToObject(perm, "permType", perm_names[p->type]) ||
        !cetcd_codec_add_bytes(perm, "key", p->key, p->key_len) ||
        !cetcd_codec_add_bytes(perm, "range_end", p->end, p->end_len))
        goto out_free;
    return call_plain(c, "/v3/auth/role/grant", b);
out_free:
    cJSON_Delete(b);
    return CE_NOMEM;
}

int cetcd_role_revoke(cetcd_client *c, const char *role, const char *key, size_t klen,
                      const char *end, size_t elen)
{
    cJSON *b = strings("role", role, NULL, NULL);

    if (!b || !cetcd_codec_add_bytes(b, "key", key, klen) ||
        !cetcd_codec_add_bytes(b, "range_end", end, elen)) {
        cJSON_Delete(b);
        return CE_NOMEM;
    }
    return call_plain(c, "/v3/auth/role/revoke", b);
}

/* The string array `field` of resp into out. */
static int decode_names(const cJSON *resp, const char *field, struct cetcd_names *out)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(resp, field), *it;
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    cJSON_ArrayForEach(it, arr)
        n++;
    out->names = cetcd_mem_alloc(&out->mem, (n ? n : 1) * sizeof(char *));
    if (!out->names)
        return CE_NOMEM;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it))
            return CE_CORRUPT;
        out->names[out->n] = cetcd_mem_dup(&out->mem, it->valuestring, strlen(it->valuestring));
        if (!out->names[out->n++])
            return CE_NOMEM;
    }
    return 0;
}

static int call_names(cetcd_client *c, const char *path, cJSON *body, const char *field,
                      struct cetcd_names *out)
{
    cJSON *resp = NULL;
    int rc = body ? cetcd_http_call(c, NULL, path, body, &resp) : CE_NOMEM;

    memset(out, 0, sizeof(*out));
    if (!rc)
        rc = decode_names(resp, field, out);
    if (rc)
        cetcd_names_free(out);
    cJSON_Delete(resp);
    cJSON_Delete(body);
    return rc;
}

int cetcd_user_get(cetcd_client *c, const char *name, struct cetcd_names *roles)
{
    return call_names(c, "/v3/auth/user/get", strings("name", name, NULL, NULL), "roles", roles);
}

int cetcd_user_list(cetcd_client *c, struct cetcd_names *out)
{
    return call_names(c, "/v3/auth/user/list", cJSON_CreateObject(), "users", out);
}

int cetcd_role_list(cetcd_client *c, struct cetcd_names *out)
{
    return call_names(c, "/v3/auth/role/list", cJSON_CreateObject(), "roles", out);
}

static int decode_perm(const cJSON *j, struct cetcd_mem **m, struct cetcd_perm *p)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "permType");
    int rc;

    p->type = 0;       /* READ is the zero value: omitted */
    for (int i = 0; cJSON_IsString(t) && i < 3; i++)
        if (!strcmp(t->valuestring, perm_names[i]))
            p->type = i;
    if ((rc = cetcd_codec_bytes(j, "key", m, &p->key, &p->key_len)) != 0)
        return rc;
    return cetcd_codec_bytes(j, "range_end", m, &p->end, &p->end_len);
}

int cetcd_role_get(cetcd_client *c, const char *role, struct cetcd_role_perms *out)
{
    cJSON *body = strings("role", role, NULL, NULL), *resp = NULL;
    const cJSON *arr, *it;
    size_t n = 0;
    int rc = body ? cetcd_http_call(c, NULL, "/v3/auth/role/get", body, &resp) : CE_NOMEM;

    memset(out, 0, sizeof(*out));
    cJSON_Delete(body);
    if (rc)
        return rc;
    arr = cJSON_GetObjectItemCaseSensitive(resp, "perm");
    cJSON_ArrayForEach(it, arr)
        n++;
    out->perms = cetcd_mem_alloc(&out->mem, (n ? n : 1) * sizeof(*out->perms));
    rc = out->perms ? 0 : CE_NOMEM;
    cJSON_ArrayForEach(it, arr) {
        if (rc || (rc = decode_perm(it, &out->mem, &out->perms[out->n])) != 0)
            break;
        out->n++;
    }
    if (rc)
        cetcd_role_perms_free(out);
    cJSON_Delete(resp);
    return rc;
}

void cetcd_names_free(struct cetcd_names *r)
{
    if (!r)
        return;
    cetcd_mem_free(r->mem);
    memset(r, 0, sizeof(*r));
}

void cetcd_role_perms_free(struct cetcd_role_perms *r)
{
    if (!r)
        return;
    cetcd_mem_free(r->mem);
    memset(r, 0, sizeof(*r));
}
