"""CRD openAPIV3Schema validation and pruning for custom resources.

Purpose: check a custom resource against its CRD version's structural schema the way the
Kubernetes API server does, and drop fields the schema does not know (pruning), so a CR that
violates its schema is answered 422 with causes naming each field.

Supported keywords: type (object, array, string, integer, number, boolean), properties, required,
items, additionalProperties (bool or schema), enum, pattern, minimum/maximum with
exclusiveMinimum/exclusiveMaximum, minLength/maxLength, minItems/maxItems, minProperties/
maxProperties, nullable, x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields,
x-kubernetes-embedded-resource; `metadata` at the top level is never pruned.

Invariants: validate() never raises on bad input; it returns a list of causes, each
{"reason", "message", "field"} with messages in the API server's wording, e.g. field
`spec.size`, message `Invalid value: 4: spec.size in body should be less than or equal to 3`.
"""
import json
import re

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
