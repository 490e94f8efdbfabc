//! The data directory as the operator sees it: one server at a time (the `quiver.lock` lock),
//! and key files that are never silently replaced.

use std::path::Path;
use std::process::{Command, Output};

use super::common::{repo_root, ServerBuilder};

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
