"""Tiny Kubernetes REST client for kube-lite's controllers and kubelet.

It speaks to the API server only over HTTP, as a real controller would: plain JSON requests,
list + watch (chunked JSON event lines), and an Informer that keeps a local cache of one
resource (list, then watch from the list's resourceVersion, relist on 410 Gone or any stream
error). Invariants: every request carries the bearer token; an error answer raises ApiError
carrying the HTTP code and the decoded Status object; an Informer's cache only changes from
list results or watch events and its handler is called after the cache is updated.
"""

import http.client
import json
import threading
import urllib.parse

# resource plural -> (API prefix, namespaced)
RESOURCES = {
    "pods": ("/api/v1", True),
    "services": ("/api/v1", True),
    "endpoints": ("/api/v1", True),
    "configmaps": ("/api/v1", True),
    "secrets": ("/api/v1", True),
    "persistentvolumeclaims": ("/api/v1", True),
    "events": ("/api/v1", True),
    "serviceaccounts": ("/api/v1", True),
    "namespaces": ("/api/v1", False),
    "nodes": ("/api/v1", False),
    "statefulsets": ("/apis/apps/v1", True),
    "deployments": ("/apis/apps/v1", True),
    "replicasets": ("/apis/apps/v1", True),
    "poddisruptionbudgets": ("/apis/policy/v1", True),
    "jobs": ("/apis/batch/v1", True),
    "cronjobs": ("/apis/batch/v1", True),
}


class ApiError(Exception):
    """An HTTP error answer from the API server (code 0: transport failure)."""

    def __init__(self, code, status):
        self.code = code
        self.status = status if isinstance(status, dict) else {"message": str(status)}
        super().__init__("%d %s" % (code, self.status.get("message", "")))


def path(resource, ns=None, name=None, sub=None):
    """URL path of a collection or object (sub: status, log, scale)."""
    prefix, namespaced = RESOURCES[resource]
    p = prefix
    if namespaced and ns:
        p += "/namespaces/" + ns
    p += "/" + resource
    if name:
        p += "/" + name
        if sub:
            p += "/" + sub
    return p


class Client:
    """HTTP client bound to one API server URL and bearer token. Thread-safe: one
    connection per request (the API server is local, connects are cheap)."""

    def __init__(self, url, token, timeout=30):
        u = urllib.parse.urlsplit(url)
        self.host = u.hostname
        self.port = u.port or 80
        self.token = token
        self.timeout = timeout

    def _conn(self, timeout=None):
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout or self.timeout)

    def _headers(self, ctype=None):
        h = {"Accept": "application/json"}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        if ctype:
            h["Content-Type"] = ctype
        return h

    def request(self, method, p, body=None, query=None,
                ctype="application/json"):
        """Send one request; return the decoded JSON answer; raise ApiError on >= 400."""
        if query:
            p += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        conn = self._conn()
        try:
            conn.request(method, p, body=data,
                         headers=self._headers(ctype if data is not None else None))
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise ApiError(0, {"message": "transport: %s" % e})
        finally:
            conn.close()
        try:
            obj = json.loads(raw) if raw else {}
        except ValueError:
            obj = {"message": raw.decode(errors="replace")}
        if resp.status >= 400:
            raise ApiError(resp.status, obj)
        return obj

    # --- verbs -------------------------------------------------------------------
    def get(self, resource, ns, name, sub=None):
        return self.request("GET", path(resource, ns, name, sub))

    def get_or_none(self, resource, ns, name):
        try:
            return self.get(resource, ns, name)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def list(self, resource, ns=None, **query):
        return self.request("GET", path(resource, ns), query=query or None)

    def create(self, resource, ns, obj):
        return self.request("POST", path(resource, ns), obj)

    def update(self, resource, ns, obj, sub=None):
        return self.request("PUT", path(resource, ns, obj["metadata"]["name"], sub), obj)

    def patch(self, resource, ns, name, patch, sub=None,
              ctype="application/merge-patch+json"):
        return self.request("PATCH", path(resource, ns, name, sub), patch, ctype=ctype)

    def patch_status(self, resource, ns, name, status):
        """Merge-patch .status through the status subresource (falls back to the object)."""
        try:
            return self.patch(resource, ns, name, {"status": status}, sub="status")
        except ApiError as e:
            if e.code not in (404, 405):
                raise
            return self.patch(resource, ns, name, {"status": status})

    def delete(self, resource, ns, name, grace=None, uid=None, propagation=None):
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace is not None:
            body["gracePeriodSeconds"] = grace
        if uid:
            body["preconditions"] = {"uid": uid}
        if propagation:
            body["propagationPolicy"] = propagation
        try:
            return self.request("DELETE", path(resource, ns, name), body)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def watch(self, resource, rv, timeout=60, stop=None):
        """Yield watch events (dicts with type/object) from resourceVersion rv.
        Raises ApiError(410) when rv is too old; returns when the stream ends."""
        q = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": str(timeout),
             "allowWatchBookmarks": "true"}
        conn = self._conn(timeout=timeout + 15)
        try:
            conn.request("GET", path(resource) + "?" + urllib.parse.urlencode(q),
                         headers=self._headers())
            resp = conn.getresponse()
            if resp.status >= 400:
                raw = resp.read()
                try:
                    st = json.loads(raw)
                except ValueError:
                    st = {"message": raw.decode(errors="replace")}
                raise ApiError(resp.status, st)
            while stop is None or not stop.is_set():
                line = resp.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    continue
                ev = json.loads(line)
                if ev.get("type") == "ERROR":
                    st = ev.get("object") or {}
                    raise ApiError(st.get("code", 500), st)
                yield ev
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise ApiError(0, {"message": "watch transport: %s" % e})
        finally:
            conn.close()


def key(obj):
    md = obj.get("metadata", {})
    return (md.get("namespace", ""), md.get("name", ""))


class Informer:
    """Cache of one resource type across all namespaces, kept by list + watch.

    handler(event_type, obj, old) is called from the informer thread after each change
    (event_type ADDED/MODIFIED/DELETED; on relist, synthetic events for differences)."""

    def __init__(self, client, resource, handler, stop):
        self.client = client
        self.resource = resource
        self.handler = handler
        self.stop = stop
        self.cache = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="informer-" + resource)

    def start(self):
        self.thread.start()
        return self

    def items(self, ns=None):
        with self.lock:
            return [o for (n, _), o in self.cache.items() if ns is None or n == ns]

    def get(self, ns, name):
        with self.lock:
            return self.cache.get((ns, name))

    def _emit(self, typ, obj, old):
        try:
            self.handler(typ, obj, old)
        except Exception as e:  # a handler bug must not kill the informer
            print("informer %s handler error: %s" % (self.resource, e), flush=True)

    def _relist(self):
        lst = self.client.list(self.resource)
        new = {key(o): o for o in lst.get("items", [])}
        with self.lock:
            old = self.cache
            self.cache = new
        for k, o in new.items():
            if k not in old:
                self._emit("ADDED", o, None)
            elif old[k].get("metadata", {}).get("resourceVersion") != \
                    o.get("metadata", {}).get("resourceVersion"):
                self._emit("MODIFIED", o, old[k])
        for k, o in old.items():
            if k not in new:
                self._emit("DELETED", o, o)
        self.synced.set()
        return lst.get("metadata", {}).get("resourceVersion", "0")

    def _apply(self, ev):
        obj = ev.get("object") or {}
        typ = ev.get("type")
        if typ == "BOOKMARK":
            return
        k = key(obj)
        with self.lock:
            old = self.cache.get(k)
            if typ == "DELETED":
                self.cache.pop(k, None)
            else:
                self.cache[k] = obj
        self._emit(typ, obj, old)

    def _run(self):
        rv = None
        while not self.stop.is_set():
            try:
                if rv is None:
                    rv = self._relist()
                for ev in self.client.watch(self.resource, rv, timeout=50, stop=self.stop):
                    nrv = (ev.get("object") or {}).get("metadata", {}).get("resourceVersion")
                    self._apply(ev)
                    if nrv:
                        rv = nrv
            except ApiError as e:
                if e.code != 410:
                    self.stop.wait(0.5)
                rv = None  # relist on 410 and on any broken stream
            except Exception as e:
                print("informer %s: %s" % (self.resource, e), flush=True)
                rv = None
                self.stop.wait(1)
