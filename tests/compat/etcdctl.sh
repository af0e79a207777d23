#!/usr/bin/env bash
# tests/compat/etcdctl.sh BIN_DIR: Debian's etcdctl 3.4 against the server under test (BIN_DIR/cetcd,
# or BIN_DIR/etcd, or $SERVER_BIN) and against a real etcd 3.4 ($ETCD) started here, side by side.
# Every command runs against both servers in lockstep (so both stores see the same history and
# reach the same revisions); each output (stdout+stderr+exit code) is normalised by norm.py and
# mask_ids and must then be identical. One TAP line per command.
#
# Masks (and why they legitimately differ), nothing else is masked:
#   - member, cluster and leader IDs (hex in tables, decimal in JSON): random per cluster;
#   - raft_term / raftTerm / RAFT TERM: the term a lone member wins its first election in is an
#     implementation detail (etcd: 2);
#   - client and peer port numbers: each server has its own;
#   - endpoint status: VERSION / version (server version string, etcd "3.4.23"), DB SIZE /
#     dbSize / dbSizeInUse (storage engine), RAFT INDEX / RAFT APPLIED INDEX / raftIndex /
#     raftAppliedIndex (etcd's raft log also holds conf-change and internal entries); each masked
#     only when it has the expected form (number, size, version);
#   - endpoint health: the TOOK duration;
#   - -w fields: the "ClusterID", "MemberID", "RaftTerm" lines;
#   - etcdctl's own client-side retry warnings keep only their "error" field (timestamps, UUIDs).
# Everything else must match: keys, values, revisions, versions, counts, "more", error texts,
# gRPC codes, exit codes, table shapes, leader/learner flags, member names and URLs.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
NORMPY="$HERE/norm.py"
echo "# server under test: $SUT; reference: $ETCD; etcdctl: $($ETCDCTL version | head -1)"

alloc_ports S_CP S_PP R_CP R_PP || exit 2
start_member "$SUT" m1 "$T_DIR/sut" "$S_CP" "$S_PP"
start_member "$ETCD" m1 "$T_DIR/ref" "$R_CP" "$R_PP"
if ! wait_ready "http://127.0.0.1:$S_CP" 20 || ! wait_ready "http://127.0.0.1:$R_CP" 20; then
  t_fail "both servers start" "$(tail -5 "$T_DIR"/*.log)"
  t_done
fi
t_ok "both servers start"

COMMON_KEYS=(--mask-key cluster_id --mask-key member_id --mask-key ID --mask-key leader
             --mask-key raft_term --mask-key raftTerm --mask-col "RAFT TERM")
NORM=()
N=0
mkdir -p "$T_DIR/out"

# run_on CP PP STDIN ARGS...: one etcdctl command against one server, normalised.
run_on() {
  local cp=$1 pp=$2 in=$3
  shift 3
  { timeout -k 2 20 "$ETCDCTL" --endpoints="127.0.0.1:$cp" --command-timeout=5s "$@" <"$in" 2>&1
    echo "exit=$?"; } |
    "$PY" "$NORMPY" --port "$cp=CLIENT_PORT" --port "$pp=PEER_PORT" "${COMMON_KEYS[@]}" \
      ${NORM[@]+"${NORM[@]}"} | mask_ids
}

# cx NAME [--in FILE] ARGS...: runs ARGS on both servers, compares.
cx() {
  local name=$1 in=/dev/null
  shift
  if [ "${1:-}" = --in ]; then in=$2; shift 2; fi
  N=$((N + 1))
  run_on "$S_CP" "$S_PP" "$in" "$@" >"$T_DIR/out/$N.sut"
  run_on "$R_CP" "$R_PP" "$in" "$@" >"$T_DIR/out/$N.ref"
  if cmp -s "$T_DIR/out/$N.sut" "$T_DIR/out/$N.ref"; then
    t_ok "$name"
  else
    t_fail "$name" "etcdctl $*" "--- etcd (reference)  +++ server under test" \
      "$(diff -u "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut" | tail -n +3 | head -40)"
  fi
}

# gw NAME PATH BODY_FILE: a JSON-gateway POST on both servers; HTTP status + body must match.
gw() {
  local name=$1 path=$2 body=$3 cp
  N=$((N + 1))
  for side in sut ref; do
    if [ $side = sut ]; then cp=$S_CP; else cp=$R_CP; fi
    curl -s -m 10 -o "$T_DIR/out/$N.body" -w 'http=%{http_code}\n' \
      "http://127.0.0.1:$cp$path" --data-binary "@$body" >"$T_DIR/out/$N.$side"
    "$PY" "$NORMPY" "${COMMON_KEYS[@]}" <"$T_DIR/out/$N.body" | mask_ids >>"$T_DIR/out/$N.$side"
  done
  t_same "$name" "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut"
}

# --- writes: p/a..p/d with distinct create, mod, version and value orders ---------------------
cx "put p/a"             put p/a m
cx "put p/b"             put p/b x
cx "put p/c"             put p/c y
cx "put p/d"             put p/d w
cx "put p/b again"       put p/b y
cx "put p/c again"       put p/c a
cx "put p/b 3rd"         put p/b yy
cx "put p/d again"       put p/d z
cx "put p/b 4th"         put p/b z
cx "put p/d 3rd --prev-kv" put p/d q --prev-kv
cx "put x/1..3"          put x/1 one
cx "put x/2"             put x/2 two
cx "put x/3 -w json"     put x/3 three -w json
cx "put value with spaces and unicode" put "sp ace" "v é ☃"
cx "put --ignore-value missing key" put p/none --ignore-value

# --- reads ---------------------------------------------------------------------------------------
cx "get p/a"                    get p/a
cx "get missing"                get nope
cx "get -w json"                get p/b -w json
cx "get missing -w json"        get nope -w json
cx "get --prefix"               get p/ --prefix
cx "get --prefix -w json"       get p/ --prefix -w json
cx "get --from-key"             get p/c --from-key
cx "get --from-key empty"       get "" --from-key --keys-only
cx "get --prefix --limit 2"     get p/ --prefix --limit 2
cx "get --prefix --limit 2 json" get p/ --prefix --limit 2 -w json
cx "get --rev 6"                get p/b --rev 6
cx "get --rev 2 prefix"         get p/ --prefix --rev 2 -w json
cx "get range [p/b,p/d)"        get p/b p/d
cx "get range json"             get p/b x/2 -w json
for target in KEY CREATE MODIFY VERSION VALUE; do
  for order in ASCEND DESCEND; do
    cx "get --sort-by=$target --order=$order" get p/ --prefix --sort-by="$target" --order="$order"
  done
  cx "get --sort-by=$target (default order)" get p/ --prefix --sort-by="$target" --keys-only
done
cx "get --order=DESCEND alone"  get p/ --prefix --order=DESCEND
cx "get --keys-only"            get p/ --prefix --keys-only
cx "get --keys-only json"       get p/ --prefix --keys-only -w json
cx "get --limit 1 json (count)" get p/ --prefix --limit 1 --keys-only -w json
cx "get --print-value-only"     get p/ --prefix --print-value-only
cx "get --limit --sort DESCEND" get p/ --prefix --limit 1 --sort-by=MODIFY --order=DESCEND -w json
cx "get -w fields"              get p/ --prefix --limit 2 -w fields
cx "get --consistency=s"        get p/a --consistency=s -w json

# --- deletes -------------------------------------------------------------------------------------
cx "del missing"                del nope
cx "del single"                 del "sp ace"
cx "del --prefix --prev-kv"     del x/ --prefix --prev-kv
cx "del --prefix json"          del x/ --prefix -w json
cx "del --from-key none"        del zzz --from-key
cx "put -w fields --prev-kv"    put x/4 four --prev-kv -w fields
cx "del -w fields --prev-kv"    del x/4 --prev-kv -w fields

# --- txn (non-interactive stdin form and -i) ------------------------------------------------------
cat >"$T_DIR/txn_ok" <<'EOF'
value("p/a") = "m"
version("p/b") = "4"
mod("p/c") = "7"
create("p/d") = "5"
version("p/b") > "3"
create("p/a") < "3"
mod("p/c") != "1"

put t/ok yes
get p/a
del p/none

put t/fail no

EOF
cat >"$T_DIR/txn_fail" <<'EOF'
value("p/a") = "nope"
version("p/b") = "4"

put t/ok2 yes

put t/fail yes
get p/ --prefix --limit=1
del t/ok

EOF
cat >"$T_DIR/txn_empty" <<'EOF'


put t/e v

EOF
cx "txn success branch"         --in "$T_DIR/txn_ok" txn
cx "txn failure branch"         --in "$T_DIR/txn_fail" txn
cx "txn -i success"             --in "$T_DIR/txn_ok" txn -i
cx "txn -i failure json"        --in "$T_DIR/txn_fail" txn -i -w json
cx "txn success json"           --in "$T_DIR/txn_ok" txn -w json
cx "txn no compares"            --in "$T_DIR/txn_empty" txn
cx "get t/ after txns"          get t/ --prefix -w json

# --- compaction ----------------------------------------------------------------------------------
cx "get --rev 3 before compact" get p/b --rev 3
cx "compaction 6"               compaction 6
cx "get --rev 3 after compact"  get p/b --rev 3
cx "get --rev 5 after compact"  get p/ --prefix --rev 5
cx "get --rev 6 at compact"     get p/ --prefix --rev 6 -w json
cx "compaction 6 again"         compaction 6
cx "compaction 4 (older)"       compaction 4
cx "compaction future"          compaction 100000
cx "compaction --physical"      compaction 8 --physical
cx "get --rev 7 after physical" get p/b --rev 7

# --- errors --------------------------------------------------------------------------------------
cx "put empty key"              put "" x
cx "get --rev future"           get p/a --rev 100000
cx "get empty key"              get ""
cx "del empty key"              del ""
head -c 1600000 /dev/zero | tr '\0' 'v' >"$T_DIR/big"
cx "put over --max-request-bytes" --in "$T_DIR/big" put big
cx "get big (not stored)"       get big -w json
"$PY" - "$T_DIR/txn129.json" <<'EOF'
import base64, json, sys
ops = [{"request_put": {"key": base64.b64encode(b"t129/%d" % i).decode(),
                        "value": base64.b64encode(b"v").decode()}} for i in range(129)]
open(sys.argv[1], "w").write(json.dumps({"success": ops}))
EOF
gw "gateway txn with 129 ops"   /v3/kv/txn "$T_DIR/txn129.json"
printf '{"key":""}' >"$T_DIR/emptykey.json"
gw "gateway put empty key"      /v3/kv/put "$T_DIR/emptykey.json"

# --- endpoint and member commands ----------------------------------------------------------------
NORM=(--mask-col VERSION --mask-col "DB SIZE" --mask-col "RAFT INDEX" --mask-col "RAFT APPLIED INDEX"
      --mask-key version --mask-key dbSize --mask-key dbSizeInUse --mask-key raftIndex
      --mask-key raftAppliedIndex --mask-col TOOK)
cx "endpoint status -w table"   endpoint status -w table
cx "endpoint status -w json"    endpoint status -w json
cx "endpoint health -w table"   endpoint health -w table
cx "endpoint health"            endpoint health
cx "member list"                member list
cx "member list -w table"       member list -w table
cx "member list -w json"        member list -w json
NORM=()
cx "final state"                get "" --from-key -w json

t_done
