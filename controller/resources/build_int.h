/*
 * build_int.h: what the builders of controller/resources/ share (build.c, backup.c); not for
 * other modules.
 *
 * The rb_* JSON helpers (jbuild.c) add one member to an object or array and record a failure
 * (out of memory) in *ok instead of returning it: cJSON's Add* functions do nothing when their
 * parent is NULL, so a builder runs to the end and rb_finish() returns NULL if anything failed.
 * The object helpers (build.c) write the parts every owned object shares, in a fixed key order
 * (builders are pure and deterministic, see build.c).
 */
#ifndef CETCD_RESOURCES_BUILD_INT_H
#define CETCD_RESOURCES_BUILD_INT_H

#include <stdbool.h>
#include <cjson/cJSON.h>

#include "resources/resources.h"

/* uid and gid the cetcd image runs as (Dockerfile) */
#define RB_RUN_AS 10001

/* ---- JSON (jbuild.c) ---- */
cJSON *rb_track(cJSON *item, bool *ok);            /* item; *ok = false if NULL */
void rb_str(cJSON *o, const char *k, const char *v, bool *ok);
void rb_num(cJSON *o, const char *k, double v, bool *ok);
void rb_bool(cJSON *o, const char *k, bool v, bool *ok);
cJSON *rb_obj(cJSON *o, const char *k, bool *ok);  /* new empty object under k */
cJSON *rb_arr(cJSON *o, const char *k, bool *ok);  /* new empty array under k */
/* Adds item to o under k (taking it), or to array o when k is NULL. */
cJSON *rb_attach(cJSON *o, const char *k, cJSON *item, bool *ok);
cJSON *rb_push_obj(cJSON *arr, bool *ok);
void rb_push_str(cJSON *arr, const char *v, bool *ok);
void rb_copy(cJSON *o, const char *k, const cJSON *v, bool *ok); /* deep copy of v under k */
cJSON *rb_finish(cJSON *obj, bool ok);             /* obj, or NULL (freed) when !ok */

/* ---- shared parts of the owned objects (build.c) ---- */
/* app.kubernetes.io/{name,instance,managed-by} and cls */
void rb_labels(cJSON *m, const struct ec_spec *s, bool *ok);
/* one controller reference to the EtcdCluster */
void rb_owner_ref(cJSON *refs, const struct ec_spec *s, bool *ok);
/* {apiVersion, kind, metadata{name, namespace, labels, ownerReferences}} */
cJSON *rb_new_owned(const struct ec_spec *s, const char *api, const char *kind,
                    const char *name, bool *ok);
/* the string entries of src into dst, sorted by key */
void rb_sorted_strings(cJSON *dst, const cJSON *src, bool *ok);
void rb_mount(cJSON *mounts, const char *name, const char *path, bool ro, bool *ok);
/* no privilege escalation, read-only root, every capability dropped */
void rb_container_security(cJSON *c, bool *ok);
/* A Secret volume, files readable by the owner and the pod's fsGroup only (0440). */
void rb_secret_volume(cJSON *vols, const char *name, const char *secret, bool *ok);
/* non-root RB_RUN_AS user, group and fsGroup, RuntimeDefault seccomp */
void rb_pod_security(cJSON *spec, bool *ok);

#endif
