#!/usr/bin/env bash
# tests/kube-lite/workloads.sh: kube-lite's workloads (engineer B): StatefulSet, DNS, Services,
# PVCs, probes, restart policy, Jobs and CronJobs, logs.
#
# Runs against the kube-lite that tests/kube-lite/run.sh started (KUBECONFIG and KL_STATE in the
# environment); run alone (both unset), it starts its own instance and stops it with
# `kube-lite down` from the EXIT trap. Needs root. Works in namespace `kl-wl` (deleted at the end).
# Checks: a StatefulSet of 3 pods running a small HTTP server reaches Ready in order (each pod
# is created only after the previous one is Ready); env from fieldRef/configMapKeyRef/
# secretKeyRef; service-account token mounted; pod-to-pod DNS names resolve and connect inside
# the namespaces; a ClusterIP service reaches the pods from a pod and from the host; a file in a
# pod's PVC survives the pod's deletion and re-creation; scaling to 1 removes ordinals 2 then 1
# and keeps the PVCs; exit codes and restartPolicy Never; a failing liveness probe restarts the
# container; a Job with backoffLimit fails; a CronJob triggered now (kubectl create job --from and
# the kube-lite.io/trigger annotation) runs its Job to completion with readable logs, and its
# successful-jobs history limit is applied. And what the cetcd operator relies on: a Parallel
# StatefulSet (scale by patching spec.replicas, highest ordinals removed first, PVCs kept, Bound,
# with uids), env from fieldRef with $(VAR) expansion in env values and args, readiness httpGet on
# a named port, DNS of a not-Ready pod through a headless Service with publishNotReadyAddresses
# (and not without it), a ClusterIP Service routing to Ready pods only, a ConfigMap volume
# following its ConfigMap (running pod and restarted container), a deleted pod getting its PVC
# back, pvc-protection and a new PVC (new uid, empty) for a pod deleted after its PVC,
# PodDisruptionBudget status and the eviction subresource (429 / Success), a Deployment with a
# ServiceAccount token rolled by `kubectl set env`, ServiceAccount admission, the image map
# for cetcd-operator:* and a command naming another program of an image (cetcdctl in cetcd:*),
# and termination messages (the file at terminationMessagePath, FallbackToLogsOnError's log
# tail), which the operator's backup status reads. Prints `ok N - ...` and `N passed, M failed`.
# Invariants: every wait is bounded; the only background process (a kubectl watch) is killed
# by its PID.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

NS=kl-wl
. tests/kube-lite/lib.sh
WATCH_PID=
kl_extra_cleanup() { [ -z "$WATCH_PID" ] || kill "$WATCH_PID" 2>/dev/null; }
kl_attach

jp() { k get "$1" -o "jsonpath=$2" 2>/dev/null; }
# in_ctr POD CONTAINER CMD...: run CMD inside that container (its network, mount, UTS
# namespaces), found through the kubelet's pid record
in_ctr() {
  local pod=$1 ctr=$2 pid
  shift 2
  pid=$(cut -d' ' -f1 "$KL_STATE/pods/$NS/$pod/$ctr.pid" 2>/dev/null) || return 1
  run_bounded 15 nsenter -t "$pid" -n -m -u -- "$@"
}
in_pod() { in_ctr "$1" srv "${@:2}"; }
fetch() { echo "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('$1', timeout=5).read().decode())"; }
ts() { "$PY" -c 'import calendar,sys,time; print(calendar.timegm(time.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%SZ")))' "$1"; }

cat >"$M/web.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-cfg}
data: {greeting: hello}
---
apiVersion: v1
kind: Secret
metadata: {name: web-sec}
data: {password: czNjcmV0}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: srv
        image: python:3
        command: [python3, -c]
        args:
        - |
          import http.server, os
          class H(http.server.BaseHTTPRequestHandler):
              def do_GET(self):
                  e = os.environ
                  b = " ".join([e["POD_NAME"], e["POD_NS"], e["POD_IP"], e["GREETING"],
                                e["PASSWORD"], os.uname().nodename]) + "\n"
                  self.send_response(200); self.end_headers(); self.wfile.write(b.encode())
              def log_message(self, *a): pass
          print("serving", os.environ["POD_NAME"], flush=True)
          http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
        ports: [{name: http, containerPort: 8080}]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: GREETING, valueFrom: {configMapKeyRef: {name: web-cfg, key: greeting}}}
        - {name: PASSWORD, valueFrom: {secretKeyRef: {name: web-sec, key: password}}}
        readinessProbe:
          httpGet: {path: /, port: http}
          initialDelaySeconds: 2
          periodSeconds: 1
        livenessProbe:
          tcpSocket: {port: 8080}
          initialDelaySeconds: 2
          periodSeconds: 2
        volumeMounts:
        - {name: data, mountPath: /var/lib/kl-wl-data}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
EOF

out=$(run_bounded 30 "$PY" tests/kube-lite/workloads_unit.py 2>&1)
t_rc "helper unit checks (tests/kube-lite/workloads_unit.py)" $? "$(echo "$out" | grep -v '^ok')"

k create namespace "$NS" >/dev/null 2>&1 || "$KUBECTL" create namespace "$NS" >/dev/null 2>&1
out=$(k apply --validate=false -f "$M/web.yaml" 2>&1)
t_rc "apply StatefulSet web (3 replicas), services, configmap, secret" $? "$out"

ready3() { [ "$(jp sts/web '{.status.readyReplicas}')" = 3 ]; }
if poll_until 60 ready3; then t_ok "StatefulSet web reaches 3 ready replicas"; else
  t_fail "StatefulSet web reaches 3 ready replicas" "$(k get pods -o wide 2>&1)"; fi

# ordered: pod i is created no earlier than pod i-1 became Ready (and >= 2 s after it was
# created, because of the 2 s readiness initialDelay)
ordered=1 detail=
for i in 1 2; do
  prev_ready=$(jp "pod/web-$((i - 1))" '{.status.conditions[?(@.type=="Ready")].lastTransitionTime}')
  prev_made=$(jp "pod/web-$((i - 1))" '{.metadata.creationTimestamp}')
  made=$(jp "pod/web-$i" '{.metadata.creationTimestamp}')
  detail="$detail web-$((i - 1)) created $prev_made ready $prev_ready; web-$i created $made."
  if [ -z "$prev_ready" ] || [ -z "$made" ] || [ "$(ts "$made")" -lt "$(ts "$prev_ready")" ] ||
    [ $(($(ts "$made") - $(ts "$prev_made"))) -lt 2 ]; then ordered=0; fi
done
if [ $ordered = 1 ]; then t_ok "pods were created in order, each after the previous was Ready"; else
  t_fail "pods were created in order, each after the previous was Ready" "$detail"; fi

ip0=$(jp pod/web-0 '{.status.podIP}')
body=$(run_bounded 10 "$PY" -c "$(fetch "http://$ip0:8080/")" 2>&1)
t_eq "env from fieldRef, configMapKeyRef, secretKeyRef; hostname = pod name" \
  "web-0 $NS $ip0 hello s3cret web-0" "$body"

tok=$(in_pod web-1 cat /var/run/secrets/kubernetes.io/serviceaccount/token 2>&1)
sans=$(in_pod web-1 cat /var/run/secrets/kubernetes.io/serviceaccount/namespace 2>&1)
t_eq "service-account token and namespace mounted in the pod" \
  "$(cat "$KL_STATE/token" 2>/dev/null)/$NS" "$tok/$sans"

dns_ok=1 detail=
for from in web-1 web-2; do
  for to in web-0 web-2 web-1; do
    [ $from = $to ] && continue
    got=$(in_pod $from "$PY" -c "$(fetch "http://$to.web.$NS.svc.cluster.local:8080/")" 2>&1)
    case "$got" in "$to $NS "*) ;; *) dns_ok=0; detail="$detail $from->$to: $got;" ;; esac
  done
done
if [ $dns_ok = 1 ]; then t_ok "pod-to-pod DNS names <pod>.web.$NS.svc.cluster.local resolve and connect"; else
  t_fail "pod-to-pod DNS names resolve and connect" "$detail"; fi

got=$(in_pod web-0 "$PY" -c "$(fetch "http://web-1.web:8080/")" 2>&1)
case "$got" in "web-1 $NS "*) t_ok "short name web-1.web resolves in the same namespace" ;;
  *) t_fail "short name web-1.web resolves in the same namespace" "$got" ;; esac

cip=$(jp svc/web-lb '{.spec.clusterIP}')
got=$(in_pod web-2 "$PY" -c "$(fetch "http://web-lb.$NS.svc.cluster.local/")" 2>&1)
got2=$(run_bounded 10 "$PY" -c "$(fetch "http://$cip/")" 2>&1)
case "$got/$got2" in "web-"*" $NS "*/"web-"*" $NS "*) t_ok "ClusterIP service web-lb ($cip) reaches ready pods from a pod and from the host" ;;
  *) t_fail "ClusterIP service web-lb reaches ready pods" "from pod: $got" "from host: $got2" ;; esac

grep -q "web-0.web.$NS.svc.cluster.local" "$KL_STATE/hosts" 2>/dev/null
t_rc "host view of pod names in \$KL_STATE/hosts" $? "$(cat "$KL_STATE/hosts" 2>&1)"

logs=$(k logs web-0 2>&1)
t_eq "kubectl logs of a StatefulSet pod" "serving web-0" "$logs"

# PVC survives the pod's deletion and re-creation
in_pod web-1 sh -c 'echo persisted-42 > /var/lib/kl-wl-data/f' >/dev/null 2>&1
uid1=$(jp pod/web-1 '{.metadata.uid}')
out=$(k delete pod web-1 --timeout=30s 2>&1)
t_rc "kubectl delete pod web-1 returns" $? "$out"
new_ready() {
  [ "$(jp pod/web-1 '{.metadata.uid}')" != "$uid1" ] &&
    [ "$(jp pod/web-1 '{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
poll_until 40 new_ready
got=$(in_pod web-1 cat /var/lib/kl-wl-data/f 2>&1)
t_eq "a file in web-1's PVC survives the pod's deletion and re-creation" "persisted-42" "$got"
t_eq "the PVC data-web-1 is Bound" "Bound" "$(jp pvc/data-web-1 '{.status.phase}')"

# watch_start / watch_stop: pod names in DELETED events between the two, in order
# (kubectl itself is the background process, so WATCH_PID is the process to kill)
WATCH_N=0
watch_start() {
  WATCH_N=$((WATCH_N + 1))
  "$KUBECTL" --cache-dir "$T_DIR/kcache" -n "$NS" get pods -w --output-watch-events \
    --no-headers -o 'custom-columns=E:.type,N:.object.metadata.name' \
    >"$T_DIR/watch$WATCH_N.out" 2>&1 &
  WATCH_PID=$!
  sleep 1
}
watch_stop() {
  sleep 0.5
  kill "$WATCH_PID" 2>/dev/null
  wait "$WATCH_PID" 2>/dev/null
  WATCH_PID=
  awk '$1 == "DELETED" { printf "%s ", $2 }' "$T_DIR/watch$WATCH_N.out"
}

# rolling update: a template change replaces pods from the highest ordinal down, one at a time
watch_start
k set env sts/web ROLL=1 >/dev/null 2>&1
rolled() {
  [ "$(jp sts/web '{.status.updatedReplicas}/{.status.readyReplicas}')" = 3/3 ] &&
    [ "$(k get pods -l app=web --no-headers 2>/dev/null | wc -l)" = 3 ]
}
poll_until 60 rolled
order=$(watch_stop)
t_eq "a template change rolls web-2, web-1, web-0 in that order" "web-2 web-1 web-0 " "$order"
t_eq "all pods run the new template and are Ready" "3/3" \
  "$(jp sts/web '{.status.updatedReplicas}/{.status.readyReplicas}')"
got=$(in_pod web-0 "$PY" -c "$(fetch "http://web-2.web:8080/")" 2>&1)
case "$got" in "web-2 $NS "*) t_ok "re-created pods reach each other (same IP and MAC again)" ;;
  *) t_fail "re-created pods reach each other" "$got" ;; esac

# scale to 1: ordinals 2 then 1 go, PVCs stay
watch_start
k scale sts web --replicas=1 >/dev/null 2>&1
one_left() { [ "$(k get pods -l app=web --no-headers 2>/dev/null | wc -l)" = 1 ]; }
poll_until 60 one_left
order=$(watch_stop)
t_eq "scaling to 1 removes web-2, then web-1" "web-2 web-1 " "$order"
t_eq "web-0 stays" "web-0" "$(k get pods -l app=web --no-headers -o custom-columns=N:.metadata.name 2>&1)"
t_eq "PVCs are kept after scale down" "3" "$(k get pvc --no-headers 2>/dev/null | grep -c '^data-web-')"
sts_one() { [ "$(jp sts/web '{.status.replicas}')" = 1 ]; }
poll_until 20 sts_one
t_eq "StatefulSet status.replicas follows" "1" "$(jp sts/web '{.status.replicas}')"

# exit codes, restartPolicy Never, liveness restarts
cat >"$M/pods.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: exit3}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox:1.36, command: [sh, -c, "echo bye; exit 3"]}
---
apiVersion: v1
kind: Pod
metadata: {name: vols}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: init
    image: busybox:1.36
    command: [sh, -c, "echo from-init > /kl-wl-init/x"]
    volumeMounts: [{name: scratch, mountPath: /kl-wl-init}]
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, "exec sleep 300"]
    volumeMounts:
    - {name: scratch, mountPath: /kl-wl-scratch}
    - {name: cfg, mountPath: /etc/kl-wl-cfg}
    - {name: sec, mountPath: /etc/kl-wl-sec, readOnly: true}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: cfg, configMap: {name: web-cfg}}
  - {name: sec, secret: {secretName: web-sec}}
---
apiVersion: v1
kind: Pod
metadata: {name: sick}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:1.36
    command: [sh, -c, "echo started; exec sleep 300"]
    livenessProbe:
      exec: {command: [test, -e, /nonexistent-kl-wl]}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 2
EOF
k apply --validate=false -f "$M/pods.yaml" >/dev/null 2>&1
failed() { [ "$(jp pod/exit3 '{.status.phase}')" = Failed ]; }
poll_until 30 failed
t_eq "restartPolicy Never: exit code 3 gives phase Failed and terminated.exitCode 3" \
  "Failed 3" "$(jp pod/exit3 '{.status.phase} {.status.containerStatuses[0].state.terminated.exitCode}')"
t_eq "logs of a finished pod" "bye" "$(k logs exit3 2>&1)"
restarted() { [ "$(jp pod/sick '{.status.containerStatuses[0].restartCount}')" -ge 1 ] 2>/dev/null; }
if poll_until 40 restarted; then t_ok "a failing exec liveness probe restarts the container"; else
  t_fail "a failing exec liveness probe restarts the container" "$(jp pod/sick '{.status}')"; fi
vols_up() { [ "$(jp pod/vols '{.status.phase}')" = Running ] && [ -f "$KL_STATE/pods/$NS/vols/c.pid" ]; }
poll_until 30 vols_up
got=$(in_ctr vols c cat /kl-wl-scratch/x /etc/kl-wl-cfg/greeting /etc/kl-wl-sec/password 2>&1)
t_eq "init container output in emptyDir; configMap and secret volumes as files" \
  "from-init
hellos3cret" "$got"
in_ctr vols c sh -c 'echo x > /etc/kl-wl-sec/new' >/dev/null 2>&1
t_rc "a readOnly volume mount is read-only" $((! $?)) "write succeeded"
t_check "volume mount points do not show on the host" [ ! -e /etc/kl-wl-cfg/greeting ]
k delete pod sick exit3 vols --wait=false >/dev/null 2>&1

# podManagementPolicy Parallel: all pods are created at once, without waiting for Ready
cat >"$M/par.yaml" <<'EOF'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: par}
spec:
  serviceName: par
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: par}}
  template:
    metadata: {labels: {app: par}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.36
        command: [sh, -c, "exec sleep 300"]
        readinessProbe:
          exec: {command: [sh, -c, "test -e /nonexistent-kl-wl"]}
          periodSeconds: 1
EOF
k apply --validate=false -f "$M/par.yaml" >/dev/null 2>&1
par3() { [ "$(k get pods -l app=par --no-headers 2>/dev/null | wc -l)" = 3 ] && [ "$(jp sts/par '{.status.replicas}')" = 3 ]; }
if poll_until 20 par3; then t_ok "Parallel StatefulSet creates all 3 pods though none is Ready"; else
  t_fail "Parallel StatefulSet creates all 3 pods though none is Ready" "$(k get pods -l app=par 2>&1)"; fi
t_eq "StatefulSet status.readyReplicas counts only Ready pods" "0" \
  "$(jp sts/par '{.status.readyReplicas}')"
k delete sts par >/dev/null 2>&1

# ---- what the cetcd operator relies on: a Parallel StatefulSet behind a headless Service with
# publishNotReadyAddresses, env from fieldRef + $(VAR), readiness httpGet on a named port, a
# ConfigMap volume, PVC identity, a PodDisruptionBudget and eviction, a Deployment ----
cat >"$M/pp.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: pp-peer}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: pp}
  ports: [{name: client, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: pp}
spec:
  selector: {app: pp}
  ports: [{name: client, port: 80, targetPort: client}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: pp-members}
data: {greeting: v1}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: pp}
spec:
  serviceName: pp-peer
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: pp}}
  template:
    metadata: {labels: {app: pp}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: srv
        image: python:3
        command: [python3, -c]
        args:
        - |
          import http.server, os, sys
          e = os.environ
          g = open("/etc/kl-pp/greeting").read()
          print("start", e["POD_NAME"], e["POD_NS"], e["POD_IP"], e["ADV"], sys.argv[1], "greeting=" + g, flush=True)
          class H(http.server.BaseHTTPRequestHandler):
              def do_GET(self):
                  if self.path == "/crash":
                      os._exit(1)
                  ok = self.path != "/health" or os.path.exists("/var/lib/kl-pp/ready")
                  self.send_response(200 if ok else 503); self.end_headers()
                  self.wfile.write((e["POD_NAME"] + "\n").encode())
              def log_message(self, *a): pass
          http.server.ThreadingHTTPServer(("", 8080), H).serve_forever()
        - --peer=http://$(POD_NAME).pp-peer.$(POD_NS).svc:2380
        ports: [{name: client, containerPort: 8080}]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: ADV, value: "http://$(POD_NAME).pp-peer.$(POD_NS).svc:2379"}
        readinessProbe:
          httpGet: {path: /health, port: client}
          periodSeconds: 1
          failureThreshold: 1
        volumeMounts:
        - {name: data, mountPath: /var/lib/kl-pp}
        - {name: members, mountPath: /etc/kl-pp}
      volumes:
      - {name: members, configMap: {name: pp-members}}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pp}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: pp}}
EOF
k apply --validate=false -f "$M/pp.yaml" >/dev/null 2>&1
running() { [ "$(jp "pod/$1" '{.status.phase}')" = Running ] && [ -f "$KL_STATE/pods/$NS/$1/srv.pid" ]; }
ready() { [ "$(jp "pod/$1" '{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
resolve() { in_pod "$1" "$PY" -c "import socket; print(socket.gethostbyname('$2'))" 2>/dev/null; }
poll_until 30 running pp-0 && poll_until 10 running pp-1
ip0=$(jp pod/pp-0 '{.status.podIP}')
ip1=$(jp pod/pp-1 '{.status.podIP}')
t_eq "env from fieldRef metadata.name/namespace/status.podIP; \$(VAR) expanded in env values and args" \
  "start pp-0 $NS $ip0 http://pp-0.pp-peer.$NS.svc:2379 --peer=http://pp-0.pp-peer.$NS.svc:2380 greeting=v1" \
  "$(k logs pp-0 2>&1 | head -1)"

in_pod pp-0 touch /var/lib/kl-pp/ready
poll_until 15 ready pp-0
t_eq "readinessProbe httpGet /health on a named port: pp-0 Ready, pp-1 not" "True False" \
  "$(jp pod/pp-0 '{.status.conditions[?(@.type=="Ready")].status}') $(jp pod/pp-1 '{.status.conditions[?(@.type=="Ready")].status}')"
t_eq "publishNotReadyAddresses: the not-Ready pp-1's names resolve in pp-0 (.svc and .svc.cluster.local)" \
  "$ip1 $ip1" "$(resolve pp-0 "pp-1.pp-peer.$NS.svc") $(resolve pp-0 "pp-1.pp-peer.$NS.svc.cluster.local")"
k patch svc pp-peer --type merge -p '{"spec":{"publishNotReadyAddresses":false}}' >/dev/null
unresolved() { ! resolve pp-0 "pp-1.pp-peer.$NS.svc" >/dev/null; }
poll_until 10 unresolved
t_rc "without publishNotReadyAddresses a not-Ready pod's name does not resolve" $? "$(resolve pp-0 "pp-1.pp-peer.$NS.svc")"
k patch svc pp-peer --type merge -p '{"spec":{"publishNotReadyAddresses":true}}' >/dev/null
cip=$(jp svc/pp '{.spec.clusterIP}')
got=$(for i in 1 2 3 4 5 6; do run_bounded 5 curl -s "http://$cip/"; done | sort | uniq -c | awk '{print $1, $2}')
t_eq "a ClusterIP Service routes only to Ready pods" "6 pp-0" "$got"

pdb_st() { jp pdb/pp '{.status.currentHealthy}/{.status.desiredHealthy}/{.status.disruptionsAllowed}/{.status.expectedPods}'; }
pdb_is() { [ "$(pdb_st)" = "$1" ]; }
poll_until 10 pdb_is 1/1/0/2
t_eq "PodDisruptionBudget status (currentHealthy/desiredHealthy/disruptionsAllowed/expectedPods)" "1/1/0/2" "$(pdb_st)"
evict() {
  printf '{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"%s","namespace":"%s"}}' "$1" "$NS" |
    k create --raw "/api/v1/namespaces/$NS/pods/$1/eviction" -f - 2>&1
}
out=$(evict pp-0)
grep -q "TooManyRequests.*Cannot evict pod as it would violate the pod's disruption budget" <<<"$out" &&
  t_ok "eviction that would break the budget: 429" || t_fail "eviction that would break the budget: 429" "$out"
in_pod pp-1 touch /var/lib/kl-pp/ready
poll_until 10 pdb_is 2/1/1/2
uid1=$(jp pod/pp-1 '{.metadata.uid}')
out=$(evict pp-1)
newpod() { [ -n "$(jp pod/pp-1 '{.metadata.uid}')" ] && [ "$(jp pod/pp-1 '{.metadata.uid}')" != "$uid1" ] && ready pp-1; }
if grep -q '"status":"Success"' <<<"$out" && poll_until 20 newpod; then
  t_ok "eviction within the budget deletes the pod (re-created, Ready again from its PVC)"
else t_fail "eviction within the budget" "$out" "$(k get pods -l app=pp 2>&1)"; fi

k patch cm pp-members --type merge -p '{"data":{"greeting":"v2"}}' >/dev/null
refreshed() { [ "$(in_pod pp-0 cat /etc/kl-pp/greeting 2>/dev/null)" = v2 ]; }
poll_until 10 refreshed
t_rc "a running pod's ConfigMap volume follows the ConfigMap" $? "$(in_pod pp-0 cat /etc/kl-pp/greeting 2>&1)"
k patch cm pp-members --type merge -p '{"data":{"greeting":"v3"}}' >/dev/null
in_pod pp-0 curl -s -m 2 http://127.0.0.1:8080/crash >/dev/null 2>&1
restarted() { [ "$(jp pod/pp-0 '{.status.containerStatuses[0].restartCount}')" = 1 ] && running pp-0 &&
  [ -n "$(jp pod/pp-0 '{.status.containerStatuses[0].state.running.startedAt}')" ] && k logs pp-0 2>/dev/null | grep -q greeting=v3; }
if poll_until 15 restarted; then
  t_ok "a crashed container restarts (restartPolicy Always) and reads the ConfigMap's current content"
else t_fail "a crashed container restarts and reads the ConfigMap's current content" \
  "restarts: $(jp pod/pp-0 '{.status.containerStatuses[0].restartCount}')" "$(k logs pp-0 2>&1)"; fi

k patch sts pp --type merge -p '{"spec":{"replicas":3}}' >/dev/null
poll_until 15 running pp-2
t_eq "patching spec.replicas scales a Parallel StatefulSet up" "pp-0 pp-1 pp-2" \
  "$(k get pods -l app=pp --no-headers -o custom-columns=N:.metadata.name 2>&1 | xargs)"
k patch sts pp --type merge -p '{"spec":{"replicas":1}}' >/dev/null
only0() { [ "$(k get pods -l app=pp --no-headers -o custom-columns=N:.metadata.name 2>/dev/null | xargs)" = pp-0 ]; }
poll_until 15 only0
t_eq "scale down removes the highest ordinals; PVCs are kept (whenScaled: Retain), Bound, with a uid" \
  "pp-0 | data-pp-0:Bound:36 data-pp-1:Bound:36 data-pp-2:Bound:36" \
  "$(k get pods -l app=pp --no-headers -o custom-columns=N:.metadata.name 2>&1 | xargs) | $(k get pvc -o go-template='{{range .items}}{{.metadata.name}}:{{.status.phase}}:{{len .metadata.uid}} {{end}}' 2>&1 | grep -o 'data-pp-[^ ]*' | xargs)"

# the write must have landed before the pod goes (exec right after a scale can race a restart)
wrote() { in_pod pp-0 sh -c 'echo kept > /var/lib/kl-pp/f' >/dev/null 2>&1 &&
          [ "$(in_pod pp-0 cat /var/lib/kl-pp/f 2>/dev/null)" = kept ]; }
poll_until 10 wrote
puid=$(jp pvc/data-pp-0 '{.metadata.uid}')
uid0=$(jp pod/pp-0 '{.metadata.uid}')
k delete pod pp-0 --timeout=20s >/dev/null 2>&1
back() { [ "$(jp pod/pp-0 '{.metadata.uid}')" != "$uid0" ] && running pp-0; }
poll_until 20 back
t_eq "a deleted pod comes back with the same name and the same PVC (data kept)" "kept $puid" \
  "$(in_pod pp-0 cat /var/lib/kl-pp/f 2>&1) $(jp pvc/data-pp-0 '{.metadata.uid}')"
k delete pvc data-pp-0 --wait=false >/dev/null 2>&1
sleep 1
t_eq "a PVC in use is kept while its pod runs (kubernetes.io/pvc-protection)" "true kubernetes.io/pvc-protection" \
  "$([ -n "$(jp pvc/data-pp-0 '{.metadata.deletionTimestamp}')" ] && echo true) $(jp pvc/data-pp-0 '{.metadata.finalizers[*]}')"
uid0=$(jp pod/pp-0 '{.metadata.uid}')
k delete pod pp-0 --timeout=20s >/dev/null 2>&1
fresh() {
  [ "$(jp pod/pp-0 '{.metadata.uid}')" != "$uid0" ] && running pp-0 && [ -n "$(jp pvc/data-pp-0 '{.metadata.uid}')" ] &&
    [ "$(jp pvc/data-pp-0 '{.metadata.uid}')" != "$puid" ]
}
poll_until 30 fresh
t_eq "the pod deleted after its PVC: re-created with a new PVC (new uid, empty volume)" "new-uid empty" \
  "$([ "$(jp pvc/data-pp-0 '{.metadata.uid}')" != "$puid" ] && echo new-uid) $(in_pod pp-0 ls /var/lib/kl-pp 2>&1 | xargs | sed 's/^$/empty/')"
k delete sts pp --wait=false >/dev/null 2>&1

# Deployment: one replica, a ServiceAccount token, `kubectl set env` rolls the pod
cat >"$M/op.yaml" <<'EOF'
apiVersion: v1
kind: ServiceAccount
metadata: {name: kl-op}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: op}
spec:
  replicas: 1
  selector: {matchLabels: {app: op}}
  template:
    metadata: {labels: {app: op}}
    spec:
      serviceAccountName: kl-op
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.36
        command: [sh, -c, "echo K=$K; exec sleep 300"]
---
apiVersion: v1
kind: Pod
metadata: {name: opimg}
spec:
  restartPolicy: Never
  containers: [{name: c, image: "cetcd-operator:dev", args: [--version]}]
EOF
k apply --validate=false -f "$M/op.yaml" >/dev/null 2>&1
out=$(k rollout status deployment/op --timeout=30s 2>&1)
p1=$(k get pods -l app=op -o jsonpath='{.items[0].metadata.name}' 2>/dev/null)
tok=$(in_ctr "$p1" c cat /var/run/secrets/kubernetes.io/serviceaccount/token 2>/dev/null)
t_eq "Deployment: its one pod runs with the ServiceAccount token mounted" \
  "successfully rolled out 1 yes" "$(grep -o 'successfully rolled out' <<<"$out") $(k get pods -l app=op --no-headers 2>/dev/null | wc -l) $([ -n "$tok" ] && echo yes)"
k set env deployment/op K=V >/dev/null 2>&1
out=$(k rollout status deployment/op --timeout=30s 2>&1)
gone_p1() { [ "$(k get pods -l app=op -o name 2>/dev/null)" = "pod/$(k get pods -l app=op -o jsonpath='{.items[0].metadata.name}')" ] && ! k get pod "$p1" >/dev/null 2>&1; }
poll_until 15 gone_p1
p2=$(k get pods -l app=op -o jsonpath='{.items[0].metadata.name}' 2>/dev/null)
t_eq "kubectl set env deployment/op K=V rolls the pod (new ReplicaSet, old pod gone)" "successfully rolled out K=V 2" \
  "$(grep -o 'successfully rolled out' <<<"$out") $(k logs "$p2" 2>&1) $(k get rs --no-headers 2>/dev/null | grep -c '^op-')"
out=$(k run nosa --image=busybox:1.36 --overrides='{"spec":{"serviceAccountName":"nope"}}' -- true 2>&1)
grep -q 'error looking up service account' <<<"$out" && t_ok "a pod whose ServiceAccount does not exist is refused" ||
  t_fail "a pod whose ServiceAccount does not exist is refused" "$out"
launched() { [ -f "$KL_STATE/pods/$NS/opimg/c.launch.json" ]; }
poll_until 15 launched
t_eq "image cetcd-operator:* runs bin/cetcd-operator (args appended)" "$PWD/bin/cetcd-operator --version" \
  "$("$PY" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["argv"]))' "$KL_STATE/pods/$NS/opimg/c.launch.json" 2>&1)"
k delete deployment op --wait=false >/dev/null 2>&1
k delete pod opimg --wait=false >/dev/null 2>&1

# Job with backoff: fails after backoffLimit + 1 failed pods
cat >"$M/jobs.yaml" <<'EOF'
apiVersion: batch/v1
kind: Job
metadata: {name: flaky}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: busybox:1.36, command: [sh, -c, "echo failing; exit 1"]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: hello}
spec:
  schedule: "0 0 1 1 *"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: c
            image: busybox:1.36
            command: [sh, -c, "echo cron ran in $(POD_NAME)"]
            env:
            - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
EOF
k apply --validate=false -f "$M/jobs.yaml" >/dev/null 2>&1
jfailed() { [ "$(jp job/flaky '{.status.conditions[?(@.type=="Failed")].status}')" = True ]; }
poll_until 60 jfailed
t_eq "Job with backoffLimit 1 fails after 2 failed pods (BackoffLimitExceeded)" \
  "2 BackoffLimitExceeded" "$(jp job/flaky '{.status.failed} {.status.conditions[?(@.type=="Failed")].reason}')"

out=$(k create job --from=cronjob/hello hello-now 2>&1)
t_rc "kubectl create job --from=cronjob/hello" $? "$out"
out=$(k wait --for=condition=complete job/hello-now --timeout=60s 2>&1)
t_rc "the triggered Job runs to completion" $? "$out"
logs=$(k logs job/hello-now 2>&1)
case "$logs" in "cron ran in hello-now-"*) t_ok "its pod's logs are readable (kubectl logs job/hello-now)" ;;
  *) t_fail "its pod's logs are readable (kubectl logs job/hello-now)" "$logs" ;; esac

k annotate cronjob hello kube-lite.io/trigger=now >/dev/null 2>&1
manual() { k get jobs --no-headers -o custom-columns=N:.metadata.name 2>/dev/null | grep -q '^hello-manual-'; }
poll_until 20 manual
mjob=$(k get jobs --no-headers -o custom-columns=N:.metadata.name 2>/dev/null | grep '^hello-manual-' | head -1)
t_check "annotation kube-lite.io/trigger creates a Job from the CronJob" [ -n "$mjob" ]
if [ -n "$mjob" ]; then
  out=$(k wait --for=condition=complete "job/$mjob" --timeout=60s 2>&1)
  t_rc "that Job completes too" $? "$out"
fi
hist() { [ "$(k get jobs --no-headers 2>/dev/null | grep -c '^hello-')" = 1 ]; }
poll_until 20 hist
t_eq "successfulJobsHistoryLimit 1 keeps only the newest finished Job" "1" \
  "$(k get jobs --no-headers 2>/dev/null | grep -c '^hello-')"

# Termination messages (what the cetcd operator's backup status reads) and a command naming
# another program of the container's image (cetcdctl in cetcd:*)
cat >"$M/term.yaml" <<'EOF'
apiVersion: batch/v1
kind: Job
metadata: {name: tmsg}
spec:
  backoffLimit: 0
  template:
    spec:
      containers:
      - {name: c, image: busybox:1.36, command: [sh, -c, 'printf "{\"file\":\"x.db\"}" >/dev/termination-log']}
---
apiVersion: v1
kind: Pod
metadata: {name: tfall}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1.36
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'echo first; echo "the last words" >&2; exit 3']
---
apiVersion: v1
kind: Pod
metadata: {name: tpath}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox:1.36
    terminationMessagePath: /tmp/kl-wl-term
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'echo "log, not the message"; echo custom >/tmp/kl-wl-term; exit 4']
---
apiVersion: v1
kind: Pod
metadata: {name: tfile}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: busybox:1.36, command: [sh, -c, 'echo only in the log; exit 5']}
---
apiVersion: v1
kind: Pod
metadata: {name: sibling}
spec:
  restartPolicy: Never
  containers:
  - {name: c, image: "cetcd:0.1.0", command: [cetcdctl, version]}
EOF
k apply --validate=false -f "$M/term.yaml" >/dev/null 2>&1
tdone() { case "$(jp "pod/$1" '{.status.phase}')" in Succeeded | Failed) return 0 ;; esac; return 1; }
for p in tfall tpath tfile sibling; do poll_until 30 tdone "$p"; done
tjob() { [ "$(jp job/tmsg '{.status.succeeded}')" = 1 ]; }
poll_until 30 tjob
tpod=$(k get pods -l job-name=tmsg -o 'jsonpath={.items[0].metadata.name}' 2>/dev/null)
t_eq "a container's /dev/termination-log becomes state.terminated.message" '{"file":"x.db"}' \
  "$(jp "pod/$tpod" '{.status.containerStatuses[0].state.terminated.message}')"
t_eq "FallbackToLogsOnError, exit 3, empty file: the log's tail is the message" \
  "$(printf 'first\nthe last words')" "$(jp pod/tfall '{.status.containerStatuses[0].state.terminated.message}')"
t_eq "terminationMessagePath elsewhere: that file is the message (the log is not used)" custom \
  "$(jp pod/tpath '{.status.containerStatuses[0].state.terminated.message}' | tr -d '\n')"
t_eq "policy File (the default) with an empty file: no message" "5|" \
  "$(jp pod/tfile '{.status.containerStatuses[0].state.terminated.exitCode}|{.status.containerStatuses[0].state.terminated.message}')"
t_eq "image cetcd:* with command cetcdctl runs bin/cetcdctl" "$PWD/bin/cetcdctl version|Succeeded" \
  "$("$PY" -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["argv"]))' \
     "$KL_STATE/pods/$NS/sibling/c.launch.json" 2>&1)|$(jp pod/sibling '{.status.phase}')"
k delete job tmsg --wait=false >/dev/null 2>&1
k delete pod tfall tpath tfile sibling --wait=false >/dev/null 2>&1

"$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1
t_done
