#!/usr/bin/env bash
# Per-node throughput and the cost of a forwarded lookup (issue 18; README, "Cluster",
# "Throughput and projection"). Starts, from one release binary: a single Quiver with no
# cluster, a 3-server NATS JetStream cluster on loopback ports and two Quiver nodes in
# partitioned mode with ONE partition and ONE owner, so one node (the owner) answers every
# lookup locally and the other forwards every lookup to it. Loads KEYS user_profile rows into
# each, then, with wrk (requests.lua) and the same settings for each target, in ROUNDS rounds
# (targets alternating in each round, so all see the same machine load):
#   reads:  GetFeatures (user_risk_service, uniform keys) against single / owner / forwarder
#   writes: the bulk rows route (ROWS_PER_REQUEST rows a request) against single / owner /
#           forwarder (cluster writes are acknowledged by JetStream, replicas 3)
# and the CPU (user + system) of every server process of the target's deployment (the single
# Quiver; or both nodes and the three NATS servers) during each measurement. Prints the
# medians as a table and writes them, with every round, to OUT (JSON).
#
#   bash benches/cluster/run.sh    (ROUNDS 3, SECONDS_PER_ROUND 5, KEYS 5000, CONNECTIONS 16,
#                                   ROWS_PER_REQUEST 100, QUIVER_BIN target/release/quiver,
#                                   NATS_SERVER nats-server on PATH or /usr/sbin/nats-server,
#                                   OUT benches/results/cluster.json)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/tests/clients/lib.sh"
rounds=${ROUNDS:-3} seconds=${SECONDS_PER_ROUND:-5} keys=${KEYS:-5000}
connections=${CONNECTIONS:-16} rows_per_request=${ROWS_PER_REQUEST:-100}
quiver=${QUIVER_BIN:-$repo/target/release/quiver}
nats_server=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
out=${OUT:-$repo/benches/results/cluster.json}
export ADMIN_KEY=cluster-bench-key KEYS=$keys
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

wait_for() {  # wait_for WHAT COMMAND...: polls COMMAND until it succeeds; fails after 120 s
  local what=$1 deadline=$((SECONDS + 120)); shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "gave up waiting for $what" >&2; exit 1; }
    sleep 0.2
  done
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The rows: user_1..user_KEYS, and the write body (the first ROWS_PER_REQUEST users, a later
# event time, so the first write of it is stored and later ones are compared and kept out).
python3 - "$keys" "$rows_per_request" "$work" <<'PY'
import json, sys
keys, per_request, work = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def row(i, day):
    return json.dumps({"user_id": f"user_{i}", "timestamp": f"2026-01-{day}T00:00:00Z",
                       "credit_score": 300 + i % 550, "account_age_days": i % 4000,
                       "is_verified": i % 3 == 0, "home_country": "DE",
                       "preferred_categories": ["grocery"], "signup_time": "2025-01-01T00:00:00Z"})
with open(f"{work}/rows.jsonl", "w") as f:
    f.writelines(row(i, 15) + "\n" for i in range(1, keys + 1))
with open(f"{work}/write.jsonl", "w") as f:
    f.writelines(row(i, 16) + "\n" for i in range(1, per_request + 1))
PY
export ROWS_FILE=$work/write.jsonl

# Three NATS servers with JetStream, routed to each other (as tests/integration/cluster.rs).
nats_pids=() client_ports=() route_ports=()
for i in 0 1 2; do client_ports+=("$(free_port)"); route_ports+=("$(free_port)"); done
for i in 0 1 2; do
  routes=$(for j in 0 1 2; do [ "$j" = "$i" ] || printf 'nats://127.0.0.1:%s,' "${route_ports[j]}"; done)
  "$nats_server" -a 127.0.0.1 -js -p "${client_ports[i]}" -sd "$work/nats$i" --server_name "s$i" \
    --cluster_name quiver-bench --cluster "nats://127.0.0.1:${route_ports[i]}" \
    --routes "${routes%,}" >"$work/nats$i.log" 2>&1 &
  pids+=($!) nats_pids+=($!)
done
nats_urls=$(printf 'nats://127.0.0.1:%s,' "${client_ports[@]}")
nats_urls=${nats_urls%,}
for i in 0 1 2; do
  wait_for "nats-server s$i" grep -q 'Server is ready' "$work/nats$i.log"
done

start() {  # start NAME [serve flags...]: a Quiver on a free port, ready; sets url_NAME, pid_NAME
  local name=$1; shift
  QUIVER_ADMIN_KEY=$ADMIN_KEY QUIVER_LOG=warn,quiver::cluster=info "$quiver" serve \
    --config "$repo/config.toml" --listen 127.0.0.1:0 "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  printf -v "pid_$name" %s "$!"
  listening_url "$work/$name.out" "$work/$name.err" "$!" 600
  printf -v "url_$name" %s "$listening_url"
  until curl -sf "$listening_url/readyz" >/dev/null; do
    kill -0 "$!" || { cat "$work/$name.err" >&2; exit 1; }
    sleep 0.2
  done
}
cluster_flags=(--nats-urls "$nats_urls" --cluster-replicas 3 --cluster-partitions 1 --cluster-owners 1)
start single
# The keys a cluster's nodes share (API-key digests, sealed secrets): fresh for each run.
QUIVER_IAM_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
QUIVER_MASTER_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
export QUIVER_IAM_KEY QUIVER_MASTER_KEY
start a "${cluster_flags[@]}" --node-id bench-a
start b "${cluster_flags[@]}" --node-id bench-b

# Which node rendezvous hashing made partition 0's owner; wait until it is caught up and, if it
# is the later node, until the earlier one gave the partition up (else it would read locally).
status() { QUIVER_LOG=warn "$quiver" cluster status --nats-urls "$nats_urls"; }
owner_ready() { status | grep -q 'partition 0: bench-[ab] ready (behind 0)$'; }
wait_for "an owner of partition 0, caught up" owner_ready
owner=$(status | sed -n 's/^  partition 0: bench-\([ab]\) ready.*/\1/p')
forwarder=$([ "$owner" = a ] && echo b || echo a)
[ "$owner" = a ] || wait_for "bench-a to give partition 0 up" grep -q 'gave a partition up' "$work/a.err"
for role in owner forwarder; do  # url_owner, pid_owner, url_forwarder, pid_forwarder
  url_var=url_${!role} pid_var=pid_${!role}
  printf -v "url_$role" %s "${!url_var}"
  printf -v "pid_$role" %s "${!pid_var}"
done
echo "partition 0 owned by bench-$owner; bench-$forwarder forwards every lookup" >&2

load_rows() {  # load_rows URL: every row of rows.jsonl through the bulk rows route
  curl -sf "$1/admin/workspaces/prod/feature-views/user_profile/rows" \
    -H "Authorization: Tecton-key $ADMIN_KEY" -H 'Content-Type: application/x-ndjson' \
    --data-binary "@$work/rows.jsonl" >/dev/null
}
load_rows "$url_single"
load_rows "$url_owner"
# Sanity: the forwarder answers the last key's row (read from the owner, which applied it before
# answering the load).
last_user=$(printf '{"params":{"workspaceName":"prod","featureServiceName":"user_risk_service","joinKeyMap":{"user_id":"user_%s","merchant":"merchant_none"}}}' "$keys")
curl -sf "$url_forwarder/api/v1/feature-service/get-features" -H "Authorization: Tecton-key $ADMIN_KEY" \
  -d "$last_user" | python3 -c 'import json, sys; answer = json.load(sys.stdin)
assert str(300 + int(sys.argv[1]) % 550) in answer["result"]["features"], answer' "$keys"

ticks() {  # ticks NAME=PID...: each one's CPU time so far (user + system, clock ticks), NAME=N
  for named in "$@"; do echo "${named%=*}=$(awk '{print $14 + $15}' "/proc/${named#*=}/stat")"; done
}
measure() {  # measure MODE TARGET ROUND URL NAME=PID...: one wrk run, its RESULT and CPU ticks
  local mode=$1 target=$2 round=$3 url=$4; shift 4
  local before after
  before=$(ticks "$@")
  MODE=$mode wrk -t1 -c"$connections" -d"${seconds}s" -s "$here/requests.lua" "$url" \
    >"$work/wrk.out" 2>&1 || { cat "$work/wrk.out" >&2; exit 1; }
  after=$(ticks "$@")
  # One line: MODE TARGET ROUND {"name": ticks, ...} RESULT-json
  printf '%s %s %s %s %s\n' "$mode" "$target" "$round" \
    "$(paste -d' ' <(echo "$before") <(echo "$after") | python3 -c 'import json, sys
print(json.dumps({a.split("=")[0]: int(b.split("=")[1]) - int(a.split("=")[1])
                  for a, b in (line.split() for line in sys.stdin)}, separators=(",", ":")))')" \
    "$(sed -n 's/^RESULT //p' "$work/wrk.out")" >>"$work/results"
  printf 'round %s %-5s %-9s %s (load average %s)\n' "$round" "$mode" "$target" \
    "$(sed -n 's/^RESULT //p' "$work/wrk.out")" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
}
cluster_pids=("owner=$pid_owner" "forwarder=$pid_forwarder" "nats0=${nats_pids[0]}" "nats1=${nats_pids[1]}"
  "nats2=${nats_pids[2]}")
for round in $(seq "$rounds"); do
  for mode in read write; do
    measure "$mode" single "$round" "$url_single" "single=$pid_single"
    measure "$mode" local "$round" "$url_owner" "${cluster_pids[@]}"
    measure "$mode" forwarded "$round" "$url_forwarder" "${cluster_pids[@]}"
  done
done

python3 - "$work/results" "$out" "$(getconf CLK_TCK)" "$rows_per_request" <<PY
import json, statistics, sys, os
results, out, hz, per_request = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
runs = []
for line in open(results):
    mode, target, rnd, ticks, result = line.split(" ", 4)
    r = json.loads(result)
    ticks = json.loads(ticks)
    r.update(mode=mode, target=target, round=int(rnd), cpuSeconds=sum(ticks.values()) / hz,
             cpuUsPerRequestByProcess={name: t / hz / max(r["requests"], 1) * 1e6
                                       for name, t in ticks.items()},
             requestsPerSecond=r["requests"] / r["seconds"])
    r["cpuUsPerRequest"] = r["cpuSeconds"] / max(r["requests"], 1) * 1e6
    runs.append(r)
median = statistics.median
summary = []
for mode in ("read", "write"):
    for target in ("single", "local", "forwarded"):
        rs = [r for r in runs if r["mode"] == mode and r["target"] == target]
        summary.append(dict(mode=mode, target=target,
            requestsPerSecond=median(r["requestsPerSecond"] for r in rs),
            p50Ms=median(r["p50Ms"] for r in rs), p99Ms=median(r["p99Ms"] for r in rs),
            cpuUsPerRequest=median(r["cpuUsPerRequest"] for r in rs),
            cpuUsPerRequestByProcess={name: median(r["cpuUsPerRequestByProcess"][name] for r in rs)
                                      for name in rs[0]["cpuUsPerRequestByProcess"]},
            errors=sum(r["non2xx"] + r["socketErrors"] for r in rs)))
label = {("read", "single"): "GetFeatures, single node (no cluster)",
         ("read", "local"): "GetFeatures, partitioned, local lookup",
         ("read", "forwarded"): "GetFeatures, partitioned, forwarded",
         ("write", "single"): "rows write, single node",
         ("write", "local"): "rows write, cluster, via owner",
         ("write", "forwarded"): "rows write, cluster, via non-owner"}
print(f"{'median of $rounds rounds, ${seconds} s each':40} {'req/s':>8} {'rows/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10} errors  (CPU us/req by process)")
for s in summary:
    rows = s["requestsPerSecond"] * per_request if s["mode"] == "write" else None
    print(f"{label[(s['mode'], s['target'])]:40} {s['requestsPerSecond']:8.0f} "
          f"{'' if rows is None else f'{rows:8.0f}':>8} {s['p50Ms']:7.2f} {s['p99Ms']:7.2f} "
          f"{s['cpuUsPerRequest']:10.0f} {s['errors']:6}  "
          + " ".join(f"{name} {us:.0f}" for name, us in s["cpuUsPerRequestByProcess"].items()))
# Projection (README): reads are CPU-bound and a node's lookups cost what they cost here, so N
# nodes read N times one node's local rate in replicated mode; in partitioned mode with R = 2
# owners a lookup reaching a uniformly chosen node is forwarded with probability (N - R) / N and
# costs the forwarded/local CPU ratio: counting every process here (NATS on the same cores), or
# the two Quiver nodes only (NATS on machines of its own). Writes go through one JetStream
# stream, whose leader orders every write: flat in N.
by = {(s["mode"], s["target"]): s for s in summary}
local, fwd = by[("read", "local")], by[("read", "forwarded")]
def quiver_us(s):
    return s["cpuUsPerRequestByProcess"]["owner"] + s["cpuUsPerRequestByProcess"]["forwarder"]
ratios = dict(allProcesses=fwd["cpuUsPerRequest"] / local["cpuUsPerRequest"],
              quiverNodesOnly=quiver_us(fwd) / quiver_us(local))
writes = by[("write", "local")]["requestsPerSecond"] * per_request
projection = []
print(f"projected: forwarded/local CPU per lookup {ratios['allProcesses']:.2f} (every process), "
      f"{ratios['quiverNodesOnly']:.2f} (Quiver nodes only)")
print(f"{'nodes':>5} {'replicated reads/s':>18} {'forwarded share':>15} "
      f"{'partitioned reads/s (all, Quiver only)':>38} {'writes rows/s':>13}")
for n in range(1, 9):
    forwarded = max(n - 2, 0) / n
    partitioned = {k: n * local["requestsPerSecond"] / (1 + forwarded * (r - 1))
                   for k, r in ratios.items()}
    projection.append(dict(nodes=n, replicatedReadsPerSecond=n * local["requestsPerSecond"],
                           partitionedForwardedShare=forwarded,
                           partitionedReadsPerSecond=partitioned, writeRowsPerSecond=writes))
    print(f"{n:5} {n * local['requestsPerSecond']:18.0f} {forwarded:15.2f} "
          f"{partitioned['allProcesses']:19.0f} {partitioned['quiverNodesOnly']:18.0f} {writes:13.0f}")
with open("/proc/loadavg") as f:
    load = f.read().split()[:3]
json.dump(dict(command="bash benches/cluster/run.sh", rounds=$rounds, secondsPerRound=$seconds,
               keys=$keys, connections=$connections, rowsPerRequest=per_request,
               loadTool="wrk -t1 -c$connections + benches/cluster/requests.lua", cores=os.cpu_count(),
               cpuCounts="user+system of the target's server processes: the single Quiver, or both cluster nodes and the 3 NATS servers",
               loadAverageAtEnd=load, summary=summary,
               forwardedLocalCpuRatios=ratios, projection=projection, runs=runs),
          open(out, "w"), indent=1)
print(f"saved {out}")
PY
