#!/usr/bin/env bash
# hack/bench/watch.sh [BIN_DIR]: side-by-side watch and lease benchmark, etcd 3.4 ($ETCD,
# /usr/bin/etcd) against cetcd (BIN_DIR/cetcd, default bin/; with BIN_DIR=/usr/bin it compares etcd
# with itself, a check of the harness). Run by `make bench` (hack/bench.sh, BENCH=watch|all); never
# part of `make test`.
#
# Both servers run at once (one member each, started like hack/bench.sh; or 3-member clusters with
# BENCH_WATCH_CLUSTER=1), data dirs under one temp dir; the load is applied to one server at a time,
# the two alternating run by run. The load tool is hack/bench/watchbench.c (C, nghttp2, gRPC over
# HTTP/2), built here into build/bench/watchbench; a Python client could not read 10 million events
# fast enough to measure the server rather than itself (the tool reports its own CPU time, too).
#   watch: BENCH_WATCHERS (1000) watchers on one prefix, over BENCH_WATCH_STREAMS (100) Watch
#     streams on BENCH_WATCH_CONNS (10) connections, all created first; then BENCH_WATCH_KEYS
#     (10000) puts of distinct keys under the prefix from one more connection,
#     BENCH_WATCH_PUT_CONC (16) in flight, each value (BENCH_WATCH_VALUE, 32 bytes) carrying its
#     send time. Every watcher must receive every put, revisions increasing (missing events are
#     a failure). Events/s = events / (last event - first put); put-to-event latency over every
#     event.
#   lease: BENCH_LEASES (1000) leases, TTL BENCH_LEASE_TTL (30) s, renewed over BENCH_LEASE_STREAMS
#     (10) LeaseKeepAlive streams (one connection each) for BENCH_LEASE_SECONDS (10) s, closed loop:
#     each lease has one renewal in flight and is renewed again as soon as it is answered. Then
#     LeaseTimeToLive of each: all must be alive. The leases are revoked afterwards.
#   For each phase the server's CPU time (utime+stime from /proc/PID/stat) and RSS (sampled every
#   100 ms) are read by the tool; for a cluster they are sums over the three members, the watch
#   streams are spread over all members and the puts and lease calls go to the leader.
# BENCH_WATCH_RUNS (3) runs of each mode per server; the table shows medians (for the checks: the
# worst run). Prints the table (row, etcd, cetcd, ratio cetcd/etcd; each row says whether higher or
# lower is better) and saves it to build/bench/watch-results.md (watch-cluster-results.md for
# clusters). Exit status 1 when a check failed or a server could not run a mode. Only the PIDs
# started here are ended; the temp dir is removed (KEEP_TMP=1 keeps it, logs too).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib.sh"
BD=$ROOT/hack/bench

W=${BENCH_WATCHERS:-1000}
WS=${BENCH_WATCH_STREAMS:-100}
WC=${BENCH_WATCH_CONNS:-10}
KEYS=${BENCH_WATCH_KEYS:-10000}
PUTC=${BENCH_WATCH_PUT_CONC:-16}
VSIZE=${BENCH_WATCH_VALUE:-32}
L=${BENCH_LEASES:-1000}
LTTL=${BENCH_LEASE_TTL:-30}
LS=${BENCH_LEASE_STREAMS:-10}
LSECS=${BENCH_LEASE_SECONDS:-10}
RUNS=${BENCH_WATCH_RUNS:-3}
CLUSTER=${BENCH_WATCH_CLUSTER:-0}
TIMEOUT=120   # the tool's bound on each wait (creation, delivery, answers)
CETCD=$(resolve_server "${1:-$ROOT/bin}") || exit 2
for tool in cc curl "$ETCD"; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (make deps)" >&2; exit 2; }
done
OUT=$ROOT/build/bench
TOOL=$OUT/watchbench
mkdir -p "$OUT"

# build_tool: (re)builds build/bench/watchbench from hack/bench/watchbench.c and the protobuf-c
# code generated from proto/ (make gen) when either is newer than the binary.
build_tool() {
  local gen=$ROOT/build/gen f stale=0
  make -s -C "$ROOT" gen >/dev/null || return 1
  [ -x "$TOOL" ] || stale=1
  for f in "$BD/watchbench.c" "$gen"/rpc.pb-c.c "$gen"/kv.pb-c.c "$gen"/auth.pb-c.c; do
    [ "$f" -nt "$TOOL" ] && stale=1
  done
  [ $stale = 0 ] && return 0
  # shellcheck disable=SC2046 # pkg-config prints several flags
  cc -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wno-missing-field-initializers \
    -I"$gen" $(pkg-config --cflags libnghttp2 libprotobuf-c) -o "$TOOL" "$BD/watchbench.c" \
    "$gen"/rpc.pb-c.c "$gen"/kv.pb-c.c "$gen"/auth.pb-c.c \
    $(pkg-config --libs libnghttp2 libprotobuf-c) -lpthread
}
build_tool || { echo "bench: cannot build $TOOL" >&2; exit 2; }

declare -A BIN EPS LEADER PIDS   # per side: binary, watch endpoints, leader endpoint, server PIDs
BIN[etcd]=$ETCD BIN[cetcd]=$CETCD

# start_single SIDE: one member, as hack/bench.sh starts it.
start_single() {
  local s=$1 cp pp
  alloc_ports cp pp || return 1
  start_member "${BIN[$s]}" "bench-$s" "$T_DIR/$s.data" "$cp" "$pp"
  PIDS[$s]=$T_LAST_PID EPS[$s]=127.0.0.1:$cp LEADER[$s]=127.0.0.1:$cp
  wait_ready "http://127.0.0.1:$cp" 30 || { tail -5 "$T_LAST_LOG" >&2; return 1; }
}

# start_three SIDE: a 3-member cluster on loopback (as hack/bench/cluster.sh starts it); the
# leader is found through /v3/maintenance/status.
start_three() {
  local s=$1 i initial="" cps=() pps=() lp
  for i in 0 1 2; do alloc_ports "cps[$i]" "pps[$i]" || return 1; done
  for i in 0 1 2; do initial+=${initial:+,}$s$i=http://127.0.0.1:${pps[$i]}; done
  for i in 0 1 2; do
    "${BIN[$s]}" --name "$s$i" --data-dir "$T_DIR/$s$i.data" \
      --listen-client-urls "http://127.0.0.1:${cps[$i]}" \
      --advertise-client-urls "http://127.0.0.1:${cps[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${pps[$i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${pps[$i]}" \
      --initial-cluster "$initial" --initial-cluster-token "bench-watch-$s" --initial-cluster-state new \
      >>"$T_DIR/$s$i.log" 2>&1 &
    track_pid "$!"
    PIDS[$s]+=" $!"
  done
  for i in 0 1 2; do
    wait_ready "http://127.0.0.1:${cps[$i]}" 30 || { tail -5 "$T_DIR/$s$i.log" >&2; return 1; }
  done
  lp=$("$PY" "$BD/cluster.py" leader "${cps[@]}") || return 1
  EPS[$s]=$(printf '127.0.0.1:%s,' "${cps[@]}") LEADER[$s]=127.0.0.1:$lp
  EPS[$s]=${EPS[$s]%,}
}

for s in etcd cetcd; do
  if [ "$CLUSTER" = 1 ]; then start_three $s; else start_single $s; fi ||
    { echo "bench: $s did not start" >&2; exit 1; }
done
SHAPE=$([ "$CLUSTER" = 1 ] && echo "3-member clusters" || echo "one member each")
echo "# watch/lease benchmark, $SHAPE; etcd: $ETCD; cetcd: $CETCD; $RUNS runs; $(nproc) cores"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

. "$BD/results.sh"
declare -A ACC AGG   # ACC[label|side] = " v1 v2 ..." (one per run); AGG[label] = median|max|min
LABELS=()
NOTES=()

# keep SIDE LABEL AGG VALUE: one run's figure for a row.
keep() {
  local l
  for l in "${LABELS[@]}"; do [ "$l" = "$2" ] && break; done
  [ "${l:-}" = "$2" ] || LABELS+=("$2")
  AGG[$2]=$3
  ACC["$2|$1"]+=" $4"
}

# aggregate median|max|min: of the numbers on stdin (one per word); "n/a" when there are none.
aggregate() {
  tr ' ' '\n' | grep . | sort -g | awk -v how="$1" '{ v[NR] = $1 }
    END { if (!NR) print "n/a"; else if (how == "max") print v[NR]; else if (how == "min") print v[1];
          else print v[int((NR + 1) / 2)] }'
}

# run_tool SIDE MODE ARGS...: one run of the tool against SIDE; sets V[key]=value from its RESULT line.
# Returns its exit status (0 ok, 1 a check failed, 2 could not run).
declare -A V
run_tool() {
  local s=$1 mode=$2 rc pid pids=() log why
  shift 2
  for pid in ${PIDS[$s]}; do pids+=(--pid "$pid"); done
  log=$T_DIR/tool.$s.$mode.log
  timeout -k 5 $((TIMEOUT * 3 + LSECS)) "$TOOL" "$mode" "${pids[@]}" "$@" >"$log" 2>&1
  rc=$?
  sed "s/^/# $s $mode: /" "$log" | grep -v ' RESULT '
  V=()
  local kv
  for kv in $(grep '^RESULT ' "$log" | tail -1); do
    [[ $kv == *=* ]] && V[${kv%%=*}]=${kv#*=}
  done
  if [ "$rc" -ne 0 ]; then
    why=$([ "$rc" = 1 ] && echo "check failed" || echo "could not run")
    NOTES+=("$s $mode run $RUN: $why: $(grep -v '^RESULT\|^# ' "$log" | tail -1)")
  fi
  return "$rc"
}

ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }

watch_run() {
  local s=$1
  run_tool "$s" watch --endpoints "${EPS[$s]}" --put-endpoint "${LEADER[$s]}" --watchers "$W" \
    --streams "$WS" --conns "$WC" --keys "$KEYS" --put-concurrency "$PUTC" --value-size "$VSIZE" \
    --timeout $TIMEOUT
  [ "${#V[@]}" -gt 0 ] || return
  keep "$s" "watch: create $W watchers (ms; lower is better)" median "$(ms "${V[create_s]}")"
  keep "$s" "watch: events delivered (events/s; higher is better)" median "${V[events_per_s]}"
  keep "$s" "watch: put-to-event latency p50 (ms; lower is better)" median "${V[lat_p50_ms]}"
  keep "$s" "watch: put-to-event latency p99 (ms; lower is better)" median "${V[lat_p99_ms]}"
  keep "$s" "watch: puts acknowledged meanwhile (puts/s; higher is better)" median "${V[puts_per_s]}"
  keep "$s" "watch: events missing, extra or out of order, worst run (must be 0)" max \
    "$((V[missing] + V[bad_events]))"
  keep "$s" "watch: server CPU while delivering (s; lower is better)" median "${V[srv_cpu_deliver_s]}"
  keep "$s" "watch: server CPU per event delivered (us; lower is better)" median "${V[srv_cpu_us_per_event]}"
  keep "$s" "watch: server RSS before the watchers (MiB; lower is better)" median "${V[srv_rss_before_mib]}"
  keep "$s" "watch: server RSS with $W watchers (MiB; lower is better)" median "${V[srv_rss_created_mib]}"
  keep "$s" "watch: server peak RSS while delivering (MiB; lower is better)" median "${V[srv_rss_peak_mib]}"
  keep "$s" "watch: load tool CPU while delivering (s; for reference)" median "${V[tool_cpu_deliver_s]}"
}

lease_run() {
  local s=$1
  run_tool "$s" lease --endpoints "${LEADER[$s]}" --leases "$L" --ttl "$LTTL" --ka-streams "$LS" \
    --ka-conns "$LS" --seconds "$LSECS" --timeout $TIMEOUT
  [ "${#V[@]}" -gt 0 ] || return
  keep "$s" "lease: grant $L leases (grants/s; higher is better)" median "${V[grants_per_s]}"
  keep "$s" "lease: renewals (renewals/s; higher is better)" median "${V[renewals_per_s]}"
  keep "$s" "lease: renewal latency p50 (ms; lower is better)" median "${V[lat_p50_ms]}"
  keep "$s" "lease: renewal latency p99 (ms; lower is better)" median "${V[lat_p99_ms]}"
  keep "$s" "lease: leases alive at the end, worst run (must be $L)" min "${V[alive]}"
  keep "$s" "lease: server CPU while renewing (s; lower is better)" median "${V[srv_cpu_keepalive_s]}"
  keep "$s" "lease: server CPU per renewal (us; lower is better)" median "${V[srv_cpu_us_per_renewal]}"
  keep "$s" "lease: server RSS with $L leases (MiB; lower is better)" median "${V[srv_rss_granted_mib]}"
  keep "$s" "lease: server peak RSS while renewing (MiB; lower is better)" median "${V[srv_rss_peak_mib]}"
  keep "$s" "lease: load tool CPU while renewing (s; for reference)" median "${V[tool_cpu_keepalive_s]}"
}

# The sides alternate run by run (and which goes first), so that background load hits both alike.
for RUN in $(seq "$RUNS"); do
  order=$([ $((RUN % 2)) = 1 ] && echo "etcd cetcd" || echo "cetcd etcd")
  for s in $order; do watch_run "$s"; done
  for s in $order; do lease_run "$s"; done
done
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
for label in "${LABELS[@]}"; do
  for s in etcd cetcd; do rec "$label" $s "$(echo "${ACC["$label|$s"]:-}" | aggregate "${AGG[$label]}")"; done
done

RES=$OUT/$([ "$CLUSTER" = 1 ] && echo watch-cluster-results.md || echo watch-results.md)
{
  echo "# cetcd vs etcd 3.4, watch and lease benchmark ($SHAPE), $(date -u +%FT%TZ)"
  echo
  echo "etcd: \`$("$ETCD" --version | head -1)\`; cetcd: \`$CETCD\`; $SHAPE on loopback, same disk;"
  echo "$(nproc) cores shared by the servers and the load tool (hack/bench/watchbench.c, C over gRPC)."
  echo "Watch: $W watchers on one prefix over $WS streams on $WC connections, all created before the"
  echo "first put; $KEYS puts of distinct keys under the prefix ($VSIZE-byte values carrying their send"
  echo "time), $PUTC in flight on one more connection; $((W * KEYS)) events expected per run, every one"
  echo "counted; events/s = events / (last event - first put); latency = receipt - put's send time."
  echo "Lease: $L leases (TTL $LTTL s) renewed for $LSECS s over $LS LeaseKeepAlive streams (one"
  echo "connection each), closed loop (one renewal in flight per lease), then LeaseTimeToLive of each."
  [ "$CLUSTER" = 1 ] && echo "Watch streams spread over the 3 members; puts and lease calls go to the leader;" &&
    echo "CPU and RSS are sums over the members."
  echo "Server CPU = utime+stime from /proc/PID/stat during the phase; RSS sampled every 100 ms."
  echo "Median of $RUNS runs per server (the checks: worst run), the sides alternating run by run."
  echo "Load average at the end: $LOADAVG."
  echo
  print_table
  if [ "${#NOTES[@]}" -gt 0 ]; then
    echo
    echo "Failures (a server that could not run a mode shows n/a, and its ratio reads 0.00):"
    printf -- '- %s\n' "${NOTES[@]}"
  fi
} >"$RES"
echo
cat "$RES"
echo
echo "# saved to $RES"
[ "${#NOTES[@]}" -eq 0 ]
