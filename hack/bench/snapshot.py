#!/usr/bin/python3
"""Helpers of hack/bench/snapshot.sh (the snapshot and restore benchmark).

  snapshot.py probe PORT RATE OUT MAX_SECONDS
      Paced puts through the JSON gateway (POST /v3/kv/put, one keep-alive connection): RATE
      puts per second, keys "probe/<i mod 1000>", 256-byte values, each put sent at its slot
      (or at once when the previous answer came after it: a stall shows as latency, no slot is
      sent twice). Runs until SIGTERM or MAX_SECONDS, then writes one line per put to OUT:
      "<send time, epoch s> <latency ms> <1 if HTTP 200 else 0>".
  snapshot.py stats OUT A B [A B ...]
      Of the puts in OUT whose [send, answer] overlaps one of the windows [A, B] (epoch s),
      prints "n p50_ms p99_ms max_ms failed puts_per_s" (puts_per_s = n / total window length).
  snapshot.py check FILE
      Verifies a snapshot file as etcd's restore does: size % 512 == 32 and the trailing 32
      bytes are the SHA-256 of everything before them. Prints the size; exit 1 if not.
  snapshot.py health PORT T0 TIMEOUT
      Polls http://127.0.0.1:PORT/health every 10 ms until {"health":"true"}; prints the seconds
      since T0 (epoch s). Exit 1 after TIMEOUT seconds.
  snapshot.py count PORT PREFIX
      Prints "<count> <revision>" of the keys under PREFIX (count_only range, linearizable).
Every loop is bounded by a deadline; network only on 127.0.0.1.
"""
import base64
import hashlib
import http.client
import json
import signal
import sys
import time

VALUE = base64.b64encode(b'p' * 256).decode()


def probe(port, rate, out, max_secs):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    rows = []
    step = 1.0 / rate
    t0 = time.time()
    nxt = t0
    i = 0
    while not stop and time.time() - t0 < max_secs:
        now = time.time()
        if now < nxt:
            time.sleep(min(nxt - now, 0.1))
            continue
        key = base64.b64encode(b'probe/%d' % (i % 1000)).decode()
        s = time.time()
        ok = 0
        try:
            conn.request('POST', '/v3/kv/put', json.dumps({'key': key, 'value': VALUE}),
                         {'Content-Type': 'application/json'})
            r = conn.getresponse()
            r.read()
            ok = int(r.status == 200)
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        e = time.time()
        rows.append('%.6f %.3f %d\n' % (s, (e - s) * 1000, ok))
        i += 1
        nxt = max(nxt + step, e)
    with open(out, 'w') as f:
        f.writelines(rows)
    return 0


def pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def stats(out, bounds):
    wins = [(float(bounds[i]), float(bounds[i + 1])) for i in range(0, len(bounds), 2)]
    lat, failed = [], 0
    with open(out) as f:
        for line in f:
            s, ms, ok = line.split()
            s, ms = float(s), float(ms)
            if any(s <= b and s + ms / 1000 >= a for a, b in wins):
                lat.append(ms)
                failed += ok != '1'
    lat.sort()
    span = sum(b - a for a, b in wins)
    if not lat:
        print('0 0 0 0 0 0')
        return 1
    print('%d %.2f %.2f %.2f %d %.0f' % (len(lat), pct(lat, .5), pct(lat, .99), lat[-1], failed,
                                         len(lat) / span if span > 0 else 0))
    return 0


def check(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        data_len = f.seek(0, 2) - 32
        if data_len < 0 or (data_len + 32) % 512 != 32:
            print('%s: %d bytes is not whole 512-byte blocks plus a sha256' % (path, data_len + 32),
                  file=sys.stderr)
            return 1
        f.seek(0)
        left = data_len
        while left:
            b = f.read(min(left, 1 << 20))
            if not b:
                break
            h.update(b)
            left -= len(b)
        if h.digest() != f.read(32):
            print('%s: trailing sha256 does not match the content' % path, file=sys.stderr)
            return 1
    print(data_len + 32)
    return 0


def health(port, t0, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
            c.request('GET', '/health')
            body = c.getresponse().read()
            c.close()
            if json.loads(body).get('health') == 'true':
                print('%.3f' % (time.time() - t0))
                return 0
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.01)
    return 1


def count(port, prefix):
    key = prefix.encode()
    end = key[:-1] + bytes([key[-1] + 1])
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request('POST', '/v3/kv/range', json.dumps({
        'key': base64.b64encode(key).decode(), 'range_end': base64.b64encode(end).decode(),
        'count_only': True}))
    r = json.loads(c.getresponse().read())
    print('%s %s' % (r.get('count', 0), r['header']['revision']))
    return 0


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == 'probe':
        return probe(int(a[0]), float(a[1]), a[2], float(a[3]))
    if cmd == 'stats':
        return stats(a[0], a[1:])
    if cmd == 'check':
        return check(a[0])
    if cmd == 'health':
        return health(int(a[0]), float(a[1]), float(a[2]))
    if cmd == 'count':
        return count(int(a[0]), a[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
