"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch.

Purpose: turn (current object, patch document) into the patched object, as the Kubernetes API
server does for the content types application/merge-patch+json, application/json-patch+json and
application/strategic-merge-patch+json.

Invariants: the input object is never modified (every function works on a deep copy); a bad
patch raises PatchError with a message, never another exception type.

Strategic merge patch is the subset kubectl produces for built-in kinds: lists of maps merge by
a key chosen by field name (containers/env/volumes... by name, volumeMounts by mountPath,
ports by containerPort or port, conditions by type, ownerReferences by uid), primitive lists
marked merge (finalizers) are unioned, every other list is replaced. Directives: null deletes a
key, `$patch: replace|delete|merge` in maps and list items, `$retainKeys`,
`$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>` (order is applied when given).
"""
import copy
import json


class PatchError(Exception):
    pass


MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath",
    "volumeDevices": "devicePath", "imagePullSecrets": "name", "conditions": "type",
    "ownerReferences": "uid", "hostAliases": "ip", "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name", "readinessGates": "conditionType",
}
MERGE_PRIMITIVE = {"finalizers"}


def merge_patch(obj, patch):
    """RFC 7386 JSON merge patch."""
    return _merge(copy.deepcopy(obj), patch)


def _merge(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = _merge(target.get(k), v)
    return target


# ---------------- JSON patch ----------------

def _ptr(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise PatchError("path not found: %s" % p)
            cur = cur[p]
        elif isinstance(cur, list):
            cur = cur[_index(cur, p, False)]
        else:
            raise PatchError("path not found: %s" % p)
    return cur


def _index(lst, p, for_add):
    if for_add and p == "-":
        return len(lst)
    try:
        i = int(p)
    except ValueError:
        raise PatchError("invalid array index %r" % p)
    limit = len(lst) if for_add else len(lst) - 1
    if i < 0 or i > limit:
        raise PatchError("array index %d out of range" % i)
    return i


def _get(doc, path):
    return _walk(doc, _ptr(path))


def _remove(doc, parts):
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("unable to remove nonexistent key: %s" % last)
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, False))
    raise PatchError("cannot remove from a scalar")


def _add(doc, parts, value):
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def json_patch(obj, ops):
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(obj)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("invalid operation %r" % (op,))
        kind, parts = op["op"], _ptr(op["path"])
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _walk(doc, parts)
            if not parts:
                doc = copy.deepcopy(op.get("value"))
            else:
                _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _ptr(op.get("from", ""))
            val = _remove(doc, src) if kind == "move" else copy.deepcopy(_walk(doc, src))
            doc = _add(doc, parts, val)
        elif kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise PatchError("testing value %s failed" % op["path"])
        else:
            raise PatchError("unsupported operation %r" % kind)
    return doc


# ---------------- strategic merge patch ----------------

def strategic_merge_patch(obj, patch):
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return _smp_map(copy.deepcopy(obj), patch)


def _smp_map(target, patch):
    if not isinstance(target, dict):
        target = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(target.get(field), list) and isinstance(v, list):
                target[field] = [x for x in target[field] if x not in v]
            continue
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict):
            merged = _smp_map(target.get(k), v)
            if merged is None:
                target.pop(k, None)
            else:
                target[k] = merged
        elif isinstance(v, list):
            target[k] = _smp_list(k, target.get(k), v)
        else:
            target[k] = copy.deepcopy(v)
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") and isinstance(target.get(k.split("/", 1)[1]), list):
            field = k.split("/", 1)[1]
            target[field] = _order(field, target[field], v)
    if isinstance(retain, list):
        for k in list(target.keys()):
            if k not in retain:
                del target[k]
    return target


def _key_for(field, items):
    key = MERGE_KEYS.get(field)
    if field == "ports":
        dicts = [i for i in items if isinstance(i, dict)]
        key = "containerPort" if any("containerPort" in i for i in dicts) else "port"
    return key


def _smp_list(field, cur, patch):
    if not isinstance(cur, list):
        cur = []
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in MERGE_PRIMITIVE:
        out = list(cur)
        out.extend(x for x in patch if x not in out)
        return out
    key = _key_for(field, patch + cur)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return copy.deepcopy(patch)
    out = [copy.deepcopy(i) for i in cur]
    for item in patch:
        kv = item.get(key)
        idx = next((n for n, c in enumerate(out) if isinstance(c, dict) and c.get(key) == kv), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            out[idx] = _smp_map(out[idx], item)
    return out


def _order(field, items, order):
    key = _key_for(field, items)
    if key is None:
        rank = {json.dumps(v, sort_keys=True): n for n, v in enumerate(order)}
        ident = lambda i: json.dumps(i, sort_keys=True)  # noqa: E731
    else:
        rank = {json.dumps(v.get(key) if isinstance(v, dict) else v): n for n, v in enumerate(order)}
        ident = lambda i: json.dumps(i.get(key) if isinstance(i, dict) else i)  # noqa: E731
    return sorted(items, key=lambda i: rank.get(ident(i), len(rank)))
