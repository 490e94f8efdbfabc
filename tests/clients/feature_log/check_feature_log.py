"""Feature logging seen from Python: what tecton-client was served is what the Parquet files hold.

`configure SERVICES_TOML`: turn on logging for user_risk_service (sample rate 1.0, effective
times). `serve OUT`: make requests through tecton-client, write what was served to OUT.
`verify SERVED LOG_DIR` (after the server stopped): read the log with pyarrow and pandas and
compare, row by row and in order: keys, every value, status and effective time.
Prints 'N passed, M failed' and exits non-zero on any failure.
"""

import datetime
import glob
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from checks import run_checks  # noqa: E402  (tests/clients/checks.py)

SERVICE = "user_risk_service"
REQUESTS = [
    ({"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"}, {"channel": "web", "ip": "10.0.0.1"}),
    ({"user_id": "user_1002", "merchant": "fraud_Haley Group"}, {}),
    ({"user_id": "nobody", "merchant": "nowhere"}, {}),
    ({"user_id": "user_1003", "merchant": "fraud_Kirlin and Sons"}, {"channel": "app"}),
]


def configure(services_toml):
    with open(services_toml) as f:
        text = f.read()
    marker = '  { view = "user_last_transaction" },\n]\n'
    assert text.count(marker) == 1, "user_risk_service's feature list moved; update the check"
    logging = ('[feature_service.logging]\nsample_rate = 1.0\nlog_effective_times = true\n'
               'exclude_request_context_fields = ["ip"]\n')
    with open(services_toml, "w") as f:
        f.write(text.replace(marker, marker + logging))


def serve(out):
    from tecton_client import MetadataOptions, TectonClient

    client = TectonClient(url=os.environ["QUIVER_URL"], api_key=os.environ["QUIVER_KEY"],
                          default_workspace_name="prod")
    served = []
    for join_keys, context in REQUESTS:
        response = client.get_features(feature_service_name=SERVICE, join_key_map=join_keys,
                                       request_context_map=context or None,
                                       metadata_options=MetadataOptions.all())
        features = response.get_features_dict()
        metadata = {item["name"]: item for item in response.metadata["features"]}
        served.append({
            "join_keys": join_keys,
            "context": context,
            "features": [{"name": name, "value": value, "status": metadata[name]["status"],
                          "effective_time": metadata[name].get("effectiveTime")}
                         for name, value in features.items()],
        })
    with open(out, "w") as f:
        json.dump(served, f)


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def same(served, logged):
    """Arrays, structs and maps are logged as Tecton's JSON text; scalars as typed values."""
    if isinstance(served, (list, dict)):
        return isinstance(logged, str) and json.loads(logged) == served
    if isinstance(logged, datetime.datetime):
        return isinstance(served, str) and parse_time(served) == logged
    if served in ("NaN", "Infinity", "-Infinity") and isinstance(logged, float):
        served = float(served.replace("Infinity", "inf"))  # the client leaves these as text
    if isinstance(served, float) and isinstance(logged, float):
        return served == logged or (math.isnan(served) and math.isnan(logged))
    return served == logged


def verify(served_path, log_dir):
    import pandas
    import pyarrow.parquet as pq

    with open(served_path) as f:
        served = json.load(f)
    files = sorted(glob.glob(os.path.join(log_dir, "*")))

    def check_only_complete_parquet_files_remain():
        assert files and all(name.endswith(".parquet") for name in files), files

    def rows():
        return [row for name in files for row in pq.read_table(name).to_pylist()]

    def check_exactly_the_served_keys_in_order():
        logged = rows()
        assert len(logged) == len(served), (len(logged), len(served))
        for row, answer in zip(logged, served):
            assert row["workspace"] == "prod" and row["service"] == SERVICE, row
            assert row["user_id"] == answer["join_keys"]["user_id"], (row["user_id"], answer["join_keys"])
            assert row["merchant"] == answer["join_keys"]["merchant"], (row["merchant"], answer["join_keys"])
            kept = {k: v for k, v in answer["context"].items() if k != "ip"}
            assert json.loads(row["request_context"]) == kept, row["request_context"]
            assert row["principal"] == "bootstrap admin", row["principal"]
            assert len(row["request_id"]) == 32, row["request_id"]

    def check_exactly_the_served_values_statuses_and_effective_times():
        for row, answer in zip(rows(), served):
            for feature in answer["features"]:
                column = feature["name"].replace(".", "__")
                assert same(feature["value"], row[column]), (column, feature["value"], row[column])
                assert row[column + "__status"] == feature["status"], (column, row[column + "__status"], feature)
                logged_time = row[column + "__effective_time"]
                expected = feature["effective_time"]
                if expected is None:
                    assert logged_time is None, (column, logged_time)
                else:
                    assert logged_time == parse_time(expected), (column, logged_time, expected)

    def check_pandas_reads_typed_columns():
        frame = pandas.concat([pandas.read_parquet(name) for name in files], ignore_index=True)
        assert len(frame) == len(served)
        assert str(frame["timestamp"].dtype).startswith("datetime64") and "UTC" in str(frame["timestamp"].dtype)
        assert frame["timestamp"].is_monotonic_increasing
        assert list(frame["user_id"]) == [answer["join_keys"]["user_id"] for answer in served]
        effective = frame["user_profile__credit_score__effective_time"]
        assert str(effective.dtype).startswith("datetime64") and "UTC" in str(effective.dtype), frame.dtypes

    run_checks("feature_log", locals())


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"configure": configure, "serve": serve, "verify": verify}[command](*args)
