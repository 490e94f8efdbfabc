"""Drives Quiver's operator console in headless Chromium (selenium): logs in, opens every page,
looks a key up and compares the vector with what GetFeatures serves, takes a snapshot and sees it
listed, checks that a viewer key cannot open Access (the server refuses the directory), and scans
every page's DOM and every answer the browser received for the secret values and API keys the
check created. Saves a screenshot of each page into $SCREENSHOT_DIR.

The checks run in name order and share one browser.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from checks import run_checks  # noqa: E402

URL = os.environ["QUIVER_URL"]
ADMIN_KEY = os.environ["QUIVER_KEY"]
SCREENSHOTS = os.environ["SCREENSHOT_DIR"]
WAIT_SECONDS = 60

# Values no page and no answer may ever show.
SECRET_VALUES = [
    "console-check-tecton-value-7f3a9",
    "console-check-truefoundry-value-91c2e",
    "console-check-tinybird-value-5d0e4",
    ADMIN_KEY,
]


def api(method, path, body=None, key=ADMIN_KEY, content_type="application/json"):
    """(status, JSON body) of one call."""
    status, text = call(method, path, body, key, content_type)
    return status, json.loads(text) if text else None


def call(method, path, body=None, key=ADMIN_KEY, content_type="application/json"):
    """(status, body text) of one call."""
    data = None
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(URL + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def must(method, path, body=None, **kwargs):
    status, answer = api(method, path, body, **kwargs)
    assert status < 300, f"{method} {path}: {status} {answer}"
    return answer


# What the Access page lists: a user, a group, service accounts, and secrets in each vault API.
def seed_access():
    scim = "application/scim+json"
    user = must("POST", "/api/scim/v2/Users", {
        "userName": "ada@example.com", "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "roles": [{"type": "workspace_prod", "value": "editor"}]}, content_type=scim)
    must("POST", "/api/scim/v2/Groups", {
        "displayName": "risk-team", "members": [{"value": user["id"]}],
        "roles": [{"type": "all_workspaces", "value": "viewer"}]}, content_type=scim)
    must("POST", "/api/scim/v2/ServiceAccounts", {
        "name": "fraud-model", "roles": [{"type": "workspace_prod", "value": "consumer"}]},
        content_type=scim)
    viewer = must("POST", "/api/scim/v2/ServiceAccounts", {
        "name": "console-viewer", "roles": [{"type": "all_workspaces", "value": "viewer"}]},
        content_type=scim)
    must("POST", "/api/v1/secrets-service/scopes/payments")
    must("PUT", "/api/v1/secrets-service/scopes/payments/keys/stripe", {"value": SECRET_VALUES[0]})
    must("POST", "/api/svc/v1/secret-groups", {
        "name": "billing", "integrationId": "quiver",
        "secrets": [{"key": "DB_PASSWORD", "value": SECRET_VALUES[1]}]})
    must("POST", "/v0/secrets", f"name=pg_password&value={SECRET_VALUES[2]}",
         content_type="application/x-www-form-urlencoded")
    return viewer["apiKey"]


VIEWER_KEY = seed_access()
SECRET_VALUES.append(VIEWER_KEY)
LOOKUP = {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"}

options = webdriver.ChromeOptions()
for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1000", "--hide-scrollbars"]:
    options.add_argument(argument)
options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, WAIT_SECONDS)

# Every page's DOM and every answer's body the browser received, for the last check.
seen_pages = []
seen_answers = {}


def collect_answers():
    """Reads the browser's network log since the last call and keeps each answer's body."""
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] != "Network.responseReceived":
            continue
        request_id = message["params"]["requestId"]
        url = message["params"]["response"]["url"]
        try:
            body = driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": request_id})
            seen_answers[(request_id, url)] = body.get("body", "")
        except Exception:
            # A body the browser has let go of: fetched again below with the admin key.
            seen_answers[(request_id, url)] = None


def open_page(name):
    driver.get(f"{URL}/console/#/{name}")
    wait.until(lambda d: d.execute_script(
        "const p = document.getElementById('page');"
        f"return p.dataset.page === '{name}' && p.dataset.state === 'ready';"))
    return driver.find_element(By.ID, "page")


def remember(name):
    """Keeps the DOM, the network answers so far, and a screenshot of the page."""
    seen_pages.append((name, driver.page_source))
    collect_answers()
    # The whole page (up to a limit), not just the window.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(height, 700), 2400))
    driver.save_screenshot(os.path.join(SCREENSHOTS, f"{name}.png"))
    driver.set_window_size(1280, 1000)


def log_in(key):
    driver.get(f"{URL}/console/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(f"{URL}/console/")
    field = wait.until(lambda d: d.find_element(By.ID, "login-key"))
    wait.until(lambda d: field.is_displayed())
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    wait.until(lambda d: d.find_element(By.ID, "nav").is_displayed())


def check_1_login_and_repository():
    driver.get(f"{URL}/console/")
    wait.until(lambda d: d.find_element(By.ID, "login-key").is_displayed())
    remember("login")
    log_in(ADMIN_KEY)
    page = open_page("repository")
    text = page.text
    for name in ["user_risk_service", "fraud_detection_feature_service", "user_profile",
                 "credit_score", "mean(is_fraud) over 30d", "request.amount >", "user_id:string"]:
        assert name in text, f"the Repository page does not show {name!r}"
    assert "staging" in text
    remember("repository")


def js_text(value):
    """A served value as the console prints it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def check_2_lookup_shows_the_served_values():
    page = open_page("lookup")
    Select(page.find_element(By.ID, "service")).select_by_value("prod/user_risk_service")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#inputs input[data-key=merchant]"))
    for key, value in LOOKUP.items():
        page.find_element(By.CSS_SELECTOR, f"#inputs input[data-key={key}]").send_keys(value)
    page.find_element(By.CSS_SELECTOR, "#lookup-form button[type=submit]").click()
    table = wait.until(lambda d: d.find_element(By.ID, "vector"))
    shown = {}
    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        shown[cells[0]] = cells
    served = must("POST", "/api/v1/feature-service/get-features", {"params": {
        "workspaceName": "prod", "featureServiceName": "user_risk_service", "joinKeyMap": LOOKUP,
        "metadataOptions": {"includeNames": True, "includeDataTypes": True,
                            "includeServingStatus": True, "includeEffectiveTimes": True}}})
    names = [f["name"] for f in served["metadata"]["features"]]
    assert sorted(shown) == sorted(names), (shown, names)
    for meta, value in zip(served["metadata"]["features"], served["result"]["features"]):
        name, type_text, value_text, status, effective = shown[meta["name"]]
        assert value_text == js_text(value), (name, value_text, value)
        assert status == meta["status"], (name, status, meta)
        assert effective == meta["effectiveTime"], (name, effective, meta)
        assert type_text.startswith(meta["dataType"]["type"]), (name, type_text, meta)
    assert shown["user_profile.credit_score"][2] == "712"
    curl = driver.find_element(By.ID, "snippet-curl").text
    python = driver.find_element(By.ID, "snippet-python").text
    assert "$KEY" in curl and "user_1001" in curl and 'os.environ["KEY"]' in python
    remember("lookup")


def check_2b_lookup_with_request_context():
    page = open_page("lookup")
    Select(page.find_element(By.ID, "service")).select_by_value(
        "prod/fraud_detection_feature_service")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#inputs input[data-key=amount]"))
    for key, value in {**LOOKUP, "amount": "500"}.items():
        page.find_element(By.CSS_SELECTOR, f"#inputs input[data-key={key}]").send_keys(value)
    page.find_element(By.CSS_SELECTOR, "#lookup-form button[type=submit]").click()
    table = wait.until(lambda d: d.find_element(By.ID, "vector"))
    realtime = [row.text for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
                if row.text.startswith("transaction_amount_is_higher_than_average.")]
    assert realtime and "boolean" in realtime[0] and "PRESENT" in realtime[0], realtime
    # The amount went out as a number, as the service's float64 context field needs.
    assert '"amount": 500' in driver.find_element(By.ID, "snippet-curl").text


def check_3_snapshot_taken_and_listed():
    page = open_page("snapshots")
    page.find_element(By.ID, "take-snapshot").click()
    status = page.find_element(By.ID, "snapshot-status")
    wait.until(lambda d: "written" in status.text)
    snapshot_id = status.text.split()[1]
    listing = driver.find_element(By.ID, "snapshot-list")
    row = [r for r in listing.find_elements(By.CSS_SELECTOR, "tbody tr") if snapshot_id in r.text]
    assert row, f"snapshot {snapshot_id} is not listed: {listing.text}"
    assert "checksums verified" in row[0].text and "feature rows" in row[0].text, row[0].text
    assert any(s["id"] == snapshot_id for s in must("GET", "/admin/snapshots")["snapshots"])
    remember("snapshots")


def check_4_store_with_charts():
    # Traffic for the charts, then at least two samples of the sampler (one each 10 s).
    for _ in range(30):
        must("POST", "/api/v1/feature-service/get-features", {"params": {
            "workspaceName": "prod", "featureServiceName": "user_risk_service",
            "joinKeyMap": LOOKUP}})
    deadline = time.monotonic() + WAIT_SECONDS
    while len(must("GET", "/console/api/requests")["samples"]) < 2:
        assert time.monotonic() < deadline, "the request history has no samples"
        time.sleep(0.5)
    page = open_page("store")
    views = page.find_element(By.ID, "views").text
    assert "user_profile" in views and "user_transaction_counts" in views, views
    shards = page.find_elements(By.CSS_SELECTOR, "#shards tbody tr")
    assert shards, "no shard listed"
    for chart in ["chart-rate", "chart-latency"]:
        paths = page.find_elements(By.CSS_SELECTOR, f"#{chart} path.line")
        assert paths and any(p.get_attribute("d").count("L") >= 1 for p in paths), chart
    remember("store")


def check_5_access_lists_identities_and_secret_names():
    page = open_page("access")
    for table, names in {
        "users": ["ada@example.com"], "groups": ["risk-team", "ada@example.com"],
        "service-accounts": ["fraud-model", "console-viewer", "all_workspaces: viewer"],
        "scopes": ["payments", "stripe"], "secret-groups": ["quiver:billing", "DB_PASSWORD (v1)"],
        "tinybird-secrets": ["pg_password"],
    }.items():
        text = page.find_element(By.ID, table).text
        for name in names:
            assert name in text, f"{table} does not show {name!r}: {text}"
    remember("access")


def check_6_a_viewer_cannot_open_access():
    status, _ = api("GET", "/api/scim/v2/Users", key=VIEWER_KEY)
    assert status == 403, f"the server gave a viewer the directory: {status}"
    log_in(VIEWER_KEY)
    page = open_page("repository")
    assert "user_risk_service" in page.text
    page = open_page("access")
    refusal = page.find_elements(By.CSS_SELECTOR, "[data-refused='403']")
    assert refusal, f"the Access page did not say it was refused: {page.text}"
    for table in ["users", "groups", "service-accounts", "scopes", "secret-groups"]:
        assert not page.find_elements(By.ID, table), f"a viewer sees {table}"
    assert "ada@example.com" not in driver.page_source
    remember("access-viewer")
    page = open_page("snapshots")
    assert page.find_elements(By.CSS_SELECTOR, "[data-refused='403']"), page.text


def check_7_no_secret_value_in_any_page_or_answer():
    collect_answers()
    assert len(seen_pages) >= 7 and len(seen_answers) >= 15, (len(seen_pages), len(seen_answers))
    for name, source in seen_pages:
        for secret in SECRET_VALUES:
            assert secret not in source, f"a secret value is in the DOM of {name}"
    refetched = 0
    for (_, url), body in seen_answers.items():
        if body is None and url.startswith(URL):
            # Only GETs can be fetched again; the POSTs' bodies were read above or are
            # GetFeatures/snapshot answers, which hold no secret.
            _, body = call("GET", url[len(URL):])
            refetched += 1
        for secret in SECRET_VALUES:
            assert secret not in (body or ""), f"a secret value is in the answer of {url}"
    print(f"scanned {len(seen_pages)} pages and {len(seen_answers)} answers "
          f"({refetched} fetched again)")


def check_8_no_script_error():
    errors = [e for e in driver.get_log("browser") if e["source"] == "javascript"]
    assert not errors, errors


try:
    run_checks("console", globals())
finally:
    driver.quit()
