# shellcheck shell=bash
# tests/lib.sh: shared helpers for the black-box suites (compat, integration) and hack/bench.sh.
#
# Source it from bash (`. "$(dirname "$0")/../lib.sh"`). It provides:
#   - a per-script temp dir ($T_DIR, removed on exit) and free loopback ports (bind-tested);
#   - start_member: one single-member server (etcd 3.4 or cetcd, same flags) in the background,
#     its PID recorded in T_PIDS; logs in $T_DIR/<name>.<client port>.log;
#   - wait_ready / wait_exit: bounded polling (short waits against a deadline, never blind sleeps);
#   - stop_all: ends ONLY the recorded PIDs (installed as the EXIT trap);
#   - mask_ids: sed filter masking 16-hex member/cluster IDs, decimal IDs in JSON and raft terms;
#   - TAP-like reporting: `ok N - name` / `not ok N - name`, then `t_done` prints the line
#     `N passed, M failed` alone and exits non-zero on any failure.
# Invariants: every wait is bounded; nothing is killed that this script did not start; the server
# binary is always a parameter, so the same script runs against /usr/bin/etcd and bin/cetcd.

T_PIDS=()
T_PASS=0
T_FAIL=0
T_NUM=0
T_PORTS_USED=" "
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cetcd-test.XXXXXX")
export ETCDCTL_API=3
: "${PY:=/usr/bin/python3}"
: "${ETCD:=/usr/bin/etcd}"
: "${ETCDCTL:=/usr/bin/etcdctl}"

# resolve_server BIN_DIR: prints the server binary to test: $SERVER_BIN if set, else
# BIN_DIR/cetcd, else BIN_DIR/etcd (so `run.sh /usr/bin` tests etcd against itself).
resolve_server() {
  if [ -n "${SERVER_BIN:-}" ]; then echo "$SERVER_BIN"; return 0; fi
  local d=${1:-bin}
  if [ -x "$d/cetcd" ]; then echo "$d/cetcd"; return 0; fi
  if [ -x "$d/etcd" ]; then echo "$d/etcd"; return 0; fi
  echo "no server binary (cetcd or etcd) in '$d'" >&2
  return 1
}

# is_real_etcd BIN: true when BIN is Debian's etcd (by the resolved file name).
is_real_etcd() {
  [ "$(basename "$(readlink -f "$1")")" = etcd ]
}

# free_port: prints a loopback TCP port that binds now and was not handed out before.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$("$PY" -c 'import socket
s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    case "$T_PORTS_USED" in *" $p "*) continue ;; esac
    T_PORTS_USED="$T_PORTS_USED$p "
    echo "$p"
    return 0
  done
  echo "free_port: no free port" >&2
  return 1
}

# alloc_ports VAR1 VAR2 ...: assigns a distinct free port to each named variable (no subshell, so
# the used-port list is kept).
alloc_ports() {
  local v p
  for v in "$@"; do
    p=$(free_port) || return 1
    T_PORTS_USED="$T_PORTS_USED$p "
    printf -v "$v" '%s' "$p"
  done
}

# start_member BIN NAME DATADIR CLIENT_PORT PEER_PORT [extra flags...]
# Starts one single-member server in the background. Sets T_LAST_PID and T_LAST_LOG
# ($T_DIR/NAME.CLIENT_PORT.log, stdout+stderr, appended so restarts keep history).
start_member() {
  local bin=$1 name=$2 dir=$3 cp=$4 pp=$5
  shift 5
  T_LAST_LOG=$T_DIR/$name.$cp.log
  echo "=== start $(date -u +%T.%N) $bin $name $*" >>"$T_LAST_LOG"
  "$bin" --name "$name" --data-dir "$dir" \
    --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "$name=http://127.0.0.1:$pp" "$@" >>"$T_LAST_LOG" 2>&1 &
  T_LAST_PID=$!
  T_PIDS+=("$T_LAST_PID")
}

# track_pid PID: records a PID started by the caller so stop_all ends it.
track_pid() { T_PIDS+=("$1"); }

# pid_alive PID
pid_alive() { kill -0 "$1" 2>/dev/null; }

# wait_ready ENDPOINT [TIMEOUT_S=20]: polls ENDPOINT/health until {"health":"true"}.
wait_ready() {
  local ep=$1 deadline=$((SECONDS + ${2:-20}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if curl -s -m 2 "$ep/health" 2>/dev/null | grep -q '"health": *"true"'; then
      return 0
    fi
    sleep 0.1
  done
  echo "wait_ready: $ep not healthy after ${2:-20}s" >&2
  return 1
}

# wait_exit PID [TIMEOUT_S=10]: waits for PID to exit and sets T_EXIT_STATUS to its exit status;
# returns 1 on timeout. PID must be a child of this shell, so never call it inside $(...).
wait_exit() {
  local pid=$1 deadline=$((SECONDS + ${2:-10}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! pid_alive "$pid"; then
      wait "$pid" 2>/dev/null
      # shellcheck disable=SC2034 # read by the callers
      T_EXIT_STATUS=$?
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# stop_member PID [SIGNAL=TERM] [TIMEOUT_S=10]: signals PID and waits; SIGKILL after the timeout.
stop_member() {
  local pid=$1 sig=${2:-TERM} to=${3:-10}
  pid_alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
  kill "-$sig" "$pid" 2>/dev/null
  if ! wait_exit "$pid" "$to"; then
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  return 0
}

# stop_all: ends every recorded PID (TERM, then KILL after 5 s).
stop_all() {
  local pid
  for pid in "${T_PIDS[@]}"; do
    pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${T_PIDS[@]}"; do
    pid_alive "$pid" && stop_member "$pid" TERM 5
  done
  T_PIDS=()
}

t_cleanup() {
  stop_all
  if [ -n "${KEEP_TMP:-}" ]; then
    echo "# kept $T_DIR" >&2
  else
    rm -rf "$T_DIR"
  fi
}
trap t_cleanup EXIT
trap 'exit 130' INT TERM

# mask_ids: masks what legitimately differs between two implementations or two runs:
#   member/cluster IDs in hex (etcdctl prints them with %x, unpadded: 10 to 16 hex digits, so a
#   bare decimal number of 10+ digits is masked too), decimal IDs in JSON (cluster_id, member_id,
#   ID, leader, memberID), raft terms in JSON headers and status.
mask_ids() {
  sed -E \
    -e 's/\b[0-9a-f]{10,16}\b/<ID>/g' \
    -e 's/"(cluster_id|member_id|ID|leader|memberID|id)":"?[0-9]+"?/"\1":<ID>/g' \
    -e 's/"(raft_term|raftTerm)":"?[0-9]+"?/"\1":<TERM>/g'
}

# --- TAP-like reporting ------------------------------------------------------------------------

t_ok() { T_NUM=$((T_NUM + 1)); T_PASS=$((T_PASS + 1)); echo "ok $T_NUM - $1"; }

# t_fail NAME [DETAIL...]: detail lines are printed as `# ...` comments.
t_fail() {
  local name=$1
  shift
  T_NUM=$((T_NUM + 1)); T_FAIL=$((T_FAIL + 1))
  echo "not ok $T_NUM - $name"
  [ $# -gt 0 ] && printf '%s\n' "$@" | sed 's/^/#   /'
  return 0
}

# t_skip NAME REASON: counted as passed, reported with a SKIP directive.
t_skip() { T_NUM=$((T_NUM + 1)); T_PASS=$((T_PASS + 1)); echo "ok $T_NUM - $1 # SKIP $2"; }

# t_check NAME CMD...: ok when CMD exits 0; on failure its output is shown.
t_check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then t_ok "$name"; else t_fail "$name" "$out"; fi
}

# t_eq NAME EXPECTED ACTUAL
t_eq() {
  if [ "$2" = "$3" ]; then t_ok "$1"; else t_fail "$1" "expected: $2" "actual:   $3"; fi
}

# t_same NAME FILE_A FILE_B: ok when the files are identical; shows a diff otherwise.
t_same() {
  if cmp -s "$2" "$3"; then t_ok "$1"; else t_fail "$1" "$(diff -u "$2" "$3" | head -40)"; fi
}

# t_sanitizer_check: stops every recorded server, then fails one check if any server log in
# $T_DIR (*.log, *.stderr) holds an AddressSanitizer/LeakSanitizer/UBSan report (the ASan build
# of `make asan` reports leaks at exit, so servers are stopped first).
t_sanitizer_check() {
  local hits
  stop_all
  hits=$(grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|UndefinedBehaviorSanitizer' \
    "$T_DIR"/*.log "$T_DIR"/*.stderr 2>/dev/null)
  [ -z "$hits" ] && return 0
  t_fail "no sanitizer reports in server logs" \
    "$(for f in $hits; do echo "== $f"; grep -m1 -A12 -E 'ERROR: |runtime error:' "$f"; done)"
}

# t_done: stops the servers, checks their logs for sanitizer reports, prints `N passed, M failed`
# alone on a line; exits 1 on any failure.
t_done() {
  t_sanitizer_check
  echo "$T_PASS passed, $T_FAIL failed"
  [ "$T_FAIL" -eq 0 ]
  exit $?
}

# t_aggregate LOGFILE...: sums the `N passed, M failed` lines (also `<label>: N passed, M failed`)
# of sub-suites (a suite that ended
# without its line counts as one failure); prints the total line; returns 1 on any failure.
t_aggregate() {
  local f p=0 m=0 line
  for f in "$@"; do
    line=$(grep -oE '(^|: )[0-9]+ passed, [0-9]+ failed$' "$f" | tail -1 | sed 's/^: //')
    if [ -z "$line" ]; then m=$((m + 1)); echo "# $(basename "$f"): no summary line" >&2; continue; fi
    p=$((p + $(echo "$line" | cut -d' ' -f1)))
    m=$((m + $(echo "$line" | cut -d' ' -f3)))
  done
  echo "$p passed, $m failed"
  [ "$m" -eq 0 ]
}

# run_bounded SECONDS CMD...: runs CMD with a hard time limit (timeout(1), KILL 2 s later).
run_bounded() { timeout -k 2 "$@"; }
