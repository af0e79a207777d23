#!/usr/bin/python3
"""tests/kube-lite/api_client.py: kube-lite's API semantics as python3-kubernetes sees them.

Needs a running kube-lite (KUBECONFIG in the environment, as run.sh sets it). Works in its own
namespace `kl-py`, deleted at the end. Checks: list + watch resuming from a resourceVersion
(ADDED, MODIFIED, DELETED in order, nothing replayed twice), label-selector watch turning a
relabel into DELETED, BOOKMARK events, timeoutSeconds ending a watch, 410 Gone for a version
older than the history window (raw HTTP and through kubernetes.watch, which retries once then
raises), 410 for a stale continue token, limit/continue paging, 409 on a stale replace, 409
AlreadyExists, 422 with causes for a CR violating its schema, generation and no-op writes,
owner GC and finalizers. Prints `ok N - ...` / `not ok N - ...` and `N passed, M failed`.
Invariants: every wait is bounded (watch timeout_seconds or a deadline); writes for the 410
check go through one keep-alive HTTP connection; the seed of nothing random is needed.
"""
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NS = "kl-py"
RESULTS = {"n": 0, "pass": 0, "fail": 0}


def check(name, cond, detail=""):
    RESULTS["n"] += 1
    if cond:
        RESULTS["pass"] += 1
        print("ok %d - %s" % (RESULTS["n"], name), flush=True)
    else:
        RESULTS["fail"] += 1
        print("not ok %d - %s" % (RESULTS["n"], name), flush=True)
        for line in str(detail).splitlines()[:20]:
            print("#   " + line, flush=True)


def status_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
        return 200, None
    except ApiException as e:
        return e.status, e


def wait_until(pred, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def cm(name, labels=None, data=None, **md):
    meta = {"name": name, "labels": labels or {}}
    meta.update(md)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def gone(fn, *a):
    return status_of(fn, *a)[0] == 404


def test_watch(core):
    lst = core.list_namespaced_config_map(NS)
    rv0 = lst.metadata.resource_version
    check("list returns a resourceVersion", rv0 and rv0.isdigit(), rv0)
    core.create_namespaced_config_map(NS, cm("w1", {"app": "w"}, {"k": "1"}))
    core.patch_namespaced_config_map("w1", NS, {"data": {"k": "2"}})
    core.delete_namespaced_config_map("w1", NS)
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=rv0, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name, ev["object"].metadata.resource_version,
                     (ev["object"].data or {}).get("k")))
        if len(seen) == 3:
            w.stop()
    check("watch from a list's resourceVersion replays ADDED, MODIFIED, DELETED in order",
          [s[0] for s in seen] == ["ADDED", "MODIFIED", "DELETED"] and [s[3] for s in seen] == ["1", "2", "2"],
          seen)
    rvs = [int(s[2]) for s in seen]
    check("event resourceVersions increase", rvs == sorted(rvs) and len(set(rvs)) == 3, rvs)
    if len(seen) < 3:
        return
    seen2 = []
    for ev in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=seen[1][2],
                                   timeout_seconds=2):
        seen2.append((ev["type"], ev["object"].metadata.name))
    check("watch resumed from the MODIFIED event's resourceVersion gets only what followed",
          seen2 == [("DELETED", "w1")], seen2)

    rv1 = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, cm("sel", {"app": "x"}))
    core.patch_namespaced_config_map("sel", NS, {"metadata": {"labels": {"app": "y"}}})
    core.patch_namespaced_config_map("sel", NS, {"metadata": {"labels": {"app": "x"}}})
    seen3 = [ev["type"] for ev in watch.Watch().stream(core.list_namespaced_config_map, NS, label_selector="app=x",
                                                        resource_version=rv1, timeout_seconds=2)]
    check("label-selector watch: leaving the selector is DELETED, re-entering is ADDED",
          seen3 == ["ADDED", "DELETED", "ADDED"], seen3)

    t0 = time.monotonic()
    kinds = []
    for ev in watch.Watch().stream(core.list_namespaced_config_map, NS, allow_watch_bookmarks=True,
                                   resource_version=core.list_namespaced_config_map(NS).metadata.resource_version,
                                   timeout_seconds=3):
        kinds.append(ev["type"])
    el = time.monotonic() - t0
    check("allowWatchBookmarks: BOOKMARK event sent", "BOOKMARK" in kinds, kinds)
    check("timeoutSeconds ends the watch", 2.5 < el < 8, el)


def raw_conn():
    """A plain http.client connection to the kubeconfig's server (https: verified with its CA)."""
    cfg = client.Configuration.get_default_copy()
    u = urllib.parse.urlsplit(cfg.host)
    if u.scheme == "https":
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        return http.client.HTTPSConnection(u.hostname, u.port, timeout=20, context=ctx)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=20)


def test_gone(core):
    conn = raw_conn()
    window = int(os.environ.get("KUBE_LITE_WATCH_WINDOW", "1000"))
    core.create_namespaced_config_map(NS, cm("churn"))
    old_rv = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, cm("p1"))
    core.create_namespaced_config_map(NS, cm("p2"))
    page = core.list_namespaced_config_map(NS, limit=1)
    check("limit=1 returns one item and a continue token", len(page.items) == 1 and page.metadata._continue,
          page.metadata)
    t0 = time.monotonic()
    for i in range(window + 20):
        body = json.dumps({"data": {"i": str(i)}})
        conn.request("PATCH", "/api/v1/namespaces/%s/configmaps/churn" % NS, body,
                     {"Content-Type": "application/merge-patch+json"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            check("churn writes", False, r.status)
            return
    conn.close()
    print("# %d writes in %.1fs" % (window + 20, time.monotonic() - t0), flush=True)
    conn = raw_conn()
    conn.request("GET", "/api/v1/namespaces/%s/configmaps?watch=1&resourceVersion=%s" % (NS, old_rv))
    r = conn.getresponse()
    body = json.loads(r.read() or b"{}")
    conn.close()
    check("watch from a resourceVersion older than the window: HTTP 410 Expired",
          r.status == 410 and body.get("code") == 410 and body.get("reason") == "Expired", (r.status, body))
    st, err = status_of(lambda: [e for e in watch.Watch().stream(
        core.list_namespaced_config_map, NS, resource_version=old_rv, timeout_seconds=3)])
    check("python watch from a too old resourceVersion raises ApiException 410", st == 410, err)
    st, err = status_of(core.list_namespaced_config_map, NS, limit=1, _continue=page.metadata._continue)
    check("list with a continue token older than the window: 410", st == 410, err)
    page = core.list_namespaced_config_map(NS, limit=1)
    names = [page.items[0].metadata.name]
    while page.metadata._continue:
        page = core.list_namespaced_config_map(NS, limit=1, _continue=page.metadata._continue)
        names += [i.metadata.name for i in page.items]
    check("limit/continue paging walks every item once", sorted(names) == names and
          {"churn", "p1", "p2"} <= set(names) and len(set(names)) == len(names), names)


def test_conflicts(core):
    core.create_namespaced_config_map(NS, cm("c1", data={"a": "1"}))
    stale = core.read_namespaced_config_map("c1", NS)
    fresh = core.read_namespaced_config_map("c1", NS)
    fresh.data = {"a": "2"}
    core.replace_namespaced_config_map("c1", NS, fresh)
    stale.data = {"a": "3"}
    st, err = status_of(core.replace_namespaced_config_map, "c1", NS, stale)
    body = json.loads(err.body) if err is not None else {}
    check("update with a stale resourceVersion: 409 Conflict", st == 409 and body.get("reason") == "Conflict",
          err)
    check("the stale update changed nothing", core.read_namespaced_config_map("c1", NS).data == {"a": "2"})
    st, err = status_of(core.create_namespaced_config_map, NS, cm("c1"))
    body = json.loads(err.body) if err is not None else {}
    check("create of an existing name: 409 AlreadyExists", st == 409 and body.get("reason") == "AlreadyExists",
          err)
    cur = core.read_namespaced_config_map("c1", NS)
    again = core.replace_namespaced_config_map("c1", NS, cur)
    check("an update that changes nothing keeps the resourceVersion",
          again.metadata.resource_version == cur.metadata.resource_version,
          (again.metadata.resource_version, cur.metadata.resource_version))
    st, _ = status_of(core.read_namespaced_config_map, "nope", NS)
    check("get of a missing object: 404", st == 404)


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.py.kube-lite.io"},
    "spec": {"group": "py.kube-lite.io", "scope": "Namespaced",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "required": ["size"], "properties": {
                                   "size": {"type": "integer", "minimum": 1, "maximum": 5}}},
                               "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


def test_crd(ext, co):
    ext.create_custom_resource_definition(CRD)
    ok = wait_until(lambda: any(c.type == "Established" and c.status == "True" for c in
                                (ext.read_custom_resource_definition("gadgets.py.kube-lite.io").status.conditions
                                 or [])), 10)
    check("CRD becomes Established", ok)
    args = ("py.kube-lite.io", "v1", NS, "gadgets")
    g = co.create_namespaced_custom_object(*args, {"apiVersion": "py.kube-lite.io/v1", "kind": "Gadget",
                                                   "metadata": {"name": "g1"}, "spec": {"size": 2}})
    check("create a custom resource: generation 1", g["metadata"]["generation"] == 1, g)
    st, err = status_of(co.create_namespaced_custom_object, *args, {
        "apiVersion": "py.kube-lite.io/v1", "kind": "Gadget", "metadata": {"name": "g2"}, "spec": {"size": 6}})
    body = json.loads(err.body) if err is not None else {}
    causes = (body.get("details") or {}).get("causes") or []
    check("CR violating its schema: 422 Invalid with a cause naming spec.size",
          st == 422 and body.get("reason") == "Invalid" and causes and causes[0].get("field") == "spec.size"
          and "less than or equal to 5" in causes[0].get("message", ""), err)
    g = co.patch_namespaced_custom_object(*args[:3], "gadgets", "g1", {"spec": {"size": 3}})
    check("spec change bumps generation", g["metadata"]["generation"] == 2, g["metadata"])
    g = co.patch_namespaced_custom_object_status(*args[:3], "gadgets", "g1", {"status": {"phase": "Up"}})
    check("status change through /status keeps generation", g["metadata"]["generation"] == 2
          and g["status"] == {"phase": "Up"}, g)
    g["metadata"]["resourceVersion"] = "1"
    st, _ = status_of(co.replace_namespaced_custom_object, *args[:3], "gadgets", "g1", g)
    check("CR update with a stale resourceVersion: 409", st == 409)
    items = co.list_namespaced_custom_object(*args)
    check("list custom objects", [i["metadata"]["name"] for i in items["items"]] == ["g1"]
          and items["kind"] == "GadgetList", items)


def test_gc(core):
    owner = core.create_namespaced_config_map(NS, cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    for n in ("dep1", "dep2"):
        core.create_namespaced_config_map(NS, cm(n, ownerReferences=[ref]))
    core.create_namespaced_secret(NS, {"metadata": {"name": "dep3", "ownerReferences": [ref]}})
    core.delete_namespaced_config_map("owner", NS)
    ok = wait_until(lambda: gone(core.read_namespaced_config_map, "dep1", NS) and
                    gone(core.read_namespaced_config_map, "dep2", NS) and
                    gone(core.read_namespaced_secret, "dep3", NS), 10)
    check("deleting an owner removes its dependents", ok)
    core.create_namespaced_config_map(NS, cm("held", finalizers=["test/hold"]))
    core.delete_namespaced_config_map("held", NS)
    obj = core.read_namespaced_config_map("held", NS)
    check("a finalizer holds deletion: object kept with deletionTimestamp",
          obj.metadata.deletion_timestamp is not None and obj.metadata.finalizers == ["test/hold"], obj.metadata)
    core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}})
    check("removing the finalizer completes the deletion", gone(core.read_namespaced_config_map, "held", NS))


def main():
    config.load_kube_config()
    core = client.CoreV1Api()
    ext = client.ApiextensionsV1Api()
    co = client.CustomObjectsApi()
    core.create_namespace({"metadata": {"name": NS}})
    for fn, a in ((test_watch, (core,)), (test_conflicts, (core,)), (test_crd, (ext, co)), (test_gc, (core,)),
                  (test_gone, (core,))):
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - report and go on with the next group
            import traceback
            check("%s ran to the end" % fn.__name__, False, traceback.format_exc() or e)
    try:
        ext.delete_custom_resource_definition("gadgets.py.kube-lite.io")
        core.delete_namespace(NS)
        check("namespace deleted at the end", wait_until(lambda: gone(core.read_namespace, NS), 30))
    except ApiException as e:
        check("cleanup", False, e)
    print("%d passed, %d failed" % (RESULTS["pass"], RESULTS["fail"]), flush=True)
    return 1 if RESULTS["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
