#!/usr/bin/python3
"""Watch guarantees under faults: the client half of watch_guarantees.sh (issue 4).

usage: watch_guarantees.py --endpoints H:P,H:P,H:P --dir DIR --seed N [--duration S] [--pace S]
                           [--wait-cluster S]

The shell starts a 3-member cluster, starts this client, and kills -9 / restarts members and
moves the leader while it runs. Phases:
  1. probe: one Watch stream on the first member must answer `created` (else the Watch service is
     missing, e.g. UNIMPLEMENTED: one failed check, exit 1); else DIR/load_started is created.
  2. load (DURATION s): WRITERS writer threads (gRPC KV: puts, single-key deletes, prefix deletes,
     txns whose compare picks a branch) over KEYS, each value unique ("w<writer>-<seq>"), paced
     PACE s apart; a writer records every acknowledged op with its response (header.revision,
     deleted counts, txn branch); an op whose RPC failed has an unknown outcome and is never
     retried with the same value (the next op gets a new value), and the writer moves to the next
     member. At the same time the watch groups of WATCH_GROUPS run (one gRPC stream each, several
     watchers on one stream, key / prefix / range / from-key, with and without prev_kv, NOPUT /
     NODELETE, start now / at revision 1 / at a past revision, some created mid-load), each on its
     own member; a broken stream reconnects to the next live member and recreates every watcher
     from the revision after the last event it received (start revision while it has none).
     A watcher created with start_revision 0 starts at its `created` response's header.revision
     + 1 (etcd: the member's revision when the watch was created, so nothing after it is missed).
     When the writers stop, DIR/load_done is created.
  3. waits (bounded) for DIR/cluster_ok: the shell has restarted every member and seen a leader.
  4. final: a linearizable Range of every key gives R and the final state; the history is read
     once as a watch from revision 1 over every key with prev_kv on the first member, up to R;
     each watcher is awaited (bounded) until it has received every event of its filtered history
     up to R, then every stream is closed.
  5. checks, one line each in DIR/results: "ok<TAB>name" or "fail<TAB>name<TAB>detail" (detail
     parts joined by " | "):
     - the history: revisions 2..R each present, mod_revision/create_revision/version follow
       from the previous version of the key, its prev_kv equals that previous version, every put
       value was written by a writer, replaying it gives exactly the final Range;
     - every acknowledged op: the events at its revision are exactly its own (a put, a delete,
       the deleted keys of a prefix in key order, the chosen txn branch in op order); a delete
       that deleted nothing saw no such key at its revision; a txn's branch matches its compare
       against the history just before its revision;
     - every watcher: its events equal its filtered history from its start revision to R,
       element by element (so ordered by (mod_revision, position), no duplicates, no gaps), with
       prev_kv equal to the key's previous version when asked for and absent otherwise; no
       response carries events above its header revision or is canceled;
     - the faults broke at least one watch stream, and it resumed.
Randomness: writer i uses random.Random(SEED * 1000 + i); the same SEED replays the same op
sequence (timing, and so the interleaving, still varies).
Invariants: every loop is bounded by a deadline; the process ends its own threads and channels.
Exit: 0 all checks passed, 1 a check failed, 2 bad usage or setup.
"""
import argparse
import os
import queue
import random
import sys
import threading
import time

import grpc
from etcd3.etcdrpc import kv_pb2, rpc_pb2, rpc_pb2_grpc

PUT, DELETE = kv_pb2.Event.PUT, kv_pb2.Event.DELETE
NOPUT = rpc_pb2.WatchCreateRequest.NOPUT
NODELETE = rpc_pb2.WatchCreateRequest.NODELETE
PREFIXES = [b'wg/a/', b'wg/b/', b'wg/c/']
KEYS = [p + str(i).encode() for p in PREFIXES for i in range(6)]
WRITERS = 3
RPC_TIMEOUT = 5.0
ALL = b'\0'  # as range_end: every key >= key


def prefix_end(p):
    return p[:-1] + bytes([p[-1] + 1])


class Spec:
    """One watcher's request: KEY/RANGE_END as etcd (RANGE_END b'\\0' = from key), START 0 (now),
    a positive revision, or -N (N revisions before the member's current revision)."""

    def __init__(self, name, key, range_end=b'', prev_kv=False, filters=(), start=0):
        self.name, self.key, self.range_end = name, key, range_end
        self.prev_kv, self.filters, self.start = prev_kv, tuple(filters), start

    def matches(self, typ, key):
        if (typ == PUT and NOPUT in self.filters) or (typ == DELETE and NODELETE in self.filters):
            return False
        if not self.range_end:
            return key == self.key
        if self.range_end == ALL:
            return key >= self.key
        return self.key <= key < self.range_end

    def describe(self):
        if not self.range_end:
            what = 'key %s' % self.key.decode()
        elif self.range_end == ALL:
            what = 'from-key %s' % self.key.decode()
        elif self.range_end == prefix_end(self.key):
            what = 'prefix %s' % self.key.decode()
        else:
            what = 'range [%s, %s)' % (self.key.decode(), self.range_end.decode())
        extra = ['prev_kv'] if self.prev_kv else []
        extra += [{NOPUT: 'NOPUT', NODELETE: 'NODELETE'}[f] for f in self.filters]
        start = {0: 'now', 1: 'rev 1'}.get(self.start, 'rev now-%d' % -self.start)
        return '%s, %s, start %s' % (what, '+'.join(extra) or 'no prev_kv', start)


# (preferred member index, delay as a fraction of DURATION, watchers on the one stream)
WATCH_GROUPS = [
    (0, 0.0, [Spec('key-a1', b'wg/a/1'),
              Spec('prefix-a', b'wg/a/', prefix_end(b'wg/a/'), prev_kv=True)]),
    (1, 0.0, [Spec('key-b2', b'wg/b/2', prev_kv=True)]),
    (2, 0.0, [Spec('range-nodelete', b'wg/a/3', b'wg/c/2', prev_kv=True, filters=[NODELETE])]),
    (1, 0.1, [Spec('prefix-c-noput', b'wg/c/', prefix_end(b'wg/c/'), prev_kv=True, filters=[NOPUT]),
              Spec('prefix-b-noput-nodelete', b'wg/b/', prefix_end(b'wg/b/'),
                   filters=[NOPUT, NODELETE])]),
    (2, 0.3, [Spec('all-from-1', b'wg/', prefix_end(b'wg/'), start=1)]),
    (0, 0.5, [Spec('fromkey-b-past', b'wg/b/', ALL, prev_kv=True, start=-200)]),
]


def log(msg):
    print('# %s %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


def kv_tuple(kv):
    return (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def event_tuple(e):
    """(mod_revision, type, key, value, create_revision, version, lease, prev or None)."""
    prev = kv_tuple(e.prev_kv) if e.HasField('prev_kv') else None
    kv = e.kv
    return (kv.mod_revision, e.type, kv.key, kv.value, kv.create_revision, kv.version, kv.lease, prev)


def show(ev):
    if ev is None:
        return '-'
    rev, typ, key, value, cre, ver, _, prev = ev
    p = ('%s@%d' % (prev[1].decode(), prev[3])) if prev else 'none'
    return '%d %s %s=%s c%d v%d prev=%s' % (rev, 'PUT' if typ == PUT else 'DEL', key.decode(),
                                            value.decode(), cre, ver, p)


# --- watchers ------------------------------------------------------------------------------------

class StreamEnd(Exception):
    """A watch stream ended without a gRPC error (connect timeout, protocol surprise, EOF)."""


class Watcher:
    """State of one watcher across streams. next_rev is the revision to resume from (None until
    the first `created`); start the first revision it must see."""

    def __init__(self, spec, preferred):
        self.spec, self.preferred = spec, preferred
        self.start = self.next_rev = None
        self.events, self.problems, self.members = [], [], []
        self.creates = self.responses = self.last_wanted = 0

    def create_request(self, start_rev):
        s = self.spec
        c = rpc_pb2.WatchCreateRequest(key=s.key, range_end=s.range_end, start_revision=start_rev,
                                       prev_kv=s.prev_kv, filters=list(s.filters))
        return rpc_pb2.WatchRequest(create_request=c)

    def on_created(self, resp, start_rev, member):
        self.creates += 1
        self.members.append(member)
        if self.start is None:
            self.start = start_rev if start_rev > 0 else resp.header.revision + 1
            self.next_rev = self.start

    def on_events(self, resp):
        self.responses += 1
        if resp.canceled:
            self.problems.append('canceled at next rev %s: %r' % (self.next_rev, resp.cancel_reason))
        for e in resp.events:
            ev = event_tuple(e)
            if ev[0] > resp.header.revision:
                self.problems.append('event %s above its header revision %d' % (
                    show(ev), resp.header.revision))
            self.events.append(ev)
        if resp.events:
            self.next_rev = resp.events[-1].kv.mod_revision + 1


class WatchGroup(threading.Thread):
    """One stream carrying WATCHERS, on the preferred member first, then the next one after a
    break; runs until stop()."""

    def __init__(self, endpoints, member, delay, watchers, deadline):
        super().__init__(daemon=True)
        self.endpoints, self.member, self.delay = endpoints, member, delay
        self.watchers, self.deadline = watchers, deadline
        self.stopping = threading.Event()
        self.call = None
        self.breaks = 0
        self.errors = []

    def stop(self):
        self.stopping.set()
        call = self.call
        if call is not None:
            call.cancel()

    def run(self):
        if self.stopping.wait(self.delay):
            return
        member = self.member
        while not self.stopping.is_set() and time.time() < self.deadline:
            try:
                self.session(member)
            except grpc.RpcError as e:
                if not self.stopping.is_set():
                    self.note_break(member, '%s %s' % (e.code(), e.details()))
            except StreamEnd as e:
                self.note_break(member, str(e))
            if self.stopping.wait(0.1):
                break
            member = (member + 1) % len(self.endpoints)

    def note_break(self, member, why):
        self.breaks += 1
        if len(self.errors) < 20:
            self.errors.append('c%d: %s' % (member + 1, why))

    def session(self, member):
        ch = grpc.insecure_channel(self.endpoints[member])
        reqs = queue.Queue()
        try:
            try:
                grpc.channel_ready_future(ch).result(timeout=2)
            except grpc.FutureTimeoutError:
                raise StreamEnd('connect timeout')
            self.call = rpc_pb2_grpc.WatchStub(ch).Watch(request_stream(reqs, self.stopping))
            if self.stopping.is_set():
                self.call.cancel()
            self.serve(self.call, reqs, member)
        finally:
            reqs.put(None)
            self.call = None
            ch.close()

    def serve(self, call, reqs, member):
        pending = list(self.watchers)
        by_id = {}

        def send_next():
            w = pending[0]
            start_rev = w.next_rev if w.next_rev is not None else self.first_start(w, member)
            reqs.put(w.create_request(start_rev))
            return start_rev

        start_rev = send_next()
        for resp in call:
            if resp.created:
                if not pending:
                    raise StreamEnd('unexpected created response %d' % resp.watch_id)
                w = pending.pop(0)
                by_id[resp.watch_id] = w
                w.on_created(resp, start_rev, member)
                if pending:
                    start_rev = send_next()
            w = by_id.get(resp.watch_id)
            if w is None:
                raise StreamEnd('response for unknown watch id %d' % resp.watch_id)
            if resp.events or resp.canceled:
                w.on_events(resp)
        raise StreamEnd('stream ended by the server')

    def first_start(self, w, member):
        """The first start revision of W: its spec's, or N revisions before the member's now."""
        if w.spec.start >= 0:
            return w.spec.start
        ch = grpc.insecure_channel(self.endpoints[member])
        try:
            r = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b'wg/', count_only=True),
                                              timeout=RPC_TIMEOUT)
        finally:
            ch.close()
        return max(1, r.header.revision + w.spec.start)


def request_stream(reqs, stopping):
    """The request side of a Watch stream: yields queued requests until None or stop."""
    deadline = time.time() + 3600
    while time.time() < deadline:
        try:
            r = reqs.get(timeout=0.2)
        except queue.Empty:
            if stopping.is_set():
                return
            continue
        if r is None:
            return
        yield r


# --- writers -------------------------------------------------------------------------------------

class Writer(threading.Thread):
    """Writes random ops until DEADLINE; ACKED holds (op, result) pairs, UNKNOWN the failed ops,
    VALUES every value it ever sent."""

    def __init__(self, wid, endpoints, seed, deadline, pace):
        super().__init__(daemon=True)
        self.wid, self.endpoints, self.deadline, self.pace = wid, endpoints, deadline, pace
        self.rng = random.Random(seed * 1000 + wid)
        self.member = wid % len(endpoints)
        self.stub = None
        self.channel = None
        self.seq = 0
        self.acked, self.unknown, self.values, self.errors = [], [], set(), {}

    def value(self):
        self.seq += 1
        v = ('w%d-%d' % (self.wid, self.seq)).encode()
        self.values.add(v)
        return v

    def make_op(self):
        r, rng = self.rng.random(), self.rng
        if r < 0.50:
            return ('put', rng.choice(KEYS), self.value())
        if r < 0.65:
            return ('del', rng.choice(KEYS))
        if r < 0.70:
            return ('delprefix', rng.choice(PREFIXES))
        k1, k2, k3 = rng.sample(KEYS, 3)
        return ('txn', rng.choice(KEYS), [(k1, self.value()), (k2, self.value())], k3,
                (rng.choice(KEYS), self.value()))

    def connect(self):
        if self.stub is None:
            self.channel = grpc.insecure_channel(self.endpoints[self.member])
            self.stub = rpc_pb2_grpc.KVStub(self.channel)
        return self.stub

    def drop(self):
        if self.channel is not None:
            self.channel.close()
        self.channel = self.stub = None
        self.member = (self.member + 1) % len(self.endpoints)

    def run(self):
        limit = int((self.deadline - time.time()) / max(self.pace, 0.001)) + 1
        for _ in range(limit):
            if time.time() >= self.deadline:
                break
            op = self.make_op()
            try:
                self.acked.append((op, do_op(self.connect(), op)))
            except grpc.RpcError as e:
                self.unknown.append(op)
                code = str(e.code())
                self.errors[code] = self.errors.get(code, 0) + 1
                self.drop()
            time.sleep(self.pace)
        self.drop()


def do_op(stub, op):
    """Runs OP; returns (revision, deleted count or txn succeeded, txn deleted count)."""
    kind = op[0]
    if kind == 'put':
        r = stub.Put(rpc_pb2.PutRequest(key=op[1], value=op[2]), timeout=RPC_TIMEOUT)
        return (r.header.revision, None, None)
    if kind == 'del':
        r = stub.DeleteRange(rpc_pb2.DeleteRangeRequest(key=op[1]), timeout=RPC_TIMEOUT)
        return (r.header.revision, r.deleted, None)
    if kind == 'delprefix':
        r = stub.DeleteRange(rpc_pb2.DeleteRangeRequest(key=op[1], range_end=prefix_end(op[1])),
                             timeout=RPC_TIMEOUT)
        return (r.header.revision, r.deleted, None)
    _, ck, puts, dk, fput = op
    cmp = rpc_pb2.Compare(result=rpc_pb2.Compare.GREATER, target=rpc_pb2.Compare.VERSION, key=ck,
                          version=0)
    succ = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=v)) for k, v in puts]
    succ.append(rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=dk)))
    fail = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=fput[0], value=fput[1]))]
    r = stub.Txn(rpc_pb2.TxnRequest(compare=[cmp], success=succ, failure=fail), timeout=RPC_TIMEOUT)
    deleted = r.responses[2].response_delete_range.deleted if r.succeeded else None
    return (r.header.revision, r.succeeded, deleted)


# --- final reads ---------------------------------------------------------------------------------

def final_range(endpoints, deadline):
    """A linearizable range of every key from the first member that answers: (R, {key: kv})."""
    i = 0
    while time.time() < deadline:
        ch = grpc.insecure_channel(endpoints[i % len(endpoints)])
        try:
            r = rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=ALL, range_end=ALL),
                                              timeout=RPC_TIMEOUT)
            return r.header.revision, {kv.key: kv_tuple(kv) for kv in r.kvs}
        except grpc.RpcError as e:
            log('final range on %s: %s' % (endpoints[i % len(endpoints)], e.code()))
        finally:
            ch.close()
        i += 1
        time.sleep(0.2)
    return None, None


def wait_until(pred, deadline):
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def read_history(endpoints, R, deadline):
    """Every event up to R, from a watch from revision 1 over every key with prev_kv on the
    first member (resuming on another one if the stream breaks)."""
    w = Watcher(Spec('history', ALL, ALL, prev_kv=True, start=1), 0)
    g = WatchGroup(endpoints, 0, 0, [w], deadline)
    g.start()
    done = wait_until(lambda: w.next_rev is not None and w.next_rev > R, deadline)
    g.stop()
    g.join(5)
    return (w.events if done else None), w, g


# --- checks --------------------------------------------------------------------------------------

class Results:
    def __init__(self, path):
        self.f = open(path, 'w')
        self.failed = 0

    def check(self, name, problems):
        if problems:
            self.failed += 1
            detail = ' | '.join(p.replace('\t', ' ').replace('\n', ' ') for p in problems[:12])
            if len(problems) > 12:
                detail += ' | ... %d problems in all' % len(problems)
            self.f.write('fail\t%s\t%s\n' % (name, detail))
        else:
            self.f.write('ok\t%s\n' % name)
        self.f.flush()


def brief(evs):
    """(type, key, value) triples as text."""
    return '[%s]' % ', '.join(('PUT %s=%s' % (k.decode(), v.decode())) if t == PUT
                              else 'DEL ' + k.decode() for t, k, v in evs)


def by_revision(history):
    revs = {}
    for ev in history:
        revs.setdefault(ev[0], []).append(ev)
    return revs


def check_history(history, R, final, values):
    """History self-consistency; returns (problems, history with prev from the replay)."""
    problems, state, out = [], {}, []
    revs = by_revision(history)
    missing = [r for r in range(2, R + 1) if r not in revs]
    if missing:
        problems.append('revisions without events: %s' % missing[:10])
    last = 0
    for ev in history:
        rev, typ, key, value, cre, ver, lease, hprev = ev
        if rev < last:
            problems.append('history out of order at %s' % show(ev))
        last = rev
        prev = state.get(key)
        if hprev != prev:
            problems.append('history prev_kv %s, replay %s at %s' % (hprev, prev, show(ev)))
        if typ == PUT:
            want = (prev[2] if prev else rev, prev[4] + 1 if prev else 1)
            if (cre, ver) != want:
                problems.append('%s: create/version %s expected %s' % (show(ev), (cre, ver), want))
            if value not in values:
                problems.append('%s: value never written' % show(ev))
            state[key] = (key, value, cre, rev, ver, lease)
        else:
            if prev is None:
                problems.append('%s: delete of an absent key' % show(ev))
            state.pop(key, None)
        out.append(ev[:7] + (prev,))
    if state != final:
        diff = sorted(set(state.items()) ^ set(final.items()))
        problems.append('replayed state differs from the final range: %s' % diff[:6])
    return problems, out


def expected_events(op, res):
    """(type, key, value) list the acknowledged OP must have at its revision; None when it
    changed nothing (then checked against the state instead); 'prefix' for a prefix delete that
    deleted something (its keys are known only from the history)."""
    kind, (_, n, deleted) = op[0], res
    if kind == 'put':
        return [(PUT, op[1], op[2])]
    if kind == 'del':
        return [(DELETE, op[1], b'')] if n else None
    if kind == 'delprefix':
        return 'prefix' if n else None
    _, _, puts, dk, fput = op
    if not n:
        return [(PUT, fput[0], fput[1])]
    evs = [(PUT, k, v) for k, v in puts]
    return evs + ([(DELETE, dk, b'')] if deleted else [])


def check_acks(writers, history, R):
    """Every acknowledged op against the history; returns problems."""
    problems, revs = [], by_revision(history)
    before, after = {}, {}
    for w in writers:
        for op, res in w.acked:
            rev = res[0]
            if rev > R:
                problems.append('%s %s acknowledged at %d above final revision %d' % (
                    op[0], op[1].decode(), rev, R))
                continue
            got = [(e[1], e[2], e[3] if e[1] == PUT else b'') for e in revs.get(rev, [])]
            want = expected_events(op, res)
            if want == 'prefix':
                keys = [k for t, k, _ in got]
                if (any(t != DELETE for t, _, _ in got) or len(got) != res[1] or keys != sorted(keys)
                        or any(not k.startswith(op[1]) for k in keys)):
                    problems.append('delete prefix %s (deleted %d) at %d: events %s' % (
                        op[1].decode(), res[1], rev, brief(got)))
                before.setdefault(rev, []).append(('prefix-all', op, keys))
            elif want is None:
                after.setdefault(rev, []).append(('absent', op))
            elif got != want:
                problems.append('%s at %d: events %s, expected %s' % (
                    op[0], rev, brief(got), brief(want)))
            if op[0] == 'txn':
                before.setdefault(rev, []).append(('compare', op, res[1]))
    state = {}
    for rev in range(1, R + 1):
        for what in before.get(rev, []):
            problems += state_check(what, state, rev)
        for ev in revs.get(rev, []):
            if ev[1] == PUT:
                state[ev[2]] = ev[3]
            else:
                state.pop(ev[2], None)
        for what in after.get(rev, []):
            problems += state_check(what, state, rev)
    return problems


def state_check(what, state, rev):
    """One check of an acknowledged op against STATE (key -> value) at revision REV: 'compare'
    (a txn's branch against the state before it), 'prefix-all' (a prefix delete deleted exactly
    the keys there were), 'absent' (a delete that deleted nothing had nothing to delete)."""
    kind, op = what[0], what[1]
    if kind == 'compare':
        exists = op[1] in state
        if exists != what[2]:
            return ['txn at %d: succeeded=%s but %s %s before it' % (
                rev, what[2], op[1], 'existed' if exists else 'was absent')]
        return []
    if kind == 'prefix-all':
        had = sorted(k for k in state if k.startswith(op[1]))
        if had != what[2]:
            return ['delete prefix %s at %d deleted %s, keys before %s' % (op[1], rev, what[2], had)]
        return []
    keys = [op[1]] if op[0] == 'del' else [k for k in state if k.startswith(op[1])]
    present = [k for k in keys if k in state]
    if present:
        return ['%s %s deleted nothing at %d but %s existed' % (op[0], op[1], rev, present)]
    return []


def check_watcher(w, group, history, R):
    """W's events against its filtered history from its start to R; returns problems."""
    if w.start is None:
        return ['never created (stream errors: %s)' % group.errors[:3]]
    s = w.spec
    want = [ev[:7] + ((ev[7] if s.prev_kv else None),) for ev in history
            if ev[0] >= w.start and s.matches(ev[1], ev[2])]
    got = [ev for ev in w.events if ev[0] <= R]
    problems = list(w.problems)
    revs = [ev[0] for ev in got]
    if any(b < a for a, b in zip(revs, revs[1:])):
        problems.append('not ordered by revision')
    idx = {}
    for ev in got:
        idx[ev[:3]] = idx.get(ev[:3], 0) + 1
    dups = [k for k, n in idx.items() if n > 1]
    if dups:
        problems.append('%d duplicated events, first at rev %d' % (len(dups), min(d[0] for d in dups)))
    wanted = {ev[:3] for ev in want}
    gaps = sorted(wanted - set(idx))
    if gaps:
        problems.append('%d events missing, first at %d on %s' % (
            len(gaps), gaps[0][0], gaps[0][2].decode()))
    extra = sorted(set(idx) - wanted)
    if extra:
        problems.append('%d events not in its history, first at %d on %s' % (
            len(extra), extra[0][0], extra[0][2].decode()))
    if got != want:
        i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        problems.append('first difference at #%d of %d/%d: got %s, expected %s' % (
            i, len(got), len(want), show(got[i] if i < len(got) else None),
            show(want[i] if i < len(want) else None)))
    return problems


# --- main ----------------------------------------------------------------------------------------

def probe(endpoint, res):
    """The Watch service answers `created` on ENDPOINT within 10 s."""
    ch = grpc.insecure_channel(endpoint)
    stopping = threading.Event()
    reqs = queue.Queue()
    reqs.put(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b'wg/probe')))
    call = rpc_pb2_grpc.WatchStub(ch).Watch(request_stream(reqs, stopping), timeout=10)
    problems = []
    try:
        resp = next(call)
        if not resp.created:
            problems.append('first response is not created: %s' % resp)
    except grpc.RpcError as e:
        problems.append('%s: %s' % (e.code(), e.details()))
    finally:
        stopping.set()
        reqs.put(None)
        call.cancel()
        ch.close()
    res.check('the Watch service answers a create request with created', problems)
    return not problems


def run_load(args, eps, res):
    start = time.time()
    deadline = start + args.duration
    groups = []
    for member, delay, specs in WATCH_GROUPS:
        ws = [Watcher(s, member) for s in specs]
        groups.append(WatchGroup(eps, member, delay * args.duration, ws,
                                 deadline + args.wait_cluster + 120))
    watchers = [(w, g) for g in groups for w in g.watchers]
    writers = [Writer(i, eps, args.seed, deadline, args.pace) for i in range(WRITERS)]
    for t in groups + writers:
        t.start()
    for t in writers:
        t.join(args.duration + 3 * RPC_TIMEOUT + 5)
    open(os.path.join(args.dir, 'load_done'), 'w').close()
    acked = sum(len(w.acked) for w in writers)
    errors = {}
    for w in writers:
        for code, n in w.errors.items():
            errors[code] = errors.get(code, 0) + n
    log('load done after %.1f s: %d ops acknowledged, %d unknown (%s)' % (
        time.time() - start, acked, sum(len(w.unknown) for w in writers),
        ', '.join('%s x%d' % kv for kv in sorted(errors.items())) or 'no errors'))
    res.check('writers: ops acknowledged during the faults (%d)' % acked,
              [] if acked > 0 and not any(t.is_alive() for t in writers) else ['writers did not finish'])
    return groups, watchers, writers


def finish(args, eps, res, groups, watchers, writers):
    ok_path = os.path.join(args.dir, 'cluster_ok')
    if not wait_until(lambda: os.path.exists(ok_path), time.time() + args.wait_cluster):
        res.check('the shell reported the cluster healthy after the faults', ['no %s' % ok_path])
        return
    R, final = final_range(eps, time.time() + 30)
    if R is None:
        res.check('final linearizable range', ['no member answered'])
        return
    history, hw, hg = read_history(eps, R, time.time() + 30)
    if history is None:
        res.check('final history read (watch from revision 1) up to %d' % R,
                  ['stopped at %s after %d events; %s' % (hw.next_rev, len(hw.events), hg.errors[:3])])
        return
    history = [ev for ev in history if ev[0] <= R]
    log('final revision %d, %d keys, history of %d events' % (R, len(final), len(history)))
    values = set().union(*(w.values for w in writers))
    hp, history = check_history(history, R, final, values)
    res.check('history: revisions 2..%d contiguous, create/version/prev_kv consistent, only written '
              'values, replay equals the final range' % R, hp)
    nacked = sum(len(w.acked) for w in writers)
    res.check('every acknowledged write (%d) is in the history at its revision, alone' % nacked,
              check_acks(writers, history, R))
    for w, _ in watchers:
        w.last_wanted = max((ev[0] for ev in history
                             if ev[0] >= (w.start or 1) and w.spec.matches(ev[1], ev[2])), default=0)
    wait_until(lambda: all(w.next_rev is not None and w.next_rev > w.last_wanted for w, _ in watchers),
               time.time() + 30)
    for g in groups:
        g.stop()
    for g in groups:
        g.join(5)
    breaks = sum(g.breaks for g in groups)
    for w, g in watchers:
        name = 'watcher %s (%s, from c%d): %d events, %d creates on %s' % (
            w.spec.name, w.spec.describe(), w.preferred + 1, len(w.events), w.creates,
            ','.join('c%d' % (m + 1) for m in w.members) or '-')
        res.check(name + ': ordered, unique, no gaps, prev_kv right', check_watcher(w, g, history, R))
    res.check('the faults broke watch streams and they resumed (%d breaks)' % breaks,
              [] if breaks > 0 else ['no watch stream broke: the faults did not reach the watchers'])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--endpoints', required=True)
    ap.add_argument('--dir', required=True)
    ap.add_argument('--seed', type=int, required=True)
    ap.add_argument('--duration', type=float, default=40)
    ap.add_argument('--pace', type=float, default=0.02)
    ap.add_argument('--wait-cluster', type=float, default=90)
    args = ap.parse_args()
    eps = args.endpoints.split(',')
    if not os.path.isdir(args.dir) or not eps:
        return 2
    log('seed %d, duration %.0f s, endpoints %s' % (args.seed, args.duration, eps))
    res = Results(os.path.join(args.dir, 'results'))
    if not probe(eps[0], res):
        open(os.path.join(args.dir, 'load_done'), 'w').close()
        return 1
    open(os.path.join(args.dir, 'load_started'), 'w').close()
    groups, watchers, writers = run_load(args, eps, res)
    try:
        finish(args, eps, res, groups, watchers, writers)
    finally:
        for g in groups:
            g.stop()
        for g in groups:
            g.join(5)
    return 1 if res.failed else 0


if __name__ == '__main__':
    sys.exit(main())
