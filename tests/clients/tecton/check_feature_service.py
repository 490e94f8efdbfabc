"""Checks Quiver against tecton-client 0.4.0, Tecton's own Python client for the Feature Service.

Rows are written through Quiver's Stream Ingest API with plain HTTP (the client has no ingest
call) and read back through the client: get_features, get_features_dict, metadata options,
request options (RequestOptions and allow_partial_results), feature service metadata, the async
client, and the client's exceptions for 400, 401, 404 and 504.
Prints 'N passed, M failed' and exits non-zero on any failure.
"""

import asyncio
import datetime
import json
import os
import sys
import urllib.request

from tecton_client import AsyncTectonClient, MetadataOptions, RequestOptions, TectonClient
from tecton_client.exceptions import (BadRequestError, GatewayTimeoutError, NotFoundError, ResourceExhaustedError,
                                      UnauthorizedError)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from checks import run_checks  # noqa: E402  (tests/clients/checks.py)

URL = os.environ["QUIVER_URL"]
KEY = os.environ["QUIVER_KEY"]
SERVICE = "user_risk_service"
client = TectonClient(url=URL, api_key=KEY, default_workspace_name="prod")


def assert_eligible_unless_store_was_slow(slo):
    """Tecton's SLO: eligible unless the store took 25 ms or more (a loaded machine can)."""
    slow = slo.store_max_latency >= 0.025
    assert slo.slo_eligible is (not slow), slo
    assert slo.slo_ineligibility_reasons == (["REDIS_LATENCY_LIMIT_EXCEEDED"] if slow else None), slo


def ingest(records):
    body = json.dumps({"workspace_name": "prod", "dry_run": False, "records": {"transactions": records}}).encode()
    request = urllib.request.Request(
        URL + "/ingest", data=body, method="POST",
        headers={"Authorization": "Tecton-key " + KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def check_ingested_rows_read_back_through_the_client():
    answer = ingest([{"record": {"user_id": "py_user", "merchant": "fraud_Haley Group", "terminal_id": 9001,
                                 "amt": 123.45, "category": "travel", "is_online": True, "timestamp": now_iso()}}])
    assert answer["ingestMetrics"]["featureViewIngestMetrics"][1]["onlineRecordIngestCount"] == "1", answer
    response = client.get_features(feature_service_name=SERVICE,
                                   join_key_map={"user_id": "py_user", "merchant": "fraud_Haley Group"})
    features = response.get_features_dict()
    assert features["user_last_transaction.last_amount"] == 123.45, features
    assert features["user_last_transaction.last_merchant"] == "fraud_Haley Group", features
    assert features["user_last_transaction.last_was_online"] is True, features
    assert features["merchant_profile.category"] == "misc_pos", features
    assert features["user_profile.credit_score"] is None, features


def check_get_features_dict_types_demo_rows():
    response = client.get_features(feature_service_name=SERVICE,
                                   join_key_map={"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"})
    assert response.result.features[6] == "712", response.result.features
    features = response.get_features_dict()
    assert features["user_profile.credit_score"] == 712
    assert features["user_profile.account_age_days"] == 1460
    assert features["user_profile.is_verified"] is True
    assert features["user_profile.preferred_categories"] == ["grocery", "travel"]
    assert features["user_profile.signup_time"] == "2022-01-15T09:30:00Z"
    assert features["merchant_profile.fraud_rate_30d"] == 0.0125
    assert response.slo_info is None


def check_structs_maps_and_int_keys():
    response = client.get_features(
        feature_service_name="payment_risk_service",
        join_key_map={"sender_id": "user_1002", "payee_merchant": "fraud_Kirlin and Sons", "terminal_id": 4242},
    )
    features = response.get_features_dict()
    assert features["payee.location"] == {"lat": 40.71, "lon": -74.0}, features
    assert features["payee.risk_scores"] == {"chargeback": 0.02, "velocity": 0.4}, features
    assert features["user_profile.credit_score"] == 655, features
    assert features["terminal_last_transaction.last_amount"] is None


def check_metadata_options():
    response = client.get_features(
        feature_service_name=SERVICE,
        join_key_map={"user_id": "user_1003", "merchant": "nobody"},
        metadata_options=MetadataOptions.all(),
    )
    by_name = {item["name"]: item for item in response.metadata["features"]}
    assert by_name["user_profile.credit_score"]["status"] == "PRESENT"
    assert by_name["user_profile.credit_score"]["effectiveTime"] == "2026-01-15T00:00:00Z"
    assert by_name["user_profile.credit_score"]["description"] == "Bureau score"
    assert by_name["user_profile.credit_score"]["tags"] == {"source": "bureau"}
    assert by_name["merchant_profile.category"]["status"] == "MISSING_DATA"
    slo = response.slo_info
    assert_eligible_unless_store_was_slow(slo)
    assert slo.server_time_seconds > 0 and slo.store_max_latency > 0
    assert slo.store_response_size_bytes > 0
    bare = client.get_features(feature_service_name=SERVICE, join_key_map={"user_id": "u", "merchant": "m"},
                               metadata_options=MetadataOptions(include_names=False, include_data_types=False))
    assert bare.metadata is None
    try:
        bare.get_features_dict()
        raise AssertionError("get_features_dict needs names")
    except ValueError:
        pass


def check_feature_service_metadata():
    metadata = client.get_feature_service_metadata(feature_service_name=SERVICE)
    assert [key["name"] for key in metadata.input_join_keys] == ["user_id", "merchant"]
    names = [item["name"] for item in metadata.feature_values]
    assert names[0] == "merchant_profile.category" and len(names) == 11, names
    response = client.get_features(feature_service_name=SERVICE, join_key_map={"user_id": "x", "merchant": "y"})
    assert names == [item["name"] for item in response.metadata["features"]], "metadata order = response order"
    types = {item["name"]: item["dataType"] for item in metadata.feature_values}
    assert types["user_profile.preferred_categories"] == {"type": "array", "elementType": {"type": "string"}}


def check_realtime_feature_against_the_stored_mean():
    day = datetime.timedelta(hours=3)
    when = (datetime.datetime.now(datetime.timezone.utc) - day).replace(microsecond=0).isoformat()
    ingest([{"record": {"user_id": "py_rt", "merchant": "m", "terminal_id": 1, "amt": amount, "category": "c",
                        "is_online": False, "transaction_id": f"py_{amount}", "is_fraud": 0, "timestamp": when}} for amount in (40.0, 60.0)])
    def higher(amount):
        response = client.get_features(feature_service_name="fraud_detection_feature_service",
                                       join_key_map={"user_id": "py_rt", "merchant": "m"}, request_context_map={"amount": amount})
        return response.get_features_dict()["transaction_amount_is_higher_than_average.transaction_amount_is_higher_than_average"]
    assert higher(49.0) is False
    assert higher(51.0) is True
    try:
        client.get_features(feature_service_name="fraud_detection_feature_service", join_key_map={"user_id": "py_rt", "merchant": "m"})
        raise AssertionError("expected BadRequestError")
    except BadRequestError as error:
        assert "Missing required request context key: amount" in str(error), error
    metadata = client.get_feature_service_metadata(feature_service_name="fraud_detection_feature_service")
    assert [key["name"] for key in metadata.input_request_context_keys] == ["amount"]


def check_request_options_coerce_null_counts_for_a_key_without_data():
    def read(options):
        response = client.get_features(feature_service_name="transaction_aggregates_service",
                                       join_key_map={"user_id": "nobody"}, request_options=options,
                                       metadata_options=MetadataOptions(include_serving_status=True))
        statuses = {item["name"]: item["status"] for item in response.metadata["features"]}
        return response.get_features_dict(), statuses
    features, statuses = read(RequestOptions(coerce_null_counts_to_zero=True))
    counts = {name: value for name, value in features.items() if "transaction_id_count_" in name}
    assert counts, features
    for name, value in counts.items():
        expected = [0] * 7 if "_series_" in name else 0
        assert value == expected and statuses[name] == "PRESENT", (name, value, statuses[name])
    assert all(value is None for name, value in features.items() if name not in counts), features
    features, statuses = read(RequestOptions(coerce_null_counts_to_zero=False))
    assert all(value is None for value in features.values()), features
    assert set(statuses.values()) == {"MISSING_DATA"}, statuses


def check_request_options_latency_budget_and_partial_results():
    # 2 MB of join keys no view reads: parsing them alone spends a 1 ms budget.
    join_keys = {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"}
    join_keys.update({f"unused_{i}": "x" * 100 for i in range(20_000)})
    budget = RequestOptions(latency_budget_ms=1)
    try:
        client.get_features(feature_service_name=SERVICE, join_key_map=join_keys, request_options=budget)
        raise AssertionError("expected GatewayTimeoutError")
    except GatewayTimeoutError as error:
        assert "latencyBudgetMs" in str(error), error
    response = client.get_features(feature_service_name=SERVICE, join_key_map=join_keys, request_options=budget,
                                   allow_partial_results=True,
                                   metadata_options=MetadataOptions(include_serving_status=True, include_slo_info=True))
    assert all(value is None for value in response.get_features_dict().values())
    assert {item["status"] for item in response.metadata["features"]} == {"TIME_OUT"}, response.metadata
    assert response.metadata["partialResults"] is True
    assert response.slo_info.slo_eligible is False
    assert response.slo_info.slo_ineligibility_reasons == ["REDIS_LATENCY_LIMIT_EXCEEDED"]
    # A generous budget and the cache switches change nothing (Quiver has no cache).
    plain = client.get_features(feature_service_name=SERVICE, join_key_map=join_keys)
    relaxed = client.get_features(feature_service_name=SERVICE, join_key_map=join_keys, allow_partial_results=True,
                                  request_options=RequestOptions(latency_budget_ms=60_000, read_from_cache=False,
                                                                 write_to_cache=False))
    assert relaxed.result.features == plain.result.features and "712" in plain.result.features


def check_response_size_limit_error_or_partial_results():
    """The second server's store may return 100 bytes a request: user_1001's rows pass that."""
    limited = TectonClient(url=os.environ["QUIVER_SIZE_LIMITED_URL"], api_key=KEY, default_workspace_name="prod")
    join_keys = {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"}
    try:
        limited.get_features(feature_service_name=SERVICE, join_key_map=join_keys)
        raise AssertionError("expected ResourceExhaustedError")
    except ResourceExhaustedError as error:
        assert "allowPartialResults" in str(error), error
    response = limited.get_features(feature_service_name=SERVICE, join_key_map=join_keys, allow_partial_results=True,
                                    metadata_options=MetadataOptions(include_serving_status=True,
                                                                     include_slo_info=True))
    statuses = {item["name"]: item["status"] for item in response.metadata["features"]}
    assert statuses["merchant_profile.category"] == "PRESENT", statuses
    assert statuses["user_profile.credit_score"] == "UNKNOWN_STATUS", statuses
    features = response.get_features_dict()
    assert features["merchant_profile.category"] == "grocery_pos" and features["user_profile.credit_score"] is None
    assert response.metadata["partialResults"] is True
    assert response.slo_info.slo_eligible is False
    assert response.slo_info.slo_ineligibility_reasons == ["DYNAMODB_RESPONSE_SIZE_LIMIT_EXCEEDED"]


def check_request_options_extra_request_context_fields_and_slo_info():
    request = dict(feature_service_name="fraud_detection_feature_service",
                   join_key_map={"user_id": "user_1001", "merchant": "m"},
                   request_context_map={"amount": 10.0, "currency": "EUR"})
    try:
        client.get_features(**request)
        raise AssertionError("expected BadRequestError")
    except BadRequestError as error:
        assert "Unexpected request context key: currency" in str(error), error
    response = client.get_features(**request, metadata_options=MetadataOptions(include_slo_info=True),
                                   request_options=RequestOptions(ignore_extra_request_context_fields=True))
    slo = response.slo_info
    assert_eligible_unless_store_was_slow(slo)
    assert slo.slo_server_time_seconds <= slo.server_time_seconds
    assert response.metadata["sloInfo"]["dynamodbResponseSizeBytes"] == slo.store_response_size_bytes > 0
    try:
        client.get_features(feature_service_name="fraud_detection_feature_service",
                            join_key_map={"user_id": "user_1001", "merchant": "m"}, request_context_map={"amount": "500"})
        raise AssertionError("expected BadRequestError for a float sent as a string")
    except BadRequestError as error:
        assert "Invalid value for request context key amount: expected float64" in str(error), error


def check_async_client():
    async def read():
        async_client = AsyncTectonClient(url=URL, api_key=KEY, default_workspace_name="prod")
        return await async_client.get_features(feature_service_name=SERVICE,
                                               join_key_map={"user_id": "user_1002", "merchant": "x"})
    features = asyncio.run(read()).get_features_dict()
    assert features["user_profile.home_country"] == "GB", features


def check_exceptions():
    try:
        client.get_features(feature_service_name=SERVICE, join_key_map={"user_id": "user_1001"})
        raise AssertionError("expected BadRequestError")
    except BadRequestError as error:
        assert "Missing required join key: merchant" in str(error), error
    try:
        TectonClient(url=URL, api_key="not-a-key", default_workspace_name="prod").get_features(
            feature_service_name=SERVICE, join_key_map={"user_id": "u", "merchant": "m"})
        raise AssertionError("expected UnauthorizedError")
    except UnauthorizedError as error:
        assert "401" in str(error) and "invalid 'Tecton-key' authorization header" in str(error), error
    try:
        client.get_features(feature_service_name="no_such_service", join_key_map={})
        raise AssertionError("expected NotFoundError")
    except NotFoundError as error:
        assert "Unable to query FeatureService `no_such_service`" in str(error), error
    try:
        client.get_feature_service_metadata(feature_service_name="experiment_service", workspace_name="staging")
        raise AssertionError("expected NotFoundError for a development workspace")
    except NotFoundError as error:
        assert "live" in str(error), error


def main():
    run_checks("tecton-client", globals())


if __name__ == "__main__":
    main()
