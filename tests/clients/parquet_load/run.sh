#!/usr/bin/env bash
# Parquet bulk loading, end to end: pyarrow writes the demo's user_profile rows to Parquet
# (Snappy, pyarrow's default; event times in nanoseconds as pandas has them) and the same rows
# to CSV; `quiver load` loads one file into each of two servers started without the demo seed;
# GetFeatures then answers the same values from both. A file whose column has the wrong type
# is refused naming the column and the row group, and nothing is loaded; so is a Zstandard one,
# naming the codec.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib.sh"

client_venv parquet_load pyarrow
admin_key="parquet-load-check-key"
work=$(mktemp -d)
cp -r "$repo_root/features" "$work/"
"$venv/bin/python" "$here/check_parquet_load.py" config "$repo_root/config.toml" "$work/config.toml"
"$venv/bin/python" "$here/check_parquet_load.py" write "$work/features/demo/user_profile.jsonl" "$work"

quiver=("$repo_root/target/debug/quiver")
load() { QUIVER_ADMIN_KEY=$admin_key "${quiver[@]}" load --config "$work/config.toml" \
  --workspace prod --feature-view user_profile --server "$1" "$2"; }

quiver_config="$work/config.toml" start_quiver
from_parquet=$quiver_url
quiver_config="$work/config.toml" start_quiver
from_csv=$quiver_url
load "$from_parquet" "$work/user_profile.parquet"
load "$from_csv" "$work/user_profile.csv"

if load "$from_parquet" "$work/bad.parquet" 2>"$work/bad.err"; then
  echo "a Parquet file with a string credit_score was loaded" >&2; exit 1
fi
grep -q "row group 1, row 0: column \`credit_score\`: expected int64, got a string; nothing was loaded" "$work/bad.err" \
  || { echo "unexpected refusal:" >&2; cat "$work/bad.err" >&2; exit 1; }
if load "$from_parquet" "$work/zstd.parquet" 2>"$work/zstd.err"; then
  echo "a Zstandard Parquet file was loaded" >&2; exit 1
fi
grep -q "column \`user_id\` in row group 0 is compressed with ZSTD" "$work/zstd.err" \
  || { echo "unexpected refusal:" >&2; cat "$work/zstd.err" >&2; exit 1; }

"$venv/bin/python" "$here/check_parquet_load.py" compare "$from_parquet" "$from_csv" "$admin_key" \
  "$work/features/demo/user_profile.jsonl"
rm -rf "$work"
echo "parquet_load: ok"
