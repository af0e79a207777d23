/*
 * leader_k8s.c: the Kubernetes-backed struct leader_store, over controller/k8s/k8s.h, and
 * leader_new, which elects through it. Kept apart from leader.c so the election logic links
 * (and is unit-tested) without the Kubernetes client.
 *
 * The object written (coordination.k8s.io/v1 Lease; create, and update by PUT):
 *   {"apiVersion":"coordination.k8s.io/v1","kind":"Lease",
 *    "metadata":{"name":N,"namespace":NS,"resourceVersion":V (update only), ...},
 *    "spec":{"holderIdentity":"op-0_1a2b","leaseDurationSeconds":15,
 *            "acquireTime":"2026-11-21T10:00:00.000000Z","renewTime":"...",
 *            "leaseTransitions":3}}
 * An update starts from the object last read (so labels, annotations and spec fields this
 * code does not know survive), with the five spec fields above replaced; an empty time is
 * left out. Reading treats absent fields as ""/0.
 *
 * Invariant: `last` is only used by the one thread that drives the elector (the election
 * thread, or the leader_stop caller after it ended), so it needs no lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "runtime/leader.h"

struct k8s_store {
    k8s_client *client;
    char *ns, *name;
    cJSON *last; /* the Lease as last read, or NULL */
};

static void copy_str(char *dst, size_t size, const cJSON *j)
{
    dst[0] = '\0';
    if (cJSON_IsString(j) && j->valuestring)
        snprintf(dst, size, "%s", j->valuestring);
}

static int int_of(const cJSON *j) { return cJSON_IsNumber(j) ? j->valueint : 0; }

static void record_from(const cJSON *lease, struct leader_record *rec)
{
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");

    memset(rec, 0, sizeof(*rec));
    copy_str(rec->holder, sizeof(rec->holder),
             cJSON_GetObjectItemCaseSensitive(spec, "holderIdentity"));
    copy_str(rec->acquire_time, sizeof(rec->acquire_time),
             cJSON_GetObjectItemCaseSensitive(spec, "acquireTime"));
    copy_str(rec->renew_time, sizeof(rec->renew_time),
             cJSON_GetObjectItemCaseSensitive(spec, "renewTime"));
    rec->lease_duration_s = int_of(cJSON_GetObjectItemCaseSensitive(spec, "leaseDurationSeconds"));
    rec->transitions = int_of(cJSON_GetObjectItemCaseSensitive(spec, "leaseTransitions"));
}

static int k8s_store_get(void *ctx, struct leader_record *rec, char **version)
{
    struct k8s_store *s = ctx;
    const cJSON *rv;
    cJSON *obj = NULL;
    int rc = k8s_get(s->client, &K8S_LEASES, s->ns, s->name, &obj);

    if (rc != 0)
        return rc;
    rv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(obj, "metadata"),
                                          "resourceVersion");
    *version = strdup(cJSON_IsString(rv) && rv->valuestring ? rv->valuestring : "");
    if (!*version) {
        cJSON_Delete(obj);
        return CE_NOMEM;
    }
    record_from(obj, rec);
    cJSON_Delete(s->last);
    s->last = obj;
    return 0;
}

/* Sets key in obj to item, replacing an old value; false on allocation failure. */
static bool put(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        return false;
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddItemToObject(obj, key, item);
    return true;
}

static bool put_time(cJSON *spec, const char *key, const char *t)
{
    if (!*t) {
        cJSON_DeleteItemFromObjectCaseSensitive(spec, key);
        return true;
    }
    return put(spec, key, cJSON_CreateString(t));
}

static bool fill_spec(cJSON *spec, const struct leader_record *rec)
{
    return put(spec, "holderIdentity", cJSON_CreateString(rec->holder)) &&
           put(spec, "leaseDurationSeconds", cJSON_CreateNumber(rec->lease_duration_s)) &&
           put_time(spec, "acquireTime", rec->acquire_time) &&
           put_time(spec, "renewTime", rec->renew_time) &&
           put(spec, "leaseTransitions", cJSON_CreateNumber(rec->transitions));
}

/* The object to write: a copy of the last read Lease, or a new skeleton. */
static cJSON *lease_object(const struct k8s_store *s, const struct leader_record *rec,
                           const char *version)
{
    cJSON *obj = s->last && version ? cJSON_Duplicate(s->last, true) : cJSON_CreateObject();
    cJSON *meta, *spec;
    bool ok;

    if (!obj)
        return NULL;
    meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
    if (!cJSON_IsObject(meta))
        put(obj, "metadata", meta = cJSON_CreateObject());
    spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
    if (!cJSON_IsObject(spec))
        put(obj, "spec", spec = cJSON_CreateObject());
    ok = meta && spec && put(obj, "apiVersion", cJSON_CreateString("coordination.k8s.io/v1")) &&
         put(obj, "kind", cJSON_CreateString("Lease")) &&
         put(meta, "name", cJSON_CreateString(s->name)) &&
         put(meta, "namespace", cJSON_CreateString(s->ns)) && fill_spec(spec, rec) &&
         (!version || put(meta, "resourceVersion", cJSON_CreateString(version)));
    if (!ok) {
        cJSON_Delete(obj);
        return NULL;
    }
    return obj;
}

static int k8s_store_create(void *ctx, const struct leader_record *rec)
{
    struct k8s_store *s = ctx;
    cJSON *obj = lease_object(s, rec, NULL);
    int rc;

    if (!obj)
        return CE_NOMEM;
    rc = k8s_create(s->client, &K8S_LEASES, s->ns, obj, NULL);
    cJSON_Delete(obj);
    return rc;
}

static int k8s_store_update(void *ctx, const struct leader_record *rec, const char *version)
{
    struct k8s_store *s = ctx;
    cJSON *obj = lease_object(s, rec, version);
    int rc;

    if (!obj)
        return CE_NOMEM;
    rc = k8s_update(s->client, &K8S_LEASES, s->ns, s->name, obj, NULL);
    cJSON_Delete(obj);
    return rc;
}

static void k8s_store_free(void *ctx)
{
    struct k8s_store *s = ctx;

    if (!s)
        return;
    cJSON_Delete(s->last);
    free(s->ns);
    free(s->name);
    free(s);
}

int leader_k8s_store(k8s_client *c, const char *ns, const char *name, struct leader_store *out)
{
    struct k8s_store *s;

    if (!c || !ns || !*ns || !name || !*name)
        return CE_INVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return CE_NOMEM;
    s->client = c;
    s->ns = strdup(ns);
    s->name = strdup(name);
    if (!s->ns || !s->name) {
        k8s_store_free(s);
        return CE_NOMEM;
    }
    *out = (struct leader_store){.get = k8s_store_get,
                                 .create = k8s_store_create,
                                 .update = k8s_store_update,
                                 .free = k8s_store_free,
                                 .ctx = s};
    return 0;
}

int leader_new(k8s_client *c, const struct leader_opts *opts, leader **out)
{
    struct leader_store store;
    int rc = leader_k8s_store(c, opts->namespace, opts->name, &store);

    if (rc != 0)
        return rc;
    return leader_new_store(&store, opts, out);
}
