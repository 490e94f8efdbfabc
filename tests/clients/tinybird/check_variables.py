"""Checks Quiver's Tinybird secrets API with verdin 0.5.3 (LocalStack's Tinybird client, which
calls `/v0/variables` with a Bearer token and form bodies): create, list, get, update, delete,
not-found and a duplicate. Prints 'N passed, M failed' and exits non-zero on any failure.
"""

import os
import sys
import time

from verdin.api.base import ApiError
from verdin.api.variables import VariableNotFoundError
from verdin.client import Client

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from checks import run_checks  # noqa: E402  (tests/clients/checks.py)

client = Client(token=os.environ["QUIVER_KEY"], api=os.environ["QUIVER_URL"])
variables = client.api.variables


def check_1_create_list_get():
    created = variables.create(name="pg_password", value="s3cr&t=x y")
    assert created.variable["name"] == "pg_password" and created.variable["type"] == "secret"
    assert "value" not in created.variable
    names = [v["name"] for v in variables.list().variables]
    assert names == ["pg_password"], names
    assert variables.get("pg_password").variable["name"] == "pg_password"


def next_second():
    """Tinybird's Secrets API allows 5 requests a second, reads included."""
    time.sleep(1.1)


def check_2_update_and_duplicate():
    next_second()
    updated = variables.update("pg_password", "new-value")
    assert updated.variable["name"] == "pg_password"
    try:
        variables.create(name="pg_password", value="again")
        raise AssertionError("expected a 400 for a duplicate name")
    except ApiError as error:
        assert "API Error (400)" in str(error) and "already exists" in str(error), error


def check_3_delete_and_not_found():
    next_second()
    assert variables.delete("pg_password").ok is True
    try:
        variables.delete("pg_password")
        raise AssertionError("expected not found")
    except VariableNotFoundError:
        pass


def main():
    run_checks("verdin", globals())


if __name__ == "__main__":
    main()
