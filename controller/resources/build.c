/*
 * build.c: the objects the operator owns for one EtcdCluster, as JSON, from its spec alone.
 *
 * Pure and deterministic: no I/O, no clock, keys in a fixed order, so the same spec always
 * gives the same bytes. Every object carries ec_labels() and one owner reference to the
 * EtcdCluster (controller, blockOwnerDeletion), so deleting the cluster garbage-collects them.
 * The builders never write a field as its Go zero value (false, 0, "", empty list or map) unless
 * the field is a pointer the API server keeps and the value is the point (emptyDir: {},
 * enableServiceLinks: false), because the server drops the others and the live object would
 * then look different from the built one forever (see equal.c).
 *
 * Out of memory: cJSON's Add* functions return NULL and do nothing when their parent is NULL,
 * so a builder runs to the end, collecting failures in `ok`, and returns NULL if any occurred.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resources/resources.h"

#define CLIENT_PORT 2379
#define PEER_PORT 2380
#define METRICS_PORT 2381
#define RUN_AS 10001
#define DATA_MOUNT "/var/lib/cetcd"
#define DATA_DIR DATA_MOUNT "/data"
#define BOOTSTRAP_MOUNT "/etc/cetcd/bootstrap"

/* ---- small builders that record failure in *ok ---- */

static cJSON *track(cJSON *item, bool *ok)
{
    if (!item)
        *ok = false;
    return item;
}

static void add_str(cJSON *o, const char *k, const char *v, bool *ok)
{
    track(cJSON_AddStringToObject(o, k, v), ok);
}

static void add_num(cJSON *o, const char *k, double v, bool *ok)
{
    track(cJSON_AddNumberToObject(o, k, v), ok);
}

static void add_bool(cJSON *o, const char *k, bool v, bool *ok)
{
    track(cJSON_AddBoolToObject(o, k, v), ok);
}

static cJSON *add_obj(cJSON *o, const char *k, bool *ok)
{
    return track(cJSON_AddObjectToObject(o, k), ok);
}

static cJSON *add_arr(cJSON *o, const char *k, bool *ok)
{
    return track(cJSON_AddArrayToObject(o, k), ok);
}

/* Adds item to o under k (taking it), or to array o when k is NULL. */
static cJSON *attach(cJSON *o, const char *k, cJSON *item, bool *ok)
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

static cJSON *push_obj(cJSON *arr, bool *ok)
{
    return attach(arr, NULL, cJSON_CreateObject(), ok);
}

static void push_str(cJSON *arr, const char *v, bool *ok)
{
    attach(arr, NULL, cJSON_CreateString(v), ok);
}

static void add_copy(cJSON *o, const char *k, const cJSON *v, bool *ok)
{
    attach(o, k, cJSON_Duplicate(v, true), ok);
}

static cJSON *finish(cJSON *obj, bool ok)
{
    if (ok)
        return obj;
    cJSON_Delete(obj);
    return NULL;
}

/* ---- labels, selector, metadata ---- */

static void put_labels(cJSON *m, const struct ec_spec *s, bool *ok)
{
    add_str(m, "app.kubernetes.io/name", "cetcd", ok);
    add_str(m, "app.kubernetes.io/instance", s->name, ok);
    add_str(m, "app.kubernetes.io/managed-by", "cetcd-operator", ok);
    add_str(m, "cls", s->name, ok);
}

cJSON *ec_labels(const struct ec_spec *s)
{
    bool ok = true;
    cJSON *m = cJSON_CreateObject();

    put_labels(m, s, &ok);
    return finish(m, ok && m);
}

static void put_selector_labels(cJSON *m, const struct ec_spec *s, bool *ok)
{
    add_str(m, "cls", s->name, ok);
    add_str(m, "app.kubernetes.io/instance", s->name, ok);
}

static void put_owner_ref(cJSON *refs, const struct ec_spec *s, bool *ok)
{
    cJSON *r = push_obj(refs, ok);

    add_str(r, "apiVersion", "cetcd.io/v1alpha1", ok);
    add_str(r, "kind", "EtcdCluster", ok);
    add_str(r, "name", s->name, ok);
    add_str(r, "uid", s->uid, ok);
    add_bool(r, "controller", true, ok);
    add_bool(r, "blockOwnerDeletion", true, ok);
}

/* {apiVersion, kind, metadata{name, namespace, labels, ownerReferences}} */
static cJSON *new_owned(const struct ec_spec *s, const char *api, const char *kind,
                        const char *name, bool *ok)
{
    cJSON *o = track(cJSON_CreateObject(), ok), *md;

    add_str(o, "apiVersion", api, ok);
    add_str(o, "kind", kind, ok);
    md = add_obj(o, "metadata", ok);
    add_str(md, "name", name, ok);
    add_str(md, "namespace", s->ns, ok);
    put_labels(add_obj(md, "labels", ok), s, ok);
    put_owner_ref(add_arr(md, "ownerReferences", ok), s, ok);
    return o;
}

static void put_port(cJSON *ports, const char *name, int port, bool service, bool *ok)
{
    cJSON *p = push_obj(ports, ok);

    add_str(p, "name", name, ok);
    add_num(p, service ? "port" : "containerPort", port, ok);
    if (service)
        add_str(p, "targetPort", name, ok);
    add_str(p, "protocol", "TCP", ok);
}

/* ---- Services ---- */

cJSON *ec_build_client_service(const struct ec_spec *s)
{
    bool ok = true;
    cJSON *o = new_owned(s, "v1", "Service", s->name, &ok);
    cJSON *spec = add_obj(o, "spec", &ok);

    add_str(spec, "type", "ClusterIP", &ok);
    put_selector_labels(add_obj(spec, "selector", &ok), s, &ok);
    put_port(add_arr(spec, "ports", &ok), "client", CLIENT_PORT, true, &ok);
    return finish(o, ok);
}

cJSON *ec_build_headless_service(const struct ec_spec *s)
{
    char name[EC_NAME_MAX];
    bool ok = true;
    cJSON *o = new_owned(s, "v1", "Service", ec_headless_name(s, name, sizeof(name)), &ok);
    cJSON *spec = add_obj(o, "spec", &ok), *ports;

    add_str(spec, "type", "ClusterIP", &ok);
    add_str(spec, "clusterIP", "None", &ok);
    add_bool(spec, "publishNotReadyAddresses", true, &ok);
    put_selector_labels(add_obj(spec, "selector", &ok), s, &ok);
    ports = add_arr(spec, "ports", &ok);
    put_port(ports, "client", CLIENT_PORT, true, &ok);
    put_port(ports, "peer", PEER_PORT, true, &ok);
    return finish(o, ok);
}

/* ---- PodDisruptionBudget ---- */

cJSON *ec_build_pdb(const struct ec_spec *s)
{
    bool ok = true;
    cJSON *o = new_owned(s, "policy/v1", "PodDisruptionBudget", s->name, &ok);
    cJSON *spec = add_obj(o, "spec", &ok);

    add_num(spec, "minAvailable", s->size / 2 + 1, &ok);
    put_selector_labels(add_obj(add_obj(spec, "selector", &ok), "matchLabels", &ok), s, &ok);
    return finish(o, ok);
}

/* ---- ConfigMap ---- */

static int cmp_keys(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* The string entries of src into dst, sorted by key (the API server's order too). */
static void put_sorted_strings(cJSON *dst, const cJSON *src, bool *ok)
{
    const cJSON **v, *e;
    size_t n = 0, i = 0;

    cJSON_ArrayForEach(e, src)
        n += cJSON_IsString(e) && e->string;
    if (n == 0)
        return;
    if (!(v = malloc(n * sizeof(*v)))) {
        *ok = false;
        return;
    }
    cJSON_ArrayForEach(e, src)
        if (cJSON_IsString(e) && e->string)
            v[i++] = e;
    qsort(v, n, sizeof(*v), cmp_keys);
    for (i = 0; i < n; i++)
        add_str(dst, v[i]->string, v[i]->valuestring, ok);
    free(v);
}

cJSON *ec_build_configmap(const struct ec_spec *s, const cJSON *data)
{
    char name[EC_NAME_MAX];
    bool ok = true;
    cJSON *o = new_owned(s, "v1", "ConfigMap", ec_configmap_name(s, name, sizeof(name)), &ok);

    put_sorted_strings(add_obj(o, "data", &ok), data, &ok);
    return finish(o, ok);
}

/* ---- StatefulSet: the container ---- */

static void put_env(cJSON *env, const char *name, const char *value, bool *ok)
{
    cJSON *e = push_obj(env, ok);

    add_str(e, "name", name, ok);
    add_str(e, "value", value, ok);
}

static void put_env_num(cJSON *env, const char *name, long long value, bool *ok)
{
    char buf[32];

    if (value <= 0)
        return;
    snprintf(buf, sizeof(buf), "%lld", value);
    put_env(env, name, buf, ok);
}

static void put_env_opt(cJSON *env, const char *name, const char *value, bool *ok)
{
    if (value)
        put_env(env, name, value, ok);
}

static void put_env_field(cJSON *env, const char *name, const char *field, bool *ok)
{
    cJSON *e = push_obj(env, ok);
    cJSON *ref;

    add_str(e, "name", name, ok);
    ref = add_obj(add_obj(e, "valueFrom", ok), "fieldRef", ok);
    add_str(ref, "fieldPath", field, ok);
}

static void put_container_env(cJSON *env, const struct ec_spec *s, bool *ok)
{
    const struct ec_options *o = &s->options;
    char buf[2 * EC_NAME_MAX];

    put_env_field(env, "POD_NAME", "metadata.name", ok);
    put_env(env, "ETCD_NAME", "$(POD_NAME)", ok);
    put_env(env, "ETCD_DATA_DIR", DATA_DIR, ok);
    put_env(env, "ETCD_LISTEN_CLIENT_URLS", "http://0.0.0.0:2379", ok);
    put_env(env, "ETCD_LISTEN_PEER_URLS", "http://0.0.0.0:2380", ok);
    put_env(env, "ETCD_LISTEN_METRICS_URLS", "http://0.0.0.0:2381", ok);
    snprintf(buf, sizeof(buf), "http://$(POD_NAME).%s-peer.%s.svc:%d", s->name, s->ns,
             CLIENT_PORT);
    put_env(env, "ETCD_ADVERTISE_CLIENT_URLS", buf, ok);
    snprintf(buf, sizeof(buf), "http://$(POD_NAME).%s-peer.%s.svc:%d", s->name, s->ns,
             PEER_PORT);
    put_env(env, "ETCD_INITIAL_ADVERTISE_PEER_URLS", buf, ok);
    put_env(env, "ETCD_INITIAL_CLUSTER_TOKEN", ec_cluster_token(s, buf, sizeof(buf)), ok);
    put_env(env, "ETCD_BOOTSTRAP_DIR", BOOTSTRAP_MOUNT, ok);
    put_env_num(env, "ETCD_HEARTBEAT_INTERVAL", o->heartbeat_ms, ok);
    put_env_num(env, "ETCD_ELECTION_TIMEOUT", o->election_ms, ok);
    put_env_num(env, "ETCD_QUOTA_BACKEND_BYTES", o->quota_backend_bytes, ok);
    put_env_opt(env, "ETCD_AUTO_COMPACTION_MODE", o->auto_compaction_mode, ok);
    put_env_opt(env, "ETCD_AUTO_COMPACTION_RETENTION", o->auto_compaction_retention, ok);
    put_env_num(env, "ETCD_SNAPSHOT_COUNT", o->snapshot_count, ok);
}

static void put_readiness(cJSON *c, bool *ok)
{
    cJSON *p = add_obj(c, "readinessProbe", ok);
    cJSON *get = add_obj(p, "httpGet", ok);

    add_str(get, "path", "/health", ok);
    add_str(get, "port", "client", ok);
    add_str(get, "scheme", "HTTP", ok);
    add_num(p, "periodSeconds", 2, ok);
    add_num(p, "failureThreshold", 3, ok);
}

static void put_mount(cJSON *mounts, const char *name, const char *path, bool ro, bool *ok)
{
    cJSON *m = push_obj(mounts, ok);

    add_str(m, "name", name, ok);
    add_str(m, "mountPath", path, ok);
    if (ro)
        add_bool(m, "readOnly", true, ok);
}

static void put_container_security(cJSON *c, bool *ok)
{
    cJSON *sc = add_obj(c, "securityContext", ok);

    add_bool(sc, "allowPrivilegeEscalation", false, ok);
    add_bool(sc, "readOnlyRootFilesystem", true, ok);
    push_str(add_arr(add_obj(sc, "capabilities", ok), "drop", ok), "ALL", ok);
}

static void put_container(cJSON *containers, const struct ec_spec *s, bool *ok)
{
    cJSON *c = push_obj(containers, ok), *args, *ports, *mounts;

    add_str(c, "name", "cetcd", ok);
    add_str(c, "image", s->image, ok);
    if (s->options.extra_args && s->options.extra_args[0]) {
        args = add_arr(c, "args", ok);
        for (char **a = s->options.extra_args; *a; a++)
            push_str(args, *a, ok);
    }
    put_container_env(add_arr(c, "env", ok), s, ok);
    ports = add_arr(c, "ports", ok);
    put_port(ports, "client", CLIENT_PORT, false, ok);
    put_port(ports, "peer", PEER_PORT, false, ok);
    put_port(ports, "metrics", METRICS_PORT, false, ok);
    put_readiness(c, ok);
    if (s->resources && s->resources->child)
        add_copy(c, "resources", s->resources, ok);
    mounts = add_arr(c, "volumeMounts", ok);
    put_mount(mounts, "data", DATA_MOUNT, false, ok);
    put_mount(mounts, "bootstrap", BOOTSTRAP_MOUNT, true, ok);
    put_container_security(c, ok);
}

/* ---- StatefulSet: the pod template ---- */

/* podTemplate.<key> when present and not empty (the API server drops empty ones). */
static const cJSON *pod_field(const struct ec_spec *s, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->pod_template, key);

    if (!v || cJSON_IsNull(v))
        return NULL;
    if ((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child)
        return NULL;
    if (cJSON_IsString(v) && !v->valuestring[0])
        return NULL;
    return v;
}

static void put_template_metadata(cJSON *md, const struct ec_spec *s, bool *ok)
{
    const cJSON *user = pod_field(s, "labels"), *ann = pod_field(s, "annotations");
    cJSON *labels = add_obj(md, "labels", ok);

    put_labels(labels, s, ok);
    put_sorted_strings(labels, user, ok);
    if (ann)
        put_sorted_strings(add_obj(md, "annotations", ok), ann, ok);
}

static void put_pod_security(cJSON *spec, bool *ok)
{
    cJSON *sc = add_obj(spec, "securityContext", ok);

    add_bool(sc, "runAsNonRoot", true, ok);
    add_num(sc, "runAsUser", RUN_AS, ok);
    add_num(sc, "runAsGroup", RUN_AS, ok);
    add_num(sc, "fsGroup", RUN_AS, ok);
    add_str(add_obj(sc, "seccompProfile", ok), "type", "RuntimeDefault", ok);
}

static void put_volumes(cJSON *vols, const struct ec_spec *s, bool *ok)
{
    char name[EC_NAME_MAX];
    cJSON *v = push_obj(vols, ok);

    add_str(v, "name", "bootstrap", ok);
    add_str(add_obj(v, "configMap", ok), "name", ec_configmap_name(s, name, sizeof(name)), ok);
    if (!s->empty_dir)
        return;
    v = push_obj(vols, ok);
    add_str(v, "name", "data", ok);
    add_obj(v, "emptyDir", ok);
}

static void put_pod_spec(cJSON *spec, const struct ec_spec *s, bool *ok)
{
    static const char *const passthrough[] = {"affinity", "nodeSelector", "tolerations",
                                              "priorityClassName"};
    const cJSON *v;

    for (size_t i = 0; i < sizeof(passthrough) / sizeof(passthrough[0]); i++)
        if ((v = pod_field(s, passthrough[i])))
            add_copy(spec, passthrough[i], v, ok);
    add_bool(spec, "enableServiceLinks", false, ok);
    put_pod_security(spec, ok);
    add_num(spec, "terminationGracePeriodSeconds", 30, ok);
    put_container(add_arr(spec, "containers", ok), s, ok);
    put_volumes(add_arr(spec, "volumes", ok), s, ok);
}

static void put_claim_template(cJSON *tpls, const struct ec_spec *s, bool *ok)
{
    cJSON *t = push_obj(tpls, ok), *md, *spec;

    md = add_obj(t, "metadata", ok);
    add_str(md, "name", "data", ok);
    put_labels(add_obj(md, "labels", ok), s, ok);
    spec = add_obj(t, "spec", ok);
    push_str(add_arr(spec, "accessModes", ok), "ReadWriteOnce", ok);
    add_str(add_obj(add_obj(spec, "resources", ok), "requests", ok), "storage", s->storage_size,
            ok);
    if (s->storage_class)
        add_str(spec, "storageClassName", s->storage_class, ok);
}

cJSON *ec_build_statefulset(const struct ec_spec *s, int replicas)
{
    char name[EC_NAME_MAX];
    bool ok = true;
    cJSON *o = new_owned(s, "apps/v1", "StatefulSet", s->name, &ok);
    cJSON *spec = add_obj(o, "spec", &ok), *tpl, *policy;

    add_num(spec, "replicas", replicas, &ok);
    add_str(spec, "serviceName", ec_headless_name(s, name, sizeof(name)), &ok);
    add_str(spec, "podManagementPolicy", "Parallel", &ok);
    put_selector_labels(add_obj(add_obj(spec, "selector", &ok), "matchLabels", &ok), s, &ok);
    add_str(add_obj(spec, "updateStrategy", &ok), "type", "RollingUpdate", &ok);
    policy = add_obj(spec, "persistentVolumeClaimRetentionPolicy", &ok);
    add_str(policy, "whenDeleted", "Retain", &ok);
    add_str(policy, "whenScaled", "Retain", &ok);
    tpl = add_obj(spec, "template", &ok);
    put_template_metadata(add_obj(tpl, "metadata", &ok), s, &ok);
    put_pod_spec(add_obj(tpl, "spec", &ok), s, &ok);
    if (!s->empty_dir)
        put_claim_template(add_arr(spec, "volumeClaimTemplates", &ok), s, &ok);
    return finish(o, ok);
}
