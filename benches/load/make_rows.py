"""Writes N synthetic `user_profile` rows (the demo's batch view) as CSV and as Parquet (Snappy,
pyarrow's default; 128k-row groups), for measuring `quiver load` end to end (README,
"Performance"). Usage: python make_rows.py N OUT_DIR (needs pyarrow)."""
import sys
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.compute as pc
import pyarrow.parquet as pq

n, out = int(sys.argv[1]), sys.argv[2]
ids = pa.array(range(n), pa.int64())
base = datetime(2026, 1, 15, tzinfo=timezone.utc)
countries = pa.array(["US", "GB", "DE", "FR", "BR", "JP", "IN"])
categories = [["grocery", "travel"], ["electronics"], [], ["fashion", "grocery", "fuel"]]
table = pa.table({
    "user_id": pc.binary_join_element_wise("user_", pc.cast(ids, pa.string()), ""),
    "timestamp": pa.array([base] * n, pa.timestamp("us", tz="UTC")),
    "credit_score": pc.add(pc.remainder(ids, 550), 300),
    "account_age_days": pc.remainder(ids, 4000),
    "is_verified": pc.equal(pc.remainder(ids, 3), 0),
    "home_country": pc.take(countries, pc.remainder(ids, len(countries))),
    "preferred_categories": pa.array([categories[i % len(categories)] for i in range(n)],
                                     pa.list_(pa.string())),
    "signup_time": pa.array([base - timedelta(seconds=i) for i in range(n)],
                            pa.timestamp("us", tz="UTC")),
})
pq.write_table(table, f"{out}/user_profile.parquet", row_group_size=128 * 1024)

# CSV as the loader reads it: arrays as JSON in the cell, RFC 3339 times, true/false.
def iso(column):
    return pc.strftime(column, format="%Y-%m-%dT%H:%M:%SZ")

lists = pa.array(['["' + '","'.join(c) + '"]' if c else "[]" for c in categories])
text = table.set_column(1, "timestamp", iso(table["timestamp"])) \
    .set_column(4, "is_verified", pc.if_else(table["is_verified"], "true", "false")) \
    .set_column(6, "preferred_categories", pc.take(lists, pc.remainder(ids, len(categories)))) \
    .set_column(7, "signup_time", iso(table["signup_time"]))
pacsv.write_csv(text, f"{out}/user_profile.csv",
                pacsv.WriteOptions(quoting_style="needed"))
