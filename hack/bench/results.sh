# hack/bench/results.sh: sourced by hack/bench.sh and hack/bench/cluster.sh. Figures are recorded
# per row and side (etcd or cetcd) in order of first appearance and printed as one markdown table
# with the cetcd/etcd ratio; revision PORT reads a server's current revision over the gateway.
declare -A R   # R[row|side] = figure
ROWS=()

# rec ROW SIDE VALUE
rec() {
  local k
  for k in "${ROWS[@]}"; do [ "$k" = "$1" ] && break; done
  [ "${k:-}" = "$1" ] || ROWS+=("$1")
  R["$1|$2"]=$3
}

# print_table: the rows recorded so far, with the cetcd/etcd ratio ("-" without an etcd figure).
print_table() {
  local row e c ratio
  echo "| row | etcd | cetcd | cetcd/etcd |"
  echo "| --- | ---: | ---: | ---: |"
  for row in "${ROWS[@]}"; do
    e=${R["$row|etcd"]:-0} c=${R["$row|cetcd"]:-0}
    ratio=$(awk -v e="$e" -v c="$c" 'BEGIN { if (e + 0 > 0) printf "%.2f", c / e; else print "-" }')
    echo "| $row | $e | $c | $ratio |"
  done
}

# revision PORT
revision() {
  curl -s -m 10 "http://127.0.0.1:$1/v3/kv/range" -d '{"key":"AA==","count_only":true}' |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["header"]["revision"])'
}
