#!/usr/bin/python3
"""tests/kube-lite/unit.py: unit checks of kube-lite's pure modules (no server needed).

patch.py (merge patch, JSON patch, strategic merge directives), schema.py (validation messages,
pruning, defaults), the label/field selector parsers, the store's history window (410), pki.py
(CA kept across `up`s, serving certificate re-issued), events.py (aggregation into count), cel.py
(the CEL subset: literals, operators, errors, macros, refusals) and schema.py's
x-kubernetes-validations (compile problems refusing a CRD, messages, transition rules, ratcheting).
Prints `ok N - ...` / `not ok N - ...` and `N passed, M failed`; exit 1 on any failure.
"""
import os
import shutil
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "hack", "kube-lite"))

from kubelite import cel, events, patch, pki, schema  # noqa: E402
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


def cel_run(src, self_v=None, old=None):
    """Value of a rule, or "CelError: ..." / "EvalError: ..."."""
    try:
        return cel.compile(src).eval(self_v, old)
    except (cel.CelError, cel.EvalError) as e:
        return "%s: %s" % (type(e).__name__, e)


def test_cel():
    cases = [
        ("literals: int, uint, double, string escapes, raw, bool, null, list, map",
         "1 == 1 && 2u == 2u && 1.5 == 1.5 && 0x10 == 16 && 'a\\tb'.size() == 3 && r'a\\tb'.size() == 4 "
         "&& true && null == null && [1, 'x'] == [1, 'x'] && {'k': [1]} == {'k': [1]} && \"\"\"q\"\"\" == 'q'",
         None, True),
        ("heterogeneous numeric equality and ordering", "1 == 1.0 && 1u == 1 && 2 > 1.5 && 1u < 2", None, True),
        ("values of different kinds are unequal, not an error", "1 != '1' && [1] != {'a': 1}", None, True),
        ("int arithmetic: truncating division, sign of dividend for %", "7 / -2 == -3 && -7 % 2 == -1 && 2 * 3 - 1 == 5",
         None, True),
        ("int overflow is an error", "9223372036854775807 + 1 > 0", None, "EvalError: integer overflow"),
        ("uint underflow is an error", "1u - 2u == 0u", None, "EvalError: unsigned integer overflow"),
        ("division by zero", "self / 0 == 1", 4, "EvalError: division by zero"),
        ("int + double has no overload", "self + 1.0 > 0.0", 1, "EvalError: no such overload"),
        ("string and list concatenation, in", "'a' + 'b' == 'ab' && [1] + [2] == [1, 2] && 2 in [1, 2] && "
         "'k' in {'k': 1} && !('z' in {'k': 1})", None, True),
        ("&& and || are commutative with errors", "(self.x > 0 || true) && !(false && self.x > 0)", {}, True),
        ("|| with an error and no true side raises", "self.x > 0 || false", {}, "EvalError: no such key: x"),
        ("field selection of an absent key is an error; has() tests it",
         "has(self.a) && !has(self.b) && self.a.c == 1", {"a": {"c": 1}}, True),
        ("index out of bounds and missing map key", "self[3] == 1", [1], "EvalError: index out of bounds: 3"),
        ("ternary", "self.size > 3 ? self.mode == 'safe' : true", {"size": 5, "mode": "fast"}, False),
        ("size(), startsWith, endsWith, contains, matches, lowerAscii",
         "size(self) == 5 && self.size() == 5 && self.startsWith('ab') && self.endsWith('de') && "
         "self.contains('c') && self.matches('^[a-e]+$') && matches(self, 'b.d') && 'AbC'.lowerAscii() == 'abc'",
         "abcde", True),
        ("macros: all, exists, exists_one, map, filter",
         "self.all(x, x > 0) && self.exists(x, x == 2) && self.exists_one(x, x == 3) && "
         "self.map(x, x * 2) == [2, 4, 6] && self.map(x, x > 1, x) == [2, 3] && self.filter(x, x % 2 == 1) == [1, 3]",
         [1, 2, 3], True),
        ("macros over a map iterate its keys", "self.all(k, k.startsWith('a')) && self.exists_one(k, k == 'ab')",
         {"aa": 1, "ab": 2}, True),
        ("all: a false item decides even if another fails", "self.all(x, x.v > 1)", [{"v": 0}, {}], False),
        ("conversions", "int('42') == 42 && uint(3) == 3u && double(2) == 2.0 && string(7) == '7'", None, True),
        ("transition rule sees oldSelf", "self >= oldSelf", 3, False),
        ("refused: unknown function", "self.startsWith('x') && timestamp(self) > 0", "x",
         "CelError: undeclared reference to 'timestamp' (in container '') at column 25: kube-lite's CEL "
         "subset has no such function"),
        ("refused: unknown variable", "x > 1", 1, "CelError: undeclared reference to 'x' (in container '')"),
        ("refused: a rule that is not a bool", "self + 1", 1, "CelError: cel expression must evaluate to a bool"),
        ("refused: bytes literal", "b'x' == b'x'", None, "CelError: bytes literals are not in kube-lite's CEL subset"),
        ("refused: syntax error", "self >", 1, "CelError: Syntax error: unexpected end of expression"),
        ("refused: a regular expression RE2 cannot run", "self.matches('^(?!a)')", "b",
         "CelError: invalid regular expression '^(?!a)': RE2 has no lookaround or backreferences"),
    ]
    for name, src, v, want in cases:
        old = 5 if "oldSelf" in src else None
        eq("cel: " + name, want, cel_run(src, v, old))


RULES_SCH = {"type": "object", "properties": {
    "spec": {"type": "object",
             "x-kubernetes-validations": [
                 {"rule": "!has(self.learners) || self.learners < self.size",
                  "message": "learners must be fewer than members"}],
             "properties": {
                 "size": {"type": "integer",
                          "x-kubernetes-validations": [
                              {"rule": "self % 2 == 1", "message": "size must be odd"},
                              {"rule": "self >= oldSelf || oldSelf - self <= 2"}]},
                 "learners": {"type": "integer"},
                 "ratio": {"type": "number", "x-kubernetes-validations": [{"rule": "self < 1.0"}]},
                 "storage": {"type": "string",
                             "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "storage is immutable",
                                                           "reason": "FieldValueForbidden"}]},
                 "members": {"type": "array", "x-kubernetes-list-type": "map",
                             "x-kubernetes-list-map-keys": ["name"],
                             "items": {"type": "object", "properties": {"name": {"type": "string"},
                                                                         "port": {"type": "integer"}},
                                       "x-kubernetes-validations": [
                                           {"rule": "self.port > 1024", "fieldPath": ".port"}]}}}}}}


def rule_msgs(obj, old=None):
    tree, problems = schema.compile_validations(RULES_SCH)
    causes = schema.validate_rules(tree, obj, old) if old is not None else schema.validate_rules(tree, obj)
    return ["%s: %s" % (c["field"], c["message"]) for c in causes]


def crd_problems(rules, sch=None):
    s = sch or {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "size": {"type": "integer"}}, "x-kubernetes-validations": rules}}}
    return ["%s: %s" % (c["field"], c["message"]) for c in schema.compile_validations(s)[1]]


def test_cel_rules():
    eq("rules: a valid object passes (number field seen as double)", [],
       rule_msgs({"spec": {"size": 3, "ratio": 0, "members": [{"name": "a", "port": 2000}]}}))
    eq("rules: message of a false rule, on its field, with the schema type", [
        'spec.size: Invalid value: "integer": size must be odd'], rule_msgs({"spec": {"size": 4}}))
    eq("rules: no message -> failed rule: <rule>; fieldPath names the field; object rules", [
        'spec: Invalid value: "object": learners must be fewer than members',
        'spec.ratio: Invalid value: "number": failed rule: self < 1.0',
        'spec.members[0].port: Invalid value: "object": failed rule: self.port > 1024'],
       rule_msgs({"spec": {"size": 3, "learners": 3, "ratio": 2, "members": [{"name": "a", "port": 80}]}}))
    eq("rules: a runtime error names the rule", [
        'spec.members[0]: Invalid value: "object": no such key: port evaluating rule: self.port > 1024'],
       rule_msgs({"spec": {"size": 1, "members": [{"name": "a"}]}}))
    eq("rules: transition rules only on update", [], rule_msgs({"spec": {"size": 1, "storage": "b"}}))
    eq("rules: transition rules on update; reason Forbidden", [
        'spec.size: Invalid value: "integer": failed rule: self >= oldSelf || oldSelf - self <= 2',
        "spec.storage: Forbidden: storage is immutable"],
       rule_msgs({"spec": {"size": 1, "storage": "b"}}, {"spec": {"size": 7, "storage": "a"}}))
    eq("rules: ratcheting: an unchanged invalid value is accepted on update", [],
       rule_msgs({"spec": {"size": 4, "learners": 1}}, {"spec": {"size": 4}}))
    eq("rules: map-list items correlate by key for transition rules", [],
       rule_msgs({"spec": {"size": 1, "members": [{"name": "b", "port": 2000}, {"name": "a", "port": 2001}]}},
                 {"spec": {"size": 1, "members": [{"name": "a", "port": 2001}]}}))
    eq("CRD refused: rule outside the subset, messageExpression, unknown field, bad reason, bad fieldPath", [
        'spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: '
        '"self.size.startsWith(\'x\') || quantity(self.size) > 0": compilation failed: undeclared reference to '
        '\'quantity\' (in container \'\') at column 30: kube-lite\'s CEL subset has no such function',
        'spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].messageExpression: Invalid '
        'value: "\'bad: \' + string(self.size)": kube-lite does not support messageExpression (rule "self.size > 0"); '
        'use message',
        'spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[2].rule: Invalid value: '
        '"self.sise > 0": compilation failed: undefined field \'sise\'',
        'spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[3].reason: Unsupported value: '
        '"Bad": supported values: "FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", '
        '"FieldValueDuplicate"',
        'spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[4].fieldPath: Invalid value: '
        '"self.size > 0": compilation failed: fieldPath ".nope" does not refer to a valid field'],
       crd_problems([{"rule": "self.size.startsWith('x') || quantity(self.size) > 0"},
                     {"rule": "self.size > 0", "messageExpression": "'bad: ' + string(self.size)"},
                     {"rule": "self.sise > 0"}, {"rule": "self.size > 0", "reason": "Bad"},
                     {"rule": "self.size > 0", "fieldPath": ".nope"}]))
    eq("CRD refused: oldSelf under a list that is not a map list", [
        "spec.validation.openAPIV3Schema.properties[l].items.x-kubernetes-validations[0].rule: Invalid value: "
        '"self == oldSelf": compilation failed: oldSelf cannot be used on the uncorrelatable portion of the '
        "schema within spec.validation.openAPIV3Schema.properties[l].items"],
       crd_problems(None, {"type": "object", "properties": {"l": {"type": "array", "items": {
           "type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}}}))
    eq("CRD accepted: root rules may read metadata.name, apiVersion, kind", [],
       crd_problems(None, {"type": "object", "x-kubernetes-validations": [
           {"rule": "self.metadata.name.size() < 20 && self.kind == 'X' && has(self.apiVersion)"}]}))
    eq("CRD accepted: root rules read metadata.name even when the schema declares metadata (as "
       "an object without properties, like most CRDs do); other metadata fields stay hidden", [
        "spec.validation.openAPIV3Schema.x-kubernetes-validations[1].rule: Invalid value: "
        '"has(self.metadata.uid)": compilation failed: undefined field \'uid\''],
       crd_problems(None, {"type": "object", "properties": {"metadata": {"type": "object"}},
                           "x-kubernetes-validations": [
                               {"rule": "size(self.metadata.name) <= 45"},
                               {"rule": "has(self.metadata.uid)"}]}))
    tree, _ = schema.compile_validations({"type": "object", "x-kubernetes-validations": [
        {"rule": "self.metadata.name.startsWith('c')", "message": "name must start with c"}]})
    eq("root rule: field <nil>, metadata restricted to name", ['<nil>: Invalid value: "object": name must start with c'],
       ["%s: %s" % (c["field"], c["message"]) for c in schema.validate_rules(
           tree, {"apiVersion": "a/v1", "kind": "X", "metadata": {"name": "x", "uid": "u"}})])


for t in (test_patch, test_schema, test_selectors, test_store, test_pki, test_events, test_cel, test_cel_rules):
    t()
print("%d passed, %d failed" % (N["pass"], N["fail"]))
sys.exit(1 if N["fail"] else 0)
