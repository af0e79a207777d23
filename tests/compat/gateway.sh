#!/usr/bin/env bash
# tests/compat/gateway.sh BIN_DIR: the HTTP/JSON gateway (curl) of the server under test against a
# real etcd 3.4 started here. The same requests run on both in lockstep; for each one the HTTP
# status must be equal and the JSON SHAPE of the body must be equal (jshape.py: the set of field
# paths present, each with its JSON type, values masked; int64 as strings therefore also checked).
# Masked/relaxed, and why: values (IDs, terms, sizes, versions differ legitimately; exact values
# are etcdctl.sh's business); GET /version may carry extra fields in cetcd (its own version), so
# there the server under test need only be a superset. /metrics: the listed metric names must be
# present on both. Bad input (malformed JSON, bad base64, empty key) -> 400 with etcd's error shape
# {"error","message","code"}.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
SHAPE="$HERE/jshape.py"
echo "# server under test: $SUT; reference: $ETCD"

alloc_ports S_CP S_PP R_CP R_PP || exit 2
start_member "$SUT" g1 "$T_DIR/sut" "$S_CP" "$S_PP"
start_member "$ETCD" g1 "$T_DIR/ref" "$R_CP" "$R_PP"
if ! wait_ready "http://127.0.0.1:$S_CP" 20 || ! wait_ready "http://127.0.0.1:$R_CP" 20; then
  t_fail "both servers start" "$(tail -5 "$T_DIR"/*.log)"
  t_done
fi
t_ok "both servers start"

b64() { printf %s "$1" | base64 -w0; }
N=0
mkdir -p "$T_DIR/out"

# fetch CP METHOD PATH BODY OUT: writes the body to OUT, prints the HTTP status.
fetch() {
  local cp=$1 method=$2 path=$3 body=$4 out=$5
  if [ "$method" = GET ]; then
    curl -s -m 10 -o "$out" -w '%{http_code}' "http://127.0.0.1:$cp$path"
  else
    curl -s -m 10 -o "$out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
      --data-binary "$body" "http://127.0.0.1:$cp$path"
  fi
}

# gx NAME METHOD PATH BODY [EXPECTED_STATUS] [--superset]
gx() {
  local name=$1 method=$2 path=$3 body=$4 want=${5:-200} mode=${6:-} s_code r_code diff
  N=$((N + 1))
  s_code=$(fetch "$S_CP" "$method" "$path" "$body" "$T_DIR/out/$N.sut")
  r_code=$(fetch "$R_CP" "$method" "$path" "$body" "$T_DIR/out/$N.ref")
  if [ "$r_code" != "$want" ]; then
    t_fail "$name" "reference etcd answered $r_code, test expects $want: $(head -c 300 "$T_DIR/out/$N.ref")"
    return
  fi
  if [ "$s_code" != "$r_code" ]; then
    t_fail "$name" "HTTP status: etcd $r_code, server under test $s_code" \
      "body: $(head -c 300 "$T_DIR/out/$N.sut")"
    return
  fi
  if diff=$("$PY" "$SHAPE" "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut" $mode 2>&1); then
    t_ok "$name"
  else
    t_fail "$name" "$method $path $body" "shape differs (- only in etcd, + only in server under test):" \
      "$diff" "etcd: $(head -c 300 "$T_DIR/out/$N.ref")" "sut:  $(head -c 300 "$T_DIR/out/$N.sut")"
  fi
}

K_A=$(b64 g/a) K_B=$(b64 g/b) K_C=$(b64 g/c) K_END=$(b64 g0) V1=$(b64 one) V2=$(b64 two)

# --- kv ------------------------------------------------------------------------------------------
gx "put"                          POST /v3/kv/put "{\"key\":\"$K_A\",\"value\":\"$V1\"}"
gx "put prev_kv (none before)"    POST /v3/kv/put "{\"key\":\"$K_B\",\"value\":\"$V1\",\"prev_kv\":true}"
gx "put prev_kv (overwrite)"      POST /v3/kv/put "{\"key\":\"$K_B\",\"value\":\"$V2\",\"prev_kv\":true}"
gx "put camelCase prevKv"         POST /v3/kv/put "{\"key\":\"$K_C\",\"value\":\"$V2\",\"prevKv\":true}"
gx "put empty value"              POST /v3/kv/put "{\"key\":\"$(b64 g/e)\"}"
gx "put via /v3beta"              POST /v3beta/kv/put "{\"key\":\"$(b64 g/f)\",\"value\":\"$V1\"}"
gx "range one key"                POST /v3/kv/range "{\"key\":\"$K_A\"}"
gx "range missing key"            POST /v3/kv/range "{\"key\":\"$(b64 nope)\"}"
gx "range prefix (kvs, count)"    POST /v3/kv/range "{\"key\":\"$K_A\",\"range_end\":\"$K_END\"}"
gx "range limit (more)"           POST /v3/kv/range "{\"key\":\"$K_A\",\"range_end\":\"$K_END\",\"limit\":1}"
gx "range limit as string"        POST /v3/kv/range "{\"key\":\"$K_A\",\"range_end\":\"$K_END\",\"limit\":\"2\"}"
gx "range count_only"             POST /v3/kv/range "{\"key\":\"$K_A\",\"range_end\":\"$K_END\",\"count_only\":true}"
gx "range keys_only"              POST /v3/kv/range "{\"key\":\"$K_A\",\"range_end\":\"$K_END\",\"keys_only\":true}"
gx "range sort DESCEND by MOD"    POST /v3/kv/range "{\"key\":\"$K_A\",\"range_end\":\"$K_END\",\"sort_order\":\"DESCEND\",\"sort_target\":\"MOD\"}"
gx "range serializable"           POST /v3/kv/range "{\"key\":\"$K_A\",\"serializable\":true}"
gx "range at revision"            POST /v3/kv/range "{\"key\":\"$K_B\",\"revision\":\"3\"}"
gx "range camelCase rangeEnd"     POST /v3/kv/range "{\"key\":\"$K_A\",\"rangeEnd\":\"$K_END\",\"countOnly\":true}"
gx "range future revision"        POST /v3/kv/range "{\"key\":\"$K_A\",\"revision\":\"100000\"}" 400
gx "range all keys (\\0 end)"     POST /v3/kv/range "{\"key\":\"AA==\",\"range_end\":\"AA==\"}"
gx "deleterange missing"          POST /v3/kv/deleterange "{\"key\":\"$(b64 nope)\"}"
gx "deleterange prev_kv"          POST /v3/kv/deleterange "{\"key\":\"$K_C\",\"prev_kv\":true}"
gx "deleterange range"            POST /v3/kv/deleterange "{\"key\":\"$(b64 g/e)\",\"range_end\":\"$(b64 g/g)\"}"

# --- txn -----------------------------------------------------------------------------------------
TXN_OK="{\"compare\":[{\"key\":\"$K_A\",\"target\":\"VALUE\",\"result\":\"EQUAL\",\"value\":\"$V1\"},
 {\"key\":\"$K_B\",\"target\":\"VERSION\",\"result\":\"GREATER\",\"version\":\"1\"},
 {\"key\":\"$K_A\",\"target\":\"CREATE\",\"result\":\"LESS\",\"create_revision\":\"100\"},
 {\"key\":\"$K_B\",\"target\":\"MOD\",\"result\":\"NOT_EQUAL\",\"mod_revision\":\"1\"}],
 \"success\":[{\"request_put\":{\"key\":\"$(b64 g/t)\",\"value\":\"$V1\",\"prev_kv\":true}},
  {\"request_range\":{\"key\":\"$K_A\",\"range_end\":\"$K_END\"}},
  {\"request_delete_range\":{\"key\":\"$(b64 g/none)\"}}],
 \"failure\":[{\"request_put\":{\"key\":\"$(b64 g/f)\",\"value\":\"$V1\"}}]}"
TXN_FAIL="{\"compare\":[{\"key\":\"$(b64 g/missing)\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"5\"}],
 \"success\":[{\"request_put\":{\"key\":\"$(b64 g/t)\",\"value\":\"$V2\"}}],
 \"failure\":[{\"request_range\":{\"key\":\"$K_A\"}},
  {\"request_txn\":{\"success\":[{\"request_range\":{\"key\":\"$K_B\"}}]}}]}"
TXN_CAMEL="{\"compare\":[{\"key\":\"$(b64 g/new)\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"createRevision\":\"0\"}],
 \"success\":[{\"requestPut\":{\"key\":\"$(b64 g/new)\",\"value\":\"$V1\"}}]}"
gx "txn success (value/version/create/mod)" POST /v3/kv/txn "$TXN_OK"
gx "txn failure branch + nested txn"        POST /v3/kv/txn "$TXN_FAIL"
gx "txn camelCase, create == 0"             POST /v3/kv/txn "$TXN_CAMEL"
gx "txn empty"                              POST /v3/kv/txn "{}"
gx "txn duplicate key"                      POST /v3/kv/txn "{\"success\":[{\"request_put\":{\"key\":\"$K_A\"}},{\"request_put\":{\"key\":\"$K_A\"}}]}" 400

# --- compaction ----------------------------------------------------------------------------------
gx "compaction"                   POST /v3/kv/compaction "{\"revision\":\"3\"}"
gx "compaction physical"          POST /v3/kv/compaction "{\"revision\":\"4\",\"physical\":true}"
gx "compaction already compacted" POST /v3/kv/compaction "{\"revision\":\"2\"}" 400
gx "range compacted revision"     POST /v3/kv/range "{\"key\":\"$K_A\",\"revision\":\"2\"}" 400

# --- maintenance, cluster, plain endpoints ------------------------------------------------------
gx "maintenance/status"           POST /v3/maintenance/status "{}"
gx "cluster/member/list"          POST /v3/cluster/member/list "{}"
gx "GET /version"                 GET /version "" 200 --superset
gx "GET /health"                  GET /health ""

N=$((N + 1))
for side in sut ref; do
  if [ $side = sut ]; then cp=$S_CP; else cp=$R_CP; fi
  curl -s -m 10 "http://127.0.0.1:$cp/metrics" >"$T_DIR/out/$N.$side"
  for m in etcd_server_has_leader etcd_server_is_leader etcd_mvcc_db_total_size_in_bytes \
           etcd_disk_wal_fsync_duration_seconds_bucket etcd_server_proposals_committed_total; do
    if grep -qE "^$m(\{| )" "$T_DIR/out/$N.$side"; then
      t_ok "/metrics $side has $m"
    else
      t_fail "/metrics $side has $m" "$(head -c 200 "$T_DIR/out/$N.$side")"
    fi
  done
done
for side in sut ref; do
  if [ $side = sut ]; then cp=$S_CP; else cp=$R_CP; fi
  v=$(curl -s -m 10 "http://127.0.0.1:$cp/metrics" | awk '$1=="etcd_server_has_leader"{print $2}')
  t_eq "/metrics $side etcd_server_has_leader is 1" 1 "$v"
done

# --- bad input -----------------------------------------------------------------------------------
gx "malformed JSON"               POST /v3/kv/put '{"key":' 400
gx "not an object"                POST /v3/kv/range '[1,2]' 400
gx "bad base64 key"               POST /v3/kv/put '{"key":"!!!","value":"eA=="}' 400
gx "bad base64 in range_end"      POST /v3/kv/range "{\"key\":\"$K_A\",\"range_end\":\"%%%\"}" 400
gx "wrong type for limit"         POST /v3/kv/range "{\"key\":\"$K_A\",\"limit\":\"ten\"}" 400
gx "empty key"                    POST /v3/kv/put '{"value":"eA=="}' 400
gx "bad enum sort_order"          POST /v3/kv/range "{\"key\":\"$K_A\",\"sort_order\":\"SIDEWAYS\"}" 400
gx "txn 129 ops"                  POST /v3/kv/txn "$("$PY" -c '
import json; print(json.dumps({"success": [{"request_put": {"key": "dA==", "value": "dg=="}}] * 129}))')" 400

t_done
