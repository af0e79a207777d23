#!/usr/bin/env bash
# tests/integration/partition.sh BIN_DIR: network partitions of a 3-member cluster (needs root).
# Each member runs in its own network namespace (cet<pid>a/b/c, address 10.77.0.<i>/24 on eth0),
# the three joined by a bridge that lives in a fourth namespace (cet<pid>h), so nothing touches the
# host's own network. etcdctl runs inside the namespaces too. The leader is cut off with iptables
# DROP on its eth0 (INPUT and OUTPUT) inside its namespace; its own loopback traffic still flows, so
# a client next to it can still talk to it. Same expectations for etcd 3.4 and cetcd:
#   - a linearizable read on the old leader started right after the cut (before it can notice)
#     never answers: it errors or times out (--command-timeout=3s), while the majority elects a new
#     leader and writes a new value;
#   - cetcd only: a put through a follower started right after the cut (forwarded to the old
#     leader, which never gets it) answers once the new leader's first entry is applied on the
#     follower (then it is certainly lost: "request timed out, possibly due to previous leader
#     failure"), well before its 12 s deadline (etcd 3.4 waits for the request timeout, 7 s;
#     its time is printed);
#   - the minority side refuses a put and a linearizable read (error or timeout, never the old
#     value); the majority keeps taking writes and serves them linearizably;
#   - after healing, the old leader catches up: a serializable read on it returns the new value,
#     it follows the new leader, and a linearizable read on it returns the new value.
# Skipped (t_skip) when `ip netns add` fails (not root). Namespaces, links and processes are removed
# on every exit path (EXIT trap), failures included.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"

P=cet$$
HUB=${P}h
NSS=()
ns_cleanup() {
  local ns
  stop_all
  for ns in "${NSS[@]}" "$HUB"; do ip netns del "$ns" 2>/dev/null; done
}
trap 'ns_cleanup; t_cleanup' EXIT
trap 'exit 130' INT TERM HUP PIPE

noise() { grep -v '^{"level"'; }
logs_tail() { local i; for i in "$@"; do echo "== ${C_NAME[i]}"; tail -"${TAIL_N:-8}" "${C_LOG[i]}"; done; }
others() { local i; for i in 1 2 3; do [ "$i" != "$1" ] && printf '%s ' "$i"; done; }

# namespaces an earlier run left behind when it was SIGKILLed (its PID gone, nothing inside)
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cet[0-9]+[abch]$/ { print $1 }'); do
  pid=${ns#cet}; pid=${pid%?}
  if ! pid_alive "$pid" && [ -z "$(ip netns pids "$ns" 2>/dev/null)" ]; then ip netns del "$ns" 2>/dev/null; fi
done
if ! ip netns add "$HUB" 2>"$T_DIR/netns.err"; then
  t_skip "network partitions" "ip netns add failed (not root?): $(head -1 "$T_DIR/netns.err")"
  t_done
fi

# --- network: bridge br0 in the hub namespace, one veth per member namespace ----------------
setup_net() {
  local i ns ABC=abc
  ip -n "$HUB" link set lo up &&
    ip -n "$HUB" link add br0 type bridge &&
    ip -n "$HUB" link set br0 up || return 1
  for i in 1 2 3; do
    ns=$P${ABC:i-1:1} # cet<pid>a, b, c
    ip netns add "$ns" || return 1
    NSS+=("$ns")
    ip -n "$HUB" link add "v$i" type veth peer name eth0 netns "$ns" &&
      ip -n "$HUB" link set "v$i" master br0 up &&
      ip -n "$ns" link set lo up &&
      ip -n "$ns" addr add "10.77.0.$i/24" dev eth0 &&
      ip -n "$ns" link set eth0 up || return 1
    member_define "$i" "p$i" "10.77.0.$i" "$ns" 2379 2380
  done
}
if setup_net 2>"$T_DIR/net.err"; then t_ok "3 namespaces on a bridge ($P*)"
else t_fail "3 namespaces on a bridge" "$(cat "$T_DIR/net.err")"; t_done; fi
# reachable = a TCP connect to a closed port is refused (not timed out); no ping on these machines
reach() {
  ip netns exec "$1" "$PY" -c 'import socket, sys
try:
    socket.create_connection((sys.argv[1], 9), 1)
except ConnectionRefusedError:
    sys.exit(0)
except OSError:
    sys.exit(1)' "$2"
}
deadline=$((SECONDS + 10))
until reach "${NSS[0]}" 10.77.0.3 || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
if reach "${NSS[0]}" 10.77.0.3; then t_ok "namespaces reach each other"
else t_fail "namespaces reach each other" "$(ip -n "$HUB" link 2>&1)"; t_done; fi

# cut_off I / heal I: drop / restore everything on member I's eth0 (its loopback still works)
cut_off() { c_in "$1" iptables -I INPUT -i eth0 -j DROP && c_in "$1" iptables -I OUTPUT -o eth0 -j DROP; }
heal() { c_in "$1" iptables -D INPUT -i eth0 -j DROP && c_in "$1" iptables -D OUTPUT -o eth0 -j DROP; }

C_BIN=$SUT
IC=$(c_initial_cluster 1 2 3)
for i in 1 2 3; do member_start "$i" new "$IC"; done
ok=1
for i in 1 2 3; do c_wait_ready "$i" 30 || ok=""; done
if [ -n "$ok" ]; then t_ok "3 members start, one per namespace"; else t_fail "3 members start, one per namespace" "$(logs_tail 1 2 3)"; t_done; fi
if L=$(c_wait_leader "1 2 3" 10); then t_ok "one leader (p$L)"
else t_fail "one leader" "$(for i in 1 2 3; do c_status "$i"; done)"; t_done; fi
read -r A B <<<"$(others "$L")"

if ctl "$L" put k old >/dev/null 2>&1 && [ "$(ctl "$B" get k --print-value-only 2>&1)" = old ]; then
  t_ok "k=old written on the leader, read linearizably on a follower"
else t_fail "k=old written and read back" "$(ctl "$B" get k 2>&1 | noise)"; fi

# --- cut the leader off ------------------------------------------------------------------------
if cut_off "$L" 2>"$T_DIR/cut.err"; then t_ok "leader p$L cut off (iptables DROP on eth0)"
else t_fail "leader p$L cut off" "$(cat "$T_DIR/cut.err")"; t_done; fi
# a linearizable read started at once, while p$L may still believe it leads
ctl "$L" get k --print-value-only --command-timeout=3s >"$T_DIR/early.out" 2>&1 &
EARLY=$!
track_pid "$EARLY"
# a put through a follower started at once: forwarded to the cut-off leader
fw0=$(now_ms)
( ctl "$A" put fw v --command-timeout=12s >"$T_DIR/fwd.out" 2>&1; echo "$(( $(now_ms) - fw0 ))" >"$T_DIR/fwd.ms" ) &
FWD=$!
track_pid "$FWD"

t0=$(now_ms)
NL=""
deadline=$((SECONDS + 15))
while [ -z "$NL" ] && [ "$SECONDS" -lt "$deadline" ]; do NL=$(c_find_leader "$A $B"); [ -z "$NL" ] && sleep 0.1; done
if [ -n "$NL" ]; then t_ok "the majority elects a new leader p$NL ($(( $(now_ms) - t0 )) ms)"
else t_fail "the majority elects a new leader" "$(c_status "$A"; c_status "$B")" "$(logs_tail "$A" "$B")"; fi
retry_while 15 '.' ctl "$A" put k new
if [ "$T_OUT" = OK ]; then t_ok "the majority writes k=new"; else t_fail "the majority writes k=new" "$(echo "$T_OUT" | noise)"; fi

wait_exit "$FWD" 15
fwd_ms=$(cat "$T_DIR/fwd.ms" 2>/dev/null)
fwd=$(noise <"$T_DIR/fwd.out" | tail -1)
if is_real_etcd "$SUT"; then
  echo "# etcd 3.4: the put forwarded to the old leader answered after ${fwd_ms:-?} ms: $fwd"
elif [ -n "$fwd_ms" ] && [ "$fwd_ms" -lt 6000 ] &&
  { [ "$fwd" = OK ] || [[ $fwd == *"possibly due to previous leader failure"* ]]; }; then
  t_ok "a put forwarded to the lost leader fails once the new leader's first entry applies, not at its deadline ($fwd_ms ms: $fwd)"
else
  t_fail "a put forwarded to the lost leader fails once the new leader's first entry applies" "after ${fwd_ms:-?} ms: $fwd"
fi

wait_exit "$EARLY" 15
early_rc=$T_EXIT_STATUS
early=$(noise <"$T_DIR/early.out")
if [ "$early_rc" -ne 0 ] && ! echo "$early" | grep -qx -e old -e new; then
  t_ok "the cut-off leader never answers the early linearizable read ($(echo "$early" | tail -1))"
else t_fail "the cut-off leader never answers the early linearizable read" "exit $early_rc: $early"; fi

# --- the minority side -------------------------------------------------------------------------
out=$(ctl "$L" put k minority --command-timeout=3s 2>&1 | noise)
if ! echo "$out" | grep -q '^OK'; then t_ok "the minority refuses a put ($(echo "$out" | tail -1))"
else t_fail "the minority refuses a put" "$out"; fi
out=$(ctl "$L" get k --print-value-only --command-timeout=3s 2>&1 | noise)
if echo "$out" | grep -q '^Error'; then t_ok "the minority refuses a linearizable read ($(echo "$out" | tail -1))"
else t_fail "the minority refuses a linearizable read" "$out"; fi
echo "# (a serializable read on the minority may answer its own last state: $(ctl "$L" get k --print-value-only --consistency=s 2>&1 | noise | tail -1))"

bad=""
for n in 1 2 3 4 5; do ctl "$B" put "maj/$n" "$n" >/dev/null 2>&1 || bad="$bad maj/$n"; done
[ -z "$bad" ] && t_ok "the majority goes on writing" || t_fail "the majority goes on writing" "failed:$bad"
t_eq "the majority reads k=new linearizably" new "$(ctl "$B" get k --print-value-only 2>&1 | noise)"

# --- heal ----------------------------------------------------------------------------------------
if heal "$L" 2>"$T_DIR/heal.err"; then t_ok "partition healed"; else t_fail "partition healed" "$(cat "$T_DIR/heal.err")"; fi
t0=$(now_ms)
deadline=$((SECONDS + 20))
until [ "$(ctl "$L" get k --print-value-only --consistency=s 2>/dev/null)" = new ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
got=$(ctl "$L" get k --print-value-only --consistency=s 2>&1 | noise)
if [ "$got" = new ]; then t_ok "the old leader catches up: serializable read on it gives k=new ($(( $(now_ms) - t0 )) ms)"
else t_fail "the old leader catches up: serializable read on it gives k=new" "got: $got" "$(logs_tail "$L")"; fi
t_eq "the old leader has the majority's writes" 5 "$(ctl "$L" get maj/ --prefix --keys-only --consistency=s 2>/dev/null | grep -c .)"
deadline=$((SECONDS + 10))
until [ -n "$(c_find_leader "1 2 3")" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
NL2=$(c_find_leader "1 2 3")
if [ -n "$NL2" ]; then t_ok "all 3 members agree on one leader again (p$NL2)"
else t_fail "all 3 members agree on one leader again" "$(for i in 1 2 3; do c_status "$i"; done)"; fi
t_eq "linearizable read on the old leader gives k=new" new "$(ctl "$L" get k --print-value-only 2>&1 | noise)"
t_done
