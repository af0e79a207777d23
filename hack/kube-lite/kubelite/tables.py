"""meta.k8s.io/v1 Table rendering for `kubectl get` (server-side printing).

Purpose: when a client asks for `Accept: application/json;as=Table;...`, answer a Table whose
columns are those kubectl shows for the kind (a small set for the common built-in kinds, the
CRD's additionalPrinterColumns for custom resources, else Name and Age).

Invariants: rendering never raises on odd objects (missing fields print as empty cells or
"<none>"); each row carries the full object so kubectl can add namespace or label columns.
"""
import calendar
import re
import time


def age(ts):
    """Kubernetes-style short duration since an RFC 3339 timestamp ("5s", "3m2s", "4h", "2d")."""
    try:
        t = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return "<unknown>"
    s = max(0, int(time.time() - t))
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60)
    if m < 180:
        return "%dm" % m
    h = m // 60
    if h < 8:
        return "%dh%dm" % (h, m % 60)
    if h < 48:
        return "%dh" % h
    d = h // 24
    return "%dd%dh" % (d, h % 24) if d < 8 else "%dd" % d


_SEG = re.compile(r'\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_\.\-]+)\s*==\s*["\']([^"\']*)["\']\)\]')


def jsonpath(obj, path):
    """Evaluate the simple JSONPath subset printer columns use: .a.b, [n], [?(@.k=="v")]."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    cur, pos = obj, 0
    while pos < len(path):
        m = _SEG.match(path, pos)
        if not m:
            return None
        pos = m.end()
        if m.group(1) is not None:
            cur = cur.get(m.group(1)) if isinstance(cur, dict) else None
        elif m.group(2) is not None:
            i = int(m.group(2))
            cur = cur[i] if isinstance(cur, list) and i < len(cur) else None
        else:
            keys, want = m.group(3).split("."), m.group(4)
            cur = next((x for x in (cur or []) if str(_dig(x, keys)) == want), None) \
                if isinstance(cur, list) else None
        if cur is None:
            return None
    return cur


def _dig(obj, keys):
    for k in keys:
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


def _g(o, *keys, default=None):
    v = _dig(o, keys)
    return default if v is None else v


def _pod_cells(o):
    st = o.get("status") or {}
    cs = st.get("containerStatuses") or []
    n = len((o.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in cs)
    phase = st.get("reason") or st.get("phase") or "Pending"
    for c in cs:
        w = (c.get("state") or {}).get("waiting") or {}
        if w.get("reason"):
            phase = w["reason"]
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        phase = "Terminating"
    return ["%d/%d" % (ready, n), phase, restarts, None, st.get("podIP") or "<none>",
            (o.get("spec") or {}).get("nodeName") or "<none>"]


def _svc_ports(o):
    ps = (o.get("spec") or {}).get("ports") or []
    return ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP")) for p in ps) or "<none>"


def _ep_addrs(o):
    out = []
    for s in o.get("subsets") or []:
        for a in s.get("addresses") or []:
            for p in s.get("ports") or [{}]:
                out.append("%s:%s" % (a.get("ip"), p.get("port")))
    return ",".join(out[:3]) + (" + %d more..." % (len(out) - 3) if len(out) > 3 else "") or "<none>"


# kind -> (columns [(name, type, priority)], cells(obj) -> list with None where Age goes)
BUILTIN = {
    "pods": ([("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "integer", 0),
              ("Age", "string", 0), ("IP", "string", 1), ("Node", "string", 1)], _pod_cells),
    "statefulsets": ([("Ready", "string", 0), ("Age", "string", 0)],
                     lambda o: ["%s/%s" % (_g(o, "status", "readyReplicas", default=0),
                                           _g(o, "spec", "replicas", default=1)), None]),
    "jobs": ([("Status", "string", 0), ("Completions", "string", 0), ("Age", "string", 0)],
             lambda o: [_job_status(o), "%s/%s" % (_g(o, "status", "succeeded", default=0),
                                                   _g(o, "spec", "completions", default=1)), None]),
    "cronjobs": ([("Schedule", "string", 0), ("Suspend", "boolean", 0), ("Active", "integer", 0),
                  ("Last Schedule", "string", 0), ("Age", "string", 0)],
                 lambda o: [_g(o, "spec", "schedule"), bool(_g(o, "spec", "suspend", default=False)),
                            len(_g(o, "status", "active", default=[])),
                            age(_g(o, "status", "lastScheduleTime")) if _g(o, "status", "lastScheduleTime")
                            else "<none>", None]),
    "services": ([("Type", "string", 0), ("Cluster-IP", "string", 0), ("External-IP", "string", 0),
                  ("Port(s)", "string", 0), ("Age", "string", 0)],
                 lambda o: [_g(o, "spec", "type", default="ClusterIP"), _g(o, "spec", "clusterIP",
                            default="<none>"), "<none>", _svc_ports(o), None]),
    "endpoints": ([("Endpoints", "string", 0), ("Age", "string", 0)], lambda o: [_ep_addrs(o), None]),
    "persistentvolumeclaims": ([("Status", "string", 0), ("Volume", "string", 0), ("Capacity", "string", 0),
                                ("Access Modes", "string", 0), ("StorageClass", "string", 0),
                                ("Age", "string", 0)],
                               lambda o: ["Terminating" if _g(o, "metadata", "deletionTimestamp") else
                                          _g(o, "status", "phase", default="Pending"),
                                          _g(o, "spec", "volumeName", default=""),
                                          _g(o, "status", "capacity", "storage", default=""),
                                          _access_modes(_g(o, "status", "accessModes", default=[])),
                                          _g(o, "spec", "storageClassName", default="<unset>"), None]),
    "deployments": ([("Ready", "string", 0), ("Up-to-date", "integer", 0), ("Available", "integer", 0),
                     ("Age", "string", 0)],
                    lambda o: ["%s/%s" % (_g(o, "status", "readyReplicas", default=0),
                                          _g(o, "spec", "replicas", default=1)),
                               _g(o, "status", "updatedReplicas", default=0),
                               _g(o, "status", "availableReplicas", default=0), None]),
    "replicasets": ([("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0),
                     ("Age", "string", 0)],
                    lambda o: [_g(o, "spec", "replicas", default=1), _g(o, "status", "replicas", default=0),
                               _g(o, "status", "readyReplicas", default=0), None]),
    "poddisruptionbudgets": ([("Min Available", "string", 0), ("Max Unavailable", "string", 0),
                              ("Allowed Disruptions", "integer", 0), ("Age", "string", 0)],
                             lambda o: [str(_g(o, "spec", "minAvailable", default="N/A")),
                                        str(_g(o, "spec", "maxUnavailable", default="N/A")),
                                        _g(o, "status", "disruptionsAllowed", default=0), None]),
    "leases": ([("Holder", "string", 0), ("Age", "string", 0)],
               lambda o: [_g(o, "spec", "holderIdentity", default=""), None]),
    "namespaces": ([("Status", "string", 0), ("Age", "string", 0)],
                   lambda o: [_g(o, "status", "phase", default="Active"), None]),
    "nodes": ([("Status", "string", 0), ("Roles", "string", 0), ("Age", "string", 0),
               ("Version", "string", 0)],
              lambda o: [_node_status(o), "<none>", None, _g(o, "status", "nodeInfo", "kubeletVersion",
                                                             default="")]),
    "configmaps": ([("Data", "integer", 0), ("Age", "string", 0)],
                   lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {}), None]),
    "secrets": ([("Type", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
                lambda o: [o.get("type", "Opaque"), len(o.get("data") or {}), None]),
    "customresourcedefinitions": ([("Created At", "date", 0)],
                                  lambda o: [_g(o, "metadata", "creationTimestamp")]),
    "events": ([("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
                ("Object", "string", 0), ("Source", "string", 1), ("Message", "string", 0),
                ("Count", "integer", 1)],
               lambda o: [age(o.get("lastTimestamp") or o.get("eventTime") or
                              _g(o, "metadata", "creationTimestamp")),
                          o.get("type"), o.get("reason"), "%s/%s" % (
                              str(_g(o, "involvedObject", "kind", default="")).lower(),
                              _g(o, "involvedObject", "name", default="")),
                          _g(o, "source", "component", default=""), o.get("message"),
                          o.get("count")]),
}


def _access_modes(modes):
    short = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    return ",".join(short.get(m, m) for m in modes or [])


def _job_status(o):
    for c in _g(o, "status", "conditions", default=[]):
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed"):
            return c["type"]
    return "Running"


def _node_status(o):
    for c in _g(o, "status", "conditions", default=[]):
        if c.get("type") == "Ready":
            return "Ready" if c.get("status") == "True" else "NotReady"
    return "Unknown"


def _cr_columns(rd, version):
    cols = rd.columns.get(version) or []
    if not cols:
        return [("Age", "string", 0)], lambda o: [None]
    defs = [(c.get("name"), c.get("type", "string"), c.get("priority", 0)) for c in cols]

    def cells(o):
        out = []
        for c in cols:
            v = jsonpath(o, c.get("jsonPath", ""))
            if c.get("type") == "date" and isinstance(v, str):
                v = age(v)
            out.append(v)   # a missing value is a null cell, as the API server sends it
        return out
    return defs, cells


def table(rd, version, objs, rv):
    if rd.crd is not None:
        defs, cells = _cr_columns(rd, version)
    else:
        defs, cells = BUILTIN.get(rd.plural, ([("Age", "string", 0)], lambda o: [None]))
    name_prio = 1 if rd.plural == "events" and rd.crd is None else 0  # as kube's events table
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name",
                "priority": name_prio}]
    columns += [{"name": n, "type": "string" if t == "date" else t, "format": "", "description": n,
                 "priority": p} for n, t, p in defs]
    rows = []
    for o in objs:
        try:
            row = cells(o)
        except Exception:  # noqa: BLE001 - printing must never fail the request
            row = [""] * len(defs)
        row = [age((o.get("metadata") or {}).get("creationTimestamp")) if c is None and
               defs[i][0] == "Age" else c for i, c in enumerate(row)]
        rows.append({"cells": [(o.get("metadata") or {}).get("name")] + row, "object": o})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": str(rv)},
            "columnDefinitions": columns, "rows": rows}
