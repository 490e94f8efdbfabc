//! Fault injection end to end. A full disk (a small tmpfs) during journal appends and during a
//! snapshot, then free space, then SIGKILL: no acknowledged write is lost. A journal that cannot
//! be cut back (append-only segments on a full disk) refuses writes with 503 and says so in
//! `/health` until it can. A flipped bit in the
//! middle of each journal (rows, directory, vault): the server refuses to start, names the exact
//! place and changes no byte; `quiver journal repair --skip-record` then lets it start with
//! every other record.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use quiver::persist::journal::parse_records;
use serde_json::{json, Value as Json};

use super::common::{Reply, Server, ServerBuilder, ADMIN_KEY, PATIENCE};
use super::persistence::{ingest, last_amount, transaction};

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`); `None`, with a message saying why, when this
    /// process may not mount (not root).
    fn mount(size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().expect("id runs");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!(
                "SKIPPED: mounting a tmpfs to fill the disk needs root; run this test as root"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        if !mounted.status.success() {
            eprintln!(
                "SKIPPED: could not mount a tmpfs: {}",
                String::from_utf8_lossy(&mounted.stderr)
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes `path` until the file system has no space left.
fn fill_disk(path: &Path) {
    let mut filler = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let block = vec![0xa5u8; chunk];
        while filler.write_all(&block).is_ok() {}
    }
    let _ = filler.sync_all();
}

fn scim_user(server: &Server, user_name: &str, padding: usize) -> Reply {
    let body =
        json!({"userName": format!("{user_name}@example.com"), "displayName": "d".repeat(padding)});
    server.request(
        "POST",
        "/api/scim/v2/Users",
        &[
            ("Authorization", &format!("Bearer {ADMIN_KEY}")),
            ("Content-Type", "application/scim+json"),
        ],
        Some(body.to_string().as_bytes()),
    )
}

fn create_scope(server: &Server, scope: &str) {
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let path = format!("/api/v1/secrets-service/scopes/{scope}");
    let created = server.request("POST", &path, &[("Authorization", &auth)], None);
    assert_eq!(created.status, 200, "{}", created.body);
}

fn tecton_put(server: &Server, scope: &str, key: &str, value: &str) -> Reply {
    server.request(
        "PUT",
        &format!("/api/v1/secrets-service/scopes/{scope}/keys/{key}"),
        &[
            ("Authorization", &format!("Tecton-key {ADMIN_KEY}")),
            ("Content-Type", "application/json"),
        ],
        Some(json!({ "value": value }).to_string().as_bytes()),
    )
}

fn tecton_get(server: &Server, scope: &str, key: &str) -> Reply {
    let auth = format!("Tecton-key {ADMIN_KEY}");
    server.request(
        "GET",
        &format!("/api/v1/secrets-service/scopes/{scope}/keys/{key}"),
        &[("Authorization", &auth)],
        None,
    )
}

fn tinybird(server: &Server, method: &str, path: &str, form: Option<&str>) -> Reply {
    server.request(
        method,
        &format!("{path}?token={ADMIN_KEY}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.map(str::as_bytes),
    )
}

/// Does the SCIM user `<user_name>@example.com` exist?
fn user_exists(server: &Server, user_name: &str) -> bool {
    let filter =
        format!("/api/scim/v2/Users?filter=userName%20eq%20%22{user_name}%40example.com%22");
    let auth = format!("Bearer {ADMIN_KEY}");
    let listed = server.request("GET", &filter, &[("Authorization", &auth)], None);
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.json()["totalResults"] == 1
}

/// An ingest request whose journal record is larger than a page, so that on a full disk it is
/// written in part before the error (the partial frame the journal must undo).
fn large_transaction(user: &str, amount: f64) -> Json {
    let mut body = transaction(user, amount);
    body["records"]["transactions"][0]["record"]["category"] = json!("c".repeat(12_000));
    body
}

#[test]
fn a_full_disk_loses_no_acknowledged_write() {
    let Some(tmpfs) = Tmpfs::mount("16m") else {
        return;
    };
    let data = tmpfs.path().join("data");
    let server = ServerBuilder::new().data_dir(&data).start();
    create_scope(&server, "disk");
    ingest(&server, "before_full", 1.0);
    assert_eq!(scim_user(&server, "before_full", 10).status, 201);
    assert_eq!(tecton_put(&server, "disk", "before_full", "v1").status, 200);
    let created = tinybird(
        &server,
        "POST",
        "/v0/secrets",
        Some("name=before_full&value=v1"),
    );
    assert_eq!(created.status, 200, "{}", created.body);

    let filler = tmpfs.path().join("filler");
    fill_disk(&filler);
    let refused = server.admin_post("/ingest", &large_transaction("while_full", 2.0));
    assert_eq!(refused.status, 500, "{}", refused.body);
    let refused = scim_user(&server, "while_full", 12_000);
    assert_eq!(refused.status, 500, "{}", refused.body);
    let refused = tecton_put(&server, "disk", "while_full", &"w".repeat(12_000));
    assert_eq!(refused.status, 500, "{}", refused.body);
    let form = format!("name=while_full&value={}", "w".repeat(8_000));
    let refused = tinybird(&server, "POST", "/v0/secrets", Some(&form));
    assert_eq!(refused.status, 500, "{}", refused.body);

    // A snapshot on the full disk fails cleanly: no temporary file, the failure listed.
    let started = server.admin_post("/admin/snapshots", &json!({}));
    let auth = format!("Tecton-key {ADMIN_KEY}");
    assert_eq!(started.status, 202, "{}", started.body);
    let id = started.json()["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + PATIENCE;
    let failure = loop {
        let listing = server
            .request("GET", "/admin/snapshots", &[("Authorization", &auth)], None)
            .json();
        if listing["lastFailure"]["id"] == id.as_str() {
            assert_eq!(listing["snapshots"], json!([]), "no snapshot was written");
            break listing["lastFailure"]["error"]
                .as_str()
                .unwrap()
                .to_string();
        }
        assert!(
            Instant::now() < deadline,
            "snapshot {id} neither failed nor finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(failure.contains("No space left on device"), "{failure}");
    let leftovers: Vec<_> = std::fs::read_dir(data.join("snapshots"))
        .map(|entries| entries.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "the temporary file is removed: {leftovers:?}"
    );

    std::fs::remove_file(&filler).unwrap();
    ingest(&server, "after_full", 3.0);
    let large = server.admin_post("/ingest", &large_transaction("large_after_full", 4.0));
    assert_eq!(large.status, 200, "{}", large.body);
    assert_eq!(scim_user(&server, "after_full", 12_000).status, 201);
    assert_eq!(tecton_put(&server, "disk", "after_full", "v3").status, 200);
    let created = tinybird(
        &server,
        "POST",
        "/v0/secrets",
        Some("name=after_full&value=v3"),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let health = server.request("GET", "/health", &[], None).json();
    assert_eq!(health["status"], "ok", "{health}");
    server.kill9();

    let server = ServerBuilder::new().data_dir(&data).start();
    for (user, amount) in [
        ("before_full", json!(1.0)),
        ("while_full", Json::Null),
        ("after_full", json!(3.0)),
        ("large_after_full", json!(4.0)),
    ] {
        assert_eq!(last_amount(&server, user), amount, "row of {user}");
    }
    assert!(user_exists(&server, "before_full"));
    assert!(
        !user_exists(&server, "while_full"),
        "a refused write changed nothing"
    );
    assert!(user_exists(&server, "after_full"));
    assert_eq!(
        tecton_get(&server, "disk", "before_full").json()["value"],
        "v1"
    );
    assert_eq!(tecton_get(&server, "disk", "while_full").status, 404);
    assert_eq!(
        tecton_get(&server, "disk", "after_full").json()["value"],
        "v3"
    );
    for (name, present) in [
        ("before_full", true),
        ("while_full", false),
        ("after_full", true),
    ] {
        let reply = tinybird(&server, "GET", &format!("/v0/secrets/{name}"), None);
        assert_eq!(
            reply.status == 200,
            present,
            "tinybird {name}: {}",
            reply.body
        );
    }
    let log = server.kill9();
    assert!(
        !log.contains("torn tail"),
        "no partial record was left behind:\n{log}"
    );
}

/// Sets (`+a`) or clears (`-a`) the append-only attribute of every segment under `journal/`:
/// appends still work, but cutting a segment back fails, as on a failing disk.
fn append_only(data: &Path, flag: &str) -> bool {
    let segments: Vec<PathBuf> = ["rows", "directory", "vault"]
        .iter()
        .flat_map(|kind| super::common::journal_segments(&data.join("journal").join(kind)))
        .collect();
    Command::new("chattr")
        .arg(flag)
        .args(&segments)
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn an_unrepairable_journal_refuses_writes_with_503_until_it_is_repaired() {
    let Some(tmpfs) = Tmpfs::mount("16m") else {
        return;
    };
    let data = tmpfs.path().join("data");
    let server = ServerBuilder::new().data_dir(&data).start();
    create_scope(&server, "disk");
    ingest(&server, "before", 1.0);
    if !append_only(&data, "+a") {
        eprintln!("SKIPPED: chattr +a is not available on this tmpfs");
        return;
    }
    let filler = tmpfs.path().join("filler");
    fill_disk(&filler);
    let refused = server.admin_post("/ingest", &large_transaction("refused", 2.0));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("journal rows is unwritable"),
        "{}",
        refused.body
    );
    let refused = scim_user(&server, "refused", 12_000);
    assert_eq!(refused.status, 503, "{}", refused.body);
    let refused = tecton_put(&server, "disk", "refused", &"w".repeat(12_000));
    assert_eq!(refused.status, 503, "{}", refused.body);
    let health = server.request("GET", "/health", &[], None).json();
    assert_eq!(health["status"], "degraded", "{health}");
    for journal in ["rows", "directory", "vault"] {
        assert_eq!(health["journals"][journal]["writable"], false, "{health}");
    }
    let ready = server.request("GET", "/readyz", &[], None);
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(ready.json()["journals"], health["journals"]);

    // Space alone is not enough: the partial record is still there, so writes stay refused.
    std::fs::remove_file(&filler).unwrap();
    let still = server.admin_post("/ingest", &transaction("still_refused", 3.0));
    assert_eq!(still.status, 503, "{}", still.body);
    let form = "name=still_refused&value=v";
    assert_eq!(
        tinybird(&server, "POST", "/v0/secrets", Some(form)).status,
        503
    );

    assert!(append_only(&data, "-a"));
    ingest(&server, "after", 4.0);
    assert_eq!(scim_user(&server, "after", 10).status, 201);
    assert_eq!(tecton_put(&server, "disk", "after", "v4").status, 200);
    let health = server.request("GET", "/health", &[], None).json();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(server.request("GET", "/readyz", &[], None).status, 200);
    server.kill9();

    let server = ServerBuilder::new().data_dir(&data).start();
    for (user, amount) in [
        ("before", json!(1.0)),
        ("refused", Json::Null),
        ("still_refused", Json::Null),
        ("after", json!(4.0)),
    ] {
        assert_eq!(last_amount(&server, user), amount, "row of {user}");
    }
    assert!(!user_exists(&server, "refused"));
    assert!(user_exists(&server, "after"));
    assert_eq!(tecton_get(&server, "disk", "refused").status, 404);
    assert_eq!(tecton_get(&server, "disk", "after").json()["value"], "v4");
    assert_eq!(
        tinybird(&server, "GET", "/v0/secrets/still_refused", None).status,
        404
    );
    let log = server.kill9();
    assert!(
        !log.contains("torn tail"),
        "no partial record was left behind:\n{log}"
    );
}

/// Every file under `dir` with its bytes (a lock file, rewritten by each start, left out).
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(contents(&path));
        } else if !path.to_string_lossy().contains("lock") {
            found.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    found
}

/// The journal segment in `dir` holding records (the one segment a fresh server wrote).
fn written_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = super::common::journal_segments(dir)
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    segments.pop().unwrap()
}

/// The `quiver` binary run with `args` to its end (an offline command), whatever data
/// directory the environment names.
pub(super) fn quiver(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .env_remove("QUIVER_DATA_DIR")
        .output()
        .unwrap()
}

/// Five writes of one journal kind, each its own journal record, then a check after the repair.
struct JournalKind {
    dir: &'static str,
    write: fn(&Server, usize),
    /// Whether write `i` is visible; `None` when it may still be (a later record restates it).
    visible: fn(&Server, usize) -> bool,
    /// Whether a skipped record's write is gone for sure (not restated by a later record).
    skipped_is_gone: bool,
}

fn journal_kinds() -> [JournalKind; 3] {
    [
        JournalKind {
            dir: "rows",
            write: |server, i| ingest(server, &format!("flip_{i}"), i as f64 + 0.5),
            visible: |server, i| last_amount(server, &format!("flip_{i}")) == json!(i as f64 + 0.5),
            skipped_is_gone: true,
        },
        JournalKind {
            dir: "directory",
            write: |server, i| assert_eq!(scim_user(server, &format!("flip_{i}"), 10).status, 201),
            visible: |server, i| user_exists(server, &format!("flip_{i}")),
            skipped_is_gone: true,
        },
        JournalKind {
            dir: "vault",
            write: |server, i| {
                if i == 0 {
                    create_scope(server, "flip");
                }
                assert_eq!(
                    tecton_put(server, "flip", &format!("k{i}"), &format!("v{i}")).status,
                    200
                );
            },
            visible: |server, i| {
                tecton_get(server, "flip", &format!("k{i}")).json()["value"] == format!("v{i}")
            },
            // A vault record may restate earlier secrets of its scope.
            skipped_is_gone: false,
        },
    ]
}

#[test]
fn a_flipped_bit_in_any_journal_stops_the_start_until_repaired() {
    for kind in &journal_kinds() {
        let data = tempfile::tempdir().unwrap();
        let server = ServerBuilder::new().data_dir(data.path()).start();
        for i in 0..5 {
            (kind.write)(&server, i);
        }
        server.kill9();

        // Flip one bit in the middle of the third of the five records.
        let segment = written_segment(&data.path().join("journal").join(kind.dir));
        let mut bytes = std::fs::read(&segment).unwrap();
        let (records, end) = parse_records(&bytes);
        assert_eq!(end, bytes.len());
        let index = records.len() - 3;
        let offset: usize = records[..index].iter().map(|r| 12 + r.len()).sum();
        bytes[offset + 12 + records[index].len() / 2] ^= 0x10;
        std::fs::write(&segment, &bytes).unwrap();
        let before = contents(data.path());

        let refused = ServerBuilder::new().data_dir(data.path()).run_to_exit();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success(),
            "{} journal: the start is refused",
            kind.dir
        );
        let location = format!(
            "segment {} has a bad record at byte {offset} (record index {index}",
            segment.display()
        );
        assert!(
            stderr.contains(&location),
            "{} journal: {location} in\n{stderr}",
            kind.dir
        );
        assert_eq!(
            contents(data.path()),
            before,
            "{} journal: no byte changed",
            kind.dir
        );

        let data_dir = data.path().to_str().unwrap();
        let check = quiver(&["journal", "check", "--data-dir", data_dir]);
        let report = String::from_utf8_lossy(&check.stdout);
        assert!(!check.status.success(), "{report}");
        assert!(
            report.contains(&format!("bad record index {index} at byte {offset}")),
            "{report}"
        );

        let skip = format!("{}:{offset}", segment.display());
        let repaired = quiver(&["journal", "repair", "--skip-record", &skip]);
        assert!(
            repaired.status.success(),
            "{}",
            String::from_utf8_lossy(&repaired.stderr)
        );
        let kept = std::fs::read_dir(segment.parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".orig-")
            })
            .count();
        assert_eq!(kept, 1, "the original segment is kept");
        assert!(quiver(&["journal", "check", "--data-dir", data_dir])
            .status
            .success());

        let server = ServerBuilder::new().data_dir(data.path()).start();
        let skipped = 5 - 3;
        for i in (0..5).filter(|i| *i != skipped) {
            assert!(
                (kind.visible)(&server, i),
                "{} journal: write {i} survives the repair",
                kind.dir
            );
        }
        if kind.skipped_is_gone {
            assert!(
                !(kind.visible)(&server, skipped),
                "{} journal: the skipped record is gone",
                kind.dir
            );
        }
    }
}

/// A log that cannot be written (stderr is `/dev/full`, as when the log file's disk is full):
/// log lines are lost, nothing else. The fmt layer used to report its failed write with
/// `eprintln!`, which panicked inside whichever thread logged: start-up, a worker, the journal's
/// writer, the directory or the vault actor (which then answered "not running" for good).
#[test]
fn a_log_that_cannot_be_written_stops_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new()
        .data_dir(data.path())
        .env("QUIVER_LOG", "debug")
        .stderr_to(Path::new("/dev/full"))
        .start();
    create_scope(&server, "logless");
    for round in 0..3 {
        let user = format!("logless_{round}");
        ingest(&server, &user, f64::from(round));
        assert_eq!(scim_user(&server, &user, 0).status, 201);
        assert_eq!(tecton_put(&server, "logless", &user, "v").status, 200);
        // "snapshot written" is logged from the snapshotter's task.
        server.snapshot();
    }
    for round in 0..3 {
        let user = format!("logless_{round}");
        assert_eq!(last_amount(&server, &user), json!(f64::from(round)));
        assert!(user_exists(&server, &user));
        assert_eq!(tecton_get(&server, "logless", &user).status, 200);
    }
    let health = server.request("GET", "/health", &[], None);
    assert_eq!(health.status, 200, "{}", health.body);
}
