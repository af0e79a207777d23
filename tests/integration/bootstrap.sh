#!/usr/bin/env bash
# tests/integration/bootstrap.sh BIN_DIR: cetcd's --bootstrap-dir (a cetcd extension for the
# operator; entry format in common/bootstrap.h). Loopback members, each started with flags the
# entry must override (a wrong --initial-cluster and the other --initial-cluster-state):
#   1. seed: entry c1 {new, c1 alone} -> a one-member cluster, its log names the entry;
#   2. growth: `cetcdctl member add --learner` for c2, entry c2 {existing, c1+c2} -> c2 joins as
#      a learner, serves the data, is promoted, and both are voters;
#   3. refusals, exit 1 with one log line naming member and file, data dir left uncreated:
#      no entry ("has not been added to the cluster yet"), joined=true ("already joined ...
#      its data was lost"), a malformed entry (names the line); the same through
#      ETCD_BOOTSTRAP_DIR and the YAML key bootstrap-dir of --config-file;
#   4. a member with a WAL never reads the dir: c2 restarts with its entry deleted, replaced by
#      a directory (unreadable as a file), and saying joined=true;
#   5. restore-from: `cetcdctl snapshot save` from c1, then two fresh members r1, r2 whose
#      entries say {new, r1+r2, restore-from=FILE} start from it: the data is back, a new
#      cluster ID, the member list is r1 and r2, writes work; a restart with the entry still
#      saying restore-from keeps the data written since (a member with a WAL never restores);
#   6. restore-from refusals, exit 1 with one log line naming member, file and problem: a
#      truncated file, a flipped byte, a missing file (data dir not created), restore-from with
#      initial-cluster-state=existing (a malformed entry), a data dir that is not empty (left as
#      it was).
# cetcd only (etcd has no such flag): skipped against etcd. Bounded; stops only its processes.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

BIN_DIR=${1:-bin}
SUT=$(resolve_server "$BIN_DIR") || exit 2
CTL=$BIN_DIR/cetcdctl
echo "# server under test: $SUT"
if is_real_etcd "$SUT" || [ ! -x "$CTL" ]; then
  t_skip "--bootstrap-dir" "cetcd extension (needs cetcd and cetcdctl)"
  t_done
fi

BOOT=$T_DIR/boot
mkdir -p "$BOOT"
# entry NAME STATE INITIAL_CLUSTER JOINED [MEMBER_ID [RESTORE_FROM]]: writes BOOT/NAME
entry() {
  {
    echo "# written by bootstrap.sh"
    echo "initial-cluster-state=$2"
    echo "initial-cluster=$3"
    echo "joined=$4"
    [ -n "${5:-}" ] && printf 'member-id=%s\n' "$(printf '%16s' "$5" | tr ' ' 0)"
    [ -n "${6:-}" ] && printf 'restore-from=%s\n' "$6"
    return 0
  } >"$BOOT/$1"
}
cctl() { timeout -k 2 30 "$CTL" --endpoints="$(c_ep "$1")" "${@:2}"; }
since() { c_since_start "$1"; }

cluster_define "$SUT" 2 || exit 2
BF=(--bootstrap-dir "$BOOT")

# --- 1. seed --------------------------------------------------------------------------------------
entry c1 new "c1=$(c_peer_url 1)" false
# the flags say "existing" and name a member that does not exist: the entry must win
member_start 1 existing "c1=http://127.0.0.1:1,zz=http://127.0.0.1:2" "${BF[@]}"
if c_wait_ready 1 20; then t_ok "seed: starts from entry {new, c1 alone}"
else t_fail "seed: starts from entry {new, c1 alone}" "$(since 1 | tail -5)"; fi
t_eq "seed: a one-member cluster" "1" "$(c_members 1 | grep -c .)"
since 1 | grep -qF "member c1 starts from bootstrap entry $BOOT/c1: initial-cluster-state=new" &&
  t_ok "seed: the log names the entry" || t_fail "seed: the log names the entry" "$(since 1 | head -5)"
ctl 1 put boot/k v1 >/dev/null 2>&1

# --- 2. a learner added with cetcdctl, started from its entry, promoted -------------------------
retry_while 20 'unhealthy cluster' cctl 1 member add c2 --learner --peer-urls="$(c_peer_url 2)"
ID2=$(echo "$T_OUT" | awk '/^Member /{print $2}')
[ -n "$ID2" ] && t_ok "cetcdctl member add --learner c2" || t_fail "cetcdctl member add --learner c2" "$T_OUT"
entry c2 existing "$(c_initial_cluster 1 2)" false "$ID2"
member_start 2 new "c2=$(c_peer_url 2)" "${BF[@]}"
if c_wait_ready 2 30; then t_ok "learner: starts from entry {existing, c1+c2}"
else t_fail "learner: starts from entry {existing, c1+c2}" "$(since 2 | tail -5)"; fi
t_eq "learner: endpoint status says learner" true "$(c_status 2 | cut -d' ' -f5)"
deadline=$((SECONDS + 15))
until [ "$(ctl 2 get boot/k --print-value-only --consistency=s 2>/dev/null)" = v1 ] || [ "$SECONDS" -ge "$deadline" ]; do
  sleep 0.2
done
t_eq "learner: has the seed's data" v1 "$(ctl 2 get boot/k --print-value-only --consistency=s 2>/dev/null)"
retry_while 30 'in sync with leader' cctl 1 member promote "$ID2"
echo "$T_OUT" | grep -qE "^Member +$ID2 promoted" && t_ok "learner: promoted" ||
  t_fail "learner: promoted" "$T_OUT"
t_eq "two voting members" "c1 false,c2 false" "$(c_members 1 | awk '{print $2, $3}' | sort | paste -sd,)"

# --- 3. refusals ------------------------------------------------------------------------------------
# refused I WHAT PATTERN: member I exited 1, its log holds PATTERN once, its data dir is absent
refused() {
  local i=$1 what=$2 pat=$3 n
  if ! wait_exit "${C_PID[i]}" 15; then
    t_fail "$what: exits" "still running: $(since "$i" | tail -3)"
    member_stop "$i" KILL
    return
  fi
  C_PID[i]=""
  t_eq "$what: exit code 1" 1 "$T_EXIT_STATUS"
  n=$(since "$i" | grep -cF -- "$pat")
  t_eq "$what: one log line naming member and file" 1 "$n"
  [ ! -e "${C_DIR[i]}" ] && t_ok "$what: data directory not created" ||
    t_fail "$what: data directory not created" "$(find "${C_DIR[i]}" | head)"
}

member_define 3 c3 127.0.0.1 || exit 2
member_start 3 existing "$(c_initial_cluster 1 2 3)" "${BF[@]}"
refused 3 "no entry" "member c3 has no bootstrap entry in $BOOT: it has not been added to the cluster yet"

member_define 4 c4 127.0.0.1 || exit 2
entry c4 existing "$(c_initial_cluster 1 2 4)" true 1234abcd
member_start 4 existing "$(c_initial_cluster 1 2 4)" "${BF[@]}"
refused 4 "joined=true, empty data" \
  "member c4 already joined the cluster but its data directory ${C_DIR[4]} is empty: its data was lost; remove it and add it back as a new member"
since 4 | grep -qF "$BOOT/c4" && t_ok "joined=true: the line names the file" ||
  t_fail "joined=true: the line names the file" "$(since 4 | tail -3)"

member_define 5 c5 127.0.0.1 || exit 2
printf 'initial-cluster-state=existing\njoined=perhaps\n' >"$BOOT/c5"
member_start 5 existing "$(c_initial_cluster 1 2 5)" "${BF[@]}"
refused 5 "malformed entry" "bad bootstrap entry $BOOT/c5 of member c5: line 2: invalid joined"

# the same refusal through ETCD_BOOTSTRAP_DIR and through the YAML config file
member_define 6 c6 127.0.0.1 || exit 2
ETCD_BOOTSTRAP_DIR=$BOOT member_start 6 existing "$(c_initial_cluster 1 2 6)"
refused 6 "ETCD_BOOTSTRAP_DIR" "member c6 has no bootstrap entry in $BOOT"

member_define 7 c7 127.0.0.1 || exit 2
cat >"$T_DIR/c7.yaml" <<EOF
name: c7
data-dir: ${C_DIR[7]}
listen-client-urls: $(c_client_url 7)
advertise-client-urls: $(c_client_url 7)
listen-peer-urls: $(c_peer_url 7)
initial-advertise-peer-urls: $(c_peer_url 7)
initial-cluster: $(c_initial_cluster 1 2 7)
initial-cluster-state: existing
bootstrap-dir: $BOOT
EOF
echo "=== start $(date -u +%T.%N) $SUT --config-file" >>"${C_LOG[7]}"
"$SUT" --config-file "$T_DIR/c7.yaml" >>"${C_LOG[7]}" 2>&1 &
C_PID[7]=$!
track_pid "$!"
refused 7 "YAML bootstrap-dir" "member c7 has no bootstrap entry in $BOOT"

# --- 4. a member with a WAL ignores the dir --------------------------------------------------------
# restart_ignores WHAT: restarts c2 (a voter with data) with wrong flags and --bootstrap-dir
restart_ignores() {
  member_stop 2
  member_start 2 new "c2=http://127.0.0.1:1" "${BF[@]}"
  if c_wait_ready 2 30 && ! since 2 | grep -q 'bootstrap entry'; then t_ok "restart with data: $1"
  else t_fail "restart with data: $1" "$(since 2 | tail -5)"; fi
}
rm -f "$BOOT/c2"
restart_ignores "entry missing"
mkdir "$BOOT/c2"
restart_ignores "entry is a directory (the dir is not read at all)"
rmdir "$BOOT/c2"
entry c2 existing "$(c_initial_cluster 1 2)" true "$ID2"
restart_ignores "entry says joined=true"
ctl 2 put boot/k2 v2 >/dev/null 2>&1
t_eq "restarted member serves linearizable requests" v2 "$(ctl 2 get boot/k2 --print-value-only 2>/dev/null)"
t_eq "still two voting members" "c1 false,c2 false" "$(c_members 1 | awk '{print $2, $3}' | sort | paste -sd,)"

# --- 5. restore-from -----------------------------------------------------------------------------
cluster_id() {
  ctl "$1" member list -w json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["header"]["cluster_id"])'
}
SNAP=$T_DIR/boot-backup.db
cctl 1 snapshot save "$SNAP" >"$T_DIR/save.out" 2>&1 && t_ok "restore-from: snapshot save from c1" ||
  t_fail "restore-from: snapshot save from c1" "$(tail -3 "$T_DIR/save.out")"
OLD_CID=$(cluster_id 1)
member_define 8 r1 127.0.0.1 || exit 2
member_define 9 r2 127.0.0.1 || exit 2
RIC=$(c_initial_cluster 8 9)
entry r1 new "$RIC" false "" "$SNAP"
entry r2 new "$RIC" false "" "$SNAP"
# the flags say "existing" and name a member that does not exist: the entry must win
member_start 8 existing "r1=http://127.0.0.1:1" "${BF[@]}"
member_start 9 existing "r2=http://127.0.0.1:1" "${BF[@]}"
if c_wait_ready 8 30 && c_wait_ready 9 30; then t_ok "restore-from: r1 and r2 start from the file"
else t_fail "restore-from: r1 and r2 start from the file" "$(since 8 | tail -4)" "$(since 9 | tail -4)"; fi
since 8 | grep -qF "member r1 restored $SNAP into ${C_DIR[8]}: cluster " &&
  t_ok "restore-from: the log says what was restored" ||
  t_fail "restore-from: the log says what was restored" "$(since 8 | head -5)"
t_eq "restore-from: the data is back" "v1 v2" \
  "$(ctl 8 get boot/k --print-value-only 2>/dev/null) $(ctl 9 get boot/k2 --print-value-only 2>/dev/null)"
NEW_CID=$(cluster_id 8)
[ -n "$NEW_CID" ] && [ "$NEW_CID" != "$OLD_CID" ] && t_ok "restore-from: a new cluster ID" ||
  t_fail "restore-from: a new cluster ID" "old $OLD_CID new $NEW_CID"
t_eq "restore-from: r1 and r2 agree on it" "$NEW_CID" "$(cluster_id 9)"
deadline=$((SECONDS + 15))
until [ "$(c_members 8 | awk '{print $2, $3}' | sort | paste -sd,)" = "r1 false,r2 false" ] ||
  [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
t_eq "restore-from: the member list is r1 and r2" "r1 false,r2 false" \
  "$(c_members 8 | awk '{print $2, $3}' | sort | paste -sd,)"
ctl 9 put boot/r "after restore" >/dev/null && t_ok "restore-from: writes work" ||
  t_fail "restore-from: writes work"
member_stop 8
member_start 8 existing "r1=http://127.0.0.1:1" "${BF[@]}"
if c_wait_ready 8 30 && ! since 8 | grep -q 'restore'; then
  t_ok "restore-from: a restart with a WAL does not restore again"
else t_fail "restore-from: a restart with a WAL does not restore again" "$(since 8 | tail -5)"; fi
t_eq "restore-from: the restarted member keeps what was written since" "after restore" \
  "$(ctl 8 get boot/r --print-value-only 2>/dev/null)"

# --- 6. restore-from refusals --------------------------------------------------------------------
SIZE=$(stat -c %s "$SNAP")
head -c $((SIZE - 100)) "$SNAP" >"$T_DIR/trunc.db"
flip_byte "$SNAP" "$T_DIR/flip.db" $((SIZE / 3)) 0x10
# refused_restore I NAME FILE WHAT PROBLEM: member I (NAME) with entry restore-from=FILE is refused
refused_restore() {
  member_define "$1" "$2" 127.0.0.1 || exit 2
  entry "$2" new "$(c_initial_cluster "$1")" false "" "$3"
  member_start "$1" new "$(c_initial_cluster "$1")" "${BF[@]}"
  refused "$1" "restore-from, $4" "member $2 cannot restore from $3 (bootstrap entry $BOOT/$2): $5"
}
refused_restore 10 r3 "$T_DIR/trunc.db" "truncated file" "snapshot file is truncated"
refused_restore 11 r4 "$T_DIR/flip.db" "flipped byte" "snapshot file is corrupt: sha256 checksum mismatch"
refused_restore 12 r5 "$T_DIR/none.db" "missing file" "cannot open snapshot file $T_DIR/none.db"

member_define 13 r6 127.0.0.1 || exit 2
entry r6 existing "$(c_initial_cluster 13)" false "" "$SNAP"
member_start 13 existing "$(c_initial_cluster 13)" "${BF[@]}"
refused 13 "restore-from with state existing" \
  "bad bootstrap entry $BOOT/r6 of member r6: line 5: restore-from needs initial-cluster-state=new"

member_define 14 r7 127.0.0.1 || exit 2
mkdir -p "${C_DIR[14]}/old"
echo keep >"${C_DIR[14]}/old/file"
entry r7 new "$(c_initial_cluster 14)" false "" "$SNAP"
member_start 14 new "$(c_initial_cluster 14)" "${BF[@]}"
if wait_exit "${C_PID[14]}" 15; then
  C_PID[14]=""
  t_eq "restore-from, non-empty data dir: exit code 1" 1 "$T_EXIT_STATUS"
else
  t_fail "restore-from, non-empty data dir: exits"
  member_stop 14 KILL
fi
t_eq "restore-from, non-empty data dir: one log line" 1 "$(since 14 | grep -cF \
  "member r7 cannot restore from $SNAP (bootstrap entry $BOOT/r7): data-dir \"${C_DIR[14]}\" exists and is not empty")"
t_eq "restore-from, non-empty data dir: left as it was" "old old/file keep" \
  "$(cd "${C_DIR[14]}" && find . -mindepth 1 | sed 's|^\./||' | sort | paste -sd' ') $(cat "${C_DIR[14]}/old/file")"

t_done
