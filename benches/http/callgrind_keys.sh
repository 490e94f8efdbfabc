#!/usr/bin/env bash
# Server instructions and cache misses a request with keys drawn at random from `quiver bench`'s
# data set (KEYS keys a join key, 10,000 by default), as its wall-clock runs draw them; not the
# demo's five users that callgrind.sh sends. The two disagree about batches for two reasons:
# serving reads each distinct key of a GetFeaturesBatch once, so callgrind.sh's ten-row batches
# over five users read half their user rows; and five users' rows stay in the caches, while
# 10,000 keys' index slots and rows do not.
# The server runs under callgrind with a cache simulation sized as one core of this machine:
# D1 32 KiB, and valgrind's last level ("LL") set to the 512 KiB L2, so DLmr counts the reads
# that leave the core. `quiver bench --url --quick` loads the data set; every key is then read
# once (aggregates' memos filled, as in a run of seconds); then for each kind, 50 unmeasured and
# N measured requests over one keep-alive connection, keys from a fixed random sequence.
#   bash benches/http/callgrind_keys.sh BINARY OUTDIR [N] [KEYS]
# LOADER (default BINARY) is the `quiver` whose `bench` loads the data set: one loader for two
# builds compares them over the same data.
# KINDS (default "seed plain seedbatch plainbatch") picks the kinds, as in callgrind.sh;
# `ingest` (not in the default) sends /ingest requests of 100 `transactions` events of the
# drawn keys, a second apart, ending now. Prints, per kind: instructions, L1 data read misses
# and L2 ("LL") data read misses a request.
# LL (default 524288,8,64: size, ways, line) sizes the simulated last level: 1048576,16,64 is
# the 1 MiB L2 of the twenty-first session's machine.
set -euo pipefail
source "$(dirname "$0")/../../tests/clients/lib.sh"
source "$(dirname "$0")/callgrind_env.sh"
binary=$1 out=$2 n=${3:-300} keys=${4:-10000}
mkdir -p "$out"
rm -f "$out"/callgrind.out.* "$out/summary.txt"
driver="$out/drive_keys.py"
cat >"$driver" <<'PY'
# drive_keys.py HOST PORT KIND N KEYS: N requests of one kind; KIND `all` reads every key once.
import datetime, http.client, json, random, socket, sys
host, port, kind, n, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
draws = random.Random(kind)
now = datetime.datetime.now(datetime.timezone.utc)
def events(i):
    # 100 events, a second apart, the last `now` minus the requests still to come.
    def at(j):
        return (now - datetime.timedelta(seconds=(n - i) * 100 - j)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"record": {"user_id": f"key_{draws.randrange(keys)}", "merchant": f"key_{draws.randrange(keys)}",
                        "terminal_id": j, "amt": round(draws.random() * 1000, 2), "category": "grocery_pos",
                        "is_online": j % 2 == 0, "timestamp": at(j)}} for j in range(100)]
seed = kind.startswith("seed") or kind == "all"
def row(i):
    # `quiver bench`'s key values (bench::dataset::key_value) for string join keys.
    user, merchant = (i, i) if kind == "all" else (draws.randrange(keys), draws.randrange(keys))
    return {"joinKeyMap": {"user_id": f"key_{user}", "merchant": f"key_{merchant}"},
            "requestContextMap": {"amount": round(draws.random() * 1000, 2)} if seed else {}}
connection = http.client.HTTPConnection(host, port)
connection.connect()
headers = {"Authorization": "Tecton-key bench-key", "Content-Type": "application/json"}
requests = (keys + 9) // 10 if kind == "all" else n
for i in range(requests):
    params = {"workspaceName": "prod",
              "featureServiceName": "fraud_detection_feature_service" if seed else "user_risk_service"}
    body = {"params": params}
    if kind.startswith("ingest"):
        body = {"workspace_name": "prod", "dry_run": False, "records": {"transactions": events(i)}}
        path = "/ingest"
    elif "batch" in kind or kind == "all":
        params["requestData"] = [row(i * 10 + j) for j in range(10)]
        path = "/api/v1/feature-service/get-features-batch"
    else:
        params.update(row(i))
        path = "/api/v1/feature-service/get-features"
    # Corked, the head and the body leave as one segment (see callgrind.sh).
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    connection.request("POST", path, json.dumps(body), headers)
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        sys.exit(f"{response.status} {answer[:300]}")
PY
cd "$repo_root"
QUIVER_ADMIN_KEY=bench-key QUIVER_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
  --cache-sim=yes --D1=32768,8,64 --LL="${LL:-524288,8,64}" \
  --callgrind-out-file="$out/callgrind.out.%p" "$binary" serve --config config.toml \
  --listen 127.0.0.1:0 >"$out/server.out" 2>"$out/server.err" &
valgrind_pid=$!
trap 'kill "$valgrind_pid" 2>/dev/null || true' EXIT
listening_url "$out/server.out" "$out/server.err" "$valgrind_pid" 1200 0.25
host=127.0.0.1 port=${listening_url##*:}
"${LOADER:-$binary}" bench --url "$listening_url" --api-key bench-key --quick --keys "$keys" \
  --connections 2 --rate 20 >"$out/bench.out" 2>"$out/bench.err"
python3 "$driver" "$host" "$port" all 0 "$keys"
kinds=${KINDS:-seed plain seedbatch plainbatch}
for kind in $kinds; do
  python3 "$driver" "$host" "$port" "$kind-warm-up" 50 "$keys"
  callgrind_control -z "$valgrind_pid" >/dev/null 2>&1
  callgrind_control -i on "$valgrind_pid" >/dev/null 2>&1
  python3 "$driver" "$host" "$port" "$kind" "$n" "$keys"
  callgrind_control -i off "$valgrind_pid" >/dev/null 2>&1
  callgrind_control -d "$kind" "$valgrind_pid" >/dev/null 2>&1
done
kill "$valgrind_pid"
wait "$valgrind_pid" || true
echo "kind instructions/request D1-read-misses/request L2-read-misses/request" | tee "$out/summary.txt"
for dump in "$out"/callgrind.out.*.*; do
  kind=$(grep -m1 '^desc: Trigger' "$dump" | sed 's/.*dump //')
  # totals: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
  grep '^totals:' "$dump" | awk -v kind="$kind" -v n="$n" \
    '{printf "%s %d %.1f %.1f\n", kind, $2 / n, $6 / n, $9 / n}' | tee -a "$out/summary.txt"
done
