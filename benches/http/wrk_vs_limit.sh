#!/usr/bin/env bash
# Issue 12's closed-loop targets measured with wrk, the issue's own tool: one Quiver (the
# demo config, `quiver bench`'s data set loaded) and the limit (`quiver bench bare-server`,
# answering Quiver's own bytes after parsing the body as JSON), read in alternating rounds by
# wrk (1 thread, 32 connections, benches/http/get_features_random.lua), so both see the same
# machine load; the seed's fraud_detection_feature_service, then the plain user_risk_service.
# wrk costs less CPU a request than `quiver bench`'s load generator and runs under the normal
# scheduling policy.
#   bash benches/http/wrk_vs_limit.sh [BINARY]   (default target/release/quiver; ROUNDS, default
#   3; SECONDS_PER_ROUND, default 5; KEYS, default 10000)
# Prints each round's req/s, p99 and server CPU a request, then per service the medians and
# Quiver ÷ limit.
set -euo pipefail
source "$(dirname "$0")/../../tests/clients/lib.sh"
binary=${1:-$repo_root/target/release/quiver}
rounds=${ROUNDS:-3} seconds=${SECONDS_PER_ROUND:-5}
export KEYS=${KEYS:-10000}
command -v wrk >/dev/null || { echo "wrk is not installed (Debian: apt-get install wrk)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT

QUIVER_ADMIN_KEY=bench-key QUIVER_LOG=warn "$binary" serve --config "$repo_root/config.toml" \
  --listen 127.0.0.1:0 >"$work/quiver.out" 2>"$work/quiver.err" &
pids+=($!) pid_quiver=$!
listening_url "$work/quiver.out" "$work/quiver.err" "$pid_quiver"
url_quiver=$listening_url
"$binary" bench --config "$repo_root/config.toml" --url "$url_quiver" --api-key bench-key \
  --quick --keys "$KEYS" --connections 2 --rate 20 >/dev/null 2>"$work/load.err"

# The limit's answers: Quiver's own to one request of each service.
path=/api/v1/feature-service/get-features
services="fraud_detection_feature_service user_risk_service"
for service in $services; do
  curl -sf -X POST -H "Authorization: Tecton-key bench-key" -H "Content-Type: application/json" \
    -d "{\"params\":{\"workspaceName\":\"prod\",\"featureServiceName\":\"$service\",\"joinKeyMap\":{\"user_id\":\"key_1\",\"merchant\":\"key_2\"},\"requestContextMap\":{\"amount\":12.5}}}" \
    "$url_quiver$path" >"$work/answer-$service.json"
done
python3 - "$path" "$work" $services <<'PY'
import json, sys
path, work, services = sys.argv[1], sys.argv[2], sys.argv[3:]
answers = [{"path": path, "service": s, "body": open(f"{work}/answer-{s}.json").read()} for s in services]
json.dump(answers, open(f"{work}/responses.json", "w"))
PY
"$binary" bench bare-server --listen 127.0.0.1:0 --responses "$work/responses.json" \
  >"$work/limit.out" 2>"$work/limit.err" &
pids+=($!) pid_limit=$!
listening_url "$work/limit.out" "$work/limit.err" "$pid_limit" 900 0.1 "bare handler listening on "
url_limit=$listening_url

for service in $services; do
  for round in $(seq "$rounds"); do
    for side in quiver limit; do
      url_var="url_$side" pid_var="pid_$side"
      before=$(awk '{print $14 + $15}' "/proc/${!pid_var}/stat")
      SERVICE=$service wrk -t1 -c32 -d"${seconds}s" --latency \
        -s "$repo_root/benches/http/get_features_random.lua" "${!url_var}$path" \
        >"$work/$service-$side-$round.txt"
      after=$(awk '{print $14 + $15}' "/proc/${!pid_var}/stat")
      echo "$((after - before))" >"$work/$service-$side-$round.ticks"
    done
  done
done
python3 - "$work" "$rounds" "$(getconf CLK_TCK)" $services <<'PY'
import re, statistics, sys
work, rounds, hz, services = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
for service in services:
    medians = {}
    for side in ("quiver", "limit"):
        rates = []
        for r in range(1, rounds + 1):
            text = open(f"{work}/{service}-{side}-{r}.txt").read()
            if "Non-2xx" in text or "Socket errors" in text:
                sys.exit(f"{service}, {side}, round {r}: wrk saw errors:\n{text}")
            rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
            requests = int(re.search(r"(\d+) requests in", text).group(1))
            # The distribution's own line: a stdev share such as "87.99%" also ends in "99%".
            p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)
            cpu = int(open(f"{work}/{service}-{side}-{r}.ticks").read()) / hz / requests * 1e6
            rates.append(rate)
            print(f"{service} {side} round {r}: {rate / 1000:.1f}k req/s, p99 {p99}, "
                  f"server CPU {cpu:.1f} us a request")
        medians[side] = statistics.median(rates)
    print(f"{service}: medians quiver {medians['quiver'] / 1000:.1f}k, limit "
          f"{medians['limit'] / 1000:.1f}k req/s; quiver / limit "
          f"{medians['quiver'] / medians['limit']:.2f}")
PY
