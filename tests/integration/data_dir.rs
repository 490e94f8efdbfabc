//! The data directory as the operator sees it: one server at a time (the `quiver.lock` lock),
//! and key files that are never silently replaced.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

use super::common::{repo_root, Reply, Server, ServerBuilder, ADMIN_KEY};
use super::persistence::ingest;
use super::secrets::tecton;

/// Runs `quiver snapshot restore --force` of `snapshot` into `data_dir`.
fn restore_force(data_dir: &Path, snapshot: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["snapshot", "restore", "--force", "--config"])
        .arg(repo_root().join("config.toml"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg(snapshot)
        .env("QUIVER_LOG", "warn")
        .output()
        .expect("the quiver binary runs")
}

/// The snapshot files in `data_dir`.
fn snapshots(data_dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data_dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "qvs"))
        .collect()
}

#[test]
fn a_second_server_on_a_locked_data_dir_exits_naming_the_lock_and_its_pid() {
    let data = tempfile::tempdir().unwrap();
    let first = ServerBuilder::new().data_dir(data.path()).start();
    let second = ServerBuilder::new().data_dir(data.path()).run_to_exit();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("quiver.lock"), "{stderr}");
    assert!(
        stderr.contains(&format!("locked by process {}", first.pid())),
        "{stderr}"
    );
    assert_eq!(
        first.request("GET", "/health", &[], None).status,
        200,
        "the first server is untouched"
    );
    first.kill9();
    // The kernel released the lock with the process: a restart needs no clean-up.
    let restarted = ServerBuilder::new().data_dir(data.path()).start();
    assert_eq!(restarted.request("GET", "/health", &[], None).status, 200);
}

#[test]
fn snapshot_restore_refuses_while_a_server_runs_on_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    ServerBuilder::new()
        .data_dir(data.path())
        .start()
        .terminate();
    let snapshot = snapshots(data.path()).pop().expect("a shutdown snapshot");
    let server = ServerBuilder::new().data_dir(data.path()).start();

    let refused = restore_force(data.path(), &snapshot);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("locked by process {}", server.pid())),
        "{stderr}"
    );
    let journal_entries: Vec<String> = std::fs::read_dir(data.path().join("journal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        journal_entries
            .iter()
            .all(|e| !e.contains("before-restore")),
        "nothing was set aside: {journal_entries:?}"
    );

    server.terminate();
    let restored = restore_force(data.path(), &snapshot);
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
}

/// Runs `quiver journal repair --skip-record SEGMENT:OFFSET`.
fn repair(segment: &Path, offset: usize) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["journal", "repair", "--skip-record"])
        .arg(format!("{}:{offset}", segment.display()))
        .output()
        .expect("the quiver binary runs")
}

#[test]
fn journal_repair_refuses_while_a_server_runs_on_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    ingest(&server, "first", 1.0);
    ingest(&server, "second", 2.0);
    let rows = data.path().join("journal").join("rows");
    let segment = super::common::journal_segments(&rows)
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .expect("a segment with records");
    // Damage the first record (its payload starts after a 12-byte header).
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[14] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();

    let refused = repair(&segment, 0);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("locked by process {}", server.pid())),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing rewritten");
    let entries = || std::fs::read_dir(&rows).unwrap().count();
    // The segment and the journal's record of its newest segment.
    assert_eq!(entries(), 2, "no original set aside");

    server.kill9();
    let repaired = repair(&segment, 0);
    assert!(
        repaired.status.success(),
        "{}",
        String::from_utf8_lossy(&repaired.stderr)
    );
    assert_eq!(
        entries(),
        3,
        "the original is kept beside the repaired segment"
    );

    let elsewhere = tempfile::tempdir().unwrap();
    let stray = elsewhere.path().join("00000000000000000001.journal");
    std::fs::write(&stray, &bytes).unwrap();
    let refused = repair(&stray, 0);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("is not a segment of a data directory's journal"),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(&stray).unwrap(), bytes);
}

/// Puts `value` as Tecton secret `ops/k` (creating the scope) as the admin.
fn put_secret(server: &Server, value: &str) {
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let headers = [("Authorization", auth.as_str())];
    let scope = server.request("POST", "/api/v1/secrets-service/scopes/ops", &headers, None);
    assert!(scope.status == 200 || scope.status == 409, "{}", scope.body);
    let body = json!({ "value": value }).to_string();
    let put = server.request(
        "PUT",
        "/api/v1/secrets-service/scopes/ops/keys/k",
        &headers,
        Some(body.as_bytes()),
    );
    assert_eq!(put.status, 200, "{}", put.body);
}

fn get_secret(server: &Server) -> Reply {
    let auth = format!("Tecton-key {ADMIN_KEY}");
    server.request(
        "GET",
        "/api/v1/secrets-service/scopes/ops/keys/k",
        &[("Authorization", &auth)],
        None,
    )
}

/// A start-up refused because `key_file` is missing, saying what it protects and both ways on.
fn assert_refused_for_lost_key(output: &Output, key_file: &str, protects: &str) {
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for needle in [
        &format!("{key_file} is missing") as &str,
        protects,
        "Copy it back from your backup",
        "--replace-lost-keys",
    ] {
        assert!(stderr.contains(needle), "`{needle}` in {stderr}");
    }
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_first_start_creates_both_key_files_readable_by_the_owner_only() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    for file in ["iam.key", "master.key"] {
        assert_eq!(mode_of(&data.path().join(file)), 0o600, "{file}");
    }
    drop(server);
}

#[test]
fn a_lost_master_key_stops_start_up_until_restored_or_replaced_explicitly() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    put_secret(&server, "first-value");
    server.kill9();
    let master_key = data.path().join("master.key");
    let backup = std::fs::read(&master_key).unwrap();
    std::fs::remove_file(&master_key).unwrap();

    let refused = ServerBuilder::new().data_dir(data.path()).run_to_exit();
    assert_refused_for_lost_key(
        &refused,
        "master.key",
        "every stored secret is sealed under",
    );
    assert!(!master_key.exists(), "the refusal created no key");

    // Copied back: everything opens again.
    std::fs::write(&master_key, &backup).unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    assert_eq!(get_secret(&server).json()["value"], "first-value");
    server.kill9();

    // Replaced on purpose: the old value is reported as unreadable, new ones work.
    std::fs::remove_file(&master_key).unwrap();
    let server = ServerBuilder::new()
        .data_dir(data.path())
        .arg("--replace-lost-keys")
        .start();
    assert_eq!(mode_of(&master_key), 0o600);
    let lost = get_secret(&server);
    assert_eq!(lost.status, 500, "{}", lost.body);
    assert!(
        lost.body.contains("could not be decrypted"),
        "{}",
        lost.body
    );
    put_secret(&server, "second-value");
    assert_eq!(get_secret(&server).json()["value"], "second-value");
}

#[test]
fn with_quiver_master_key_set_no_master_key_file_is_needed() {
    let data = tempfile::tempdir().unwrap();
    let hex = "ab".repeat(32);
    let server = ServerBuilder::new()
        .data_dir(data.path())
        .env("QUIVER_MASTER_KEY", &hex)
        .start();
    put_secret(&server, "env-sealed");
    server.kill9();
    assert!(!data.path().join("master.key").exists());
    let server = ServerBuilder::new()
        .data_dir(data.path())
        .env("QUIVER_MASTER_KEY", &hex)
        .start();
    assert_eq!(get_secret(&server).json()["value"], "env-sealed");
}

#[test]
fn a_lost_iam_key_stops_start_up_until_restored_or_replaced_explicitly() {
    let data = tempfile::tempdir().unwrap();
    // No QUIVER_ADMIN_KEY: the admin key is generated and its digest stored.
    let server = ServerBuilder::new()
        .without_env("QUIVER_ADMIN_KEY")
        .data_dir(data.path())
        .start();
    let admin_key = generated_admin_key(&server);
    assert_eq!(admin_status(&server, &admin_key), 200);
    server.kill9();
    let iam_key = data.path().join("iam.key");
    let backup = std::fs::read(&iam_key).unwrap();
    std::fs::remove_file(&iam_key).unwrap();

    let refused = ServerBuilder::new()
        .without_env("QUIVER_ADMIN_KEY")
        .data_dir(data.path())
        .run_to_exit();
    assert_refused_for_lost_key(&refused, "iam.key", "no API key authenticates");
    assert!(!iam_key.exists(), "the refusal created no key");

    std::fs::write(&iam_key, &backup).unwrap();
    let server = ServerBuilder::new()
        .without_env("QUIVER_ADMIN_KEY")
        .data_dir(data.path())
        .start();
    assert_eq!(admin_status(&server, &admin_key), 200, "restored key file");
    server.kill9();

    // Replaced on purpose: the old admin key is dead and a new one is printed.
    std::fs::remove_file(&iam_key).unwrap();
    let server = ServerBuilder::new()
        .without_env("QUIVER_ADMIN_KEY")
        .data_dir(data.path())
        .arg("--replace-lost-keys")
        .start();
    assert_eq!(mode_of(&iam_key), 0o600);
    let new_admin_key = generated_admin_key(&server);
    assert_ne!(new_admin_key, admin_key);
    assert_eq!(admin_status(&server, &new_admin_key), 200);
    assert_eq!(admin_status(&server, &admin_key), 401);
}

/// The admin key a server printed at start-up.
fn generated_admin_key(server: &Server) -> String {
    server
        .printed
        .iter()
        .find_map(|line| line.split("save it now): ").nth(1))
        .unwrap_or_else(|| panic!("no generated admin key in {:?}", server.printed))
        .trim()
        .to_string()
}

/// The status of an admin-only request made with `key`.
fn admin_status(server: &Server, key: &str) -> u16 {
    let auth = format!("Tecton-key {key}");
    server
        .request("GET", "/admin/snapshots", &[("Authorization", &auth)], None)
        .status
}

#[test]
fn serve_restore_without_the_master_key_is_refused_before_anything_moves() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    put_secret(&server, "kept");
    server.terminate();
    let snapshot = snapshots(data.path()).pop().expect("a shutdown snapshot");
    let master_key = data.path().join("master.key");
    std::fs::remove_file(&master_key).unwrap();

    let refused = ServerBuilder::new()
        .data_dir(data.path())
        .arg("--restore")
        .arg(snapshot.to_str().unwrap())
        .run_to_exit();
    assert_refused_for_lost_key(
        &refused,
        "master.key",
        "every stored secret is sealed under",
    );
    assert_eq!(
        snapshots(data.path()),
        vec![snapshot],
        "nothing was restored"
    );
    assert!(!master_key.exists());
}

#[test]
fn a_shared_digest_key_is_refused_with_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let output = ServerBuilder::new()
        .data_dir(dir.path())
        .env("QUIVER_IAM_KEY", &"1".repeat(64))
        .run_to_exit();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("a data directory keeps its own iam.key"),
        "{stderr}"
    );
}

/// The backup README describes (the key files and the newest snapshot), copied right after
/// `rotate-key`, opens every secret: the rotation answers once a snapshot under the new key is
/// written, where before the newest snapshot still held the values under the key just
/// replaced.
#[test]
fn the_newest_snapshot_after_a_key_rotation_opens_with_the_new_key_file() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    let put = json!({"value": "rotation-plaintext-4b7a"});
    assert_eq!(
        tecton(&server, "POST", "/scopes/ops", ADMIN_KEY, None).status,
        200
    );
    let stored = tecton(&server, "PUT", "/scopes/ops/keys/k", ADMIN_KEY, Some(put));
    assert_eq!(stored.status, 200, "{}", stored.body);
    server.snapshot();
    let rotated = server.admin_post("/admin/secrets/rotate-key", &json!({}));
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let id = rotated.json()["snapshot"].as_str().unwrap().to_string();
    let newest = snapshots(data.path()).into_iter().max().unwrap();
    assert!(
        newest.to_string_lossy().contains(&id),
        "{}",
        newest.display()
    );

    let backup = tempfile::tempdir().unwrap();
    for key_file in ["iam.key", "master.key"] {
        std::fs::copy(data.path().join(key_file), backup.path().join(key_file)).unwrap();
    }
    drop(server);
    let restored = restore_force(backup.path(), &newest);
    assert!(restored.status.success(), "{restored:?}");
    let server = ServerBuilder::new().data_dir(backup.path()).start();
    let read = tecton(&server, "GET", "/scopes/ops/keys/k", ADMIN_KEY, None);
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json()["value"], "rotation-plaintext-4b7a");
}

/// A rotation whose snapshot fails still answers the rotation, with the new key (from the
/// environment, its only copy) and the snapshot's failure: a 500 would have lost the key the
/// journal's values are now sealed under.
#[test]
fn a_rotation_whose_snapshot_fails_still_answers_the_new_key() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new()
        .data_dir(data.path())
        .env("QUIVER_MASTER_KEY", &"ab".repeat(32))
        .start();
    let snapshots = data.path().join("snapshots");
    if snapshots.exists() {
        std::fs::remove_dir_all(&snapshots).unwrap();
    }
    std::fs::write(&snapshots, "not a directory").unwrap();
    let rotated = server.admin_post("/admin/secrets/rotate-key", &json!({}));
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let body = rotated.json();
    assert_eq!(body["rotated"], true);
    assert_eq!(body["newMasterKey"].as_str().unwrap().len(), 64);
    assert!(body["snapshot"].is_null(), "{body}");
    assert!(
        body["snapshotError"]
            .as_str()
            .unwrap()
            .contains("open only with the previous key"),
        "{body}"
    );
}
