#!/usr/bin/env bash
# Whether two builds answer GetFeatures alike: starts both binaries on the demo config, sends
# each the same N random requests (default 3,000: the four demo services; single rows and
# batches of 1-12; missing, null, wrong-typed and extra join keys; request context missing or
# extra; every metadata option; request options; an unknown service) and counts the answers
# that differ byte for byte once sloInfo's timings and times with a fraction of a second (the
# request's own microsecond, the demo data's start-up times) are masked.
#   bash benches/http/compare_answers.sh BINARY_A BINARY_B [N]
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
python3 - "${urls[@]}" "${3:-3000}" <<'PY'
import http.client, json, re, sys, random
urls = sys.argv[1:3]
def post(url, path, body):
    host, port = url.replace("http://", "").split(":")
    c = http.client.HTTPConnection(host, int(port))
    c.request("POST", path, body, {"Authorization": "Tecton-key bench-key", "Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()
# Times of the request's own microsecond (continuous windows by wall clock) and the demo
# data's start-up times differ between two servers.
frac = re.compile(rb'"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}[.][0-9]+Z"')
mask = re.compile(rb'"(sloServerTimeSeconds|serverTimeSeconds|storeMaxLatency)":[0-9.eE+-]+')
users = [f"user_{1001 + i}" for i in range(8)] + ["nobody", None, ""]
merchants = ["fraud_Kirlin and Sons", "fraud_Sporer-Keebler", "fraud_Haley Group", "nope", None]
services = {
    "fraud_detection_feature_service": lambda r: ({"user_id": r.choice(users), "merchant": r.choice(merchants)},
                                                  {"amount": r.choice([100.5, 0, 1e9, -3, "NaN", 12])}),
    "user_risk_service": lambda r: ({"user_id": r.choice(users), "merchant": r.choice(merchants)}, {}),
    "payment_risk_service": lambda r: ({"sender_id": r.choice(users), "payee_merchant": r.choice(merchants),
                                        "terminal_id": r.choice([1, 7, 42, 4242, None, "x"])}, {}),
    "transaction_aggregates_service": lambda r: ({"user_id": r.choice(users)}, {}),
}
opts = ["includeNames", "includeEffectiveTimes", "includeDataTypes", "includeSloInfo",
        "includeServingStatus", "includeFeatureDescriptions", "includeFeatureTags"]
rng = random.Random(18)
n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
diffs = 0
same_status = {}
for i in range(n):
    service = rng.choice(list(services))
    params = {"workspaceName": "prod", "featureServiceName": service}
    if rng.random() < 0.7:
        params["metadataOptions"] = {o: rng.random() < 0.5 for o in opts if rng.random() < 0.8}
    if rng.random() < 0.2:
        params["requestOptions"] = {k: v for k, v in [("coerceNullCountsToZero", rng.random() < 0.5),
                                                       ("ignoreExtraRequestContextFields", rng.random() < 0.5),
                                                       ("aggregationLeadingEdge", rng.choice(["WALL_CLOCK_TIME", "LATEST_EVENT_TIME"]))] if rng.random() < 0.6}
    if rng.random() < 0.05:
        params["featureServiceName"] = "no_such_service"
    def row():
        keys, ctx = services[service](rng)
        if rng.random() < 0.05:
            keys.pop(next(iter(keys)))
        if rng.random() < 0.05:
            ctx = {}
        if rng.random() < 0.05:
            ctx = dict(ctx, extra=1)
        return keys, ctx
    if rng.random() < 0.5:
        path = "/api/v1/feature-service/get-features-batch"
        rows = [row() for _ in range(rng.randint(1, 12))]
        params["requestData"] = [{"joinKeyMap": k, "requestContextMap": c} for k, c in rows]
    else:
        path = "/api/v1/feature-service/get-features"
        k, c = row()
        params["joinKeyMap"], params["requestContextMap"] = k, c
    body = json.dumps({"params": params})
    answers = [post(u, path, body) for u in urls]
    a, b = [(s, frac.sub(b'"T"', mask.sub(b'"\\1":0', t))) for s, t in answers]
    if a != b:
        diffs += 1
        if diffs <= 5:
            print("DIFF", body, a, b, sep="\n")
    else:
        same_status[a[0]] = same_status.get(a[0], 0) + 1
print(f"{n} requests, {diffs} differ; identical by status: {same_status}")
sys.exit(1 if diffs else 0)
PY
