# tests/kube-lite/lib.sh: what the kube-lite suites share; sourced after tests/lib.sh, with NS
# set to the suite's namespace.
#
# kl_attach uses the kube-lite that tests/kube-lite/run.sh started (KUBECONFIG and KL_STATE in
# the environment) or, run alone (both unset), starts one of its own and stops it with
# `kube-lite down` from the EXIT trap, after the suite's own kl_extra_cleanup. Also: k (kubectl
# in NS, bounded per request), M (a scratch dir for manifests), poll_until and t_rc.
PY=${PY:-/usr/bin/python3}
KL=hack/kube-lite/kube-lite
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
KL_OWN=
M=$T_DIR/m
mkdir -p "$M"

kl_extra_cleanup() { :; }

kl_finish() {
  kl_extra_cleanup
  if [ -n "$KL_OWN" ]; then
    run_bounded 60 "$PY" "$KL" down --state "$KL_STATE" >/dev/null 2>&1 || true
  fi
  t_cleanup
}

kl_attach() {
  if [ -z "${KUBECONFIG:-}" ] || [ -z "${KL_STATE:-}" ]; then
    KL_OWN=1
    export KL_STATE=$T_DIR/kl
    export KUBECONFIG=$KL_STATE/kubeconfig
  fi
  trap kl_finish EXIT
  if [ -n "$KL_OWN" ] && ! run_bounded 90 "$PY" "$KL" up --state "$KL_STATE" >"$T_DIR/up.out" 2>&1; then
    sed 's/^/#   /' "$T_DIR/up.out"
    echo "0 passed, 1 failed"
    exit 1
  fi
}

k() { "$KUBECTL" --cache-dir "$T_DIR/kcache" --request-timeout=20s -n "$NS" "$@"; }

# poll_until SECONDS CMD...: true once CMD succeeds, false after SECONDS.
poll_until() {
  local deadline=$((SECONDS + $1))
  shift
  while [ $SECONDS -lt $deadline ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# t_rc NAME RC OUTPUT: ok when RC is 0, else not ok showing OUTPUT.
t_rc() { if [ "$2" -eq 0 ]; then t_ok "$1"; else t_fail "$1" "$3"; fi; }
