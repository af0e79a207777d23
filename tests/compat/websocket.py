#!/usr/bin/python3
"""tests/compat/websocket.py BIN_DIR: WebSockets on the client port, as etcd 3.4's gateway
(grpc-gateway behind grpc-websocket-proxy) serves them, checked with Debian's python3-websocket.

Starts one single-member server (BIN_DIR/cetcd, else BIN_DIR/etcd, or $SERVER_BIN) on free
loopback ports and checks, on /v3/watch, /v3/lease/keepalive and other /v3/ paths: the
handshake (101, no subprotocol unless the client offers "Bearer...", which is echoed as
"Bearer"), refusals (405/400 with Sec-Websocket-Version: 13), upgrades ignored outside /v3/,
two watchers created and one cancelled on one socket (events only for the other), JSON values
split across or packed into messages, a bad first message (the gateway's error, then the TCP
connection closes without a close frame), a bad later message (the watch stays, later requests
are ignored; a keepalive stream ends), lease keepalive, a unary method over a WebSocket (the
bare response, then close), an unknown path ("Not Found"), ping/pong, the client's close code
echoed, and 100 watch sockets at once each getting the event.
Every expectation was first checked against etcd 3.4.23 (tests/compat/run.sh /usr/bin).
TAP-like output, `N passed, M failed` last, exit 1 on any failure. The server process and temp
dir are removed on exit, whatever happens.
"""
import base64
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request

# This file is itself named websocket.py: import the library with its directory off the path.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or '.') != HERE]
import websocket  # noqa: E402

sys.path.insert(0, HERE)
import python_etcd3 as tap  # noqa: E402
from python_etcd3 import check, eq, report, free_ports, server_binary, start_server, stop_server  # noqa: E402,F401

EP = ''


def b64(s):
    return base64.b64encode(s.encode()).decode()


def post(path, body):
    req = urllib.request.Request(EP + path, data=json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def ws_open(path, **kw):
    return websocket.create_connection('ws://' + EP[len('http://'):] + path, timeout=10, **kw)


def frame(ws, timeout=5):
    """The next frame as (opcode, bytes); ('eof',) when the server closed the TCP connection
    without a close frame; ('timeout',) when nothing came."""
    ws.settimeout(timeout)
    try:
        return ws.recv_data(control_frame=True)
    except websocket.WebSocketTimeoutException:
        return ('timeout',)
    except websocket.WebSocketConnectionClosedException:
        return ('eof',)


def result(ws, timeout=5):
    f = frame(ws, timeout)
    if f[0] != websocket.ABNF.OPCODE_TEXT:
        raise AssertionError('expected a text message, got %r' % (f,))
    return json.loads(f[1])


def watch_create(ws, key, **extra):
    req = {'key': b64(key)}
    req.update(extra)
    ws.send(json.dumps({'create_request': req}))
    r = result(ws)['result']
    eq(r.get('created'), True, 'created')
    return r


def raw(request):
    """Sends a raw request; returns the response head and body read until a short silence."""
    s = socket.create_connection(('127.0.0.1', int(EP.rsplit(':', 1)[1])), timeout=10)
    s.sendall(request.encode())
    s.settimeout(1)
    out = b''
    try:
        while b'\r\n\r\n' not in out or len(out) < out.index(b'\r\n\r\n') + 4 + body_len(out):
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    s.close()
    return out.decode(errors='replace')


def body_len(out):
    for line in out.split(b'\r\n'):
        if line.lower().startswith(b'content-length:'):
            return int(line.split(b':')[1])
    return 0


UPG = ('Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
       'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n')


def run_tests():
    def t_handshake():
        ws = ws_open('/v3/watch')
        eq(ws.getstatus(), 101, 'status')
        eq(ws.getheaders().get('sec-websocket-accept') is not None, True, 'accept header')
        eq(ws.getsubprotocol(), None, 'no subprotocol')
        ws.close()
        ws = ws_open('/v3/watch', subprotocols=['Bearer', 'tok'])
        eq(ws.getheaders().get('sec-websocket-protocol'), 'Bearer', 'Bearer echoed')
        eq(watch_create(ws, 'ws/x').get('header') is not None, True, 'served')
        ws.close()
    check('handshake; a Bearer subprotocol is echoed', t_handshake)

    def t_token():
        # The proxy forwards "Bearer, tok" as the token "Bearer tok"; etcd 3.4 refuses any
        # unknown token, even with auth disabled (a plain HTTP request with that
        # Authorization header gets the same answer).
        ws = ws_open('/v3/watch', subprotocols=['Bearer', 'tok'])
        r = watch_create(ws, 'ws/x')
        eq(r.get('canceled'), True, 'canceled')
        eq('invalid auth token' in r.get('cancel_reason', ''), True, 'cancel_reason')
        ws.close()
    check('the subprotocol token reaches the server (refused as etcd refuses it)', t_token)

    def t_refusals():
        head = raw('POST /v3/watch HTTP/1.1\r\n' + UPG +
                   'Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n')
        eq(head.split('\r\n')[0], 'HTTP/1.1 405 Method Not Allowed', 'POST')
        eq('Sec-Websocket-Version: 13\r\n' in head, True, 'version header')
        eq(head.endswith('\r\n\r\nMethod Not Allowed\n'), True, 'body')
        head = raw('GET /v3/watch HTTP/1.1\r\n' + UPG + 'Sec-WebSocket-Version: 8\r\n\r\n')
        eq(head.split('\r\n')[0], 'HTTP/1.1 400 Bad Request', 'version 8')
        head = raw('GET /v3/watch HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'
                   'Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n')
        eq(head.split('\r\n')[0], 'HTTP/1.1 400 Bad Request', 'no key')
        eq(head.endswith('\r\n\r\nBad Request\n'), True, 'body')
        head = raw('GET /health HTTP/1.1\r\n' + UPG + 'Sec-WebSocket-Version: 13\r\n\r\n')
        eq(head.split('\r\n')[0], 'HTTP/1.1 200 OK', 'upgrade ignored outside /v3/')
        eq(json.loads(head.split('\r\n\r\n', 1)[1]), {'health': 'true'})
    check('bad upgrades: 405 / 400 with Sec-Websocket-Version; /health ignores it', t_refusals)

    def t_two_watchers():
        ws = ws_open('/v3/watch')
        r0 = watch_create(ws, 'ws/a')
        eq(r0.get('watch_id'), None, 'first watch id 0 (omitted)')
        eq(set(r0['header']), {'cluster_id', 'member_id', 'revision', 'raft_term'}, 'header')
        r1 = watch_create(ws, 'ws/b')
        eq(r1.get('watch_id'), '1', 'second watch id')
        ws.send(json.dumps({'cancel_request': {'watch_id': '0'}}))
        r = result(ws)['result']
        eq((r.get('canceled'), r.get('watch_id')), (True, None), 'cancel of watch 0')
        post('/v3/kv/put', {'key': b64('ws/a'), 'value': b64('1')})
        put = post('/v3/kv/put', {'key': b64('ws/b'), 'value': b64('2')})
        r = result(ws)['result']
        eq(r.get('watch_id'), '1', 'event for watch 1')
        eq(len(r['events']), 1, 'one event')
        kv = r['events'][0]['kv']
        eq((kv['key'], kv['value'], kv['version']), (b64('ws/b'), b64('2'), '1'))
        eq(kv['mod_revision'], put['header']['revision'], 'mod_revision')
        eq(frame(ws, 0.5), ('timeout',), 'nothing for the cancelled watcher')
        ws.close()
    check('watch: two watchers on one socket, cancel one, events only for the other',
          t_two_watchers)

    def t_json_stream():
        ws = ws_open('/v3/watch')
        ws.send(json.dumps({'create_request': {'key': b64('ws/c')}}) +
                json.dumps({'create_request': {'key': b64('ws/d')}}))
        eq(result(ws)['result'].get('created'), True, 'first of two in one message')
        eq(result(ws)['result'].get('watch_id'), '1', 'second of two in one message')
        ws.send('{"create_request":')
        ws.send('  ')
        ws.send('{"key":"%s"}}' % b64('ws/e'))
        eq(result(ws)['result'].get('watch_id'), '2', 'one value across three messages')
        ws.send('null')
        eq(frame(ws, 0.5), ('timeout',), 'null: an empty request, no answer')
        ws.close()
    check('messages form one JSON stream (packed, split, blank, null)', t_json_stream)

    def t_bad_first():
        ws = ws_open('/v3/watch')
        ws.send('{bad')
        m = "invalid character 'b' looking for beginning of object key string"
        eq(result(ws), {'error': m, 'message': m, 'code': 2}, 'error message')
        eq(frame(ws), ('eof',), 'then the connection closes, no close frame')
        ws = ws_open('/v3/watch')
        ws.send('5')
        m = 'json: cannot unmarshal number into Go value of type map[string]json.RawMessage'
        eq(result(ws), {'error': m, 'message': m, 'code': 2}, 'a number')
        eq(frame(ws), ('eof',))
    check('a bad first message: the error, then close', t_bad_first)

    def t_bad_later():
        ws = ws_open('/v3/watch')
        watch_create(ws, 'ws/f')
        ws.send('{bad')
        ws.send(json.dumps({'create_request': {'key': b64('ws/g')}}))
        eq(frame(ws, 0.5), ('timeout',), 'no answer to either')
        post('/v3/kv/put', {'key': b64('ws/f'), 'value': b64('x')})
        r = result(ws)['result']
        eq(r['events'][0]['kv']['key'], b64('ws/f'), 'the first watcher still works')
        ws.close()
    check('a bad later message: the watch stays, later requests are ignored', t_bad_later)

    def t_keepalive():
        g = post('/v3/lease/grant', {'TTL': '60'})
        ws = ws_open('/v3/lease/keepalive')
        for _ in range(3):
            ws.send(json.dumps({'ID': g['ID']}))
            r = result(ws)['result']
            eq((r['ID'], r['TTL']), (g['ID'], '60'), 'keepalive answer')
            eq(set(r['header']), {'cluster_id', 'member_id', 'revision', 'raft_term'})
        ws.send(json.dumps({'ID': '12345'}))
        r = result(ws)['result']
        eq((r['ID'], r.get('TTL')), ('12345', None), 'an unknown lease: TTL 0')
        ws.send('{bad')
        eq(frame(ws), ('eof',), 'a bad later message ends the stream')
        ws = ws_open('/v3/lease/keepalive')
        ws.send('{bad')
        eq(result(ws)['code'], 2, 'bad first message')
        eq(frame(ws), ('eof',))
    check('lease keepalive over a WebSocket', t_keepalive)

    def t_unary():
        post('/v3/kv/put', {'key': b64('ws/u'), 'value': b64('v')})
        ws = ws_open('/v3/kv/range')
        ws.send(json.dumps({'key': b64('ws/u')}) + json.dumps({'key': b64('zz')}))
        r = result(ws)
        eq('result' in r, False, 'a unary answer is the bare response')
        eq((r['count'], r['kvs'][0]['value']), ('1', b64('v')))
        eq(frame(ws), ('eof',), 'then close')
        ws = ws_open('/v3/kv/put')
        ws.send('{bad')
        eq(result(ws)['code'], 3, 'a unary decode error is code 3')
        eq(frame(ws), ('eof',))
        ws = ws_open('/v3beta/nope')
        eq(frame(ws), (websocket.ABNF.OPCODE_TEXT, b'Not Found'), 'unknown path')
        eq(frame(ws), ('eof',))
    check('unary methods and unknown paths over a WebSocket', t_unary)

    def t_control():
        ws = ws_open('/v3/watch')
        ws.ping(b'hello')
        eq(frame(ws), (websocket.ABNF.OPCODE_PONG, b'hello'), 'pong')
        ws.send_close(status=4001, reason=b'')
        f = frame(ws)
        eq((f[0], f[1][:2]), (websocket.ABNF.OPCODE_CLOSE, b'\x0f\xa1'), 'close code echoed')
    check('ping answered, close code echoed', t_control)

    def t_many():
        socks = [ws_open('/v3/watch') for _ in range(100)]
        for ws in socks:
            ws.send(json.dumps({'create_request': {'key': b64('ws/many')}}))
        for ws in socks:
            eq(result(ws)['result'].get('created'), True, 'created')
        post('/v3/kv/put', {'key': b64('ws/many'), 'value': b64('all')})
        for ws in socks:
            r = result(ws)['result']
            eq(r['events'][0]['kv']['value'], b64('all'), 'event')
        for ws in socks:
            ws.close()
    check('100 watch sockets at once each get the event', t_many)


def main():
    global EP
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else 'bin'
    binary = server_binary(bin_dir)
    print('# server under test: %s' % binary)
    tmp = tempfile.mkdtemp(prefix='cetcd-ws.')
    proc = None
    try:
        cp, pp = free_ports(2)
        EP = 'http://127.0.0.1:%d' % cp
        proc, err = start_server(binary, tmp, cp, pp)
        report(err is None, 'server starts', err or '')
        if err is None:
            run_tests()
    finally:
        if proc is not None:
            stop_server(proc)
        if tap.FAIL and os.environ.get('KEEP_TMP'):
            print('# kept %s' % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print('%d passed, %d failed' % (tap.PASS, tap.FAIL))
    return 1 if tap.FAIL else 0


if __name__ == '__main__':
    sys.exit(main())
