#!/usr/bin/python3
"""Checks that every acknowledged put survived: check_acks.py PORT ACK_LOG...

Reads "<key> <revision>" lines written by writer.py, ranges the whole "dur/" prefix once through
the JSON gateway (linearizable), and checks for every acknowledged key: it exists, its
mod_revision equals the acknowledged revision, its value is the one written ("v-<client>-<i>"),
its version is 1. Also: acknowledged revisions are unique across clients and strictly increasing
within one client (a client waits for each ack before the next put). Prints a summary line
("acked N, unknown U, stored S") and up to 20 problems; exit 1 if any.
"""
import base64
import http.client
import json
import sys


def main():
    port, logs = int(sys.argv[1]), sys.argv[2:]
    acked, problems, by_rev, unknown = {}, [], {}, 0
    for path in logs:
        last = 0
        with open(path) as f:
            for line in f:
                key, rev = line.split()
                rev = int(rev)
                if rev <= last:
                    problems.append('%s: revision %d not above previous ack %d' % (key, rev, last))
                last = rev
                if rev in by_rev:
                    problems.append('revision %d acknowledged for %s and %s' % (rev, by_rev[rev], key))
                by_rev[rev] = key
                acked[key] = rev
        try:
            with open(path + '.unknown') as f:
                unknown += sum(1 for _ in f)
        except FileNotFoundError:
            pass
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    body = json.dumps({'key': base64.b64encode(b'dur/').decode(),
                       'range_end': base64.b64encode(b'dur0').decode()})
    c.request('POST', '/v3/kv/range', body, {'Content-Type': 'application/json'})
    resp = c.getresponse()
    data = resp.read()
    if resp.status != 200:
        print('range failed: HTTP %d %r' % (resp.status, data[:300]))
        return 1
    stored = {}
    for kv in json.loads(data).get('kvs', []):
        stored[base64.b64decode(kv['key']).decode()] = kv
    for key, rev in sorted(acked.items()):
        kv = stored.get(key)
        if kv is None:
            problems.append('LOST: %s (acknowledged at revision %d)' % (key, rev))
            continue
        _, cid, i = key.split('/')
        want = 'v-%d-%d' % (int(cid), int(i))
        got = base64.b64decode(kv.get('value', '')).decode()
        if int(kv.get('mod_revision', 0)) != rev:
            problems.append('%s: mod_revision %s, acknowledged %d' % (key, kv.get('mod_revision'), rev))
        if got != want:
            problems.append('%s: value %r, written %r' % (key, got, want))
        if int(kv.get('version', 0)) != 1:
            problems.append('%s: version %s, expected 1' % (key, kv.get('version')))
    print('acked %d, unknown %d, stored %d' % (len(acked), unknown, len(stored)))
    for p in problems[:20]:
        print(p)
    if len(problems) > 20:
        print('... %d problems in all' % len(problems))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
