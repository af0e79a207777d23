"""kube-lite command line: `up`, `down`, `status` (and the internal `serve`).

Purpose: start one background kube-lite process for a state directory, wire the API server,
controllers and kubelet together, and stop and clean up after it.

  kube-lite up --state DIR [--port N] [--images FILE] [--timeout S] [--api-only]
      spawns `kube-lite serve` in its own session (pid in DIR/kube-lite.pid, output in
      DIR/kube-lite.log), waits until /readyz answers (and node "kube-lite" is Ready when the
      kubelet is present), prints `export KUBECONFIG=DIR/kubeconfig`.
  kube-lite down --state DIR   SIGTERM to the daemon (SIGKILL after 40 s), then
      kubelet.cleanup_stale(DIR) so nothing is left even if the daemon had died.
  kube-lite status --state DIR prints pid, url and readiness; exit 0 only when it answers.

Files in DIR: kubeconfig (cluster server https://127.0.0.1:HTTPS_PORT with
certificate-authority-data = the kube-lite CA, user with a static bearer token, context
kube-lite, namespace default), kubeconfig-http (the same over plain http://127.0.0.1:PORT),
token, ca.crt and pki/ (pki.py), kube-lite.pid, kube-lite.log, url (plain HTTP), url-https.
Listeners: plain HTTP on 127.0.0.1:PORT (--port) and on the pod bridge gateway:PORT; HTTPS on
127.0.0.1:HTTPS_PORT (--https-port, 0 = any free port) and gateway:HTTPS_PORT; the
`kubernetes` Service (ClusterIP .0.1:443) forwards to the HTTPS listener.
Wiring (fixed with engineer B): apiserver.start(DIR, host, port) -> api (.url .stop());
controllers.start(api.url, token, DIR, stop_event); kubelet.start(api.url, token, DIR,
stop_event, image_map); at shutdown stop_event.set(), kubelet.shutdown(DIR), api.stop().
A missing controllers or kubelet module is logged and skipped (API-only mode). With them, the
API is also served on the pod bridge gateway (net.get(DIR).gateway, same port) for pods.
Invariants: the daemon writes kubeconfig only once the API server listens; `down` never
signals a pid that is not the daemon recorded in DIR (checked against /proc/PID/cmdline).
"""
import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(HERE, "kube-lite")
REPO = os.path.dirname(os.path.dirname(HERE))


def log(msg):
    print("%s kube-lite: %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def kubeconfig_text(url, token, ca_pem=None):
    ca = ""
    if ca_pem:
        ca = "    certificate-authority-data: %s\n" % base64.b64encode(ca_pem).decode()
    return ("apiVersion: v1\nkind: Config\nclusters:\n- name: kube-lite\n  cluster:\n    server: %s\n%s"
            "contexts:\n- name: kube-lite\n  context:\n    cluster: kube-lite\n    user: kube-lite\n"
            "    namespace: default\ncurrent-context: kube-lite\nusers:\n- name: kube-lite\n  user:\n"
            "    token: %s\npreferences: {}\n" % (url, ca, token))


def write_file(path, text, mode=0o600):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def load_images(path):
    with open(path) as f:
        m = json.load(f)
    return {k: v.replace("<repo>", REPO) for k, v in m.items()}


def _optional(name):
    try:
        return __import__("kubelite." + name, fromlist=[name])
    except ImportError as e:
        log("%s not available (%s): running without it" % (name, e))
        return None


def _gateway(state):
    """The pod bridge gateway address (creating the bridge), or None if that fails."""
    try:
        from kubelite import net as knet
        return knet.get(state).gateway
    except Exception as e:  # noqa: BLE001 - pods will not reach the API, the rest works
        log("no pod bridge: %r" % e)
        return None


def _listen_on_bridge(api, gw, tls):
    """Serve the API on the pod bridge's gateway too (same ports), so pods reach it."""
    try:
        api.listen_also(gw)
        log("API server also on http://%s:%d (pod bridge)" % (gw, api.port))
        if tls:
            api.listen_tls(gw, tls[1], tls[0])
            log("API server also on https://%s:%d (pod bridge)" % (gw, tls[1]))
    except Exception as e:  # noqa: BLE001 - pods will not reach the API, the rest works
        log("cannot listen on the pod bridge: %r" % e)


def _start_tls(api, state, port, gw):
    """CA + serving certificate (pki.py), HTTPS listener on 127.0.0.1; -> (ctx, port, ca_pem)."""
    from kubelite import net as knet
    from kubelite import pki
    ips = ["127.0.0.1", "10.96.0.1", gw]
    if gw:
        ips.append(knet.get(state).svc_ip(1))
    ca, cert, key = pki.ensure(state, ips)
    ctx = pki.server_context(cert, key)
    tport = api.listen_tls("127.0.0.1", port, ctx)
    log("API server on https://127.0.0.1:%d (CA %s)" % (tport, ca))
    with open(ca, "rb") as f:
        return ctx, tport, f.read()


def serve(args):
    from kubelite import apiserver
    state = os.path.abspath(args.state)
    os.makedirs(state, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    api = apiserver.start(state, "127.0.0.1", args.port)
    log("API server on %s" % api.url)
    write_file(os.path.join(state, "token"), api.token)
    write_file(os.path.join(state, "url"), api.url + "\n", 0o644)
    if args.api_only:
        log("--api-only: controllers and kubelet not started")
        controllers = kubelet = None
    else:
        controllers, kubelet = _optional("controllers"), _optional("kubelet")
    gw = _gateway(state) if (controllers or kubelet) else None
    tls = _start_tls(api, state, args.https_port, gw)
    https_url = "https://127.0.0.1:%d" % tls[1]
    write_file(os.path.join(state, "url-https"), https_url + "\n", 0o644)
    images = {}
    if os.path.exists(args.images):
        images = load_images(args.images)
    if controllers:
        api.api.pvc_protection = True   # a controller will release the pvc-protection finalizer
        controllers.start(api.url, api.token, state, stop)
    if kubelet:
        kubelet.start(api.url, api.token, state, stop, images)
    if gw:
        _listen_on_bridge(api, gw, tls)
    write_file(os.path.join(state, "components"), json.dumps(
        {"controllers": bool(controllers), "kubelet": bool(kubelet)}), 0o644)
    write_file(os.path.join(state, "kubeconfig-http"), kubeconfig_text(api.url, api.token))
    write_file(os.path.join(state, "kubeconfig"), kubeconfig_text(https_url, api.token, tls[2]))
    while not stop.wait(1.0):
        pass
    log("stopping")
    if kubelet:
        try:
            kubelet.shutdown(state)
        except Exception as e:  # noqa: BLE001 - still stop the API server
            log("kubelet.shutdown failed: %r" % e)
    api.stop()
    log("stopped")
    return 0


def _pid_of(state):
    try:
        with open(os.path.join(state, "kube-lite.pid")) as f:
            pid = int(f.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmd = f.read().split(b"\0")
        if any(b"kube-lite" in c for c in cmd) and b"serve" in cmd:
            return pid
    except (OSError, ValueError):
        pass
    return None


def _get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _url(state):
    try:
        with open(os.path.join(state, "url")) as f:
            return f.read().strip()
    except OSError:
        return None


def _node_ready(url):
    try:
        node = json.loads(_get(url + "/api/v1/nodes/kube-lite"))
    except (OSError, ValueError):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def up(args):
    state = os.path.abspath(args.state)
    os.makedirs(state, exist_ok=True)
    if _pid_of(state):
        log("already running (pid %d); run down first" % _pid_of(state))
        return 1
    if os.geteuid() != 0:
        log("warning: not root; the kubelet needs root to create network namespaces")
    for f in ("kubeconfig", "kubeconfig-http", "url", "url-https", "components"):
        try:
            os.unlink(os.path.join(state, f))
        except FileNotFoundError:
            pass
    cmd = [sys.executable, SCRIPT, "serve", "--state", state, "--port", str(args.port),
           "--https-port", str(args.https_port), "--images", args.images]
    if args.api_only:
        cmd.append("--api-only")
    with open(os.path.join(state, "kube-lite.log"), "ab") as logf:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True, cwd=state)
    write_file(os.path.join(state, "kube-lite.pid"), "%d\n" % p.pid, 0o644)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            log("daemon exited with %s; see %s/kube-lite.log" % (p.returncode, state))
            return 1
        url = _url(state)
        if url and os.path.exists(os.path.join(state, "kubeconfig")) and _ready(url, state):
            print("export KUBECONFIG=%s" % os.path.join(state, "kubeconfig"), flush=True)
            return 0
        time.sleep(0.2)
    log("not ready after %ss; see %s/kube-lite.log" % (args.timeout, state))
    return 1


def _ready(url, state):
    try:
        if _get(url + "/readyz") != b"ok":
            return False
        with open(os.path.join(state, "components")) as f:
            comps = json.load(f)
    except (OSError, ValueError):
        return False
    return not comps.get("kubelet") or _node_ready(url)


def down(args):
    state = os.path.abspath(args.state)
    pid = _pid_of(state)
    rc = 0
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            log("daemon %d did not stop; SIGKILL" % pid)
            os.kill(pid, signal.SIGKILL)
            rc = 1
    kubelet = _optional("kubelet")
    if kubelet and hasattr(kubelet, "cleanup_stale"):
        try:
            kubelet.cleanup_stale(state)
        except Exception as e:  # noqa: BLE001
            log("cleanup_stale failed: %r" % e)
            rc = 1
    for f in ("kube-lite.pid", "url", "url-https", "components"):
        try:
            os.unlink(os.path.join(state, f))
        except FileNotFoundError:
            pass
    return rc


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def status(args):
    state = os.path.abspath(args.state)
    pid, url = _pid_of(state), _url(state)
    if not pid or not url:
        print("kube-lite: not running (state %s)" % state)
        return 1
    try:
        ok = _get(url + "/readyz") == b"ok"
    except OSError:
        ok = False
    print("kube-lite: pid %d, %s, %s, KUBECONFIG=%s" % (pid, url, "ready" if ok else "NOT ready",
                                                        os.path.join(state, "kubeconfig")))
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(prog="kube-lite", description="a small local Kubernetes for tests")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("up", "down", "status", "serve"):
        p = sub.add_parser(name)
        p.add_argument("--state", required=True, help="state directory")
        if name in ("up", "serve"):
            p.add_argument("--port", type=int, default=0, help="API port on 127.0.0.1 (0: any free)")
            p.add_argument("--https-port", type=int, default=0,
                           help="HTTPS API port on 127.0.0.1 (0: any free)")
            p.add_argument("--images", default=os.path.join(HERE, "images.json"), help="image map JSON")
            p.add_argument("--api-only", action="store_true", help="no controllers, no kubelet")
        if name in ("up", "down"):
            p.add_argument("--timeout", type=float, default=60 if name == "up" else 40)
    args = ap.parse_args(argv)
    return {"up": up, "down": down, "status": status, "serve": serve}[args.cmd](args)
