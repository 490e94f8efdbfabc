//! Feature logging through the real server: a logging service's answers reach its log files
//! with the request id, the caller's name, the keys and exactly the served values and statuses,
//! in order; SIGTERM completes the files; `quiver logs list/export` read them offline.

use std::process::Command;

use serde_json::{json, Value as Json};

use super::common::{ServerBuilder, ADMIN_KEY};
use super::registry::broken_config;

const GET: &str = "/api/v1/feature-service/get-features";
const BATCH: &str = "/api/v1/feature-service/get-features-batch";

/// The demo, with `user_risk_service` logging everything at rate 1.0.
fn logging_config() -> tempfile::TempDir {
    broken_config(
        "features/prod/services.toml",
        "  { view = \"user_last_transaction\" },\n]\n",
        "  { view = \"user_last_transaction\" },\n]\n[feature_service.logging]\n\
         sample_rate = 1.0\nlog_effective_times = true\nexclude_request_context_fields = [\"ip\"]\n",
    )
}

fn quiver(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .env_remove("QUIVER_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A served value and its logged form agree: int64 is a string on the wire and a number in
/// the log; arrays and structs are Tecton's JSON text in the log.
fn same_value(served: &Json, logged: &Json) -> bool {
    match (served, logged) {
        (Json::String(s), Json::Number(n)) => s == &n.to_string(),
        (Json::Array(_) | Json::Object(_), Json::String(text)) => {
            serde_json::from_str::<Json>(text).is_ok_and(|parsed| &parsed == served)
        }
        _ => served == logged,
    }
}

#[test]
fn served_answers_are_logged_exactly_and_in_order() {
    let dir = logging_config();
    let data = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let server = ServerBuilder::new()
        .config(&config)
        .data_dir(data.path())
        .start();
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let users = ["user_1001", "user_1002", "nobody"];
    let mut served = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let body = json!({"params": {
            "workspaceName": "prod", "featureServiceName": "user_risk_service",
            "joinKeyMap": {"user_id": user, "merchant": "fraud_Kirlin and Sons"},
            "requestContextMap": {"ip": "10.1.2.3", "channel": "web"},
            "metadataOptions": {"includeServingStatus": true},
        }});
        let id = format!("it-{i}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("X-Request-Id", id.as_str()),
        ];
        let reply = server.request("POST", GET, &headers, Some(body.to_string().as_bytes()));
        assert_eq!(reply.status, 200, "{}", reply.body);
        served.push((id, user.to_string(), reply.json()));
    }
    let batch = json!({"params": {
        "workspaceName": "prod", "featureServiceName": "user_risk_service",
        "requestData": [
            {"joinKeyMap": {"user_id": "user_1003", "merchant": "fraud_Kirlin and Sons"}},
            {"joinKeyMap": {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"}},
        ],
    }});
    let reply = server.post_json(BATCH, Some(ADMIN_KEY), &batch);
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.terminate();

    let data_dir = data.path().to_str().unwrap();
    let config = config.to_str().unwrap();
    let listing = quiver(&["logs", "list", "--config", config, "--data-dir", data_dir]);
    assert!(listing.contains("prod/user_risk_service"), "{listing}");
    assert!(
        listing.contains(".parquet") && !listing.contains("incomplete"),
        "{listing}"
    );

    let output = data.path().join("export.jsonl");
    let summary = quiver(&[
        "logs",
        "export",
        "--config",
        config,
        "--data-dir",
        data_dir,
        "--service",
        "user_risk_service",
        "--format",
        "jsonl",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(summary.starts_with("5 rows"), "{summary}");
    let rows: Vec<Json> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 5);
    for (row, (id, user, answer)) in rows.iter().zip(&served) {
        assert_eq!(row["request_id"], json!(id));
        assert_eq!(row["principal"], json!("bootstrap admin"));
        assert_eq!(row["workspace"], json!("prod"));
        assert_eq!(row["user_id"], json!(user));
        assert_eq!(row["merchant"], json!("fraud_Kirlin and Sons"));
        assert_eq!(row["request_context"], json!(r#"{"channel":"web"}"#));
        let values = answer["result"]["features"].as_array().unwrap();
        let metadata = answer["metadata"]["features"].as_array().unwrap();
        assert!(!values.is_empty());
        for (value, feature) in values.iter().zip(metadata) {
            let column = feature["name"].as_str().unwrap().replace('.', "__");
            assert!(
                same_value(value, &row[&column]),
                "{column}: served {value}, logged {}",
                row[&column]
            );
            assert_eq!(
                row[format!("{column}__status")],
                feature["status"],
                "{column}"
            );
        }
    }
    // The batch: one row per request row, one generated request id for both.
    assert_eq!(rows[3]["user_id"], json!("user_1003"));
    assert_eq!(rows[4]["user_id"], json!("user_1001"));
    assert_eq!(rows[3]["request_id"], rows[4]["request_id"]);
    assert_eq!(rows[3]["request_id"].as_str().unwrap().len(), 32);
    assert_eq!(rows[3]["request_context"], json!("{}"));
    assert!(!rows.iter().any(|row| row.to_string().contains(ADMIN_KEY)));
}

/// Logging given to a service by `quiver apply` logs after a restart: which services log is
/// decided by the repository the server recovered (the applied one), not by the files it
/// started from.
#[test]
fn logging_applied_to_a_service_logs_after_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    let dir = logging_config();
    let config = dir.path().join("config.toml");
    let applied = super::plan::quiver("apply", &server, &config, &["--yes"]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    server.terminate();

    let server = ServerBuilder::new().data_dir(data.path()).start();
    let body = json!({"params": {
        "workspaceName": "prod", "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"},
    }});
    let reply = server.post_json(GET, Some(ADMIN_KEY), &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.terminate();

    let data_dir = data.path().to_str().unwrap();
    let config = config.to_str().unwrap();
    let listing = quiver(&["logs", "list", "--config", config, "--data-dir", data_dir]);
    assert!(listing.contains("prod/user_risk_service"), "{listing}");
    assert!(listing.contains(".parquet"), "{listing}");
}
