#!/usr/bin/env bash
# hack/bench/snapshot.sh [BIN_DIR]: side-by-side benchmark of snapshots and restore, etcd 3.4
# ($ETCD, /usr/bin/etcd, with $ETCDCTL) against cetcd (BIN_DIR/cetcd with BIN_DIR/cetcdctl,
# default bin/; with BIN_DIR=/usr/bin it compares etcd with itself, a check of the harness, and
# the cetcdctl rows use bin/cetcdctl if it exists). Run by `make bench` (hack/bench.sh,
# BENCH=snapshot|all); never part of `make test`.
#
# Both servers run at once, one member each (started like hack/bench.sh), data dirs under one temp
# dir (same disk); each step is applied to one server at a time, the two alternating run by run:
#   (a) load: BENCH_SNAP_KEYS (100000) keys of BENCH_SNAP_VALUE (1024) random bytes through the
#       JSON gateway, txns of 100 puts over 4 connections (hack/bench/load.py), then the data
#       dir's size;
#   (b) `snapshot save` against the idle server with etcdctl and with cetcdctl, BENCH_SNAP_RUNS
#       (3) times each: wall time, the server's CPU time during it (/proc/PID/stat), the client's
#       CPU time and peak RSS (/usr/bin/time); every file is checked (size % 512 == 32, trailing
#       SHA-256 = the content's: hack/bench/snapshot.py check). "Own CLI" rows are etcdctl for
#       etcd and cetcdctl for cetcd; the etcdctl and cetcdctl rows compare the servers with one
#       client;
#   (c) put latency through the gateway: hack/bench/snapshot.py probe, BENCH_SNAP_PUT_RATE (200)
#       paced puts/s of 256-byte values on one connection; first BENCH_SNAP_IDLE_SECONDS (5) s
#       without a snapshot, then BENCH_SNAP_RUNS back-to-back `etcdctl snapshot save` (the same
#       client for both servers, so the machine carries the same client load); a put counts for a
#       window when its [send, answer] overlaps it;
#   (d) `snapshot status` of the saved file with the own CLI (and of etcd's file with both CLIs);
#   (e) `snapshot restore` of the own-CLI file into a new 1-member data dir with the own CLI,
#       then that member's start-up: from its launch until /health answers {"health":"true"}
#       (polled every 10 ms), checked to hold every loaded key at the file's revision; each run
#       restores afresh, starts, stops and removes the member.
# Every command is bounded by BENCH_SNAP_TIMEOUT (300) s. Medians of the runs are reported, every
# run is printed. Prints the table (row, etcd, cetcd, ratio cetcd/etcd; each row says whether
# lower or higher is better) and saves it to build/bench/snapshot-results.md. Exit status 1 when
# a check failed. Only the PIDs started here are ended; the temp dir is removed (KEEP_TMP=1 keeps
# it, logs too).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/lib.sh"
BD=$ROOT/hack/bench

KEYS=${BENCH_SNAP_KEYS:-100000}
VSIZE=${BENCH_SNAP_VALUE:-1024}
RUNS=${BENCH_SNAP_RUNS:-3}
RATE=${BENCH_SNAP_PUT_RATE:-200}
IDLE=${BENCH_SNAP_IDLE_SECONDS:-5}
TO=${BENCH_SNAP_TIMEOUT:-300}
CETCD=$(resolve_server "${1:-$ROOT/bin}") || exit 2
for tool in curl /usr/bin/time "$ETCD" "$ETCDCTL"; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (make deps)" >&2; exit 2; }
done
declare -A BIN CTL CP PP PID   # per side: server, own CLI, client port, peer port, server PID
BIN[etcd]=$ETCD BIN[cetcd]=$CETCD CTL[etcd]=$ETCDCTL
if is_real_etcd "$CETCD"; then CTL[cetcd]=$ETCDCTL; else CTL[cetcd]=$(dirname "$CETCD")/cetcdctl; fi
CETCDCTL=$(dirname "$CETCD")/cetcdctl
[ -x "$CETCDCTL" ] || CETCDCTL=$ROOT/bin/cetcdctl
[ -x "$CETCDCTL" ] || { echo "bench: no cetcdctl next to $CETCD or in bin/" >&2; exit 2; }
[ -x "${CTL[cetcd]}" ] || { echo "bench: ${CTL[cetcd]} not found" >&2; exit 2; }
OUT=$ROOT/build/bench
mkdir -p "$OUT"
TICK=$(getconf CLK_TCK)
echo "# snapshot benchmark; etcd: $ETCD + $ETCDCTL; cetcd: $CETCD + ${CTL[cetcd]}; $KEYS keys x $VSIZE B;" \
  "$RUNS runs; $(nproc) cores"
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

for s in etcd cetcd; do
  alloc_ports "CP[$s]" "PP[$s]" || exit 2
  start_member "${BIN[$s]}" "bench-$s" "$T_DIR/$s.data" "${CP[$s]}" "${PP[$s]}"
  PID[$s]=$T_LAST_PID
done
for s in etcd cetcd; do
  wait_ready "http://127.0.0.1:${CP[$s]}" 30 || { echo "bench: $s did not start" >&2; tail -5 "$T_DIR"/bench-$s.*.log >&2; exit 1; }
done

. "$BD/results.sh"
declare -A ACC   # ACC[row|side] = " v1 v2 ..." (one per run)
ROWS_M=()        # rows reported as medians, in order of first appearance
NOTES=()

# keep ROW SIDE VALUE: one run's figure for a row reported as the median of its runs.
keep() {
  local r
  for r in "${ROWS_M[@]}"; do [ "$r" = "$1" ] && break; done
  [ "${r:-}" = "$1" ] || { ROWS_M+=("$1"); rec "$1" etcd 0; }
  ACC["$1|$2"]+=" $3"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "n/a" }'; }
fail() { NOTES+=("$*"); echo "# FAILED: $*"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
du_mib() { du -sk "$1" | awk '{ printf "%.1f", $1 / 1024 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
now() { date +%s.%N; }

# timed LOG SERVER_PID CMD...: runs CMD (bounded by TO), output to LOG; sets WALL (s), CCPU (the
# client's user+sys s), CRSS (its peak RSS, MiB) and SCPU (SERVER_PID's CPU s meanwhile; 0 for -).
# Returns CMD's exit status.
timed() {
  local log=$1 spid=$2 t0 t1 c0=0 c1=0 rc u sy m
  shift 2
  [ "$spid" = - ] || c0=$(cpu_ticks "$spid")
  t0=$(date +%s%N)
  timeout -k 5 "$TO" /usr/bin/time -f '%U %S %M' -o "$T_DIR/time.out" "$@" >"$log" 2>&1
  rc=$?
  t1=$(date +%s%N)
  [ "$spid" = - ] || c1=$(cpu_ticks "$spid")
  read -r u sy m < <(tail -1 "$T_DIR/time.out" 2>/dev/null)
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  CCPU=$(awk -v u="${u:-0}" -v s="${sy:-0}" 'BEGIN { printf "%.2f", u + s }')
  CRSS=$(awk -v k="${m:-0}" 'BEGIN { printf "%.1f", k / 1024 }')
  SCPU=$(awk -v t=$((c1 - c0)) -v hz="$TICK" 'BEGIN { printf "%.2f", t / hz }')
  [ "$rc" = 0 ] || echo "# command failed ($rc): $* :: $(tail -2 "$log" | tr '\n' ' ')"
  return "$rc"
}

# save SIDE CLI FILE: one `CLI snapshot save FILE` against SIDE, timed (see timed) and the file
# checked; sets SIZE (bytes). Returns 1 on failure.
save() {
  local s=$1 cli=$2 f=$3
  rm -f "$f"
  timed "$T_DIR/save.log" "${PID[$s]}" "$cli" --endpoints="http://127.0.0.1:${CP[$s]}" snapshot save "$f" ||
    return 1
  SIZE=$("$PY" "$BD/snapshot.py" check "$f") || { fail "$s: $(basename "$cli") saved a bad file"; return 1; }
}

# The table's first rows in a fixed order (the others follow in order of first appearance).
for r in "load $KEYS keys x $VSIZE B, txns of 100 (s; lower is better)" "data dir after load (MiB; lower is better)" \
  "snapshot file (MiB; lower is better)" "snapshot save with etcdctl (s; lower is better)" \
  "snapshot save with cetcdctl (s; lower is better)"; do rec "$r" etcd 0; done

# ---- (a) load
for s in etcd cetcd; do
  secs=$(timeout -k 5 "$TO" "$PY" "$BD/load.py" "${CP[$s]}" "$KEYS" "$VSIZE" 4) || fail "load into $s"
  echo "# loaded $KEYS keys x $VSIZE B into $s in ${secs:-?} s"
  rec "load $KEYS keys x $VSIZE B, txns of 100 (s; lower is better)" "$s" "${secs:-0}"
  rec "data dir after load (MiB; lower is better)" "$s" "$(du_mib "$T_DIR/$s.data")"
done
sleep 2   # both servers settle (etcd's backend commits every 100 ms)

# ---- (b) snapshot save, idle server
for run in $(seq "$RUNS"); do
  order=$([ $((run % 2)) = 1 ] && echo "etcd cetcd" || echo "cetcd etcd")
  for s in $order; do
    for cli in "$ETCDCTL" "$CETCDCTL"; do
      n=$(basename "$cli")
      save "$s" "$cli" "$T_DIR/$s.$n.db" || { fail "$s: $n snapshot save, run $run"; continue; }
      echo "# $s: $n snapshot save run $run: $WALL s, $(mib "$SIZE") MiB, server CPU $SCPU s, client CPU $CCPU s, client peak RSS $CRSS MiB"
      keep "snapshot save with $n (s; lower is better)" "$s" "$WALL"
      if [ "$cli" = "${CTL[$s]}" ]; then
        keep "snapshot save, own CLI (s; lower is better)" "$s" "$WALL"
        keep "  server CPU during it (s; lower is better)" "$s" "$SCPU"
        keep "  client CPU (s; lower is better)" "$s" "$CCPU"
        keep "  client peak RSS (MiB; lower is better)" "$s" "$CRSS"
        rec "snapshot file (MiB; lower is better)" "$s" "$(mib "$SIZE")"
        cp -f "$T_DIR/$s.$n.db" "$T_DIR/$s.db"
      fi
      rm -f "$T_DIR/$s.$n.db"
    done
  done
done

# ---- (c) put latency without and during a snapshot
for s in etcd cetcd; do
  "$PY" "$BD/snapshot.py" probe "${CP[$s]}" "$RATE" "$T_DIR/probe.$s" $((IDLE + 2 + RUNS * (TO + 10))) &
  ppid=$!
  track_pid $ppid
  sleep 1
  a0=$(now); sleep "$IDLE"; b0=$(now)
  wins=""
  for run in $(seq "$RUNS"); do
    a=$(now)
    save "$s" "$ETCDCTL" "$T_DIR/$s.lat.db" || fail "$s: etcdctl snapshot save under load, run $run"
    b=$(now)
    wins+=" $a $b"
    echo "# $s: etcdctl snapshot save under $RATE puts/s, run $run: $WALL s, server CPU $SCPU s"
    keep "snapshot save with etcdctl under $RATE puts/s (s; lower is better)" "$s" "$WALL"
    rm -f "$T_DIR/$s.lat.db"
    sleep 0.5
  done
  kill -TERM $ppid 2>/dev/null
  wait_exit $ppid 30 || fail "$s: the put probe did not end"
  # shellcheck disable=SC2086 # $wins is a list of bounds
  for w in "without:$a0 $b0" "during:$wins"; do
    read -r n p50 p99 max bad rps < <("$PY" "$BD/snapshot.py" stats "$T_DIR/probe.$s" ${w#*:})
    echo "# $s: puts ${w%%:*} a snapshot: $n puts, p50 $p50 ms, p99 $p99 ms, max $max ms, $bad failed, $rps puts/s"
    [ "${bad:-1}" = 0 ] && [ "${n:-0}" -gt 0 ] || fail "$s: puts ${w%%:*} a snapshot: ${n:-0} puts, ${bad:-?} failed"
    rec "put p50 ${w%%:*} a snapshot (ms; lower is better)" "$s" "$p50"
    rec "put p99 ${w%%:*} a snapshot (ms; lower is better)" "$s" "$p99"
    rec "put max ${w%%:*} a snapshot (ms; lower is better)" "$s" "$max"
    rec "puts done ${w%%:*} a snapshot, of $RATE/s offered (puts/s; higher is better)" "$s" "$rps"
  done
  rm -f "$T_DIR/probe.$s"
done

# ---- (d) snapshot status
declare -A REV
for run in $(seq "$RUNS"); do
  order=$([ $((run % 2)) = 1 ] && echo "etcd cetcd" || echo "cetcd etcd")
  for s in $order; do
    timed "$T_DIR/status.$s" - "${CTL[$s]}" snapshot status "$T_DIR/$s.db" -w json ||
      { fail "$s: snapshot status, run $run"; continue; }
    REV[$s]=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["revision"])' "$T_DIR/status.$s")
    echo "# $s: $(basename "${CTL[$s]}") snapshot status run $run: $WALL s: $(cat "$T_DIR/status.$s")"
    keep "snapshot status, own CLI (s; lower is better)" "$s" "$WALL"
  done
  for cli in "$ETCDCTL" "$CETCDCTL"; do
    s=$([ "$cli" = "$ETCDCTL" ] && echo etcd || echo cetcd)
    timed "$T_DIR/status.x" - "$cli" snapshot status "$T_DIR/etcd.db" -w json ||
      { fail "$(basename "$cli") snapshot status of etcd's file, run $run"; continue; }
    keep "snapshot status of etcd's file, etcd column etcdctl, cetcd column cetcdctl (s; lower is better)" "$s" "$WALL"
  done
done
diff <(tr -d ' \n' <"$T_DIR/status.x") <("$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$T_DIR/status.etcd" | tr -d ' \n') >/dev/null ||
  echo "# note: cetcdctl and etcdctl status of etcd's file differ: $(cat "$T_DIR/status.x") vs $(cat "$T_DIR/status.etcd")"

# ---- (e) restore and start-up of the restored member
for s in etcd cetcd; do stop_member "${PID[$s]}"; done
for run in $(seq "$RUNS"); do
  order=$([ $((run % 2)) = 1 ] && echo "etcd cetcd" || echo "cetcd etcd")
  for s in $order; do
    rcp="" rpp=""
    alloc_ports rcp rpp || exit 2
    d=$T_DIR/$s.restored name=restored-$s
    rm -rf "$d"
    timed "$T_DIR/restore.$s" - "${CTL[$s]}" snapshot restore "$T_DIR/$s.db" --name "$name" --data-dir "$d" \
      --initial-cluster "$name=http://127.0.0.1:$rpp" --initial-advertise-peer-urls "http://127.0.0.1:$rpp" \
      --initial-cluster-token bench-restore ||
      { fail "$s: snapshot restore, run $run"; rm -rf "$d"; continue; }
    echo "# $s: $(basename "${CTL[$s]}") snapshot restore run $run: $WALL s, client CPU $CCPU s, data dir $(du_mib "$d") MiB"
    keep "snapshot restore, own CLI, 1 member (s; lower is better)" "$s" "$WALL"
    keep "restored data dir (MiB; lower is better)" "$s" "$(du_mib "$d")"
    t0=$(now)
    start_member "${BIN[$s]}" "$name" "$d" "$rcp" "$rpp"
    rpid=$T_LAST_PID
    if up=$("$PY" "$BD/snapshot.py" health "$rcp" "$t0" 120); then
      read -r cnt rev < <("$PY" "$BD/snapshot.py" count "$rcp" load/)
      echo "# $s: restored member healthy after $up s; $cnt keys under load/, revision $rev (file: ${REV[$s]:-?})"
      keep "restored member start-up until /health ok (s; lower is better)" "$s" "$up"
      [ "$cnt" = "$KEYS" ] && [ "$rev" = "${REV[$s]:-}" ] ||
        fail "$s: restored member has $cnt keys at revision $rev, expected $KEYS at ${REV[$s]:-?}"
    else
      fail "$s: restored member not healthy within 120 s: $(tail -3 "$T_LAST_LOG" | tr '\n' ' ')"
    fi
    stop_member "$rpid"
    rm -rf "$d"
  done
done
rm -f "$T_DIR"/*.db

LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
for r in "${ROWS_M[@]}"; do
  for s in etcd cetcd; do rec "$r" $s "$(echo "${ACC["$r|$s"]:-}" | median)"; done
done
{
  echo "# cetcd vs etcd 3.4, snapshot and restore benchmark, $(date -u +%FT%TZ)"
  echo
  echo "etcd: \`$("$ETCD" --version | head -1)\` with \`$ETCDCTL\`; cetcd: \`$CETCD\` with \`${CTL[cetcd]}\`;"
  echo "one member each on loopback, same disk, $(nproc) cores shared with the clients. Store: $KEYS keys of"
  echo "$VSIZE random bytes. Own CLI: etcdctl for etcd, cetcdctl for cetcd (cetcdctl reads the JSON"
  echo "gateway's stream, etcdctl gRPC). Put latency: $RATE paced puts/s through the gateway, one"
  echo "connection, for ${IDLE} s without a snapshot, then during $RUNS back-to-back etcdctl snapshot saves."
  echo "Start-up: from the restored member's launch until /health is ok. Medians of $RUNS runs, the"
  echo "sides alternating. Load average at the end: $LOADAVG."
  echo
  print_table
  if [ "${#NOTES[@]}" -gt 0 ]; then
    echo
    echo "Failures:"
    printf -- '- %s\n' "${NOTES[@]}"
  fi
} >"$OUT/snapshot-results.md"
echo
cat "$OUT/snapshot-results.md"
echo
echo "# saved to $OUT/snapshot-results.md"
[ "${#NOTES[@]}" -eq 0 ]
