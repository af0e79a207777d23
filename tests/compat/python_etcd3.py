#!/usr/bin/python3
"""tests/compat/python_etcd3.py BIN_DIR: Debian's python3-etcd3 (gRPC) against the server under test.

Starts one single-member server (BIN_DIR/cetcd, else BIN_DIR/etcd, or $SERVER_BIN) on free
loopback ports in a temp dir, runs put/get/get_prefix (sorted)/delete/delete_prefix/transaction
(value, version, create, mod compares; success and failure branches)/replace/status/members/
compact against it, asserting values AND metadata (revisions, versions, counts) as etcd 3.4 gives
them on a fresh store (first write is revision 2). TAP-like output, `N passed, M failed` last,
exit 1 on any failure. The server process and temp dir are removed on exit, whatever happens.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
