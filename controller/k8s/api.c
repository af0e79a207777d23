/*
 * api.c: Kubernetes verbs over the request layer: get, list, create, update (PUT), merge patch,
 * the status subresource, delete (with a uid precondition) and core/v1 Events.
 *
 * Paths: core resources live under /api/v1, the others under /apis/<group>/<version>;
 * namespaced ones add /namespaces/<ns>; then /<plural>[/<name>[/status]]. Every segment and
 * query value is percent-encoded. Bodies are JSON (merge patches "application/merge-patch+json").
 * Errors: a non-2xx answer carries a Status object {"kind":"Status","code","reason","message"};
 * its message goes to k8s_errmsg() and the HTTP status (plus reason, to tell AlreadyExists from
 * Conflict on 409) becomes the CE_* code listed in k8s.h. A success leaves k8s_errmsg() "".
 * List answers get apiVersion and kind set on their items (the API server omits them there), so
 * an item can be handed to k8s_event or used for an ownerReference as is.
 */
#include "k8s_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MERGE_PATCH "application/merge-patch+json"
#define JSON_TYPE "application/json"

const struct k8s_res K8S_PODS = {"v1", "pods", "Pod", true};
const struct k8s_res K8S_SERVICES = {"v1", "services", "Service", true};
const struct k8s_res K8S_CONFIGMAPS = {"v1", "configmaps", "ConfigMap", true};
const struct k8s_res K8S_SECRETS = {"v1", "secrets", "Secret", true};
const struct k8s_res K8S_PVCS = {"v1", "persistentvolumeclaims", "PersistentVolumeClaim", true};
const struct k8s_res K8S_EVENTS = {"v1", "events", "Event", true};
const struct k8s_res K8S_STATEFULSETS = {"apps/v1", "statefulsets", "StatefulSet", true};
const struct k8s_res K8S_PDBS = {"policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", true};
const struct k8s_res K8S_LEASES = {"coordination.k8s.io/v1", "leases", "Lease", true};
const struct k8s_res K8S_ETCDCLUSTERS = {"cetcd.io/v1alpha1", "etcdclusters", "EtcdCluster", true};
const struct k8s_res K8S_CRONJOBS = {"batch/v1", "cronjobs", "CronJob", true};
const struct k8s_res K8S_JOBS = {"batch/v1", "jobs", "Job", true};

/* ---------------------------------------------------------------- paths */

static int add_segment(struct k8s_buf *b, const char *seg)
{
    int rc = k8s_buf_adds(b, "/");

    return rc ? rc : k8s_buf_add_escaped(b, seg);
}

int k8s_res_path(struct k8s_buf *b, const struct k8s_res *r, const char *ns, const char *name,
                 const char *sub)
{
    int rc;

    rc = k8s_buf_adds(b, strchr(r->group_version, '/') ? "/apis/" : "/api/");
    if (!rc)
        rc = k8s_buf_adds(b, r->group_version);
    if (!rc && r->namespaced && ns && !(rc = k8s_buf_adds(b, "/namespaces")))
        rc = add_segment(b, ns);
    if (!rc)
        rc = add_segment(b, r->plural);
    if (!rc && name)
        rc = add_segment(b, name);
    if (!rc && sub)
        rc = add_segment(b, sub);
    return rc;
}

/* CE_INVAL unless name is given, and ns too for a namespaced resource. */
static int check_target(const struct k8s_res *r, const char *ns, const char *name)
{
    if (!name || !*name)
        return k8s_fail(CE_INVAL, "kubernetes: %s: no object name given", r->plural);
    if (r->namespaced && (!ns || !*ns))
        return k8s_fail(CE_INVAL, "kubernetes: %s \"%s\": no namespace given", r->plural, name);
    return 0;
}

static int object_path(struct k8s_buf *b, const struct k8s_res *r, const char *ns,
                       const char *name, const char *sub)
{
    int rc = check_target(r, ns, name);

    if (rc)
        return rc;
    return k8s_res_path(b, r, ns, name, sub) ? CE_NOMEM : 0;
}

/* ---------------------------------------------------------------- errors */

static int code_for(long status, const char *reason, const char *method)
{
    if (status == 404)
        return CE_NOTFOUND;
    if (status == 409) {
        if (reason && !strcmp(reason, "AlreadyExists"))
            return CE_EXISTS;
        return (!reason && !strcmp(method, "POST")) ? CE_EXISTS : CE_K8S_CONFLICT;
    }
    if (status == 410)
        return CE_K8S_GONE;
    if (status == 401 || status == 403)
        return CE_K8S_FORBIDDEN;
    if (status == 400 || status == 422)
        return CE_K8S_INVALID;
    return CE_K8S_HTTP;
}

int k8s_status_error(const char *method, long status, const struct k8s_buf *body)
{
    cJSON *st = NULL;
    const char *msg, *reason;
    int rc;

    if (status >= 200 && status < 300)
        return 0;
    if (body->len)
        st = cJSON_ParseWithLength(body->p, body->len);
    msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "message"));
    reason = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(st, "reason"));
    rc = code_for(status, reason, method);
    if (msg)
        k8s_set_errmsg("%s", msg);
    else
        k8s_set_errmsg("kubernetes: HTTP %ld: %.200s", status, body->len ? body->p : "");
    cJSON_Delete(st);
    return rc;
}

/* ---------------------------------------------------------------- one JSON exchange */

static int parse_answer(const struct k8s_buf *b, cJSON **out)
{
    if (!out)
        return 0;
    *out = b->len ? cJSON_ParseWithLength(b->p, b->len) : NULL;
    if (!*out)
        return k8s_fail(CE_K8S_HTTP, "kubernetes: the API server's answer is not JSON: %.200s",
                        b->len ? b->p : "(empty)");
    return 0;
}

int k8s_request_json(k8s_client *c, const char *method, const char *path, const char *ctype,
                     const cJSON *body, atomic_bool *stop, cJSON **out)
{
    struct k8s_call call = {.method = method, .path = path, .ctype = ctype, .stop = stop};
    char *text = NULL;
    int rc;

    if (out)
        *out = NULL;
    if (body) {
        if (!(text = cJSON_PrintUnformatted(body)))
            return k8s_fail(CE_NOMEM, "kubernetes: out of memory");
        call.body = text;
        call.body_len = strlen(text);
    }
    rc = k8s_http_do(c, &call);
    if (!rc)
        rc = k8s_status_error(method, call.status, &call.resp);
    if (!rc)
        rc = parse_answer(&call.resp, out);
    if (!rc)
        k8s_set_errmsg("%s", "");
    free(text);
    k8s_buf_free(&call.resp);
    return rc;
}

/* Builds the object path (ns may fall back to the body's metadata.namespace) and runs it. */
static int object_call(k8s_client *c, const char *method, const struct k8s_res *r, const char *ns,
                       const char *name, const char *sub, const char *ctype, const cJSON *body,
                       cJSON **out)
{
    struct k8s_buf path = {0};
    int rc;

    if (out)
        *out = NULL;
    if (!ns && body && r->namespaced && *k8s_obj_ns(body))
        ns = k8s_obj_ns(body);
    if ((rc = object_path(&path, r, ns, name, sub)))
        goto out_free_path;
    rc = k8s_request_json(c, method, path.p, ctype, body, NULL, out);

out_free_path:
    k8s_buf_free(&path);
    return rc;
}

/* ---------------------------------------------------------------- verbs */

int k8s_get(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name, cJSON **out)
{
    return object_call(c, "GET", r, ns, name, NULL, NULL, NULL, out);
}

void k8s_fill_kinds(const struct k8s_res *r, cJSON *list)
{
    cJSON *it;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(list, "items")) {
        if (!cJSON_IsObject(it))
            continue;
        if (!cJSON_HasObjectItem(it, "apiVersion"))
            cJSON_AddStringToObject(it, "apiVersion", r->group_version);
        if (!cJSON_HasObjectItem(it, "kind"))
            cJSON_AddStringToObject(it, "kind", r->kind);
    }
}

int k8s_list(k8s_client *c, const struct k8s_res *r, const char *ns, const char *label_selector,
             cJSON **out)
{
    struct k8s_buf path = {0};
    cJSON *list = NULL;
    int rc = CE_NOMEM;

    if (out)
        *out = NULL;
    if (k8s_res_path(&path, r, ns, NULL, NULL) ||
        (label_selector && *label_selector && k8s_buf_query(&path, "labelSelector", label_selector)))
        goto out_free_path;
    rc = k8s_request_json(c, "GET", path.p, NULL, NULL, NULL, &list);
    if (!rc && !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(list, "items")))
        rc = k8s_fail(CE_K8S_HTTP, "kubernetes: list of %s without items", r->plural);
    if (!rc)
        k8s_fill_kinds(r, list);
    if (!rc && out) {
        *out = list;
        list = NULL;
    }
    cJSON_Delete(list);

out_free_path:
    k8s_buf_free(&path);
    return rc;
}

int k8s_create(k8s_client *c, const struct k8s_res *r, const char *ns, const cJSON *obj,
               cJSON **out)
{
    struct k8s_buf path = {0};
    int rc;

    if (out)
        *out = NULL;
    if (!obj)
        return k8s_fail(CE_INVAL, "kubernetes: create %s: no object", r->plural);
    if (!ns && r->namespaced && *k8s_obj_ns(obj))
        ns = k8s_obj_ns(obj);
    if (r->namespaced && (!ns || !*ns))
        return k8s_fail(CE_INVAL, "kubernetes: create %s: no namespace given", r->plural);
    if (k8s_res_path(&path, r, ns, NULL, NULL))
        rc = CE_NOMEM;
    else
        rc = k8s_request_json(c, "POST", path.p, JSON_TYPE, obj, NULL, out);
    k8s_buf_free(&path);
    return rc;
}

int k8s_update(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
               const cJSON *obj, cJSON **out)
{
    return object_call(c, "PUT", r, ns, name, NULL, JSON_TYPE, obj, out);
}

int k8s_patch(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
              const cJSON *patch, cJSON **out)
{
    return object_call(c, "PATCH", r, ns, name, NULL, MERGE_PATCH, patch, out);
}

int k8s_update_status(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
                      const cJSON *obj, cJSON **out)
{
    return object_call(c, "PUT", r, ns, name, "status", JSON_TYPE, obj, out);
}

int k8s_patch_status(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
                     const cJSON *patch, cJSON **out)
{
    return object_call(c, "PATCH", r, ns, name, "status", MERGE_PATCH, patch, out);
}

/* {"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":uid}} */
static cJSON *delete_options(const char *uid)
{
    cJSON *o = cJSON_CreateObject(), *pre;

    if (!o || !cJSON_AddStringToObject(o, "kind", "DeleteOptions") ||
        !cJSON_AddStringToObject(o, "apiVersion", "v1") ||
        !(pre = cJSON_AddObjectToObject(o, "preconditions")) ||
        !cJSON_AddStringToObject(pre, "uid", uid)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int k8s_delete(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
               const char *uid)
{
    cJSON *opts = NULL;
    int rc;

    if (uid && !(opts = delete_options(uid)))
        return k8s_fail(CE_NOMEM, "kubernetes: out of memory");
    rc = object_call(c, "DELETE", r, ns, name, NULL, opts ? JSON_TYPE : NULL, opts, NULL);
    cJSON_Delete(opts);
    return rc;
}

/* ---------------------------------------------------------------- events */

const char *k8s_str(const cJSON *obj, ...)
{
    va_list ap;
    const char *key;

    va_start(ap, obj);
    while (obj && (key = va_arg(ap, const char *)) != NULL)
        obj = cJSON_GetObjectItemCaseSensitive(obj, key);
    va_end(ap);
    return cJSON_GetStringValue(obj);
}

/* Adds key: value when value is not NULL; false on allocation failure. */
static bool add_opt(cJSON *o, const char *key, const char *value)
{
    return !value || cJSON_AddStringToObject(o, key, value);
}

static cJSON *involved_object(const cJSON *obj)
{
    cJSON *io = cJSON_CreateObject();

    if (!io || !add_opt(io, "apiVersion", k8s_str(obj, "apiVersion", NULL)) ||
        !add_opt(io, "kind", k8s_str(obj, "kind", NULL)) ||
        !add_opt(io, "namespace", k8s_str(obj, "metadata", "namespace", NULL)) ||
        !add_opt(io, "name", k8s_str(obj, "metadata", "name", NULL)) ||
        !add_opt(io, "uid", k8s_str(obj, "metadata", "uid", NULL)) ||
        !add_opt(io, "resourceVersion", k8s_str(obj, "metadata", "resourceVersion", NULL))) {
        cJSON_Delete(io);
        return NULL;
    }
    return io;
}

/* "<object name>.<16 hex digits of the wall clock in ns>", as client-go's recorder names them. */
static void event_name(char *out, size_t n, const char *obj_name)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, n, "%.200s.%016llx", obj_name,
             (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
}

static void rfc3339_now(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool add_event_meta(cJSON *ev, const char *ns, const char *obj_name)
{
    char name[256];
    cJSON *md = cJSON_AddObjectToObject(ev, "metadata");

    event_name(name, sizeof(name), obj_name);
    return md && cJSON_AddStringToObject(md, "name", name) &&
           cJSON_AddStringToObject(md, "namespace", ns);
}

static bool add_event_source(cJSON *ev, const char *component)
{
    char host[256] = "";
    cJSON *src = cJSON_AddObjectToObject(ev, "source");

    gethostname(host, sizeof(host) - 1);
    return src && cJSON_AddStringToObject(src, "component", component) &&
           (!*host || cJSON_AddStringToObject(src, "host", host)) &&
           cJSON_AddStringToObject(ev, "reportingComponent", component) &&
           cJSON_AddStringToObject(ev, "reportingInstance", *host ? host : component);
}

static cJSON *build_event(const cJSON *obj, const char *ns, const char *type, const char *reason,
                          const char *message, const char *component)
{
    cJSON *ev = cJSON_CreateObject(), *io = involved_object(obj);
    char now[32];

    rfc3339_now(now, sizeof(now));
    if (!ev || !io || !cJSON_AddStringToObject(ev, "apiVersion", "v1") ||
        !cJSON_AddStringToObject(ev, "kind", "Event") ||
        !add_event_meta(ev, ns, k8s_str(obj, "metadata", "name", NULL)) ||
        !cJSON_AddItemToObject(ev, "involvedObject", io))
        goto out_free;
    io = NULL;
    if (!cJSON_AddStringToObject(ev, "type", type) ||
        !cJSON_AddStringToObject(ev, "reason", reason) ||
        !cJSON_AddStringToObject(ev, "message", message) ||
        !add_event_source(ev, component) || !cJSON_AddStringToObject(ev, "firstTimestamp", now) ||
        !cJSON_AddStringToObject(ev, "lastTimestamp", now) || !cJSON_AddNumberToObject(ev, "count", 1))
        goto out_free;
    return ev;

out_free:
    cJSON_Delete(io);
    cJSON_Delete(ev);
    return NULL;
}

int k8s_event(k8s_client *c, const cJSON *obj, const char *type, const char *reason,
              const char *message, const char *component)
{
    const char *ns = k8s_str(obj, "metadata", "namespace", NULL);
    cJSON *ev;
    int rc;

    if (!obj || !k8s_str(obj, "metadata", "name", NULL) || !type || !reason || !message)
        return k8s_fail(CE_INVAL, "kubernetes: event: no object name, type, reason or message");
    if (!ns || !*ns)
        ns = "default"; /* events about cluster-scoped objects go to default, as kubectl's do */
    if (!(ev = build_event(obj, ns, type, reason, message, component ? component : "cetcd-operator")))
        return k8s_fail(CE_NOMEM, "kubernetes: out of memory");
    rc = k8s_create(c, &K8S_EVENTS, ns, ev, NULL);
    cJSON_Delete(ev);
    return rc;
}
