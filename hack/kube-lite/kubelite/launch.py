"""Container launcher: the last step between the kubelet and a container's program.

The kubelet runs `ip netns exec <netns> /usr/bin/python3 launch.py <spec.json>`; `ip netns exec`
has already entered the pod's network namespace and a private mount namespace with
/etc/netns/<netns>/hosts bound over /etc/hosts. This script then enters a new UTS namespace,
sets the pod's hostname, bind-mounts the pod's volumes (so they exist only for this container),
changes directory and execs the program, so the kubelet's child pid is the program itself.

spec.json (written by kubelet.py): {"hostname": str, "workdir": str|null,
  "argv": [str, ...], "env": {name: value},
  "mounts": [{"src": host path, "dst": container path, "ro": bool}]}
Invariants: mount points already exist (the kubelet created them); any failure exits 127
with a message on stderr (the container log) before exec.
"""

import ctypes
import json
import os
import shutil
import sys

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
CLONE_NEWUTS = 0x04000000

libc = ctypes.CDLL(None, use_errno=True)


def _check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def bind(src, dst, ro):
    _check(libc.mount(src.encode(), dst.encode(), None, MS_BIND | MS_REC, None),
           "bind %s on %s" % (src, dst))
    if ro:
        _check(libc.mount(b"none", dst.encode(), None,
                          MS_BIND | MS_REMOUNT | MS_RDONLY, None), "remount ro " + dst)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    _check(libc.unshare(CLONE_NEWUTS), "unshare uts")
    hn = spec.get("hostname", "").encode()[:63]
    _check(libc.sethostname(hn, len(hn)), "sethostname")
    for m in spec.get("mounts", []):
        bind(m["src"], m["dst"], m.get("ro", False))
    wd = spec.get("workdir")
    if wd:
        os.makedirs(wd, exist_ok=True)
        os.chdir(wd)
    argv, env = spec["argv"], spec["env"]
    prog = argv[0]
    if "/" not in prog:
        found = shutil.which(prog, path=env.get("PATH", os.defpath))
        if not found:
            raise OSError(2, "executable not found in $PATH: %s" % prog)
        prog = found
    os.execve(prog, argv, env)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report into the container log, exit like a failed exec
        sys.stderr.write("kube-lite launch: %s\n" % e)
        sys.stderr.flush()
        os._exit(127)
