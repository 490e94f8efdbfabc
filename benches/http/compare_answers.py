# The comparer behind compare_answers.sh: sends the same GetFeatures and GetFeaturesBatch
# requests to two servers and counts the answers that differ byte for byte once what differs
# between any two servers is masked (sloInfo's timings, `effectiveTime`, and times with a
# fraction of a second: the request's own microsecond, the demo data's start-up times).
# Two generators, N requests each:
# - services and options: the four demo services; single rows and batches of 1-12; missing,
#   null, wrong-typed and extra join keys; request context missing or extra; every metadata
#   option; request options; an unknown service;
# - request bodies: valid ones of two demo services, and mistyped, malformed, duplicate-key,
#   unknown-field, fuzzed, trailing-byte and 4 MiB bodies, both spellings of every field, the
#   v2 paths, with 16 `Authorization` values.
#   python3 benches/http/compare_answers.py URL_A URL_B [N [SEED]]   (N: 3,000 of each)
import http.client, json, random, re, sys

urls = sys.argv[1:3]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
seed = int(sys.argv[4]) if len(sys.argv) > 4 else None

# Times of the request's own microsecond (continuous windows by wall clock) and the demo
# data's start-up times differ between two servers.
frac = re.compile(rb'"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}[.][0-9]+Z"')
slo = re.compile(rb'"(sloServerTimeSeconds|serverTimeSeconds|storeMaxLatency)":[0-9.eE+-]+')
effective = re.compile(rb'"effectiveTime":"[^"]*"')
def masked(answer):
    status, body = answer
    if not isinstance(body, bytes):
        return answer
    return status, frac.sub(b'"T"', slo.sub(b'"\\1":0', effective.sub(b'"effectiveTime":_', body)))

def conn(url):
    host, port = url.replace("http://", "").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=30)
conns = [conn(u) for u in urls]
def ask(path, body, auth):
    """Both servers' answers; a connection a server closed (after a malformed body) is opened again."""
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    answers = []
    for i, c in enumerate(conns):
        try:
            c.request("POST", path, body, headers)
            r = c.getresponse()
            answers.append((r.status, r.read()))
        except Exception as e:
            answers.append(("exc", repr(e)))
            c.close()
            conns[i] = conn(urls[i])
    return answers

SINGLE = "/api/v1/feature-service/get-features"
BATCH = "/api/v1/feature-service/get-features-batch"
KEY = "Tecton-key bench-key"

def services_and_options(rng):
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
        path = BATCH
        rows = [row() for _ in range(rng.randint(1, 12))]
        params["requestData"] = [{"joinKeyMap": k, "requestContextMap": c} for k, c in rows]
    else:
        path = SINGLE
        k, c = row()
        params["joinKeyMap"], params["requestContextMap"] = k, c
    return path, json.dumps({"params": params}), KEY

def request_bodies(rng):
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
        seeded = rng.random() < 0.5
        def crow():
            return {rng.choice(["joinKeyMap", "join_key_map"]): {"user_id": rng.choice(users), "merchant": rng.choice(merchants)},
                    rng.choice(["requestContextMap", "request_context_map"]): {"amount": rng.choice([100.5, 3, -2.5e-3, "NaN", 1e300, 0.1 + rng.random()])} if seeded else {}}
        p = {"workspaceName": "prod", "featureServiceName": "fraud_detection_feature_service" if seeded else "user_risk_service"}
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
    auths = [KEY, "Bearer bench-key", " tecton-KEY \tbench-key\t ", "BEARER  bench-key", "Basic bench-key",
             "Bearer", "Bearer ", "Tecton-key", "Tecton-keybench-key", "bearer\tbench-key", "Tecton-key wrong", "", None,
             "Tecton-key  ", "Bearerx bench-key", "Tecton-key bench-key x"]
    batch = rng.random() < 0.5
    path = BATCH if batch else SINGLE
    if rng.random() < 0.05:
        path = rng.choice(["/api/v2/workspaces/prod/feature-services/user_risk_service/get-features",
                           "/api/v2/workspaces/prod/feature-services/fraud_detection_feature_service/get-features-batch"])
    body = text_of(batch)
    auth = KEY if rng.random() < 0.9 else rng.choice(auths)
    return path, body, auth

failed = False
for generator, default_seed in [(services_and_options, 18), (request_bodies, 12)]:
    rng = random.Random(default_seed if seed is None else seed)
    diffs = 0
    statuses = {}
    for _ in range(n):
        path, body, auth = generator(rng)
        a, b = [masked(answer) for answer in ask(path, body, auth)]
        statuses[a[0]] = statuses.get(a[0], 0) + 1
        if a != b:
            diffs += 1
            if diffs <= 5:
                print("DIFF", path, body[:300], a[0], a[1][:300], b[0], b[1][:300], sep="\n  ")
    print(f"{generator.__name__}: {n} requests, {diffs} differ; statuses of the first server {statuses}")
    failed = failed or diffs > 0
sys.exit(1 if failed else 0)
