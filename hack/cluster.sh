#!/usr/bin/env bash
# hack/cluster.sh: a local N-member cluster on 127.0.0.1 for trying things out (`make cluster`).
#
#   hack/cluster.sh [-n N] [--bin PATH] [--detach]    start (or restart) the cluster
#   hack/cluster.sh --stop                             stop a detached cluster
#
# Members are named m1..mN (N = 3 by default, at most 6). Member i listens on etcd's Procfile
# ports, extended: client 2379 for m1 and i*10000+2379 for the others (22379, 32379, ... 62379),
# peer = client + 1; if any of those is taken, every member gets free ports instead and the
# script says so. The ports are saved in $CLUSTER_DIR/cluster.env on first start
# and reused afterwards, because a member's peer URL is part of the cluster's stored membership.
# Data goes to $CLUSTER_DIR/<name> (CLUSTER_DIR defaults to ./cluster.etcd), logs to
# $CLUSTER_DIR/<name>.log, PIDs to $CLUSTER_DIR/cluster.pids. The server runs with its defaults
# (heartbeat 100 ms, election 1000 ms, fsync on); --bin /usr/bin/etcd runs etcd 3.4 the same way.
# A restart over existing data passes the same --initial-* flags, which a member with data ignores.
#
# In the foreground the script waits; Ctrl-C or SIGTERM stops exactly the PIDs it started. With
# --detach it prints how to reach and stop the cluster and exits (status 1 if a member is not
# healthy within 30 s; the members are left running either way); --stop ends the PIDs of the
# pidfile, each only if it is still that member (its command line names its data dir).
# Invariants: every wait is bounded; only PIDs this script started (recorded in the pidfile) are
# ever signalled; members run in their own session, so a closing terminal does not stop them.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=3
BIN=$ROOT/bin/cetcd
DETACH=0
STOP=0
DIR=$(realpath -m "${CLUSTER_DIR:-cluster.etcd}")
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
TOKEN=${CLUSTER_TOKEN:-cetcd-local-cluster}
PY=/usr/bin/python3

usage() { sed -n '4,5p' "$0" | sed 's/^# *//'; exit 2; }
die() { echo "cluster: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    -n) [ $# -ge 2 ] || usage; N=$2; shift 2 ;;
    --bin) [ $# -ge 2 ] || usage; BIN=$2; shift 2 ;;
    --detach) DETACH=1; shift ;;
    --stop) STOP=1; shift ;;
    -h | --help) usage ;;
    *) echo "cluster: unknown argument '$1'" >&2; usage ;;
  esac
done
case $N in [1-6]) ;; *) die "-n takes 1 to 6" ;; esac
PIDFILE=$DIR/cluster.pids
ENVFILE=$DIR/cluster.env

# is_member PID DATADIR: PID is alive and is the member that runs on DATADIR.
is_member() {
  { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -qF -- "--data-dir $2 "
}

# live_pids: the pidfile's PIDs that are still their member ("PID DATADIR" per line).
live_pids() {
  local pid dir
  [ -f "$PIDFILE" ] || return 0
  while read -r pid dir; do
    is_member "$pid" "$dir" && echo "$pid"
  done <"$PIDFILE"
}

# stop_members: SIGTERM to each live member, then SIGKILL whatever is left after 10 s.
stop_members() {
  local pids pid
  pids=$(live_pids)
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 100); do
    [ -z "$(live_pids)" ] && break
    sleep 0.1
  done
  for pid in $(live_pids); do echo "cluster: $pid ignored SIGTERM, sending SIGKILL" >&2; kill -KILL "$pid"; done
  [ -n "$pids" ] && echo "cluster: stopped" "${pids//$'\n'/ }"
  rm -f "$PIDFILE"
}

if [ "$STOP" = 1 ]; then
  [ -f "$PIDFILE" ] || die "no pidfile $PIDFILE (nothing detached there?)"
  stop_members
  exit 0
fi

[ -x "$BIN" ] || die "no server binary '$BIN' (make all, or --bin /usr/bin/etcd)"
[ -n "$(live_pids)" ] && die "a cluster is already running from $DIR (hack/cluster.sh --stop)"
mkdir -p "$DIR" || exit 1

# port_free PORT: nothing on 127.0.0.1 holds PORT (SO_REUSEADDR, as servers bind: TIME_WAIT
# connections left by a previous run do not count).
port_free() {
  "$PY" -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null
}

# choose_ports: fills CP[i] and PP[i] for i=1..N (Procfile ports if all free, else free ports).
choose_ports() {
  local i p ok=1
  for i in $(seq "$N"); do
    p=$(( i == 1 ? 2379 : i * 10000 + 2379 ))
    CP[i]=$p PP[i]=$((p + 1))
    port_free "${CP[$i]}" && port_free "${PP[$i]}" || ok=0
  done
  [ "$ok" = 1 ] && { PORTS_NOTE="Procfile ports"; return 0; }
  local -a free
  read -r -a free < <("$PY" -c 'import socket,sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1",0)) for x in s]; print(*[x.getsockname()[1] for x in s])' $((2 * N)))
  for i in $(seq "$N"); do CP[i]=${free[2 * i - 2]} PP[i]=${free[2 * i - 1]}; done
  PORTS_NOTE="free ports (some of 2379/22379/32379... are taken)"
}

declare -a CP PP MPID
if [ -f "$ENVFILE" ]; then
  # shellcheck disable=SC1090
  . "$ENVFILE"
  [ "$SAVED_N" = "$N" ] || die "$DIR holds a $SAVED_N-member cluster; use -n $SAVED_N or another CLUSTER_DIR"
  PORTS_NOTE="ports saved in $ENVFILE"
else
  choose_ports
  { echo "SAVED_N=$N"; declare -p CP PP; } >"$ENVFILE"
fi

INITIAL=
for i in $(seq "$N"); do INITIAL+=${INITIAL:+,}m$i=http://127.0.0.1:${PP[$i]}; done
ENDPOINTS=
for i in $(seq "$N"); do ENDPOINTS+=${ENDPOINTS:+,}http://127.0.0.1:${CP[$i]}; done

: >"$PIDFILE"
trap 'echo; stop_members; exit 0' INT TERM
for i in $(seq "$N"); do
  data=$DIR/m$i
  state=new
  [ -d "$data/member" ] && state="new (restart: data exists, initial flags ignored)"
  echo "=== $(date -u +%FT%TZ) start $BIN m$i" >>"$DIR/m$i.log"
  setsid "$BIN" --name "m$i" --data-dir "$data" \
    --listen-client-urls "http://127.0.0.1:${CP[$i]}" --advertise-client-urls "http://127.0.0.1:${CP[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${PP[$i]}" --initial-advertise-peer-urls "http://127.0.0.1:${PP[$i]}" \
    --initial-cluster "$INITIAL" --initial-cluster-token "$TOKEN" --initial-cluster-state new \
    </dev/null >>"$DIR/m$i.log" 2>&1 &
  MPID[i]=$!
  echo "$! $data" >>"$PIDFILE"
  echo "m$i: pid $!, client ${CP[$i]}, peer ${PP[$i]}, data $data, state $state"
done
echo "($PORTS_NOTE; logs $DIR/m*.log)"

# healthy PORT: the member answers /health with true (it sees a leader, so a quorum is up).
healthy() { curl -s -m 1 "http://127.0.0.1:$1/health" | grep -q '"health": *"true"'; }
deadline=$((SECONDS + 30)) all_healthy=1
for i in $(seq "$N"); do
  until healthy "${CP[$i]}" || ! kill -0 "${MPID[$i]}" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do
    sleep 0.1
  done
  healthy "${CP[$i]}" || { all_healthy=0; echo "cluster: m$i not healthy (within 30 s); see $DIR/m$i.log" >&2; }
done

echo
echo "export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$ENDPOINTS"
echo "\$ etcdctl endpoint status --cluster -w table"
ETCDCTL_API=3 timeout 10 "$ETCDCTL" --endpoints="$ENDPOINTS" endpoint status --cluster -w table

if [ "$DETACH" = 1 ]; then
  trap - INT TERM
  echo "detached; PIDs in $PIDFILE. Stop with: CLUSTER_DIR=$DIR $0 --stop"
  [ "$all_healthy" = 1 ]
  exit  # with 1 if a member is not healthy (it is left running: look at its log, then --stop)
fi
echo "running; Ctrl-C stops the members"
# wait -n returns when a member exits or a signal arrives (then the trap stops the rest).
while [ -n "$(live_pids)" ]; do
  wait -n
  left=$(live_pids | wc -l)
  [ "$left" -gt 0 ] && echo "cluster: a member exited; $left of $N still running" >&2
done
echo "cluster: all members exited"
rm -f "$PIDFILE"
