"""kube-lite PKI: the cluster CA and the API server's serving certificate (openssl CLI).

Purpose: in-cluster clients (python-kubernetes' load_incluster_config, libcurl with the mounted
ca.crt, kubectl with certificate-authority-data) insist on https to a certificate they can
verify. `ensure(DIR, ips, names)` makes, with /usr/bin/openssl:
  DIR/pki/ca.key, DIR/pki/ca.crt       EC P-256 self-signed CA "kube-lite-ca" (10 years), kept
                                       across `up`s of the same DIR (re-made if unreadable);
  DIR/pki/apiserver.key, .crt          EC P-256 serving certificate "kube-apiserver" signed by
                                       the CA, issued anew at every `up` (the pod bridge address
                                       is per instance), SANs = the given IPs and DNS names,
                                       extendedKeyUsage serverAuth;
  DIR/ca.crt                           copy of the CA certificate: what the kubelet mounts in
                                       every pod as .../serviceaccount/ca.crt.
Endpoint record (written by main.py, read by the kubelet and controllers):
  DIR/url-https   one line "https://127.0.0.1:<port>\n": the TLS listener; the API also listens
                  with TLS on the pod bridge gateway at the same port.
Invariants: keys are mode 0600; every file is written to a temporary name and renamed, so a
reader never sees half a certificate; a failing openssl raises RuntimeError with its stderr.
"""
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.parse

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
DNS_NAMES = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
             "kubernetes.default.svc.cluster.local", "localhost"]
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


def _run(args, cwd):
    r = subprocess.run([OPENSSL] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.decode(errors="replace")))


def _valid_ca(d):
    try:
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
        return bool(ctx.get_ca_certs()) and os.path.getsize(os.path.join(d, "ca.key")) > 0
    except (OSError, ssl.SSLError, ValueError):
        return False


def _make_ca(d, tmp):
    _run(["req", "-x509", "-new", "-nodes"] + EC + [
        "-keyout", os.path.join(tmp, "ca.key"), "-out", os.path.join(tmp, "ca.crt"),
        "-subj", "/CN=kube-lite-ca", "-days", "3650",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"], tmp)
    os.chmod(os.path.join(tmp, "ca.key"), 0o600)
    os.replace(os.path.join(tmp, "ca.key"), os.path.join(d, "ca.key"))
    os.replace(os.path.join(tmp, "ca.crt"), os.path.join(d, "ca.crt"))


def _make_serving(d, tmp, ips, names):
    sans = ["IP:%s" % ip for ip in ips] + ["DNS:%s" % n for n in names]
    ext = os.path.join(tmp, "ext.cnf")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % ",".join(sans))
    key, csr, crt = (os.path.join(tmp, "apiserver." + s) for s in ("key", "csr", "crt"))
    _run(["req", "-new", "-nodes"] + EC + ["-keyout", key, "-out", csr,
                                          "-subj", "/CN=kube-apiserver"], tmp)
    _run(["x509", "-req", "-in", csr, "-CA", os.path.join(d, "ca.crt"),
          "-CAkey", os.path.join(d, "ca.key"), "-set_serial", "0x%s" % os.urandom(8).hex(),
          "-days", "3650", "-sha256", "-extfile", ext, "-out", crt], tmp)
    os.chmod(key, 0o600)
    os.replace(key, os.path.join(d, "apiserver.key"))
    os.replace(crt, os.path.join(d, "apiserver.crt"))


def ensure(state_dir, ips, names=DNS_NAMES):
    """Make (or keep) the CA, issue the serving certificate for ips + names; returns
    (ca_path, cert_path, key_path)."""
    d = os.path.join(state_dir, "pki")
    os.makedirs(d, mode=0o700, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=d)
    try:
        if not _valid_ca(d):
            _make_ca(d, tmp)
        ips = list(dict.fromkeys(ip for ip in ips if ip))
        _make_serving(d, tmp, ips, names)
        shutil.copyfile(os.path.join(d, "ca.crt"), os.path.join(tmp, "ca.crt.copy"))
        os.chmod(os.path.join(tmp, "ca.crt.copy"), 0o644)
        os.replace(os.path.join(tmp, "ca.crt.copy"), os.path.join(state_dir, "ca.crt"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return (os.path.join(d, "ca.crt"), os.path.join(d, "apiserver.crt"),
            os.path.join(d, "apiserver.key"))


def server_context(cert, key):
    """TLS server context (TLS 1.2+, HTTP/1.1 only via ALPN) for the API listeners."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def https_endpoint(state_dir):
    """(host, port) of the TLS listener from DIR/url-https, or None when there is none."""
    try:
        with open(os.path.join(state_dir, "url-https")) as f:
            u = urllib.parse.urlsplit(f.read().strip())
        return (u.hostname, u.port) if u.hostname and u.port else None
    except OSError:
        return None
