#!/usr/bin/env bash
# tests/integration/metrics.sh BIN_DIR: the metrics surface of a 3-member cluster, scraped as
# Prometheus does. Written and first run against etcd 3.4 (SERVER_BIN=/usr/bin/etcd); the same
# expectations hold for cetcd.
#   1. --listen-metrics-urls (member c1): that port serves /metrics and /health, and nothing
#      of the client API (POST /v3/kv/range there: 404);
#   2. every member's /metrics (client port) parses strictly and has every metric family the
#      seeds' alert rules and dashboard use, and the rest of the list in
#      metrics_check.py, with etcd's type and label names (histograms well formed);
#   3. the seeds' alert rules evaluated on two scrapes METRICS_WINDOW (10) s apart around 20 puts:
#      the fsync and (cetcd; etcd 3.4 probes every 30 s only) peer round-trip p99s are
#      evaluable, and no alert fires; exactly one
#      member has etcd_server_is_leader 1;
#   3b. the Grafana dashboard shipped with the chart and manifests/monitoring
#      (charts/cetcd-operator/dashboards/cetcd.json) queries only metric families, and labels,
#      that these scrapes have (metrics_check.py --dashboard): it cannot drift from the server;
#   4. the counters moved with the load: on c1, grpc_server_handled_total{Put,OK} and
#      grpc_server_started_total{Put} grew by 20, the client gRPC byte counters grew (>= 16
#      bytes a put request), etcd_mvcc_put_total by >= 20 on every member;
#   5. /health is a quorum read (etcd 3.4: a QGET through Raft with a 1 s timeout): on a healthy
#      cluster every member answers 200 {"health":"true"} (text/plain) and c1's
#      etcd_server_health_success grows by one per answer; with c2 and c3 stopped (SIGSTOP),
#      c1 answers 503 {"health":"false"}\n within HEALTH_BOUND_S (5) s on the client port and
#      on the metrics port, etcd_server_health_failures grows, and (cetcd only) /livez still
#      answers 200; after SIGCONT, /health on c1 is true again within 30 s.
# Bounded: every wait has a deadline; only this script's processes are stopped.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"

SUT=$(resolve_server "${1:-bin}") || exit 2
WINDOW=${METRICS_WINDOW:-10}
echo "# server under test: $SUT"

cluster_define "$SUT" 3 || exit 1
alloc_ports MP || exit 1
IC=$(c_initial_cluster 1 2 3)
member_start 1 new "$IC" --listen-metrics-urls "http://127.0.0.1:$MP"
member_start 2 new "$IC"
member_start 3 new "$IC"
for i in 1 2 3; do c_wait_ready "$i" 30 || { t_fail "member c$i ready"; t_done; }; done

# 1. the metrics listener
t_check "metrics port: /health answers true" \
  sh -c "curl -s -m 5 http://127.0.0.1:$MP/health | grep -q '\"health\": *\"true\"'"
t_check "metrics port: /metrics has etcd_server_has_leader 1" \
  sh -c "curl -s -m 5 http://127.0.0.1:$MP/metrics | grep -qx 'etcd_server_has_leader 1'"
code=$(curl -s -o /dev/null -w '%{http_code}' -m 5 -X POST -d '{"key":"YQ=="}' "http://127.0.0.1:$MP/v3/kv/range")
t_eq "metrics port: no client API (POST /v3/kv/range -> 404)" 404 "$code"

scrape() {  # scrape DIR: every member's /metrics into DIR/cN
  mkdir -p "$1"
  for i in 1 2 3; do curl -s -m 5 "$(c_client_url "$i")/metrics" >"$1/c$i"; done
}
# rtt_seen: some member already has a peer round-trip sample (etcd 3.4 probes its peers every
# few seconds; cetcd times the leader's heartbeats)
rtt_seen() {
  local i m
  for i in 1 2 3; do
    m=$(curl -s -m 5 "$(c_client_url "$i")/metrics")
    grep -qE '^etcd_network_peer_round_trip_time_seconds_count\{.*\} [1-9]' <<<"$m" && return 0
  done
  return 1
}
# value SCRAPE_FILE REGEX: the value of the first sample line matching REGEX (0 if none)
value() { grep -E "$2" "$1" | head -1 | awk '{print $NF}' | grep . || echo 0; }

wait_for 30 "a peer round-trip sample" rtt_seen || t_fail "a peer round-trip sample within 30 s"
scrape "$T_DIR/before"
for n in $(seq 1 20); do ctl 1 put "/metrics/k$n" "v$n" >/dev/null || t_fail "put $n"; done
ctl 1 get /metrics/k1 >/dev/null
sleep "$WINDOW"   # the alert rules rate() over a window: it has to pass
scrape "$T_DIR/after"

# 2 and 3
OPT=()
is_real_etcd "$SUT" && OPT=(--rtt-optional)   # etcd 3.4 probes peer round trips every 30 s only
"$PY" "$HERE/metrics_check.py" --cluster "${OPT[@]}" "$T_DIR/before" "$T_DIR/after" "$WINDOW" >"$T_DIR/check.out" 2>&1
grep -E '^(not )?ok ' "$T_DIR/check.out" | sed -E 's/^(not )?ok [0-9]+ - /\1/' | while read -r line; do
  case "$line" in "not "*) echo "FAIL ${line#not }" ;; *) echo "PASS $line" ;; esac
done >"$T_DIR/check.res"
nfail=$(grep -c '^FAIL' "$T_DIR/check.res")
npass=$(grep -c '^PASS' "$T_DIR/check.res")
if [ "$nfail" -eq 0 ] && [ "$npass" -gt 0 ]; then
  t_ok "metrics_check.py: $npass checks of names, types, labels and alert rules"
else
  t_fail "metrics_check.py: $nfail of $((npass + nfail)) checks failed" "$(grep -A3 '^not ok' "$T_DIR/check.out" | head -40)"
fi

# 3b. the dashboard's queries name what the members export
DASHBOARD=$HERE/../../charts/cetcd-operator/dashboards/cetcd.json
"$PY" "$HERE/metrics_check.py" --dashboard "$DASHBOARD" "$T_DIR/after" >"$T_DIR/dash.out" 2>&1
nfail=$(grep -c '^not ok' "$T_DIR/dash.out")
npass=$(grep -c '^ok' "$T_DIR/dash.out")
if [ "$nfail" -eq 0 ] && [ "$npass" -gt 10 ]; then
  t_ok "metrics_check.py --dashboard: the $npass queries' metrics and labels are in the scrapes"
else
  t_fail "metrics_check.py --dashboard: $nfail of $((npass + nfail)) checks failed" "$(grep -A3 '^not ok' "$T_DIR/dash.out" | head -40)"
fi

# 4. counters moved with the load
PUT_OK='^grpc_server_handled_total\{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"\}'
PUT_STARTED='^grpc_server_started_total\{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"\}'
d=$(( $(value "$T_DIR/after/c1" "$PUT_OK") - $(value "$T_DIR/before/c1" "$PUT_OK") ))
t_eq "c1: grpc_server_handled_total{Put,OK} grew by 20" 20 "$d"
d=$(( $(value "$T_DIR/after/c1" "$PUT_STARTED") - $(value "$T_DIR/before/c1" "$PUT_STARTED") ))
t_eq "c1: grpc_server_started_total{Put} grew by 20" 20 "$d"
d=$(( $(value "$T_DIR/after/c1" '^etcd_network_client_grpc_received_bytes_total ') - $(value "$T_DIR/before/c1" '^etcd_network_client_grpc_received_bytes_total ') ))
t_check "c1: etcd_network_client_grpc_received_bytes_total grew by >= 20 x 16 ($d)" test "$d" -ge 320
d=$(( $(value "$T_DIR/after/c1" '^etcd_network_client_grpc_sent_bytes_total ') - $(value "$T_DIR/before/c1" '^etcd_network_client_grpc_sent_bytes_total ') ))
t_check "c1: etcd_network_client_grpc_sent_bytes_total grew ($d)" test "$d" -gt 0
for i in 1 2 3; do
  d=$(( $(value "$T_DIR/after/c$i" '^etcd_mvcc_put_total ') - $(value "$T_DIR/before/c$i" '^etcd_mvcc_put_total ') ))
  t_check "c$i: etcd_mvcc_put_total grew by >= 20 ($d)" test "$d" -ge 20
done

# 5. /health needs a quorum
HB=${HEALTH_BOUND_S:-5}
C1=$(c_client_url 1)
# get_health URL: "CODE BODY" of one GET (the body's newline shown as \n); curl bounded at 15 s
get_health() {
  curl -s -m 15 -o "$T_DIR/hbody" -w '%{http_code} %{content_type}' "$1" >"$T_DIR/hcode"
  printf '%s %s' "$(cut -d' ' -f1 "$T_DIR/hcode")" "$(sed -z 's/\n/\\n/g' "$T_DIR/hbody")"
}
counter() { curl -s -m 5 "$C1/metrics" | value /dev/stdin "^$1 "; }
for i in 1 2 3; do
  t_eq "c$i: /health on a healthy cluster" '200 {"health":"true"}' "$(get_health "$(c_client_url "$i")/health")"
done
t_check "c1: /health is text/plain, as etcd's" grep -q 'text/plain; charset=utf-8' "$T_DIR/hcode"
ok0=$(counter etcd_server_health_success)
get_health "$C1/health" >/dev/null
get_health "http://127.0.0.1:$MP/health" >/dev/null
t_eq "c1: etcd_server_health_success grew by one per answer (client and metrics port)" \
  $((ok0 + 2)) "$(counter etcd_server_health_success)"
fail0=$(counter etcd_server_health_failures)
kill -STOP "${C_PID[2]}" "${C_PID[3]}"
t0=$(now_ms)
got=$(get_health "$C1/health")
dt=$(( $(now_ms) - t0 ))
t_eq "c1 without quorum: /health answers 503 and etcd's body" '503 {"health":"false"}\n' "$got"
t_check "c1 without quorum: /health answered within ${HB} s (${dt} ms)" test "$dt" -le $((HB * 1000))
t_eq "c1 without quorum: the metrics port's /health too" '503 {"health":"false"}\n' \
  "$(get_health "http://127.0.0.1:$MP/health")"
if is_real_etcd "$SUT"; then
  t_skip "c1 without quorum: /livez still answers" "etcd 3.4 has no /livez"
else
  t_eq "c1 without quorum: /livez still answers" "200 ok" "$(get_health "$C1/livez")"
fi
d=$(( $(counter etcd_server_health_failures) - fail0 ))
t_check "c1: etcd_server_health_failures grew by the 2 false answers ($d)" test "$d" -eq 2
kill -CONT "${C_PID[2]}" "${C_PID[3]}"
health_true() { [ "$(get_health "$C1/health")" = '200 {"health":"true"}' ]; }
t_check "c1 after SIGCONT: /health is true again within 30 s" wait_for 30 "/health true on c1" health_true

t_done
