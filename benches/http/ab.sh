#!/usr/bin/env bash
# Before/after for the hot path: two builds of Quiver (A and B) serving the demo side by side,
# measured by `quiver bench --url` in alternating rounds, so both see the same machine load.
#   bash benches/http/ab.sh BINARY_A BINARY_B [SERVICE]   (ROUNDS, default 5; SECONDS, default 4)
# FSYNC=every_second (or always): each server keeps a rows journal in a data directory of its
# own, as issue 12's `/ingest` target asks; unset: no data directory (nothing journaled).
# Prints each round's closed-loop throughput and server CPU per request, the medians and B/A.
set -euo pipefail
source "$(dirname "$0")/../../tests/clients/lib.sh"
a=$1 b=$2 service=${3:-prod.fraud_detection_feature_service}
rounds=${ROUNDS:-5} seconds=${SECONDS_PER_ROUND:-4}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

start() {  # start NAME BINARY: a server on a free port; sets url_NAME and pid_NAME
  local durable=()
  [[ -n ${FSYNC:-} ]] && durable=(--data-dir "$work/$1-data" --fsync "$FSYNC")
  QUIVER_ADMIN_KEY=bench-key QUIVER_LOG=warn "$2" serve --config "$repo_root/config.toml" \
    --listen 127.0.0.1:0 "${durable[@]}" >"$work/$1.out" 2>"$work/$1.err" &
  pids+=($!)
  printf -v "pid_$1" %s "$!"
  listening_url "$work/$1.out" "$work/$1.err" "$!" && printf -v "url_$1" %s "$listening_url"
}
start a "$a"
start b "$b"
for round in $(seq "$rounds"); do
  for side in a b; do
    url_var="url_$side" pid_var="pid_$side"
    # CPU time (user + system ticks) the server spent during its round.
    before=$(awk '{print $14 + $15}' "/proc/${!pid_var}/stat")
    "$a" bench --config "$repo_root/config.toml" --url "${!url_var}" --api-key bench-key \
      --service "$service" --seconds "$seconds" --warmup-seconds 1 --rounds 1 --json \
      >"$work/$side-$round.json" 2>/dev/null
    after=$(awk '{print $14 + $15}' "/proc/${!pid_var}/stat")
    echo "$((after - before))" >"$work/$side-$round.ticks"
  done
done
python3 - "$work" "$rounds" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
work, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
median = statistics.median
def closed(side, r):
    with open(f"{work}/{side}-{r}.json") as f:
        results = json.load(f)["results"]
    return [x for x in results if x["pacing"] == "closed loop"]
workloads = [x["workload"] for x in closed("a", 1)]
for side in "ab":
    # CPU per request over the whole round (every closed- and open-loop request it served).
    cpu = []
    for r in range(1, rounds + 1):
        with open(f"{work}/{side}-{r}.json") as f:
            served = sum(x["succeeded"] for x in json.load(f)["results"])
        ticks = int(open(f"{work}/{side}-{r}.ticks").read())
        cpu.append(ticks / hz / served * 1e6)
    print(f"{side}: server CPU per request, median {median(cpu):.1f} us (rounds {[round(c, 1) for c in cpu]})")
for workload in workloads:
    med = {}
    for side in "ab":
        rates = [next(x for x in closed(side, r) if x["workload"] == workload)["requestsPerSecond"]
                 for r in range(1, rounds + 1)]
        med[side] = median(rates)
        print(f"{workload} {side}: {[round(x) for x in rates]} req/s, median {med[side]:.0f}")
    print(f"{workload}: B/A {med['b'] / med['a']:.3f}")
PY
