#!/usr/bin/env bash
# tests/compat/etcdctl.sh BIN_DIR: Debian's etcdctl 3.4 against the server under test (BIN_DIR/cetcd,
# or BIN_DIR/etcd, or $SERVER_BIN) and against a real etcd 3.4 ($ETCD) started here, side by side.
# Every command runs against both servers in lockstep (so both stores see the same history and
# reach the same revisions); each output (stdout+stderr+exit code) is normalised by norm.py and
# mask_ids and must then be identical. One TAP line per command.
#
# Masks (and why they legitimately differ), nothing else is masked:
#   - member, cluster and leader IDs (hex in tables, decimal in JSON): random per cluster;
#   - raft_term / raftTerm / RAFT TERM: the term a lone member wins its first election in is an
#     implementation detail (etcd: 2);
#   - client and peer port numbers: each server has its own;
#   - endpoint status: VERSION / version (server version string, etcd "3.4.23"), DB SIZE /
#     dbSize / dbSizeInUse (storage engine), RAFT INDEX / RAFT APPLIED INDEX / raftIndex /
#     raftAppliedIndex (etcd's raft log also holds conf-change and internal entries); each masked
#     only when it has the expected form (number, size, version);
#   - endpoint health: the TOOK duration;
#   - -w fields: the "ClusterID", "MemberID", "RaftTerm" lines;
#   - etcdctl's own client-side retry warnings keep only their "error" field (timestamps, UUIDs);
#   - lease IDs (each server picks its own): every ID a `lease grant` printed is recorded per server
#     and replaced by <L:NAME> (16-digit hex anywhere, decimal as the value of an ID/id/lease
#     field), so that the same lease must appear in the same places; `@NAME` in a command's
#     arguments stands for that server's ID;
#   - a lease's remaining TTL (timetolive), only when plausible: granted-10 <= remaining <= granted;
#   - the order of a lease's attached keys (etcd returns them in Go map order, i.e. random);
#   - watches: marker events (keys containing "~mk", see wsync) are removed, and -w json responses
#     are split into one line per event without the response Header (how many events share one
#     response is each server's choice; etcd itself batches history but not live events).
# Everything else must match: keys, values, revisions, versions, counts, "more", error texts,
# gRPC codes, exit codes, table shapes, leader/learner flags, member names and URLs, watch events in
# order with their revisions and prev_kv, lease TTLs, the lease list in etcd's order (by expiry).
#
# Watchers run in the background, bounded by timeout(1), and are ended by their own PID. A watch is
# known to be established (or to have delivered everything before) when a marker write shows up in
# its output (wsync), never after a fixed sleep. Timing-dependent cases, all bounded: the leased
# key that must vanish after its 5 s TTL (polled for 20 s, must not vanish before 4.5 s), remaining
# TTLs (tolerance above), the lease list order (TTLs minutes apart).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
NORMPY="$HERE/norm.py"
echo "# server under test: $SUT; reference: $ETCD; etcdctl: $($ETCDCTL version | head -1)"

alloc_ports S_CP S_PP R_CP R_PP || exit 2
start_member "$SUT" m1 "$T_DIR/sut" "$S_CP" "$S_PP"
start_member "$ETCD" m1 "$T_DIR/ref" "$R_CP" "$R_PP"
if ! wait_ready "http://127.0.0.1:$S_CP" 20 || ! wait_ready "http://127.0.0.1:$R_CP" 20; then
  t_fail "both servers start" "$(tail -5 "$T_DIR"/*.log)"
  t_done
fi
t_ok "both servers start"

COMMON_KEYS=(--mask-key cluster_id --mask-key member_id --mask-key ID --mask-key leader
             --mask-key raft_term --mask-key raftTerm --mask-col "RAFT TERM")
NORM=()
N=0
mkdir -p "$T_DIR/out"
: >"$T_DIR/lsub.sut"
: >"$T_DIR/lsub.ref"
declare -A LHEX LGRANT_MS W_PID W_FD
W_MARK=0

cp_of() { if [ "$1" = sut ]; then echo "$S_CP"; else echo "$R_CP"; fi; }
pp_of() { if [ "$1" = sut ]; then echo "$S_PP"; else echo "$R_PP"; fi; }
side_of() { if [ "$1" = "$S_CP" ]; then echo sut; else echo ref; fi; }

# Lease IDs are chosen by each server. lease_register SIDE NAME HEX records one: in SIDE's outputs
# the ID (16-hex as etcdctl prints it, decimal in JSON) becomes <L:NAME>, and an argument
# containing @NAME stands for SIDE's ID in hex. Names must not be prefixes of one another.
lease_register() {
  local side=$1 name=$2 dec
  dec=$(printf '%d' "0x$3") || return 1
  LHEX[$side.$name]=$(printf '%016x' "$dec")
  # hex: etcdctl always prints 16 digits; decimal: only as the value of an ID or lease field
  printf 's/\\b%s\\b/<L:%s>/g\n' "${LHEX[$side.$name]}" "$name" >>"$T_DIR/lsub.$side"
  printf 's/"(ID|id|lease)":%s([,}])/"\\1":"<L:%s>"\\2/g\n' "$dec" "$name" >>"$T_DIR/lsub.$side"
  printf 's/^"ID" : %s$/"ID" : <L:%s>/\n' "$dec" "$name" >>"$T_DIR/lsub.$side"
}

# lease_args SIDE ARGS...: sets L_ARGS to ARGS with @NAME replaced by SIDE's lease NAME (hex).
lease_args() {
  local side=$1 a k
  shift
  L_ARGS=()
  for a in "$@"; do
    if [[ $a == *@* ]]; then
      for k in "${!LHEX[@]}"; do
        [[ $k == "$side".* ]] && a=${a//@${k#"$side".}/${LHEX[$k]}}
      done
    fi
    L_ARGS+=("$a")
  done
}

# normalise SIDE [LEASE_FILTER]: stdin -> stdout; lease IDs named, then (with LEASE_FILTER=1)
# remaining TTLs checked and masked and attached keys sorted (lnorm.py), then norm.py, mask_ids.
normalise() {
  local side=$1 cp pp
  cp=$(cp_of "$side") pp=$(pp_of "$side")
  if [ "${2:-0}" = 1 ]; then
    sed -E -f "$T_DIR/lsub.$side" | "$PY" "$T_DIR/lnorm.py"
  else
    sed -E -f "$T_DIR/lsub.$side"
  fi | "$PY" "$NORMPY" --port "$cp=CLIENT_PORT" --port "$pp=PEER_PORT" "${COMMON_KEYS[@]}" \
      ${NORM[@]+"${NORM[@]}"} | mask_ids
}

# run_on CP PP STDIN ARGS...: one etcdctl command against one server, normalised.
run_on() {
  local cp=$1 in=$3 side lf=0
  shift 3
  side=$(side_of "$cp")
  [ "$1" = lease ] && lf=1
  lease_args "$side" "$@"
  { timeout -k 2 20 "$ETCDCTL" --endpoints="127.0.0.1:$cp" --command-timeout=5s "${L_ARGS[@]}" <"$in" 2>&1
    echo "exit=$?"; } | normalise "$side" "$lf"
}

# compare_sides NAME WHAT: TAP line for $T_DIR/out/$N.{sut,ref}.
compare_sides() {
  if cmp -s "$T_DIR/out/$N.sut" "$T_DIR/out/$N.ref"; then
    t_ok "$1"
  else
    t_fail "$1" "$2" "--- etcd (reference)  +++ server under test" \
      "$(diff -u "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut" | tail -n +3 | head -40)"
  fi
}

# cx NAME [--in FILE] ARGS...: runs ARGS on both servers, compares.
cx() {
  local name=$1 in=/dev/null
  shift
  if [ "${1:-}" = --in ]; then in=$2; shift 2; fi
  N=$((N + 1))
  run_on "$S_CP" "$S_PP" "$in" "$@" >"$T_DIR/out/$N.sut"
  run_on "$R_CP" "$R_PP" "$in" "$@" >"$T_DIR/out/$N.ref"
  compare_sides "$name" "etcdctl $*"
}

# gw NAME PATH BODY_FILE: a JSON-gateway POST on both servers; HTTP status + body must match.
gw() {
  local name=$1 path=$2 body=$3 cp
  N=$((N + 1))
  for side in sut ref; do
    if [ $side = sut ]; then cp=$S_CP; else cp=$R_CP; fi
    curl -s -m 10 -o "$T_DIR/out/$N.body" -w 'http=%{http_code}\n' \
      "http://127.0.0.1:$cp$path" --data-binary "@$body" >"$T_DIR/out/$N.$side"
    "$PY" "$NORMPY" "${COMMON_KEYS[@]}" <"$T_DIR/out/$N.body" | mask_ids >>"$T_DIR/out/$N.$side"
  done
  t_same "$name" "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut"
}

# --- writes: p/a..p/d with distinct create, mod, version and value orders ---------------------
cx "put p/a"             put p/a m
cx "put p/b"             put p/b x
cx "put p/c"             put p/c y
cx "put p/d"             put p/d w
cx "put p/b again"       put p/b y
cx "put p/c again"       put p/c a
cx "put p/b 3rd"         put p/b yy
cx "put p/d again"       put p/d z
cx "put p/b 4th"         put p/b z
cx "put p/d 3rd --prev-kv" put p/d q --prev-kv
cx "put x/1..3"          put x/1 one
cx "put x/2"             put x/2 two
cx "put x/3 -w json"     put x/3 three -w json
cx "put value with spaces and unicode" put "sp ace" "v é ☃"
cx "put --ignore-value missing key" put p/none --ignore-value

# --- reads ---------------------------------------------------------------------------------------
cx "get p/a"                    get p/a
cx "get missing"                get nope
cx "get -w json"                get p/b -w json
cx "get missing -w json"        get nope -w json
cx "get --prefix"               get p/ --prefix
cx "get --prefix -w json"       get p/ --prefix -w json
cx "get --from-key"             get p/c --from-key
cx "get --from-key empty"       get "" --from-key --keys-only
cx "get --prefix --limit 2"     get p/ --prefix --limit 2
cx "get --prefix --limit 2 json" get p/ --prefix --limit 2 -w json
cx "get --rev 6"                get p/b --rev 6
cx "get --rev 2 prefix"         get p/ --prefix --rev 2 -w json
cx "get range [p/b,p/d)"        get p/b p/d
cx "get range json"             get p/b x/2 -w json
for target in KEY CREATE MODIFY VERSION VALUE; do
  for order in ASCEND DESCEND; do
    cx "get --sort-by=$target --order=$order" get p/ --prefix --sort-by="$target" --order="$order"
  done
  cx "get --sort-by=$target (default order)" get p/ --prefix --sort-by="$target" --keys-only
done
cx "get --order=DESCEND alone"  get p/ --prefix --order=DESCEND
cx "get --keys-only"            get p/ --prefix --keys-only
cx "get --keys-only json"       get p/ --prefix --keys-only -w json
cx "get --limit 1 json (count)" get p/ --prefix --limit 1 --keys-only -w json
cx "get --print-value-only"     get p/ --prefix --print-value-only
cx "get --limit --sort DESCEND" get p/ --prefix --limit 1 --sort-by=MODIFY --order=DESCEND -w json
cx "get -w fields"              get p/ --prefix --limit 2 -w fields
cx "get --consistency=s"        get p/a --consistency=s -w json

# --- deletes -------------------------------------------------------------------------------------
cx "del missing"                del nope
cx "del single"                 del "sp ace"
cx "del --prefix --prev-kv"     del x/ --prefix --prev-kv
cx "del --prefix json"          del x/ --prefix -w json
cx "del --from-key none"        del zzz --from-key
cx "put -w fields --prev-kv"    put x/4 four --prev-kv -w fields
cx "del -w fields --prev-kv"    del x/4 --prev-kv -w fields

# --- txn (non-interactive stdin form and -i) ------------------------------------------------------
cat >"$T_DIR/txn_ok" <<'EOF'
value("p/a") = "m"
version("p/b") = "4"
mod("p/c") = "7"
create("p/d") = "5"
version("p/b") > "3"
create("p/a") < "3"
mod("p/c") != "1"

put t/ok yes
get p/a
del p/none

put t/fail no

EOF
cat >"$T_DIR/txn_fail" <<'EOF'
value("p/a") = "nope"
version("p/b") = "4"

put t/ok2 yes

put t/fail yes
get p/ --prefix --limit=1
del t/ok

EOF
cat >"$T_DIR/txn_empty" <<'EOF'


put t/e v

EOF
cx "txn success branch"         --in "$T_DIR/txn_ok" txn
cx "txn failure branch"         --in "$T_DIR/txn_fail" txn
cx "txn -i success"             --in "$T_DIR/txn_ok" txn -i
cx "txn -i failure json"        --in "$T_DIR/txn_fail" txn -i -w json
cx "txn success json"           --in "$T_DIR/txn_ok" txn -w json
cx "txn no compares"            --in "$T_DIR/txn_empty" txn
cx "get t/ after txns"          get t/ --prefix -w json

# --- compaction ----------------------------------------------------------------------------------
cx "get --rev 3 before compact" get p/b --rev 3
cx "compaction 6"               compaction 6
cx "get --rev 3 after compact"  get p/b --rev 3
cx "get --rev 5 after compact"  get p/ --prefix --rev 5
cx "get --rev 6 at compact"     get p/ --prefix --rev 6 -w json
cx "compaction 6 again"         compaction 6
cx "compaction 4 (older)"       compaction 4
cx "compaction future"          compaction 100000
cx "compaction --physical"      compaction 8 --physical
cx "get --rev 7 after physical" get p/b --rev 7

# --- errors --------------------------------------------------------------------------------------
cx "put empty key"              put "" x
cx "get --rev future"           get p/a --rev 100000
cx "get empty key"              get ""
cx "del empty key"              del ""
head -c 1600000 /dev/zero | tr '\0' 'v' >"$T_DIR/big"
cx "put over --max-request-bytes" --in "$T_DIR/big" put big
cx "get big (not stored)"       get big -w json
"$PY" - "$T_DIR/txn129.json" <<'EOF'
import base64, json, sys
ops = [{"request_put": {"key": base64.b64encode(b"t129/%d" % i).decode(),
                        "value": base64.b64encode(b"v").decode()}} for i in range(129)]
open(sys.argv[1], "w").write(json.dumps({"success": ops}))
EOF
gw "gateway txn with 129 ops"   /v3/kv/txn "$T_DIR/txn129.json"
printf '{"key":""}' >"$T_DIR/emptykey.json"
gw "gateway put empty key"      /v3/kv/put "$T_DIR/emptykey.json"

# --- helpers for leases and watches ---------------------------------------------------------------
# lnorm.py (lease outputs): a remaining TTL is masked as <REM> only when it is plausible for its
# granted TTL (granted-10 <= remaining <= granted, granted > 0); anything else stays visible.
# etcd lists a lease's attached keys in Go map order (random), so they are sorted.
cat >"$T_DIR/lnorm.py" <<'EOF'
import json, re, sys
def ok(rem, granted):
    return granted > 0 and max(0, granted - 10) <= rem <= granted
def text(line):
    m = re.search(r'TTL\((\d+)s\), remaining\((-?\d+)s\)', line)
    if m and ok(int(m.group(2)), int(m.group(1))):
        line = line[:m.start(2)] + '<REM>' + line[m.end(2):]
    m = re.search(r'attached keys\(\[(.*)\]\)', line)
    if m:
        line = line[:m.start(1)] + ' '.join(sorted(m.group(1).split(' '))) + line[m.end(1):]
    return line
def obj(o):
    if isinstance(o.get('keys'), list):
        o['keys'] = sorted(o['keys'])
    if isinstance(o.get('ttl'), int) and ok(o['ttl'], o.get('granted-ttl') or 0):
        o['ttl'] = '<REM>'
    return o
for line in sys.stdin.read().splitlines():
    if line.startswith('{'):
        try:
            line = json.dumps(obj(json.loads(line)), separators=(',', ':'), ensure_ascii=False)
        except ValueError:
            pass
    print(text(line))
EOF
# wfilter.py (etcdctl watch outputs): drops the marker events of wsync (keys containing "~mk");
# splits each -w json response into one line per event without its Header (how many events a
# server puts in one response is its own business); keeps every other line.
cat >"$T_DIR/wfilter.py" <<'EOF'
import base64, json, sys
MARK = '~mk'
ENDS = ('Error:', 'exit=', 'watch was canceled', 'compacted revision', 'Invalid command')
out, ev = [], None
def flush():
    global ev
    if ev is not None and not any(MARK in l for l in ev[1:]):
        out.extend(ev)
    ev = None
for line in sys.stdin.read().splitlines():
    if line.startswith('{'):
        flush()
        try:
            r = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        evs = r.pop('Events', None) or []
        r.pop('Header', None)
        for e in evs:
            if MARK not in base64.b64decode(e.get('kv', {}).get('key', '')).decode('latin-1'):
                out.append(json.dumps({'Event': e}, separators=(',', ':')))
        if not evs:
            out.append(json.dumps(r, separators=(',', ':')))
    elif line in ('PUT', 'DELETE'):
        flush()
        ev = [line]
    elif ev is not None and not line.startswith(ENDS):
        ev.append(line)
    else:
        flush()
        out.append(line)
flush()
print('\n'.join(out))
EOF

# cx_grant NAME LEASE ARGS...: like cx, for a `lease grant` command; records each server's new
# lease ID as LEASE (see lease_register) and the time of the grant (LGRANT_MS).
cx_grant() {
  local name=$1 lname=$2 side cp raw hex dec
  shift 2
  N=$((N + 1))
  for side in sut ref; do
    cp=$(cp_of $side) raw=$T_DIR/out/$N.$side.raw
    LGRANT_MS[$side.$lname]=$(now_ms)
    { timeout -k 2 20 "$ETCDCTL" --endpoints="127.0.0.1:$cp" --command-timeout=5s "$@" 2>&1
      echo "exit=$?"; } >"$raw"
    hex=$(sed -nE 's/^lease ([0-9a-f]+) granted with.*/\1/p' "$raw")
    dec=$(grep -oE '("ID":|"ID" : )-?[0-9]+' "$raw" | grep -oE -- '-?[0-9]+$')
    [ -z "$hex" ] && [ -n "$dec" ] && hex=$(printf '%x' "$dec")
    [ -n "$hex" ] && lease_register $side "$lname" "$hex"
    normalise $side 1 <"$raw" >"$T_DIR/out/$N.$side"
  done
  compare_sides "$name" "etcdctl $*"
}

# put_quiet SIDE KEY VALUE: a write that is not a test case (markers).
put_quiet() {
  timeout -k 2 20 "$ETCDCTL" --endpoints="127.0.0.1:$(cp_of "$1")" --command-timeout=5s put "$2" "$3" \
    >/dev/null 2>&1
}

# head_rev: the store revision (identical on both servers: every write runs on both).
head_rev() {
  timeout -k 2 20 "$ETCDCTL" --endpoints="127.0.0.1:$R_CP" --command-timeout=5s get _ -w json |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])'
}

# Watchers: `etcdctl watch` runs in the background on both servers (bounded by timeout(1), output
# in $T_DIR/w.ID.SIDE), is synchronised with wsync, and stopped by its own PID (wx_stop).
# wx_start ID ARGS...
wx_start() {
  local id=$1 side
  shift
  for side in sut ref; do
    lease_args $side "$@"
    timeout -k 2 120 "$ETCDCTL" --endpoints="127.0.0.1:$(cp_of $side)" watch "${L_ARGS[@]}" \
      >"$T_DIR/w.$id.$side" 2>&1 </dev/null &
    W_PID[$id.$side]=$!
    track_pid $!
  done
}

# wx_start_i ID: `etcdctl watch -i` on both servers; its stdin is a FIFO this shell holds open
# (wx_cmd writes a command line; wx_stop closes it: etcdctl then reads EOF and exits with 3).
# Start no other watcher while one runs: it would inherit the FIFO's descriptor.
wx_start_i() {
  local id=$1 side fd
  for side in sut ref; do
    mkfifo "$T_DIR/fifo.$id.$side"
    timeout -k 2 120 "$ETCDCTL" --endpoints="127.0.0.1:$(cp_of $side)" watch -i \
      <"$T_DIR/fifo.$id.$side" >"$T_DIR/w.$id.$side" 2>&1 &
    W_PID[$id.$side]=$!
    track_pid $!
  done
  for side in sut ref; do
    exec {fd}<>"$T_DIR/fifo.$id.$side"
    W_FD[$id.$side]=$fd
  done
}

# wx_cmd ID LINE: one command line to the interactive watcher ID on both servers.
wx_cmd() {
  local side
  for side in sut ref; do printf '%s\n' "$2" >&"${W_FD[$1.$side]}"; done
}

# w_seen FILE KEY: the watch output FILE shows an event for KEY (text line, or base64 in JSON).
w_seen() {
  grep -qxF -- "$2" "$1" || grep -qF -- "\"$(printf %s "$2" | base64 -w0)\"" "$1"
}

# wsync PREFIX ID...: puts the marker key PREFIX~mkN (new N each call) on both servers, in lockstep
# so that both stores keep the same revisions, until every watcher ID on both servers shows it (or
# has exited). Each put is awaited up to 1 s, 20 puts at most. Before the test's writes this
# proves the watches are established; after them, that every earlier event has been delivered.
# Marker events are removed from the outputs (wfilter.py). Returns 1 when a watcher never showed it.
wsync() {
  local prefix=$1 key side id until pending
  shift
  W_MARK=$((W_MARK + 1))
  key="$prefix~mk$W_MARK"
  for _ in $(seq 1 20); do
    for side in sut ref; do put_quiet $side "$key" m; done
    until=$(($(now_ms) + 1000))
    while :; do
      pending=0
      for id in "$@"; do
        for side in sut ref; do
          pid_alive "${W_PID[$id.$side]}" || continue
          w_seen "$T_DIR/w.$id.$side" "$key" || pending=1
        done
      done
      [ $pending = 0 ] && return 0
      [ "$(now_ms)" -gt "$until" ] && break
      sleep 0.05
    done
  done
  echo "# wsync $key: not seen by every watcher of $* after 20 puts" >&2
  return 1
}

# wx_wait_line ID LINE: waits (up to 10 s) until watcher ID's output on both servers has LINE.
wx_wait_line() {
  local until=$(($(now_ms) + 10000)) side
  for side in sut ref; do
    while ! grep -qxF -- "$2" "$T_DIR/w.$1.$side"; do
      pid_alive "${W_PID[$1.$side]}" || break
      [ "$(now_ms)" -gt "$until" ] && return 1
      sleep 0.05
    done
  done
  return 0
}

# wx_stop ID NAME [MODE]: ends watcher ID on both servers and compares the filtered, normalised
# outputs. MODE kill (default): SIGTERM to its PID; an "exit=" line is added only when it had
# exited by itself. MODE exit: the watcher must end by itself within 10 s (its stdin is closed
# first for -i); its exit status is compared, "exit=killed" when it had to be killed.
wx_stop() {
  local id=$1 name=$2 mode=${3:-kill} side pid fd
  N=$((N + 1))
  for side in sut ref; do
    pid=${W_PID[$id.$side]}
    fd=${W_FD[$id.$side]:-}
    if [ -n "$fd" ]; then
      exec {fd}>&-
      unset "W_FD[$id.$side]"
    fi
    if [ "$mode" = exit ]; then
      if wait_exit "$pid" 10; then
        echo "exit=$T_EXIT_STATUS" >>"$T_DIR/w.$id.$side"
      else
        stop_member "$pid" TERM 5
        echo "exit=killed" >>"$T_DIR/w.$id.$side"
      fi
    elif pid_alive "$pid"; then
      stop_member "$pid" TERM 5
    else
      wait "$pid" 2>/dev/null
      echo "exit=$?" >>"$T_DIR/w.$id.$side"
    fi
    "$PY" "$T_DIR/wfilter.py" <"$T_DIR/w.$id.$side" | normalise $side >"$T_DIR/out/$N.$side"
  done
  compare_sides "$name" "watch output (marker events removed)"
}

# wait_key_gone SIDE KEY NAME LEASE TTL: polls (up to TTL+15 s) until KEY is gone on SIDE; it must
# not vanish before TTL-0.5 s after LEASE was granted (LGRANT_MS is taken before the grant).
wait_key_gone() {
  local side=$1 key=$2 name=$3 ttl_ms=$(($5 * 1000)) until n el
  until=$(($(now_ms) + ttl_ms + 15000))
  while :; do
    n=$(timeout -k 2 10 "$ETCDCTL" --endpoints="127.0.0.1:$(cp_of "$side")" get "$key" -w json \
        2>/dev/null | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin).get("kvs", [])))')
    [ "$n" = 0 ] && break
    if [ "$(now_ms)" -gt "$until" ]; then
      t_fail "$name" "$key still present $(((ttl_ms + 15000) / 1000)) s after its lease was granted"
      return
    fi
    sleep 0.1
  done
  el=$(($(now_ms) - ${LGRANT_MS[$side.$4]:-0}))
  if [ "$el" -lt $((ttl_ms - 500)) ]; then
    t_fail "$name" "$key gone ${el} ms after the grant of a $5 s lease"
  else
    t_ok "$name (${el} ms after the grant)"
  fi
}

# --- watch: live events (--prefix, range, --prev-kv, -w json) -----------------------------------
# Timing: none beyond the bounded waits of wsync; each watcher is bounded to 120 s.
wx_start wp   --prefix w/
wx_start wpj  --prefix w/ -w json
wx_start wpp  --prefix w/ --prev-kv
wx_start wppj --prefix w/ --prev-kv -w json
wx_start wr   w/a w/b
wsync w/a wp wpj wpp wppj wr || t_fail "watchers established" "see wsync message above"
R1=$(head_rev)
printf '\nput w/c c\nput w/d d\n\n\n' >"$T_DIR/txn_two"
cx "put w/a (watched)"           put w/a 1
cx "put w/b (watched)"           put w/b 2
cx "put w/a again"               put w/a 3
cx "put outside the prefix"      put wx 9
cx "del w/a"                     del w/a
cx "txn: two puts, one revision" --in "$T_DIR/txn_two" txn
cx "del w/ --prefix"             del w/ --prefix
wsync w/a wp wpj wpp wppj wr
wx_stop wp   "watch --prefix"
wx_stop wpj  "watch --prefix -w json"
wx_stop wpp  "watch --prefix --prev-kv"
wx_stop wppj "watch --prefix --prev-kv -w json"
wx_stop wr   "watch KEY RANGE_END"

# --- watch --rev: history, inclusive -------------------------------------------------------------
wx_start wh   --rev $((R1 + 2)) --prefix w/
wx_start whj  --rev $((R1 + 2)) --prefix w/ -w json
wx_start whp  --rev $((R1 + 3)) --prefix w/ --prev-kv
wx_start whk  --rev $((R1 + 1)) w/a w/b
wx_start whf  --rev 100000 --prefix wf/
cx "put wf/x (before the future --rev)" put wf/x 1
wsync w/a wh whj whp whk
wx_stop wh   "watch --rev (history from that revision, inclusive)"
wx_stop whj  "watch --rev -w json"
wx_stop whp  "watch --rev --prev-kv (prev_kv from history)"
wx_stop whk  "watch --rev KEY RANGE_END"
wx_stop whf  "watch --rev in the future: nothing yet"

# --- watch -i: commands on stdin -----------------------------------------------------------------
wx_start_i wi
wx_cmd wi "watch wi/k"
wx_cmd wi "bogus wi/k"
wx_cmd wi "watch"
wx_cmd wi "watch --prefix --prev-kv wj/"
# the clients create the watches of one stream in order: wj/ seen => wi/k established too
wsync wj/ wi || t_fail "interactive watchers established" "see wsync message above"
cx "put wi/k (watched exactly)"  put wi/k a
cx "put wi/kk (not watched)"     put wi/kk x
cx "put wi/k again"              put wi/k b
cx "del wi/k"                    del wi/k
cx "put wi/k end"                put wi/k end
wx_wait_line wi end
cx "put wj/x"                    put wj/x 1
cx "put wj/x again"              put wj/x 2
cx "del wj/x"                    del wj/x
wsync wj/ wi
wx_stop wi "watch -i (two watches, bad command lines, EOF)" exit

# --- leases --------------------------------------------------------------------------------------
# Timing: remaining TTLs are masked only within 10 s below the granted TTL (lnorm.py); the lease
# list order (etcd: by expiry) holds because the TTLs differ by minutes.
cx_grant "lease grant 60"                  LA lease grant 60
cx_grant "lease grant 600 -w json"         LB lease grant 600 -w json
cx_grant "lease grant 300 -w fields"       LC lease grant 300 -w fields
cx "put --lease"                 put --lease=@LA l/a 1
cx "put --lease (second key)"    put --lease=@LA l/b 2
cx "put --lease (other lease)"   put l/c 3 --lease=@LB
cx "get leased keys -w json"     get l/ --prefix -w json
cx "lease timetolive"            lease timetolive @LA
cx "lease timetolive --keys"     lease timetolive --keys @LA
cx "lease timetolive --keys -w json" lease timetolive @LA --keys -w json
cx "lease timetolive (no keys)"  lease timetolive @LC --keys
cx "lease keep-alive --once"     lease keep-alive --once @LA
cx "lease keep-alive --once -w json" lease keep-alive --once @LB -w json
cx "lease list (by expiry)"      lease list
cx "lease list -w json"          lease list -w json
wx_start wl  --prefix l/ --prev-kv
wx_start wlj --prefix l/ -w json
wsync l/ wl wlj || t_fail "lease watchers established" "see wsync message above"
cx "lease revoke (two keys)"     lease revoke @LA
cx "lease revoke (no keys)"      lease revoke @LC
cx "get after revoke: keys gone" get l/ --prefix -w json
cx "lease timetolive revoked"    lease timetolive @LA --keys
cx "lease timetolive revoked -w json" lease timetolive @LA -w json
cx "lease revoke again"          lease revoke @LA
cx "lease keep-alive --once revoked" lease keep-alive --once @LA
cx "put --lease revoked"         put --lease=@LA l/d 4
cx "lease timetolive never granted" lease timetolive 1234
cx "lease revoke never granted"  lease revoke 1234
cx "lease revoke bad hex"        lease revoke zz
cx "lease grant too large TTL"   lease grant 100000000000
cx_grant "lease grant 1 (raised to the minimum TTL)" LM lease grant 1
cx "lease timetolive (minimum TTL)" lease timetolive @LM
# a leased key vanishes after its TTL when nobody renews it (bounded poll, 20 s)
cx_grant "lease grant 5"         LX lease grant 5
cx "put --lease (short lease)"   put l/exp v --lease=@LX
wait_key_gone sut l/exp "leased key expires (server under test)" LX 5
wait_key_gone ref l/exp "leased key expires (etcd)" LX 5
cx "get after expiry"            get l/ --prefix -w json
cx "lease timetolive expired"    lease timetolive @LX
cx "lease list after revoke and expiry" lease list
wsync l/ wl wlj
wx_stop wl  "watch: revoke and expiry delete the keys (--prev-kv)"
wx_stop wlj "watch -w json: revoke deletes both keys at one revision"

# --- watch and compaction ------------------------------------------------------------------------
RC=$(head_rev)
cx "put c/a"                     put c/a 1
cx "put c/a again"               put c/a 2
cx "put c/b"                     put c/b 3
cx "compaction (physical) for watch" compaction $((RC + 2)) --physical
wx_start wc1 --rev $((RC + 1)) --prefix c/
wx_start wc2 --rev $((RC + 1)) --prefix c/ -w json
wx_stop wc1 "watch --rev below the compaction: canceled" exit
wx_stop wc2 "watch --rev below the compaction -w json" exit
wx_start wc3 --rev $((RC + 2)) --prefix c/
wsync c/ wc3
wx_stop wc3 "watch --rev at the compaction revision"

# --- endpoint and member commands ----------------------------------------------------------------
NORM=(--mask-col VERSION --mask-col "DB SIZE" --mask-col "RAFT INDEX" --mask-col "RAFT APPLIED INDEX"
      --mask-key version --mask-key dbSize --mask-key dbSizeInUse --mask-key raftIndex
      --mask-key raftAppliedIndex --mask-col TOOK)
cx "endpoint status -w table"   endpoint status -w table
cx "endpoint status -w json"    endpoint status -w json
cx "endpoint health -w table"   endpoint health -w table
cx "endpoint health"            endpoint health
cx "member list"                member list
cx "member list -w table"       member list -w table
cx "member list -w json"        member list -w json
cx "alarm list (none)"          alarm list
cx "alarm list -w json (none)"  alarm list -w json
cx "alarm disarm (none)"        alarm disarm
cx "defrag"                     defrag
cx "defrag -w json"             defrag -w json
NORM=()
cx "final state"                get "" --from-key -w json

# --- snapshot save -------------------------------------------------------------------------------
# etcdctl streams Maintenance.Snapshot into FILE.part and renames it. Its log lines (JSON on stderr)
# carry timestamps, sizes and durations: of those only the "msg" sequence is compared; the rest
# of the output (with the file's directory and the client ports masked) and the exit code must
# match. Each side's file
# must then pass etcd's own test: size % 512 == 32 and the last 32 bytes are the SHA-256 of the
# rest; the database is a bbolt file for both servers (cetcd streams etcd 3.4's format).
SNAP_KIND=bbolt
snap_filter() {
  "$PY" -c '
import json, sys
for line in sys.stdin:
    line = line.rstrip("\n").replace(sys.argv[1], "DIR")
    for port in sys.argv[2:]:
        line = line.replace(":" + port, ":PORT")
    try:
        j = json.loads(line)
        print("LOG", j["msg"])
    except (ValueError, KeyError, TypeError):
        print(line)' "$T_DIR/snap" "$S_CP" "$R_CP"
}
# sx NAME ARGS...: etcdctl ARGS on both servers ("%F" in an argument: that side's file), compared.
sx() {
  local name=$1 side cp a args
  shift
  N=$((N + 1))
  for side in sut ref; do
    cp=$(cp_of $side)
    args=()
    for a in "$@"; do args+=("${a//%F/$T_DIR/snap/$N.db}"); done
    { timeout -k 2 60 "$ETCDCTL" --endpoints="127.0.0.1:$cp" "${args[@]}" 2>&1; echo "exit=$?"; } |
      snap_filter >"$T_DIR/out/$N.$side"
    [ -f "$T_DIR/snap/$N.db" ] && mv "$T_DIR/snap/$N.db" "$T_DIR/snap/$N.$side.db"
  done
  compare_sides "$name" "etcdctl $*"
}
# snap_file NAME FILE KIND: etcd's hash test and the database kind
snap_file() {
  local out
  out=$(snap_file_problem "$2" "$3" 2>&1) && t_ok "$1" || t_fail "$1" "$out"
}
mkdir -p "$T_DIR/snap"
cx "put snap/big (100 kB)"               put snap/big "$(head -c 100000 /dev/zero | tr '\0' b)"
cx "put snap/big2 (100 kB)"              put snap/big2 "$(head -c 100000 /dev/zero | tr '\0' c)"
sx "snapshot save"                       snapshot save %F
snap_file "snapshot save: file (server under test)" "$T_DIR/snap/$N.sut.db" "$SNAP_KIND"
snap_file "snapshot save: file (etcd)"               "$T_DIR/snap/$N.ref.db" bbolt
sx "snapshot save into a missing directory" snapshot save "$T_DIR/snap/nodir/x.db"
sx "snapshot save without a file"        snapshot save
sx "snapshot save with two endpoints"    --endpoints="127.0.0.1:$S_CP,127.0.0.1:$R_CP" snapshot save %F
cx "after the snapshots"                 get snap/big --keys-only -w json

t_done
