#!/usr/bin/env bash
# hack/bench/cluster.sh [BIN_DIR]: side-by-side benchmark of 3-member clusters, etcd 3.4 ($ETCD,
# /usr/bin/etcd) against cetcd (BIN_DIR/cetcd, default bin/; with BIN_DIR=/usr/bin it compares etcd
# with itself, a check of the harness). Run by `make bench` (hack/bench.sh, BENCH=cluster|all);
# never part of `make test`.
#
# Both clusters run at once on loopback (6 processes, data dirs under one temp dir, server defaults:
# heartbeat 100 ms, election 1000 ms, fsync on); the load is applied to one cluster at a time, the
# same load to each, the two alternating run by run (background load on the machine then hits
# both alike), ALL OF IT AGAINST THE LEADER (found through /v3/maintenance/status):
#   (a) gRPC puts (h2load; one fixed body, so every put writes the same key, as in hack/bench.sh;
#       the leader's revision delta is checked against h2load's success count);
#   (b) gRPC linearizable ranges and (c) serializable ranges of one key holding a VALUE-byte value
#       (hack/bench/range_body.py; gRPC errors come back as HTTP 200, so the data bytes per answer
#       are checked to be at least the value size);
#   each at BENCH_CLUSTER_CONNS connections ("1 64 256"), BENCH_CLUSTER_SECONDS (5) per run;
#   (d) VmRSS of every member 2 s after the last load (leader, and the mean of the two followers);
#   (e) BENCH_ELECTIONS (7) times: kill -9 of the current leader, then the time until a survivor's
#       status names a new leader and until the first put through a survivor is acknowledged
#       (hack/bench/cluster.py elect); the killed member is restarted and the cluster waited for
#       between repetitions (two failed repetitions end the series). Medians are reported, every
#       repetition is printed. At the end every member of a cluster must report one revision.
# Prints a table (row, etcd, cetcd, ratio cetcd/etcd) saved to build/bench/cluster-results.md.
# Only the PIDs started here are ended; the temp dir is removed (KEEP_TMP=1 keeps it, logs too).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib.sh"
BD=$ROOT/hack/bench

SECS=${BENCH_CLUSTER_SECONDS:-5}
CONNS=${BENCH_CLUSTER_CONNS:-1 64 256}
REPS=${BENCH_ELECTIONS:-7}
VSIZE=${BENCH_VALUE:-256}
CETCD=$(resolve_server "${1:-$ROOT/bin}") || exit 2
for tool in h2load curl "$ETCD" "$ETCDCTL"; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (make deps)" >&2; exit 2; }
done
OUT=$ROOT/build/bench
mkdir -p "$OUT"
echo "# 3-member clusters; etcd: $ETCD; cetcd: $CETCD; ${SECS}s per run; $REPS elections; $(nproc) cores"

declare -A BIN PID CP PP   # BIN[side], PID[side.i], CP[side.i] (client port), PP[side.i] (peer)
BIN[etcd]=$ETCD BIN[cetcd]=$CETCD

# start_one SIDE I: starts member I (1..3) of SIDE's cluster; restarts reuse the same flags.
start_one() {
  local s=$1 i=$2 initial="" j
  for j in 1 2 3; do initial+=${initial:+,}$s$j=http://127.0.0.1:${PP[$s.$j]}; done
  echo "=== start $(date -u +%T.%N)" >>"$T_DIR/$s$i.log"
  "${BIN[$s]}" --name "$s$i" --data-dir "$T_DIR/$s$i.data" \
    --listen-client-urls "http://127.0.0.1:${CP[$s.$i]}" --advertise-client-urls "http://127.0.0.1:${CP[$s.$i]}" \
    --listen-peer-urls "http://127.0.0.1:${PP[$s.$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${PP[$s.$i]}" \
    --initial-cluster "$initial" --initial-cluster-token "bench-$s" --initial-cluster-state new \
    >>"$T_DIR/$s$i.log" 2>&1 &
  PID[$s.$i]=$!
  track_pid "$!"
}

ports() { echo "${CP[$1.1]} ${CP[$1.2]} ${CP[$1.3]}"; }
leader_port() { # shellcheck disable=SC2046 # a list of ports
  "$PY" "$BD/cluster.py" leader $(ports "$1")
}

# ready SIDE: every member healthy (sees a leader) within 30 s; prints the log tails if not.
ready() {
  local i j
  for i in 1 2 3; do
    wait_ready "http://127.0.0.1:${CP[$1.$i]}" 30 && continue
    for j in 1 2 3; do echo "== $1$j"; tail -5 "$T_DIR/$1$j.log"; done >&2
    return 1
  done
}

for s in etcd cetcd; do
  for i in 1 2 3; do alloc_ports "CP[$s.$i]" "PP[$s.$i]" || exit 2; done
  for i in 1 2 3; do start_one $s $i; done
done
for s in etcd cetcd; do ready $s || { echo "bench: $s cluster did not start" >&2; exit 1; }; done

. "$ROOT/hack/bench/results.sh"
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print 0 }'; }

# h2run SIDE PORT KIND CONNS BODY: one h2load run; sets RPS P99 OK BAD DATA (bytes of DATA frames).
h2run() {
  local s=$1 port=$2 kind=$3 c=$4 body=$5 f=$T_DIR/h2.$1.$3.$4 method
  method=$([ "$kind" = put ] && echo Put || echo Range)
  timeout -k 5 $((SECS + 30)) h2load -D "$SECS" -c "$c" -t $((c < 2 ? 1 : 2)) -m 1 -d "$body" \
    -H 'content-type: application/grpc' -H 'te: trailers' --log-file="$f.log" \
    "http://127.0.0.1:$port/etcdserverpb.KV/$method" >"$f.out" 2>&1
  read -r RPS P99 OK BAD < <("$PY" "$BD/h2load_stats.py" "$f.out" "$f.log")
  DATA=$(sed -nE 's/^traffic:.* \(([0-9]+)\) data.*/\1/p' "$f.out")
  rec "gRPC $kind c=$c (req/s)" "$s" "$RPS"
  rec "gRPC $kind c=$c p99 (ms)" "$s" "$P99"
}

"$PY" "$BD/put_body.py" "$T_DIR/put.bin" bench/h2 "$VSIZE"
"$PY" "$BD/range_body.py" "$T_DIR/range-lin.bin" bench/range 0
"$PY" "$BD/range_body.py" "$T_DIR/range-ser.bin" bench/range 1
value64=$(head -c "$VSIZE" /dev/zero | tr '\0' r | base64 -w0)

# load SIDE KIND CONNS: one h2load run against SIDE's leader, checked and printed.
load() {
  local s=$1 kind=$2 c=$3 lp=${LP[$1]} r0 r1
  if [ "$kind" = put ]; then
    r0=$(revision "$lp")
    h2run "$s" "$lp" put "$c" "$T_DIR/put.bin"
    r1=$(revision "$lp")
    echo "# $s put c=$c: $RPS req/s p99 $P99 ms, $OK ok, $BAD failed, revisions +$((r1 - r0))"
    [ "$((r1 - r0))" -ge "$OK" ] || echo "# WARNING: $s applied $((r1 - r0)) puts but h2load counted $OK successes (gRPC errors?)"
  else
    h2run "$s" "$lp" "$kind" "$c" "$T_DIR/$kind.bin"
    echo "# $s $kind c=$c: $RPS req/s p99 $P99 ms, $OK ok, $BAD failed, $((OK ? ${DATA:-0} / OK : 0)) data bytes per answer"
    [ "$OK" -gt 0 ] && [ "$((${DATA:-0} / OK))" -ge "$VSIZE" ] ||
      echo "# WARNING: $s $kind answers carry less than the value (gRPC errors?)"
  fi
}

# elect SIDE REP: kills SIDE's leader, records the times (ST[SIDE], WR[SIDE], FAILED[SIDE]),
# restarts the member and waits for the cluster. Returns 1 if the cluster does not recover.
elect() {
  local s=$1 lp li i surv st wr
  lp=$(leader_port "$s") || { echo "bench: $s has no leader" >&2; return 1; }
  for i in 1 2 3; do [ "${CP[$s.$i]}" = "$lp" ] && li=$i; done
  surv=$(ports "$s" | tr ' ' '\n' | grep -vx "$lp" | tr '\n' ' ')
  # shellcheck disable=SC2086 # $surv is a list of ports
  if read -r st wr < <("$PY" "$BD/cluster.py" elect "${PID[$s.$li]}" $surv); then
    echo "# $s election $2: killed $s$li, new leader in status after $st ms, first write after $wr ms"
    ST[$s]+=" $st" WR[$s]+=" $wr"
  else
    echo "# WARNING: $s election $2: no new leader or no write within 20 s"
    FAILED[$s]=$((FAILED[$s] + 1))
  fi
  wait "${PID[$s.$li]}" 2>/dev/null
  start_one "$s" "$li"
  ready "$s" || { echo "bench: $s$li did not come back" >&2; return 1; }
}

# The two sides alternate run by run, so that background load on the machine hits both alike.
declare -A LP ST WR FAILED=([etcd]=0 [cetcd]=0)   # per side: leader port, election ms, failures
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for s in etcd cetcd; do
  idle=0
  for i in 1 2 3; do idle=$((idle + $(rss_kib "${PID[$s.$i]}"))); done
  rec "idle RSS, 3 members (MiB)" $s "$(mib $idle)"
  LP[$s]=$(leader_port $s) || { echo "bench: $s has no leader" >&2; exit 1; }
  echo "# $s: leader on port ${LP[$s]}"
  curl -s -m 10 "http://127.0.0.1:${LP[$s]}/v3/kv/put" -d "{\"key\":\"$(printf bench/range | base64)\",\"value\":\"$value64\"}" >/dev/null
done
for c in $CONNS; do
  for kind in put range-lin range-ser; do
    for s in etcd cetcd; do load $s $kind "$c"; done
  done
done
# The sides alternate, so one side's last load has just ended while the other's ended a run
# earlier: give both the same 2 s of idleness before reading their memory.
sleep 2
for s in etcd cetcd; do
  fol=0
  for i in 1 2 3; do
    kib=$(rss_kib "${PID[$s.$i]}")
    if [ "${CP[$s.$i]}" = "${LP[$s]}" ]; then rec "RSS after load, leader (MiB)" $s "$(mib "$kib")"; else fol=$((fol + kib)); fi
  done
  rec "RSS after load, follower mean (MiB)" $s "$(mib $((fol / 2)))"
done
for rep in $(seq "$REPS"); do
  for s in etcd cetcd; do
    [ "${FAILED[$s]}" -ge 2 ] && continue   # two failures end that side's series
    elect $s "$rep" || FAILED[$s]=2
  done
done
for s in etcd cetcd; do
  rec "election after kill -9: status names new leader, median (ms)" $s "$(echo "${ST[$s]:-}" | median)"
  rec "election after kill -9: first write acknowledged, median (ms)" $s "$(echo "${WR[$s]:-}" | median)"
done
# The members of each cluster must end at one revision (serializable reads of each member's own
# store, up to 10 s for the restarted one to catch up): a cheap check that nothing was lost.
for s in etcd cetcd; do
  for _ in $(seq 100); do
    revs=$(for i in 1 2 3; do
      curl -s -m 2 "http://127.0.0.1:${CP[$s.$i]}/v3/kv/range" -d '{"key":"AA==","count_only":true,"serializable":true}' |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])' 2>/dev/null
    done | sort -u | tr '\n' ' ')
    [ "$(echo "$revs" | wc -w)" = 1 ] && break
    sleep 0.1
  done
  [ "$(echo "$revs" | wc -w)" = 1 ] && echo "# $s: all members at revision $revs" ||
    echo "# WARNING: $s members disagree on the revision: $revs"
done
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "# cetcd vs etcd 3.4, 3-member clusters, $(date -u +%FT%TZ)"
  echo
  echo "etcd: \`$("$ETCD" --version | head -1)\`; cetcd: \`$CETCD\`; 3 members each on loopback, same"
  echo "disk, server defaults (heartbeat 100 ms, election 1000 ms, fsync on); $(nproc) cores shared by all"
  echo "6 members and h2load. All load goes to the leader, over gRPC: puts of one key, linearizable and"
  echo "serializable ranges of one ${VSIZE}-byte value; ${SECS} s per run. Elections: median of $REPS"
  echo "kill -9 of the leader, counted from the kill. The sides alternate run by run. Load average at"
  echo "the end: $LOADAVG. Higher req/s is better; lower ms and MiB are better."
  echo
  print_table
} >"$OUT/cluster-results.md"
echo
cat "$OUT/cluster-results.md"
echo
echo "# saved to $OUT/cluster-results.md"
