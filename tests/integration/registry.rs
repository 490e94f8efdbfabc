//! Start-up validation: a bad repository stops the server with an error naming the file, the
//! object and the problem; it never serves half a configuration.

use super::common::{repo_root, ServerBuilder};

/// Copies the demo config and repository into a temporary directory and replaces `from` with
/// `to` in one of its files.
pub(super) fn broken_config(file: &str, from: &str, to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = repo_root();
    for sub in ["features/prod", "features/staging", "features/demo"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for entry in std::fs::read_dir(root.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.path().join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(root.join("config.toml"), dir.path().join("config.toml")).unwrap();
    let target = dir.path().join(file);
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains(from), "{file} should contain {from}");
    std::fs::write(&target, text.replace(from, to)).unwrap();
    dir
}

#[test]
fn a_bad_repository_never_starts() {
    let cases = [
        ("features/prod/services.toml", "{ view = \"user_profile\" }", "{ view = \"user_profiles\" }",
            "services.toml: feature_service `user_risk_service`: references feature view `user_profiles`, which does not exist"),
        ("features/prod/views.toml", "type = \"int64\", description = \"Bureau score\"", "type = \"integer\"",
            "views.toml: batch_feature_view `user_profile`: feature `credit_score`: unknown type `integer`"),
        ("features/prod/views.toml", "name = \"merchant_profile\"", "name = \"user_profile\"", "the name `user_profile` is already used"),
        ("features/prod/sources.toml", "{ name = \"amt\", type = \"float64\" }", "{ name = \"amt\", type = \"string\" }",
            "feature `last_amount` is float64 but push source `transactions` has column `amt` as string"),
        ("config.toml", "features/demo/merchant_profile.csv", "features/demo/missing.csv", "missing.csv"),
        ("features/prod/services.toml", "  { view = \"user_last_transaction\" },\n]\n",
            "  { view = \"user_last_transaction\" },\n]\n[feature_service.logging]\n",
            "feature service `user_risk_service` of workspace `prod` declares logging, which writes under the data directory, and there is none: set --data-dir"),
        ("features/prod/sources.toml", "name = \"transactions\"\n", "name = \"transactions\"\ningest_token = \"{{ tb_secret(TOKEN) }}\"\n",
            "sources.toml: push_source `transactions`: ingest_token: Template Syntax Error: arguments must be quoted strings"),
    ];
    let never_starts = |file: &str, from: &str, to: &str, expected: &str| {
        let dir = broken_config(file, from, to);
        let output = ServerBuilder::new()
            .config(dir.path().join("config.toml"))
            .run_to_exit();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected),
            "stderr should contain `{expected}`:\n{stderr}"
        );
        assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
    };
    for (file, from, to, expected) in cases {
        never_starts(file, from, to, expected);
    }
    // Nested too deep for the parser's stack (which it overflowed, aborting, before): refused
    // as any bad repository is, before the parser runs.
    let expression = "request.amount > user_transaction_amount_metrics.amt_mean_1d_10m";
    let deep = format!("{}{expression}{}", "(".repeat(400), ")".repeat(400));
    never_starts("features/prod/views.toml", expression, &deep,
        "views.toml: realtime_feature_view `transaction_amount_is_higher_than_average`: feature `transaction_amount_is_higher_than_average`: the expression nests brackets `(`, `[`, `{` 400 deep; at most 32 are allowed");
}

#[test]
fn a_generated_admin_key_is_printed_once_and_works() {
    let server = ServerBuilder::new().without_env("QUIVER_ADMIN_KEY").start();
    let line = server
        .printed
        .iter()
        .find(|l| l.contains("Generated admin API key"))
        .expect("the key is printed");
    let key = line.rsplit(' ').next().unwrap();
    assert_eq!(key.len(), 64);
    let reply = server.post_json(
        "/api/v1/feature-service/metadata",
        Some(key),
        &serde_json::json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service"}}),
    );
    assert_eq!(reply.status, 200);
}
