#!/usr/bin/python3
"""Loads keys for the memory figure: load.py PORT N VALUE_SIZE [CONNECTIONS=4]

Puts N keys "load/<i:07d>" with VALUE_SIZE random bytes each through the JSON gateway, batched
100 puts per txn (etcd's default --max-txn-ops is 128), over CONNECTIONS keep-alive connections
in parallel processes. Prints "<seconds>" taken; exit 1 on any non-200 answer.
"""
import base64
import http.client
import json
import multiprocessing
import os
import sys
import time

BATCH = 100


def worker(args):
    port, lo, hi, size = args
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    for start in range(lo, hi, BATCH):
        ops = [{'request_put': {'key': base64.b64encode(b'load/%07d' % i).decode(),
                                'value': base64.b64encode(os.urandom(size)).decode()}}
               for i in range(start, min(start + BATCH, hi))]
        c.request('POST', '/v3/kv/txn', json.dumps({'success': ops}),
                  {'Content-Type': 'application/json'})
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            return 'HTTP %d %r' % (r.status, data[:200])
    c.close()
    return None


def main():
    port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    conns = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    per = -(-n // conns)
    per = -(-per // BATCH) * BATCH
    jobs = [(port, lo, min(lo + per, n), size) for lo in range(0, n, per)]
    t0 = time.monotonic()
    with multiprocessing.Pool(len(jobs)) as pool:
        errs = [e for e in pool.map(worker, jobs) if e]
    print('%.1f' % (time.monotonic() - t0))
    if errs:
        sys.stderr.write('\n'.join(errs) + '\n')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
