//! The operator console: its files are served without a key, and its JSON routes answer only
//! for the workspaces the caller may view (the browser-driven checks are in
//! tests/clients/console).

use serde_json::{json, Value as Json};

use super::common::{Server, ServerBuilder, ADMIN_KEY};
use super::secrets::service_account;

fn get(server: &Server, path: &str, key: Option<&str>) -> super::common::Reply {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    server.request("GET", path, &headers, None)
}

#[test]
fn the_console_files_are_served_without_a_key() {
    let server = Server::start();
    let moved = get(&server, "/console", None);
    assert_eq!(moved.status, 308);
    assert_eq!(moved.header("location"), Some("/console/"));
    let index = get(&server, "/console/", None);
    assert_eq!(index.status, 200);
    assert!(index
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(index.body.contains("app.js"));
    assert!(index
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    let script = get(&server, "/console/app.js", None);
    assert_eq!(script.status, 200);
    assert!(script
        .header("content-type")
        .unwrap()
        .starts_with("text/javascript"));
    let missing = get(&server, "/console/missing.js", None);
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.json()["message"]
        .as_str()
        .unwrap()
        .contains("missing.js"));
}

fn workspaces(reply: &super::common::Reply) -> Vec<String> {
    let body = reply.json();
    body["workspaces"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn view_workspaces(reply: &super::common::Reply) -> Vec<String> {
    let mut names: Vec<String> = reply.json()["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["workspace"].as_str().unwrap().to_string())
        .collect();
    names.dedup();
    names
}

#[test]
fn the_console_data_follows_the_callers_roles() {
    let server = Server::start();
    let (_, prod_viewer) = service_account(
        &server,
        "prod-viewer",
        json!([{"type": "workspace_prod", "value": "viewer"}]),
    );
    let (_, nobody) = service_account(&server, "nobody", json!([]));
    for path in [
        "/console/api/repository",
        "/console/api/store",
        "/console/api/requests",
    ] {
        assert_eq!(get(&server, path, None).status, 401, "{path}");
        assert_eq!(get(&server, path, Some(&nobody)).status, 403, "{path}");
        assert_eq!(get(&server, path, Some(&prod_viewer)).status, 200, "{path}");
    }
    let admin = get(&server, "/console/api/repository", Some(ADMIN_KEY));
    assert_eq!(workspaces(&admin), ["prod", "staging"]);
    let viewer = get(&server, "/console/api/repository", Some(&prod_viewer));
    assert_eq!(workspaces(&viewer), ["prod"]);
    assert_eq!(
        view_workspaces(&get(&server, "/console/api/store", Some(&prod_viewer))),
        ["prod"]
    );
}

fn view<'a>(store: &'a Json, name: &str) -> &'a Json {
    store["views"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["featureView"] == name)
        .unwrap_or_else(|| panic!("{name} not in {store}"))
}

#[test]
fn the_store_page_counts_rows_per_view_and_shard() {
    let server = Server::start();
    let store = get(&server, "/console/api/store", Some(ADMIN_KEY)).json();
    // The demo seed: three users, and aggregated events for three users.
    let profile = view(&store, "user_profile");
    assert_eq!(profile["rows"], 3);
    assert!(profile["bytes"].as_u64().unwrap() > 0);
    assert_eq!(profile["newestEvent"], "2026-01-15T00:00:00Z");
    assert_eq!(view(&store, "user_transaction_counts")["aggregatedKeys"], 3);
    let shards = store["shards"].as_array().unwrap();
    assert!(!shards.is_empty());
    let shard_rows: u64 = shards.iter().map(|s| s["rows"].as_u64().unwrap()).sum();
    let view_rows: u64 = store["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(shard_rows, view_rows);
    let requests = get(&server, "/console/api/requests", Some(ADMIN_KEY)).json();
    assert_eq!(requests["sampleEverySeconds"], 10);
    assert!(requests["samples"].is_array());
}

/// Rows, bytes and aggregated keys per view, which the shards count as they write.
fn usage_per_view(server: &Server) -> Vec<(String, Json, Json, Json)> {
    let store = get(server, "/console/api/store", Some(ADMIN_KEY)).json();
    store["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let name = v["featureView"].as_str().unwrap().to_string();
            (
                name,
                v["rows"].clone(),
                v["bytes"].clone(),
                v["aggregatedKeys"].clone(),
            )
        })
        .collect()
}

#[test]
fn the_store_counts_survive_a_restore() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    let before = usage_per_view(&server);
    server.snapshot();
    server.kill9();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    assert_eq!(usage_per_view(&server), before);
}
