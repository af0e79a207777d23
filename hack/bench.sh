#!/usr/bin/env bash
# hack/bench.sh [BIN_DIR]: side-by-side benchmark of etcd 3.4 ($ETCD, /usr/bin/etcd) and cetcd
# (BIN_DIR/cetcd, default bin/; `hack/bench.sh /usr/bin` with no cetcd there compares etcd with
# itself, a check of the harness). `make bench`; never part of `make test`.
#
# Both servers run at once, one member each, data dirs under one temp dir (same disk), distinct
# loopback ports; the load is applied to one server at a time, the same load to each, in order:
#   (a) gRPC puts with h2load (POST /etcdserverpb.KV/Put, content-type application/grpc, te:
#       trailers), 1 and 64 connections. h2load sends one fixed body, so every put writes the
#       SAME key (hack/bench/put_body.py): that measures the write path, not key-space growth;
#       the revision delta is checked against h2load's count (gRPC errors come back as HTTP 200);
#   (b) JSON gateway puts of unique keys (wrk + hack/bench/put.lua) and linearizable ranges of one
#       key (hack/bench/range.lua), 1 and 64 connections;
#   (c) 100,000 keys of 256-byte random values loaded through txns of 100 puts
#       (hack/bench/load.py), then VmRSS and VmHWM of each process (/proc/PID/status), VmRSS again
#       after 5 s idle with its file-backed part (RssFile: the store's mapped pages), and the
#       data dir size (du).
# Each run lasts BENCH_SECONDS (10). Knobs: BENCH_SECONDS, BENCH_KEYS (100000), BENCH_VALUE
# (256), BENCH_CONNS ("1 64"). Prints a table (row, etcd, cetcd, ratio cetcd/etcd) and saves it
# to build/bench/results.md. Only the PIDs started here are ended; the temp dir is removed.
#
# BENCH=single|cluster|watch|snapshot|all (default all) picks what runs: this single-member
# benchmark, the 3-member cluster benchmark (hack/bench/cluster.sh, same BIN_DIR argument, its own
# knobs and table in build/bench/cluster-results.md), the watch and lease benchmark
# (hack/bench/watch.sh, likewise, table in build/bench/watch-results.md), the snapshot save /
# status / restore benchmark (hack/bench/snapshot.sh, likewise, table in
# build/bench/snapshot-results.md), or all four in that order.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
case ${BENCH:-all} in
  single | all) ;;
  cluster) exec bash "$ROOT/hack/bench/cluster.sh" "$@" ;;
  watch) exec bash "$ROOT/hack/bench/watch.sh" "$@" ;;
  snapshot) exec bash "$ROOT/hack/bench/snapshot.sh" "$@" ;;
  *) echo "bench: BENCH must be single, cluster, watch, snapshot or all" >&2; exit 2 ;;
esac
. "$ROOT/tests/lib.sh"
BD=$ROOT/hack/bench

SECS=${BENCH_SECONDS:-10}
KEYS=${BENCH_KEYS:-100000}
VSIZE=${BENCH_VALUE:-256}
CONNS=${BENCH_CONNS:-1 64}
CETCD=$(resolve_server "${1:-$ROOT/bin}") || exit 2
for tool in h2load wrk curl "$ETCD" "$ETCDCTL"; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (make deps)" >&2; exit 2; }
done
OUT=$ROOT/build/bench
mkdir -p "$OUT"
echo "# etcd: $ETCD ($("$ETCD" --version | head -1)); cetcd: $CETCD; ${SECS}s per run; $(nproc) cores"

alloc_ports E_CP E_PP C_CP C_PP || exit 2
start_member "$ETCD" bench-etcd "$T_DIR/etcd.data" "$E_CP" "$E_PP"
E_PID=$T_LAST_PID
start_member "$CETCD" bench-cetcd "$T_DIR/cetcd.data" "$C_CP" "$C_PP"
C_PID=$T_LAST_PID
wait_ready "http://127.0.0.1:$E_CP" 30 || { echo "etcd did not start" >&2; tail "$T_DIR"/bench-etcd.*.log; exit 1; }
wait_ready "http://127.0.0.1:$C_CP" 30 || { echo "cetcd did not start" >&2; tail "$T_DIR"/bench-cetcd.*.log; exit 1; }

. "$ROOT/hack/bench/results.sh"
rss_mib() { awk '/^'"$2"':/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

"$PY" "$BD/put_body.py" "$T_DIR/put.bin" bench/h2 "$VSIZE"
for side in etcd cetcd; do
  if [ $side = etcd ]; then cp=$E_CP pid=$E_PID; else cp=$C_CP pid=$C_PID; fi
  echo "# --- $side (port $cp)"
  rec "idle RSS (MiB)" $side "$(rss_mib "$pid" VmRSS)"
  for c in $CONNS; do
    t=$(( c < 2 ? 1 : 2 ))
    # (a) gRPC puts, h2load
    r0=$(revision "$cp")
    timeout -k 5 $((SECS + 30)) h2load -D "$SECS" -c "$c" -t "$t" -m 1 -d "$T_DIR/put.bin" \
      -H 'content-type: application/grpc' -H 'te: trailers' --log-file="$T_DIR/h2.$side.$c.log" \
      "http://127.0.0.1:$cp/etcdserverpb.KV/Put" >"$T_DIR/h2.$side.$c.out" 2>&1
    read -r rps p99 ok bad < <("$PY" "$BD/h2load_stats.py" "$T_DIR/h2.$side.$c.out" "$T_DIR/h2.$side.$c.log")
    r1=$(revision "$cp")
    echo "# h2load grpc put c=$c: $rps req/s p99 $p99 ms, $ok ok, $bad failed, revisions +$((r1 - r0))"
    [ "$((r1 - r0))" -ge "$ok" ] || echo "# WARNING: $side applied $((r1 - r0)) puts but h2load counted $ok successes (gRPC errors?)"
    rec "gRPC put c=$c (req/s)" $side "$rps"
    rec "gRPC put c=$c p99 (ms)" $side "$p99"
    # (b) gateway puts and ranges, wrk
    curl -s -m 10 "http://127.0.0.1:$cp/v3/kv/put" -d "{\"key\":\"$(printf bench/range | base64)\",\"value\":\"$(head -c "$VSIZE" /dev/zero | tr '\0' r | base64 -w0)\"}" >/dev/null
    for kind in put range; do
      timeout -k 5 $((SECS + 30)) wrk -t "$t" -c "$c" -d "${SECS}s" -s "$BD/$kind.lua" \
        "http://127.0.0.1:$cp" -- "$side$c" "$VSIZE" >"$T_DIR/wrk.$kind.$side.$c.out" 2>&1
      line=$(grep '^RESULT' "$T_DIR/wrk.$kind.$side.$c.out")
      rps=$(echo "$line" | sed -E 's/.*rps=([0-9.]+).*/\1/')
      p99=$(echo "$line" | sed -E 's/.*p99_ms=([0-9.]+).*/\1/')
      echo "# wrk gateway $kind c=$c: ${line:-no result: $(tail -3 "$T_DIR/wrk.$kind.$side.$c.out")}"
      rec "gateway $kind c=$c (req/s)" $side "${rps:-0}"
      rec "gateway $kind c=$c p99 (ms)" $side "${p99:-0}"
    done
  done
  # (c) memory after KEYS keys
  secs=$(timeout -k 5 600 "$PY" "$BD/load.py" "$cp" "$KEYS" "$VSIZE" 4) || echo "# WARNING: load into $side failed"
  echo "# loaded $KEYS keys x $VSIZE B into $side in ${secs:-?} s"
  rec "load $KEYS keys (s)" $side "${secs:-0}"
  rec "RSS after load (MiB)" $side "$(rss_mib "$pid" VmRSS)"
  rec "peak RSS (MiB)" $side "$(rss_mib "$pid" VmHWM)"
  # idle for a moment: Go's scavenger and cetcd's idle heap trim return freed memory
  sleep 5
  rec "RSS 5 s idle after load (MiB)" $side "$(rss_mib "$pid" VmRSS)"
  rec "  of which file-backed (MiB)" $side "$(rss_mib "$pid" RssFile)"
  rec "data dir (MiB)" $side "$(du -sk "$T_DIR/$side.data" | awk '{ printf "%.1f", $1 / 1024 }')"
done

{
  echo "# cetcd vs etcd 3.4 benchmark, $(date -u +%FT%TZ)"
  echo
  echo "etcd: \`$("$ETCD" --version | head -1)\`; cetcd: \`$CETCD\`; ${SECS} s per run; $(nproc) cores; load tools"
  echo "on the same machine; values ${VSIZE} B. gRPC puts (h2load) all hit one key; gateway puts (wrk)"
  echo "use unique keys; ranges read one key linearizably. Higher req/s is better; lower ms and MiB are"
  echo "better."
  echo
  print_table
} >"$OUT/results.md"
echo
cat "$OUT/results.md"
echo
echo "# saved to $OUT/results.md"
if [ "${BENCH:-all}" = all ]; then
  stop_all
  rc=0
  echo
  bash "$ROOT/hack/bench/cluster.sh" "$@" || rc=1
  echo
  bash "$ROOT/hack/bench/watch.sh" "$@" || rc=1
  echo
  bash "$ROOT/hack/bench/snapshot.sh" "$@" || rc=1
  exit $rc
fi
