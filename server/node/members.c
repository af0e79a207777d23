/*
 * members.c: membership parsing, etcd-compatible ID derivation and the JSON form of the member
 * list (stored in the data directory and in snapshots):
 *   {"cluster_id":"<hex>","members":[{"id":"<hex>","name":"n","peer_urls":["..."],
 *    "client_urls":["..."],"is_learner":false}, ...]}
 */
#include "members.h"
#include "err.h"

#include <cjson/cJSON.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t member_id(node_member *m, const char *token)
{
    char buf[NODE_MAX_URLS * 256 + 512];
    unsigned char md[SHA_DIGEST_LENGTH];
    size_t len = 0;

    qsort(m->peer_urls, (size_t)m->npeer, sizeof(m->peer_urls[0]), cmp_str);
    for (int i = 0; i < m->npeer; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s", m->peer_urls[i]);
    len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s", token ? token : "");
    SHA1((const unsigned char *)buf, len, md);
    return be64(md);
}

uint64_t members_cluster_id(const node_member *m, size_t count)
{
    uint64_t ids[64];
    unsigned char b[8 * 64], md[SHA_DIGEST_LENGTH];

    if (count > 64)
        count = 64;
    for (size_t i = 0; i < count; i++)
        ids[i] = m[i].id;
    qsort(ids, count, sizeof(ids[0]), cmp_u64);
    for (size_t i = 0; i < count; i++)
        for (int j = 0; j < 8; j++)
            b[8 * i + (size_t)j] = (unsigned char)(ids[i] >> (56 - 8 * j));
    SHA1(b, 8 * count, md);
    return be64(md);
}

static node_member *find_or_add(node_member **arr, size_t *n, const char *name, size_t nlen)
{
    node_member *grown;

    for (size_t i = 0; i < *n; i++)
        if (strlen((*arr)[i].name) == nlen && !strncmp((*arr)[i].name, name, nlen))
            return &(*arr)[i];
    grown = realloc(*arr, (*n + 1) * sizeof(**arr));
    if (!grown)
        return 0;
    *arr = grown;
    memset(&grown[*n], 0, sizeof(grown[*n]));
    snprintf(grown[*n].name, sizeof(grown[*n].name), "%.*s", (int)nlen, name);
    return &grown[(*n)++];
}

int members_parse_initial(const char *ic, const char *token, node_member **out, size_t *count,
                          char *err, size_t errlen)
{
    node_member *arr = 0;
    size_t n = 0;
    const char *p = ic;

    while (*p) {
        const char *comma = strchr(p, ','), *eq;
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        node_member *m;

        eq = memchr(p, '=', len);
        if (!eq || eq == p || (size_t)(eq - p) >= sizeof(arr->name) || eq + 1 == p + len ||
            len - (size_t)(eq - p) - 1 >= sizeof(arr->peer_urls[0])) {
            snprintf(err, errlen, "invalid --initial-cluster entry \"%.*s\": want name=url", (int)len, p);
            goto out_bad;
        }
        m = find_or_add(&arr, &n, p, (size_t)(eq - p));
        if (!m || m->npeer == NODE_MAX_URLS) {
            snprintf(err, errlen, "too many peer URLs in --initial-cluster");
            goto out_bad;
        }
        snprintf(m->peer_urls[m->npeer++], sizeof(m->peer_urls[0]), "%.*s",
                 (int)(len - (size_t)(eq - p) - 1), eq + 1);
        p += len + (comma ? 1 : 0);
    }
    if (n == 0) {
        snprintf(err, errlen, "--initial-cluster is empty");
        goto out_bad;
    }
    for (size_t i = 0; i < n; i++)
        arr[i].id = member_id(&arr[i], token);
    *out = arr;
    *count = n;
    return 0;

out_bad:
    free(arr);
    return CE_INVAL;
}

static cJSON *url_array(char urls[][256], int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(urls[i]));
    return a;
}

char *members_to_json(const node_member *m, size_t count, uint64_t cluster_id)
{
    cJSON *root = cJSON_CreateObject(), *arr;
    char hex[24];
    char *out;

    if (!root)
        return 0;
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)cluster_id);
    cJSON_AddStringToObject(root, "cluster_id", hex);
    arr = cJSON_AddArrayToObject(root, "members");
    for (size_t i = 0; arr && i < count; i++) {
        cJSON *o = cJSON_CreateObject();
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)m[i].id);
        cJSON_AddStringToObject(o, "id", hex);
        cJSON_AddStringToObject(o, "name", m[i].name);
        cJSON_AddItemToObject(o, "peer_urls", url_array((char(*)[256])m[i].peer_urls, m[i].npeer));
        cJSON_AddItemToObject(o, "client_urls", url_array((char(*)[256])m[i].client_urls, m[i].nclient));
        cJSON_AddBoolToObject(o, "is_learner", m[i].is_learner);
        cJSON_AddItemToArray(arr, o);
    }
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static int read_urls(const cJSON *a, char urls[][256], int *n)
{
    const cJSON *u;

    *n = 0;
    cJSON_ArrayForEach(u, a) {
        if (!cJSON_IsString(u) || *n == NODE_MAX_URLS)
            return CE_CORRUPT;
        snprintf(urls[(*n)++], 256, "%s", u->valuestring);
    }
    return 0;
}

int members_from_json(const char *json, node_member **out, size_t *count, uint64_t *cluster_id)
{
    cJSON *root = cJSON_Parse(json), *arr, *o;
    node_member *ms = 0;
    size_t n = 0;
    int rc = CE_CORRUPT;

    if (!root)
        return CE_CORRUPT;
    arr = cJSON_GetObjectItem(root, "members");
    if (!cJSON_IsString(cJSON_GetObjectItem(root, "cluster_id")) || !cJSON_IsArray(arr))
        goto out_free;
    *cluster_id = strtoull(cJSON_GetObjectItem(root, "cluster_id")->valuestring, 0, 16);
    ms = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*ms));
    if (!ms)
        goto out_free;
    cJSON_ArrayForEach(o, arr) {
        node_member *m = &ms[n++];
        cJSON *id = cJSON_GetObjectItem(o, "id"), *name = cJSON_GetObjectItem(o, "name");
        if (!cJSON_IsString(id) || !cJSON_IsString(name))
            goto out_free;
        m->id = strtoull(id->valuestring, 0, 16);
        snprintf(m->name, sizeof(m->name), "%s", name->valuestring);
        if (read_urls(cJSON_GetObjectItem(o, "peer_urls"), m->peer_urls, &m->npeer) ||
            read_urls(cJSON_GetObjectItem(o, "client_urls"), m->client_urls, &m->nclient))
            goto out_free;
        m->is_learner = cJSON_IsTrue(cJSON_GetObjectItem(o, "is_learner"));
    }
    *out = ms;
    *count = n;
    ms = 0;
    rc = 0;
out_free:
    free(ms);
    cJSON_Delete(root);
    return rc;
}
