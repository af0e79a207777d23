/*
 * k8s.h: a small Kubernetes API client (libcurl + cJSON; libyaml for kubeconfig).
 *
 * Configuration comes from a kubeconfig file (current-context or a named one: server,
 * certificate-authority[-data], client-certificate[-data]/client-key[-data], token/tokenFile,
 * insecure-skip-tls-verify, context namespace) or from the in-cluster service account
 * (KUBERNETES_SERVICE_HOST/PORT, /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,
 * namespace}; env K8S_SA_DIR moves that directory, for tests). Calls are synchronous and
 * thread-safe (each call uses its own curl handle or a locked pool); objects in and out are cJSON
 * trees owned by the caller. Failures return a negative CE_* code (CE_NOTFOUND 404, CE_EXISTS 409
 * AlreadyExists, CE_K8S_CONFLICT 409 Conflict, CE_K8S_GONE 410, CE_K8S_FORBIDDEN 401/403,
 * CE_K8S_INVALID 422/400, CE_K8S_HTTP other statuses, CE_UNREACHABLE transport failure,
 * CE_STOPPED stop flag, CE_INVAL bad arguments, CE_K8S_CONFIG configuration) and leave the API
 * server's Status message (or another reason) in k8s_errmsg() (per thread).
 *
 * An informer keeps a cache of one resource (optionally one namespace and a label selector):
 * it lists, then watches from the list's resourceVersion (allowWatchBookmarks), applies events
 * to the cache and calls the notify callback for each change; on 410 Gone or an ERROR event it
 * relists; when the API server goes away it reconnects with exponential backoff (0.2 s .. 10 s,
 * jittered). Cache reads return deep copies.
 */
#ifndef CETCD_K8S_H
#define CETCD_K8S_H

#include <stdatomic.h>
#include <stdbool.h>
#include <cjson/cJSON.h>

struct k8s_config {
    char *server;        /* "https://host:port" */
    char *ca_file;       /* CA bundle path, or NULL */
    char *ca_pem;        /* CA bundle bytes (from -data), or NULL */
    char *cert_file, *key_file; /* client certificate, or NULL */
    char *cert_pem, *key_pem;   /* client certificate bytes (from -data), or NULL */
    char *token;         /* bearer token, or NULL */
    bool insecure;       /* insecure-skip-tls-verify */
    char *namespace;     /* context / service-account namespace, or NULL */
};

/* kubeconfig: path, or NULL for in-cluster config. context: NULL = current-context. */
int k8s_config_load(const char *kubeconfig, const char *context, struct k8s_config **out);
int k8s_config_in_cluster(struct k8s_config **out);
void k8s_config_free(struct k8s_config *cfg);

typedef struct k8s_client k8s_client;
int k8s_client_new(const struct k8s_config *cfg, k8s_client **out);
void k8s_client_free(k8s_client *c);
/* Long calls (watches, backoff sleeps) return CE_STOPPED soon after *flag becomes true. */
void k8s_client_set_stop(k8s_client *c, atomic_bool *flag);
/* The API server's message for this thread's last failed call ("" after a success). */
const char *k8s_errmsg(void);
/* Connect and per-request limits (defaults 5 s and 30 s; watches have their own); <= 0 keeps. */
void k8s_client_set_timeouts(k8s_client *c, long connect_ms, long request_ms);
/* The configuration's namespace (kubeconfig context or service account), or NULL. */
const char *k8s_client_namespace(const k8s_client *c);

struct k8s_res {
    const char *group_version; /* "v1", "apps/v1", "cetcd.io/v1alpha1" */
    const char *plural;        /* "pods" */
    const char *kind;          /* "Pod" */
    bool namespaced;
};
extern const struct k8s_res K8S_PODS, K8S_SERVICES, K8S_CONFIGMAPS, K8S_SECRETS, K8S_PVCS,
    K8S_EVENTS, K8S_STATEFULSETS, K8S_PDBS, K8S_LEASES, K8S_ETCDCLUSTERS, K8S_CRONJOBS, K8S_JOBS;

/* ns may be NULL for cluster-scoped resources (and, for list/watch, for all namespaces). */
int k8s_get(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name, cJSON **out);
int k8s_list(k8s_client *c, const struct k8s_res *r, const char *ns, const char *label_selector,
             cJSON **out);
int k8s_create(k8s_client *c, const struct k8s_res *r, const char *ns, const cJSON *obj,
               cJSON **out);
/* PUT; obj carries metadata.resourceVersion; CE_K8S_CONFLICT when it is stale. */
int k8s_update(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
               const cJSON *obj, cJSON **out);
/* application/merge-patch+json */
int k8s_patch(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
              const cJSON *patch, cJSON **out);
/* the status subresource: PUT .../status and merge patch .../status */
int k8s_update_status(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
                      const cJSON *obj, cJSON **out);
int k8s_patch_status(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
                     const cJSON *patch, cJSON **out);
/* CE_NOTFOUND if already gone. uid: precondition (NULL = none). */
int k8s_delete(k8s_client *c, const struct k8s_res *r, const char *ns, const char *name,
               const char *uid);
/* A core/v1 Event about obj (its kind, namespace, name, uid, apiVersion, resourceVersion).
 * type "Normal"/"Warning"; component e.g. "cetcd-operator". */
int k8s_event(k8s_client *c, const cJSON *obj, const char *type, const char *reason,
              const char *message, const char *component);
/* out may be NULL in every call above when the caller does not want the answer. */

/* The string at a path of keys (NULL-terminated list), e.g. k8s_str(pod, "metadata", "name",
 * NULL); NULL when a key is missing or the value is not a string. */
const char *k8s_str(const cJSON *obj, ...) __attribute__((sentinel));

typedef struct k8s_informer k8s_informer;
/* Called from the informer's thread after the cache changed. obj is the new object, or the last
 * known one for a delete (deleted=true); valid only during the call. */
typedef void (*k8s_notify_fn)(void *ctx, const cJSON *obj, bool deleted);
/* c and r must outlive the informer (the K8S_* descriptors are static). */
int k8s_informer_new(k8s_client *c, const struct k8s_res *r, const char *ns,
                     const char *label_selector, k8s_notify_fn fn, void *ctx,
                     k8s_informer **out);
int k8s_informer_start(k8s_informer *inf);           /* starts its thread */
/* The first list has been applied and its notifications delivered. */
bool k8s_informer_synced(const k8s_informer *inf);
/* Waits up to timeout_ms for the first list (no polling); returns k8s_informer_synced(). */
bool k8s_informer_wait_synced(k8s_informer *inf, long timeout_ms);
/* Deep copy of the cached object, NULL if absent. */
cJSON *k8s_informer_get(k8s_informer *inf, const char *ns, const char *name);
/* Deep copy (a JSON array) of the cached objects in ns (NULL = all) whose labels contain
 * label=value (label NULL = all). */
cJSON *k8s_informer_list(k8s_informer *inf, const char *ns, const char *label,
                         const char *value);
void k8s_informer_free(k8s_informer *inf);           /* stops and joins the thread */

#endif
