#!/usr/bin/env bash
# GetFeatures latency while a snapshot of a large store is written: wrk's p50/p99 over a run
# without a snapshot, then over a run of the same length during which snapshots are taken; PAIRS
# such pairs (default 3) one after the other on one server, then the medians of the pairs' p99s
# and of their ratios (during / without), so that one noisy run does not decide the ratio. Each
# pair's lines mean what the script's two lines meant when it ran one pair (`no snapshot (1/3):`,
# `during snapshots (1/3):`); the last lines are the medians, the snapshots written and how much
# of them was left in the page cache (summed over the pairs: each pair's files are removed).
#
# Usage: bash benches/persist/snapshot_latency.sh [rows=2000000] [seconds=10]
# QUIVER_BIN runs another build (default target/release/quiver); SNAPSHOT_FORMAT=v2 writes the
# snapshot as a format-2 build did (what builds before format 3 read). CONTROL=dd writes a file
# of the snapshot's size with dd (buffered, then fsync) instead of taking snapshots: what the
# same bytes cost the reads when quiver has no part in writing them. SETTLE (seconds, default
# the run's length) is a discarded warm-up run after a `sync`: the start-up snapshot's file,
# just written by make_snapshot, is still being written back and the restored store's pages are
# still being touched when the server starts, which spoiled the first measured run at 10 M rows.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-2000000}; seconds=${2:-10}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --bin quiver --example make_snapshot 2>&1 | tail -1
work=$(mktemp -d)
# SIGKILL, and wait: a plain kill starts quiver's shutdown snapshot, which at 10 M rows on a
# busy machine can go on for a minute (at idle priority, into the removed directory), into
# the next run's measurements.
trap 'kill -KILL ${quiver_pid:-} 2>/dev/null; wait ${quiver_pid:-} 2>/dev/null; rm -rf "$work"' EXIT
target/release/examples/make_snapshot "$rows" "$work/data" ${SNAPSHOT_FORMAT:-} >/dev/null
QUIVER_ADMIN_KEY=bench-admin-key QUIVER_LOG=warn "${QUIVER_BIN:-target/release/quiver}" serve --replace-lost-keys --listen 127.0.0.1:8095 --data-dir "$work/data" >"$work/out" 2>&1 &
quiver_pid=$!
until grep -q "listening" "$work/out"; do kill -0 $quiver_pid 2>/dev/null || { cat "$work/out"; exit 1; }; sleep 0.05; done
url=http://127.0.0.1:8095/api/v1/feature-service/get-features
latency() { wrk -t1 -c4 -d"${seconds}s" --latency -s benches/http/get_features.lua "$url" | awk '/ 50%/ {p50=$2} / 99%/ {p99=$2} /Requests\/sec/ {rps=$2} END {print "p50 " p50 ", p99 " p99 ", " rps " req/s"}'; }
# Machine-wide counters, to see where a run's time went besides quiver: CPU ms in iowait, softirq
# and steal (the host running something else on our vCPU, such as a VM's block I/O), and
# allocations stalled to reclaim or compact memory (serving threads included), and the pages
# kswapd reclaimed (at normal priority, on the serving threads' CPUs): the page cache fills the
# memory of a busy build machine, and every new page of a file must then be reclaimed first.
machine() {
  awk -v tick="$(getconf CLK_TCK)" '/^cpu / {print $6 * 1000 / tick, $8 * 1000 / tick, $9 * 1000 / tick}' /proc/stat
  awk '/^allocstall_/ {a += $2} /^compact_stall / {c = $2} /^pgsteal_direct / {d = $2} /^pgsteal_kswapd / {k = $2} END {print a + 0, c + 0, d + 0, k + 0}' /proc/vmstat
}
measure() {
  local before after result
  before=($(machine)); result=$(latency); after=($(machine))
  echo "$result; machine: iowait $((after[0] - before[0])) ms, softirq $((after[1] - before[1])) ms, steal $((after[2] - before[2])) ms, allocation stalls $((after[3] - before[3])), compaction stalls $((after[4] - before[4])), pages reclaimed by allocations $((after[5] - before[5])), by kswapd $((after[6] - before[6]))"
}
sync
settle=${SETTLE:-$seconds}
[ "$settle" -gt 0 ] && wrk -t1 -c4 -d"${settle}s" -s benches/http/get_features.lua "$url" >/dev/null
echo "rows: $rows, load average $(cut -d' ' -f1-3 /proc/loadavg)"
# p99 as wrk prints it (850.00us, 2.23ms, 1.02s), in ms.
p99_ms() { sed -n 's/.*p99 \([0-9.]*\)\([a-z]*\),.*/\1 \2/p' | awk '{print $1 * ($2 == "us" ? 0.001 : $2 == "s" ? 1000 : $2 == "m" ? 60000 : 1)}'; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
pairs=${PAIRS:-3}; written=0; cached_mb=0; : >"$work/p99s"
for pair in $(seq 1 "$pairs"); do
  without=$(measure)
  echo "no snapshot ($pair/$pairs):      $without"
  (
    sleep 1
    size_mb=$(( $(stat -c %s "$work"/data/snapshots/*.qvs | head -1) >> 20 ))
    for _ in 1 2 3; do
      if [ "${CONTROL:-}" = dd ]; then
        dd if=/dev/zero of="$work/control" bs=1M count="$size_mb" conv=fsync 2>/dev/null
        rm "$work/control"; sleep 1.5; continue
      fi
      # Wait for this snapshot's own file (renamed into place once written). Not the listing:
      # it reads and verifies every snapshot file, which would load the machine it measures.
      id=$(curl -s -XPOST 127.0.0.1:8095/admin/snapshots -H 'Authorization: Tecton-key bench-admin-key' | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
      [ -n "$id" ] || { echo "POST /admin/snapshots gave no id" >&2; exit 1; }
      until [ -e "$work/data/snapshots/snapshot-$id.qvs" ]; do sleep 0.1; done
      echo "$work/data/snapshots/snapshot-$id.qvs" >>"$work/written"
      sleep 1.5
    done
  ) &
  snapshots_pid=$!
  during=$(measure)
  echo "during snapshots ($pair/$pairs): $during"
  # The pair's snapshots are all written before the next pair's run without one begins.
  wait $snapshots_pid
  echo "$(p99_ms <<<"$without") $(p99_ms <<<"$during")" >>"$work/p99s"
  if [ -s "$work/written" ]; then
    written=$((written + $(wc -l <"$work/written")))
    if command -v fincore >/dev/null; then
      cached_mb=$((cached_mb + $(xargs fincore -bno RES <"$work/written" | awk '{mb += $1 / 1048576} END {printf "%d", mb}')))
    fi
    xargs rm -f <"$work/written"; : >"$work/written"
  fi
done
echo "p99 ms without/during per pair: $(awk '{printf "%s/%s ", $1, $2}' "$work/p99s")"
echo "medians: p99 without $(cut -d' ' -f1 "$work/p99s" | median) ms, during $(cut -d' ' -f2 "$work/p99s" | median) ms, ratio $(awk '{print $2 / $1}' "$work/p99s" | median | xargs printf "%.2f") (median of the pairs' ratios); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "snapshots written: $written"
command -v fincore >/dev/null && echo "of them in the page cache: $cached_mb MB"
true
