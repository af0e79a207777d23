#!/usr/bin/python3
"""Unit checks of kube-lite's workload helpers (engineer B), no root or server needed:
cron parsing and schedule search, label selectors, $(VAR) expansion, image-map argv
resolution (another program of the same image included), termination messages' log tail, probe
thresholds, Endpoints subset merging, pvc-protection's notion of a PVC user,
intstr scaling and the Deployment's pod-template-hash. Prints `ok N - ...` and
`N passed, M failed`; exit status 1 on any failure."""

import calendar
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "hack", "kube-lite"))
from kubelite import controllers as c  # noqa: E402
from kubelite import kubelet as kl  # noqa: E402

N = [0, 0, 0]


def check(name, cond, detail=""):
    N[0] += 1
    if cond:
        N[1] += 1
        print("ok %d - %s" % (N[0], name))
    else:
        N[2] += 1
        print("not ok %d - %s" % (N[0], name))
        if detail:
            print("#   %s" % detail)


def t(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%d %H:%M"))


# cron
every5 = c.parse_cron("*/5 * * * *")
check("*/5: 10:05 matches, 10:07 does not",
      c.cron_match(every5, t("2024-03-04 10:05")) and not c.cron_match(every5, t("2024-03-04 10:07")))
check("last_schedule finds the latest */5 minute before now",
      c.last_schedule(every5, t("2024-03-04 09:00"), t("2024-03-04 10:07") + 30) == t("2024-03-04 10:05"))
check("last_schedule: nothing after `after`",
      c.last_schedule(every5, t("2024-03-04 10:05"), t("2024-03-04 10:09")) is None)
wk = c.parse_cron("30 8 * * mon-fri")
check("mon-fri 08:30: Monday yes, Sunday no",
      c.cron_match(wk, t("2024-03-04 08:30")) and not c.cron_match(wk, t("2024-03-03 08:30")))
dom_or_dow = c.parse_cron("0 0 13 * 5")
check("day-of-month OR day-of-week when both restricted",
      c.cron_match(dom_or_dow, t("2024-03-13 00:00")) and c.cron_match(dom_or_dow, t("2024-03-15 00:00"))
      and not c.cron_match(dom_or_dow, t("2024-03-14 00:00")))
check("@hourly macro", c.cron_match(c.parse_cron("@hourly"), t("2024-03-04 07:00")))
for bad in ("* * *", "61 * * * *", "*/0 * * * *"):
    try:
        c.parse_cron(bad)
        check("bad schedule %r rejected" % bad, False)
    except ValueError:
        check("bad schedule %r rejected" % bad, True)

# selectors
sel = {"matchLabels": {"app": "web"},
       "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                            {"key": "x", "operator": "DoesNotExist"}]}
check("selector matches", c.matches({"app": "web", "tier": "a"}, sel))
check("selector: In fails", not c.matches({"app": "web", "tier": "c"}, sel))
check("selector: DoesNotExist fails", not c.matches({"app": "web", "tier": "a", "x": "1"}, sel))
check("service map selector", c.matches({"app": "web", "z": "1"}, {"app": "web"})
      and not c.matches({}, {"app": "web"}))

# $(VAR) expansion
env = {"A": "1", "B": "two"}
check("$(VAR) expansion, $$ escape, unknown kept",
      kl.expand("x$(A)-$(B)-$$(A)-$(C)", env) == "x1-two-$(A)-$(C)",
      kl.expand("x$(A)-$(B)-$$(A)-$(C)", env))

# image map
images = kl.load_image_map({"cetcd:*": "<repo>/bin/cetcd", "python:*": "/usr/bin/python3",
                            "busybox:*": "builtin:busybox"})
argv, _ = kl.resolve_argv(images, {"image": "cetcd:v1", "args": ["--name", "x"]})
check("entrypoint = image program when command is empty",
      argv == [os.path.join(kl.REPO, "bin/cetcd"), "--name", "x"], argv)
argv, _ = kl.resolve_argv(images, {"image": "python:3", "command": ["python3", "-c", "1"]})
check("command named like the image's program runs the image's program",
      argv == ["/usr/bin/python3", "-c", "1"], argv)
argv, _ = kl.resolve_argv(images, {"image": "busybox", "command": ["sh", "-c", "true"]})
check("untagged image matches tag glob; command from PATH", argv == ["sh", "-c", "true"], argv)
argv, _ = kl.resolve_argv(images, {"image": "cetcd:v1", "command": ["cetcdctl", "version"]})
check("command naming another program of the image runs that program (cetcd:* cetcdctl)",
      argv == [os.path.join(kl.REPO, "bin/cetcdctl"), "version"], argv)
argv, _ = kl.resolve_argv(images, {"image": "cetcd:v1",
                                   "command": ["/usr/local/bin/cetcdctl", "version"]})
check("... also given as the image's own path (/usr/local/bin/cetcdctl)",
      argv == [os.path.join(kl.REPO, "bin/cetcdctl"), "version"], argv)
argv, _ = kl.resolve_argv(images, {"image": "cetcd:v1", "command": ["sh", "-c", "true"]})
check("a command that is no program of the image comes from PATH", argv == ["sh", "-c", "true"],
      argv)
try:
    kl.resolve_argv(images, {"image": "nginx:1"})
    check("unmapped image without command is an error", False)
except ValueError:
    check("unmapped image without command is an error", True)

# termination messages: FallbackToLogsOnError takes the log's last lines, at most N bytes
import tempfile  # noqa: E402
with tempfile.NamedTemporaryFile("wb", delete=False) as f:
    f.write(b"".join(b"line %d\n" % i for i in range(200)))
try:
    tail = kl.log_tail(f.name, 80, 2048)
    check("log tail: the last 80 lines", tail.split(b"\n")[0] == b"line 120" and
          tail.endswith(b"line 199") and len(tail.split(b"\n")) == 80, tail[:40])
    tail = kl.log_tail(f.name, 80, 20)
    check("log tail: at most the byte limit, from the end", tail == b"97\nline 198\nline 199",
          tail)
finally:
    os.unlink(f.name)
check("log tail of a missing file is empty", kl.log_tail("/nonexistent/x.log", 80, 2048) == b"")

# probe thresholds
p = kl.Probe({"periodSeconds": 1, "failureThreshold": 2, "successThreshold": 2,
              "initialDelaySeconds": 5}, "readinessProbe")
p.reset(100)
check("probe waits for initialDelaySeconds", not p.due(104) and p.due(105))
p.record(True, 105)
r1 = p.result
p.record(True, 106)
r2 = p.result
p.record(False, 107)
r3 = p.result
p.record(False, 108)
check("success/failure thresholds", (r1, r2, r3, p.result) == (None, True, True, False),
      (r1, r2, r3, p.result))

# endpoints merge
a = [{"ip": "1"}]
m = c.Services._merge([{"ports": [{"port": 1}], "addresses": a},
                       {"ports": [{"port": 2}], "addresses": a},
                       {"ports": [{"port": 3}], "addresses": [{"ip": "2"}]}])
check("endpoint subsets with equal addresses share ports",
      len(m) == 2 and [p["port"] for p in m[0]["ports"]] == [1, 2], m)

# pvc-protection: who holds a PVC being deleted
pvc = {"metadata": {"name": "data-x-0", "deletionTimestamp": "2026-01-01T00:00:10Z"}}


def pod(created, phase="Pending", claim="data-x-0", started=False):
    st = {"phase": phase}
    if started:
        st["containerStatuses"] = [{"state": {"running": {}}}]
    return {"metadata": {"creationTimestamp": created},
            "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}, "status": st}


check("pvc_user: an older pod holds the PVC, a newer Pending one or a finished one does not",
      [c.pvc_user(pod("2026-01-01T00:00:09Z"), pvc), c.pvc_user(pod("2026-01-01T00:00:10Z"), pvc),
       c.pvc_user(pod("2026-01-01T00:00:11Z", started=True), pvc),
       c.pvc_user(pod("2026-01-01T00:00:09Z", "Succeeded"), pvc),
       c.pvc_user(pod("2026-01-01T00:00:09Z", claim="other"), pvc)] == [True, False, True, False, False])

# intstr scaling (PDB, Deployment)
check("intstr: ints as is, percentages rounded up or down",
      [c.scaled(2, 5), c.scaled("50%", 5), c.scaled("50%", 5, False), c.scaled("25%", 1), c.scaled("25%", 1, False)]
      == [2, 3, 2, 1, 0])

# pod-template-hash: stable, ignores its own label, changes with the template
t1 = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
t2 = {"metadata": {"labels": {"app": "a", "pod-template-hash": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
t3 = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "j"}]}}
h = c.pod_template_hash(t1)
check("pod-template-hash: 10 safe characters, ignores its own label, follows the template",
      len(h) == 10 and set(h) <= set(c.HASH_ALPHABET) and h == c.pod_template_hash(t2) and h != c.pod_template_hash(t3), h)

print("%d passed, %d failed" % (N[1], N[2]))
sys.exit(1 if N[2] else 0)
