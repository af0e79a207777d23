#!/usr/bin/python3
"""tests/e2e/e2e.py: the Python side of the operator's end-to-end suite (tests/e2e/run.sh).

Purpose: what is awkward in shell: reading manifests (python3-yaml), observing one EtcdCluster
as a whole (its Kubernetes objects through python3-kubernetes plus the cetcd members through
cetcdctl against each pod's IP, which the host routes to over kube-lite's bridge), waiting for
convergence with a deadline, and comparing resourceVersion snapshots.

Subcommands (global options first: --kubeconfig FILE --ns NS --cluster C --ctl CETCDCTL):
  install-yaml ROOT [--rendered FILE]
        prints the install manifests (every document of ROOT/crd, ROOT/rbac, ROOT/operator, or
        of FILE = `kubectl kustomize ROOT` output) without EtcdCluster objects, ordered
        Namespace, CRD, ServiceAccount, (Cluster)Role(Binding), everything else, Deployment.
  sample DIR SIZE
        prints "FILE<TAB>NAME<TAB>NAMESPACE" of the first EtcdCluster in DIR/*.yaml|yml with
        spec.size == SIZE (NAMESPACE may be empty).
  derive FILE NAME SIZE
        prints that EtcdCluster (the first one in FILE) renamed to NAME with spec.size SIZE.
  crd-size-messages FILE...
        prints the x-kubernetes-validations messages that concern spec.size in the CRD(s).
  observe
        one observation of the cluster as JSON.
  wait-converged SIZE SECONDS [--steps]
        polls until the cluster has converged at SIZE: spec.size, StatefulSet replicas and
        readyReplicas = SIZE; pods C-0..C-(SIZE-1) Ready, none beyond; the member list (read
        from a pod) has exactly those SIZE members, all started and named, none a learner; each
        member answers its status and all agree on one leader. Prints "converged: ..." or, on
        timeout, "timeout after Ns waiting for cluster C at size SIZE: <what was missing>" and
        the last observation; exit 1. --steps up|down also watches that the change is taken
        one member at a time: never more than one learner; up: never a StatefulSet replica
        without a member (replicas > members: a pod before its MemberAdd); down: never fewer
        replicas than members (a pod gone before its MemberRemove); it prints the sequence of
        distinct (voters, learners, replicas) states seen.
  wait-status SIZE SECONDS [--phase P]
        polls until the EtcdCluster's status agrees with the cluster: observedGeneration =
        generation, phase P (default Running), readyMembers = SIZE, SIZE status.members (name,
        id, isLearner false, healthy true, exactly one isLeader, ids as in the member list),
        leader = the leader's name, conditions Available=True and Degraded not True.
  wait-condition TYPE STATUS REASON SECONDS
        polls until status.conditions has TYPE with STATUS (and REASON, unless "-").
  wait-event REASON SECONDS
        polls until an Event with REASON about the EtcdCluster exists in NS.
  columns             reads a `kubectl get` table on stdin, prints HEADER=value of its first row.
  member-id NAME      prints the hex ID of member NAME from the member list.
  leader              prints the name of the leader.
  snapshot            prints {"kind/name": resourceVersion} for the cluster's objects in NS:
                      etcdcluster C, statefulset C, services C and C-peer, configmap
                      C-members, PDB C, pods C-<i>, PVCs data-C-<i>, Events from the operator.
  snapshot-diff A B   prints the differences of two snapshot files; exit 1 if any.
  operator-exit42 SECONDS
                      polls until a pod of deployment cetcd-operator (cetcd-system) shows a
                      container whose last state terminated with exit code 42.
  operator-rolled SECONDS FAILPOINT
                      polls until the operator Deployment's pods are exactly spec.replicas, all
                      Ready, none terminating, each with env CETCD_OPERATOR_FAILPOINT = FAILPOINT
                      ("-" = unset).
  derive-secure FILE NAME CA_SECRET ROOT_SECRET
                      prints the EtcdCluster of FILE renamed to NAME, size 3, with
                      spec.tls.caSecret and spec.auth.rootSecret (no backup, no restore).
  derive-restore FILE NAME CLAIM SNAPSHOT
                      prints the EtcdCluster of FILE renamed to NAME, size 3, with spec.restore
                      {claimName: CLAIM, file: SNAPSHOT}.
  cronjob-ok          checks the CronJob C-backup against the EtcdCluster's spec.backup: schedule,
                      suspend, concurrencyPolicy Forbid, the cluster's image, the command
                      `cetcdctl --endpoints=http://C.NS.svc:2379 snapshot save --dir /backup
                      --prefix C --retention N --result-file /dev/termination-log`, the backup
                      claim at /backup, labels instance/component, owned by the EtcdCluster.
  backup-job TOKEN SECONDS
                      polls until a Job annotated cetcd.io/backup-now=TOKEN exists; prints its
                      name.
  wait-backup JOB ok|failed SECONDS
                      polls until status.backup.lastSuccess (ok: with file, revision, size,
                      sha256) or lastFailure (failed: with a message) is JOB's and the condition
                      BackupSucceeded is True/BackupCompleted or False/BackupFailed; prints
                      status.backup.
  verify-backups DIR [--expect N]
                      checks every file of DIR (the backup claim's directory on the host): named
                      C-<YYYYMMDDTHHMMSSZ>-r<revision>.db, whole 4096-byte pages plus a trailing
                      SHA-256 of the rest that matches, no .part left; N files if given; and
                      status.backup.lastSuccess names the newest one with its size, sha256 and
                      revision. Prints one "name size revision" line per file, oldest first.
  wait-restored FILE SECONDS
                      polls until status.restore is {phase Restored, file FILE, a revision, a
                      clusterID equal to status.clusterID}; prints it.
Invariants: every external call (API request, cetcdctl) is bounded (10 s / 5 s); every wait
has a deadline and says on timeout what it waited for; nothing here writes to the cluster.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import yaml

GROUP = "cetcd.io"
VERSION = "v1alpha1"
OP_NS = "cetcd-system"
OP_DEPLOY = "cetcd-operator"


# --- Kubernetes access --------------------------------------------------------------------

class Api:
    def __init__(self, kubeconfig):
        from kubernetes import client, config
        from kubernetes.client.rest import ApiException
        self.exc = ApiException
        config.load_kube_config(kubeconfig)
        self.c = client.ApiClient()

    def get(self, path, query=None):
        """The decoded object, or None on 404."""
        try:
            r = self.c.call_api(path, "GET", query_params=query or [],
                                header_params={"Accept": "application/json"},
                                auth_settings=["BearerToken"], _preload_content=False,
                                _request_timeout=10)
        except self.exc as e:
            if e.status == 404:
                return None
            raise
        return json.loads(r[0].data)

    def items(self, path, query=None):
        return (self.get(path, query) or {}).get("items") or []


def ready(p):
    for c in (p.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def terminating(o):
    return bool(o["metadata"].get("deletionTimestamp"))


# --- cetcdctl -----------------------------------------------------------------------------

def ctl_json(ctl, ip, *args):
    """Runs cetcdctl against http://IP:2379 (E2E_SCHEME=https: https://, the TLS and user
    settings then come from ETCDCTL_* in the environment) with -w json; (decoded, None) or
    (None, error)."""
    scheme = os.environ.get("E2E_SCHEME", "http")
    cmd = [ctl, "--endpoints=%s://%s:2379" % (scheme, ip), "--dial-timeout=1s",
           "--command-timeout=2s", "-w", "json"] + list(args)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=6)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines()
        return None, lines[-1] if lines else "exit %d" % r.returncode
    try:
        return json.loads(r.stdout), None
    except ValueError:
        return None, "bad json: " + r.stdout[:200]


# --- observation --------------------------------------------------------------------------

class Cluster:
    def __init__(self, api, ns, name, ctl):
        self.api, self.ns, self.name, self.ctl = api, ns, name, ctl
        self.pod_re = re.compile("^%s-([0-9]+)$" % re.escape(name))

    def ec(self):
        return self.api.get("/apis/%s/%s/namespaces/%s/etcdclusters/%s"
                            % (GROUP, VERSION, self.ns, self.name))

    def observe(self):
        o = {"ec": None, "size": None, "sts": None, "pods": {}, "members": None,
             "members_error": None, "status": {}}
        ec = self.ec()
        if ec:
            o["ec"] = {"generation": ec["metadata"].get("generation"),
                       "resourceVersion": ec["metadata"].get("resourceVersion"),
                       "status": ec.get("status") or {}}
            o["size"] = (ec.get("spec") or {}).get("size")
        sts = self.api.get("/apis/apps/v1/namespaces/%s/statefulsets/%s" % (self.ns, self.name))
        if sts:
            o["sts"] = {"replicas": (sts.get("spec") or {}).get("replicas"),
                        "ready": (sts.get("status") or {}).get("readyReplicas", 0)}
        for p in self.api.items("/api/v1/namespaces/%s/pods" % self.ns):
            m = self.pod_re.match(p["metadata"]["name"])
            if not m:
                continue
            st = p.get("status") or {}
            o["pods"][int(m.group(1))] = {
                "ip": st.get("podIP"), "ready": ready(p), "terminating": terminating(p),
                "uid": p["metadata"]["uid"], "phase": st.get("phase"),
                "restarts": sum(c.get("restartCount", 0)
                                for c in st.get("containerStatuses") or [])}
        # the member list, from a ready pod first
        order = sorted(o["pods"].items(), key=lambda kv: (not kv[1]["ready"], kv[0]))
        for i, p in order:
            if not p["ip"] or p["terminating"]:
                continue
            got, err = ctl_json(self.ctl, p["ip"], "member", "list")
            if got is not None:
                o["members"] = [{"id": "%x" % int(m["ID"]), "name": m.get("name", ""),
                                 "learner": bool(m.get("isLearner")),
                                 "peer": (m.get("peerURLs") or [""])[0]}
                                for m in got.get("members") or []]
                o["members_from"] = i
                break
            o["members_error"] = "%s-%d: %s" % (self.name, i, err)
        for i, p in o["pods"].items():
            if not p["ip"] or p["terminating"]:
                continue
            got, err = ctl_json(self.ctl, p["ip"], "endpoint", "status")
            if got:
                s = got[0].get("Status") or {}
                o["status"][i] = {"id": "%x" % int(s.get("header", {}).get("member_id", 0)),
                                  "leader": "%x" % int(s.get("leader", 0)),
                                  "index": s.get("raftIndex"),
                                  "applied": s.get("raftAppliedIndex")}
            else:
                o["status"][i] = {"error": err}
        return o

    def problems(self, o, size):
        """What keeps the observation from being 'converged at size'; [] when converged."""
        c, out = self.name, []
        if o["ec"] is None:
            return ["EtcdCluster %s/%s does not exist" % (self.ns, c)]
        if o["size"] != size:
            out.append("spec.size is %s" % o["size"])
        if o["sts"] is None:
            out.append("no StatefulSet %s" % c)
        else:
            if o["sts"]["replicas"] != size:
                out.append("StatefulSet replicas %s" % o["sts"]["replicas"])
            if o["sts"]["ready"] != size:
                out.append("StatefulSet readyReplicas %s" % o["sts"]["ready"])
        for i in range(size):
            p = o["pods"].get(i)
            if p is None:
                out.append("pod %s-%d missing" % (c, i))
            elif p["terminating"] or not p["ready"]:
                out.append("pod %s-%d %s" % (c, i, "terminating" if p["terminating"] else
                                             "not Ready (%s)" % p["phase"]))
        extra = sorted(i for i in o["pods"] if i >= size)
        if extra:
            out.append("pods beyond the size still exist: %s"
                       % ", ".join("%s-%d" % (c, i) for i in extra))
        ms = o["members"]
        if ms is None:
            out.append("member list unreadable (%s)" % o["members_error"])
            return out
        want = {"%s-%d" % (c, i) for i in range(size)}
        names = {m["name"] for m in ms}
        if len(ms) != size or names != want:
            out.append("members are [%s], want %s" % (
                ", ".join("%s%s" % (m["name"] or "(unstarted %s)" % m["peer"],
                                    "(learner)" if m["learner"] else "") for m in ms),
                ", ".join(sorted(want))))
        learners = [m["name"] or m["peer"] for m in ms if m["learner"]]
        if learners:
            out.append("learners left: %s" % ", ".join(learners))
        ids = {m["id"] for m in ms}
        leaders = set()
        for i in range(size):
            s = o["status"].get(i)
            if not s or "error" in s:
                out.append("%s-%d status: %s" % (c, i, (s or {}).get("error", "no IP")))
                continue
            leaders.add(s["leader"])
        if len(leaders) > 1:
            out.append("members disagree on the leader: %s" % sorted(leaders))
        elif leaders and (leaders - ids or "0" in leaders):
            out.append("leader %s is not a member" % leaders.pop())
        return out

    def leader_name(self, o):
        ls = {s["leader"] for s in o["status"].values() if "leader" in s}
        for m in o["members"] or []:
            if m["id"] in ls:
                return m["name"]
        return None


def summary(o, name):
    ms = o["members"]
    mtxt = "unreadable" if ms is None else "[%s]" % ", ".join(
        "%s %s%s" % (m["name"] or "?", m["id"], " learner" if m["learner"] else "") for m in ms)
    pods = ", ".join("%s-%d %s%s%s" % (name, i, p["phase"], " ready" if p["ready"] else "",
                                      " terminating" if p["terminating"] else "")
                     for i, p in sorted(o["pods"].items()))
    st = o["ec"]["status"] if o["ec"] else {}
    conds = ", ".join("%s=%s(%s)" % (x.get("type"), x.get("status"), x.get("reason", ""))
                      for x in st.get("conditions") or [])
    return ("spec.size=%s sts=%s pods=[%s] members=%s status: phase=%s ready=%s leader=%s "
            "conditions=[%s]" % (o["size"], o["sts"], pods, mtxt, st.get("phase"),
                                 st.get("readyMembers"), st.get("leader"), conds))


def step_state(o):
    ms = o["members"]
    if ms is None:
        return None
    voters = sum(not m["learner"] for m in ms)
    learners = sum(m["learner"] for m in ms)
    reps = o["sts"]["replicas"] if o["sts"] else None
    return (voters, learners, reps)


def cmd_wait_converged(cl, size, secs, steps):
    deadline = time.monotonic() + secs
    seen, bad = [], []
    last, probs = None, ["nothing observed yet"]
    while True:
        try:
            last = cl.observe()
            probs = cl.problems(last, size)
        except Exception as e:  # noqa: BLE001 - an API hiccup is one more failed poll
            probs = ["observation failed: %s" % e]
            last = None
        if last is not None and steps:
            s = step_state(last)
            if s is not None:
                if not seen or seen[-1] != s:
                    seen.append(s)
                voters, learners, reps = s
                if learners > 1:
                    bad.append("%d learners at once (%s)" % (learners, summary(last, cl.name)))
                # the StatefulSet is read before the member list, so these never misfire
                if steps == "up" and reps is not None and reps > voters + learners:
                    bad.append("StatefulSet replicas %d > %d members: a pod before its "
                               "MemberAdd (%s)" % (reps, voters + learners,
                                                   summary(last, cl.name)))
                if steps == "down" and reps is not None and reps < voters + learners:
                    bad.append("StatefulSet replicas %d < %d members: a pod removed before "
                               "its MemberRemove (%s)" % (reps, voters + learners,
                                                          summary(last, cl.name)))
        if not probs or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if steps:
        print("steps: " + " -> ".join("%dv+%dl/sts%s" % s for s in seen))
        for b in bad[:5]:
            print("step violation: " + b)
    if probs:
        print("timeout after %ds waiting for cluster %s at size %d: %s"
              % (secs, cl.name, size, "; ".join(probs)))
        if last is not None:
            print("last observation: " + summary(last, cl.name))
        return 1
    print("converged: " + summary(last, cl.name))
    return 1 if bad else 0


def status_problems(cl, o, size, phase):
    if o["ec"] is None:
        return ["no EtcdCluster"]
    st, out = o["ec"]["status"], []
    if st.get("observedGeneration") != o["ec"]["generation"]:
        out.append("observedGeneration %s != generation %s" % (st.get("observedGeneration"),
                                                                o["ec"]["generation"]))
    if st.get("phase") != phase:
        out.append("phase %r, want %r" % (st.get("phase"), phase))
    if st.get("readyMembers") != size:
        out.append("readyMembers %r" % st.get("readyMembers"))
    sm = st.get("members") or []
    ids = {m["name"]: m["id"] for m in o["members"] or []}
    if len(sm) != size:
        out.append("%d status.members" % len(sm))
    for m in sm:
        nm = m.get("name")
        mid = str(m.get("id", "")).lower()
        if nm not in ids:
            out.append("status member %r is not in the member list" % nm)
        elif mid.lstrip("0") != ids[nm].lstrip("0") and mid != str(int(ids[nm], 16)):
            out.append("status member %s id %r, member list says %s" % (nm, mid, ids[nm]))
        if m.get("isLearner"):
            out.append("status member %s isLearner" % nm)
        if m.get("healthy") is not True:
            out.append("status member %s healthy=%r" % (nm, m.get("healthy")))
    leader = cl.leader_name(o)
    flagged = [m.get("name") for m in sm if m.get("isLeader")]
    if flagged != [leader]:
        out.append("isLeader set on %s, leader is %s" % (flagged, leader))
    if st.get("leader") not in (leader, ids.get(leader)):
        out.append("status.leader %r, leader is %s" % (st.get("leader"), leader))
    conds = {c.get("type"): c for c in st.get("conditions") or []}
    if (conds.get("Available") or {}).get("status") != "True":
        out.append("condition Available is %s" % conds.get("Available"))
    if (conds.get("Degraded") or {}).get("status") == "True":
        out.append("condition Degraded is %s" % conds.get("Degraded"))
    return out


def poll(secs, what, fn):
    """Calls fn() -> (problems, detail) every 0.5 s until no problems or SECONDS passed."""
    deadline = time.monotonic() + secs
    while True:
        try:
            probs, detail = fn()
        except Exception as e:  # noqa: BLE001
            probs, detail = ["observation failed: %s" % e], ""
        if not probs:
            print("ok: %s" % detail)
            return 0
        if time.monotonic() >= deadline:
            print("timeout after %ds waiting for %s: %s" % (secs, what, "; ".join(probs)))
            if detail:
                print("last observation: " + detail)
            return 1
        time.sleep(0.5)


# --- snapshots ----------------------------------------------------------------------------

def snapshot(cl):
    api, ns, c = cl.api, cl.ns, cl.name
    out = {}
    ec = cl.ec()
    if ec:
        out["etcdcluster/" + c] = ec["metadata"]["resourceVersion"]
    singles = [("statefulset", "/apis/apps/v1/namespaces/%s/statefulsets/%s", c),
               ("service", "/api/v1/namespaces/%s/services/%s", c),
               ("service", "/api/v1/namespaces/%s/services/%s", c + "-peer"),
               ("configmap", "/api/v1/namespaces/%s/configmaps/%s", c + "-members"),
               ("pdb", "/apis/policy/v1/namespaces/%s/poddisruptionbudgets/%s", c),
               ("cronjob", "/apis/batch/v1/namespaces/%s/cronjobs/%s", c + "-backup"),
               ("pvc", "/api/v1/namespaces/%s/persistentvolumeclaims/%s", c + "-backup")]
    for kind, path, name in singles:
        o = api.get(path % (ns, name))
        if o:
            out["%s/%s" % (kind, name)] = o["metadata"]["resourceVersion"]
    pod_re = re.compile("^%s-[0-9]+$" % re.escape(c))
    pvc_re = re.compile("^data-%s-[0-9]+$" % re.escape(c))
    for p in api.items("/api/v1/namespaces/%s/pods" % ns):
        if pod_re.match(p["metadata"]["name"]):
            out["pod/" + p["metadata"]["name"]] = p["metadata"]["resourceVersion"]
    for p in api.items("/api/v1/namespaces/%s/persistentvolumeclaims" % ns):
        if pvc_re.match(p["metadata"]["name"]):
            out["pvc/" + p["metadata"]["name"]] = p["metadata"]["resourceVersion"]
    for e in api.items("/api/v1/namespaces/%s/events" % ns):
        src = "%s %s %s" % ((e.get("source") or {}).get("component", ""),
                            e.get("reportingComponent", ""), e.get("reportingController", ""))
        if "operator" in src or "cetcd" in src:
            out["event/%s (%s)" % (e["metadata"]["name"], e.get("reason"))] = \
                e["metadata"]["resourceVersion"]
    return out


def snapshot_diff(a, b):
    out = []
    for k in sorted(set(a) | set(b)):
        if k not in a:
            out.append("new: %s (rv %s)" % (k, b[k]))
        elif k not in b:
            out.append("gone: %s" % k)
        elif a[k] != b[k]:
            out.append("changed: %s rv %s -> %s" % (k, a[k], b[k]))
    return out


# --- operator -----------------------------------------------------------------------------

def operator_pods(api):
    d = api.get("/apis/apps/v1/namespaces/%s/deployments/%s" % (OP_NS, OP_DEPLOY))
    if d is None:
        return None, []
    sel = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = [p for p in api.items("/api/v1/namespaces/%s/pods" % OP_NS)
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())]
    return d, pods


def rolled_problems(api, fp):
    d, pods = operator_pods(api)
    if d is None:
        return ["no Deployment %s/%s" % (OP_NS, OP_DEPLOY)], ""
    want = (d.get("spec") or {}).get("replicas", 1)
    out, desc = [], []
    live = [p for p in pods if not terminating(p)]
    if len(live) != want:
        out.append("%d live operator pods, want %d" % (len(live), want))
    for p in pods:
        nm = p["metadata"]["name"]
        env = {}
        for c in p["spec"].get("containers") or []:
            for e in c.get("env") or []:
                env[e["name"]] = e.get("value")
        have = env.get("CETCD_OPERATOR_FAILPOINT") or "-"
        desc.append("%s ready=%s terminating=%s failpoint=%s" % (nm, ready(p), terminating(p),
                                                                 have))
        if terminating(p):
            out.append("%s still terminating" % nm)
        elif not ready(p):
            out.append("%s not Ready" % nm)
        if have != fp:
            out.append("%s has failpoint %s" % (nm, have))
    return out, "; ".join(desc)


def exit42_problems(api):
    _, pods = operator_pods(api)
    desc = []
    for p in pods:
        for c in (p.get("status") or {}).get("containerStatuses") or []:
            t = (c.get("lastState") or {}).get("terminated") or {}
            desc.append("%s restarts=%s last exit=%s" % (p["metadata"]["name"],
                                                         c.get("restartCount"),
                                                         t.get("exitCode")))
            if t.get("exitCode") == 42:
                return [], "; ".join(desc)
    return ["no operator container ended with exit code 42"], "; ".join(desc)


# --- manifests ----------------------------------------------------------------------------

KIND_ORDER = ["Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
              "ClusterRoleBinding", "Role", "RoleBinding"]


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if isinstance(d, dict) and d.get("kind")]


def install_yaml(root, rendered):
    docs = []
    if rendered:
        docs = load_docs(rendered)
    else:
        for sub in ("crd", "rbac", "operator"):
            d = os.path.join(root, sub)
            for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                if f.endswith((".yaml", ".yml", ".json")) and not f.startswith("kustomization"):
                    docs += load_docs(os.path.join(d, f))
    docs = [d for d in docs if d["kind"] != "EtcdCluster"]

    def rank(d):
        k = d["kind"]
        return KIND_ORDER.index(k) if k in KIND_ORDER else (
            len(KIND_ORDER) + 1 if k == "Deployment" else len(KIND_ORDER))
    docs.sort(key=rank)  # stable: keeps file order within a rank
    return yaml.safe_dump_all(docs, sort_keys=False)


def find_sample(d, size):
    for f in sorted(os.listdir(d)):
        if not f.endswith((".yaml", ".yml")):
            continue
        for doc in load_docs(os.path.join(d, f)):
            if doc["kind"] == "EtcdCluster" and (doc.get("spec") or {}).get("size") == size:
                md = doc.get("metadata") or {}
                return "%s\t%s\t%s" % (os.path.join(d, f), md.get("name", ""),
                                       md.get("namespace", ""))
    return None


def derive(path, name, size):
    for doc in load_docs(path):
        if doc["kind"] == "EtcdCluster":
            md = doc.setdefault("metadata", {})
            md["name"] = name
            for k in ("resourceVersion", "uid", "creationTimestamp"):
                md.pop(k, None)
            doc.setdefault("spec", {})["size"] = size
            doc.pop("status", None)
            return yaml.safe_dump(doc, sort_keys=False)
    raise SystemExit("no EtcdCluster in %s" % path)


def size_messages(paths):
    out = []

    def walk(node, path):
        if isinstance(node, dict):
            for v in node.get("x-kubernetes-validations") or []:
                rule, msg = v.get("rule", ""), v.get("message") or v.get("messageExpression")
                if msg and (path == ".spec.size" or (path == ".spec" and "self.size" in rule)):
                    out.append(msg)
            for k, v in (node.get("properties") or {}).items():
                walk(v, path + "." + k)
    for p in paths:
        for doc in load_docs(p):
            if doc["kind"] != "CustomResourceDefinition":
                continue
            for v in (doc.get("spec") or {}).get("versions") or []:
                walk(((v.get("schema") or {}).get("openAPIV3Schema") or {}), "")
    return out


def columns(text):
    """kubectl's table on stdin: prints HEADER=value for the first row (cells cut at the
    header's column offsets, so an empty cell stays empty)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        print("no table row in: %r" % text, file=sys.stderr)
        return 1
    head, row = lines[0], lines[1]
    starts = [m.start() for m in re.finditer(r"\S+", head)]
    for n, st in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else None
        print("%s=%s" % (head[st:end].strip(), row[st:end].strip()))
    return 0


def event_problems(api, ns, name, reason):
    evs = [e for e in api.items("/api/v1/namespaces/%s/events" % ns)
           if (e.get("involvedObject") or {}).get("kind") == "EtcdCluster" and
           (e.get("involvedObject") or {}).get("name") == name]
    for e in evs:
        if e.get("reason") == reason:
            return [], "%s %s: %s" % (e.get("type"), e.get("reason"), e.get("message"))
    return ["no Event with reason %s about EtcdCluster %s" % (reason, name)], \
        "events about it: %s" % "; ".join("%s %s" % (e.get("reason"), e.get("message"))
                                          for e in evs[-8:])


# --- backups and restores -----------------------------------------------------------------

BACKUP_ANN = "cetcd.io/backup-now"
BACKUP_NAME = re.compile(r"^(?P<prefix>.+)-[0-9]{8}T[0-9]{6}Z-r(?P<rev>[0-9]+)\.db$")
PAGE = 4096


def derive_size3(path, name, **spec_set):
    """The first EtcdCluster of FILE renamed to NAME, size 3, without backup or restore, with
    spec_set's fields set, as YAML."""
    for doc in load_docs(path):
        if doc["kind"] == "EtcdCluster":
            md = doc.setdefault("metadata", {})
            md["name"] = name
            for k in ("resourceVersion", "uid", "creationTimestamp", "annotations"):
                md.pop(k, None)
            spec = doc.setdefault("spec", {})
            spec["size"] = 3
            for k in ("backup", "restore"):
                spec.pop(k, None)
            spec.update(spec_set)
            doc.pop("status", None)
            return yaml.safe_dump(doc, sort_keys=False)
    raise SystemExit("no EtcdCluster in %s" % path)


def derive_secure(path, name, ca, root):
    return derive_size3(path, name, tls={"caSecret": ca}, auth={"rootSecret": root})


def derive_restore(path, name, claim, snap):
    return derive_size3(path, name, restore={"claimName": claim, "file": snap})


def cronjob_problems(cl):
    ec = cl.ec()
    if ec is None:
        return ["no EtcdCluster"], ""
    bk = (ec.get("spec") or {}).get("backup")
    if not bk:
        return ["the EtcdCluster has no spec.backup"], ""
    c, ns = cl.name, cl.ns
    cj = cl.api.get("/apis/batch/v1/namespaces/%s/cronjobs/%s-backup" % (ns, c))
    if cj is None:
        return ["no CronJob %s-backup" % c], ""
    out, spec = [], cj.get("spec") or {}
    want_image = (ec["spec"].get("image") or
                  "cetcd:%s" % ec["spec"].get("version", "0.1.0"))
    if spec.get("schedule") != bk.get("schedule"):
        out.append("schedule %r, spec.backup.schedule %r" % (spec.get("schedule"), bk.get("schedule")))
    if bool(spec.get("suspend")) != bool(bk.get("suspend")):
        out.append("suspend %r" % spec.get("suspend"))
    if spec.get("concurrencyPolicy") != "Forbid":
        out.append("concurrencyPolicy %r" % spec.get("concurrencyPolicy"))
    refs = [(r.get("kind"), r.get("uid"), r.get("controller"))
            for r in cj["metadata"].get("ownerReferences") or []]
    if ("EtcdCluster", ec["metadata"]["uid"], True) not in refs:
        out.append("not owned by the EtcdCluster: %s" % refs)
    labels = cj["metadata"].get("labels") or {}
    if labels.get("app.kubernetes.io/instance") != c or \
            labels.get("app.kubernetes.io/component") != "backup":
        out.append("labels %s" % labels)
    pod = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {})
    pspec = pod.get("spec") or {}
    if "cls" in ((pod.get("metadata") or {}).get("labels") or {}):
        out.append("the backup pods carry cls (the client Service would select them)")
    ctr = (pspec.get("containers") or [{}])[0]
    argv = (ctr.get("command") or []) + (ctr.get("args") or [])
    want = ["cetcdctl", "--endpoints=http://%s.%s.svc:2379" % (c, ns), "snapshot", "save",
            "--dir", "/backup", "--prefix", c, "--retention", str(bk.get("retention", 7)),
            "--result-file", "/dev/termination-log"]
    if argv != want:
        out.append("command %s, want %s" % (argv, want))
    if ctr.get("image") != want_image:
        out.append("image %r, want %r" % (ctr.get("image"), want_image))
    claim = ((bk.get("storage") or {}).get("existingClaim") or "%s-backup" % c)
    vols = {v.get("name"): (v.get("persistentVolumeClaim") or {}).get("claimName")
            for v in pspec.get("volumes") or []}
    mounts = {m.get("mountPath"): m.get("name") for m in ctr.get("volumeMounts") or []}
    if vols.get(mounts.get("/backup")) != claim:
        out.append("/backup is %r, want claim %s" % (vols.get(mounts.get("/backup")), claim))
    return out, "CronJob %s-backup: %s, %s" % (c, spec.get("schedule"), " ".join(argv))


def backup_job(cl, token):
    for j in cl.api.items("/apis/batch/v1/namespaces/%s/jobs" % cl.ns):
        if ((j["metadata"].get("annotations") or {}).get(BACKUP_ANN) == token and
                (j["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == cl.name):
            return [], j["metadata"]["name"]
    return ["no Job annotated %s=%s" % (BACKUP_ANN, token)], ""


def condition(ec, typ):
    for c in ((ec or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == typ:
            return c
    return {}


def backup_problems(cl, job, kind):
    ec = cl.ec()
    bk = ((ec or {}).get("status") or {}).get("backup") or {}
    cond = condition(ec, "BackupSucceeded")
    out = []
    if kind == "ok":
        rec = bk.get("lastSuccess") or {}
        if rec.get("job") != job:
            out.append("lastSuccess is %s's" % rec.get("job"))
        for k in ("time", "file", "revision", "size", "sha256"):
            if k not in rec:
                out.append("lastSuccess has no %s" % k)
        want = ("True", "BackupCompleted")
    else:
        rec = bk.get("lastFailure") or {}
        if rec.get("job") != job:
            out.append("lastFailure is %s's" % rec.get("job"))
        if not rec.get("message"):
            out.append("lastFailure has no message")
        want = ("False", "BackupFailed")
    if (cond.get("status"), cond.get("reason")) != want:
        out.append("condition BackupSucceeded is %s/%s, want %s/%s" % (
            cond.get("status"), cond.get("reason"), want[0], want[1]))
    return out, json.dumps(bk, sort_keys=True)


def verify_snapshot_file(path):
    """'' if path is a whole snapshot file (pages + its own SHA-256), else why not."""
    size = os.path.getsize(path)
    if size < PAGE + 32 or (size - 32) % PAGE:
        return "%d bytes is not whole %d-byte pages plus a sha256" % (size, PAGE)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size - 32
        while left:
            b = f.read(min(left, 1 << 20))
            if not b:
                return "short read"
            h.update(b)
            left -= len(b)
        tail = f.read(32)
    if h.digest() != tail:
        return "sha256 %s, trailer %s" % (h.hexdigest(), tail.hex())
    return ""


def verify_backups(cl, d, expect):
    """-> (problems, lines)"""
    out, lines, files = [], [], []
    names = sorted(os.listdir(d)) if os.path.isdir(d) else None
    if names is None:
        return ["no directory %s" % d], lines
    for n in names:
        m = BACKUP_NAME.match(n)
        if not m or m.group("prefix") != cl.name:
            out.append("unexpected file %s" % n)
            continue
        why = verify_snapshot_file(os.path.join(d, n))
        if why:
            out.append("%s: %s" % (n, why))
        size = os.path.getsize(os.path.join(d, n))
        files.append(n)
        lines.append("%s %d %s" % (n, size, m.group("rev")))
    if expect is not None and len(files) != expect:
        out.append("%d files, want %d" % (len(files), expect))
    ec = cl.ec()
    rec = ((((ec or {}).get("status") or {}).get("backup") or {}).get("lastSuccess") or {})
    if files:
        newest = files[-1]
        p = os.path.join(d, newest)
        if rec.get("file") != newest:
            out.append("status.backup.lastSuccess.file %r, newest file %s" % (rec.get("file"), newest))
        elif rec.get("size") != os.path.getsize(p) or \
                rec.get("revision") != int(BACKUP_NAME.match(newest).group("rev")):
            out.append("status.backup.lastSuccess %s disagrees with the file (%d bytes)" % (
                rec, os.path.getsize(p)))
        else:
            with open(p, "rb") as f:
                f.seek(-32, os.SEEK_END)
                if f.read(32).hex() != rec.get("sha256"):
                    out.append("status.backup.lastSuccess.sha256 is not the file's")
    return out, lines


def restored_problems(cl, snap):
    ec = cl.ec()
    st = (ec or {}).get("status") or {}
    r = st.get("restore") or {}
    out = []
    if r.get("phase") != "Restored":
        out.append("status.restore.phase %r (message %r)" % (r.get("phase"), r.get("message")))
    if r.get("file") != snap:
        out.append("status.restore.file %r" % r.get("file"))
    if not isinstance(r.get("revision"), int) or r.get("revision") < 1:
        out.append("status.restore.revision %r" % r.get("revision"))
    if not r.get("clusterID") or r.get("clusterID") != st.get("clusterID"):
        out.append("status.restore.clusterID %r, status.clusterID %r" % (
            r.get("clusterID"), st.get("clusterID")))
    return out, json.dumps(r, sort_keys=True)


# --- main ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="operator e2e helper (see the module docstring)")
    ap.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    ap.add_argument("--ns", default="default")
    ap.add_argument("--cluster", default="")
    ap.add_argument("--ctl", default="bin/cetcdctl")
    ap.add_argument("cmd")
    ap.add_argument("args", nargs="*")
    ap.add_argument("--steps", choices=["up", "down"], default="")
    ap.add_argument("--phase", default="Running")
    ap.add_argument("--rendered", default="")
    ap.add_argument("--expect", type=int, default=None)
    a = ap.parse_intermixed_args()
    cmd, args = a.cmd, a.args

    if cmd == "install-yaml":
        sys.stdout.write(install_yaml(args[0], a.rendered))
        return 0
    if cmd == "sample":
        got = find_sample(args[0], int(args[1]))
        if got is None:
            print("no EtcdCluster with spec.size %s in %s" % (args[1], args[0]), file=sys.stderr)
            return 1
        print(got)
        return 0
    if cmd == "derive":
        sys.stdout.write(derive(args[0], args[1], int(args[2])))
        return 0
    if cmd == "derive-secure":
        sys.stdout.write(derive_secure(args[0], args[1], args[2], args[3]))
        return 0
    if cmd == "derive-restore":
        sys.stdout.write(derive_restore(args[0], args[1], args[2], args[3]))
        return 0
    if cmd == "crd-size-messages":
        for m in size_messages(args):
            print(m)
        return 0
    if cmd == "columns":
        return columns(sys.stdin.read())
    if cmd == "snapshot-diff":
        with open(args[0]) as fa, open(args[1]) as fb:
            d = snapshot_diff(json.load(fa), json.load(fb))
        for line in d:
            print(line)
        return 1 if d else 0

    api = Api(a.kubeconfig)
    if cmd == "operator-rolled":
        return poll(int(args[0]), "the operator Deployment rolled out with failpoint %s" % args[1],
                    lambda: rolled_problems(api, args[1]))
    if cmd == "operator-exit42":
        return poll(int(args[0]), "an operator container that exited with code 42",
                    lambda: exit42_problems(api))

    cl = Cluster(api, a.ns, a.cluster, a.ctl)
    if cmd == "observe":
        print(json.dumps(cl.observe(), indent=1, sort_keys=True))
        return 0
    if cmd == "wait-converged":
        return cmd_wait_converged(cl, int(args[0]), int(args[1]), a.steps)
    if cmd == "wait-status":
        size = int(args[0])

        def fn():
            o = cl.observe()
            return status_problems(cl, o, size, a.phase), summary(o, cl.name)
        return poll(int(args[1]), "the status of %s to agree with the cluster at size %d"
                    % (cl.name, size), fn)
    if cmd == "wait-condition":
        typ, status, reason, secs = args[0], args[1], args[2], int(args[3])

        def fn():
            ec = cl.ec()
            conds = {c.get("type"): c for c in ((ec or {}).get("status") or {})
                     .get("conditions") or []}
            c = conds.get(typ) or {}
            ok = c.get("status") == status and (reason == "-" or c.get("reason") == reason)
            return ([] if ok else ["%s is %s" % (typ, c or "absent")]), json.dumps(c)
        return poll(secs, "condition %s=%s reason %s on %s" % (typ, status, reason, cl.name), fn)
    if cmd == "wait-event":
        return poll(int(args[1]), "an Event %s about EtcdCluster %s" % (args[0], cl.name),
                    lambda: event_problems(api, cl.ns, cl.name, args[0]))
    if cmd == "member-id" or cmd == "leader":
        o = cl.observe()
        if cmd == "leader":
            n = cl.leader_name(o)
            print(n or "")
            return 0 if n else 1
        for m in o["members"] or []:
            if m["name"] == args[0]:
                print(m["id"])
                return 0
        print("no member %s (%s)" % (args[0], summary(o, cl.name)), file=sys.stderr)
        return 1
    if cmd == "snapshot":
        print(json.dumps(snapshot(cl), indent=1, sort_keys=True))
        return 0
    if cmd == "cronjob-ok":
        probs, detail = cronjob_problems(cl)
        print("; ".join(probs) if probs else detail)
        return 1 if probs else 0
    if cmd == "backup-job":
        deadline = time.monotonic() + int(args[1])
        while True:
            probs, name = backup_job(cl, args[0])
            if not probs:
                print(name)
                return 0
            if time.monotonic() >= deadline:
                print("timeout after %ss: %s" % (args[1], probs[0]), file=sys.stderr)
                return 1
            time.sleep(0.5)
    if cmd == "wait-backup":
        return poll(int(args[2]), "status.backup to record %s (%s)" % (args[0], args[1]),
                    lambda: backup_problems(cl, args[0], args[1]))
    if cmd == "verify-backups":
        probs, lines = verify_backups(cl, args[0], a.expect)
        for line in lines:
            print(line)
        for p in probs:
            print("problem: " + p)
        return 1 if probs else 0
    if cmd == "wait-restored":
        return poll(int(args[1]), "status.restore of %s to be Restored from %s" % (cl.name, args[0]),
                    lambda: restored_problems(cl, args[0]))
    print("unknown command %s" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
