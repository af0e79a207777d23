#!/usr/bin/env bash
# tests/integration/snapshot.sh BIN_DIR: --snapshot-count. With a small count, writing many
# entries takes several snapshots: snapshot files appear under member/snap, at most five are
# kept, and the member restarts from the newest one (clean stop and kill -9), with every key,
# the revision and HashKV as before. cetcd-specific (etcd's snapshot layout differs).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"
if is_real_etcd "$SUT"; then t_skip "snapshot files" "cetcd layout"; t_done; fi
alloc_ports CP PP || exit 2
DATA=$T_DIR/data
EP=http://127.0.0.1:$CP
E() { timeout -k 2 20 "$ETCDCTL" --endpoints="127.0.0.1:$CP" --command-timeout=5s "$@"; }

start_member "$SUT" sn "$DATA" "$CP" "$PP" --snapshot-count 100
if wait_ready "$EP" 20; then t_ok "server starts"; else t_fail "server starts" "$(tail -5 "$T_LAST_LOG")"; t_done; fi

# 800 writes through the gateway on one keep-alive connection: 8 snapshots' worth
"$PY" - "$CP" <<'PY' || t_fail "800 puts"
import base64, http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
for i in range(800):
    k = base64.b64encode(b"s/%04d" % (i % 300)).decode()
    v = base64.b64encode(b"v%d" % i).decode()
    c.request("POST", "/v3/kv/put", json.dumps({"key": k, "value": v}))
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
nsnap=$(ls "$DATA/member/snap/"*.snap 2>/dev/null | wc -l)
if [ "$nsnap" -ge 1 ] && [ "$nsnap" -le 5 ]; then t_ok "snapshot files taken and purged ($nsnap kept)"
else t_fail "snapshot files taken and purged" "found $nsnap: $(ls "$DATA/member/snap")"; fi
grep -q "snapshot taken at index" "$T_LAST_LOG" && t_ok "snapshot logged" || t_fail "snapshot logged" "$(tail -5 "$T_LAST_LOG")"

state() { { E get s/ --prefix -w json | mask_ids; E endpoint hashkv | sed "s/^[^,]*, //"; } >"$T_DIR/$1" 2>&1; }
state before

stop_member "$T_LAST_PID" TERM 15
start_member "$SUT" sn "$DATA" "$CP" "$PP" --snapshot-count 100
if wait_ready "$EP" 30; then t_ok "restart from a snapshot"; else t_fail "restart from a snapshot" "$(tail -20 "$T_LAST_LOG")"; fi
state after_term
t_same "state after a clean restart" "$T_DIR/before" "$T_DIR/after_term"

E put s/last x >/dev/null
state before_kill
stop_member "$T_LAST_PID" KILL 5
start_member "$SUT" sn "$DATA" "$CP" "$PP" --snapshot-count 100
if wait_ready "$EP" 30; then t_ok "restart after kill -9"; else t_fail "restart after kill -9" "$(tail -20 "$T_LAST_LOG")"; fi
state after_kill
t_same "state after kill -9" "$T_DIR/before_kill" "$T_DIR/after_kill"
t_done
