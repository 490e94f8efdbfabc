# Answers of two builds compared, for GetFeatures and GetFeaturesBatch requests: both serve
# side by side and get the same requests (valid ones of both demo services, and mistyped,
# malformed, duplicate-key, unknown-field, fuzzed, trailing-byte and 4 MiB bodies, with 16
# `Authorization` values); every answer's status and body must be byte-identical, but
# `effectiveTime` (the demo data is rebased to each server's start).
#   python3 benches/http/compare_get_features.py BINARY_A BINARY_B [N [SEED]]   (N: 3,000)
import http.client, json, os, random, re, shutil, subprocess, sys, tempfile, time
repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
bins = sys.argv[1:3]
n, seed = (int(sys.argv[3]) if len(sys.argv) > 3 else 3000), (int(sys.argv[4]) if len(sys.argv) > 4 else 12)
mask = lambda o: (o[0], re.sub(rb'"effectiveTime":"[^"]*"', b'"effectiveTime":_', o[1])) if isinstance(o[1], bytes) else o
work = tempfile.mkdtemp()
servers, urls = [], []
for i, b in enumerate(bins):
    out = open(f"{work}/{i}.out", "w")
    env = dict(os.environ, QUIVER_ADMIN_KEY="bench-key", QUIVER_LOG="error")
    servers.append(subprocess.Popen([b, "serve", "--config", f"{repo}/config.toml", "--listen", "127.0.0.1:0"],
        stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=repo))
for i in range(len(bins)):
    for _ in range(1200):
        m = re.search(r"quiver listening on http://(\S+)", open(f"{work}/{i}.out").read())
        if m: break
        time.sleep(0.1)
    urls.append(m.group(1))
def conn(url):
    host, port = url.split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)
a, b = urls
ca, cb = conn(a), conn(b)
rng = random.Random(seed)
users = [f"user_{1001 + i}" for i in range(8)] + ["nobody", "us\\u0065r_1001", ""]
merchants = ["fraud_Kirlin and Sons", "fraud_Sporer-Keebler", "fraud_Haley Group", "x\\\"y", "caf\u00e9"]
services = ["fraud_detection_feature_service", "user_risk_service", "nope", ""]
def scalar():
    return rng.choice([None, True, False, 0, -1, 12, 1.5, -2.25e3, 1e308, "NaN", "Infinity", "-Infinity",
                       "12", "abc", [], [1, 2], {}, {"a": 1}, 18446744073709551615, -9223372036854775809])
def key_map():
    m = {}
    if rng.random() < 0.9: m["user_id"] = rng.choice(users) if rng.random() < 0.85 else scalar()
    if rng.random() < 0.9: m["merchant"] = rng.choice(merchants) if rng.random() < 0.85 else scalar()
    if rng.random() < 0.2: m["extra"] = scalar()
    return m
def context_map():
    m = {}
    if rng.random() < 0.85: m["amount"] = rng.choice([100.5, 3, 0, -1.5, "NaN", "Infinity"]) if rng.random() < 0.8 else scalar()
    if rng.random() < 0.15: m["other"] = scalar()
    return m
def row():
    r = {}
    jk = rng.choice(["joinKeyMap", "join_key_map"]); rc = rng.choice(["requestContextMap", "request_context_map"])
    if rng.random() < 0.95: r[jk] = key_map() if rng.random() < 0.95 else scalar()
    if rng.random() < 0.8: r[rc] = context_map() if rng.random() < 0.95 else scalar()
    if rng.random() < 0.05: r["unknownField"] = scalar()
    return r if rng.random() < 0.97 else scalar()
def params(batch):
    p = {}
    if rng.random() < 0.95: p[rng.choice(["workspaceName", "workspace_name"])] = "prod" if rng.random() < 0.9 else rng.choice(["staging", "", 5, None])
    if rng.random() < 0.95: p[rng.choice(["featureServiceName", "feature_service_name"])] = rng.choice(services) if rng.random() < 0.95 else scalar()
    if rng.random() < 0.05: p["featureServiceId"] = rng.choice(["abc", "", 3])
    if rng.random() < 0.3:
        p["metadataOptions"] = {k: rng.choice([True, False]) if rng.random() < 0.9 else scalar()
                                for k in rng.sample(["includeNames", "include_effective_times", "includeDataTypes",
                                                     "includeServingStatus", "includeFeatureDescriptions", "includeFeatureTags", "bogus"], 3)}
    if rng.random() < 0.2:
        p["requestOptions"] = rng.choice([{"coerceNullCountsToZero": True}, {"ignoreExtraRequestContextFields": True},
                                          {"latencyBudgetMs": 1000}, {"aggregationLeadingEdge": "AGGREGATION_MODE_LATEST_EVENT_TIME"},
                                          {"readFromCache": 3}, scalar()])
    if rng.random() < 0.1: p["allowPartialResults"] = rng.choice([True, False, "yes", None])
    if rng.random() < 0.05: p["somethingElse"] = scalar()
    if batch:
        k = rng.choice([0, 1, 2, 10, 10, 10, 11])
        p["requestData"] = [row() for _ in range(k)] if rng.random() < 0.95 else scalar()
    else:
        r = row()
        if isinstance(r, dict): p.update(r)
    return p
def clean(batch):
    seed = rng.random() < 0.5
    def crow():
        return {rng.choice(["joinKeyMap", "join_key_map"]): {"user_id": rng.choice(users), "merchant": rng.choice(merchants)},
                rng.choice(["requestContextMap", "request_context_map"]): {"amount": rng.choice([100.5, 3, -2.5e-3, "NaN", 1e300, 0.1 + rng.random()])} if seed else {}}
    p = {"workspaceName": "prod", "featureServiceName": "fraud_detection_feature_service" if seed else "user_risk_service"}
    if rng.random() < 0.3:
        p["metadataOptions"] = {k: rng.choice([True, False]) for k in ["includeNames", "include_effective_times", "includeDataTypes", "includeServingStatus"]}
    if batch: p["requestData"] = [crow() for _ in range(rng.randint(1, 10))]
    else: p.update(crow())
    return json.dumps({"params": p}, ensure_ascii=rng.random() < 0.5).encode()
def text_of(batch):
    if rng.random() < 0.4: return clean(batch)
    body = {"params": params(batch)} if rng.random() < 0.97 else rng.choice([scalar(), {"param": {}}, {"params": None}])
    t = json.dumps(body, ensure_ascii=rng.random() < 0.5, separators=rng.choice([(",", ":"), (", ", ": ")]))
    t = t.replace("\\\\u0065", "\\u0065").replace('\\\\\\"', '\\"')
    r = rng.random()
    if r < 0.04:  # duplicate key
        for k in ["\"joinKeyMap\"", "\"workspaceName\"", "\"user_id\"", "\"params\"", "\"requestData\"", "\"amount\""]:
            if k in t:
                i = t.index(k); j = t.index(",", i) if "," in t[i:] else -1
                if j > 0: t = t[:j] + "," + t[i:j] + t[j:]
                break
    elif r < 0.10:  # fuzz: delete, insert or replace a byte
        bs = bytearray(t.encode())
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(bs) + 1)
            op = rng.random()
            c = rng.choice(b'{}[]",:\\ 0a-.eE\x00\xff\xc3nult')
            if op < 0.33 and i < len(bs): del bs[i]
            elif op < 0.66: bs.insert(i, c)
            elif i < len(bs): bs[i] = c
        return bytes(bs)
    elif r < 0.12:
        t = t + rng.choice([" ", "\n", "x", "{}", " 1", "\x00"])
    elif r < 0.13:
        t = rng.choice(["", "   ", "\n", "null", "{", "[]", "{\"params\":{}}"])
    elif r < 0.135:
        t = "{\"params\":{\"workspaceName\":\"" + "a" * 4194304 + "\"}}"
    return t.encode()
AUTHS = ["Tecton-key bench-key", "Bearer bench-key", " tecton-KEY \tbench-key\t ", "BEARER  bench-key", "Basic bench-key",
         "Bearer", "Bearer ", "Tecton-key", "Tecton-keybench-key", "bearer\tbench-key", "Tecton-key wrong", "", None,
         "Tecton-key  ", "Bearerx bench-key", "Tecton-key bench-key x"]
auth = AUTHS[0]
def send(c, path, body, ctype):
    headers = {"Content-Type": ctype}
    if auth is not None: headers["Authorization"] = auth
    c.request("POST", path, body, headers)
    r = c.getresponse(); return r.status, r.read()
diffs = rawdiffs = 0
statuses = {}
for i in range(n):
    batch = rng.random() < 0.5
    path = "/api/v1/feature-service/get-features-batch" if batch else "/api/v1/feature-service/get-features"
    if rng.random() < 0.05:
        path = rng.choice(["/api/v2/workspaces/prod/feature-services/user_risk_service/get-features",
                           "/api/v2/workspaces/prod/feature-services/fraud_detection_feature_service/get-features-batch"])
    body = text_of(batch)
    auth = AUTHS[0] if rng.random() < 0.9 else rng.choice(AUTHS)
    outs = []
    for k, c in enumerate((ca, cb)):
        try:
            outs.append(send(c, path, body, "application/json"))
        except Exception as e:
            outs.append(("exc", repr(e)))
            c.close(); c = conn((a, b)[k]);
            if k == 0: ca = c
            else: cb = c
    statuses[outs[0][0]] = statuses.get(outs[0][0], 0) + 1
    if outs[0] != outs[1]: rawdiffs += 1
    if mask(outs[0]) != mask(outs[1]):
        diffs += 1
        if diffs <= 10:
            print("DIFF", path, body[:300], outs[0][0], outs[0][1][:300], outs[1][0], outs[1][1][:300], sep="\n  ")
print(f"{n} requests, {diffs} differences ({rawdiffs} before masking effective times); statuses {statuses}")
for s in servers:
    s.kill()
    s.wait()
shutil.rmtree(work)
