//! The write path: Stream Ingest API records and the bulk loader, read back through GetFeatures.

use std::process::Command;

use serde_json::{json, Value as Json};

use super::common::{repo_root, timestamp_in, Server, ServerBuilder, ADMIN_KEY};
use super::registry::broken_config;

fn transaction(user: &str, terminal: Json, amount: Json, seconds_ago: i64) -> Json {
    json!({"record": {"user_id": user, "merchant": "m_1", "terminal_id": terminal, "amt": amount,
        "category": "grocery", "is_online": true, "timestamp": timestamp_in(-seconds_ago)}})
}

/// The ingest metrics entry of one view.
fn metric(body: &Json, view: &str) -> Json {
    body["ingestMetrics"]["featureViewIngestMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["featureViewName"] == view)
        .cloned()
        .unwrap()
}

fn ingest(server: &Server, records: Vec<Json>, dry_run: bool) -> super::common::Reply {
    server.admin_post("/ingest", &json!({"workspace_name": "prod", "dry_run": dry_run, "records": {"transactions": records}}))
}

/// `[last_amount, last_merchant, last_was_online]` of a user and the status of the first.
fn last_transaction(server: &Server, user: &str) -> (Json, String) {
    let request = json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": user, "merchant": "m"}, "metadataOptions": {"includeServingStatus": true}}});
    let body = server
        .admin_post("/api/v1/feature-service/get-features", &request)
        .json();
    let features = &body["result"]["features"];
    (
        json!([features[2], features[3], features[4]]),
        body["metadata"]["features"][2]["status"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// Feature `index` of `payment_risk_service`'s answer for these join keys.
fn payment_risk_feature(server: &Server, join_keys: Json, index: usize) -> Json {
    let request = json!({"params": {"workspaceName": "prod", "featureServiceName": "payment_risk_service",
        "joinKeyMap": join_keys}});
    server
        .admin_post("/api/v1/feature-service/get-features", &request)
        .json()["result"]["features"][index]
        .clone()
}

fn terminal_amount(server: &Server, terminal: Json) -> Json {
    let keys = json!({"sender_id": "x", "payee_merchant": "y", "terminal_id": terminal});
    payment_risk_feature(server, keys, 4)
}

#[test]
fn ingested_records_are_served_by_every_subscribed_view() {
    let server = Server::start();
    let reply = ingest(
        &server,
        vec![
            transaction("alice", json!("42"), json!(19.99), 60),
            transaction("bob", json!(43), json!(5), 30),
        ],
        false,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["workspaceName"], "prod");
    let names: Vec<&str> = body["ingestMetrics"]["featureViewIngestMetrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["featureViewName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "merchant_fraud_rate",
            "terminal_last_transaction",
            "user_last_transaction",
            "user_recent_activity",
            "user_transaction_amount_metrics",
            "user_transaction_counts"
        ],
        "every view the source feeds, by name"
    );
    let user_metrics = metric(&body, "user_last_transaction");
    assert_eq!(
        user_metrics["onlineRecordIngestCount"], "2",
        "counts are strings"
    );
    assert_eq!(user_metrics["featureViewId"].as_str().unwrap().len(), 32);
    assert_eq!(
        body["ingestMetrics"]["dataSourceIngestMetrics"][0]["dataSourceName"],
        "transactions"
    );

    assert_eq!(
        last_transaction(&server, "alice"),
        (json!([19.99, "m_1", true]), "PRESENT".to_string())
    );
    assert_eq!(
        terminal_amount(&server, json!(42)),
        json!(19.99),
        "int64 key as a number"
    );
    assert_eq!(
        terminal_amount(&server, json!("43")),
        json!(5.0),
        "int64 key as a string"
    );
}

/// A float ingested as JSON text is stored as the nearest float to that text, read back bit for
/// bit: extremes, 0.1 + 0.2's text, and values serde_json's default parser (without
/// `float_roundtrip`) read one unit in the last place off. The text is sent as written here.
#[test]
fn extreme_floats_ingested_as_json_read_back_bit_exact() {
    let server = Server::start();
    let texts = [
        "1.7976931348623157e308",
        "2.2250738585072014e-308",
        "5e-324",
        "0.30000000000000004",
        "6.934698245112694e276",
        "8.383658838626809e-78",
        "-6.801672438380202e47",
    ];
    for (index, text) in texts.iter().enumerate() {
        let user = format!("extreme_{index}");
        let record = transaction(&user, json!(1), json!("AMOUNT"), 60).to_string();
        let body = format!(
            "{{\"workspace_name\": \"prod\", \"dry_run\": false, \"records\": {{\"transactions\": [{}]}}}}",
            record.replace("\"AMOUNT\"", text)
        );
        let reply = send_with(&server, &body, None);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let (features, _) = last_transaction(&server, &user);
        let expected: f64 = text.parse().unwrap();
        assert_eq!(
            features[0].as_f64().map(f64::to_bits),
            Some(expected.to_bits()),
            "{text}: {}",
            features[0]
        );
    }
}

#[test]
fn newest_event_wins_and_ties_go_to_the_later_write() {
    let server = Server::start();
    assert_eq!(
        ingest(
            &server,
            vec![transaction("carol", json!(1), json!(10), 100)],
            false
        )
        .status,
        200
    );
    assert_eq!(
        ingest(
            &server,
            vec![transaction("carol", json!(1), json!(99), 500)],
            false
        )
        .status,
        200
    );
    assert_eq!(
        last_transaction(&server, "carol").0[0],
        json!(10.0),
        "an older event does not replace a newer one"
    );
    let same_time = json!({"record": {"user_id": "dave", "merchant": "m", "terminal_id": 2, "amt": 1, "category": "c", "is_online": false, "timestamp": "2026-11-20T00:00:00Z"}});
    let mut later = same_time.clone();
    later["record"]["amt"] = json!(2);
    let _ = ingest(&server, vec![same_time], false);
    let _ = ingest(&server, vec![later], false);
    let (values, status) = last_transaction(&server, "dave");
    if status == "PRESENT" {
        assert_eq!(values[0], json!(2.0));
    }
}

#[test]
fn dry_run_validates_but_writes_nothing() {
    let server = Server::start();
    let reply = ingest(
        &server,
        vec![transaction("erin", json!(3), json!(1.5), 10)],
        true,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        metric(&reply.json(), "user_last_transaction")["onlineRecordIngestCount"],
        "1"
    );
    assert_eq!(last_transaction(&server, "erin").1, "MISSING_DATA");
}

#[test]
fn one_bad_record_fails_the_request_and_writes_nothing() {
    let server = Server::start();
    let good = transaction("frank", json!(4), json!(7), 10);
    let wrong_type = transaction("gina", json!(5), json!("lots"), 10);
    let mut unknown_field = transaction("ivy", json!(7), json!(1), 10);
    unknown_field["record"]["colour"] = json!("red");
    let mut no_key = transaction("", json!(8), json!(1), 10);
    no_key["record"].as_object_mut().unwrap().remove("user_id");
    let reply = ingest(
        &server,
        vec![good, wrong_type, unknown_field, no_key],
        false,
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    let body = reply.json();
    let errors = body["recordErrors"].as_array().unwrap();
    let messages: Vec<&str> = errors
        .iter()
        .map(|e| e["errorMessage"].as_str().unwrap())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("record 1: field `amt`: expected float64")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`colour` is not in the schema")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("join key `user_id` is missing")),
        "{messages:?}"
    );
    assert!(errors.iter().all(|e| e["pushSourceName"] == "transactions"
        && e["errorType"] == "TectonObjectValidationError"));
    assert_eq!(
        last_transaction(&server, "frank").1,
        "MISSING_DATA",
        "the good record was not written either"
    );
}

#[test]
fn a_record_past_a_views_ttl_is_refused_alone() {
    let server = Server::start();
    let good = transaction("olga", json!(6), json!(2.5), 10);
    let too_old = transaction("hank", json!(6), json!(1), 40 * 86_400);
    let reply = ingest(&server, vec![good, too_old], false);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let messages: Vec<&str> = body["recordErrors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["errorMessage"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("record 1: timestamp value is outside of the serving TTL defined for Feature View user_last_transaction")),
        "{messages:?}"
    );
    assert_eq!(
        last_transaction(&server, "olga").1,
        "PRESENT",
        "the other record was written"
    );
    assert_eq!(last_transaction(&server, "hank").1, "MISSING_DATA");
}

/// A key given twice is refused naming it, and nothing is written: a JSON tree keeps the
/// last of twin keys, which silently dropped the first source's records (GetFeatures refuses
/// twins too).
#[test]
fn a_field_given_twice_is_refused_and_writes_nothing() {
    let server = Server::start();
    let record = |user: &str| {
        format!(
            r#"{{"record": {{"user_id": "{user}", "merchant": "m_1", "terminal_id": 6, "amt": 1.5, "category": "grocery", "is_online": true, "timestamp": "{}"}}}}"#,
            timestamp_in(-10)
        )
    };
    let (a, b) = (record("twin_a"), record("twin_b"));
    let twice_amt = a.replace(r#""amt": 1.5"#, r#""amt": 1.5, "amt": 2.5"#);
    for (body, path) in [
        (
            format!(
                r#"{{"workspace_name": "prod", "dry_run": false, "records": {{"transactions": [{a}], "transactions": [{b}]}}}}"#
            ),
            "`records.transactions` twice",
        ),
        (
            format!(
                r#"{{"workspace_name": "prod", "dry_run": false, "records": {{"transactions": [{twice_amt}]}}}}"#
            ),
            "`records.transactions[0].record.amt` twice",
        ),
        (
            format!(
                r#"{{"workspace_name": "prod", "workspaceName": "prod", "dry_run": false, "records": {{"transactions": [{a}]}}}}"#
            ),
            "`workspace_name` and `workspaceName` are one field given twice",
        ),
    ] {
        let auth = format!("Tecton-key {ADMIN_KEY}");
        let reply = server.request(
            "POST",
            "/ingest",
            &[("Authorization", &auth)],
            Some(body.as_bytes()),
        );
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert!(reply.body.contains(path), "{}", reply.body);
    }
    assert_eq!(last_transaction(&server, "twin_a").1, "MISSING_DATA");
    assert_eq!(last_transaction(&server, "twin_b").1, "MISSING_DATA");
}

/// An event further ahead than `max_future_event_skew` is refused by every view, not only
/// aggregating ones: a row view keeps its newest event, so one from year 9999 would have made
/// every real event after it "older than stored".
#[test]
fn a_far_future_record_is_refused_and_does_not_pin_a_row_view() {
    let server = Server::start();
    let mut far = transaction("ivy", json!(6), json!(1), 0);
    far["record"]["timestamp"] = json!("9999-12-31T23:59:59Z");
    let reply = ingest(&server, vec![far], false);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let refused = reply.json()["recordErrors"].to_string();
    assert!(refused.contains("in the future"), "{refused}");
    let now = ingest(
        &server,
        vec![transaction("ivy", json!(6), json!(4.5), 10)],
        false,
    );
    assert_eq!(now.status, 200, "{}", now.body);
    assert_eq!(last_transaction(&server, "ivy").0[0], json!(4.5));
}

#[test]
fn request_errors_use_the_ingest_shape() {
    let server = Server::start();
    let cases: Vec<(Json, u16, &str)> = vec![
        (
            json!({"dry_run": false, "records": {"transactions": []}}),
            400,
            "Required field `workspace_name` is missing in the request",
        ),
        (
            json!({"workspace_name": "prod", "records": {"transactions": []}}),
            400,
            "Required field `dry_run` is missing",
        ),
        (
            json!({"workspace_name": "prod", "dry_run": false}),
            400,
            "Required field `records` is missing",
        ),
        (
            json!({"workspace_name": "prod", "dry_run": "no", "records": {}}),
            400,
            "`dry_run` must be a boolean",
        ),
        (
            json!({"workspace_name": "prod", "dry_run": false, "records": {"transactions": [{"rec": {}}]}}),
            400,
            "`records.transactions[0]` must be an object with a `record`",
        ),
        (
            json!({"workspace_name": "prod", "dry_run": false, "records": {"clicks": [{"record": {}}]}}),
            404,
            "Push source `clicks` not found",
        ),
        (
            json!({"workspace_name": "nope", "dry_run": false, "records": {"transactions": [{"record": {}}]}}),
            404,
            "Workspace `nope` not found",
        ),
        (
            json!({"workspace_name": "staging", "dry_run": false, "records": {"transactions": [{"record": {}}]}}),
            400,
            "development workspace",
        ),
    ];
    for (body, status, fragment) in cases {
        let reply = server.admin_post("/ingest", &body);
        assert_eq!(reply.status, status, "{body} -> {}", reply.body);
        let message = reply.json()["requestError"]["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains(fragment),
            "`{message}` should contain `{fragment}`"
        );
    }
    let malformed = server.request(
        "POST",
        "/ingest",
        &[("Authorization", &format!("Tecton-key {ADMIN_KEY}"))],
        Some(b"{nope"),
    );
    assert_eq!(malformed.status, 400);
    assert_eq!(
        malformed.json()["requestError"]["errorType"],
        "RequestValidationError"
    );
    let unauthenticated = server.post_json("/ingest", Some("bad"), &json!({}));
    assert_eq!(unauthenticated.status, 401);
    assert!(unauthenticated.json()["requestError"]["errorMessage"].is_string());
    let oversized = vec![b' '; 4 * 1024 * 1024 + 1];
    let reply = server.request(
        "POST",
        "/api/v1/ingest",
        &[("Authorization", &format!("Tecton-key {ADMIN_KEY}"))],
        Some(&oversized),
    );
    assert_eq!(reply.status, 413);
}

/// `quiver load` of `file` into `prod.user_profile` at `base_url`, as the admin.
pub fn quiver_load_command(base_url: &str, file: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quiver"));
    command
        .args([
            "load",
            "--workspace",
            "prod",
            "--feature-view",
            "user_profile",
        ])
        .arg("--config")
        .arg(repo_root().join("config.toml"))
        .arg("--server")
        .arg(base_url)
        .arg(file)
        .env("QUIVER_ADMIN_KEY", ADMIN_KEY);
    command
}

fn quiver_load(server: &Server, file: &std::path::Path) -> std::process::Output {
    quiver_load_command(&server.base_url, file)
        .args(["--chunk-rows", "2"])
        .output()
        .expect("quiver load runs")
}

#[test]
fn bulk_loader_loads_csv_and_stops_at_the_first_bad_line() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("users.csv");
    std::fs::write(
        &good,
        "user_id,timestamp,credit_score,is_verified,preferred_categories\n\
         load_1,2026-02-01T00:00:00Z,640,true,\"[\"\"books\"\"]\"\n\
         load_2,2026-02-01T00:00:00Z,700,false,[]\n\
         load_3,2026-02-01T00:00:00Z,,true,\n",
    )
    .unwrap();
    let output = quiver_load(&server, &good);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("loaded 3 rows"));
    let read = |user: &str| credit_score(&server, user);
    assert_eq!(read("load_1"), json!("640"));
    assert_eq!(read("load_3"), Json::Null);

    // The same file as JSON Lines bodies (for servers that take no binary rows).
    let older = dir.path().join("older.csv");
    std::fs::write(
        &older,
        "user_id,timestamp,credit_score
load_4,2026-02-01T00:00:00Z,655
",
    )
    .unwrap();
    let output = quiver_load_command(&server.base_url, &older)
        .args(["--body", "json-lines"])
        .output()
        .expect("quiver load runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(read("load_4"), json!("655"));

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"user_id\": \"bad_1\", \"timestamp\": \"2026-02-01T00:00:00Z\", \"credit_score\": 1}\n\
         {\"user_id\": \"bad_2\", \"timestamp\": \"2026-02-01T00:00:00Z\", \"credit_score\": \"high\"}\n",
    )
    .unwrap();
    let output = quiver_load(&server, &bad);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2: column `credit_score`: expected int64"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was loaded"), "{stderr}");
    assert_eq!(
        read("bad_1"),
        Json::Null,
        "the good first line was not sent"
    );
}

/// Past its memory limit (`--body-memory-mib 0`: every chunk) `quiver load` keeps the encoded
/// chunks in a temporary file: they are all sent, in order, and a bad row after the first
/// chunks have gone there still loads nothing.
#[test]
fn bulk_loader_past_its_memory_limit_loads_every_chunk_or_nothing() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (1..=5)
        .map(|n| format!("spill_{n},2026-02-01T00:00:0{n}Z,{}\n", 600 + n))
        .collect();
    let load = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("user_id,timestamp,credit_score\n{text}")).unwrap();
        quiver_load_command(&server.base_url, &path)
            .args(["--chunk-rows", "2", "--body-memory-mib", "0"])
            .output()
            .expect("quiver load runs")
    };

    let bad = load(
        "late_bad.csv",
        format!("{rows}spill_6,2026-02-01T00:00:06Z,high\n"),
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("line 7: column `credit_score`"), "{stderr}");
    assert!(stderr.contains("nothing was loaded"), "{stderr}");
    assert_eq!(
        credit_score(&server, "spill_1"),
        Json::Null,
        "nothing was sent"
    );

    let good = load("good.csv", rows);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("loaded 5 rows"));
    for n in 1..=5 {
        let user = format!("spill_{n}");
        assert_eq!(credit_score(&server, &user), json!((600 + n).to_string()));
    }
}

/// `user_profile`'s `credit_score` of `user`, as `payment_risk_service` serves it.
fn credit_score(server: &Server, user: &str) -> Json {
    let keys = json!({"sender_id": user, "payee_merchant": "m", "terminal_id": 1});
    payment_risk_feature(server, keys, 6)
}

/// The rows endpoint (what `quiver load` sends) writes a chunk whole, or refuses it naming the
/// first bad line and writes nothing of it, whichever reader took the body.
#[test]
fn the_rows_endpoint_writes_a_chunk_whole_or_not_at_all() {
    let server = Server::start();
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let post = |body: &str| {
        server.request(
            "POST",
            "/admin/workspaces/prod/feature-views/user_profile/rows",
            &[("Authorization", &auth)],
            Some(body.as_bytes()),
        )
    };
    let good = post(
        "{\"user_id\":\"chunk_1\",\"timestamp\":\"2026-02-01T00:00:00Z\",\"credit_score\":\"640\"}\r\n\n\
         {\"credit_score\":702,\"user_id\":\"chunk_2\",\"timestamp\":\"2026-02-01T00:00:00Z\"}\n",
    );
    assert_eq!(good.status, 200, "{}", good.body);
    assert_eq!(
        good.json(),
        json!({"rowsReceived": 2, "rowsStored": 2, "rowsOlderThanStored": 0, "rowsTooFarInFuture": 0})
    );
    assert_eq!(credit_score(&server, "chunk_1"), json!("640"));
    assert_eq!(credit_score(&server, "chunk_2"), json!("702"));

    let first =
        "{\"user_id\":\"chunk_3\",\"timestamp\":\"2026-02-01T00:00:00Z\",\"credit_score\":1}";
    for (bad, message) in [
        (
            "{\"user_id\":\"chunk_4\",\"timestamp\":\"2026-02-01T00:00:00Z\",\"credit_score\":\"high\"}",
            "line 2: column `credit_score`: expected int64",
        ),
        (
            "{\"user_id\":\"chunk_4\",\"timestamp\":\"2026-02-01T00:00:00Z\",\"nope\":1}",
            "line 2: `nope` is not a column of feature view `user_profile`",
        ),
        (
            "{\"user_id\":\"chunk_4\"}",
            "line 2: timestamp field `timestamp` is missing",
        ),
        ("{\"user_id\":\"chunk_4\"", "line 2: not valid JSON"),
    ] {
        let refused = post(&format!("{first}\n{bad}\n"));
        assert_eq!(refused.status, 400, "{}", refused.body);
        let refusal = refused.json();
        assert!(
            refusal["message"].as_str().unwrap().starts_with(message),
            "{refusal}"
        );
        assert_eq!(credit_score(&server, "chunk_3"), Json::Null, "{bad}");
    }

    // An event time past `max_future_event_skew` (a timestamp in the wrong unit, say) is not
    // stored, as `/ingest` refuses the event; the rest of the chunk is.
    let future =
        "{\"user_id\":\"chunk_4\",\"timestamp\":\"9999-01-01T00:00:00Z\",\"credit_score\":2}";
    let loaded = post(&format!("{first}\n\n{future}\n"));
    assert_eq!(loaded.status, 200, "{}", loaded.body);
    assert_eq!(
        loaded.json(),
        json!({"rowsReceived": 2, "rowsStored": 1, "rowsOlderThanStored": 0, "rowsTooFarInFuture": 1})
    );
    assert_eq!(credit_score(&server, "chunk_3"), json!("1"));
    assert_eq!(credit_score(&server, "chunk_4"), Json::Null);

    let realtime = server.request(
        "POST",
        "/admin/workspaces/prod/feature-views/transaction_amount_is_higher_than_average/rows",
        &[("Authorization", &auth)],
        Some(first.as_bytes()),
    );
    assert_eq!(realtime.status, 400, "{}", realtime.body);
    assert!(
        realtime.body.contains("is a realtime view") && realtime.body.contains("takes no rows"),
        "{}",
        realtime.body
    );
}

/// A binary rows body (what `quiver load` sends) is written whole, or refused whole naming the
/// row and the column; the same bytes sent as JSON Lines are refused as JSON Lines are.
#[test]
fn the_rows_endpoint_takes_binary_rows_whole_or_not_at_all() {
    use quiver::ingest::binary_rows::{BinaryRowsWriter, CONTENT_TYPE};
    use quiver::ingest::row::ParsedRow;
    use quiver::registry::value::Value;
    use quiver::registry::{load_registry, WorkspaceSource};

    let server = Server::start();
    let registry = load_registry(&[WorkspaceSource {
        name: "prod".into(),
        live: true,
        repository: repo_root().join("features/prod"),
    }])
    .unwrap();
    let view = registry.view_by_name("prod", "user_profile").unwrap();
    let writer = BinaryRowsWriter::new(view);
    let row = |user: &str, credit_score: Value| ParsedRow {
        key: vec![Value::String(user.into())],
        event_time: 1_769_904_000_000_000,
        features: vec![
            credit_score,
            Value::Null,
            Value::Bool(true),
            Value::String("DE".into()),
            Value::Array(vec![Value::String("books".into())]),
            Value::Null,
        ],
    };
    let body_of = |rows: &[ParsedRow]| {
        let mut body = Vec::new();
        writer.start(&mut body);
        for row in rows {
            writer.write(row, &mut body);
        }
        writer.finish(&mut body);
        body
    };
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let post = |content_type: &str, body: &[u8]| {
        server.request(
            "POST",
            "/admin/workspaces/prod/feature-views/user_profile/rows",
            &[("Authorization", &auth), ("Content-Type", content_type)],
            Some(body),
        )
    };

    let good = post(
        CONTENT_TYPE,
        &body_of(&[
            row("binary_1", Value::Int64(640)),
            row("binary_2", Value::Int64(702)),
        ]),
    );
    assert_eq!(good.status, 200, "{}", good.body);
    assert_eq!(
        good.json(),
        json!({"rowsReceived": 2, "rowsStored": 2, "rowsOlderThanStored": 0, "rowsTooFarInFuture": 0})
    );
    assert_eq!(credit_score(&server, "binary_1"), json!("640"));
    assert_eq!(credit_score(&server, "binary_2"), json!("702"));
    // The media type is read whatever parameters follow it.
    let with_parameter = post(
        &format!("{} ; charset=binary", CONTENT_TYPE.to_ascii_uppercase()),
        &body_of(&[row("binary_5", Value::Int64(655))]),
    );
    assert_eq!(with_parameter.status, 200, "{}", with_parameter.body);
    assert_eq!(credit_score(&server, "binary_5"), json!("655"));

    let first = row("binary_3", Value::Int64(1));
    let bad_value = body_of(&[first.clone(), row("binary_4", Value::String("high".into()))]);
    let mut cut_short = body_of(&[first.clone(), row("binary_4", Value::Int64(2))]);
    cut_short.truncate(cut_short.len() - 4);
    for (content_type, body, message) in [
        (
            CONTENT_TYPE,
            &bad_value,
            "row 2: column `credit_score`: expected int64, got a string",
        ),
        (
            CONTENT_TYPE,
            &cut_short,
            "row 3: the body ends without its end mark",
        ),
        ("application/x-ndjson", &bad_value, "line 1: cannot read"),
    ] {
        let refused = post(content_type, body);
        assert_eq!(refused.status, 400, "{}", refused.body);
        let refusal = refused.json();
        assert!(
            refusal["message"].as_str().unwrap().starts_with(message),
            "{refusal}"
        );
        assert_eq!(credit_score(&server, "binary_3"), Json::Null, "{message}");
    }
}

/// A push source whose `ingest_token` is `{{ tb_secret(...) }}`: rendered from the vault after
/// recovery, required in `X-Quiver-Ingest-Token`, and a missing secret stops the start-up.
#[test]
fn a_push_source_token_comes_from_a_tinybird_secret() {
    let data = tempfile::tempdir().unwrap();
    let secret = "tok-3f9a-7c1e";
    let server = ServerBuilder::new().data_dir(data.path()).start();
    let created = server.request(
        "POST",
        &format!("/v0/secrets?token={ADMIN_KEY}"),
        &[("Content-Type", "application/json")],
        Some(
            json!({"name": "INGEST_TOKEN", "value": secret})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    server.terminate();

    let setting = |template: &str| {
        broken_config(
            "features/prod/sources.toml",
            "name = \"transactions\"\n",
            &format!("name = \"transactions\"\ningest_token = \"{template}\"\n"),
        )
    };
    let config = setting("{{ tb_secret('INGEST_TOKEN') }}");
    let server = ServerBuilder::new()
        .config(config.path().join("config.toml"))
        .data_dir(data.path())
        .start();
    let body = json!({"workspace_name": "prod", "dry_run": false,
        "records": {"transactions": [transaction("tok_user", json!(1), json!(5.0), 10)]}})
    .to_string();
    for token in [None, Some("tok-3f9a"), Some("")] {
        let refused = send_with(&server, &body, token);
        assert_eq!(refused.status, 401, "{}", refused.body);
        assert!(
            refused.body.contains("X-Quiver-Ingest-Token"),
            "{}",
            refused.body
        );
        assert!(!refused.body.contains("tok-3f9a"));
    }
    let accepted = send_with(&server, &body, Some(secret));
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(last_transaction(&server, "tok_user").1, "PRESENT");
    assert!(!server.terminate().contains("tok-3f9a"));

    // A default stands in for a missing secret; a missing secret without one stops the server.
    let with_default = setting("{{ tb_secret('OTHER', 'fallback') }}");
    let server = ServerBuilder::new()
        .config(with_default.path().join("config.toml"))
        .data_dir(data.path())
        .start();
    assert_eq!(send_with(&server, &body, Some("fallback")).status, 200);
    server.terminate();
    let missing = setting("{{ tb_secret('NOPE') }}");
    let output = ServerBuilder::new()
        .config(missing.path().join("config.toml"))
        .data_dir(data.path())
        .run_to_exit();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("push source `transactions` of workspace `prod`: ingest_token: Template Syntax Error: Cannot access secret 'NOPE'"),
        "{stderr}"
    );
}

/// POST /ingest as the admin, with `token` in `X-Quiver-Ingest-Token` when given.
fn send_with(server: &Server, body: &str, token: Option<&str>) -> super::common::Reply {
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    headers.extend(token.map(|token| ("X-Quiver-Ingest-Token", token)));
    server.request("POST", "/ingest", &headers, Some(body.as_bytes()))
}
