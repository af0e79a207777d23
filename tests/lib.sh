# shellcheck shell=bash
# tests/lib.sh: shared helpers for the black-box suites (compat, integration) and hack/bench.sh.
#
# Source it from bash (`. "$(dirname "$0")/../lib.sh"`). It provides:
#   - a per-script temp dir ($T_DIR, removed on exit) and free loopback ports (bind-tested);
#   - start_member: one single-member server (etcd 3.4 or cetcd, same flags) in the background,
#     its PID recorded in T_PIDS; logs in $T_DIR/<name>.<client port>.log;
#   - wait_ready / wait_exit: bounded polling (short waits against a deadline, never blind sleeps);
#   - stop_all: ends ONLY the recorded PIDs (installed as the EXIT trap);
#   - clusters (cluster.sh, partition.sh, recovery.sh): member_define / cluster_define describe
#     members (name, host, ports, data dir, optional network namespace), member_start /
#     member_stop / start_cluster run them, ctl / ctl_eps run etcdctl against them, c_status /
#     c_find_leader / c_wait_leader / c_members / c_dump read their state;
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
# T_CLIENT_SCHEME=https (e.g. as a prefix assignment) makes the client URLs https; peers stay http.
start_member() {
  local bin=$1 name=$2 dir=$3 cp=$4 pp=$5 cs=${T_CLIENT_SCHEME:-http}
  shift 5
  T_LAST_LOG=$T_DIR/$name.$cp.log
  echo "=== start $(date -u +%T.%N) $bin $name $*" >>"$T_LAST_LOG"
  "$bin" --name "$name" --data-dir "$dir" \
    --listen-client-urls "$cs://127.0.0.1:$cp" --advertise-client-urls "$cs://127.0.0.1:$cp" \
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

# stop_all: ends every recorded PID (TERM, then KILL after 5 s); a process a test stopped
# (SIGSTOP) is continued so that it sees the TERM.
stop_all() {
  local pid
  for pid in "${T_PIDS[@]}"; do
    pid_alive "$pid" && kill -TERM "$pid" 2>/dev/null && kill -CONT "$pid" 2>/dev/null
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

# --- snapshot files ----------------------------------------------------------------------------
# snap_file_problem FILE KIND: succeeds silently when FILE passes etcd's own test for a snapshot
# file (size % 512 == 32, the last 32 bytes the SHA-256 of the rest) and its database is of KIND
# (bbolt: etcd's, lmdb: cetcd's, by the meta page's magic at offset 16); else prints the problem
# and fails.
snap_file_problem() {
  "$PY" - "$1" "$2" <<'PY'
import hashlib, struct, sys
d = open(sys.argv[1], "rb").read()
if len(d) < 4096 + 32 or len(d) % 512 != 32:
    sys.exit("size %d: not whole pages plus a sha256 (size %% 512 = %d)" % (len(d), len(d) % 512))
if hashlib.sha256(d[:-32]).digest() != d[-32:]:
    sys.exit("trailing sha256 does not match the content")
magic = struct.unpack_from("<I", d, 16)[0]
kind = {0xED0CDAED: "bbolt", 0xBEEFC0DE: "lmdb"}.get(magic, "unknown %#x" % magic)
if kind != sys.argv[2]:
    sys.exit("database kind %s, expected %s" % (kind, sys.argv[2]))
PY
}

# flip_byte SRC DST OFFSET MASK: DST = SRC with the byte at OFFSET xor-ed with MASK (0x01..0xff).
flip_byte() {
  "$PY" - "$@" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[int(sys.argv[3])] ^= int(sys.argv[4], 0)
open(sys.argv[2], "wb").write(b)
PY
}

# --- clusters ----------------------------------------------------------------------------------
# Multi-member helpers (cluster.sh, recovery.sh, partition.sh). Member I (1-based) is described by
# C_NAME[I], C_HOST[I] (IP it listens on), C_CP[I]/C_PP[I] (client/peer ports), C_DIR[I] (data dir),
# C_NS[I] (network namespace to run in, empty = this one), C_PID[I] (last started process, or
# empty), C_LOG[I] ($T_DIR/<name>.log, appended across restarts). C_BIN is the server, C_FLAGS the
# extra flags every member gets, C_TOKEN the cluster token (unique per run).
declare -a C_NAME C_HOST C_CP C_PP C_DIR C_NS C_PID C_LOG
C_BIN=""
C_FLAGS=()
C_TOKEN="cetcd-test-$$-$RANDOM"
C_N=0

# cluster_define BIN N [extra flags...]: N loopback members c1..cN with fresh ports and data dirs
# under $T_DIR (nothing started).
cluster_define() {
  local n=$2 i
  C_BIN=$1
  shift 2
  C_FLAGS=("$@")
  for i in $(seq 1 "$n"); do member_define "$i" "c$i" 127.0.0.1 "" || return 1; done
}

# member_define I NAME HOST [NETNS [CP PP]]: describes member I; ports from alloc_ports unless given.
member_define() {
  local i=$1 cp=${5:-} pp=${6:-}
  if [ -z "$cp" ]; then alloc_ports cp pp || return 1; fi
  C_NAME[i]=$2 C_HOST[i]=$3 C_NS[i]=${4:-} C_CP[i]=$cp C_PP[i]=$pp
  C_DIR[i]=$T_DIR/data-$2 C_LOG[i]=$T_DIR/$2.log C_PID[i]=""
  [ "$i" -gt "$C_N" ] && C_N=$i
  return 0
}

c_peer_url() { echo "http://${C_HOST[$1]}:${C_PP[$1]}"; }
c_client_url() { echo "http://${C_HOST[$1]}:${C_CP[$1]}"; }
c_ep() { echo "${C_HOST[$1]}:${C_CP[$1]}"; }

# c_initial_cluster I...: the --initial-cluster value naming members I... (name=peer URL, ...).
c_initial_cluster() {
  local i out=""
  for i in "$@"; do out="$out${out:+,}${C_NAME[i]}=$(c_peer_url "$i")"; done
  echo "$out"
}

# c_in I CMD...: runs CMD in member I's network namespace (or here when it has none).
c_in() {
  local i=$1
  shift
  if [ -n "${C_NS[i]}" ]; then ip netns exec "${C_NS[i]}" "$@"; else "$@"; fi
}

# member_start I STATE INITIAL_CLUSTER [extra flags...]: starts member I in the background (in its
# namespace), records the PID in C_PID[I] and T_PIDS.
member_start() {
  local i=$1 state=$2 ic=$3
  shift 3
  echo "=== start $(date -u +%T.%N) $C_BIN ${C_NAME[i]} $state $ic ${C_FLAGS[*]} $*" >>"${C_LOG[i]}"
  local pre=()
  [ -n "${C_NS[i]}" ] && pre=(ip netns exec "${C_NS[i]}")
  # not through c_in: a backgrounded function is a subshell, and $! must be the server itself
  "${pre[@]}" "$C_BIN" --name "${C_NAME[i]}" --data-dir "${C_DIR[i]}" \
    --listen-client-urls "$(c_client_url "$i")" --advertise-client-urls "$(c_client_url "$i")" \
    --listen-peer-urls "$(c_peer_url "$i")" --initial-advertise-peer-urls "$(c_peer_url "$i")" \
    --initial-cluster "$ic" --initial-cluster-state "$state" --initial-cluster-token "$C_TOKEN" \
    "${C_FLAGS[@]}" "$@" >>"${C_LOG[i]}" 2>&1 &
  C_PID[i]=$!
  T_PIDS+=("$!")
}

# member_stop I [SIGNAL=TERM] [TIMEOUT_S=10]: stops member I's process (SIGKILL after the timeout).
member_stop() {
  [ -n "${C_PID[$1]}" ] && stop_member "${C_PID[$1]}" "${2:-TERM}" "${3:-10}"
  C_PID[$1]=""
}

# member_alive I: its process is running.
member_alive() { [ -n "${C_PID[$1]}" ] && pid_alive "${C_PID[$1]}"; }

# c_wait_ready I [TIMEOUT_S=20]: polls member I's /health (from its namespace) until healthy.
c_wait_ready() {
  local i=$1 deadline=$((SECONDS + ${2:-20}))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if c_in "$i" curl -s -m 2 "$(c_client_url "$i")/health" 2>/dev/null | grep -q '"health": *"true"'; then
      return 0
    fi
    member_alive "$i" || break
    sleep 0.1
  done
  echo "c_wait_ready: ${C_NAME[i]} not healthy after ${2:-20}s" >&2
  return 1
}

# start_cluster BIN N [extra flags...]: defines and starts N loopback members as a new cluster and
# waits until each is healthy (bounded: 30 s). Returns 1 if one is not.
start_cluster() {
  local n=$2 i ic rc=0
  cluster_define "$@" || return 1
  ic=$(c_initial_cluster $(seq 1 "$n"))
  for i in $(seq 1 "$n"); do member_start "$i" new "$ic"; done
  for i in $(seq 1 "$n"); do c_wait_ready "$i" 30 || rc=1; done
  return $rc
}

# ctl I ARGS...: etcdctl against member I alone (from its namespace), bounded (--command-timeout
# 5 s unless ARGS set one; hard limit 30 s).
ctl() {
  local i=$1
  shift
  c_in "$i" timeout -k 2 30 "$ETCDCTL" --endpoints="$(c_ep "$i")" --command-timeout=5s "$@"
}

# ctl_eps "I J ..." ARGS...: etcdctl with the endpoints of members I J ... (run from the first one's
# namespace).
ctl_eps() {
  local ids=$1 eps="" i first=""
  shift
  for i in $ids; do eps="$eps${eps:+,}$(c_ep "$i")"; first=${first:-$i}; done
  c_in "$first" timeout -k 2 30 "$ETCDCTL" --endpoints="$eps" --command-timeout=5s "$@"
}

# c_status I: one line "MEMBER_ID LEADER_ID REVISION RAFT_INDEX IS_LEARNER" (IDs in hex, as
# etcdctl prints them) from `endpoint status -w json` on member I; empty on error.
c_status() {
  ctl "$1" endpoint status -w json 2>/dev/null | "$PY" -c '
import json, sys
try:
    s = json.load(sys.stdin)[0]["Status"]
except Exception:
    sys.exit(1)
print("%x %x %d %d %s" % (int(s["header"]["member_id"]), int(s.get("leader", 0)),
      int(s["header"].get("revision", 0)), int(s.get("raftIndex", 0)),
      "true" if s.get("isLearner") else "false"))'
}

# c_member_id I: member I's ID in hex (from its own endpoint status).
c_member_id() { c_status "$1" | cut -d' ' -f1; }

# c_leader_of I: the leader ID (hex) member I reports, empty or 0 when it knows none.
c_leader_of() { c_status "$1" | cut -d' ' -f2; }

# c_find_leader "I J ...": prints the index of the member that is the leader every reachable member
# among I J ... agrees on (one `endpoint status` per member); returns 1 (nothing printed) when a
# reachable member knows no leader, two disagree, or the leader is not among I J ....
c_find_leader() {
  local i st lid="" l ids=()
  for i in $1; do
    st=$(c_status "$i") || continue
    [ -z "$st" ] && continue
    ids[i]=${st%% *}
    l=$(echo "$st" | cut -d' ' -f2)
    [ "$l" = 0 ] && return 1
    [ -n "$lid" ] && [ "$lid" != "$l" ] && return 1
    lid=$l
  done
  [ -z "$lid" ] && return 1
  for i in $1; do
    [ "${ids[i]:-}" = "$lid" ] && { echo "$i"; return 0; }
  done
  return 1
}

# c_wait_leader "I J ..." [TIMEOUT_S=10]: waits until c_find_leader succeeds; prints the index.
c_wait_leader() {
  local deadline=$((SECONDS + ${2:-10})) l
  while [ "$SECONDS" -lt "$deadline" ]; do
    if l=$(c_find_leader "$1"); then echo "$l"; return 0; fi
    sleep 0.1
  done
  return 1
}

# c_since_start I: member I's log since its last (re)start.
c_since_start() {
  awk '/^=== start/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "${C_LOG[$1]}"
}

# now_ms: wall-clock milliseconds (for measuring bounded waits).
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# wait_for SECONDS WHAT CMD...: polls CMD (every 0.5 s) until it succeeds; on timeout says what
# it waited for and shows CMD's last output, and fails.
wait_for() {
  local secs=$1 what=$2 out deadline
  shift 2
  deadline=$((SECONDS + secs))
  while :; do
    if out=$("$@" 2>&1); then return 0; fi
    if [ $SECONDS -ge $deadline ]; then
      echo "timeout after ${secs}s waiting for $what"
      [ -n "$out" ] && echo "last output: $out"
      return 1
    fi
    sleep 0.5
  done
}

# retry_while SECONDS PATTERN CMD...: runs CMD until it succeeds, or its output stops matching the
# extended regex PATTERN (a different error), or SECONDS pass (0.3 s between tries). CMD's last
# output is in T_OUT; returns CMD's last status.
retry_while() {
  local deadline=$((SECONDS + $1)) pat=$2 rc
  shift 2
  while :; do
    T_OUT=$("$@" 2>&1)
    rc=$?
    [ $rc -eq 0 ] && return 0
    echo "$T_OUT" | grep -qE "$pat" || return $rc
    [ "$SECONDS" -ge "$deadline" ] && return $rc
    sleep 0.3
  done
}

# c_dump I FILE [etcdctl get flags...]: every key of member I as "key value create_rev mod_rev
# version" lines (sorted by key), then "revision N"; linearizable unless flags say otherwise.
c_dump() {
  local i=$1 f=$2
  shift 2
  ctl "$i" get "" --from-key -w json "$@" 2>/dev/null | "$PY" -c '
import base64, json, sys
r = json.load(sys.stdin)
for kv in r.get("kvs", []):
    print(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")).decode(),
          kv.get("create_revision"), kv.get("mod_revision"), kv.get("version"))
print("revision", r["header"]["revision"])' >"$f" 2>&1
}

# c_members I: member I's `member list -w json` as lines "ID_HEX NAME LEARNER(true/false)
# CLIENT_URLS" (empty name = added but not started yet).
c_members() {
  ctl "$1" member list -w json 2>/dev/null | "$PY" -c '
import json, sys
for m in json.load(sys.stdin).get("members", []):
    print("%x" % int(m["ID"]), m.get("name") or "-", "true" if m.get("isLearner") else "false",
          ",".join(m.get("clientURLs") or []) or "-")'
}

# c_id_by_name I NAME: the hex ID of the member called NAME, as member I lists it.
c_id_by_name() { c_members "$1" | awk -v n="$2" '$2 == n { print $1 }'; }
