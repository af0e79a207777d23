#!/usr/bin/env bash
# tests/kube-lite/k8s_client.sh: the operator's C Kubernetes client (controller/k8s/) against
# a real kube-lite.
#
# Builds tests/kube-lite/k8s_client_driver.c with controller/k8s/*.c, common/{log,base64}.c and
# common/err.c under ASan+UBSan into $T_DIR, installs a test CRD (widgets.k8sclient.cetcd.io,
# status subresource), then runs the driver (create, get, list by label, merge patch, update
# with a stale and a current resourceVersion, 422 and 404 mapping, the status subresource,
# an Event, delete with uid preconditions, an informer: list, watch, notifications, cache,
# 3 threads writing through one client) four ways:
#   https   DIR/kubeconfig (https, certificate-authority-data, bearer token); also checks that
#           the client without the CA is refused and that insecure-skip-tls-verify connects
#   http    DIR/kubeconfig-http
#   sa      in-cluster config on the host: KUBERNETES_SERVICE_HOST/PORT = the https listener,
#           K8S_SA_DIR = a directory holding token, ca.crt (the CA file, not bytes), namespace
#   pod     the driver inside a kube-lite pod with the mounted service account (needs the
#           kubelet: skipped with KL_API_ONLY=1)
# Each driver line `ok - ...`/`not ok - ...` becomes one check here, plus one per run for a
# clean exit without sanitizer reports. Uses the kube-lite of tests/kube-lite/run.sh when
# KUBECONFIG and KL_STATE are set, else starts its own (tests/kube-lite/lib.sh). Works in
# namespace kl-k8sc (deleted at the end) and removes the CRD. Every wait is bounded.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

NS=kl-k8sc
. tests/kube-lite/lib.sh
kl_attach
kl_extra_cleanup() {
  "$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1
  "$KUBECTL" delete crd widgets.k8sclient.cetcd.io --wait=false >/dev/null 2>&1
}

DRV=$T_DIR/k8s_client_driver
PKGS="libcurl libcjson yaml-0.1"
# shellcheck disable=SC2046
out=$(cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-missing-field-initializers -O1 -g \
  -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
  -I. -Icommon -Icontroller $(pkg-config --cflags $PKGS) -o "$DRV" tests/kube-lite/k8s_client_driver.c \
  controller/k8s/*.c common/log.c common/err.c common/base64.c $(pkg-config --libs $PKGS) -lpthread 2>&1)
if [ $? -ne 0 ]; then
  t_fail "build the driver under ASan+UBSan" "$out"
  t_done
fi
t_ok "build the driver under ASan+UBSan"

cat >"$M/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.k8sclient.cetcd.io}
spec:
  group: k8sclient.cetcd.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
EOF
out=$("$KUBECTL" apply -f "$M/crd.yaml" 2>&1)
t_rc "install the test CRD widgets.k8sclient.cetcd.io" $? "$out"
served() { "$KUBECTL" get widgets.k8sclient.cetcd.io -A >/dev/null 2>&1; }
poll_until 20 served

# report LABEL RC LOG: the driver's check lines become checks; then one for its exit status.
report() {
  local label=$1 rc=$2 log=$3 line
  while IFS= read -r line; do
    case $line in
      "ok - "*) t_ok "${line#ok - }" ;;
      "not ok - "*) t_fail "${line#not ok - }" ;;
    esac
  done <"$log"
  if [ "$rc" -eq 0 ] && ! grep -q 'Sanitizer\|runtime error' "$log"; then
    t_ok "$label: the driver exits 0 without sanitizer reports"
  else
    t_fail "$label: the driver exits 0 without sanitizer reports" "exit $rc" "$(grep -v '^ok - ' "$log" | tail -30)"
  fi
}

# drive LABEL ARGS...: runs the driver on the host.
drive() {
  local label=$1 rc
  shift
  run_bounded 120 "$@" >"$T_DIR/$label.log" 2>&1
  rc=$?
  report "$label" $rc "$T_DIR/$label.log"
}

drive https "$DRV" kubeconfig "$KL_STATE/kubeconfig" "$NS" https
drive http "$DRV" kubeconfig "$KL_STATE/kubeconfig-http" "$NS" http

SA=$T_DIR/sa
mkdir -p "$SA"
cp "$KL_STATE/token" "$SA/token"
cp "$KL_STATE/ca.crt" "$SA/ca.crt"
printf '%s' "$NS" >"$SA/namespace"
https=$(cat "$KL_STATE/url-https")
hostport=${https#https://}
drive sa env KUBERNETES_SERVICE_HOST="${hostport%:*}" KUBERNETES_SERVICE_PORT="${hostport##*:}" \
  K8S_SA_DIR="$SA" "$DRV" incluster "$NS" sa

if [ -n "${KL_API_ONLY:-}" ] || ! grep -q '"kubelet": true' "$KL_STATE/components" 2>/dev/null; then
  t_skip "pod: the driver in a pod with the mounted service account" "no kubelet"
else
  cat >"$M/pod.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: k8sc-driver}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1
    command: ["$DRV", incluster, "$NS", pod]
EOF
  out=$(k apply -f "$M/pod.yaml" 2>&1)
  t_rc "pod: start the driver in a pod" $? "$out"
  finished() { case "$(k get pod k8sc-driver -o 'jsonpath={.status.phase}' 2>/dev/null)" in Succeeded | Failed) return 0 ;; esac; return 1; }
  poll_until 120 finished
  phase=$(k get pod k8sc-driver -o 'jsonpath={.status.phase}' 2>&1)
  k logs k8sc-driver >"$T_DIR/pod.log" 2>&1
  report pod "$([ "$phase" = Succeeded ] && echo 0 || echo 1)" "$T_DIR/pod.log"
  k delete pod k8sc-driver --wait=false >/dev/null 2>&1
fi
t_done
