#!/usr/bin/env bash
# tests/integration/watch_guarantees.sh BIN_DIR: watch guarantees on a 3-member loopback cluster
# while members are killed and restarted and the leader moves (issue 4). Same expectations for
# etcd 3.4 and cetcd; every member runs with --snapshot-count 1000 and the default timing.
# watch_guarantees.py (the client) runs writers and several watchers on different members for
# WG_DURATION seconds (default 40); meanwhile this script cycles through the faults
#   kill -9 the leader -> move the leader (etcdctl move-leader) -> kill -9 a follower -> move ...
# A killed member stays down 0.5-2 s, is restarted on its data dir and awaited healthy; between
# faults the cluster runs 1-3 s undisturbed. When the client's writers stop (DIR/load_done), every
# member is made to run and be healthy with a leader (DIR/cluster_ok); the client then reads the
# final history and checks every watcher (events ordered, unique, no gaps against the final
# history, resumed from the last revision seen after each broken stream, prev_kv right) and every
# acknowledged write; its checks become this script's. Checks here: the cluster starts, every
# killed member comes back healthy, the leader was killed and moved at least once each (not
# reported when the client's probe found no Watch service: that is its one failed check).
# Randomness: WG_SEED (printed) seeds both the fault schedule and the client's ops; set it to
# replay. Bounded: every wait has a deadline (the client's own, plus WG_DURATION + 150 s here);
# only this script's processes are stopped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
DURATION=${WG_DURATION:-40}
SEED=${WG_SEED:-$(($(date +%s%N) / 1000 % 1000000))}
RANDOM=$SEED
echo "# server under test: $SUT"
echo "# seed $SEED (replay: WG_SEED=$SEED), load ${DURATION}s"

logs_tail() { local i; for i in "$@"; do echo "== ${C_NAME[i]}"; tail -"${TAIL_N:-8}" "${C_LOG[i]}"; done; }
others() { local i; for i in 1 2 3; do [ "$i" != "$1" ] && printf '%s ' "$i"; done; }
load_done() { [ -e "$T_DIR/load_done" ] || ! pid_alive "$PYPID"; }

# pause_ms MS: an intended quiet period between faults, cut short when the load is over.
pause_ms() {
  local end=$(($(now_ms) + $1))
  while [ "$(now_ms)" -lt "$end" ] && ! load_done; do sleep 0.1; done
}

# restart_member I: starts member I again on its data dir and waits until it is healthy; records
# a failure in BAD.
restart_member() {
  member_start "$1" new "$IC"
  c_wait_ready "$1" 30 || BAD="$BAD c$1(not healthy after restart: $(TAIL_N=3 logs_tail "$1" | tr '\n' ' '))"
}

# kill_restart I: kill -9 member I, 0.5-2 s down, restart.
kill_restart() {
  member_stop "$1" KILL
  KILLS=$((KILLS + 1))
  sleep "$(awk -v r=$((RANDOM % 1500)) 'BEGIN { printf "%.3f", 0.5 + r / 1000 }')"
  restart_member "$1"
}

# move_leader L: hands leadership from L to a random other member through L.
move_leader() {
  local t tid out
  t=$(others "$1" | cut -d' ' -f$((RANDOM % 2 + 1)))
  tid=$(c_member_id "$t")
  [ -n "$tid" ] || return 0
  MOVES_TRIED=$((MOVES_TRIED + 1))
  out=$(ctl "$1" move-leader "$tid" 2>&1)
  if echo "$out" | grep -q "Leadership transferred"; then MOVES=$((MOVES + 1)); else echo "# move-leader c$1 -> c$t: $out" | head -3; fi
}

if start_cluster "$SUT" 3 --snapshot-count 1000; then t_ok "3 members start as a new cluster"
else t_fail "3 members start as a new cluster" "$(logs_tail 1 2 3)"; t_done; fi
IC=$(c_initial_cluster 1 2 3)
c_wait_leader "1 2 3" 10 >/dev/null

"$PY" "$HERE/watch_guarantees.py" --endpoints "$(c_ep 1),$(c_ep 2),$(c_ep 3)" --dir "$T_DIR" \
  --seed "$SEED" --duration "$DURATION" >"$T_DIR/client.out" 2>&1 &
PYPID=$!
track_pid "$PYPID"

# --- faults while the load runs ------------------------------------------------------------------
KILLS=0 LEADER_KILLS=0 MOVES=0 MOVES_TRIED=0 BAD="" step=0
end=$((SECONDS + DURATION + 30))
pause_ms $((1000 + RANDOM % 2000))
while ! load_done && [ "$SECONDS" -lt "$end" ]; do
  if ! L=$(c_wait_leader "1 2 3" 10); then BAD="$BAD no-leader-after-step-$step"; pause_ms 500; continue; fi
  case $((step % 4)) in
    0) echo "# $(date -u +%T) kill -9 leader c$L"; LEADER_KILLS=$((LEADER_KILLS + 1)); kill_restart "$L" ;;
    2) F=$(others "$L" | cut -d' ' -f$((RANDOM % 2 + 1)))
       echo "# $(date -u +%T) kill -9 follower c$F"; kill_restart "$F" ;;
    *) echo "# $(date -u +%T) move leader from c$L"; move_leader "$L" ;;
  esac
  step=$((step + 1))
  pause_ms $((1000 + RANDOM % 2000))
done

# --- every member up, then the client checks -----------------------------------------------------
for i in 1 2 3; do member_alive "$i" || restart_member "$i"; done
for i in 1 2 3; do c_wait_ready "$i" 30 || BAD="$BAD c$i(not healthy at the end)"; done
c_wait_leader "1 2 3" 15 >/dev/null || BAD="$BAD no-leader-at-the-end"
touch "$T_DIR/cluster_ok"
echo "# faults: $step steps, $KILLS kills ($LEADER_KILLS of the leader), $MOVES of $MOVES_TRIED move-leaders transferred"
if [ -e "$T_DIR/load_started" ]; then
  if [ -z "$BAD" ]; then t_ok "every killed member came back healthy, a leader after each fault"
  else t_fail "every killed member came back healthy, a leader after each fault" "$BAD"; fi
  if [ "$LEADER_KILLS" -ge 1 ] && [ "$MOVES" -ge 1 ]; then t_ok "the leader was killed ($LEADER_KILLS) and moved ($MOVES) during the load"
  else t_fail "the leader was killed and moved during the load" "leader kills $LEADER_KILLS, moves $MOVES of $MOVES_TRIED"; fi
else
  echo "# the client stopped before the load (its probe failed): no fault checks"
fi

if ! wait_exit "$PYPID" 150; then
  t_fail "the client finishes within 150 s after the load" "$(tail -5 "$T_DIR/client.out")"
  stop_member "$PYPID" KILL 2
fi
sed 's/^/# client: /' "$T_DIR/client.out" | grep -v '^# client: $' | head -40
nres=0
while IFS=$'\t' read -r st name detail; do
  nres=$((nres + 1))
  if [ "$st" = ok ]; then t_ok "$name"; else t_fail "$name" "${detail// | /$'\n'}"; fi
done < <(cat "$T_DIR/results" 2>/dev/null)
[ "$nres" -gt 0 ] || t_fail "the client reported its checks" "$(tail -20 "$T_DIR/client.out")"
t_done
