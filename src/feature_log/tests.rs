//! The feature-log actor end to end over real files: a full queue drops and counts, files roll
//! by size, close completes them, `.part` files are never taken as complete, and both formats
//! read back (through `export`) to exactly what was offered, in order.

use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::export::{export, ExportError, ExportRequest};
use super::*;
use crate::registry::value::Value;
use crate::registry::{load_registry, LogFormat, WorkspaceSource};
use crate::serving::{
    FeatureVector, RequestValue, ServedFeature, ServedValue, ServingStatus, StoredRows,
};
use crate::store::row::Scalar;

const REPOSITORY: &str = r#"
    [[entity]]
    name = "user"
    join_keys = [{ name = "user_id", type = "string" }]
    [[batch_feature_view]]
    name = "profile"
    entities = ["user"]
    timestamp_field = "ts"
    features = [
      { name = "score", type = "int64" },
      { name = "rate", type = "float64" },
      { name = "tags", type = "array<string>" },
    ]
    [[feature_service]]
    name = "svc"
    features = [{ view = "profile" }]
    [feature_service.logging]
    log_effective_times = true
    exclude_request_context_fields = ["secret"]
"#;

struct Setup {
    dir: TempDir,
    registry: Registry,
}

impl Setup {
    fn new(extra_logging: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo.toml");
        std::fs::write(&path, format!("{REPOSITORY}\n{extra_logging}")).unwrap();
        let registry = load_registry(&[WorkspaceSource {
            name: "prod".into(),
            live: true,
            repository: path,
        }])
        .unwrap();
        Setup { dir, registry }
    }

    fn start(&self, capacity: usize) -> (FeatureLog, FeatureLogWriter) {
        self.start_bounded(capacity, QUEUE_BYTES)
    }

    fn start_bounded(&self, capacity: usize, bytes: usize) -> (FeatureLog, FeatureLogWriter) {
        let dir = Some(self.dir.path());
        let log = FeatureLog::default();
        let writer = log
            .start_with(&self.registry, dir, capacity, bytes)
            .unwrap();
        (log, writer.expect("the service logs"))
    }

    fn service(&self) -> &FeatureService {
        &self.registry.workspace("prod").unwrap().services["svc"]
    }

    fn root(&self) -> PathBuf {
        files::root(self.dir.path())
    }

    /// One GetFeatures answer for `user`, with `score` as its value.
    fn offer(&self, log: &FeatureLog, user: &str, score: i64) {
        let served = |value, status, effective_time| ServedFeature {
            value,
            status,
            effective_time,
        };
        let text = |s: &str| RequestValue::String(s.to_string().into());
        let keys = [("user_id".into(), text(user))];
        let context = [
            ("ip".into(), text("10.0.0.1")),
            ("secret".into(), text("hunter2")),
        ];
        let answer = Answer {
            vectors: vec![FeatureVector {
                // Tecton's order: rate, score, tags.
                features: vec![
                    served(
                        ServedValue::Scalar(Scalar::Float64(0.5)),
                        ServingStatus::Present,
                        Some(1_000_000),
                    ),
                    served(
                        ServedValue::Scalar(Scalar::Int64(score)),
                        ServingStatus::Present,
                        Some(1_000_000),
                    ),
                    served(ServedValue::Computed(0), ServingStatus::MissingData, None),
                ],
                store_latency: Duration::ZERO,
                store_bytes: 0,
            }],
            rows: StoredRows::default(),
            computed: vec![Value::Array(vec![Value::String("a".into())])],
            store_latency: Duration::ZERO,
            store_bytes: 0,
            partial: None,
        };
        let requests = [RequestRow {
            join_keys: &keys,
            request_context: &context,
        }];
        let alice = Principal {
            kind: crate::iam::PrincipalKind::User,
            id: "u-1".into(),
            name: "alice".into(),
            is_admin: false,
            groups: Vec::new(),
            workspace_roles: Vec::new(),
            secret_scope_roles: Vec::new(),
        };
        log.offer(self.service(), &requests, answer, &alice, || Some("req-1"));
    }

    fn export(
        &self,
        format: LogFormat,
    ) -> Result<(Vec<record::Column>, Vec<Vec<Value>>), ExportError> {
        let output = self.dir.path().join(format!("out.{}", format.name()));
        export(&ExportRequest {
            root: &self.root(),
            workspace: None,
            service: "svc",
            from: None,
            to: None,
            format,
            output: &output,
        })?;
        let read = match format {
            LogFormat::Parquet => parquet::read(&output).unwrap(),
            LogFormat::JsonLines => jsonl::read(&output).unwrap(),
        };
        Ok(read)
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scores(columns: &[record::Column], rows: &[Vec<Value>]) -> Vec<Value> {
    let i = columns
        .iter()
        .position(|c| c.name == "profile__score")
        .unwrap();
    rows.iter().map(|row| row[i].clone()).collect()
}

#[test]
fn a_closed_log_reads_back_exactly_what_was_served_in_order() {
    for format in ["parquet", "jsonl"] {
        let setup = Setup::new(&format!("format = \"{format}\""));
        let (log, writer) = setup.start(16);
        for score in 0..5 {
            setup.offer(&log, &format!("u{score}"), score);
        }
        writer.close();
        assert_eq!(
            log.counts(),
            LogCounts {
                logged: 5,
                dropped: 0,
                failed: 0
            }
        );
        let listed = files::list(&setup.root()).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(listed[0].complete && listed[0].path.to_string_lossy().ends_with(format));

        let (columns, rows) = setup.export(LogFormat::Parquet).unwrap();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "timestamp",
                "request_id",
                "workspace",
                "service",
                "principal",
                "user_id",
                "request_context",
                "profile__rate",
                "profile__rate__status",
                "profile__rate__effective_time",
                "profile__score",
                "profile__score__status",
                "profile__score__effective_time",
                "profile__tags",
                "profile__tags__status",
                "profile__tags__effective_time",
            ]
        );
        let scores: Vec<Value> = scores(&columns, &rows);
        assert_eq!(scores, (0..5).map(Value::Int64).collect::<Vec<_>>());
        let first = &rows[0];
        assert_eq!(first[1], Value::String("req-1".into()));
        assert_eq!(first[4], Value::String("alice".into()));
        assert_eq!(first[5], Value::String("u0".into()));
        // The excluded field is gone; the rest of the context is kept.
        assert_eq!(first[6], Value::String(r#"{"ip":"10.0.0.1"}"#.into()));
        assert_eq!(first[7], Value::Float64(0.5));
        assert_eq!(first[9], Value::Timestamp(1_000_000));
        assert_eq!(first[13], Value::String(r#"["a"]"#.into()));
        assert_eq!(first[14], Value::String("MISSING_DATA".into()));
        assert_eq!(first[15], Value::Null);
        // The same rows as JSON Lines.
        let (_, jsonl_rows) = setup.export(LogFormat::JsonLines).unwrap();
        assert_eq!(jsonl_rows, rows);
    }
}

#[test]
fn a_stalled_writer_never_blocks_offer_and_the_full_queue_drops_and_counts() {
    let setup = Setup::new("");
    let (log, writer) = setup.start(1);
    let (stalled_tx, stalled) = channel();
    let (release, release_rx) = channel();
    let queue = log.shared.get().unwrap().queue.clone();
    queue
        .send(Command::Stall {
            stalled: stalled_tx,
            release: release_rx,
        })
        .unwrap();
    stalled.recv().unwrap();
    // The writer is stuck "on the disk": one request fits the queue, the others are dropped.
    // Were `offer` to wait, this test would hang here.
    for score in 0..10 {
        setup.offer(&log, "u", score);
    }
    assert_eq!(
        log.counts(),
        LogCounts {
            logged: 0,
            dropped: 9,
            failed: 0
        }
    );
    release.send(()).unwrap();
    writer.close();
    assert_eq!(
        log.counts(),
        LogCounts {
            logged: 1,
            dropped: 9,
            failed: 0
        }
    );
    let (columns, rows) = setup.export(LogFormat::Parquet).unwrap();
    assert_eq!(scores(&columns, &rows), [Value::Int64(0)]);
}

/// The queue is bounded by the bytes its requests hold as well as by their number: a few
/// requests of megabytes each waiting on a slow disk must not take the memory the count allows.
#[test]
fn requests_past_the_queues_bytes_are_dropped_and_counted() {
    let setup = Setup::new("");
    let (log, writer) = setup.start_bounded(16, 1);
    for score in 0..3 {
        setup.offer(&log, "u", score);
    }
    let queued = || {
        log.shared
            .get()
            .unwrap()
            .counts
            .queued_bytes
            .load(Ordering::Relaxed)
    };
    assert_eq!(queued(), 0, "a refused request gives its bytes back");
    writer.close();
    assert_eq!(
        log.counts(),
        LogCounts {
            logged: 0,
            dropped: 3,
            failed: 0
        }
    );

    let (log, writer) = setup.start(16);
    for score in 0..3 {
        setup.offer(&log, "u", score);
    }
    writer.close();
    assert_eq!(log.counts().logged, 3);
    let queued = log
        .shared
        .get()
        .unwrap()
        .counts
        .queued_bytes
        .load(Ordering::Relaxed);
    assert_eq!(queued, 0, "the writer gives back what it wrote");
}

#[test]
fn files_roll_by_size_and_each_is_complete() {
    let setup = Setup::new("roll_size_bytes = 1");
    let (log, writer) = setup.start(16);
    for score in 0..3 {
        setup.offer(&log, "u", score);
    }
    writer.close();
    let listed = files::list(&setup.root()).unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|f| f.complete));
    for (score, file) in listed.iter().enumerate() {
        let (columns, rows) = parquet::read(&file.path).unwrap();
        assert_eq!(scores(&columns, &rows), [Value::Int64(score as i64)]);
    }
}

#[test]
fn files_roll_by_time() {
    let setup = Setup::new("roll_interval = \"1s\"");
    let (log, writer) = setup.start(16);
    setup.offer(&log, "u", 1);
    wait_for("the first file to roll", || {
        files::list(&setup.root())
            .unwrap()
            .iter()
            .any(|f| f.complete)
    });
    setup.offer(&log, "u", 2);
    writer.close();
    let listed = files::list(&setup.root()).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (columns, rows) = setup.export(LogFormat::Parquet).unwrap();
    assert_eq!(scores(&columns, &rows), [Value::Int64(1), Value::Int64(2)]);
}

#[test]
fn an_open_file_is_part_and_never_exported() {
    let setup = Setup::new("");
    let (log, writer) = setup.start(16);
    setup.offer(&log, "u", 7);
    wait_for("the row to be written", || log.counts().logged == 1);
    let listed = files::list(&setup.root()).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].complete);
    assert!(listed[0].path.to_string_lossy().ends_with(".parquet.part"));
    assert!(matches!(
        setup.export(LogFormat::Parquet),
        Err(ExportError::NoFiles(_))
    ));
    writer.close();
    let (columns, rows) = setup.export(LogFormat::Parquet).unwrap();
    assert_eq!(scores(&columns, &rows), [Value::Int64(7)]);
}

#[test]
fn logging_needs_a_data_directory_and_nothing_starts_when_no_service_logs() {
    let setup = Setup::new("");
    let error = FeatureLog::default()
        .start(&setup.registry, None)
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .contains("`svc` of workspace `prod` declares logging"),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo.toml");
    let quiet = REPOSITORY.replace("[feature_service.logging]", "");
    let quiet = quiet.replace("log_effective_times = true", "");
    let quiet = quiet.replace("exclude_request_context_fields = [\"secret\"]", "");
    std::fs::write(&path, quiet).unwrap();
    let registry = load_registry(&[WorkspaceSource {
        name: "prod".into(),
        live: true,
        repository: path,
    }])
    .unwrap();
    let log = FeatureLog::default();
    let writer = log.start(&registry, None).unwrap();
    assert!(writer.is_none() && log.shared.get().is_none());
}

#[test]
fn a_sample_rate_logs_about_that_share_of_requests() {
    let setup = Setup::new("sample_rate = 0.5");
    let (log, writer) = setup.start(2000);
    for score in 0..1000 {
        setup.offer(&log, "u", score);
    }
    writer.close();
    let counts = log.counts();
    // Binomial(1000, 0.5): outside 350..=650 with probability below 1e-20.
    assert!((350..=650).contains(&counts.logged), "{counts:?}");
    assert_eq!(counts.dropped + counts.failed, 0);
}

#[test]
fn a_schema_fits_its_service_and_not_one_an_apply_reshaped() {
    let setup = Setup::new("");
    let service = setup.service();
    let schema =
        LogSchema::of(&setup.registry, service, service.logging.as_ref().unwrap()).unwrap();
    assert!(schema.fits(service));
    let previous = Setup::new("").registry;
    let files = crate::registry::WorkspaceFiles {
        name: "prod".into(),
        live: true,
        files: vec![(
            "repo.toml".into(),
            REPOSITORY.replace(
                "{ name = \"score\", type = \"int64\" },",
                "{ name = \"score\", type = \"int64\" },\n{ name = \"level\", type = \"int64\" },",
            ),
        )],
    };
    let applied = crate::registry::build_registry(&[files], Some(&previous)).unwrap();
    assert!(!schema.fits(&applied.workspace("prod").unwrap().services["svc"]));
}
