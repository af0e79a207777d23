#!/usr/bin/env bash
# tests/integration/restart.sh BIN_DIR: values, revisions and the compaction point survive a clean
# restart (SIGTERM) and a crash restart (SIGKILL). Before and after each restart the same reads
# must give the same answers (after mask_ids: IDs and raft terms may change on restart):
# the whole keyspace with revisions, a read at an old revision, a read below the compaction
# revision (must still fail as compacted), and HashKV (must be equal). A put after each restart
# must get the next revision. Works against etcd and cetcd.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"
alloc_ports CP PP || exit 2
DATA=$T_DIR/data
EP=http://127.0.0.1:$CP
E() { timeout -k 2 20 "$ETCDCTL" --endpoints="127.0.0.1:$CP" --command-timeout=5s "$@"; }

start_member "$SUT" rs "$DATA" "$CP" "$PP"
if wait_ready "$EP" 20; then t_ok "server starts"; else t_fail "server starts" "$(tail -5 "$T_LAST_LOG")"; t_done; fi

# history: 30 keys, overwrites, deletes, a txn; compaction in the middle
fail=0
for i in $(seq 1 30); do E put "r/$(printf %02d "$i")" "v$i" >/dev/null || fail=1; done   # revs 2..31
for i in 1 2 3; do E put r/01 "again$i" >/dev/null || fail=1; done                       # 32..34
E del r/05 >/dev/null || fail=1                                                           # 35
E compaction 33 >/dev/null || fail=1
printf 'mod("r/02") = "3"\n\nput r/02 txn\nput r/31 new\n\n\n' | E txn >/dev/null || fail=1  # 36
E put r/big "$(head -c 100000 /dev/zero | tr '\0' b)" >/dev/null || fail=1                # 37
if [ $fail -eq 0 ]; then t_ok "history written"; else t_fail "history written"; fi

# snapshot NAME: the observable state, masked, into $T_DIR/NAME
snapshot() {
  local f=$T_DIR/$1
  {
    echo "## all";          E get "" --from-key -w json 2>&1 | mask_ids
    echo "## r/01 @33";     E get r/01 --rev 33 -w json 2>&1 | mask_ids
    echo "## r/01 @32";     E get r/01 --rev 32 >"$f.tmp" 2>&1; echo "exit=$?"
    grep -v '^{"level"' "$f.tmp"
    echo "## r/05 @34";     E get r/05 --rev 34 --print-value-only 2>&1
    echo "## hashkv";       E endpoint hashkv 2>&1 | sed -E "s/^127.0.0.1:$CP, //"
    echo "## compacted";    E compaction 20 2>&1 | grep -v '^{"level"'
  } >"$f"
}
# check_next WANT NAME: a put now gets revision WANT
check_next() {
  local rev
  rev=$(E put r/after "$1" -w json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])')
  t_eq "$2" "$1" "$rev"
}

snapshot before
grep -q 'required revision has been compacted' "$T_DIR/before" &&
  t_ok "reads below the compaction revision fail before restart" ||
  t_fail "reads below the compaction revision fail before restart" "$(cat "$T_DIR/before")"

stop_member "$T_LAST_PID" TERM 15
start_member "$SUT" rs "$DATA" "$CP" "$PP"
if wait_ready "$EP" 30; then t_ok "clean restart"; else t_fail "clean restart" "$(tail -20 "$T_LAST_LOG")"; fi
snapshot after_term
t_same "same state after clean restart (keys, revisions, compaction, hashkv)" "$T_DIR/before" "$T_DIR/after_term"
check_next 38 "next put after clean restart gets revision 38"

snapshot before_kill
kill -KILL "$T_LAST_PID"
wait "$T_LAST_PID" 2>/dev/null
start_member "$SUT" rs "$DATA" "$CP" "$PP"
if wait_ready "$EP" 30; then t_ok "restart after kill -9"; else t_fail "restart after kill -9" "$(tail -20 "$T_LAST_LOG")"; fi
snapshot after_kill
t_same "same state after kill -9 restart (keys, revisions, compaction, hashkv)" "$T_DIR/before_kill" "$T_DIR/after_kill"
check_next 39 "next put after kill -9 restart gets revision 39"
t_done
