#!/usr/bin/env bash
# tests/integration/wal_corruption.sh BIN_DIR: cetcd's WAL recovery (cetcd-specific: etcd's WAL
# layout differs, so this suite is skipped when the binary is etcd).
#   (a) torn tail: write keys, SIGTERM, cut the newest segment
#       (<data-dir>/member/wal/<seq:016x>-<index:016x>.wal) 3 bytes before the end of its last
#       record (wal_tool.py tear: cetcd segments may end in zero-filled space, so cutting bytes
#       off the file's end would only cut padding) -> the server starts, logs a warning line
#       mentioning the WAL, and every key but possibly the last written is still there;
#   (b) corruption: write keys, SIGTERM, flip one byte inside an entry record in the first half of
#       the OLDEST segment (after its first 64 bytes; wal_tool.py flip walks the records as
#       documented at the top of server/wal/wal.c; fallback: a fixed offset) -> the server
#       refuses to start (non-zero exit within a bounded wait) and its stderr names the file.
# Default --snapshot-count, so the keys written are all in the WAL after the last snapshot.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"
if is_real_etcd "$SUT"; then
  t_skip "wal torn tail" "etcd's WAL layout differs (cetcd-specific)"
  t_skip "wal corruption" "etcd's WAL layout differs (cetcd-specific)"
  t_done
fi
NKEYS=${WAL_KEYS:-200}

# fill DIR NAME: starts a fresh member, writes NKEYS keys w/NNNN through the gateway, SIGTERM.
fill() {
  local dir=$1 name=$2 cp pp
  alloc_ports cp pp || return 1
  start_member "$SUT" "$name" "$dir" "$cp" "$pp"
  FILL_CP=$cp FILL_PP=$pp
  wait_ready "http://127.0.0.1:$cp" 20 || return 1
  "$PY" - "$cp" "$NKEYS" <<'EOF' || return 1
import base64, http.client, json, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
for i in range(n):
    body = json.dumps({'key': base64.b64encode(b'w/%04d' % i).decode(),
                       'value': base64.b64encode(b'val-%d' % i).decode()})
    c.request('POST', '/v3/kv/put', body)
    r = c.getresponse(); data = r.read()
    if r.status != 200:
        sys.exit('put %d: HTTP %d %r' % (i, r.status, data))
EOF
  stop_member "$T_LAST_PID" TERM 15
}

# since_last_start LOG: the log lines written since the last (re)start
since_last_start() { awk '/^=== start/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$1"; }

# count_keys CP: number of w/ keys
count_keys() {
  curl -s -m 10 "http://127.0.0.1:$1/v3/kv/range" \
    -d "{\"key\":\"$(printf w/ | base64)\",\"range_end\":\"$(printf w0 | base64)\",\"count_only\":true}" |
    "$PY" -c 'import json,sys; print(int(json.load(sys.stdin).get("count", 0)))'
}

# --- (a) torn tail ------------------------------------------------------------------------------
A=$T_DIR/a
if fill "$A" wala; then
  newest=$(ls "$A/member/wal/"*.wal 2>/dev/null | sort | tail -1)
  if [ -z "$newest" ]; then
    t_fail "torn tail: WAL segment found" "$(ls -R "$A")"
  else
    size=$(stat -c %s "$newest")
    cut=$("$PY" "$HERE/wal_tool.py" tear "$newest" 3)
    echo "# cut $(basename "$newest") ($size bytes) to $cut bytes: 3 bytes before the end of its last record"
    start_member "$SUT" wala "$A" "$FILL_CP" "$FILL_PP"
    if wait_ready "http://127.0.0.1:$FILL_CP" 30; then
      t_ok "torn tail: server starts"
      if since_last_start "$T_LAST_LOG" | grep -i 'warn' | grep -qi 'wal'; then
        t_ok "torn tail: a warning mentions the WAL"
      else
        t_fail "torn tail: a warning mentions the WAL" "$(tail -20 "$T_LAST_LOG")"
      fi
      n=$(count_keys "$FILL_CP")
      if [ "${n:-0}" -ge $((NKEYS - 1)) ] && [ "${n:-0}" -le "$NKEYS" ]; then
        t_ok "torn tail: keys before the cut remain ($n of $NKEYS)"
      else
        t_fail "torn tail: keys before the cut remain" "count $n of $NKEYS"
      fi
      stop_member "$T_LAST_PID" TERM 15
    else
      t_fail "torn tail: server starts" "$(tail -20 "$T_LAST_LOG")"
    fi
  fi
else
  t_fail "torn tail: setup (start, $NKEYS puts, SIGTERM)" "$(tail -20 "$T_LAST_LOG")"
fi

# --- (b) flipped byte in an earlier record -----------------------------------------------------
B=$T_DIR/b
if fill "$B" walb; then
  oldest=$(ls "$B/member/wal/"*.wal 2>/dev/null | sort | head -1)
  if [ -z "$oldest" ]; then
    t_fail "corruption: WAL segment found" "$(ls -R "$B")"
  else
    off=$("$PY" "$HERE/wal_tool.py" flip "$oldest")
    echo "# flipped a byte at offset $off of $(basename "$oldest") ($(stat -c %s "$oldest") bytes)"
    alloc_ports cp pp
    errf=$T_DIR/walb.stderr
    "$SUT" --name walb --data-dir "$B" \
      --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
      --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
      --initial-cluster "walb=http://127.0.0.1:$pp" >"$T_DIR/walb.stdout" 2>"$errf" &
    pid=$!
    track_pid "$pid"
    if wait_exit "$pid" 20; then
      rc=$T_EXIT_STATUS
      if [ "$rc" -ne 0 ]; then t_ok "corruption: server refuses to start (exit $rc)"
      else t_fail "corruption: server refuses to start" "exit status 0"; fi
    else
      t_fail "corruption: server refuses to start" "still running after 20 s" \
        "health: $(curl -s -m 2 "http://127.0.0.1:$cp/health")"
      stop_member "$pid" KILL
    fi
    if grep -qF "$(basename "$oldest")" "$errf"; then
      t_ok "corruption: stderr names the file"
    else
      t_fail "corruption: stderr names the file $(basename "$oldest")" "$(tail -10 "$errf")"
    fi
  fi
else
  t_fail "corruption: setup (start, $NKEYS puts, SIGTERM)" "$(tail -20 "$T_LAST_LOG")"
fi
t_done
