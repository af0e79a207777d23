"""kube-lite event recorder: core/v1 Events from the controllers and the kubelet.

Purpose: what client-go's EventRecorder does, so `kubectl describe` and `kubectl get events`
show what happened (SuccessfulCreate/SuccessfulDelete from the StatefulSet, Job and CronJob
controllers; Started/Killing/Unhealthy/BackOff from the kubelet). `Recorder(client, component)`
.event(obj, type, reason, message, field_path=None, kind=None, api_version=None,
component=None) queues one event; a background thread POSTs
it to /api/v1/namespaces/<ns>/events (cluster-scoped objects: namespace "default").
Event object written (core/v1):
  metadata.name "<object name>.<16 hex digits of the time in ns>", metadata.namespace;
  involvedObject {kind, namespace, name, uid, apiVersion, resourceVersion, fieldPath?} (what
  kubectl describe selects on: involvedObject.kind/name/namespace/uid field selectors);
  type Normal|Warning, reason, message, source {component, host "kube-lite"},
  firstTimestamp, lastTimestamp, count, reportingComponent, reportingInstance.
Aggregation: an event equal to a recent one (same object uid, type, reason, message, field
path) is not created again: the existing Event's count and lastTimestamp are merge-patched
(created anew if it was deleted meanwhile). At most CACHE recent keys are remembered.
Invariants: recording never blocks or raises into the caller (a full queue drops the event);
an API error loses only that event; the thread stops with the stop event.
"""
import collections
import datetime
import queue
import threading
import time

from . import client as kc

CACHE = 4096
QUEUE = 2048
HOST = "kube-lite"


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def involved(obj, field_path=None, kind=None, api_version=None):
    """The involvedObject reference of obj (an object as read from the API; kind and
    api_version, when given, win over the object's own)."""
    md = obj.get("metadata") or {}
    ref = {"kind": kind or obj.get("kind", ""), "name": md.get("name", ""),
           "uid": md.get("uid", ""), "apiVersion": api_version or obj.get("apiVersion", ""),
           "resourceVersion": md.get("resourceVersion", "")}
    if md.get("namespace"):
        ref["namespace"] = md["namespace"]
    if field_path:
        ref["fieldPath"] = field_path
    return ref


class Recorder:
    def __init__(self, client, component, stop=None):
        self.c = client
        self.component = component
        self.stop = stop or threading.Event()
        self.q = queue.Queue(QUEUE)
        self.seen = collections.OrderedDict()  # key -> [event name, namespace, count]
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="events-" + component)
        self.thread.start()

    def event(self, obj, etype, reason, message, field_path=None, kind=None, api_version=None,
              component=None):
        """Queue an event about obj (metadata.name/uid; kind/apiVersion from obj or given);
        component (the "From" kubectl shows) defaults to the recorder's."""
        try:
            self.q.put_nowait((involved(obj, field_path, kind, api_version), etype, reason,
                               message, _now(), component or self.component))
        except queue.Full:
            pass

    def _run(self):
        while not self.stop.is_set():
            try:
                item = self.q.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._write(*item)
            except kc.ApiError:
                pass
            except Exception as e:  # noqa: BLE001 - never let the recorder die
                print("events: %r" % e, flush=True)

    def _write(self, ref, etype, reason, message, ts, component):
        key = (ref.get("uid") or (ref.get("namespace"), ref["kind"], ref["name"]),
               etype, reason, message, ref.get("fieldPath"))
        hit = self.seen.get(key)
        if hit is not None:
            name, ns, count = hit
            try:
                self.c.patch("events", ns, name, {"count": count + 1, "lastTimestamp": ts})
                hit[2] = count + 1
                self.seen.move_to_end(key)
                return
            except kc.ApiError as e:
                if e.code != 404:
                    raise
        ns = ref.get("namespace") or "default"
        name = "%s.%016x" % (ref["name"], time.time_ns())
        self.c.create("events", ns, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": ref, "type": etype, "reason": reason, "message": message,
            "source": {"component": component, "host": HOST},
            "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
            "reportingComponent": component, "reportingInstance": HOST})
        self.seen[key] = [name, ns, 1]
        while len(self.seen) > CACHE:
            self.seen.popitem(last=False)
