"""Garbage collector and deletion finisher of the kube-lite API server (one thread).

Purpose: what kube-controller-manager's garbage collector and namespace controller do:
  - an object whose ownerReferences all name uids that no longer exist is deleted
    (background propagation);
  - an owner being deleted with the `foregroundDeletion` finalizer has its dependents deleted,
    and loses the finalizer (and so goes away) once none is left;
  - an owner with the `orphan` finalizer has its uid removed from its dependents'
    ownerReferences, then loses the finalizer;
  - a namespace with a deletionTimestamp has all its objects deleted, then goes away;
  - a pod in graceful deletion that nobody finished is removed 15 s after its deadline.
Invariants: the collector only acts through Api methods (same locks, same events as a client
would cause); a scan runs after every batch of writes (at most one per 0.2 s) and at least every
2 s; one failed action
is logged and never stops the thread.
"""
import copy
import threading
import time

SCAN_EVERY = 2.0
MIN_GAP = 0.2


def start(server):
    t = threading.Thread(target=_run, args=(server,), name="gc", daemon=True)
    t.start()
    return t


def _run(server):
    last_rv, last_scan = -1, 0.0
    while not server.stopping.is_set():
        rv = server.store.wait_after(last_rv, 0.5)
        since = time.monotonic() - last_scan
        if rv == last_rv and since < SCAN_EVERY:
            continue
        if since < MIN_GAP:     # batch bursts of writes: at most one scan per MIN_GAP
            time.sleep(MIN_GAP - since)
            rv = server.store.rv
        last_rv, last_scan = rv, time.monotonic()
        try:
            scan(server)
        except Exception as e:  # noqa: BLE001 - keep collecting
            server.log("gc: scan failed: %r" % e)


def _rd_of(server, gr):
    with server.reg.lock:
        return server.reg.by_gr.get(gr)


def scan(server):
    from .apiserver import ApiError, _parse_ts
    items, _ = server.store.all_items()
    uids = {o["metadata"].get("uid") for _, o in items}
    deps = {}
    for gr, o in items:
        for ref in o["metadata"].get("ownerReferences") or []:
            deps.setdefault(ref.get("uid"), []).append((gr, o))
    api = server.api
    for gr, o in items:
        md = o["metadata"]
        rd = _rd_of(server, gr)
        if rd is None:
            continue
        try:
            if md.get("deletionTimestamp"):
                _finish(server, rd, gr, o, deps.get(md.get("uid"), []), items, _parse_ts)
            elif md.get("ownerReferences") and not any(r.get("uid") in uids for r in md["ownerReferences"]):
                api.delete(rd, md.get("namespace", ""), md["name"],
                           {"propagationPolicy": "Background", "preconditions": {"uid": md.get("uid")}})
        except ApiError:
            pass


def _finish(server, rd, gr, o, dependents, items, parse_ts):
    api = server.api
    md = o["metadata"]
    fins = md.get("finalizers") or []
    if gr == "/namespaces":
        left = [(g, x) for g, x in items if x["metadata"].get("namespace") == md["name"] and g != gr]
        for g, x in left:
            drd = _rd_of(server, g)
            if drd is not None and not x["metadata"].get("deletionTimestamp"):
                _delete(api, drd, x)
            elif drd is not None and g == "/pods" and \
                    time.time() > parse_ts(x["metadata"]["deletionTimestamp"]) + 15:
                api.force_remove(drd, x)
        if not left and not [f for f in fins if f not in ("kubernetes",)]:
            api.force_remove(rd, o)
        return
    if "orphan" in fins:
        for g, x in dependents:
            _drop_owner(api, _rd_of(server, g), x, md.get("uid"))
        api.remove_finalizer(rd, o, "orphan")
        return
    if "foregroundDeletion" in fins:
        live = [(g, x) for g, x in dependents]
        for g, x in live:
            drd = _rd_of(server, g)
            if drd is not None and not x["metadata"].get("deletionTimestamp"):
                _delete(api, drd, x, "Foreground")
        if not live:
            api.remove_finalizer(rd, o, "foregroundDeletion")
        return
    if gr == "/pods" and md.get("deletionGracePeriodSeconds") and \
            time.time() > parse_ts(md["deletionTimestamp"]) + 15:
        server.log("gc: force-removing pod %s/%s (graceful deletion not finished)" % (
            md.get("namespace"), md["name"]))
        api.force_remove(rd, o)


def _delete(api, rd, x, policy="Background"):
    from .apiserver import ApiError
    xm = x["metadata"]
    try:
        api.delete(rd, xm.get("namespace", ""), xm["name"],
                   {"propagationPolicy": policy, "preconditions": {"uid": xm.get("uid")}})
    except ApiError:
        pass


def _drop_owner(api, rd, x, uid):
    if rd is None:
        return
    xm = x["metadata"]
    with api.store.lock:
        cur = api.store.get(rd.gr, xm.get("namespace", ""), xm["name"])
        if cur is None or cur["metadata"].get("uid") != xm.get("uid"):
            return
        new = copy.deepcopy(cur)
        refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        api._commit_update(rd, cur, new)
