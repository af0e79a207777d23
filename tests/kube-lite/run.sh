#!/usr/bin/env bash
# tests/kube-lite/run.sh: kube-lite's own suite (issue 5), as `make test` runs it.
#
# Starts one kube-lite (`hack/kube-lite/kube-lite up --state $T_DIR/kl`), runs against it:
#   unit.py        patch/schema/selector/store unit checks (engineer A)
#   api.sh         kubectl: API semantics (engineer A)
#   api_client.py  python3-kubernetes: list/watch/410/409/422/GC (engineer A)
#   workloads.sh   StatefulSets, DNS, PVCs, CronJobs, logs (engineer B), when present
#   tls_events.sh  the HTTPS API (kubeconfig, CA, SANs, `kubernetes` Service, in-cluster clients
#                  in a pod) and Events in kubectl describe (needs the kubelet)
#   k8s_client.sh  the operator's C client (controller/k8s/) through kubeconfig (https/http),
#                  in-cluster config on the host and, with the kubelet, in a pod
# and stops it with `kube-lite down` from the EXIT trap (so nothing is left after a failure).
# The last line sums the sub-suites: `N passed, M failed`; exit status 1 on any failure.
# Environment: KL_API_ONLY=1 starts the API server alone (no controllers, no kubelet, no root
# needed; workloads.sh is skipped); KUBECTL=path picks another kubectl. Needs root otherwise.
# Invariants: every step is time-bounded (whole suite < 4 min); only the kube-lite daemon this
# script started is stopped (down reads its pid from the state dir).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

KL=hack/kube-lite/kube-lite
export KL_STATE=$T_DIR/kl
export KUBECONFIG=$KL_STATE/kubeconfig
mode=()
[ -n "${KL_API_ONLY:-}" ] && mode=(--api-only)

kl_down() { run_bounded 60 "$PY" "$KL" down --state "$KL_STATE" >/dev/null 2>&1 || true; }
trap 'kl_down; t_cleanup' EXIT

if ! run_bounded 90 "$PY" "$KL" up --state "$KL_STATE" "${mode[@]}" >"$T_DIR/up.out" 2>&1; then
  echo "# kube-lite up failed:"
  sed 's/^/#   /' "$T_DIR/up.out"
  tail -30 "$KL_STATE/kube-lite.log" 2>/dev/null | sed 's/^/#   /'
  echo "0 passed, 1 failed"
  exit 1
fi

logs=()
sub() {  # sub NAME SECONDS CMD...: runs one sub-suite, output shown and kept for the total
  local name=$1 secs=$2
  shift 2
  echo "# --- $name"
  run_bounded "$secs" "$@" 2>&1 | tee "$T_DIR/$name.out"
  logs+=("$T_DIR/$name.out")
}

sub unit 30 "$PY" tests/kube-lite/unit.py
sub api 120 bash tests/kube-lite/api.sh
sub api_client 90 "$PY" tests/kube-lite/api_client.py
if [ -f tests/kube-lite/workloads.sh ] && [ -z "${KL_API_ONLY:-}" ]; then
  sub workloads 180 bash tests/kube-lite/workloads.sh
fi
if [ -z "${KL_API_ONLY:-}" ]; then
  sub tls_events 90 bash tests/kube-lite/tls_events.sh
fi
sub k8s_client 150 bash tests/kube-lite/k8s_client.sh
if grep -q 'apiserver: internal error' "$KL_STATE/kube-lite.log" 2>/dev/null; then
  echo "# kube-lite.log has errors:"
  grep -A12 'apiserver: internal error' "$KL_STATE/kube-lite.log" | head -60 | sed 's/^/#   /'
  echo "0 passed, 1 failed" >"$T_DIR/daemon.out"
  logs+=("$T_DIR/daemon.out")
fi
t_aggregate "${logs[@]}"
