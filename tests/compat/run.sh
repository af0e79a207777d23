#!/usr/bin/env bash
# tests/compat/run.sh BIN_DIR: runs the compatibility suites against the server in BIN_DIR
# (BIN_DIR/cetcd, else BIN_DIR/etcd; `tests/compat/run.sh /usr/bin` checks etcd against itself):
# etcdctl.sh, python_etcd3.py, gateway.sh, patroni.sh (its own 3-member cluster; skips itself
# without patroni/postgresql-15; run twice: plain, then with PATRONI_AUTH=1, auth enabled),
# and cetcdctl.sh when it and BIN_DIR/cetcdctl exist
# (it gets a scratch server of its own: ENDPOINT CETCDCTL are its arguments), and cetcdctl.sh's
# snapshot cases once more against a scratch etcd 3.4 (/usr/bin/etcd), and the auth suite
# (tests/integration/auth.sh) with cetcdctl in etcdctl's place. Each suite's output
# is shown; the last line sums their `N passed, M failed` lines; exit 1 on any failure.
# Each suite is bounded (COMPAT_SUITE_TIMEOUT seconds, default 300).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
BIN_DIR=${1:-bin}
logs=()

suite() { # suite NAME CMD...
  local name=$1
  shift
  echo "### $name"
  timeout -k 5 "${COMPAT_SUITE_TIMEOUT:-300}" "$@" 2>&1 | tee "$T_DIR/$name.log"
  logs+=("$T_DIR/$name.log")
}

suite etcdctl.sh bash "$HERE/etcdctl.sh" "$BIN_DIR"
suite python_etcd3.py "$PY" "$HERE/python_etcd3.py" "$BIN_DIR"
suite gateway.sh bash "$HERE/gateway.sh" "$BIN_DIR"
suite websocket.py "$PY" "$HERE/websocket.py" "$BIN_DIR"
suite patroni.sh bash -c 'bash "$1" "$2" 2>&1 | grep -v " Killed  "' _ "$HERE/patroni.sh" "$BIN_DIR"
suite patroni_auth bash -c 'PATRONI_AUTH=1 bash "$1" "$2" 2>&1 | grep -v " Killed  "' _ "$HERE/patroni.sh" "$BIN_DIR"

if [ -f "$HERE/cetcdctl.sh" ] && [ -x "$BIN_DIR/cetcdctl" ]; then
  SUT=$(resolve_server "$BIN_DIR") || exit 2
  alloc_ports CP PP || exit 2
  start_member "$SUT" ctl "$T_DIR/ctl" "$CP" "$PP"
  if wait_ready "http://127.0.0.1:$CP" 20; then
    suite cetcdctl.sh bash "$HERE/cetcdctl.sh" "127.0.0.1:$CP" "$BIN_DIR/cetcdctl"
  else
    echo "### cetcdctl.sh: scratch server did not start"
    tail -5 "$T_LAST_LOG"
    echo "0 passed, 1 failed" >"$T_DIR/cetcdctl.sh.log"
    logs+=("$T_DIR/cetcdctl.sh.log")
  fi
  stop_all
  # our CLI must read etcd's snapshot stream too: the snapshot cases against Debian's etcd 3.4
  if [ -x /usr/bin/etcd ] && [ "$(resolve_server "$BIN_DIR")" != /usr/bin/etcd ]; then
    alloc_ports CP PP || exit 2
    start_member /usr/bin/etcd ref "$T_DIR/ref" "$CP" "$PP"
    if wait_ready "http://127.0.0.1:$CP" 20; then
      CASE=snapshot suite cetcdctl-vs-etcd34 bash "$HERE/cetcdctl.sh" "127.0.0.1:$CP" "$BIN_DIR/cetcdctl"
    else
      echo "### cetcdctl-vs-etcd34: etcd 3.4 did not start"
      echo "0 passed, 1 failed" >"$T_DIR/cetcdctl-vs-etcd34.log"
      logs+=("$T_DIR/cetcdctl-vs-etcd34.log")
    fi
    stop_all
  fi
  # the auth suite's etcdctl expectations (written against etcd 3.4), met by cetcdctl
  ETCDCTL=$BIN_DIR/cetcdctl suite cetcdctl-auth.sh bash "$HERE/../integration/auth.sh" "$BIN_DIR"
else
  echo "### cetcdctl.sh: skipped (no $BIN_DIR/cetcdctl)"
fi

echo "### total"
t_aggregate "${logs[@]}"
