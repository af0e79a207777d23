#!/usr/bin/env bash
# tests/integration/snapshot_migrate.sh BIN_DIR: cetcd's snapshots are etcd 3.4's format, both
# ways, with Debian's etcd 3.4 and etcdctl (skipped without /usr/bin/etcd):
#   1. cetcd -> etcd: a cetcd member with history (puts, rewrites, a delete, a value on overflow
#      pages, a lease with an attached key, a compaction); `etcdctl snapshot save` from it; Debian's
#      `etcdctl snapshot status` and `cetcdctl snapshot status` print the same hash, revision,
#      total keys and size; `etcdctl snapshot restore`, then /usr/bin/etcd started on the restored
#      directory serves every key with the same value, create/mod revisions and versions, the same
#      revision, the lease, and refuses a read below the compaction point;
#   2. etcd -> cetcd: the same history written into a real etcd 3.4, its snapshot restored with
#      `cetcdctl snapshot restore`, cetcd started on it: the same keys, revisions, versions,
#      lease and compaction point as etcd served; a user etcd gave a password (bcrypt) and a
#      read role signs in to cetcd with that password once auth is enabled;
#   3. an old cetcd snapshot (an LMDB data file and its SHA-256, what cetcd saved before the
#      bbolt format) still restores with `cetcdctl snapshot restore` and serves its keys.
# Only for cetcd (BIN_DIR/cetcd); bounded; stops only its own processes.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

BIN_DIR=${1:-bin}
SUT=$(resolve_server "$BIN_DIR") || exit 2
echo "# server under test: $SUT"
if is_real_etcd "$SUT"; then
  t_skip "migration between cetcd and etcd" "the server under test is etcd"
  t_done
fi
if [ ! -x "$ETCD" ]; then
  t_skip "migration between cetcd and etcd" "no $ETCD"
  t_done
fi
CTL=$(cd "$BIN_DIR" && pwd)/cetcdctl
E() { timeout -k 2 30 "$ETCDCTL" --endpoints="$1" --command-timeout=20s "${@:2}"; }

# history EP: the same writes against any server; prints nothing
history() {
  local ep=$1 i lease rev
  for i in $(seq 1 60); do E "$ep" put "mk/$(printf %03d "$i")" "value $i" >/dev/null; done
  E "$ep" put mk/005 rewritten >/dev/null
  E "$ep" put mk/005 "rewritten twice" >/dev/null
  E "$ep" del mk/007 >/dev/null
  E "$ep" put mk/big "$(head -c 20000 /dev/zero | tr '\0' b)" >/dev/null
  lease=$(E "$ep" lease grant 900 | awk '/^lease /{print $2}')
  E "$ep" put mk/leased "with lease" --lease="$lease" >/dev/null
  rev=$(E "$ep" get mk/001 -w json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
  E "$ep" compaction $((rev - 10)) >/dev/null || echo "compaction failed" >&2
  E "$ep" put mk/last "after the compaction" >/dev/null
}
# dump EP OUT: every key with value, create/mod revision, version, lease presence; then the
# revision and the lease count
dump() {
  { E "$1" get "" --from-key -w json | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
for kv in r.get("kvs", []):
    print(kv["key"], kv.get("value", ""), kv["create_revision"], kv["mod_revision"], kv["version"],
          "lease" if kv.get("lease") else "-")
print("revision", r["header"]["revision"])'
    echo "leases $(E "$1" lease list | grep -c '^[0-9a-f]\{16\}$')"; } >"$2" 2>&1
}
# status_of TOOL FILE: "hash revision totalKey totalSize" of `TOOL snapshot status FILE -w json`
status_of() {
  timeout 30 "$1" snapshot status "$2" -w json 2>/dev/null | "$PY" -c '
import json, sys
s = json.loads(sys.stdin.read().strip().splitlines()[0])
print(s["hash"], s["revision"], s["totalKey"], s["totalSize"])'
}
# compacted EP REV: a read at REV is refused as compacted
compacted() { E "$1" get mk/001 --rev="$2" >"$T_DIR/compacted.out" 2>&1; grep -q "required revision has been compacted" "$T_DIR/compacted.out" || { cat "$T_DIR/compacted.out"; false; }; }

# restored NAME TOOL SNAP DIR MEMBER PEER_PORT: `TOOL snapshot restore SNAP` into DIR as a one-member
# cluster MEMBER=http://127.0.0.1:PEER_PORT, checked as NAME
restored() {
  if timeout 60 "$2" snapshot restore "$3" --data-dir "$4" --name "$5" \
    --initial-cluster "$5=http://127.0.0.1:$6" --initial-advertise-peer-urls "http://127.0.0.1:$6" \
    >"$4.out" 2>&1; then t_ok "$1"
  else t_fail "$1" "$(tail -3 "$4.out")"; fi
}

# --- 1. cetcd -> etcd ------------------------------------------------------------------------------
alloc_ports CP PP EC EP2 || exit 2
start_member "$SUT" mc "$T_DIR/cetcd" "$CP" "$PP"
CPID=$T_LAST_PID
wait_ready "http://127.0.0.1:$CP" 20 && t_ok "cetcd starts" || { t_fail "cetcd starts" "$(tail -5 "$T_LAST_LOG")"; t_done; }
history "127.0.0.1:$CP"
dump "127.0.0.1:$CP" "$T_DIR/cetcd.dump"
SNAP=$T_DIR/cetcd.db
E "127.0.0.1:$CP" snapshot save "$SNAP" >"$T_DIR/save.out" 2>&1 && t_ok "etcdctl snapshot save from cetcd" ||
  t_fail "etcdctl snapshot save from cetcd" "$(tail -3 "$T_DIR/save.out")"
out=$(snap_file_problem "$SNAP" bbolt 2>&1) && t_ok "the snapshot is a bbolt file + sha256" ||
  t_fail "the snapshot is a bbolt file + sha256" "$out"
ST_ETCD=$(status_of "$ETCDCTL" "$SNAP")
ST_OURS=$(status_of "$CTL" "$SNAP")
[ -n "$ST_ETCD" ] && t_ok "Debian etcdctl snapshot status reads it ($ST_ETCD)" || t_fail "Debian etcdctl snapshot status reads it"
t_eq "cetcdctl snapshot status = etcdctl's (hash revision keys size)" "$ST_ETCD" "$ST_OURS"
t_eq "snapshot revision = the server's" "$(tail -2 "$T_DIR/cetcd.dump" | head -1 | cut -d' ' -f2)" "$(echo "$ST_ETCD" | cut -d' ' -f2)"
stop_member "$CPID"

restored "etcdctl snapshot restore of a cetcd snapshot" "$ETCDCTL" "$SNAP" "$T_DIR/etcd-restored" me "$EP2"
start_member "$ETCD" me "$T_DIR/etcd-restored" "$EC" "$EP2"
EPID=$T_LAST_PID
if wait_ready "http://127.0.0.1:$EC" 30; then
  t_ok "etcd 3.4 starts on the restored cetcd snapshot"
  dump "127.0.0.1:$EC" "$T_DIR/etcd-restored.dump"
  out=$(diff "$T_DIR/cetcd.dump" "$T_DIR/etcd-restored.dump") &&
    t_ok "etcd serves every key with cetcd's values, revisions, versions, leases" ||
    t_fail "etcd serves every key with cetcd's values, revisions, versions, leases" "$out"
  compacted "127.0.0.1:$EC" 3 && t_ok "etcd keeps cetcd's compaction point" || t_fail "etcd keeps cetcd's compaction point"
else
  t_fail "etcd 3.4 starts on the restored cetcd snapshot" "$(tail -5 "$T_LAST_LOG")"
fi
stop_member "$EPID"

# --- 2. etcd -> cetcd ------------------------------------------------------------------------------
alloc_ports EC2 EP3 CP2 PP2 || exit 2
start_member "$ETCD" re "$T_DIR/etcd" "$EC2" "$EP3"
EPID=$T_LAST_PID
wait_ready "http://127.0.0.1:$EC2" 30 && t_ok "etcd 3.4 starts" || { t_fail "etcd 3.4 starts" "$(tail -5 "$T_LAST_LOG")"; t_done; }
history "127.0.0.1:$EC2"
# a user whose password etcd hashed with bcrypt, with a role reading mk/: passwords migrate
ea() { E "127.0.0.1:$EC2" "$@" >/dev/null; }
if ea role add rd && ea role grant-permission rd read mk/ --prefix && ea user add mig:migpw &&
  ea user grant-role mig rd; then t_ok "etcd 3.4: user mig (password) with role rd (read mk/)"
else t_fail "etcd 3.4: user mig (password) with role rd (read mk/)"; fi
dump "127.0.0.1:$EC2" "$T_DIR/etcd.dump"
ESNAP=$T_DIR/etcd.db
E "127.0.0.1:$EC2" snapshot save "$ESNAP" >/dev/null 2>&1 && t_ok "snapshot saved from etcd 3.4" || t_fail "snapshot saved from etcd 3.4"
stop_member "$EPID"
restored "cetcdctl snapshot restore of an etcd 3.4 snapshot" "$CTL" "$ESNAP" "$T_DIR/cetcd-restored" mr "$PP2"
start_member "$SUT" mr "$T_DIR/cetcd-restored" "$CP2" "$PP2"
CPID=$T_LAST_PID
if wait_ready "http://127.0.0.1:$CP2" 20; then
  t_ok "cetcd starts on the restored etcd snapshot"
  dump "127.0.0.1:$CP2" "$T_DIR/cetcd-restored.dump"
  out=$(diff "$T_DIR/etcd.dump" "$T_DIR/cetcd-restored.dump") &&
    t_ok "cetcd serves every key with etcd's values, revisions, versions, leases" ||
    t_fail "cetcd serves every key with etcd's values, revisions, versions, leases" "$out"
  compacted "127.0.0.1:$CP2" 3 && t_ok "cetcd keeps etcd's compaction point" || t_fail "cetcd keeps etcd's compaction point"
  E "127.0.0.1:$CP2" put mk/new after >/dev/null && t_ok "writes work after the migration" || t_fail "writes work after the migration"
  E "127.0.0.1:$CP2" user add root:rootpw >/dev/null 2>&1 && E "127.0.0.1:$CP2" auth enable >/dev/null 2>&1
  t_eq "etcd's user signs in to cetcd with its etcd password (bcrypt) and reads mk/" "value 1" \
    "$(E "127.0.0.1:$CP2" --user mig:migpw get mk/001 --print-value-only 2>&1)"
  t_eq "... and a wrong password is refused" \
    "Error: etcdserver: authentication failed, invalid user ID or password" \
    "$(E "127.0.0.1:$CP2" --user mig:nope get mk/001 2>&1 | grep -v '^{"level"')"
  E "127.0.0.1:$CP2" --user root:rootpw auth disable >/dev/null 2>&1 # section 3 reads this store
else
  t_fail "cetcd starts on the restored etcd snapshot" "$(tail -5 "$T_LAST_LOG")"
fi
stop_member "$CPID"

# --- 3. an old cetcd snapshot (LMDB file + sha256) -------------------------------------------------
OLD=$T_DIR/old-lmdb.db
"$PY" - "$T_DIR/cetcd-restored/member/db/data.mdb" "$OLD" <<'PY'
import hashlib, sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d + hashlib.sha256(d).digest())
PY
out=$(snap_file_problem "$OLD" lmdb 2>&1) && t_ok "old-format snapshot made" || t_fail "old-format snapshot made" "$out"
alloc_ports CP3 PP3 || exit 2
restored "cetcdctl snapshot restore of an old LMDB snapshot" "$CTL" "$OLD" "$T_DIR/old-restored" mo "$PP3"
start_member "$SUT" mo "$T_DIR/old-restored" "$CP3" "$PP3"
CPID=$T_LAST_PID
if wait_ready "http://127.0.0.1:$CP3" 20; then
  t_eq "the old snapshot's keys are served" "after" "$(E "127.0.0.1:$CP3" get mk/new --print-value-only)"
else
  t_fail "cetcd starts on the old snapshot" "$(tail -5 "$T_LAST_LOG")"
fi
stop_member "$CPID"
t_done
