"""Parquet bulk-load check (see run.sh): writes the files and compares what two servers serve."""
import csv
import json
import re
import sys
import urllib.request
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    ("user_id", pa.string()),
    ("timestamp", pa.timestamp("ns", tz="UTC")),
    ("credit_score", pa.int64()),
    ("account_age_days", pa.int32()),
    ("is_verified", pa.bool_()),
    ("home_country", pa.string()),
    ("preferred_categories", pa.list_(pa.string())),
    ("signup_time", pa.timestamp("us", tz="UTC")),
])
FEATURES = ["credit_score", "account_age_days", "is_verified", "home_country",
            "preferred_categories", "signup_time"]


def config(source, target):
    """The repository's config without the demo seed, so the loaded rows are all a server has."""
    text = open(source).read()
    text = re.sub(r"^\[\[demo\.seed\]\]\n(?:[^\n]+\n)*", "", text, flags=re.M)
    assert "demo.seed" not in text
    open(target, "w").write(text)


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def write(jsonl, out):
    rows = [json.loads(line) for line in open(jsonl) if line.strip()]
    for row in rows:
        row["timestamp"] = parse_time(row["timestamp"])
        row["signup_time"] = parse_time(row["signup_time"])
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    pq.write_table(table, f"{out}/user_profile.parquet")  # Snappy: pyarrow's default
    assert pq.ParquetFile(f"{out}/user_profile.parquet").metadata.row_group(0).column(0).compression == "SNAPPY"

    with open(f"{out}/user_profile.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SCHEMA.names)
        for row in rows:
            writer.writerow([cell(row[name]) for name in SCHEMA.names])

    # Two row groups, the second's first credit score a string: refused naming both.
    bad = pa.table({"user_id": ["user_1001", "user_1002"],
                    "timestamp": pa.array([rows[0]["timestamp"]] * 2, pa.timestamp("us", tz="UTC")),
                    "credit_score": [None, "712"]})
    pq.write_table(bad, f"{out}/bad.parquet", row_group_size=1)
    # Zstandard (polars' default) is not built in: refused naming the codec.
    pq.write_table(table, f"{out}/zstd.parquet", compression="zstd")


def cell(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list):
        return json.dumps(value)
    return "" if value is None else str(value)


def get_features(url, key, user_id):
    body = {"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
                       "joinKeyMap": {"user_id": user_id, "merchant": "none"},
                       "metadataOptions": {"includeNames": True, "includeServingStatus": True}}}
    request = urllib.request.Request(f"{url}/api/v1/feature-service/get-features",
                                     data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Tecton-key {key}"})
    answer = json.load(urllib.request.urlopen(request))
    names = [f["name"] for f in answer["metadata"]["features"]]
    statuses = [f.get("status") for f in answer["metadata"]["features"]]
    return {name: (value, status)
            for name, value, status in zip(names, answer["result"]["features"], statuses)
            if name.startswith("user_profile.")}


def compare(from_parquet, from_csv, key, jsonl):
    rows = [json.loads(line) for line in open(jsonl) if line.strip()]
    for row in rows:
        parquet_values = get_features(from_parquet, key, row["user_id"])
        csv_values = get_features(from_csv, key, row["user_id"])
        assert parquet_values == csv_values, (row["user_id"], parquet_values, csv_values)
        assert sorted(parquet_values) == sorted(f"user_profile.{f}" for f in FEATURES), parquet_values
        for name, (value, status) in parquet_values.items():
            assert status == "PRESENT", (row["user_id"], name, status)
        # And they are the rows' values, not only equal to each other.
        assert parquet_values["user_profile.credit_score"][0] == str(row["credit_score"])
        assert parquet_values["user_profile.preferred_categories"][0] == row["preferred_categories"]
        assert parquet_values["user_profile.signup_time"][0] == row["signup_time"]
    print(f"{len(rows)} users: the Parquet and the CSV load serve the same values")


if __name__ == "__main__":
    {"config": config, "write": write, "compare": compare}[sys.argv[1]](*sys.argv[2:])
