#!/usr/bin/env bash
# tests/integration/restore.sh BIN_DIR: the seeds' "restore from backup" procedure
# (../shared/seeds/002: stop every member, empty the data directories, `snapshot restore` on each
# member with the new --initial-cluster and a new token, start them all), on three loopback
# members:
#   1. a cluster with keys (odd values too), a lease with an attached key, a compaction;
#      `snapshot save` from one member;
#   2. stop all, `rm -rf DIR/*`, restore each member, start: every key, value, create/mod
#      revision and version back, the same revision; the lease and its key kept; a new cluster
#      ID; the member list is the three new members (new IDs, names, peer URLs); HashKV equal on
#      all three; writes work; the restored members agree;
#   3. a 4th member joins with `member add` + --initial-cluster-state existing and gets the data;
#   4. (cetcd) refusals, exit 1 with the message, the target left as it was: a truncated file,
#      a flipped byte, an existing non-empty data dir, the wrong --name, advertise URLs that are
#      not the member's. (The saved file is etcd's bbolt format; snapshot_migrate.sh restores
#      snapshots across cetcd and etcd 3.4 both ways, and an old cetcd LMDB snapshot.)
# Against etcd 3.4 (SERVER_BIN=/usr/bin/etcd) the same procedure runs with Debian's etcdctl
# (which refuses an existing empty data dir, so the dirs are removed instead of emptied), and the
# refusal checks are skipped (etcdctl leaves the data dir behind on a refusal; ours must not).
# Bounded; stops only its own processes.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

BIN_DIR=${1:-bin}
SUT=$(resolve_server "$BIN_DIR") || exit 2
echo "# server under test: $SUT"
if is_real_etcd "$SUT"; then
  SNAPCTL=$ETCDCTL
  REAL=1
else
  SNAPCTL=$(cd "$BIN_DIR" && pwd)/cetcdctl
  REAL=0
  [ -x "$SNAPCTL" ] || { echo "no $SNAPCTL" >&2; exit 2; }
fi
# snapctl ARGS...: the CLI that saves and restores for this server, bounded
snapctl() { timeout -k 2 60 "$SNAPCTL" "$@"; }

# cluster_id I: the cluster ID (decimal) in member I's member list header
cluster_id() {
  ctl "$1" member list -w json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["header"]["cluster_id"])'
}
# members_of I: "NAME PEER_URLS ID_HEX CLIENT_URLS" lines, sorted ("-" for a name or client URLs
# not published yet)
members_of() {
  ctl "$1" member list -w json 2>/dev/null | "$PY" -c '
import json, sys
for m in json.load(sys.stdin).get("members", []):
    print(m.get("name") or "-", ",".join(m.get("peerURLs") or []), "%x" % int(m["ID"]),
          ",".join(m.get("clientURLs") or []) or "-")' | sort
}
hashkv() { ctl "$1" endpoint hashkv -w json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)[0]["HashKV"]["hash"])'; }

# --- 1. a cluster with data, a snapshot ------------------------------------------------------------
if ! start_cluster "$SUT" 3; then
  t_fail "three-member cluster starts" "$(tail -5 "${C_LOG[1]}")"
  t_done
fi
t_ok "three-member cluster starts"
for i in $(seq 1 40); do ctl $(( (i % 3) + 1 )) put "rk/$i" "value $i" >/dev/null || t_fail "put rk/$i"; done
ctl 1 put "rk/odd" "$(printf 'multi\nline\tvalue ✓')" >/dev/null
ctl 2 put "rk/1" "rewritten" >/dev/null
ctl 3 del "rk/2" >/dev/null
LEASE=$(ctl 1 lease grant 900 2>/dev/null | awk '/^lease /{print $2}')
ctl 1 put "rk/leased" "with lease" --lease="$LEASE" >/dev/null || t_fail "put with lease"
REV=$(ctl 1 get rk/1 -w json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
ctl 1 compaction $((REV - 5)) >/dev/null || t_fail "compaction"
ctl 2 put "rk/last" "after compaction" >/dev/null
deadline=$((SECONDS + 10))
until [ "$(hashkv 1)" = "$(hashkv 2)" ] && [ "$(hashkv 2)" = "$(hashkv 3)" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
c_dump 1 "$T_DIR/before.txt"
OLD_CID=$(cluster_id 1)
OLD_MEMBERS=$(members_of 1)
BACKUP=$T_DIR/backup.db
if snapctl --endpoints="$(c_ep 2)" snapshot save "$BACKUP" >"$T_DIR/save.stderr" 2>&1 &&
  grep -q "Snapshot saved at $BACKUP" "$T_DIR/save.stderr"; then t_ok "snapshot save"
else t_fail "snapshot save" "$(tail -5 "$T_DIR/save.stderr")"; fi
SIZE=$(stat -c %s "$BACKUP" 2>/dev/null || echo 0)
t_eq "backup file: size % 512 == 32 (database + sha256)" 32 $((SIZE % 512))

# --- 2. stop, wipe, restore, start ---------------------------------------------------------------
for i in 1 2 3; do member_stop "$i"; done
for i in 1 2 3; do
  if [ "$REAL" = 1 ]; then rm -rf "${C_DIR[i]}"; else rm -rf "${C_DIR[i]:?}"/*; fi
done
C_TOKEN="restored-$$-$RANDOM"
IC=$(c_initial_cluster 1 2 3)
for i in 1 2 3; do
  if snapctl snapshot restore "$BACKUP" --name "${C_NAME[i]}" --data-dir "${C_DIR[i]}" \
    --initial-cluster "$IC" --initial-cluster-token "$C_TOKEN" \
    --initial-advertise-peer-urls "$(c_peer_url "$i")" >"$T_DIR/restore$i.stderr" 2>&1; then
    t_ok "snapshot restore ${C_NAME[i]}"
  else
    t_fail "snapshot restore ${C_NAME[i]}" "$(tail -5 "$T_DIR/restore$i.stderr")"
  fi
done
for i in 1 2 3; do member_start "$i" new "$IC"; done
ready=1
for i in 1 2 3; do c_wait_ready "$i" 30 || ready=0; done
if [ "$ready" = 1 ]; then t_ok "restored members start"
else t_fail "restored members start" "$(for i in 1 2 3; do c_since_start "$i" | tail -4; done)"; fi
L=$(c_wait_leader "1 2 3" 20) && t_ok "restored cluster elects a leader" || t_fail "restored cluster elects a leader"

c_dump 1 "$T_DIR/after.txt"
t_same "every key, value, create/mod revision, version and the revision are back" "$T_DIR/before.txt" "$T_DIR/after.txt"
NEW_CID=$(cluster_id 1)
[ -n "$NEW_CID" ] && [ "$NEW_CID" != "$OLD_CID" ] && t_ok "new cluster ID ($OLD_CID -> $NEW_CID)" ||
  t_fail "new cluster ID" "old $OLD_CID new $NEW_CID"
t_eq "every member reports the same cluster ID" "$NEW_CID $NEW_CID" "$(cluster_id 2) $(cluster_id 3)"
deadline=$((SECONDS + 15))
WANT_CLIENTS="c1 $(c_client_url 1),c2 $(c_client_url 2),c3 $(c_client_url 3)"
until [ "$(members_of 1 | awk '{print $1, $4}' | paste -sd,)" = "$WANT_CLIENTS" ] || [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
NEW_MEMBERS=$(members_of 1)
t_eq "member list: the three new members (names, peer URLs)" \
  "c1 $(c_peer_url 1),c2 $(c_peer_url 2),c3 $(c_peer_url 3)" "$(echo "$NEW_MEMBERS" | awk '{print $1, $2}' | paste -sd,)"
t_eq "member list: each member published its client URLs" "$WANT_CLIENTS" \
  "$(echo "$NEW_MEMBERS" | awk '{print $1, $4}' | paste -sd,)"
OLD_IDS=$(echo "$OLD_MEMBERS" | awk '{print $3}' | sort | paste -sd,)
NEW_IDS=$(echo "$NEW_MEMBERS" | awk '{print $3}' | sort | paste -sd,)
[ "$OLD_IDS" != "$NEW_IDS" ] && [ "$(echo "$NEW_MEMBERS" | awk '{print $3}' | sort -u | grep -c .)" = 3 ] &&
  t_ok "member list: new member IDs" || t_fail "member list: new member IDs" "old $OLD_IDS" "new $NEW_IDS"
TTL=$(ctl 2 lease timetolive "$LEASE" --keys -w json 2>/dev/null | "$PY" -c '
import json, sys, base64
r = json.load(sys.stdin)
print(r.get("ttl", -1) > 0, r.get("granted-ttl"), [base64.b64decode(k).decode() for k in r.get("keys", [])])')
t_eq "the lease is kept with its key" "True 900 ['rk/leased']" "$TTL"
H1=$(hashkv 1)
t_eq "HashKV equal on the three restored members" "$H1 $H1" "$(hashkv 2) $(hashkv 3)"
ctl 2 put rk/new "written after restore" >/dev/null && t_ok "writes work" || t_fail "writes work"
t_eq "a linearizable read on another member sees it" "written after restore" \
  "$(ctl 3 get rk/new --print-value-only 2>/dev/null)"

# --- 3. a 4th member joins --------------------------------------------------------------------------
member_define 4 c4 127.0.0.1 || exit 2
if retry_while 20 'unhealthy cluster' ctl "$L" member add c4 --peer-urls="$(c_peer_url 4)"; then
  t_ok "member add c4"
else t_fail "member add c4" "$T_OUT"; fi
member_start 4 existing "$(c_initial_cluster 1 2 3 4)"
if c_wait_ready 4 40; then t_ok "c4 joins the restored cluster"
else t_fail "c4 joins the restored cluster" "$(c_since_start 4 | tail -5)"; fi
deadline=$((SECONDS + 20))
until [ "$(ctl 4 get rk/new --print-value-only --consistency=s 2>/dev/null)" = "written after restore" ] ||
  [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
c_dump 4 "$T_DIR/c4.txt" --consistency=s
c_dump 1 "$T_DIR/c1.txt"
t_same "c4 holds the same data" "$T_DIR/c1.txt" "$T_DIR/c4.txt"
t_eq "c4 reports the restored cluster ID" "$NEW_CID" "$(cluster_id 4)"
t_eq "four members" "c1,c2,c3,c4" "$(members_of 1 | awk '{print $1}' | paste -sd,)"

# --- 4. refusals (cetcd) ---------------------------------------------------------------------------
if [ "$REAL" = 1 ]; then
  t_skip "refusals leave the data dir untouched" "etcdctl 3.4 leaves it behind"
  t_done
fi
# refused WHAT PATTERN DIR FILE [restore flags...]: exit 1, stderr holds PATTERN, DIR as before
# (the output is kept as $T_DIR/refused-N.stderr, where t_done looks for sanitizer reports)
N_REFUSED=0
refused() {
  local what=$1 pat=$2 dir=$3 file=$4 before after rc out
  shift 4
  N_REFUSED=$((N_REFUSED + 1))
  out=$T_DIR/refused-$N_REFUSED.stderr
  before=$(ls -A "$dir" 2>&1)
  snapctl snapshot restore "$file" --data-dir "$dir" "$@" >"$out" 2>&1
  rc=$?
  t_eq "$what: exit code 1" 1 "$rc"
  grep -qF -- "$pat" "$out" && t_ok "$what: says \"$pat\"" || t_fail "$what: says \"$pat\"" "$(cat "$out")"
  after=$(ls -A "$dir" 2>&1)
  t_eq "$what: data dir untouched" "$before" "$after"
}
head -c $((SIZE - 4096)) "$BACKUP" >"$T_DIR/truncated.db"
flip_byte "$BACKUP" "$T_DIR/flipped.db" $((SIZE / 2)) 0x01
refused "truncated file" "Error: snapshot file is truncated" "$T_DIR/r1" "$T_DIR/truncated.db"
refused "flipped byte" "Error: snapshot file is corrupt: sha256 checksum mismatch" "$T_DIR/r2" "$T_DIR/flipped.db"
mkdir -p "$T_DIR/r3"
refused "truncated file, existing empty dir" "Error: snapshot file is truncated" "$T_DIR/r3" "$T_DIR/truncated.db"
refused "non-empty data dir" "Error: data-dir \"${C_DIR[1]}\" exists and is not empty" "${C_DIR[1]}" "$BACKUP"
refused "name not in --initial-cluster" \
  "Error: couldn't find local name \"zz\" in the initial cluster configuration" "$T_DIR/r4" "$BACKUP" \
  --name zz --initial-cluster "$IC"
refused "advertise URLs not the member's" \
  "Error: --initial-cluster has c1=$(c_peer_url 1) but missing from --initial-advertise-peer-urls=http://127.0.0.1:1" \
  "$T_DIR/r5" "$BACKUP" --name c1 --initial-cluster "$IC" --initial-advertise-peer-urls http://127.0.0.1:1
refused "missing file" "Error: cannot open snapshot file $T_DIR/nope.db" "$T_DIR/r6" "$T_DIR/nope.db"
if (cd "$T_DIR" && snapctl snapshot restore truncated.db >/dev/null 2>&1) || [ -e "$T_DIR/default.etcd" ]; then
  t_fail "defaults: refused, default.etcd not created"
else t_ok "defaults: refused, default.etcd not created"; fi

t_done
