//! Persistence end to end: acknowledged writes survive SIGKILL, snapshots restore into a
//! server with another shard count, and corrupt snapshots and journals are detected, reported
//! and never loaded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::common::{
    journal_segments, repo_root, timestamp_in, Server, ServerBuilder, ADMIN_KEY, PATIENCE,
};

pub(super) fn transaction(user: &str, amount: f64) -> Json {
    json!({"workspace_name": "prod", "dry_run": false, "records": {"transactions": [{"record": {
        "user_id": user, "merchant": "m", "terminal_id": 1, "amt": amount, "category": "c",
        "is_online": false, "timestamp": timestamp_in(0)}}]}})
}

/// Ingests `user_amount(i)` for i = 0, 1, ... through the server at `base_url` until a write is
/// refused or gets no answer within `timeout` (the server was killed), counting each
/// acknowledgement in `acknowledged` as it comes; answers the acknowledged writes.
pub(super) fn ingest_until_refused(
    base_url: &str,
    timeout: Duration,
    acknowledged: &AtomicUsize,
    user_amount: impl Fn(usize) -> (String, f64),
) -> Vec<(String, f64)> {
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let mut written = Vec::new();
    for i in 0..10_000 {
        let (user, amount) = user_amount(i);
        let sent = agent
            .post(&format!("{base_url}/ingest"))
            .set("Authorization", &format!("Tecton-key {ADMIN_KEY}"))
            .send_json(transaction(&user, amount));
        match sent {
            Ok(response) if response.status() == 200 => {
                written.push((user, amount));
                acknowledged.fetch_add(1, Ordering::Relaxed);
            }
            _ => break,
        }
    }
    written
}

pub(super) fn ingest(server: &Server, user: &str, amount: f64) {
    let reply = server.admin_post("/ingest", &transaction(user, amount));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// The user's `last_amount`, or null.
pub(super) fn last_amount(server: &Server, user: &str) -> Json {
    last_amount_with(server, ADMIN_KEY, user)
}

/// The same, read with `key` (which must be allowed to).
fn last_amount_with(server: &Server, key: &str, user: &str) -> Json {
    let request = json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": user, "merchant": "m"}}});
    let reply = server.post_json("/api/v1/feature-service/get-features", Some(key), &request);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["result"]["features"][2].clone()
}

/// A copy of the demo config in `dir` with absolute repository paths, `edit` applied to its text.
fn config_in(dir: &Path, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("config.toml"))
        .unwrap()
        .replace("\"features/", &format!("\"{}/features/", root.display()));
    let path = dir.join(name);
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// The demo config with another shard count.
fn config_with_shards(dir: &Path, shards: usize) -> PathBuf {
    config_in(dir, &format!("config-{shards}.toml"), |text| {
        text.replace("shards = 0", &format!("shards = {shards}"))
    })
}

#[test]
fn acknowledged_writes_survive_sigkill_with_fsync_always() {
    acknowledged_writes_survive_sigkill("always");
}

/// SIGKILL leaves the page cache, so even without fsync nothing acknowledged may be lost.
#[test]
fn acknowledged_writes_survive_sigkill_with_fsync_every_second() {
    acknowledged_writes_survive_sigkill("every_second");
}

#[test]
fn acknowledged_writes_survive_sigkill_with_fsync_never() {
    acknowledged_writes_survive_sigkill("never");
}

/// Concurrent feature, SCIM and secret writers, SIGKILL at a varying moment, then a restart that
/// must hold every acknowledged write; reports what was acknowledged and what was lost.
fn acknowledged_writes_survive_sigkill(fsync: &str) {
    let data = tempfile::tempdir().unwrap();
    let config = config_in(data.path(), "config.toml", |text| {
        format!("{text}\n[persistence]\nfsync = \"{fsync}\"\n")
    });
    let data = data.path().join("data");
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    let base_url = server.base_url.clone();
    // Acknowledgements so far, per kind: the kill waits until each kind has some, however slow
    // the machine is.
    let acks: [Arc<AtomicUsize>; 3] = Default::default();
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let base_url = base_url.clone();
            let row_acks = acks[0].clone();
            std::thread::spawn(move || {
                ingest_until_refused(&base_url, Duration::from_secs(5), &row_acks, |i| {
                    (format!("crash_{writer}_{}", i % 7), i as f64)
                })
            })
        })
        .collect();
    let scim_writer = {
        let base_url = base_url.clone();
        let group_acks = acks[1].clone();
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            let mut acknowledged = Vec::new();
            for i in 0..10_000 {
                let sent = agent
                    .post(&format!("{base_url}/api/scim/v2/Groups"))
                    .set("Authorization", &format!("Bearer {ADMIN_KEY}"))
                    .send_json(json!({"displayName": format!("crash-group-{i}")}));
                match sent.ok().and_then(|r| r.into_json::<Json>().ok()) {
                    Some(group) => {
                        acknowledged.push(group["id"].as_str().unwrap().to_string());
                        group_acks.fetch_add(1, Ordering::Relaxed);
                    }
                    None => break,
                }
            }
            acknowledged
        })
    };
    let secret_writer = {
        let base_url = base_url.clone();
        let secret_acks = acks[2].clone();
        std::thread::spawn(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(5))
                .build();
            let auth = format!("Tecton-key {ADMIN_KEY}");
            if agent
                .post(&format!("{base_url}/api/v1/secrets-service/scopes/crash"))
                .set("Authorization", &auth)
                .call()
                .is_err()
            {
                return Vec::new();
            }
            let mut acknowledged = Vec::new();
            for i in 0..10_000 {
                let sent = agent
                    .put(&format!(
                        "{base_url}/api/v1/secrets-service/scopes/crash/keys/k{i}"
                    ))
                    .set("Authorization", &auth)
                    .send_json(json!({"value": format!("value-{i}")}));
                match sent {
                    Ok(_) => {
                        acknowledged.push(i);
                        secret_acks.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => break,
                }
            }
            acknowledged
        })
    };
    let waited_since = Instant::now();
    while acks.iter().any(|a| a.load(Ordering::Relaxed) == 0)
        && waited_since.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A moment that varies from run to run.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis()
        % 700;
    std::thread::sleep(Duration::from_millis(300 + u64::from(jitter)));
    server.kill9();
    let acknowledged: Vec<(String, f64)> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        !acknowledged.is_empty(),
        "some writes were acknowledged before the kill"
    );
    let groups = scim_writer.join().unwrap();
    let secrets = secret_writer.join().unwrap();
    assert!(
        !secrets.is_empty(),
        "some secrets were acknowledged before the kill"
    );
    assert!(
        !groups.is_empty(),
        "some groups were acknowledged before the kill"
    );

    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    let mut last_acked: std::collections::HashMap<&str, f64> = std::collections::HashMap::new();
    for (user, amount) in &acknowledged {
        last_acked.insert(user, *amount);
    }
    let mut lost = Vec::new();
    for (user, amount) in &last_acked {
        // A write the server journaled but could not acknowledge before dying may be newer.
        match last_amount(&server, user).as_f64() {
            Some(stored) if stored >= *amount => {}
            stored => lost.push(format!(
                "row {user}: stored {stored:?}, acknowledged {amount}"
            )),
        }
    }
    let auth = format!("Bearer {ADMIN_KEY}");
    for id in &groups {
        let reply = server.request(
            "GET",
            &format!("/api/scim/v2/Groups/{id}"),
            &[("Authorization", &auth)],
            None,
        );
        if reply.status != 200 {
            lost.push(format!("group {id}"));
        }
    }
    let auth = format!("Tecton-key {ADMIN_KEY}");
    for i in &secrets {
        let reply = server.request(
            "GET",
            &format!("/api/v1/secrets-service/scopes/crash/keys/k{i}"),
            &[("Authorization", &auth)],
            None,
        );
        if reply.status != 200 || reply.json()["value"] != format!("value-{i}") {
            lost.push(format!("secret k{i}"));
        }
    }
    eprintln!(
        "fsync = {fsync}: acknowledged {} ingest requests ({} keys), {} groups, {} secrets; lost {}",
        acknowledged.len(),
        last_acked.len(),
        groups.len(),
        secrets.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "fsync = {fsync}: acknowledged writes lost: {lost:?}"
    );
}

#[test]
fn a_snapshot_restores_into_a_server_with_another_shard_count() {
    let scratch = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (scratch.path().join("a"), scratch.path().join("b"));
    let server = ServerBuilder::new()
        .config(config_with_shards(scratch.path(), 2))
        .data_dir(&data_a)
        .start();
    let users: Vec<String> = (0..60).map(|i| format!("restore_{i}")).collect();
    for (i, user) in users.iter().enumerate() {
        ingest(&server, user, i as f64 + 0.5);
    }
    let file = server.snapshot();
    let before: Vec<Json> = users
        .iter()
        .chain(["user_1001".to_string()].iter())
        .map(|u| last_amount(&server, u))
        .collect();
    drop(server);

    let config_b = config_with_shards(scratch.path(), 3);
    // A backup is the snapshot and the key files: a data directory holding state refuses to
    // start without the keys that protect it.
    std::fs::create_dir_all(&data_b).unwrap();
    for key_file in ["iam.key", "master.key"] {
        std::fs::copy(data_a.join(key_file), data_b.join(key_file)).unwrap();
    }
    let output = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["snapshot", "restore", "--config"])
        .arg(&config_b)
        .arg("--data-dir")
        .arg(&data_b)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verify = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["snapshot", "verify"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("ok ("),
        "{verify:?}"
    );

    let restored = ServerBuilder::new()
        .config(&config_b)
        .data_dir(&data_b)
        .start();
    let after: Vec<Json> = users
        .iter()
        .chain(["user_1001".to_string()].iter())
        .map(|u| last_amount(&restored, u))
        .collect();
    assert_eq!(before, after);
    let profile = |server: &Server| {
        let request = json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
            "joinKeyMap": {"user_id": "user_1002", "merchant": "fraud_Sporer-Keebler"}}});
        server
            .admin_post("/api/v1/feature-service/get-features", &request)
            .json()["result"]
            .clone()
    };
    assert_eq!(
        profile(&restored)["features"][6],
        "655",
        "demo rows came with the snapshot"
    );

    // Restoring over existing state needs --force (and a stopped server).
    drop(restored);
    let again = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["snapshot", "restore", "--config"])
        .arg(&config_b)
        .arg("--data-dir")
        .arg(&data_b)
        .arg(&file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn a_corrupt_newest_snapshot_is_reported_and_the_previous_one_used() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    ingest(&server, "before_first", 1.0);
    server.snapshot();
    ingest(&server, "between", 2.0);
    let newest = server.snapshot();
    ingest(&server, "after_second", 3.0);
    server.kill9();

    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&newest, bytes).unwrap();

    let server = ServerBuilder::new().data_dir(data.path()).start();
    for (user, amount) in [
        ("before_first", 1.0),
        ("between", 2.0),
        ("after_second", 3.0),
    ] {
        assert_eq!(last_amount(&server, user), json!(amount), "{user}");
    }
    let log = server.kill9();
    let name = newest.file_name().unwrap().to_str().unwrap();
    assert!(
        log.contains(name) && log.contains("checksum mismatch"),
        "the log names the bad snapshot:\n{log}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["snapshot", "verify"])
        .arg(&newest)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("checksum mismatch"));
}

/// Every file below `dir` but the lock file, with its bytes.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = walk(dir)
        .into_iter()
        .filter(|p| !p.ends_with("quiver.lock"))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

pub(super) fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// `builder`'s start on `data` is refused as one that would lose acknowledged writes, naming
/// each of `needed` and the way past it, and changes nothing.
fn assert_start_refused(builder: ServerBuilder, data: &Path, needed: &[&str]) {
    let before = contents(data);
    let refused = builder.run_to_exit();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the start is refused:\n{stderr}");
    let always = [
        "refusing to start: acknowledged writes would be lost",
        "--accept-lost-writes",
    ];
    for needed in always.iter().chain(needed) {
        assert!(stderr.contains(needed), "{needed:?} in:\n{stderr}");
    }
    assert_eq!(contents(data), before, "a refused start changes nothing");
}

/// With a retention of 1, the snapshot the journal reaches back to is still kept, so a damaged
/// newest one falls back to it with every write. Once that one is damaged too, the journal
/// (kept back to it only) does not reach back to the start: the server refuses to start,
/// naming both snapshots and the missing segments, and changes nothing; asked to
/// (`--accept-lost-writes`), it starts with what is left.
#[test]
fn a_damaged_snapshot_the_journals_do_not_reach_back_past_refuses_the_start() {
    let data = tempfile::tempdir().unwrap();
    let builder = || {
        ServerBuilder::new()
            .data_dir(data.path())
            .arg("--snapshot-retention")
            .arg("1")
    };
    let server = builder().start();
    ingest(&server, "before_first", 1.0);
    let first = server.snapshot();
    ingest(&server, "before_second", 2.0);
    let second = server.snapshot();
    ingest(&server, "before_third", 3.0);
    let third = server.snapshot();
    ingest(&server, "after_third", 4.0);
    // Retention runs just after the file is renamed in, which is when `snapshot` sees it listed.
    let deadline = Instant::now() + PATIENCE;
    while first.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill9();
    assert!(!first.exists(), "retention removed the oldest");
    assert!(
        second.exists(),
        "the one the journal reaches back to is kept"
    );

    flip_middle_byte(&third);
    let server = builder().start();
    for (user, amount) in [
        ("before_first", 1.0),
        ("before_second", 2.0),
        ("before_third", 3.0),
        ("after_third", 4.0),
    ] {
        assert_eq!(last_amount(&server, user), json!(amount), "{user}");
    }
    server.kill9();

    flip_middle_byte(&second);
    assert_start_refused(
        builder(),
        data.path(),
        &[
            &third.display().to_string(),
            &second.display().to_string(),
            "checksum mismatch",
            "with no snapshot to start from",
            "journal rows: missing segment",
        ],
    );

    let server = builder().arg("--accept-lost-writes").start();
    assert_eq!(last_amount(&server, "after_third"), json!(4.0));
    let log = server.kill9();
    assert!(log.contains("--accept-lost-writes"), "{log}");
}

/// `quiver journal check` of `data`: whether it passed, and what it listed.
fn journal_check(data: &Path) -> (bool, String) {
    let check = super::faults::quiver(&["journal", "check", "--data-dir", data.to_str().unwrap()]);
    let listed = String::from_utf8_lossy(&check.stdout).into_owned();
    (check.status.success(), listed)
}

/// A deleted newest journal segment is not taken for "no writes since": the journal records
/// the newest segment it created, so the start is refused naming it, unless the operator
/// accepts the loss.
#[test]
fn a_deleted_newest_journal_segment_refuses_the_start() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    ingest(&server, "in_first_segment", 1.0);
    server.kill9();
    // The second start writes to a segment of its own.
    let server = ServerBuilder::new().data_dir(data.path()).start();
    ingest(&server, "in_newest_segment", 2.0);
    server.kill9();

    let rows = data.path().join("journal").join("rows");
    let newest = journal_segments(&rows).pop().expect("a segment");
    std::fs::remove_file(&newest).unwrap();

    let (passed, listed) = journal_check(data.path());
    assert!(!passed, "{listed}");
    assert!(
        listed.contains("MISSING: the journal created segments up to 2, the newest here is 1"),
        "{listed}"
    );
    // A record that does not read is reported, and the journals after it are still checked.
    let record = data.path().join("journal/directory/newest-segment");
    let kept = std::fs::read(&record).unwrap();
    std::fs::write(&record, "garbled").unwrap();
    let (passed, listed) = journal_check(data.path());
    assert!(!passed, "{listed}");
    assert!(
        listed.contains("BAD: ") && listed.contains("newest-segment should hold"),
        "{listed}"
    );
    assert!(listed.contains("journal vault"), "{listed}");
    std::fs::write(&record, kept).unwrap();

    assert_start_refused(
        ServerBuilder::new().data_dir(data.path()),
        data.path(),
        &["journal rows: missing segment 2", "the newest it created"],
    );

    let server = ServerBuilder::new()
        .data_dir(data.path())
        .arg("--accept-lost-writes")
        .start();
    assert_eq!(last_amount(&server, "in_first_segment"), json!(1.0));
    assert_eq!(last_amount(&server, "in_newest_segment"), Json::Null);
    server.kill9();
}

#[test]
fn a_snapshot_of_an_unsupported_format_version_refuses_the_start() {
    use quiver::persist::format::{checksum, HEADER_LEN, OLDEST_READ_VERSION};
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    ingest(&server, "before", 1.0);
    server.snapshot();
    ingest(&server, "between", 2.0);
    let newest = server.snapshot();
    server.kill9();
    // As an older build would have written it: another version, a valid header checksum.
    let older = OLDEST_READ_VERSION - 1;
    let mut bytes = std::fs::read(&newest).unwrap();
    bytes[8..12].copy_from_slice(&older.to_le_bytes());
    let sum = checksum(&bytes[..HEADER_LEN - 8]);
    bytes[HEADER_LEN - 8..HEADER_LEN].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&newest, &bytes).unwrap();
    let before = contents(data.path());

    let refused = ServerBuilder::new().data_dir(data.path()).run_to_exit();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the start is refused");
    assert!(
        stderr.contains(&newest.display().to_string())
            && stderr.contains(&format!("snapshot format version {older} is not supported")),
        "the refusal names the file and its version:\n{stderr}"
    );
    assert_eq!(
        contents(data.path()),
        before,
        "a refused start changes nothing"
    );
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_torn_journal_tail_is_cut_and_logged() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    ingest(&server, "torn", 4.0);
    server.kill9();
    let journal_dir = data.path().join("journal").join("rows");
    let newest = journal_segments(&journal_dir).pop().unwrap();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    std::io::Write::write_all(&mut file, &[200, 0, 0, 0, 7]).unwrap();
    drop(file);

    let server = ServerBuilder::new().data_dir(data.path()).start();
    assert_eq!(last_amount(&server, "torn"), json!(4.0));
    let log = server.kill9();
    assert!(
        log.contains("cut a torn tail") && log.contains("dropped_bytes=5"),
        "{log}"
    );
}

#[test]
fn sigterm_drains_and_snapshots() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    ingest(&server, "graceful", 5.0);
    server.terminate();
    let snapshots: Vec<_> = std::fs::read_dir(data.path().join("snapshots"))
        .unwrap()
        .collect();
    assert_eq!(snapshots.len(), 1, "a shutdown snapshot was written");
    let server = ServerBuilder::new().data_dir(data.path()).start();
    assert_eq!(last_amount(&server, "graceful"), json!(5.0));
}

#[test]
fn snapshot_interval_takes_snapshots_on_its_own() {
    let data = tempfile::tempdir().unwrap();
    let config = config_in(data.path(), "config-interval.toml", |text| {
        format!("{text}\n[persistence]\nsnapshot_interval = \"1s\"\n")
    });
    let server = ServerBuilder::new()
        .config(&config)
        .data_dir(data.path())
        .start();
    ingest(&server, "periodic", 7.0);
    // The server is killed at the end (SIGKILL): no shutdown snapshot stands in for a periodic one.
    let deadline = Instant::now() + PATIENCE;
    let written = || {
        std::fs::read_dir(data.path().join("snapshots")).is_ok_and(|files| {
            files
                .filter_map(Result::ok)
                .any(|f| f.file_name().to_string_lossy().ends_with(".qvs"))
        })
    };
    while !written() {
        assert!(
            Instant::now() < deadline,
            "no periodic snapshot was written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn snapshot_create_and_rotate_key_act_through_the_servers_api() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    let quiver = |args: &[&str], key: &str| {
        Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(args)
            .args(["--server", &server.url(""), "--api-key", key])
            .output()
            .unwrap()
    };
    let created = quiver(&["snapshot", "create"], ADMIN_KEY);
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(created.status.success(), "{created:?}");
    assert!(
        stdout.starts_with("snapshot ") && stdout.contains(" started"),
        "{stdout}"
    );
    let rotated = quiver(&["secrets", "rotate-key"], ADMIN_KEY);
    assert!(rotated.status.success(), "{rotated:?}");
    assert!(
        String::from_utf8_lossy(&rotated.stdout).contains("the key file was replaced"),
        "{rotated:?}"
    );
    let refused = quiver(&["snapshot", "create"], "not-a-key");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("the server refused with 401"), "{stderr}");
}

#[test]
fn in_memory_servers_refuse_snapshots() {
    let server = Server::start();
    let reply = server.admin_post("/admin/snapshots", &json!({}));
    assert_eq!(reply.status, 409);
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .contains("data directory"));
}

#[test]
fn service_account_keys_and_roles_survive_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    let body =
        json!({"name": "durable", "roles": [{"type": "workspace_prod", "value": "consumer"}]})
            .to_string();
    let created = server.request(
        "POST",
        "/api/scim/v2/ServiceAccounts",
        &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
        Some(body.as_bytes()),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.json()["apiKey"].as_str().unwrap().to_string();
    server.snapshot();
    server.kill9();

    let server = ServerBuilder::new().data_dir(data.path()).start();
    assert!(
        last_amount_with(&server, &key, "nobody").is_null(),
        "the key still reads features"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.path().join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.extend(
        std::fs::read_dir(data.path().join("journal").join("directory"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "{} holds the API key",
            file.display()
        );
    }
}

/// Loads one `user_profile` row for `user` (the demo's columns; `account_age_days` 11).
pub(super) fn load_profile(server: &Server, user: &str, credit: &str) {
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let row = format!(
        "{{\"user_id\":\"{user}\",\"timestamp\":\"2026-06-01T00:00:00Z\",\"credit_score\":{credit},\
         \"account_age_days\":11,\"is_verified\":true,\"home_country\":\"DE\",\
         \"preferred_categories\":[\"x\"],\"signup_time\":\"2026-05-01T00:00:00Z\"}}\n"
    );
    let reply = server.request(
        "POST",
        "/admin/workspaces/prod/feature-views/user_profile/rows",
        &[("Authorization", &auth)],
        Some(row.as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// `user`'s `user_profile` features as `user_risk_service` answers them: name -> value.
pub(super) fn profile(server: &Server, user: &str) -> Vec<(String, Json)> {
    let request = json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": user, "merchant": "m"}, "metadataOptions": {"includeNames": true}}});
    let reply = server.admin_post("/api/v1/feature-service/get-features", &request);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let names = body["metadata"]["features"].as_array().unwrap().clone();
    let values = body["result"]["features"].as_array().unwrap().clone();
    names
        .iter()
        .zip(values)
        .map(|(name, value)| (name["name"].as_str().unwrap().to_string(), value))
        .filter(|(name, _)| name.starts_with("user_profile."))
        .collect()
}

/// Feature `name` of `user_profile` in what [`profile`] answered.
pub(super) fn profile_feature(features: &[(String, Json)], name: &str) -> Json {
    let name = format!("user_profile.{name}");
    let found = features.iter().find(|(n, _)| *n == name);
    found
        .unwrap_or_else(|| panic!("{name} in {features:?}"))
        .1
        .clone()
}

/// What `profile` answers for a `load_profile` row of `credit` once `account_age_days` has left
/// the files: in Tecton's order (by name), every other feature as written.
pub(super) fn profile_without_account_age(credit: i64) -> Vec<(String, Json)> {
    vec![
        (
            "user_profile.credit_score".to_string(),
            json!(credit.to_string()),
        ),
        ("user_profile.home_country".to_string(), json!("DE")),
        ("user_profile.is_verified".to_string(), json!(true)),
        (
            "user_profile.preferred_categories".to_string(),
            json!(["x"]),
        ),
        (
            "user_profile.signup_time".to_string(),
            json!("2026-05-01T00:00:00Z"),
        ),
    ]
}

/// The line `features/prod/views.toml` declares `account_age_days` with (removed, or its type
/// changed, by the files-changed-between-runs tests).
pub(super) const ACCOUNT_AGE_DAYS: &str = "  { name = \"account_age_days\", type = \"int64\" },\n";

/// A copied repository (its config and a data directory in it) whose data holds `u_old`
/// (credit 700) in a snapshot, written at SIGTERM, and `u_journal` (650) in the journal only,
/// the server killed with SIGKILL.
fn profiles_in_a_snapshot_and_the_journal() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = super::registry::broken_config("features/prod/views.toml", "", "");
    let config = dir.path().join("config.toml");
    let data = dir.path().join("data");
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    load_profile(&server, "u_old", "700");
    server.terminate();
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    load_profile(&server, "u_journal", "650");
    server.kill9();
    (dir, config, data)
}

/// Repro A of the layout finding: rows in a snapshot (written at SIGTERM) and rows in the
/// journal only (SIGKILL) were written with `account_age_days`; the files drop it before the
/// next start. Both come back with their other features intact (not shifted into the gap),
/// the start says so, and the next snapshot holds them in the new form.
#[test]
fn rows_written_before_a_feature_left_the_files_are_reshaped_at_start() {
    let (dir, config, data) = profiles_in_a_snapshot_and_the_journal();

    let views = dir.path().join("features/prod/views.toml");
    let text = std::fs::read_to_string(&views).unwrap();
    assert!(text.contains(ACCOUNT_AGE_DAYS));
    std::fs::write(&views, text.replace(ACCOUNT_AGE_DAYS, "")).unwrap();

    let expected = profile_without_account_age;
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    assert_eq!(profile(&server, "u_old"), expected(700));
    assert_eq!(profile(&server, "u_journal"), expected(650));
    let logged = server.terminate();
    assert!(logged.contains("reshaped to its features now"), "{logged}");
    // The shutdown snapshot holds the new form: read again, nothing is reshaped.
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    assert_eq!(profile(&server, "u_old"), expected(700));
    assert_eq!(profile(&server, "u_journal"), expected(650));
    let logged = server.terminate();
    assert!(!logged.contains("reshaped to its features now"), "{logged}");
}

/// A feature's type changed in the files between runs: its stored values cannot be read as
/// the new type, so the start is refused, naming the view, the feature, both types and what
/// to do, and nothing is changed: with the files put back, the rows read as written.
#[test]
fn a_type_changed_in_the_files_between_runs_refuses_the_start() {
    let (dir, config, data) = profiles_in_a_snapshot_and_the_journal();

    let views = dir.path().join("features/prod/views.toml");
    let original = std::fs::read_to_string(&views).unwrap();
    let int64 = "{ name = \"account_age_days\", type = \"int64\" }";
    std::fs::write(
        &views,
        original.replace(int64, "{ name = \"account_age_days\", type = \"float64\" }"),
    )
    .unwrap();
    let refused = ServerBuilder::new()
        .config(&config)
        .data_dir(&data)
        .run_to_exit();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for needle in [
        "prod/user_profile",
        "`account_age_days` was int64 and is float64 now",
        "refusing to start",
        "quiver apply",
    ] {
        assert!(stderr.contains(needle), "{needle} in: {stderr}");
    }

    std::fs::write(&views, original).unwrap();
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    for (user, credit) in [("u_old", "700"), ("u_journal", "650")] {
        let features = profile(&server, user);
        let value = |name: &str| profile_feature(&features, name);
        assert_eq!(value("credit_score"), json!(credit), "{features:?}");
        assert_eq!(value("account_age_days"), json!("11"), "{features:?}");
        assert_eq!(value("home_country"), json!("DE"), "{features:?}");
    }
}

/// A view that holds no rows or tiles (staging's `user_experiment`: a development workspace
/// stores nothing) changed its feature's type in the files between runs: there is nothing to
/// misread, so the start takes the new form (no refusal, no reshape logged) and the rows of the
/// other views read as written.
#[test]
fn a_type_changed_in_the_files_of_an_empty_view_starts() {
    let (dir, config, data) = profiles_in_a_snapshot_and_the_journal();
    super::plan::edit(
        dir.path(),
        "features/staging/repo.toml",
        "{ name = \"score\", type = \"float64\" }",
        "{ name = \"score\", type = \"int64\" }",
    );
    // Panics with the server's stderr if the start is refused.
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    for (user, credit) in [("u_old", "700"), ("u_journal", "650")] {
        let features = profile(&server, user);
        let value = |name: &str| profile_feature(&features, name);
        assert_eq!(value("credit_score"), json!(credit), "{features:?}");
        assert_eq!(value("account_age_days"), json!("11"), "{features:?}");
    }
    let logged = server.terminate();
    assert!(!logged.contains("reshaped to its features now"), "{logged}");
}

/// An aggregating view's tiles (in the snapshot) and events (in the journal only) written
/// before its first aggregate left the files: the remaining aggregates keep their partials (the
/// tiles are laid out again, as an apply does), the events are aggregated into them, and the
/// view answers as if it had always had its new aggregates.
#[test]
fn tiles_written_before_an_aggregate_left_the_files_keep_their_partials() {
    use super::apply::{features, ingest, value_of};
    let dir = super::registry::broken_config("features/prod/views.toml", "", "");
    let config = dir.path().join("config.toml");
    let data = dir.path().join("data");
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    ingest(&server, "u_agg", 10.0, "c", 7200);
    server.terminate();
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    ingest(&server, "u_agg", 20.0, "c", 7200);
    server.kill9();

    super::plan::edit(
        dir.path(),
        "features/prod/views.toml",
        "  { column = \"amt\", function = \"mean\", window = \"1h\" },\n",
        "",
    );
    let server = ServerBuilder::new().config(&config).data_dir(&data).start();
    let answer = features(&server, "transaction_aggregates_service", "u_agg");
    let value = |name: &str| value_of(&answer, &format!("user_transaction_amount_metrics.{name}"));
    assert_eq!(value("amt_sum_1d_10m"), &json!(30.0), "{answer:?}");
    assert_eq!(value("amt_mean_1d_10m"), &json!(15.0), "{answer:?}");
    assert_eq!(value("amt_sum_3d_10m"), &json!(30.0), "{answer:?}");
    assert!(answer
        .iter()
        .all(|(name, _)| !name.ends_with("amt_mean_1h_10m")));
    let logged = server.terminate();
    assert!(logged.contains("reshaped to its features now"), "{logged}");
}
