#!/usr/bin/env bash
# tests/integration/ops.sh BIN_DIR: the operations surface of one member, driven with Debian's
# etcdctl 3.4. Written and first run against etcd 3.4 (SERVER_BIN=/usr/bin/etcd); the same
# expectations hold for cetcd.
#   1. quota: with --quota-backend-bytes 200000, 20 KB puts are refused after a while with
#      "etcdserver: mvcc: database space exceeded", and the NOSPACE alarm is raised: `alarm
#      list` shows it, `endpoint status -w json` lists it in errors, /health answers false;
#   2. under NOSPACE a put, a txn with a put and a lease grant are refused (same error); a get
#      and a delete work;
#   3. after deleting the big keys, compaction to the current revision and `defrag` work under the alarm, and defrag gives
#      space back: the db size drops; puts stay refused until the alarm is disarmed;
#   4. `alarm disarm` clears it: `alarm list` is empty, a put works, /health is true again;
#   4b. a defrag keeps an open watch stream (it sees a later put) and a lease (its keys, its
#      remaining TTL);
#   5. the seeds' maintenance script (002, 运维最佳实践) runs unchanged, step by step: endpoint
#      health, status -w table, compact to the revision from status -w json, defrag, snapshot
#      save, snapshot status -w table, each exiting 0 with etcdctl's usual output (cetcd streams
#      etcd's bbolt format, so Debian's etcdctl reads its snapshot); for cetcd, cetcdctl's
#      `snapshot status -w json` on the same file equals etcdctl's;
#   6. auto-compaction, periodic (--auto-compaction-retention 2s): after 10 puts, revision 2 is
#      compacted within 15 s (etcd 3.4 compacts to the revision of one retention ago every
#      retention) and the newest value still reads;
#   7. auto-compaction, revision (retention 5): cetcd only, since etcd checks every 5 minutes
#      (CETCD_TEST_AUTOCOMPACT_CHECK_MS=200 shortens cetcd's check): after 20 puts the
#      compaction point becomes current revision - 5 (etcd_debugging_mvcc_compact_revision),
#      revision - 5 still reads, revision - 6 is compacted;
#   8. a 3-member cluster with the tiny quota: filled through c1, the alarm shows on c3 and
#      puts through c2 are refused; compact through c2, defrag of all three, disarm through c3:
#      no alarm on c1, a put through c2 works, and the three members hold identical keys and
#      revisions.
# Bounded: every wait has a deadline; only this script's processes are stopped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"
NOSPACE="etcdserver: mvcc: database space exceeded"

alloc_ports CP PP || exit 1
start_member "$SUT" q "$T_DIR/q" "$CP" "$PP" --quota-backend-bytes 200000
wait_ready "http://127.0.0.1:$CP" 20 || { t_fail "member ready"; t_done; }
E=("$ETCDCTL" --endpoints="127.0.0.1:$CP" --command-timeout=10s)
e() { timeout -k 2 30 "${E[@]}" "$@"; }
status_json() { e endpoint status -w json; }
db_size() { status_json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["dbSize"])'; }
revision() { status_json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])'; }
health() { curl -s -m 5 "http://127.0.0.1:$CP/health"; }
# has NAME PATTERN CMD...: ok when CMD's output (stdout and stderr) matches the extended regex
has() {
  local name=$1 pat=$2 out
  shift 2
  out=$("$@" 2>&1)
  if grep -qE -- "$pat" <<<"$out"; then t_ok "$name"; else t_fail "$name" "$(echo "$out" | tail -5)"; fi
}
HEALTH_FALSE='"health": *"false"'
HEALTH_TRUE='"health": *"true"'

# 1. fill up
V=$(head -c 20000 /dev/zero | tr '\0' x)
refused=""
for n in $(seq 1 60); do
  if ! out=$(e put "/big/k$n" "$V" 2>&1); then refused=$out; break; fi
done
has "a put is refused before 60 x 20 KB (after $((n - 1)))" "$NOSPACE" echo "$refused"
has "alarm list shows NOSPACE" 'alarm:NOSPACE' e alarm list
has "endpoint status lists the alarm in errors" '"errors":\[".*alarm:NOSPACE' e endpoint status -w json
has "/health is false under NOSPACE" "$HEALTH_FALSE" health

# 2. what still works
has "put refused: $NOSPACE" "$NOSPACE" e put small v
has "txn with a put refused: $NOSPACE" "$NOSPACE" sh -c "printf '\nput small v\n\n\n' | timeout -k 2 30 ${E[*]} txn"
has "lease grant refused: $NOSPACE" "$NOSPACE" e lease grant 100
t_eq "get works" 20000 "$(e get /big/k1 --print-value-only | tr -d '\n' | wc -c)"
t_eq "delete works" 1 "$(e del /big/k2)"

# 3. compaction and defrag under the alarm
before=$(db_size)
e del /big/ --prefix >/dev/null
rev=$(revision)
t_check "compact $rev works under NOSPACE" e compact "$rev"
has "defrag works under NOSPACE" 'Finished defragmenting etcd member' e defrag
after=$(db_size)
t_check "defrag gives space back (db size $before -> $after)" test "$after" -lt "$before"
has "put still refused before disarm" "$NOSPACE" e put small v

# 4. disarm
t_check "alarm disarm" e alarm disarm
t_eq "alarm list empty after disarm" "" "$(e alarm list 2>&1)"
t_check "put works after disarm" e put small v
has "/health is true after disarm" "$HEALTH_TRUE" health

# 4b. defrag keeps a watch stream and a lease
L=$(e lease grant 60 | awk '{print $2}')
e put /lk v --lease="$L" >/dev/null
timeout -k 2 40 "${E[@]}" watch /w >"$T_DIR/watch.out" 2>&1 &
WPID=$!
track_pid "$WPID"
saw() { grep -qx "$1" "$T_DIR/watch.out"; }
watch_first() { e put /w first >/dev/null; saw first; }
wait_for 10 "the watch stream" watch_first >/dev/null || t_fail "watch established"
has "defrag with a watch and a lease" 'Finished defragmenting etcd member' e defrag
e put /w after >/dev/null
t_check "the watch stream sees a put after defrag" wait_for 10 "the event" saw after
ttl=$(e lease timetolive "$L" --keys)
rem=$(sed -nE 's/.*remaining\(([0-9]+)s\).*/\1/p' <<<"$ttl")
t_check "the lease survives defrag, its deadline kept (remaining ${rem:-?} s of 60)" test "${rem:-0}" -ge 40 -a "${rem:-99}" -le 60
has "the lease still holds its key" 'attached keys\(\[/lk\]\)' echo "$ttl"
kill "$WPID" 2>/dev/null

# 5. the seeds' maintenance script, ETCDCTL_ENDPOINTS as it sets it (plain HTTP here)
export ETCDCTL_ENDPOINTS="http://127.0.0.1:$CP"
for n in $(seq 1 20); do timeout 10 "$ETCDCTL" put "/m/k$n" "v$n" >/dev/null; done
has "maintenance 1: endpoint health" 'is healthy' timeout 30 "$ETCDCTL" endpoint health
has "maintenance 2: endpoint status -w table" 'DB SIZE' timeout 30 "$ETCDCTL" endpoint status -w table
rev=$(timeout 30 "$ETCDCTL" endpoint status -w json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
has "maintenance 3: compact \$rev ($rev)" "compacted revision $rev" timeout 30 "$ETCDCTL" compact "$rev"
has "maintenance 4: defrag" 'Finished defragmenting etcd member' timeout 30 "$ETCDCTL" defrag
has "maintenance 5: snapshot save" 'Snapshot saved at' timeout 60 "$ETCDCTL" snapshot save "$T_DIR/etcd-backup.db"
has "maintenance 6: snapshot status -w table" 'TOTAL KEYS' timeout 30 "$ETCDCTL" snapshot status "$T_DIR/etcd-backup.db" -w table
if ! is_real_etcd "$SUT"; then
  t_eq "maintenance 6: cetcdctl snapshot status -w json = etcdctl's" \
    "$(timeout 30 "$ETCDCTL" snapshot status "$T_DIR/etcd-backup.db" -w json 2>/dev/null | head -1)" \
    "$(timeout 30 "$(dirname "$SUT")/cetcdctl" snapshot status "$T_DIR/etcd-backup.db" -w json 2>/dev/null | head -1)"
fi
t_eq "the data survived the maintenance" v20 "$(timeout 10 "$ETCDCTL" get /m/k20 --print-value-only)"
unset ETCDCTL_ENDPOINTS
stop_all

COMPACTED="required revision has been compacted"
# 6. periodic auto-compaction
alloc_ports CP PP || exit 1
start_member "$SUT" ap "$T_DIR/ap" "$CP" "$PP" --auto-compaction-mode periodic --auto-compaction-retention 2s
wait_ready "http://127.0.0.1:$CP" 20 || t_fail "periodic member ready"
E=("$ETCDCTL" --endpoints="127.0.0.1:$CP" --command-timeout=10s)
for n in $(seq 1 10); do e put /ac/k "v$n" >/dev/null; done
rev2_compacted() {  # (not a pipe into grep: under pipefail etcdctl's own failure would count)
  local out
  e put /ac/tick x >/dev/null
  out=$(e get /ac/k --rev=2 2>&1)
  [[ $out == *"$COMPACTED"* ]]
}
t_check "periodic 2s: revision 2 compacted within 15 s" wait_for 15 "auto-compaction" rev2_compacted
t_eq "periodic: the newest value still reads" v10 "$(e get /ac/k --print-value-only)"
stop_all

# 7. revision auto-compaction
if is_real_etcd "$SUT"; then
  t_skip "revision mode" "etcd 3.4 checks every 5 minutes"
else
  alloc_ports CP PP || exit 1
  CETCD_TEST_AUTOCOMPACT_CHECK_MS=200 start_member "$SUT" ar "$T_DIR/ar" "$CP" "$PP" \
    --auto-compaction-mode revision --auto-compaction-retention 5
  wait_ready "http://127.0.0.1:$CP" 20 || t_fail "revision member ready"
  E=("$ETCDCTL" --endpoints="127.0.0.1:$CP" --command-timeout=10s)
  for n in $(seq 1 20); do e put /ar/k "v$n" >/dev/null; done
  cur=$(revision)
  compact_rev() {
    local m
    m=$(curl -s -m 5 "http://127.0.0.1:$CP/metrics")
    grep -qx "etcd_debugging_mvcc_compact_revision $((cur - 5))" <<<"$m"
  }
  t_check "revision 5: compacted to $((cur - 5)) within 10 s" wait_for 10 "auto-compaction" compact_rev
  has "revision 5: revision $((cur - 5)) still reads" "^v" e get /ar/k --rev=$((cur - 5)) --print-value-only
  has "revision 5: revision $((cur - 6)) is compacted" "$COMPACTED" e get /ar/k --rev=$((cur - 6))
fi

stop_all

# 8. NOSPACE is cluster-wide
cluster_define "$SUT" 3 --quota-backend-bytes 200000 || exit 1
IC=$(c_initial_cluster 1 2 3)
for i in 1 2 3; do member_start "$i" new "$IC"; done
for i in 1 2 3; do c_wait_ready "$i" 30 || t_fail "cluster member c$i ready"; done
for n in $(seq 1 60); do ctl 1 put "/big/k$n" "$V" >/dev/null 2>&1 || break; done
has "cluster: a put through c1 is refused after $((n - 1)) puts" "$NOSPACE" ctl 1 put small v
# Each member refuses by the alarms it has applied (as etcd): await them on the member asked.
alarm_on() { local out; out=$(ctl "$1" alarm list 2>&1); [[ $out == *alarm:NOSPACE* ]]; }
t_check "cluster: c3 lists the NOSPACE alarm" wait_for 10 "the alarm on c3" alarm_on 3
wait_for 10 "the alarm on c2" alarm_on 2 >/dev/null
has "cluster: a put through c2 is refused" "$NOSPACE" ctl 2 put small v
ctl 1 del /big/ --prefix >/dev/null
rev=$(c_status 1 | cut -d' ' -f3)
t_check "cluster: compact $rev through c2" ctl 2 compact "$rev"
# defrag is not replicated: each member must have applied the compaction before its own defrag
# (on a timeout wait_for shows the member's last answer; 30 s: three ASan members share 2 cores)
compacted_on() {
  local out
  out=$(ctl "$1" get --consistency=s /big/k1 --rev=$((rev - 1)) 2>&1)
  [[ $out == *"$COMPACTED"* ]] || { echo "c$1 answered: ${out:-nothing}; $(c_status "$1")"; return 1; }
}
for i in 1 2 3; do
  out=$(wait_for 30 "the compaction on c$i" compacted_on "$i") || t_fail "compaction applied on c$i" "$out"
done
out=$(ctl_eps "1 2 3" defrag 2>&1)
t_eq "cluster: defrag of every member" 3 "$(grep -c 'Finished defragmenting etcd member' <<<"$out")"
t_check "cluster: alarm disarm through c3" ctl 3 alarm disarm
t_eq "cluster: no alarm left on c1" "" "$(ctl 1 alarm list 2>&1)"
# c2 may apply the disarm a moment after c1: retry while it still answers NOSPACE (bounded)
if retry_while 10 "database space exceeded" ctl 2 put small v; then t_ok "cluster: a put through c2 works again"
else t_fail "cluster: a put through c2 works again" "c2 answered: $T_OUT" "c2: $(c_status 2)" "alarms on c2: $(ctl 2 alarm list 2>&1)"; fi
# the quota is asked before proposing, never while applying: whatever their file sizes, the
# three members applied the same entries (a put refused on one and applied on another would
# split their revisions)
for i in 1 2 3; do c_dump "$i" "$T_DIR/quota.c$i"; done
for i in 2 3; do t_same "cluster: c$i holds c1's keys, values and revisions" "$T_DIR/quota.c1" "$T_DIR/quota.c$i"; done

t_done
