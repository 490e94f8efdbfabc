"""Checks Quiver against Tecton's own SDK and CLI (PyPI tecton==1.2.13), which reach a cluster
through `POST {API_SERVICE}/proxy` with base64 protobuf envelopes: `tecton secrets ...` from
scope creation to deletion, and its errors. Each CLI command runs as its own process, as a user
would run it, with `API_SERVICE` and `TECTON_API_KEY` in its environment and a fresh HOME.
Prints 'N passed, M failed' and exits non-zero on any failure.
"""

import os
import subprocess
import sys
import tempfile

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


def check_1_secrets_round_trip():
    assert 'Created secret scope "payments"' in tecton("secrets", "create-scope", "-s", "payments")
    tecton("secrets", "put", "-s", "payments", "-k", "stripe", stdin="sk_live_1\n")
    assert tecton("secrets", "get", "-s", "payments", "-k", "stripe").strip() == "sk_live_1"
    tecton("secrets", "put", "-s", "payments", "-k", "db", stdin="pw\n")
    assert tecton("secrets", "list", "-s", "payments").split() == ["db", "stripe"]
    assert "payments" in tecton("secrets", "list-scopes").split()


def check_2_secrets_errors_come_back_as_messages():
    missing = tecton("secrets", "get", "-s", "payments", "-k", "nope", expect_ok=False)
    assert "`nope` not found" in missing, missing
    refused = tecton("secrets", "list-scopes", key="not-a-key", expect_ok=False)
    assert "credentials are invalid" in refused, refused


def check_3_secrets_delete():
    assert 'Deleted secret "db"' in tecton("secrets", "delete", "-s", "payments", "-k", "db")
    assert tecton("secrets", "list", "-s", "payments").split() == ["stripe"]
    # Quiver deletes only an empty scope, and says so through the proxy as through its JSON API.
    refused = tecton("secrets", "delete-scope", "-s", "payments", expect_ok=False)
    assert "still holds 1 secret" in refused, refused
    tecton("secrets", "delete", "-s", "payments", "-k", "stripe")
    assert 'Deleted secret scope "payments"' in tecton("secrets", "delete-scope", "-s", "payments")
    assert "payments" not in tecton("secrets", "list-scopes").split()


run_checks("tecton SDK/CLI", globals())
