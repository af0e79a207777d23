#!/usr/bin/python3
"""Cluster helpers for hack/bench/cluster.sh, over the JSON gateway (/v3/maintenance/status,
/v3/kv/put) so they work alike against etcd 3.4 and cetcd:

  cluster.py leader PORT...           prints the client port of the member every member names as
                                      leader; waits up to 20 s for them to agree, exit 1 if not.
  cluster.py elect PID PORT...        the member PID (the leader) is killed with SIGKILL; PORT...
                                      are the survivors' client ports. Prints two figures in ms,
                                      both counted from the kill:
                                        STATUS_MS  first status answer naming a new leader
                                        WRITE_MS   first put acknowledged through a survivor
                                      Exit 1 if either is not seen within 20 s.

The write probe starts a new put every 20 ms, alternating between survivors, each on its own
connection with a 3 s timeout, and keeps the earliest success: a put that a follower forwarded to
the dead leader is lost, and waiting for it to time out would measure the client's timeout, not the
election. Status is polled every 10 ms. Statuses carry IDs as decimal strings; zero may be omitted.
"""
import http.client
import json
import os
import signal
import sys
import threading
import time

DEADLINE_S = 20.0


def post(port, path, body, timeout):
    """POSTs JSON; returns the decoded answer, or None on any failure or non-200 status."""
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        c.request('POST', path, json.dumps(body), {'Content-Type': 'application/json'})
        r = c.getresponse()
        data = r.read()
        return json.loads(data) if r.status == 200 else None
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        c.close()


def status(port, timeout=1.0):
    """Returns (member_id, leader_id) as strings ('0' when absent), or None."""
    s = post(port, '/v3/maintenance/status', {}, timeout)
    if not s:
        return None
    return str(s.get('header', {}).get('member_id', '0')), str(s.get('leader', '0'))


def leader(ports):
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        st = {p: status(p) for p in ports}
        leaders = {v[1] for v in st.values() if v}
        if None not in st.values() and len(leaders) == 1 and '0' not in leaders:
            for p, (mid, lid) in st.items():
                if mid == lid:
                    print(p)
                    return 0
        time.sleep(0.05)
    sys.stderr.write('cluster.py: members do not agree on a leader: %r\n' % st)
    return 1


def elect(pid, ports):
    old = next((s[1] for s in map(status, ports) if s), None)
    if old in (None, '0'):
        sys.stderr.write('cluster.py: no leader before the kill\n')
        return 1
    got = {}
    lock = threading.Lock()

    def put(port, t0):
        if post(port, '/v3/kv/put', {'key': 'YmVuY2gvZWxlY3Q=', 'value': 'eA=='}, 3.0):
            with lock:
                got.setdefault('write', time.monotonic() - t0)

    t0 = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    next_put, n = t0, 0
    while len(got) < 2 and time.monotonic() - t0 < DEADLINE_S:
        now = time.monotonic()
        if 'write' not in got and now >= next_put:
            threading.Thread(target=put, args=(ports[n % len(ports)], t0), daemon=True).start()
            n, next_put = n + 1, next_put + 0.02
        if 'status' not in got:
            for p in ports:
                s = status(p, 0.2)
                if s and s[1] not in ('0', old):
                    with lock:
                        got.setdefault('status', time.monotonic() - t0)
                    break
        time.sleep(0.01)
    if len(got) < 2:
        sys.stderr.write('cluster.py: after %.0f s: %r\n' % (DEADLINE_S, got))
        return 1
    print('%.0f %.0f' % (got['status'] * 1000, got['write'] * 1000))
    return 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == 'leader':
        return leader([int(p) for p in sys.argv[2:]])
    if len(sys.argv) >= 4 and sys.argv[1] == 'elect':
        return elect(int(sys.argv[2]), [int(p) for p in sys.argv[3:]])
    sys.stderr.write(__doc__)
    return 2


if __name__ == '__main__':
    sys.exit(main())
