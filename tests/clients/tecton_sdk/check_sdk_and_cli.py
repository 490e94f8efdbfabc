"""Checks Quiver against Tecton's own SDK and CLI (PyPI tecton==1.2.13), which reach a cluster
through `POST {API_SERVICE}/proxy` with base64 protobuf envelopes: `tecton secrets ...` from scope
creation to deletion, and its errors; `tecton get-caller-identity`; `tecton access-control ...` on
secret scopes for a service account and a user (by email) made through SCIM, under the scope role
rules, and on workspaces and the organization (`-w`, `--all-workspaces`); `tecton service-account
...` on the directory; and, from Python, `tecton.login`, `list_workspaces`, `get_workspace`, and
`get_feature_service(...).get_online_features(...)` for the demo's services, compared with Quiver's
own GetFeatures answer. Each CLI command runs as its own process, as a user would run it, with
`API_SERVICE` and `TECTON_API_KEY` in its environment and a fresh HOME. Prints 'N passed, M
failed' and exits non-zero on any failure.
"""

import datetime
import functools
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from checks import run_checks  # noqa: E402  (tests/clients/checks.py)

URL = os.environ["QUIVER_URL"]
ADMIN_KEY = os.environ["QUIVER_KEY"]
HOME = tempfile.mkdtemp(prefix="tecton-sdk-home-")


def tecton(*args, key=ADMIN_KEY, stdin=None, expect_ok=True):
    """Runs one `tecton` CLI command; returns its output (stdout and stderr together)."""
    env = dict(os.environ, HOME=HOME, API_SERVICE=URL + "/api", TECTON_API_KEY=key, COLUMNS="200")
    done = subprocess.run(
        [os.environ["TECTON_CLI"], *args], input=stdin, env=env, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    if expect_ok:
        assert done.returncode == 0, f"tecton {' '.join(args)} exited {done.returncode}:\n{output}"
    else:
        assert done.returncode != 0, f"tecton {' '.join(args)} succeeded:\n{output}"
    return output


def check_01_secrets_round_trip():
    assert 'Created secret scope "payments"' in tecton("secrets", "create-scope", "-s", "payments")
    tecton("secrets", "put", "-s", "payments", "-k", "stripe", stdin="sk_live_1\n")
    assert tecton("secrets", "get", "-s", "payments", "-k", "stripe").strip() == "sk_live_1"
    tecton("secrets", "put", "-s", "payments", "-k", "db", stdin="pw\n")
    assert tecton("secrets", "list", "-s", "payments").split() == ["db", "stripe"]
    assert "payments" in tecton("secrets", "list-scopes").split()


def check_02_secrets_errors_come_back_as_messages():
    missing = tecton("secrets", "get", "-s", "payments", "-k", "nope", expect_ok=False)
    assert "`nope` not found" in missing, missing
    refused = tecton("secrets", "list-scopes", key="not-a-key", expect_ok=False)
    assert "credentials are invalid" in refused, refused


def check_03_secrets_delete():
    assert 'Deleted secret "db"' in tecton("secrets", "delete", "-s", "payments", "-k", "db")
    assert tecton("secrets", "list", "-s", "payments").split() == ["stripe"]
    # Quiver deletes only an empty scope, and says so through the proxy as through its JSON API.
    refused = tecton("secrets", "delete-scope", "-s", "payments", expect_ok=False)
    assert "still holds 1 secret" in refused, refused
    tecton("secrets", "delete", "-s", "payments", "-k", "stripe")
    assert 'Deleted secret scope "payments"' in tecton("secrets", "delete-scope", "-s", "payments")
    assert "payments" not in tecton("secrets", "list-scopes").split()


def scim_create(resource_type, body):
    """Creates a directory resource through SCIM; returns its record."""
    request = urllib.request.Request(
        f"{URL}/api/scim/v2/{resource_type}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as reply:
        return json.load(reply)


def service_account(name, roles):
    """Creates a service account through SCIM; returns (id, API key)."""
    created = scim_create("ServiceAccounts", {"name": name, "roles": roles})
    return created["id"], created["apiKey"]


def granted_roles(principal_flag, principal):
    """`tecton access-control get-roles` as (resource type, workspace or scope, role) triples."""
    roles = json.loads(tecton("access-control", "get-roles", principal_flag, principal, "--json-out"))
    return [
        (entry["resource_type"], entry.get("name") or entry.get("workspace_name"), role["role"])
        for entry in roles
        for role in entry["roles_granted"]
    ]


def check_04_access_control_on_secret_scopes():
    bot, bot_key = service_account("bot", [{"type": "workspace_prod", "value": "consumer"}])
    tecton("secrets", "create-scope", "-s", "keys")
    tecton("secrets", "put", "-s", "keys", "-k", "api", stdin="t0k3n\n")
    # Without a role the service account reads nothing.
    denied = tecton("secrets", "get", "-s", "keys", "-k", "api", key=bot_key, expect_ok=False)
    assert "keys" in denied, denied
    assigned = tecton("access-control", "assign-role", "-c", "keys", "-s", bot, "-r", "secret_scope_reader")
    assert "Successfully updated role" in assigned, assigned
    assert tecton("secrets", "get", "-s", "keys", "-k", "api", key=bot_key).strip() == "t0k3n"
    # A reader does not manage the scope, so it cannot hand out roles.
    refused = tecton(
        "access-control", "assign-role", "-c", "keys", "-s", bot, "-r", "secret_scope_manager", key=bot_key,
        expect_ok=False,
    )
    assert "Failed to update role" in refused, refused

    granted = granted_roles("-s", bot)
    assert granted == [("WORKSPACE", "prod", "consumer"), ("SECRET_SCOPE", "keys", "secret_scope_reader")], granted
    principals = tecton("access-control", "get-principals", "-c", "keys")
    assert bot[:8] in principals and "Service" in principals, principals

    unassigned = tecton("access-control", "unassign-role", "-c", "keys", "-s", bot, "-r", "secret_scope_reader")
    assert "Successfully updated role" in unassigned, unassigned
    tecton("secrets", "get", "-s", "keys", "-k", "api", key=bot_key, expect_ok=False)


def check_05_user_by_email():
    scim_create("Users", {"userName": "Ann@Example.com", "name": {"givenName": "Ann", "familyName": "Lee"}})
    # -u takes an email: the CLI finds the user's id with MetadataService/GetUser.
    tecton("access-control", "assign-role", "-c", "keys", "-u", "ann@example.com", "-r", "secret_scope_writer")
    principals = tecton("access-control", "get-principals", "-c", "keys")
    assert "User" in principals and "Ann@Example" in principals, principals
    missing = tecton(
        "access-control", "assign-role", "-c", "keys", "-u", "nobody@example.com", "-r", "secret_scope_reader",
        expect_ok=False,
    )
    assert "nobody@example.com" in missing, missing


def check_06_workspace_and_organization_roles():
    bot, bot_key = service_account("bot-2", [])
    # A service account without a role reads no features; an admin gives it one with the CLI.
    tecton("access-control", "assign-role", "-w", "prod", "-s", bot, "-r", "consumer")
    tecton("access-control", "assign-role", "--all-workspaces", "-s", bot, "-r", "viewer")
    assert granted_roles("-s", bot) == [("WORKSPACE", "prod", "consumer"), ("ORGANIZATION", None, "viewer")]
    request = urllib.request.Request(
        f"{URL}/api/v1/feature-service/get-features",
        data=json.dumps(
            {"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
                        "joinKeyMap": {"user_id": "user_1001", "merchant": "fraud_Sporer-Keebler"}}}
        ).encode(),
        headers={"Authorization": f"Tecton-key {bot_key}"},
    )
    with urllib.request.urlopen(request) as reply:
        assert reply.status == 200
    # Roles are the directory's: SCIM shows the same entries.
    scim = urllib.request.Request(
        f"{URL}/api/scim/v2/ServiceAccounts/{bot}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    with urllib.request.urlopen(scim) as reply:
        assert {"type": "workspace_prod", "value": "consumer"} in json.load(reply)["roles"]
    holders = tecton("access-control", "get-principals", "-w", "prod")
    assert bot in holders and "consumer" in holders, holders
    # Only an admin assigns them, as only an admin writes SCIM.
    refused = tecton(
        "access-control", "assign-role", "-w", "prod", "-s", bot, "-r", "owner", key=bot_key, expect_ok=False
    )
    assert "not an admin" in refused, refused
    tecton("access-control", "unassign-role", "-w", "prod", "-s", bot, "-r", "consumer")
    assert granted_roles("-s", bot) == [("ORGANIZATION", None, "viewer")]
    missing = tecton("access-control", "unassign-role", "-w", "prod", "-s", bot, "-r", "consumer", expect_ok=False)
    assert "does not hold" in missing, missing
    assert "Invalid role" in tecton(
        "access-control", "assign-role", "-c", "keys", "-s", bot, "-r", "owner", expect_ok=False
    )


def check_07_caller_identity():
    bot, bot_key = service_account("whoami-bot", [])
    identity = tecton("get-caller-identity", key=bot_key)
    assert f"Service Account ID  {bot}" in identity and "whoami-bot" in identity, identity


@functools.cache
def sdk():
    """The `tecton` module, logged in to Quiver as the admin."""
    os.environ["HOME"] = HOME
    import tecton

    port = URL.rsplit(":", 1)[1]
    # tecton.login takes https, or http on localhost.
    tecton.login(f"http://localhost:{port}/api", tecton_api_key=ADMIN_KEY)
    return tecton


def check_08_sdk_login_and_workspaces():
    tecton = sdk()
    assert tecton.list_workspaces() == ["prod", "staging"], tecton.list_workspaces()
    assert str(tecton.get_workspace("prod")) == "prod (Live)"


def quiver_get_features(service, join_keys, request_context):
    """Quiver's own GetFeatures answer, as {feature name: value} typed as the SDK types it."""
    body = {
        "params": {
            "workspaceName": "prod",
            "featureServiceName": service,
            "joinKeyMap": join_keys,
            "requestContextMap": request_context,
            "metadataOptions": {"includeNames": True, "includeDataTypes": True},
        }
    }
    request = urllib.request.Request(
        f"{URL}/api/v1/feature-service/get-features",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Tecton-key {ADMIN_KEY}"},
    )
    with urllib.request.urlopen(request) as reply:
        answer = json.load(reply)

    def typed(value, data_type):
        # Tecton's JSON carries int64 as strings and timestamps as RFC 3339 text.
        if value is None:
            return None
        if data_type["type"] == "int64":
            return int(value)
        if data_type["type"] == "timestamp":
            return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if data_type["type"] == "array":
            return [typed(item, data_type["elementType"]) for item in value]
        return value

    return {
        feature["name"]: typed(value, feature["dataType"])
        for feature, value in zip(answer["metadata"]["features"], answer["result"]["features"])
    }


def sdk_online_features(service, join_keys, request_data):
    """The public path: the service's definitions through the proxy, then its online read."""
    vector = sdk().get_workspace("prod").get_feature_service(service).get_online_features(
        join_keys=join_keys, request_data=request_data
    )
    # to_pandas keeps each value as the SDK decoded it (to_dict refuses timestamp values).
    table = vector.to_pandas(return_effective_times=True)
    values = {}
    for name, value in zip(table["name"], table["value"]):
        values[name] = value.tolist() if hasattr(value, "tolist") else value
    return values


def check_09_get_online_features_for_the_demo_services():
    keys = {"user_id": "user_1001", "merchant": "fraud_Sporer-Keebler"}
    for service, request_data in [
        ("user_risk_service", None),
        ("fraud_detection_feature_service", {"amount": 500.0}),
    ]:
        # The demo's aggregates end at the last complete tile before now: read Quiver's answer
        # before and after the SDK's, and compare once both agree (no tile boundary between).
        for _ in range(3):
            before = quiver_get_features(service, keys, request_data or {})
            sdk = sdk_online_features(service, keys, request_data)
            if quiver_get_features(service, keys, request_data or {}) == before:
                break
        assert sdk == before, f"{service}:\nSDK    {sdk}\nQuiver {before}"
        assert sum(value is not None for value in sdk.values()) >= 5, sdk
    assert sdk["transaction_amount_is_higher_than_average.transaction_amount_is_higher_than_average"] is True


def check_10_feature_service_definitions_and_refusals():
    tecton = sdk()

    service = tecton.get_workspace("prod").get_feature_service("fraud_detection_feature_service")
    # What get_online_features checks request_data against: the realtime view's request source.
    context = {name: str(data_type) for name, data_type in service._request_context.schema.items()}
    assert context == {"amount": "Float64"}, context
    assert "user_transaction_amount_metrics__amt_mean_1d_10m" in service.get_feature_columns()
    try:
        tecton.get_workspace("prod").get_feature_service("nope")
    except Exception as error:
        assert "feature service `nope` does not exist in workspace `prod`" in str(error), error
    else:
        raise AssertionError("an unknown service was found")
    # A development workspace's service is described, but the SDK reads only live ones online.
    staging = tecton.get_workspace("staging").get_feature_service("experiment_service")
    try:
        staging.get_online_features(join_keys={"user_id": "user_1001"})
    except Exception as error:
        assert "not supported in a development workspace" in str(error), error
    else:
        raise AssertionError("a development workspace served features")


def check_11_service_accounts():
    created = json.loads(tecton("service-account", "create", "-n", "ci-bot", "-d", "CI pipeline", "--json-out"))
    bot, bot_key = created["id"], created["api_key"]
    assert f"Service Account ID  {bot}" in tecton("get-caller-identity", key=bot_key)
    listed = json.loads(tecton("service-account", "list", "--json-out", "-s", "ci pipe"))
    assert [(a["id"], a["name"], a["description"], a["active"]) for a in listed] == [
        (bot, "ci-bot", "CI pipeline", True)
    ], listed
    assert "Successfully updated" in tecton("service-account", "update", bot, "-n", "ci-bot-2")
    # Deactivated, its key stops working; activated again, it works again.
    tecton("service-account", "deactivate", bot)
    assert "invalid" in tecton("get-caller-identity", key=bot_key, expect_ok=False)
    tecton("service-account", "activate", bot)
    assert "ci-bot-2" in tecton("get-caller-identity", key=bot_key)
    # Managing accounts is for admins, as in SCIM.
    refused = tecton("service-account", "list", key=bot_key, expect_ok=False)
    assert "not an admin" in refused, refused
    assert "OAuth" in tecton("service-account", "create", "-n", "oauth-bot", "--oauth", expect_ok=False)
    assert "Successfully deleted" in tecton("service-account", "delete", bot)
    assert bot not in tecton("service-account", "list")


run_checks("tecton SDK/CLI", globals())
