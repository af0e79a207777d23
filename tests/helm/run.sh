#!/usr/bin/env bash
# tests/helm/run.sh: the Helm chart suite (charts/cetcd-operator rendered by hack/helm-render).
#
#   1. renderer   tests/helm/test_render.py: every construct of the template subset, with Go
#                 text/template / Sprig / Helm semantics, and the refusals of everything else;
#   2. chart      tests/helm/check_chart.py: CRD byte-identical to manifests/crd (else the cp
#                 to run), RBAC rules equal to manifests/rbac, manifests/monitoring generated
#                 from the chart, the Grafana dashboard's model, renders with defaults, with
#                 tests/helm/values-full.yaml (every value) and --set variants, each document
#                 checked for its kind, every value reaching its object, goldens;
#      helm       when a `helm` binary is installed: `helm template` prints exactly what
#                 hack/helm-render prints (defaults, values-full.yaml, --set variants);
#                 skipped otherwise (the goldens tests/helm/golden/*.yaml are what it must print);
#   3. kube-lite  (needs root) its own kube-lite (state in a fresh /tmp/cetcd-helm.XXXXXX, API
#                 on a free port); CRDs first as `helm install` does (the chart's crds/ and
#                 minimal prometheus-operator CRDs from tests/helm/fixtures), then, one after
#                 the other on the same kube-lite:
#       default   release cetcd-operator in namespace helm-a with the default values: operator
#                 Deployment ready; the 3-member sample EtcdCluster (manifests/samples) comes up
#                 Running with 3 healthy voters (status and the member list); uninstall (the
#                 cluster first, then every rendered object): nothing of the release is left;
#       full      release cetcd in helm-full with values-full.yaml: 2 operator replicas ready,
#                 one holds the Lease; the chart's own EtcdCluster (helm-full-clusters) comes
#                 up Running with 3 voters; an EtcdCluster in another namespace is left alone
#                 (watchNamespace); the metrics Service serves the operator's /metrics; the
#                 ServiceMonitor, PodMonitor, PrometheusRule, the Grafana dashboard ConfigMap
#                 and the namespaced Role exist;
#                 uninstall as helm does (every rendered object, the cluster with them):
#                 the cluster's StatefulSet and pods and the operator are gone.
#                 kube-lite enforces no RBAC: the roles' rules are checked in stage 2 against
#                 manifests/rbac, which the e2e suite exercises.
#
# Usage: tests/helm/run.sh [--no-kube] [--keep]
#   --no-kube   only stages 1 and 2 (no root needed; also HELM_NO_KUBE=1)
#   --keep      leave kube-lite running after the run (prints how to reach and stop it)
# Environment: KUBECTL (default /usr/bin/kubectl), HELM_CTL (default bin/cetcdctl),
#   HELM_WAIT (seconds a cluster may take to converge, default 240).
# Output: `ok N - ...` / `not ok N - ...`, then `N passed, M failed`; exit 1 on any failure.
# Invariants: every wait has a deadline; only this run's state dir is written or removed; the
# EXIT trap tears down what this run started (`kube-lite down` ends every pod), unless --keep.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
. tests/lib.sh

PY=/usr/bin/python3
KL=hack/kube-lite/kube-lite
RENDER=hack/helm-render
CHART=charts/cetcd-operator
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
CTL=${HELM_CTL:-bin/cetcdctl}
WAIT=${HELM_WAIT:-240}
NO_KUBE=${HELM_NO_KUBE:-}
KEEP=
while [ $# -gt 0 ]; do
  case $1 in
    --no-kube) NO_KUBE=1 ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

# sub NAME CMD...: runs a Python sub-suite numbering on from T_NUM, relays its lines and adds
# its `N passed, M failed` to this suite's counts (no summary line: one failure)
sub() {
  local name=$1 out line p f
  shift
  out=$(T_NUM_START=$T_NUM "$@" 2>&1)
  printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed$'
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$line" ]; then
    t_fail "$name: ended without its summary line"
    return
  fi
  p=${line%% passed*}
  f=${line#*, }
  f=${f%% failed}
  T_PASS=$((T_PASS + p))
  T_FAIL=$((T_FAIL + f))
  T_NUM=$((T_NUM + p + f))
}

echo "# --- renderer (hack/helm-render)"
sub renderer "$PY" tests/helm/test_render.py
echo "# --- chart (static)"
sub chart "$PY" tests/helm/check_chart.py

# helm_same ARGS...: real Helm 3 and hack/helm-render print the same text for `template ARGS`
helm_same() {
  local a b
  a=$(helm template "$@" 2>"$T_DIR/helm.err") || { echo "helm template $*: $(cat "$T_DIR/helm.err")"; return 1; }
  b=$("$PY" "$RENDER" "$@" 2>&1) || { echo "hack/helm-render $*: $b"; return 1; }
  [ "$a" = "$b" ] && return 0
  echo "helm template $* (<) and hack/helm-render (>) differ:"
  diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") | head -40
  return 1
}

echo "# --- real Helm 3, when installed"
if command -v helm >/dev/null 2>&1; then
  # (without --include-crds: Helm 3 releases differ in the CRDs' "# Source:" path)
  t_check "helm template = hack/helm-render: defaults" helm_same cetcd-operator "$CHART" -n cetcd-system
  t_check "helm template = hack/helm-render: values-full.yaml" \
    helm_same cetcd "$CHART" -n helm-full -f tests/helm/values-full.yaml
  t_check "helm template = hack/helm-render: --set variants" helm_same prod "$CHART" -n x \
    --set metrics.enabled=false,rbac.create=false,leaderElection.enabled=false,serviceAccount.create=false \
    --set etcdCluster.create=true,etcdCluster.size=5,etcdCluster.backup.schedule='0 3 * * *'
else
  t_skip "helm template = hack/helm-render (defaults, values-full.yaml, --set variants)" \
    "helm not installed: the goldens tests/helm/golden/*.yaml are what it must print"
fi

if [ -n "$NO_KUBE" ]; then
  t_skip "install on kube-lite" "--no-kube"
  t_done
fi
if [ "$(id -u)" != 0 ]; then
  t_fail "install on kube-lite: needs root (kube-lite runs pods in network namespaces); --no-kube skips it"
  t_done
fi

# --- kube-lite -------------------------------------------------------------------------------

ST=$(mktemp -d /tmp/cetcd-helm.XXXXXX)
touch "$ST/helm.marker"
KLD=$ST/kl
KCFG=$KLD/kubeconfig

finish() {
  if [ -n "$KEEP" ]; then
    echo "# kept: export KUBECONFIG=$KCFG"
    echo "#   stop: $PY $KL down --state $KLD && rm -rf $ST"
  elif [ -d "$KLD" ]; then
    if run_bounded 90 "$PY" "$KL" down --state "$KLD" >>"$ST/down.log" 2>&1; then
      [ -f "$ST/helm.marker" ] && rm -rf "$ST"
    else
      echo "# kube-lite down failed (state kept in $ST): $(tail -3 "$ST/down.log")" >&2
    fi
  fi
  t_cleanup
}
trap finish EXIT

kc() { run_bounded 40 "$KUBECTL" --kubeconfig "$KCFG" --cache-dir "$ST/kcache" --request-timeout=20s "$@"; }

# waitc NAME SECONDS WHAT CMD...: a check that waits; the name gets the time taken; on
# failure shows the state of the namespaces involved ($DUMP_NS)
waitc() {
  local name=$1 secs=$2 what=$3 out t0=$SECONDS
  shift 3
  if out=$(wait_for "$secs" "$what" "$@"); then
    t_ok "$name [$((SECONDS - t0))s]"
    return 0
  fi
  t_fail "$name [$((SECONDS - t0))s]" "$out" "$(dump)"
  return 1
}

dump() {
  local ns f
  for ns in $DUMP_NS; do
    echo "--- namespace $ns: kubectl get deploy,sts,pods,ec -o wide"
    kc -n "$ns" get deploy,sts,pods,ec -o wide 2>&1 | head -20
    for f in "$KLD/pods/$ns"/*/*.log; do
      [ -f "$f" ] || continue
      echo "--- tail ${f#"$KLD/"}"
      tail -n 12 "$f" | cut -c1-240
    done
    echo "--- events in $ns"
    kc -n "$ns" get events --sort-by=.lastTimestamp 2>&1 | tail -8 | cut -c1-240
  done
}

# deploy_ready NS NAME REPLICAS: the Deployment has REPLICAS pods updated, ready and available
deploy_ready() {
  local got
  got=$(kc -n "$1" get deploy "$2" -o 'jsonpath={.status.updatedReplicas}/{.status.readyReplicas}/{.status.availableReplicas}' 2>&1)
  echo "deployment $1/$2: updated/ready/available = $got"
  [ "$got" = "$3/$3/$3" ]
}

# cluster_running NS NAME: status Running with 3 of 3 ready members, its 3 pods Ready, and the
# member list (read from a pod) has 3 voters
cluster_running() {
  local ns=$1 c=$2 st ready ip
  st=$(kc -n "$ns" get ec "$c" -o 'jsonpath={.status.phase}/{.status.readyMembers}/{.status.size}' 2>&1)
  echo "ec $ns/$c phase/readyMembers/size = $st"
  [ "$st" = "Running/3/3" ] || return 1
  ready=$(kc -n "$ns" get pods -l "app.kubernetes.io/instance=$c,app.kubernetes.io/name=cetcd" \
    -o 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}' 2>&1)
  echo "pods: $ready"
  [ "$(echo "$ready" | grep -o '=True' | wc -l)" = 3 ] || return 1
  ip=$(kc -n "$ns" get pod "$c-0" -o 'jsonpath={.status.podIP}')
  run_bounded 10 "$CTL" --endpoints="http://$ip:2379" --command-timeout=4s member list -w json |
    "$PY" -c 'import json, sys
ms = json.load(sys.stdin).get("members", [])
print("member list: %d members, %d learners" % (len(ms), sum(1 for m in ms if m.get("isLearner"))))
sys.exit(0 if len(ms) == 3 and not any(m.get("isLearner") for m in ms) else 1)'
}

# names ARGS...: `kubectl get ARGS -o name` (stdout only); fails with kubectl's error
names() {
  local out
  out=$(kc get "$@" -o name 2>"$ST/names.err") || { echo "kubectl get $*: $(cat "$ST/names.err")"; return 1; }
  printf '%s' "$out"
}

# gone NS SELECTOR KINDS: no object of KINDS with the labels of SELECTOR is left in NS
gone() {
  local left
  left=$(names -n "$1" "$3" -l "$2") || { echo "$left"; return 1; }
  [ -z "$left" ] && return 0
  echo "left in $1: $(echo $left)"
  return 1
}

# release_gone NS INSTANCE: nothing of the release (label app.kubernetes.io/instance) is left
release_gone() {
  local left more
  left=$(names -n "$1" deploy,rs,pods,svc,sa,role,rolebinding -l "app.kubernetes.io/instance=$2") ||
    { echo "$left"; return 1; }
  more=$(names clusterrole,clusterrolebinding -l "app.kubernetes.io/instance=$2") || { echo "$more"; return 1; }
  left="$left$more"
  [ -z "$left" ] && return 0
  echo "left: $(echo $left)"
  return 1
}

alloc_ports KL_PORT
if ! run_bounded 90 "$PY" "$KL" up --state "$KLD" --port "$KL_PORT" >"$ST/up.out" 2>&1; then
  t_fail "kube-lite up" "$(cat "$ST/up.out")" "$(tail -20 "$KLD/kube-lite.log" 2>/dev/null)"
  t_done
fi
echo "# --- kube-lite up (state $ST, API $(cat "$KLD/url" 2>/dev/null))"
DUMP_NS=""

t_check "bin/cetcd-operator, bin/cetcd and $CTL are built (kube-lite runs the images from bin/)" \
  test -x bin/cetcd-operator -a -x bin/cetcd -a -x "$CTL"
t_check "CRDs first, as helm install: the chart's crds/ and the prometheus-operator fixtures" \
  kc apply -f "$CHART/crds/" -f tests/helm/fixtures/monitoring-crds.yaml
waitc "CRDs Established" 60 "the CRDs to be Established" kc wait --for=condition=Established --timeout=10s \
  crd/etcdclusters.cetcd.io crd/servicemonitors.monitoring.coreos.com crd/podmonitors.monitoring.coreos.com \
  crd/prometheusrules.monitoring.coreos.com

stage_default() {
  local ns=helm-a c
  DUMP_NS=$ns
  echo "# --- release cetcd-operator, default values, namespace $ns"
  t_check "render: $RENDER cetcd-operator $CHART -n $ns" sh -c "'$PY' $RENDER cetcd-operator $CHART -n $ns >'$ST/a.yaml'" ||
    return 1
  t_check "kubectl create namespace $ns; apply the rendering" sh -c \
    "'$KUBECTL' --kubeconfig '$KCFG' create namespace $ns && '$KUBECTL' --kubeconfig '$KCFG' apply -f '$ST/a.yaml'" ||
    return 1
  waitc "operator Deployment cetcd-operator ready (1/1)" 120 "the operator" deploy_ready $ns cetcd-operator 1 || return 1
  c=$(sed -n 's/^  name: //p' manifests/samples/etcdcluster-3.yaml | head -1)
  t_check "apply the 3-member sample manifests/samples/etcdcluster-3.yaml ($c)" \
    kc -n $ns apply -f manifests/samples/etcdcluster-3.yaml || return 1
  DUMP_NS="$ns"
  waitc "the operator runs $c: Running, 3 of 3 members ready, 3 voters in the member list" "$WAIT" \
    "cluster $c" cluster_running $ns "$c"
  t_check "uninstall: delete the EtcdCluster first (while the operator runs)" kc -n $ns delete ec "$c" --timeout=60s
  waitc "its StatefulSet and pods are gone" 90 "the cluster's objects to go" \
    gone $ns "app.kubernetes.io/instance=$c" sts,pods
  t_check "uninstall: kubectl delete every rendered object" kc delete -f "$ST/a.yaml" --timeout=60s --wait=true
  waitc "nothing of release cetcd-operator is left (Deployment, pods, Service, SA, roles, bindings)" 90 \
    "the release's objects to go" release_gone $ns cetcd-operator
  kc delete namespace $ns --wait=false >/dev/null 2>&1
  return 0
}

# lease_held NS NAME: the Lease is held by one of the release's operator pods
lease_held() {
  local holder pods
  holder=$(kc -n "$1" get lease "$2" -o 'jsonpath={.spec.holderIdentity}' 2>&1)
  pods=$(kc -n "$1" get pods -l app.kubernetes.io/instance=cetcd -o 'jsonpath={.items[*].metadata.name}' 2>&1)
  echo "lease $1/$2 holder '$holder'; operator pods: $pods"
  [ -n "$holder" ] && [[ " $pods " == *" $holder "* ]]
}

# left_alone NS NAME: an EtcdCluster the operator must not manage has no status and no StatefulSet
left_alone() {
  local st sts
  st=$(kc -n "$1" get ec "$2" -o 'jsonpath={.status}' 2>&1)
  sts=$(names -n "$1" sts) || { echo "$sts"; return 1; }
  echo "ec $1/$2 status '$st', statefulsets '$sts'"
  [ -z "$st" ] && [ -z "$sts" ]
}

metrics_served() {
  local ip
  ip=$(kc -n helm-full get svc cetcd-op-full-metrics -o 'jsonpath={.spec.clusterIP}')
  curl -sf -m 5 "http://$ip:9090/metrics" | grep -m1 '^cetcd_operator_'
}

stage_full() {
  local ns=helm-full cns=helm-full-clusters ons=helm-full-other
  DUMP_NS="$ns $cns"
  echo "# --- release cetcd, tests/helm/values-full.yaml, namespace $ns, clusters in $cns"
  t_check "render: $RENDER cetcd $CHART -n $ns -f tests/helm/values-full.yaml" \
    sh -c "'$PY' $RENDER cetcd $CHART -n $ns -f tests/helm/values-full.yaml >'$ST/b.yaml'" || return 1
  t_check "namespaces $ns, $cns, $ons and PriorityClass cetcd-helm-test" sh -c "
    '$KUBECTL' --kubeconfig '$KCFG' create namespace $ns && '$KUBECTL' --kubeconfig '$KCFG' create namespace $cns &&
    '$KUBECTL' --kubeconfig '$KCFG' create namespace $ons &&
    '$KUBECTL' --kubeconfig '$KCFG' create priorityclass cetcd-helm-test --value=1000" || return 1
  t_check "an EtcdCluster in $ons, outside watchNamespace" sh -c \
    "sed 's/^  name: .*/  name: outside/' manifests/samples/etcdcluster-1.yaml |
     '$KUBECTL' --kubeconfig '$KCFG' -n $ons apply -f -"
  t_check "apply the rendering (operator, RBAC, monitoring objects, EtcdCluster etcd-full)" \
    kc apply -f "$ST/b.yaml" || return 1
  waitc "operator Deployment cetcd-op-full ready (2/2)" 120 "the operator" deploy_ready $ns cetcd-op-full 2 || return 1
  waitc "one operator replica holds the Lease cetcd-op-full" 60 "the Lease" lease_held $ns cetcd-op-full
  waitc "the operator runs the chart's EtcdCluster etcd-full: Running, 3 of 3 ready, 3 voters" "$WAIT" \
    "cluster etcd-full" cluster_running $cns etcd-full
  t_check "the EtcdCluster outside watchNamespace is left alone (no status, no StatefulSet)" left_alone $ons outside
  waitc "the metrics Service (port 9090) serves the operator's /metrics (8081)" 30 "metrics" metrics_served
  t_check "ServiceMonitor, PodMonitor and PrometheusRule created" \
    kc -n $ns get servicemonitor/cetcd-op-full podmonitor/cetcd-op-full-etcd prometheusrule/cetcd-op-full
  t_check "the Grafana dashboard ConfigMap in $cns (grafanaDashboard.namespace), label grafana_dashboard=1" \
    sh -c "'$KUBECTL' --kubeconfig '$KCFG' -n $cns get configmap -l grafana_dashboard=1 -o name | grep -qx configmap/cetcd-op-full-dashboard"
  t_check "RBAC is namespaced: Role and RoleBinding in $cns, no ClusterRole" sh -c "
    '$KUBECTL' --kubeconfig '$KCFG' -n $cns get role/cetcd-op-full rolebinding/cetcd-op-full >/dev/null &&
    ! '$KUBECTL' --kubeconfig '$KCFG' get clusterrole cetcd-op-full 2>/dev/null"
  t_check "uninstall as helm does: kubectl delete every rendered object" \
    kc delete -f "$ST/b.yaml" --timeout=90s --wait=true
  waitc "the cluster's StatefulSet and pods are gone (owner references)" 90 "etcd-full's objects to go" \
    gone $cns "app.kubernetes.io/instance=etcd-full" sts,pods
  waitc "nothing of release cetcd is left" 90 "the release's objects to go" release_gone $ns cetcd
  kc -n $ons delete ec outside --wait=false >/dev/null 2>&1
  kc delete namespace $ns $cns $ons --wait=false >/dev/null 2>&1
  kc delete priorityclass cetcd-helm-test >/dev/null 2>&1
  return 0
}

stage_default || t_fail "release with default values: stopped early"
stage_full || t_fail "release with values-full.yaml: stopped early"
echo "# kube-lite stages done at ${SECONDS}s"
t_done
