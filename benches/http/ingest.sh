#!/usr/bin/env bash
# `/ingest` alone, before/after: two builds of Quiver (A and B) side by side, each with a data
# directory and `fsync = "every_second"` (issue 12's setting), measured by wrk (1 thread,
# 8 connections) posting one body of 100 `transactions` events, in alternating rounds.
#   bash benches/http/ingest.sh BINARY_A BINARY_B   (ROUNDS, default 3; SECONDS, default 4)
# Prints each round's events/s and the server's CPU per event (user + system, from /proc).
set -euo pipefail
source "$(dirname "$0")/../../tests/clients/lib.sh"
rounds=${ROUNDS:-3} seconds=${SECONDS_PER_ROUND:-4}
work=$(mktemp -d)
servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import datetime, json, random, sys
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
rng = random.Random(1)
events = [{"record": {"user_id": f"user_{rng.randrange(10000)}",
                      "merchant": f"merchant_{rng.randrange(1000)}",
                      "terminal_id": rng.randrange(5000), "amt": round(rng.random() * 500, 2),
                      "category": rng.choice(["food", "travel", "gas"]),
                      "is_online": rng.random() < 0.5, "transaction_id": f"tx_{rng.randrange(10**9)}",
                      "is_fraud": 0, "timestamp": now}} for _ in range(100)]
body = {"workspace_name": "prod", "dry_run": False, "records": {"transactions": events}}
with open(f"{sys.argv[1]}/body.json", "w") as f:
    json.dump(body, f)
with open(f"{sys.argv[1]}/ingest.lua", "w") as f:
    f.write(f'wrk.method = "POST"\nlocal f = io.open("{sys.argv[1]}/body.json")\n'
            'wrk.body = f:read("*a")\nf:close()\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            'wrk.headers["Authorization"] = "Tecton-key bench-key"\n')
PY
for side in a b; do
  binary=$1
  shift
  QUIVER_ADMIN_KEY=bench-key QUIVER_LOG=warn "$binary" serve --config "$repo_root/config.toml" \
    --listen 127.0.0.1:0 --data-dir "$work/$side-data" --fsync every_second \
    >"$work/$side.out" 2>"$work/$side.err" &
  servers+=($!)
  listening_url "$work/$side.out" "$work/$side.err" "$!"
  printf -v "url_$side" %s "$listening_url/ingest"
  printf -v "pid_$side" %s "$!"
  wrk -t1 -c8 -d1s -s "$work/ingest.lua" "$listening_url/ingest" >/dev/null   # warm-up
done
hz=$(getconf CLK_TCK)
for round in $(seq "$rounds"); do
  for side in a b; do
    url_var="url_$side" pid_var="pid_$side"
    before=$(awk '{print $14 + $15}' "/proc/${!pid_var}/stat")
    out=$(wrk -t1 -c8 -d"${seconds}s" -s "$work/ingest.lua" "${!url_var}")
    after=$(awk '{print $14 + $15}' "/proc/${!pid_var}/stat")
    if grep -q Non-2xx <<<"$out"; then echo "$side: refused requests: $out" >&2; exit 1; fi
    rate=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    awk -v side="$side" -v round="$round" -v rate="$rate" -v ticks="$((after - before))" \
      -v hz="$hz" -v seconds="$seconds" 'BEGIN {
        printf "round %d %s: %.0f events/s, server CPU %.2f us/event\n", round, side,
          rate * 100, ticks / hz / (rate * seconds * 100) * 1e6 }'
  done
done
