#!/usr/bin/env bash
# tests/integration/run.sh BIN_DIR [SUITE.sh...]: runs the integration suites against the server in
# BIN_DIR (BIN_DIR/cetcd, else BIN_DIR/etcd): durability.sh, wal_corruption.sh, restart.sh,
# snapshot.sh, snapshot_save.sh, snapshot_migrate.sh, config.sh, cluster.sh, partition.sh (network namespaces; skips
# itself without root), recovery.sh, cetcdctl_cluster.sh, watch_guarantees.sh, lease.sh, watch.sh,
# bootstrap.sh, restore.sh, metrics.sh, ops.sh, auth.sh, tls.sh;
# or only the SUITEs named (e.g. `tests/integration/run.sh bin bootstrap.sh`).
# Each suite's output is shown; the last line sums their `N passed, M failed` lines; exit 1 on any
# failure. Each suite is bounded (INTEGRATION_SUITE_TIMEOUT seconds, default 300).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
BIN_DIR=${1:-bin}
shift $(($# > 0 ? 1 : 0))
suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(durability.sh wal_corruption.sh restart.sh snapshot.sh
  snapshot_save.sh snapshot_migrate.sh config.sh cluster.sh partition.sh recovery.sh cetcdctl_cluster.sh watch_guarantees.sh lease.sh watch.sh
  bootstrap.sh restore.sh metrics.sh ops.sh auth.sh tls.sh)
logs=()
for s in "${suites[@]}"; do
  echo "### $s"
  timeout -k 5 "${INTEGRATION_SUITE_TIMEOUT:-300}" bash "$HERE/$s" "$BIN_DIR" 2>&1 |
    grep -v ' Killed  ' | tee "$T_DIR/$s.log"
  logs+=("$T_DIR/$s.log")
done
echo "### total"
t_aggregate "${logs[@]}"
