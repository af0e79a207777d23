#!/usr/bin/python3
"""tests/compat/python_etcd3.py BIN_DIR: Debian's python3-etcd3 (gRPC) against the server under test.

Starts one single-member server (BIN_DIR/cetcd, else BIN_DIR/etcd, or $SERVER_BIN) on free
loopback ports in a temp dir, runs put/get/get_prefix (sorted)/delete/delete_prefix/transaction
(value, version, create, mod compares; success and failure branches)/replace/status/members/
compact against it, asserting values AND metadata (revisions, versions, counts) as etcd 3.4 gives
them on a fresh store (first write is revision 2). Then watches (watch_prefix as iterator and as
callback, start_revision history inclusive with prev_kv, cancel on a raw Watch stream, a compacted
start revision), leases (grant, put with lease, refresh, time_to_live, LeaseLeases, revoke with its
keys gone, chosen and duplicate IDs, minimum and too large TTLs, expiry), etcd3.Lock (a second
client blocks until release; a lock whose lease expires is taken over) and snapshots (snapshot()
into a file object: whole pages plus the SHA-256 of the rest, etcd's own test, the database being
a bbolt file for both servers; the raw Maintenance.Snapshot stream as etcd's: 32 KiB blobs, remaining_bytes
counting down, a final SHA-256 message, on cetcd a header with the store's revision; while another
client writes; a stream cancelled after one message; an auth token refused as etcd 3.4 does). Timing-dependent: the lease
expiry and the lock TTL (2 s leases: must be gone within 15 s, not before 1 s) and remaining TTLs
(50..60 of 60); every wait is bounded (15 s). TAP-like output, `N passed, M failed` last, exit 1
on any failure. The server process and temp dir are removed on exit, whatever happens.
"""
import hashlib
import io
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import etcd3
from etcd3 import etcdrpc
import grpc

PASS = FAIL = NUM = 0


def report(ok, name, detail=''):
    global PASS, FAIL, NUM
    NUM += 1
    if ok:
        PASS += 1
        print('ok %d - %s' % (NUM, name))
    else:
        FAIL += 1
        print('not ok %d - %s' % (NUM, name))
        for line in str(detail).splitlines():
            print('#   ' + line)
    sys.stdout.flush()


def check(name, fn):
    """Runs fn(); it returns None on success or raises/returns a failure description."""
    try:
        res = fn()
        report(res is None, name, res)
    except Exception as e:  # noqa: BLE001 - any exception is a test failure
        report(False, name, '%s: %s' % (type(e).__name__, e))


def eq(actual, expected, what=''):
    if actual != expected:
        raise AssertionError('%s expected %r, got %r' % (what, expected, actual))


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(('127.0.0.1', 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def server_binary(bin_dir):
    if os.environ.get('SERVER_BIN'):
        return os.environ['SERVER_BIN']
    for name in ('cetcd', 'etcd'):
        p = os.path.join(bin_dir, name)
        if os.access(p, os.X_OK):
            return p
    sys.exit('no server binary (cetcd or etcd) in %r' % bin_dir)


def start_server(binary, tmp, cp, pp):
    log = open(os.path.join(tmp, 'server.log'), 'ab')
    args = [binary, '--name', 'py1', '--data-dir', os.path.join(tmp, 'data'),
            '--listen-client-urls', 'http://127.0.0.1:%d' % cp,
            '--advertise-client-urls', 'http://127.0.0.1:%d' % cp,
            '--listen-peer-urls', 'http://127.0.0.1:%d' % pp,
            '--initial-advertise-peer-urls', 'http://127.0.0.1:%d' % pp,
            '--initial-cluster', 'py1=http://127.0.0.1:%d' % pp]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc, 'server exited with %s' % proc.returncode
        try:
            with urllib.request.urlopen('http://127.0.0.1:%d/health' % cp, timeout=2) as r:
                if b'"health":"true"' in r.read().replace(b' ', b''):
                    return proc, None
        except OSError:
            pass
        time.sleep(0.1)
    return proc, 'not healthy after 20 s'


def stop_server(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_tests(c, cp, pp):
    rev = {}

    def t_put():
        r = c.put('py/a', 'va')
        eq(r.header.revision, 2, 'put revision')
        r = c.put('py/b', b'vb')
        eq(r.header.revision, 3, 'second put revision')
        r = c.put('py/a', 'va2', prev_kv=True)
        eq(r.header.revision, 4)
        eq(r.prev_kv.key, b'py/a')
        eq(r.prev_kv.value, b'va')
        eq(r.prev_kv.mod_revision, 2, 'prev_kv mod_revision')
        eq(r.prev_kv.version, 1, 'prev_kv version')
        c.put('py/c', 'vc')      # rev 5
        c.put('py/c', 'vc2')     # rev 6
        c.put('py/c', 'vc3')     # rev 7
        c.put('other', 'x')      # rev 8
        rev['last'] = 8
    check('put (revisions, prev_kv)', t_put)

    def t_get():
        v, m = c.get('py/a')
        eq(v, b'va2')
        eq(m.key, b'py/a')
        eq(m.create_revision, 2, 'create_revision')
        eq(m.mod_revision, 4, 'mod_revision')
        eq(m.version, 2, 'version')
        eq(m.lease_id, 0, 'lease')
        eq(m.response_header.revision, rev['last'], 'header revision')
        eq(c.get('py/missing'), (None, None))
        v, m = c.get('py/c', serializable=True)
        eq((v, m.version, m.create_revision, m.mod_revision), (b'vc3', 3, 5, 7))
    check('get (value, metadata, missing, serializable)', t_get)

    def t_prefix():
        got = [(v, m.key, m.version) for v, m in c.get_prefix('py/')]
        eq(got, [(b'va2', b'py/a', 2), (b'vb', b'py/b', 1), (b'vc3', b'py/c', 3)])
        got = [m.key for _, m in c.get_prefix('py/', sort_order='descend', sort_target='key')]
        eq(got, [b'py/c', b'py/b', b'py/a'], 'descend by key')
        got = [m.key for _, m in c.get_prefix('py/', sort_order='ascend', sort_target='version')]
        eq(got, [b'py/b', b'py/a', b'py/c'], 'ascend by version')
        got = [m.key for _, m in c.get_prefix('py/', sort_order='descend', sort_target='mod')]
        eq(got, [b'py/c', b'py/a', b'py/b'], 'descend by mod')
        got = [m.key for _, m in c.get_prefix('py/', sort_order='descend', sort_target='create')]
        eq(got, [b'py/c', b'py/b', b'py/a'], 'descend by create')
        got = [v for v, _ in c.get_prefix('py/', sort_order='descend', sort_target='value')]
        eq(got, [b'vc3', b'vb', b'va2'], 'descend by value')
        got = [(v, m.key) for v, m in c.get_prefix('py/', keys_only=True)]
        eq(got, [(b'', b'py/a'), (b'', b'py/b'), (b'', b'py/c')], 'keys_only')
        # python3-etcd3 0.12 drops limit/revision: use its generated stub directly
        r = c.kvstub.Range(etcdrpc.RangeRequest(key=b'py/', range_end=b'py0', limit=2), 10)
        eq((len(r.kvs), r.more, r.count), (2, True, 3), 'limit: kvs, more, count')
        got = [m.key for _, m in c.get_range('py/b', 'py/d')]
        eq(got, [b'py/b', b'py/c'], 'get_range')
        got = [m.key for _, m in c.get_all()]
        eq(got, [b'other', b'py/a', b'py/b', b'py/c'], 'get_all')
    check('get_prefix, sorts, limit, range, all', t_prefix)

    def t_txn():
        t = c.transactions
        ok, resp = c.transaction(
            compare=[t.value('py/a') == 'va2', t.version('py/c') == 3, t.version('py/c') > 2,
                     t.create('py/b') == 3, t.create('py/b') < 4, t.mod('py/a') == 4,
                     t.mod('py/a') != 5, t.value('py/b') != 'zz'],
            success=[t.put('py/t', 'ok'), t.get('py/a'), t.delete('py/b')],
            failure=[t.put('py/t', 'failed')])
        eq(ok, True, 'succeeded')
        eq(len(resp), 3, 'responses')
        eq(resp[0].response_put.header.revision, 9, 'txn put revision')
        eq([(v, m.key) for v, m in resp[1]], [(b'va2', b'py/a')], 'txn range')
        eq(resp[2].response_delete_range.deleted, 1, 'txn delete')
        v, m = c.get('py/t')
        eq((v, m.mod_revision, m.create_revision), (b'ok', 9, 9), 'txn put applied at one revision')
        eq(c.get('py/b'), (None, None), 'txn delete applied')
        ok, resp = c.transaction(
            compare=[t.value('py/a') == 'va2', t.version('py/missing') > 0],
            success=[t.put('py/t', 'bad')],
            failure=[t.put('py/f', 'yes'), t.get('py/t')])
        eq(ok, False, 'failure branch')
        eq(resp[0].response_put.header.revision, 10)
        eq([v for v, _ in resp[1]], [b'ok'])
        eq(c.get('py/t')[0], b'ok', 'success branch not applied')
        eq(c.get('py/f')[0], b'yes', 'failure branch applied')
        ok, _ = c.transaction(compare=[t.create('py/new') == 0],
                              success=[t.put('py/new', 'n')], failure=[])
        eq(ok, True, 'create == 0 on a missing key')
        eq(c.put_if_not_exists('py/new', 'again'), False, 'put_if_not_exists on existing key')
    check('transaction (value/version/create/mod; success, failure)', t_txn)

    def t_replace():
        eq(c.replace('py/a', 'va2', 'va3'), True, 'replace matching')
        eq(c.replace('py/a', 'va2', 'va4'), False, 'replace stale')
        eq(c.get('py/a')[0], b'va3')
        eq(c.get('py/a')[1].version, 3, 'version after replace')
    check('replace', t_replace)

    def t_delete():
        eq(c.delete('py/new'), True, 'delete existing')
        eq(c.delete('py/new'), False, 'delete missing')
        r = c.delete('py/a', prev_kv=True, return_response=True)
        eq((r.deleted, r.prev_kvs[0].key, r.prev_kvs[0].value), (1, b'py/a', b'va3'))
        c.put('dp/1', '1')
        c.put('dp/2', '2')
        c.put('dp0', 'not in prefix')
        r = c.delete_prefix('dp/')
        eq(r.deleted, 2, 'delete_prefix count')
        eq([m.key for _, m in c.get_prefix('dp')], [b'dp0'])
    check('delete, delete_prefix', t_delete)

    def t_compact():
        head = c.get('dp0')[1].response_header.revision
        c.compact(5)
        try:
            c.kvstub.Range(etcdrpc.RangeRequest(key=b'py/c', revision=3), 10)
        except etcd3.exceptions.Etcd3Exception as e:
            if 'compacted' not in str(e) and 'OUT_OF_RANGE' not in str(e):
                raise
        except grpc.RpcError as e:
            eq(e.code(), grpc.StatusCode.OUT_OF_RANGE)
        else:
            raise AssertionError('get below the compaction revision succeeded')
        r = c.kvstub.Range(etcdrpc.RangeRequest(key=b'py/c', revision=head), 10)
        eq(r.kvs[0].value, b'vc3')
        r = c.kvstub.Range(etcdrpc.RangeRequest(key=b'py/c', revision=5), 10)
        eq((r.kvs[0].value, r.kvs[0].version), (b'vc', 1), 'read at the compaction revision')
    check('compact, get below compaction fails', t_compact)

    def t_status():
        s = c.status()
        if not s.version or not s.version[0].isdigit():
            raise AssertionError('version %r' % s.version)
        if s.db_size <= 0 or s.raft_index <= 0 or s.raft_term <= 0:
            raise AssertionError('db_size %d raft_index %d raft_term %d'
                                 % (s.db_size, s.raft_index, s.raft_term))
        if s.leader is None:
            raise AssertionError('leader not among members')
        eq(s.leader.name, 'py1', 'leader name')
    check('status', t_status)

    def t_members():
        ms = list(c.members)
        eq(len(ms), 1, 'member count')
        m = ms[0]
        eq(m.name, 'py1')
        eq(list(m.peer_urls), ['http://127.0.0.1:%d' % pp])
        eq(list(m.client_urls), ['http://127.0.0.1:%d' % cp])
        if m.id == 0:
            raise AssertionError('member id 0')
    check('members', t_members)

    def t_hash():
        h1 = c.hash()
        h2 = c.hash()
        eq(h1, h2, 'hash stable without writes')
    check('hash', t_hash)


# --- watches, leases, locks -------------------------------------------------------------------
# Watch and lock tests use clients of their own and close them: python3-etcd3's watch thread
# re-opens its stream in a tight loop after an error (e.g. UNIMPLEMENTED) until its channel is
# closed, and then dies with "Channel closed" (silenced by quiet_closed_watch_threads). Every wait is bounded: a
# watch iterator is cancelled by a timer, queues and threads are waited on with timeouts.

WAIT = 15  # seconds: upper bound of every wait for an event, an expiry or a lock


def quiet_closed_watch_threads():
    default = threading.excepthook

    def hook(args):
        if (args.thread is not None and args.thread.name.startswith('etcd3_watch_')
                and args.exc_type is ValueError and 'closed' in str(args.exc_value).lower()):
            return
        default(args)
    threading.excepthook = hook


def new_client(cp):
    return etcd3.client(host='127.0.0.1', port=cp, timeout=10)


def head(c):
    return c.get_response('_').header.revision


def take(events, n, cancel):
    """The first n items of a watch iterator, or fewer if WAIT seconds pass (cancel ends it)."""
    timer = threading.Timer(WAIT, cancel)
    timer.start()
    got = []
    try:
        for e in events:
            got.append(e)
            if len(got) == n:
                break
    finally:
        timer.cancel()
        cancel()
    return got


def ev_tuple(e):
    return (type(e).__name__, e.key, e.value, e.create_revision, e.mod_revision, e.version)


def grpc_code(fn):
    """Calls fn; returns (status code, details) of the grpc.RpcError it raises."""
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError('no error raised')


def lease_ids(c):
    return {x.ID for x in c.leasestub.LeaseLeases(etcdrpc.LeaseLeasesRequest(), 10).leases}


def run_watch_tests(c, cp):
    w = new_client(cp)
    rev = {}

    def t_watch_prefix_iter():
        events, cancel = w.watch_prefix('pw/')   # returns once the server confirmed the watch
        b = rev['base'] = head(c)
        c.put('pw/a', '1')        # b+1
        c.put('pwx', 'outside')   # b+2
        c.put('pw/b', '2')        # b+3
        c.put('pw/a', '3')        # b+4
        c.delete('pw/a')          # b+5
        got = [ev_tuple(e) for e in take(events, 4, cancel)]
        eq(got, [('PutEvent', b'pw/a', b'1', b + 1, b + 1, 1),
                 ('PutEvent', b'pw/b', b'2', b + 3, b + 3, 1),
                 ('PutEvent', b'pw/a', b'3', b + 1, b + 4, 2),
                 ('DeleteEvent', b'pw/a', b'', 0, b + 5, 0)], 'events')

    def t_watch_callback():
        q = queue.Queue()
        wid = w.add_watch_prefix_callback('pc/', q.put)
        b = head(c)
        c.put('pc/x', 'v1')
        c.put('pc/x', 'v2', prev_kv=True)
        evs, headers = [], []
        while len(evs) < 2:
            r = q.get(timeout=WAIT)
            if isinstance(r, Exception):
                raise r
            headers.append(r.header.revision)
            evs.extend(r.events)
        eq([ev_tuple(e) for e in evs], [('PutEvent', b'pc/x', b'v1', b + 1, b + 1, 1),
                                        ('PutEvent', b'pc/x', b'v2', b + 1, b + 2, 2)])
        if headers[-1] < b + 2:
            raise AssertionError('response header revision %d < event revision %d'
                                 % (headers[-1], b + 2))
        w.cancel_watch(wid)

    def t_watch_start_revision():
        b = rev['base']
        events, cancel = w.watch_prefix('pw/', start_revision=b + 3)
        got = [ev_tuple(e) for e in take(events, 3, cancel)]
        eq(got, [('PutEvent', b'pw/b', b'2', b + 3, b + 3, 1),
                 ('PutEvent', b'pw/a', b'3', b + 1, b + 4, 2),
                 ('DeleteEvent', b'pw/a', b'', 0, b + 5, 0)], 'history from start_revision')
        events, cancel = w.watch('pw/a', start_revision=b + 1, prev_kv=True)
        got = take(events, 3, cancel)
        eq([(e.value, e.mod_revision, e.prev_value, e.prev_mod_revision) for e in got],
           [(b'1', b + 1, b'', 0), (b'3', b + 4, b'1', b + 1), (b'', b + 5, b'3', b + 4)],
           'single key history with prev_kv')

    def t_watch_cancel_raw():
        # the raw Watch stream: watch IDs, the canceled response, no events after a cancel
        reqs = queue.Queue()

        def it():
            while True:
                r = reqs.get()
                if r is None:
                    return
                yield r
        stream = etcdrpc.WatchStub(w.channel).Watch(it(), timeout=WAIT)
        try:
            create = etcdrpc.WatchCreateRequest
            reqs.put(etcdrpc.WatchRequest(create_request=create(key=b'pr/a')))
            r1 = next(stream)
            reqs.put(etcdrpc.WatchRequest(create_request=create(key=b'pr/b')))
            r2 = next(stream)
            eq((r1.created, r1.watch_id, r2.created, r2.watch_id), (True, 0, True, 1),
               'created responses (etcd numbers the watches of a stream from 0)')
            reqs.put(etcdrpc.WatchRequest(
                cancel_request=etcdrpc.WatchCancelRequest(watch_id=r1.watch_id)))
            r = next(stream)
            eq((r.canceled, r.watch_id, len(r.events)), (True, r1.watch_id, 0), 'canceled response')
            b = head(c)
            c.put('pr/a', 'x')     # b+1: its watch is canceled
            c.put('pr/b', 'y')     # b+2: responses of one stream come in revision order
            r = next(stream)
            eq((r.watch_id, [(e.kv.key, e.kv.mod_revision) for e in r.events]),
               (r2.watch_id, [(b'pr/b', b + 2)]), 'first response after the cancel')
        finally:
            reqs.put(None)
            stream.cancel()

    def t_watch_compacted():
        b = rev['base']
        c.compact(b + 3)
        events, cancel = w.watch_prefix('pw/', start_revision=b + 1)
        try:
            take(events, 1, cancel)
        except etcd3.exceptions.RevisionCompactedError as e:
            eq(e.compacted_revision, b + 3, 'compacted_revision')
        else:
            raise AssertionError('no RevisionCompactedError')

    try:
        check('watch_prefix (iterator): put/put/put/delete, outside key skipped',
              t_watch_prefix_iter)
        check('add_watch_prefix_callback: responses with events, cancel_watch', t_watch_callback)
        check('watch with start_revision: history, inclusive, prev_kv', t_watch_start_revision)
        check('Watch stream: watch IDs, cancel response, no event after cancel',
              t_watch_cancel_raw)
        check('watch below the compaction: created, then RevisionCompactedError',
              t_watch_compacted)
    finally:
        w.close()


def run_lease_tests(c, cp):
    def t_lease():
        lease = c.lease(60)
        if lease.id <= 0:
            raise AssertionError('lease id %d' % lease.id)
        eq(lease.ttl, 60, 'granted TTL')
        c.put('pl/a', 'a', lease=lease)
        c.put('pl/b', 'b', lease=lease.id)
        eq(c.get('pl/a')[1].lease_id, lease.id, 'key metadata lease')
        r = lease.refresh()
        eq([(x.ID, x.TTL) for x in r], [(lease.id, 60)], 'refresh (LeaseKeepAlive)')
        info = c.get_lease_info(lease.id)
        eq((info.ID, info.grantedTTL, sorted(info.keys)), (lease.id, 60, [b'pl/a', b'pl/b']),
           'time_to_live')
        if not 50 <= info.TTL <= 60:
            raise AssertionError('remaining TTL %d' % info.TTL)
        eq((lease.granted_ttl, sorted(lease.keys)), (60, [b'pl/a', b'pl/b']), 'Lease properties')
        ids = [x.ID for x in c.leasestub.LeaseLeases(etcdrpc.LeaseLeasesRequest(), 10).leases]
        if lease.id not in ids:
            raise AssertionError('lease %d not in LeaseLeases %r' % (lease.id, ids))
        b = head(c)
        lease.revoke()
        eq((c.get('pl/a'), c.get('pl/b')), ((None, None), (None, None)), 'keys gone')
        eq(head(c), b + 1, 'revoke deletes the keys at one revision')
        info = c.get_lease_info(lease.id)
        eq((info.ID, info.TTL, info.grantedTTL, list(info.keys)), (lease.id, -1, 0, []),
           'time_to_live of a revoked lease')
        eq([(x.ID, x.TTL) for x in lease.refresh()], [(lease.id, 0)],
           'refresh of a revoked lease: TTL 0, no error')
        nf = (grpc.StatusCode.NOT_FOUND, 'etcdserver: requested lease not found')
        eq(grpc_code(lease.revoke), nf, 'revoke again')
        eq(grpc_code(lambda: c.put('pl/c', 'c', lease=lease)), nf, 'put with a revoked lease')
    check('lease: grant, put, refresh, time_to_live, leases, revoke (keys gone)', t_lease)

    def t_lease_ids_and_limits():
        lease = c.lease(30, lease_id=0x7777)
        eq((lease.id, lease.ttl), (0x7777, 30), 'lease with a chosen ID')
        eq(grpc_code(lambda: c.leasestub.LeaseGrant(
            etcdrpc.LeaseGrantRequest(TTL=30, ID=0x7777), 10)),
            (grpc.StatusCode.FAILED_PRECONDITION, 'etcdserver: lease already exists'), 'same ID again')
        try:
            c.lease(30, lease_id=0x7777)
        except etcd3.exceptions.PreconditionFailedError:
            pass
        else:
            raise AssertionError('client.lease with a taken ID did not fail')
        c.revoke_lease(0x7777)
        eq(c.lease(1).ttl, 2, 'TTL below the minimum is raised to it')
        eq(grpc_code(lambda: c.lease(10 ** 11)),
           (grpc.StatusCode.OUT_OF_RANGE, 'etcdserver: too large lease TTL'), 'too large TTL')
    check('lease: chosen ID, duplicate ID, minimum TTL, too large TTL', t_lease_ids_and_limits)

    def t_lease_expiry():
        t0 = time.monotonic()
        lease = c.lease(2)
        c.put('pl/exp', 'v', lease=lease)
        while c.get('pl/exp')[0] is not None:
            if time.monotonic() - t0 > WAIT:
                raise AssertionError('leased key still there after %d s' % WAIT)
            time.sleep(0.1)
        el = time.monotonic() - t0
        if el < 1.0:
            raise AssertionError('leased key gone after %.2f s, TTL is 2 s' % el)
        eq(c.get_lease_info(lease.id).TTL, -1, 'expired lease TTL')
        print('# leased key expired after %.2f s' % el)
    check('lease expiry deletes the key (TTL 2 s, bounded poll)', t_lease_expiry)


def acquire_waiting(lock, timeout):
    """etcd3.Lock.acquire's own steps, for a lock that is held: Debian's python3-etcd3 0.12 cannot
    wait (its tenacity wait callback has the pre-5.0 signature: TypeError with tenacity 8). Grant a
    lease; txn create(key) == 0 -> put key=uuid with the lease, else get key; on failure
    watch_once(key) and retry, until timeout. Returns True when acquired."""
    ec = lock.etcd_client
    deadline = time.monotonic() + timeout
    while True:
        lock.lease = ec.lease(lock.ttl)
        ok, _ = ec.transaction(
            compare=[ec.transactions.create(lock.key) == 0],
            success=[ec.transactions.put(lock.key, lock.uuid, lease=lock.lease)],
            failure=[ec.transactions.get(lock.key)])
        if ok:
            return True
        lock.lease = None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            ec.watch_once(lock.key, remaining)
        except etcd3.exceptions.WatchTimedOut:
            pass


def run_lock_tests(c, cp):
    c1, c2 = new_client(cp), new_client(cp)

    def t_lock():
        lk = c1.lock('pylock', ttl=60)
        eq(lk.acquire(timeout=5), True, 'acquire')
        eq(lk.is_acquired(), True, 'is_acquired')
        v, m = c.get('/locks/pylock')
        eq((v, m.lease_id), (lk.uuid, lk.lease.id), 'lock key holds uuid, with the lease')
        other = c2.lock('pylock', ttl=60)
        eq(acquire_waiting(other, 1), False, 'second client, held lock, 1 s timeout')
        eq([(x.ID, x.TTL) for x in lk.refresh()], [(lk.lease.id, 60)], 'refresh')
        before = lease_ids(c)
        res = {}

        def waiter():
            res['ok'] = acquire_waiting(other, WAIT)
            res['at'] = time.monotonic()
        th = threading.Thread(target=waiter, daemon=True)
        th.start()
        # each attempt grants a lease: once one more exists, the waiter has tried and is blocking
        deadline = time.monotonic() + WAIT
        while lease_ids(c) <= before:
            if time.monotonic() > deadline:
                raise AssertionError('the waiting client never tried')
            time.sleep(0.05)
        eq(th.is_alive(), True, 'second client blocks while the lock is held')
        released = time.monotonic()
        eq(lk.release(), True, 'release')
        th.join(WAIT + 5)
        eq(res.get('ok'), True, 'second client acquired after the release')
        if res['at'] < released:
            raise AssertionError('second client acquired before the release')
        eq(other.is_acquired(), True)
        eq(other.release(), True)
        eq(lk.acquire(timeout=5), True, 'acquire (etcd3.Lock.acquire) again after release')
        eq(lk.release(), True)
        eq(lk.release(), False, 'release of a lock not held')

    def t_lock_ttl():
        short = c1.lock('pylock2', ttl=2)
        eq(short.acquire(timeout=5), True, 'acquire with TTL 2')
        t0 = time.monotonic()
        other = c2.lock('pylock2', ttl=60)
        eq(acquire_waiting(other, WAIT), True, 'second client acquires once the TTL expired')
        el = time.monotonic() - t0
        if el < 1.0:
            raise AssertionError('acquired after %.2f s: the 2 s lease cannot have expired' % el)
        eq(short.is_acquired(), False, 'first holder lost it')
        eq(other.release(), True)
        print('# lock with TTL 2 taken over after %.2f s' % el)

    try:
        check('Lock: acquire, second client blocks until release', t_lock)
        check('Lock with TTL: expiry releases it', t_lock_ttl)
    finally:
        c1.close()
        c2.close()


def is_real_etcd(binary):
    return os.path.basename(os.path.realpath(binary)) == 'etcd'


def snapshot_problem(data, kind):
    """None if data is a snapshot file of the given kind, else what is wrong."""
    if len(data) < 4096 + 32 or len(data) % 512 != 32:
        return 'size %d: not whole pages plus a sha256' % len(data)
    if hashlib.sha256(data[:-32]).digest() != data[-32:]:
        return 'trailing sha256 does not match the content'
    magic = int.from_bytes(data[16:20], 'little')
    got = {0xED0CDAED: 'bbolt', 0xBEEFC0DE: 'lmdb'}.get(magic, 'unknown %#x' % magic)
    return None if got == kind else 'database kind %s, expected %s' % (got, kind)


def run_snapshot_tests(c, cp, binary):
    real = is_real_etcd(binary)
    kind = 'bbolt'                       # cetcd streams etcd 3.4's format too

    def t_snapshot():
        for i in range(20):
            c.put('snap/%02d' % i, 'v%02d' % i * 5000)
        f = io.BytesIO()
        c.snapshot(f)
        return snapshot_problem(f.getvalue(), kind)

    def t_stream():
        rev = head(c)
        msgs = list(c.maintenancestub.Snapshot(etcdrpc.SnapshotRequest(), 30))
        data = b''.join(m.blob for m in msgs[:-1])
        sent = 0
        for i, m in enumerate(msgs[:-1]):
            sent += len(m.blob)
            if i < len(msgs) - 2:
                eq(len(m.blob), 32768, 'message %d size' % i)
            eq(m.remaining_bytes, len(data) - sent, 'message %d remaining_bytes' % i)
        eq((msgs[-1].remaining_bytes, msgs[-1].blob), (0, hashlib.sha256(data).digest()),
           'final message')
        headers = {m.header.revision if m.HasField('header') else None for m in msgs}
        eq(headers, {None} if real else {rev}, 'header revisions (etcd 3.4: no header)')
        return snapshot_problem(data + msgs[-1].blob, kind)

    def t_while_writing():
        errors = []

        def writer():
            w = new_client(cp)
            try:
                for i in range(300):
                    w.put('snapw/%03d' % i, 'x' * 1000)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
            finally:
                w.close()
        th = threading.Thread(target=writer)
        th.start()
        files = []
        for _ in range(3):
            f = io.BytesIO()
            c.snapshot(f)
            files.append(f.getvalue())
        th.join(30)
        eq(errors, [], 'writer errors')
        eq(c.get('snapw/299')[0], b'x' * 1000, 'last write')
        for d in files:
            p = snapshot_problem(d, kind)
            if p:
                return p
        return None

    def t_cancel():
        it = c.maintenancestub.Snapshot(etcdrpc.SnapshotRequest(), 30)
        first = next(it)
        it.cancel()
        eq(len(first.blob), 32768, 'first message')
        eq(c.get('snap/00')[0], b'v00' * 5000, 'get after a cancelled snapshot')
        f = io.BytesIO()
        c.snapshot(f)
        return snapshot_problem(f.getvalue(), kind)

    def t_token():
        eq(grpc_code(lambda: list(c.maintenancestub.Snapshot(
            etcdrpc.SnapshotRequest(), 10, metadata=[('token', 'bogus')]))),
           (grpc.StatusCode.UNKNOWN, 'auth: invalid auth token'))

    check('snapshot(): whole pages + sha256, a bbolt file', t_snapshot)
    check('Snapshot stream: 32 KiB blobs, remaining_bytes, final sha256, header', t_stream)
    check('snapshots while another client writes', t_while_writing)
    check('Snapshot stream cancelled after one message', t_cancel)
    check('Snapshot with an auth token: etcd 3.4\'s error', t_token)


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else 'bin'
    binary = server_binary(bin_dir)
    print('# server under test: %s' % binary)
    tmp = tempfile.mkdtemp(prefix='cetcd-py.')
    proc = None
    try:
        cp, pp = free_ports(2)
        proc, err = start_server(binary, tmp, cp, pp)
        report(err is None, 'server starts', err or '')
        if err is None:
            c = etcd3.client(host='127.0.0.1', port=cp, timeout=10)
            run_tests(c, cp, pp)
            quiet_closed_watch_threads()
            run_watch_tests(c, cp)
            run_lease_tests(c, cp)
            run_lock_tests(c, cp)
            run_snapshot_tests(c, cp, binary)
            c.close()
    finally:
        if proc is not None:
            stop_server(proc)
        if FAIL and os.environ.get('KEEP_TMP'):
            print('# kept %s' % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print('%d passed, %d failed' % (PASS, FAIL))
    return 1 if FAIL else 0


if __name__ == '__main__':
    sys.exit(main())
