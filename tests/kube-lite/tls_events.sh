#!/usr/bin/env bash
# tests/kube-lite/tls_events.sh: kube-lite's HTTPS API and its Events (what the operator's
# in-cluster C client and `kubectl describe` rely on).
#
# Runs against the kube-lite that tests/kube-lite/run.sh started (KUBECONFIG and KL_STATE in the
# environment); run alone (both unset), it starts its own instance and stops it with
# `kube-lite down` from the EXIT trap. Needs root. Works in namespace `kl-te` (deleted at the end).
# Checks, TLS: DIR/kubeconfig is https with certificate-authority-data = DIR/ca.crt and
# DIR/kubeconfig-http still serves plain HTTP; the serving certificate verifies against the CA
# and carries the SANs in-cluster clients use; an unverified client is refused and a bearer token
# accepted; the `kubernetes` Service (ClusterIP:443) reaches the HTTPS listener from the host; in
# a pod, python-kubernetes' load_incluster_config() lists pods, curl with the mounted ca.crt and
# token reaches https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT and
# https://kubernetes.default.svc, and the mounted ca.crt is the cluster CA.
# Events: StatefulSet SuccessfulCreate/SuccessfulDelete, Job SuccessfulCreate/Completed and the
# kubelet's Started/Killing/Unhealthy/BackOff show in `kubectl describe`, repeated ones are
# aggregated (count), python-kubernetes lists and watches core/v1 events.
# Prints `ok N - ...` and `N passed, M failed`. Invariants: every wait is bounded; no
# background process is left.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

NS=kl-te
. tests/kube-lite/lib.sh
kl_attach
# t_has NAME HAYSTACK NEEDLE...: ok when HAYSTACK contains every NEEDLE
t_has() {
  local name=$1 hay=$2 n
  shift 2
  for n in "$@"; do
    case "$hay" in *"$n"*) ;; *) t_fail "$name" "missing '$n' in: $hay"; return ;; esac
  done
  t_ok "$name"
}
describe_events() { k describe "$1" 2>&1 | sed -n '/^Events:/,$p'; }

k create namespace "$NS" >/dev/null 2>&1 || "$KUBECTL" create namespace "$NS" >/dev/null 2>&1
CA=$KL_STATE/ca.crt
TOKEN=$(cat "$KL_STATE/token" 2>/dev/null)

# --- workloads first, so they run while the host-side TLS checks do -----------------------
cat >"$M/all.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: incluster}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: python:3
    command: [/bin/sh, -c]
    args:
    - |
      SA=/var/run/secrets/kubernetes.io/serviceaccount
      /usr/bin/python3 -c '
      from kubernetes import client, config
      config.load_incluster_config()
      ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
      pods = client.CoreV1Api().list_namespaced_pod(ns)
      print("incluster-list:", " ".join(sorted(p.metadata.name for p in pods.items)))' 2>&1
      echo "env-api: $(curl -sS --max-time 10 --cacert $SA/ca.crt -H "Authorization: Bearer $(cat $SA/token)" \
        https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api 2>&1)"
      echo "dns-api: $(curl -sS --max-time 10 --cacert $SA/ca.crt -H "Authorization: Bearer $(cat $SA/token)" \
        -o /dev/null -w '%{http_code}' https://kubernetes.default.svc/api/v1/namespaces/kl-te/pods/incluster 2>&1)"
      echo "ca: $(sha256sum < $SA/ca.crt)"
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ev}
spec:
  replicas: 2
  serviceName: ev
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: ev}}
  template:
    metadata: {labels: {app: ev}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - {name: c, image: "busybox:1", command: [sleep, "600"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: evjob}
spec:
  template:
    spec:
      containers:
      - {name: c, image: "busybox:1", command: ["true"]}
---
apiVersion: v1
kind: Pod
metadata: {name: sick}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:1
    command: [sleep, "600"]
    livenessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
      failureThreshold: 1
EOF
out=$(k apply -f "$M/all.yaml" 2>&1)
t_rc "apply a pod using in-cluster config, a StatefulSet, a Job and a pod failing its liveness probe" $? "$out"

# --- TLS, host side ---------------------------------------------------------------------
server=$("$KUBECTL" config view --raw -o 'jsonpath={.clusters[0].cluster.server}' 2>&1)
cad=$("$KUBECTL" config view --raw -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}' 2>&1)
if [[ $server == https://127.0.0.1:* ]] && [ "$(echo "$cad" | base64 -d 2>/dev/null)" = "$(cat "$CA")" ]; then
  t_ok "DIR/kubeconfig: https server with certificate-authority-data = DIR/ca.crt"
else
  t_fail "DIR/kubeconfig: https server with certificate-authority-data = DIR/ca.crt" "$server $cad"
fi
hserver=$("$KUBECTL" --kubeconfig "$KL_STATE/kubeconfig-http" config view -o 'jsonpath={.clusters[0].cluster.server}' 2>&1)
out=$("$KUBECTL" --kubeconfig "$KL_STATE/kubeconfig-http" get namespace "$NS" -o name 2>&1)
t_eq "DIR/kubeconfig-http serves the same API over plain HTTP" "http namespace/$NS" "${hserver%%://*} $out"

gw=$("$KUBECTL" -n default get endpoints kubernetes -o 'jsonpath={.subsets[0].addresses[0].ip}' 2>/dev/null)
kip=$("$KUBECTL" -n default get service kubernetes -o 'jsonpath={.spec.clusterIP}' 2>/dev/null)
out=$(openssl verify -CAfile "$CA" "$KL_STATE/pki/apiserver.crt" 2>&1 &&
  openssl x509 -in "$KL_STATE/pki/apiserver.crt" -noout -ext subjectAltName 2>&1)
t_has "serving certificate verifies against the CA; SANs for 127.0.0.1, the bridge ($gw), $kip, kubernetes.default.svc..." \
  "$out, " ": OK" "IP Address:127.0.0.1," "IP Address:$gw," "IP Address:10.96.0.1," "IP Address:$kip," \
  "DNS:kubernetes," "DNS:kubernetes.default," "DNS:kubernetes.default.svc," "DNS:kubernetes.default.svc.cluster.local,"

curl -sS --max-time 10 -o /dev/null "$server/version" >/dev/null 2>&1
rc=$?
out=$(curl -sS --max-time 10 --cacert "$CA" -H "Authorization: Bearer $TOKEN" "$server/api" 2>&1)
if [ $rc = 60 ] && [[ $out == *'"kind":"APIVersions"'* ]]; then
  t_ok "https listener: refused without the CA (curl rc 60), answers with --cacert and the bearer token"
else
  t_fail "https listener: refused without the CA, answers with --cacert and the bearer token" "rc $rc: $out"
fi

tport=${server##*:}
eport=$("$KUBECTL" -n default get endpoints kubernetes -o 'jsonpath={.subsets[0].ports[0].port}' 2>/dev/null)
out=$(curl -sS --max-time 10 --cacert "$CA" --resolve "kubernetes.default.svc:443:$kip" \
  https://kubernetes.default.svc/version 2>&1)
if [ "$eport" = "$tport" ] && [[ $out == *'"gitVersion"'* ]]; then
  t_ok "Service kubernetes ($kip:443) forwards to the HTTPS listener (endpoints $gw:$eport)"
else
  t_fail "Service kubernetes forwards to the HTTPS listener" "endpoint port $eport, https port $tport: $out"
fi

# --- TLS, in a pod ----------------------------------------------------------------------
finished() { case "$(k get pod "$1" -o 'jsonpath={.status.phase}' 2>/dev/null)" in Succeeded | Failed) return 0 ;; esac; return 1; }
poll_until 40 finished incluster
logs=$(k logs incluster 2>&1)
line() { printf '%s\n' "$logs" | sed -n "s/^$1: //p"; }
t_has "in a pod: python-kubernetes load_incluster_config() lists pods over https" "$(line incluster-list)" incluster
t_has "in a pod: curl --cacert ca.crt + token to https://\$KUBERNETES_SERVICE_HOST:\$KUBERNETES_SERVICE_PORT/api" \
  "$(line env-api)" '"kind":"APIVersions"'
t_eq "in a pod: https://kubernetes.default.svc resolves and answers with the pod" "200" "$(line dns-api)"
t_eq "the pod's mounted ca.crt is the cluster CA" "$(sha256sum <"$CA")" "$(line ca)"

# --- Events -----------------------------------------------------------------------------
ready2() { [ "$(k get sts ev -o 'jsonpath={.status.readyReplicas}')" = 2 ]; }
poll_until 30 ready2
ev_has() { describe_events "$1" | grep -q -- "$2"; }
poll_until 10 ev_has sts/ev "create Pod ev-1"
t_has "describe statefulset: SuccessfulCreate for each pod" "$(describe_events sts/ev)" \
  "SuccessfulCreate" "create Pod ev-0 in StatefulSet ev successful" "create Pod ev-1 in StatefulSet ev successful" \
  "statefulset-controller"
t_has "describe pod: Started from the kubelet" "$(describe_events pod/ev-0)" "Started" "kubelet" \
  "Started container c"
k scale sts ev --replicas=1 >/dev/null 2>&1
poll_until 20 ev_has sts/ev "delete Pod ev-1"
t_has "scale down: SuccessfulDelete on the StatefulSet" "$(describe_events sts/ev)" "SuccessfulDelete" \
  "delete Pod ev-1 in StatefulSet ev successful"
killing() { k get events --field-selector involvedObject.name=ev-1,reason=Killing -o name | grep -q .; }
poll_until 10 killing
t_has "the deleted pod's container: Killing (kubectl get events --field-selector)" \
  "$(k get events --field-selector involvedObject.name=ev-1 2>&1)" "Killing" "Stopping container c"

out=$(k wait --for=condition=complete job/evjob --timeout=30s 2>&1)
poll_until 10 ev_has job/evjob Completed
t_has "describe job: SuccessfulCreate and Completed" "$(describe_events job/evjob)" "SuccessfulCreate" \
  "Created pod: evjob-" "Completed" "job-controller"

sick_all() { [ "$(describe_events pod/sick | grep -cE 'Unhealthy|Killing|BackOff|Started')" -ge 4 ] &&
  describe_events pod/sick | grep -q 'Started .*(x'; }
poll_until 20 sick_all
t_has "describe pod: Unhealthy, Killing, BackOff (Warning), repeated ones aggregated (xN)" \
  "$(describe_events pod/sick)" "Warning  Unhealthy" "Liveness probe failed" "Killing" \
  "failed liveness probe, will be restarted" "Warning  BackOff" "Back-off restarting failed container c" "(x"
t_has "kubectl get events: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE" "$(k get events 2>&1 | head -1)" \
  "LAST SEEN" "TYPE" "REASON" "OBJECT" "MESSAGE"

out=$(run_bounded 30 "$PY" - "$NS" <<'EOF' 2>&1
import sys
from kubernetes import client, config, watch
config.load_kube_config()
ns = sys.argv[1]
core, batch = client.CoreV1Api(), client.BatchV1Api()
lst = core.list_namespaced_event(ns, field_selector="involvedObject.kind=Job")
print("listed", len(lst.items), "job events")
batch.create_namespaced_job(ns, {"apiVersion": "batch/v1", "kind": "Job",
    "metadata": {"name": "evjob2"}, "spec": {"template": {"spec": {"restartPolicy": "Never",
    "containers": [{"name": "c", "image": "busybox:1", "command": ["true"]}]}}}})
for e in watch.Watch().stream(core.list_namespaced_event, ns, field_selector="involvedObject.kind=Job",
                              resource_version=lst.metadata.resource_version, timeout_seconds=15):
    o = e["object"]
    if o.involved_object.name == "evjob2" and o.reason == "SuccessfulCreate":
        print("watched", e["type"], o.reason, o.message)
        break
EOF
)
t_has "python-kubernetes lists core/v1 events and watches one arrive from the list's resourceVersion" \
  "$out" "listed " "watched ADDED SuccessfulCreate Created pod: evjob2-"

"$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1
t_done
