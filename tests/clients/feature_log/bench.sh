#!/usr/bin/env bash
# What feature logging costs: two release servers on copies of the demo, one whose
# user_risk_service logs at sample rate 1.0 (Parquet) and one that does not, measured by
# `quiver bench --url` in alternating rounds (ROUNDS, default 5; BENCH_SECONDS per workload,
# default 5; QUIVER_BINARY, default target/release/quiver).
# Prints each round's closed-loop GetFeatures and GetFeaturesBatch throughput, the medians and
# their ratio, and the logging server's counts (rows logged, dropped at the full queue, failed).
# Not part of run_all.sh: it takes minutes and wants a quiet machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"
rounds=${ROUNDS:-5}
seconds=${BENCH_SECONDS:-5}
binary=${QUIVER_BINARY:-$repo_root/target/release/quiver}
[ -x "$binary" ] || (cd "$repo_root" && cargo build --release --bin quiver)
work=$(mktemp -d)
for side in on off; do
  mkdir "$work/$side"
  cp -r "$repo_root/features" "$repo_root/config.toml" "$work/$side/"
done
python3 "$here/check_feature_log.py" configure "$work/on/features/prod/services.toml"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
start() {  # start SIDE: a release server on a free port; sets url_SIDE
  QUIVER_ADMIN_KEY=bench-key QUIVER_LOG=info "$binary" serve --config "$work/$1/config.toml" \
    --data-dir "$work/$1/data" --listen 127.0.0.1:0 >"$work/$1.out" 2>"$work/$1.err" &
  pids+=($!)
  listening_url "$work/$1.out" "$work/$1.err" "$!" && printf -v "url_$1" %s "$listening_url"
}
start on
start off
for round in $(seq "$rounds"); do
  for side in on off; do
    url_var="url_$side"
    "$binary" bench --config "$work/$side/config.toml" --url "${!url_var}" --api-key bench-key \
      --service prod.user_risk_service --seconds "$seconds" --rounds 1 --json \
      >"$work/$side-$round.json" 2>/dev/null
  done
done
kill -TERM "${pids[@]}"
wait "${pids[@]}" || true
python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
workloads = ["get_features user_risk_service", "get_features_batch(10) user_risk_service"]
def result(side, round_, workload, closed):
    with open(f"{work}/{side}-{round_}.json") as f:
        results = json.load(f)["results"]
    return next(r for r in results if r["workload"] == workload
                and (r["pacing"] == "closed loop") == closed)
median = statistics.median
for workload in workloads:
    print(workload)
    medians = {}
    for side, label in [("on", "logging at 1.0"), ("off", "no logging")]:
        closed = [result(side, r, workload, True)["requestsPerSecond"] for r in range(1, rounds + 1)]
        opened = [result(side, r, workload, False) for r in range(1, rounds + 1)]
        p50 = median(r["latencyMicros"]["p50"] for r in opened)
        p99 = median(r["latencyMicros"]["p99"] for r in opened)
        medians[side] = median(closed)
        print(f"  {label:15} closed loop {closed} req/s, median {medians[side]:.0f}; "
              f"open loop ({opened[0]['pacing']}) median p50 {p50:.0f} us, p99 {p99:.0f} us")
    print(f"  closed-loop throughput, ratio on/off of the medians: {medians['on'] / medians['off']:.3f}")
PY
grep "feature log closed" "$work/on.err" || echo "the logging server did not report its counts" >&2
