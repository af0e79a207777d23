"""kube-lite pod networking: bridge, veth pairs, network namespaces, IPs, hosts files and the
userspace ClusterIP proxies.

Layout of instance n (chosen at first use, kept in DIR/net.json so `down` can undo it):
  bridge `kl<n>` with 10.(244+n).0.1/16 in the root namespace; each pod gets netns
  `kl<n>-<hash>` with `eth0` (veth peer of `kv<n>-<hash>` on the bridge), an IP from
  10.(244+n).0.0/16 and a default route via the bridge address; Services get ClusterIPs from
  10.(96+n).0.0/16, added as /32 addresses to the bridge (no dummy module here), where a TCP proxy thread
  per service port forwards each accepted connection round-robin to a ready endpoint.
A pod's IP is derived from a hash of its netns name (so a re-created pod usually gets its old
IP back) and its MAC from its IP. Invariants: every netns this module creates is listed in DIR/netns.list before it is created
and removed from it after deletion, so cleanup() can undo a crashed instance; hosts files are
rewritten in place (same inode: `ip netns exec` bind-mounts them over /etc/hosts) and only
when their content changes. All state changes go through `ip` (iproute2); needs root.
"""

import hashlib
import json
import os
import socket
import subprocess
import threading

MAX_INSTANCES = 12


def _ip(*args, check=True, stdin=None):
    r = subprocess.run(["ip"] + list(args), input=stdin, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def _link_exists(name):
    return _ip("link", "show", name, check=False).returncode == 0


def short_hash(s, n=8):
    return hashlib.sha1(s.encode()).hexdigest()[:n]


class Net:
    """One instance's network: bridge, IP pools, netns records."""

    def __init__(self, state_dir):
        self.dir = state_dir
        self.lock = threading.Lock()
        self.pod_ips = {}      # netns -> ip
        self.svc_ips = set()
        cfg_path = os.path.join(state_dir, "net.json")
        if os.path.exists(cfg_path):
            with open(cfg_path) as f:
                self.cfg = json.load(f)
        else:
            self.cfg = self._create_bridge()
            with open(cfg_path, "w") as f:
                json.dump(self.cfg, f)
        self._ensure_bridge()

    # --- bridge ------------------------------------------------------------------
    def _create_bridge(self):
        for n in range(MAX_INSTANCES):
            br = "kl%d" % n
            if _ip("link", "add", br, "type", "bridge", check=False).returncode == 0:
                return {"n": n, "bridge": br,
                        "pod_prefix": "10.%d" % (244 + n), "svc_prefix": "10.%d" % (96 + n)}
        raise RuntimeError("no free kube-lite bridge name (kl0..kl%d all exist)" % MAX_INSTANCES)

    def _ensure_bridge(self):
        c = self.cfg
        if not _link_exists(c["bridge"]):
            _ip("link", "add", c["bridge"], "type", "bridge")
        _ip("addr", "replace", self.gateway + "/16", "dev", c["bridge"])
        _ip("link", "set", c["bridge"], "up")

    @property
    def gateway(self):
        return self.cfg["pod_prefix"] + ".0.1"

    @property
    def n(self):
        return self.cfg["n"]

    def svc_ip(self, index):
        """index-th address of the service range (1 -> x.y.0.1, the `kubernetes` service)."""
        return "%s.%d.%d" % (self.cfg["svc_prefix"], index // 256, index % 256)

    def in_svc_range(self, ip):
        return ip.startswith(self.cfg["svc_prefix"] + ".")

    # --- netns records -----------------------------------------------------------
    def netns_name(self, ns, pod):
        return "kl%d-%s" % (self.n, short_hash(ns + "/" + pod, 10))

    def _record(self, netns, add):
        p = os.path.join(self.dir, "netns.list")
        names = []
        if os.path.exists(p):
            with open(p) as f:
                names = [x.strip() for x in f if x.strip()]
        if add and netns not in names:
            names.append(netns)
        if not add and netns in names:
            names.remove(netns)
        tmp = p + ".tmp"
        with open(tmp, "w") as f:
            f.write("".join(x + "\n" for x in names))
        os.replace(tmp, p)

    def _alloc_ip(self, netns):
        used = set(self.pod_ips.values())
        h = int(short_hash(netns, 6), 16)
        for i in range(65000):
            idx = 2 + (h + i) % 65000
            ip = "%s.%d.%d" % (self.cfg["pod_prefix"], idx // 256, idx % 256)
            if ip not in used and idx % 256 not in (0, 255):
                self.pod_ips[netns] = ip
                return ip
        raise RuntimeError("pod IP pool exhausted")

    # --- pods ----------------------------------------------------------------------
    def setup_pod(self, ns, pod):
        """Create the pod's netns + veth, return (netns, ip)."""
        netns = self.netns_name(ns, pod)
        with self.lock:
            ip = self._alloc_ip(netns)
            self._record(netns, True)
        h = netns.split("-", 1)[1][:8]
        host_if, peer_if = "kv%d-%s" % (self.n, h), "kp%d-%s" % (self.n, h)
        _ip("netns", "del", netns, check=False)
        _ip("link", "del", host_if, check=False)
        _ip("netns", "add", netns)
        os.makedirs("/etc/netns/" + netns, exist_ok=True)
        with open("/etc/netns/%s/resolv.conf" % netns, "w") as f:
            # nothing answers on 127.0.0.1:53 inside the pod: unknown names fail fast
            f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        hp = "/etc/netns/%s/hosts" % netns
        if not os.path.exists(hp):
            with open(hp, "w") as f:
                f.write("127.0.0.1 localhost\n%s %s\n" % (ip, pod))
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", netns)
        _ip("link", "set", host_if, "master", self.cfg["bridge"], "up")
        _ip("-n", netns, "-batch", "-", stdin="\n".join([
            "link set lo up",
            "link set %s address %s" % (peer_if, mac_of(ip)),
            "link set %s name eth0" % peer_if,
            "addr add %s/16 dev eth0" % ip,
            "link set eth0 up",
            "route add default via %s" % self.gateway]) + "\n")
        return netns, ip

    def teardown_pod(self, netns):
        _ip("netns", "del", netns, check=False)  # the veth pair goes with it
        h = netns.split("-", 1)[1][:8]
        _ip("link", "del", "kv%d-%s" % (self.n, h), check=False)
        _rm_etc_netns(netns)
        with self.lock:
            self.pod_ips.pop(netns, None)
            self._record(netns, False)

    # --- hosts files ---------------------------------------------------------------
    def write_hosts(self, netns, content):
        write_if_changed("/etc/netns/%s/hosts" % netns, content)

    # --- service addresses ---------------------------------------------------------
    def add_svc_ip(self, ip):
        if ip not in self.svc_ips:
            _ip("addr", "replace", ip + "/32", "dev", self.cfg["bridge"])
            self.svc_ips.add(ip)

    def del_svc_ip(self, ip):
        if ip in self.svc_ips:
            _ip("addr", "del", ip + "/32", "dev", self.cfg["bridge"], check=False)
            self.svc_ips.discard(ip)

    def destroy(self):
        """Remove everything: pod netns still recorded, and the bridge."""
        cleanup(self.dir)


def mac_of(ip):
    """MAC derived from the pod IP (locally administered, like Docker's): a pod re-created
    with the same IP keeps its MAC, so the host's and other pods' ARP caches stay right."""
    a = [int(x) for x in ip.split(".")]
    return "02:4b:%02x:%02x:%02x:%02x" % tuple(a)


def write_if_changed(p, content):
    """Rewrite p in place (keeping its inode) if its content differs."""
    try:
        with open(p) as f:
            if f.read() == content:
                return
    except OSError:
        pass
    try:
        with open(p, "r+" if os.path.exists(p) else "w") as f:
            f.seek(0)
            f.write(content)
            f.truncate()
    except OSError:
        pass


def _rm_etc_netns(netns):
    d = "/etc/netns/" + netns
    for fn in ("hosts", "resolv.conf"):
        try:
            os.unlink(os.path.join(d, fn))
        except OSError:
            pass
    try:
        os.rmdir(d)
    except OSError:
        pass


def other_instances_alive():
    """True if any kube-lite bridge (kl<n>) exists: call after removing one's own."""
    r = _ip("-o", "link", "show", "type", "bridge", check=False)
    for line in r.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith("kl") and name[2:].isdigit():
            return True
    return False


def cleanup(state_dir):
    """Undo an instance from its records (works when the daemon is dead)."""
    p = os.path.join(state_dir, "netns.list")
    if os.path.exists(p):
        with open(p) as f:
            for netns in [x.strip() for x in f if x.strip()]:
                _ip("netns", "del", netns, check=False)
                _rm_etc_netns(netns)
        os.unlink(p)
    cfg_path = os.path.join(state_dir, "net.json")
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            cfg = json.load(f)
        _ip("link", "del", cfg["bridge"], check=False)
        os.unlink(cfg_path)


# --- userspace ClusterIP proxy ---------------------------------------------------------

class Proxy:
    """Listens on (ip, port); forwards each connection to the next backend (ip, port) of
    backends() round-robin; a connection with no backend is closed at once."""

    def __init__(self, ip, port, stop):
        self.addr = (ip, port)
        self.backends = []
        self.rr = 0
        self.stop = stop
        self.closed = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(self.addr)
        self.sock.listen(128)
        self.sock.settimeout(0.5)
        threading.Thread(target=self._accept, daemon=True,
                         name="proxy-%s:%d" % self.addr).start()

    def close(self):
        """Stop listening now (the port is free again at once); open connections go on."""
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _next(self):
        b = list(self.backends)
        if not b:
            return None
        self.rr = (self.rr + 1) % len(b)
        return b[self.rr]

    def _accept(self):
        while not self.stop.is_set() and not self.closed:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except (OSError, ValueError):
                break
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()
        try:
            self.sock.close()
        except OSError:
            pass

    def _serve(self, c):
        tried = 0
        n = max(1, len(self.backends))
        while tried < n:
            be = self._next()
            if be is None:
                break
            try:
                u = socket.create_connection(be, timeout=3)
                u.settimeout(None)
            except OSError:
                tried += 1
                continue
            t = threading.Thread(target=_pump, args=(u, c), daemon=True)
            t.start()
            _pump(c, u)
            t.join()
            u.close()
            c.close()
            return
        c.close()


def _pump(src, dst):
    """Copy src -> dst until EOF, then half-close; the caller closes both sockets."""
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


_instances = {}
_instances_lock = threading.Lock()


def get(state_dir):
    """The Net of state_dir, created on first use (shared by controllers and kubelet)."""
    with _instances_lock:
        k = os.path.realpath(state_dir)
        if k not in _instances:
            _instances[k] = Net(state_dir)
        return _instances[k]


def forget(state_dir):
    with _instances_lock:
        _instances.pop(os.path.realpath(state_dir), None)
