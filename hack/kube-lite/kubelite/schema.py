"""CRD openAPIV3Schema validation and pruning for custom resources.

Purpose: check a custom resource against its CRD version's structural schema the way the
Kubernetes API server does, and drop fields the schema does not know (pruning), so a CR that
violates its schema is answered 422 with causes naming each field.

Supported keywords: type (object, array, string, integer, number, boolean), properties, required,
items, additionalProperties (bool or schema), enum, pattern, minimum/maximum with
exclusiveMinimum/exclusiveMaximum, minLength/maxLength, minItems/maxItems, minProperties/
maxProperties, nullable, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields,
x-kubernetes-embedded-resource; `metadata` at the top level is never pruned.

x-kubernetes-validations (CEL rules, language subset in cel.py): compile_validations() compiles
every rule of a schema when a CRD is created or updated and returns the problems that make the
API server refuse the CRD (a rule outside the subset, messageExpression, optionalOldSelf, a bad
reason or fieldPath, oldSelf under a list that is not a map list); validate_rules() runs them on a
custom resource as the API server (1.28-1.33) does:
  - a rule is evaluated on every non-null value its schema node describes (list items and map
    values included), with `self` = that value (at the resource root: apiVersion, kind, spec...,
    and metadata with only name and generateName); integers in a `number` field are doubles;
  - a transition rule (one using oldSelf) runs only on update, where the old object has a
    value at the same place (properties and map keys always correlate; list items only in
    x-kubernetes-list-type: map lists, by their keys);
  - ratcheting (CRDValidationRatcheting, on by default since 1.30): a failing rule without
    oldSelf is ignored when the value it guards is unchanged from the old object;
  - a false rule gives cause {field: path (+ fieldPath), reason FieldValueInvalid, message
    `Invalid value: "<schema type>": <message>`} where <message> is the rule's message or
    `failed rule: <rule>`; reason FieldValueForbidden/Required/Duplicate give `Forbidden: ..`,
    `Required value: ..`, `Duplicate value: "<type>"`; a runtime error gives
    `Invalid value: "<type>": <error> evaluating rule: <rule>`; the root's field is `<nil>`.
Not done: the CEL cost budget, ratcheting of the OpenAPI (non-CEL) checks.

Invariants: validate() never raises on bad input; it returns a list of causes, each
{"reason", "message", "field"} with messages in the API server's wording, e.g. field
`spec.size`, message `Invalid value: 4: spec.size in body should be less than or equal to 3`.
validate_rules() never raises either; compiled rule trees are immutable once built.
"""
import json
import re

from . import cel

TYPE_CHECK = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _show(v):
    if isinstance(v, (dict, list)):
        return '"%s"' % type(v).__name__
    return json.dumps(v)


def _cause(reason, field, msg):
    return {"reason": reason, "field": field, "message": msg}


def _json_type(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _type_ok(schema, v):
    if v is None:
        return bool(schema.get("nullable"))
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(v, (int, str)) and not isinstance(v, bool)
    t = schema.get("type")
    return t is None or TYPE_CHECK.get(t, lambda _: True)(v)


def validate(schema, value, path=""):
    """Return the causes why value does not satisfy schema (empty list: valid)."""
    out = []
    _check(schema or {}, value, path, out)
    return out


def _check(s, v, path, out):
    field = path or "<root>"
    if not _type_ok(s, v):
        if v is None:
            out.append(_cause("FieldValueRequired", field, "Required value"))
        else:
            out.append(_cause("FieldValueTypeInvalid", field, "Invalid value: %s: %s in body must be of type %s: %s"
                              % (_show(v), field, s.get("type"), _show(_json_type(v)))))
        return
    if v is None:
        return
    if "enum" in s and v not in s["enum"]:
        sup = ", ".join(json.dumps(e) for e in s["enum"])
        out.append(_cause("FieldValueNotSupported", field,
                          "Unsupported value: %s: supported values: %s" % (_show(v), sup)))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        _check_number(s, v, field, out)
    if isinstance(v, str):
        _check_string(s, v, field, out)
    if isinstance(v, list):
        _check_array(s, v, path, field, out)
    if isinstance(v, dict):
        _check_object(s, v, path, field, out)


def _check_number(s, v, field, out):
    if "minimum" in s:
        lo, excl = s["minimum"], s.get("exclusiveMinimum") is True
        if v < lo or (excl and v == lo):
            out.append(_cause("FieldValueInvalid", field, "Invalid value: %s: %s in body should be greater than %s%s"
                              % (_show(v), field, "" if excl else "or equal to ", _show(lo))))
    if "maximum" in s:
        hi, excl = s["maximum"], s.get("exclusiveMaximum") is True
        if v > hi or (excl and v == hi):
            out.append(_cause("FieldValueInvalid", field, "Invalid value: %s: %s in body should be less than %s%s"
                              % (_show(v), field, "" if excl else "or equal to ", _show(hi))))
    if s.get("multipleOf") and v % s["multipleOf"] != 0:
        out.append(_cause("FieldValueInvalid", field, "Invalid value: %s: %s in body should be a multiple of %s"
                          % (_show(v), field, _show(s["multipleOf"]))))


def _check_string(s, v, field, out):
    if "pattern" in s:
        try:
            ok = re.search(s["pattern"], v) is not None
        except re.error:
            ok = True
        if not ok:
            out.append(_cause("FieldValueInvalid", field, "Invalid value: %s: %s in body should match '%s'"
                              % (_show(v), field, s["pattern"])))
    if "minLength" in s and len(v) < s["minLength"]:
        out.append(_cause("FieldValueInvalid", field, "Invalid value: %s: %s in body should be at least %d chars long"
                          % (_show(v), field, s["minLength"])))
    if "maxLength" in s and len(v) > s["maxLength"]:
        out.append(_cause("FieldValueTooLong", field, "Too long: may not be longer than %d" % s["maxLength"]))


def _check_array(s, v, path, field, out):
    if "minItems" in s and len(v) < s["minItems"]:
        out.append(_cause("FieldValueInvalid", field, "Invalid value: %d: %s in body should have at least %d items"
                          % (len(v), field, s["minItems"])))
    if "maxItems" in s and len(v) > s["maxItems"]:
        out.append(_cause("FieldValueTooMany", field, "Too many: %d: must have at most %d items"
                          % (len(v), s["maxItems"])))
    if isinstance(s.get("items"), dict):
        for i, item in enumerate(v):
            _check(s["items"], item, "%s[%d]" % (path, i), out)


def _check_object(s, v, path, field, out):
    props = s.get("properties") or {}
    for req in s.get("required") or []:
        if req not in v:
            out.append(_cause("FieldValueRequired", _join(path, req), "Required value"))
    if "minProperties" in s and len(v) < s["minProperties"]:
        out.append(_cause("FieldValueInvalid", field, "Invalid value: %d: %s in body should have at least %d properties"
                          % (len(v), field, s["minProperties"])))
    if "maxProperties" in s and len(v) > s["maxProperties"]:
        out.append(_cause("FieldValueTooMany", field, "Too many: %d: must have at most %d items"
                          % (len(v), s["maxProperties"])))
    addl = s.get("additionalProperties")
    for k, item in v.items():
        if path == "" and k in ("apiVersion", "kind", "metadata"):
            continue
        if k in props:
            _check(props[k], item, _join(path, k), out)
        elif isinstance(addl, dict):
            _check(addl, item, _join(path, k), out)


def _join(path, k):
    return "%s.%s" % (path, k) if path else k


def prune(schema, value, top=True, path="", dropped=None):
    """Drop object fields the schema does not declare (in place); returns value.

    The dotted paths of dropped fields are appended to `dropped` when it is a list (used for
    ?fieldValidation=Strict, which refuses unknown fields instead of dropping them).
    """
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        if isinstance(schema, dict) and isinstance(value, dict) and schema.get("properties"):
            for k, sub in schema["properties"].items():
                if k in value:
                    prune(sub, value[k], False, _join(path, k), dropped)
        return value
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k in list(value.keys()):
            if top and k in ("apiVersion", "kind", "metadata"):
                continue
            if schema.get("x-kubernetes-embedded-resource") and k in ("apiVersion", "kind", "metadata"):
                continue
            if k in props:
                prune(props[k], value[k], False, _join(path, k), dropped)
            elif isinstance(addl, dict):
                prune(addl, value[k], False, _join(path, k), dropped)
            elif addl is True:
                continue
            else:
                del value[k]
                if dropped is not None:
                    dropped.append(_join(path, k))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            prune(schema["items"], item, False, "%s[%d]" % (path, i), dropped)
    return value


def apply_defaults(schema, value):
    """Fill `default` values of declared properties that are absent (in place); returns value."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if not isinstance(sub, dict):
                continue
            if k not in value and "default" in sub:
                value[k] = json.loads(json.dumps(sub["default"]))
            if k in value:
                apply_defaults(sub, value[k])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(schema["items"], item)
    return value


# ---------------- x-kubernetes-validations (CEL) ----------------

BLOCKING = ("FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany",
            "FieldValueTypeInvalid")
RULE_REASONS = ("FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate")
_NO_OLD = object()
_FP_SEG = re.compile(r"\.([A-Za-z_$][A-Za-z0-9_$-]*)|\['((?:[^'\\]|\\.)*)'\]")


class _Rule:
    """One compiled rule; message is the rule's own message ("" when it has none)."""
    __slots__ = ("prog", "rule", "message", "reason", "field_suffix")

    def __init__(self, prog, rule, message, reason, field_suffix):
        self.prog, self.rule, self.message = prog, rule, message
        self.reason, self.field_suffix = reason, field_suffix

    def detail(self):
        """What a false rule reports (ruleMessageOrDefault)."""
        return self.message or "failed rule: %s" % self.rule

    def name(self):
        """How errors while running it name the rule (ruleErrorString)."""
        return self.message or self.rule


class _Node:
    """Compiled rules of one schema node and of the nodes below it that have rules."""
    __slots__ = ("schema", "rules", "props", "addl", "items", "root")

    def __init__(self, schema, root):
        self.schema, self.root = schema, root
        self.rules, self.props, self.addl, self.items = [], {}, None, None


def has_rules(schema):
    """Does the schema (anywhere below) carry x-kubernetes-validations?"""
    return '"x-kubernetes-validations"' in json.dumps(schema or {})


def compile_validations(schema, where="spec.validation.openAPIV3Schema"):
    """-> (tree or None, problems): problems are causes {reason, field, message} naming each
    rule kube-lite cannot run (the CRD must then be refused with 422)."""
    problems = []
    tree = _compile_node(schema if isinstance(schema, dict) else {}, where, True, True, problems)
    return tree, problems


def _compile_node(s, where, root, correlatable, problems):
    node = _Node(s, root)
    for i, r in enumerate(s.get("x-kubernetes-validations") or []):
        rule = _compile_rule(s, r, "%s.x-kubernetes-validations[%d]" % (where, i), root,
                             correlatable, problems)
        if rule is not None:
            node.rules.append(rule)
    for k, sub in (s.get("properties") or {}).items():
        if isinstance(sub, dict):
            child = _compile_node(sub, "%s.properties[%s]" % (where, k), False, correlatable, problems)
            if child is not None:
                node.props[k] = child
    addl = s.get("additionalProperties")
    if isinstance(addl, dict):
        node.addl = _compile_node(addl, where + ".additionalProperties", False,
                                  correlatable and s.get("x-kubernetes-map-type") != "atomic", problems)
    items = s.get("items")
    if isinstance(items, dict):
        node.items = _compile_node(items, where + ".items", items.get("x-kubernetes-embedded-resource", False),
                                   correlatable and s.get("x-kubernetes-list-type") == "map", problems)
    if node.rules or node.props or node.addl or node.items:
        return node
    return None


def _problem(field, value, msg):
    return _cause("FieldValueInvalid", field, "Invalid value: %s: %s" % (json.dumps(value), msg))


def _compile_rule(s, r, where, root, correlatable, problems):
    if not isinstance(r, dict) or not isinstance(r.get("rule"), str):
        problems.append(_cause("FieldValueRequired", where + ".rule", "Required value"))
        return None
    src = r["rule"]
    if r.get("messageExpression"):
        problems.append(_problem(where + ".messageExpression", r["messageExpression"],
                                 "kube-lite does not support messageExpression (rule %s); use message"
                                 % json.dumps(src)))
        return None
    if r.get("optionalOldSelf"):
        problems.append(_problem(where + ".optionalOldSelf", True, "kube-lite does not support "
                                 "optionalOldSelf (rule %s)" % json.dumps(src)))
        return None
    reason = r.get("reason") or "FieldValueInvalid"
    if reason not in RULE_REASONS:
        problems.append(_cause("FieldValueNotSupported", where + ".reason", "Unsupported value: %s: "
                               "supported values: %s" % (json.dumps(reason), ", ".join(
                                   json.dumps(x) for x in RULE_REASONS))))
        return None
    try:
        prog = cel.compile(src)
        for var in ("self", "oldSelf"):
            for chain in cel.field_chains(prog.ast, var):
                _check_chain(s, chain, root)
        if prog.uses_old_self and not correlatable:
            raise cel.CelError("oldSelf cannot be used on the uncorrelatable portion of the schema "
                               "within %s" % where.rsplit(".x-kubernetes-validations", 1)[0])
        suffix = _field_path(s, r.get("fieldPath") or "")
    except cel.CelError as e:
        field = where + (".fieldPath" if str(e).startswith("fieldPath") else ".rule")
        problems.append(_problem(field, src, "compilation failed: %s" % e))
        return None
    return _Rule(prog, src.strip(), (r.get("message") or "").strip(), reason, suffix)


def _dyn(s):
    return s.get("x-kubernetes-preserve-unknown-fields") or s.get("x-kubernetes-int-or-string") or \
        (not s.get("type") and not s.get("properties"))


def _check_chain(s, chain, root):
    """A field selection chain must name fields the schema declares (as cel-go's type check)."""
    for i, f in enumerate(chain):
        props = s.get("properties") or {}
        if root and i == 0 and f == "metadata":
            # a resource's metadata is ObjectMeta to CEL whatever the schema says of it, with
            # only name and generateName visible
            if len(chain) > 1 and chain[1] not in ("name", "generateName"):
                raise cel.CelError("undefined field '%s'" % chain[1])
            return
        if f in props:
            s = props[f]
        elif root and i == 0 and f in ("apiVersion", "kind"):
            return
        elif isinstance(s.get("additionalProperties"), dict):
            s = s["additionalProperties"]
        elif _dyn(s):
            return
        elif s.get("type") == "object":
            raise cel.CelError("undefined field '%s'" % f)
        else:
            raise cel.CelError("type '%s' does not support field selection" % s.get("type"))
        if not isinstance(s, dict):
            return


def _field_path(s, fp):
    """Normalize a rule's fieldPath (".a.b", ".a['k']") against the schema: "a.b", "a[k]"."""
    if not fp:
        return ""
    pos, out = 0, ""
    while pos < len(fp):
        m = _FP_SEG.match(fp, pos)
        if not m:
            raise cel.CelError("fieldPath %s: expected [ or . at offset %d" % (json.dumps(fp), pos))
        pos = m.end()
        name = m.group(1) if m.group(1) is not None else m.group(2).replace("\\'", "'")
        props = s.get("properties") or {}
        if name in props:
            s, out = props[name], out + ("." if out else "") + name
        elif isinstance(s.get("additionalProperties"), dict):
            s, out = s["additionalProperties"], out + "[%s]" % name
        else:
            raise cel.CelError("fieldPath %s does not refer to a valid field" % json.dumps(fp))
    return out


def validate_rules(tree, obj, old=_NO_OLD):
    """Causes for every failing rule of a compiled tree on obj (old: the stored object on
    update, omitted on create)."""
    out = []
    if tree is not None:
        _walk(tree, obj, old, "", False, out)
    return out


def rules_blocked_cause():
    return _cause("FieldValueInvalid", "<nil>", 'Invalid value: "null": some validation rules were not '
                  "checked because the object was invalid; correct the existing errors to complete "
                  "validation")


def _walk(node, v, old, path, parent_eq, out):
    if v is None:
        return
    eq = (old == v) if old is not _NO_OLD else parent_eq
    if node.rules:
        _run_rules(node, v, old, path, eq, out)
    if isinstance(v, dict):
        olds = old if isinstance(old, dict) else {}
        for k, x in v.items():
            if node.root and k in ("apiVersion", "kind", "metadata"):
                continue
            sub = node.props.get(k) if k in (node.schema.get("properties") or {}) else node.addl
            if sub is not None:
                key = _join(path, k) if k in (node.schema.get("properties") or {}) else "%s[%s]" % (path, k)
                _walk(sub, x, olds.get(k, _NO_OLD), key, eq, out)
    elif isinstance(v, list) and node.items is not None:
        keys = node.schema.get("x-kubernetes-list-map-keys") or []
        olds = old if isinstance(old, list) and node.schema.get("x-kubernetes-list-type") == "map" else []
        for i, x in enumerate(v):
            ox = _NO_OLD
            if olds and isinstance(x, dict):
                ox = next((o for o in olds if isinstance(o, dict) and
                           all(o.get(k) == x.get(k) for k in keys)), _NO_OLD)
            _walk(node.items, x, ox, "%s[%d]" % (path, i), eq, out)


def _to_cel(v, s):
    """A JSON value as CEL sees it under schema s (integers of `number` fields are doubles)."""
    s = s if isinstance(s, dict) else {}
    if isinstance(v, dict):
        props, addl = s.get("properties") or {}, s.get("additionalProperties")
        return {k: _to_cel(x, props.get(k, addl if isinstance(addl, dict) else {})) for k, x in v.items()}
    if isinstance(v, list):
        return [_to_cel(x, s.get("items")) for x in v]
    if isinstance(v, int) and not isinstance(v, bool) and s.get("type") == "number":
        return float(v)
    return v


def _root_view(v, s):
    out = _to_cel(v, s)
    if isinstance(out, dict) and isinstance(out.get("metadata"), dict):
        out["metadata"] = {k: x for k, x in out["metadata"].items() if k in ("name", "generateName")}
    return out


def _run_rules(node, v, old, path, eq, out):
    view = _root_view if node.root else _to_cel
    self_v = view(v, node.schema)
    old_v = view(old, node.schema) if old is not _NO_OLD else None
    typ = node.schema.get("type", "")
    for r in node.rules:
        if r.prog.uses_old_self and old is _NO_OLD:
            continue
        field = path or "<nil>"
        try:
            ok = r.prog.eval(self_v, old_v)
            if not isinstance(ok, bool):
                raise cel.EvalError("no such overload")
        except cel.EvalError as e:
            if str(e).startswith("no such overload"):
                detail = "'%s': call arguments did not match a supported operator, function or macro " \
                         "signature for rule: %s" % (e, r.name())
            else:
                detail = "%s evaluating rule: %s" % (e, r.name())
            out.append(_cause("FieldValueInvalid", field, "Invalid value: %s: %s" % (json.dumps(typ), detail)))
            continue
        if ok or (eq and not r.prog.uses_old_self):
            continue
        if r.field_suffix:
            field = (path + ("" if r.field_suffix.startswith("[") or not path else ".") + r.field_suffix)
        if r.reason == "FieldValueForbidden":
            out.append(_cause(r.reason, field, "Forbidden: %s" % r.detail()))
        elif r.reason == "FieldValueRequired":
            out.append(_cause(r.reason, field, "Required value: %s" % r.detail()))
        elif r.reason == "FieldValueDuplicate":
            out.append(_cause(r.reason, field, "Duplicate value: %s" % json.dumps(typ)))
        else:
            out.append(_cause("FieldValueInvalid", field, "Invalid value: %s: %s" % (json.dumps(typ), r.detail())))
