#!/usr/bin/env bash
# tests/kube-lite/api.sh: kube-lite's API semantics as kubectl sees them.
#
# Needs a running kube-lite (KUBECONFIG and KL_STATE in the environment, as run.sh sets them).
# Works in its own namespace `kl-api`, which it deletes at the end (that deletion is a check:
# namespace deletion removes the contents). Checks: discovery, apply of a CRD and a custom
# resource (create, unchanged, printer columns, describe), get -o json metadata (uid,
# generation, creationTimestamp), schema defaults, pruning/strict field validation, 422 naming
# the field, merge/JSON/strategic patch (415 for a CR), status subresource isolation and
# generation, scale of a CR and a StatefulSet, kubectl apply of a StatefulSet (strategic merge),
# label and field selectors, 409 on a stale replace, cascade deletion (background, foreground,
# orphan), finalizers holding deletion, wait --for=condition=Ready, logs, CRD deletion removing
# its CRs; and what the cetcd operator relies on: CEL rules (x-kubernetes-validations) refusing a
# CRD outside kube-lite's subset and a CR in the API server's wording (transition rules, scale),
# `kubectl scale` / status / printer columns of an EtcdCluster CR, no-op writes keeping the
# resourceVersion (no watch event), owner GC of the CR's objects, Lease 409, Events. Prints `ok N - ...` / `not ok N - ...` and `N passed, M failed`.
# Invariants: every wait is bounded (kubectl --timeout or a polling deadline); it starts no
# long-lived process except one `kubectl wait`, which it waits for.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

: "${KUBECONFIG:?run through tests/kube-lite/run.sh (KUBECONFIG unset)}"
: "${KL_STATE:?run through tests/kube-lite/run.sh (KL_STATE unset)}"
NS=kl-api
. tests/kube-lite/lib.sh
gone() { ! k get "$@" >/dev/null 2>&1; }

cat >"$M/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.kube-lite.io
spec:
  group: test.kube-lite.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.size}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 7}
              mode: {type: string, enum: [fast, safe], default: safe}
              owner: {type: string, pattern: '^[a-z]+$'}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
EOF
widget() {  # widget NAME SPEC-YAML-FLOW [extra metadata line]
  printf 'apiVersion: test.kube-lite.io/v1\nkind: Widget\nmetadata:\n  name: %s\n%s\nspec: %s\n' \
    "$1" "${3:-}" "$2"
}

# ---- discovery ----
out=$("$KUBECTL" --cache-dir "$T_DIR/kcache" api-resources 2>&1)
if grep -qE '^statefulsets +sts +apps/v1 +true +StatefulSet' <<<"$out" &&
  grep -qE '^poddisruptionbudgets +pdb +policy/v1' <<<"$out" &&
  grep -qE '^leases +coordination.k8s.io/v1' <<<"$out" &&
  grep -qE '^customresourcedefinitions +crd,crds' <<<"$out"; then
  t_ok "discovery: api-resources lists sts, pdb, leases, crds"
else t_fail "discovery: api-resources lists sts, pdb, leases, crds" "$out"; fi
out=$(k get --raw /apis/apps/v1)
if grep -q '"name":"statefulsets/scale"' <<<"$out" && grep -q '"name":"statefulsets/status"' <<<"$out"; then
  t_ok "discovery: /apis/apps/v1 lists statefulsets/scale and statefulsets/status"
else t_fail "discovery: /apis/apps/v1 subresources" "$out"; fi
t_check "version: /version answers gitVersion" sh -c "\"$KUBECTL\" version -o json | grep -q kube-lite"

t_check "create namespace $NS" "$KUBECTL" create namespace "$NS"

# ---- CRD + CR ----
t_check "apply CRD" k apply -f "$M/crd.yaml"
t_check "wait for CRD Established" k wait --for condition=Established crd/widgets.test.kube-lite.io --timeout=15s
widget w1 '{size: 3}' >"$M/w1.yaml"
out=$(k apply -f "$M/w1.yaml" 2>&1)
t_eq "apply custom resource creates it" "widget.test.kube-lite.io/w1 created" "$out"
json=$(k get widget w1 -o json)
fields=$(echo "$json" | $PY -c 'import json,sys; o=json.load(sys.stdin); m=o["metadata"]
print(m["generation"], len(m["uid"]) == 36, m["creationTimestamp"].endswith("Z"), o["spec"]["mode"], o["kind"])')
t_eq "get -o json: generation 1, uid, creationTimestamp, schema default applied" "1 True True safe Widget" "$fields"
rv1=$(echo "$json" | $PY -c 'import json,sys; print(json.load(sys.stdin)["metadata"]["resourceVersion"])')
out=$(k apply -f "$M/w1.yaml" 2>&1)
rv2=$(k get wd w1 -o jsonpath='{.metadata.resourceVersion}')
t_eq "re-apply of the same manifest: unchanged, same resourceVersion" "widget.test.kube-lite.io/w1 unchanged $rv1" "$out $rv2"
out=$(k get wd 2>&1)
if grep -qE '^NAME +SIZE +READY +AGE' <<<"${out%%$'\n'*}" && grep -qE '^w1 +3 ' <<<"$out"; then
  t_ok "get: printer columns of the CRD (short name wd)"
else t_fail "get: printer columns of the CRD" "$out"; fi
out=$(k describe widget w1 2>&1)
if grep -qE '^Name: +w1' <<<"$out" && grep -qE 'Size: +3' <<<"$out"; then
  t_ok "describe custom resource"
else t_fail "describe custom resource" "$out"; fi

# ---- schema: 422 naming the field; unknown fields ----
widget bad '{size: 9}' >"$M/bad.yaml"
out=$(k apply -f "$M/bad.yaml" 2>&1) && t_fail "CR above maximum refused" "$out" ||
  { grep -q 'spec.size: Invalid value: 9: spec.size in body should be less than or equal to 7' <<<"$out" &&
    t_ok "CR above maximum refused: 422 naming spec.size" || t_fail "CR above maximum: message" "$out"; }
widget bad '{mode: fast}' >"$M/bad.yaml"
out=$(k apply -f "$M/bad.yaml" 2>&1)
grep -q 'spec.size: Required value' <<<"$out" && t_ok "CR missing a required field: spec.size: Required value" ||
  t_fail "CR missing required field" "$out"
widget bad '{size: 2, mode: slow, owner: "Bob1"}' >"$M/bad.yaml"
out=$(k apply -f "$M/bad.yaml" 2>&1)
if grep -q 'spec.mode: Unsupported value: "slow": supported values: "fast", "safe"' <<<"$out" &&
  grep -qF "spec.owner: Invalid value: \"Bob1\": spec.owner in body should match '^[a-z]+\$'" <<<"$out"; then
  t_ok "CR violating enum and pattern: both fields named"
else t_fail "CR violating enum and pattern" "$out"; fi
widget bad '{size: "two"}' >"$M/bad.yaml"
out=$(k apply -f "$M/bad.yaml" 2>&1)
grep -q 'spec.size in body must be of type integer: "string"' <<<"$out" && t_ok "CR with a wrong type refused" ||
  t_fail "CR with a wrong type" "$out"
out=$(k get widget bad 2>&1)
grep -q 'NotFound' <<<"$out" && t_ok "refused CRs were not stored" || t_fail "refused CRs were not stored" "$out"
widget w2 '{size: 1, junk: true}' >"$M/w2.yaml"
out=$(k apply -f "$M/w2.yaml" 2>&1)
grep -q 'strict decoding error: unknown field "spec.junk"' <<<"$out" &&
  t_ok "unknown field refused under kubectl's strict validation" || t_fail "unknown field, strict" "$out"
k apply --validate=false -f "$M/w2.yaml" >/dev/null 2>&1
out=$(k get wd w2 -o jsonpath='{.spec}')
t_eq "unknown field pruned without strict validation" '{"mode":"safe","size":1}' "$out"

# ---- patches, status subresource, generation ----
k patch wd w1 --type merge -p '{"spec":{"size":5}}' >/dev/null
t_eq "merge patch of spec bumps generation" "5 2" "$(k get wd w1 -o jsonpath='{.spec.size} {.metadata.generation}')"
k patch wd w1 --type json -p '[{"op":"replace","path":"/spec/size","value":4},{"op":"add","path":"/metadata/labels","value":{"app":"w"}}]' >/dev/null
t_eq "JSON patch applied" "4 3 w" "$(k get wd w1 -o jsonpath='{.spec.size} {.metadata.generation} {.metadata.labels.app}')"
k label wd w1 tier=web >/dev/null
t_eq "metadata-only change keeps generation" "3" "$(k get wd w1 -o jsonpath='{.metadata.generation}')"
out=$(k patch wd w1 -p '{"spec":{"size":2}}' 2>&1)
grep -q 'UnsupportedMediaType\|unknown format' <<<"$out" && t_ok "strategic merge patch on a CR: 415" ||
  t_fail "strategic merge patch on a CR: 415" "$out"
k patch wd w1 --type merge -p '{"status":{"size":9}}' >/dev/null 2>&1
t_eq "status in a main-resource patch is ignored" "" "$(k get wd w1 -o jsonpath='{.status.size}')"
k patch wd w1 --subresource=status --type merge -p '{"status":{"size":4},"spec":{"size":7}}' >/dev/null
t_eq "status subresource writes status only, generation kept" "4 4 3" \
  "$(k get wd w1 -o jsonpath='{.status.size} {.spec.size} {.metadata.generation}')"
out=$(k scale wd w1 --replicas=6 2>&1)
t_eq "kubectl scale a custom resource (scale subresource)" "6 4" "$(k get wd w1 -o jsonpath='{.spec.size} {.status.size}')"
out=$(k scale wd w1 --replicas=8 2>&1)
grep -q 'spec.size' <<<"$out" && t_ok "scale beyond the schema maximum refused" || t_fail "scale beyond maximum" "$out"

# ---- wait --for=condition=Ready ----
k wait --for=condition=Ready wd/w1 --timeout=20s >"$M/wait.out" 2>&1 &
wpid=$!
sleep 0.5
k patch wd w1 --subresource=status --type merge \
  -p '{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Test","message":"ok"}]}}' >/dev/null
if wait $wpid; then t_ok "wait --for=condition=Ready returns when the condition is set"
else t_fail "wait --for=condition=Ready" "$(cat "$M/wait.out")"; fi
out=$(k get wd w1 --no-headers)
grep -qE '^w1 +6 +True ' <<<"$out" && t_ok "printer column from a JSONPath filter" || t_fail "printer column filter" "$out"

# ---- 409 on a stale replace ----
k get cm -o name >/dev/null
k create configmap c409 --from-literal=a=1 >/dev/null
k get cm c409 -o json >"$M/c409.json"
k patch cm c409 --type merge -p '{"data":{"a":"2"}}' >/dev/null
out=$(k replace -f "$M/c409.json" 2>&1)
grep -q 'the object has been modified' <<<"$out" && t_ok "replace with a stale resourceVersion: 409 Conflict" ||
  t_fail "stale replace: 409" "$out"
out=$(k create configmap c409 2>&1)
grep -q 'configmaps "c409" already exists' <<<"$out" && t_ok "create of an existing name: 409 AlreadyExists" || t_fail "AlreadyExists" "$out"

# ---- StatefulSet: apply (strategic merge), scale ----
cat >"$M/sts.yaml" <<'EOF'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  replicas: 0
  serviceName: web
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: busybox:1
        command: [sleep, "3600"]
        env: [{name: A, value: "1"}]
      - name: side
        image: busybox:1
        command: [sleep, "3600"]
EOF
t_check "apply a StatefulSet" k apply -f "$M/sts.yaml"
sed -i 's/value: "1"}]/value: "1"}, {name: B, value: "2"}]/' "$M/sts.yaml"
k apply -f "$M/sts.yaml" >/dev/null
k patch sts web -p '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox:2"}]}}}}' >/dev/null
t_eq "apply + strategic merge patch merge containers and env by name" "main,side busybox:1,busybox:2 A,B" \
  "$(k get sts web -o jsonpath='{.spec.template.spec.containers[*].name} {.spec.template.spec.containers[*].image} {.spec.template.spec.containers[0].env[*].name}' | tr ' ' ',' | sed 's/,busybox:1/ busybox:1/;s/,A/ A/')"
k scale sts web --replicas=0 >/dev/null
out=$(k scale sts web --replicas=2 2>&1)
t_eq "kubectl scale a StatefulSet" "2" "$(k get sts web -o jsonpath='{.spec.replicas}')"
out=$(k get --raw "/apis/apps/v1/namespaces/$NS/statefulsets/web/scale")
grep -q '"spec":{"replicas":2}' <<<"$out" && grep -q '"selector":"app=web"' <<<"$out" &&
  t_ok "GET statefulsets/scale" || t_fail "GET statefulsets/scale" "$out"
k scale sts web --replicas=0 >/dev/null

# ---- selectors ----
k create configmap s1 >/dev/null
k create configmap s2 >/dev/null
k create configmap s3 >/dev/null
k label cm s1 env=a tier=web >/dev/null
k label cm s2 env=b tier=db >/dev/null
k label cm s3 env=c >/dev/null
t_eq "label selector: in (...), !=" "s1" "$(k get cm -l 'env in (a,b),tier!=db' -o name | sed 's|.*/||' | tr '\n' ' ' | xargs)"
t_eq "label selector: key, !key" "s3" "$(k get cm -l 'env,!tier' -o name | sed 's|.*/||' | xargs)"
t_eq "field selector metadata.name" "s2" "$(k get cm --field-selector metadata.name=s2 -o name | sed 's|.*/||' | xargs)"

# ---- cascade deletion ----
owner_ref() {  # owner_ref KIND NAME UID
  printf '[{"apiVersion":"v1","kind":"%s","name":"%s","uid":"%s","controller":true,"blockOwnerDeletion":true}]' "$1" "$2" "$3"
}
mk_dep() {  # mk_dep NAME OWNER: a configmap owned by configmap OWNER
  local uid
  uid=$(k get cm "$2" -o jsonpath='{.metadata.uid}')
  k create configmap "$1" >/dev/null
  k patch cm "$1" --type merge -p "{\"metadata\":{\"ownerReferences\":$(owner_ref ConfigMap "$2" "$uid")}}" >/dev/null
}
k create configmap own-bg >/dev/null
mk_dep dep-bg own-bg
k create secret generic dep-bg-secret >/dev/null
k patch secret dep-bg-secret --type merge -p "{\"metadata\":{\"ownerReferences\":$(owner_ref ConfigMap own-bg "$(k get cm own-bg -o jsonpath='{.metadata.uid}')")}}" >/dev/null
k delete cm own-bg --cascade=background >/dev/null
if poll_until 15 gone cm dep-bg && poll_until 5 gone secret dep-bg-secret; then
  t_ok "delete owner (background cascade): dependents removed by the GC"
else t_fail "background cascade" "$(k get cm dep-bg secret dep-bg-secret 2>&1)"; fi

k create configmap own-fg >/dev/null
mk_dep dep-fg own-fg
k patch cm dep-fg --type merge -p '{"metadata":{"finalizers":["test.kube-lite.io/hold"]}}' >/dev/null
k delete cm own-fg --cascade=foreground --wait=false >/dev/null
if poll_until 10 sh -c "\"$KUBECTL\" --cache-dir \"$T_DIR/kcache\" -n $NS get cm dep-fg -o jsonpath='{.metadata.deletionTimestamp}' | grep -q Z" &&
  [ -n "$(k get cm own-fg -o jsonpath='{.metadata.deletionTimestamp}' 2>/dev/null)" ] &&
  grep -q foregroundDeletion <<<"$(k get cm own-fg -o jsonpath='{.metadata.finalizers}')"; then
  t_ok "foreground cascade: owner waits (foregroundDeletion) while a dependent is held"
else t_fail "foreground cascade: owner waits" "$(k get cm own-fg dep-fg -o yaml 2>&1 | head -40)"; fi
k patch cm dep-fg --type json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null
if poll_until 15 gone cm own-fg && gone cm dep-fg; then
  t_ok "foreground cascade: finalizer removed -> dependent then owner gone"
else t_fail "foreground cascade completes" "$(k get cm own-fg dep-fg -o yaml 2>&1 | head -40)"; fi

k create configmap own-or >/dev/null
mk_dep dep-or own-or
k delete cm own-or --cascade=orphan >/dev/null
if poll_until 15 gone cm own-or && k get cm dep-or >/dev/null 2>&1 &&
  [ -z "$(k get cm dep-or -o jsonpath='{.metadata.ownerReferences}')" ]; then
  t_ok "orphan cascade: dependent kept, ownerReference removed"
else t_fail "orphan cascade" "$(k get cm dep-or -o yaml 2>&1 | head -30)"; fi

# ---- finalizers on a CR ----
widget fin '{size: 1}' '  finalizers: [test.kube-lite.io/hold]' >"$M/fin.yaml"
k apply -f "$M/fin.yaml" >/dev/null
out=$(k delete wd fin --wait=false 2>&1)
ts=$(k get wd fin -o jsonpath='{.metadata.deletionTimestamp}' 2>&1)
[[ "$ts" == *Z ]] && t_ok "finalizer holds deletion (deletionTimestamp set, object kept)" ||
  t_fail "finalizer holds deletion" "$out" "$ts"
out=$(k patch wd fin --type merge -p '{"metadata":{"finalizers":["test.kube-lite.io/hold","new"]}}' 2>&1)
k patch wd fin --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null
poll_until 5 gone wd fin && t_ok "removing the last finalizer completes the deletion" ||
  t_fail "finalizer removal deletes" "$(k get wd fin -o yaml 2>&1 | head -30)"

# ---- delete waits for removal ----
out=$(k delete wd w2 --timeout=15s 2>&1)
gone wd w2 && t_ok "kubectl delete (waits for the DELETED event)" || t_fail "kubectl delete" "$out"

# ---- logs (API side: the kubelet's log file) ----
if [ -n "${KL_API_ONLY:-}" ]; then
  k run logpod --image=busybox:1 --restart=Never --command -- sh -c 'echo hi' >/dev/null
  mkdir -p "$KL_STATE/pods/$NS/logpod"
  printf 'line1\nline2\nline3\n' >"$KL_STATE/pods/$NS/logpod/logpod.log"
  t_eq "kubectl logs reads the kubelet's log file" "line1 line2 line3" "$(k logs logpod | xargs)"
  t_eq "kubectl logs --tail" "line3" "$(k logs logpod --tail=1)"
  k delete pod logpod --wait=false >/dev/null 2>&1
else
  t_skip "kubectl logs" "covered by workloads.sh (kubelet running)"
fi

# ---- what the cetcd operator relies on: CEL rules, scale/status of its CR, printer columns,
# no-op writes, owner GC, Leases, Events ----
cat >"$M/ec.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: etcdclusters.test.kube-lite.io}
spec:
  group: test.kube-lite.io
  scope: Namespaced
  names: {plural: etcdclusters, singular: etcdcluster, kind: EtcdCluster, shortNames: [ec]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.size, statusReplicasPath: .status.readyMembers}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: integer, jsonPath: .status.readyMembers}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: "!has(self.storage) || !has(oldSelf.storage) || self.storage == oldSelf.storage"
              message: storage is immutable
            properties:
              size:
                type: integer
                minimum: 1
                x-kubernetes-validations:
                - {rule: "self % 2 == 1", message: size must be odd}
              storage: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
EOF
sed 's/"self % 2 == 1"/"self.isOdd()"/; s/etcdclusters/xclusters/g; s/etcdcluster/xcluster/; s/EtcdCluster/XCluster/; s/\[ec\]/[xc]/' \
  "$M/ec.yaml" >"$M/xc.yaml"
out=$(k apply -f "$M/xc.yaml" 2>&1)
grep -qF 'properties[size].x-kubernetes-validations[0].rule: Invalid value: "self.isOdd()": compilation failed: undeclared reference to '"'isOdd'" <<<"$out" &&
  t_ok "CRD with a CEL rule outside kube-lite's subset refused (422 naming the rule)" ||
  t_fail "CRD with an unsupported CEL rule refused" "$out"
t_check "CRD with CEL rules (x-kubernetes-validations) accepted" k apply -f "$M/ec.yaml"
k wait --for condition=Established crd/etcdclusters.test.kube-lite.io --timeout=15s >/dev/null 2>&1
ec() { printf 'apiVersion: test.kube-lite.io/v1alpha1\nkind: EtcdCluster\nmetadata: {name: %s}\nspec: %s\n' "$1" "$2"; }
ec bad '{size: 4}' >"$M/ecbad.yaml"
api_url=$(KUBECONFIG=$KL_STATE/kubeconfig-http "$KUBECTL" config view --raw -o jsonpath='{.clusters[0].cluster.server}')
out=$(k create -f "$M/ecbad.yaml" -o json --dry-run=client | curl -s -m 10 -H "Authorization: Bearer $(cat "$KL_STATE/token")" \
  -H 'Content-Type: application/json' --data-binary @- "$api_url/apis/test.kube-lite.io/v1alpha1/namespaces/$NS/etcdclusters")
msg=$(echo "$out" | $PY -c 'import json,sys; s=json.load(sys.stdin); c=s["details"]["causes"][0]
print(s["code"], s["reason"], s["message"], "|", c["reason"], c["field"], c["message"])' 2>&1)
t_eq "CR failing a CEL rule: 422 in the API server's wording" \
  '422 Invalid EtcdCluster.test.kube-lite.io "bad" is invalid: spec.size: Invalid value: "integer": size must be odd | FieldValueInvalid spec.size Invalid value: "integer": size must be odd' "$msg"
ec e1 '{size: 3, storage: 1Gi}' >"$M/e1.yaml"
k create -f "$M/e1.yaml" >/dev/null
out=$(k patch ec e1 --type merge -p '{"spec":{"storage":"2Gi"}}' 2>&1)
grep -qF 'spec: Invalid value: "object": storage is immutable' <<<"$out" && t_ok "CEL transition rule (oldSelf) refuses an update" ||
  t_fail "CEL transition rule refuses an update" "$out"
out=$(k scale ec e1 --replicas=4 2>&1)
grep -qF 'spec.size: Invalid value: "integer": size must be odd' <<<"$out" && t_ok "scale subresource write checked by the CEL rules" ||
  t_fail "scale subresource write checked by the CEL rules" "$out"
k scale ec/e1 --replicas=5 >/dev/null 2>&1
t_eq "kubectl scale etcdcluster/e1 --replicas=5 sets spec.size, bumps generation" "5 2" \
  "$(k get ec e1 -o jsonpath='{.spec.size} {.metadata.generation}')"
out=$(k get etcdclusters 2>&1)
if grep -qE '^NAME +SIZE +READY +PHASE +AGE$' <<<"${out%%$'\n'*}" && grep -qE '^e1 +5 +[0-9]+s$' <<<"$out"; then
  t_ok "kubectl get etcdclusters: printer columns, missing JSONPaths empty"
else t_fail "kubectl get etcdclusters: printer columns" "$out"; fi
k patch ec e1 --subresource=status --type merge -p '{"status":{"phase":"Running","readyMembers":5}}' >/dev/null
t_eq "status write: printer columns filled, generation kept" "5 Running 2" \
  "$(k get ec e1 --no-headers | awk '{print $3, $4}') $(k get ec e1 -o jsonpath='{.metadata.generation}')"
rv0=$(k get ec e1 -o jsonpath='{.metadata.resourceVersion}')
k patch ec e1 --type merge -p '{"spec":{"size":5}}' >/dev/null
k patch ec e1 --subresource=status --type merge -p '{"status":{"phase":"Running"}}' >/dev/null
k get ec e1 -o json >"$M/e1.json"
k replace -f "$M/e1.json" >/dev/null
k replace --subresource=status -f "$M/e1.json" >/dev/null 2>&1
sed 's/name: web}/name: noop}/; s/app: web/app: noop/g' "$M/sts.yaml" >"$M/noop.yaml"
k create -f "$M/noop.yaml" >/dev/null
rv1=$(k get sts noop -o jsonpath='{.metadata.resourceVersion}')
k replace -f "$M/noop.yaml" >/dev/null
t_eq "no-op merge patch, status patch, PUT of the same object (CR; a StatefulSet without its defaults) keep resourceVersion" \
  "$rv0 $rv1" "$(k get ec e1 -o jsonpath='{.metadata.resourceVersion}') $(k get sts noop -o jsonpath='{.metadata.resourceVersion}')"
out=$(k get --raw "/apis/test.kube-lite.io/v1alpha1/namespaces/$NS/etcdclusters?watch=1&resourceVersion=$rv0&timeoutSeconds=1" 2>&1)
t_eq "no watch event for no-op writes" "" "$out"
k delete sts noop >/dev/null 2>&1

# ownerReferences GC: deleting the EtcdCluster removes what it owns (and the StatefulSet's pods)
uid=$(k get ec e1 -o jsonpath='{.metadata.uid}')
o="[{apiVersion: test.kube-lite.io/v1alpha1, kind: EtcdCluster, name: e1, uid: $uid, controller: true, blockOwnerDeletion: true}]"
cat >"$M/owned.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: e1, ownerReferences: $o}
spec: {selector: {cls: e1}, ports: [{name: client, port: 2379}]}
---
apiVersion: v1
kind: Service
metadata: {name: e1-peer, ownerReferences: $o}
spec: {clusterIP: None, publishNotReadyAddresses: true, selector: {cls: e1}, ports: [{name: peer, port: 2380}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: e1-members, ownerReferences: $o}
data: {e1-0: "joined=true"}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: e1, ownerReferences: $o}
spec: {minAvailable: 1, selector: {matchLabels: {cls: e1}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: e1, ownerReferences: $o}
spec:
  replicas: 1
  serviceName: e1-peer
  podManagementPolicy: Parallel
  selector: {matchLabels: {cls: e1}}
  template:
    metadata: {labels: {cls: e1}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: busybox:1, command: [sleep, "300"]}]
EOF
t_check "objects owned by the EtcdCluster created" k apply -f "$M/owned.yaml"
[ -z "${KL_API_ONLY:-}" ] && poll_until 20 k get pod e1-0
k delete ec e1 --wait=false >/dev/null
all_gone() { gone svc e1 && gone svc e1-peer && gone cm e1-members && gone pdb e1 && gone sts e1 && gone pod e1-0; }
if poll_until 20 all_gone; then t_ok "deleting the EtcdCluster: the GC removes its Services, StatefulSet (and pod), PDB, ConfigMap"
else t_fail "owner GC of the EtcdCluster's objects" "$(k get svc,cm,pdb,sts,pods 2>&1)"; fi

# Lease: optimistic concurrency
cat >"$M/lease.yaml" <<'EOF'
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: cetcd-operator}
spec: {holderIdentity: a, leaseDurationSeconds: 15}
EOF
k create -f "$M/lease.yaml" >/dev/null
k get lease cetcd-operator -o json >"$M/lease.json"
sed -i 's/"holderIdentity": "a"/"holderIdentity": "b"/' "$M/lease.json"
out1=$(k replace -f "$M/lease.json" 2>&1)
out2=$(k replace -f "$M/lease.json" 2>&1)
if grep -q replaced <<<"$out1" && grep -q 'the object has been modified' <<<"$out2" &&
  [ "$(k get lease cetcd-operator -o jsonpath='{.spec.holderIdentity}')" = b ]; then
  t_ok "Lease update with the current resourceVersion succeeds, the same stale one then gets 409"
else t_fail "Lease optimistic concurrency" "$out1" "$out2"; fi

# Events posted through core/v1
cat >"$M/event.yaml" <<EOF
apiVersion: v1
kind: Event
metadata: {name: e1.test1}
involvedObject: {apiVersion: test.kube-lite.io/v1alpha1, kind: EtcdCluster, name: e1, namespace: $NS}
type: Warning
reason: QuorumLost
message: 1 of 3 voters healthy
source: {component: cetcd-operator}
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:00:00Z"
count: 1
EOF
k create -f "$M/event.yaml" >/dev/null
t_eq "an Event posted via the API is listed by kubectl get events --field-selector involvedObject.name=e1" \
  "QuorumLost" "$(k get events --field-selector involvedObject.name=e1,involvedObject.kind=EtcdCluster -o jsonpath='{.items[*].reason}')"
k delete crd etcdclusters.test.kube-lite.io --wait=false >/dev/null 2>&1

# ---- CRD deletion removes its custom resources; namespace deletion removes contents ----
k delete crd widgets.test.kube-lite.io --timeout=20s >/dev/null 2>&1
out=$(k get widgets 2>&1)
grep -qE "doesn't have a resource type|could not find the requested resource" <<<"$out" && t_ok "deleting the CRD removes the resource type" ||
  t_fail "CRD deletion" "$out"
out=$("$KUBECTL" --cache-dir "$T_DIR/kcache" delete namespace "$NS" --timeout=60s 2>&1)
if [ $? -eq 0 ] && gone cm s1 && [ -z "$(k get --raw "/api/v1/namespaces/$NS/configmaps" 2>/dev/null | grep -o '"name"')" ]; then
  t_ok "namespace deletion removes its objects and the namespace"
else t_fail "namespace deletion" "$out"; fi

t_done
