"""kube-lite object store: in-memory objects, one global resourceVersion, a bounded event history.

Purpose: hold every API object of the kube-lite API server and the history that watches replay.
Objects are keyed by group-resource ("apps/statefulsets", "/pods") then (namespace, name); the
namespace is "" for cluster-scoped objects.

Invariants:
  - `rv` is the one global resourceVersion; every successful write (create, update, delete)
    takes rv + 1 and stamps it into the stored object's metadata.resourceVersion (as a string).
  - Stored objects are never mutated after they are handed to the store: writers pass a fresh
    dict and readers may serialize what they get without copying, outside the lock.
  - `history` holds the most recent events in rv order (at most `window` of them); every event
    with rv > `compacted` is in it, so a watch from any N >= `compacted` can be replayed exactly
    and a watch from N < `compacted` must answer 410 Gone.
  - `cond` (on `lock`) is notified after every write; watchers and the garbage collector wait
    on it.
State is memory only: it dies with the process (no snapshot on disk).
"""
import collections
import threading


class Gone(Exception):
    """The requested resourceVersion is older than the history window."""


class Event:
    __slots__ = ("rv", "type", "gr", "obj", "old")

    def __init__(self, rv, etype, gr, obj, old):
        self.rv = rv
        self.type = etype
        self.gr = gr
        self.obj = obj
        self.old = old


class Store:
    def __init__(self, window=1000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 0
        self.data = collections.defaultdict(dict)
        self.history = collections.deque()
        self.window = max(10, int(window))
        self.compacted = 0

    # ---- reads (call with or without the lock; results are immutable by convention) ----
    def get(self, gr, ns, name):
        with self.lock:
            return self.data[gr].get((ns, name))

    def list(self, gr, ns=None):
        """All objects of a group-resource (in one namespace if ns is not None), and the rv."""
        with self.lock:
            objs = self.data[gr]
            if ns is None:
                items = list(objs.values())
            else:
                items = [o for (n, _), o in objs.items() if n == ns]
            return items, self.rv

    def all_items(self):
        """Every (gr, obj) in the store, and the rv (used by the garbage collector)."""
        with self.lock:
            out = [(gr, o) for gr, objs in self.data.items() for o in objs.values()]
            return out, self.rv

    # ---- writes ----
    def _record(self, etype, gr, obj, old):
        ev = Event(self.rv, etype, gr, obj, old)
        self.history.append(ev)
        while len(self.history) > self.window:
            self.compacted = self.history.popleft().rv
        self.cond.notify_all()

    def _stamp(self, obj):
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)

    def put(self, gr, obj, etype):
        """Store obj (fresh dict) as ADDED or MODIFIED; returns it with its new rv."""
        md = obj["metadata"]
        key = (md.get("namespace", ""), md["name"])
        with self.lock:
            old = self.data[gr].get(key)
            self._stamp(obj)
            self.data[gr][key] = obj
            self._record(etype, gr, obj, old)
            return obj

    def remove(self, gr, ns, name):
        """Remove an object; its DELETED event carries a new rv. Returns the final object."""
        with self.lock:
            old = self.data[gr].pop((ns, name), None)
            if old is None:
                return None
            final = dict(old)
            final["metadata"] = dict(old["metadata"])
            self._stamp(final)
            self._record("DELETED", gr, final, old)
            return final

    # ---- watch support ----
    def events_after(self, rv):
        """Events with rv > given rv; raises Gone when some of them left the window."""
        with self.lock:
            if rv < self.compacted:
                raise Gone()
            if rv >= self.rv:
                return []
            out = []
            for e in reversed(self.history):    # newest first: cost ~ number of new events
                if e.rv <= rv:
                    break
                out.append(e)
            out.reverse()
            return out

    def wait_after(self, rv, timeout):
        """Block until the store's rv exceeds rv or timeout passes; returns the current rv."""
        with self.cond:
            if self.rv <= rv:
                self.cond.wait(timeout)
            return self.rv
