#!/usr/bin/env bash
# tests/integration/lease.sh BIN_DIR: leases, driven with Debian's etcdctl 3.4 and the JSON
# gateway, first against one member, then against a 3-member cluster (grants, puts and reads
# through different members there). Written and first run against etcd 3.4
# (SERVER_BIN=/usr/bin/etcd); the same expectations hold for cetcd, except one (marked below).
#   For one member and for the cluster:
#   1. `lease grant 1` is granted with the minimum TTL, 2 s (ceil(1.5 x election timeout));
#      a TTL above 9,000,000,000 s is refused ("too large lease TTL");
#   2. put --lease attaches; a later put without lease, and a delete, detach; --ignore-lease
#      keeps the lease; a txn put attaches: `lease timetolive --keys` lists exactly the
#      attached keys (remaining TTL close to the granted 60 s); `lease list` shows the lease;
#      the gateway's /v3/kv/lease/timetolive and /v3/kv/lease/leases answer as /v3/lease/...;
#   3. `lease keep-alive --once` answers TTL(60); a keepalive of an unknown lease: etcdctl
#      reports "requested lease not found", the gateway's /v3/lease/keepalive answers
#      {"result":{...,"ID":...}} with TTL 0 (omitted); timetolive of it: "already expired";
#   4. `lease revoke`: every attached key is deleted in ONE revision R (present at R-1, gone
#      at R), a detached key survives, the lease is gone; a second revoke: "lease not found";
#   5. a 2 s lease nobody renews: its key disappears (bounded poll, not before 1 s).
#   One member only:
#   6. under the NOSPACE alarm (raised through the Alarm API) a grant is refused ("database
#      space exceeded"), a keepalive and a revoke work; after disarm a grant works again.
#   Cluster only:
#   7. kill -9 of the leader while etcdctl keeps one lease alive through the followers: its key
#      survives well past the TTL; another lease (30 s, not renewed) still exists on the new
#      leader -- cetcd only: with its remaining TTL close to what it was before the kill (etcd
#      3.4 resets every remaining TTL to the full TTL when a new leader takes over); the
#      killed member rejoins and reports the lease too;
#   8. snapshot catch-up (--snapshot-count 1000): a follower stopped while a lease is granted
#      (one key attached, one detached again), another revoked, and LEASE_SNAP_KEYS (12,000)
#      keys put, catches up through a snapshot and then knows both leases as the leader does;
#      a revoke through it deletes the same keys on every member (same revision everywhere);
#   9. a lease granted before a restart of all members still exists after it, and expires.
# Bounded: every wait has a deadline; only this script's processes are stopped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
SNAP_KEYS=${LEASE_SNAP_KEYS:-12000}
echo "# server under test: $SUT"
REAL=0
is_real_etcd "$SUT" && REAL=1

noise() { grep -v '^{"level"'; }
logs_tail() { local i; for i in "$@"; do echo "== ${C_NAME[i]}"; tail -"${TAIL_N:-8}" "${C_LOG[i]}"; done; }

# t_match NAME REGEX TEXT: ok when TEXT matches the extended REGEX.
t_match() {
  if echo "$3" | grep -qE -- "$2"; then t_ok "$1"; else t_fail "$1" "expected /$2/" "actual: $3"; fi
}

# grant I TTL: grants through member I, prints the lease ID in hex (empty on failure).
grant() { ctl "$1" lease grant "$2" 2>/dev/null | awk '/ granted with TTL/ { print $2 }'; }

# remaining I ID: the remaining TTL member I reports for lease ID (hex), -1 if unknown.
remaining() {
  ctl "$1" lease timetolive "$2" -w json 2>/dev/null | noise |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin).get("ttl", -1))' 2>/dev/null
}

# value I KEY: the value of KEY on member I (linearizable), empty if absent.
value() { ctl "$1" get "$2" --print-value-only 2>/dev/null | noise; }

# gw I PATH JSON: POST to member I's gateway.
gw() { curl -s -m 10 "$(c_client_url "$1")$2" -d "$3"; }

# await_gone I KEY SECONDS: polls until KEY is absent on member I; prints the ms it took.
await_gone() {
  local t0 deadline=$((SECONDS + $3))
  t0=$(now_ms)
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ -z "$(value "$1" "$2")" ] && { echo $(($(now_ms) - t0)); return 0; }
    sleep 0.2
  done
  return 1
}

# --- 1-5: the basics, grant through member G, put through P, read through R --------------------
basics() {
  local g=$1 p=$2 r=$3 tag=$4 out L dec rev k bad
  out=$(ctl "$g" lease grant 1 2>&1 | noise)
  t_match "[$tag] lease grant 1: granted with the minimum TTL 2 s" "^lease [0-9a-f]+ granted with TTL\(2s\)$" "$out"
  out=$(ctl "$g" lease grant 9000000001 2>&1 | noise)
  t_match "[$tag] lease grant 9000000001: too large lease TTL" "etcdserver: too large lease TTL" "$out"

  L=$(grant "$g" 60)
  [ -n "$L" ] && t_ok "[$tag] lease grant 60" || t_fail "[$tag] lease grant 60"
  dec=$((16#$L))
  bad=""
  ctl "$p" put "$tag/k1" v1 --lease="$L" >/dev/null 2>&1 || bad="$bad put-k1"
  ctl "$p" put "$tag/k2" v2 --lease="$L" >/dev/null 2>&1 || bad="$bad put-k2"
  ctl "$p" put "$tag/k2" v2b >/dev/null 2>&1 || bad="$bad reput-k2"
  printf '\nput %s v3 --lease=%s\n\n\n' "$tag/k3" "$L" | ctl "$p" txn >/dev/null 2>&1 || bad="$bad txn-k3"
  ctl "$p" put "$tag/k4" v4 --lease="$L" >/dev/null 2>&1 || bad="$bad put-k4"
  ctl "$p" del "$tag/k4" >/dev/null 2>&1 || bad="$bad del-k4"
  ctl "$p" put "$tag/k5" v5 --lease="$L" >/dev/null 2>&1 || bad="$bad put-k5"
  ctl "$p" put "$tag/k5" v5b --ignore-lease >/dev/null 2>&1 || bad="$bad ignore-k5"
  [ -z "$bad" ] && t_ok "[$tag] puts, txn and delete with the lease" || t_fail "[$tag] puts, txn and delete with the lease" "$bad"
  out=$(ctl "$r" lease timetolive "$L" --keys 2>&1 | noise)
  t_match "[$tag] timetolive --keys: granted 60 s, remaining close" \
    "^lease $L granted with TTL\(60s\), remaining\(5[5-9]s\), attached keys\(\[.*\]\)$" "$out"
  # etcd lists the keys in no particular order
  t_eq "[$tag] timetolive --keys: exactly k1 k3 k5 attached" "$tag/k1 $tag/k3 $tag/k5" \
    "$(echo "$out" | sed -E 's/.*attached keys\(\[(.*)\]\)$/\1/' | tr ' ' '\n' | sort | xargs)"
  out=$(ctl "$r" lease list 2>&1 | noise)
  t_match "[$tag] lease list shows it" "^$L$" "$out"
  out=$(gw "$r" /v3/kv/lease/timetolive "{\"ID\":\"$dec\"}")
  t_match "[$tag] gateway /v3/kv/lease/timetolive" "\"ID\":\"$dec\",\"TTL\":\"5[5-9]\",\"grantedTTL\":\"60\"" "$out"
  out=$(gw "$r" /v3/kv/lease/leases '{}')
  t_match "[$tag] gateway /v3/kv/lease/leases" "\{\"ID\":\"$dec\"\}" "$out"

  out=$(ctl "$g" lease keep-alive --once "$L" 2>&1 | noise)
  t_match "[$tag] keep-alive --once: TTL(60)" "^lease $L keepalived with TTL\(60\)$" "$out"
  out=$(ctl "$g" lease keep-alive --once 1234 2>&1 | noise)
  t_match "[$tag] keep-alive --once of an unknown lease: not found" "requested lease not found" "$out"
  out=$(gw "$g" /v3/lease/keepalive '{"ID":"4660"}')
  t_match "[$tag] gateway keepalive of an unknown lease: TTL 0 (omitted)" \
    '^\{"result":\{"header":\{[^}]*\},"ID":"4660"\}\}$' "$(echo "$out" | tr -d '\n')"
  out=$(gw "$g" /v3/lease/keepalive "{\"ID\":\"$dec\"}")
  t_match "[$tag] gateway keepalive: TTL 60" "^\{\"result\":\{\"header\":\{[^}]*\},\"ID\":\"$dec\",\"TTL\":\"60\"\}\}$" "$(echo "$out" | tr -d '\n')"
  out=$(ctl "$r" lease timetolive 1234 2>&1 | noise)
  t_match "[$tag] timetolive of an unknown lease: already expired" "^lease 0000000000001234 already expired$" "$out"

  rev=$(ctl "$g" lease revoke "$L" -w json 2>/dev/null | noise |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])' 2>/dev/null)
  [ -n "$rev" ] && t_ok "[$tag] lease revoke (revision $rev)" || t_fail "[$tag] lease revoke"
  bad=""
  for k in k1 k3 k5; do
    [ -n "$(ctl "$r" get "$tag/$k" --rev=$((rev - 1)) --print-value-only 2>/dev/null | noise)" ] || bad="$bad $k@$((rev - 1))"
    [ -z "$(ctl "$r" get "$tag/$k" --rev="$rev" --print-value-only 2>/dev/null | noise)" ] || bad="$bad $k@$rev"
  done
  [ -z "$bad" ] && t_ok "[$tag] revoke deleted k1 k3 k5 in one revision" || t_fail "[$tag] revoke deleted k1 k3 k5 in one revision" "still/never there:$bad"
  t_eq "[$tag] the detached key survives the revoke" v2b "$(value "$r" "$tag/k2")"
  out=$(ctl "$r" lease timetolive "$L" 2>&1 | noise)
  t_match "[$tag] the revoked lease is gone" "already expired" "$out"
  out=$(ctl "$g" lease revoke "$L" 2>&1 | noise)
  t_match "[$tag] revoking it again: lease not found" "requested lease not found" "$out"

  L=$(grant "$g" 2)
  ctl "$p" put "$tag/exp" v --lease="$L" >/dev/null 2>&1
  t_eq "[$tag] a key on a 2 s lease exists" v "$(value "$r" "$tag/exp")"
  if ms=$(await_gone "$r" "$tag/exp" 15); then
    if [ "$ms" -ge 1000 ]; then t_ok "[$tag] it disappears when nobody renews the lease (after ${ms} ms)"
    else t_fail "[$tag] it disappears when nobody renews the lease" "gone after only $ms ms"; fi
  else
    t_fail "[$tag] it disappears when nobody renews the lease" "still there after 15 s"
  fi
}

# --- one member --------------------------------------------------------------------------------
C_BIN=$SUT
member_define 1 s1 127.0.0.1 || exit 2
member_start 1 new "$(c_initial_cluster 1)"
if c_wait_ready 1 20; then t_ok "one member starts"; else t_fail "one member starts" "$(logs_tail 1)"; t_done; fi
basics 1 1 1 one

# 6. the NOSPACE alarm (raised through the Alarm API): grants refused, renewals and revokes work
L=$(grant 1 60)
ctl 1 put nospace/k v --lease="$L" >/dev/null 2>&1
MID=$(ctl 1 endpoint status -w json 2>/dev/null | noise |
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["Status"]["header"]["member_id"])' 2>/dev/null)
out=$(gw 1 /v3/maintenance/alarm "{\"action\":\"ACTIVATE\",\"memberID\":\"$MID\",\"alarm\":\"NOSPACE\"}")
t_match "NOSPACE raised" "NOSPACE" "$(ctl 1 alarm list 2>&1 | noise)"
out=$(ctl 1 lease grant 10 2>&1 | noise)
t_match "under NOSPACE a grant is refused" "etcdserver: mvcc: database space exceeded" "$out"
out=$(ctl 1 lease keep-alive --once "$L" 2>&1 | noise)
t_match "under NOSPACE a keepalive works" "^lease $L keepalived with TTL\(60\)$" "$out"
out=$(ctl 1 lease revoke "$L" 2>&1 | noise)
t_match "under NOSPACE a revoke works" "^lease $L revoked$" "$out"
t_eq "the revoked lease's key is gone" "" "$(value 1 nospace/k)"
ctl 1 alarm disarm >/dev/null 2>&1
[ -n "$(grant 1 10)" ] && t_ok "after disarm a grant works" || t_fail "after disarm a grant works"
member_stop 1 TERM 15

# --- three members -----------------------------------------------------------------------------
if start_cluster "$SUT" 3 --snapshot-count 1000; then t_ok "3 members start as a new cluster"
else t_fail "3 members start as a new cluster" "$(logs_tail 1 2 3)"; t_done; fi
IC=$(c_initial_cluster 1 2 3)
L=$(c_wait_leader "1 2 3" 10) || L=1
F1=$((L % 3 + 1))
F2=$(((L + 1) % 3 + 1))
echo "# leader c$L, followers c$F1 c$F2"
basics "$F1" "$F2" "$L" cluster

# 7. kill -9 of the leader
K=$(grant "$F1" 8)
M=$(grant "$F1" 30)
ctl "$F2" put ha/alive v --lease="$K" >/dev/null 2>&1
ctl "$F2" put ha/m v --lease="$M" >/dev/null 2>&1
timeout -k 2 60 "$ETCDCTL" --endpoints="$(c_ep "$F1"),$(c_ep "$F2")" lease keep-alive "$K" \
  >"$T_DIR/keepalive.log" 2>&1 &
KA=$!
track_pid "$KA"
R0=$(remaining "$F1" "$M")
t0=$(now_ms)
member_stop "$L" KILL
if NL=$(c_wait_leader "$F1 $F2" 15); then t_ok "a new leader after kill -9 of the leader (c$NL)"
else t_fail "a new leader after kill -9 of the leader" "$(logs_tail "$F1" "$F2")"; NL=$F1; fi
R1=$(remaining "$NL" "$M")
el=$((($(now_ms) - t0) / 1000))
if [ "$REAL" = 1 ]; then
  # etcd 3.4's new leader resets every lease to its full TTL (plus an extension)
  if [ "${R1:--1}" -gt 0 ]; then t_ok "the 30 s lease exists on the new leader (remaining ${R1}s)"
  else t_fail "the 30 s lease exists on the new leader" "remaining: $R1"; fi
else
  # cetcd only: the remaining TTL carries over (applied renewals set it on every member)
  if [ "${R1:--1}" -le "${R0:-0}" ] && [ "${R1:--1}" -ge $((${R0:-0} - el - 2)) ]; then
    t_ok "the 30 s lease's remaining TTL carries over to the new leader (${R0}s -> ${R1}s after ${el}s)"
  else
    t_fail "the 30 s lease's remaining TTL carries over to the new leader" "before: $R0, after ${el}s: $R1"
  fi
fi
# the kept-alive key must outlive its 8 s TTL by far
deadline=$((SECONDS + 12))
lost=""
while [ "$SECONDS" -lt "$deadline" ]; do
  [ "$(value "$NL" ha/alive)" = v ] || { lost="gone after $((($(now_ms) - t0) / 1000)) s"; break; }
  sleep 0.5
done
[ -z "$lost" ] && t_ok "the kept-alive key survives 12 s past the kill (TTL 8 s)" || t_fail "the kept-alive key survives 12 s past the kill (TTL 8 s)" "$lost" "$(tail -5 "$T_DIR/keepalive.log")"
kill "$KA" 2>/dev/null
wait "$KA" 2>/dev/null
n=$(grep -c "keepalived with TTL(8)" "$T_DIR/keepalive.log")
if [ "$n" -ge 3 ]; then t_ok "etcdctl keep-alive renewed it across the failover ($n answers)"
else t_fail "etcdctl keep-alive renewed it across the failover" "$(tail -5 "$T_DIR/keepalive.log")"; fi
member_start "$L" new "$IC"
if c_wait_ready "$L" 30; then t_ok "the killed member rejoins"; else t_fail "the killed member rejoins" "$(logs_tail "$L")"; fi
out=$(retry_while 10 "already expired|deadline|unavailable|no leader" ctl "$L" lease timetolive "$M" --keys; echo "$T_OUT" | noise)
t_match "the rejoined member reports the 30 s lease and its key" "^lease $M granted with TTL\(30s\), remaining\([0-9]+s\), attached keys\(\[ha/m\]\)$" "$out"

# 8. snapshot catch-up: a follower that missed lease changes gets them with a snapshot
L=$(c_wait_leader "1 2 3" 10) || L=1
S=$((L % 3 + 1))
Y=$(grant "$L" 60)
ctl "$L" put snap/y v --lease="$Y" >/dev/null 2>&1
member_stop "$S" TERM 15
X=$(grant "$L" 60)
bad=""
ctl "$L" put snap/x1 v --lease="$X" >/dev/null 2>&1 || bad="$bad x1"
ctl "$L" put snap/x2 v --lease="$X" >/dev/null 2>&1 || bad="$bad x2"
ctl "$L" put snap/x2 w >/dev/null 2>&1 || bad="$bad x2-detach"
ctl "$L" lease revoke "$Y" >/dev/null 2>&1 || bad="$bad revoke-y"
out=$(run_bounded 120 "$PY" "$HERE/bulk_put.py" "$(c_ep "$L")" snap/bulk/ "$SNAP_KEYS" 2>&1) || bad="$bad bulk: $out"
[ -z "$bad" ] && t_ok "lease changes and $SNAP_KEYS puts while c$S is down" || t_fail "lease changes and $SNAP_KEYS puts while c$S is down" "$bad"
member_start "$S" new "$IC"
deadline=$((SECONDS + 60))
caught=""
while [ "$SECONDS" -lt "$deadline" ]; do
  sl=$(c_status "$L") ss=$(c_status "$S")
  if [ -n "$ss" ] && [ "$(echo "$sl" | cut -d' ' -f3,4)" = "$(echo "$ss" | cut -d' ' -f3,4)" ]; then caught=1; break; fi
  sleep 0.2
done
[ -n "$caught" ] && t_ok "c$S catches up" || t_fail "c$S catches up" "leader: $sl" "c$S: $ss" "$(logs_tail "$S")"
snaplog=$(c_since_start "$S" | grep -iE 'snapshot' | grep -iE 'incoming|receiv|install|restor|appl' | head -1)
[ -n "$snaplog" ] && t_ok "c$S caught up through a snapshot" || t_fail "c$S caught up through a snapshot" "$(c_since_start "$S" | grep -i snap | head -5)"
out=$(ctl "$S" lease timetolive "$X" --keys 2>&1 | noise)
t_match "c$S knows the lease granted while it was down, with its one key" "^lease $X granted with TTL\(60s\), remaining\([0-9]+s\), attached keys\(\[snap/x1\]\)$" "$out"
out=$(ctl "$S" lease timetolive "$Y" 2>&1 | noise)
t_match "c$S knows the lease revoked while it was down is gone" "already expired" "$out"
ctl "$S" lease revoke "$X" >/dev/null 2>&1
bad=""
for i in 1 2 3; do
  [ -z "$(ctl "$i" get snap/x1 --print-value-only --consistency=s 2>/dev/null | noise)" ] || bad="$bad c$i:x1-left"
  [ "$(ctl "$i" get snap/x2 --print-value-only --consistency=s 2>/dev/null | noise)" = w ] || bad="$bad c$i:x2-lost"
done
[ "$(c_status "$L" | cut -d' ' -f3)" = "$(c_status "$S" | cut -d' ' -f3)" ] || bad="$bad revisions-differ"
[ -z "$bad" ] && t_ok "a revoke through c$S then deletes the same keys on every member" || t_fail "a revoke through c$S then deletes the same keys on every member" "$bad"

# 9. a restart of all members
P=$(grant 1 8)
ctl 2 put rs/key v --lease="$P" >/dev/null 2>&1
for i in 1 2 3; do member_stop "$i" TERM 15; done
for i in 1 2 3; do member_start "$i" new "$IC"; done
ok=1
for i in 1 2 3; do c_wait_ready "$i" 30 || ok=0; done
[ $ok = 1 ] && t_ok "all members restart" || t_fail "all members restart" "$(logs_tail 1 2 3)"
bad=""
for i in 1 2 3; do
  r=$(remaining "$i" "$P")
  [ "${r:--1}" -ge 0 ] || bad="$bad c$i:ttl=$r"
  [ "$(value "$i" rs/key)" = v ] || bad="$bad c$i:key"
done
[ -z "$bad" ] && t_ok "the lease and its key exist after the restart on every member" || t_fail "the lease and its key exist after the restart on every member" "$bad"
if ms=$(await_gone 3 rs/key 25); then t_ok "the lease expires after the restart (key gone after ${ms} ms)"
else t_fail "the lease expires after the restart" "key still there after 25 s"; fi
out=$(ctl 1 lease timetolive "$P" 2>&1 | noise)
t_match "the expired lease is gone" "already expired" "$out"

t_done
