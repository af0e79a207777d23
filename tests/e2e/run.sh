#!/usr/bin/env bash
# tests/e2e/run.sh: the operator's end-to-end suite on kube-lite (issue 6), run by `make e2e`
# and `make test`. Needs root (kube-lite runs pods in network namespaces).
#
# It starts its own kube-lite (state in a fresh /tmp/cetcd-e2e.XXXXXX/kl, API on a free port),
# installs the operator from manifests/ and runs these stages in order, each a function
# (stage_<name>):
#   install      kubectl apply the CRD, RBAC and operator (manifests/{crd,rbac,operator}, or the
#                rendering of manifests/kustomization.yaml); CRD Established; operator pods Ready
#   schema       an EtcdCluster with size 4 is refused with the schema's message
#   create       the 3-member sample: 3 voters ready, one leader; status (phase, members,
#                readyMembers, leader, Available=True) and the printer columns (Size, Ready,
#                Leader) tell the truth
#   keys         20 keys written and read back through the client Service (its ClusterIP, which
#                the host reaches through kube-lite's userspace proxy)
#   backup       the API server refuses a schedule that is not cron and a storage with both an
#                existing claim and a size; spec.backup patched in (a schedule never due during
#                the run, retention 2, a 64Mi claim): CronJob C-backup as specified (schedule,
#                Forbid, image, `cetcdctl ... snapshot save --dir /backup ...`, owned), PVC
#                C-backup Bound without owner, BackupSucceeded=Unknown; three backups, by the
#                annotation cetcd.io/backup-now (twice, two tokens) and by `kubectl create job
#                --from=cronjob/C-backup`, a key written between them: each Job completes,
#                status.backup.lastSuccess records it (BackupSucceeded=True, Event
#                BackupCompleted), the token is recorded and makes one Job only; the files in the
#                claim (read on the host) are named C-<time>Z-r<revision>.db, carry a matching
#                trailing sha256, and retention keeps the newest 2; lastSuccess = the newest file
#                (size, sha256, revision)
#   restore      spec.restore cannot be added to C (CEL); a new EtcdCluster C-rst (size 3) with
#                spec.restore {claimName: C-backup, file: the newest backup}: its 3 members start
#                together from the file and converge, status.restore Restored (file, revision,
#                clusterID) and Event Restored, every key of the backup there, a new cluster ID
#                (not C's), writes work, spec.restore cannot be changed (CEL); then deleted; a
#                cluster restored from a copy with one byte changed stays Restoring, and
#                status.restore.message gives its member's refusal (sha256 mismatch)
#   backupfail   all of C's members frozen (SIGSTOP) until the client Service has no ready
#                endpoint: a backup-now Job fails, status.backup.lastFailure records it with the
#                CLI's error, BackupSucceeded=False/BackupFailed, Warning Event BackupFailed;
#                after SIGCONT the cluster converges again
#   idempotence  applying the sample again changes nothing; over E2E_IDLE_SECS (15) nothing of
#                the cluster's (EtcdCluster, StatefulSet, Services, ConfigMap, PDB, pods, PVCs,
#                the operator's Events) changes resourceVersion
#   podrestart   the leader's pod deleted: it returns as the same member (same ID) and serves a
#                key written before with --consistency=s from its own endpoint
#   wipe         a member's PVC deleted and its pod deleted: the member is removed and added
#                back (new ID, same name), 3 voters, keys intact on it
#   scale        5 (kubectl scale), 3 (patch), 1 (scale), 3 (patch); each with one failpoint
#                (after-member-add, after-member-remove, after-sts-scale, before-promote): the
#                operator exits there (code 42), restarts, and the cluster converges: member
#                list = size, no learner, StatefulSet replicas = size, keys readable, status
#                true, changes one member at a time
#   jump         a second cluster created at size 1 and patched to 5 directly: taken one member
#                at a time; then deleted: its StatefulSet, Services, PDB, ConfigMap go
#   secure       a CA Secret and a root-password Secret; cluster C-sec (size 3) with
#                spec.tls.caSecret and spec.auth.rootSecret: the operator issues C-sec-server-tls,
#                -peer-tls, -client-tls (the server certificate chains to the CA and names the
#                members), the cluster converges over TLS, Secured=True (TLSAndAuthEnabled) and
#                an Event AuthEnabled; peer URLs are https; with a client certificate of the CA
#                (CN e2e-client) and root's password a put works, and curl verifies the chain
#                and the member's host name; plaintext, no client certificate, a certificate of
#                another CA, no password and a wrong password are each refused; scaled 3 -> 5
#                -> 3, each member serving the key to root; deleted: its objects and the issued
#                Secrets go
#   quorum       2 of 3 members frozen (SIGSTOP of their cetcd process group): Degraded with
#                reason QuorumLost and an Event QuorumLost, no membership change; after SIGCONT
#                the cluster converges again
#   delete       deleting the EtcdCluster removes its StatefulSet, Services, PDB, ConfigMap and
#                backup CronJob; the backup claim C-backup stays
# Cluster facts come from cetcdctl (E2E_CTL, default bin/cetcdctl) run on the host against each
# pod's IP:2379 (the host routes to the pod bridge) and from the API (tests/e2e/e2e.py).
#
# Usage: tests/e2e/run.sh [--keep] [--state DIR] [--only S1,S2] [--skip S1,S2] [--list]
#        tests/e2e/run.sh --down DIR
#   --keep        leave kube-lite and the clusters running; prints how to reuse them
#   --state DIR   run against a kept environment (DIR printed by --keep) instead of a new one;
#                 the environment is kept again afterwards
#   --only LIST   run only these stages; on a new environment the stages they need (install,
#                 create, keys) run first
#   --skip LIST   leave these stages out
#   --down DIR    tear a kept environment down (frozen pods, kube-lite, DIR) and exit
# Environment: E2E_ONLY, E2E_SKIP, E2E_KEEP=1, E2E_STATE (same as the flags); E2E_MANIFESTS
# (default manifests), E2E_CTL, E2E_PHASE (status.phase of a healthy cluster, default Running),
# E2E_IDLE_SECS (15), E2E_DEADLINE (seconds after which no new stage starts, default 480),
# E2E_KEEP_ON_FAIL=1 (keep the environment when a check failed), E2E_VERBOSE=1 (show the output
# of passed waits too), KUBECTL.
# Output: `ok N - ...` / `not ok N - ...` (a failed wait shows what it waited for and a dump:
# kubectl get ec,sts,pods,pvc,cm -o wide, the operator's and the cetcd pods' log tails, events),
# then `N passed, M failed`; exit status 1 on any failure.
# Invariants: every wait has a deadline; the EXIT trap continues frozen processes and tears
# down what this run started (`kube-lite down`, which ends every pod), unless kept;
# only files under the run's own state dir are written or removed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
. tests/lib.sh

PY=/usr/bin/python3
KL=hack/kube-lite/kube-lite
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
CTL=${E2E_CTL:-bin/cetcdctl}
MAN=${E2E_MANIFESTS:-manifests}
PHASE=${E2E_PHASE:-Running}
IDLE=${E2E_IDLE_SECS:-15}
BUDGET=${E2E_DEADLINE:-480}
OPNS=cetcd-system
OPDEPLOY=cetcd-operator
KEYS_N=20
STAGES_ALL="install schema create keys backup restore idempotence podrestart wipe scale jump secure quorum backupfail delete"

usage() { sed -n '/^# Usage:/,/^# Output:/p' "$0" | sed 's/^# \{0,1\}//'; }

KEEP=${E2E_KEEP:-}
ST=${E2E_STATE:-}
ONLY=${E2E_ONLY:-}
SKIP=${E2E_SKIP:-}
DOWN=
while [ $# -gt 0 ]; do
  case $1 in
    --keep) KEEP=1 ;;
    --state) ST=${2:?--state DIR}; shift ;;
    --only) ONLY=${2:?--only LIST}; shift ;;
    --skip) SKIP=${2:?--skip LIST}; shift ;;
    --down) DOWN=${2:?--down DIR}; shift ;;
    --list) echo "$STAGES_ALL"; exit 0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# the stages to run: STAGES_ALL order, --only (plus what it needs on a new environment), --skip
in_list() { [[ ",$2," == *",$1,"* ]]; }
want=",${ONLY:-${STAGES_ALL// /,}},"
if [ -n "$ONLY" ] && [ -z "$ST" ] && [ -z "$DOWN" ]; then
  for s in ${ONLY//,/ }; do
    case $s in
      install) ;;
      schema | secure) want="$want,install," ;;
      create) want="$want,install," ;;
      restore | backupfail) want="$want,install,create,keys,backup," ;;
      *) want="$want,install,create,keys," ;;
    esac
  done
fi
STAGES=()
for s in $STAGES_ALL; do
  in_list "$s" "$want" && ! in_list "$s" ",$SKIP," && STAGES+=("$s")
done
for s in ${ONLY//,/ } ${SKIP//,/ }; do
  in_list "$s" ",${STAGES_ALL// /,}," || { echo "unknown stage $s (stages: $STAGES_ALL)" >&2; exit 2; }
done

# --- environment: kube-lite in a state dir ---------------------------------------------------

# thaw DIR: SIGCONT to the process groups the quorum stage froze (DIR/stopped.pids)
thaw() {
  local pid
  [ -f "$1/stopped.pids" ] || return 0
  while read -r pid; do [ -n "$pid" ] && kill -CONT -- "-$pid" 2>/dev/null; done <"$1/stopped.pids"
  rm -f "$1/stopped.pids"
}

# env_down DIR: thaw, `kube-lite down`, remove DIR (only a dir this script made: e2e.marker)
env_down() {
  local d=$1
  thaw "$d"
  if [ -d "$d/kl" ] && ! run_bounded 90 "$PY" "$KL" down --state "$d/kl" >>"$d/down.log" 2>&1; then
    # keep DIR: its records (kl/netns.list, pids) let a later `kube-lite down` finish the job
    echo "# kube-lite down failed (state kept in $d): $(tail -5 "$d/down.log")" >&2
    return 1
  fi
  [ -f "$d/e2e.marker" ] && rm -rf "$d"
}

if [ -n "$DOWN" ]; then
  [ -f "$DOWN/e2e.marker" ] || { echo "$DOWN is not a state dir of tests/e2e/run.sh" >&2; exit 2; }
  env_down "$DOWN"
  echo "# torn down $DOWN"
  exit 0
fi

ATTACHED=
if [ -n "$ST" ]; then
  [ -f "$ST/e2e.marker" ] && [ -f "$ST/kl/kubeconfig" ] ||
    { echo "$ST is not a kept state dir of tests/e2e/run.sh" >&2; exit 2; }
  ATTACHED=1
  KEEP=1
else
  ST=$(mktemp -d /tmp/cetcd-e2e.XXXXXX)
  touch "$ST/e2e.marker"
  # failpoint files are created by the operator, which may run as a non-root user
  mkdir -p "$ST/fp" && chmod 711 "$ST" && chmod 1777 "$ST/fp"
fi
KLD=$ST/kl
KCFG=$KLD/kubeconfig
export KUBECONFIG=$KCFG

finish() {
  thaw "$ST"
  if [ -n "${E2E_KEEP_ON_FAIL:-}" ] && [ "$T_FAIL" -gt 0 ]; then KEEP=1; fi
  if [ -n "$KEEP" ]; then
    echo "# kept: state $ST"
    echo "#   export KUBECONFIG=$KCFG"
    echo "#   tests/e2e/run.sh --state $ST --only <stage>     (stages: $STAGES_ALL)"
    echo "#   tests/e2e/run.sh --down $ST"
  else
    env_down "$ST"
  fi
  t_cleanup
}
trap finish EXIT

if [ -z "$ATTACHED" ]; then
  alloc_ports KL_PORT
  if ! run_bounded 90 "$PY" "$KL" up --state "$KLD" --port "$KL_PORT" >"$ST/up.out" 2>&1; then
    echo "# kube-lite up failed:"
    sed 's/^/#   /' "$ST/up.out"
    tail -30 "$KLD/kube-lite.log" 2>/dev/null | sed 's/^/#   /'
    echo "0 passed, 1 failed"
    exit 1
  fi
fi
echo "# state $ST (kube-lite $(sed -n 's/.*"bridge": "\([^"]*\)".*/\1/p' "$KLD/net.json" 2>/dev/null), API $(cat "$KLD/url" 2>/dev/null))"

# --- helpers ----------------------------------------------------------------------------------

kc() { run_bounded 40 "$KUBECTL" --kubeconfig "$KCFG" --cache-dir "$ST/kcache" --request-timeout=20s "$@"; }
k() { kc -n "$NS" "$@"; }
kop() { kc -n "$OPNS" "$@"; }
# ez [--cluster X] CMD ARGS...: tests/e2e/e2e.py about cluster C (or X); bounded well past
# the longest wait it is given
ez() {
  local cl=$C
  if [ "${1:-}" = --cluster ]; then cl=$2; shift 2; fi
  run_bounded 400 "$PY" tests/e2e/e2e.py --kubeconfig "$KCFG" --ns "$NS" --cluster "$cl" \
    --ctl "$CTL" --phase "$PHASE" "$@"
}

# dump_state: what a failed wait shows (bounded in size)
dump_state() {
  local f
  echo "--- state at $(date -u +%T), namespace $NS: kubectl get ec,sts,pods,pvc,cm -o wide"
  k get ec,sts,pods,pvc,cm -o wide 2>&1 | head -50
  echo "--- operator pods ($OPNS)"
  kop get pods -o wide 2>&1 | head -8
  for f in "$KLD/pods/$OPNS"/*/*.log; do
    [ -f "$f" ] || continue
    echo "--- tail ${f#"$KLD/"}"
    tail -n 30 "$f" | cut -c1-300
  done
  for f in "$KLD/pods/$NS"/*/*.log; do
    [ -f "$f" ] || continue
    echo "--- tail ${f#"$KLD/"}"
    tail -n 8 "$f" | cut -c1-300
  done
  echo "--- recent events in $OPNS"
  kop get events --sort-by=.lastTimestamp 2>&1 | tail -6 | cut -c1-300
  echo "--- recent events in $NS"
  k get events --sort-by=.lastTimestamp 2>&1 | tail -12 | cut -c1-300
}

# check NAME CMD...: ok when CMD succeeds; else not ok with CMD's output (and no dump)
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then t_ok "$name"; return 0; fi
  t_fail "$name" "$out"
  return 1
}

# waitc NAME CMD...: like check, for waits (the name gets the time waited); on failure also
# dumps the cluster's state
waitc() {
  local name=$1 out t0=$SECONDS
  shift
  if out=$("$@" 2>&1); then
    t_ok "$name [$((SECONDS - t0))s]"
    if [ -n "${E2E_VERBOSE:-}" ]; then printf '%s\n' "$out" | sed 's/^/#   /'
    else printf '%s\n' "$out" | grep -E '^steps:' | cut -c1-400 | sed 's/^/#   /'; fi
    return 0
  fi
  t_fail "$name [$((SECONDS - t0))s]" "$out" "$(dump_state)"
  return 1
}

jp() { k get "$1" -o "jsonpath=$2" 2>/dev/null; }
pod_ip() { jp "pod/$1" '{.status.podIP}'; }
svc_ep() { echo "http://$(jp "svc/$C" '{.spec.clusterIP}'):2379"; }

keys_expected() {
  local i
  for i in $(seq 0 $((KEYS_N - 1))); do printf 'e2e/k%02d\nv%02d-%s\n' "$i" "$i" "$C"; done
}
# keys_ok ENDPOINT [get flags...]: all keys readable with their values at ENDPOINT
keys_ok() {
  local ep=$1 out
  shift
  [ -f "$ST/keys.written" ] || { echo "the keys were never written (stage keys)"; return 1; }
  out=$(run_bounded 10 "$CTL" --endpoints="$ep" --command-timeout=4s get e2e/ --prefix "$@" 2>&1)
  if [ "$out" != "$(keys_expected)" ]; then
    echo "keys at $ep ($*) differ:"
    diff <(keys_expected) <(printf '%s\n' "$out") | head -12
    return 1
  fi
}
keys_via_service() { keys_ok "$(svc_ep)"; }

converged() { ez wait-converged "$1" "${2:-30}"; }

# pod_replaced NAME OLD_UID: the pod exists with another uid and is Ready
pod_replaced() {
  local got
  got=$(jp "pod/$1" '{.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}')
  echo "pod $1: $got"
  [ -n "$got" ] && [ "${got%% *}" != "$2" ] && [ "${got#* }" = True ]
}

# member_replaced NAME OLD_ID: the member list has NAME with an ID other than OLD_ID
member_replaced() {
  local id
  id=$(ez member-id "$1" 2>&1)
  echo "member $1: $id"
  [ -n "$id" ] && [ "$id" != "$2" ] && [[ $id =~ ^[0-9a-f]+$ ]]
}

# owned_gone CLUSTER: its StatefulSet, Services, PDB, ConfigMap, backup CronJob (and pods) are
# gone
owned_gone() {
  local cl=$1 left
  left=$(k get "sts/$cl" "svc/$cl" "svc/$cl-peer" "pdb/$cl" "cm/$cl-members" "cronjob/$cl-backup" \
    --ignore-not-found -o name 2>&1)
  left="$left$(k get pods -o name 2>/dev/null | grep -E "^pod/$cl-[0-9]+$")"
  [ -z "$left" ] && return 0
  echo "still there: $(echo $left)"
  return 1
}

# cetcd_pid POD: the pid recorded by the kubelet for the pod's (only) container
cetcd_pid() {
  local f
  for f in "$KLD/pods/$NS/$1"/*.pid; do
    [ -f "$f" ] && { cut -d' ' -f1 "$f"; return 0; }
  done
  return 1
}

# freeze POD...: SIGSTOP the cetcd process group of each pod (recorded in stopped.pids, which the
# EXIT trap and thaw_all continue)
freeze() {
  local p pid
  for p in "$@"; do
    pid=$(cetcd_pid "$p") || { echo "no pid of $p's cetcd in $KLD/pods/$NS/$p"; return 1; }
    echo "$pid" >>"$ST/stopped.pids"
    kill -STOP -- "-$pid" || return 1
  done
}
thaw_all() { thaw "$ST"; }

# refused OBJECT PATCH TEXT: a merge patch of OBJECT is refused with a message containing TEXT
refused() {
  local out
  if out=$(k patch "$1" --type=merge -p "$2" 2>&1); then
    echo "accepted: $out"
    return 1
  fi
  [[ $out == *"$3"* ]] || { echo "refused, but without \"$3\": $out"; return 1; }
}

# --- stages -----------------------------------------------------------------------------------
# Each returns 0, or 1 when what follows cannot work (the rest is then reported as not run).

SAMPLE="" C="" NS=default
find_sample() {
  local line
  [ -d "$MAN/samples" ] || return 1
  line=$(ez sample "$MAN/samples" 3 2>/dev/null) || return 1
  IFS=$'\t' read -r SAMPLE C NS <<<"$line"
  NS=${NS:-default}
  [ -n "$C" ]
}
find_sample || true

stage_install() {
  local rendered=() crd
  check "bin/cetcd-operator is built (kube-lite runs image cetcd-operator:* from it)" \
    test -x bin/cetcd-operator || return 1
  if [ ! -d "$MAN/crd" ] || [ ! -d "$MAN/rbac" ] || [ ! -d "$MAN/operator" ]; then
    t_fail "manifests present ($MAN/crd, $MAN/rbac, $MAN/operator)" "$(ls -R "$MAN" 2>&1 | head)"
    return 1
  fi
  if [ -f "$MAN/kustomization.yaml" ]; then
    check "kubectl kustomize $MAN renders" sh -c "'$KUBECTL' kustomize '$MAN' >'$ST/kustomized.yaml'" ||
      return 1
    rendered=(--rendered "$ST/kustomized.yaml")
  fi
  check "install manifests (CRD, RBAC, operator) read" \
    sh -c "'$PY' tests/e2e/e2e.py install-yaml '$MAN' ${rendered[*]} >'$ST/install.yaml'" || return 1
  check "kubectl apply the CRD, RBAC and operator" kc apply -f "$ST/install.yaml" || return 1
  crd=$(kc get crd -o name 2>/dev/null | grep -m1 "etcdclusters.cetcd.io")
  waitc "CRD etcdclusters.cetcd.io is Established" \
    kc wait --for=condition=Established "${crd:-crd/etcdclusters.cetcd.io}" --timeout=30s || return 1
  waitc "operator Deployment $OPNS/$OPDEPLOY: pods Ready" ez operator-rolled 90 - || return 1
}

not_created() { ! k get ec "$1" -o name 2>/dev/null | grep -q .; }

stage_schema() {
  local out rc msgs m missing=
  if [ -z "$SAMPLE" ]; then t_fail "a 3-member sample in $MAN/samples"; return 0; fi
  ez derive "$SAMPLE" "$C-even" 4 >"$ST/even.yaml"
  out=$(k apply -f "$ST/even.yaml" 2>&1)
  rc=$?
  msgs=$(ez crd-size-messages "$ST/install.yaml" 2>/dev/null)
  if [ -n "$msgs" ]; then
    while IFS= read -r m; do
      [[ $out == *"$m"* ]] || missing="$missing [$m]"
    done <<<"$msgs"
  fi
  if [ $rc -ne 0 ] && [[ $out == *spec.size* ]] && [ -z "$missing" ]; then
    t_ok "an EtcdCluster with size 4 is refused: $(echo "$out" | head -2 | cut -c1-200)"
  else
    t_fail "an EtcdCluster with size 4 is refused with the schema's message" "exit $rc: $out" \
      ${missing:+"messages of the CRD missing from it:$missing"} \
      ${msgs:+"(the CRD refuses even sizes with an x-kubernetes-validations (CEL) rule: an API server must evaluate CEL to refuse it; kube-lite's schema.py does not)"}
  fi
  check "nothing was created for it" not_created "$C-even"
  k delete ec "$C-even" --ignore-not-found --wait=false >/dev/null 2>&1
  return 0
}

stage_create() {
  local leader cols
  if [ -z "$SAMPLE" ]; then t_fail "a 3-member sample in $MAN/samples" "$(ls "$MAN/samples" 2>&1)"; return 1; fi
  check "kubectl apply the 3-member sample $SAMPLE ($NS/$C)" k apply -f "$SAMPLE" || return 1
  waitc "cluster $C converges: 3 voters Ready, one leader all agree on, StatefulSet 3/3" \
    ez wait-converged 3 150 --steps up || return 1
  leader=$(ez leader 2>/dev/null)
  check "exactly one leader ($leader)" test -n "$leader"
  waitc "status: phase $PHASE, 3 members, readyMembers 3, leader, Available=True" \
    ez wait-status 3 30
  cols=$(k get ec "$C" 2>&1 | ez columns 2>&1)
  check "kubectl get ec columns: SIZE 3, READY 3, LEADER $leader" sh -c '
    echo "$1" | grep -qx "SIZE=3" && echo "$1" | grep -qxE "READY=3(/3)?" &&
      echo "$1" | grep -qx "LEADER=$2" || { echo "$1"; exit 1; }' _ "$cols" "$leader"
}

write_keys() {
  local i ep=$1
  for i in $(seq 0 $((KEYS_N - 1))); do
    run_bounded 10 "$CTL" --endpoints="$ep" --command-timeout=4s put "$(printf 'e2e/k%02d' "$i")" \
      "$(printf 'v%02d-%s' "$i" "$C")" >/dev/null || return 1
  done
}

stage_keys() {
  local ep
  ep=$(svc_ep)
  if check "write $KEYS_N keys through the client Service $C ($ep)" write_keys "$ep"; then
    touch "$ST/keys.written"
  fi
  check "read them back through the client Service" keys_via_service
}

# Backups: a schedule never due during a run (February 30th), so that only the backups the
# stage asks for run and the idle check sees none
BACKUP_SPEC='{"spec":{"backup":{"schedule":"0 0 30 2 *","retention":2,"storage":{"size":"64Mi"}}}}'
bk_dir() { echo "$KLD/pvs/$NS/$C-backup"; }
backup_pvc_ok() {
  local got
  got=$(jp "pvc/$C-backup" '{.status.phase}|{.metadata.ownerReferences}')
  echo "pvc/$C-backup: $got"
  [ "$got" = "Bound|" ]
}
put_key() { run_bounded 10 "$CTL" --endpoints="$(svc_ep)" --command-timeout=4s put "$1" "$2" >/dev/null; }
one_job_for() {
  local n
  n=$(k get jobs -o 'jsonpath={range .items[*]}{.metadata.annotations.cetcd\.io/backup-now}{"\n"}{end}' |
    grep -cx "$1")
  [ "$n" = 1 ] || { echo "$n Jobs for token $1"; return 1; }
}
handled_is() { [ "$(jp "ec/$C" '{.status.backup.handledRequest}')" = "$1" ]; }

# run_backup annotation TOKEN | run_backup job NAME: one backup, asked for by the annotation
# cetcd.io/backup-now or by `kubectl create job --from`; checks that its Job completes and that
# status.backup records it; 1 when it did not
run_backup() {
  local how=$1 arg=$2 job
  if [ "$how" = annotation ]; then
    check "kubectl annotate ec/$C cetcd.io/backup-now=$arg" \
      k annotate ec "$C" "cetcd.io/backup-now=$arg" --overwrite || return 1
    job=$(ez backup-job "$arg" 30) || { t_fail "a Job for token $arg" "$job"; return 1; }
  else
    job=$arg
    check "kubectl create job --from=cronjob/$C-backup $job" \
      k create job "--from=cronjob/$C-backup" "$job" || return 1
  fi
  waitc "Job $job completes" k wait --for=condition=complete "job/$job" --timeout=90s || return 1
  waitc "status.backup.lastSuccess is $job's; BackupSucceeded=True" ez wait-backup "$job" ok 30 ||
    return 1
  if [ "$how" = annotation ]; then
    check "status.backup.handledRequest = $arg, one Job for it" \
      sh -c '[ "$1" = "$2" ] || { echo "handledRequest $1"; exit 1; }' _ \
      "$(jp "ec/$C" '{.status.backup.handledRequest}')" "$arg"
    check "one Job only for token $arg" one_job_for "$arg"
  fi
}

stage_backup() {
  waitc "precondition: converged at 3" converged 3 60 || return 0
  check "the API server refuses a schedule that is not cron" refused "ec/$C" \
    '{"spec":{"backup":{"schedule":"every night","storage":{"size":"64Mi"}}}}' "schedule must be a cron schedule"
  check "... and storage with both existingClaim and size" refused "ec/$C" \
    '{"spec":{"backup":{"schedule":"@daily","storage":{"size":"64Mi","existingClaim":"x"}}}}' "set exactly one of existingClaim"
  check "kubectl patch ec/$C spec.backup (retention 2, a 64Mi claim)" \
    k patch ec "$C" --type=merge -p "$BACKUP_SPEC" || return 1
  waitc "CronJob $C-backup as spec.backup says (schedule, Forbid, image, command, claim, owner)" \
    wait_for 30 "CronJob $C-backup" ez cronjob-ok || return 1
  waitc "PVC $C-backup is Bound and has no owner reference (it outlives the cluster)" \
    wait_for 30 "PVC $C-backup" backup_pvc_ok
  waitc "condition BackupSucceeded=Unknown (NoBackupYet)" ez wait-condition BackupSucceeded Unknown NoBackupYet 30
  run_backup annotation e2e-1 || return 1
  check "an Event BackupCompleted about $C" ez wait-event BackupCompleted 10
  check "the backup file is verified: name, whole pages, trailing sha256; status agrees" \
    ez verify-backups "$(bk_dir)" --expect 1
  check "write e2e-backup/1" put_key e2e-backup/1 one
  run_backup job "$C-bk-e2e-2" || return 1
  check "write e2e-backup/2" put_key e2e-backup/2 two
  run_backup annotation e2e-3 || return 1
  if check "retention 2: the newest 2 files are left, verified; status.backup.lastSuccess is the newest (size, sha256, revision)" \
    ez verify-backups "$(bk_dir)" --expect 2; then
    ez verify-backups "$(bk_dir)" --expect 2 | tail -1 | cut -d' ' -f1,3 >"$ST/backup.file"
  fi
  check "the annotation, already handled, makes no other Job" one_job_for e2e-3
}

# restored_keys ENDPOINT: the 20 keys and e2e-backup/1, 2 (written before the last backup)
restored_keys() {
  local out
  keys_ok "$1" || return 1
  out=$(run_bounded 10 "$CTL" --endpoints="$1" --command-timeout=4s get e2e-backup/ --prefix 2>&1)
  [ "$out" = "$(printf 'e2e-backup/1\none\ne2e-backup/2\ntwo')" ] || { echo "e2e-backup/: $out"; return 1; }
}

stage_restore() {
  local r=$C-rst file rev ip id0 id1
  if ! read -r file rev <"$ST/backup.file" 2>/dev/null; then
    t_fail "a verified backup from stage backup ($ST/backup.file)"
    return 0
  fi
  check "the API server refuses spec.restore on the existing cluster $C" refused "ec/$C" \
    "{\"spec\":{\"restore\":{\"claimName\":\"$C-backup\",\"file\":\"$file\"}}}" \
    "spec.restore can only be set when the EtcdCluster is created"
  k delete pvc "data-$r-0" "data-$r-1" "data-$r-2" --ignore-not-found --wait=false >/dev/null 2>&1
  ez derive-restore "$SAMPLE" "$r" "$C-backup" "$file" >"$ST/restore.yaml"
  check "kubectl apply $r: size 3, spec.restore {claimName: $C-backup, file: $file}" \
    k apply -f "$ST/restore.yaml" || return 0
  waitc "$r: the 3 members start together from the snapshot and converge" \
    ez --cluster "$r" wait-converged 3 150 || return 0
  waitc "$r: status.restore Restored (file, revision, clusterID: the members' data compared)" \
    ez --cluster "$r" wait-restored "$file" 60
  waitc "$r: status Running, 3 members" ez --cluster "$r" wait-status 3 30
  check "$r: an Event Restored" ez --cluster "$r" wait-event Restored 10
  check "$r: restored at the backup's revision $rev" test "$(jp "ec/$r" '{.status.restore.revision}')" = "$rev"
  ip=$(pod_ip "$r-0")
  check "$r: every key of the backup, on its own (--consistency=s at $r-0)" restored_keys "http://$ip:2379"
  id0=$(jp "ec/$C" '{.status.clusterID}')
  id1=$(jp "ec/$r" '{.status.clusterID}')
  check "$r has a new cluster ID ($id1, $C's is $id0)" test -n "$id0" -a -n "$id1" -a "$id0" != "$id1"
  check "$r takes writes" run_bounded 10 "$CTL" --endpoints="http://$ip:2379" --command-timeout=4s put e2e-restored yes
  check "the API server refuses a change of spec.restore" refused "ec/$r" \
    '{"spec":{"restore":{"file":"other.db"}}}' "spec.restore cannot be changed"
  check "kubectl delete ec/$r" k delete ec "$r" --timeout=60s
  waitc "its objects are gone" wait_for 60 "the objects of $r to be deleted" owned_gone "$r"
  k delete pvc "data-$r-0" "data-$r-1" "data-$r-2" --ignore-not-found --wait=false >/dev/null 2>&1
  restore_refused_file "$file"
}

# restore_refused_file FILE: a copy of FILE with one byte changed, in the backup claim; a cluster
# restored from it does not start, and status.restore says why (the member's termination message)
restore_refused_file() {
  local r=$C-bad bad=e2e-flipped.db
  if ! "$PY" -c 'import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[5000] ^= 0xff
open(sys.argv[2], "wb").write(d)' "$(bk_dir)/$1" "$(bk_dir)/$bad"; then
    t_fail "a corrupted copy of $1 in the backup claim"
    return 0
  fi
  k delete pvc "data-$r-0" --ignore-not-found --wait=false >/dev/null 2>&1
  ez derive-restore "$SAMPLE" "$r" "$C-backup" "$bad" | sed 's/^  size: 3$/  size: 1/' >"$ST/restore-bad.yaml"
  if check "kubectl apply $r: size 1, spec.restore from a file with one byte changed" \
    k apply -f "$ST/restore-bad.yaml"; then
    waitc "$r stays Restoring; status.restore.message: the member refuses the file (sha256 mismatch)" \
      wait_for 40 "status.restore.message of $r" restore_message_has "$r" "sha256 checksum mismatch"
    k delete ec "$r" --wait=false >/dev/null 2>&1
  fi
  rm -f "$(bk_dir)/$bad"
}
restore_message_has() {
  local got
  got=$(jp "ec/$1" '{.status.phase}|{.status.restore.phase}|{.status.restore.message}')
  echo "$1: $got"
  [[ $got == "Restoring|Restoring|"*"$2"* ]]
}

no_endpoints() {
  local a
  a=$(jp "endpoints/$C" '{.subsets[*].addresses[*].ip}')
  echo "ready addresses of $C: ${a:-none}"
  [ -z "$a" ]
}

stage_backupfail() {
  local job
  [ -n "$(jp "ec/$C" '{.spec.backup.schedule}')" ] || { t_fail "spec.backup of $C (stage backup)"; return 0; }
  waitc "precondition: converged at 3" converged 3 60 || return 0
  check "froze the cetcd processes of $C-0, $C-1 and $C-2 (SIGSTOP)" freeze "$C-0" "$C-1" "$C-2" || { thaw_all; return 0; }
  waitc "the client Service $C has no ready endpoint (readiness fails)" \
    wait_for 40 "no ready endpoint" no_endpoints
  if check "kubectl annotate ec/$C cetcd.io/backup-now=e2e-down" \
    k annotate ec "$C" cetcd.io/backup-now=e2e-down --overwrite &&
    job=$(ez backup-job e2e-down 30); then
    waitc "Job $job fails: the cluster does not answer" k wait --for=condition=failed "job/$job" --timeout=120s
    waitc "status.backup.lastFailure is $job's with the CLI's error; BackupSucceeded=False/BackupFailed" \
      ez wait-backup "$job" failed 30
    waitc "a Warning Event BackupFailed about $C" ez wait-event BackupFailed 30
  else
    t_fail "a Job for token e2e-down" "$job"
  fi
  thaw_all
  waitc "after SIGCONT: converged at 3 again" ez wait-converged 3 120
  check "keys readable" keys_via_service
}

stage_idempotence() {
  local rv0 rv1 out
  converged 3 60 >/dev/null 2>&1
  ez wait-status 3 30 >/dev/null 2>&1
  rv0=$(jp "ec/$C" '{.metadata.resourceVersion}/{.metadata.generation}')
  out=$(k apply -f "$SAMPLE" 2>&1)
  rv1=$(jp "ec/$C" '{.metadata.resourceVersion}/{.metadata.generation}')
  check "kubectl apply of the same sample again: unchanged" \
    sh -c 'case "$1" in *unchanged*) [ "$2" = "$3" ] ;; *) false ;; esac || { echo "$1 (rv/generation $2 -> $3)"; exit 1; }' _ "$out" "$rv0" "$rv1"
  ez snapshot >"$ST/snap.a" 2>&1
  sleep "$IDLE"   # observing that nothing happens: a window, not a condition to await
  ez snapshot >"$ST/snap.b" 2>&1
  check "steady state: no write to the cluster's objects in ${IDLE}s ($(grep -c '"' "$ST/snap.a") objects compared)" \
    ez snapshot-diff "$ST/snap.a" "$ST/snap.b"
}

stage_podrestart() {
  local victim id0 id1 uid0 ip
  waitc "precondition: converged at 3" converged 3 60 || return 0
  victim=$(ez leader) || { t_fail "find the leader" "$victim"; return 0; }
  id0=$(ez member-id "$victim")
  uid0=$(jp "pod/$victim" '{.metadata.uid}')
  check "kubectl delete pod $victim (the leader, member $id0)" k delete pod "$victim" --timeout=60s
  waitc "$victim is re-created and Ready" wait_for 90 "pod $victim re-created and Ready" pod_replaced "$victim" "$uid0"
  waitc "the cluster converges at 3" ez wait-converged 3 90
  id1=$(ez member-id "$victim" 2>&1)
  t_eq "$victim returns as the same member" "$id0" "$id1"
  ip=$(pod_ip "$victim")
  waitc "$victim serves the keys written before from its own data (--consistency=s at $ip)" \
    wait_for 20 "serializable reads at $victim" keys_ok "http://$ip:2379" --consistency=s
}

stage_wipe() {
  local victim="" leader id0 id1 uid0 uid1 ip i
  waitc "precondition: converged at 3" converged 3 60 || return 0
  leader=$(ez leader) || { t_fail "find the leader" "$leader"; return 0; }
  for i in 2 1 0; do [ "$C-$i" != "$leader" ] && { victim=$C-$i; break; }; done
  id0=$(ez member-id "$victim")
  uid0=$(jp "pvc/data-$victim" '{.metadata.uid}')
  # the PVC stays (pvc-protection) until its pod is gone; the new pod gets a new, empty one
  check "kubectl delete pvc data-$victim --wait=false" k delete pvc "data-$victim" --wait=false
  check "kubectl delete pod $victim" k delete pod "$victim" --timeout=60s
  waitc "member $victim ($id0) is removed and added back as a new member" \
    wait_for 150 "a new member named $victim" member_replaced "$victim" "$id0"
  waitc "the cluster converges at 3 voters, no learner" ez wait-converged 3 120
  id1=$(ez member-id "$victim" 2>&1)
  uid1=$(jp "pvc/data-$victim" '{.metadata.uid}')
  check "$victim has a new member ID ($id0 -> $id1) and a new PVC" \
    test "$id1" != "$id0" -a -n "$uid1" -a "$uid1" != "$uid0"
  ip=$(pod_ip "$victim")
  waitc "keys intact, also on the new member (--consistency=s at $ip)" \
    wait_for 30 "serializable reads at $victim" keys_ok "http://$ip:2379" --consistency=s
  check "keys intact through the client Service" keys_via_service
}

# scale_to SIZE HOW: kubectl scale (HOW=scale) or merge patch (HOW=patch) of spec.size
scale_to() {
  if [ "$2" = scale ]; then k scale "ec/$C" --replicas="$1"
  else k patch ec "$C" --type=merge -p "{\"spec\":{\"size\":$1}}"; fi
}

stage_scale() {
  local step n point how dir from fpfile
  waitc "precondition: converged at 3" converged 3 60 || return 0
  from=3
  for step in "5 after-member-add scale" "3 after-member-remove patch" "1 after-sts-scale scale" \
    "3 before-promote patch"; do
    read -r n point how <<<"$step"
    dir=up
    [ "$n" -lt "$from" ] && dir=down
    fpfile=$ST/fp/$point
    rm -f "$fpfile"
    check "operator env CETCD_OPERATOR_FAILPOINT=$point" kop set env "deployment/$OPDEPLOY" \
      "CETCD_OPERATOR_FAILPOINT=$point" "CETCD_OPERATOR_FAILPOINT_FILE=$fpfile"
    waitc "operator restarted with failpoint $point" ez operator-rolled 90 "$point"
    check "kubectl $how ec/$C to $n" scale_to "$n" "$how"
    if waitc "failpoint $point fires on the way $from -> $n" \
      wait_for 90 "the operator to reach $point (file $fpfile)" test -e "$fpfile"; then
      waitc "the operator exited there (exit code 42) and restarts" ez operator-exit42 20
    fi
    waitc "size $n: member list = $n voters, no learner, StatefulSet replicas $n, one member at a time" \
      ez wait-converged "$n" 150 --steps "$dir"
    check "size $n: all keys readable through the client Service" keys_via_service
    waitc "size $n: status agrees" ez wait-status "$n" 30
    from=$n
  done
  check "operator env: failpoint unset" kop set env "deployment/$OPDEPLOY" \
    CETCD_OPERATOR_FAILPOINT- CETCD_OPERATOR_FAILPOINT_FILE-
  waitc "operator restarted without failpoint" ez operator-rolled 90 -
}

first_untouched() { converged 3 20 && keys_via_service; }

stage_jump() {
  local j=$C-jump
  ez derive "$SAMPLE" "$j" 1 >"$ST/jump.yaml"
  check "kubectl apply a second cluster $j with size 1" k apply -f "$ST/jump.yaml" || return 0
  waitc "$j converges at 1" ez --cluster "$j" wait-converged 1 120 || return 0
  check "kubectl patch ec/$j size 1 -> 5" k patch ec "$j" --type=merge -p '{"spec":{"size":5}}'
  waitc "$j converges at 5, one member at a time (never two learners, no pod before its MemberAdd)" \
    ez --cluster "$j" wait-converged 5 200 --steps up
  check "the first cluster is untouched: converged at 3, keys readable" first_untouched
  check "kubectl delete ec/$j" k delete ec "$j" --timeout=60s
  waitc "its StatefulSet, Services, PDB, ConfigMap and pods are gone" \
    wait_for 60 "the objects of $j to be deleted" owned_gone "$j"
}

# --- secure: spec.tls (certificates issued from a CA Secret) and spec.auth -------------------
SEC_PW=e2e-root-pw
# sec_pki DIR: a CA (the one the cluster gets), a client certificate from it with CN e2e-client
# (not a user: it must also give a password), and a client certificate from another CA
sec_pki() {
  local d=$1 ca
  for ca in ca other; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=e2e $ca CA" -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign -keyout "$d/$ca.key" -out "$d/$ca.crt" 2>&1 || return 1
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=e2e-client \
      -keyout "$d/$ca-client.key" -out "$d/$ca-client.csr" 2>&1 || return 1
    printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
    openssl x509 -req -in "$d/$ca-client.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" \
      -CAcreateserial -days 2 -extfile "$d/client.ext" -out "$d/$ca-client.crt" 2>&1 || return 1
  done
}
# sctl DIR IP [--user U:P] ARGS...: cetcdctl to a secured member with the e2e client
# certificate (the pod IP is not in the server certificate: --insecure-skip-tls-verify here;
# sec_verified checks the chain and the name)
sctl() {
  local d=$1 ip=$2
  shift 2
  run_bounded 10 "$CTL" --endpoints="https://$ip:2379" --cert "$d/ca-client.crt" \
    --key "$d/ca-client.key" --insecure-skip-tls-verify --command-timeout=4s "$@"
}
# ez_sec ...: e2e.py about the secured cluster, its cetcdctl calls with the issued client
# certificate (CN root) fetched from the cluster's Secret
ez_sec() {
  E2E_SCHEME=https ETCDCTL_CERT="$SEC_DIR/issued.crt" ETCDCTL_KEY="$SEC_DIR/issued.key" \
    ETCDCTL_INSECURE_SKIP_TLS_VERIFY=true ez --cluster "$SEC" "$@"
}
# secret_file SECRET KEY FILE: data KEY of SECRET decoded into FILE (not empty)
secret_file() { jp "secret/$1" "{.data.${2//./\\.}}" | base64 -d >"$3" && [ -s "$3" ]; }
sec_read_issued() {
  secret_file "$SEC-client-tls" tls.crt "$SEC_DIR/issued.crt" &&
    secret_file "$SEC-client-tls" tls.key "$SEC_DIR/issued.key"
}
sec_server_cert_ok() {
  secret_file "$SEC-server-tls" tls.crt "$SEC_DIR/server.crt" || { echo "no tls.crt"; return 1; }
  openssl verify -CAfile "$SEC_DIR/ca.crt" -purpose sslserver "$SEC_DIR/server.crt" || return 1
  openssl x509 -in "$SEC_DIR/server.crt" -noout -checkhost "$SEC-2.$SEC-peer.$NS.svc" | grep 'does match'
}
# sec_reads IP: root reads e2e-sec/k = v from that member alone (--consistency=s)
sec_reads() {
  local out
  out=$(sctl "$SEC_DIR" "$1" --user "root:$SEC_PW" get e2e-sec/k --consistency=s 2>&1)
  [ "$out" = "$(printf 'e2e-sec/k\nv')" ] || { echo "$out"; return 1; }
}
sec_gone() {
  owned_gone "$SEC" || return 1
  ! k get secret "$SEC-server-tls" "$SEC-peer-tls" "$SEC-client-tls" -o name 2>/dev/null | grep -q .
}
# sec_verified DIR POD IP: curl with the CA, the e2e client certificate and root's token over
# the member's own DNS name (resolved to IP): the chain and the host name verify
sec_verified() {
  local d=$1 host="$2.$SEC-peer.$NS.svc" ip=$3 tok out
  tok=$(curl -sS --max-time 5 --cacert "$d/ca.crt" --cert "$d/ca-client.crt" --key "$d/ca-client.key" \
    --resolve "$host:2379:$ip" "https://$host:2379/v3/auth/authenticate" \
    -d "{\"name\":\"root\",\"password\":\"$SEC_PW\"}" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])') ||
    { echo "no token"; return 1; }
  out=$(curl -sS --max-time 5 --cacert "$d/ca.crt" --cert "$d/ca-client.crt" --key "$d/ca-client.key" \
    --resolve "$host:2379:$ip" -H "Authorization: $tok" "https://$host:2379/v3/kv/range" \
    -d '{"key":"ZTJlLXNlYy9r"}' 2>&1)
  [[ $out == *'"count":"1"'* ]] || { echo "range: $out"; return 1; }
}
refused_with() {
  local want=$1 out
  shift
  if out=$("$@" 2>&1); then echo "accepted: $out"; return 1; fi
  [[ $out == *"$want"* ]] || { echo "refused without \"$want\": $out"; return 1; }
}
plain_refused() { ! curl -sS --max-time 5 "http://$1:2379/v3/kv/range" -d '{"key":"YQ=="}' 2>&1 | grep -q header; }
no_cert_refused() { ! curl -sS --max-time 5 -k "https://$1:2379/v3/kv/range" -d '{"key":"YQ=="}' 2>&1 | grep -q header; }
other_ca_refused() {
  ! curl -sS --max-time 5 -k --cert "$2/other-client.crt" --key "$2/other-client.key" \
    "https://$1:2379/v3/kv/range" -d '{"key":"YQ=="}' 2>&1 | grep -q header
}
peer_urls_https() {
  local out
  out=$(sctl "$SEC_DIR" "$1" --user "root:$SEC_PW" member list 2>&1) || { echo "$out"; return 1; }
  echo "$out"
  ! grep -q 'http://' <<<"$out" && grep -q "https://$SEC-0.$SEC-peer.$NS.svc:2380" <<<"$out"
}

stage_secure() {
  local ip n s dir
  SEC=$C-sec SEC_DIR=$ST/sec
  mkdir -p "$SEC_DIR"
  check "a CA, a client certificate from it (CN e2e-client) and one from another CA (openssl)" \
    sec_pki "$SEC_DIR" || return 0
  check "Secret $SEC-ca (kubernetes.io/tls: the CA)" \
    k create secret tls "$SEC-ca" --cert="$SEC_DIR/ca.crt" --key="$SEC_DIR/ca.key" || return 0
  check "Secret $SEC-root (root's password)" \
    k create secret generic "$SEC-root" --from-literal=password="$SEC_PW" || return 0
  ez derive-secure "$SAMPLE" "$SEC" "$SEC-ca" "$SEC-root" >"$ST/secure.yaml"
  check "kubectl apply $SEC: size 3, spec.tls.caSecret $SEC-ca, spec.auth.rootSecret $SEC-root" \
    k apply -f "$ST/secure.yaml" || return 0
  waitc "the operator issues Secrets $SEC-server-tls, $SEC-peer-tls, $SEC-client-tls" \
    wait_for 60 "the issued Secrets" k get secret "$SEC-server-tls" "$SEC-peer-tls" "$SEC-client-tls" || return 0
  check "the issued client certificate (CN root) read from $SEC-client-tls" sec_read_issued ||
    return 0
  check "the issued server certificate chains to the CA and names every member" sec_server_cert_ok
  waitc "$SEC converges at 3 over TLS (members and operator with client certificates)" \
    ez_sec wait-converged 3 180 --steps up || return 0
  waitc "condition Secured=True (TLSAndAuthEnabled)" \
    ez --cluster "$SEC" wait-condition Secured True TLSAndAuthEnabled 60
  check "an Event AuthEnabled" ez --cluster "$SEC" wait-event AuthEnabled 10
  ip=$(pod_ip "$SEC-0")
  check "the member list has https peer URLs" peer_urls_https "$ip"
  check "with the client certificate and root's password: put e2e-sec/k" \
    sctl "$SEC_DIR" "$ip" --user "root:$SEC_PW" put e2e-sec/k v
  check "chain and host name verify (curl --cacert over $SEC-0.$SEC-peer.$NS.svc), token auth" \
    sec_verified "$SEC_DIR" "$SEC-0" "$ip"
  check "plaintext HTTP to the client port is refused" plain_refused "$ip"
  check "TLS without a client certificate is refused" no_cert_refused "$ip"
  check "a client certificate from another CA is refused" other_ca_refused "$ip" "$SEC_DIR"
  check "the client certificate without a password: permission denied" \
    refused_with "etcdserver: permission denied" sctl "$SEC_DIR" "$ip" put e2e-sec/k v
  check "a wrong password is refused" refused_with "authentication failed" \
    sctl "$SEC_DIR" "$ip" --user root:wrong get e2e-sec/k
  for s in "5 up" "3 down"; do
    read -r n dir <<<"$s"
    check "kubectl patch ec/$SEC size $n" k patch ec "$SEC" --type=merge -p "{\"spec\":{\"size\":$n}}"
    waitc "$SEC converges at $n over TLS with auth on, one member at a time" \
      ez_sec wait-converged "$n" 200 --steps "$dir"
    ip=$(pod_ip "$SEC-$((n - 1))")
    check "size $n: $SEC-$((n - 1)) serves e2e-sec/k to root" sec_reads "$ip"
    check "size $n: still Secured=True" ez --cluster "$SEC" wait-condition Secured True TLSAndAuthEnabled 30
  done
  check "kubectl delete ec/$SEC" k delete ec "$SEC" --timeout=60s
  waitc "its objects and the issued Secrets are gone" \
    wait_for 60 "the objects of $SEC to be deleted" sec_gone
  k delete secret "$SEC-ca" "$SEC-root" --ignore-not-found >/dev/null 2>&1
  k delete pvc -l "app.kubernetes.io/instance=$SEC" --ignore-not-found --wait=false >/dev/null 2>&1
}

stage_quorum() {
  local i pid pids=() cm0 cm1 sts0 sts1 ids0 ids1
  waitc "precondition: converged at 3" converged 3 60 || return 0
  cm0=$(jp "cm/$C-members" '{.metadata.resourceVersion}')
  sts0=$(jp "sts/$C" '{.spec.replicas}')
  ids0="$(ez member-id "$C-0") $(ez member-id "$C-1") $(ez member-id "$C-2")"
  for i in 1 2; do
    pid=$(cetcd_pid "$C-$i") || { t_fail "pid of $C-$i's cetcd in $KLD/pods/$NS/$C-$i"; return 0; }
    pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    echo "$pid" >>"$ST/stopped.pids"
    kill -STOP -- "-$pid"
  done
  t_ok "froze the cetcd processes of $C-1 and $C-2 (SIGSTOP, pids ${pids[*]})"
  waitc "condition Degraded=True reason QuorumLost" ez wait-condition Degraded True QuorumLost 60
  waitc "an Event QuorumLost about $C" ez wait-event QuorumLost 30
  cm1=$(jp "cm/$C-members" '{.metadata.resourceVersion}')
  sts1=$(jp "sts/$C" '{.spec.replicas}')
  check "no membership change while quorum is lost (ConfigMap rv $cm0, StatefulSet replicas $sts0)" \
    test "$cm0/$sts0" = "$cm1/$sts1"
  for pid in "${pids[@]}"; do kill -CONT -- "-$pid"; done
  rm -f "$ST/stopped.pids"
  waitc "after SIGCONT: converged at 3 again" ez wait-converged 3 120
  ids1="$(ez member-id "$C-0") $(ez member-id "$C-1") $(ez member-id "$C-2")"
  t_eq "same three members" "$ids0" "$ids1"
  waitc "status: Available again, Degraded not True" ez wait-status 3 60
  check "keys readable" keys_via_service
}

stage_delete() {
  local bk
  bk=$(k get pvc "$C-backup" -o name --ignore-not-found 2>/dev/null)
  check "kubectl delete ec/$C" k delete ec "$C" --timeout=60s
  waitc "its StatefulSet, Services, PDB, ConfigMap, backup CronJob and pods are gone (owner references)" \
    wait_for 60 "the objects of $C to be deleted" owned_gone "$C"
  if [ -n "$bk" ]; then
    check "the backup claim $C-backup stays (backups outlive the cluster)" \
      test -n "$(k get pvc "$C-backup" -o name --ignore-not-found 2>/dev/null)"
  fi
}

# --- run --------------------------------------------------------------------------------------

broken=
for stg in "${STAGES[@]}"; do
  if [ -n "$broken" ]; then t_fail "stage $stg: not run ($broken)"; continue; fi
  if [ $SECONDS -ge "$BUDGET" ]; then t_fail "stage $stg: not run (suite deadline ${BUDGET}s passed)"; continue; fi
  echo "# --- stage $stg (at ${SECONDS}s)"
  if ! "stage_$stg"; then broken="stage $stg failed"; fi
done
echo "# total ${SECONDS}s"
t_done
