#!/usr/bin/env bash
# GetFeatures throughput: Quiver vs a bare actix-web handler that parses the same request and
# returns a response of the same size, in one run, alternating servers so that machine noise
# hits both alike. Prints each round and the medians and ratio.
#
# Usage: bash benches/http/compare.sh [rounds=5] [seconds=10] [connections=32]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}; seconds=${2:-10}; connections=${3:-32}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bin quiver --example bare_actix 2>&1 | tail -1

QUIVER_ADMIN_KEY=bench-admin-key QUIVER_LOG=warn target/release/quiver serve --listen 127.0.0.1:8090 >/tmp/quiver-bench.out 2>&1 &
quiver_pid=$!
trap 'kill $quiver_pid ${bare_pid:-} 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf 127.0.0.1:8090/health >/dev/null && break; sleep 0.1; done
curl -s -XPOST 127.0.0.1:8090/api/v1/feature-service/get-features -H 'Authorization: Tecton-key bench-admin-key' \
  -d @benches/http/get_features.json > /tmp/quiver-bench-response.json
echo "response: $(wc -c </tmp/quiver-bench-response.json) bytes"
target/release/examples/bare_actix 127.0.0.1:8091 /tmp/quiver-bench-response.json &
bare_pid=$!
sleep 0.5

rps() { wrk -t2 -c"$connections" -d"${seconds}s" -s benches/http/get_features.lua "$1/api/v1/feature-service/get-features" | awk '/Requests\/sec/ {print $2}'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
q=(); b=()
for round in $(seq "$rounds"); do
  q+=("$(rps http://127.0.0.1:8090)"); b+=("$(rps http://127.0.0.1:8091)")
  echo "round $round: quiver ${q[-1]} req/s, bare actix-web ${b[-1]} req/s"
done
qm=$(printf '%s\n' "${q[@]}" | median); bm=$(printf '%s\n' "${b[@]}" | median)
echo "median: quiver $qm req/s, bare actix-web $bm req/s, ratio $(awk "BEGIN {printf \"%.2f\", $qm/$bm}")"
