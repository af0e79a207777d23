#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it:
#   1. optimised build, unit tests; the deterministic Raft simulation (500 seeds, and 100 under
#      ASan/UBSan);
#   2. unit tests and integration tests built with AddressSanitizer + UBSan (LeakSanitizer on:
#      a leak fails the suite);
#   3. compatibility suites (Debian's etcdctl 3.4, python3-etcd3, curl, WebSockets, Patroni)
#      against the optimised cetcd, side by side with Debian's etcd 3.4 where output is compared;
#   4. kube-lite's own suite (hack/kube-lite: the local Kubernetes the operator is tested on),
#      with kubectl and python3-kubernetes;
#   5. the operator end to end on kube-lite (tests/e2e: CRD, RBAC, operator Deployment, scaling
#      1-3-5-3-1, healing, failpoints, scheduled backups, restore), the Helm chart (tests/helm:
#      the template renderer, chart checks, install on kube-lite), and the offline Dockerfile check.
# Every suite runs even if an earlier one failed; the last line counts suites.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failed_names=()

suite() {
  local name=$1; shift
  echo
  echo "=== suite: $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== suite $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    echo "=== suite $name: FAILED ($((SECONDS - start)) s)"
  fi
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
JOBS=$(nproc 2>/dev/null || echo 2)

suite build make -s -j"$JOBS" all
suite unit make -s -j"$JOBS" unit
suite unit-asan make -s -j"$JOBS" SAN=1 unit
suite sim make -s sim SEEDS="${SIM_SEEDS:-500}"
suite sim-asan make -s SAN=1 sim SEEDS="${SIM_ASAN_SEEDS:-100}"
suite integration-asan make -s -j"$JOBS" SAN=1 integration
suite compat make -s compat
suite kube-lite bash tests/kube-lite/run.sh
suite e2e bash tests/e2e/run.sh
suite helm bash tests/helm/run.sh
suite dockerfile bash hack/check-dockerfile.sh

echo
if [ "$failed" -gt 0 ]; then
  echo "failed suites: ${failed_names[*]}"
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
