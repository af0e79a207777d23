/*
 * equal.c: does a live object already carry what the operator wants in it?
 *
 * The reconciler builds the object it wants (build.c) and compares it with the live one before
 * writing, so a converged cluster costs no writes. The live object has more than was built:
 * server-side defaults (protocol, timeoutSeconds, revisionHistoryLimit, fieldRef.apiVersion,
 * clusterIP, volume defaultMode, ...) and fields other controllers own (labels, annotations,
 * status). So the comparison is one of inclusion, field by field, over what the operator owns:
 *   metadata.labels            every wanted label present with the same value (others ignored)
 *   metadata.ownerReferences   every wanted reference present (matched by uid), same fields
 *   spec                       the wanted tree included in the live one: objects by key
 *                              (extra live keys ignored), arrays element by element with the
 *                              same length (order matters, as it does to Kubernetes), scalars
 *                              equal
 *   data                       exactly the same keys and values (the membership ConfigMap is
 *                              wholly the operator's; a stale entry is a difference)
 * Two rewrites by the API server are tolerated: a wanted Go zero value (false, 0, "", null, [])
 * matches an absent live field, since the server drops such fields; and quantities (values of a
 * `requests` or `limits` map, `sizeLimit`) compare by value, since the server rewrites "0.5Gi"
 * as "512Mi". Known limit: an entry removed from a user map (a pod label, an annotation) leaves
 * the live object "including" the wanted one, so removals are not seen as differences.
 */
#include <string.h>

#include "resources/resources.h"

enum mode {
    PLAIN,  /* compare as is */
    QMAP,   /* an object whose values are quantities (requests, limits) */
    QTY,    /* a quantity */
};

static const cJSON *get(const cJSON *o, const char *k)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
}

/* A Go zero value: what the API server omits when it serializes an object. */
static bool is_zero(const cJSON *v)
{
    if (cJSON_IsNull(v) || cJSON_IsFalse(v))
        return true;
    if (cJSON_IsNumber(v))
        return v->valuedouble == 0;
    if (cJSON_IsString(v))
        return v->valuestring[0] == '\0';
    if (cJSON_IsArray(v))
        return v->child == NULL;
    return false;
}

static enum mode child_mode(enum mode parent, const char *key)
{
    if (parent == QMAP || !strcmp(key, "sizeLimit"))
        return QTY;
    if (!strcmp(key, "requests") || !strcmp(key, "limits"))
        return QMAP;
    return PLAIN;
}

static bool included(const cJSON *want, const cJSON *have, enum mode m);

static bool object_included(const cJSON *want, const cJSON *have, enum mode m)
{
    const cJSON *w;

    if (!cJSON_IsObject(have))
        return false;
    cJSON_ArrayForEach(w, want)
        if (!included(w, get(have, w->string), child_mode(m, w->string)))
            return false;
    return true;
}

static bool array_included(const cJSON *want, const cJSON *have)
{
    const cJSON *w, *h;

    if (!cJSON_IsArray(have) || cJSON_GetArraySize(want) != cJSON_GetArraySize(have))
        return false;
    for (w = want->child, h = have->child; w && h; w = w->next, h = h->next)
        if (!included(w, h, PLAIN))
            return false;
    return true;
}

static bool string_equal(const cJSON *want, const cJSON *have, enum mode m)
{
    if (!cJSON_IsString(have))
        return false;
    if (!strcmp(want->valuestring, have->valuestring))
        return true;
    return m == QTY && ec_quantity_equal(want->valuestring, have->valuestring);
}

static bool included(const cJSON *want, const cJSON *have, enum mode m)
{
    if (!have || cJSON_IsNull(have))
        return is_zero(want);
    if (cJSON_IsObject(want))
        return object_included(want, have, m);
    if (cJSON_IsArray(want))
        return array_included(want, have);
    if (cJSON_IsString(want))
        return string_equal(want, have, m);
    if (cJSON_IsNumber(want))
        return cJSON_IsNumber(have) && want->valuedouble == have->valuedouble;
    if (cJSON_IsBool(want))
        return cJSON_IsBool(have) && cJSON_IsTrue(want) == cJSON_IsTrue(have);
    return cJSON_IsNull(want);
}

static const cJSON *ref_by_uid(const cJSON *refs, const cJSON *uid)
{
    const cJSON *r;

    if (!cJSON_IsString(uid))
        return NULL;
    cJSON_ArrayForEach(r, refs) {
        const cJSON *u = get(r, "uid");
        if (cJSON_IsString(u) && !strcmp(u->valuestring, uid->valuestring))
            return r;
    }
    return NULL;
}

static bool owner_refs_included(const cJSON *want, const cJSON *have)
{
    const cJSON *w;

    cJSON_ArrayForEach(w, want)
        if (!included(w, ref_by_uid(cJSON_IsArray(have) ? have : NULL, get(w, "uid")), PLAIN))
            return false;
    return true;
}

static bool data_equal(const cJSON *want, const cJSON *have)
{
    const cJSON *w;
    int n = 0;

    cJSON_ArrayForEach(w, want) {
        const cJSON *h = get(have, w->string);
        if (!cJSON_IsString(w) || !cJSON_IsString(h) || strcmp(w->valuestring, h->valuestring))
            return false;
        n++;
    }
    return n == (cJSON_IsObject(have) ? cJSON_GetArraySize(have) : 0);
}

bool ec_owned_fields_equal(const cJSON *want, const cJSON *have)
{
    const cJSON *wmd = get(want, "metadata"), *hmd = get(have, "metadata");

    if (!cJSON_IsObject(want) || !cJSON_IsObject(have))
        return false;
    if (get(wmd, "labels") && !included(get(wmd, "labels"), get(hmd, "labels"), PLAIN))
        return false;
    if (!owner_refs_included(get(wmd, "ownerReferences"), get(hmd, "ownerReferences")))
        return false;
    if (get(want, "spec") && !included(get(want, "spec"), get(have, "spec"), PLAIN))
        return false;
    if (get(want, "data") && !data_equal(get(want, "data"), get(have, "data")))
        return false;
    return true;
}
