#!/usr/bin/env bash
# Restore speed: Quiver loading a snapshot of N feature rows at start-up, next to Redis loading
# an RDB of the same N keys (a hash of the same three fields per key), in one run.
#
# Usage: bash benches/persist/restore.sh [rows=10000000]
# QUIVER_BIN runs other builds (default target/release/quiver; several, space-separated, restore
# the same snapshot one after the other, for before/after in one run); SNAPSHOT_FORMAT=v2 writes the
# snapshot as a format-2 build did (what builds before format 3 read).
# RUNS (default 3): each build restores, and Redis loads, that many times; each time is printed
# and the ratio is of the medians. Both files are synced to the disk before the first load. On
# this machine a process's first restore after the file was written (or after the page cache
# was dropped) ran 1.3-2x as long as the next ones, for either program: one run of each, as
# this script took before, compared whichever of them had the slower start.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-10000000}
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
cargo build --release --bin quiver --example make_snapshot 2>&1 | tail -1
work=$(mktemp -d)
trap 'kill ${quiver_pid:-} ${redis_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT

runs=${RUNS:-3}
# median of the numbers on standard input
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
target/release/examples/make_snapshot "$rows" "$work/quiver" ${SNAPSHOT_FORMAT:-} >/dev/null
sync
snapshot_bytes=$(du -b "$work"/quiver/snapshots/*.qvs | cut -f1)
quiver_lines=()
for quiver_bin in ${QUIVER_BIN:-target/release/quiver}; do
  quiver_times=()
  for run in $(seq "$runs"); do
    rm -f "$work/quiver.out"
    start=$(date +%s.%N)
    QUIVER_ADMIN_KEY=bench QUIVER_LOG=warn "$quiver_bin" serve --replace-lost-keys --listen 127.0.0.1:0 --data-dir "$work/quiver" >"$work/quiver.out" 2>&1 &
    quiver_pid=$!
    until grep -qs "listening" "$work/quiver.out"; do kill -0 $quiver_pid 2>/dev/null || { cat "$work/quiver.out"; exit 1; }; sleep 0.05; done
    quiver_seconds=$(echo "$(date +%s.%N) - $start" | bc)
    rss_bytes=$(( $(awk '/^VmRSS/ {print $2}' /proc/$quiver_pid/status) * 1024 ))
    kill -9 $quiver_pid; wait $quiver_pid 2>/dev/null || true; quiver_pid=
    # The next restore starts from the snapshot alone, as this one did.
    find "$work/quiver" -mindepth 1 -maxdepth 1 ! -name snapshots -exec rm -rf {} +
    quiver_times+=("$quiver_seconds")
  done
  quiver_seconds=$(printf '%s\n' "${quiver_times[@]}" | median)
  quiver_lines+=("quiver ($quiver_bin): snapshot $snapshot_bytes bytes, start-up with restore ${quiver_times[*]} s, median ${quiver_seconds}s, $(echo "$rows / $quiver_seconds" | bc) rows/s, RSS $rss_bytes bytes ($(( rss_bytes / rows )) bytes/row)")
done

mkdir -p "$work/redis"
redis-server --port 6399 --dir "$work/redis" --save '' --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
until redis-cli -p 6399 ping >/dev/null 2>&1; do sleep 0.05; done
python3 - "$rows" <<'PY' | redis-cli -p 6399 --pipe >/dev/null
import sys
out = sys.stdout.buffer
def bulk(s):
    b = s.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)
for i in range(int(sys.argv[1])):
    parts = ["HSET", f"user_{i}", "last_amount", repr(i * 0.5), "last_merchant", f"merchant_{i % 1000}", "last_was_online", "1" if i % 2 == 0 else "0"]
    out.write(b"*%d\r\n" % len(parts) + b"".join(bulk(p) for p in parts))
PY
redis-cli -p 6399 save >/dev/null
rdb_bytes=$(du -b "$work/redis/dump.rdb" | cut -f1)
redis-cli -p 6399 shutdown nosave >/dev/null 2>&1 || true
wait $redis_pid 2>/dev/null || true
sync
redis_times=()
for run in $(seq "$runs"); do
  rm -f "$work/redis2.log"
  redis-server --port 6399 --dir "$work/redis" --save '' --appendonly no >"$work/redis2.log" 2>&1 &
  redis_pid=$!
  until grep -qs "DB loaded from disk" "$work/redis2.log"; do sleep 0.05; done
  redis_times+=("$(sed -n 's/.*DB loaded from disk: \([0-9.]*\) seconds.*/\1/p' "$work/redis2.log")")
  kill -9 $redis_pid; wait $redis_pid 2>/dev/null || true; redis_pid=
done
redis_seconds=$(printf '%s\n' "${redis_times[@]}" | median)

echo "rows: $rows"
printf '%s\n' "${quiver_lines[@]}"
echo "redis:  rdb $rdb_bytes bytes, load ${redis_times[*]} s, median ${redis_seconds}s, $(echo "$rows / $redis_seconds" | bc) rows/s"
echo "ratio (last build's median / redis's median): $(echo "scale=2; $quiver_seconds / $redis_seconds" | bc)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
