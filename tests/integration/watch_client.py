#!/usr/bin/python3
"""Watch service checks over gRPC and the JSON gateway, one scenario per run (watch.sh).

usage: watch_client.py SCENARIO ENDPOINT [ARGS...]

Scenarios (ENDPOINT is host:port of the member to watch):
  control      IDs (auto, client-chosen, negative, duplicate), empty range, cancel (known and
               unknown), progress request, empty request
  events       history replay from start_revision (inclusive) with prev_kv, key / prefix /
               from-key ranges, NOPUT / NODELETE, live events, one revision per response
  compact      a start revision below the compaction point: created, then canceled with
               compact_revision (header without revision); at the compaction point: replayed
  fragment     5 x 600 KB in history: a fragment watcher gets 3+2 events (fragment=true on the
               first), a plain one all 5 in one response (max-request-bytes 1.5 MiB)
  progress     with --experimental-watch-progress-notify-interval 1s: a progress_notify watcher
               gets empty responses with its ID and the current revision, another none
  halfclose    the client's half-close keeps the stream open: events still arrive
  slow         a watcher that stops reading while 20,000 puts go on: the writes keep their
               pace (baseline: 5,000 puts without it), and once it reads again it receives
               every event once, in order
  patroni      Patroni 3.0.2's own client (Etcd3Client.watchprefix + iter_response_objects):
               watch from its range's revision over the chunked gateway
  follower ENDPOINT_WRITE   watch ENDPOINT (a follower), write through ENDPOINT_WRITE
  refused CODE TEXT         a Watch with metadata hasleader=true fails with gRPC CODE/TEXT
  monitored READY_FILE      opens a hasleader watch, touches READY_FILE, then expects the
                            stream to end with UNAVAILABLE "etcdserver: no leader" (the
                            caller takes the leader away) within 30 s
Prints `ok` or one line per problem; exit 0 when none.

The messages are etcd 3.4's (WatchRequest with progress_request, watch_id and fragment),
declared here at run time on top of python3-etcd3's descriptors, which are older.
"""
import base64
import os
import queue
import sys
import threading
import time

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from etcd3.etcdrpc import kv_pb2, rpc_pb2, rpc_pb2_grpc

# ---- etcd 3.4's Watch messages -------------------------------------------------------------

F = descriptor_pb2.FieldDescriptorProto


def _message(fd, name, fields, oneof=None):
    m = fd.message_type.add(name=name)
    if oneof:
        m.oneof_decl.add(name=oneof)
    for fname, num, ftype, repeated, tname, in_oneof in fields:
        f = m.field.add(name=fname, number=num, type=ftype,
                        label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if tname:
            f.type_name = tname
        if in_oneof:
            f.oneof_index = 0


def _build():
    fd = descriptor_pb2.FileDescriptorProto(name='cetcd_watch_test.proto', package='w34',
                                            syntax='proto3')
    fd.dependency.extend([rpc_pb2.DESCRIPTOR.name, kv_pb2.DESCRIPTOR.name])
    _message(fd, 'WatchCreateRequest', [
        ('key', 1, F.TYPE_BYTES, False, None, False),
        ('range_end', 2, F.TYPE_BYTES, False, None, False),
        ('start_revision', 3, F.TYPE_INT64, False, None, False),
        ('progress_notify', 4, F.TYPE_BOOL, False, None, False),
        ('filters', 5, F.TYPE_INT32, True, None, False),
        ('prev_kv', 6, F.TYPE_BOOL, False, None, False),
        ('watch_id', 7, F.TYPE_INT64, False, None, False),
        ('fragment', 8, F.TYPE_BOOL, False, None, False)])
    _message(fd, 'WatchCancelRequest', [('watch_id', 1, F.TYPE_INT64, False, None, False)])
    _message(fd, 'WatchProgressRequest', [])
    _message(fd, 'WatchRequest', [
        ('create_request', 1, F.TYPE_MESSAGE, False, '.w34.WatchCreateRequest', True),
        ('cancel_request', 2, F.TYPE_MESSAGE, False, '.w34.WatchCancelRequest', True),
        ('progress_request', 3, F.TYPE_MESSAGE, False, '.w34.WatchProgressRequest', True)],
        oneof='request_union')
    _message(fd, 'WatchResponse', [
        ('header', 1, F.TYPE_MESSAGE, False, '.etcdserverpb.ResponseHeader', False),
        ('watch_id', 2, F.TYPE_INT64, False, None, False),
        ('created', 3, F.TYPE_BOOL, False, None, False),
        ('canceled', 4, F.TYPE_BOOL, False, None, False),
        ('compact_revision', 5, F.TYPE_INT64, False, None, False),
        ('cancel_reason', 6, F.TYPE_STRING, False, None, False),
        ('fragment', 7, F.TYPE_BOOL, False, None, False),
        ('events', 11, F.TYPE_MESSAGE, True, '.mvccpb.Event', False)])
    pool = descriptor_pool.Default()
    pool.Add(fd)
    factory = message_factory.MessageFactory(pool)
    return {n: factory.GetPrototype(pool.FindMessageTypeByName('w34.' + n))
            for n in ('WatchCreateRequest', 'WatchCancelRequest', 'WatchProgressRequest',
                      'WatchRequest', 'WatchResponse')}


M = _build()
NOPUT, NODELETE = 0, 1
PUT, DELETE = 0, 1
MAX_MSG = [('grpc.max_receive_message_length', 64 << 20)]

# ---- a Watch stream --------------------------------------------------------------------------


class Stream:
    """One Watch call: requests go in through a queue; responses are read by a thread into
    another queue (unless paused, when nothing is read: a slow client)."""

    def __init__(self, ep, metadata=None, reading=True):
        self.channel = grpc.insecure_channel(ep, options=MAX_MSG)
        self.reqs = queue.Queue()
        self.resps = queue.Queue()
        self.reading = threading.Event()
        if reading:
            self.reading.set()
        call = self.channel.stream_stream(
            '/etcdserverpb.Watch/Watch', request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=M['WatchResponse'].FromString)
        self.it = call(self._requests(), metadata=metadata)
        threading.Thread(target=self._read, daemon=True).start()

    def _requests(self):
        while True:
            r = self.reqs.get()
            if r is None:
                return
            yield r

    def _read(self):
        try:
            while True:
                self.reading.wait()
                self.resps.put(next(self.it))
        except StopIteration:
            self.resps.put(None)
        except grpc.RpcError as e:
            self.resps.put(e)

    def send(self, **kw):
        self.reqs.put(M['WatchRequest'](**kw))

    def create(self, **kw):
        self.send(create_request=M['WatchCreateRequest'](**kw))

    def cancel(self, wid):
        self.send(cancel_request=M['WatchCancelRequest'](watch_id=wid))

    def progress(self):
        self.send(progress_request=M['WatchProgressRequest']())

    def recv(self, timeout=5):
        """The next response, an RpcError, None (stream ended) or 'timeout'."""
        try:
            return self.resps.get(timeout=timeout)
        except queue.Empty:
            return 'timeout'

    def half_close(self):
        self.reqs.put(None)

    def close(self):
        self.it.cancel()
        self.channel.close()


class Problems(list):
    def check(self, cond, what):
        if not cond:
            self.append(what)
        return cond


def kv_stub(ep):
    return rpc_pb2_grpc.KVStub(grpc.insecure_channel(ep, options=MAX_MSG))


def put(kv, key, value):
    return kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10).header.revision


def delete(kv, key, end=b''):
    return kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=key, range_end=end),
                          timeout=10).header.revision


def current_rev(kv):
    return kv.Range(rpc_pb2.RangeRequest(key=b'\0'), timeout=10).header.revision


def show(r):
    if isinstance(r, M['WatchResponse']):
        return ' '.join(str(r).split())[:400]
    return repr(r)[:400]


def ev_text(e):
    t = ('-' if e.type == DELETE else '') + e.kv.key.decode() + '@%d' % e.kv.mod_revision
    if e.HasField('prev_kv'):
        t += '(%s)' % e.prev_kv.value.decode()
    return t


def events_until(s, wid, n, timeout=10):
    """The events of watcher wid until n have arrived (other IDs' responses are skipped), and
    how many responses carried them."""
    out, nresp = [], 0
    deadline = time.time() + timeout
    while len(out) < n and time.time() < deadline:
        r = s.recv(max(0.05, deadline - time.time()))
        if not isinstance(r, M['WatchResponse']):
            break
        if r.watch_id == wid and r.events:
            out.extend(ev_text(e) for e in r.events)
            nresp += 1
    return out, nresp


def expect(p, s, what, timeout=5, **fields):
    """The next response must have the given field values."""
    r = s.recv(timeout)
    if not p.check(isinstance(r, M['WatchResponse']), '%s: no response (%s)' % (what, show(r))):
        return None
    for k, v in fields.items():
        got = r.header.revision if k == 'revision' else getattr(r, k)
        p.check(got == v, '%s: %s = %r, want %r (%s)' % (what, k, got, v, show(r)))
    return r


# ---- scenarios -------------------------------------------------------------------------------


def sc_control(ep):
    p, kv = Problems(), kv_stub(ep)
    P = b'/ctl/'
    rev = put(kv, P + b'a', b'1')
    s = Stream(ep)
    s.create(key=P + b'a', watch_id=7)
    expect(p, s, 'create id 7', watch_id=7, created=True, canceled=False, revision=rev)
    s.create(key=P + b'a', watch_id=7)
    expect(p, s, 'duplicate id', watch_id=-1, created=True, canceled=True, revision=rev,
           cancel_reason='mvcc: duplicate watch ID provided on the WatchStream')
    s.create(key=P + b'a')
    expect(p, s, 'first automatic id', watch_id=0, created=True)
    s.create(key=P + b'a')
    expect(p, s, 'second automatic id', watch_id=1, created=True)
    s.create(key=P + b'b', range_end=P + b'a')
    expect(p, s, 'empty range', watch_id=-1, created=True, canceled=True,
           cancel_reason='mvcc: watcher range is empty')
    s.create(key=P + b'a', watch_id=-5)
    expect(p, s, 'negative id', watch_id=-5, created=True, canceled=False)
    s.cancel(99)                     # unknown: no answer, so the next one is the progress
    s.send()                         # empty request: ignored
    s.progress()
    expect(p, s, 'progress', watch_id=-1, created=False, canceled=False, revision=rev)
    s.cancel(7)
    expect(p, s, 'cancel 7', watch_id=7, canceled=True, created=False, revision=rev)
    rev2 = put(kv, P + b'a', b'2')
    got = {}
    for _ in range(3):
        r = s.recv()
        if p.check(isinstance(r, M['WatchResponse']), 'event: %s' % show(r)):
            got[r.watch_id] = [ev_text(e) for e in r.events]
    want = ['/ctl/a@%d' % rev2]
    p.check(got == {0: want, 1: want, -5: want}, 'events after cancel: %r' % got)
    r = s.recv(0.5)
    p.check(r == 'timeout', 'nothing for the canceled watcher: %s' % show(r))
    s.close()
    return p


def sc_events(ep):
    p, kv = Problems(), kv_stub(ep)
    P = b'/zz-ev-%d/' % int(time.time() * 1000)   # fresh keys even on a reused server
    r1 = put(kv, P + b'a', b'1')
    put(kv, P + b'b', b'1')
    put(kv, P + b'a', b'2')
    delete(kv, P + b'a')
    s = Stream(ep)
    s.create(key=P, range_end=P[:-1] + b'0', start_revision=r1, prev_kv=True, watch_id=1)
    s.create(key=P + b'b', start_revision=r1, watch_id=2)
    s.create(key=P + b'b', range_end=b'\0', start_revision=r1 + 1, watch_id=3)
    s.create(key=P, range_end=P[:-1] + b'0', filters=[NOPUT], watch_id=4)
    s.create(key=P, range_end=P[:-1] + b'0', filters=[NODELETE], watch_id=5)
    created, early = {}, []
    while len(created) < 5:
        r = s.recv()
        if not p.check(isinstance(r, M['WatchResponse']), 'created: %s' % show(r)):
            return p
        if r.created:
            created[r.watch_id] = r.header.revision
        else:                           # a replay may come first: keep it for later
            early.append(r)
    p.check(created == {i: r1 + 3 for i in range(1, 6)}, 'created responses: %s' % created)
    replay = {1: 4, 2: 1, 3: 1}          # history events each of these gets first
    got = {i: [] for i in range(1, 6)}
    deadline = time.time() + 10
    while any(len(got[i]) < n for i, n in replay.items()) and time.time() < deadline:
        r = early.pop(0) if early else s.recv(max(0.05, deadline - time.time()))
        if not p.check(isinstance(r, M['WatchResponse']), 'replay: %s' % show(r)):
            return p
        got[r.watch_id].extend(ev_text(e) for e in r.events)
    r5 = put(kv, P + b'c', b'1')
    r6 = delete(kv, P + b'b')
    want = {
        1: ['a@%d' % r1, 'b@%d' % (r1 + 1), 'a@%d(1)' % (r1 + 2), '-a@%d(2)' % (r1 + 3),
            'c@%d' % r5, '-b@%d(1)' % r6],
        2: ['b@%d' % (r1 + 1), '-b@%d' % r6],
        3: ['b@%d' % (r1 + 1), 'c@%d' % r5, '-b@%d' % r6],
        4: ['-b@%d' % r6],
        5: ['c@%d' % r5],
    }
    want = {i: [('-' if t[0] == '-' else '') + P.decode() + t.lstrip('-') for t in w]
            for i, w in want.items()}
    live = {i: [] for i in want}       # response header revisions of live events
    deadline = time.time() + 10
    while got != want and time.time() < deadline:
        r = s.recv(max(0.05, deadline - time.time()))
        if not p.check(isinstance(r, M['WatchResponse']), 'events: %s' % show(r)):
            break
        if r.watch_id in got:
            got[r.watch_id].extend(ev_text(e) for e in r.events)
            if r.events:
                live[r.watch_id].append(r.header.revision)
    for i in want:
        p.check(got[i] == want[i], 'watcher %d: got %s, want %s' % (i, got[i], want[i]))
    # live events of synced watchers: one revision per response, the header at it
    for i in (1, 3):
        p.check(live[i] == [r5, r6], 'watcher %d live headers %s, want %s' % (i, live[i], [r5, r6]))
    s.close()
    return p


def sc_compact(ep):
    p, kv = Problems(), kv_stub(ep)
    P = b'/cmp/'
    r1 = put(kv, P + b'a', b'1')
    r2 = put(kv, P + b'a', b'2')
    r3 = put(kv, P + b'a', b'3')
    kv.Compact(rpc_pb2.CompactionRequest(revision=r2, physical=True), timeout=10)
    s = Stream(ep)
    s.create(key=P + b'a', start_revision=r1, watch_id=1)
    expect(p, s, 'created below the compaction point', watch_id=1, created=True, revision=r3)
    expect(p, s, 'compaction cancel', watch_id=1, canceled=True, created=False,
           compact_revision=r2, revision=0, cancel_reason='')
    s.create(key=P + b'a', watch_id=1)
    expect(p, s, 'the compacted watcher keeps its id', watch_id=-1, canceled=True)
    s.cancel(1)
    expect(p, s, 'cancel of the compacted watcher', watch_id=1, canceled=True, revision=r3)
    s.create(key=P + b'a', start_revision=r2, watch_id=2)
    expect(p, s, 'created at the compaction point', watch_id=2, created=True)
    evs, _ = events_until(s, 2, 2)
    p.check(evs == ['/cmp/a@%d' % r2, '/cmp/a@%d' % r3], 'replay from the compaction point: %s' % evs)
    s.close()
    return p


def sc_fragment(ep):
    p, kv = Problems(), kv_stub(ep)
    P = b'/frag/'
    big = b'x' * 600000
    r0 = put(kv, P + b'0', big)
    for i in range(1, 5):
        put(kv, P + b'%d' % i, big)
    s = Stream(ep)
    s.create(key=P, range_end=P[:-1] + b'0', start_revision=r0, fragment=True, watch_id=1)
    s.create(key=P, range_end=P[:-1] + b'0', start_revision=r0, watch_id=2)
    got = {1: [], 2: []}
    deadline = time.time() + 20
    while sum(len(e) for _, e in got[1]) + sum(len(e) for _, e in got[2]) < 10 and time.time() < deadline:
        r = s.recv(max(0.05, deadline - time.time()))
        if not p.check(isinstance(r, M['WatchResponse']), 'fragments: %s' % show(r)):
            break
        if r.events:
            got[r.watch_id].append((r.fragment, [e.kv.mod_revision for e in r.events]))
    revs = list(range(r0, r0 + 5))
    p.check(got[1] == [(True, revs[:3]), (False, revs[3:])], 'fragment watcher: %s' % got[1])
    p.check(got[2] == [(False, revs)], 'plain watcher: %s' % got[2])
    s.close()
    return p


def sc_progress(ep):
    p, kv = Problems(), kv_stub(ep)
    P = b'/prog/'
    rev = put(kv, P + b'x', b'1')
    s = Stream(ep)
    s.create(key=P + b'x', progress_notify=True, watch_id=1)
    s.create(key=P + b'y', watch_id=2)
    expect(p, s, 'created 1', watch_id=1, created=True)
    expect(p, s, 'created 2', watch_id=2, created=True)
    seen = []
    deadline = time.time() + 3.5
    while time.time() < deadline:
        r = s.recv(max(0.05, deadline - time.time()))
        if r == 'timeout':
            break
        if p.check(isinstance(r, M['WatchResponse']), 'progress: %s' % show(r)):
            seen.append((r.watch_id, len(r.events), r.created, r.canceled, r.header.revision))
    p.check(len(seen) >= 2 and all(x == (1, 0, False, False, rev) for x in seen),
            'progress notifications in 3.5 s at 1 s: %s' % seen)
    s.close()
    return p


def sc_halfclose(ep):
    p, kv = Problems(), kv_stub(ep)
    s = Stream(ep)
    s.create(key=b'/hc/a', watch_id=1)
    expect(p, s, 'created', watch_id=1, created=True)
    s.half_close()
    time.sleep(0.3)
    rev = put(kv, b'/hc/a', b'1')
    evs, _ = events_until(s, 1, 1, 5)
    p.check(evs == ['/hc/a@%d' % rev], 'event after the half-close: %s' % evs)
    s.close()
    return p


def timed_puts(kv, prefix, n, value):
    """n puts from 16 client threads; returns (seconds, first revision, last revision)."""
    revs, lock = [], threading.Lock()

    def worker(start):
        mine = []
        for i in range(start, n, 16):
            mine.append(put(kv, prefix + b'%06d' % i, value))
        with lock:
            revs.extend(mine)
    t0 = time.time()
    ts = [threading.Thread(target=worker, args=(j,)) for j in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.time() - t0, min(revs), max(revs)


def sc_slow(ep):
    p, kv = Problems(), kv_stub(ep)
    value = b'v' * 256
    base_t, _, _ = timed_puts(kv, b'/slowbase/', 5000, value)
    s = Stream(ep)
    s.create(key=b'/slow/', range_end=b'/slow0', watch_id=1)
    expect(p, s, 'created', watch_id=1, created=True)
    s.reading.clear()                  # stop reading: the server's queue for it fills
    slow_t, first, last = timed_puts(kv, b'/slow/', 20000, value)
    base_rate, slow_rate = 5000 / base_t, 20000 / slow_t
    print('# puts/s without a slow watcher %.0f, with one %.0f' % (base_rate, slow_rate))
    p.check(slow_rate > base_rate / 2,
            'writes slowed down by the slow watcher: %.0f/s vs %.0f/s' % (slow_rate, base_rate))
    s.reading.set()
    revs = []
    deadline = time.time() + 60
    while len(revs) < 20000 and time.time() < deadline:
        r = s.recv(max(0.05, deadline - time.time()))
        if not p.check(isinstance(r, M['WatchResponse']), 'slow watcher: %s' % show(r)):
            break
        revs.extend(e.kv.mod_revision for e in r.events)
    p.check(revs == list(range(first, last + 1)),
            'slow watcher: %d events, first %s last %s, in order: %s, no duplicates: %s'
            % (len(revs), revs[:1], revs[-1:], revs == sorted(revs), len(set(revs)) == len(revs)))
    s.close()
    return p


def sc_patroni(ep):
    from patroni.dcs.etcd import DnsCachingResolver
    from patroni.dcs.etcd3 import Etcd3Client
    from patroni.utils import iter_response_objects
    p = Problems()
    c = Etcd3Client({'hosts': [ep], 'protocol': 'http', 'retry_timeout': 10},
                    DnsCachingResolver())
    c.put('/service/wt/leader', 'a')
    r = c.prefix('/service/wt/')
    rev = int(r['header']['revision'])
    resp = c.watchprefix('/service/wt/', rev)

    def writer():
        time.sleep(0.3)
        c.put('/service/wt/status', 'x')
        c.deleterange('/service/wt/leader')
    threading.Thread(target=writer, daemon=True).start()
    got, nmsg = [], 0
    for msg in iter_response_objects(resp):
        res = msg.get('result', {})
        nmsg += 1
        if nmsg == 1:
            p.check(res.get('created') is True, 'first message is the creation: %r' % msg)
        for e in res.get('events', []):
            got.append('%s %s@%s' % (e.get('type', 'PUT'), e['kv']['key'], e['kv']['mod_revision']))
        if len(got) >= 3:
            break
    resp.close()
    resp.release_conn()
    leader = base64.b64encode(b'/service/wt/leader').decode()
    status = base64.b64encode(b'/service/wt/status').decode()
    want = ['PUT %s@%d' % (leader, rev), 'PUT %s@%d' % (status, rev + 1),
            'DELETE %s@%d' % (leader, rev + 2)]
    p.check(got == want, 'patroni watch: %s, want %s' % (got, want))
    return p


def sc_follower(ep, ep_write):
    p = Problems()
    s = Stream(ep)
    s.create(key=b'/fol/', range_end=b'/fol0', watch_id=1)
    expect(p, s, 'created on the follower', watch_id=1, created=True)
    kv = kv_stub(ep_write)
    revs = [put(kv, b'/fol/%d' % i, b'v') for i in range(50)]
    evs, _ = events_until(s, 1, 50, 15)
    p.check(evs == ['/fol/%d@%d' % (i, r) for i, r in enumerate(revs)],
            'follower watcher: %d events %s...' % (len(evs), evs[:3]))
    s.close()
    return p


def sc_refused(ep, code, text):
    p = Problems()
    s = Stream(ep, metadata=[('hasleader', 'true')])
    s.create(key=b'/ref/a', watch_id=1)
    r = s.recv(10)
    ok = isinstance(r, grpc.RpcError) and r.code().name == code and r.details() == text
    p.check(ok, 'want %s "%s", got %s' % (code, text,
                                          '%s "%s"' % (r.code().name, r.details()) if isinstance(r, grpc.RpcError) else show(r)))
    s.close()
    return p


def sc_monitored(ep, ready_file):
    p = Problems()
    s = Stream(ep, metadata=[('hasleader', 'true')])
    s.create(key=b'/mon/a', watch_id=1)
    expect(p, s, 'created with a leader', watch_id=1, created=True)
    open(ready_file, 'w').close()
    t0 = time.time()
    r = s.recv(30)
    while isinstance(r, M['WatchResponse']):
        r = s.recv(max(0.05, 30 - (time.time() - t0)))
    ok = isinstance(r, grpc.RpcError) and r.code().name == 'UNAVAILABLE' and \
        r.details() == 'etcdserver: no leader'
    p.check(ok, 'stream end after the leader loss: %s' %
            ('%s "%s"' % (r.code().name, r.details()) if isinstance(r, grpc.RpcError) else show(r)))
    print('# ended %.1f s after the watch was ready' % (time.time() - t0))
    s.close()
    return p


SCENARIOS = {
    'control': sc_control, 'events': sc_events, 'compact': sc_compact,
    'fragment': sc_fragment, 'progress': sc_progress, 'halfclose': sc_halfclose,
    'slow': sc_slow, 'patroni': sc_patroni, 'follower': sc_follower, 'refused': sc_refused,
    'monitored': sc_monitored,
}


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in SCENARIOS:
        print(__doc__)
        return 2
    try:
        problems = SCENARIOS[sys.argv[1]](*sys.argv[2:])
    except grpc.RpcError as e:
        problems = ['gRPC error: %s %s' % (e.code(), e.details())]
    for x in problems:
        print(x)
    if not problems:
        print('ok')
    sys.stdout.flush()
    os._exit(1 if problems else 0)       # no waiting on grpc's threads


if __name__ == '__main__':
    sys.exit(main())
