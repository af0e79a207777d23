#!/usr/bin/env bash
# tests/compat/patroni.sh BIN_DIR: Debian's Patroni 3.0.2 with the local PostgreSQL 15 against a
# 3-member cluster of the server in BIN_DIR (BIN_DIR/cetcd, else BIN_DIR/etcd; SERVER_BIN
# overrides), all on 127.0.0.1. Patroni talks to the members through the JSON gateway only (its
# `etcd3:` section); it runs as the `postgres` user (when this script runs as root) with
# ttl 10 / loop_wait 2 / retry_timeout 4 (loop_wait + 2 x retry_timeout <= ttl, Patroni's rule).
#   1. Patroni bootstraps a primary within PATRONI_BOOT_S (60) seconds: REST `GET /primary` 200,
#      `patronictl list` shows it Leader/running, `pg_is_in_recovery()` false; the keys under
#      /service/<scope>/ are exactly config, initialize, leader, members/<name>, status; config
#      holds our ttl/loop_wait/retry_timeout; initialize holds the database system identifier;
#      leader (value <name>) and members/<name> (state running) share one lease whose
#      `lease timetolive` shows granted TTL 10 and both keys attached.
#   2. kill -9 of the leading member (leadership is first moved, with move-leader, to the member
#      Patroni's watch stream is connected to, so the kill also cuts Patroni's connections): a new
#      leader among the other two within 10 s; Patroni's lease is renewed afterwards (its remaining
#      TTL rises again) and the leader key still names <name>; throughout, from before the kill to
#      PATRONI_HOLD_S (12) seconds after it, REST `GET /primary` answered 200 every time, the
#      postmaster PID did not change, `pg_is_in_recovery()` stayed false and Patroni's log shows
#      no demotion or lost lock. The killed member restarts and rejoins.
#   3. kill -9 of Patroni and `pg_ctl stop -m immediate` of its PostgreSQL: leader and
#      members/<name> disappear by lease expiry, between ttl - loop_wait - 2 and ttl + 5 seconds
#      after the kill; the lease is gone; config, initialize and status remain.
# The gateway calls Patroni made (urllib3's request lines in Patroni's log) are listed as comments.
# PATRONI_AUTH=1: the same with authentication enabled before Patroni starts: a user "patroni"
# whose role may read and write /service/ only, given to Patroni as etcd3 username/password;
# the script's own etcdctl calls act as root (ETCDCTL_USER).
# SKIPs (counted as passed) only when patroni or PostgreSQL 15 is not installed. Bounded: every
# wait has a deadline and no phase starts after PATRONI_BUDGET_S (150) seconds; on exit (also on
# failure or a signal) Patroni, the postmaster (by the PID in its postmaster.pid) and the members
# are stopped by PID and the temp dir is removed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

PG_BIN=/usr/lib/postgresql/15/bin
PATRONI=$(command -v patroni 2>/dev/null)
PATRONICTL=$(command -v patronictl 2>/dev/null)
if [ -z "$PATRONI" ] || [ -z "$PATRONICTL" ] || [ ! -x "$PG_BIN/postgres" ] ||
  [ ! -x "$PG_BIN/initdb" ] || { [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; }; then
  echo "# patroni or PostgreSQL 15 is not installed (hack/deps.sh installs them)"
  t_skip "Patroni with PostgreSQL 15 against a 3-member cluster" \
    "patroni or postgresql-15 not installed"
  echo "$T_PASS passed, $T_FAIL failed"
  exit 0
fi

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"
TTL=10 LOOP_WAIT=2 RETRY_TIMEOUT=4
BOOT_S=${PATRONI_BOOT_S:-60}
BUDGET_S=${PATRONI_BUDGET_S:-150}
HOLD_S=${PATRONI_HOLD_S:-12}
SCOPE=cetcd-pg
NAME=pg1
PREFIX=/service/$SCOPE/
T0=$SECONDS

# --- PostgreSQL/Patroni sandbox ----------------------------------------------------------------
# $T_DIR/pg (owned by the user Patroni runs as): patroni.yml, data/, sock/, patroni.log.
PG_DIR=$T_DIR/pg
PG_DATA=$PG_DIR/data
PLOG=$PG_DIR/patroni.log
chmod 711 "$T_DIR"
mkdir -p "$PG_DIR/sock"
if [ "$(id -u)" = 0 ]; then
  chown -R postgres:postgres "$PG_DIR"
  AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups env HOME="$PG_DIR")
else
  AS_PG=(env HOME="$PG_DIR")
fi
chmod 700 "$PG_DIR"
PATRONI_PID=""
alloc_ports PG_PORT API_PORT || exit 2
API=http://127.0.0.1:$API_PORT

# postmaster_pid: the PID in $PG_DATA/postmaster.pid when that process runs postgres; else empty.
postmaster_pid() {
  local pid
  pid=$(head -1 "$PG_DATA/postmaster.pid" 2>/dev/null) || return 0
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "postgres" && echo "$pid"
  return 0
}

# wait_gone PID SECONDS: polls until PID (not necessarily our child) has exited.
wait_gone() {
  local deadline=$((SECONDS + $2))
  while pid_alive "$1"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.1
  done
  return 0
}

# pg_cleanup: Patroni (TERM: it stops PostgreSQL itself; KILL after 20 s), then the postmaster
# if still running (SIGQUIT = immediate shutdown; KILL after 10 s).
pg_cleanup() {
  local pm
  [ -n "${POLL_PID:-}" ] && { touch "$T_DIR/poll.stop"; stop_member "$POLL_PID" TERM 3; }
  [ -n "$PATRONI_PID" ] && stop_member "$PATRONI_PID" TERM 20
  PATRONI_PID=""
  pm=$(postmaster_pid)
  if [ -n "$pm" ]; then
    kill -QUIT "$pm" 2>/dev/null
    wait_gone "$pm" 10 || { kill -KILL "$pm" 2>/dev/null; wait_gone "$pm" 5; }
  fi
}
trap 'pg_cleanup; t_cleanup' EXIT
# finish: Patroni and PostgreSQL stop while the members still run, then t_done.
finish() { pg_cleanup; t_done; }

write_config() {
  local hosts="127.0.0.1:${C_CP[1]},127.0.0.1:${C_CP[2]},127.0.0.1:${C_CP[3]}"
  cat >"$PG_DIR/patroni.yml" <<EOF
scope: $SCOPE
namespace: /service/
name: $NAME
log:
  level: INFO
  format: '%(asctime)s %(levelname)s %(name)s: %(message)s'
  loggers:
    urllib3.connectionpool: DEBUG
restapi:
  listen: 127.0.0.1:$API_PORT
  connect_address: 127.0.0.1:$API_PORT
etcd3:
  hosts: $hosts
${PATRONI_AUTH:+  username: patroni
  password: patroni-pw}
bootstrap:
  dcs:
    ttl: $TTL
    loop_wait: $LOOP_WAIT
    retry_timeout: $RETRY_TIMEOUT
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: false
      parameters:
        max_connections: 20
        max_wal_senders: 2
        max_replication_slots: 2
        wal_level: replica
  initdb:
    - encoding: UTF8
    - locale: C
    - no-sync
postgresql:
  listen: 127.0.0.1:$PG_PORT
  connect_address: 127.0.0.1:$PG_PORT
  data_dir: $PG_DATA
  bin_dir: $PG_BIN
  pgpass: $PG_DIR/pgpass
  authentication:
    superuser:
      username: postgres
      password: patroni-test
    replication:
      username: replicator
      password: patroni-test
  parameters:
    unix_socket_directories: $PG_DIR/sock
    shared_buffers: 16MB
    fsync: 'off'
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
EOF
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DIR/patroni.yml"
  return 0
}

# psql_q SQL: one value from the local PostgreSQL over TCP (trust), bounded.
psql_q() {
  timeout -k 1 5 "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -XAtc "$1" 2>&1
}

# api_code PATH: the HTTP status Patroni's REST API answers (000 when it does not).
api_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$API$1" 2>/dev/null; }

# dcs_keys I [flags]: every key under $PREFIX on member I as "relative-key lease-hex value" lines
# (lease 0 when none), sorted.
dcs_keys() {
  local i=$1
  shift
  ctl "$i" get --prefix "$PREFIX" -w json "$@" 2>/dev/null | "$PY" -c '
import base64, json, sys
pre = sys.argv[1]
for kv in json.load(sys.stdin).get("kvs", []):
    k = base64.b64decode(kv["key"]).decode()
    v = base64.b64decode(kv.get("value", "")).decode().replace("\n", " ")
    print(k[len(pre):], "%x" % int(kv.get("lease", 0)), v)' "$PREFIX" | sort
}

# key_line / key_lease / key_value LINES KEY: KEY's whole line, lease, value in dcs_keys output.
key_line() { echo "$1" | awk -v k="$2" '$1 == k'; }
key_lease() { key_line "$1" "$2" | awk '{ print $2 }'; }
key_value() { key_line "$1" "$2" | cut -d' ' -f3-; }

# lease_ttl I HEX: "REMAINING GRANTED KEY,KEY..." (relative keys) from `lease timetolive --keys`
# on member I; "-1 ..." when the lease is gone; empty on error.
lease_ttl() {
  ctl "$1" lease timetolive "$2" --keys -w json 2>/dev/null | "$PY" -c '
import base64, json, sys
pre = sys.argv[1]
r = json.load(sys.stdin)
ks = sorted(base64.b64decode(k).decode()[len(pre):] for k in r.get("keys") or [])
print(r.get("ttl", 0), r.get("granted-ttl", 0), ",".join(ks))' "$PREFIX"
}

others() { local i; for i in 1 2 3; do [ "$i" != "$1" ] && printf '%s ' "$i"; done; }
# plog_tail [N]: the last N lines of Patroni's own messages (urllib3's request lines left out), a
# run of lines that differ only in their time stamp shown once with its count.
plog_tail() {
  echo "== patroni.log (last ${1:-15} messages)"
  grep -v ' urllib3\.' "$PLOG" | awk '
    { m = $0; sub(/^[0-9-]+ [0-9:,]+ /, "", m) }
    m == prev { n++; next }
    { if (NR > 1) print last (n > 1 ? "   [x" n "]" : ""); prev = m; last = $0; n = 1 }
    END { if (NR) print last (n > 1 ? "   [x" n "]" : "") }' | tail -"${1:-15}"
}
logs_tail() { local i; for i in 1 2 3; do echo "== ${C_NAME[i]}"; tail -5 "${C_LOG[i]}"; done; }

# patroni_member: the index of the member Patroni's watch stream uses: Patroni's connections to
# the members (ss), the member with the most of them (the watch and the KV requests go to the same
# base URI); empty when unknown.
patroni_member() {
  local i n best="" bestn=0
  for i in 1 2 3; do
    n=$(ss -tnpH state established "( dport = :${C_CP[i]} )" 2>/dev/null |
      grep -c "pid=$PATRONI_PID,")
    if [ "$n" -gt "$bestn" ]; then best=$i bestn=$n; fi
  done
  echo "$best"
}

# budget PHASE: fails and finishes when the run has used more than BUDGET_S seconds so far.
budget() {
  [ $((SECONDS - T0)) -le "$BUDGET_S" ] && return 0
  t_fail "time budget: ${BUDGET_S}s used up before $1"
  finish
}

# --- cluster and Patroni -----------------------------------------------------------------------
if start_cluster "$SUT" 3; then t_ok "3 members start as a new cluster"
else t_fail "3 members start as a new cluster" "$(logs_tail)"; finish; fi
IC=$(c_initial_cluster 1 2 3)
# enable_auth: root, and a user patroni confined to /service/; later etcdctl calls act as root.
enable_auth() {
  ctl 1 user add root:root-pw && ctl 1 role add patroni &&
    ctl 1 role grant-permission patroni readwrite /service/ --prefix=true &&
    ctl 1 user add patroni:patroni-pw && ctl 1 user grant-role patroni patroni &&
    ctl 1 auth enable
}
if [ -n "${PATRONI_AUTH:-}" ]; then
  if out=$(enable_auth 2>&1); then t_ok "auth enabled, Patroni's user confined to /service/"
  else t_fail "auth enabled, Patroni's user confined to /service/" "$out"; finish; fi
  export ETCDCTL_USER=root:root-pw
fi
write_config

echo "=== start $(date -u +%T.%N) $PATRONI" >>"$PLOG"
"${AS_PG[@]}" "$PATRONI" "$PG_DIR/patroni.yml" >>"$PLOG" 2>&1 &
PATRONI_PID=$!
TB=$(now_ms)

# --- 1. bootstrap ------------------------------------------------------------------------------
deadline=$((SECONDS + BOOT_S))
code=000
while [ "$SECONDS" -lt "$deadline" ] && pid_alive "$PATRONI_PID"; do
  code=$(api_code /primary)
  [ "$code" = 200 ] && break
  sleep 0.3
done
if [ "$code" = 200 ]; then
  t_ok "Patroni bootstraps a primary: GET /primary 200 after $(( $(now_ms) - TB )) ms"
else
  t_fail "Patroni bootstraps a primary within ${BOOT_S}s (GET /primary: $code)" \
    "$(plog_tail 30)" "$(logs_tail)"
  finish
fi

out=$(timeout -k 1 15 "$PATRONICTL" -c "$PG_DIR/patroni.yml" list -f json 2>&1)
got=$(echo "$out" | "$PY" -c '
import json, sys
ms = json.load(sys.stdin)
print(" ".join("%s:%s:%s" % (m.get("Member"), m.get("Role"), m.get("State")) for m in ms))' 2>&1)
t_eq "patronictl list: $NAME is Leader and running" "$NAME:Leader:running" "$got"
t_eq "pg_is_in_recovery() is false" "f" "$(psql_q 'select pg_is_in_recovery()')"

# status is written by the leader's HA loop after it took the lock: wait (bounded) for all keys.
want="config initialize leader members/$NAME status"
deadline=$((SECONDS + 2 * LOOP_WAIT + 5))
while :; do
  keys=$(dcs_keys 1)
  names=$(echo "$keys" | awk '{ print $1 }' | tr '\n' ' ' | sed 's/ $//')
  [ "$names" = "$want" ] && break
  [ "$SECONDS" -ge "$deadline" ] && break
  sleep 0.3
done
t_eq "keys under $PREFIX" "$want" "$names"
printf '%s\n' "$keys" | sed 's/^/#   /'

cfg=$(key_value "$keys" config)
got=$(echo "$cfg" | "$PY" -c 'import json, sys; c = json.load(sys.stdin)
print(c.get("ttl"), c.get("loop_wait"), c.get("retry_timeout"))' 2>&1)
t_eq "config holds ttl loop_wait retry_timeout" "$TTL $LOOP_WAIT $RETRY_TIMEOUT" "$got"
sysid=$("$PG_BIN/pg_controldata" "$PG_DATA" 2>/dev/null |
  awk -F': *' '/system identifier/ { print $2 }')
t_eq "initialize holds the database system identifier" "${sysid:-?}" \
  "$(key_value "$keys" initialize)"
t_eq "leader names $NAME" "$NAME" "$(key_value "$keys" leader)"
got=$(key_value "$keys" "members/$NAME" | "$PY" -c 'import json, sys; m = json.load(sys.stdin)
print(m.get("state"), m.get("role") in ("master", "primary"), m.get("api_url"))' 2>&1)
t_eq "members/$NAME: running primary with its REST URL" "running True $API/patroni" "$got"

LEASE=$(key_lease "$keys" leader)
if [ -n "$LEASE" ] && [ "$LEASE" != 0 ] &&
  [ "$LEASE" = "$(key_lease "$keys" "members/$NAME")" ]; then
  t_ok "leader and members/$NAME carry one lease ($LEASE); config, initialize, status none"
else
  t_fail "leader and members/$NAME carry one lease" "$keys"
fi
t_eq "config, initialize, status are not leased" "0 0 0" \
  "$(key_lease "$keys" config) $(key_lease "$keys" initialize) $(key_lease "$keys" status)"
tl=$(lease_ttl 1 "${LEASE:-0}")
rem=${tl%% *}
if [ "$(echo "$tl" | cut -d' ' -f2-)" = "$TTL leader,members/$NAME" ] && [ "${rem:-0}" -gt 0 ] &&
  [ "${rem:-0}" -le "$TTL" ]; then
  t_ok "lease timetolive: granted $TTL, remaining $rem, keys leader and members/$NAME"
else
  t_fail "lease timetolive: granted $TTL, 0 < remaining <= $TTL, keys leader and members/$NAME" \
    "$tl"
fi

# --- 2. kill -9 of the leading member ----------------------------------------------------------
budget "the member kill"
L=$(c_wait_leader "1 2 3" 10) || L=""
P=$(patroni_member)
echo "# cluster leader: c${L:-?}; Patroni's member: c${P:-?}"
if [ -n "$L" ] && [ -n "$P" ] && [ "$P" != "$L" ]; then
  if ctl "$L" move-leader "$(c_member_id "$P")" >/dev/null 2>&1 &&
    NL=$(c_wait_leader "1 2 3" 10) && [ "$NL" = "$P" ]; then
    L=$P
    echo "# moved leadership to c$P"
  else
    echo "# move-leader to c$P did not take effect; killing c$L"
    L=$(c_wait_leader "1 2 3" 10) || L=""
  fi
fi
PM0=$(postmaster_pid)
plines0=$(wc -l <"$PLOG")

# the /primary poller: one "ms code" line every 0.3 s until the stop file exists (bounded).
rm -f "$T_DIR/poll.stop"
(
  end=$((SECONDS + HOLD_S + 40))
  while [ ! -e "$T_DIR/poll.stop" ] && [ "$SECONDS" -lt "$end" ]; do
    echo "$(now_ms) $(api_code /primary)"
    sleep 0.3
  done
) >"$T_DIR/poll.out" 2>/dev/null &
POLL_PID=$!
track_pid "$POLL_PID"

if [ -z "$L" ]; then
  t_fail "a cluster leader before the kill" "$(for i in 1 2 3; do c_status "$i"; done)"
  finish
fi
sleep 1 # a few /primary samples before the kill
TK=$(now_ms)
member_stop "$L" KILL
if NL=$(c_wait_leader "$(others "$L")" 10); then
  t_ok "kill -9 of leader c$L: new leader c$NL after $(( $(now_ms) - TK )) ms"
else
  t_fail "kill -9 of leader c$L: a new leader among the other two within 10 s" \
    "$(for i in $(others "$L"); do c_status "$i"; done)"
  NL=$(others "$L" | cut -d' ' -f1)
fi

# renewal: the remaining TTL of the leader key's lease rises again after the new leader came.
renewed="" prev="" lease_now=""
deadline=$((SECONDS + TTL + 5))
while [ "$SECONDS" -lt "$deadline" ]; do
  keys=$(dcs_keys "$NL")
  lease_now=$(key_lease "$keys" leader)
  if [ "$(key_value "$keys" leader)" = "$NAME" ] && [ -n "$lease_now" ] &&
    [ "$lease_now" != 0 ]; then
    rem=$(lease_ttl "$NL" "$lease_now" | cut -d' ' -f1)
    if [ -n "$prev" ] && [ -n "$rem" ] && [ "$rem" -gt "$prev" ]; then
      renewed="$prev -> $rem"
      break
    fi
    [ -n "$rem" ] && [ "$rem" -gt 0 ] && prev=$rem
  fi
  sleep 0.4
done
if [ -n "$renewed" ]; then
  t_ok "the leader key's lease ($lease_now) is renewed after the kill (remaining TTL $renewed)"
else
  t_fail "the leader key (value $NAME) keeps a lease that is renewed after the kill" \
    "last keys: $keys" "$(plog_tail 20)"
fi

# hold: Patroni must stay primary for HOLD_S seconds after the kill.
while [ $(( $(now_ms) - TK )) -lt $((HOLD_S * 1000)) ]; do sleep 0.3; done
touch "$T_DIR/poll.stop"
wait_exit "$POLL_PID" 5 || kill "$POLL_PID" 2>/dev/null
POLL_PID=""
n=$(wc -l <"$T_DIR/poll.out")
bad=$(awk '$2 != 200' "$T_DIR/poll.out")
before=$(awk -v t="$TK" '$1 < t' "$T_DIR/poll.out" | wc -l)
if [ "$n" -ge $((HOLD_S * 2)) ] && [ "$before" -ge 1 ] && [ -z "$bad" ]; then
  t_ok "GET /primary answered 200 in all $n samples from before the kill to ${HOLD_S}s after"
else
  t_fail "GET /primary answers 200 throughout (samples: $n, before the kill: $before)" \
    "non-200 samples (ms since kill, code):" \
    "$(echo "$bad" | awk -v t="$TK" '{ print $1 - t, $2 }' | head -20)" "$(plog_tail 20)"
fi
t_eq "the postmaster was not restarted (PID)" "$PM0" "$(postmaster_pid)"
t_eq "pg_is_in_recovery() is still false" "f" "$(psql_q 'select pg_is_in_recovery()')"
lost='demot|failed to update leader lock|lost the leader|not accessible|I am not the leader'
lost="$lost|following a different leader"
demote=$(tail -n +"$((plines0 + 1))" "$PLOG" | grep -v ' urllib3\.' | grep -iE "$lost" | head -10)
if [ -z "$demote" ]; then t_ok "Patroni's log shows no demotion or lost lock after the kill"
else t_fail "Patroni's log shows no demotion or lost lock after the kill" "$demote"; fi
echo "# Patroni during the kill:"
tail -n +"$((plines0 + 1))" "$PLOG" | grep -vE 'no action\. I am|Lock owner' |
  head -16 | sed 's/^/#   /'

member_start "$L" new "$IC"
if c_wait_ready "$L" 20 && c_wait_leader "1 2 3" 10 >/dev/null; then
  t_ok "the killed member c$L restarts and the three agree on a leader"
else
  t_fail "the killed member c$L restarts and the three agree on a leader" "$(tail -8 "${C_LOG[L]}")"
fi
t_eq "Patroni is still primary after the member rejoined (GET /primary)" 200 "$(api_code /primary)"

# --- 3. Patroni killed: the leased keys expire -------------------------------------------------
budget "the Patroni kill"
keys=$(dcs_keys 1)
LEASE=$(key_lease "$keys" leader)
PM=$(postmaster_pid)
TK=$(now_ms)
stop_member "$PATRONI_PID" KILL
PATRONI_PID=""
out=$("${AS_PG[@]}" timeout -k 1 20 "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w 2>&1)
if [ -n "$PM" ] && wait_gone "$PM" 10; then t_ok "pg_ctl stop -m immediate stopped the postmaster"
else t_fail "pg_ctl stop -m immediate stopped the postmaster (PID ${PM:-?})" "$out"; fi

gone="" remaining=""
deadline=$(( TK + (TTL + 5) * 1000 ))
while [ "$(now_ms)" -lt "$deadline" ]; do
  keys=$(dcs_keys 1)
  remaining=$(echo "$keys" | awk '{ print $1 }' | tr '\n' ' ' | sed 's/ $//')
  if [ -n "$remaining" ] && [ -z "$(key_line "$keys" leader)" ] &&
    [ -z "$(key_line "$keys" "members/$NAME")" ]; then
    gone=$(( $(now_ms) - TK ))
    break
  fi
  sleep 0.2
done
lo=$(( (TTL - LOOP_WAIT - 2) * 1000 ))
if [ -n "$gone" ] && [ "$gone" -ge "$lo" ]; then
  t_ok "leader and members/$NAME expire ${gone} ms after kill -9 of Patroni (ttl $TTL)"
elif [ -n "$gone" ]; then
  t_fail "leader and members/$NAME go by lease expiry (not before $lo ms)" "gone after $gone ms"
else
  t_fail "leader and members/$NAME expire within ttl + 5 s of kill -9 of Patroni" "keys: $remaining"
fi
t_eq "config, initialize, status remain" "config initialize status" "$remaining"
tl=$(lease_ttl 1 "${LEASE:-0}")
t_eq "the lease $LEASE is gone (timetolive -1)" "-1" "${tl%% *}"

# --- gateway calls Patroni made ----------------------------------------------------------------
echo "# gateway calls by Patroni (urllib3 request lines: count method path status):"
grep -oE '"(GET|POST|PUT|DELETE) [^ ]+ HTTP/1\.1" [0-9]+' "$PLOG" | tr -d '"' |
  awk '{ print $1, $2, $4 }' | sort | uniq -c | sort -rn | sed 's/^/#   /'
echo "# run time: $((SECONDS - T0)) s"
finish
