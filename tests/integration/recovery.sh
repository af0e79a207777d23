#!/usr/bin/env bash
# tests/integration/recovery.sh BIN_DIR: the seeds' recovery procedures (Pigsty's etcd admin
# pages: "单节点恢复" replace a failed member, "多数节点故障恢复" lose the majority), scripted with
# Debian's etcdctl 3.4 against a 3-member loopback cluster. Same expectations for etcd 3.4 and cetcd.
#   A. replace a failed member: kill -9 a follower; `member remove <id>`; wipe its data dir;
#      `member add <name> --peer-urls=<same URL>`; start it with the printed ETCD_INITIAL_CLUSTER
#      and --initial-cluster-state existing -> 3 started members, all healthy, every key on every
#      member (same dump of keys, values and revisions as before the failure), and a put through
#      the replaced member reaches the leader.
#   B. lose 2 of 3: kill -9 two members; stop the survivor; restart it on the same data dir with
#      --force-new-cluster -> a one-member cluster with every key, taking writes; then add the two
#      back one at a time (wipe, member add, start existing, wait healthy) -> 3 members, every key
#      on each.
# `member add` is retried while etcd's strict reconfiguration check answers "unhealthy cluster"
# (peers connected for less than 5 s) or "not enough started members".
# Bounded: every wait has a deadline; only this script's processes are stopped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"

noise() { grep -v '^{"level"'; }
logs_tail() { local i; for i in "$@"; do echo "== ${C_NAME[i]}"; tail -"${TAIL_N:-8}" "${C_LOG[i]}"; done; }
others() { local i; for i in 1 2 3; do [ "$i" != "$1" ] && printf '%s ' "$i"; done; }

# add_back LABEL VIA I: wipes member I's data dir, `member add`s it (same name and peer URL) through
# member VIA, starts it with the printed initial cluster and state existing, waits until healthy.
# Reports two checks.
add_back() {
  local lb=$1 via=$2 i=$3 ic st
  rm -rf "${C_DIR[i]}"
  retry_while 30 'unhealthy cluster|not enough started members' \
    ctl "$via" member add "${C_NAME[i]}" --peer-urls="$(c_peer_url "$i")"
  ic=$(echo "$T_OUT" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p')
  st=$(echo "$T_OUT" | sed -n 's/^ETCD_INITIAL_CLUSTER_STATE="\(.*\)"$/\1/p')
  if echo "$T_OUT" | grep -qE '^Member +[0-9a-f]+ added to cluster' && [ "$st" = existing ] &&
    echo ",$ic," | grep -q ",${C_NAME[i]}=$(c_peer_url "$i"),"; then
    t_ok "$lb: member add ${C_NAME[i]} (same peer URL) prints its initial cluster, state existing"
  else
    t_fail "$lb: member add ${C_NAME[i]} prints its initial cluster, state existing" "$(echo "$T_OUT" | noise)"
    [ -n "$ic" ] || return 1 # no member added; otherwise start it so later checks stay meaningful
  fi
  member_start "$i" existing "$ic"
  if c_wait_ready "$i" 40; then t_ok "$lb: ${C_NAME[i]} starts with --initial-cluster-state existing and is healthy"
  else t_fail "$lb: ${C_NAME[i]} starts with --initial-cluster-state existing and is healthy" "$(logs_tail "$i")"; return 1; fi
}

# same_everywhere LABEL REF "I J ...": each member's linearizable dump equals file REF.
same_everywhere() {
  local i
  for i in $3; do
    c_dump "$i" "$T_DIR/dump.$1.c$i"
    t_same "$1: c$i has every key, value and revision" "$2" "$T_DIR/dump.$1.c$i"
  done
}

# started_members I: "N" = members listed by member I with a name (started), and the learner count
started_members() { c_members "$1" | awk '$2 != "-" { n++ } $3 == "true" { l++ } END { print n + 0, l + 0 }'; }

if start_cluster "$SUT" 3; then t_ok "3 members start as a new cluster"
else t_fail "3 members start as a new cluster" "$(logs_tail 1 2 3)"; t_done; fi
IC=$(c_initial_cluster 1 2 3)
out=$(run_bounded 60 "$PY" "$HERE/bulk_put.py" "$(c_ep 1)" rec/a/ 2000 2>&1)
if [ $? -eq 0 ]; then t_ok "2000 keys written ($out)"; else t_fail "2000 keys written" "$out"; fi
ctl 2 put rec/overwritten one >/dev/null 2>&1; ctl 3 put rec/overwritten two >/dev/null 2>&1
ctl 1 del rec/a/000007 >/dev/null 2>&1

# --- A. replace a failed member ----------------------------------------------------------------
L=$(c_wait_leader "1 2 3" 10) || L=1
X=$(others "$L" | cut -d' ' -f2)
c_dump "$L" "$T_DIR/before_a"
XID=$(c_id_by_name "$L" "${C_NAME[X]}")
member_stop "$X" KILL
out=$(ctl "$L" member remove "$XID" 2>&1 | noise)
if echo "$out" | grep -qE "^Member +$XID removed from cluster"; then t_ok "A: member remove of the killed member c$X"
else t_fail "A: member remove of the killed member c$X" "id '$XID': $out"; fi
t_eq "A: member list shows 2 members" "2 0" "$(started_members "$L")"
add_back A "$L" "$X"
deadline=$((SECONDS + 30))
until [ "$(c_status "$X" | cut -d' ' -f3)" = "$(c_status "$L" | cut -d' ' -f3)" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
t_eq "A: member list shows 3 started members, no learner" "3 0" "$(started_members "$X")"
out=$(ctl_eps "1 2 3" endpoint health 2>&1 | noise)
if [ "$(echo "$out" | grep -c 'is healthy')" = 3 ]; then t_ok "A: endpoint health: 3 healthy"
else t_fail "A: endpoint health: 3 healthy" "$out"; fi
same_everywhere A "$T_DIR/before_a" "1 2 3"
if ctl "$X" put rec/after-a yes >/dev/null 2>&1 && [ "$(ctl "$L" get rec/after-a --print-value-only 2>&1)" = yes ]; then
  t_ok "A: a put through the replaced member is read on the leader"
else t_fail "A: a put through the replaced member is read on the leader" "$(ctl "$X" put rec/after-a yes 2>&1 | noise)"; fi

# --- B. lose 2 of 3, --force-new-cluster, add two back ------------------------------------------
S=$(c_wait_leader "1 2 3" 10) || S=1
read -r D1 D2 <<<"$(others "$S")"
ctl "$S" put rec/before-b yes >/dev/null 2>&1
c_dump "$S" "$T_DIR/before_b"
member_stop "$D1" KILL
member_stop "$D2" KILL
member_stop "$S" TERM 15
member_start "$S" new "$IC" --force-new-cluster
if c_wait_ready "$S" 30; then t_ok "B: survivor c$S restarts with --force-new-cluster and is healthy"
else t_fail "B: survivor c$S restarts with --force-new-cluster and is healthy" "$(logs_tail "$S")"; t_done; fi
got=$(c_members "$S" | awk '{ print $2 }' | tr '\n' ' ')
t_eq "B: member list shows only c$S" "c$S " "$got"
L=$(c_wait_leader "$S" 10)
t_eq "B: c$S leads itself" "$S" "$L"
same_everywhere B1 "$T_DIR/before_b" "$S"
if ctl "$S" put rec/after-force yes >/dev/null 2>&1; then t_ok "B: the one-member cluster takes writes"
else t_fail "B: the one-member cluster takes writes" "$(ctl "$S" put rec/after-force yes 2>&1 | noise)"; fi
c_dump "$S" "$T_DIR/before_b2"
add_back B "$S" "$D1"
add_back B "$S" "$D2"
deadline=$((SECONDS + 30))
until [ "$(c_status "$D2" | cut -d' ' -f3)" = "$(c_status "$S" | cut -d' ' -f3)" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
t_eq "B: member list shows 3 started members, no learner" "3 0" "$(started_members "$S")"
if NL=$(c_wait_leader "1 2 3" 10); then t_ok "B: the 3 members agree on one leader (c$NL)"
else t_fail "B: the 3 members agree on one leader" "$(for i in 1 2 3; do c_status "$i"; done)"; fi
same_everywhere B2 "$T_DIR/before_b2" "1 2 3"
if ctl "$D2" put rec/after-b yes >/dev/null 2>&1 && [ "$(ctl "$D1" get rec/after-b --print-value-only 2>&1)" = yes ]; then
  t_ok "B: the rebuilt cluster replicates a new write"
else t_fail "B: the rebuilt cluster replicates a new write" "$(ctl "$D2" put rec/after-b yes 2>&1 | noise)"; fi
t_done
