/*
 * resources.h: the EtcdCluster spec, and pure builders of the objects the operator owns.
 *
 * ec_spec_parse reads an EtcdCluster object (cetcd.io/v1alpha1) into a struct with defaults
 * applied and validates what the CRD schema cannot (e.g. a quantity's syntax). The builders
 * turn a spec into the JSON of the headless and client Services, the StatefulSet, the
 * PodDisruptionBudget, the membership ConfigMap and, with spec.backup, the backup CronJob, its
 * on-demand Jobs and the backup claim (backup.c). They are pure: same spec, same JSON, no
 * I/O; keys appear in a fixed order so that tests compare whole objects and the reconciler
 * can tell "nothing to change" by comparing the fields it owns. Names and labels follow the
 * operator design (docs/operator.md): Services C (client) and C-peer (headless), StatefulSet C,
 * PDB C, ConfigMap C-members, pods C-<i>, PVCs data-C-<i>; CronJob C-backup and its Jobs, PVC
 * C-backup (created by the operator unless spec.backup.storage.existingClaim names another).
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

/* spec.backup: scheduled snapshots (docs/operator.md, "Backups"). */
struct ec_backup {
    bool enabled;             /* spec.backup is set */
    char *schedule;           /* cron expression, UTC (ec_cron_check) */
    int retention;            /* snapshot files kept, >= 1, default 7 */
    bool suspend;
    char *existing_claim;     /* storage.existingClaim, or NULL: the operator makes C-backup */
    char *storage_size;       /* storage.size (with existing_claim NULL) */
    char *storage_class;      /* storage.storageClassName, NULL = the cluster's default */
};

/* spec.restore: the new cluster starts from a snapshot file (claim_name NULL = not set). */
struct ec_restore {
    char *claim_name;         /* PVC holding the file, mounted read-only at /restore */
    char *file;               /* path of the file inside that claim (relative, no "..") */
};

/* spec.tls: TLS on the client and peer ports, client certificates required on both. Either the
 * user names three kubernetes.io/tls Secrets (tls.crt, tls.key, ca.crt), or names a CA Secret
 * (tls.crt, tls.key) and the operator issues C-server-tls, C-peer-tls and C-client-tls from it
 * (pki.c). After parsing, the three names are always set when enabled. */
struct ec_tls {
    bool enabled;
    char *ca_secret;          /* NULL unless the operator issues the certificates */
    char *server_secret;      /* the client port's certificate (SANs: every member's names) */
    char *peer_secret;        /* the peer port's certificate, also presented to other peers */
    char *client_secret;      /* the operator's (and backup Jobs') client certificate, CN root */
};

/* spec.auth: authentication on; root's password is the key "password" of this Secret. */
struct ec_auth {
    char *root_secret;        /* NULL = auth left as it is */
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
    struct ec_backup backup;
    struct ec_restore restore;
    struct ec_tls tls;
    struct ec_auth auth;
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

/* ---- TLS and auth (pieces the pod, Job and operator share) ---- */
#define EC_TLS_MOUNT "/etc/cetcd/tls"            /* <mount>/server, /peer, /client */
#define EC_ROOT_PASSWORD_KEY "password"          /* key of spec.auth.rootSecret */
#define EC_ROOT_USER "root"
/* "https" with spec.tls, else "http". */
const char *ec_scheme(const struct ec_spec *s);

/* What the operator issues from spec.tls.caSecret (tls.c). */
enum ec_tls_kind { EC_TLS_SERVER, EC_TLS_PEER, EC_TLS_CLIENT, EC_TLS_KINDS };
#define EC_TLS_MAX_SANS 8
#define EC_TLS_DAYS 365
struct ec_tls_profile {
    char cn[EC_NAME_MAX];
    char sans[EC_TLS_MAX_SANS][EC_NAME_MAX];
    size_t n_sans;
    bool server, client;      /* extendedKeyUsage serverAuth / clientAuth */
    int days;
};
void ec_tls_profile(const struct ec_spec *s, enum ec_tls_kind k, struct ec_tls_profile *p);
/* "server", "peer", "client" */
const char *ec_tls_kind_name(enum ec_tls_kind k);
/* The Secret holding that certificate (spec.tls names, or C-<kind>-tls when issued). */
const char *ec_tls_secret_name(const struct ec_spec *s, enum ec_tls_kind k);
/* Secret (kubernetes.io/tls: ca.crt, tls.crt, tls.key; owned by the EtcdCluster). */
cJSON *ec_build_tls_secret(const struct ec_spec *s, enum ec_tls_kind k, const char *ca_pem,
                           const char *cert_pem, const char *key_pem);

/* ---- backups and restores (backup.c) ---- */
#define EC_BACKUP_NOW_ANNOTATION "cetcd.io/backup-now"
#define EC_RESTORE_MOUNT "/restore"
/* metadata.name limit with spec.backup: "<name>-backup" must fit a CronJob name (52). */
#define EC_BACKUP_NAME_MAX 45

/* "C-backup": the CronJob, and the PVC the operator makes. */
const char *ec_backup_name(const struct ec_spec *s, char *buf, size_t n);
/* The claim the backups go to: storage.existingClaim, else "C-backup". */
const char *ec_backup_claim(const struct ec_spec *s, char *buf, size_t n);
/* The Job an on-demand request (annotation cetcd.io/backup-now: token) makes:
 * "C-backup-now-<6 hex digits of the token's FNV-1a hash>" (at most 63 characters). */
const char *ec_backup_job_name(const struct ec_spec *s, const char *token, char *buf, size_t n);
/* "/restore/<file>": what the members' bootstrap entries name as restore-from. */
const char *ec_restore_path(const struct ec_spec *s, char *buf, size_t n);

/* A Kubernetes CronJob schedule: five fields (minute hour day-of-month month day-of-week:
 * numbers, names jan..dec / sun..sat, '*', '?', ranges a-b, steps x/n, lists) or one of
 * @yearly @annually @monthly @weekly @daily @midnight @hourly. false with the reason in err. */
bool ec_cron_check(const char *expr, char *err, size_t errsz);

/* CronJob C-backup (owned by the EtcdCluster): `cetcdctl snapshot save --dir /backup ...` on
 * the cluster's image with the backup claim at /backup. */
cJSON *ec_build_backup_cronjob(const struct ec_spec *s);
/* The Job of request `token`: the CronJob's job template, named ec_backup_job_name, annotated
 * with the token, owned (controller) by the CronJob whose uid is given, as `kubectl create job
 * --from=cronjob/C-backup` makes one. */
cJSON *ec_build_backup_job(const struct ec_spec *s, const char *token, const char *cronjob_uid);
/* PVC C-backup: NO owner reference (backups outlive the cluster). */
cJSON *ec_build_backup_pvc(const struct ec_spec *s);

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
