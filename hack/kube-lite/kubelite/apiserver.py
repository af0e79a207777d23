"""kube-lite API server: the Kubernetes REST API over HTTP/1.1 on the in-memory store.

Purpose: serve what kubectl, python-kubernetes, the operator and kube-lite's own controllers and
kubelet use: discovery (/api, /apis, /apis/<g>/<v>, /version, /healthz, /readyz, /openapi/*),
CRUD + list + watch for the resources of resources.py and the ones CRDs define, the status and
scale subresources, pods/log, merge/JSON/strategic-merge PATCH, label and field selectors,
limit/continue, Status error objects, finalizers, deletionTimestamp, graceful pod deletion.
`start(state_dir, host, port)` returns an ApiServer (.url, .port, .token, .stop(),
.listen_also(host, port=None), .listen_tls(host, port, ssl_context) -> port).
TLS: listen_tls serves the same API over HTTPS (Python ssl; certificates from pki.py); the TLS
handshake runs in the connection's own thread (10 s limit), never in the accept loop.

Wire formats:
  - Watch: HTTP 200, Transfer-Encoding chunked, one JSON document per line and chunk:
    {"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR", "object": {...}}. A watch from a
    resourceVersion older than the history window answers HTTP 410 (Status, reason Expired);
    without resourceVersion (or "0") it first sends ADDED for every current object.
    BOOKMARK (with allowWatchBookmarks=true) carries only kind, apiVersion and
    metadata.resourceVersion; one is sent after 1 s without events and then every 10 s.
    timeoutSeconds ends the stream (default 30-60 min).
  - continue token: base64url of JSON {"rv": <list rv>, "start": "<ns>/<name>"}; a token
    whose rv left the history window answers 410 Expired.
Semantics notes for controller/kubelet writers:
  - DELETE of a pod that has spec.nodeName or phase Running and a grace period > 0 only sets
    metadata.deletionTimestamp (now + grace) and deletionGracePeriodSeconds; the kubelet stops
    it and then DELETEs it with gracePeriodSeconds=0 (the GC force-removes it 15 s after the
    deadline if nobody does).
  - An object with finalizers is removed when an update empties its finalizers after DELETE.
  - PUT/PATCH on a resource with a status subresource ignore status; /status writes only status.
  - metadata.generation increases when anything but metadata and status changes.
  - Writes that change nothing do not bump resourceVersion and send no event.
  - spec.clusterIP(s) are kept across updates that omit them; allocating them (and the `kubernetes`
    Service, the Node, Endpoints) is the controllers' job (B), as their CIDRs are per instance.
  - Defaulting as the API server does it (so a client comparing what it wrote with what it reads
    sees the same extra fields as on a real cluster): pod specs and the pod templates of
    StatefulSets, Deployments, ReplicaSets, Jobs and CronJobs (restartPolicy, dnsPolicy,
    schedulerName, securityContext {}, terminationGracePeriodSeconds; per container
    imagePullPolicy, terminationMessagePath/Policy, resources {}, ports protocol, fieldRef
    apiVersion, probe timeouts/periods/thresholds and httpGet scheme; volume defaultMode 420),
    StatefulSet/Deployment/ReplicaSet specs, volumeClaimTemplates (volumeMode, status Pending),
    Services (sessionAffinity, ipFamilies, ipFamilyPolicy, internalTrafficPolicy, targetPort).
  - Admission on create: a pod's ServiceAccount must exist (403 "error looking up service
    account"); PVCs get the kubernetes.io/pvc-protection finalizer (controllers.py removes it once
    no pod uses the claim; not in --api-only mode, where nothing would remove it).
  - pods/eviction honours PodDisruptionBudgets (Api.evict: 429 TooManyRequests with a
    DisruptionBudget cause, status.disruptionsAllowed decremented atomically).
  - CRD x-kubernetes-validations (CEL, schema.py + cel.py): a rule kube-lite cannot run makes the
    CRD itself 422; a false rule makes the custom resource 422 in the API server's wording.
Authentication: any bearer token (or none) is accepted, on both listeners: the static token of
DIR/kubeconfig and the service-account token the kubelet mounts in pods alike (no RBAC).
"""
import base64
import copy
import json
import os
import random
import re
import socket
import ssl
import string
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import gc, patch, schema, tables
from .resources import Registry
from .store import Gone, Store

VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0-kube-lite", "gitCommit": "kube-lite",
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22",
           "compiler": "gc", "platform": "linux/amd64"}
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
FORCE_DELETE_SLACK = 15
PVC_PROTECTION = "kubernetes.io/pvc-protection"


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            st["details"] = self.details
        return st


def not_found(rd, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (_res_name(rd), name),
                    {"name": name, "group": rd.group, "kind": rd.plural})


def conflict(rd, name):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been '
                    'modified; please apply your changes to the latest version and try again'
                    % (_res_name(rd), name), {"name": name, "group": rd.group, "kind": rd.plural})


def _res_name(rd):
    return "%s.%s" % (rd.plural, rd.group) if rd.group else rd.plural


def now_ts():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def ts_after(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def _parse_ts(ts):
    import calendar
    try:
        return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return 0


# ---------------- selectors ----------------

_LSEL = re.compile(r"\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def parse_label_selector(text):
    """'a=b,c!=d,e in (x,y),f notin (z),g,!h' -> list of (key, op, values). Raises ApiError."""
    reqs, parts, depth, cur = [], [], 0, ""
    for ch in text or "":
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    for p in parts:
        m = _LSEL.match(p)
        if not m:
            raise ApiError(400, "BadRequest", "unable to parse requirement: %r" % p)
        neg, key, op, val, setop, setvals = m.groups()
        if neg:
            reqs.append((key, "!", None))
        elif op:
            reqs.append((key, "!=" if op == "!=" else "=", val))
        elif setop:
            reqs.append((key, setop, [v.strip() for v in setvals.split(",") if v.strip()]))
        else:
            reqs.append((key, "exists", None))
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for key, op, val in reqs:
        has, v = key in labels, labels.get(key)
        if (op == "=" and v != val) or (op == "!=" and v == val) or (op == "exists" and not has) \
                or (op == "!" and has) or (op == "in" and v not in val) or (op == "notin" and has and v in val):
            return False
    return True


def parse_field_selector(text):
    out = []
    for p in (text or "").split(","):
        if not p.strip():
            continue
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|=|!=)\s*(.*?)\s*$", p)
        if not m:
            raise ApiError(400, "BadRequest", "invalid field selector: %r" % p)
        out.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return out


def fields_match(reqs, obj):
    for path, eq, val in reqs:
        cur = obj
        for k in path.split("."):
            cur = cur.get(k) if isinstance(cur, dict) else None
        s = "" if cur is None else (str(cur).lower() if isinstance(cur, bool) else str(cur))
        if (s == val) != eq:
            return False
    return True


def selector_matches(sel, labels):
    """metav1.LabelSelector semantics: None matches nothing, {} matches everything."""
    if not isinstance(sel, dict):
        return False
    labels = labels or {}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if (op == "In" and labels.get(k) not in vals) or (op == "NotIn" and k in labels and labels[k] in vals) \
                or (op == "Exists" and k not in labels) or (op == "DoesNotExist" and k in labels):
            return False
    return True


# ---------------- object defaults ----------------

def _default_probe(p):
    if not isinstance(p, dict):
        return
    for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        p.setdefault(k, v)
    if isinstance(p.get("httpGet"), dict):
        p["httpGet"].setdefault("scheme", "HTTP")


def _default_container(c):
    image = c.get("image") or ""
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for e in c.get("env") or []:
        fr = (e.get("valueFrom") or {}).get("fieldRef")
        if isinstance(fr, dict):
            fr.setdefault("apiVersion", "v1")
    for k in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(k))


def _default_volume(v):
    for k in ("configMap", "secret", "downwardAPI", "projected"):
        if isinstance(v.get(k), dict):
            v[k].setdefault("defaultMode", 420)
    for it in (v.get("downwardAPI") or {}).get("items") or []:
        if isinstance(it.get("fieldRef"), dict):
            it["fieldRef"].setdefault("apiVersion", "v1")
    for src in (v.get("projected") or {}).get("sources") or []:
        if isinstance(src.get("serviceAccountToken"), dict):
            src["serviceAccountToken"].setdefault("expirationSeconds", 3600)


def _default_pod_spec(spec):
    """SetDefaults_PodSpec and friends: what the API server fills in a pod spec or template."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if isinstance(c, dict):
            _default_container(c)
    for v in spec.get("volumes") or []:
        if isinstance(v, dict):
            _default_volume(v)


def _default_template(spec):
    tmpl = spec.get("template")
    if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
        _default_pod_spec(tmpl["spec"])


def _default_pod(o):
    spec = o.setdefault("spec", {})
    _default_pod_spec(spec)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    st = o.setdefault("status", {})
    st.setdefault("phase", "Pending")


def _default_sts(o):
    spec = o.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _default_template(spec)
    for t in spec.get("volumeClaimTemplates") or []:
        if isinstance(t, dict):
            t.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
            t.setdefault("status", {}).setdefault("phase", "Pending")


def _default_deployment(o):
    spec = o.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    st = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if st.get("type", "RollingUpdate") == "RollingUpdate":
        st.setdefault("type", "RollingUpdate")
        ru = st.setdefault("rollingUpdate", {})
        ru.setdefault("maxSurge", "25%")
        ru.setdefault("maxUnavailable", "25%")
    _default_template(spec)


def _default_rs(o):
    spec = o.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    _default_template(spec)


def _default_job(o):
    spec = o.setdefault("spec", {})
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    tmpl = spec.setdefault("template", {}).setdefault("spec", {})
    tmpl.setdefault("restartPolicy", "Never")
    _default_template(spec)


def _default_cronjob(o):
    spec = o.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    jt = spec.get("jobTemplate")
    if isinstance(jt, dict) and isinstance(jt.get("spec"), dict):
        _default_template(jt["spec"])


def _default_service(o):
    spec = o.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p.get("port"))
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec.get("clusterIP") == "None":
            spec.setdefault("clusterIPs", ["None"])


def _default_ns(o):
    o.setdefault("status", {}).setdefault("phase", "Active")
    o["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = o["metadata"]["name"]


def _default_pvc(o):
    o.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
    o.setdefault("status", {}).setdefault("phase", "Pending")


DEFAULTS = {"/pods": _default_pod, "apps/statefulsets": _default_sts, "batch/jobs": _default_job,
            "apps/deployments": _default_deployment, "apps/replicasets": _default_rs,
            "batch/cronjobs": _default_cronjob, "/services": _default_service, "/namespaces": _default_ns,
            "/persistentvolumeclaims": _default_pvc, "/secrets": lambda o: o.setdefault("type", "Opaque")}


def _strip_volatile(o):
    c = dict(o)
    c["metadata"] = {k: v for k, v in (o.get("metadata") or {}).items()
                     if k not in ("resourceVersion", "generation", "managedFields")}
    return c


def _spec_part(o):
    return {k: v for k, v in o.items() if k not in ("metadata", "status", "apiVersion", "kind")}


# ---------------- the API semantics ----------------

class Api:
    """Object semantics over the store, independent of HTTP (also used by the GC)."""

    def __init__(self, store, registry):
        self.store = store
        self.reg = registry
        self.tls = threading.local()    # .strict: this request asked ?fieldValidation=Strict
        self.pvc_protection = False     # set by main.py when the controllers (which release it) run

    # ---- helpers ----
    def _check_ns(self, rd, ns):
        if not rd.namespaced:
            return
        nso = self.store.get("/namespaces", "", ns)
        if nso is None:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                           {"name": ns, "kind": "namespaces"})
        if (nso.get("metadata") or {}).get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", "%s \"%s\" is forbidden: unable to create new content in "
                           "namespace %s because it is being terminated" % (rd.plural, "", ns))

    def _cr_checks(self, rd, version, obj, name, strict=False, old=None):
        """Defaults, pruning, OpenAPI schema and CEL rules (with old: an update) of a CR."""
        sch = rd.schemas.get(version) or rd.schemas.get(rd.versions[0]) or {}
        schema.apply_defaults(sch, obj)
        dropped = []
        schema.prune(sch, obj, dropped=dropped)
        if strict and dropped:
            raise ApiError(400, "BadRequest", '%s in version "%s" cannot be handled as a %s: strict decoding '
                           'error: %s' % (rd.kind, version, rd.kind, ", ".join(
                               'unknown field "%s"' % d for d in dropped)))
        causes = schema.validate(sch, obj)
        tree = rd.rules.get(version) if version in rd.rules else rd.rules.get(rd.versions[0])
        if tree is not None:
            if any(c["reason"] in schema.BLOCKING for c in causes):
                causes.append(schema.rules_blocked_cause())
            elif old is not None:
                causes += schema.validate_rules(tree, obj, old)
            else:
                causes += schema.validate_rules(tree, obj)
        if causes:
            msgs = ["%s: %s" % (c["field"], c["message"]) for c in causes]
            raise ApiError(422, "Invalid", '%s.%s "%s" is invalid: %s' % (
                rd.kind, rd.group, name, msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"),
                {"name": name, "group": rd.group, "kind": rd.kind, "causes": causes})

    def _validate_name(self, rd, name):
        if not name:
            raise ApiError(422, "Invalid", "%s \"\" is invalid: metadata.name: Required value: name or "
                           "generateName is required" % rd.kind,
                           {"kind": rd.kind, "causes": [{"reason": "FieldValueRequired",
                                                         "field": "metadata.name",
                                                         "message": "Required value"}]})
        if len(name) > 253 or not NAME_RE.match(name):
            msg = ("metadata.name: Invalid value: \"%s\": a lowercase RFC 1123 subdomain must consist of "
                   "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                   "alphanumeric character" % name)
            raise ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (rd.kind, name, msg),
                           {"name": name, "kind": rd.kind, "causes": [
                               {"reason": "FieldValueInvalid", "field": "metadata.name", "message": msg}]})

    def _admit(self, rd, version, obj, old):
        """Kind defaults, CRD checks and CR schema; obj is a fresh dict the caller owns."""
        fn = DEFAULTS.get(rd.gr)
        if fn:
            fn(obj)
        if rd.gr == "/services" and old is not None:
            for k in ("clusterIP", "clusterIPs"):
                if not obj["spec"].get(k) and (old.get("spec") or {}).get(k):
                    obj["spec"][k] = old["spec"][k]
        if rd.gr == "apiextensions.k8s.io/customresourcedefinitions":
            self._admit_crd(obj)
        if rd.crd is not None:
            self._cr_checks(rd, version, obj, obj["metadata"].get("name"), getattr(self.tls, "strict", False),
                            old)

    def _admit_crd(self, obj):
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        causes = []
        for f, v in (("spec.group", spec.get("group")), ("spec.names.plural", names.get("plural")),
                     ("spec.names.kind", names.get("kind")), ("spec.versions", spec.get("versions"))):
            if not v:
                causes.append({"reason": "FieldValueRequired", "field": f, "message": "Required value"})
        name = obj["metadata"].get("name")
        if not causes and name != "%s.%s" % (names["plural"], spec["group"]):
            causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                           "message": "Invalid value: \"%s\": must be spec.names.plural+\".\"+"
                           "spec.group" % name})
        if not causes and sum(1 for v in spec["versions"] if v.get("storage")) != 1:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.versions",
                           "message": "Invalid value: must have exactly one version marked "
                           "as storage version"})
        if not causes:
            for i, v in enumerate(spec["versions"]):
                sch = (v.get("schema") or {}).get("openAPIV3Schema") or {}
                _, problems = schema.compile_validations(sch, "spec.versions[%d].schema.openAPIV3Schema" % i)
                causes += problems
        if causes:
            raise ApiError(422, "Invalid", 'CustomResourceDefinition.apiextensions.k8s.io "%s" is invalid: %s'
                           % (name, ", ".join("%s: %s" % (c["field"], c["message"]) for c in causes)),
                           {"name": name, "group": "apiextensions.k8s.io",
                            "kind": "CustomResourceDefinition", "causes": causes})
        spec.setdefault("scope", "Namespaced")
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        t = now_ts()
        obj["status"] = {"acceptedNames": copy.deepcopy(names), "storedVersions":
                         [v["name"] for v in spec["versions"] if v.get("storage")],
                         "conditions": [
                             {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                              "message": "no conflicts found", "lastTransitionTime": t},
                             {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                              "message": "the initial names have been accepted", "lastTransitionTime": t}]}

    def present(self, rd, version, obj):
        """The object as served at a version (apiVersion rewritten; never mutates obj)."""
        av = rd.api_version(version)
        if obj.get("apiVersion") == av and obj.get("kind") == rd.kind:
            return obj
        o = dict(obj)
        o["apiVersion"], o["kind"] = av, rd.kind
        return o

    # ---- create ----
    def create(self, rd, version, ns, body):
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if obj.get("kind") not in (None, rd.kind):
            raise ApiError(400, "BadRequest", "the kind %s does not match the resource %s"
                           % (obj.get("kind"), rd.plural))
        if rd.namespaced:
            if md.get("namespace") not in (None, "", ns):
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match "
                               "the namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789")
                                                      for _ in range(5))
        name = md.get("name")
        self._validate_name(rd, name)
        obj["apiVersion"], obj["kind"] = rd.api_version(version), rd.kind
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_ts()
        md["generation"] = 1
        if rd.has_status and rd.gr not in ("apiextensions.k8s.io/customresourcedefinitions",):
            obj.pop("status", None)
        with self.store.lock:
            self._check_ns(rd, ns)
            if self.store.get(rd.gr, md.get("namespace", ""), name) is not None:
                raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (_res_name(rd), name),
                               {"name": name, "group": rd.group, "kind": rd.plural})
            self._admit(rd, version, obj, None)
            self._admit_create(rd, obj)
            out = self.store.put(rd.gr, obj, "ADDED")
            self._after_write(rd, out)
        return out

    def _admit_create(self, rd, obj):
        """Admission plugins on create: ServiceAccount (a pod's service account must exist) and
        StorageObjectInUseProtection (the kubernetes.io/pvc-protection finalizer on PVCs)."""
        md = obj["metadata"]
        if rd.gr == "/pods":
            sa = obj["spec"].get("serviceAccountName") or "default"
            if self.store.get("/serviceaccounts", md["namespace"], sa) is None:
                raise ApiError(403, "Forbidden", 'pods "%s" is forbidden: error looking up service account '
                               '%s/%s: serviceaccount "%s" not found' % (md["name"], md["namespace"], sa, sa),
                               {"name": md["name"], "kind": "pods"})
        if rd.gr == "/persistentvolumeclaims" and self.pvc_protection:
            fins = md.setdefault("finalizers", [])
            if PVC_PROTECTION not in fins:
                fins.append(PVC_PROTECTION)

    def _after_write(self, rd, obj):
        if rd.gr == "apiextensions.k8s.io/customresourcedefinitions":
            self.reg.register_crd(obj)
        if rd.gr == "/namespaces" and not obj["metadata"].get("deletionTimestamp"):
            ns = obj["metadata"]["name"]
            if self.store.get("/serviceaccounts", ns, "default") is None:
                sa = {"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": {"name": "default", "namespace": ns, "uid": str(uuid.uuid4()),
                                   "creationTimestamp": now_ts()}}
                self.store.put("/serviceaccounts", sa, "ADDED")

    # ---- update ----
    def update(self, rd, version, ns, name, body, sub=None):
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        bmd = body.get("metadata") or {}
        if bmd.get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on "
                           "the URL (%s)" % (bmd.get("name"), name))
        with self.store.lock:
            cur = self.store.get(rd.gr, ns, name)
            if cur is None:
                raise not_found(rd, name)
            want_rv = bmd.get("resourceVersion")
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                raise conflict(rd, name)
            if sub == "status":
                new = copy.deepcopy(cur)
                if "status" in body:
                    new["status"] = copy.deepcopy(body["status"])
                else:
                    new.pop("status", None)
            else:
                new = copy.deepcopy(body)
                md = new.setdefault("metadata", {})
                for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "generation", "namespace", "name"):
                    if k in cur["metadata"]:
                        md[k] = cur["metadata"][k]
                    else:
                        md.pop(k, None)
                if rd.has_status:
                    if "status" in cur:
                        new["status"] = copy.deepcopy(cur["status"])
                    else:
                        new.pop("status", None)
            new["apiVersion"], new["kind"] = rd.api_version(version), rd.kind
            self._admit(rd, version, new, cur)
            return self._commit_update(rd, cur, new)

    def _commit_update(self, rd, cur, new):
        md = new["metadata"]
        if _spec_part(new) != _spec_part(cur) or (not rd.has_status and new.get("status") != cur.get("status")
                                                   and rd.crd is not None):
            md["generation"] = int(cur["metadata"].get("generation") or 1) + 1
        else:
            md["generation"] = cur["metadata"].get("generation", 1)
        if md.get("deletionTimestamp") and not md.get("finalizers") \
                and not md.get("deletionGracePeriodSeconds") and rd.gr != "/namespaces":
            return self._remove(rd, new)
        if _strip_volatile(new) == _strip_volatile(cur) and md["generation"] == cur["metadata"].get("generation"):
            return cur
        out = self.store.put(rd.gr, new, "MODIFIED")
        self._after_write(rd, out)
        return out

    def _remove(self, rd, obj):
        md = obj["metadata"]
        final = self.store.remove(rd.gr, md.get("namespace", ""), md["name"])
        if rd.gr == "apiextensions.k8s.io/customresourcedefinitions" and final is not None:
            self._drop_crd(final)
        return final

    def _drop_crd(self, crd):
        spec = crd.get("spec") or {}
        gr = "%s/%s" % (spec.get("group"), (spec.get("names") or {}).get("plural"))
        for o in self.store.list(gr)[0]:
            self.store.remove(gr, o["metadata"].get("namespace", ""), o["metadata"]["name"])
        self.reg.unregister_crd(crd)

    # ---- patch ----
    def patch(self, rd, version, ns, name, ctype, body, sub=None):
        try:
            doc = json.loads(body or b"null")
        except ValueError as e:
            raise ApiError(400, "BadRequest", "error decoding patch: %s" % e)
        ctype = (ctype or "").split(";")[0].strip()
        if ctype == "application/strategic-merge-patch+json" and rd.crd is not None:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json-patch+json, "
                           "application/merge-patch+json, application/apply-patch+yaml")
        with self.store.lock:
            cur = self.store.get(rd.gr, ns, name)
            if cur is None:
                raise not_found(rd, name)
            base = self.scale_of(rd, cur) if sub == "scale" else cur
            try:
                if ctype == "application/json-patch+json":
                    new = patch.json_patch(base, doc)
                elif ctype == "application/merge-patch+json":
                    new = patch.merge_patch(base, doc)
                elif ctype == "application/strategic-merge-patch+json":
                    new = patch.strategic_merge_patch(base, doc)
                else:
                    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                                   "format - accepted media types include: application/json-patch+json, "
                                   "application/merge-patch+json, application/strategic-merge-patch+json")
            except patch.PatchError as e:
                raise ApiError(422, "Invalid", str(e))
            if not isinstance(new, dict):
                raise ApiError(422, "Invalid", "patch result is not an object")
            if sub == "scale":
                return self.set_scale(rd, version, ns, name, new)
            if sub != "status" and rd.has_status:
                new["status"] = copy.deepcopy(cur.get("status"))
                if new["status"] is None:
                    new.pop("status")
            return self.update(rd, version, ns, name, new, sub)

    # ---- scale ----
    def scale_of(self, rd, obj):
        paths = rd.scale or {}
        spec_v = tables.jsonpath(obj, paths.get("specReplicasPath") or ".spec.replicas")
        stat_v = tables.jsonpath(obj, paths.get("statusReplicasPath") or ".status.replicas")
        md = obj["metadata"]
        sel = ""
        if paths.get("labelSelectorPath"):
            sel = tables.jsonpath(obj, paths["labelSelectorPath"]) or ""
        else:
            ml = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            sel = ",".join("%s=%s" % kv for kv in sorted(ml.items()))
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": md["name"], "namespace": md.get("namespace"), "uid": md["uid"],
                             "resourceVersion": md["resourceVersion"],
                             "creationTimestamp": md["creationTimestamp"]},
                "spec": {"replicas": spec_v or 0}, "status": {"replicas": stat_v or 0, "selector": sel}}

    def set_scale(self, rd, version, ns, name, scale_obj):
        with self.store.lock:
            cur = self.store.get(rd.gr, ns, name)
            if cur is None:
                raise not_found(rd, name)
            want = ((scale_obj or {}).get("metadata") or {}).get("resourceVersion")
            if want and want != cur["metadata"]["resourceVersion"]:
                raise conflict(rd, name)
            replicas = ((scale_obj or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise ApiError(422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: Invalid '
                               'value: %s: must be greater than or equal to 0' % (name, json.dumps(replicas)))
            new = copy.deepcopy(cur)
            path = ((rd.scale or {}).get("specReplicasPath") or ".spec.replicas").lstrip(".").split(".")
            tgt = new
            for k in path[:-1]:
                tgt = tgt.setdefault(k, {})
            tgt[path[-1]] = replicas
            if rd.crd is not None:
                self._cr_checks(rd, version, new, name, old=cur)
            out = self._commit_update(rd, cur, new)
            return self.scale_of(rd, out)

    # ---- delete ----
    def delete(self, rd, ns, name, opts):
        opts = opts or {}
        with self.store.lock:
            cur = self.store.get(rd.gr, ns, name)
            if cur is None:
                raise not_found(rd, name)
            pre = opts.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != cur["metadata"].get("uid"):
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": Precondition failed: '
                               'UID in precondition: %s, UID in object meta: %s' % (
                                   _res_name(rd), name, pre["uid"], cur["metadata"].get("uid")))
            if pre.get("resourceVersion") and pre["resourceVersion"] != cur["metadata"]["resourceVersion"]:
                raise conflict(rd, name)
            if rd.gr == "/namespaces" and name in ("default", "kube-system", "kube-public"):
                raise ApiError(403, "Forbidden", 'namespaces "%s" is forbidden: this namespace may not be '
                               'deleted' % name)
            policy = opts.get("propagationPolicy") or ("Orphan" if opts.get("orphanDependents") else "Background")
            grace = opts.get("gracePeriodSeconds")
            new = copy.deepcopy(cur)
            md = new["metadata"]
            fins = list(md.get("finalizers") or [])
            if policy == "Foreground" and "foregroundDeletion" not in fins:
                fins.append("foregroundDeletion")
            if policy == "Orphan" and "orphan" not in fins:
                fins.append("orphan")
            graceful = False
            if rd.gr == "/pods":
                if grace is None:
                    grace = (cur.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
                started = (cur.get("spec") or {}).get("nodeName") or (cur.get("status") or {}).get("phase") == "Running"
                done = (cur.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                graceful = bool(grace) and bool(started) and not done
                if md.get("deletionTimestamp") and not graceful:
                    md["deletionGracePeriodSeconds"] = 0
            if md.get("deletionTimestamp") and rd.gr == "/namespaces":
                return cur      # already terminating: the GC removes it once it is empty
            if md.get("deletionTimestamp"):
                md["finalizers"] = fins
                if not fins and not md.get("deletionGracePeriodSeconds"):
                    return self._remove(rd, new)
                return self._commit_update(rd, cur, new) if new != cur else cur
            if rd.gr == "/namespaces":
                md["deletionTimestamp"] = now_ts()
                md["finalizers"] = fins
                new.setdefault("status", {})["phase"] = "Terminating"
                return self.store.put(rd.gr, new, "MODIFIED")
            if not fins and not graceful:
                return self._remove(rd, new)
            md["finalizers"] = fins
            if not fins:
                md.pop("finalizers")
            md["deletionTimestamp"] = ts_after(grace) if graceful else now_ts()
            md["deletionGracePeriodSeconds"] = int(grace) if graceful else 0
            return self.store.put(rd.gr, new, "MODIFIED")

    # ---- eviction ----
    def evict(self, ns, name, body):
        """POST pods/<name>/eviction: delete the pod unless that breaks its PodDisruptionBudget.

        As the API server does: a pod that is terminating, Pending, Succeeded or Failed is deleted
        at once; more than one matching PDB is a 500; a PDB whose status has not observed its
        generation, or whose status.disruptionsAllowed is 0, answers 429 TooManyRequests with a
        DisruptionBudget cause; otherwise disruptionsAllowed is decremented and the pod recorded in
        status.disruptedPods (atomically, under the store lock) and the pod deleted with the
        eviction's deleteOptions. A pod that is not Ready is evicted without charging the budget
        when the budget is met (currentHealthy >= desiredHealthy > 0) or unhealthyPodEvictionPolicy
        is AlwaysAllow."""
        body = body if isinstance(body, dict) else {}
        opts = body.get("deleteOptions") or {}
        pods_rd = self.reg.lookup("", "v1", "pods")
        pdb_rd = self.reg.lookup("policy", "v1", "poddisruptionbudgets")
        with self.store.lock:
            pod = self.store.get("/pods", ns, name)
            if pod is None:
                raise not_found(pods_rd, name)
            phase = (pod.get("status") or {}).get("phase", "Pending")
            if pod["metadata"].get("deletionTimestamp") or phase in ("Pending", "Succeeded", "Failed"):
                return self.delete(pods_rd, ns, name, opts)
            labels = pod["metadata"].get("labels") or {}
            pdbs = [p for p in self.store.list(pdb_rd.gr, ns)[0]
                    if selector_matches((p.get("spec") or {}).get("selector"), labels)]
            if len(pdbs) > 1:
                raise ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which "
                               "the eviction subresource does not support.")
            if pdbs:
                self._charge_budget(pdb_rd, pdbs[0], pod)
            return self.delete(pods_rd, ns, name, opts)

    def _charge_budget(self, pdb_rd, pdb, pod):
        st = pdb.get("status") or {}
        pname = pdb["metadata"]["name"]

        def refuse(msg):
            return ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's "
                            "disruption budget.", {"causes": [{"reason": "DisruptionBudget", "message": msg}]})
        if st.get("observedGeneration", 0) < pdb["metadata"].get("generation", 1):
            raise refuse("The disruption budget %s is still being processed by the server." % pname)
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (pod.get("status") or {}).get("conditions") or [])
        if not ready:
            if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
                return
            if st.get("currentHealthy", 0) >= st.get("desiredHealthy", 0) > 0:
                return
        if st.get("disruptionsAllowed", 0) <= 0:
            raise refuse("The disruption budget %s needs %d healthy pods and has %d currently"
                         % (pname, st.get("desiredHealthy", 0), st.get("currentHealthy", 0)))
        new = copy.deepcopy(pdb)
        nst = new.setdefault("status", {})
        nst["disruptionsAllowed"] = st["disruptionsAllowed"] - 1
        nst.setdefault("disruptedPods", {})[pod["metadata"]["name"]] = now_ts()
        self.store.put(pdb_rd.gr, new, "MODIFIED")

    def remove_finalizer(self, rd, obj, fin):
        """Used by the GC: drop one finalizer (and the object if it was the last)."""
        with self.store.lock:
            md = obj["metadata"]
            cur = self.store.get(rd.gr, md.get("namespace", ""), md["name"])
            if cur is None or cur["metadata"].get("uid") != md.get("uid"):
                return None
            new = copy.deepcopy(cur)
            new["metadata"]["finalizers"] = [f for f in cur["metadata"].get("finalizers") or [] if f != fin]
            return self._commit_update(rd, cur, new)

    def force_remove(self, rd, obj):
        with self.store.lock:
            md = obj["metadata"]
            cur = self.store.get(rd.gr, md.get("namespace", ""), md["name"])
            if cur is None or cur["metadata"].get("uid") != md.get("uid"):
                return None
            return self._remove(rd, cur)


# ---------------- discovery ----------------

def api_resource_list(reg, group, version):
    res = []
    for rd in reg.all():
        if rd.group != group or version not in rd.versions:
            continue
        r = {"name": rd.plural, "singularName": rd.singular, "namespaced": rd.namespaced, "kind": rd.kind,
             "verbs": VERBS_FOR(rd), "storageVersionHash": ""}
        if rd.short:
            r["shortNames"] = rd.short
        if rd.categories:
            r["categories"] = rd.categories
        res.append(r)
        for sub in sorted(rd.subresources):
            if sub == "finalize":
                continue
            verbs = ["get"] if sub == "log" else ["create"] if sub == "eviction" else ["get", "patch", "update"]
            kind = "Scale" if sub == "scale" else "Eviction" if sub == "eviction" else rd.kind
            r2 = {"name": "%s/%s" % (rd.plural, sub), "singularName": "", "namespaced": rd.namespaced,
                  "kind": kind, "verbs": verbs}
            if sub == "scale":
                r2["group"], r2["version"] = "autoscaling", "v1"
            res.append(r2)
    if not res:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "%s/%s" % (group, version) if group else version, "resources": res}


def VERBS_FOR(rd):
    from .resources import VERBS
    return list(VERBS)


def openapi_v3_gv(reg, gv):
    """A minimal OpenAPI v3 document for one group-version ("api/v1", "apis/apps/v1").

    It lists, per resource, the item path with a PATCH operation that declares the
    fieldValidation query parameter and x-kubernetes-group-version-kind: kubectl reads exactly
    that to decide it may leave validation to the server (?fieldValidation=Strict), so it never
    needs /openapi/v2. components.schemas is empty on purpose: kubectl then builds strategic
    merge patches from its compiled-in types and JSON merge patches for custom resources.
    """
    parts = gv.split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        return None
    paths = {}
    for rd in reg.all():
        if rd.group != group or version not in rd.versions:
            continue
        base = "/%s/%s" % (gv, "namespaces/{namespace}/" if rd.namespaced else "")
        op = {"x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rd.kind},
              "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                             {"name": "dryRun", "in": "query", "schema": {"type": "string"}}],
              "responses": {"200": {"description": "OK"}}}
        paths[base + rd.plural + "/{name}"] = {"patch": op, "put": op}
    if not paths:
        return None
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}


def openapi_v3_root(reg):
    import hashlib
    out = {}
    for g, vs in reg.groups().items():
        for v in vs:
            gv = "api/%s" % v if not g else "apis/%s/%s" % (g, v)
            h = hashlib.sha256(json.dumps(openapi_v3_gv(reg, gv), sort_keys=True).encode()).hexdigest()[:32]
            out[gv] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (gv, h.upper())}
    return {"paths": out}


def api_group_list(reg):
    groups = []
    for g, vs in reg.groups().items():
        if not g:
            continue
        vlist = [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in vs]
        groups.append({"name": g, "versions": vlist, "preferredVersion": vlist[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


# ---------------- HTTP ----------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-lite"
    sys_version = ""

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.server.kl.verbose:
            self.server.kl.log("%s %s" % (self.address_string(), fmt % args))

    # -- plumbing --
    def _send(self, code, obj, ctype="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, e):
        self._send(e.code, e.status())

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(n) if n else b""

    def _json_body(self):
        raw = self._body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ApiError(400, "BadRequest", "the body of the request could not be decoded as JSON: %s" % e)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        u = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
        parts = [urllib.parse.unquote(p) for p in u.path.split("/") if p]
        self.server.kl.api.tls.strict = q.get("fieldValidation") == "Strict"
        try:
            if not self._meta_paths(method, u.path, parts):
                self._resource(method, parts, q)
        except ApiError as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):  # the client went away
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - one bad request must not kill the server
            self.server.kl.log("internal error on %s %s: %r" % (method, self.path, e))
            import traceback
            self.server.kl.log(traceback.format_exc())
            try:
                self._error(ApiError(500, "InternalError", "internal error: %r" % e))
            except OSError:
                pass

    def _meta_paths(self, method, path, parts):
        kl = self.server.kl
        if method != "GET":
            return False
        if path in ("/healthz", "/readyz", "/livez") or path.startswith(("/healthz/", "/readyz/", "/livez/")):
            self._send(200, b"ok", "text/plain; charset=utf-8")
        elif path == "/version":
            self._send(200, VERSION)
        elif path == "/api":
            self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "%s:%d" % self.server.server_address[:2]}]})
        elif path == "/apis":
            self._send(200, api_group_list(kl.reg))
        elif parts[:1] == ["apis"] and len(parts) == 2:
            vs = kl.reg.groups().get(parts[1])
            if not vs:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            vlist = [{"groupVersion": "%s/%s" % (parts[1], v), "version": v} for v in vs]
            self._send(200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1], "versions": vlist,
                             "preferredVersion": vlist[0]})
        elif (parts[:1] == ["api"] and len(parts) == 2) or (parts[:1] == ["apis"] and len(parts) == 3):
            doc = api_resource_list(kl.reg, "" if parts[0] == "api" else parts[1], parts[-1])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self._send(200, doc)
        elif path == "/openapi/v3":
            self._send(200, openapi_v3_root(kl.reg))
        elif path.startswith("/openapi/v3/"):
            doc = openapi_v3_gv(kl.reg, path[len("/openapi/v3/"):])
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self._send(200, doc)
        elif path.startswith("/openapi/"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        elif path == "/":
            self._send(200, {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/readyz", "/version"]})
        else:
            return False
        return True

    def _route(self, parts):
        """-> (rd, version, ns, name, sub) or raises 404."""
        kl = self.server.kl
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            rd = kl.reg.lookup(group, version, rest[2])
            if rd is not None and rd.namespaced:
                ns, rest = rest[1], rest[2:]
        rd = kl.reg.lookup(group, version, rest[0])
        if rd is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and sub not in rd.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if name is not None and rd.namespaced and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rd, version, ns, name, sub

    def _resource(self, method, parts, q):
        kl = self.server.kl
        rd, version, ns, name, sub = self._route(parts)
        key_ns = ns or ""
        api = kl.api
        if method == "GET" and name is None:
            if q.get("watch") in ("1", "true", "True"):
                return self._watch(rd, version, ns, q)
            return self._list(rd, version, ns, q)
        if method == "GET":
            obj = kl.store.get(rd.gr, key_ns, name)
            if obj is None:
                raise not_found(rd, name)
            if sub == "scale":
                return self._send(200, api.scale_of(rd, obj))
            if sub == "eviction":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                               "requested resource")
            if sub == "log":
                return self._log(obj, q)
            if "as=Table" in (self.headers.get("Accept") or ""):
                return self._send(200, tables.table(rd, version, [api.present(rd, version, obj)],
                                                    obj["metadata"]["resourceVersion"]))
            return self._send(200, api.present(rd, version, obj))
        if method == "POST":
            if name is not None:
                if sub == "eviction":
                    api.evict(key_ns, name, self._json_body())
                    return self._send(201, {"kind": "Status", "apiVersion": "v1", "status": "Success",
                                            "metadata": {}, "code": 201})
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                               "requested resource")
            if rd.namespaced and ns is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            out = api.create(rd, version, key_ns, self._json_body())
            return self._send(201, api.present(rd, version, out))
        if name is None and method == "DELETE":
            return self._delete_collection(rd, version, ns, q)
        if name is None:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                           "requested resource")
        if method == "PUT":
            body = self._json_body()
            if sub == "scale":
                return self._send(200, api.set_scale(rd, version, key_ns, name, body))
            out = api.update(rd, version, key_ns, name, body, sub)
            return self._send(200, api.present(rd, version, out))
        if method == "PATCH":
            out = api.patch(rd, version, key_ns, name, self.headers.get("Content-Type"), self._body(), sub)
            if sub == "scale":
                return self._send(200, out)
            return self._send(200, api.present(rd, version, out))
        if method == "DELETE":
            opts = self._json_body() or {}
            for k in ("propagationPolicy", "gracePeriodSeconds", "orphanDependents"):
                if k in q:
                    v = q[k]
                    opts[k] = int(v) if k == "gracePeriodSeconds" else (v == "true" if k == "orphanDependents" else v)
            out = api.delete(rd, key_ns, name, opts)
            return self._send(200, api.present(rd, version, out))
        raise ApiError(405, "MethodNotAllowed", "method not allowed")

    def _selected(self, rd, ns, q):
        lsel = parse_label_selector(q.get("labelSelector", ""))
        fsel = parse_field_selector(q.get("fieldSelector", ""))

        def match(o):
            md = o.get("metadata") or {}
            if ns is not None and md.get("namespace", "") != ns:
                return False
            return labels_match(lsel, md.get("labels")) and fields_match(fsel, o)
        return match

    def _list(self, rd, version, ns, q):
        kl = self.server.kl
        match = self._selected(rd, ns, q)
        items, rv = kl.store.list(rd.gr, ns)
        items = sorted((o for o in items if match(o)),
                       key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        meta = {"resourceVersion": str(rv)}
        start = ""
        if q.get("continue"):
            try:
                tok = json.loads(base64.urlsafe_b64decode(q["continue"] + "==="))
                start, tok_rv = tok["start"], int(tok["rv"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid")
            if tok_rv < kl.store.compacted:
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                               "consistent list result. You can start a new list without the continue "
                               "parameter, or use the continue token in this response to retrieve the "
                               "remainder of the results.")
            items = [o for o in items if "%s/%s" % (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
        limit = int(q.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            items = items[:limit]
            tok = {"rv": rv, "start": "%s/%s" % (last.get("namespace", ""), last["name"])}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(tok).encode()).decode().rstrip("=")
            meta["remainingItemCount"] = 0
        items = [kl.api.present(rd, version, o) for o in items]
        if "as=Table" in (self.headers.get("Accept") or ""):
            t = tables.table(rd, version, items, rv)
            t["metadata"].update(meta)
            return self._send(200, t)
        self._send(200, {"kind": rd.kind + "List", "apiVersion": rd.api_version(version),
                         "metadata": meta, "items": items})

    def _delete_collection(self, rd, version, ns, q):
        kl = self.server.kl
        match = self._selected(rd, ns, q)
        items, _ = kl.store.list(rd.gr, ns)
        opts = self._json_body() or {}
        out = []
        for o in items:
            if match(o):
                try:
                    out.append(kl.api.delete(rd, o["metadata"].get("namespace", ""), o["metadata"]["name"], opts))
                except ApiError:
                    pass
        self._send(200, {"kind": rd.kind + "List", "apiVersion": rd.api_version(version),
                         "metadata": {"resourceVersion": str(kl.store.rv)},
                         "items": [kl.api.present(rd, version, o) for o in out if o]})

    # -- watch --
    def _chunk(self, obj):
        data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, rd, version, ns, q):
        kl = self.server.kl
        match = self._selected(rd, ns, q)
        rv_s = q.get("resourceVersion", "")
        try:
            start_rv = int(rv_s) if rv_s not in ("", "0") else None
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid resourceVersion %r" % rv_s)
        initial = []
        if start_rv is None:
            items, start_rv = kl.store.list(rd.gr, ns)
            initial = [o for o in items if match(o)]
        elif start_rv < kl.store.compacted:
            raise ApiError(410, "Expired", "too old resource version: %d (%d)" % (start_rv, kl.store.compacted + 1))
        timeout = float(q.get("timeoutSeconds") or random.randint(1800, 3600))
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true", "True")
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        as_table = "as=Table" in (self.headers.get("Accept") or "")

        def shown(o):
            o = kl.api.present(rd, version, o)
            return tables.table(rd, version, [o], o["metadata"].get("resourceVersion", "")) if as_table else o
        for o in initial:
            self._chunk({"type": "ADDED", "object": shown(o)})
        last = start_rv
        last_send = time.monotonic()
        bookmark_every = 1.0
        while not kl.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            kl.store.wait_after(last, min(left, 1.0))
            try:
                events = kl.store.events_after(last)
            except Gone:
                self._chunk({"type": "ERROR", "object": ApiError(
                    410, "Expired", "too old resource version: %d (%d)" % (last, kl.store.compacted + 1)).status()})
                break
            for ev in events:
                last = ev.rv
                if ev.gr != rd.gr:
                    continue
                etype = self._event_type(ev, match)
                if etype:
                    self._chunk({"type": etype, "object": shown(ev.obj)})
                    last_send = time.monotonic()
            if bookmarks and time.monotonic() - last_send >= bookmark_every:
                self._chunk({"type": "BOOKMARK", "object": {
                    "kind": rd.kind, "apiVersion": rd.api_version(version),
                    "metadata": {"resourceVersion": str(max(last, kl.store.rv if not events else last))}}})
                last_send = time.monotonic()
                bookmark_every = 10.0
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    @staticmethod
    def _event_type(ev, match):
        new_ok = match(ev.obj)
        if ev.type == "ADDED":
            return "ADDED" if new_ok else None
        if ev.type == "DELETED":
            return "DELETED" if new_ok else None
        old_ok = ev.old is not None and match(ev.old)
        if new_ok and old_ok:
            return "MODIFIED"
        if new_ok:
            return "ADDED"
        if old_ok:
            return "DELETED"
        return None

    # -- pods/log --
    def _log(self, pod, q):
        kl = self.server.kl
        md = pod["metadata"]
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        cname = q.get("container") or (containers[0] if containers else None)
        if cname not in containers:
            raise ApiError(400, "BadRequest", 'container %s is not valid for pod %s' % (cname, md["name"]))
        path = kl.log_path(md.get("namespace", ""), md["name"], cname, q.get("previous") in ("true", "1"))
        if not path or not os.path.exists(path):
            if q.get("previous") in ("true", "1"):
                raise ApiError(400, "BadRequest", 'previous terminated container "%s" in pod "%s" not found'
                               % (cname, md["name"]))
            raise ApiError(400, "BadRequest", 'container "%s" in pod "%s" is waiting to start: '
                           'ContainerCreating' % (cname, md["name"]))
        with open(path, "rb") as f:
            data = f.read()
        if q.get("tailLines"):
            n = int(q["tailLines"])
            lines = data.splitlines(True)
            data = b"".join(lines[-n:]) if n > 0 else b""
        if q.get("limitBytes"):
            data = data[:int(q["limitBytes"])]
        if q.get("follow") not in ("true", "1"):
            return self._send(200, data, "text/plain")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        pos = os.path.getsize(path) if path and os.path.exists(path) else 0
        while not kl.stopping.is_set():
            cur = kl.store.get("/pods", md.get("namespace", ""), md["name"])
            if cur is None or cur["metadata"].get("uid") != md.get("uid") or \
                    (cur.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                break
            time.sleep(0.5)
            if path and os.path.exists(path) and os.path.getsize(path) > pos:
                with open(path, "rb") as f:
                    f.seek(pos)
                    more = f.read()
                pos += len(more)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(more), more))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _TLSHTTPServer(_HTTPServer):
    """HTTPS: accepted sockets are wrapped here, the handshake happens in Handler.setup."""

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.ssl_context.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        import sys
        e = sys.exc_info()[1]
        if isinstance(e, (ssl.SSLError, OSError)):  # failed handshakes, clients going away
            if self.kl.verbose:
                self.kl.log("tls %s: %r" % (client_address[0], e))
            return
        super().handle_error(request, client_address)


class ApiServer:
    """A running API server: .url, .host, .port, .token, .store, .api, .stop()."""

    def __init__(self, state_dir, host="127.0.0.1", port=0, window=None):
        self.state_dir = state_dir
        self.host = host
        self.verbose = os.environ.get("KUBE_LITE_VERBOSE") == "1"
        self.store = Store(window or int(os.environ.get("KUBE_LITE_WATCH_WINDOW", "1000")))
        self.reg = Registry()
        self.api = Api(self.store, self.reg)
        self.stopping = threading.Event()
        self.token = "".join(random.choice(string.ascii_letters + string.digits) for _ in range(32))
        self.servers = []
        self._log_lock = threading.Lock()
        self.port = self._serve(host, port)
        self.url = "http://%s:%d" % (host, self.port)
        self._bootstrap()
        self.gc = gc.start(self)

    def log(self, msg):
        with self._log_lock:
            print("%s apiserver: %s" % (time.strftime("%H:%M:%S"), msg), flush=True)

    def _serve(self, host, port, ssl_context=None):
        if ssl_context is None:
            srv = _HTTPServer((host, port), Handler)
        else:
            srv = _TLSHTTPServer((host, port), Handler)
            srv.ssl_context = ssl_context
        srv.kl = self
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.5},
                             name="apiserver-%s" % host, daemon=True)
        t.start()
        self.servers.append(srv)
        return srv.server_address[1]

    def listen_also(self, host, port=None):
        """Serve the same API on another address (e.g. the pod bridge IP); returns the port."""
        return self._serve(host, self.port if port is None else port)

    def listen_tls(self, host, port, ssl_context):
        """Serve the same API over HTTPS on host:port (0: any free port); returns the port."""
        return self._serve(host, port, ssl_context)

    def _bootstrap(self):
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.api.create(self.reg.lookup("", "v1", "namespaces"), "v1", "", {"metadata": {"name": ns}})

    def log_path(self, ns, pod, container, previous=False):
        """Where the kubelet keeps a container's log (kubelet.log_path if B provides it)."""
        try:
            from . import kubelet
            fn = getattr(kubelet, "log_path", None)
            if fn:
                return fn(self.state_dir, ns, pod, container, previous)
        except ImportError:
            pass
        base = os.path.join(self.state_dir, "pods")
        suffix = ".previous.log" if previous else ".log"
        for cand in (os.path.join(base, "%s_%s" % (ns, pod), container + suffix),
                     os.path.join(base, ns, pod, container + suffix),
                     os.path.join(base, "%s_%s" % (ns, pod), "logs", container + suffix),
                     os.path.join(base, ns, pod, "logs", container + suffix)):
            if os.path.exists(cand):
                return cand
        return None

    def stop(self):
        self.stopping.set()
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()
        with self.store.cond:
            self.store.cond.notify_all()


def start(state_dir, host="127.0.0.1", port=0):
    return ApiServer(state_dir, host, port)
