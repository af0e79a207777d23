#!/usr/bin/python3
"""Durability writer: one client putting unique keys through the JSON gateway, logging every ACK.

usage: writer.py PORT CLIENT_ID COUNT ACK_LOG DEADLINE_EPOCH

Puts keys "dur/<client:02d>/<i:06d>" with value "v-<client>-<i>" for i in 0..COUNT-1 over one
keep-alive HTTP/1.1 connection (http.client). After each 200 answer it appends
"<key> <header.revision>" to ACK_LOG and flushes (the server's crash cannot lose a line already
written by this process). A put whose outcome is unknown (connection reset, non-200, timeout) is
logged to ACK_LOG + ".unknown" and the next key is used; while the server is down (connect
refused) the same key waits, retried every 50 ms. Stops after COUNT keys or at DEADLINE_EPOCH.
Exit 0 if all COUNT keys were acknowledged, 3 if some were not, 4 at the deadline.
"""
import base64
import http.client
import json
import sys
import time


def b64(s):
    return base64.b64encode(s.encode()).decode()


def connect(port, deadline):
    """Returns a connected HTTPConnection, or None at the deadline."""
    while time.time() < deadline:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
        try:
            c.connect()
            return c
        except OSError:
            c.close()
            time.sleep(0.05)
    return None


def main():
    port, cid, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    log_path, deadline = sys.argv[4], float(sys.argv[5])
    acks = open(log_path, 'a', buffering=1)
    unknown = open(log_path + '.unknown', 'a', buffering=1)
    conn = None
    i = acked = 0
    while i < count:
        if conn is None:
            conn = connect(port, deadline)
            if conn is None:
                return 4
        key, value = 'dur/%02d/%06d' % (cid, i), 'v-%d-%d' % (cid, i)
        body = json.dumps({'key': b64(key), 'value': b64(value)})
        try:
            conn.request('POST', '/v3/kv/put', body, {'Content-Type': 'application/json'})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise OSError('HTTP %d %r' % (resp.status, data[:200]))
            rev = int(json.loads(data)['header']['revision'])
        except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
            unknown.write('%s %s\n' % (key, str(e).replace('\n', ' ')[:200]))
            conn.close()
            conn = None
            i += 1
            if time.time() >= deadline:
                return 4
            continue
        acks.write('%s %d\n' % (key, rev))
        acked += 1
        i += 1
    conn.close()
    return 0 if acked == count else 3


if __name__ == '__main__':
    sys.exit(main())
