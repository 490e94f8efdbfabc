#!/usr/bin/env bash
# Whether two builds answer GetFeatures and GetFeaturesBatch alike: starts both binaries on the
# demo config and runs compare_answers.py against them (N requests of each of its two
# generators, default 3,000: services and options, and request bodies with 16 `Authorization`
# values; SEED, when given, seeds both); exits 1 if any answer differs.
#   bash benches/http/compare_answers.sh BINARY_A BINARY_B [N [SEED]]
set -euo pipefail
source "$(dirname "$0")/../../tests/clients/lib.sh"
cd "$repo_root"
pids=()
urls=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for binary in "$1" "$2"; do
  out=$(mktemp) err=$(mktemp)
  QUIVER_ADMIN_KEY=bench-key QUIVER_LOG=warn "$binary" serve --config config.toml \
    --listen 127.0.0.1:0 >"$out" 2>"$err" &
  pids+=($!)
  listening_url "$out" "$err" "$!" 600
  urls+=("$listening_url")
done
python3 benches/http/compare_answers.py "${urls[@]}" "${@:3}"
