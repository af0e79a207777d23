"""kube-lite kubelet (+ kube-proxy and DNS role): runs every pod as local processes.

For each pod object (all namespaces; there is one node, "kube-lite") a PodWorker thread:
creates the pod's network namespace (net.py), prepares its volumes as directories under
DIR/pods/<ns>/<pod>/volumes/ (PVCs under DIR/pvs/<ns>/<claim>/), runs init containers one by one,
then every container through launch.py (private mount + UTS namespaces, bind-mounted volumes,
service-account token/CA/namespace at /var/run/secrets/kubernetes.io/serviceaccount), runs
httpGet/tcpSocket/exec startup/readiness/liveness probes, restarts per restartPolicy with
back-off, and reports status through pods/<name>/status. The kubelet also keeps every pod's
/etc/netns/<netns>/hosts (and DIR/hosts for the host) in line with pods and services, and runs
one userspace proxy per ClusterIP service port (`kubernetes`:443 -> the API's HTTPS listener,
DIR/url-https). Pods get KUBERNETES_SERVICE_HOST/PORT (https, verified with the mounted ca.crt =
DIR/ca.crt) and KUBE_LITE_API (plain http://<bridge gateway>:<port>). It records Events
(events.py, component "kubelet"): Started, Failed, Unhealthy, Killing, BackOff.
DNS (hosts files) follows Kubernetes' rules: `<svc>.<ns>.svc(.cluster.local)` for every Service
(the ClusterIP, or the ready endpoint addresses of a headless one), and
`<hostname>.<svc>.<ns>.svc(.cluster.local)` only for the addresses of a headless Service's
Endpoints that carry a hostname (pods whose spec.subdomain is that Service); a not-Ready pod is
there only when the Service has publishNotReadyAddresses. A pod's own FQDN is in its hosts file.
ConfigMap/Secret/downwardAPI/projected volumes are written at pod start, re-synced every REFRESH
seconds while the pod runs and before every container restart (atomic file replacement; keys
removed from the ConfigMap disappear). A PVC volume is DIR/pvs/<ns>/<claim>/, owned by one PVC
object (its uid in DIR/pvs/<ns>/.<claim>.uid): a new PVC of the same name starts empty. A pod
waits (ContainerCreating) while its PVC is missing, not Bound, or being deleted since before the
pod existed. Restart back-off is 0.5 s doubling up to 20 s (the real kubelet: 10 s up to 5 min).

Image map (JSON: {glob over image: program}): a container whose `command` is empty runs
[program] + args; otherwise command + args, command[0] being the image's program when its
basename is the same, else another program of the image (a file of that basename next to the
image's program: `cetcdctl` in image cetcd:* is <repo>/bin/cetcdctl), else looked up on PATH. A
program "builtin:<x>" means "no entrypoint": command required (run from the host's PATH).
"<repo>" in a program is this repository's root.
Termination messages: each container run gets an empty file DIR/pods/<ns>/<pod>/<c>.termination-log
bound at its terminationMessagePath (default /dev/termination-log); when the container ends, the
file's first 4096 bytes become state.terminated.message (and lastState's once it restarts); with
terminationMessagePolicy FallbackToLogsOnError, a container that failed (exit code != 0) with an
empty file gets the tail of its log instead (the last 80 lines, at most 2048 bytes), as the real
kubelet does.
Files (see /tmp/kl/design.md 'Agreed paths'): DIR/pods/<ns>/<pod>/<c>.log (+ .previous.log),
<c>.pid ("pid starttime"), <c>.launch.json; /run/kube-lite-mountpoints.list (host paths
created as mount points, removed by the last instance to shut down).
Invariants: at most one PodWorker per pod name runs at a time (a re-created pod with the same
name waits until the old one has stopped and released its netns); a container process is its
own process group, killed by group; status is sent only when it changed.
"""

import base64
import datetime
import fnmatch
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from . import client as kc
from . import events
from . import net as knet
from . import pki

NODE = "kube-lite"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PY = "/usr/bin/python3"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REFRESH = 2.0  # seconds between re-syncs of configMap/secret volumes of a running pod
TERMINATION_PATH = "/dev/termination-log"
TERMINATION_MAX = 4096       # bytes of a termination message (the kubelet's limit)
TERMINATION_LOG_LINES = 80   # FallbackToLogsOnError: the log's last lines ...
TERMINATION_LOG_BYTES = 2048  # ... and at most this many bytes of them

_kubelets = {}


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg):
    print("kubelet: %s" % msg, file=sys.stderr, flush=True)


# --- image map -------------------------------------------------------------------------

def load_image_map(image_map):
    if image_map is None:
        image_map = os.path.join(HERE, "..", "images.json")
    if isinstance(image_map, str):
        try:
            with open(image_map) as f:
                image_map = json.load(f)
        except OSError:
            image_map = {}
    out = []
    for pat, prog in image_map.items():
        out.append((pat, prog.replace("<repo>", REPO)))
    return out


def resolve_argv(images, c):
    """argv for container spec c, or raise ValueError (image not mapped / no command)."""
    image = c.get("image", "")
    prog = None
    for pat, p in images:
        if fnmatch.fnmatchcase(image, pat) or fnmatch.fnmatchcase(image + ":latest", pat):
            prog = p
            break
    cmd, args = list(c.get("command") or []), list(c.get("args") or [])
    if cmd:
        if prog and not prog.startswith("builtin:"):
            sibling = os.path.join(os.path.dirname(prog), os.path.basename(cmd[0]))
            if os.path.basename(cmd[0]) == os.path.basename(prog):
                cmd[0] = prog
            elif os.path.basename(cmd[0]) and os.access(sibling, os.X_OK) and \
                    os.path.isfile(sibling):
                cmd[0] = sibling  # another program of the same image
        return cmd + args, prog or "host"
    if prog is None:
        raise ValueError("image %r is not in the kube-lite image map" % image)
    if prog.startswith("builtin:"):
        if not args:
            raise ValueError("image %r has no entrypoint: give a command" % image)
        return args, prog
    return [prog] + args, prog


def expand(s, env):
    """Kubernetes $(VAR) expansion; $$ escapes; unknown references stay as written."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("$$", i):
            out.append("$")
            i += 2
        elif s.startswith("$(", i) and ")" in s[i:]:
            j = s.index(")", i)
            name = s[i + 2:j]
            out.append(env[name] if name in env else s[i:j + 1])
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


# --- process records -------------------------------------------------------------------

def proc_start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def kill_recorded(pidfile, sig):
    try:
        with open(pidfile) as f:
            pid_s, st = f.read().split()
        pid = int(pid_s)
    except (OSError, ValueError):
        return False
    if proc_start_time(pid) != st:
        return False
    try:
        os.killpg(pid, sig)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            return False
    return True


# Host paths created as mount points, shared by all kube-lite instances on this machine: a
# directory one instance created may be a mount point in another instance's pods (removing it
# would detach their mounts), so only the last instance to go removes them.
MOUNTPOINTS = "/run/kube-lite-mountpoints.list"


def record_mountpoint(state_dir, p):
    with open(MOUNTPOINTS, "a") as f:
        f.write(p + "\n")


def ensure_mountpoint(state_dir, dst, is_file):
    """Create dst (and parents) on the host if missing, recording what was created."""
    if os.path.lexists(dst):
        return
    parts, p = [], dst
    while not os.path.lexists(p):
        parts.append(p)
        p = os.path.dirname(p)
    for q in reversed(parts):
        record_mountpoint(state_dir, q)
    if is_file:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    else:
        os.makedirs(dst, exist_ok=True)


def remove_mountpoints(state_dir):
    """Remove the recorded mount points (empty dirs/files) unless another instance runs."""
    p = MOUNTPOINTS
    if not os.path.exists(p) or knet.other_instances_alive():
        return
    with open(p) as f:
        paths = sorted({x.strip() for x in f if x.strip()}, key=len, reverse=True)
    for q in paths:
        try:
            if os.path.isdir(q) and not os.path.islink(q):
                os.rmdir(q)
            elif os.path.isfile(q) and os.path.getsize(q) == 0:
                os.unlink(q)
        except OSError:
            pass
    os.unlink(p)


def log_tail(path, lines, limit):
    """The last `lines` lines of a file, at most `limit` bytes of them (b"" if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read()
    except OSError:
        return b""
    tail = b"\n".join(data.rstrip(b"\n").split(b"\n")[-lines:])
    return tail[-limit:]


# --- probes ----------------------------------------------------------------------------

class Probe:
    def __init__(self, spec, kind):
        self.spec = spec or {}
        self.kind = kind
        self.delay = self.spec.get("initialDelaySeconds", 0)
        self.period = max(0.2, self.spec.get("periodSeconds", 10))
        self.timeout = max(0.2, self.spec.get("timeoutSeconds", 1))
        self.success_th = self.spec.get("successThreshold", 1)
        self.failure_th = self.spec.get("failureThreshold", 3)
        self.last_error = ""  # why the last run failed (for the Unhealthy event)
        self.reset(0)

    def reset(self, started):
        self.next_at = started + self.delay
        self.succ = 0
        self.fail = 0
        self.result = None  # None unknown, True passed threshold, False failed threshold

    def due(self, t):
        return t >= self.next_at

    def record(self, ok, t):
        self.next_at = t + self.period
        if ok:
            self.succ += 1
            self.fail = 0
            if self.succ >= self.success_th:
                self.result = True
        else:
            self.fail += 1
            self.succ = 0
            if self.fail >= self.failure_th:
                self.result = False


def port_of(c, port):
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in c.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError("named port %r not found" % port)


def run_probe(probe, cspec, pod_ip, pid, env):
    s = probe.spec
    try:
        if "httpGet" in s:
            g = s["httpGet"]
            conn = http.client.HTTPConnection(g.get("host") or pod_ip, port_of(cspec, g["port"]),
                                              timeout=probe.timeout)
            try:
                hdrs = {h["name"]: h["value"] for h in g.get("httpHeaders") or []}
                conn.request("GET", g.get("path") or "/", headers=hdrs)
                code = conn.getresponse().status
                probe.last_error = "HTTP probe failed with statuscode: %d" % code
                return 200 <= code < 400
            finally:
                conn.close()
        if "tcpSocket" in s:
            t = s["tcpSocket"]
            socket.create_connection((t.get("host") or pod_ip, port_of(cspec, t["port"])),
                                     timeout=probe.timeout).close()
            return True
        if "exec" in s:
            cmd = s["exec"].get("command") or []
            r = subprocess.run(["nsenter", "-t", str(pid), "-n", "-m", "-u", "--"] + cmd,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=probe.timeout)
            probe.last_error = "command %r exited with %d" % (" ".join(cmd), r.returncode)
            return r.returncode == 0
        return True  # grpc and unknown handlers: not supported, counted as success
    except (OSError, ValueError, http.client.HTTPException, subprocess.TimeoutExpired) as e:
        probe.last_error = str(e) or type(e).__name__
        return False


# --- containers ------------------------------------------------------------------------

class ConfigError(Exception):
    pass


class Container:
    """One container of a pod: its process, restarts and probes."""

    def __init__(self, worker, spec, init=False):
        self.w = worker
        self.spec = spec
        self.name = spec["name"]
        self.init = init
        self.proc = None
        self.restarts = 0
        self.state = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state = {}
        self.started_at = None
        self.started_mono = 0
        self.next_start = 0
        self.done = False  # terminated and will not run again
        self.exit_code = None
        self.env = {}
        self.prog = ""
        self.killed_by_probe = False
        self.probes = {k: Probe(spec.get(k), k) for k in
                       ("startupProbe", "readinessProbe", "livenessProbe") if spec.get(k)}

    @property
    def running(self):
        return self.proc is not None

    @property
    def started(self):
        p = self.probes.get("startupProbe")
        return self.running and (p is None or p.result is True)

    @property
    def ready(self):
        if not self.started or self.init:
            return False
        p = self.probes.get("readinessProbe")
        return p is None or p.result is True

    def log_path(self):
        return os.path.join(self.w.dir, self.name + ".log")

    def event(self, etype, reason, msg):
        self.w.event(etype, reason, msg, "spec.%s{%s}" % (
            "initContainers" if self.init else "containers", self.name))

    def start(self):
        w = self.w
        if self.restarts:
            w.refresh_volumes()     # a restarted container sees the current ConfigMaps
        try:
            argv, self.prog = resolve_argv(w.kl.images, self.spec)
            self.env = w.build_env(self.spec)
            argv = [expand(a, self.env) for a in argv]
            mounts = w.mounts_for(self.spec)
            try:
                mounts.append(self._termination_mount())
            except OSError as e:
                raise ConfigError("termination log: %s" % e) from e
        except ConfigError as e:
            self.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
            self.next_start = time.monotonic() + 1
            self.event("Warning", "Failed", "Error: %s" % e)
            return
        except ValueError as e:
            self.state = {"waiting": {"reason": "ErrImagePull", "message": str(e)}}
            self.next_start = time.monotonic() + 2
            self.event("Warning", "Failed", "Error: ErrImagePull: %s" % e)
            return
        spec = {"hostname": w.hostname, "workdir": self.spec.get("workingDir"),
                "argv": argv, "env": self.env, "mounts": mounts}
        sp = os.path.join(w.dir, self.name + ".launch.json")
        with open(sp, "w") as f:
            json.dump(spec, f)
        lp = self.log_path()
        if self.restarts and os.path.exists(lp):
            os.replace(lp, os.path.join(w.dir, self.name + ".previous.log"))
        with open(lp, "ab") as logf:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", w.netns, PY, os.path.join(HERE, "launch.py"), sp],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
                env={"PATH": DEFAULT_PATH, "LANG": "C.UTF-8"})
        st = proc_start_time(self.proc.pid) or "0"
        with open(os.path.join(w.dir, self.name + ".pid"), "w") as f:
            f.write("%d %s\n" % (self.proc.pid, st))
        self.started_at = now()
        self.started_mono = time.monotonic()
        self.killed_by_probe = False
        for p in self.probes.values():
            p.reset(self.started_mono)
        self.state = {"running": {"startedAt": self.started_at}}
        self.event("Normal", "Started", "Started container %s" % self.name)

    # --- termination messages ---
    def termination_file(self):
        return os.path.join(self.w.dir, self.name + ".termination-log")

    def _termination_mount(self):
        """An empty termination-log file for this run, bound at terminationMessagePath."""
        dst = self.spec.get("terminationMessagePath") or TERMINATION_PATH
        src = self.termination_file()
        with open(src, "wb"):
            pass
        os.chmod(src, 0o666)  # the container may run as any user
        ensure_mountpoint(self.w.kl.dir, dst, True)
        return {"src": src, "dst": dst, "ro": False}

    def termination_message(self, code):
        """What the run left in its termination log; with FallbackToLogsOnError and a failure,
        the log's tail when the file is empty."""
        try:
            with open(self.termination_file(), "rb") as f:
                msg = f.read(TERMINATION_MAX)
        except OSError:
            msg = b""
        if not msg.strip() and code != 0 and \
                self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            msg = log_tail(self.log_path(), TERMINATION_LOG_LINES, TERMINATION_LOG_BYTES)
        return msg.decode("utf-8", errors="replace")

    def signal(self, sig):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except OSError:
            try:
                self.proc.send_signal(sig)
            except OSError:
                pass

    def poll(self):
        """If the process ended, record it; return True when it just ended."""
        if self.proc is None or self.proc.poll() is None:
            return False
        rc = self.proc.returncode
        code = rc if rc >= 0 else 128 - rc
        self.signal(signal.SIGKILL)  # leftovers of its process group
        self.proc = None
        try:
            os.unlink(os.path.join(self.w.dir, self.name + ".pid"))
        except OSError:
            pass
        reason = "Completed" if code == 0 else "Error"
        self.exit_code = code
        self.state = {"terminated": {"exitCode": code, "reason": reason,
                                     "startedAt": self.started_at, "finishedAt": now(),
                                     "containerID": "kube-lite://%s" % self.name}}
        msg = self.termination_message(code)
        if msg:
            self.state["terminated"]["message"] = msg
        return True

    def stop(self, grace):
        """SIGTERM, then SIGKILL after grace seconds; waits for the process.
        Returns True when a running process was ended (its exit recorded)."""
        if self.proc is None:
            return False
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=max(0, grace))
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return self.poll()

    def status(self):
        st = {"name": self.name, "image": self.spec.get("image", ""),
              "imageID": "kube-lite://" + (self.prog or ""),
              "ready": self.ready, "started": self.started,
              "restartCount": self.restarts, "state": self.state,
              "lastState": self.last_state}
        if self.running:
            st["containerID"] = "kube-lite://%d" % self.proc.pid
        return st


# --- pod worker ------------------------------------------------------------------------

class PodWorker:
    def __init__(self, kl, pod, prev):
        self.kl = kl
        self.pod = pod
        md = pod["metadata"]
        self.ns, self.name, self.uid = md.get("namespace", "default"), md["name"], md.get("uid")
        spec = pod.get("spec", {})
        self.hostname = spec.get("hostname") or self.name
        self.prev = prev
        self.dir = os.path.join(kl.dir, "pods", self.ns, self.name)
        self.netns = None
        self.ip = None
        self.vols = {}
        self.vol_files = {}  # volume name -> relpaths written (configMap/secret/... volumes)
        self.next_refresh = 0.0
        self.stop_req = threading.Event()
        self.stop_grace = None
        self.finalize = False
        self.done = threading.Event()
        self.last_status = None
        self.conds = {}
        self.start_time = None
        self.phase = "Pending"
        self.containers = []
        self.inits = []
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name="pod-%s/%s" % (self.ns, self.name))

    # --- requests from the kubelet ---
    def request_stop(self, grace, finalize):
        if self.stop_req.is_set():
            return
        self.stop_grace = grace
        self.finalize = finalize
        self.stop_req.set()

    @property
    def spec(self):
        return self.pod.get("spec", {})

    def event(self, etype, reason, msg, field_path=None):
        self.kl.recorder.event(self.pod, etype, reason, msg, field_path, kind="Pod",
                               api_version="v1")

    # --- env / volumes ---
    def _get(self, resource, name, optional):
        o = self.kl.client.get_or_none(resource, self.ns, name)
        if o is None and not optional:
            raise ConfigError("%s %r not found" % (resource[:-1], name))
        return o

    def _ref_value(self, resource, ref):
        o = self._get(resource, ref["name"], ref.get("optional", False))
        if o is None:
            return None
        k = ref["key"]
        if resource == "secrets":
            if k in (o.get("data") or {}):
                return base64.b64decode(o["data"][k]).decode(errors="replace")
            if k in (o.get("stringData") or {}):
                return o["stringData"][k]
        else:
            if k in (o.get("data") or {}):
                return o["data"][k]
        if ref.get("optional"):
            return None
        raise ConfigError("key %r not found in %s %r" % (k, resource[:-1], ref["name"]))

    def field_value(self, fp):
        md, spec = self.pod.get("metadata", {}), self.spec
        simple = {"metadata.name": self.name, "metadata.namespace": self.ns,
                  "metadata.uid": self.uid or "", "status.podIP": self.ip or "",
                  "status.podIPs": self.ip or "", "status.hostIP": self.kl.net.gateway,
                  "spec.nodeName": NODE,
                  "spec.serviceAccountName": spec.get("serviceAccountName", "default")}
        if fp in simple:
            return simple[fp]
        for f in ("labels", "annotations"):
            pre = "metadata.%s['" % f
            if fp.startswith(pre) and fp.endswith("']"):
                return (md.get(f) or {}).get(fp[len(pre):-2], "")
            if fp == "metadata." + f:
                return "\n".join('%s="%s"' % kv for kv in sorted((md.get(f) or {}).items()))
        raise ConfigError("unsupported fieldRef %r" % fp)

    def build_env(self, c):
        kip = self.kl.net.svc_ip(1)
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": self.hostname, "HOME": "/root",
               "KUBERNETES_SERVICE_HOST": kip, "KUBERNETES_SERVICE_PORT": "443",
               "KUBERNETES_SERVICE_PORT_HTTPS": "443",
               "KUBERNETES_PORT": "tcp://%s:443" % kip,
               "KUBE_LITE_API": "http://%s:%d" % (self.kl.net.gateway, self.kl.client.port)}
        for ef in c.get("envFrom") or []:
            pre = ef.get("prefix", "")
            for kind, res in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
                if kind in ef:
                    o = self._get(res, ef[kind]["name"], ef[kind].get("optional", False))
                    for k, v in ((o or {}).get("data") or {}).items():
                        env[pre + k] = base64.b64decode(v).decode(errors="replace") \
                            if res == "secrets" else v
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = expand(str(e["value"]), env)
                continue
            vf = e.get("valueFrom") or {}
            v = None
            if "fieldRef" in vf:
                v = self.field_value(vf["fieldRef"]["fieldPath"])
            elif "configMapKeyRef" in vf:
                v = self._ref_value("configmaps", vf["configMapKeyRef"])
            elif "secretKeyRef" in vf:
                v = self._ref_value("secrets", vf["secretKeyRef"])
            elif "resourceFieldRef" in vf:
                v = "0"
            if v is not None:
                env[e["name"]] = v
            elif "valueFrom" not in e:
                env[e["name"]] = ""
        return env

    def _write_files(self, d, files, mode):
        os.makedirs(d, exist_ok=True)
        for rel, data in files:
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, mode)

    def _source_files(self, kind, src):
        """[(relpath, bytes)] for a configMap/secret/downwardAPI/serviceAccountToken source."""
        if kind == "serviceAccountToken":
            return [(src.get("path", "token"), self.kl.token.encode())]
        if kind == "downwardAPI":
            return [(it["path"], self.field_value(it["fieldRef"]["fieldPath"]).encode())
                    for it in src.get("items") or [] if "fieldRef" in it]
        res = "configmaps" if kind == "configMap" else "secrets"
        name = src.get("name") or src.get("secretName")
        o = self._get(res, name, src.get("optional", False))
        if o is None:
            return []
        data = {}
        for k, v in (o.get("data") or {}).items():
            data[k] = base64.b64decode(v) if res == "secrets" else v.encode()
        for k, v in (o.get("binaryData") or {}).items():
            data[k] = base64.b64decode(v)
        for k, v in (o.get("stringData") or {}).items():
            data[k] = v.encode()
        items = src.get("items")
        if items:
            out = []
            for it in items:
                if it["key"] in data:
                    out.append((it["path"], data[it["key"]]))
                elif not src.get("optional"):
                    raise ConfigError("key %r not in %s %r" % (it["key"], res[:-1], name))
            return out
        return sorted(data.items())

    def _claim_dir(self, claim):
        """DIR/pvs/<ns>/<claim> for a usable PVC; raises ConfigError while it is missing, not
        Bound, or being deleted (unless this pod predates the deletion: pvc-protection keeps it
        for such a pod). The directory belongs to one PVC object: DIR/pvs/<ns>/.<claim>.uid holds
        its uid, and a PVC with another uid (deleted and made anew) gets it emptied first, as a
        newly provisioned volume would be."""
        pvc = self._get("persistentvolumeclaims", claim, False)
        if pvc is None:
            raise ConfigError("persistentvolumeclaim %r not found" % claim)
        pmd = pvc["metadata"]
        if pmd.get("deletionTimestamp") and \
                (self.pod["metadata"].get("creationTimestamp") or "") >= pmd["deletionTimestamp"]:
            raise ConfigError("persistentvolumeclaim %r is being deleted" % claim)
        if (pvc.get("status") or {}).get("phase") != "Bound":
            raise ConfigError("pod has unbound immediate PersistentVolumeClaims")
        base = os.path.join(self.kl.dir, "pvs", self.ns)
        d = os.path.join(base, claim)
        marker = os.path.join(base, ".%s.uid" % claim)
        try:
            with open(marker) as f:
                owner = f.read().strip()
        except OSError:
            owner = None
        if owner is not None and owner != pmd.get("uid"):
            shutil.rmtree(d, ignore_errors=True)
            log("pvc %s/%s has a new uid: its directory starts empty" % (self.ns, claim))
        os.makedirs(d, exist_ok=True)
        if owner != pmd.get("uid"):
            with open(marker + ".tmp", "w") as f:
                f.write(pmd.get("uid", "") + "\n")
            os.replace(marker + ".tmp", marker)
        return d

    def _projected_files(self, v):
        """(files, mode) of a configMap/secret/downwardAPI/projected volume, else None."""
        for kind in ("configMap", "secret", "downwardAPI"):
            if kind in v:
                return self._source_files(kind, v[kind]), v[kind].get("defaultMode", 0o644)
        if "projected" in v:
            files = []
            for s in v["projected"].get("sources") or []:
                for kind in ("configMap", "secret", "downwardAPI", "serviceAccountToken"):
                    if kind in s:
                        files += self._source_files(kind, s[kind])
            return files, v["projected"].get("defaultMode", 0o644)
        return None

    def refresh_volumes(self):
        """Rewrite configMap/secret/downwardAPI/projected volumes from the API (what the real
        kubelet's periodic sync does): changed files are replaced atomically (rename), files of
        removed keys are deleted. Errors (e.g. the ConfigMap is gone) keep the old content."""
        for v in self.spec.get("volumes") or []:
            d = self.vols.get(v["name"])
            if d is None:
                continue
            try:
                got = self._projected_files(v)
            except (ConfigError, kc.ApiError):
                continue
            if got is not None:
                self._sync_files(v["name"], d, got[0], got[1])

    def _sync_files(self, name, d, files, mode):
        os.makedirs(d, exist_ok=True)
        want = dict(files)
        for rel, data in want.items():
            p = os.path.join(d, rel)
            try:
                with open(p, "rb") as f:
                    same = f.read() == data
            except OSError:
                same = False
            if same:
                continue
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p + ".kl-tmp", "wb") as f:
                f.write(data)
            os.chmod(p + ".kl-tmp", mode)
            os.replace(p + ".kl-tmp", p)
        for rel in self.vol_files.get(name, set()) - set(want):
            try:
                os.unlink(os.path.join(d, rel))
            except OSError:
                pass
        self.vol_files[name] = set(want)

    def prepare_volumes(self):
        """Directories for every pod volume; raises ConfigError while something is missing."""
        vdir = os.path.join(self.dir, "volumes")
        for v in self.spec.get("volumes") or []:
            n = v["name"]
            d = os.path.join(vdir, n)
            if "persistentVolumeClaim" in v:
                d = self._claim_dir(v["persistentVolumeClaim"]["claimName"])
            elif "hostPath" in v:
                d = v["hostPath"]["path"]
                if v["hostPath"].get("type") == "DirectoryOrCreate":
                    os.makedirs(d, exist_ok=True)
            elif self._projected_files(v) is not None:
                files, mode = self._projected_files(v)
                self._sync_files(n, d, files, mode)
            else:  # emptyDir and anything unknown: an empty directory
                os.makedirs(d, exist_ok=True)
            self.vols[n] = d
        sa = os.path.join(self.dir, "serviceaccount")
        ca = os.path.join(self.kl.dir, "ca.crt")
        cadata = open(ca, "rb").read() if os.path.exists(ca) else \
            b"# kube-lite serves plain HTTP: no CA\n"
        self._write_files(sa, [("token", self.kl.token.encode()), ("ca.crt", cadata),
                               ("namespace", self.ns.encode())], 0o644)

    def mounts_for(self, c):
        out = []
        mounted = set()
        for m in c.get("volumeMounts") or []:
            if m["name"] not in self.vols:
                raise ConfigError("volume %r not defined" % m["name"])
            src = self.vols[m["name"]]
            if m.get("subPath"):
                src = os.path.join(src, m["subPath"])
                if not os.path.exists(src):
                    os.makedirs(src, exist_ok=True)
            dst = m["mountPath"]
            ensure_mountpoint(self.kl.dir, dst, os.path.isfile(src))
            out.append({"src": src, "dst": dst, "ro": bool(m.get("readOnly"))})
            mounted.add(dst.rstrip("/"))
        auto = self.spec.get("automountServiceAccountToken", True)
        if auto is not False and SA_DIR not in mounted:
            ensure_mountpoint(self.kl.dir, SA_DIR, False)
            out.append({"src": os.path.join(self.dir, "serviceaccount"), "dst": SA_DIR,
                        "ro": True})
        return out

    # --- status ---
    def _cond(self, typ, ok):
        s = "True" if ok else "False"
        prev = self.conds.get(typ)
        if prev is None or prev["status"] != s:
            self.conds[typ] = {"type": typ, "status": s, "lastProbeTime": None,
                               "lastTransitionTime": now()}
        return self.conds[typ]

    def send_status(self):
        inits_ok = all(c.done and c.exit_code == 0 for c in self.inits)
        ready = self.phase == "Running" and all(c.ready for c in self.containers)
        conds = [self._cond("PodScheduled", True), self._cond("Initialized", inits_ok),
                 self._cond("ContainersReady", ready), self._cond("Ready", ready)]
        st = {"phase": self.phase, "conditions": conds, "hostIP": self.kl.net.gateway,
              "startTime": self.start_time, "qosClass": "BestEffort",
              "containerStatuses": [c.status() for c in self.containers]}
        if self.ip:
            st["podIP"] = self.ip
            st["podIPs"] = [{"ip": self.ip}]
        if self.inits:
            st["initContainerStatuses"] = [c.status() for c in self.inits]
        if st == self.last_status:
            return
        try:
            self.kl.client.patch_status("pods", self.ns, self.name, st)
            self.last_status = st
        except kc.ApiError as e:
            if e.code not in (404, 409):
                log("status %s/%s: %s" % (self.ns, self.name, e))

    # --- main loop ---
    def _run(self):
        try:
            if self.prev is not None:
                self.prev.done.wait()
            if not self.stop_req.is_set():
                self._live()
        except Exception as e:
            log("pod %s/%s worker error: %r" % (self.ns, self.name, e))
            import traceback
            traceback.print_exc()
        finally:
            self._teardown()

    def _restart_policy(self):
        return self.spec.get("restartPolicy", "Always")

    def _wants_restart(self, c):
        rp = self._restart_policy()
        if c.init:
            return rp != "Never" and c.exit_code != 0
        return rp == "Always" or (rp == "OnFailure" and c.exit_code != 0)

    def _after_exit(self, c):
        c.last_state = c.state
        if self._wants_restart(c):
            delay = min(20.0, 0.5 * (2 ** min(c.restarts, 6)))
            c.event("Warning", "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)"
                    % (c.name, self.name, self.ns, self.uid))
            c.restarts += 1
            c.next_start = time.monotonic() + delay
            c.state = {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": "back-off %.1fs restarting failed container"
                                   % delay}}
            c.last_state = dict(c.last_state)
        else:
            c.done = True
            c.last_state = {}

    def _live(self):
        status = self.pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            self._wait_deletion()  # finished before (kube-lite restarted): nothing to run
            return
        self.start_time = now()
        os.makedirs(self.dir, exist_ok=True)
        self.inits = [Container(self, c, True) for c in self.spec.get("initContainers") or []]
        self.containers = [Container(self, c) for c in self.spec.get("containers") or []]
        self.netns, self.ip = self.kl.net.setup_pod(self.ns, self.name)
        self.kl.dns_dirty.set()
        self.send_status()
        while not self.stop_req.is_set():
            try:
                self.prepare_volumes()
                break
            except ConfigError as e:
                for c in self.containers:
                    c.state = {"waiting": {"reason": "ContainerCreating", "message": str(e)}}
                self.send_status()
                self.stop_req.wait(1)
        for c in self.inits:
            if not self._run_init(c):
                return
        if self.stop_req.is_set():
            return
        self.phase = "Running"
        self._loop()

    def _run_init(self, c):
        while not self.stop_req.is_set():
            if not c.running and time.monotonic() >= c.next_start:
                c.start()
                self.send_status()
            if c.poll():
                self._after_exit(c)
                if c.exit_code == 0:
                    c.done = True
                    self.send_status()
                    return True
                if c.done:
                    self.phase = "Failed"
                    self.send_status()
                    self._wait_deletion()
                    return False
                self.send_status()
            self.stop_req.wait(0.2)
        return False

    def _probe(self, c, t):
        order = ["startupProbe"] if not c.started else ["livenessProbe", "readinessProbe"]
        for k in order:
            p = c.probes.get(k)
            if p is None or not p.due(t) or not c.running:
                continue
            ok = run_probe(p, c.spec, self.ip, c.proc.pid, c.env)
            p.record(ok, time.monotonic())
            what = k[:-len("Probe")].capitalize()
            if not ok:
                c.event("Warning", "Unhealthy", "%s probe failed: %s" % (what, p.last_error))
            if k in ("startupProbe", "livenessProbe") and p.result is False:
                log("%s/%s: %s of %s failed, killing" % (self.ns, self.name, k, c.name))
                c.event("Normal", "Killing", "Container %s failed %s probe, will be restarted"
                        % (c.name, what.lower()))
                c.killed_by_probe = True
                if c.stop(self.spec.get("terminationGracePeriodSeconds", 30)):
                    self._after_exit(c)
                return

    def _loop(self):
        while not self.stop_req.is_set():
            t = time.monotonic()
            if t >= self.next_refresh:
                self.next_refresh = t + REFRESH
                self.refresh_volumes()
            for c in self.containers:
                if not c.running and not c.done and t >= c.next_start:
                    c.start()
                if c.running:
                    self._probe(c, t)
                if c.poll():
                    self._after_exit(c)
            if all(c.done for c in self.containers):
                ok = all(c.exit_code == 0 for c in self.containers)
                self.phase = "Succeeded" if ok else "Failed"
                self.send_status()
                self.kl.net.teardown_pod(self.netns)
                self.netns = None
                self.kl.dns_dirty.set()
                self._wait_deletion()
                return
            self.send_status()
            self.stop_req.wait(0.2)

    def _wait_deletion(self):
        self.stop_req.wait()

    def _teardown(self):
        grace = self.stop_grace
        if grace is None:
            grace = self.spec.get("terminationGracePeriodSeconds", 30)
        running = [c for c in self.containers + self.inits if c.running]
        if not self.kl.closing:
            for c in running:
                c.event("Normal", "Killing", "Stopping container %s" % c.name)
        threads = [threading.Thread(target=c.stop, args=(grace,)) for c in running]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if self.netns:
            self.kl.net.teardown_pod(self.netns)
            self.netns = None
        self.kl.dns_dirty.set()
        if self.finalize:
            try:
                self.kl.client.delete("pods", self.ns, self.name, grace=0, uid=self.uid)
            except kc.ApiError as e:
                if e.code not in (404, 409):
                    log("final delete %s/%s: %s" % (self.ns, self.name, e))
        with self.kl.lock:
            if self.kl.workers.get((self.ns, self.name)) is self:
                del self.kl.workers[(self.ns, self.name)]
            keep = self.kl.closing  # keep logs of pods still present at `down`
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.done.set()


# --- the kubelet -----------------------------------------------------------------------

class Kubelet:
    def __init__(self, api_url, token, state_dir, stop, image_map):
        self.client = kc.Client(api_url, token)
        self.api_url = api_url
        self.token = token or ""
        self.dir = state_dir
        self.stop = stop
        self.images = load_image_map(image_map)
        self.recorder = events.Recorder(self.client, "kubelet", stop)
        self.net = knet.get(state_dir)
        self.https = pki.https_endpoint(state_dir)  # where the `kubernetes` Service forwards
        self.lock = threading.Lock()
        self.workers = {}
        self.dns_dirty = threading.Event()
        self.proxies = {}  # (ip, port) -> Proxy
        self.closing = False
        self.pods = kc.Informer(self.client, "pods", self.on_pod, stop)
        self.svcs = kc.Informer(self.client, "services", self.on_other, stop)
        self.eps = kc.Informer(self.client, "endpoints", self.on_other, stop)

    def start(self):
        self.register_node()
        self.svcs.start()
        self.eps.start()
        self.pods.start()
        threading.Thread(target=self.dns_loop, daemon=True, name="kubelet-dns").start()
        return self

    def register_node(self):
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE,
                                                      "kubernetes.io/os": "linux"}},
                "spec": {}}
        st = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                              "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
              "addresses": [{"type": "InternalIP", "address": self.net.gateway},
                            {"type": "Hostname", "address": NODE}],
              "nodeInfo": {"kubeletVersion": "v1.29.0-kube-lite", "operatingSystem": "linux",
                           "architecture": "amd64"}}
        try:
            try:
                self.client.create("nodes", None, node)
            except kc.ApiError as e:
                if e.code != 409:
                    raise
            self.client.patch_status("nodes", None, NODE, st)
        except kc.ApiError as e:
            log("node registration: %s (ignored)" % e)

    def on_pod(self, typ, pod, old):
        md = pod["metadata"]
        k = (md.get("namespace", "default"), md["name"])
        with self.lock:
            if self.closing:
                return
            w = self.workers.get(k)
            if typ == "DELETED":
                if w is not None and w.uid == md.get("uid"):
                    w.request_stop(None, False)
                self.dns_dirty.set()
                return
            if w is not None and w.uid != md.get("uid"):
                w.request_stop(None, False)
            if w is None or w.uid != md.get("uid"):
                w = PodWorker(self, pod, w)
                self.workers[k] = w
                w.thread.start()
            else:
                w.pod = pod
            if md.get("deletionTimestamp"):
                g = md.get("deletionGracePeriodSeconds")
                w.request_stop(g, True)
        self.dns_dirty.set()

    def on_other(self, typ, obj, old):
        self.dns_dirty.set()

    # --- DNS (hosts files) and service proxies ---
    def dns_loop(self):
        while not self.stop.is_set():
            if self.dns_dirty.wait(0.5):
                self.dns_dirty.clear()
                try:
                    self.sync_hosts()
                    self.sync_proxies()
                except Exception as e:
                    log("dns/proxy sync: %r" % e)
                    self.dns_dirty.set()
                    self.stop.wait(1)

    def _records(self):
        """[(ip, ns, [fqdn names], [short names for own namespace])]"""
        recs = []
        for s in self.svcs.items():
            md, spec = s["metadata"], s.get("spec", {})
            ns, n = md.get("namespace", "default"), md["name"]
            base = "%s.%s.svc" % (n, ns)
            names = ([base + ".cluster.local", base], ["%s.%s" % (n, ns), n])
            cip = spec.get("clusterIP")
            if cip and cip != "None":
                recs.append((cip, ns) + names)
            elif cip == "None":
                ep = self.eps.get(ns, n) or {}
                for ss in ep.get("subsets") or []:
                    for a in ss.get("addresses") or []:
                        recs.append((a["ip"], ns) + names)
                        h = a.get("hostname")
                        if h:
                            pb = "%s.%s.%s.svc" % (h, n, ns)
                            recs.append((a["ip"], ns, [pb + ".cluster.local", pb],
                                         ["%s.%s.%s" % (h, n, ns), "%s.%s" % (h, n)]))
        return recs

    def sync_hosts(self):
        recs = self._records()
        host_lines = ["%s %s" % (ip, " ".join(full)) for ip, _, full, _ in recs]
        knet.write_if_changed(os.path.join(self.dir, "hosts"),
                              "# kube-lite names (host view)\n" + "\n".join(host_lines) + "\n")
        with self.lock:
            workers = list(self.workers.values())
        for w in workers:
            if not w.netns or not w.ip:
                continue
            own = w.hostname
            if w.spec.get("subdomain"):
                own = "%s.%s.%s.svc.cluster.local %s" % (w.hostname, w.spec["subdomain"], w.ns, w.hostname)
            lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback",
                     "%s %s" % (w.ip, own)]
            for ip, ns, full, short in recs:
                lines.append("%s %s" % (ip, " ".join(full + (short if ns == w.ns else []))))
            self.net.write_hosts(w.netns, "\n".join(lines) + "\n")

    def _backends(self, svc, port):
        md = svc["metadata"]
        if (md.get("namespace"), md["name"]) == ("default", "kubernetes"):
            return [self.https or (self.client.host, self.client.port)]
        ep = self.eps.get(md.get("namespace", "default"), md["name"]) or {}
        out = []
        for ss in ep.get("subsets") or []:
            pnum = None
            for ep_port in ss.get("ports") or []:
                if ep_port.get("name", "") == port.get("name", "") or len(ss["ports"]) == 1:
                    pnum = ep_port["port"]
            if pnum is None:
                continue
            out += [(a["ip"], pnum) for a in ss.get("addresses") or []]
        return out

    def sync_proxies(self):
        retry = False
        want = {}
        for s in self.svcs.items():
            spec = s.get("spec", {})
            cip = spec.get("clusterIP")
            if not cip or cip == "None" or not self.net.in_svc_range(cip):
                continue
            for p in spec.get("ports") or []:
                if p.get("protocol", "TCP") == "TCP":
                    want[(cip, int(p["port"]))] = self._backends(s, p)
        for k in list(self.proxies):
            if k not in want:
                self.proxies.pop(k).close()
        for k, bes in want.items():
            if k not in self.proxies:
                try:
                    self.net.add_svc_ip(k[0])
                    self.proxies[k] = knet.Proxy(k[0], k[1], self.stop)
                except OSError as e:
                    log("proxy %s:%d: %s (retrying)" % (k[0], k[1], e))
                    retry = True
                    continue
            self.proxies[k].backends = bes
        used = {k[0] for k in want}
        for ip in list(self.net.svc_ips):
            if ip not in used:
                self.net.del_svc_ip(ip)
        if retry:
            self.stop.wait(1)
            self.dns_dirty.set()

    # --- shutdown ---
    def shutdown(self):
        with self.lock:
            self.closing = True
            workers = list(self.workers.values())
        for w in workers:
            g = w.spec.get("terminationGracePeriodSeconds", 30)
            w.request_stop(min(g, 10), False)
        for w in workers:
            w.done.wait(30)
        for p in self.proxies.values():
            p.close()
        self.proxies.clear()
        self.net.destroy()
        knet.forget(self.dir)
        remove_mountpoints(self.dir)


def log_path(state_dir, ns, pod, container, previous=False):
    """Where a container's log is (the API server's pods/log reads it)."""
    return os.path.join(state_dir, "pods", ns, pod,
                        container + (".previous.log" if previous else ".log"))


def start(api_url, token, state_dir, stop_event, image_map=None):
    """Start the kubelet threads; returns the Kubelet."""
    os.makedirs(os.path.join(state_dir, "pods"), exist_ok=True)
    kl = Kubelet(api_url, token, state_dir, stop_event, image_map)
    _kubelets[os.path.realpath(state_dir)] = kl
    return kl.start()


def shutdown(state_dir):
    """Stop every pod (SIGTERM, SIGKILL after grace <= 10s) and remove the network."""
    kl = _kubelets.pop(os.path.realpath(state_dir), None)
    if kl is not None:
        kl.shutdown()
    cleanup_stale(state_dir)


def cleanup_stale(state_dir):
    """Undo a dead instance from its records: kill recorded pids, remove netns/links/dirs."""
    pods = os.path.join(state_dir, "pods")
    pidfiles = []
    for root, _, files in os.walk(pods):
        pidfiles += [os.path.join(root, f) for f in files if f.endswith(".pid")]
    alive = [p for p in pidfiles if kill_recorded(p, signal.SIGTERM)]
    deadline = time.monotonic() + 5
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if kill_recorded(p, 0)]
    for p in alive:
        kill_recorded(p, signal.SIGKILL)
    for p in pidfiles:
        try:
            os.unlink(p)
        except OSError:
            pass
    knet.cleanup(state_dir)
    remove_mountpoints(state_dir)
