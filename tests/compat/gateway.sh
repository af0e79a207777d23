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
# Leases and watches (the forms Patroni 3.0.2 uses, etcd 3.4's /v3/kv/lease/* aliases, errors)
# are compared by VALUE (gv, gnorm.py: status and body equal after masking only header IDs/terms,
# each server's own lease ID, plausible remaining TTLs and the random order of a lease's keys).
# Watch streams (`curl -N`, chunked) run in the background, bounded (60 s), ended by their own PID;
# a wait is for the created result or an end-marker event in the stream, never a fixed sleep.
# Timing-dependent, bounded: the 5 s lease whose key must vanish (20 s poll), remaining TTLs.
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

# --- leases and watches: helpers ----------------------------------------------------------------
# These cases compare VALUES, not only shapes: gnorm.py masks what legitimately differs and nothing
# else (header cluster_id/member_id/raft_term; each server's own ID for the Patroni-style lease,
# named <L:P>; a remaining TTL next to grantedTTL when granted-10 <= TTL <= granted; the order of
# a lease's keys, random in etcd). Streams (/v3/watch, /v3/lease/keepalive) are read as Patroni
# reads them (consecutive JSON objects); a result with events becomes one line per event without
# its header (how many events share one response is the server's choice), other results are kept
# whole (created, canceled, compact_revision, their headers included).
cat >"$T_DIR/gnorm.py" <<'EOF'
import json, sys
leases = {}
for a in sys.argv[1:]:
    name, _, v = a.partition('=')
    if v:
        leases[v] = '<L:%s>' % name
def ttl_ok(o):
    try:
        t, g = int(o['TTL']), int(o['grantedTTL'])
    except (KeyError, TypeError, ValueError):
        return False
    return g > 0 and max(0, g - 10) <= t <= g
def norm(o):
    if isinstance(o, list):
        return [norm(x) for x in o]
    if not isinstance(o, dict):
        return o
    for k in ('ID', 'lease'):
        if isinstance(o.get(k), (str, int)) and str(o[k]) in leases:
            o[k] = leases[str(o[k])]
    h = o.get('header')
    if isinstance(h, dict):
        for k in ('cluster_id', 'member_id', 'raft_term'):
            if k in h:
                h[k] = '<%s>' % k
    if isinstance(o.get('keys'), list):
        o['keys'] = sorted(o['keys'])
    if 'grantedTTL' in o and ttl_ok(o):
        o['TTL'] = '<REM>'
    return {k: norm(v) for k, v in o.items()}
data = sys.stdin.read()
dec, i, out = json.JSONDecoder(), 0, []
while True:
    while i < len(data) and data[i] in ' \t\r\n':
        i += 1
    if i >= len(data):
        break
    try:
        m, i = dec.raw_decode(data, i)
    except ValueError:
        out.append('NOT JSON: ' + data[i:])
        break
    r = m.get('result') if isinstance(m, dict) else None
    if isinstance(r, dict) and r.get('events'):
        out.extend(json.dumps({'event': norm(e)}, sort_keys=True) for e in r['events'])
    else:
        out.append(json.dumps(norm(m), sort_keys=True))
print('\n'.join(out))
EOF
GNORM=$T_DIR/gnorm.py
declare -A LP GW_PID
cp_of() { if [ "$1" = sut ]; then echo "$S_CP"; else echo "$R_CP"; fi; }

# gv NAME PATH BODY [EXPECTED_STATUS] [--capture]: POST on both servers; the HTTP status and the
# gnorm.py-normalised body must be equal. @LP in BODY stands for each server's own Patroni-style
# lease ID; --capture records the "ID" of the answer as that lease.
gv() {
  local name=$1 path=$2 body=$3 want=${4:-200} cap=${5:-} side b code r_code=""
  N=$((N + 1))
  for side in sut ref; do
    b=${body//@LP/${LP[$side]:-0}}
    code=$(fetch "$(cp_of $side)" POST "$path" "$b" "$T_DIR/out/$N.$side.raw")
    if [ -n "$cap" ]; then
      LP[$side]=$("$PY" -c 'import json, sys; print(json.load(sys.stdin).get("ID", ""))' \
                  <"$T_DIR/out/$N.$side.raw" 2>/dev/null)
    fi
    { echo "http=$code"; "$PY" "$GNORM" "P=${LP[$side]:-}" <"$T_DIR/out/$N.$side.raw"; } \
      >"$T_DIR/out/$N.$side"
    [ $side = ref ] && r_code=$code
  done
  if [ "$r_code" != "$want" ]; then
    t_fail "$name" "reference etcd answered $r_code, test expects $want: $(head -c 300 "$T_DIR/out/$N.ref.raw")"
  elif cmp -s "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut"; then
    t_ok "$name"
  else
    t_fail "$name" "POST $path $body" "--- etcd (reference)  +++ server under test" \
      "$(diff -u "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut" | tail -n +3 | head -40)"
  fi
}

# gw_watch ID BODY: POST BODY to /v3/watch with `curl -N` on both servers in the background,
# bounded (60 s), ended by its own PID (gw_watch_stop); body in $T_DIR/gw.ID.SIDE, headers in .hdr.
gw_watch() {
  local id=$1 side
  for side in sut ref; do
    curl -s -N -m 60 -D "$T_DIR/gw.$id.$side.hdr" -X POST -H 'Content-Type: application/json' \
      --data-binary "$2" "http://127.0.0.1:$(cp_of $side)/v3/watch" >"$T_DIR/gw.$id.$side" 2>&1 &
    GW_PID[$id.$side]=$!
    track_pid $!
  done
}

# gw_wait ID STRING: waits (up to 10 s) until both servers' streams of ID contain STRING (a stream
# whose curl has ended is not waited for). Returns 1 on timeout.
gw_wait() {
  local until=$(($(now_ms) + 10000)) side
  for side in sut ref; do
    while ! grep -qF -- "$2" "$T_DIR/gw.$1.$side"; do
      pid_alive "${GW_PID[$1.$side]}" || break
      [ "$(now_ms)" -gt "$until" ] && return 1
      sleep 0.05
    done
  done
  return 0
}

# gw_watch_stop ID NAME: ends the two curls and compares the normalised streams.
gw_watch_stop() {
  local id=$1 name=$2 side
  N=$((N + 1))
  for side in sut ref; do
    stop_member "${GW_PID[$id.$side]}" TERM 5
    "$PY" "$GNORM" "P=${LP[$side]:-}" <"$T_DIR/gw.$id.$side" >"$T_DIR/out/$N.$side"
  done
  if [ ! -s "$T_DIR/out/$N.ref" ] || ! grep -q created "$T_DIR/out/$N.ref"; then
    t_fail "$name" "reference etcd's stream has no created result: $(head -c 300 "$T_DIR/gw.$id.ref")"
  elif cmp -s "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut"; then
    t_ok "$name"
  else
    t_fail "$name" "--- etcd (reference)  +++ server under test" \
      "$(diff -u "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut" | tail -n +3 | head -40)"
  fi
}

# head_rev: the revision of the reference store (the same on both: every write goes to both).
head_rev() {
  curl -s -m 10 -X POST --data-binary '{"key":"AA=="}' "http://127.0.0.1:$R_CP/v3/kv/range" |
    "$PY" -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])'
}

# --- watch: the forms Patroni uses (chunked stream, filters [], start_revision as a string) -----
# Timing: none beyond bounded waits for the created result and an end-marker event.
W_KEY=$(b64 gw/) W_END=$(b64 gw0)
gw_watch wa "{\"create_request\":{\"key\":\"$W_KEY\",\"range_end\":\"$W_END\",\"filters\":[]}}"
gw_wait wa '"created":true' || t_fail "watch stream: created result" "no created result in 10 s"
WR=$(head_rev)
gv "lease grant (Patroni: TTL as a number)"  /v3/lease/grant '{"TTL":30}' 200 --capture
gv "put gw/a"                                /v3/kv/put "{\"key\":\"$(b64 gw/a)\",\"value\":\"$V1\"}"
gv "put gw/m with the lease (Patroni member)" /v3/kv/put "{\"key\":\"$(b64 gw/m)\",\"value\":\"$V2\",\"lease\":\"@LP\"}"
gv "txn create==0 put gw/leader with lease" /v3/kv/txn "{\"compare\":[{\"key\":\"$(b64 gw/leader)\",\"target\":\"CREATE\",\"create_revision\":0}],\"success\":[{\"request_put\":{\"key\":\"$(b64 gw/leader)\",\"value\":\"$V1\",\"lease\":\"@LP\"}}]}"
gv "deleterange gw/a"                        /v3/kv/deleterange "{\"key\":\"$(b64 gw/a)\"}"
gv "put outside the watched range"           /v3/kv/put "{\"key\":\"$(b64 gx)\",\"value\":\"$V1\"}"
gv "put gw/~end (end marker)"                /v3/kv/put "{\"key\":\"$(b64 gw/~end)\",\"value\":\"$V1\"}"
gw_wait wa "$(b64 gw/~end)"
N=$((N + 1))
for side in sut ref; do
  tr -d '\r' <"$T_DIR/gw.wa.$side.hdr" | grep -iE '^(transfer-encoding|content-type):' |
    tr '[:upper:]' '[:lower:]' | sort >"$T_DIR/out/$N.$side"
done
t_same "watch stream headers: chunked, application/json" "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut"
gw_watch_stop wa "watch stream: created, then put/put/txn/delete events (base64 keys)"

gw_watch wb "{\"create_request\":{\"key\":\"$W_KEY\",\"range_end\":\"$W_END\",\"start_revision\":\"$((WR + 2))\",\"filters\":[]}}"
gw_wait wb "$(b64 gw/~end)"
gw_watch_stop wb "watch start_revision: history, inclusive"
gw_watch wc "{\"create_request\":{\"key\":\"$W_KEY\",\"range_end\":\"$W_END\",\"start_revision\":\"$((WR + 1))\",\"prev_kv\":true,\"filters\":[\"NOPUT\"]}}"
gw_wait wc '"created":true'
gv "deleterange gw/~end"                     /v3/kv/deleterange "{\"key\":\"$(b64 gw/~end)\"}"
gw_wait wc "$(b64 gw/~end)"
gw_watch_stop wc "watch prev_kv, filters NOPUT (deletes only)"
gw_watch wd "{\"create_request\":{\"key\":\"$(b64 gw/leader)\",\"start_revision\":$((WR + 1))}}"
gw_wait wd "$(b64 gw/leader)"
gw_watch_stop wd "watch one key, start_revision as a JSON number"

# --- leases: Patroni's calls, etcd 3.4's aliases, errors ------------------------------------------
# Timing: remaining TTLs masked within 10 s; the lease list order (etcd: by expiry) holds because
# the TTLs are 30, 60 and 600 s; the expiry case (a 5 s lease) polls for 20 s.
gv "lease keepalive (Patroni: ID as a string)" /v3/lease/keepalive '{"ID":"@LP"}'
gv "lease grant with an ID"                  /v3/lease/grant '{"ID":"7001","TTL":"60"}'
gv "lease grant via /v3beta"                 /v3beta/lease/grant '{"ID":"7002","TTL":"600"}'
gv "lease grant: ID taken"                   /v3/lease/grant '{"ID":"7001","TTL":"60"}' 412
gv "put with lease 7001"                     /v3/kv/put "{\"key\":\"$(b64 gl/a)\",\"value\":\"$V1\",\"lease\":\"7001\"}"
gv "put with lease 7001 (second key)"        /v3/kv/put "{\"key\":\"$(b64 gl/b)\",\"value\":\"$V2\",\"lease\":7001}"
gv "range shows the leases"                  /v3/kv/range "{\"key\":\"$(b64 gl/)\",\"range_end\":\"$(b64 gl0)\"}"
gv "timetolive with keys"                    /v3/lease/timetolive '{"ID":"7001","keys":true}'
gv "timetolive alias /v3/kv/lease/timetolive" /v3/kv/lease/timetolive '{"ID":"7001","keys":true}'
gv "timetolive without keys"                 /v3/lease/timetolive '{"ID":"7002"}'
gv "lease leases (by expiry)"                /v3/lease/leases '{}'
gv "lease leases alias /v3/kv/lease/leases"  /v3/kv/lease/leases '{}'
gv "keepalive: two requests in one body"     /v3/lease/keepalive '{"ID":"7001"}{"ID":"7999"}'
gw_watch wl "{\"create_request\":{\"key\":\"$(b64 gl/)\",\"range_end\":\"$(b64 gl0)\",\"prev_kv\":true}}"
gw_wait wl '"created":true'
gv "lease revoke (two keys)"                 /v3/lease/revoke '{"ID":"7001"}'
gv "range after revoke: keys gone"           /v3/kv/range "{\"key\":\"$(b64 gl/)\",\"range_end\":\"$(b64 gl0)\"}"
gv "lease revoke again: not found"           /v3/lease/revoke '{"ID":"7001"}' 404
gv "lease revoke alias /v3/kv/lease/revoke"  /v3/kv/lease/revoke '{"ID":"7002"}'
gv "lease revoke without ID"                 /v3/lease/revoke '{}' 404
gv "timetolive unknown lease: TTL -1"        /v3/lease/timetolive '{"ID":"7001","keys":true}'
gv "keepalive unknown lease: no TTL"         /v3/lease/keepalive '{"ID":"7001"}'
gv "put with an unknown lease"               /v3/kv/put "{\"key\":\"$(b64 gl/c)\",\"value\":\"$V1\",\"lease\":\"7001\"}" 404
gv "txn put with an unknown lease"           /v3/kv/txn "{\"success\":[{\"request_put\":{\"key\":\"$(b64 gl/c)\",\"lease\":\"7001\"}}]}" 404
gv "lease grant: too large TTL"              /v3/lease/grant '{"TTL":"100000000000"}' 400
gv "lease grant: TTL 1 raised to the minimum" /v3/lease/grant '{"ID":"7003","TTL":"1"}'
gv "lease grant: malformed JSON"             /v3/lease/grant '{' 400
gv "lease keepalive: malformed JSON"         /v3/lease/keepalive '{' 500
gv "watch: malformed JSON"                   /v3/watch '{' 500
gv "no /v3/kv/lease/grant alias"             /v3/kv/lease/grant '{"TTL":"60"}' 404
gv "lease grant 5 s"                        /v3/lease/grant '{"ID":"7004","TTL":"5"}'
gv "put with the 5 s lease"                  /v3/kv/put "{\"key\":\"$(b64 gl/exp)\",\"value\":\"$V1\",\"lease\":\"7004\"}"
# key_count SIDE KEY: how many keys KEY's range finds on SIDE ("err" when the request fails).
key_count() {
  curl -s -m 5 -X POST --data-binary "{\"key\":\"$(b64 "$2")\"}" \
    "http://127.0.0.1:$(cp_of "$1")/v3/kv/range" | "$PY" -c '
import json, sys
try:
    r = json.load(sys.stdin)
    print(len(r.get("kvs", [])) if "header" in r else "err")
except ValueError:
    print("err")'
}
for side in sut ref; do
  until=$(($(now_ms) + 20000)) n=""
  while n=$(key_count $side gl/exp) && [ "$n" != 0 ] && [ "$(now_ms)" -le "$until" ]; do
    sleep 0.1
  done
  if [ "$n" = 0 ]; then
    t_ok "leased key expires ($side)"
  else
    t_fail "leased key expires ($side)" "gl/exp still present (or range failing: $n) after 20 s"
  fi
done
gv "timetolive expired lease"                /v3/lease/timetolive '{"ID":"7004"}'
gv "put gl/~end (end marker)"                /v3/kv/put "{\"key\":\"$(b64 gl/~end)\",\"value\":\"$V1\"}"
gw_wait wl "$(b64 gl/~end)"
gw_watch_stop wl "watch: revoke and expiry deletes with prev_kv (lease field)"

# --- watch from a compacted revision -----------------------------------------------------------
CR=$(head_rev)
gv "compaction for the watch"                /v3/kv/compaction "{\"revision\":\"$CR\",\"physical\":true}"
gw_watch wx "{\"create_request\":{\"key\":\"$W_KEY\",\"range_end\":\"$W_END\",\"start_revision\":\"$((CR - 1))\"}}"
gw_wait wx 'compact_revision'
gw_watch_stop wx "watch below the compaction: created, then canceled with compact_revision"

# --- Patroni's own chunked reader (patroni.utils.iter_response_objects) on the watch stream ----
N=$((N + 1))
for side in sut ref; do
  timeout -k 2 30 "$PY" - "$(cp_of $side)" >"$T_DIR/out/$N.$side" 2>&1 <<'EOF'
import base64, json, sys, urllib.request
import urllib3
from patroni.utils import iter_response_objects
base = 'http://127.0.0.1:%s' % sys.argv[1]
b64 = lambda s: base64.b64encode(s.encode()).decode()
http = urllib3.PoolManager()
body = {'create_request': {'key': b64('pt/'), 'range_end': b64('pt0'), 'filters': []}}
r = http.request('POST', base + '/v3/watch', body=json.dumps(body), preload_content=False,
                 timeout=urllib3.Timeout(connect=5, read=10), retries=0)
out = []
for m in iter_response_objects(r):
    res = m.get('result', {})
    if res.get('created'):
        out.append('created')
        req = urllib.request.Request(base + '/v3/kv/put', method='POST',
                                     data=json.dumps({'key': b64('pt/k'), 'value': b64('v')}).encode())
        urllib.request.urlopen(req, timeout=5).read()
    for e in res.get('events', []):
        out.append('%s %s %s' % (e.get('type', 'PUT'), base64.b64decode(e['kv']['key']).decode(),
                                 base64.b64decode(e['kv'].get('value', '')).decode()))
    if len(out) >= 2:
        break
r.release_conn()
print(out)
EOF
done
t_same "Patroni's iter_response_objects reads the watch stream" "$T_DIR/out/$N.ref" "$T_DIR/out/$N.sut"

t_done
