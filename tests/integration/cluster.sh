#!/usr/bin/env bash
# tests/integration/cluster.sh BIN_DIR: a 3-member cluster of real processes on loopback, driven
# with Debian's etcdctl 3.4 (ETCDCTL_API=3). Same expectations for etcd 3.4 and cetcd; every
# member runs with --snapshot-count 1000 and the default timing (heartbeat 100 ms, election 1 s).
#   1. one leader: `endpoint status --cluster` (-w table and -w json) shows exactly one;
#   2. writes through any member: a put through each member, read back on each, linearizable and
#      serializable (--consistency=s, after the linearizable read made the member current);
#   3. move-leader to a follower: leadership moves there, `endpoint status` shows it;
#   4. learner: `member add --learner` prints the ETCD_INITIAL_CLUSTER line; a promote before the
#      learner runs is refused ("...in sync with leader"); the learner started with
#      --initial-cluster-state existing refuses linearizable reads and puts ("etcdserver: rpc not
#      supported for learner") but serves serializable reads; promote (retried while "not in sync")
#      succeeds and it then serves linearizable reads;
#   5. member remove (retried while "unhealthy cluster", etcd's 5 s peer-connection rule): the
#      removed member's process exits by itself (etcd 3.4 exits 0 at once);
#   6. kill -9 of the leader while two writer.py clients (through the followers' gateways) record
#      every acknowledged put: a new leader within 5 s, writes go on, check_acks.py finds every
#      acknowledged key with its acknowledged revision; the killed member rejoins;
#   7. snapshot catch-up: a follower is stopped while CLUSTER_SNAP_KEYS (20,000) keys are put (one
#      Raft entry each, bulk_put.py), then restarted: its revision and raft index reach the
#      leader's and a serializable range count on it gives every key; its log mentions the
#      snapshot;
#   8. restarting all members (SIGTERM, then start) keeps every key (same dump of keys, values and
#      revisions) and the members' HashKV agree;
#   9. no leader (2 of 3 stopped): a put on the survivor fails within 15 s with "etcdserver: no
#      leader" or a timeout ("request timed out" / "context deadline exceeded"), and its endpoint
#      status reports no leader.
# Bounded: every wait has a deadline; only this script's processes are stopped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
SNAP_KEYS=${CLUSTER_SNAP_KEYS:-20000}
echo "# server under test: $SUT"

noise() { grep -v '^{"level"'; } # etcdctl's JSON retry warnings
logs_tail() { local i; for i in "$@"; do echo "== ${C_NAME[i]}"; tail -"${TAIL_N:-8}" "${C_LOG[i]}"; done; }
others() { local i; for i in 1 2 3; do [ "$i" != "$1" ] && printf '%s ' "$i"; done; }

if start_cluster "$SUT" 3 --snapshot-count 1000; then t_ok "3 members start as a new cluster"
else t_fail "3 members start as a new cluster" "$(logs_tail 1 2 3)"; t_done; fi
IC=$(c_initial_cluster 1 2 3)

# --- 1. one leader -----------------------------------------------------------------------------
if L=$(c_wait_leader "1 2 3" 10); then t_ok "the members agree on one leader (c$L)"
else t_fail "the members agree on one leader" "$(for i in 1 2 3; do c_status "$i"; done)"; fi
tbl=$(ctl 1 endpoint status --cluster -w table 2>&1)
rows=$(echo "$tbl" | awk -F'|' 'NF > 8 && $2 ~ /http/' | wc -l)
leaders=$(echo "$tbl" | awk -F'|' 'NF > 8 && $2 ~ /http/ && $6 ~ /true/' | wc -l)
if [ "$rows $leaders" = "3 1" ]; then t_ok "endpoint status --cluster -w table: 3 rows, one IS LEADER true"
else t_fail "endpoint status --cluster -w table: 3 rows, one IS LEADER true" "$tbl"; fi
js=$(ctl 1 endpoint status --cluster -w json 2>&1)
got=$(echo "$js" | noise | "$PY" -c '
import json, sys
st = [e["Status"] for e in json.load(sys.stdin)]
lead = [s for s in st if int(s.get("leader", 0)) == int(s["header"]["member_id"])]
print(len(st), len(lead), "agree" if len({int(s.get("leader", 0)) for s in st}) == 1 else "disagree")' 2>&1)
t_eq "endpoint status --cluster -w json: 3 members, one leader all agree on" "3 1 agree" "$got"

# --- 2. writes through any member --------------------------------------------------------------
bad=""
for i in 1 2 3; do ctl "$i" put "any/c$i" "v$i" >/dev/null 2>&1 || bad="$bad c$i"; done
[ -z "$bad" ] && t_ok "a put through each member succeeds" || t_fail "a put through each member succeeds" "failed via:$bad"
lin="" ser=""
for j in 1 2 3; do
  for i in 1 2 3; do
    v=$(ctl "$j" get "any/c$i" --print-value-only 2>&1 | noise)
    [ "$v" = "v$i" ] || lin="$lin c$j:any/c$i=[$v]"
    v=$(ctl "$j" get "any/c$i" --print-value-only --consistency=s 2>&1 | noise)
    [ "$v" = "v$i" ] || ser="$ser c$j:any/c$i=[$v]"
  done
done
[ -z "$lin" ] && t_ok "linearizable reads on each member see every put" || t_fail "linearizable reads on each member see every put" "$lin"
[ -z "$ser" ] && t_ok "serializable reads on each member see every put" || t_fail "serializable reads on each member see every put" "$ser"

# --- 3. move-leader ----------------------------------------------------------------------------
L=$(c_wait_leader "1 2 3" 10) || L=1
T=$((L % 3 + 1))
TID=$(c_member_id "$T")
out=$(ctl_eps "1 2 3" move-leader "$TID" 2>&1 | noise)
if echo "$out" | grep -q "Leadership transferred from .* to $TID"; then t_ok "move-leader c$L -> c$T answers 'Leadership transferred'"
else t_fail "move-leader c$L -> c$T answers 'Leadership transferred'" "$out"; fi
deadline=$((SECONDS + 10))
while [ "$(c_find_leader "1 2 3")" != "$T" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
t_eq "after move-leader every member reports c$T as leader" "$T" "$(c_find_leader "1 2 3")"
row=$(ctl 1 endpoint status --cluster -w table 2>&1 | awk -F'|' -v ep="$(c_client_url "$T")" '$2 ~ ep { gsub(/ /, "", $6); print $6 }')
t_eq "endpoint status table shows c$T IS LEADER" true "$row"

# --- 4. learner: add, refuses linearizable requests, promote -----------------------------------
member_define 4 c4 127.0.0.1
retry_while 20 'unhealthy cluster' ctl 1 member add c4 --learner --peer-urls="$(c_peer_url 4)"
out=$T_OUT
ID4=$(echo "$out" | awk '/^Member /{print $2}')
IC4=$(echo "$out" | sed -n 's/^ETCD_INITIAL_CLUSTER="\(.*\)"$/\1/p')
ST4=$(echo "$out" | sed -n 's/^ETCD_INITIAL_CLUSTER_STATE="\(.*\)"$/\1/p')
n4=$(echo "$IC4" | tr ',' '\n' | grep -c .)
if [ -n "$ID4" ] && [ "$ST4" = existing ] && [ "$n4" = 4 ] && echo ",$IC4," | grep -q ",c4=$(c_peer_url 4),"; then
  t_ok "member add --learner prints the member ID and a 4-member ETCD_INITIAL_CLUSTER, state existing"
else
  t_fail "member add --learner prints the member ID and a 4-member ETCD_INITIAL_CLUSTER, state existing" "$out"
fi
got=$(ctl 1 member list -w json 2>&1 | noise | "$PY" -c '
import json, sys
ms = json.load(sys.stdin)["members"]
print(len(ms), ",".join(sorted("%x" % int(m["ID"]) for m in ms if m.get("isLearner"))))' 2>&1)
t_eq "member list: 4 members, the new one a learner" "4 $ID4" "$got"
out=$(ctl 1 member promote "$ID4" 2>&1 | noise)
if echo "$out" | grep -q 'etcdserver: can only promote a learner member which is in sync with leader'; then
  t_ok "promote before the learner runs is refused (not in sync)"
else t_fail "promote before the learner runs is refused (not in sync)" "$out"; fi

member_start 4 existing "${IC4:-$(c_initial_cluster 1 2 3 4)}"
if c_wait_ready 4 30; then t_ok "learner starts with --initial-cluster-state existing"
else t_fail "learner starts with --initial-cluster-state existing" "$(logs_tail 4)"; fi
deadline=$((SECONDS + 15))
until [ "$(ctl 4 get any/c1 --print-value-only --consistency=s 2>/dev/null)" = v1 ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
t_eq "learner serves serializable reads (replicated data)" v1 "$(ctl 4 get any/c1 --print-value-only --consistency=s 2>&1 | noise)"
out=$(ctl 4 get any/c1 2>&1 | noise)
if echo "$out" | grep -q '^Error: etcdserver: rpc not supported for learner$'; then t_ok "learner refuses a linearizable read (rpc not supported for learner)"
else t_fail "learner refuses a linearizable read (rpc not supported for learner)" "$out"; fi
out=$(ctl 4 put any/learner x 2>&1 | noise)
if echo "$out" | grep -q '^Error: etcdserver: rpc not supported for learner$'; then t_ok "learner refuses a put (rpc not supported for learner)"
else t_fail "learner refuses a put (rpc not supported for learner)" "$out"; fi
got=$(c_status 4 | cut -d' ' -f5)
t_eq "endpoint status on the learner: isLearner true" true "$got"

retry_while 30 'in sync with leader' ctl 1 member promote "$ID4"
if echo "$T_OUT" | grep -qE "^Member +$ID4 promoted in cluster"; then t_ok "member promote succeeds once the learner is in sync"
else t_fail "member promote succeeds once the learner is in sync" "$(echo "$T_OUT" | noise | tail -3)"; fi
retry_while 10 'not supported for learner' ctl 4 get any/c2 --print-value-only
t_eq "promoted member serves linearizable reads" v2 "$(echo "$T_OUT" | noise)"
got=$(ctl 1 member list -w json 2>&1 | noise | "$PY" -c '
import json, sys
ms = json.load(sys.stdin)["members"]
print(len(ms), sum(1 for m in ms if m.get("isLearner")))' 2>&1)
t_eq "member list: 4 voting members" "4 0" "$got"

# --- 5. member remove --------------------------------------------------------------------------
# retried while "unhealthy cluster": etcd's strict reconfiguration check wants the remaining voters
# connected for 5 s, and c4 (or a peer link) may be younger than that
retry_while 20 'unhealthy cluster' ctl 1 member remove "$ID4"
out=$(echo "$T_OUT" | noise)
if echo "$out" | grep -qE "^Member +$ID4 removed from cluster"; then t_ok "member remove answers 'Member ... removed'"
else t_fail "member remove answers 'Member ... removed'" "$out"; fi
t0=$(now_ms)
if wait_exit "${C_PID[4]}" 15; then t_ok "the removed member's process exits by itself ($(( $(now_ms) - t0 )) ms, status $T_EXIT_STATUS)"
else t_fail "the removed member's process exits by itself within 15 s" "$(TAIL_N=5 logs_tail 4)"; member_stop 4 KILL; fi
C_PID[4]=""
got=$(ctl 1 member list 2>&1 | noise | grep -c ', started, ')
t_eq "member list: 3 members after the removal" 3 "$got"
if ctl 2 put after/remove ok >/dev/null 2>&1; then t_ok "the 3-member cluster still takes writes"
else t_fail "the 3-member cluster still takes writes" "$(ctl 2 put after/remove ok 2>&1 | noise)"; fi

# --- 6. kill -9 of the leader under load -------------------------------------------------------
L=$(c_wait_leader "1 2 3" 10) || L=1
read -r -a F <<<"$(others "$L")"
acked() { cat "$T_DIR"/ack-*.log 2>/dev/null | wc -l; }
wdeadline=$(( $(date +%s) + 90 ))
WPIDS=()
for k in 0 1; do
  "$PY" "$HERE/writer.py" "${C_CP[${F[k]}]}" "$k" 1000000 "$T_DIR/ack-$k.log" "$wdeadline" &
  WPIDS+=("$!"); track_pid "$!"
done
deadline=$((SECONDS + 30))
while [ "$(acked)" -lt 300 ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
at_kill=$(acked)
t0=$(now_ms)
member_stop "$L" KILL
NL=""
deadline=$((SECONDS + 15))
while [ -z "$NL" ] && [ "$SECONDS" -lt "$deadline" ]; do NL=$(c_find_leader "${F[*]}"); [ -z "$NL" ] && sleep 0.05; done
elapsed=$(( $(now_ms) - t0 ))
if [ -n "$NL" ] && [ "$elapsed" -le 5000 ]; then t_ok "kill -9 of leader c$L ($at_kill acks): c$NL leads after $elapsed ms (<= 5 s)"
else t_fail "kill -9 of leader c$L: a new leader within 5 s" "leader: '${NL}' after $elapsed ms" "$(for i in "${F[@]}"; do c_status "$i"; done)"; fi
deadline=$((SECONDS + 30))
while [ "$(acked)" -lt $((at_kill + 200)) ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.05; done
for p in "${WPIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
final=$(acked)
if [ "$final" -ge $((at_kill + 200)) ]; then t_ok "writes acknowledged after the failover ($((final - at_kill)))"
else t_fail "writes acknowledged after the failover" "acks: $at_kill at kill, $final at the end" "$(cat "$T_DIR"/ack-*.log.unknown 2>/dev/null | tail -3)"; fi
out=$("$PY" "$HERE/check_acks.py" "${C_CP[${NL:-${F[0]}}]}" "$T_DIR"/ack-*.log 2>&1)
if [ $? -eq 0 ]; then t_ok "every acknowledged write is readable after the failover ($(echo "$out" | head -1))"
else t_fail "every acknowledged write is readable after the failover" "$out"; fi
member_start "$L" new "$IC"
if c_wait_ready "$L" 30; then t_ok "the killed member restarts and rejoins"
else t_fail "the killed member restarts and rejoins" "$(logs_tail "$L")"; fi

# --- 7. snapshot catch-up ----------------------------------------------------------------------
L=$(c_wait_leader "1 2 3" 10) || L=1
S=$(others "$L" | cut -d' ' -f1)
member_stop "$S" TERM 15
out=$(run_bounded 120 "$PY" "$HERE/bulk_put.py" "$(c_ep "$L")" snap/ "$SNAP_KEYS" 2>&1)
if [ $? -eq 0 ]; then t_ok "$SNAP_KEYS keys written while c$S was down: $out"
else t_fail "$SNAP_KEYS keys written while c$S was down" "$out"; fi
member_start "$S" new "$IC"
t0=$(now_ms)
deadline=$((SECONDS + 60))
caught=""
while [ "$SECONDS" -lt "$deadline" ]; do
  sl=$(c_status "$L") ss=$(c_status "$S")
  if [ -n "$ss" ] && [ "$(echo "$sl" | cut -d' ' -f3,4)" = "$(echo "$ss" | cut -d' ' -f3,4)" ]; then caught=1; break; fi
  sleep 0.2
done
if [ -n "$caught" ]; then t_ok "restarted c$S reaches the leader's revision and raft index ($(( $(now_ms) - t0 )) ms)"
else t_fail "restarted c$S reaches the leader's revision and raft index" "leader c$L: $sl" "c$S: $ss" "$(logs_tail "$S")"; fi
# etcdctl 3.4 has no --count-only: a range's "count" is the total even with --limit=1
t_eq "serializable count of snap/ on c$S" "$SNAP_KEYS" "$(ctl "$S" get snap/ --prefix --limit=1 --consistency=s -w json 2>/dev/null |
  "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("count", 0))' 2>&1)"
# etcd 3.4: "applied incoming snapshot at index N" / "restored ... snapshot"; cetcd: a line naming a
# received or installed snapshot.
snaplog=$(c_since_start "$S" | grep -iE 'snapshot' | grep -iE 'incoming|receiv|install|restor|appl' | head -3)
if [ -n "$snaplog" ]; then t_ok "c$S's log mentions receiving a snapshot: $(echo "$snaplog" | head -1 | cut -c1-160)"
else t_fail "c$S's log mentions receiving a snapshot" "$(c_since_start "$S" | grep -i snap | head -5)"; fi

# --- 8. restarting all members keeps every key -------------------------------------------------
hashes() { local i; for i in 1 2 3; do ctl "$i" endpoint hashkv -w json 2>/dev/null | "$PY" -c '
import json, sys; print(json.load(sys.stdin)[0]["HashKV"]["hash"])' 2>&1; done | sort -u | wc -l; }
L=$(c_wait_leader "1 2 3" 10) || L=1
c_dump "$L" "$T_DIR/before_restart"
nkeys=$(grep -vc '^revision' "$T_DIR/before_restart")
for i in 1 2 3; do member_stop "$i" TERM 15; done
for i in 1 2 3; do member_start "$i" new "$IC"; done
ok=1
for i in 1 2 3; do c_wait_ready "$i" 30 || ok=""; done
if [ -n "$ok" ]; then t_ok "all 3 members restart"; else t_fail "all 3 members restart" "$(logs_tail 1 2 3)"; fi
L=$(c_wait_leader "1 2 3" 15) || L=1
for i in 1 2 3; do c_dump "$i" "$T_DIR/after_restart.c$i"; done
for i in 1 2 3; do t_same "c$i after restarting all: same $nkeys keys, values, revisions" "$T_DIR/before_restart" "$T_DIR/after_restart.c$i"; done
t_eq "HashKV equal on the 3 members" 1 "$(hashes)"

# --- 9. no leader ------------------------------------------------------------------------------
L=$(c_wait_leader "1 2 3" 10) || L=1
read -r A B <<<"$(others "$L")"
member_stop "$A" TERM 15
member_stop "$B" TERM 15
t0=$(now_ms)
out=$(ctl "$L" put noleader x --command-timeout=30s 2>&1 | noise)
elapsed=$(( $(now_ms) - t0 ))
if [ "$elapsed" -le 15000 ] && ! echo "$out" | grep -q '^OK' &&
  echo "$out" | grep -qE '^Error: (etcdserver: no leader|etcdserver: request timed out|.*context deadline exceeded)'; then
  t_ok "no quorum: a put fails in $elapsed ms with '$out'"
else t_fail "no quorum: a put fails within 15 s with 'no leader' or a timeout" "after $elapsed ms: $out" "$(logs_tail "$L")"; fi
deadline=$((SECONDS + 10))
until [ "$(c_leader_of "$L")" = 0 ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
t_eq "no quorum: endpoint status on the survivor reports no leader" 0 "$(c_leader_of "$L")"
t_done
