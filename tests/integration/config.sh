#!/usr/bin/env bash
# tests/integration/config.sh BIN_DIR: configuration surfaces.
#   - the seed's systemd-style EnvironmentFile (ETCD_* variables, loopback http URLs, one member
#     "etcd1"), exported as systemd would, binary run with no flags -> healthy, member named etcd1;
#   - --config-file with etcd's YAML keys -> healthy, name/URLs from the file;
#   - --version prints a version number; --help prints usage (exit 0);
#   - cetcd only (etcd prints its whole usage on a flag error): an unknown flag, and bad values
#     (--heartbeat-interval=abc, --snapshot-count=-1) -> exit code 2 and exactly ONE line on
#     stderr naming the flag, nothing started.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"

# member_name CP: the name of the one member, via the gateway
member_name() {
  curl -s -m 5 "http://127.0.0.1:$1/v3/cluster/member/list" -d '{}' |
    "$PY" -c 'import json,sys; m=json.load(sys.stdin)["members"]; print(",".join(x.get("name","") for x in m))'
}
member_urls() {
  curl -s -m 5 "http://127.0.0.1:$1/v3/cluster/member/list" -d '{}' |
    "$PY" -c 'import json,sys; m=json.load(sys.stdin)["members"][0]; print(m["peerURLs"][0], m["clientURLs"][0])'
}

# --- EnvironmentFile (seed 002) ---------------------------------------------------------------
alloc_ports P Q || exit 2
cat >"$T_DIR/etcd.conf" <<EOF
ETCD_NAME=etcd1
ETCD_DATA_DIR=$T_DIR/envdata
ETCD_LISTEN_CLIENT_URLS=http://127.0.0.1:$P
ETCD_ADVERTISE_CLIENT_URLS=http://127.0.0.1:$P
ETCD_LISTEN_PEER_URLS=http://127.0.0.1:$Q
ETCD_INITIAL_ADVERTISE_PEER_URLS=http://127.0.0.1:$Q
ETCD_INITIAL_CLUSTER=etcd1=http://127.0.0.1:$Q
ETCD_INITIAL_CLUSTER_TOKEN=etcd-cluster-token
ETCD_INITIAL_CLUSTER_STATE=new
EOF
# systemd EnvironmentFile semantics for this simple file: KEY=VALUE per line, exported.
(
  while IFS= read -r line; do
    case $line in ''|'#'*) continue ;; esac
    export "${line%%=*}=${line#*=}"
  done <"$T_DIR/etcd.conf"
  exec "$SUT" >>"$T_DIR/env.log" 2>&1
) &
ENV_PID=$!
track_pid "$ENV_PID"
if wait_ready "http://127.0.0.1:$P" 20; then
  t_ok "EnvironmentFile: starts with no flags"
  t_eq "EnvironmentFile: member name from ETCD_NAME" etcd1 "$(member_name "$P")"
  t_eq "EnvironmentFile: URLs from ETCD_*_URLS" "http://127.0.0.1:$Q http://127.0.0.1:$P" "$(member_urls "$P")"
  [ -d "$T_DIR/envdata/member" ] && t_ok "EnvironmentFile: data in ETCD_DATA_DIR" ||
    t_fail "EnvironmentFile: data in ETCD_DATA_DIR" "$(ls -la "$T_DIR/envdata" 2>&1)"
else
  t_fail "EnvironmentFile: starts with no flags" "$(tail -10 "$T_DIR/env.log")"
fi
stop_member "$ENV_PID" TERM 15

# --- --config-file YAML ------------------------------------------------------------------------
alloc_ports P2 Q2 || exit 2
cat >"$T_DIR/etcd.yaml" <<EOF
# etcd 3.4 configuration file keys
name: 'yaml1'
data-dir: $T_DIR/yamldata
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
listen-peer-urls: http://127.0.0.1:$Q2
listen-client-urls: http://127.0.0.1:$P2
initial-advertise-peer-urls: http://127.0.0.1:$Q2
advertise-client-urls: http://127.0.0.1:$P2
initial-cluster: yaml1=http://127.0.0.1:$Q2
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
max-request-bytes: 1572864
quota-backend-bytes: 0
# etcd's config-file default leaves the JSON gateway off; cetcd always serves it
enable-grpc-gateway: true
EOF
"$SUT" --config-file "$T_DIR/etcd.yaml" >>"$T_DIR/yaml.log" 2>&1 &
Y_PID=$!
track_pid "$Y_PID"
if wait_ready "http://127.0.0.1:$P2" 20; then
  t_ok "--config-file: starts"
  t_eq "--config-file: member name from name:" yaml1 "$(member_name "$P2")"
  t_eq "--config-file: URLs" "http://127.0.0.1:$Q2 http://127.0.0.1:$P2" "$(member_urls "$P2")"
  [ -d "$T_DIR/yamldata/member" ] && t_ok "--config-file: data in data-dir" ||
    t_fail "--config-file: data in data-dir" "$(ls -la "$T_DIR/yamldata" 2>&1)"
else
  t_fail "--config-file: starts" "$(tail -10 "$T_DIR/yaml.log")"
fi
stop_member "$Y_PID" TERM 15

# --- --version, --help -------------------------------------------------------------------------
out=$(timeout -k 2 10 "$SUT" --version 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -qE '[0-9]+\.[0-9]+\.[0-9]+'; then
  t_ok "--version prints a version ($(echo "$out" | head -1))"
else
  t_fail "--version prints a version" "exit $rc" "$out"
fi
out=$(timeout -k 2 10 "$SUT" --help 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -qi 'usage' && echo "$out" | grep -q -- '--data-dir'; then
  t_ok "--help prints usage"
else
  t_fail "--help prints usage (exit 0, 'usage', --data-dir)" "exit $rc" "$(echo "$out" | head -5)"
fi

# --- flag errors (cetcd only) -----------------------------------------------------------------
# bad_flag NAME WANT_IN_STDERR ARGS...: exit 2, exactly one stderr line naming the flag.
bad_flag() {
  local name=$1 want=$2 rc lines bp bq
  shift 2
  if is_real_etcd "$SUT"; then t_skip "$name" "etcd prints its full usage on flag errors"; return; fi
  alloc_ports bp bq
  timeout -k 2 10 "$SUT" --name bad --data-dir "$T_DIR/bad" \
    --listen-client-urls "http://127.0.0.1:$bp" --advertise-client-urls "http://127.0.0.1:$bp" \
    --listen-peer-urls "http://127.0.0.1:$bq" --initial-advertise-peer-urls "http://127.0.0.1:$bq" \
    --initial-cluster "bad=http://127.0.0.1:$bq" "$@" >"$T_DIR/bad.out" 2>"$T_DIR/bad.err"
  rc=$?
  lines=$(wc -l <"$T_DIR/bad.err")
  if [ $rc -eq 2 ] && [ "$lines" -eq 1 ] && grep -qF -- "$want" "$T_DIR/bad.err"; then
    t_ok "$name: exit 2, one line: $(cat "$T_DIR/bad.err")"
  else
    t_fail "$name: exit 2 and one stderr line naming $want" "exit $rc, $lines stderr lines:" \
      "$(head -5 "$T_DIR/bad.err")"
  fi
}
bad_flag "unknown flag"              no-such-flag       --no-such-flag=1
bad_flag "unknown flag (no value)"   bogus              --bogus
bad_flag "bad value heartbeat"       heartbeat-interval --heartbeat-interval=abc
bad_flag "negative snapshot-count"   snapshot-count     --snapshot-count=-1
bad_flag "bad initial-cluster-state" initial-cluster-state --initial-cluster-state=maybe
t_done
