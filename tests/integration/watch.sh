#!/usr/bin/env bash
# tests/integration/watch.sh BIN_DIR: the Watch service end to end (issue 4), the same
# expectations for etcd 3.4 and cetcd (first written and run against /usr/bin/etcd).
#   One member (--experimental-watch-progress-notify-interval 1s), through watch_client.py
#   (python grpc with etcd 3.4's Watch messages): IDs and control responses, history replay
#   and ranges and filters and prev_kv, compaction cancels, fragments, progress notifications,
#   the half-close, a slow watcher (stops reading during 20,000 puts: the writes keep their
#   pace, then every event arrives once, in order), Patroni's own watch client; and with curl
#   the gateway's chunked answer (raw framing checked).
#   Three members: a watcher on a follower sees writes made through the leader; a learner
#   refuses Watch; with hasleader=true metadata (etcdctl's) an open watch ends with "no leader"
#   once the member has lost its leader, and a new one is refused.
# Bounded: every client run has a hard limit; only this script's processes are stopped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"

# wc NAME SCENARIO ARGS...: one watch_client.py scenario as one check.
wc() {
  local name=$1 out
  shift
  out=$(run_bounded 150 "$PY" "$HERE/watch_client.py" "$@" 2>&1)
  echo "$out" | grep '^# ' || true
  if [ "$(echo "$out" | tail -1)" = ok ]; then t_ok "$name"
  else t_fail "$name" "$(echo "$out" | grep -v '^# ' | head -20)"; fi
}

# --- one member ----------------------------------------------------------------------------------
alloc_ports CP PP
start_member "$SUT" w1 "$T_DIR/w1" "$CP" "$PP" --experimental-watch-progress-notify-interval 1s
if ! wait_ready "http://127.0.0.1:$CP" 20; then
  t_fail "the member starts" "$(tail -5 "$T_LAST_LOG")"
  t_done
fi
EP=127.0.0.1:$CP

wc "IDs: automatic, client-chosen, negative, duplicate; empty range; cancel; progress request" control "$EP"
wc "history from start_revision (inclusive), ranges, filters, prev_kv, live events" events "$EP"
wc "a start below the compaction point: created, then canceled with compact_revision" compact "$EP"
wc "fragments: 3+2 events for a fragment watcher, one response for a plain one" fragment "$EP"
wc "progress_notify every interval, to the watcher that asked only" progress "$EP"
wc "the client's half-close keeps the stream open" halfclose "$EP"
wc "Patroni's watch (gateway, chunked, from its range's revision)" patroni "$EP"

# The gateway's chunked framing, read raw: one chunk per response, {"result":...} in each.
KEY64=$(printf '/gw/a' | base64)
curl -sN --raw -m 4 -D "$T_DIR/gw.hdr" -o "$T_DIR/gw.raw" -X POST "http://$EP/v3/watch" \
  -d "{\"create_request\":{\"key\":\"$KEY64\"}}" &
CURL=$!
deadline=$((SECONDS + 5))
until grep -q created "$T_DIR/gw.raw" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
curl -s -m 5 -X POST "http://$EP/v3/kv/put" -d "{\"key\":\"$KEY64\",\"value\":\"MQ==\"}" >/dev/null
wait "$CURL"
got=$("$PY" - "$T_DIR/gw.raw" "$T_DIR/gw.hdr" <<'EOF'
import json, sys
raw, hdr = open(sys.argv[1], 'rb').read(), open(sys.argv[2]).read().lower()
out = ['chunked' if 'transfer-encoding: chunked' in hdr else 'not chunked']
while raw:
    line, _, raw = raw.partition(b'\r\n')
    n = int(line, 16)
    if n == 0:
        break
    chunk, raw = raw[:n], raw[n + 2:]
    r = json.loads(chunk)['result']
    out.append('created' if r.get('created') else
               ','.join('%s@%s' % (e['kv']['key'], e['kv']['mod_revision']) for e in r.get('events', [])))
print(' '.join(out))
EOF
)
rev=$(curl -s -m 5 -X POST "http://$EP/v3/kv/range" -d "{\"key\":\"$KEY64\"}" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
t_eq "gateway watch: chunked, one {\"result\":...} per chunk" "chunked created $KEY64@$rev" "$got"

wc "a slow watcher holds up no writes and then gets every event once, in order" slow "$EP"
stop_all

# --- three members -------------------------------------------------------------------------------
if ! start_cluster "$SUT" 3; then
  t_fail "3 members start" "$(tail -5 "${C_LOG[1]}")"
  t_done
fi
L=$(c_wait_leader "1 2 3" 10) || L=1
F=$(( L % 3 + 1 ))
wc "a watcher on a follower sees the writes made through the leader" follower "$(c_ep "$F")" "$(c_ep "$L")"

member_define 4 c4 127.0.0.1
retry_while 20 'unhealthy cluster' ctl "$L" member add c4 --learner --peer-urls="$(c_peer_url 4)" >/dev/null
IC4=$(echo "$T_OUT" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p')
member_start 4 existing "${IC4:-$(c_initial_cluster 1 2 3 4)}"
if c_wait_ready 4 30; then
  wc "a learner refuses Watch" refused "$(c_ep 4)" UNAVAILABLE "etcdserver: rpc not supported for learner"
else
  t_fail "a learner refuses Watch" "the learner did not start: $(tail -5 "${C_LOG[4]}")"
fi

# A hasleader watch on F, then F's two fellow voters go away.
run_bounded 60 "$PY" "$HERE/watch_client.py" monitored "$(c_ep "$F")" "$T_DIR/mon.ready" \
  >"$T_DIR/mon.out" 2>&1 &
MON=$!
track_pid "$MON"
deadline=$((SECONDS + 15))
until [ -e "$T_DIR/mon.ready" ] || ! pid_alive "$MON" || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.05; done
for i in 1 2 3; do [ "$i" != "$F" ] && member_stop "$i"; done
if wait_exit "$MON" 50 && [ "$(tail -1 "$T_DIR/mon.out")" = ok ]; then
  grep '^# ' "$T_DIR/mon.out"
  t_ok "a hasleader watch ends with \"etcdserver: no leader\" after the leader is lost"
else
  t_fail "a hasleader watch ends with \"etcdserver: no leader\" after the leader is lost" "$(cat "$T_DIR/mon.out")"
fi
wc "a new hasleader watch without a leader is refused" refused "$(c_ep "$F")" UNAVAILABLE "etcdserver: no leader"
t_done
