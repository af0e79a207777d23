#!/usr/bin/env bash
# tests/integration/snapshot_save.sh BIN_DIR: Maintenance.Snapshot (`etcdctl snapshot save`, the
# gateway's POST /v3/maintenance/snapshot, python3-etcd3's snapshot()) while a writer keeps
# writing. (tests/integration/snapshot.sh is about --snapshot-count, the Raft snapshots.)
# Runs against etcd 3.4 (SERVER_BIN=/usr/bin/etcd) and cetcd; what only cetcd has is marked.
#   1. a store of a few MB and a writer putting keys through the gateway all along;
#   2. each client's file: size % 512 == 32 and its last 32 bytes are the SHA-256 of the rest
#      (etcd's own test), the database is a bbolt file (meta magic 0xED0CDAED) for both servers; the stream (snapshot_client.py, gRPC and gateway) is etcd's: 32 KiB blobs,
#      remaining_bytes counting down to 0, a final message carrying the SHA-256; cetcd: a header
#      on every message whose revision lies between the revisions read before and after, and the
#      file says that revision (`cetcdctl snapshot status`, when built); an auth token is refused
#      with etcd 3.4's error (gRPC and gateway);
#   3. three snapshots at once; a client that stops reading (writes go on meanwhile, then it
#      finishes with a valid file); cetcd: at most 16 at once, the 17th refused with "etcdserver:
#      too many requests"; clients that go away mid-stream, and twenty that give up
#      within milliseconds (during the copy or the stream): the server stays healthy and (cetcd)
#      holds no more descriptors than before and no deleted temp file;
#   4. the server stopped (TERM) while a stream is stalled and while a snapshot was just asked
#      for: it exits within 10 s; no sanitizer report in any log (t_done).
# Bounded everywhere; stops only its own processes.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

BIN_DIR=${1:-bin}
SUT=$(resolve_server "$BIN_DIR") || exit 2
echo "# server under test: $SUT"
REAL=0
is_real_etcd "$SUT" && REAL=1
CLIENT=$HERE/snapshot_client.py
alloc_ports CP PP || exit 2
EP=127.0.0.1:$CP
E() { timeout -k 2 30 "$ETCDCTL" --endpoints="$EP" --command-timeout=10s "$@"; }

start_member "$SUT" ss "$T_DIR/data" "$CP" "$PP"
SPID=$T_LAST_PID
if wait_ready "http://$EP" 20; then t_ok "server starts"
else t_fail "server starts" "$(tail -5 "$T_LAST_LOG")"; t_done; fi

# --- 1. data and a writer -----------------------------------------------------------------------
"$PY" - "$CP" <<'PY' && t_ok "preload 6 MB" || t_fail "preload 6 MB"
import etcd3, sys
c = etcd3.client(port=int(sys.argv[1]), timeout=20)
for i in range(600):
    c.put("pre/%04d" % i, bytes([65 + i % 26]) * 10000)
PY

STOP_W=$T_DIR/stop-writer
"$PY" - "$CP" "$STOP_W" >"$T_DIR/writer.out" 2>&1 <<'PY' &
import base64, http.client, json, os, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
n = 0
deadline = time.time() + 240
while not os.path.exists(stop) and time.time() < deadline:
    k = base64.b64encode(b"w/%06d" % n).decode()
    c.request("POST", "/v3/kv/put", json.dumps({"key": k, "value": base64.b64encode(b"x" * 500).decode()}))
    r = c.getresponse(); r.read()
    if r.status != 200:
        print("put failed", r.status); sys.exit(1)
    n += 1
print("writes", n)
PY
WPID=$!
track_pid "$WPID"

# rev: the store's revision now
rev() { E get nokey -w json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'; }

# check_file NAME FILE: etcd's hash test, and the database kind
check_file() {
  local out
  out=$(snap_file_problem "$2" bbolt 2>&1) &&
    t_ok "$1: whole pages + sha256, right kind" || t_fail "$1: whole pages + sha256, right kind" "$out"
}

# check_stream NAME OUTPUT BEFORE AFTER: snapshot_client.py's summary; the header's revision
# (cetcd) lies in [BEFORE, AFTER]; etcd 3.4 sends no header.
check_stream() {
  local name=$1 out=$2 r
  if ! echo "$out" | grep -q '"messages"'; then t_fail "$name: stream as etcd's" "$out"; return; fi
  t_ok "$name: stream as etcd's"
  r=$(echo "$out" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["revision"])')
  if [ "$REAL" = 1 ]; then
    t_eq "$name: no header (etcd 3.4)" None "$r"
  elif [ "$r" != None ] && [ "$r" -ge "$3" ] && [ "$r" -le "$4" ]; then
    t_ok "$name: header revision $r within [$3, $4]"
  else
    t_fail "$name: header revision within [$3, $4]" "$out"
  fi
}

# --- 2. each client --------------------------------------------------------------------------
sleep 0.3   # (the writer's first puts: not a condition, just more history before the save)
out=$(E snapshot save "$T_DIR/ctl.db" 2>&1)
if [ $? -eq 0 ] && echo "$out" | grep -q "Snapshot saved at $T_DIR/ctl.db"; then
  t_ok "etcdctl snapshot save"
else t_fail "etcdctl snapshot save" "$out"; fi
check_file "etcdctl" "$T_DIR/ctl.db"

b=$(rev); out=$("$PY" "$CLIENT" grpc "$CP" "$T_DIR/grpc.db" 2>&1); a=$(rev)
check_stream "gRPC stream" "$out" "$b" "$a"
check_file "gRPC stream" "$T_DIR/grpc.db"
GRPC_REV=$(echo "$out" | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("revision"))' 2>/dev/null)

b=$(rev); out=$("$PY" "$CLIENT" gateway "$CP" "$T_DIR/gw.db" 2>&1); a=$(rev)
check_stream "gateway stream" "$out" "$b" "$a"
check_file "gateway stream" "$T_DIR/gw.db"

# curl, and the blobs reassembled from its JSON lines
curl -sS -N -m 60 -X POST "http://$EP/v3/maintenance/snapshot" -o "$T_DIR/curl.json" 2>"$T_DIR/curl.err"
"$PY" - "$T_DIR/curl.json" "$T_DIR/curl.db" <<'PY' && t_ok "curl: one {\"result\"} line per message" ||
import base64, json, sys
with open(sys.argv[2], "wb") as f:
    for line in open(sys.argv[1]):
        if line.strip():
            f.write(base64.b64decode(json.loads(line)["result"].get("blob", "")))
PY
  t_fail "curl: one {\"result\"} line per message" "$(head -c 300 "$T_DIR/curl.json"; cat "$T_DIR/curl.err")"
check_file "curl" "$T_DIR/curl.db"

"$PY" - "$CP" "$T_DIR/py.db" <<'PY' && t_ok "python3-etcd3 snapshot()" || t_fail "python3-etcd3 snapshot()"
import etcd3, sys
c = etcd3.client(port=int(sys.argv[1]), timeout=60)
with open(sys.argv[2], "wb") as f:
    c.snapshot(f)
PY
check_file "python3-etcd3" "$T_DIR/py.db"

CCTL=$BIN_DIR/cetcdctl
if [ "$REAL" = 1 ]; then
  t_skip "the file's revision is the header's" "etcd 3.4 sends no header"
elif [ -x "$CCTL" ] && st=$("$CCTL" snapshot status "$T_DIR/grpc.db" -w json 2>&1) &&
     echo "$st" | grep -q '"revision"'; then
  t_eq "the file's revision is the header's" "$GRPC_REV" \
    "$(echo "$st" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["revision"])')"
else
  t_skip "the file's revision is the header's" "no cetcdctl snapshot status yet: $st"
fi

# an auth token (auth is not enabled): etcd 3.4's Snapshot answers its auth store's own error
t_eq "gRPC with an auth token: refused as etcd 3.4" '{"error": "auth: invalid auth token", "code": 2}' \
  "$("$PY" "$CLIENT" grpc "$CP" "$T_DIR/tok.db" --token bogus 2>&1)"
t_eq "gateway with an auth token: refused as etcd 3.4" \
  '{"error": "auth: invalid auth token", "code": 2, "status": 500}' \
  "$("$PY" "$CLIENT" gateway "$CP" "$T_DIR/tok.db" --token bogus 2>&1)"

# --- 3. concurrency, stalls, clients that go away ----------------------------------------------
fds() { ls "/proc/$SPID/fd" 2>/dev/null | wc -l; }
deleted() { ls -l "/proc/$SPID/fd" 2>/dev/null | grep -c '(deleted)'; }
FDS0=$(fds)

E snapshot save "$T_DIR/c1.db" >"$T_DIR/c1.out" 2>&1 & P1=$!
"$PY" "$CLIENT" grpc "$CP" "$T_DIR/c2.db" >"$T_DIR/c2.out" 2>&1 & P2=$!
"$PY" "$CLIENT" gateway "$CP" "$T_DIR/c3.db" >"$T_DIR/c3.out" 2>&1 & P3=$!
ok=1
for p in $P1 $P2 $P3; do wait "$p" || ok=0; done
[ $ok = 1 ] && t_ok "three snapshots at once" ||
  t_fail "three snapshots at once" "$(cat "$T_DIR"/c[123].out)"
for i in 1 2 3; do check_file "concurrent #$i" "$T_DIR/c$i.db"; done

PAUSE=$T_DIR/paused
"$PY" "$CLIENT" grpc "$CP" "$T_DIR/slow.db" --pause-after 2 --pause-file "$PAUSE" \
  >"$T_DIR/slow.out" 2>&1 & PS=$!
for _ in $(seq 1 200); do [ -e "$PAUSE" ] && break; sleep 0.05; done
if [ -e "$PAUSE" ]; then
  E put during/stall yes >/dev/null 2>&1 && t_ok "writes go on while a snapshot client stalls" ||
    t_fail "writes go on while a snapshot client stalls"
else t_fail "the stalling client got its first messages" "$(cat "$T_DIR/slow.out")"; fi
rm -f "$PAUSE"
if wait "$PS"; then t_ok "the stalled client then gets the whole snapshot"
else t_fail "the stalled client then gets the whole snapshot" "$(cat "$T_DIR/slow.out")"; fi
check_file "stalled client" "$T_DIR/slow.db"

out=$("$PY" "$CLIENT" grpc "$CP" "$T_DIR/cut1.db" --stop-after 2 2>&1)
echo "$out" | grep -q '"stopped": 2' && t_ok "gRPC client leaves mid-stream" ||
  t_fail "gRPC client leaves mid-stream" "$out"
out=$("$PY" "$CLIENT" gateway "$CP" "$T_DIR/cut2.db" --stop-after 2 2>&1)
echo "$out" | grep -q '"stopped": 2' && t_ok "gateway client leaves mid-stream" ||
  t_fail "gateway client leaves mid-stream" "$out"
"$PY" - "$CP" <<'PY' && t_ok "twenty clients give up within milliseconds" ||
import grpc, sys
from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc
ch = grpc.insecure_channel("127.0.0.1:%s" % sys.argv[1])
st = rpc_pb2_grpc.MaintenanceStub(ch)
for i in range(20):
    try:
        for _ in st.Snapshot(rpc_pb2.SnapshotRequest(), timeout=0.001 * (i + 1)):
            pass
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            sys.exit("unexpected: %s %s" % (e.code(), e.details()))
ch.close()
PY
  t_fail "twenty clients give up within milliseconds"
E put after/cut yes >/dev/null 2>&1 && t_ok "server serves after the clients left" ||
  t_fail "server serves after the clients left"
if [ "$REAL" = 1 ]; then
  t_skip "at most 16 at once: the 17th is refused" "etcd has no limit"
else
  "$PY" - "$CP" <<'PY' && t_ok "at most 16 at once: the 17th is refused, the 16 complete" ||
import grpc, socket, sys
from etcd3.etcdrpc import rpc_pb2, rpc_pb2_grpc
port = int(sys.argv[1])
req = b"POST /v3/maintenance/snapshot HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
socks = []
for i in range(16):   # gateway clients with a small window that do not read: held streams
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", port))
    s.settimeout(20)
    s.sendall(req)
    if b"200 OK" not in s.recv(4096):
        sys.exit("stream %d did not start" % i)
    socks.append(s)
ch = grpc.insecure_channel("127.0.0.1:%d" % port)
st = rpc_pb2_grpc.MaintenanceStub(ch)
try:
    list(st.Snapshot(rpc_pb2.SnapshotRequest(), timeout=20))
    sys.exit("the 17th was served")
except grpc.RpcError as e:
    if (e.code(), e.details()) != (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: too many requests"):
        sys.exit("17th: %s %s" % (e.code(), e.details()))
for i, s in enumerate(socks):   # now each one reads its stream to the end
    tail = b""
    while not tail.endswith(b"\r\n0\r\n\r\n"):
        b = s.recv(1 << 20)
        if not b:
            sys.exit("stream %d cut short" % i)
        tail = (tail + b)[-16:]
    s.close()
n = sum(len(m.blob) for m in st.Snapshot(rpc_pb2.SnapshotRequest(), timeout=20))
if n < 4096:
    sys.exit("no snapshot after the 16 ended")
ch.close()
PY
    t_fail "at most 16 at once: the 17th is refused, the 16 complete"
fi
if [ "$REAL" = 1 ]; then
  t_skip "no descriptor or temp file left" "cetcd's copies"
else
  for _ in $(seq 1 100); do [ "$(fds)" -le "$FDS0" ] && [ "$(deleted)" = 0 ] && break; sleep 0.05; done
  [ "$(fds)" -le "$FDS0" ] && [ "$(deleted)" = 0 ] && t_ok "no descriptor or temp file left" ||
    t_fail "no descriptor or temp file left" "fds $FDS0 -> $(fds), deleted open: $(deleted)" \
      "$(ls -l "/proc/$SPID/fd" | tail -8)"
fi

touch "$STOP_W"
if wait "$WPID" && grep -q '^writes [1-9]' "$T_DIR/writer.out"; then
  t_ok "the writer's puts all succeeded ($(cut -d' ' -f2 "$T_DIR/writer.out"))"
else t_fail "the writer's puts all succeeded" "$(cat "$T_DIR/writer.out")"; fi

# --- 4. shutdown mid-stream ------------------------------------------------------------------------
"$PY" "$CLIENT" grpc "$CP" "$T_DIR/down.db" --pause-after 1 --pause-file "$PAUSE" \
  >"$T_DIR/down.out" 2>&1 & PD=$!
track_pid "$PD"
for _ in $(seq 1 200); do [ -e "$PAUSE" ] && break; sleep 0.05; done
kill -TERM "$SPID"
if wait_exit "$SPID" 10; then t_ok "server stops while a stream is stalled"
else t_fail "server stops while a stream is stalled"; fi
rm -f "$PAUSE"
wait "$PD" 2>/dev/null

start_member "$SUT" ss "$T_DIR/data" "$CP" "$PP"
SPID=$T_LAST_PID
if wait_ready "http://$EP" 20; then
  "$PY" "$CLIENT" grpc "$CP" "$T_DIR/down2.db" >/dev/null 2>&1 & PD=$!
  track_pid "$PD"
  kill -TERM "$SPID"
  if wait_exit "$SPID" 10; then t_ok "server stops right after a snapshot request"
  else t_fail "server stops right after a snapshot request"; fi
  wait "$PD" 2>/dev/null
else
  t_fail "server restarts" "$(tail -5 "$T_LAST_LOG")"
fi
t_done
