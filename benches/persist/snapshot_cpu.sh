#!/usr/bin/env bash
# CPU a snapshot of a large store costs, and on which threads: per thread name the CPU time and
# page faults between POST /admin/snapshots and the file's arrival, then the process's total
# (which also counts threads that ended meanwhile, such as the snapshot's nice-19 threads).
# No read load: CPU time, unlike wrk's p99, does not depend much on what else the machine runs.
#
# Usage: bash benches/persist/snapshot_cpu.sh [rows=2000000] [snapshots=3]
# QUIVER_BIN runs other builds, one after the other (default target/release/quiver).
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-2000000}; snapshots=${2:-3}
cargo build --release --bin quiver --example make_snapshot 2>&1 | tail -1
work=$(mktemp -d)
trap 'kill -KILL ${quiver_pid:-} 2>/dev/null; wait ${quiver_pid:-} 2>/dev/null; rm -rf "$work"' EXIT
target/release/examples/make_snapshot "$rows" "$work/data" >/dev/null
tick=$(getconf CLK_TCK)
# One line per thread: id, name, minor faults, CPU ticks.
threads() {
  for task in /proc/$quiver_pid/task/*; do
    stat=$(cat "$task/stat" 2>/dev/null) || continue
    set -- ${stat##*) }
    echo "$(basename "$task") $(tr ' ' '_' <"$task/comm") ${8} $((${12} + ${13}))"
  done | sort
}
process() { stat=$(cat /proc/$quiver_pid/stat); set -- ${stat##*) }; echo "$((${12} + ${13})) ${8}"; }
for bin in ${QUIVER_BIN:-target/release/quiver}; do
  echo "$bin (rows: $rows, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  QUIVER_ADMIN_KEY=bench-admin-key QUIVER_LOG=warn "$bin" serve --replace-lost-keys --listen 127.0.0.1:8096 --data-dir "$work/data" >"$work/out" 2>&1 &
  quiver_pid=$!
  until grep -q "listening" "$work/out" 2>/dev/null; do kill -0 $quiver_pid 2>/dev/null || { cat "$work/out"; exit 1; }; sleep 0.05; done
  sleep 1
  for i in $(seq 1 "$snapshots"); do
    threads >"$work/before"; read -r cpu0 faults0 < <(process)
    started=$(date +%s%N)
    answer=$(curl -s -XPOST 127.0.0.1:8096/admin/snapshots -H 'Authorization: Tecton-key bench-admin-key')
    id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$answer")
    [ -n "$id" ] || { echo "POST /admin/snapshots gave no id: $answer" >&2; exit 1; }
    until [ -e "$work/data/snapshots/snapshot-$id.qvs" ]; do sleep 0.02; done
    wall=$(( ($(date +%s%N) - started) / 1000000 ))
    sleep 0.5
    threads >"$work/after"; read -r cpu1 faults1 < <(process)
    rm "$work/data/snapshots/snapshot-$id.qvs"
    by_thread=$(join "$work/before" "$work/after" | awk -v tick="$tick" '
      { ms = ($7 - $4) * 1000 / tick; faults = $6 - $3
        if (ms > 0 || faults > 0) { cpu[$2] += ms; flt[$2] += faults } }
      END { for (name in cpu) printf " %s %d ms %d faults;", name, cpu[name], flt[name] }')
    echo "  snapshot $i: wall $wall ms, process CPU $(( (cpu1 - cpu0) * 1000 / tick )) ms, $((faults1 - faults0)) faults; threads alive throughout:${by_thread:- none}"
  done
  # SIGKILL: a plain kill has the server take its shutdown snapshot first (at 10 M rows,
  # seconds of the next build's turn, and a newer start-up snapshot for it to restore).
  kill -KILL $quiver_pid; wait $quiver_pid 2>/dev/null || true
done
