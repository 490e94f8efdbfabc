//! `quiver plan`: the repository on disk against the one a running server serves, printed for a
//! reviewer or as JSON, with the exit status saying whether anything differs; and the admin route
//! it reads (`GET /admin/repository`).

use std::path::Path;
use std::process::Output;

use serde_json::{json, Value as Json};

use super::common::{Server, ADMIN_KEY};
use super::registry::broken_config;

/// Runs `quiver plan` against `server` with the configuration `config`.
pub(super) fn plan(server: &Server, config: &Path, extra: &[&str]) -> Output {
    quiver("plan", server, config, extra)
}

/// Runs `quiver <subcommand>` (`plan`, `apply`) against `server` with the configuration
/// `config`, nothing on its standard input.
pub(super) fn quiver(subcommand: &str, server: &Server, config: &Path, extra: &[&str]) -> Output {
    quiver_command(subcommand, server, config, extra)
        .output()
        .expect("quiver runs")
}

/// The command [`quiver`] runs, for a test that runs it beside other work.
pub(super) fn quiver_command(
    subcommand: &str,
    server: &Server,
    config: &Path,
    extra: &[&str],
) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"));
    command
        .arg(subcommand)
        .arg("--config")
        .arg(config)
        .arg("--url")
        .arg(&server.base_url)
        .args(extra)
        .env("QUIVER_ADMIN_KEY", ADMIN_KEY)
        .env_remove("QUIVER_URL")
        .env("QUIVER_LOG", "warn")
        .stdin(std::process::Stdio::null());
    command
}

/// Replaces `from` with `to` in the file `file` of the copied repository in `dir`.
pub(super) fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} should contain {from}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

const NEW_VIEW: &str = r#"
[[batch_feature_view]]
name = "user_segment"
entities = ["user"]
timestamp_field = "timestamp"
features = [{ name = "segment", type = "string" }]
"#;

const NEW_SERVICE: &str = r#"
[[feature_service]]
name = "segment_service"
features = [{ view = "user_segment" }]
"#;

pub(super) const TERMINAL_VIEW: &str = r#"[[stream_feature_view]]
name = "terminal_last_transaction"
description = "The latest transaction seen at a terminal (an int64-keyed view)"
source = "transactions"
entities = ["terminal"]
timestamp_field = "timestamp"
ttl = "7d"
features = [
  { name = "last_amount", type = "float64", column = "amt" },
  { name = "last_category", type = "string", column = "category" },
]
"#;

#[test]
fn plan_shows_each_change_with_its_effect_on_stored_data() {
    let server = Server::start();
    let config = super::common::repo_root().join("config.toml");
    let unchanged = plan(&server, &config, &[]);
    let stdout = String::from_utf8_lossy(&unchanged.stdout);
    assert_eq!(unchanged.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("No changes"), "{stdout}");

    // Add a view and a service, remove a view (and its use), change a ttl, add a window.
    let dir = broken_config("features/prod/views.toml", TERMINAL_VIEW, NEW_VIEW);
    let root = dir.path();
    let services = "features/prod/services.toml";
    edit(
        root,
        services,
        "  { view = \"terminal_last_transaction\" },\n",
        "",
    );
    edit(
        root,
        services,
        "# Everything the",
        &format!("{NEW_SERVICE}\n# Everything the"),
    );
    edit(
        root,
        "features/prod/views.toml",
        "ttl = \"30d\"",
        "ttl = \"60d\"",
    );
    edit(
        root,
        "features/prod/views.toml",
        "  { column = \"amt\", function = \"mean\", window = \"3d\" },\n",
        "  { column = \"amt\", function = \"mean\", window = \"3d\" },\n  { column = \"amt\", function = \"mean\", window = \"7d\" },\n",
    );
    let config = root.join("config.toml");

    let changed = plan(&server, &config, &[]);
    let stdout = String::from_utf8_lossy(&changed.stdout);
    assert_eq!(changed.status.code(), Some(2), "{stdout}");
    for line in [
        "~ workspace prod\n",
        "  + feature_view user_segment  # stored data: empty until loaded\n",
        "  - feature_view terminal_last_transaction  # stored data: dropped\n",
        "  ~ feature_view user_last_transaction  # stored data: kept\n",
        "      ~ ttl = \"30d\" -> \"60d\"  # kept: applies at read time\n",
        "  ~ feature_view user_transaction_amount_metrics  # stored data: re-derived\n",
        "      + aggregates.amt_mean_7d_10m = \"mean(amt) over 7d\"  # re-derived: from the tiles of `amt_mean_1d_10m`\n",
        "  + feature_service segment_service  # no stored data\n",
        "  ~ feature_service payment_risk_service  # no stored data\n",
        "      - features.terminal_last_transaction.last_amount = \"terminal_last_transaction.last_amount\"  # no stored data\n",
        // Services that return every feature of the view return the new window too.
        "  ~ feature_service transaction_aggregates_service  # no stored data\n      + features.user_transaction_amount_metrics.amt_mean_7d_10m = \"user_transaction_amount_metrics.amt_mean_7d_10m\"  # no stored data\n",
        "Plan: 2 to add, 5 to change, 1 to remove. 1 would drop stored data: apply needs --allow-data-loss.\n",
    ] {
        assert!(stdout.contains(line), "the plan should contain {line:?}:\n{stdout}");
    }

    let as_json = plan(&server, &config, &["--json"]);
    assert_eq!(as_json.status.code(), Some(2));
    let body: Json = serde_json::from_slice(&as_json.stdout).expect("the plan is JSON");
    assert_eq!(body["changes"], true);
    assert_eq!(body["dropsData"], true);
    assert_eq!(body["summary"], json!({"add": 2, "change": 5, "remove": 1}));
    let prod = &body["workspaces"][0];
    assert_eq!(prod["name"], "prod");
    let metrics = prod["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "user_transaction_amount_metrics")
        .unwrap();
    assert_eq!(
        metrics["properties"],
        json!([{"name": "aggregates.amt_mean_7d_10m", "action": "add", "before": null,
                "after": "mean(amt) over 7d", "effect": "re-derived",
                "reason": "from the tiles of `amt_mean_1d_10m`"}])
    );
    assert_ne!(body["fromHash"], body["toHash"]);
}

#[test]
fn plan_refuses_an_invalid_repository_naming_file_and_object() {
    let server = Server::start();
    let dir = broken_config(
        "features/prod/services.toml",
        "{ view = \"user_profile\" }",
        "{ view = \"user_profiles\" }",
    );
    let output = plan(&server, &dir.path().join("config.toml"), &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("services.toml: feature_service `user_risk_service`: references feature view `user_profiles`, which does not exist"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn the_served_repository_is_for_admins_only() {
    let server = Server::start();
    let created = server.admin_post("/api/scim/v2/ServiceAccounts", &json!({"name": "reader"}));
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.json()["apiKey"].as_str().unwrap().to_string();
    let as_reader = format!("Tecton-key {key}");
    let refused = server.request(
        "GET",
        "/admin/repository",
        &[("Authorization", &as_reader)],
        None,
    );
    assert_eq!(refused.status, 403, "{}", refused.body);

    let as_admin = format!("Tecton-key {ADMIN_KEY}");
    let reply = server.request(
        "GET",
        "/admin/repository",
        &[("Authorization", &as_admin)],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["format"], 2);
    assert_eq!(body["hash"].as_str().unwrap().len(), 16);
    let prod = &body["workspaces"]["prod"];
    assert_eq!(prod["live"], true);
    assert_eq!(body["workspaces"]["staging"]["live"], false);
    assert_eq!(prod["feature_views"]["user_last_transaction"]["ttl"], "30d");
    assert_eq!(
        prod["feature_views"]["user_transaction_amount_metrics"]["aggregates.amt_mean_1h_10m"],
        "mean(amt) over 1h"
    );
    assert_eq!(prod["entities"]["user"]["join_keys"], "user_id:string");
    assert!(prod["feature_services"]["user_risk_service"]
        .as_object()
        .unwrap()
        .contains_key("features.user_profile.credit_score"));
}
