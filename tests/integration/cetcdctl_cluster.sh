#!/usr/bin/env bash
# tests/integration/cetcdctl_cluster.sh BIN_DIR: cetcdctl's cluster commands against a 3-member
# loopback cluster, each compared with Debian's etcdctl 3.4 on the same cluster state:
#   member list (simple, table, json), endpoint status --cluster (table; sizes masked),
#   member add --learner (output with the new ID masked), member update, member promote of a
#   learner that never started (etcd's "not in sync" error), member remove, move-leader
#   (leadership really moves), and the errors for an unknown member.
# Needs BIN_DIR/cetcdctl (skipped against etcd alone). Bounded; stops only its own processes.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

BIN_DIR=${1:-bin}
SUT=$(resolve_server "$BIN_DIR") || exit 2
CTL=$BIN_DIR/cetcdctl
echo "# server under test: $SUT"
if [ ! -x "$CTL" ]; then
  t_skip "cetcdctl cluster commands" "no $CTL"
  t_done
  exit 0
fi

noise() { grep -v '^{"level"'; }
# both NAME ARGS...: runs etcdctl and cetcdctl against member 1 with ARGS, compares output+status.
both() {
  local name=$1
  shift
  { ctl 1 "$@" 2>&1; echo "status $?"; } | noise | mask_ids >"$T_DIR/$name.etcdctl"
  { timeout -k 2 30 "$CTL" --endpoints="$(c_ep 1)" "$@" 2>&1; echo "status $?"; } | mask_ids >"$T_DIR/$name.cetcdctl"
  t_same "cetcdctl $name = etcdctl" "$T_DIR/$name.etcdctl" "$T_DIR/$name.cetcdctl"
}
mask_sizes() { sed -E 's/[0-9.]+ (kB|MB|B) /SIZE /g'; }

trap t_cleanup EXIT
if ! start_cluster "$SUT" 3; then
  t_fail "3 members start"
  t_done
  exit 1
fi
L=$(c_wait_leader "1 2 3" 10) || { t_fail "a leader is elected"; t_done; exit 1; }
# members publish their names and client URLs through the log once a leader is known
deadline=$((SECONDS + 10))
while [ "$(ctl 1 member list 2>/dev/null | grep -c ', started, ')" != 3 ] && [ "$SECONDS" -lt "$deadline" ]; do
  sleep 0.1
done

both member-list member list
both member-list-table member list -w table
both member-list-json member list -w json
ctl 1 endpoint status --cluster -w table 2>&1 | noise | mask_sizes >"$T_DIR/status.etcdctl"
"$CTL" --endpoints="$(c_ep 1)" endpoint status --cluster -w table 2>&1 | mask_sizes >"$T_DIR/status.cetcdctl"
t_same "cetcdctl endpoint status --cluster -w table = etcdctl" "$T_DIR/status.etcdctl" "$T_DIR/status.cetcdctl"

# etcd refuses member add until peers have been connected for 5 s ("unhealthy cluster")
deadline=$((SECONDS + 15))
while :; do
  out=$("$CTL" --endpoints="$(c_ep 1)" member add c4 --learner --peer-urls=http://127.0.0.1:1 2>&1)
  echo "$out" | grep -q 'unhealthy cluster' && [ "$SECONDS" -lt "$deadline" ] || break
  sleep 0.5
done
if echo "$out" | grep -qE '^Member +[0-9a-f]+ added to cluster' &&
  echo "$out" | grep -q 'ETCD_INITIAL_CLUSTER_STATE="existing"'; then
  t_ok "cetcdctl member add --learner"
else
  t_fail "cetcdctl member add --learner" "$out"
fi
NEW=$(ctl 1 member list 2>/dev/null | grep 'unstarted' | cut -d, -f1)
both member-list-learner member list -w table
both member-update member update "$NEW" --peer-urls=http://127.0.0.1:2
both member-promote-unstarted member promote "$NEW"
"$CTL" --endpoints="$(c_ep 1)" member remove "$NEW" >"$T_DIR/rm.out" 2>&1
if grep -qE "^Member +$NEW removed from cluster" "$T_DIR/rm.out"; then t_ok "cetcdctl member remove"
else t_fail "cetcdctl member remove" "$(cat "$T_DIR/rm.out")"; fi
both member-remove-again member remove "$NEW"
both member-update-unknown member update 1234 --peer-urls=http://127.0.0.1:3

# move-leader: to a follower other than c1, through the leader (so c1 is a follower after)
T=2
[ "$L" = 2 ] && T=3
TID=$(c_member_id "$T")
out=$(timeout -k 2 30 "$CTL" --endpoints="$(c_ep "$L")" move-leader "$TID" 2>&1)
NL=$(c_wait_leader "1 2 3" 10)
if echo "$out" | grep -q "Leadership transferred from .* to $TID" && [ "$NL" = "$T" ]; then
  t_ok "cetcdctl move-leader hands leadership to c$T"
else
  t_fail "cetcdctl move-leader hands leadership to c$T" "$out" "leader now: c${NL:-none}"
fi
both move-leader-not-leader move-leader "$(c_member_id "$L")"
t_done
