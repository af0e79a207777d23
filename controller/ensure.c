/*
 * ensure.c: the owned objects that do not depend on membership: Services, PDB, the membership
 * ConfigMap, the StatefulSet's template, and the per-pod `ins` label.
 *
 * Each object is built from the spec (resources/), compared with the cached live object on the
 * fields the operator owns (ec_owned_fields_equal), and written only when it is missing
 * (create) or differs (merge patch with the built object). So a steady cluster costs no
 * writes. The StatefulSet is created only by the SEED step (execute.c); here its template is
 * kept current at its present replica count, never its size, and never its
 * volumeClaimTemplates (immutable in Kubernetes). Reads come from the caches, except for
 * Services and the PDB, which are read with a GET (they change rarely and have no informer).
 */
#include "operator.h"

#include <string.h>

#include "err.h"
#include "runtime/olog.h"

int op_ensure_object(struct op *op, const struct k8s_res *r, const char *ns, cJSON *want,
                     const cJSON *cached)
{
    const char *name = k8s_str(want, "metadata", "name", NULL);
    cJSON *have = NULL;
    int rc = 0;
    if (!want)
        return CE_NOMEM;
    if (cached)
        have = cJSON_Duplicate(cached, true);
    else
        rc = k8s_get(op->k8s, r, ns, name, &have);
    if (rc == CE_NOTFOUND || (!rc && !have)) {
        rc = k8s_create(op->k8s, r, ns, want, NULL);
        olog(rc ? OLOG_ERROR : OLOG_INFO, rc ? "create failed" : "created", "kind", r->kind,
             "namespace", ns, "name", name, "error", rc ? k8s_errmsg() : "", NULL);
    } else if (!rc && !ec_owned_fields_equal(want, have)) {
        rc = k8s_patch(op->k8s, r, ns, name, want, NULL);
        olog(rc ? OLOG_ERROR : OLOG_INFO, rc ? "update failed" : "updated", "kind", r->kind,
             "namespace", ns, "name", name, "error", rc ? k8s_errmsg() : "", NULL);
    }
    cJSON_Delete(have);
    cJSON_Delete(want);
    return rc == CE_EXISTS ? 0 : rc;
}

static int ensure_configmap(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    if (o->cm)
        return 0; /* its data is the membership record: written only by execute.c */
    cJSON *data = cJSON_CreateObject();
    cJSON *want = ec_build_configmap(s, data);
    cJSON_Delete(data);
    int rc = op_ensure_object(op, &K8S_CONFIGMAPS, s->ns, want, NULL);
    if (!rc) {
        char name[128];
        o->cm = NULL;
        k8s_get(op->k8s, &K8S_CONFIGMAPS, s->ns, ec_configmap_name(s, name, sizeof name),
                &o->cm);
    }
    return rc;
}

static int ensure_statefulset(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    if (!o->sts)
        return 0;
    cJSON *want = ec_build_statefulset(s, o->in.sts_replicas);
    if (!want)
        return CE_NOMEM;
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(want, "spec"),
                                            "volumeClaimTemplates");
    return op_ensure_object(op, &K8S_STATEFULSETS, s->ns, want, o->sts);
}

/* Pods carry ins=<pod name> (the seeds' instance label); the template cannot, so it is added
 * once per pod. */
static int ensure_pod_labels(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    int rc = 0;
    for (int i = 0; i < PLAN_MAX; i++) {
        cJSON *pod = o->pods[i];
        if (!pod)
            continue;
        const char *name = k8s_str(pod, "metadata", "name", NULL);
        const char *ins = k8s_str(pod, "metadata", "labels", "ins", NULL);
        if (!name || (ins && !strcmp(ins, name)))
            continue;
        cJSON *patch = cJSON_CreateObject();
        cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(patch, "metadata"),
                                                        "labels"), "ins", name);
        int r = k8s_patch(op->k8s, &K8S_PODS, s->ns, name, patch, NULL);
        if (r && r != CE_NOTFOUND)
            rc = r;
        cJSON_Delete(patch);
    }
    return rc;
}

int op_ensure_objects(struct op *op, const struct ec_spec *s, struct op_observed *o)
{
    int rc = op_ensure_object(op, &K8S_SERVICES, s->ns, ec_build_headless_service(s), NULL);
    if (!rc)
        rc = op_ensure_object(op, &K8S_SERVICES, s->ns, ec_build_client_service(s), NULL);
    if (!rc)
        rc = op_ensure_object(op, &K8S_PDBS, s->ns, ec_build_pdb(s), NULL);
    if (!rc)
        rc = ensure_configmap(op, s, o);
    if (!rc)
        rc = ensure_statefulset(op, s, o);
    if (!rc)
        rc = ensure_pod_labels(op, s, o);
    return rc;
}
