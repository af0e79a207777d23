"""kube-lite controllers: StatefulSet, Job, CronJob, Endpoints, Service ClusterIPs, PVC binding,
default ServiceAccounts and the `kubernetes` Service.

Each controller is level-triggered: informers (client.Informer: list + watch over HTTP) keep
caches; any event marks the controller dirty and its thread re-reconciles every object from the
caches (plus a periodic resync, 2 s; CronJob also ticks for schedules). Writes go to the API
server; a 409 (stale cache, already exists) is ignored because the next pass sees fresh data.
Invariants: a controller only touches objects it owns (ownerReferences with controller=true
to its uid) or names it derives deterministically (`<sts>-<i>`, `<tmpl>-<sts>-<i>`,
`<cj>-<minutes>`); status is written only when it changed; PVCs made for a StatefulSet are never
deleted by it (removed only when a user deletes them).
Events (events.py): SuccessfulCreate/SuccessfulDelete (FailedDelete) for the pods and PVCs of a
StatefulSet, the pods of a Job (plus Completed or the failure reason) and the Jobs of a CronJob,
from "<controller>-controller" as kube-controller-manager names them.
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
             "cronjobs": ("CronJob", "batch/v1")}

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

    def _ensure_pvcs(self, sts, i):
        md, spec = sts["metadata"], sts.get("spec", {})
        for t in spec.get("volumeClaimTemplates") or []:
            name = "%s-%s-%d" % (t["metadata"]["name"], md["name"], i)
            if self.ctl.inf["persistentvolumeclaims"].get(md["namespace"], name):
                continue
            labels = dict((t.get("metadata") or {}).get("labels") or {})
            labels.update((spec.get("selector") or {}).get("matchLabels") or {})
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": name, "namespace": md["namespace"], "labels": labels},
                   "spec": t.get("spec") or {}}
            if self.create("persistentvolumeclaims", md["namespace"], pvc):
                self.record(sts, "statefulsets", "Normal", "SuccessfulCreate",
                            "create Claim %s Pod %s-%d in StatefulSet %s success"
                            % (name, md["name"], i, md["name"]))

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
                        self.delete_child(sts, "statefulsets", "pods", pods[i], del_msg)
            elif not busy and all(pod_ready(pods[i]) for i in pods if i < replicas):
                self.delete_child(sts, "statefulsets", "pods", pods[extra[0]], del_msg)
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

class PVCs(Base):
    name = "pvc"

    def reconcile(self):
        for pvc in self.ctl.inf["persistentvolumeclaims"].items():
            if (pvc.get("status") or {}).get("phase") != "Bound" and not terminating(pvc):
                md = pvc["metadata"]
                req = ((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}
                self.write_status("persistentvolumeclaims", pvc, {
                    "phase": "Bound",
                    "accessModes": (pvc.get("spec") or {}).get("accessModes") or
                    ["ReadWriteOnce"],
                    "capacity": {"storage": req.get("storage", "1Gi")}})
                log("bound pvc %s/%s" % (md["namespace"], md["name"]))


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
                if p.get("spec", {}).get("hostname"):
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
                 "services", "endpoints", "namespaces")

    def __init__(self, api_url, token, state_dir, stop):
        self.client = kc.Client(api_url, token)
        self.stop = stop
        self.dir = state_dir
        self.recorder = events.Recorder(self.client, "kube-lite-controller-manager", stop)
        self.net = knet.get(state_dir)
        self.loops = [StatefulSets(self), PVCs(self), Jobs(self), CronJobs(self),
                      Services(self), Defaults(self)]
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
