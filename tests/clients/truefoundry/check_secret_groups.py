"""Checks Quiver against truefoundry-sdk 0.6.0, TrueFoundry's own Python client: secret groups
(create, list with its pager, get, get_by_fqn, update with versions, create_or_update by
manifest, delete) and secrets (list with and without values, get, delete), and its errors.
Prints 'N passed, M failed' and exits non-zero on any failure.
"""

import json
import os
import sys
import urllib.request

from truefoundry_sdk import TrueFoundry
from truefoundry_sdk.core.api_error import ApiError

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from checks import run_checks  # noqa: E402  (tests/clients/checks.py)

URL = os.environ["QUIVER_URL"]
client = TrueFoundry(base_url=URL, api_key=os.environ["QUIVER_KEY"])
state = {}


def check_1_create_and_get():
    created = client.secret_groups.create(
        name="payments", integration_id="internal-store",
        secrets=[{"key": "STRIPE_KEY", "value": "sk_1"}, {"key": "DB_PASSWORD", "value": "pw_1"}],
    ).data
    assert created.fqn == "quiver:payments", created.fqn
    assert created.tenant_name == "quiver"
    assert {s.name for s in created.associated_secrets} == {"STRIPE_KEY", "DB_PASSWORD"}
    assert all(s.value is None for s in created.associated_secrets), "groups never carry values"
    state["group"] = created.id
    fetched = client.secret_groups.get(created.id).data
    assert fetched.id == created.id


def check_2_pager_and_fqn():
    for i in range(3):
        client.secret_groups.create(name=f"extra-{i}", integration_id="internal-store", secrets=[])
    names = [group.name for group in client.secret_groups.list(limit=2)]
    assert sorted(names) == sorted(["payments", "extra-0", "extra-1", "extra-2"]), names
    by_fqn = client.secret_groups.get_by_fqn(fqn="quiver:payments")
    assert by_fqn.data.id == state["group"]
    try:
        client.secret_groups.get_by_fqn(fqn="quiver:nothing")
        raise AssertionError("expected a not-found error")
    except ApiError as error:
        assert error.status_code == 404


def check_3_update_versions():
    group = client.secret_groups.update(state["group"], secrets=[{"key": "STRIPE_KEY", "value": "sk_2"}, {"key": "DB_PASSWORD"}]).data
    by_name = {s.name: s for s in group.associated_secrets}
    assert [v.version for v in by_name["STRIPE_KEY"].secret_versions] == [1, 2]
    assert [v.version for v in by_name["DB_PASSWORD"].secret_versions] == [1]
    state["stripe"] = by_name["STRIPE_KEY"].id
    assert client.secrets.get(state["stripe"]).data.value == "sk_2"


def check_4_list_secrets():
    without = list(client.secrets.list(secret_group_id=state["group"]))
    assert len(without) == 2 and all(s.value is None for s in without)
    with_values = list(client.secrets.list(secret_fqns=["quiver:payments:STRIPE_KEY"], with_value=True))
    assert [s.value for s in with_values] == ["sk_2"]


def check_5_manifest_upsert():
    manifest = {"type": "secret-group", "name": "payments", "integration_fqn": "internal:secret-store", "collaborators": []}
    group = client.secret_groups.create_or_update(manifest=manifest).data
    assert group.id == state["group"]


def check_6_errors_and_deletes():
    try:
        client.secret_groups.create(name="payments", integration_id="x", secrets=[])
        raise AssertionError("expected a conflict")
    except ApiError as error:
        assert error.status_code == 409
    client.secrets.delete(state["stripe"])
    try:
        client.secrets.get(state["stripe"])
        raise AssertionError("expected not found")
    except ApiError as error:
        assert error.status_code == 404
    client.secret_groups.delete(state["group"])
    try:
        TrueFoundry(base_url=URL, api_key="wrong").secret_groups.get(state["group"])
        raise AssertionError("expected unauthorized")
    except ApiError as error:
        assert error.status_code == 401


def check_7_creator_subject_search_and_versions():
    """A group created by a named service account says who, through the SDK's models."""
    body = json.dumps({"name": "tf-sdk-creator", "roles": [{"type": "account_type", "value": "admin"}]}).encode()
    request = urllib.request.Request(URL + "/api/scim/v2/ServiceAccounts", data=body, method="POST",
                                     headers={"Authorization": "Bearer " + os.environ["QUIVER_KEY"]})
    with urllib.request.urlopen(request) as response:
        account = json.load(response)
    creator = TrueFoundry(base_url=URL, api_key=account["apiKey"])
    group = creator.secret_groups.create(name="billing-keys", integration_id="internal-store",
                                         secrets=[{"key": "INVOICE_TOKEN", "value": "t1"}]).data
    subject = group.created_by_subject
    assert (subject.subject_id, subject.subject_type) == (account["id"], "serviceaccount"), subject
    assert subject.subject_slug == subject.subject_display_name == "tf-sdk-creator", subject
    assert group.created_by == "tf-sdk-creator"
    secret = group.associated_secrets[0]
    assert secret.created_by_subject.subject_slug == "tf-sdk-creator"
    assert secret.secret_versions[0].secret.name == "INVOICE_TOKEN", secret.secret_versions[0]
    found = [g.name for g in client.secret_groups.list(search="INVOICE")]
    assert found == ["billing-keys"], found


def main():
    run_checks("truefoundry-sdk", globals())


if __name__ == "__main__":
    main()
