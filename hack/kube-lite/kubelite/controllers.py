"""kube-lite controllers: StatefulSet, Deployment, ReplicaSet, Job, CronJob, Endpoints, Service
ClusterIPs, PVC binding and protection, PodDisruptionBudget status, default ServiceAccounts and the
`kubernetes` Service.

Each controller is level-triggered: informers (client.Informer: list + watch over HTTP) keep
caches; any event marks the controller dirty and its thread re-reconciles every object from the
caches (plus a periodic resync, 2 s; CronJob also ticks for schedules). Writes go to the API
server; a 409 (stale cache, already exists) is ignored because the next pass sees fresh data.
Invariants: a controller only touches objects it owns (ownerReferences with controller=true
to its uid) or names it derives deterministically (`<sts>-<i>`, `<tmpl>-<sts>-<i>`,
`<cj>-<minutes>`, `<deploy>-<pod-template-hash>`); status is written only when it changed;
PVCs made for a StatefulSet are never deleted by it: with the default retention policy (Retain)
they stay until a user deletes them; with whenDeleted/whenScaled: Delete they get the StatefulSet
or the condemned pod as owner and the garbage collector removes them.
StatefulSet specifics the cetcd operator relies on: a Pending pod whose PVC is missing gets a new
PVC (a PVC deleted together with its pod comes back empty, with a new uid); Parallel pods are
created and deleted all at once; scale-down removes the highest ordinals.
Events (events.py): SuccessfulCreate/SuccessfulDelete (FailedDelete) for the pods and PVCs of a
StatefulSet, the pods of a Job or ReplicaSet (plus Completed or the failure reason), the Jobs of a
CronJob and ScalingReplicaSet of a Deployment, from "<controller>-controller" as
kube-controller-manager names them.
"""

import calendar
import datetime
import hashlib
import json
import random
import sys
import threading
import time

from . import client as kc
from . import events
from . import net as knet
from . import pki

RESYNC = 2.0


def log(msg):
    print("controllers: %s" % msg, file=sys.stderr, flush=True)


def now_ts():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_of(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def parse_ts(s):
    if not s:
        return None
    try:
        return calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def owner_ref(obj, kind, api_version):
    md = obj["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": md["name"], "uid": md.get("uid"),
            "controller": True, "blockOwnerDeletion": True}


def owned_by(obj, owner):
    uid = owner["metadata"].get("uid")
    for r in obj.get("metadata", {}).get("ownerReferences") or []:
        if r.get("controller") and r.get("uid") == uid:
            return True
    return False


def matches(labels, selector):
    """labelSelector (matchLabels + matchExpressions) or a plain map selector."""
    labels = labels or {}
    if selector is None:
        return False
    ml = selector.get("matchLabels") if ("matchLabels" in selector or
                                         "matchExpressions" in selector) else selector
    for k, v in (ml or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or [] if "matchExpressions" in selector else []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and labels.get(k) in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def pod_ready(p):
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def pod_phase(p):
    return (p.get("status") or {}).get("phase", "Pending")


def terminating(o):
    return bool(o.get("metadata", {}).get("deletionTimestamp"))


def rand_suffix(n=5):
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(n))


class Base:
    """A reconcile loop woken by informer events or every RESYNC seconds."""

    name = "base"

    def __init__(self, ctl):
        self.ctl = ctl
        self.c = ctl.client
        self.dirty = threading.Event()

    def kick(self, *_):
        self.dirty.set()

    def run(self):
        while not self.ctl.stop.is_set():
            self.dirty.wait(RESYNC)
            self.dirty.clear()
            if self.ctl.stop.is_set():
                break
            try:
                self.reconcile()
            except kc.ApiError as e:
                if e.code not in (404, 409):
                    log("%s: %s" % (self.name, e))
            except Exception as e:
                log("%s: %r" % (self.name, e))
                import traceback
                traceback.print_exc()

    def safe(self, fn, obj):
        """fn(obj), an API error logged (not raised) so one object cannot stall the rest."""
        try:
            fn(obj)
        except kc.ApiError as e:
            quiet = e.code in (404, 409) or (e.code == 403 and "terminat" in str(e))
            if not quiet:
                md = obj.get("metadata", {})
                log("%s %s/%s: %s" % (self.name, md.get("namespace"), md.get("name"), e))

    def write_status(self, resource, obj, st):
        cur = obj.get("status") or {}
        if all(cur.get(k) == v for k, v in st.items()):
            return
        try:
            self.c.patch_status(resource, obj["metadata"]["namespace"], obj["metadata"]["name"],
                                st)
        except kc.ApiError as e:
            if e.code not in (404, 409):
                raise

    def create(self, resource, ns, obj):
        try:
            return self.c.create(resource, ns, obj)
        except kc.ApiError as e:
            if e.code != 409:
                raise
            return None

    KINDS = {"statefulsets": ("StatefulSet", "apps/v1"), "jobs": ("Job", "batch/v1"),
             "cronjobs": ("CronJob", "batch/v1"), "deployments": ("Deployment", "apps/v1"),
             "replicasets": ("ReplicaSet", "apps/v1"),
             "poddisruptionbudgets": ("PodDisruptionBudget", "policy/v1")}

    def record(self, owner, resource, etype, reason, msg):
        """An Event about owner (an object of `resource`, kind from KINDS)."""
        kind, av = self.KINDS[resource]
        self.ctl.recorder.event(owner, etype, reason, msg, kind=kind, api_version=av,
                                component=self.name + "-controller")

    def delete_child(self, owner, resource, child_res, obj, msg, propagation=None):
        """Delete a dependent (pod/job) of owner and record SuccessfulDelete (or
        FailedDelete) with msg % name."""
        name = obj["metadata"]["name"]
        try:
            self.c.delete(child_res, obj["metadata"]["namespace"], name, propagation=propagation)
        except kc.ApiError as e:
            if e.code != 409:
                self.record(owner, resource, "Warning", "FailedDelete",
                            (msg % name).replace("successful", "failed") + ": %s" % e)
            raise
        self.record(owner, resource, "Normal", "SuccessfulDelete", msg % name)


# --- StatefulSet -----------------------------------------------------------------------

def template_hash(tmpl):
    return hashlib.sha1(json.dumps(tmpl, sort_keys=True).encode()).hexdigest()[:10]


STS_DELETE = "delete Pod %s in StatefulSet %s successful"


class StatefulSets(Base):
    name = "statefulset"

    def reconcile(self):
        for sts in self.ctl.inf["statefulsets"].items():
            if not terminating(sts):
                self.safe(self.sync, sts)

    def _pods(self, sts):
        md = sts["metadata"]
        out = {}
        for p in self.ctl.inf["pods"].items(md["namespace"]):
            if owned_by(p, sts):
                n = p["metadata"]["name"]
                pre = md["name"] + "-"
                if n.startswith(pre) and n[len(pre):].isdigit():
                    out[int(n[len(pre):])] = p
        return out

    @staticmethod
    def _claims(sts, i):
        md, spec = sts["metadata"], sts.get("spec", {})
        return ["%s-%s-%d" % (t["metadata"]["name"], md["name"], i)
                for t in spec.get("volumeClaimTemplates") or []]

    @staticmethod
    def _retention(sts, when):
        pol = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
        return pol.get(when, "Retain")

    def _ensure_pvcs(self, sts, i):
        md, spec = sts["metadata"], sts.get("spec", {})
        for t in spec.get("volumeClaimTemplates") or []:
            name = "%s-%s-%d" % (t["metadata"]["name"], md["name"], i)
            cur = self.ctl.inf["persistentvolumeclaims"].get(md["namespace"], name)
            if cur is not None:
                self._claim_owner(sts, cur)
                continue
            labels = dict((t.get("metadata") or {}).get("labels") or {})
            labels.update((spec.get("selector") or {}).get("matchLabels") or {})
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": name, "namespace": md["namespace"], "labels": labels},
                   "spec": t.get("spec") or {}}
            if self._retention(sts, "whenDeleted") == "Delete":
                pvc["metadata"]["ownerReferences"] = [owner_ref(sts, "StatefulSet", "apps/v1")]
            if self.create("persistentvolumeclaims", md["namespace"], pvc):
                self.record(sts, "statefulsets", "Normal", "SuccessfulCreate",
                            "create Claim %s Pod %s-%d in StatefulSet %s success"
                            % (name, md["name"], i, md["name"]))

    def _claim_owner(self, sts, pvc):
        """whenDeleted: Delete -> the StatefulSet owns its PVCs (the GC removes them with it)."""
        if self._retention(sts, "whenDeleted") != "Delete" or owned_by(pvc, sts) or terminating(pvc):
            return
        refs = list(pvc["metadata"].get("ownerReferences") or []) + [owner_ref(sts, "StatefulSet", "apps/v1")]
        self.c.patch("persistentvolumeclaims", pvc["metadata"]["namespace"], pvc["metadata"]["name"],
                     {"metadata": {"ownerReferences": refs}})

    def _condemn(self, sts, pod, i):
        """Scale-down of ordinal i: with whenScaled: Delete its PVCs get the pod as owner, so
        the GC deletes them once the pod is gone; then the pod is deleted."""
        if self._retention(sts, "whenScaled") == "Delete":
            ref = owner_ref(pod, "Pod", "v1")
            ref["controller"] = False
            for name in self._claims(sts, i):
                pvc = self.ctl.inf["persistentvolumeclaims"].get(sts["metadata"]["namespace"], name)
                if pvc is None or terminating(pvc) or any(
                        r.get("uid") == ref["uid"] for r in pvc["metadata"].get("ownerReferences") or []):
                    continue
                refs = [r for r in pvc["metadata"].get("ownerReferences") or []
                        if r.get("kind") != "Pod"] + [ref]
                self.c.patch("persistentvolumeclaims", pvc["metadata"]["namespace"], name,
                             {"metadata": {"ownerReferences": refs}})
        self.delete_child(sts, "statefulsets", "pods", pod, STS_DELETE % ("%s", sts["metadata"]["name"]))

    def _new_pod(self, sts, i, rev):
        md, spec = sts["metadata"], sts.get("spec", {})
        tmpl = json.loads(json.dumps(spec.get("template") or {}))
        tmd = tmpl.get("metadata") or {}
        name = "%s-%d" % (md["name"], i)
        labels = dict(tmd.get("labels") or {})
        labels.update({"statefulset.kubernetes.io/pod-name": name,
                       "apps.kubernetes.io/pod-index": str(i),
                       "controller-revision-hash": rev})
        pspec = tmpl.get("spec") or {}
        pspec["hostname"] = name
        if spec.get("serviceName"):
            pspec["subdomain"] = spec["serviceName"]
        vols = [v for v in pspec.get("volumes") or []]
        names = {v["name"] for v in vols}
        for t in spec.get("volumeClaimTemplates") or []:
            tn = t["metadata"]["name"]
            if tn not in names:
                vols.append({"name": tn, "persistentVolumeClaim":
                             {"claimName": "%s-%s-%d" % (tn, md["name"], i)}})
        pspec["volumes"] = vols
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": md["namespace"], "labels": labels,
                             "annotations": dict(tmd.get("annotations") or {}),
                             "ownerReferences": [owner_ref(sts, "StatefulSet", "apps/v1")]},
                "spec": pspec}

    def sync(self, sts):
        md, spec = sts["metadata"], sts.get("spec", {})
        ns = md["namespace"]
        replicas = spec.get("replicas", 1)
        parallel = spec.get("podManagementPolicy") == "Parallel"
        rev = template_hash(spec.get("template") or {})
        pods = self._pods(sts)
        # failed pods are replaced
        for i, p in list(pods.items()):
            if pod_phase(p) in ("Failed", "Succeeded") and not terminating(p):
                self.delete_child(sts, "statefulsets", "pods", p, STS_DELETE % ("%s", md["name"]))
        busy = any(terminating(p) for p in pods.values())
        # a Pending pod whose PVC is missing (deleted after the pod was made) gets a new one
        for i, p in pods.items():
            if i < replicas and pod_phase(p) == "Pending" and not terminating(p):
                self._ensure_pvcs(sts, i)
        # scale up / fill holes
        for i in range(replicas):
            if i in pods:
                if not parallel and not (pod_phase(pods[i]) == "Running" and
                                         pod_ready(pods[i])):
                    break
                continue
            if not parallel and busy:
                break
            # re-create a deleted pod after a short pause, as a real kubelet's teardown takes:
            # `kubectl delete pod` must see the old pod gone before the new one exists
            gone = self.ctl.pod_gone.get((ns, "%s-%d" % (md["name"], i)), 0)
            if time.monotonic() - gone < 1.0:
                if not parallel:
                    break
                continue
            self._ensure_pvcs(sts, i)
            pod = self.create("pods", ns, self._new_pod(sts, i, rev))
            if pod:
                self.record(sts, "statefulsets", "Normal", "SuccessfulCreate",
                            "create Pod %s in StatefulSet %s successful"
                            % (pod["metadata"]["name"], md["name"]))
            if not parallel:
                break
        # scale down: highest ordinal first; OrderedReady waits for each to be gone
        extra = sorted((i for i in pods if i >= replicas), reverse=True)
        del_msg = STS_DELETE % ("%s", md["name"])
        if extra:
            if parallel:
                for i in extra:
                    if not terminating(pods[i]):
                        self._condemn(sts, pods[i], i)
            elif not busy and all(pod_ready(pods[i]) for i in pods if i < replicas):
                self._condemn(sts, pods[extra[0]], extra[0])
                busy = True
        # rolling update (RollingUpdate strategy): highest ordinal first, one at a time
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        current = [i for i in pods if i < replicas]
        if strategy == "RollingUpdate" and not busy and len(current) == replicas and \
                all(pod_ready(pods[i]) for i in current):
            part = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}) \
                .get("partition", 0)
            stale = sorted((i for i in current if i >= part and
                            pods[i]["metadata"].get("labels", {})
                            .get("controller-revision-hash") != rev), reverse=True)
            if stale:
                self.delete_child(sts, "statefulsets", "pods", pods[stale[0]], del_msg)
        self._status(sts, pods, rev, replicas)

    def _status(self, sts, pods, rev, replicas):
        live = [p for p in pods.values() if not terminating(p)]
        ready = [p for p in live if pod_ready(p)]
        updated = [p for p in live if p["metadata"].get("labels", {})
                   .get("controller-revision-hash") == rev]
        st = {"observedGeneration": sts["metadata"].get("generation", 1),
              "replicas": len(live), "readyReplicas": len(ready),
              "availableReplicas": len(ready), "currentReplicas": len(updated),
              "updatedReplicas": len(updated), "currentRevision": sts["metadata"]["name"] +
              "-" + rev, "updateRevision": sts["metadata"]["name"] + "-" + rev,
              "collisionCount": 0}
        self.write_status("statefulsets", sts, st)


# --- PVC binding -----------------------------------------------------------------------

PVC_PROTECTION = "kubernetes.io/pvc-protection"


def pod_started(p):
    """Has the kubelet got past volume setup (a container ran)?"""
    st = p.get("status") or {}
    if st.get("phase") == "Running":
        return True
    return any("running" in (c.get("state") or {}) or "terminated" in (c.get("state") or {})
               for c in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []))


def pod_claims(p):
    return {(v.get("persistentVolumeClaim") or {}).get("claimName")
            for v in (p.get("spec") or {}).get("volumes") or [] if v.get("persistentVolumeClaim")}


def pvc_user(pod, pvc):
    """Does pod hold pvc (for the pvc-protection finalizer)? A pod that is not finished and
    either existed before the PVC's deletion began (it was admitted with the claim: the kubelet
    may mount it) or has started its containers. A pod created at or after the deletion second
    neither blocks it nor may mount it (the kubelet waits), so the two never wait on each other."""
    if pvc["metadata"]["name"] not in pod_claims(pod) or pod_phase(pod) in ("Succeeded", "Failed"):
        return False
    deleted = parse_ts(pvc["metadata"].get("deletionTimestamp"))
    created = parse_ts(pod["metadata"].get("creationTimestamp"))
    return pod_started(pod) or deleted is None or (created is not None and created < deleted)


class PVCs(Base):
    """Binding (status.phase Bound at once) and the pvc-protection controller: a deleted PVC
    keeps its kubernetes.io/pvc-protection finalizer (added by the API server on create) until
    no pod uses it (pvc_user), then loses it and goes away."""
    name = "pvc"

    def reconcile(self):
        for pvc in self.ctl.inf["persistentvolumeclaims"].items():
            if terminating(pvc) and PVC_PROTECTION in (pvc["metadata"].get("finalizers") or []):
                self.safe(self._release, pvc)
                continue
            if (pvc.get("status") or {}).get("phase") != "Bound" and not terminating(pvc):
                md = pvc["metadata"]
                req = ((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}
                if not (pvc.get("spec") or {}).get("volumeName"):
                    self.safe(lambda o: self.c.patch("persistentvolumeclaims", md["namespace"], md["name"], {
                        "metadata": {"annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                                     "pv.kubernetes.io/bound-by-controller": "yes"}},
                        "spec": {"volumeName": "pvc-" + md.get("uid", "")}}), pvc)
                self.write_status("persistentvolumeclaims", pvc, {
                    "phase": "Bound",
                    "accessModes": (pvc.get("spec") or {}).get("accessModes") or
                    ["ReadWriteOnce"],
                    "capacity": {"storage": req.get("storage", "1Gi")}})
                log("bound pvc %s/%s" % (md["namespace"], md["name"]))

    def _release(self, pvc):
        md = pvc["metadata"]
        if any(pvc_user(p, pvc) for p in self.ctl.inf["pods"].items(md["namespace"])):
            return
        rest = [f for f in md.get("finalizers") or [] if f != PVC_PROTECTION]
        self.c.patch("persistentvolumeclaims", md["namespace"], md["name"], {"metadata": {
            "finalizers": rest or None, "resourceVersion": md.get("resourceVersion")}})


# --- Job -------------------------------------------------------------------------------

def job_finished(job):
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c["type"]
    return None


class Jobs(Base):
    name = "job"

    def __init__(self, ctl):
        super().__init__(ctl)
        self.next_try = {}  # job uid -> monotonic time before which no new pod (backoff)
        self.expect = {}  # job uid -> {pod name: monotonic create time}

    def reconcile(self):
        for job in self.ctl.inf["jobs"].items():
            if not terminating(job):
                self.safe(self.sync, job)

    def _new_pod(self, job):
        md, spec = job["metadata"], job.get("spec", {})
        tmpl = json.loads(json.dumps(spec.get("template") or {}))
        tmd = tmpl.get("metadata") or {}
        labels = dict(tmd.get("labels") or {})
        labels.update({"job-name": md["name"], "batch.kubernetes.io/job-name": md["name"],
                       "controller-uid": md.get("uid", ""),
                       "batch.kubernetes.io/controller-uid": md.get("uid", "")})
        pspec = tmpl.get("spec") or {}
        pspec.setdefault("restartPolicy", "Never")
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "%s-%s" % (md["name"], rand_suffix()),
                             "namespace": md["namespace"], "labels": labels,
                             "annotations": dict(tmd.get("annotations") or {}),
                             "ownerReferences": [owner_ref(job, "Job", "batch/v1")]},
                "spec": pspec}

    def _default_selector(self, job):
        """Like the API server's defaulting: selector on the job's controller-uid."""
        md = job["metadata"]
        lab = {"batch.kubernetes.io/controller-uid": md.get("uid", "")}
        self.c.patch("jobs", md["namespace"], md["name"], {"spec": {
            "selector": {"matchLabels": lab},
            "template": {"metadata": {"labels": dict(lab, **{
                "batch.kubernetes.io/job-name": md["name"], "job-name": md["name"],
                "controller-uid": md.get("uid", "")})}}}})

    def sync(self, job):
        md, spec = job["metadata"], job.get("spec", {})
        ns, uid = md["namespace"], md.get("uid")
        if not spec.get("selector") and not job_finished(job):
            self._default_selector(job)
        pods = [p for p in self.ctl.inf["pods"].items(ns) if owned_by(p, job)]
        # pods created but not yet seen by the informer count as active (for 30 s)
        exp = self.expect.setdefault(uid, {})
        seen = {p["metadata"]["name"] for p in pods}
        for n in list(exp):
            if n in seen or time.monotonic() - exp[n] > 30:
                del exp[n]
        succeeded = sum(1 for p in pods if pod_phase(p) == "Succeeded")
        failed = sum(1 for p in pods if pod_phase(p) == "Failed")
        active = [p for p in pods if pod_phase(p) not in ("Succeeded", "Failed")
                  and not terminating(p)]
        pending = len(exp)
        completions = spec.get("completions", 1) if spec.get("completions") is not None else 1
        parallelism = spec.get("parallelism", 1) if spec.get("parallelism") is not None else 1
        backoff_limit = spec.get("backoffLimit", 6)
        st = dict(job.get("status") or {})
        if not st.get("startTime"):
            st["startTime"] = now_ts()
        done = job_finished(job)
        conds = list(st.get("conditions") or [])
        if not done:
            deadline = spec.get("activeDeadlineSeconds")
            start = parse_ts(st["startTime"])
            if succeeded >= completions:
                done = "Complete"
                conds.append({"type": "Complete", "status": "True",
                              "lastProbeTime": now_ts(), "lastTransitionTime": now_ts()})
                st["completionTime"] = now_ts()
            elif failed > backoff_limit or (deadline and start and
                                            time.time() - start > deadline):
                done = "Failed"
                reason = "BackoffLimitExceeded" if failed > backoff_limit else \
                    "DeadlineExceeded"
                conds.append({"type": "Failed", "status": "True", "reason": reason,
                              "message": "Job has reached the specified backoff limit"
                              if failed > backoff_limit else "Job was active longer than "
                              "specified deadline",
                              "lastProbeTime": now_ts(), "lastTransitionTime": now_ts()})
            if done:
                for p in active:
                    self.delete_child(job, "jobs", "pods", p, "Deleted pod: %s")
                active = []
                if done == "Complete":
                    self.record(job, "jobs", "Normal", "Completed", "Job completed")
                else:
                    self.record(job, "jobs", "Warning", conds[-1]["reason"],
                                conds[-1]["message"])
        if not done and not spec.get("suspend"):
            want = min(parallelism, completions - succeeded) - len(active) - pending
            t = time.monotonic()
            if want > 0 and not (failed and t < self.next_try.get(uid, 0)):
                for _ in range(want):
                    p = self.create("pods", ns, self._new_pod(job))
                    if p:
                        exp[p["metadata"]["name"]] = t
                        self.record(job, "jobs", "Normal", "SuccessfulCreate",
                                    "Created pod: %s" % p["metadata"]["name"])
                if failed:
                    # back-off before the next replacement: 1s, 2s, 4s ... capped at 60s
                    self.next_try[uid] = t + min(60, 2 ** min(failed, 6) / 2)
        st.update({"active": len(active), "succeeded": succeeded, "failed": failed,
                   "conditions": conds})
        self.write_status("jobs", job, st)
        ttl = spec.get("ttlSecondsAfterFinished")
        if done and ttl is not None:
            fin = parse_ts(st.get("completionTime")) or \
                (parse_ts(conds[-1].get("lastTransitionTime")) if conds else None)
            if fin is not None and time.time() - fin >= ttl:
                self.c.delete("jobs", ns, md["name"], propagation="Background")


# --- CronJob ---------------------------------------------------------------------------

MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}


def cron_field(f, lo, hi, names=None):
    """Set of values of one cron field (lists, ranges, steps, *, ?, names)."""
    out = set()
    for part in f.lower().split(","):
        step = 1
        if "/" in part:
            part, s = part.split("/", 1)
            step = int(s)
        if part in ("*", "?"):
            a, b = lo, hi
        elif "-" in part:
            a, b = [int(names.get(x, x)) if names else int(x) for x in part.split("-", 1)]
        else:
            a = int(names.get(part, part)) if names else int(part)
            b = hi if step > 1 else a
        if a < lo or b > hi or step < 1:
            raise ValueError("cron field %r out of range" % f)
        out.update(range(a, b + 1, step))
    return out


def parse_cron(expr):
    expr = MACROS.get(expr.strip(), expr.strip())
    if expr.startswith("@every "):
        raise ValueError("@every is not supported")
    fs = expr.split()
    if len(fs) != 5:
        raise ValueError("cron schedule needs 5 fields: %r" % expr)
    dow = cron_field(fs[4].replace("7", "0"), 0, 6, DAYS)
    return (cron_field(fs[0], 0, 59), cron_field(fs[1], 0, 23), cron_field(fs[2], 1, 31),
            cron_field(fs[3], 1, 12, MONTHS), dow, fs[2] in ("*", "?"), fs[4] in ("*", "?"))


def cron_match(c, t):
    mi, h, dom, mon, dow, dom_star, dow_star = c
    tm = time.gmtime(t)
    if tm.tm_min not in mi or tm.tm_hour not in h or tm.tm_mon not in mon:
        return False
    d_ok, w_ok = tm.tm_mday in dom, (tm.tm_wday + 1) % 7 in dow
    if dom_star or dow_star:
        return d_ok and w_ok
    return d_ok or w_ok


def last_schedule(c, after, until):
    """Latest minute t with after < t <= until matching c (None if none); scans <= 1 day."""
    t = int(until) // 60 * 60
    lo = max(int(after), t - 86400)
    while t > lo:
        if cron_match(c, t):
            return t
        t -= 60
    return None


class CronJobs(Base):
    name = "cronjob"
    TRIGGER = "kube-lite.io/trigger"

    def reconcile(self):
        for cj in self.ctl.inf["cronjobs"].items():
            if not terminating(cj):
                self.safe(self.sync, cj)

    def _job(self, cj, name, sched_t, manual=False):
        md, spec = cj["metadata"], cj.get("spec", {})
        jt = json.loads(json.dumps(spec.get("jobTemplate") or {}))
        jmd = jt.get("metadata") or {}
        ann = dict(jmd.get("annotations") or {})
        if manual:
            ann["cronjob.kubernetes.io/instantiate"] = "manual"
        else:
            ann["batch.kubernetes.io/cronjob-scheduled-timestamp"] = ts_of(sched_t)
        return {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": md["namespace"],
                             "labels": dict(jmd.get("labels") or {}), "annotations": ann,
                             "ownerReferences": [owner_ref(cj, "CronJob", "batch/v1")]},
                "spec": jt.get("spec") or {}}

    def sync(self, cj):
        md, spec = cj["metadata"], cj.get("spec", {})
        ns = md["namespace"]
        jobs = [j for j in self.ctl.inf["jobs"].items(ns) if owned_by(j, cj)]
        active = [j for j in jobs if not job_finished(j) and not terminating(j)]
        st = dict(cj.get("status") or {})
        # manual trigger by annotation
        if (md.get("annotations") or {}).get(self.TRIGGER) is not None:
            name = "%s-manual-%s" % (md["name"], md.get("resourceVersion", rand_suffix()))
            if self.create("jobs", ns, self._job(cj, name[:63], time.time(), True)):
                log("triggered %s/%s -> %s" % (ns, md["name"], name))
                self.record(cj, "cronjobs", "Normal", "SuccessfulCreate",
                            "Created job %s" % name[:63])
            self.c.patch("cronjobs", ns, md["name"],
                         {"metadata": {"annotations": {self.TRIGGER: None}}})
        if not spec.get("suspend"):
            self._schedule(cj, st, active)
        self._history(cj, jobs)
        st["active"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"],
                         "namespace": ns, "uid": j["metadata"].get("uid")} for j in active]
        if not st["active"]:
            st.pop("active")
        done_ok = [parse_ts((j.get("status") or {}).get("completionTime")) for j in jobs
                   if job_finished(j) == "Complete"]
        done_ok = [x for x in done_ok if x]
        if done_ok:
            st["lastSuccessfulTime"] = ts_of(max(done_ok))
        cur = cj.get("status") or {}
        if st != cur:
            if "active" not in st and cur.get("active"):
                st["active"] = None
            self.write_status("cronjobs", cj, st)

    def _schedule(self, cj, st, active):
        md, spec = cj["metadata"], cj.get("spec", {})
        try:
            c = parse_cron(spec.get("schedule", ""))
        except ValueError as e:
            log("cronjob %s/%s: %s" % (md["namespace"], md["name"], e))
            return
        since = parse_ts(st.get("lastScheduleTime")) or parse_ts(
            md.get("creationTimestamp")) or time.time()
        t = last_schedule(c, since, time.time())
        if t is None:
            return
        sds = spec.get("startingDeadlineSeconds")
        if sds is not None and time.time() - t > sds:
            return
        policy = spec.get("concurrencyPolicy", "Allow")
        if active and policy == "Forbid":
            return
        if active and policy == "Replace":
            for j in active:
                self.delete_child(cj, "cronjobs", "jobs", j, "Deleted job %s",
                                  propagation="Background")
        name = "%s-%d" % (md["name"], t // 60)
        if self.create("jobs", md["namespace"], self._job(cj, name, t)):
            self.record(cj, "cronjobs", "Normal", "SuccessfulCreate", "Created job %s" % name)
        st["lastScheduleTime"] = ts_of(t)

    def _history(self, cj, jobs):
        spec = cj.get("spec", {})
        for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                            ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            fin = [j for j in jobs if job_finished(j) == kind and not terminating(j)]
            fin.sort(key=lambda j: j["metadata"].get("creationTimestamp", ""))
            for j in fin[:max(0, len(fin) - limit)]:
                self.delete_child(cj, "cronjobs", "jobs", j, "Deleted job %s",
                                  propagation="Background")


# --- Services: ClusterIP, Endpoints ----------------------------------------------------

class Services(Base):
    name = "service"

    def reconcile(self):
        svcs = self.ctl.inf["services"].items()
        used = {(s.get("spec") or {}).get("clusterIP") for s in svcs}
        for s in svcs:
            spec, md = s.get("spec") or {}, s["metadata"]
            if spec.get("clusterIP") or spec.get("type") == "ExternalName" or terminating(s):
                continue
            ip = self._alloc(md, used)
            used.add(ip)
            self.safe(lambda o: self.c.patch("services", md["namespace"], md["name"], {
                "spec": {"clusterIP": ip, "clusterIPs": [ip]}}), s)
        for s in svcs:
            if (s.get("spec") or {}).get("selector") and not terminating(s):
                self.safe(self._endpoints, s)

    def _alloc(self, md, used):
        net = self.ctl.net
        h = int(hashlib.sha1(("%s/%s" % (md["namespace"], md["name"])).encode())
                .hexdigest()[:8], 16)
        for k in range(65000):
            idx = 10 + (h + k) % 65000
            ip = net.svc_ip(idx)
            if ip not in used and idx % 256 not in (0, 255):
                return ip
        raise RuntimeError("service IP range exhausted")

    def _endpoints(self, svc):
        md, spec = svc["metadata"], svc.get("spec") or {}
        ns = md["namespace"]
        pods = [p for p in self.ctl.inf["pods"].items(ns)
                if matches(p["metadata"].get("labels"), spec["selector"]) and
                (p.get("status") or {}).get("podIP") and not terminating(p) and
                pod_phase(p) not in ("Succeeded", "Failed")]
        pods.sort(key=lambda p: p["metadata"]["name"])
        subsets = []
        for port in spec.get("ports") or []:
            tp = port.get("targetPort", port.get("port"))
            ready, notready = [], []
            for p in pods:
                num = self._target(p, tp)
                if num is None:
                    continue
                a = {"ip": p["status"]["podIP"], "nodeName": "kube-lite",
                     "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"],
                                   "uid": p["metadata"].get("uid")}}
                if p.get("spec", {}).get("hostname") and p["spec"].get("subdomain") == md["name"]:
                    a["hostname"] = p["spec"]["hostname"]
                ok = pod_ready(p) or spec.get("publishNotReadyAddresses")
                (ready if ok else notready).append((num, a))
            for num in sorted({n for n, _ in ready + notready}):
                ss = {"ports": [{"name": port.get("name", ""), "port": num,
                                 "protocol": port.get("protocol", "TCP")}]}
                if not port.get("name"):
                    del ss["ports"][0]["name"]
                r = [a for n, a in ready if n == num]
                nr = [a for n, a in notready if n == num]
                if r:
                    ss["addresses"] = r
                if nr:
                    ss["notReadyAddresses"] = nr
                subsets.append(ss)
        subsets = self._merge(subsets)
        cur = self.ctl.inf["endpoints"].get(ns, md["name"])
        if cur is not None and (cur.get("subsets") or []) == subsets:
            return
        ep = {"apiVersion": "v1", "kind": "Endpoints",
              "metadata": {"name": md["name"], "namespace": ns,
                           "labels": dict(md.get("labels") or {})},
              "subsets": subsets}
        if cur is None:
            self.create("endpoints", ns, ep)
        else:
            ep["metadata"]["resourceVersion"] = cur["metadata"].get("resourceVersion")
            self.c.update("endpoints", ns, ep)

    @staticmethod
    def _merge(subsets):
        """Subsets with the same addresses share one entry listing all their ports."""
        out = []
        for ss in subsets:
            for o in out:
                if o.get("addresses") == ss.get("addresses") and \
                        o.get("notReadyAddresses") == ss.get("notReadyAddresses"):
                    o["ports"] += ss["ports"]
                    break
            else:
                out.append(ss)
        return out

    @staticmethod
    def _target(pod, tp):
        if isinstance(tp, int) or (isinstance(tp, str) and tp.isdigit()):
            return int(tp)
        for c in pod.get("spec", {}).get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == tp:
                    return int(p["containerPort"])
        return None


# --- PodDisruptionBudget (disruption controller) ------------------------------------------

DISRUPTION_TIMEOUT = 120


def scaled(v, total, round_up=True):
    """intstr: an int as is, "N%" of total (rounded up, or down)."""
    if isinstance(v, str) and v.endswith("%"):
        x = int(v[:-1]) * total
        return -(-x // 100) if round_up else x // 100
    return int(v)


class PDBs(Base):
    """status of every PodDisruptionBudget, as kube-controller-manager's disruption controller:
    expectedPods (matching pods, or the controllers' replicas for a percentage or
    maxUnavailable), desiredHealthy, currentHealthy (Ready pods neither terminating nor
    recently evicted: status.disruptedPods, kept 2 minutes or until the pod is gone),
    disruptionsAllowed = max(0, currentHealthy - desiredHealthy), condition DisruptionAllowed.
    The eviction subresource (API server) consumes disruptionsAllowed."""
    name = "disruption"

    def reconcile(self):
        for pdb in self.ctl.inf["poddisruptionbudgets"].items():
            if not terminating(pdb):
                self.safe(self.sync, pdb)

    def _controller_scale(self, pods):
        """Sum of the replicas of the pods' controllers, or None (a pod without one)."""
        seen, total = set(), 0
        for p in pods:
            ref = next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            if ref is None:
                return None
            if ref["uid"] in seen:
                continue
            seen.add(ref["uid"])
            ns = p["metadata"]["namespace"]
            kind = {"StatefulSet": "statefulsets", "ReplicaSet": "replicasets"}.get(ref.get("kind"))
            owner = self.ctl.inf[kind].get(ns, ref["name"]) if kind else None
            if owner is None:
                return None
            if kind == "replicasets":
                dref = next((r for r in owner["metadata"].get("ownerReferences") or []
                             if r.get("controller") and r.get("kind") == "Deployment"), None)
                dep = self.ctl.inf["deployments"].get(ns, dref["name"]) if dref else None
                if dep is not None:
                    if dep["metadata"]["uid"] in seen:
                        continue
                    seen.add(dep["metadata"]["uid"])
                    owner = dep
            total += int((owner.get("spec") or {}).get("replicas", 1))
        return total

    def sync(self, pdb):
        md, spec = pdb["metadata"], pdb.get("spec") or {}
        from .apiserver import selector_matches
        pods = [p for p in self.ctl.inf["pods"].items(md["namespace"])
                if selector_matches(spec.get("selector"), p["metadata"].get("labels"))]
        failsafe = False
        if spec.get("maxUnavailable") is not None:
            expected = self._controller_scale(pods)
            failsafe = expected is None
            expected = expected or 0
            desired = max(0, expected - scaled(spec["maxUnavailable"], expected))
        elif isinstance(spec.get("minAvailable"), str):
            expected = self._controller_scale(pods)
            failsafe = expected is None
            expected = expected or 0
            desired = scaled(spec["minAvailable"], expected)
        else:
            expected, desired = len(pods), int(spec.get("minAvailable") or 0)
        now = time.time()
        names = {p["metadata"]["name"]: p for p in pods}
        disrupted = {n: t for n, t in ((pdb.get("status") or {}).get("disruptedPods") or {}).items()
                     if n in names and not terminating(names[n]) and
                     (parse_ts(t) or 0) + DISRUPTION_TIMEOUT > now}
        current = sum(1 for p in pods if pod_ready(p) and not terminating(p) and
                      p["metadata"]["name"] not in disrupted)
        allowed = 0 if failsafe or expected <= 0 else max(0, current - desired)
        cur = pdb.get("status") or {}
        cond_ok = "True" if allowed > 0 else "False"
        old = next((c for c in cur.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), {})
        cond = {"type": "DisruptionAllowed", "status": cond_ok,
                "reason": "SufficientPods" if allowed > 0 else "InsufficientPods", "message": "",
                "observedGeneration": md.get("generation", 1),
                "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == cond_ok else now_ts()}
        if failsafe:
            cond.update(reason="SyncFailed", message="found no controllers for some matching pods")
        st = {"observedGeneration": md.get("generation", 1), "disruptionsAllowed": allowed,
              "currentHealthy": current, "desiredHealthy": desired, "expectedPods": expected,
              "conditions": [cond], "disruptedPods": disrupted or None}
        if all(cur.get(k) == v for k, v in st.items()):
            return
        self.c.patch_status("poddisruptionbudgets", md["namespace"], md["name"], st)


# --- ReplicaSet --------------------------------------------------------------------------

class ReplicaSets(Base):
    """ReplicaSets: pods `<rs>-<5 chars>` from the template (owned by the ReplicaSet) until
    spec.replicas active pods exist; extra ones deleted (not Ready / Pending / newest first);
    status replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (= Ready; no
    minReadySeconds), observedGeneration. Finished (Succeeded/Failed) pods are not counted."""
    name = "replicaset"

    def __init__(self, ctl):
        super().__init__(ctl)
        self.expect = {}  # rs uid -> {pod name: monotonic create time} (made, not yet seen)

    def reconcile(self):
        for rs in self.ctl.inf["replicasets"].items():
            if not terminating(rs):
                self.safe(self.sync, rs)

    def _new_pod(self, rs):
        md, spec = rs["metadata"], rs.get("spec", {})
        tmpl = json.loads(json.dumps(spec.get("template") or {}))
        tmd = tmpl.get("metadata") or {}
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "%s-%s" % (md["name"], rand_suffix()), "namespace": md["namespace"],
                             "labels": dict(tmd.get("labels") or {}),
                             "annotations": dict(tmd.get("annotations") or {}),
                             "ownerReferences": [owner_ref(rs, "ReplicaSet", "apps/v1")]},
                "spec": tmpl.get("spec") or {}}

    def sync(self, rs):
        md, spec = rs["metadata"], rs.get("spec", {})
        ns = md["namespace"]
        pods = [p for p in self.ctl.inf["pods"].items(ns) if owned_by(p, rs)]
        active = [p for p in pods if not terminating(p) and pod_phase(p) not in ("Succeeded", "Failed")]
        exp = self.expect.setdefault(md["uid"], {})
        seen = {p["metadata"]["name"] for p in pods}
        for n in list(exp):
            if n in seen or time.monotonic() - exp[n] > 30:
                del exp[n]
        want = int(spec.get("replicas", 1))
        diff = want - len(active) - len(exp)
        for _ in range(max(0, diff)):
            pod = self.create("pods", ns, self._new_pod(rs))
            if pod:
                exp[pod["metadata"]["name"]] = time.monotonic()
                self.record(rs, "replicasets", "Normal", "SuccessfulCreate",
                            "Created pod: %s" % pod["metadata"]["name"])
        if len(active) > want:
            rank = sorted(active, key=lambda p: (pod_ready(p), pod_phase(p) != "Pending",
                                                 [-ord(ch) for ch in p["metadata"].get("creationTimestamp", "")]))
            for p in rank[:len(active) - want]:
                self.delete_child(rs, "replicasets", "pods", p, "Deleted pod: %s")
        ready = sum(1 for p in active if pod_ready(p))
        self.write_status("replicasets", rs, {
            "replicas": len(active), "fullyLabeledReplicas": len(active), "readyReplicas": ready,
            "availableReplicas": ready, "observedGeneration": md.get("generation", 1)})


# --- Deployment --------------------------------------------------------------------------

REVISION = "deployment.kubernetes.io/revision"
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def pod_template_hash(tmpl):
    t = json.loads(json.dumps(tmpl or {}))
    ((t.get("metadata") or {}).get("labels") or {}).pop("pod-template-hash", None)
    h = int(hashlib.sha1(json.dumps(t, sort_keys=True).encode()).hexdigest(), 16)
    out = ""
    for _ in range(10):
        h, r = divmod(h, len(HASH_ALPHABET))
        out += HASH_ALPHABET[r]
    return out


class Deployments(Base):
    """Deployments over ReplicaSets, as kube-controller-manager does in the essentials: the
    ReplicaSet `<deploy>-<pod-template-hash>` whose template is the current one is the new one
    (made on a template change, with revision annotation max+1; an old one is reused on a
    rollback); RollingUpdate scales it up within replicas + maxSurge (25% rounded up) and the
    old ones down keeping replicas - maxUnavailable (25% rounded down) available, unhealthy old
    pods first; Recreate scales the old ones to 0 and the new one up once their pods are gone.
    Status: replicas, updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas,
    observedGeneration, conditions Available and Progressing (NewReplicaSetAvailable when done),
    which is what `kubectl rollout status` reads. Old ReplicaSets at 0 replicas beyond
    revisionHistoryLimit are deleted."""
    name = "deployment"

    def reconcile(self):
        for d in self.ctl.inf["deployments"].items():
            if not terminating(d):
                self.safe(self.sync, d)

    @staticmethod
    def _rev(rs):
        try:
            return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
        except ValueError:
            return 0

    def _scale(self, rs, n, d):
        if int(rs["spec"].get("replicas", 1)) == n:
            return
        self.c.patch("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"],
                     {"spec": {"replicas": n}, "metadata": {"annotations": {
                         "deployment.kubernetes.io/desired-replicas": str(d["spec"].get("replicas", 1))}}})
        self.record(d, "deployments", "Normal", "ScalingReplicaSet", "Scaled %s replica set %s to %d" % (
            "up" if n > int(rs["spec"].get("replicas", 1)) else "down", rs["metadata"]["name"], n))
        rs["spec"]["replicas"] = n

    def _new_rs(self, d, h, rev):
        md, spec = d["metadata"], d["spec"]
        tmpl = json.loads(json.dumps(spec.get("template") or {}))
        tmd = tmpl.setdefault("metadata", {})
        tmd.setdefault("labels", {})["pod-template-hash"] = h
        sel = json.loads(json.dumps(spec.get("selector") or {}))
        sel.setdefault("matchLabels", {})["pod-template-hash"] = h
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": "%s-%s" % (md["name"], h), "namespace": md["namespace"],
                           "labels": dict(tmd["labels"]),
                           "annotations": {REVISION: str(rev),
                                           "deployment.kubernetes.io/desired-replicas":
                                               str(spec.get("replicas", 1)),
                                           "deployment.kubernetes.io/max-replicas": str(spec.get("replicas", 1))},
                           "ownerReferences": [owner_ref(d, "Deployment", "apps/v1")]},
              "spec": {"replicas": 0, "selector": sel, "template": tmpl}}
        out = self.create("replicasets", md["namespace"], rs)
        if out:
            self.record(d, "deployments", "Normal", "ScalingReplicaSet",
                        "Created new replica set %s" % rs["metadata"]["name"])
        return out

    def sync(self, d):
        md, spec = d["metadata"], d.get("spec", {})
        ns = md["namespace"]
        replicas = int(spec.get("replicas", 1))
        rss = [rs for rs in self.ctl.inf["replicasets"].items(ns) if owned_by(rs, d) and not terminating(rs)]
        h = pod_template_hash(spec.get("template"))
        new = next((rs for rs in rss if (rs["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        olds = [rs for rs in rss if rs is not new]
        top = max([self._rev(rs) for rs in rss] or [0])
        if new is None:
            new = self._new_rs(d, h, top + 1)
            if new is None:
                return
        elif olds and self._rev(new) < top:       # rollback to an older template
            self.c.patch("replicasets", ns, new["metadata"]["name"],
                         {"metadata": {"annotations": {REVISION: str(top + 1)}}})
        new = json.loads(json.dumps(new))
        olds = [json.loads(json.dumps(rs)) for rs in olds]
        st_type = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        if spec.get("paused"):
            pass
        elif st_type == "Recreate":
            self._recreate(d, new, olds, replicas)
        else:
            self._rolling(d, new, olds, replicas)
        self._cleanup(d, olds)
        self._status(d, new, olds, replicas)

    def _recreate(self, d, new, olds, replicas):
        for rs in olds:
            self._scale(rs, 0, d)
        old_pods = [p for p in self.ctl.inf["pods"].items(d["metadata"]["namespace"])
                    if any(owned_by(p, rs) for rs in olds)]
        if not old_pods:
            self._scale(new, replicas, d)

    def _limits(self, d, replicas):
        ru = ((d["spec"].get("strategy") or {}).get("rollingUpdate")) or {}
        surge = scaled(ru.get("maxSurge", "25%"), replicas, True)
        unavail = scaled(ru.get("maxUnavailable", "25%"), replicas, False)
        if surge == 0 and unavail == 0:
            unavail = 1
        return surge, unavail

    def _rolling(self, d, new, olds, replicas):
        surge, unavail = self._limits(d, replicas)
        rs_replicas = lambda rs: int(rs["spec"].get("replicas", 1))  # noqa: E731
        available = lambda rs: int((rs.get("status") or {}).get("availableReplicas") or 0)  # noqa: E731
        total = sum(rs_replicas(rs) for rs in olds + [new])
        if rs_replicas(new) > replicas:
            self._scale(new, replicas, d)
        elif rs_replicas(new) < replicas:
            up = min(replicas + surge - total, replicas - rs_replicas(new))
            if up > 0:
                self._scale(new, rs_replicas(new) + up, d)
        total = sum(rs_replicas(rs) for rs in olds + [new])
        min_avail = replicas - unavail
        new_unavail = rs_replicas(new) - available(new)
        room = total - min_avail - new_unavail
        if room <= 0:
            return
        for rs in sorted(olds, key=self._rev):          # unhealthy old pods go first
            bad = rs_replicas(rs) - available(rs)
            cut = min(bad, room)
            if cut > 0:
                self._scale(rs, rs_replicas(rs) - cut, d)
                room -= cut
        avail_total = sum(available(rs) for rs in olds + [new])
        room = min(room, avail_total - min_avail)
        for rs in sorted(olds, key=self._rev):
            if room <= 0:
                break
            cut = min(rs_replicas(rs), room)
            if cut > 0:
                self._scale(rs, rs_replicas(rs) - cut, d)
                room -= cut

    def _cleanup(self, d, olds):
        limit = d["spec"].get("revisionHistoryLimit", 10)
        idle = sorted((rs for rs in olds if int(rs["spec"].get("replicas", 1)) == 0 and
                       not int((rs.get("status") or {}).get("replicas") or 0)), key=self._rev)
        for rs in idle[:max(0, len(idle) - limit)]:
            self.c.delete("replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"],
                          propagation="Background")

    def _status(self, d, new, olds, replicas):
        md = d["metadata"]
        sts = [rs.get("status") or {} for rs in olds + [new]]
        avail = sum(int(s.get("availableReplicas") or 0) for s in sts)
        total = sum(int(s.get("replicas") or 0) for s in sts)
        updated = int((new.get("status") or {}).get("replicas") or 0)
        _, unavail = self._limits(d, replicas)
        done = updated == replicas and total == replicas and avail == replicas and \
            all(int(rs["spec"].get("replicas", 1)) == 0 for rs in olds)
        cur = d.get("status") or {}
        old_conds = {c.get("type"): c for c in cur.get("conditions") or []}

        def cond(typ, ok, reason, msg):
            prev = old_conds.get(typ) or {}
            t = prev.get("lastTransitionTime") if prev.get("status") == ok else now_ts()
            upd = prev.get("lastUpdateTime") if prev.get("reason") == reason and prev.get("status") == ok \
                else now_ts()
            return {"type": typ, "status": ok, "reason": reason, "message": msg,
                    "lastTransitionTime": t, "lastUpdateTime": upd}
        is_avail = avail >= replicas - unavail
        conds = [cond("Available", "True" if is_avail else "False",
                      "MinimumReplicasAvailable" if is_avail else "MinimumReplicasUnavailable",
                      "Deployment has minimum availability." if is_avail else
                      "Deployment does not have minimum availability."),
                 cond("Progressing", "True", "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                      'ReplicaSet "%s" has %s.' % (new["metadata"]["name"], "successfully progressed" if done
                                                   else "is progressing"))]
        st = {"observedGeneration": md.get("generation", 1), "replicas": total, "updatedReplicas": updated,
              "readyReplicas": sum(int(s.get("readyReplicas") or 0) for s in sts),
              "availableReplicas": avail, "unavailableReplicas": max(0, replicas - avail) or None,
              "conditions": conds}
        rev = (new["metadata"].get("annotations") or {}).get(REVISION)
        if rev and (md.get("annotations") or {}).get(REVISION) != rev:
            self.c.patch("deployments", md["namespace"], md["name"],
                         {"metadata": {"annotations": {REVISION: rev}}})
        if all(cur.get(k) == v for k, v in st.items() if k != "conditions") and \
                [(c.get("type"), c.get("status"), c.get("reason")) for c in cur.get("conditions") or []] == \
                [(c["type"], c["status"], c["reason"]) for c in conds]:
            return
        self.c.patch_status("deployments", md["namespace"], md["name"], st)


# --- cluster defaults --------------------------------------------------------------------

class Defaults(Base):
    """ServiceAccount `default` per namespace; Service + Endpoints `kubernetes`."""
    name = "defaults"

    def __init__(self, ctl):
        super().__init__(ctl)
        self.done_ns = set()
        self.kube_done = False

    def reconcile(self):
        for n in self.ctl.inf["namespaces"].items():
            name = n["metadata"]["name"]
            if name in self.done_ns or terminating(n):
                continue
            try:
                self.create("serviceaccounts", name, {
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": name}})
            except kc.ApiError:
                pass
            self.done_ns.add(name)
        if not self.kube_done:
            self._kubernetes_service()

    def _kubernetes_service(self):
        """Service `kubernetes` (https, ClusterIP .0.1:443) and its Endpoints: the API
        server's TLS listener on the pod bridge gateway (plain HTTP when there is none)."""
        ip = self.ctl.net.svc_ip(1)
        tls = pki.https_endpoint(self.ctl.dir)
        port = tls[1] if tls else self.c.port
        self.create("services", "default", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "type": "ClusterIP",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": port}]}})
        self.create("endpoints", "default", {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": self.ctl.net.gateway}],
                         "ports": [{"name": "https", "port": port,
                                    "protocol": "TCP"}]}]})
        self.kube_done = True


# --- wiring ----------------------------------------------------------------------------

class Controllers:
    RESOURCES = ("pods", "statefulsets", "persistentvolumeclaims", "jobs", "cronjobs",
                 "services", "endpoints", "namespaces", "deployments", "replicasets",
                 "poddisruptionbudgets")

    def __init__(self, api_url, token, state_dir, stop):
        self.client = kc.Client(api_url, token)
        self.stop = stop
        self.dir = state_dir
        self.recorder = events.Recorder(self.client, "kube-lite-controller-manager", stop)
        self.net = knet.get(state_dir)
        self.loops = [StatefulSets(self), PVCs(self), Jobs(self), CronJobs(self),
                      Services(self), Defaults(self), PDBs(self), ReplicaSets(self),
                      Deployments(self)]
        self.pod_gone = {}  # (ns, name) -> monotonic time the pod object disappeared
        self.inf = {r: kc.Informer(self.client, r, self._on_event, stop)
                    for r in self.RESOURCES if r != "pods"}
        self.inf["pods"] = kc.Informer(self.client, "pods", self._on_pod, stop)

    def _on_pod(self, typ, obj, old):
        if typ == "DELETED":
            self.pod_gone[kc.key(obj)] = time.monotonic()
        self._on_event(typ, obj, old)

    def _on_event(self, typ, obj, old):
        for lp in self.loops:
            lp.kick()

    def start(self):
        for i in self.inf.values():
            i.start()
        for i in self.inf.values():
            i.synced.wait(10)
        for lp in self.loops:
            threading.Thread(target=lp.run, daemon=True, name="ctl-" + lp.name).start()
        return self


def start(api_url, token, state_dir, stop_event):
    """Start every controller thread; returns the Controllers object."""
    return Controllers(api_url, token, state_dir, stop_event).start()
