/*
 * resources.h: the EtcdCluster spec, and pure builders of the objects the operator owns.
 *
 * ec_spec_parse reads an EtcdCluster object (cetcd.io/v1alpha1) into a struct with defaults
 * applied and validates what the CRD schema cannot (e.g. a quantity's syntax). The builders
 * turn a spec into the JSON of the headless and client Services, the StatefulSet, the
 * PodDisruptionBudget and the membership ConfigMap. They are pure: same spec, same JSON, no
 * I/O; keys appear in a fixed order so that tests compare whole objects and the reconciler
 * can tell "nothing to change" by comparing the fields it owns. Names and labels follow the
 * operator design (docs/operator.md): Services C (client) and C-peer (headless), StatefulSet C,
 * PDB C, ConfigMap C-members, pods C-<i>, PVCs data-C-<i>.
 */
#ifndef CETCD_RESOURCES_H
#define CETCD_RESOURCES_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

#define EC_DEFAULT_IMAGE "cetcd:0.1.0"
/* Buffer size that holds every name and URL below (names are validated to be short). */
#define EC_NAME_MAX 256

struct ec_options {
    long heartbeat_ms;        /* 0 = server default */
    long election_ms;
    long long quota_backend_bytes;
    char *auto_compaction_mode;      /* NULL = unset */
    char *auto_compaction_retention;
    long long snapshot_count;
    char **extra_args;               /* NULL-terminated, or NULL */
};

struct ec_spec {
    char *name, *ns, *uid;    /* metadata */
    long long generation;
    int size;                 /* 1, 3, 5 or 7 */
    char *version;            /* spec.version, NULL if unset */
    char *image;              /* spec.image, else "cetcd:<version>", else EC_DEFAULT_IMAGE */
    bool empty_dir;           /* spec.storage.emptyDir set */
    char *storage_size;       /* default "1Gi" */
    char *storage_class;      /* NULL = cluster default */
    cJSON *resources;         /* spec.resources copy, or NULL */
    cJSON *pod_template;      /* spec.podTemplate copy, or NULL */
    struct ec_options options;
    bool paused;
};

/* obj: a whole EtcdCluster. CE_INVAL with a message in err naming the field. */
int ec_spec_parse(const cJSON *obj, struct ec_spec *out, char *err, size_t errsz);
void ec_spec_clear(struct ec_spec *s);

/* names (snprintf into buf, return buf) */
const char *ec_pod_name(const struct ec_spec *s, int ordinal, char *buf, size_t n);
const char *ec_peer_url(const struct ec_spec *s, int ordinal, char *buf, size_t n);
const char *ec_client_url(const struct ec_spec *s, int ordinal, char *buf, size_t n);
const char *ec_pvc_name(const struct ec_spec *s, int ordinal, char *buf, size_t n);
const char *ec_configmap_name(const struct ec_spec *s, char *buf, size_t n);
const char *ec_headless_name(const struct ec_spec *s, char *buf, size_t n);
/* ordinal of a peer URL of this cluster, or -1 */
int ec_ordinal_of_peer_url(const struct ec_spec *s, const char *url);
const char *ec_cluster_token(const struct ec_spec *s, char *buf, size_t n);
/* The pods' label selector as a string, "cls=C,app.kubernetes.io/instance=C" (for list calls
 * and the scale subresource's status.selector). */
const char *ec_selector_string(const struct ec_spec *s, char *buf, size_t n);

/* Builders: a new object each call (caller frees with cJSON_Delete); NULL only on ENOMEM.
 * Every object carries the labels and the owner reference to the EtcdCluster. */
cJSON *ec_build_client_service(const struct ec_spec *s);
cJSON *ec_build_headless_service(const struct ec_spec *s);
cJSON *ec_build_statefulset(const struct ec_spec *s, int replicas);
cJSON *ec_build_pdb(const struct ec_spec *s);
/* data: object of key -> entry text (common/bootstrap.h); copied */
cJSON *ec_build_configmap(const struct ec_spec *s, const cJSON *data);

/* The labels every owned object carries (new object). */
cJSON *ec_labels(const struct ec_spec *s);
/* true if `have` (a live object) already carries everything `want` (a built object) sets in
 * the fields the operator owns (labels, spec, data); server-side defaults in `have` ignored. */
bool ec_owned_fields_equal(const cJSON *want, const cJSON *have);

/* A Kubernetes quantity ("1Gi", "500m", "1e3", "0.5"): true and its value in *out if s follows
 * the quantity grammar (sign, digits with an optional fraction, then a binary-SI, decimal-SI or
 * exponent suffix). */
bool ec_quantity_parse(const char *s, long double *out);
/* true if a and b are quantities of the same value ("1Gi" and "1024Mi", "0.5" and "500m"). */
bool ec_quantity_equal(const char *a, const char *b);

#endif
