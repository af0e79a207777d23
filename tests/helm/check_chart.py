#!/usr/bin/python3
"""tests/helm/check_chart.py: static checks of charts/cetcd-operator (no cluster needed).

  - crds/etcdclusters.cetcd.io.yaml is byte-identical to manifests/crd/ (else: the cp to run);
    the operator's RBAC rules and Lease rules equal manifests/rbac/'s; every flag the
    Deployment passes is one controller/main.c accepts;
  - Chart.yaml (v2, cetcd-operator 0.1.0/0.1.0), every value documented in the chart's README;
  - renders: defaults, tests/helm/values-full.yaml (every value set) and --set variants for the
    other branch of each switch; every document parses as YAML and passes kubeconform-like
    checks of its kind (field names and types, names, labels, quantities, durations, enums),
    the EtcdCluster against the CRD's own schema and CEL rules (kube-lite's schema.py); the
    objects agree with each other (Service -> pods and named port, bindings -> roles and the
    ServiceAccount, ServiceMonitor -> Service, probes -> ports);
  - each value of values-full.yaml reaches the object it configures; the alert rules are the
    runbook's six (监控告警) over {job="<etcdMonitoring.job>"}, with Prometheus' own
    {{ $labels.instance }} intact; invalid values fail with their message;
  - the default and full renders equal tests/helm/golden/*.yaml (what Helm 3 must print too;
    on an intended change the message gives the command that rewrites them);
  - the Grafana dashboard dashboards/cetcd.json: Grafana's JSON model (schemaVersion >= 36, a
    prometheus `datasource` variable every panel and query uses, `job` and `instance` variables
    every query selects by, unique panel ids, panels on the 24-column grid), the seeds' panels
    (leader, DB size, WAL fsync p99, peer RTT p99); the grafanaDashboard ConfigMap holds it
    unchanged; manifests/monitoring/ (dashboard ConfigMap, PrometheusRule) is what
    monitoring_manifests() generates from the chart (its dashboard file and its PrometheusRule
    template with the runbook's job "etcd"): one source, no hand copies. The metric names the
    dashboard queries are checked against a real /metrics scrape by
    tests/integration/metrics.sh (metrics_check.py --dashboard).
Prints `ok N - ...` / `not ok N - ...` and `N passed, M failed` (numbering from $T_NUM_START);
exit 1 on any failure.
`check_chart.py --sync` instead brings the chart in line with manifests/ (after a change of the
CRD or of the operator's RBAC there): copies the CRD, copies the rules of
manifests/rbac/cluster_role.yaml and leader_election_role.yaml into the defines of
templates/_helpers.tpl, regenerates manifests/monitoring/ from the chart's dashboard and alert
rules (the other direction: the chart is their source), rewrites the goldens, and prints what
changed (review it with git diff).
"""
import difflib
import importlib.machinery
import json
import importlib.util
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(ROOT, "charts", "cetcd-operator")
sys.path.insert(0, os.path.join(ROOT, "hack", "kube-lite"))
from kubelite import schema as kl_schema  # noqa: E402

_loader = importlib.machinery.SourceFileLoader("helm_render", os.path.join(ROOT, "hack", "helm-render"))
_spec = importlib.util.spec_from_loader("helm_render", _loader)
hr = importlib.util.module_from_spec(_spec)
_loader.exec_module(hr)

sys.path.insert(0, HERE)
from tap import finish, report  # noqa: E402

CRD_SRC = "manifests/crd/etcdclusters.cetcd.io.yaml"
CRD_DST = "charts/cetcd-operator/crds/etcdclusters.cetcd.io.yaml"
FULL = os.path.join(HERE, "values-full.yaml")


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def render(release="cetcd-operator", ns="cetcd-system", files=(), sets=(), crds=False):
    return hr.render_chart(CHART, files, sets, release, ns, crds)


def docs_of(text):
    out = []
    for chunk in re.split(r"(?m)^---\n", text):
        m = re.match(r"# Source: (\S+)\n", chunk)
        if not m:
            continue
        obj = yaml.safe_load(chunk[m.end():])
        if obj is not None:
            out.append((m.group(1), obj))
    return out


def find(docs, kind, name=None):
    for _, o in docs:
        if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name):
            return o
    return None


def dig(o, *path):
    for p in path:
        if isinstance(o, dict):
            o = o.get(p)
        elif isinstance(o, list) and isinstance(p, int) and p < len(o):
            o = o[p]
        else:
            return None
    return o


# --- kubeconform-like structure checks ---------------------------------------------------------
# A schema is: "str", "int", "bool", "qty" (resource quantity), "dur" (Prometheus duration),
# "port" (int 1..65535), "intorstr", ("enum", values), ("list", S), ("map", S) (string keys),
# ("obj", {field: S}, required_fields) or "any".

QTY = re.compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
DUR = re.compile(r"^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def O(fields, required=()):
    return ("obj", fields, tuple(required))


def L(s):
    return ("list", s)


def M(s):
    return ("map", s)


def E(*vals):
    return ("enum", vals)


STRMAP = M("str")
SELECTOR = O({"matchLabels": STRMAP, "matchExpressions": L("any")})
META = O({"name": "str", "namespace": "str", "labels": STRMAP, "annotations": STRMAP}, ["name"])
QTYMAP = M("qty")
RESOURCES = O({"requests": QTYMAP, "limits": QTYMAP})
PROBE = O({"httpGet": O({"path": "str", "port": "intorstr", "scheme": E("HTTP", "HTTPS")}, ["port"]),
           "initialDelaySeconds": "int", "periodSeconds": "int", "failureThreshold": "int",
           "timeoutSeconds": "int", "successThreshold": "int"})
CONTAINER = O({
    "name": "str", "image": "str", "imagePullPolicy": E("Always", "IfNotPresent", "Never"),
    "command": L("str"), "args": L("str"),
    "env": L(O({"name": "str", "value": "str",
                "valueFrom": O({"fieldRef": O({"fieldPath": "str", "apiVersion": "str"}, ["fieldPath"])})},
               ["name"])),
    "ports": L(O({"name": "str", "containerPort": "port", "protocol": E("TCP", "UDP", "SCTP")}, ["containerPort"])),
    "livenessProbe": PROBE, "readinessProbe": PROBE, "resources": RESOURCES,
    "securityContext": O({"allowPrivilegeEscalation": "bool", "readOnlyRootFilesystem": "bool",
                          "runAsNonRoot": "bool", "runAsUser": "int", "runAsGroup": "int",
                          "privileged": "bool",
                          "capabilities": O({"drop": L("str"), "add": L("str")}),
                          "seccompProfile": O({"type": E("RuntimeDefault", "Localhost", "Unconfined")})}),
}, ["name", "image"])
TOLERATION = O({"key": "str", "operator": E("Exists", "Equal"), "value": "str",
                "effect": E("NoSchedule", "PreferNoSchedule", "NoExecute"), "tolerationSeconds": "int"})
POD_SPEC = O({
    "serviceAccountName": "str", "enableServiceLinks": "bool", "terminationGracePeriodSeconds": "int",
    "imagePullSecrets": L(O({"name": "str"}, ["name"])), "priorityClassName": "str",
    "securityContext": O({"runAsNonRoot": "bool", "runAsUser": "int", "runAsGroup": "int", "fsGroup": "int",
                          "seccompProfile": O({"type": E("RuntimeDefault", "Localhost", "Unconfined")})}),
    "containers": L(CONTAINER), "nodeSelector": STRMAP, "tolerations": L(TOLERATION),
    "affinity": O({"nodeAffinity": "any", "podAffinity": "any", "podAntiAffinity": "any"}),
}, ["containers"])
RULE = O({"apiGroups": L("str"), "resources": L("str"), "resourceNames": L("str"),
          "verbs": L(E("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"))},
         ["verbs"])
ROLE = O({"apiVersion": "str", "kind": "str", "metadata": META, "rules": L(RULE)}, ["rules"])
BINDING = O({"apiVersion": "str", "kind": "str", "metadata": META,
             "roleRef": O({"apiGroup": E("rbac.authorization.k8s.io"), "kind": E("Role", "ClusterRole"), "name": "str"},
                          ["apiGroup", "kind", "name"]),
             "subjects": L(O({"kind": E("ServiceAccount", "User", "Group"), "name": "str", "namespace": "str",
                              "apiGroup": "str"}, ["kind", "name"]))}, ["roleRef", "subjects"])
NS_SELECTOR = O({"matchNames": L("str"), "any": "bool"})
KINDS = {
    "ServiceAccount": ("v1", True, O({"apiVersion": "str", "kind": "str", "metadata": META,
                                      "automountServiceAccountToken": "bool"})),
    "Service": ("v1", True, O({"apiVersion": "str", "kind": "str", "metadata": META, "spec": O({
        "type": E("ClusterIP", "NodePort", "LoadBalancer"), "selector": STRMAP,
        "ports": L(O({"name": "str", "port": "port", "targetPort": "intorstr", "protocol": E("TCP", "UDP", "SCTP")},
                     ["port"]))}, ["ports"])}, ["spec"])),
    "Deployment": ("apps/v1", True, O({"apiVersion": "str", "kind": "str", "metadata": META, "spec": O({
        "replicas": "int", "selector": SELECTOR,
        "template": O({"metadata": O({"labels": STRMAP, "annotations": STRMAP}), "spec": POD_SPEC}, ["spec"])},
        ["selector", "template"])}, ["spec"])),
    "ClusterRole": ("rbac.authorization.k8s.io/v1", False, ROLE),
    "Role": ("rbac.authorization.k8s.io/v1", True, ROLE),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io/v1", False, BINDING),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", True, BINDING),
    "ServiceMonitor": ("monitoring.coreos.com/v1", True, O({"apiVersion": "str", "kind": "str", "metadata": META,
        "spec": O({"namespaceSelector": NS_SELECTOR, "selector": SELECTOR, "jobLabel": "str",
                   "endpoints": L(O({"port": "str", "path": "str", "interval": "dur", "scrapeTimeout": "dur"}))},
                  ["selector", "endpoints"])}, ["spec"])),
    "PodMonitor": ("monitoring.coreos.com/v1", True, O({"apiVersion": "str", "kind": "str", "metadata": META,
        "spec": O({"namespaceSelector": NS_SELECTOR, "selector": SELECTOR,
                   "podMetricsEndpoints": L(O({"port": "str", "path": "str", "interval": "dur",
                                              "relabelings": L(O({"sourceLabels": L("str"), "targetLabel": "str",
                                                                  "replacement": "str", "regex": "str",
                                                                  "action": "str", "separator": "str"}))}))},
                  ["selector", "podMetricsEndpoints"])}, ["spec"])),
    "PrometheusRule": ("monitoring.coreos.com/v1", True, O({"apiVersion": "str", "kind": "str", "metadata": META,
        "spec": O({"groups": L(O({"name": "str", "interval": "dur",
                                  "rules": L(O({"alert": "str", "record": "str", "expr": "str", "for": "dur",
                                                "labels": STRMAP, "annotations": STRMAP}, ["expr"]))},
                                 ["name", "rules"]))}, ["groups"])}, ["spec"])),
    "EtcdCluster": ("cetcd.io/v1alpha1", True, "any"),
    "ConfigMap": ("v1", True, O({"apiVersion": "str", "kind": "str", "metadata": META, "data": STRMAP}, ["data"])),
}


def check_schema(s, v, path, out):
    if s == "any":
        return
    if isinstance(s, str):
        ok = {"str": lambda: isinstance(v, str),
              "int": lambda: isinstance(v, int) and not isinstance(v, bool),
              "bool": lambda: isinstance(v, bool),
              "qty": lambda: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and QTY.match(v)),
              "dur": lambda: isinstance(v, str) and v != "" and DUR.match(v),
              "port": lambda: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535,
              "intorstr": lambda: isinstance(v, (int, str)) and not isinstance(v, bool)}[s]()
        if not ok:
            out.append("%s: %r is not a valid %s" % (path, v, s))
        return
    tag = s[0]
    if tag == "enum":
        if v not in s[1]:
            out.append("%s: %r is not one of %s" % (path, v, ", ".join(map(str, s[1]))))
    elif tag == "list":
        if not isinstance(v, list):
            out.append("%s: not a list" % path)
            return
        for i, x in enumerate(v):
            check_schema(s[1], x, "%s[%d]" % (path, i), out)
    elif tag == "map":
        if not isinstance(v, dict):
            out.append("%s: not a map" % path)
            return
        for k, x in v.items():
            if not isinstance(k, str):
                out.append("%s: key %r is not a string" % (path, k))
            check_schema(s[1], x, "%s.%s" % (path, k), out)
    elif tag == "obj":
        if not isinstance(v, dict):
            out.append("%s: not an object" % path)
            return
        for k, x in v.items():
            if k not in s[1]:
                out.append("%s: unknown field %r" % (path, k))
            else:
                check_schema(s[1][k], x, "%s.%s" % (path, k) if path else k, out)
        for k in s[2]:
            if k not in v:
                out.append("%s: missing required field %r" % (path or "<root>", k))


def check_meta(o, namespaced, out):
    md = o.get("metadata") or {}
    name = md.get("name", "")
    rx = DNS_LABEL if o.get("kind") == "Service" else DNS_SUBDOMAIN
    limit = 63 if o.get("kind") == "Service" else 253
    if not isinstance(name, str) or not rx.match(name) or len(name) > limit:
        out.append("metadata.name %r is not a valid name" % name)
    if namespaced and not (isinstance(md.get("namespace"), str) and DNS_LABEL.match(md["namespace"])):
        out.append("metadata.namespace missing or invalid on a namespaced kind")
    if not namespaced and "namespace" in md:
        out.append("metadata.namespace on a cluster-scoped kind")
    for where in ("labels", "annotations"):
        for k, v in (md.get(where) or {}).items():
            prefix, _, nm = k.rpartition("/")
            if (prefix and (not DNS_SUBDOMAIN.match(prefix) or len(prefix) > 253)) or not LABEL_NAME.match(nm) \
                    or len(nm) > 63:
                out.append("metadata.%s key %r is invalid" % (where, k))
            if where == "labels" and (not isinstance(v, str) or not LABEL_VALUE.match(v) or len(v) > 63):
                out.append("metadata.labels[%s] value %r is invalid" % (k, v))


def crd_schema():
    crd = yaml.safe_load(read(CRD_SRC))
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def check_etcdcluster(o, out):
    import copy
    sch = crd_schema()
    obj = copy.deepcopy(o)
    dropped = []
    kl_schema.prune(sch, obj, dropped=dropped)
    if dropped:
        out.append("fields the CRD does not know: %s" % ", ".join(dropped))
    causes = kl_schema.validate(sch, obj)
    tree, problems = kl_schema.compile_validations(sch)
    if tree is not None and not problems:
        causes += kl_schema.validate_rules(tree, obj)
    out += ["%s: %s" % (c["field"], c["message"]) for c in causes]


def check_doc(o):
    out = []
    kind = o.get("kind")
    if kind not in KINDS:
        return ["kind %r is not one the chart should make" % kind]
    api, namespaced, s = KINDS[kind]
    if o.get("apiVersion") != api:
        out.append("apiVersion %r, want %s" % (o.get("apiVersion"), api))
    check_schema(s, o, "", out)
    check_meta(o, namespaced, out)
    if kind == "EtcdCluster":
        check_etcdcluster(o, out)
    return out


def operator_flags():
    """The long options controller/main.c accepts."""
    return set(re.findall(r'\{"([a-z][a-z-]+)", (?:required|optional|no)_argument', read("controller/main.c")))


def check_consistency(docs, release_ns):
    out = []
    dep = find(docs, "Deployment")
    if dep is None:
        return ["no Deployment"]
    pod = dep["spec"]["template"]
    plabels = pod["metadata"]["labels"]
    for k, v in dep["spec"]["selector"]["matchLabels"].items():
        if plabels.get(k) != v:
            out.append("Deployment selector %s=%s not on its pods" % (k, v))
    c = pod["spec"]["containers"][0]
    port_names = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    for probe in ("livenessProbe", "readinessProbe"):
        p = dig(c, probe, "httpGet", "port")
        if isinstance(p, str) and p not in port_names:
            out.append("%s port %s is not a container port" % (probe, p))
    flags = operator_flags()
    for a in c.get("args", []):
        name = a[2:].split("=", 1)[0]
        if not a.startswith("--") or name not in flags:
            out.append("arg %r is not a flag of cetcd-operator (controller/main.c: %s)" % (a, ", ".join(sorted(flags))))
    sa_name = pod["spec"].get("serviceAccountName")
    sa = find(docs, "ServiceAccount")
    if sa is not None and sa["metadata"]["name"] != sa_name:
        out.append("ServiceAccount %s is not the pods' %s" % (sa["metadata"]["name"], sa_name))
    for _, o in docs:
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            ref = o["roleRef"]
            role = find(docs, ref["kind"], ref["name"])
            if role is None:
                out.append("%s %s refers to a %s %s the chart does not make" % (o["kind"], o["metadata"]["name"],
                                                                                  ref["kind"], ref["name"]))
            elif o["kind"] == "RoleBinding" and role["metadata"]["namespace"] != o["metadata"]["namespace"]:
                out.append("RoleBinding %s and its Role are in different namespaces" % o["metadata"]["name"])
            for s in o["subjects"]:
                if s != {"kind": "ServiceAccount", "name": sa_name, "namespace": release_ns}:
                    out.append("%s %s subject %r is not the operator's ServiceAccount" % (o["kind"],
                                                                                        o["metadata"]["name"], s))
    svc = find(docs, "Service")
    if svc is not None:
        for k, v in svc["spec"]["selector"].items():
            if plabels.get(k) != v:
                out.append("Service selector %s=%s matches no operator pod" % (k, v))
        for p in svc["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in port_names:
                out.append("Service targetPort %s is not a container port" % p["targetPort"])
    sm = find(docs, "ServiceMonitor")
    if sm is not None:
        if svc is None:
            out.append("ServiceMonitor without the metrics Service")
        else:
            for k, v in sm["spec"]["selector"]["matchLabels"].items():
                if svc["metadata"]["labels"].get(k) != v:
                    out.append("ServiceMonitor selector %s=%s does not match the Service" % (k, v))
            names = [p.get("name") for p in svc["spec"]["ports"]]
            for e in sm["spec"]["endpoints"]:
                if e.get("port") not in names:
                    out.append("ServiceMonitor endpoint port %s is not a Service port" % e.get("port"))
            if svc["metadata"]["namespace"] not in dig(sm, "spec", "namespaceSelector", "matchNames"):
                out.append("ServiceMonitor namespaceSelector misses the Service's namespace")
    return out


def check_render(name, text, release_ns):
    docs = docs_of(text)
    problems = []
    for src, o in docs:
        problems += ["%s %s (%s): %s" % (o.get("kind"), dig(o, "metadata", "name"), src, p) for p in check_doc(o)]
    report("%s: %d documents, each valid for its kind" % (name, len(docs)), docs and not problems, "\n".join(problems))
    problems = check_consistency(docs, release_ns)
    report("%s: the objects agree (selectors, ports, roles, bindings, ServiceAccount, flags)" % name,
           not problems, "\n".join(problems))
    return docs


# --- checks -------------------------------------------------------------------------------------

def check_sync():
    a, b = os.path.join(ROOT, CRD_SRC), os.path.join(ROOT, CRD_DST)
    same = os.path.exists(b) and open(a, "rb").read() == open(b, "rb").read()
    report("the chart's CRD is byte-identical to %s" % CRD_SRC, same,
           "%s differs from %s (the CRD changed); fix: cp %s %s\n(or tests/helm/check_chart.py --sync: "
           "CRD, RBAC rules and goldens at once)" % (CRD_DST, CRD_SRC, CRD_SRC, CRD_DST))
    docs = docs_of(render())
    for src, kind, name, define in (("manifests/rbac/cluster_role.yaml", "ClusterRole", None, "cetcd-operator.rules"),
                                    ("manifests/rbac/leader_election_role.yaml", "Role",
                                     "cetcd-operator-leader-election", "cetcd-operator.leaseRules")):
        want = yaml.safe_load(read(src))["rules"]
        got = dig(find(docs, kind, name), "rules")
        diff = difflib.unified_diff(yaml.safe_dump(want).splitlines(), yaml.safe_dump(got).splitlines(),
                                    src, "chart", lineterm="", n=2)
        report("the chart's %s rules equal %s's" % (kind, src), got == want,
               "\n".join(diff) + "\nfix: tests/helm/check_chart.py --sync (copies the rules of %s into "
               "charts/cetcd-operator/templates/_helpers.tpl, define \"%s\", and rewrites the goldens)"
               % (src, define))


RULE_DEFINES = (("manifests/rbac/cluster_role.yaml", "cetcd-operator.rules"),
                ("manifests/rbac/leader_election_role.yaml", "cetcd-operator.leaseRules"))
HELPERS = "charts/cetcd-operator/templates/_helpers.tpl"
GOLDENS = (("default", "cetcd-operator", "cetcd-system", []), ("full", "cetcd", "helm-full", [FULL]))


def rules_text(src):
    """The `rules:` list of a manifest, as written there, one indent level out."""
    body = read(src).split("\nrules:\n", 1)[1]
    lines = []
    for line in body.rstrip("\n").split("\n"):
        if line and not line.startswith("  "):
            break
        lines.append(line[2:])
    return "\n".join(lines) + "\n"


def write(rel, text):
    with open(os.path.join(ROOT, rel), "w", encoding="utf-8") as f:
        f.write(text)


def sync():
    changed = []
    if read(CRD_SRC) != (read(CRD_DST) if os.path.exists(os.path.join(ROOT, CRD_DST)) else None):
        write(CRD_DST, read(CRD_SRC))
        changed.append(CRD_DST)
    helpers = read(HELPERS)
    for src, name in RULE_DEFINES:
        head = '{{- define "%s" -}}\n' % name
        start = helpers.index(head) + len(head)
        end = helpers.index("{{- end }}", start)
        helpers = helpers[:start] + rules_text(src) + helpers[end:]
    if helpers != read(HELPERS):
        write(HELPERS, helpers)
        changed.append(HELPERS)
    for rel, text in monitoring_manifests().items():
        if not os.path.exists(os.path.join(ROOT, rel)) or read(rel) != text:
            os.makedirs(os.path.dirname(os.path.join(ROOT, rel)), exist_ok=True)
            write(rel, text)
            changed.append(rel)
    for name, release, ns, files in GOLDENS:
        rel = "tests/helm/golden/%s.yaml" % name
        text = render(release, ns, files)
        if not os.path.exists(os.path.join(ROOT, rel)) or read(rel) != text:
            write(rel, text)
            changed.append(rel)
    print("synced with manifests/: %s" % (", ".join(changed) if changed else "nothing changed"))


def leaf_paths(v, prefix=""):
    if isinstance(v, dict) and v:
        for k, x in v.items():
            yield from leaf_paths(x, prefix + k + ".")
    else:
        yield prefix[:-1]


def check_chart_meta():
    meta = yaml.safe_load(read("charts/cetcd-operator/Chart.yaml"))
    report("Chart.yaml: apiVersion v2, name cetcd-operator, version 0.1.0, appVersion 0.1.0",
           (meta.get("apiVersion"), meta.get("name"), meta.get("version"), meta.get("appVersion")) ==
           ("v2", "cetcd-operator", "0.1.0", "0.1.0"), repr(meta))
    vals = yaml.safe_load(read("charts/cetcd-operator/values.yaml"))
    readme = read("charts/cetcd-operator/README.md")
    rows = set(re.findall(r"(?m)^\| `([^`]+)` \|", readme))

    def documented(p):  # the value or an object holding it has a row
        parts = p.split(".")
        return any(".".join(parts[:i]) in rows for i in range(1, len(parts) + 1))
    missing = [p for p in leaf_paths(vals) if not documented(p)]
    report("every value of values.yaml is documented in the chart's README.md", not missing,
           "not in README.md: " + ", ".join(missing))
    full = yaml.safe_load(open(FULL).read())
    by_set = ("etcdCluster.backup", "etcdCluster.restore", "etcdCluster.tls", "etcdCluster.auth")
    unset = [p for p in leaf_paths(vals) if dig(full, *p.split(".")) is None and p not in by_set]
    report("tests/helm/values-full.yaml sets every value", not unset, "not set: " + ", ".join(unset))


def check_default():
    text = render()
    docs = check_render("defaults", text, "cetcd-system")
    kinds = sorted(o["kind"] for _, o in docs)
    report("defaults: ServiceAccount, ClusterRole(Binding), Lease Role(Binding), metrics Service, Deployment",
           kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
                            "Deployment"]), kinds)
    dep = find(docs, "Deployment")
    args = dig(dep, "spec", "template", "spec", "containers", 0, "args")
    report("defaults: the operator's flags as manifests/operator/deployment.yaml plus the Lease id",
           args == ["--leader-elect", "--leader-election-id=cetcd-operator", "--metrics-addr=:8080", "--workers=2",
                    "--log-level=info"], args)
    man = yaml.safe_load(read("manifests/operator/deployment.yaml"))
    mc, cc = dig(man, "spec", "template", "spec", "containers", 0), dig(dep, "spec", "template", "spec", "containers", 0)
    same = [k for k in ("image", "env", "ports", "livenessProbe", "readinessProbe", "resources", "securityContext")
            if mc.get(k) != cc.get(k)]
    same += [k for k in ("securityContext", "serviceAccountName", "enableServiceLinks", "terminationGracePeriodSeconds")
             if dig(man, "spec", "template", "spec", k) != dig(dep, "spec", "template", "spec", k)]
    report("defaults: the operator container and pod equal manifests/operator/deployment.yaml's", not same,
           "differ: %s" % same)
    golden("default", text, "hack/helm-render cetcd-operator charts/cetcd-operator -n cetcd-system")


def golden(name, text, cmd):
    path = os.path.join(HERE, "golden", name + ".yaml")
    want = open(path).read() if os.path.exists(path) else ""
    diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), "golden", "rendered", n=1))
    report("%s render equals tests/helm/golden/%s.yaml" % (name, name), text == want,
           "\n".join(diff.splitlines()[:40]) + "\nif the change is intended: %s > tests/helm/golden/%s.yaml" % (cmd, name))


RUNBOOK_ALERTS = [
    ("EtcdMembersMismatch", "etcd_server_has_leader{J} == 0", "1m", "critical", "etcd 集群没有 Leader", True),
    ("EtcdHighLeaderChanges", "increase(etcd_server_leader_changes_seen_total{J}[1h]) > 3", "5m", "warning",
     "etcd Leader 变更频繁", False),
    ("EtcdBackendQuotaLowSpace", "(etcd_mvcc_db_total_size_in_bytes{J} / etcd_server_quota_backend_bytes{J}) > 0.8",
     "5m", "warning", "etcd 存储配额使用率高", True),
    ("EtcdHighCommitDurations",
     "histogram_quantile(0.99, rate(etcd_disk_wal_fsync_duration_seconds_bucket{J}[5m])) > 0.5", "5m", "warning",
     "etcd WAL fsync 延迟高", True),
    ("EtcdHighPeerRTT",
     "histogram_quantile(0.99, rate(etcd_network_peer_round_trip_time_seconds_bucket{J}[5m])) > 0.15", "5m",
     "warning", "etcd Peer RTT 延迟高", True),
    ("EtcdHighNumberOfFailedProposals", "increase(etcd_server_proposals_failed_total{J}[1h]) > 5", "5m", "warning",
     "etcd 提案失败数量高", True),
]


def check_full():
    text = render("cetcd", "helm-full", [FULL])
    docs = check_render("values-full.yaml", text, "helm-full")
    srcs = {s.rsplit("/", 1)[-1] for s, _ in docs}
    tpls = {f for f in os.listdir(os.path.join(CHART, "templates")) if not f.startswith("_") and f != "NOTES.txt"}
    report("values-full.yaml: every template renders something", tpls <= srcs, "silent: %s" % sorted(tpls - srcs))
    dep = find(docs, "Deployment")
    pod = dig(dep, "spec", "template")
    c = dig(pod, "spec", "containers", 0)
    svc, sa = find(docs, "Service"), find(docs, "ServiceAccount")
    sm, pm, pr = find(docs, "ServiceMonitor"), find(docs, "PodMonitor"), find(docs, "PrometheusRule")
    ec = find(docs, "EtcdCluster")
    role, rb = find(docs, "Role", "cetcd-op-full"), find(docs, "RoleBinding", "cetcd-op-full")
    lease = find(docs, "Role", "cetcd-op-full-leader-election")
    expect = [
        ("fullnameOverride names the objects", dep["metadata"]["name"] == "cetcd-op-full"),
        ("nameOverride is the name label", dep["metadata"]["labels"]["app.kubernetes.io/name"] == "cetcdop"),
        ("image.repository/tag", c["image"] == "cetcd-operator:0.1.0"),
        ("image.pullPolicy", c["imagePullPolicy"] == "Always"),
        ("imagePullSecrets", pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]),
        ("replicaCount", dep["spec"]["replicas"] == 2),
        ("leaderElection.enabled: --leader-elect with the release's Lease id",
         c["args"][:2] == ["--leader-elect", "--leader-election-id=cetcd-op-full"]),
        ("leaderElection.enabled: the Lease Role in the release namespace",
         lease is not None and lease["metadata"]["namespace"] == "helm-full"),
        ("watchNamespace: --namespace", "--namespace=helm-full-clusters" in c["args"]),
        ("watchNamespace: a Role and RoleBinding there, no ClusterRole",
         role is not None and role["metadata"]["namespace"] == "helm-full-clusters" and rb is not None
         and find(docs, "ClusterRole") is None and find(docs, "ClusterRoleBinding") is None),
        ("rbac.create", role is not None),
        ("serviceAccount.name and annotations",
         sa["metadata"]["name"] == "cetcd-op-sa" and pod["spec"]["serviceAccountName"] == "cetcd-op-sa"
         and sa["metadata"]["annotations"] == {"example.com/role": "operator"}),
        ("metrics.port: flag, container port", "--metrics-addr=:8081" in c["args"]
         and c["ports"] == [{"name": "metrics", "containerPort": 8081, "protocol": "TCP"}]),
        ("metrics.service: type, port, annotations",
         svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["port"] == 9090
         and svc["metadata"]["annotations"] == {"example.com/scrape": "true"}),
        ("metrics.serviceMonitor: interval, scrapeTimeout, labels",
         sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}]
         and sm["metadata"]["labels"]["release"] == "prometheus"),
        ("etcdMonitoring.podMonitor: member pods of watchNamespace under job etcdMonitoring.job",
         dig(pm, "spec", "namespaceSelector") == {"matchNames": ["helm-full-clusters"]}
         and dig(pm, "spec", "selector", "matchLabels") == {"app.kubernetes.io/name": "cetcd",
                                                            "app.kubernetes.io/managed-by": "cetcd-operator"}
         and dig(pm, "spec", "podMetricsEndpoints", 0, "interval") == "20s"
         and {"targetLabel": "job", "replacement": "cetcd"} in dig(pm, "spec", "podMetricsEndpoints", 0, "relabelings")
         and pm["metadata"]["labels"]["release"] == "prometheus"),
        ("prometheusRule.labels", pr["metadata"]["labels"]["release"] == "prometheus"),
        ("prometheusRule.additionalRules appended",
         dig(pr, "spec", "groups", 0, "rules")[-1]["alert"] == "CetcdOperatorDown"),
        ("resources", c["resources"] == {"requests": {"cpu": "20m", "memory": "24Mi"},
                                         "limits": {"cpu": "500m", "memory": "96Mi"}}),
        ("nodeSelector", pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}),
        ("tolerations", pod["spec"]["tolerations"][0]["key"] == "dedicated"),
        ("affinity", "nodeAffinity" in pod["spec"]["affinity"]),
        ("priorityClassName", pod["spec"]["priorityClassName"] == "cetcd-helm-test"),
        ("podAnnotations", pod["metadata"]["annotations"] == {"example.com/note": "helm test"}),
        ("podLabels (with the chart's labels)", pod["metadata"]["labels"]["team"] == "storage"
         and pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "cetcd"),
        ("podSecurityContext", pod["spec"]["securityContext"]["fsGroup"] == 10002),
        ("securityContext", c["securityContext"]["runAsNonRoot"] is True),
        ("logLevel", "--log-level=debug" in c["args"]),
        ("workers", "--workers=3" in c["args"]),
        ("etcdCluster: name, namespace, size, version, image",
         ec["metadata"] == dict(ec["metadata"], name="etcd-full", namespace="helm-full-clusters")
         and ec["spec"]["size"] == 3 and ec["spec"]["version"] == "0.1.0" and ec["spec"]["image"] == "cetcd:0.1.0"),
        ("etcdCluster: storage, resources, podTemplate, options",
         ec["spec"]["storage"] == {"size": "1Gi"} and ec["spec"]["resources"]["requests"]["memory"] == "64Mi"
         and ec["spec"]["podTemplate"]["labels"] == {"team": "storage"}
         and ec["spec"]["options"]["autoCompactionRetention"] == "1h"),
    ]
    for name, ok in expect:
        report("values-full.yaml: " + name, ok, "not reflected in the render")
    rules = dig(pr, "spec", "groups", 0, "rules")
    problems = []
    for k, (alert, expr, dur, sev, summary, has_instance) in enumerate(RUNBOOK_ALERTS):
        r = rules[k] if k < len(rules) else {}
        want_expr = expr.replace("{J}", '{job="cetcd"}')
        if (r.get("alert"), r.get("expr"), r.get("for"), dig(r, "labels", "severity"), dig(r, "annotations", "summary")) \
                != (alert, want_expr, dur, sev, summary):
            problems.append("rule %d: %r, want %s %s for %s %s %s" % (k, r, alert, want_expr, dur, sev, summary))
        if has_instance and "{{ $labels.instance }}" not in dig(r, "annotations", "description"):
            problems.append("rule %s: description lost Prometheus' {{ $labels.instance }}" % alert)
    report("the six alert rules of the runbook (监控告警) over {job=\"cetcd\"} (etcdMonitoring.job)",
           not problems and len(rules) == 7, "\n".join(problems))
    golden("full", text, "hack/helm-render cetcd charts/cetcd-operator -n helm-full -f tests/helm/values-full.yaml")


def check_variants():
    def docs(*sets, release="cetcd-operator", ns="cetcd-system"):
        text = render(release, ns, [], sets)
        return check_render("--set " + " ".join(sets), text, ns)

    d = docs("metrics.enabled=false")
    c = dig(find(d, "Deployment"), "spec", "template", "spec", "containers", 0)
    report("metrics.enabled=false: --metrics-addr=0, no ports, no probes, no Service",
           "--metrics-addr=0" in c["args"] and "ports" not in c and "readinessProbe" not in c
           and find(d, "Service") is None)
    d = docs("metrics.service.enabled=false")
    report("metrics.service.enabled=false: no Service", find(d, "Service") is None)
    d = docs("rbac.create=false")
    report("rbac.create=false: no roles nor bindings",
           not [o for _, o in d if o["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")])
    d = docs("serviceAccount.create=false")
    report("serviceAccount.create=false: no ServiceAccount, pods use \"default\"",
           find(d, "ServiceAccount") is None
           and dig(find(d, "Deployment"), "spec", "template", "spec", "serviceAccountName") == "default")
    d = docs("serviceAccount.create=false", "serviceAccount.name=existing")
    report("serviceAccount.create=false with a name: pods and bindings use it",
           dig(find(d, "Deployment"), "spec", "template", "spec", "serviceAccountName") == "existing"
           and dig(find(d, "ClusterRoleBinding"), "subjects", 0, "name") == "existing")
    d = docs("leaderElection.enabled=false")
    args = dig(find(d, "Deployment"), "spec", "template", "spec", "containers", 0, "args")
    report("leaderElection.enabled=false: no --leader-elect, no Lease Role",
           "--leader-elect" not in args and find(d, "Role") is None)
    d = docs("etcdCluster.create=true", "etcdCluster.backup.schedule=0 3 * * *", "etcdCluster.backup.retention=5",
             "etcdCluster.backup.storage.size=5Gi", "etcdCluster.paused=true")
    ec = find(d, "EtcdCluster")
    report("etcdCluster.backup and paused reach the EtcdCluster (release namespace by default)",
           ec is not None and ec["spec"].get("backup") == {"schedule": "0 3 * * *", "retention": 5,
                                                           "storage": {"size": "5Gi"}}
           and ec["spec"].get("paused") is True and ec["metadata"]["namespace"] == "cetcd-system", ec)
    d = docs("etcdCluster.create=true", "etcdCluster.restore.claimName=etcd-backup",
             "etcdCluster.restore.file=etcd-20250101T000000Z-r42.db")
    ec = find(d, "EtcdCluster")
    report("etcdCluster.restore reaches the EtcdCluster",
           ec is not None and ec["spec"].get("restore") == {"claimName": "etcd-backup",
                                                            "file": "etcd-20250101T000000Z-r42.db"}, ec)
    d = docs("etcdCluster.create=true", "etcdCluster.tls.caSecret=etcd-ca",
             "etcdCluster.auth.rootSecret=etcd-root")
    ec = find(d, "EtcdCluster")
    report("etcdCluster.tls and auth reach the EtcdCluster",
           ec is not None and ec["spec"].get("tls") == {"caSecret": "etcd-ca"}
           and ec["spec"].get("auth") == {"rootSecret": "etcd-root"}, ec)
    d = docs("image.tag=1.2", "image.repository=registry.example/cetcd-operator")
    report("image.tag from --set (a string)",
           dig(find(d, "Deployment"), "spec", "template", "spec", "containers", 0, "image")
           == "registry.example/cetcd-operator:1.2")
    d = docs(release="my-cetcd-operator", ns="x")
    report("a release name holding the chart's name is the full name",
           find(d, "Deployment")["metadata"]["name"] == "my-cetcd-operator")
    d = docs(release="prod", ns="x")
    report("another release name is prefixed: <release>-cetcd-operator",
           find(d, "Deployment")["metadata"]["name"] == "prod-cetcd-operator"
           and find(d, "Service")["metadata"]["name"] == "prod-cetcd-operator-metrics")


def check_failures():
    cases = [
        (["replicaCount=2", "leaderElection.enabled=false"], "replicaCount > 1 needs leaderElection.enabled"),
        (["workers=9"], "workers must be 1 to 8"),
        (["workers=0"], "workers must be 1 to 8"),
        (["logLevel=verbose"], "logLevel must be debug, info, warn or error"),
        (["podLabels.app\\.kubernetes\\.io/name=x"], "podLabels must not set app.kubernetes.io/name"),
        (["image.repository="], "image.repository is required"),
        (["metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"],
         "metrics.serviceMonitor.enabled needs metrics.enabled and metrics.service.enabled"),
        (["etcdCluster.create=true", "watchNamespace=a", "etcdCluster.namespace=b"],
         "etcdCluster.namespace b is not watchNamespace a"),
    ]
    for sets, msg in cases:
        try:
            render(sets=sets)
            report("--set %s fails" % " ".join(sets), False, "rendered without error")
        except hr.RenderError as e:
            report("--set %s fails: %s" % (" ".join(sets), msg),
                   msg in str(e) and "cetcd-operator/templates/" in str(e), str(e))


# --- the Grafana dashboard and manifests/monitoring -------------------------------------------

DASHBOARD = "charts/cetcd-operator/dashboards/cetcd.json"
MON_DASHBOARD = "manifests/monitoring/grafana-dashboard.yaml"
MON_RULES = "manifests/monitoring/prometheusrule.yaml"
MON_NS = "monitoring"
MON_HEAD = ("# GENERATED by tests/helm/check_chart.py --sync from %s:\n"
            "# edit that, then run it (make helm fails while this file differs). %s\n")


def monitoring_manifests():
    """{path: text} of manifests/monitoring/'s generated files: the chart's dashboard in a
    ConfigMap for Grafana's sidecar, and the chart's PrometheusRule (job "etcd", the runbook's)
    without Helm's labels; both in namespace monitoring."""
    dash = read(DASHBOARD).strip()
    cm = (MON_HEAD % (DASHBOARD, "Grafana's dashboard sidecar loads it by its label.")
          + "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cetcd-dashboard\n  namespace: %s\n"
          "  labels:\n    app.kubernetes.io/part-of: cetcd\n    grafana_dashboard: \"1\"\ndata:\n  cetcd.json: |-\n"
          % MON_NS + "".join("    " + ln + "\n" if ln else "\n" for ln in dash.split("\n")))
    text = hr.render_chart(CHART, (), ["prometheusRule.enabled=true", "etcdMonitoring.job=etcd"], "cetcd", MON_NS,
                           show_only=["templates/prometheusrule.yaml"])
    spec = text[text.index("\nspec:\n") + 1:]
    pr = (MON_HEAD % ("charts/cetcd-operator/templates/prometheusrule.yaml",
                      "The runbook's alerts (监控告警) over {job=\"etcd\"}.")
          + "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: cetcd\n"
          "  namespace: %s\n  labels:\n    app.kubernetes.io/part-of: cetcd\n" % MON_NS + spec)
    return {MON_DASHBOARD: cm, MON_RULES: pr}


def panels_of(d):
    for p in d.get("panels", []):
        yield p
        yield from p.get("panels", [])


def dashboard_problems(d):
    out = []
    ds = {"type": "prometheus", "uid": "${datasource}"}
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        out.append("schemaVersion %r, want 36 or later" % d.get("schemaVersion"))
    for k in ("title", "uid"):
        if not d.get(k):
            out.append("no %s" % k)
    tvars = {v.get("name"): v for v in dig(d, "templating", "list") or []}
    if dig(tvars, "datasource", "type") != "datasource" or dig(tvars, "datasource", "query") != "prometheus":
        out.append("no datasource variable of type datasource, query prometheus")
    for name in ("job", "instance"):
        v = tvars.get(name)
        if not v or v.get("type") != "query" or v.get("datasource") != ds:
            out.append("no %s query variable on ${datasource}" % name)
    ids, exprs = set(), []
    for p in panels_of(d):
        if p.get("id") in ids:
            out.append("panel id %r twice" % p.get("id"))
        ids.add(p.get("id"))
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24:
            out.append("panel %r: gridPos %r off the 24-column grid" % (p.get("title"), g))
        if p.get("type") == "row":
            continue
        if p.get("datasource") != ds or not p.get("targets"):
            out.append("panel %r: datasource %r or no targets" % (p.get("title"), p.get("datasource")))
        for t in p.get("targets", []):
            exprs.append(t.get("expr", ""))
            if t.get("datasource") != ds:
                out.append("panel %r: a query not on ${datasource}" % p.get("title"))
            if '$job' not in t.get("expr", "") or '$instance' not in t.get("expr", ""):
                out.append("panel %r: %r does not select by $job and $instance" % (p.get("title"), t.get("expr")))
    for m in ("etcd_server_is_leader", "etcd_mvcc_db_total_size_in_bytes",
              "histogram_quantile(0.99, sum by (instance, le) (rate(etcd_disk_wal_fsync_duration_seconds_bucket",
              "etcd_network_peer_round_trip_time_seconds_bucket"):
        if not any(m in e for e in exprs):
            out.append("the seeds' panel on %s is missing" % m)
    return out


def check_dashboard():
    try:
        d = json.loads(read(DASHBOARD))
    except ValueError as e:
        report("%s is JSON" % DASHBOARD, False, str(e))
        return
    problems = dashboard_problems(d)
    report("%s: Grafana's model (schemaVersion >= 36, ${datasource}, $job/$instance, ids, grid), "
           "the seeds' panels" % DASHBOARD, not problems, "\n".join(problems))
    docs = docs_of(render("cetcd", "helm-full", [FULL]))
    cm = find(docs, "ConfigMap", "cetcd-op-full-dashboard")
    report("grafanaDashboard: the ConfigMap holds dashboards/cetcd.json unchanged, in grafanaDashboard.namespace,"
           " with its labels and annotations",
           cm is not None and dig(cm, "data", "cetcd.json") == read(DASHBOARD).strip()
           and cm["metadata"]["namespace"] == "helm-full-clusters"
           and cm["metadata"]["labels"].get("grafana_dashboard") == "1"
           and cm["metadata"]["labels"].get("release") == "prometheus"
           and cm["metadata"].get("annotations") == {"grafana_folder": "etcd"}, cm and cm["metadata"])
    d = docs_of(render(sets=["grafanaDashboard.enabled=true"]))
    cm = find(d, "ConfigMap")
    report("grafanaDashboard.enabled=true: in the release namespace, label grafana_dashboard \"1\"",
           cm is not None and cm["metadata"]["namespace"] == "cetcd-system"
           and cm["metadata"]["labels"].get("grafana_dashboard") == "1", cm and cm["metadata"])
    report("grafanaDashboard off by default", find(docs_of(render()), "ConfigMap") is None)
    for rel, text in monitoring_manifests().items():
        same = os.path.exists(os.path.join(ROOT, rel)) and read(rel) == text
        report("%s is generated from the chart (one source)" % rel, same,
               "differs from what the chart gives; fix: tests/helm/check_chart.py --sync")
    problems = []
    for rel in (MON_DASHBOARD, MON_RULES):
        for o in yaml.safe_load_all(read(rel)) if os.path.exists(os.path.join(ROOT, rel)) else []:
            problems += ["%s: %s" % (rel, p) for p in check_doc(o)]
    kust = yaml.safe_load(read("manifests/monitoring/kustomization.yaml"))
    if sorted(kust.get("resources", [])) != ["grafana-dashboard.yaml", "prometheusrule.yaml"]:
        problems.append("manifests/monitoring/kustomization.yaml resources: %r" % kust.get("resources"))
    report("manifests/monitoring: valid ConfigMap and PrometheusRule, listed in its kustomization.yaml",
           not problems, "\n".join(problems))


def check_notes():
    try:
        text = hr.render_chart(CHART, [FULL], [], "cetcd", "helm-full", notes=True)
        notes = text.split("\nNOTES:\n", 1)[1]
        ok = "etcd-full" in notes and "namespace helm-full-clusters" in notes and "<no value>" not in text
        report("NOTES.txt renders (release cluster, watched namespace)", ok, notes)
    except hr.RenderError as e:
        report("NOTES.txt renders", False, str(e))


if sys.argv[1:] == ["--sync"]:
    sync()
    sys.exit(0)
for fn in (check_sync, check_chart_meta, check_default, check_full, check_variants, check_failures, check_notes,
           check_dashboard):
    try:
        fn()
    except Exception as e:  # a check that crashes is a failure with its reason, not a lost suite
        import traceback
        report("%s ran" % fn.__name__, False, "".join(traceback.format_exception(e))[-2000:])

finish()
