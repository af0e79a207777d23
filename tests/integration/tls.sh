#!/usr/bin/env bash
# tests/integration/tls.sh BIN_DIR: TLS on the client port, driven with Debian's etcdctl 3.4,
# curl (the JSON gateway), python3-etcd3 and cetcdctl. Written and first run against etcd 3.4
# (SERVER_BIN=/usr/bin/etcd); the same expectations hold for cetcd (log wording is checked
# for cetcd only, marked below).
#   Certificates: hack/certs.sh makes CA "a" (server, peer, client CN=root) and an unrelated
#   CA "b" (its client certificate is "from another CA").
#   One member, https:// client URL, --cert-file/--key-file/--trusted-ca-file/--client-cert-auth:
#   1. etcdctl --cacert --cert --key: put, then get returns the value;
#   2. the JSON gateway over https (curl with the client certificate) reads it back, /health ok;
#      an https:// --listen-metrics-urls serves /metrics with the same certificate and asks
#      for a client certificate too;
#   3. python3-etcd3 (ca_cert, cert_key, cert_cert): put and get; an etcdctl watch (a gRPC
#      stream) and a 1.2 MB value (etcdctl put/get, gateway range) over TLS; the gateway's
#      WebSocket watch over wss:// with a client certificate gets a small and a 300 kB event;
#   4. cetcdctl --cacert --cert --key: get returns the value; without a client certificate or
#      with one from another CA it is refused as etcdctl is (exit 1, "context deadline
#      exceeded");
#   5. refusals, each its own check: etcdctl without a client certificate, with a certificate
#      from another CA, and speaking plaintext (http://) to the TLS port all exit 1 with
#      "context deadline exceeded"; curl without a client certificate fails; plaintext HTTP
#      is closed without an answer (curl: empty reply, exit 52);
#   6. the member keeps serving after the refusals (etcdctl get with the right certificate);
#   7. cetcd only: the log names each refusal (no certificate, unknown CA, plaintext);
#   8. an https:// client URL without certificates (and without --auto-tls) is a startup error;
#   9. --auto-tls: a self-signed certificate under <data-dir>/fixtures/client; etcdctl
#      --insecure-skip-tls-verify works, etcdctl verifying against CA "a" is refused.
#   9b. --trusted-ca-file without --client-cert-auth already requires a client certificate
#      (etcd 3.4 does so: "client didn't provide a certificate");
#   Three members, client TLS as above and peer TLS (https:// peer URLs, --peer-cert-file,
#   --peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth):
#  10. the cluster forms (endpoint health over all three), a put through member 1 is read
#      (serializable) on each member, python3-etcd3 writes through member 3;
#  11. the peer port refuses a client certificate from another CA and no certificate
#      (curl fails), and the cluster keeps working (a put and a linearizable get); a member
#      stopped while 1,500 keys are written catches up over peer TLS (a snapshot, for cetcd,
#      with --snapshot-count 300); a member added with `member add` joins over TLS;
#  12. --peer-auto-tls (self-signed peer certificates, not verified): a 3-member cluster
#      forms and replicates; its certificate is under <data-dir>/fixtures/peer.
# Bounded: every wait has a deadline; only this script's processes are stopped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
CETCDCTL=${CETCDCTL:-$ROOT/bin/cetcdctl}
echo "# server under test: $SUT"

CA=$T_DIR/certs/a
OTHER=$T_DIR/certs/b
"$ROOT/hack/certs.sh" "$CA" >/dev/null || { echo "certs.sh failed"; exit 2; }
"$ROOT/hack/certs.sh" "$OTHER" --ca-name other-ca >/dev/null || { echo "certs.sh failed"; exit 2; }

GOOD=(--cacert "$CA/ca.pem" --cert "$CA/client.pem" --key "$CA/client-key.pem")
CURL_GOOD=(--cacert "$CA/ca.pem" --cert "$CA/client.pem" --key "$CA/client-key.pem")

# start_tls NAME DIR CP PP [extra flags]: one member, https client URL, http peer URL.
start_tls() { T_CLIENT_SCHEME=https start_member "$SUT" "$@"; }

# wait_tls_ready URL [curl flags...]: polls URL/health over https until healthy (20 s).
wait_tls_ready() {
  local url=$1 deadline=$((SECONDS + 20))
  shift
  while [ "$SECONDS" -lt "$deadline" ]; do
    curl -s -m 2 "$@" "$url/health" 2>/dev/null | grep -q '"health": *"true"' && return 0
    sleep 0.1
  done
  echo "wait_tls_ready: $url not healthy" >&2
  return 1
}

ectl() { run_bounded 20 "$ETCDCTL" --dial-timeout=2s --command-timeout=3s "$@"; }

cctl() { run_bounded 20 "$CETCDCTL" --dial-timeout=2s --command-timeout=3s "$@"; }

# refused NAME ARGS...: etcdctl (or cetcdctl: REFUSED_CTL=cctl) with ARGS must exit 1 and say
# "context deadline exceeded".
refused() {
  local name=$1 out rc
  shift
  out=$("${REFUSED_CTL:-ectl}" "$@" get k 2>&1); rc=$?
  if [ "$rc" = 1 ] && grep -q "context deadline exceeded" <<<"$out"; then
    t_ok "$name"
  else
    t_fail "$name" "exit $rc" "$(tail -3 <<<"$out")"
  fi
}

alloc_ports CP PP MP
EP=https://127.0.0.1:$CP
start_tls m1 "$T_DIR/m1" "$CP" "$PP" --cert-file "$CA/server.pem" --key-file "$CA/server-key.pem" \
  --trusted-ca-file "$CA/ca.pem" --client-cert-auth --listen-metrics-urls "https://127.0.0.1:$MP"
LOG1=$T_LAST_LOG
if ! wait_tls_ready "$EP" "${CURL_GOOD[@]}"; then
  t_fail "TLS member becomes healthy" "$(tail -20 "$LOG1")"
  t_done
fi

# 1. etcdctl with the client certificate
out=$(ectl --endpoints "$EP" "${GOOD[@]}" put k v1 2>&1)
t_eq "etcdctl --cacert --cert --key: put" "OK" "$out"
out=$(ectl --endpoints "$EP" "${GOOD[@]}" get k --print-value-only 2>&1)
t_eq "etcdctl --cacert --cert --key: get" "v1" "$out"

# 2. the gateway over https
out=$(curl -s -m 5 "${CURL_GOOD[@]}" "$EP/v3/kv/range" -d '{"key":"aw=="}' 2>&1)
if grep -q '"value":"djE="' <<<"$out"; then t_ok "gateway over https: range"; else
  t_fail "gateway over https: range" "$out"; fi
out=$(curl -s -m 5 "${CURL_GOOD[@]}" "$EP/health" 2>&1)
if grep -q '"health": *"true"' <<<"$out"; then t_ok "gateway over https: /health"; else
  t_fail "gateway over https: /health" "$out"; fi
# 2b. an https:// metrics URL serves with the client port's certificate and rule
out=$(curl -s -m 5 "${CURL_GOOD[@]}" "https://127.0.0.1:$MP/metrics" 2>&1)
if grep -q '^etcd_server_has_leader 1' <<<"$out"; then t_ok "https metrics URL: /metrics"; else
  t_fail "https metrics URL: /metrics" "$(head -c 300 <<<"$out")"; fi
if curl -s -m 5 --cacert "$CA/ca.pem" "https://127.0.0.1:$MP/metrics" 2>&1 | grep -q etcd_server; then
  t_fail "https metrics URL: no client certificate, no metrics"
else t_ok "https metrics URL: no client certificate, no metrics"; fi

# 3. python3-etcd3 with a client certificate
out=$(run_bounded 20 "$PY" - "$CP" "$CA" 2>&1 <<'EOF'
import sys, etcd3
port, ca = int(sys.argv[1]), sys.argv[2]
c = etcd3.client(host="127.0.0.1", port=port, ca_cert=ca + "/ca.pem",
                 cert_key=ca + "/client-key.pem", cert_cert=ca + "/client.pem", timeout=5)
c.put("py", "v2")
print(c.get("py")[0].decode(), c.get("k")[0].decode())
EOF
)
t_eq "python3-etcd3 ca_cert/cert_key/cert_cert: put and get" "v2 v1" "$out"

# 3b. streams and large messages through TLS: a watch from revision 1 over gRPC, and a 1.2 MB
# value written with etcdctl and read back with etcdctl and through the gateway (the output
# outgrows the socket buffer: partial TLS writes)
run_bounded 20 "$ETCDCTL" --endpoints "$EP" "${GOOD[@]}" watch k --rev=1 >"$T_DIR/watch.out" 2>&1 &
wpid=$!
watch_has_event() { [ "$(wc -l <"$T_DIR/watch.out")" -ge 3 ]; }
wait_for 10 "the TLS watch's first event" watch_has_event >/dev/null
kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
out=$(cat "$T_DIR/watch.out")
t_eq "etcdctl watch over TLS (gRPC stream)" "PUT
k
v1" "$(head -3 <<<"$out")"
head -c 900000 /dev/urandom | base64 -w0 >"$T_DIR/big"
want=$(sha256sum <"$T_DIR/big" | cut -d' ' -f1)
out=$(ectl --endpoints "$EP" "${GOOD[@]}" put big <"$T_DIR/big" 2>&1)
got=$(ectl --endpoints "$EP" "${GOOD[@]}" get big --print-value-only 2>/dev/null | head -c -1 |
  sha256sum | cut -d' ' -f1)
t_eq "a 1.2 MB value over TLS (etcdctl put, get)" "OK $want" "$out $got"
got=$(curl -s -m 10 "${CURL_GOOD[@]}" "$EP/v3/kv/range" -d '{"key":"YmlnCg=="}' >/dev/null;
  curl -s -m 10 "${CURL_GOOD[@]}" "$EP/v3/kv/range" -d '{"key":"Ymln"}' |
  "$PY" -c 'import sys, json, base64, hashlib
print(hashlib.sha256(base64.b64decode(json.load(sys.stdin)["kvs"][0]["value"])).hexdigest())' 2>&1)
t_eq "a 1.2 MB value over TLS (gateway range)" "$want" "$got"

# 3c. the gateway's WebSocket watch over TLS (wss://, client certificate): a created watch gets
# a small and a 300 kB event, then a client close ends it cleanly
out=$(run_bounded 30 "$PY" - "$CP" "$CA" 2>&1 <<'EOF'
import base64, json, ssl, sys, urllib.request, websocket
port, ca = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=ca + "/ca.pem")
ctx.load_cert_chain(ca + "/client.pem", ca + "/client-key.pem")
b64 = lambda s: base64.b64encode(s.encode()).decode()
def put(k, v):
    req = urllib.request.Request("https://127.0.0.1:%s/v3/kv/put" % port,
                                 data=json.dumps({"key": b64(k), "value": b64(v)}).encode())
    urllib.request.urlopen(req, timeout=10, context=ctx).read()
ws = websocket.create_connection("wss://127.0.0.1:%s/v3/watch" % port, timeout=10,
                                 sslopt={"ca_certs": ca + "/ca.pem", "certfile": ca + "/client.pem",
                                         "keyfile": ca + "/client-key.pem"})
ws.send(json.dumps({"create_request": {"key": b64("ws")}}))
assert json.loads(ws.recv())["result"]["created"]
big = "y" * 300000
put("ws", "1")
put("ws", big)
got = []
while len(got) < 2:
    for ev in json.loads(ws.recv())["result"].get("events", []):
        got.append(base64.b64decode(ev["kv"]["value"]).decode())
ws.close()
print("events", got[0], len(got[1]) == len(big) and got[1] == big)
EOF
)
t_eq "WebSocket watch over TLS (wss://): small and 300 kB events" "events 1 True" "$out"

# 4. cetcdctl (refused as etcdctl is)
if [ -x "$CETCDCTL" ]; then
  out=$(cctl --endpoints "$EP" "${GOOD[@]}" get k --print-value-only 2>&1)
  t_eq "cetcdctl --cacert --cert --key: get" "v1" "$out"
  REFUSED_CTL=cctl refused "refused: cetcdctl without a client certificate" --endpoints "$EP" \
    --cacert "$CA/ca.pem"
  REFUSED_CTL=cctl refused "refused: cetcdctl with a certificate from another CA" \
    --endpoints "$EP" --cacert "$CA/ca.pem" --cert "$OTHER/client.pem" --key "$OTHER/client-key.pem"
else
  t_skip "cetcdctl --cacert --cert --key: get" "no $CETCDCTL"
fi

# 5. refusals
refused "refused: etcdctl without a client certificate" --endpoints "$EP" --cacert "$CA/ca.pem"
refused "refused: etcdctl with a certificate from another CA" --endpoints "$EP" \
  --cacert "$CA/ca.pem" --cert "$OTHER/client.pem" --key "$OTHER/client-key.pem"
refused "refused: etcdctl plaintext to the TLS port" --endpoints "http://127.0.0.1:$CP"
if curl -s -m 5 --cacert "$CA/ca.pem" "$EP/health" >/dev/null 2>&1; then
  t_fail "refused: curl without a client certificate"
else
  t_ok "refused: curl without a client certificate"
fi
out=$(curl -s -m 5 "http://127.0.0.1:$CP/health" 2>&1); rc=$?
t_eq "refused: plaintext HTTP to the TLS port is closed unanswered (curl 52)" "52 " "$rc $out"

# 6. still serving
out=$(ectl --endpoints "$EP" "${GOOD[@]}" get k --print-value-only 2>&1)
t_eq "serves after the refusals" "v1" "$out"

# 7. the log names the refusals (cetcd wording)
if is_real_etcd "$SUT"; then
  t_skip "log names each refusal" "etcd's wording differs"
else
  miss=""
  grep -q "peer did not return a certificate" "$LOG1" || miss+=" no-certificate"
  grep -q "unable to get local issuer certificate" "$LOG1" || miss+=" unknown-CA"
  grep -q "sent plaintext to a TLS port" "$LOG1" || miss+=" plaintext"
  if [ -z "$miss" ]; then t_ok "log names each refusal"; else
    t_fail "log names each refusal" "missing:$miss" "$(grep -i tls "$LOG1" | tail -5)"; fi
fi
stop_member "$T_LAST_PID"

# 8. https without certificates
alloc_ports CP2 PP2
start_tls m2 "$T_DIR/m2" "$CP2" "$PP2"
if wait_exit "$T_LAST_PID" 15; then
  if [ "$T_EXIT_STATUS" != 0 ]; then t_ok "https URL without certificates: startup error"; else
    t_fail "https URL without certificates: startup error" "exit 0"; fi
else
  t_fail "https URL without certificates: startup error" "still running"
  stop_member "$T_LAST_PID"
fi

# 9. --auto-tls
alloc_ports CP3 PP3
start_tls m3 "$T_DIR/m3" "$CP3" "$PP3" --auto-tls
if wait_tls_ready "https://127.0.0.1:$CP3" -k; then
  # etcdctl 3.4 uses TLS with only this flag if also told --insecure-transport=false
  out=$(ectl --endpoints "https://127.0.0.1:$CP3" --insecure-transport=false \
    --insecure-skip-tls-verify put a b 2>&1)
  t_eq "--auto-tls: etcdctl --insecure-skip-tls-verify put" "OK" "$out"
  out=$(cctl --endpoints "https://127.0.0.1:$CP3" --insecure-transport=false \
    --insecure-skip-tls-verify get a --print-value-only 2>&1)
  t_eq "--auto-tls: cetcdctl --insecure-skip-tls-verify get" "b" "$out"
  if [ -s "$T_DIR/m3/fixtures/client/cert.pem" ] && [ -s "$T_DIR/m3/fixtures/client/key.pem" ]; then
    t_ok "--auto-tls: certificate under <data-dir>/fixtures/client"
  else
    t_fail "--auto-tls: certificate under <data-dir>/fixtures/client" "$(ls -R "$T_DIR/m3" | head)"
  fi
  refused "--auto-tls: etcdctl verifying against another CA is refused" \
    --endpoints "https://127.0.0.1:$CP3" --cacert "$CA/ca.pem"
else
  t_fail "--auto-tls member becomes healthy" "$(tail -20 "$T_LAST_LOG")"
fi
stop_member "$T_LAST_PID"

# 9b. --trusted-ca-file without --client-cert-auth: etcd 3.4 already requires a client certificate
alloc_ports CP5 PP5
start_tls m5 "$T_DIR/m5" "$CP5" "$PP5" --cert-file "$CA/server.pem" --key-file "$CA/server-key.pem" \
  --trusted-ca-file "$CA/ca.pem"
if wait_tls_ready "https://127.0.0.1:$CP5" "${CURL_GOOD[@]}"; then
  refused "--trusted-ca-file alone: a client without a certificate is refused" \
    --endpoints "https://127.0.0.1:$CP5" --cacert "$CA/ca.pem"
  out=$(ectl --endpoints "https://127.0.0.1:$CP5" "${GOOD[@]}" put a b 2>&1)
  t_eq "--trusted-ca-file alone: a client with a certificate is served" "OK" "$out"
else
  t_fail "--trusted-ca-file member becomes healthy" "$(tail -20 "$T_LAST_LOG")"
fi
stop_member "$T_LAST_PID"

# --- three members with peer TLS ---------------------------------------------------------------

# start_tls_cluster PREFIX PEER_FLAGS...: three members m1..m3 (client TLS with client-cert-auth,
# https:// peer URLs and the given peer flags). Sets CL_EPS, CL_CP[], CL_PP[], CL_PID[], CL_LOG[].
start_tls_cluster() {
  local i
  CL_PREFIX=$1
  shift
  CL_FLAGS=("$@")
  CL_CP=(); CL_PP=(); CL_PID=(); CL_LOG=(); CL_IC=""; CL_EPS=""
  for i in 1 2 3; do
    alloc_ports "CL_CP[$i]" "CL_PP[$i]"
    CL_IC+="$CL_PREFIX$i=https://127.0.0.1:${CL_PP[$i]},"
    CL_EPS+="https://127.0.0.1:${CL_CP[$i]},"
  done
  CL_IC=${CL_IC%,}
  CL_EPS=${CL_EPS%,}
  for i in 1 2 3; do cl_start "$i"; done
}

# cl_start I [extra flags]: (re)starts member I of the cluster with the cluster's flags.
cl_start() {
  local i=$1
  shift
  CL_LOG[$i]=$T_DIR/$CL_PREFIX$i.${CL_CP[$i]}.log
  "$SUT" --name "$CL_PREFIX$i" --data-dir "$T_DIR/$CL_PREFIX$i" \
    --listen-client-urls "https://127.0.0.1:${CL_CP[$i]}" \
    --advertise-client-urls "https://127.0.0.1:${CL_CP[$i]}" \
    --listen-peer-urls "https://127.0.0.1:${CL_PP[$i]}" \
    --initial-advertise-peer-urls "https://127.0.0.1:${CL_PP[$i]}" \
    --initial-cluster "$CL_IC" --initial-cluster-token "tls-$CL_PREFIX" \
    --cert-file "$CA/server.pem" --key-file "$CA/server-key.pem" \
    --trusted-ca-file "$CA/ca.pem" --client-cert-auth "${CL_FLAGS[@]}" "$@" \
    >>"${CL_LOG[$i]}" 2>&1 &
  CL_PID[$i]=$!
  T_PIDS+=("${CL_PID[$i]}")
}

# wait_value I KEY VALUE: member I serves KEY=VALUE (serializable) within 30 s.
wait_value() {
  local deadline=$((SECONDS + 30)) out
  until out=$(ectl --endpoints "https://127.0.0.1:${CL_CP[$1]}" "${GOOD[@]}" get "$2" \
    --consistency=s --print-value-only 2>&1) && [ "$out" = "$3" ] ||
    [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
  [ "$out" = "$3" ]
}

# cluster_checks PREFIX: forms, replicates (10).
cluster_checks() {
  local prefix=$1 i out vals="" deadline=$((SECONDS + 30))
  for i in 1 2 3; do
    wait_tls_ready "https://127.0.0.1:${CL_CP[$i]}" "${CURL_GOOD[@]}" || break
  done
  until ectl --endpoints "$CL_EPS" "${GOOD[@]}" endpoint health >/dev/null 2>&1 ||
    [ "$SECONDS" -ge "$deadline" ]; do sleep 0.2; done
  out=$(ectl --endpoints "$CL_EPS" "${GOOD[@]}" endpoint health 2>&1)
  if [ "$(grep -c "is healthy" <<<"$out")" = 3 ]; then t_ok "$prefix: 3-member TLS cluster healthy"
  else t_fail "$prefix: 3-member TLS cluster healthy" "$out" "$(tail -5 "${CL_LOG[1]}")"; fi
  ectl --endpoints "https://127.0.0.1:${CL_CP[1]}" "${GOOD[@]}" put rk "$prefix" >/dev/null 2>&1
  for i in 1 2 3; do
    deadline=$((SECONDS + 10))
    until out=$(ectl --endpoints "https://127.0.0.1:${CL_CP[$i]}" "${GOOD[@]}" get rk \
      --consistency=s --print-value-only 2>&1) && [ "$out" = "$prefix" ] ||
      [ "$SECONDS" -ge "$deadline" ]; do sleep 0.1; done
    vals+="$out "
  done
  t_eq "$prefix: a put is replicated to every member over peer TLS" "$prefix $prefix $prefix " "$vals"
}

start_tls_cluster p --peer-cert-file "$CA/peer.pem" --peer-key-file "$CA/peer-key.pem" \
  --peer-trusted-ca-file "$CA/ca.pem" --peer-client-cert-auth --snapshot-count 300
cluster_checks p

out=$(run_bounded 20 "$PY" - "${CL_CP[3]}" "$CA" 2>&1 <<'EOF'
import sys, etcd3
port, ca = int(sys.argv[1]), sys.argv[2]
c = etcd3.client(host="127.0.0.1", port=port, ca_cert=ca + "/ca.pem",
                 cert_key=ca + "/client-key.pem", cert_cert=ca + "/client.pem", timeout=5)
c.put("py3", "through-m3")
print(c.get("py3")[0].decode())
EOF
)
t_eq "python3-etcd3 against a member of the peer-TLS cluster" "through-m3" "$out"

# 11. the peer port refuses foreign and missing client certificates
if curl -s -m 5 --cacert "$CA/ca.pem" --cert "$OTHER/client.pem" --key "$OTHER/client-key.pem" \
  "https://127.0.0.1:${CL_PP[2]}/members" >/dev/null 2>&1; then
  t_fail "peer port refuses a certificate from another CA"
else
  t_ok "peer port refuses a certificate from another CA"
fi
if curl -s -m 5 --cacert "$CA/ca.pem" "https://127.0.0.1:${CL_PP[2]}/members" >/dev/null 2>&1; then
  t_fail "peer port refuses a client without a certificate"
else
  t_ok "peer port refuses a client without a certificate"
fi
out=$(ectl --endpoints "https://127.0.0.1:${CL_CP[2]}" "${GOOD[@]}" put after refused 2>&1 &&
  ectl --endpoints "https://127.0.0.1:${CL_CP[3]}" "${GOOD[@]}" get after --print-value-only 2>&1)
t_eq "the cluster keeps working after the peer refusals" "OK
refused" "$out"

# 11b. catch-up over peer TLS: member 3 stopped while 1,500 keys are written (cetcd sends it a
# snapshot: --snapshot-count 300), restarted, serves the last key
stop_member "${CL_PID[3]}"
out=$(run_bounded 120 "$PY" - "${CL_CP[1]}" "$CA" 2>&1 <<'EOF'
import sys, etcd3
port, ca = int(sys.argv[1]), sys.argv[2]
c = etcd3.client(host="127.0.0.1", port=port, ca_cert=ca + "/ca.pem",
                 cert_key=ca + "/client-key.pem", cert_cert=ca + "/client.pem", timeout=10)
import time
for i in range(1500):
    for attempt in range(20):   # the stopped member may have led: puts fail until a new leader
        try:
            c.put("bulk/%04d" % i, "x" * 200)
            break
        except Exception:
            time.sleep(0.5)
    else:
        raise SystemExit("put bulk/%04d kept failing" % i)
print("done")
EOF
)
cl_start 3
if [ "$out" = done ] && wait_value 3 bulk/1499 "$(printf 'x%.0s' $(seq 200))"; then
  t_ok "a restarted member catches up 1,500 writes over peer TLS"
else
  t_fail "a restarted member catches up 1,500 writes over peer TLS" "$out" "$(tail -5 "${CL_LOG[3]}")"
fi

# 11c. a member added over TLS joins (its member-list request and stream are TLS)
alloc_ports "CL_CP[4]" "CL_PP[4]"
deadline=$((SECONDS + 30))   # etcd refuses it ("unhealthy cluster") until member 3 is back 5 s
until out=$(ectl --endpoints "$CL_EPS" "${GOOD[@]}" member add "${CL_PREFIX}4" \
  --peer-urls="https://127.0.0.1:${CL_PP[4]}" 2>&1) || [ "$SECONDS" -ge "$deadline" ] ||
  ! grep -q "unhealthy cluster" <<<"$out"; do sleep 0.5; done
if grep -q "Member .* added to cluster" <<<"$out"; then
  CL_IC+=",${CL_PREFIX}4=https://127.0.0.1:${CL_PP[4]}"
  cl_start 4 --initial-cluster-state existing
  if wait_value 4 bulk/0000 "$(printf 'x%.0s' $(seq 200))" && wait_value 4 after refused; then
    t_ok "a member added to the TLS cluster joins and serves the data"
  else
    t_fail "a member added to the TLS cluster joins and serves the data" "$(tail -5 "${CL_LOG[4]}")"
  fi
  stop_member "${CL_PID[4]}"
else
  t_fail "a member added to the TLS cluster joins and serves the data" "member add: $out"
fi
for i in 1 2 3; do stop_member "${CL_PID[$i]}"; done

# 12. --peer-auto-tls
start_tls_cluster a --peer-auto-tls
cluster_checks a
if [ -s "$T_DIR/a1/fixtures/peer/cert.pem" ]; then t_ok "--peer-auto-tls: certificate under fixtures/peer"
else t_fail "--peer-auto-tls: certificate under fixtures/peer" "$(ls -R "$T_DIR/a1" | head)"; fi
for i in 1 2 3; do stop_member "${CL_PID[$i]}"; done

t_done
