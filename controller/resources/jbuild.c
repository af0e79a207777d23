/*
 * jbuild.c: the small JSON builders of controller/resources/ (build_int.h).
 *
 * Each adds one member and records an allocation failure in *ok; none frees or returns an
 * error, so a builder can chain them and check once at the end (rb_finish). An item handed to
 * rb_attach is owned by its new parent, or freed when it cannot be added.
 */
#include "resources/build_int.h"

cJSON *rb_track(cJSON *item, bool *ok)
{
    if (!item)
        *ok = false;
    return item;
}

void rb_str(cJSON *o, const char *k, const char *v, bool *ok)
{
    rb_track(cJSON_AddStringToObject(o, k, v), ok);
}

void rb_num(cJSON *o, const char *k, double v, bool *ok)
{
    rb_track(cJSON_AddNumberToObject(o, k, v), ok);
}

void rb_bool(cJSON *o, const char *k, bool v, bool *ok)
{
    rb_track(cJSON_AddBoolToObject(o, k, v), ok);
}

cJSON *rb_obj(cJSON *o, const char *k, bool *ok)
{
    return rb_track(cJSON_AddObjectToObject(o, k), ok);
}

cJSON *rb_arr(cJSON *o, const char *k, bool *ok)
{
    return rb_track(cJSON_AddArrayToObject(o, k), ok);
}

/* Adds item to o under k (taking it), or to array o when k is NULL. */
cJSON *rb_attach(cJSON *o, const char *k, cJSON *item, bool *ok)
{
    bool added;

    if (!item || !o) {
        cJSON_Delete(item);
        *ok = false;
        return NULL;
    }
    added = k ? cJSON_AddItemToObject(o, k, item) : cJSON_AddItemToArray(o, item);
    if (!added) {
        cJSON_Delete(item);
        *ok = false;
        return NULL;
    }
    return item;
}

cJSON *rb_push_obj(cJSON *arr, bool *ok)
{
    return rb_attach(arr, NULL, cJSON_CreateObject(), ok);
}

void rb_push_str(cJSON *arr, const char *v, bool *ok)
{
    rb_attach(arr, NULL, cJSON_CreateString(v), ok);
}

void rb_copy(cJSON *o, const char *k, const cJSON *v, bool *ok)
{
    rb_attach(o, k, cJSON_Duplicate(v, true), ok);
}

cJSON *rb_finish(cJSON *obj, bool ok)
{
    if (ok)
        return obj;
    cJSON_Delete(obj);
    return NULL;
}

