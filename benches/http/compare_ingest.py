# Answers of two builds compared, for the write path: both serve side by side (data
# directories, fsync = "every_second"), get the same /ingest bodies (valid, late, future,
# refused, malformed, an unknown workspace), JSON Lines rows bodies, then GetFeatures reads of
# the keys written; every answer's status and body must be byte-identical.
#   python3 benches/http/compare_ingest.py BINARY_A BINARY_B [N]   (N /ingest bodies, 300)
import datetime, http.client, json, os, random, re, shutil, subprocess, sys, tempfile, time
repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
bins, n = sys.argv[1:3], int(sys.argv[3]) if len(sys.argv) > 3 else 300
work = tempfile.mkdtemp()
servers, urls = [], []
for i, b in enumerate(bins):
    out = open(f"{work}/{i}.out", "w")
    env = dict(os.environ, QUIVER_ADMIN_KEY="bench-key", QUIVER_LOG="warn")
    servers.append(subprocess.Popen([b, "serve", "--config", f"{repo}/config.toml", "--listen", "127.0.0.1:0",
        "--data-dir", f"{work}/{i}-data", "--fsync", "every_second"], stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=repo))
for i in range(len(bins)):
    for _ in range(600):
        m = re.search(r"quiver listening on http://(\S+)", open(f"{work}/{i}.out").read())
        if m: break
        time.sleep(0.1)
    urls.append(m.group(1))
conns = [http.client.HTTPConnection(*u.split(":")) for u in urls]
H = {"Authorization": "Tecton-key bench-key", "Content-Type": "application/json"}
def ask(path, body, headers=H):
    answers = []
    for i, c in enumerate(conns):
        try:
            c.request("POST", path, body, headers)
            r = c.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server ended the connection after its last answer: ask again on a new one.
            c.close()
            conns[i] = c = http.client.HTTPConnection(*urls[i].split(":"))
            c.request("POST", path, body, headers)
            r = c.getresponse()
        answers.append((r.status, r.read()))
    return answers
rng = random.Random(7)
def ts(offset_s):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
def field(name):
    r = rng.random() * (30 if name in ("user_id", "merchant", "terminal_id", "timestamp") else 1)
    if r < 0.03: return None
    if r < 0.05: return "null"
    if name in ("user_id", "merchant", "category", "transaction_id"):
        return json.dumps(rng.choice(["u", "é", "a\"b", "x\\y", "\u263a", ""]) + str(rng.randrange(200)))
    if name in ("terminal_id", "is_fraud"):
        return rng.choice([str(rng.randrange(-50, 50)), json.dumps(str(rng.randrange(50)))])
    if name == "amt":
        return rng.choice([repr(round(rng.uniform(-500, 500), 3)), str(rng.randrange(100)), '"NaN"', '"12.5"', "1e3"])
    if name == "is_online": return rng.choice(["true", "false"])
    return json.dumps(ts(rng.choice([-rng.uniform(0, 3600), -rng.uniform(0, 86400 * 40), rng.uniform(0, 200)])))
names = ["user_id", "merchant", "terminal_id", "amt", "category", "is_online", "transaction_id", "is_fraud", "timestamp"]
def record():
    fs = names[:]
    if rng.random() < 0.2: rng.shuffle(fs)
    parts = [f'"{k}": {v}' for k in fs if (v := field(k)) is not None]
    if rng.random() < 0.001: parts.append('"nope": 1')
    if rng.random() < 0.001: parts.append('"amt": "abc"')
    return "{" + ", ".join(parts) + "}"
mismatches = total = 0
statuses = {}
def check(label, answers):
    global mismatches, total
    total += 1
    key = (label.split()[0], answers[0][0])
    statuses[key] = statuses.get(key, 0) + 1
    if answers[0] != answers[1]:
        mismatches += 1
        if mismatches < 5: print("MISMATCH", label, answers[0][:1], answers[0][1][:300], answers[1][1][:300])
for i in range(n):
    recs = ",".join('{"record": %s}' % record() for _ in range(rng.randrange(1, 60)))
    body = '{"workspace_name": "prod", "dry_run": %s, "records": {"transactions": [%s]}}' % (
        "true" if rng.random() < 0.05 else "false", recs)
    if rng.random() < 0.02: body = body[:-3]
    if rng.random() < 0.02: body = body.replace('"prod"', '"nope"')
    check(f"ingest {i}", ask("/ingest", body))
for i in range(20):
    lines = [json.dumps({"user_id": f"u{rng.randrange(200)}", "timestamp": "2026-01-15T00:00:00Z",
        "credit_score": str(300 + rng.randrange(550)), "account_age_days": rng.randrange(4000),
        "is_verified": rng.random() < 0.5, "home_country": rng.choice(["US", "é\"x"]),
        "preferred_categories": rng.choice([["a", "b"], [], None]), "signup_time": "2025-12-01T10:00:00Z"}) for _ in range(50)]
    check(f"rows {i}", ask("/admin/workspaces/prod/feature-views/user_profile/rows", "\n".join(lines) + "\n"))
time.sleep(1.5)
for i in range(400):
    u = rng.choice(["u", "é", "a\"b", "x\\y", "\u263a", ""]) + str(rng.randrange(200))
    m = rng.choice(["u", "é", "a\"b", "x\\y", "\u263a", ""]) + str(rng.randrange(200))
    for svc in ["fraud_detection_feature_service", "user_risk_service"]:
        params = {"workspaceName": "prod", "featureServiceName": svc,
                  "joinKeyMap": {"user_id": u, "merchant": m, "terminal_id": str(rng.randrange(-50, 50))},
                  "requestContextMap": {"amount": 10.5}, "metadataOptions": {"includeNames": True}}
        check(f"read {i} {svc}", ask("/api/v1/feature-service/get-features", json.dumps({"params": params})))
for s in servers:
    s.kill()
    s.wait()
shutil.rmtree(work)
print(f"{total} answers compared, {mismatches} differ; statuses {sorted(statuses.items())}")
