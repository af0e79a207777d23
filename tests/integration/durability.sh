#!/usr/bin/env bash
# tests/integration/durability.sh BIN_DIR: no acknowledged write is lost across kill -9.
# Starts the server (BIN_DIR/cetcd, else BIN_DIR/etcd, or $SERVER_BIN); DUR_CLIENTS (8) writer.py
# processes put DUR_TOTAL (10,000) unique keys through the JSON gateway, each logging the key and
# revision of every acknowledged put; once DUR_KILL_AT (5,000) acks are logged the server gets
# SIGKILL, is restarted on the same data dir, the writers carry on (they wait for it), and at the
# end check_acks.py verifies every acknowledged key has exactly its acknowledged mod_revision and
# value. Bounded: DUR_DEADLINE seconds (120) for the whole write phase.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
CLIENTS=${DUR_CLIENTS:-8}
TOTAL=${DUR_TOTAL:-10000}
KILL_AT=${DUR_KILL_AT:-5000}
DEADLINE_S=${DUR_DEADLINE:-120}
PER=$((TOTAL / CLIENTS))
echo "# server under test: $SUT; $CLIENTS clients x $PER puts; kill -9 after $KILL_AT acks"

alloc_ports CP PP || exit 2
DATA=$T_DIR/data
EP=http://127.0.0.1:$CP
start_member "$SUT" dur "$DATA" "$CP" "$PP"
SPID=$T_LAST_PID
if wait_ready "$EP" 20; then t_ok "server starts"; else t_fail "server starts" "$(tail -5 "$T_LAST_LOG")"; t_done; fi

acked() { cat "$T_DIR"/ack-*.log 2>/dev/null | wc -l; }

deadline=$(( $(date +%s) + DEADLINE_S ))
WPIDS=()
for c in $(seq 0 $((CLIENTS - 1))); do
  "$PY" "$HERE/writer.py" "$CP" "$c" "$PER" "$T_DIR/ack-$c.log" "$deadline" &
  WPIDS+=("$!")
  track_pid "$!"
done

# wait for KILL_AT acks (bounded), then SIGKILL the server mid-stream
end=$((SECONDS + DEADLINE_S))
while [ "$(acked)" -lt "$KILL_AT" ] && [ "$SECONDS" -lt "$end" ]; do sleep 0.05; done
before=$(acked)
kill -KILL "$SPID"
wait "$SPID" 2>/dev/null
at_kill=$(acked)
if [ "$before" -ge "$KILL_AT" ]; then
  t_ok "reached $KILL_AT acks, server killed with SIGKILL ($at_kill acks at kill)"
else
  t_fail "reached $KILL_AT acks before the deadline" "only $before acks"
fi

start_member "$SUT" dur "$DATA" "$CP" "$PP"
if wait_ready "$EP" 30; then t_ok "server restarts on the same data dir"; else t_fail "server restarts" "$(tail -20 "$T_LAST_LOG")"; fi

# writers finish (they wait for the server and stop at their deadline)
rcs=""
for p in "${WPIDS[@]}"; do wait "$p"; rcs="$rcs $?"; done
final=$(acked)
echo "# writer exit codes:$rcs; acks: $final (at kill: $at_kill); unknown: $(cat "$T_DIR"/ack-*.log.unknown 2>/dev/null | wc -l)"
if [ "$final" -gt "$at_kill" ]; then
  t_ok "writes acknowledged after the restart ($((final - at_kill)))"
else
  t_fail "writes acknowledged after the restart" "acks stayed at $final"
fi
case "$rcs" in *4*) t_fail "writers finished before the deadline" "exit codes:$rcs" ;;
                *)   t_ok "writers finished before the deadline" ;; esac

if out=$("$PY" "$HERE/check_acks.py" "$CP" "$T_DIR"/ack-*.log); then
  t_ok "every acknowledged put survived with its revision and value: $(echo "$out" | head -1)"
else
  t_fail "every acknowledged put survived with its revision and value" "$out"
fi

# and once more after a second kill -9 with no load: nothing changes
kill -KILL "$T_LAST_PID"
wait "$T_LAST_PID" 2>/dev/null
start_member "$SUT" dur "$DATA" "$CP" "$PP"
if wait_ready "$EP" 30 && out=$("$PY" "$HERE/check_acks.py" "$CP" "$T_DIR"/ack-*.log); then
  t_ok "still all there after a second kill -9 at rest"
else
  t_fail "still all there after a second kill -9 at rest" "${out:-}" "$(tail -5 "$T_LAST_LOG")"
fi
t_done
