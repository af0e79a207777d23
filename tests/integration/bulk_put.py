#!/usr/bin/python3
"""Writes many keys fast, one Raft entry per key: bulk_put.py ENDPOINT PREFIX COUNT [INFLIGHT]

Puts "<PREFIX><i:06d>" = "v<i>" for i in 0..COUNT-1 as separate KV.Put RPCs over one gRPC
channel (python3-etcd3's message classes and stubs), keeping up to INFLIGHT (default 64) calls in
flight with grpc futures, so the server batches them but every key is still its own Raft entry
(what snapshot catch-up tests need: more entries than --snapshot-count plus the entries a leader
keeps after a snapshot). Every call has a 30 s deadline. Prints "put N keys in S s (R/s)" and
exits 0 when every put succeeded; otherwise prints the first errors and exits 1.
"""
import collections
import sys
import time

import grpc
from etcd3 import etcdrpc


def main():
    endpoint, prefix, count = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
    inflight = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    channel = grpc.insecure_channel(endpoint)
    kv = etcdrpc.KVStub(channel)
    pending, errors, done = collections.deque(), [], 0
    start = time.time()

    def reap():
        nonlocal done
        fut = pending.popleft()
        try:
            fut.result()
            done += 1
        except grpc.RpcError as e:
            errors.append('%s: %s' % (e.code(), e.details()))

    for i in range(count):
        if len(pending) >= inflight:
            reap()
        req = etcdrpc.PutRequest(key=prefix + b'%06d' % i, value=b'v%d' % i)
        pending.append(kv.Put.future(req, timeout=30))
        if len(errors) > 10:
            break
    while pending:
        reap()
    secs = time.time() - start
    print('put %d keys in %.1f s (%.0f/s)' % (done, secs, done / max(secs, 1e-6)))
    for e in errors[:5]:
        print('error:', e)
    channel.close()
    return 0 if done == count else 1


if __name__ == '__main__':
    sys.exit(main())
