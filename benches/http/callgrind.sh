#!/usr/bin/env bash
# Server instructions per request on the read path, counted by callgrind (steady on a loaded
# machine, unlike wall-clock figures): the demo server runs under valgrind with
# instrumentation off; for each kind of request, 50 warm-up requests, then N counted ones over
# one keep-alive connection, then a dump.
#   bash benches/http/callgrind.sh BINARY OUTDIR [N]   (N: 300 by default)
# TARGET=bare counts the limit instead: `quiver bench bare-server` (a bare actix-web handler that
# parses the body and answers fixed bytes) answering, for each kind, what the binary's Quiver
# answered to that kind's first request (taken before, outside valgrind), so the two counts
# compare Quiver with what HTTP and JSON parsing alone cost.
# KINDS (default "seed plain seedbatch plainbatch") picks the kinds; `ingest` is a POST /ingest
# of 100 `transactions` events (timestamps of the moment; 1,009 users, 101 merchants, 499
# terminals, so after the warm-up every key has its row and tiles), the write path; `rows` is a
# `quiver load` chunk: 1,000 `user_profile` rows as JSON Lines, written as the CLI writes them
# (int64 as strings), to the admin rows endpoint (counts are per chunk: divide by 1,000 a row);
# `binrows` is the same chunk as the binary rows body `quiver load` sends by default.
# Prints, per kind: total instructions and instructions per request (the whole process: actix,
# the handler, the store). `callgrind_annotate --inclusive=yes OUTDIR/callgrind.out.*.K` shows
# where they go (K: the kind's place in KINDS, from 1: seed, plain, seed batch, plain batch).
set -euo pipefail
source "$(dirname "$0")/../../tests/clients/lib.sh"
source "$(dirname "$0")/callgrind_env.sh"
binary=$1 out=$2 n=${3:-300}
mkdir -p "$out"
rm -f "$out"/callgrind.out.* "$out/summary.txt" "$out/server.out"
touch "$out/server.out"
driver="$out/drive.py"
cat >"$driver" <<'PY'
# drive.py HOST PORT KIND N [SAMPLES]: N requests of one kind over one keep-alive connection;
# with SAMPLES (a JSON list, in the bare handler's responses format), adds the first answer.
import datetime, http.client, json, socket, sys
host, port, kind, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
samples = sys.argv[5] if len(sys.argv) > 5 else None
users = [f"user_{1001 + i}" for i in range(5)]
merchants = ["fraud_Kirlin and Sons", "fraud_Sporer-Keebler", "fraud_Haley Group"]
seed = kind.startswith("seed")
def row(i):
    return {"joinKeyMap": {"user_id": users[i % 5], "merchant": merchants[i % 3]},
            "requestContextMap": {"amount": 100.5 + i} if seed else {}}
def event(i):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"record": {"user_id": f"user_{i % 1009}", "merchant": f"merchant_{i % 101}",
            "terminal_id": i % 499, "amt": round(i % 5000 / 10, 2), "category": "food",
            "is_online": i % 2 == 0, "transaction_id": f"tx_{i}", "is_fraud": 0, "timestamp": now}}
def profile_row(i):
    return {"user_id": f"user_{i % 20011}", "timestamp": "2026-01-15T00:00:00Z",
            "credit_score": str(300 + i % 550), "account_age_days": str(i % 4000),
            "is_verified": i % 3 == 0, "home_country": "US",
            "preferred_categories": [["grocery", "travel"], ["electronics"], []][i % 3],
            "signup_time": "2025-12-01T10:00:00Z"}
def leb128(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
def encoded(value):
    # store::row's value encoding (ingest::binary_rows).
    if value is None:
        return b"\x00"
    if isinstance(value, bool):
        return b"\x02" if value else b"\x01"
    if isinstance(value, int):
        return b"\x03" + value.to_bytes(8, "little", signed=True)
    if isinstance(value, datetime.datetime):
        micros = (value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // datetime.timedelta(microseconds=1)
        return b"\x07" + micros.to_bytes(8, "little", signed=True)
    if isinstance(value, list):
        return b"\x08" + leb128(len(value)) + b"".join(encoded(item) for item in value)
    text = value.encode()
    return b"\x06" + leb128(len(text)) + text
def record(values):
    row = leb128(len(values)) + b"".join(encoded(value) for value in values)
    return len(row).to_bytes(4, "little") + row
def binary_rows(rows):
    when = lambda text: datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    typed = [{**row, "credit_score": int(row["credit_score"]), "timestamp": when(row["timestamp"]),
              "account_age_days": int(row["account_age_days"]), "signup_time": when(row["signup_time"])}
             for row in rows]
    return (b"QRW\x01" + record(list(rows[0])) + b"".join(record(list(row.values())) for row in typed)
            + (0).to_bytes(4, "little"))
def body(i):
    if kind == "rows":
        lines = [json.dumps(profile_row(i * 1000 + j), separators=(",", ":")) for j in range(1000)]
        return "/admin/workspaces/prod/feature-views/user_profile/rows", "\n".join(lines) + "\n"
    if kind == "binrows":
        rows = [profile_row(i * 1000 + j) for j in range(1000)]
        return "/admin/workspaces/prod/feature-views/user_profile/rows", binary_rows(rows)
    if kind == "ingest":
        events = [event(i * 100 + j) for j in range(100)]
        request = {"workspace_name": "prod", "dry_run": False, "records": {"transactions": events}}
        return "/ingest", json.dumps(request)
    params = {"workspaceName": "prod",
              "featureServiceName": "fraud_detection_feature_service" if seed else "user_risk_service"}
    if kind.endswith("batch"):
        params["requestData"] = [row(i + j) for j in range(10)]
        return "/api/v1/feature-service/get-features-batch", json.dumps({"params": params})
    params.update(row(i))
    return "/api/v1/feature-service/get-features", json.dumps({"params": params})
connection = http.client.HTTPConnection(host, port)
connection.connect()
headers = {"Authorization": "Tecton-key bench-key", "Content-Type": "application/json"}
for i in range(n):
    path, text = body(i)
    # http.client writes the head and the body with two sends: corked, they leave as one
    # segment, as most clients send a small request. Else the server's read races the second
    # send, and a body that misses it arms the read timer: the counts moved with the load.
    binary = isinstance(text, bytes)
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    connection.request("POST", path, text, {**headers, "Content-Type": "application/vnd.quiver.rows.v1"}
                       if binary else headers)
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    response = connection.getresponse()
    answer = response.read()
    if response.status != 200:
        sys.exit(f"{response.status} {answer[:300]}")
    if samples and i == 0:
        with open(samples) as f:
            answers = json.load(f)
        service = json.loads(text)["params"]["featureServiceName"]
        answers.append({"path": path, "service": service, "body": answer.decode()})
        with open(samples, "w") as f:
            json.dump(answers, f)
PY
cd "$repo_root"
kinds=${KINDS:-seed plain seedbatch plainbatch}
# host_port URL: sets $host and $port.
host_port() {
  local host_port=${1#http://}
  host=${host_port%:*} port=${host_port##*:}
}
if [ "${TARGET:-quiver}" = bare ]; then
  echo '[]' >"$out/responses.json"
  QUIVER_ADMIN_KEY=bench-key QUIVER_LOG=warn "$binary" serve --config config.toml \
    --listen 127.0.0.1:0 >"$out/sample.out" 2>"$out/sample.err" &
  sample_pid=$!
  listening_url "$out/sample.out" "$out/sample.err" "$sample_pid"
  host_port "$listening_url"
  for kind in $kinds; do
    python3 "$driver" "$host" "$port" "$kind" 1 "$out/responses.json"
  done
  kill "$sample_pid"
  wait "$sample_pid" || true
  server=(bench bare-server --responses "$out/responses.json") announcement="bare handler listening on "
else
  server=(serve --config config.toml) announcement="quiver listening on "
fi
QUIVER_ADMIN_KEY=bench-key QUIVER_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$out/callgrind.out.%p" "$binary" "${server[@]}" \
  --listen 127.0.0.1:0 >"$out/server.out" 2>"$out/server.err" &
valgrind_pid=$!
trap 'kill "$valgrind_pid" 2>/dev/null || true' EXIT
# Under valgrind start-up is slow: up to 5 minutes.
listening_url "$out/server.out" "$out/server.err" "$valgrind_pid" 1200 0.25 "$announcement"
host_port "$listening_url"
for kind in $kinds; do
  python3 "$driver" "$host" "$port" "$kind" 50
  callgrind_control -z "$valgrind_pid" >/dev/null 2>&1
  callgrind_control -i on "$valgrind_pid" >/dev/null 2>&1
  python3 "$driver" "$host" "$port" "$kind" "$n"
  callgrind_control -i off "$valgrind_pid" >/dev/null 2>&1
  callgrind_control -d "$kind" "$valgrind_pid" >/dev/null 2>&1
done
kill "$valgrind_pid"
wait "$valgrind_pid" || true
for dump in "$out"/callgrind.out.*.*; do
  kind=$(grep -m1 '^desc: Trigger' "$dump" | sed 's/.*dump //')
  total=$(grep '^totals:' "$dump" | awk '{print $2}')
  echo "$kind $total $((total / n))" | tee -a "$out/summary.txt"
done
