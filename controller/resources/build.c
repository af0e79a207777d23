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
 * so a builder runs to the end, collecting failures in `ok`, and returns NULL if any occurred
 * (the rb_* helpers, build_int.h).
 * With spec.restore, the pod template also mounts the restore claim read-only at /restore, where
 * the members' bootstrap entries name the snapshot file (restore-from).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "resources/build_int.h"

#define CLIENT_PORT 2379
#define PEER_PORT 2380
#define METRICS_PORT 2381
#define DATA_MOUNT "/var/lib/cetcd"
#define DATA_DIR DATA_MOUNT "/data"
#define BOOTSTRAP_MOUNT "/etc/cetcd/bootstrap"

/* ---- labels, selector, metadata ---- */

void rb_labels(cJSON *m, const struct ec_spec *s, bool *ok)
{
    rb_str(m, "app.kubernetes.io/name", "cetcd", ok);
    rb_str(m, "app.kubernetes.io/instance", s->name, ok);
    rb_str(m, "app.kubernetes.io/managed-by", "cetcd-operator", ok);
    rb_str(m, "cls", s->name, ok);
}

cJSON *ec_labels(const struct ec_spec *s)
{
    bool ok = true;
    cJSON *m = cJSON_CreateObject();

    rb_labels(m, s, &ok);
    return rb_finish(m, ok && m);
}

static void put_selector_labels(cJSON *m, const struct ec_spec *s, bool *ok)
{
    rb_str(m, "cls", s->name, ok);
    rb_str(m, "app.kubernetes.io/instance", s->name, ok);
}

void rb_owner_ref(cJSON *refs, const struct ec_spec *s, bool *ok)
{
    cJSON *r = rb_push_obj(refs, ok);

    rb_str(r, "apiVersion", "cetcd.io/v1alpha1", ok);
    rb_str(r, "kind", "EtcdCluster", ok);
    rb_str(r, "name", s->name, ok);
    rb_str(r, "uid", s->uid, ok);
    rb_bool(r, "controller", true, ok);
    rb_bool(r, "blockOwnerDeletion", true, ok);
}

/* {apiVersion, kind, metadata{name, namespace, labels, ownerReferences}} */
cJSON *rb_new_owned(const struct ec_spec *s, const char *api, const char *kind,
                    const char *name, bool *ok)
{
    cJSON *o = rb_track(cJSON_CreateObject(), ok), *md;

    rb_str(o, "apiVersion", api, ok);
    rb_str(o, "kind", kind, ok);
    md = rb_obj(o, "metadata", ok);
    rb_str(md, "name", name, ok);
    rb_str(md, "namespace", s->ns, ok);
    rb_labels(rb_obj(md, "labels", ok), s, ok);
    rb_owner_ref(rb_arr(md, "ownerReferences", ok), s, ok);
    return o;
}

static void put_port(cJSON *ports, const char *name, int port, bool service, bool *ok)
{
    cJSON *p = rb_push_obj(ports, ok);

    rb_str(p, "name", name, ok);
    rb_num(p, service ? "port" : "containerPort", port, ok);
    if (service)
        rb_str(p, "targetPort", name, ok);
    rb_str(p, "protocol", "TCP", ok);
}

/* ---- Services ---- */

cJSON *ec_build_client_service(const struct ec_spec *s)
{
    bool ok = true;
    cJSON *o = rb_new_owned(s, "v1", "Service", s->name, &ok);
    cJSON *spec = rb_obj(o, "spec", &ok);

    rb_str(spec, "type", "ClusterIP", &ok);
    put_selector_labels(rb_obj(spec, "selector", &ok), s, &ok);
    put_port(rb_arr(spec, "ports", &ok), "client", CLIENT_PORT, true, &ok);
    return rb_finish(o, ok);
}

cJSON *ec_build_headless_service(const struct ec_spec *s)
{
    char name[EC_NAME_MAX];
    bool ok = true;
    cJSON *o = rb_new_owned(s, "v1", "Service", ec_headless_name(s, name, sizeof(name)), &ok);
    cJSON *spec = rb_obj(o, "spec", &ok), *ports;

    rb_str(spec, "type", "ClusterIP", &ok);
    rb_str(spec, "clusterIP", "None", &ok);
    rb_bool(spec, "publishNotReadyAddresses", true, &ok);
    put_selector_labels(rb_obj(spec, "selector", &ok), s, &ok);
    ports = rb_arr(spec, "ports", &ok);
    put_port(ports, "client", CLIENT_PORT, true, &ok);
    put_port(ports, "peer", PEER_PORT, true, &ok);
    return rb_finish(o, ok);
}

/* ---- PodDisruptionBudget ---- */

cJSON *ec_build_pdb(const struct ec_spec *s)
{
    bool ok = true;
    cJSON *o = rb_new_owned(s, "policy/v1", "PodDisruptionBudget", s->name, &ok);
    cJSON *spec = rb_obj(o, "spec", &ok);

    rb_num(spec, "minAvailable", s->size / 2 + 1, &ok);
    put_selector_labels(rb_obj(rb_obj(spec, "selector", &ok), "matchLabels", &ok), s, &ok);
    return rb_finish(o, ok);
}

/* ---- ConfigMap ---- */

static int cmp_keys(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* The string entries of src into dst, sorted by key (the API server's order too). */
void rb_sorted_strings(cJSON *dst, const cJSON *src, bool *ok)
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
        rb_str(dst, v[i]->string, v[i]->valuestring, ok);
    free(v);
}

cJSON *ec_build_configmap(const struct ec_spec *s, const cJSON *data)
{
    char name[EC_NAME_MAX];
    bool ok = true;
    cJSON *o = rb_new_owned(s, "v1", "ConfigMap", ec_configmap_name(s, name, sizeof(name)), &ok);

    rb_sorted_strings(rb_obj(o, "data", &ok), data, &ok);
    return rb_finish(o, ok);
}

/* ---- StatefulSet: the container ---- */

static void put_env(cJSON *env, const char *name, const char *value, bool *ok)
{
    cJSON *e = rb_push_obj(env, ok);

    rb_str(e, "name", name, ok);
    rb_str(e, "value", value, ok);
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
    cJSON *e = rb_push_obj(env, ok);
    cJSON *ref;

    rb_str(e, "name", name, ok);
    ref = rb_obj(rb_obj(e, "valueFrom", ok), "fieldRef", ok);
    rb_str(ref, "fieldPath", field, ok);
}

/* One port's certificate flags (prefix "ETCD_" or "ETCD_PEER_"), from the Secret at dir. */
static void put_tls_env(cJSON *env, const char *prefix, const char *dir, bool *ok)
{
    static const char *const flag[] = {"CERT_FILE", "KEY_FILE", "TRUSTED_CA_FILE"};
    static const char *const file[] = {"tls.crt", "tls.key", "ca.crt"};
    char name[64], path[128];

    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "%s%s", prefix, flag[i]);
        snprintf(path, sizeof(path), "%s/%s", dir, file[i]);
        put_env(env, name, path, ok);
    }
    snprintf(name, sizeof(name), "%sCLIENT_CERT_AUTH", prefix);
    put_env(env, name, "true", ok);
}

static void put_url_env(cJSON *env, const struct ec_spec *s, bool *ok)
{
    const char *scheme = ec_scheme(s);
    char buf[2 * EC_NAME_MAX];

    snprintf(buf, sizeof(buf), "%s://0.0.0.0:%d", scheme, CLIENT_PORT);
    put_env(env, "ETCD_LISTEN_CLIENT_URLS", buf, ok);
    snprintf(buf, sizeof(buf), "%s://0.0.0.0:%d", scheme, PEER_PORT);
    put_env(env, "ETCD_LISTEN_PEER_URLS", buf, ok);
    put_env(env, "ETCD_LISTEN_METRICS_URLS", "http://0.0.0.0:2381", ok);
    snprintf(buf, sizeof(buf), "%s://$(POD_NAME).%s-peer.%s.svc:%d", scheme, s->name, s->ns,
             CLIENT_PORT);
    put_env(env, "ETCD_ADVERTISE_CLIENT_URLS", buf, ok);
    snprintf(buf, sizeof(buf), "%s://$(POD_NAME).%s-peer.%s.svc:%d", scheme, s->name, s->ns,
             PEER_PORT);
    put_env(env, "ETCD_INITIAL_ADVERTISE_PEER_URLS", buf, ok);
    if (!s->tls.enabled)
        return;
    put_tls_env(env, "ETCD_", EC_TLS_MOUNT "/server", ok);
    put_tls_env(env, "ETCD_PEER_", EC_TLS_MOUNT "/peer", ok);
}

static void put_container_env(cJSON *env, const struct ec_spec *s, bool *ok)
{
    const struct ec_options *o = &s->options;
    char buf[2 * EC_NAME_MAX];

    put_env_field(env, "POD_NAME", "metadata.name", ok);
    put_env(env, "ETCD_NAME", "$(POD_NAME)", ok);
    put_env(env, "ETCD_DATA_DIR", DATA_DIR, ok);
    put_url_env(env, s, ok);
    put_env(env, "ETCD_INITIAL_CLUSTER_TOKEN", ec_cluster_token(s, buf, sizeof(buf)), ok);
    put_env(env, "ETCD_BOOTSTRAP_DIR", BOOTSTRAP_MOUNT, ok);
    put_env_num(env, "ETCD_HEARTBEAT_INTERVAL", o->heartbeat_ms, ok);
    put_env_num(env, "ETCD_ELECTION_TIMEOUT", o->election_ms, ok);
    put_env_num(env, "ETCD_QUOTA_BACKEND_BYTES", o->quota_backend_bytes, ok);
    put_env_opt(env, "ETCD_AUTO_COMPACTION_MODE", o->auto_compaction_mode, ok);
    put_env_opt(env, "ETCD_AUTO_COMPACTION_RETENTION", o->auto_compaction_retention, ok);
    put_env_num(env, "ETCD_SNAPSHOT_COUNT", o->snapshot_count, ok);
}

/* /health over plain HTTP: on the client port, or with TLS (which demands a client
 * certificate there) on the metrics listener, which answers it too. */
static void put_readiness(cJSON *c, const struct ec_spec *s, bool *ok)
{
    cJSON *p = rb_obj(c, "readinessProbe", ok);
    cJSON *get = rb_obj(p, "httpGet", ok);

    rb_str(get, "path", "/health", ok);
    rb_str(get, "port", s->tls.enabled ? "metrics" : "client", ok);
    rb_str(get, "scheme", "HTTP", ok);
    rb_num(p, "periodSeconds", 2, ok);
    rb_num(p, "failureThreshold", 3, ok);
}

void rb_mount(cJSON *mounts, const char *name, const char *path, bool ro, bool *ok)
{
    cJSON *m = rb_push_obj(mounts, ok);

    rb_str(m, "name", name, ok);
    rb_str(m, "mountPath", path, ok);
    if (ro)
        rb_bool(m, "readOnly", true, ok);
}

void rb_secret_volume(cJSON *vols, const char *name, const char *secret, bool *ok)
{
    cJSON *v = rb_push_obj(vols, ok), *sv;

    rb_str(v, "name", name, ok);
    sv = rb_obj(v, "secret", ok);
    rb_str(sv, "secretName", secret, ok);
    rb_num(sv, "defaultMode", 0440, ok);
}

void rb_container_security(cJSON *c, bool *ok)
{
    cJSON *sc = rb_obj(c, "securityContext", ok);

    rb_bool(sc, "allowPrivilegeEscalation", false, ok);
    rb_bool(sc, "readOnlyRootFilesystem", true, ok);
    rb_push_str(rb_arr(rb_obj(sc, "capabilities", ok), "drop", ok), "ALL", ok);
}

static void put_container(cJSON *containers, const struct ec_spec *s, bool *ok)
{
    cJSON *c = rb_push_obj(containers, ok), *args, *ports, *mounts;

    rb_str(c, "name", "cetcd", ok);
    rb_str(c, "image", s->image, ok);
    if (s->options.extra_args && s->options.extra_args[0]) {
        args = rb_arr(c, "args", ok);
        for (char **a = s->options.extra_args; *a; a++)
            rb_push_str(args, *a, ok);
    }
    put_container_env(rb_arr(c, "env", ok), s, ok);
    ports = rb_arr(c, "ports", ok);
    put_port(ports, "client", CLIENT_PORT, false, ok);
    put_port(ports, "peer", PEER_PORT, false, ok);
    put_port(ports, "metrics", METRICS_PORT, false, ok);
    put_readiness(c, s, ok);
    if (s->resources && s->resources->child)
        rb_copy(c, "resources", s->resources, ok);
    mounts = rb_arr(c, "volumeMounts", ok);
    rb_mount(mounts, "data", DATA_MOUNT, false, ok);
    rb_mount(mounts, "bootstrap", BOOTSTRAP_MOUNT, true, ok);
    if (s->restore.claim_name)
        rb_mount(mounts, "restore", EC_RESTORE_MOUNT, true, ok);
    if (s->tls.enabled) {
        rb_mount(mounts, "tls-server", EC_TLS_MOUNT "/server", true, ok);
        rb_mount(mounts, "tls-peer", EC_TLS_MOUNT "/peer", true, ok);
    }
    /* a member that refuses to start (e.g. a bad restore file) shows why in its pod status */
    rb_str(c, "terminationMessagePolicy", "FallbackToLogsOnError", ok);
    rb_container_security(c, ok);
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
    cJSON *labels = rb_obj(md, "labels", ok);

    rb_labels(labels, s, ok);
    rb_sorted_strings(labels, user, ok);
    if (ann)
        rb_sorted_strings(rb_obj(md, "annotations", ok), ann, ok);
}

void rb_pod_security(cJSON *spec, bool *ok)
{
    cJSON *sc = rb_obj(spec, "securityContext", ok);

    rb_bool(sc, "runAsNonRoot", true, ok);
    rb_num(sc, "runAsUser", RB_RUN_AS, ok);
    rb_num(sc, "runAsGroup", RB_RUN_AS, ok);
    rb_num(sc, "fsGroup", RB_RUN_AS, ok);
    rb_str(rb_obj(sc, "seccompProfile", ok), "type", "RuntimeDefault", ok);
}

static void put_volumes(cJSON *vols, const struct ec_spec *s, bool *ok)
{
    char name[EC_NAME_MAX];
    cJSON *v = rb_push_obj(vols, ok);

    rb_str(v, "name", "bootstrap", ok);
    rb_str(rb_obj(v, "configMap", ok), "name", ec_configmap_name(s, name, sizeof(name)), ok);
    if (s->restore.claim_name) {
        cJSON *claim;
        v = rb_push_obj(vols, ok);
        rb_str(v, "name", "restore", ok);
        claim = rb_obj(v, "persistentVolumeClaim", ok);
        rb_str(claim, "claimName", s->restore.claim_name, ok);
        rb_bool(claim, "readOnly", true, ok);
    }
    if (s->tls.enabled) {
        rb_secret_volume(vols, "tls-server", s->tls.server_secret, ok);
        rb_secret_volume(vols, "tls-peer", s->tls.peer_secret, ok);
    }
    if (!s->empty_dir)
        return;
    v = rb_push_obj(vols, ok);
    rb_str(v, "name", "data", ok);
    rb_obj(v, "emptyDir", ok);
}

static void put_pod_spec(cJSON *spec, const struct ec_spec *s, bool *ok)
{
    static const char *const passthrough[] = {"affinity", "nodeSelector", "tolerations",
                                              "priorityClassName"};
    const cJSON *v;

    for (size_t i = 0; i < sizeof(passthrough) / sizeof(passthrough[0]); i++)
        if ((v = pod_field(s, passthrough[i])))
            rb_copy(spec, passthrough[i], v, ok);
    rb_bool(spec, "enableServiceLinks", false, ok);
    rb_pod_security(spec, ok);
    rb_num(spec, "terminationGracePeriodSeconds", 30, ok);
    put_container(rb_arr(spec, "containers", ok), s, ok);
    put_volumes(rb_arr(spec, "volumes", ok), s, ok);
}

static void put_claim_template(cJSON *tpls, const struct ec_spec *s, bool *ok)
{
    cJSON *t = rb_push_obj(tpls, ok), *md, *spec;

    md = rb_obj(t, "metadata", ok);
    rb_str(md, "name", "data", ok);
    rb_labels(rb_obj(md, "labels", ok), s, ok);
    spec = rb_obj(t, "spec", ok);
    rb_push_str(rb_arr(spec, "accessModes", ok), "ReadWriteOnce", ok);
    rb_str(rb_obj(rb_obj(spec, "resources", ok), "requests", ok), "storage", s->storage_size,
            ok);
    if (s->storage_class)
        rb_str(spec, "storageClassName", s->storage_class, ok);
}

cJSON *ec_build_statefulset(const struct ec_spec *s, int replicas)
{
    char name[EC_NAME_MAX];
    bool ok = true;
    cJSON *o = rb_new_owned(s, "apps/v1", "StatefulSet", s->name, &ok);
    cJSON *spec = rb_obj(o, "spec", &ok), *tpl, *policy;

    rb_num(spec, "replicas", replicas, &ok);
    rb_str(spec, "serviceName", ec_headless_name(s, name, sizeof(name)), &ok);
    rb_str(spec, "podManagementPolicy", "Parallel", &ok);
    put_selector_labels(rb_obj(rb_obj(spec, "selector", &ok), "matchLabels", &ok), s, &ok);
    rb_str(rb_obj(spec, "updateStrategy", &ok), "type", "RollingUpdate", &ok);
    policy = rb_obj(spec, "persistentVolumeClaimRetentionPolicy", &ok);
    rb_str(policy, "whenDeleted", "Retain", &ok);
    rb_str(policy, "whenScaled", "Retain", &ok);
    tpl = rb_obj(spec, "template", &ok);
    put_template_metadata(rb_obj(tpl, "metadata", &ok), s, &ok);
    put_pod_spec(rb_obj(tpl, "spec", &ok), s, &ok);
    if (!s->empty_dir)
        put_claim_template(rb_arr(spec, "volumeClaimTemplates", &ok), s, &ok);
    return rb_finish(o, ok);
}
