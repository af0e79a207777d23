#!/usr/bin/python3
"""tests/kube-lite/unit.py: unit checks of kube-lite's pure modules (no server needed).

patch.py (merge patch, JSON patch, strategic merge directives), schema.py (validation messages,
pruning, defaults), the label/field selector parsers, the store's history window (410), pki.py
(CA kept across `up`s, serving certificate re-issued) and events.py (aggregation into count).
Prints `ok N - ...` / `not ok N - ...` and `N passed, M failed`; exit 1 on any failure.
"""
import os
import shutil
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "hack", "kube-lite"))

from kubelite import events, patch, pki, schema  # noqa: E402
from kubelite.apiserver import fields_match, labels_match, parse_field_selector, parse_label_selector  # noqa: E402
from kubelite.store import Gone, Store  # noqa: E402

N = {"n": 0, "pass": 0, "fail": 0}


def eq(name, want, got):
    N["n"] += 1
    if want == got:
        N["pass"] += 1
        print("ok %d - %s" % (N["n"], name))
    else:
        N["fail"] += 1
        print("not ok %d - %s\n#   want: %r\n#   got:  %r" % (N["n"], name, want, got))


def raises(fn, exc):
    try:
        fn()
    except exc:
        return True
    return False


def test_patch():
    o = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}
    eq("merge patch: null deletes, maps merge, lists replace",
       {"a": 1, "b": {"c": 5}, "l": [9]}, patch.merge_patch(o, {"b": {"c": 5, "d": None}, "l": [9]}))
    eq("merge patch does not modify its input", {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}, o)
    eq("JSON patch add/replace/remove/move/copy/test",
       {"a": 1, "b": {"c": 2}, "l": [1, 0, 2], "x": 3, "y": 3},
       patch.json_patch(o, [{"op": "add", "path": "/l/1", "value": 0}, {"op": "move", "from": "/b/d", "path": "/x"},
                            {"op": "copy", "from": "/x", "path": "/y"}, {"op": "test", "path": "/a", "value": 1}]))
    eq("JSON patch: failed test raises", True,
       raises(lambda: patch.json_patch(o, [{"op": "test", "path": "/a", "value": 2}]), patch.PatchError))
    eq("JSON patch: remove of a missing path raises", True,
       raises(lambda: patch.json_patch(o, [{"op": "remove", "path": "/zz"}]), patch.PatchError))
    pod = {"spec": {"containers": [{"name": "a", "image": "i1", "env": [{"name": "X", "value": "1"},
                                                                        {"name": "Y", "value": "2"}]},
                                   {"name": "b", "image": "i2"}]},
           "metadata": {"finalizers": ["f1"]}}
    got = patch.strategic_merge_patch(pod, {"spec": {"containers": [
        {"name": "a", "env": [{"name": "Y", "$patch": "delete"}, {"name": "Z", "value": "3"}]},
        {"name": "b", "image": "i3"}]}, "metadata": {"finalizers": ["f2"]}})
    eq("SMP: containers and env merge by name, $patch delete, finalizers union",
       {"spec": {"containers": [{"name": "a", "image": "i1", "env": [{"name": "X", "value": "1"},
                                                                      {"name": "Z", "value": "3"}]},
                                {"name": "b", "image": "i3"}]}, "metadata": {"finalizers": ["f1", "f2"]}}, got)
    got = patch.strategic_merge_patch(pod, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]},
                                            "spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}})
    eq("SMP: $deleteFromPrimitiveList and $setElementOrder", (["b", "a"], []),
       ([c["name"] for c in got["spec"]["containers"]], got["metadata"]["finalizers"]))
    got = patch.strategic_merge_patch({"s": {"a": 1, "b": 2}, "k": {"x": 1, "y": 2}},
                                      {"s": {"$patch": "replace", "c": 3}, "k": {"$retainKeys": ["y"], "y": 5}})
    eq("SMP: $patch replace and $retainKeys", {"s": {"c": 3}, "k": {"y": 5}}, got)
    got = patch.strategic_merge_patch({"spec": {"ports": [{"port": 80, "name": "h"}, {"port": 443}]}},
                                      {"spec": {"ports": [{"port": 80, "name": "http"}]}})
    eq("SMP: service ports merge by port", [{"port": 80, "name": "http"}, {"port": 443}], got["spec"]["ports"])


SCH = {"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
    "size": {"type": "integer", "minimum": 1, "maximum": 5, "exclusiveMaximum": True},
    "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
    "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 4},
    "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "ios": {"x-kubernetes-int-or-string": True}}}}}


def msgs(v):
    return ["%s: %s" % (c["field"], c["message"]) for c in schema.validate(SCH, v)]


def test_schema():
    eq("valid object", [], msgs({"spec": {"size": 2, "ios": "3", "free": {"z": 1}}}))
    eq("exclusiveMaximum", ["spec.size: Invalid value: 5: spec.size in body should be less than 5"],
       msgs({"spec": {"size": 5}}))
    eq("minimum", ["spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"],
       msgs({"spec": {"size": 0}}))
    eq("required", ["spec.size: Required value"], msgs({"spec": {}}))
    eq("type", ['spec.size: Invalid value: "x": spec.size in body must be of type integer: "string"'],
       msgs({"spec": {"size": "x"}}))
    eq("bool is not an integer", 1, len(msgs({"spec": {"size": True}})))
    eq("enum + pattern + maxItems + items type", [
        'spec.mode: Unsupported value: "c": supported values: "a", "b"',
        "spec.name: Invalid value: \"A1\": spec.name in body should match '^[a-z]+$'",
        "spec.tags: Too many: 3: must have at most 2 items", 'spec.tags[0]: Invalid value: 1: spec.tags[0] in body '
        'must be of type string: "integer"'],
       msgs({"spec": {"size": 1, "mode": "c", "name": "A1", "tags": [1, "b", "c"]}}))
    o = {"apiVersion": "x", "metadata": {"n": 1}, "spec": {"size": 1, "junk": 1, "free": {"k": 1}}, "top": 1}
    dropped = []
    schema.prune(SCH, o, dropped=dropped)
    schema.apply_defaults(SCH, o)
    eq("prune unknown fields, keep preserved ones and metadata; defaults",
       ({"apiVersion": "x", "metadata": {"n": 1}, "spec": {"size": 1, "free": {"k": 1}, "mode": "a"}},
        ["spec.junk", "top"]), (o, sorted(dropped)))


def test_selectors():
    r = parse_label_selector("a=1,b!=2,c in (x, y),d notin (z),e,!f")
    eq("label selector matches", True, labels_match(r, {"a": "1", "b": "3", "c": "y", "e": ""}))
    eq("label selector: notin / !key", False, labels_match(r, {"a": "1", "c": "x", "d": "z", "e": ""}))
    eq("label selector: missing key for !=", True, labels_match(parse_label_selector("b!=2"), {}))
    eq("bad label selector raises", True, raises(lambda: parse_label_selector("a=(b"), Exception))
    f = parse_field_selector("metadata.name=x,status.phase!=Running")
    eq("field selector", (True, False), (fields_match(f, {"metadata": {"name": "x"}, "status": {"phase": "Pending"}}),
                                          fields_match(f, {"metadata": {"name": "x"}, "status": {"phase": "Running"}})))


def test_store():
    s = Store(window=10)
    for i in range(15):
        s.put("/configmaps", {"metadata": {"name": "c%d" % i, "namespace": "d"}}, "ADDED")
    eq("store: global rv", 15, s.rv)
    eq("store: events after 10", [11, 12, 13, 14, 15], [e.rv for e in s.events_after(10)])
    eq("store: version older than the window -> Gone", True, raises(lambda: s.events_after(3), Gone))
    final = s.remove("/configmaps", "d", "c0")
    eq("store: DELETED event takes a new rv", ("16", "DELETED"), (final["metadata"]["resourceVersion"],
                                                               s.history[-1].type))


def sans_of(cert):
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-ext", "subjectAltName"],
                         stdout=subprocess.PIPE, check=True, timeout=10).stdout.decode()
    return sorted(x.strip().split(":", 1)[1] for x in out.splitlines()[1].split(","))


def test_pki():
    d = tempfile.mkdtemp(prefix="kl-pki-")
    try:
        ca, cert, key = pki.ensure(d, ["127.0.0.1", "10.244.0.1", None])
        with open(ca, "rb") as f:
            ca1 = f.read()
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
        eq("pki: DIR/ca.crt is the CA; key files are 0600", (ca1, 0o600, 0o600),
           (open(os.path.join(d, "ca.crt"), "rb").read(), os.stat(key).st_mode & 0o777,
            os.stat(os.path.join(d, "pki", "ca.key")).st_mode & 0o777))
        pki.server_context(cert, key)  # cert and key match
        eq("pki: serving certificate SANs", sorted(["127.0.0.1", "10.244.0.1"] + pki.DNS_NAMES), sans_of(cert))
        pki.ensure(d, ["127.0.0.1", "10.245.0.1"])
        eq("pki: a second ensure keeps the CA and re-issues the serving certificate",
           (ca1, True), (open(ca, "rb").read(), "10.245.0.1" in sans_of(cert)))
        eq("pki: CA loads as a trust anchor", 1, len(ctx.get_ca_certs()))
    finally:
        shutil.rmtree(d, ignore_errors=True)


class FakeClient:
    def __init__(self):
        self.calls = []

    def create(self, res, ns, obj):
        self.calls.append(("create", ns, obj["reason"], obj["count"], obj["involvedObject"]))

    def patch(self, res, ns, name, body):
        self.calls.append(("patch", ns, body["count"]))


def test_events():
    c = FakeClient()
    r = events.Recorder(c, "test")
    r.stop.set()  # drive _write by hand, not through the thread
    r.thread.join()
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u1", "resourceVersion": "7"}}
    for _ in range(3):
        r._write(events.involved(pod, "spec.containers{c}", "Pod", "v1"), "Warning", "BackOff", "m",
                 "2026-01-01T00:00:00Z", "kubelet")
    r._write(events.involved({"metadata": {"name": "node1", "uid": "u2"}}, None, "Node", "v1"),
             "Normal", "X", "m", "2026-01-01T00:00:00Z", "kubelet")
    ref = {"kind": "Pod", "name": "p", "namespace": "n", "uid": "u1", "apiVersion": "v1",
           "resourceVersion": "7", "fieldPath": "spec.containers{c}"}
    eq("events: repeats patch count; cluster-scoped objects go to default",
       [("create", "n", "BackOff", 1, ref), ("patch", "n", 2), ("patch", "n", 3),
        ("create", "default", "X", 1, {"kind": "Node", "name": "node1", "uid": "u2",
                                       "apiVersion": "v1", "resourceVersion": ""})], c.calls)


for t in (test_patch, test_schema, test_selectors, test_store, test_pki, test_events):
    t()
print("%d passed, %d failed" % (N["pass"], N["fail"]))
sys.exit(1 if N["fail"] else 0)
