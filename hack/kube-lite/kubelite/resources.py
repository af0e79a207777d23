"""Resource registry of the kube-lite API server: built-in kinds and the ones CRDs define.

Purpose: map URL segments (group, version, plural) to a ResDef describing a resource: kind,
scope, short names, subresources, the CRD schema per version, scale paths and printer columns.
Discovery documents are generated from this registry.

Invariants: a group-resource (`gr`, "group/plural", "" group for core) names one ResDef; every
served version of it stores into the same bucket of the store (no conversion except apiVersion).
The registry is only changed by the API server when a CRD is created, updated or removed, under
its own lock; readers get ResDef objects that are never mutated after registration.
"""
import threading

from . import schema

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class ResDef:
    def __init__(self, group, versions, plural, singular, kind, namespaced, short=(),
                 subresources=(), categories=(), crd=None):
        self.group = group
        self.versions = list(versions)
        self.plural = plural
        self.singular = singular
        self.kind = kind
        self.namespaced = namespaced
        self.short = list(short)
        self.subresources = set(subresources)
        self.categories = list(categories)
        self.crd = crd                 # the CRD object for custom resources
        self.schemas = {}              # version -> openAPIV3Schema
        self.scale = None              # {specReplicasPath, statusReplicasPath, labelSelectorPath}
        self.columns = {}              # version -> additionalPrinterColumns
        self.rules = {}                # version -> compiled x-kubernetes-validations (or None)

    @property
    def gr(self):
        return "%s/%s" % (self.group, self.plural)

    def api_version(self, version=None):
        v = version or self.versions[0]
        return "%s/%s" % (self.group, v) if self.group else v

    @property
    def has_status(self):
        return "status" in self.subresources


BUILTIN = [
    # group, versions, plural, singular, kind, namespaced, short names, subresources
    ("", ["v1"], "namespaces", "namespace", "Namespace", False, ["ns"], ["status", "finalize"]),
    ("", ["v1"], "pods", "pod", "Pod", True, ["po"], ["status", "log", "eviction"]),
    ("", ["v1"], "services", "service", "Service", True, ["svc"], ["status"]),
    ("", ["v1"], "endpoints", "endpoints", "Endpoints", True, ["ep"], []),
    ("", ["v1"], "configmaps", "configmap", "ConfigMap", True, ["cm"], []),
    ("", ["v1"], "secrets", "secret", "Secret", True, [], []),
    ("", ["v1"], "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", True,
     ["pvc"], ["status"]),
    ("", ["v1"], "persistentvolumes", "persistentvolume", "PersistentVolume", False, ["pv"], ["status"]),
    ("", ["v1"], "events", "event", "Event", True, ["ev"], []),
    ("", ["v1"], "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"], []),
    ("", ["v1"], "nodes", "node", "Node", False, ["no"], ["status"]),
    ("apps", ["v1"], "statefulsets", "statefulset", "StatefulSet", True, ["sts"], ["status", "scale"]),
    ("apps", ["v1"], "deployments", "deployment", "Deployment", True, ["deploy"], ["status", "scale"]),
    ("apps", ["v1"], "replicasets", "replicaset", "ReplicaSet", True, ["rs"], ["status", "scale"]),
    ("apps", ["v1"], "controllerrevisions", "controllerrevision", "ControllerRevision", True, [], []),
    ("batch", ["v1"], "jobs", "job", "Job", True, [], ["status"]),
    ("batch", ["v1"], "cronjobs", "cronjob", "CronJob", True, ["cj"], ["status"]),
    ("policy", ["v1"], "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True,
     ["pdb"], ["status"]),
    ("coordination.k8s.io", ["v1"], "leases", "lease", "Lease", True, [], []),
    ("rbac.authorization.k8s.io", ["v1"], "roles", "role", "Role", True, [], []),
    ("rbac.authorization.k8s.io", ["v1"], "rolebindings", "rolebinding", "RoleBinding", True, [], []),
    ("rbac.authorization.k8s.io", ["v1"], "clusterroles", "clusterrole", "ClusterRole", False, [], []),
    ("rbac.authorization.k8s.io", ["v1"], "clusterrolebindings", "clusterrolebinding",
     "ClusterRoleBinding", False, [], []),
    ("apiextensions.k8s.io", ["v1"], "customresourcedefinitions", "customresourcedefinition",
     "CustomResourceDefinition", False, ["crd", "crds"], ["status"]),
    ("events.k8s.io", ["v1"], "events", "event", "Event", True, ["ev"], []),
    ("discovery.k8s.io", ["v1"], "endpointslices", "endpointslice", "EndpointSlice", True, [], []),
    ("storage.k8s.io", ["v1"], "storageclasses", "storageclass", "StorageClass", False, ["sc"], []),
    ("scheduling.k8s.io", ["v1"], "priorityclasses", "priorityclass", "PriorityClass", False, ["pc"], []),
]

SCALE_PATHS = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
               "labelSelectorPath": None}


class Registry:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_gr = {}
        for g, vs, pl, sg, kind, nsd, short, subs in BUILTIN:
            rd = ResDef(g, vs, pl, sg, kind, nsd, short, subs, ["all"] if pl in (
                "pods", "services", "statefulsets", "jobs", "cronjobs", "deployments") else [])
            if "scale" in subs:
                rd.scale = dict(SCALE_PATHS)
            # events.k8s.io events are stored apart from core events (good enough here)
            self.by_gr[rd.gr] = rd

    def lookup(self, group, version, plural):
        with self.lock:
            rd = self.by_gr.get("%s/%s" % (group, plural))
        if rd is None or version not in rd.versions:
            return None
        return rd

    def all(self):
        with self.lock:
            return list(self.by_gr.values())

    def groups(self):
        """{group: [versions]} in registration order (core group "" included)."""
        out = {}
        for rd in self.all():
            vs = out.setdefault(rd.group, [])
            for v in rd.versions:
                if v not in vs:
                    vs.append(v)
        return out

    def register_crd(self, crd):
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
        if not versions:
            return
        ordered = sorted(versions, key=lambda v: not v.get("storage", False))
        subs = set()
        rd = ResDef(spec["group"], [v["name"] for v in ordered], names["plural"],
                    names.get("singular") or names["kind"].lower(), names["kind"],
                    spec.get("scope", "Namespaced") == "Namespaced", names.get("shortNames") or [],
                    (), names.get("categories") or [], crd)
        for v in ordered:
            rd.schemas[v["name"]] = ((v.get("schema") or {}).get("openAPIV3Schema")) or {}
            rd.rules[v["name"]] = schema.compile_validations(rd.schemas[v["name"]])[0] \
                if schema.has_rules(rd.schemas[v["name"]]) else None
            rd.columns[v["name"]] = v.get("additionalPrinterColumns") or []
            sr = v.get("subresources") or {}
            if "status" in sr:
                subs.add("status")
            if "scale" in sr:
                subs.add("scale")
                rd.scale = sr["scale"]
        rd.subresources = subs
        with self.lock:
            self.by_gr[rd.gr] = rd

    def unregister_crd(self, crd):
        spec = crd.get("spec") or {}
        gr = "%s/%s" % (spec.get("group"), (spec.get("names") or {}).get("plural"))
        with self.lock:
            rd = self.by_gr.get(gr)
            if rd is not None and rd.crd is not None:
                del self.by_gr[gr]
