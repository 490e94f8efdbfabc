#!/usr/bin/env bash
# GetFeatures latency while a snapshot of a large store is written: wrk's p50/p99 over a run
# without a snapshot, then over a run of the same length during which snapshots are taken.
#
# Usage: bash benches/persist/snapshot_latency.sh [rows=2000000] [seconds=10]
# QUIVER_BIN runs another build (default target/release/quiver); SNAPSHOT_FORMAT=v2 writes the
# snapshot as a format-2 build did (what builds before format 3 read).
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-2000000}; seconds=${2:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bin quiver --example make_snapshot 2>&1 | tail -1
work=$(mktemp -d)
trap 'kill ${quiver_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
target/release/examples/make_snapshot "$rows" "$work/data" ${SNAPSHOT_FORMAT:-} >/dev/null
QUIVER_ADMIN_KEY=bench-admin-key QUIVER_LOG=warn "${QUIVER_BIN:-target/release/quiver}" serve --replace-lost-keys --listen 127.0.0.1:8095 --data-dir "$work/data" >"$work/out" 2>&1 &
quiver_pid=$!
until grep -q "listening" "$work/out"; do kill -0 $quiver_pid 2>/dev/null || { cat "$work/out"; exit 1; }; sleep 0.05; done
url=http://127.0.0.1:8095/api/v1/feature-service/get-features
latency() { wrk -t1 -c4 -d"${seconds}s" --latency -s benches/http/get_features.lua "$url" | awk '/ 50%/ {p50=$2} / 99%/ {p99=$2} /Requests\/sec/ {rps=$2} END {print "p50 " p50 ", p99 " p99 ", " rps " req/s"}'; }
echo "rows: $rows"
echo "no snapshot:     $(latency)"
(
  sleep 1
  for _ in 1 2 3; do
    # Wait for this snapshot's own file (renamed into place once written). Not the listing:
    # it reads and verifies every snapshot file, which would load the machine it measures.
    id=$(curl -s -XPOST 127.0.0.1:8095/admin/snapshots -H 'Authorization: Tecton-key bench-admin-key' | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    [ -n "$id" ] || { echo "POST /admin/snapshots gave no id" >&2; exit 1; }
    until [ -e "$work/data/snapshots/snapshot-$id.qvs" ]; do sleep 0.1; done
    sleep 1.5
  done
) &
snapshots_pid=$!
echo "during snapshots: $(latency)"
wait $snapshots_pid
echo "snapshots written: $(ls "$work/data/snapshots" | wc -l)"
