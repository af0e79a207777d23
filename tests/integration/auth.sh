#!/usr/bin/env bash
# tests/integration/auth.sh BIN_DIR: authentication and RBAC (issue 8, item 2), the same
# expectations for etcd 3.4 and cetcd (first written and run against /usr/bin/etcd).
#   One member with --auth-token-ttl 2, driven by Debian's etcdctl (--user) and curl through the
#   JSON gateway (Authorization header): root user and role, auth enable/status/disable; the
#   seed's example role allowed only /config/ (reads and writes there, refused elsewhere, also
#   inside a Txn and for a watch); no user, wrong password, an expired token and a deleted user
#   refused with etcd's messages; disable and re-enable keep users, roles and permissions;
#   a restart keeps them too. Then a member with --client-cert-auth (certificates from
#   hack/certs.sh): the certificate's CN is the user; python3-etcd3 with user and password.
#   Last, a fresh member's gateway answers to every Auth method, compared with etcd 3.4's.
# Bounded: every client run has a hard limit; only this script's processes are stopped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
echo "# server under test: $SUT"

alloc_ports CP PP
start_member "$SUT" a1 "$T_DIR/a1" "$CP" "$PP" --auth-token-ttl 2
if ! wait_ready "http://127.0.0.1:$CP" 20; then
  t_fail "the member starts" "$(tail -5 "$T_LAST_LOG")"
  t_done
fi
EP=127.0.0.1:$CP
URL=http://$EP

# e ARGS...: etcdctl against the member, stdout and stderr together (without clientv3's JSON
# retry warnings).
e() { run_bounded 15 "$ETCDCTL" --endpoints "$EP" --command-timeout 5s "$@" 2>&1 | grep -v '^{"level"'; }
# api PATH JSON [TOKEN]: one gateway call, the body printed.
api() {
  local h=()
  [ -n "${3:-}" ] && h=(-H "Authorization: $3")
  run_bounded 10 curl -s -m 8 "${h[@]}" -X POST -d "$2" "$URL$1"
}
# token USER PASSWORD: a simple token from the gateway's Authenticate ("" on failure).
token() {
  api /v3/auth/authenticate "{\"name\":\"$1\",\"password\":\"$2\"}" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("token",""))' 2>/dev/null
}
b64() { printf '%s' "$1" | base64 -w0; }
# token_at PORT USER PASSWORD: the same against another member's gateway.
token_at() {
  run_bounded 10 curl -s -m 8 -X POST -d "{\"name\":\"$2\",\"password\":\"$3\"}" \
    "http://127.0.0.1:$1/v3/auth/authenticate" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("token",""))' 2>/dev/null
}

# --- users, roles, enable ---------------------------------------------------------------------
t_eq "user add root" "User root created" "$(e user add root:rootpw)"
t_eq "enable needs a root user: refused before it exists" \
  "Error: etcdserver: root user does not exist" "$(e user delete root >/dev/null; e auth enable)"
e user add root:rootpw >/dev/null
t_eq "role add cfg" "Role cfg created" "$(e role add cfg)"
t_eq "grant readwrite on the prefix /config/" "Role cfg updated" \
  "$(e role grant-permission cfg readwrite /config/ --prefix=true)"
t_eq "user add app" "User app created" "$(e user add app:apppw)"
t_eq "grant cfg to app" "Role cfg is granted to user app" "$(e user grant-role app cfg)"
t_eq "role add cfg again" "Error: etcdserver: role name already exists" "$(e role add cfg)"
t_eq "grant an unknown role" "Error: etcdserver: role name not found" "$(e user grant-role app nope)"
t_eq "auth enable (etcdctl adds and grants the root role)" "Authentication Enabled" "$(e auth enable)"
t_eq "a gateway call without a token is refused" "etcdserver: user name is empty" \
  "$(api /v3/kv/range "{\"key\":\"$(b64 /config/a)\"}" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["message"])')"

# --- the seed's example: only /config/ ---------------------------------------------------------
t_eq "no user: refused" "Error: etcdserver: user name is empty" "$(e put /config/a 1)"
t_eq "app writes inside /config/" "OK" "$(e --user app:apppw put /config/a 1)"
t_eq "app reads inside /config/" "$(printf '/config/a\n1')" "$(e --user app:apppw get /config/a)"
t_eq "app reads the whole prefix" "$(printf '/config/a\n1')" "$(e --user app:apppw get /config/ --prefix)"
t_eq "app refused outside" "Error: etcdserver: permission denied" "$(e --user app:apppw put /other 1)"
t_eq "app refused reading outside" "Error: etcdserver: permission denied" "$(e --user app:apppw get /other)"
t_eq "app refused reading a wider range" "Error: etcdserver: permission denied" \
  "$(e --user app:apppw get /config --prefix)"
t_eq "root may do anything" "OK" "$(e --user root:rootpw put /other 2)"
t_eq "Txn inside /config/" "$(printf 'SUCCESS\n\nOK')" \
  "$(printf 'value("/config/a") = "1"\n\nput /config/b 2\n\n\n' | e --user app:apppw txn)"
t_eq "Txn comparing a key outside" "Error: etcdserver: permission denied" \
  "$(printf 'value("/other") = "2"\n\nput /config/b 3\n\n\n' | e --user app:apppw txn)"
t_eq "Txn writing a key outside (failure branch)" "Error: etcdserver: permission denied" \
  "$(printf 'value("/config/a") = "x"\n\n\nput /other 3\n\n' | e --user app:apppw txn)"
out=$(run_bounded 6 "$ETCDCTL" --endpoints "$EP" --user app:apppw watch /other 2>&1)
t_eq "watch outside /config/ is canceled" \
  "watch was canceled (rpc error: code = PermissionDenied desc = etcdserver: permission denied)" \
  "$(echo "$out" | head -1)"
t_eq "wrong password" "Error: etcdserver: authentication failed, invalid user ID or password" \
  "$(e --user app:wrong get /config/a)"
t_eq "app may not list users" "Error: etcdserver: permission denied" "$(e --user app:apppw user list)"
t_eq "app may get itself" "$(printf 'User: app\nRoles: cfg')" "$(e --user app:apppw user get app)"

# --- operations that need root ---------------------------------------------------------------------
# etcd 3.4's maintenance server answers with the auth store's untranslated error (gRPC Unknown)
for op in "defrag" "snapshot save $T_DIR/app.snap" "endpoint hashkv"; do
  t_eq "app may not: $op" "Error: rpc error: code = Unknown desc = auth: permission denied" \
    "$(e --user app:apppw $op | sed -E 's/^(Failed to defragment etcd member\[.*\]) \((.*)\)$/Error: \2/' | tail -1)"
done
for op in "member add x --peer-urls=http://127.0.0.1:1" "member remove 1" \
          "member update 1 --peer-urls=http://127.0.0.1:1"; do
  t_eq "app may not: $op" "Error: etcdserver: permission denied" "$(e --user app:apppw $op)"
done
t_eq "app may list alarms" "" "$(e --user app:apppw alarm list)"
t_eq "app may compact" "compacted revision 1" "$(e --user app:apppw compaction 1)"
t_eq "app may read the endpoint status" 1 "$(e --user app:apppw endpoint status | grep -c "$EP")"
t_eq "app may list members" 1 "$(e --user app:apppw member list | grep -c started)"
t_eq "root may defragment" "Finished defragmenting etcd member[$EP]" "$(e --user root:rootpw defrag)"

# --- leases ---------------------------------------------------------------------------------------------
LID=$(e --user app:apppw lease grant 100 | awk '{print $2}')
t_check "app may grant a lease" test -n "$LID"
e --user root:rootpw put /other/l x --lease="$LID" >/dev/null
t_eq "app may not revoke a lease holding a key outside" \
  "Error: failed to revoke lease (etcdserver: permission denied)" \
  "$(e --user app:apppw lease revoke "$LID")"
LID2=$(e --user app:apppw lease grant 100 | awk '{print $2}')
e --user app:apppw put /config/l x --lease="$LID2" >/dev/null
t_eq "app may revoke a lease holding only its keys" "lease $LID2 revoked" "$(e --user app:apppw lease revoke "$LID2")"

# --- tokens through the gateway -----------------------------------------------------------------
TOK=$(token app apppw)
t_check "the gateway's Authenticate returns a token" test -n "$TOK"
got=$(api /v3/kv/range "{\"key\":\"$(b64 /config/a)\"}" "$TOK" | grep -c '"count":"1"')
t_eq "a gateway read with the token" 1 "$got"
t_eq "a gateway read outside with the token" "etcdserver: permission denied" \
  "$(api /v3/kv/range "{\"key\":\"$(b64 /other)\"}" "$TOK" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["message"])')"
t_eq "a bogus token" "etcdserver: invalid auth token" \
  "$(api /v3/kv/range "{\"key\":\"$(b64 /config/a)\"}" bogus.1 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["message"])')"
# The TTL is 2 s and etcd sweeps tokens once a second: left unused for 3.5 s it is gone (a wait
# for time itself; any poll with the token would renew it).
sleep 3.5
expired=$(api /v3/kv/range "{\"key\":\"$(b64 /config/a)\"}" "$TOK" | "$PY" -c 'import json,sys; print(json.load(sys.stdin).get("message",""))')
t_eq "an expired token" "etcdserver: invalid auth token" "$expired"

# --- disable, re-enable ---------------------------------------------------------------------------
t_eq "auth disable (root)" "Authentication Disabled" "$(e --user root:rootpw auth disable)"
t_eq "disabled: no user needed" "OK" "$(e put /other 4)"
t_eq "users kept" "$(printf 'app\nroot')" "$(e user list)"
t_eq "roles kept" "$(printf 'cfg\nroot')" "$(e role list)"
t_eq "permissions kept" "$(printf 'Role cfg\nKV Read:\n\t[/config/, /config0) (prefix /config/)\nKV Write:\n\t[/config/, /config0) (prefix /config/)')" \
  "$(e role get cfg)"
t_eq "re-enable" "Authentication Enabled" "$(e auth enable)"
t_eq "re-enabled: app still confined" "Error: etcdserver: permission denied" "$(e --user app:apppw get /other)"
t_eq "re-enabled: app still reads /config/" "$(printf '/config/a\n1')" "$(e --user app:apppw get /config/a)"

# (python3-etcd3's user/password travel as gRPC call credentials, which its grpc library sends
# only over TLS: that client is checked in the TLS part at the end.)

# --- a deleted user, a restart ----------------------------------------------------------------------
t_eq "root may not be deleted while enabled" "Error: etcdserver: invalid auth management" \
  "$(e --user root:rootpw user delete root)"
t_eq "delete app" "User app deleted" "$(e --user root:rootpw user delete app)"
t_eq "a deleted user is refused" "Error: etcdserver: authentication failed, invalid user ID or password" \
  "$(e --user app:apppw get /config/a)"
stop_all
start_member "$SUT" a1 "$T_DIR/a1" "$CP" "$PP" --auth-token-ttl 2
for _ in $(seq 1 100); do
  [ "$(e --user root:rootpw endpoint health 2>&1 | grep -c 'is healthy')" = 1 ] && break
  sleep 0.1
done
t_eq "after a restart auth is still enabled" "Error: etcdserver: user name is empty" "$(e get /config/a)"
t_eq "after a restart root still works" "$(printf '/config/a\n1')" "$(e --user root:rootpw get /config/a)"

# --- TLS: the client certificate's CN is the user; python3-etcd3 with user and password ------------
stop_all
CERTS=$T_DIR/certs
if ! bash "$HERE/../../hack/certs.sh" "$CERTS" --client-cn root --client-cn app >/dev/null 2>&1; then
  t_fail "hack/certs.sh makes the certificates"
  t_done
fi
alloc_ports TC TP
"$SUT" --name t1 --data-dir "$T_DIR/t1" --listen-client-urls "https://127.0.0.1:$TC" \
  --advertise-client-urls "https://127.0.0.1:$TC" --listen-peer-urls "http://127.0.0.1:$TP" \
  --initial-advertise-peer-urls "http://127.0.0.1:$TP" --initial-cluster "t1=http://127.0.0.1:$TP" \
  --cert-file "$CERTS/server.pem" --key-file "$CERTS/server-key.pem" \
  --trusted-ca-file "$CERTS/ca.pem" --client-cert-auth >>"$T_DIR/t1.log" 2>&1 &
track_pid $!
# et CN ARGS...: etcdctl over TLS with the client certificate whose CN is CN (client = root).
et() {
  local cn=$1 f
  shift
  f=$([ "$cn" = root ] && echo client || echo "$cn")
  run_bounded 15 "$ETCDCTL" --endpoints "https://127.0.0.1:$TC" --command-timeout 5s \
    --cacert "$CERTS/ca.pem" --cert "$CERTS/$f.pem" --key "$CERTS/$f-key.pem" "$@" 2>&1 | grep -v '^{"level"'
}
for _ in $(seq 1 100); do
  [ "$(et root endpoint health 2>&1 | grep -c 'is healthy')" = 1 ] && break
  sleep 0.1
done
out=$(et root user add root:rootpw && et root role add cfg &&
  et root role grant-permission cfg readwrite /config/ --prefix=true &&
  et root user add app:apppw && et root user grant-role app cfg && et root auth enable)
t_eq "auth set up over TLS" "Authentication Enabled" "$(echo "$out" | tail -1)"
t_eq "the certificate CN root acts as root" "OK" "$(et root put /other 1)"
t_eq "the certificate CN app writes inside /config/" "OK" "$(et app put /config/a 1)"
t_eq "the certificate CN app is refused outside" "Error: etcdserver: permission denied" "$(et app put /other 2)"
pyout=$(run_bounded 20 "$PY" - "$TC" "$CERTS" <<'PYEOF' 2>&1
import sys, etcd3
port, d = int(sys.argv[1]), sys.argv[2]
def client(pw):
    return etcd3.client("127.0.0.1", port, user="app", password=pw, timeout=5, ca_cert=d + "/ca.pem",
                        cert_cert=d + "/app.pem", cert_key=d + "/app-key.pem")
c = client("apppw")
print(c.get("/config/a")[0].decode())
try:
    c.get("/other")
    print("read outside allowed")
except Exception as e:
    print("denied" if "permission denied" in str(e) else "other error: %r" % e)
try:
    client("bad").get("/config/a")
    print("bad password accepted")
except Exception as e:
    print("refused" if "authentication failed" in str(e) else "other error: %r" % e)
PYEOF
)
t_eq "python3-etcd3 with user and password (over TLS)" "$(printf '1\ndenied\nrefused')" "$pyout"

# --- the gateway's Auth answers, byte for byte as etcd 3.4's (golden output taken from it) ------------
stop_all
alloc_ports GC GP
start_member "$SUT" g1 "$T_DIR/g1" "$GC" "$GP"
wait_ready "http://127.0.0.1:$GC" 20 >/dev/null
# gw PATH JSON [TOKEN]: one call, IDs and numbers of the header masked.
gw() {
  run_bounded 10 curl -s -m 8 -X POST ${3:+-H "Authorization: $3"} -d "$2" "http://127.0.0.1:$GC$1" |
    sed -E 's/"(cluster_id|member_id|raft_term|revision)":"[0-9]+"/"\1":N/g'
  echo
}
{
  gw /v3/auth/user/add '{"name":"root","password":"r"}'
  gw /v3/auth/role/add '{"name":"root"}'
  gw /v3/auth/user/grant '{"user":"root","role":"root"}'
  gw /v3/auth/role/add '{"name":"cfg"}'
  gw /v3/auth/role/grant '{"name":"cfg","perm":{"permType":"READWRITE","key":"L2NvbmZpZy8=","range_end":"L2NvbmZpZzA="}}'
  gw /v3/auth/role/grant '{"name":"cfg","perm":{"key":"YQ=="}}'
  gw /v3/auth/enable '{}'
  GT=$(token_at "$GC" root r)
  gw /v3/auth/user/list '{}' "$GT"
  gw /v3/auth/user/get '{"name":"root"}' "$GT"
  gw /v3/auth/role/get '{"role":"cfg"}' "$GT"
  gw /v3/auth/role/list '{}' "$GT"
  gw /v3/auth/role/revoke '{"role":"cfg","key":"YQ=="}' "$GT"
  gw /v3/auth/role/revoke '{"role":"cfg","key":"Yg=="}' "$GT"
  gw /v3/auth/user/delete '{"name":"nobody"}' "$GT"
  gw /v3/auth/user/add '{"name":"","password":"x"}' "$GT"
  gw /v3/auth/role/add '{"name":""}' "$GT"
  gw /v3/auth/user/revoke '{"name":"root","role":"cfg"}' "$GT"
  gw /v3/auth/disable '{}' "$GT"
  gw /v3/auth/authenticate '{"name":"root","password":"r"}'
} >"$T_DIR/gw.out"
cat >"$T_DIR/gw.golden" <<'GOLDEN'
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N}}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N}}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N}}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N}}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N}}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N}}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N}}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N},"users":["root"]}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N},"roles":["root"]}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N},"perm":[{"permType":"READWRITE","key":"L2NvbmZpZy8=","range_end":"L2NvbmZpZzA="},{"key":"YQ=="}]}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N},"roles":["cfg","root"]}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N}}
{"error":"etcdserver: permission is not granted to the role","message":"etcdserver: permission is not granted to the role","code":9}
{"error":"etcdserver: user name not found","message":"etcdserver: user name not found","code":9}
{"error":"etcdserver: user name is empty","message":"etcdserver: user name is empty","code":3}
{"error":"etcdserver: role name is empty","message":"etcdserver: role name is empty","code":3}
{"error":"etcdserver: role is not granted to the user","message":"etcdserver: role is not granted to the user","code":9}
{"header":{"cluster_id":N,"member_id":N,"revision":N,"raft_term":N}}
{"error":"etcdserver: authentication is not enabled","message":"etcdserver: authentication is not enabled","code":9}
GOLDEN
t_same "the gateway's Auth answers are etcd 3.4's" "$T_DIR/gw.golden" "$T_DIR/gw.out"

t_done
