//! `quiver apply` and `POST /admin/repository`: a new repository served without a restart, its
//! stored data following the plan, requests in flight answered by one repository or the other,
//! and the applied repository kept over a crash.

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::common::{timestamp_in, Server, ServerBuilder, ADMIN_KEY};
use super::plan::{edit, TERMINAL_VIEW};
use super::registry::broken_config;

/// Runs `quiver apply` against `server` with the configuration `config`.
fn apply(server: &Server, config: &Path, extra: &[&str]) -> Output {
    super::plan::quiver("apply", server, config, extra)
}

fn assert_applied(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Applies the demo repository with a 7-day mean added to `user_transaction_amount_metrics`.
fn apply_week_window(server: &Server) {
    let dir = broken_config("features/prod/views.toml", WEEK_WINDOW.0, WEEK_WINDOW.1);
    assert_applied(&apply(server, &dir.path().join("config.toml"), &["--yes"]));
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

const CATEGORY_VIEW: &str = r#"
[[stream_feature_view]]
name = "user_last_category"
source = "transactions"
entities = ["user"]
timestamp_field = "timestamp"
features = [{ name = "last_category", type = "string", column = "category" }]
"#;

const CATEGORY_SERVICE: &str = r#"
[[feature_service]]
name = "category_service"
features = [{ view = "user_last_category" }]
"#;

const WEEK_WINDOW: (&str, &str) = (
    "  { column = \"amt\", function = \"mean\", window = \"3d\" },\n",
    "  { column = \"amt\", function = \"mean\", window = \"3d\" },\n  { column = \"amt\", function = \"mean\", window = \"7d\" },\n",
);

/// A copy of the demo repository with `view` and `service` appended.
fn with_view_and_service(view: &str, service: &str) -> tempfile::TempDir {
    let dir = broken_config(
        "features/prod/views.toml",
        "[[stream_feature_view]]",
        "[[stream_feature_view]]",
    );
    append(dir.path(), "features/prod/views.toml", view);
    append(dir.path(), "features/prod/services.toml", service);
    dir
}

fn append(root: &Path, file: &str, text: &str) {
    let path = root.join(file);
    let mut content = std::fs::read_to_string(&path).unwrap();
    content.push_str(text);
    std::fs::write(path, content).unwrap();
}

pub(super) fn ingest(server: &Server, user: &str, amount: f64, category: &str, seconds_ago: i64) {
    let record = json!({"record": {"user_id": user, "merchant": "m_1", "terminal_id": 7, "amt": amount,
        "category": category, "is_online": true, "transaction_id": format!("t_{user}_{seconds_ago}"),
        "is_fraud": 0, "timestamp": timestamp_in(-seconds_ago)}});
    let reply = server.admin_post(
        "/ingest",
        &json!({"workspace_name": "prod", "dry_run": false, "records": {"transactions": [record]}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// A service's answer for one user: feature name -> value.
pub(super) fn features(server: &Server, service: &str, user: &str) -> Vec<(String, Json)> {
    let request = json!({"params": {"workspaceName": "prod", "featureServiceName": service,
        "joinKeyMap": {"user_id": user}, "metadataOptions": {"includeNames": true}}});
    let reply = server.admin_post("/api/v1/feature-service/get-features", &request);
    assert_eq!(reply.status, 200, "{}", reply.body);
    named(&reply.json())
}

fn named(body: &Json) -> Vec<(String, Json)> {
    let values = body["result"]["features"].as_array().unwrap();
    let names = body["metadata"]["features"].as_array().unwrap();
    names
        .iter()
        .zip(values)
        .map(|(name, value)| (name["name"].as_str().unwrap().to_string(), value.clone()))
        .collect()
}

pub(super) fn value_of<'a>(features: &'a [(String, Json)], name: &str) -> &'a Json {
    &features
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no feature {name} in {features:?}"))
        .1
}

/// `GET /admin/repository`.
fn served_repository(server: &Server) -> Json {
    let reply = server.request(
        "GET",
        "/admin/repository",
        &[("Authorization", &format!("Tecton-key {ADMIN_KEY}"))],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn served_hash(server: &Server) -> String {
    served_repository(server)["hash"]
        .as_str()
        .unwrap()
        .to_string()
}

fn metric_total(server: &Server, series: &str) -> f64 {
    let reply = server.request(
        "GET",
        "/metrics",
        &[("Authorization", &format!("Tecton-key {ADMIN_KEY}"))],
        None,
    );
    reply
        .body
        .lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_new_view_and_service_take_rows_and_serve_them_without_a_restart() {
    let server = Server::start();
    let dir = with_view_and_service(CATEGORY_VIEW, CATEGORY_SERVICE);
    let config = dir.path().join("config.toml");
    let output = apply(&server, &config, &["--yes"]);
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("  + feature_view user_last_category  # stored data: empty until loaded\n"),
        "{text}"
    );
    assert!(
        text.contains("  + feature_service category_service  # no stored data\n"),
        "{text}"
    );
    assert!(
        text.contains("Applied: the server serves repository "),
        "{text}"
    );

    ingest(&server, "u_apply", 12.5, "travel", 5);
    let answer = features(&server, "category_service", "u_apply");
    assert_eq!(
        answer,
        vec![(
            "user_last_category.last_category".to_string(),
            json!("travel")
        )]
    );

    // The console's Store page counts the new view's row (its id is past the start-up ones).
    let store = server
        .request(
            "GET",
            "/console/api/store",
            &[("Authorization", &format!("Tecton-key {ADMIN_KEY}"))],
            None,
        )
        .json();
    let line = store["views"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["featureView"] == "user_last_category")
        .unwrap_or_else(|| panic!("user_last_category not in {store}"));
    assert_eq!(line["rows"], 1, "{store}");

    // The files on disk are what is served now; the demo's own files are not.
    let again = super::plan::plan(&server, &config, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    let demo = super::common::repo_root().join("config.toml");
    assert_eq!(
        super::plan::plan(&server, &demo, &[]).status.code(),
        Some(2)
    );
}

/// One view read twice under two aliases, by two request keys (Tecton's `with_join_key_map`,
/// a sender and a receiver): each alias answers its own key's row, alone and in a batch.
const TRANSFER_SERVICE: &str = r#"
[[feature_service]]
name = "transfer_service"
features = [
  { view = "user_profile", alias = "sender", select = ["credit_score"], join_key_map = { user_id = "sender_id" } },
  { view = "user_profile", alias = "receiver", select = ["credit_score"], join_key_map = { user_id = "receiver_id" } },
]
"#;

#[test]
fn a_view_read_by_two_join_keys_answers_each_alias_its_own_row() {
    let server = Server::start();
    let dir = with_view_and_service("", TRANSFER_SERVICE);
    assert_applied(&apply(&server, &dir.path().join("config.toml"), &["--yes"]));
    let keys = json!({"sender_id": "user_1001", "receiver_id": "user_1002"});
    let single = server.admin_post(
        "/api/v1/feature-service/get-features",
        &json!({"params": {"workspaceName": "prod", "featureServiceName": "transfer_service",
            "joinKeyMap": keys, "metadataOptions": {"includeNames": true}}}),
    );
    assert_eq!(single.status, 200, "{}", single.body);
    // Namespaces in alphabetical order: the receiver's, then the sender's.
    assert_eq!(
        named(&single.json()),
        vec![
            ("receiver.credit_score".to_string(), json!("655")),
            ("sender.credit_score".to_string(), json!("712")),
        ]
    );
    let swapped = json!({"sender_id": "user_1002", "receiver_id": "user_1001"});
    let batch = server.admin_post(
        "/api/v1/feature-service/get-features-batch",
        &json!({"params": {"workspaceName": "prod", "featureServiceName": "transfer_service",
            "requestData": [{"joinKeyMap": keys}, {"joinKeyMap": swapped}]}}),
    );
    assert_eq!(batch.status, 200, "{}", batch.body);
    assert_eq!(
        batch.json()["result"],
        json!([{"features": ["655", "712"]}, {"features": ["712", "655"]}])
    );
}

#[test]
fn removing_a_view_needs_consent_and_returns_its_memory() {
    let server = Server::start();
    let dir = broken_config("features/prod/views.toml", TERMINAL_VIEW, "");
    edit(
        dir.path(),
        "features/prod/services.toml",
        "  { view = \"terminal_last_transaction\" },\n",
        "",
    );
    let config = dir.path().join("config.toml");
    let rows_before = metric_total(&server, "quiver_shard_rows");
    // Every shard's arena bytes in `state`.
    let arena = |server: &Server, state: &str| {
        (0..64)
            .map(|shard| {
                let series =
                    format!("quiver_shard_arena_bytes{{shard=\"{shard}\",state=\"{state}\"}}");
                metric_total(server, &series)
            })
            .sum::<f64>()
    };
    let live_before = arena(&server, "live");
    let hash_before = served_hash(&server);

    let refused = apply(&server, &config, &["--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--allow-data-loss"), "{stderr}");
    assert_eq!(served_hash(&server), hash_before);

    // The route refuses it too: 409, the same body being right once the caller opts in.
    let body = json!({"workspaces": [], "allowDataLoss": false});
    let reply = server.admin_post("/admin/repository", &body);
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert!(reply.body.contains("allowDataLoss"), "{}", reply.body);

    let applied = apply(&server, &config, &["--yes", "--allow-data-loss"]);
    assert_applied(&applied);
    let rows_after = metric_total(&server, "quiver_shard_rows");
    assert!(
        rows_after < rows_before,
        "rows {rows_before} -> {rows_after}"
    );
    // The view's rows are gone from the arenas, which were compacted.
    let live_after = arena(&server, "live");
    assert!(
        live_after < live_before,
        "live bytes {live_before} -> {live_after}"
    );
    assert_eq!(arena(&server, "dead"), 0.0);
    let request = json!({"params": {"workspaceName": "prod", "featureServiceName": "payment_risk_service",
        "joinKeyMap": {"sender_id": "x", "payee_merchant": "y"}}});
    let reply = server.admin_post("/api/v1/feature-service/get-features", &request);
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// A column an aggregating view reads retyped (in its push source) clears the tiles of the
/// aggregates over it, which keep partials of the old type's values: the plan says so, and an
/// apply needs `--allow-data-loss` (and so, in a cluster, records the loss).
#[test]
fn an_aggregated_column_of_another_type_needs_consent() {
    let server = Server::start();
    let dir = broken_config(
        "features/prod/sources.toml",
        "{ name = \"is_fraud\", type = \"int64\" }",
        "{ name = \"is_fraud\", type = \"float64\" }",
    );
    let config = dir.path().join("config.toml");
    let hash_before = served_hash(&server);
    let refused = apply(&server, &config, &["--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--allow-data-loss"), "{stderr}");
    let plan = String::from_utf8_lossy(&refused.stdout);
    assert!(
        plan.contains("inputs.is_fraud = \"int64\" -> \"float64\"  # dropped"),
        "{plan}"
    );
    assert_eq!(served_hash(&server), hash_before);
    assert_applied(&apply(&server, &config, &["--yes", "--allow-data-loss"]));
}

#[test]
fn a_new_window_is_answered_from_the_existing_tiles_at_once() {
    let server = Server::start();
    ingest(&server, "u_window", 10.0, "grocery", 3600);
    ingest(&server, "u_window", 30.0, "grocery", 7200);
    let service = "transaction_aggregates_service";
    let before = features(&server, service, "u_window");
    assert_eq!(
        value_of(&before, "user_transaction_amount_metrics.amt_mean_3d_10m"),
        &json!(20.0)
    );

    apply_week_window(&server);
    let after = features(&server, service, "u_window");
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(
        value_of(&after, "user_transaction_amount_metrics.amt_mean_7d_10m"),
        &json!(20.0)
    );
    assert_eq!(
        value_of(&after, "user_transaction_amount_metrics.amt_mean_3d_10m"),
        &json!(20.0)
    );
}

#[test]
fn get_features_during_an_apply_see_one_repository_or_the_other() {
    let server = Server::start();
    ingest(&server, "u_busy", 40.0, "grocery", 1200);
    let service = "transaction_aggregates_service";
    let old_names: Vec<String> = features(&server, service, "u_busy")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    // Each reader reads until it has seen the new repository (or a minute has gone by).
    let reading = Arc::new(AtomicUsize::new(0));
    let new_len = old_names.len() + 1;
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let url = server.url("/api/v1/feature-service/get-features");
            let reading = Arc::clone(&reading);
            std::thread::spawn(move || {
                let request = json!({"params": {"workspaceName": "prod", "featureServiceName": service,
                    "joinKeyMap": {"user_id": "u_busy"}, "metadataOptions": {"includeNames": true}}});
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut answers: Vec<Vec<(String, Json)>> = Vec::new();
                while answers.last().is_none_or(|a| a.len() != new_len) && Instant::now() < deadline {
                    let reply = ureq::post(&url)
                        .set("Authorization", &format!("Tecton-key {ADMIN_KEY}"))
                        .send_json(&request)
                        .expect("every GetFeatures during the apply succeeds");
                    answers.push(named(&reply.into_json().unwrap()));
                    if answers.len() == 1 {
                        reading.fetch_add(1, Ordering::SeqCst);
                    }
                }
                answers
            })
        })
        .collect();
    while reading.load(Ordering::SeqCst) < readers.len() {
        std::thread::yield_now();
    }
    apply_week_window(&server);
    let (mut old_answers, mut new_answers) = (0, 0);
    for reader in readers {
        for answer in reader.join().unwrap() {
            let names: Vec<&String> = answer.iter().map(|(n, _)| n).collect();
            if names.len() == old_names.len() {
                assert_eq!(names, old_names.iter().collect::<Vec<_>>());
                old_answers += 1;
            } else {
                assert_eq!(names.len(), new_len, "{names:?}");
                new_answers += 1;
            }
            // Whichever repository answered, the stored mean is the one written.
            assert_eq!(
                value_of(&answer, "user_transaction_amount_metrics.amt_mean_1h_10m"),
                &json!(40.0)
            );
        }
    }
    assert!(
        old_answers >= 3,
        "each reader read the old repository first"
    );
    assert_eq!(new_answers, 3, "each reader ended on the new repository");
}

#[test]
fn the_route_refuses_a_stale_plan_a_bad_repository_and_a_non_admin() {
    let server = Server::start();
    let read = |config: &str| {
        let root = super::common::repo_root();
        std::fs::read_to_string(root.join(config)).unwrap()
    };
    let workspace = |live: bool, views: String| json!({"name": "staging", "live": live, "files": [{"path": "features/staging/repo.toml", "content": views}]});
    let prod_files: Vec<Json> = ["entities", "services", "sources", "views"]
        .iter()
        .map(|f| {
            let path = format!("features/prod/{f}.toml");
            json!({"path": path, "content": read(&path)})
        })
        .collect();
    let prod = json!({"name": "prod", "live": true, "files": prod_files});
    let staging = read("features/staging/repo.toml");

    let stale = server.admin_post(
        "/admin/repository",
        &json!({"workspaces": [prod, workspace(false, staging.clone())], "expectedHash": "0000000000000000"}),
    );
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert!(stale.body.contains("plan again"), "{}", stale.body);

    let broken = staging.replacen("name =", "name = \"bad name\"\nx =", 1);
    let invalid = server.admin_post(
        "/admin/repository",
        &json!({"workspaces": [prod, workspace(false, broken)]}),
    );
    assert_eq!(invalid.status, 400, "{}", invalid.body);
    assert!(
        invalid.body.contains("features/staging/repo.toml"),
        "{}",
        invalid.body
    );

    // A workspace's name is a directory's too (its feature logs): held to the name rule.
    for name in ["", "..", "../escape", "a/b", "prod "] {
        let mut renamed = workspace(false, staging.clone());
        renamed["name"] = json!(name);
        let refused =
            server.admin_post("/admin/repository", &json!({"workspaces": [prod, renamed]}));
        assert_eq!(refused.status, 400, "{name:?}: {}", refused.body);
        assert!(refused.body.contains("workspace name"), "{}", refused.body);
    }

    let created = server.admin_post("/api/scim/v2/ServiceAccounts", &json!({"name": "writer"}));
    let key = created.json()["apiKey"].as_str().unwrap().to_string();
    let refused = server.post_json("/admin/repository", Some(&key), &json!({"workspaces": []}));
    assert_eq!(refused.status, 403, "{}", refused.body);

    // Staging goes live: a switch of mode, no stored data touched.
    let hash = served_hash(&server);
    let live = server.admin_post(
        "/admin/repository",
        &json!({"workspaces": [prod, workspace(true, staging)], "expectedHash": hash}),
    );
    assert_eq!(live.status, 200, "{}", live.body);
    assert_eq!(
        live.json()["plan"]["workspaces"][0]["live"],
        json!({"before": false, "after": true})
    );
    assert_eq!(
        served_repository(&server)["workspaces"]["staging"]["live"],
        true
    );

    // Staging removed: its view goes with it, so the plan drops data and needs consent.
    let without = json!({"workspaces": [prod]});
    let refused = server.admin_post("/admin/repository", &without);
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("feature_view staging/user_experiment"),
        "{}",
        refused.body
    );
    let removed = server.admin_post(
        "/admin/repository",
        &json!({"workspaces": [prod], "allowDataLoss": true}),
    );
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(removed.json()["plan"]["workspaces"][0]["action"], "remove");
    assert!(served_repository(&server)["workspaces"]
        .get("staging")
        .is_none());
}

/// A data directory in `data` where a snapshot was taken, then the category view and service
/// applied (the apply writes a snapshot of its own) and `u_crash` written under them, and the
/// server killed with SIGKILL. Answers the applied repository's hash and the apply's snapshot.
fn a_category_applied_then_sigkill(data: &Path) -> (String, std::path::PathBuf) {
    let server = ServerBuilder::new().data_dir(data).start();
    let before = server.snapshot();
    let dir = with_view_and_service(CATEGORY_VIEW, CATEGORY_SERVICE);
    let output = apply(&server, &dir.path().join("config.toml"), &["--yes"]);
    assert_applied(&output);
    let applied = served_hash(&server);
    ingest(&server, "u_crash", 3.0, "books", 5);
    server.kill9();
    let apply_snapshot = std::fs::read_dir(before.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| *path != before)
        .expect("the apply wrote a snapshot");
    (applied, apply_snapshot)
}

/// Started again, on the demo's own files: the applied repository is served, with the row
/// written under it.
fn assert_category_served(server: &Server, applied: &str) {
    assert_eq!(served_hash(server), applied);
    let answer = features(server, "category_service", "u_crash");
    assert_eq!(
        answer,
        vec![(
            "user_last_category.last_category".to_string(),
            json!("books")
        )]
    );
}

#[test]
fn after_a_sigkill_right_after_an_apply_the_applied_repository_is_served() {
    let data = tempfile::tempdir().unwrap();
    let (applied, _) = a_category_applied_then_sigkill(data.path());
    let server = ServerBuilder::new().data_dir(data.path()).start();
    assert_category_served(&server, &applied);
    // `quiver plan` says the files on disk are not what is served.
    let demo = super::common::repo_root().join("config.toml");
    let planned = super::plan::plan(&server, &demo, &[]);
    assert_eq!(planned.status.code(), Some(2));
    assert!(
        stdout(&planned).contains("  - feature_view user_last_category  # stored data: dropped\n"),
        "{}",
        stdout(&planned)
    );
}

/// The apply's snapshot is damaged, so start-up falls back to the snapshot before the apply,
/// which the journals reach back to: the rows journal holds the apply where it was made, so the
/// applied repository is served again, with the row written under it (not dropped as a row of
/// a view the repository lacks).
#[test]
fn an_apply_whose_snapshot_is_damaged_is_recovered_from_the_journal() {
    let data = tempfile::tempdir().unwrap();
    let (applied, apply_snapshot) = a_category_applied_then_sigkill(data.path());
    super::persistence::flip_middle_byte(&apply_snapshot);
    let server = ServerBuilder::new()
        .data_dir(data.path())
        .env("QUIVER_LOG", "info")
        .start();
    assert_category_served(&server, &applied);
    let log = server.kill9();
    let name = apply_snapshot.file_name().unwrap().to_str().unwrap();
    assert!(
        log.contains(name) && log.contains("looking at the one before it"),
        "start-up fell back past the damaged snapshot:\n{log}"
    );
    assert!(log.contains("(from the rows journal)"), "{log}");
}

/// Repro B of the layout finding: an apply whose snapshot cannot be written (the snapshot
/// directory is a file here; a full disk in the field) is refused and undone, not served: the
/// previous repository answers, its rows as they were, writes in its form are taken, and a
/// SIGKILL and restart recover exactly that. Once the cause is gone, the same apply goes through.
#[test]
fn an_apply_whose_snapshot_fails_is_undone_and_never_served() {
    use super::persistence::{load_profile, profile};
    let dir = super::registry::broken_config("features/prod/views.toml", "", "");
    let config = dir.path().join("config.toml");
    let data = dir.path().join("data");
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    load_profile(&server, "u_old", "700");
    let before = served_hash(&server);

    let snapshots = data.join("snapshots");
    let aside = data.join("snapshots.aside");
    if snapshots.exists() {
        std::fs::rename(&snapshots, &aside).unwrap();
    } else {
        std::fs::create_dir(&aside).unwrap();
    }
    std::fs::write(&snapshots, "not a directory").unwrap();
    edit(
        dir.path(),
        "features/prod/views.toml",
        "  { name = \"account_age_days\", type = \"int64\" },\n",
        "",
    );
    let refused = apply(&server, &config, &["--yes", "--allow-data-loss"]);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("the repository was not applied")
            && stderr.contains("the previous repository is still served"),
        "{stderr}"
    );
    assert_eq!(served_hash(&server), before);
    let value = |features: &[(String, Json)], name: &str| value_of(features, name).clone();
    let old = profile(&server, "u_old");
    assert_eq!(value(&old, "user_profile.account_age_days"), json!("11"));
    assert_eq!(value(&old, "user_profile.home_country"), json!("DE"));
    load_profile(&server, "u_after", "650");
    server.kill9();

    std::fs::remove_file(&snapshots).unwrap();
    std::fs::rename(&aside, &snapshots).unwrap();
    // The files on disk still drop the feature: a restart would reshape (the old files are
    // what was served); put them back to restart on what was served.
    edit(
        dir.path(),
        "features/prod/views.toml",
        "  { name = \"is_verified\", type = \"boolean\" },\n",
        "  { name = \"account_age_days\", type = \"int64\" },\n  { name = \"is_verified\", type = \"boolean\" },\n",
    );
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    assert_eq!(served_hash(&server), before);
    for (user, credit) in [("u_old", "700"), ("u_after", "650")] {
        let features = profile(&server, user);
        assert_eq!(value(&features, "user_profile.credit_score"), json!(credit));
        assert_eq!(
            value(&features, "user_profile.account_age_days"),
            json!("11")
        );
        assert_eq!(value(&features, "user_profile.is_verified"), json!(true));
        assert_eq!(value(&features, "user_profile.home_country"), json!("DE"));
    }

    edit(
        dir.path(),
        "features/prod/views.toml",
        "  { name = \"account_age_days\", type = \"int64\" },\n",
        "",
    );
    assert_applied(&apply(&server, &config, &["--yes", "--allow-data-loss"]));
    assert_ne!(served_hash(&server), before);
    let features = profile(&server, "u_after");
    assert!(features
        .iter()
        .all(|(name, _)| name != "user_profile.account_age_days"));
    assert_eq!(value(&features, "user_profile.home_country"), json!("DE"));
}

/// Expressions nested deep enough to overflow the parser's or the interpreter's stack (each
/// of these killed the server before): refused with a 400 naming the view, the feature and the
/// limit, and the served repository unchanged.
#[test]
fn the_route_refuses_expressions_nested_too_deep_for_the_stack() {
    let server = Server::start();
    let root = super::common::repo_root();
    let prod_files: Vec<Json> = ["entities", "services", "sources", "views"]
        .iter()
        .map(|f| {
            let path = format!("features/prod/{f}.toml");
            json!({"path": path, "content": std::fs::read_to_string(root.join(&path)).unwrap()})
        })
        .collect();
    let staging = std::fs::read_to_string(root.join("features/staging/repo.toml")).unwrap();
    let with_expression = |expression: &str| {
        let view = format!("{staging}\n[[realtime_feature_view]]\nname = \"deep\"\nrequest_schema = [{{ name = \"a\", type = \"float64\" }}]\nsources = [\"user_experiment\"]\n\n[[realtime_feature_view.features]]\nname = \"score_check\"\ntype = \"boolean\"\nexpression = \"{expression}\"\n");
        json!({"workspaces": [
            {"name": "prod", "live": true, "files": prod_files},
            {"name": "staging", "live": false, "files": [{"path": "features/staging/repo.toml", "content": view}]},
        ]})
    };
    let served = served_hash(&server);
    let cases = [
        // Refused on their text, before the parser runs.
        (
            format!("{}true{}", "(".repeat(400), ")".repeat(400)),
            "nests brackets `(`, `[`, `{` 400 deep; at most 32",
        ),
        (
            format!("{}true{}", "[".repeat(300), "]".repeat(300)),
            "300 deep; at most 32",
        ),
        (
            format!("1{}", " + 1".repeat(3999)),
            "is 15997 bytes long; at most 4096",
        ),
        (
            format!("request{} == 1", ".a".repeat(3000)),
            "is 6012 bytes long; at most 4096",
        ),
        // Refused on its tree: it parses, but would overflow a worker when evaluated.
        (
            format!("request{} == 1", ".a".repeat(1500)),
            "nests operations 1502 deep; at most 32",
        ),
        (
            format!("request.a{} > 1.0", " + 1.0".repeat(40)),
            "nests operations 43 deep; at most 32 are allowed (each `+` or `-` in a chain counts as a level; this one has 40)",
        ),
    ];
    for (expression, limit) in cases {
        let refused = server.admin_post("/admin/repository", &with_expression(&expression));
        assert_eq!(refused.status, 400, "{}", refused.body);
        for named in [
            "features/staging/repo.toml",
            "realtime_feature_view `deep`",
            "feature `score_check`",
            limit,
        ] {
            assert!(refused.body.contains(named), "{named}: {}", refused.body);
        }
        // Named, not echoed: the answer stays short.
        assert!(refused.body.len() < 1000, "{}", refused.body);
        assert_eq!(served_hash(&server), served);
    }
    // Within the limits, the same view applies (and the server is still up to take it); a flat
    // chain of `&&` is balanced by the parser, not 40 deep.
    let applied = server.admin_post(
        "/admin/repository",
        &with_expression(&format!(
            "({}{}{})",
            "(".repeat(8),
            vec!["request.a > 1.0"; 40].join(" && "),
            ")".repeat(8)
        )),
    );
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert_ne!(served_hash(&server), served);
}
