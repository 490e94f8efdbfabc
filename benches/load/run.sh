#!/usr/bin/env bash
# `quiver load` end to end (README, "Performance"): writes ROWS synthetic `user_profile` rows as
# CSV and as Parquet (make_rows.py, with pyarrow), starts a release server with the demo config,
# then times `quiver load` of each file RUNS times, alternating, and prints rows/s per run and
# the median. The figure covers everything the CLI does: reading and validating the file,
# encoding JSON Lines chunks, sending them and waiting for the last answer.
#
#   PYTHON=/path/to/venv/bin/python bash benches/load/run.sh [ROWS] [RUNS] [quiver load flags...]
#
# QUIVER_BIN picks the server's binary (default target/release/quiver); QUIVER_CLIS, a
# space-separated list of binaries, the loaders to compare (default: QUIVER_BIN), run in turn.
# QUIVER_BINS, a space-separated list of builds, compares whole builds instead: each serves on
# its own port and loads into itself (a server change and a CLI change measured together).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/clients/lib.sh"
rows=${1:-1000000}
runs=${2:-3}
shift $(($# < 2 ? $# : 2))
quiver=${QUIVER_BIN:-$repo/target/release/quiver}
if [ -n "${QUIVER_BINS:-}" ]; then
  read -r -a clis <<<"$QUIVER_BINS"
  servers=("${clis[@]}")
else
  read -r -a clis <<<"${QUIVER_CLIS:-$quiver}"
  servers=("$quiver")
fi
admin_key="load-bench-key"
work=$(mktemp -d)
server_pids=()
trap 'for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null; done; rm -rf "$work"' EXIT

"${PYTHON:-python3}" "$here/make_rows.py" "$rows" "$work"
urls=()
for index in "${!servers[@]}"; do
  QUIVER_ADMIN_KEY=$admin_key QUIVER_LOG=warn "${servers[$index]}" serve \
    --config "$repo/config.toml" --listen 127.0.0.1:0 \
    >"$work/server$index.out" 2>"$work/server$index.log" &
  server_pids+=($!)
  listening_url "$work/server$index.out" "$work/server$index.log" "$!"
  urls+=("$listening_url")
done

for run in $(seq "$runs"); do
  for cli in "${!clis[@]}"; do
  for format in csv parquet; do
    start=$(date +%s.%N)
    QUIVER_ADMIN_KEY=$admin_key "${clis[$cli]}" load --config "$repo/config.toml" --workspace prod \
      --feature-view user_profile --server "${urls[$((${#urls[@]} > 1 ? cli : 0))]}" "$@" "$work/user_profile.$format" \
      >/dev/null 2>"$work/load.err" || { cat "$work/load.err" >&2; exit 1; }
    end=$(date +%s.%N)
    rate=$(echo "$rows / ($end - $start)" | bc)
    echo "$rate" >>"$work/$cli.$format.rates"
    printf 'run %s %-24s %-8s %6.2f s  %8d rows/s  (load average %s)\n' "$run" \
      "$(basename "${clis[$cli]}")" "$format" "$(echo "$end - $start" | bc)" "$rate" \
      "$(cut -d' ' -f1-3 /proc/loadavg)"
  done
  done
done
for cli in "${!clis[@]}"; do
  for format in csv parquet; do
    printf 'median %-24s %-8s %8d rows/s\n' "$(basename "${clis[$cli]}")" "$format" \
      "$(sort -n "$work/$cli.$format.rates" | sed -n "$(((runs + 1) / 2))p")"
  done
done
# Each server's CPU (user + system, start-up included) per million rows it loaded.
for index in "${!servers[@]}"; do
  ticks=$(awk '{print $14 + $15}' "/proc/${server_pids[$index]}/stat")
  loaded=$((rows * runs * 2 * ${#clis[@]} / ${#servers[@]}))
  printf 'server %-24s %6.2f CPU-s per 1M rows\n' "$(basename "${servers[$index]}")" \
    "$(echo "$ticks / $(getconf CLK_TCK) / $loaded * 1000000" | bc -l)"
done
