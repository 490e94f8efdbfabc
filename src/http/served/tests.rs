//! An apply whose snapshot fails and whose undo the rows journal refuses (the disk filled up):
//! the apply answers `UndoNotJournaled` and serves what it served before; the pending `Undone`
//! goes into the journal before the next write, apply or snapshot; a restart after that
//! recovers the state served (checked against a model), and a restart before it makes the apply
//! again, as the answer says. And an apply whose reshape fails in one shard (its arena cannot
//! grow): nothing of it is left, served, stored or replayed, its undo journaled or pending as
//! above; replayed at a start, such a failure refuses the start.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use actix::System;
use futures_util::future::{BoxFuture, FutureExt};

use super::*;
use crate::persist::format::{decode_rows_record, ApplyRecordV1, RowsRecord};
use crate::persist::journal::faults::Faults;
use crate::persist::journal::{inspect, parse_records};
use crate::persist::snapshot::{read_snapshot, snapshot_files, SectionData, Snapshot};
use crate::persist::{FsyncPolicy, SnapshotSource};
use crate::registry::value::Value;
use crate::secrets::crypto::MasterKey;
use crate::store::row::encode_row;
use crate::store::{profile_row, RowWrite};

/// The files on disk: `profile` with `age` and `city`.
const A: &[&str] = &["age", "city"];
/// Drops `age` (its values are lost).
const B: &[&str] = &["city"];
/// Adds `zip` to A: after B, `age` would be null; after A, it keeps its values.
const C: &[&str] = &["age", "city", "zip"];

/// Each shard's arena at its start.
const ARENA_BYTES: usize = 1 << 16;

/// A workspace whose `profile` view has `features` (`age` an int64, the others strings).
fn files(features: &[&str]) -> Vec<WorkspaceFiles> {
    let features: Vec<String> = features
        .iter()
        .map(|name| {
            let kind = if *name == "age" { "int64" } else { "string" };
            format!("{{ name = \"{name}\", type = \"{kind}\" }}")
        })
        .collect();
    let text = format!(
        r#"
[[entity]]
name = "user"
join_keys = [{{ name = "user_id", type = "string" }}]

[[batch_feature_view]]
name = "profile"
entities = ["user"]
timestamp_field = "ts"
features = [{}]
"#,
        features.join(", ")
    );
    vec![WorkspaceFiles::new(
        "ws".into(),
        true,
        [("repo.toml".into(), text)],
    )]
}

/// What the server should hold: the repository served and each key's values by feature name.
#[derive(Clone)]
struct Model {
    features: &'static [&'static str],
    rows: BTreeMap<String, BTreeMap<&'static str, Value>>,
}

impl Model {
    fn new() -> Model {
        Model {
            features: A,
            rows: BTreeMap::new(),
        }
    }

    fn write(&mut self, key: &str, values: &[(&'static str, Value)]) {
        self.rows
            .insert(key.to_string(), values.iter().cloned().collect());
    }

    /// An apply keeps the values of the features it keeps; a removed feature's are lost.
    fn apply(&mut self, features: &'static [&'static str]) {
        for values in self.rows.values_mut() {
            values.retain(|name, _| features.contains(name));
        }
        self.features = features;
    }

    /// `key`'s row as the served repository reads it (null where the model has no value).
    fn row(&self, key: &str) -> Vec<Value> {
        self.features
            .iter()
            .map(|name| self.rows[key].get(name).cloned().unwrap_or(Value::Null))
            .collect()
    }
}

/// One server's store and served repository, journaled in `data`.
struct Node {
    data: PathBuf,
    router: Router,
    served: ServedRepository,
    vault: Vault,
}

/// A disk that fills up while a snapshot is written: the store's section is taken (the rows
/// journal has moved to a new segment), then the journal's appends fail (`faults`) and so does
/// the snapshot.
struct DiskFills {
    router: Router,
    faults: Arc<Mutex<Faults>>,
}

impl SnapshotSource for DiskFills {
    fn take_section(&self) -> BoxFuture<'static, io::Result<SectionData>> {
        let (router, faults) = (self.router.clone(), Arc::clone(&self.faults));
        async move {
            faults.lock().unwrap().disk_full = true;
            router.inject_journal_faults(faults).await;
            Err(io::Error::from_raw_os_error(28))
        }
        .boxed()
    }

    fn snapshot_saved(&self, _: u64) -> BoxFuture<'static, io::Result<()>> {
        async { Ok(()) }.boxed()
    }
}

impl Node {
    /// A start on the files (A) over what `data` holds: `snapshot`'s state, then the rows
    /// journal after it, its applies made again.
    async fn start(data: &Path, snapshot: Option<&Snapshot>) -> Node {
        Node::try_start(data, snapshot, None).await.unwrap()
    }

    /// [`Node::start`], answering the store's recovery's refusal; with `growth_faults`
    /// (shard, switch), that shard's arena cannot grow from before the recovery while the
    /// switch is set.
    async fn try_start(
        data: &Path,
        snapshot: Option<&Snapshot>,
        growth_faults: Option<(usize, Arc<AtomicBool>)>,
    ) -> Result<Node, StoreError> {
        let registry = build_registry(&files(A), None).unwrap();
        let router = Router::start_with(2, ARENA_BYTES, &registry).unwrap();
        let served =
            ServedRepository::new(Served::new(Arc::new(registry), IngestTokens::default()));
        served.recover(snapshot, &router).await.unwrap();
        if let Some((shard, fails)) = growth_faults {
            router.inject_arena_growth_faults(shard, fails).await;
        }
        router
            .recover(
                snapshot,
                &data.join("rows"),
                FsyncPolicy::Always,
                &served,
                |_| {},
            )
            .await?;
        let vault = Vault::start(vec![MasterKey::random()], None, "tenant".into(), None);
        Ok(Node {
            data: data.to_path_buf(),
            router,
            served,
            vault,
        })
    }

    /// Snapshots of the store and the served repository, into `data/snapshots`.
    fn snapshotter(&self) -> Snapshotter {
        Snapshotter::new(
            self.data.join("snapshots"),
            2,
            self.router.n_shards(),
            vec![Box::new(self.router.clone()), Box::new(self.served.clone())],
        )
    }

    /// [`Node::snapshotter`] on a disk that fills up as the snapshot is written (see
    /// [`DiskFills`]).
    fn filling_snapshotter(&self, faults: &Arc<Mutex<Faults>>) -> Snapshotter {
        Snapshotter::new(
            self.data.join("snapshots"),
            2,
            self.router.n_shards(),
            vec![
                Box::new(self.router.clone()),
                Box::new(self.served.clone()),
                Box::new(DiskFills {
                    router: self.router.clone(),
                    faults: Arc::clone(faults),
                }),
            ],
        )
    }

    async fn apply(
        &self,
        features: &[&str],
        snapshotter: &Snapshotter,
    ) -> Result<Plan, ApplyError> {
        let request = ApplyRequest {
            workspaces: files(features),
            expected_hash: None,
            allow_data_loss: true,
        };
        self.served
            .apply(request, &self.router, &self.vault, Some(snapshotter))
            .await
    }

    /// Writes `key`'s `profile` row in the served repository's form.
    async fn write(&self, key: &str, values: &[(&str, Value)]) -> Result<(), StoreError> {
        let write = self.row(key, values);
        self.router.write(vec![write]).await.map(|_| ())
    }

    /// `key`'s `profile` row in the served repository's form.
    fn row(&self, key: &str, values: &[(&str, Value)]) -> RowWrite {
        let registry = Arc::clone(&self.current().registry);
        let view = registry.view_by_name("ws", "profile").unwrap();
        let row: Vec<Value> = view
            .row_columns
            .iter()
            .map(|column| {
                let value = values.iter().find(|(name, _)| *name == column.name);
                value.map_or(Value::Null, |(_, value)| value.clone())
            })
            .collect();
        let mut payload = Vec::new();
        encode_row(&row, &mut payload);
        RowWrite {
            view: view.id,
            layout: view.layout,
            key: key.as_bytes().to_vec(),
            event_time: 1,
            payload,
        }
    }

    fn current(&self) -> Arc<Served> {
        self.served.current()
    }

    /// `key`'s `profile` row as the served repository reads it: padded with nulls, or cut,
    /// to its columns (an apply that only appends or drops the last columns leaves rows as
    /// they were).
    fn read(&self, key: &str) -> Option<Vec<Value>> {
        let registry = Arc::clone(&self.current().registry);
        let columns = registry
            .view_by_name("ws", "profile")
            .unwrap()
            .row_columns
            .len();
        profile_row(&self.router, &registry, key).map(|mut values| {
            values.resize(columns, Value::Null);
            values
        })
    }

    /// Asserts that this node serves `model`'s repository and holds exactly its rows.
    async fn assert_holds(&self, model: &Model, when: &str) {
        let served = Repository::describe(&self.current().registry).content_hash();
        assert_eq!(
            served,
            hash_of(model.features),
            "{when}: the repository served"
        );
        for key in model.rows.keys() {
            assert_eq!(
                self.read(key),
                Some(model.row(key)),
                "{when}: the row of {key}"
            );
        }
        let usage: usize = self
            .router
            .usage()
            .await
            .unwrap()
            .iter()
            .map(|usage| usage.rows)
            .sum();
        assert_eq!(usage, model.rows.len(), "{when}: the rows stored");
    }
}

fn hash_of(features: &[&str]) -> String {
    Repository::describe(&build_registry(&files(features), None).unwrap()).content_hash()
}

/// The rows journal's records in `data`, in order: `applied <features>`, `undone`,
/// `layouts` or `rows`.
fn journaled(data: &Path) -> Vec<String> {
    let named = |hash: &str| {
        [A, B, C]
            .iter()
            .find(|features| hash_of(features) == hash)
            .map_or("?".to_string(), |features| features.join(","))
    };
    inspect(&data.join("rows"))
        .unwrap()
        .iter()
        .flat_map(|segment| parse_records(&std::fs::read(&segment.path).unwrap()).0)
        .map(|record| match decode_rows_record(&record).unwrap() {
            RowsRecord::Apply(ApplyRecordV1::Applied(applied)) => {
                format!("applied {}", named(&applied.hash))
            }
            RowsRecord::Apply(ApplyRecordV1::Undone) => "undone".to_string(),
            RowsRecord::Layouts(_) => "layouts".to_string(),
            RowsRecord::Rows(_) => "rows".to_string(),
        })
        .collect()
}

fn u1() -> Vec<(&'static str, Value)> {
    vec![
        ("age", Value::Int64(30)),
        ("city", Value::String("Oslo".into())),
    ]
}

fn u2() -> Vec<(&'static str, Value)> {
    vec![
        ("age", Value::Int64(41)),
        ("city", Value::String("Bergen".into())),
    ]
}

/// A copy of what `data` holds, as a crash now would leave it: the node started on it is a
/// restart, while the node that wrote `data` goes on.
fn crash(data: &Path) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
    let copied = tempfile::tempdir().unwrap();
    copy(data, copied.path());
    copied
}

/// (a) A node of A holding `u1`, whose apply of B failed at its snapshot (the disk filled up)
/// and whose undo the journal refused, the disk still full (`faults`; the journal cannot cut
/// the half-written undo back either, when `cut_fails`): the apply answers `UndoNotJournaled`,
/// and A is served with its data. Answers the model (A, u1).
async fn undo_not_journaled(data: &Path, cut_fails: bool) -> (Node, Arc<Mutex<Faults>>, Model) {
    let node = Node::start(data, None).await;
    let mut model = Model::new();
    node.write("u1", &u1()).await.unwrap();
    model.write("u1", &u1());
    let faults = Arc::new(Mutex::new(Faults {
        truncate_fails: cut_fails,
        ..Faults::default()
    }));
    let refused = node.apply(B, &node.filling_snapshotter(&faults)).await;
    match refused {
        Err(ApplyError::UndoNotJournaled {
            failed: ApplyFailure::Snapshot(snapshot),
            journal,
        }) => {
            assert!(snapshot.to_string().contains("No space left"), "{snapshot}");
            assert_eq!(journal.is_unwritable(), cut_fails, "{journal}");
        }
        other => panic!("expected UndoNotJournaled, got {other:?}"),
    }
    node.assert_holds(&model, "after the undo").await;
    assert!(node.served.applied.load().is_none(), "nothing applied");
    assert_eq!(
        journaled(data),
        ["layouts", "rows", "applied city"],
        "the undo is pending"
    );
    (node, faults, model)
}

/// (d) A restart while the undo is pending makes the apply again, as its answer says. `model`
/// is what the node serves.
async fn assert_a_restart_makes_b_again(data: &Path, model: &Model) {
    let crashed = crash(data);
    let restarted = Node::start(crashed.path(), None).await;
    let mut model = model.clone();
    model.apply(B);
    restarted
        .assert_holds(&model, "restarted with the undo pending")
        .await;
}

/// (b) and (c), the next write: refused while the disk is full (changing nothing), then
/// journaled behind the pending undo; a restart before it makes the apply again, one after it
/// serves A with both rows.
#[test]
fn the_next_write_journals_the_pending_undo_first() {
    let data = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let (node, faults, mut model) = undo_not_journaled(data.path(), false).await;
        assert_a_restart_makes_b_again(data.path(), &model).await;
        let refused = node.write("u2", &u2()).await.unwrap_err();
        assert!(
            matches!(
                refused,
                StoreError::Journal(JournalError::NotWritten { .. })
            ),
            "{refused}"
        );
        node.assert_holds(&model, "after a refused write").await;
        assert_a_restart_makes_b_again(data.path(), &model).await;

        faults.lock().unwrap().disk_full = false;
        the_write_journals_the_undo_first(&node, data.path(), &mut model).await;
    });
}

/// The next write once the disk takes it: the pending undo is journaled before its rows, and a
/// restart after it serves A with both rows.
async fn the_write_journals_the_undo_first(node: &Node, data: &Path, model: &mut Model) {
    node.write("u2", &u2()).await.unwrap();
    model.write("u2", &u2());
    node.assert_holds(model, "after the write").await;
    assert_eq!(
        journaled(data),
        [
            "layouts",
            "rows",
            "applied city",
            "undone",
            "layouts",
            "rows"
        ]
    );
    let crashed = crash(data);
    let restarted = Node::start(crashed.path(), None).await;
    restarted.assert_holds(model, "restarted").await;
}

/// The same when the journal cannot cut the half-written undo back either (unwritable): writes
/// are refused as unavailable (503) and change nothing; a restart cuts the torn record and makes
/// the apply again; once the disk is fixed, the next write repairs the journal and journals the
/// undo before its rows.
#[test]
fn an_unwritable_journal_keeps_the_undo_pending_until_it_is_repaired() {
    let data = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let (node, faults, mut model) = undo_not_journaled(data.path(), true).await;
        let refused = node.write("u2", &u2()).await.unwrap_err();
        assert!(refused.is_unavailable(), "{refused}");
        node.assert_holds(&model, "after a refused write").await;
        assert_a_restart_makes_b_again(data.path(), &model).await;

        *faults.lock().unwrap() = Faults::default();
        the_write_journals_the_undo_first(&node, data.path(), &mut model).await;
    });
}

/// (b) and (c), the next apply (C): its record follows the pending undo, so a replay makes C
/// over A, not B then C (which would lose `age`).
#[test]
fn the_next_apply_journals_the_pending_undo_first() {
    let data = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let (node, faults, mut model) = undo_not_journaled(data.path(), false).await;
        let refused = node.apply(C, &node.snapshotter()).await.map(|_| ());
        assert!(
            matches!(refused, Err(ApplyError::Store(StoreError::Journal(_)))),
            "{refused:?}"
        );
        node.assert_holds(&model, "after a refused apply").await;
        assert_a_restart_makes_b_again(data.path(), &model).await;

        faults.lock().unwrap().disk_full = false;
        let applied = node.apply(C, &node.snapshotter()).await.map(|_| ());
        assert!(applied.is_ok(), "{applied:?}");
        model.apply(C);
        node.assert_holds(&model, "after applying C").await;
        assert_eq!(
            journaled(data.path()),
            [
                "layouts",
                "rows",
                "applied city",
                "undone",
                "applied age,city,zip"
            ]
        );
        // From C's snapshot, and from the journal alone (as if that snapshot were damaged).
        let crashed = crash(data.path());
        let written = snapshot_files(&crashed.path().join("snapshots")).unwrap();
        let snapshot = read_snapshot(written.last().unwrap()).unwrap();
        let restarted = Node::start(crashed.path(), Some(&snapshot)).await;
        restarted
            .assert_holds(&model, "restarted from C's snapshot")
            .await;
        let crashed = crash(data.path());
        let replayed = Node::start(crashed.path(), None).await;
        replayed
            .assert_holds(&model, "restarted from the journal")
            .await;
    });
}

/// (b) and (c), a snapshot: the pending undo goes into the segment the snapshot closes, so
/// that a start from an older snapshot (here none) replays it with the apply.
#[test]
fn a_snapshot_journals_the_pending_undo_before_it_rotates() {
    let data = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let (node, faults, mut model) = undo_not_journaled(data.path(), false).await;
        let refused = node.snapshotter().take().await.unwrap_err();
        assert!(refused.to_string().contains("No space left"), "{refused}");
        let snapshots = node.snapshotter().dir().clone();
        assert_eq!(snapshot_files(&snapshots).unwrap(), Vec::<PathBuf>::new());
        assert_a_restart_makes_b_again(data.path(), &model).await;

        faults.lock().unwrap().disk_full = false;
        node.snapshotter().take().await.unwrap();
        assert_eq!(
            journaled(data.path()),
            ["layouts", "rows", "applied city", "undone"]
        );
        node.write("u2", &u2()).await.unwrap();
        model.write("u2", &u2());
        let crashed = crash(data.path());
        let written = snapshot_files(&crashed.path().join("snapshots")).unwrap();
        let snapshot = read_snapshot(written.last().unwrap()).unwrap();
        let restarted = Node::start(crashed.path(), Some(&snapshot)).await;
        restarted
            .assert_holds(&model, "restarted from the snapshot")
            .await;
        let crashed = crash(data.path());
        let replayed = Node::start(crashed.path(), None).await;
        replayed
            .assert_holds(&model, "restarted from the journal")
            .await;
    });
}

/// Rows enough to fill over half of each shard's arena (`ARENA_BYTES`): an apply that copies
/// `profile`'s rows to a new layout (A to B) must grow every arena.
const FILLING_KEYS: usize = 360;

/// A node of A holding `FILLING_KEYS` rows (one write) in every shard, whose shard `failing`
/// cannot grow its arena while the switch answered is set (it is). Answers the node, that
/// switch and the model (A, those rows).
async fn filled_node(data: &Path, failing: usize) -> (Node, Arc<AtomicBool>, Model) {
    let node = Node::start(data, None).await;
    let mut model = Model::new();
    let city = Value::String("x".repeat(200));
    let rows = (0..FILLING_KEYS)
        .map(|i| {
            let key = format!("filler-{i}");
            let values = [("age", Value::Int64(i as i64)), ("city", city.clone())];
            model.write(&key, &values);
            node.row(&key, &values)
        })
        .collect();
    node.router.write(rows).await.unwrap();
    for usage in node.router.usage().await.unwrap() {
        let (used, mapped) = (usage.arena_used_bytes, usage.arena_mapped_bytes);
        assert!(
            used < mapped && used * 19 / 10 > mapped,
            "the copies must grow the arena: {used} of {mapped} bytes used"
        );
    }
    let fails = Arc::new(AtomicBool::new(true));
    (node.router)
        .inject_arena_growth_faults(failing, Arc::clone(&fails))
        .await;
    (node, fails, model)
}

/// An apply whose reshape fails in one shard (its arena cannot grow for the copies; the first
/// shard, so the other reshaped after it failed) leaves nothing of itself: the answer says so,
/// A is served with every row, a write to the view is taken (not refused as made for a layout
/// the apply replaced), the journal holds the apply and its undo, and a restart serves A with
/// the rows. Once the shard can grow, the same apply goes through.
#[test]
fn an_apply_whose_reshape_fails_in_a_shard_leaves_nothing_of_itself() {
    let data = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let (node, fails, mut model) = filled_node(data.path(), 0).await;
        let refused = node.apply(B, &node.snapshotter()).await;
        match refused {
            Err(ApplyError::NotApplied(ApplyFailure::Reshape { shard: 0, error })) => {
                assert_eq!(error.raw_os_error(), Some(12), "{error}")
            }
            other => panic!("expected a failed reshape, got {other:?}"),
        }
        node.assert_holds(&model, "after the failed apply").await;
        assert!(node.served.applied.load().is_none(), "nothing applied");
        assert_eq!(
            journaled(data.path()),
            ["layouts", "rows", "applied city", "undone"]
        );
        node.write("u1", &u1()).await.unwrap();
        model.write("u1", &u1());
        node.assert_holds(&model, "after a write").await;
        let crashed = crash(data.path());
        let restarted = Node::start(crashed.path(), None).await;
        restarted.assert_holds(&model, "restarted").await;

        fails.store(false, Ordering::Relaxed);
        let applied = node.apply(B, &node.snapshotter()).await.map(|_| ());
        assert!(applied.is_ok(), "{applied:?}");
        model.apply(B);
        node.assert_holds(&model, "after applying B").await;
    });
}

/// An apply whose reshape fails in one shard and whose undo fails in another (it stopped: the
/// undo's arena room is held, so memory cannot fail it) says that A is served again but the
/// store is left inconsistent until a restart, and `/health`'s cell says so too; the journal
/// holds the undo, so a restart serves A with every row.
#[test]
fn an_apply_whose_undo_fails_in_a_shard_says_the_store_is_inconsistent() {
    let data = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let (node, _, model) = filled_node(data.path(), 0).await;
        node.router.stop_shard(1).await;
        let said = match node.apply(B, &node.snapshotter()).await {
            Err(
                error @ ApplyError::NotTakenBack {
                    failed: ApplyFailure::Reshape { shard: 0, .. },
                    undo: StoreError::UndoFailed { shard: 1, .. },
                },
            ) => error.to_string(),
            other => panic!("expected an undo failed in shard 1, got {other:?}"),
        };
        for part in ["not applied", "left inconsistent", "restart the server"] {
            assert!(said.contains(part), "{part:?} in {said}");
        }
        assert!(node.served.applied.load().is_none(), "nothing applied");
        assert!(node.router.shards_inconsistent().is_some());
        assert_eq!(
            journaled(data.path()),
            ["layouts", "rows", "applied city", "undone"]
        );
        let crashed = crash(data.path());
        let restarted = Node::start(crashed.path(), None).await;
        restarted.assert_holds(&model, "restarted").await;
        assert_eq!(restarted.router.shards_inconsistent(), None);
    });
}

/// The same when the journal also refuses the undo's record (an fsync fails): the answer says
/// so, as `UndoNotJournaled` does (a restart before that record is journaled makes the apply
/// again, not the one before), and `/health`'s cell too; and a restart does make it again.
#[test]
fn an_apply_whose_undo_fails_in_a_shard_and_is_not_journaled_says_so() {
    let data = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let (node, _, model) = filled_node(data.path(), 0).await;
        let faults = Faults {
            syncs_before_failures: 1,
            sync_failures: 1,
            ..Faults::default()
        };
        (node.router)
            .inject_journal_faults(Arc::new(Mutex::new(faults)))
            .await;
        node.router.stop_shard(1).await;
        let said = match node.apply(B, &node.snapshotter()).await {
            Err(
                error @ ApplyError::NotTakenBack {
                    undo:
                        StoreError::UndoFailed {
                            shard: 1,
                            unjournaled: Some(_),
                            ..
                        },
                    ..
                },
            ) => error.to_string(),
            other => panic!("expected an undo failed in shard 1 and not journaled, got {other:?}"),
        };
        for part in [
            "left inconsistent",
            "the journal refused the record of the undo too",
            "a restart before then makes the apply again",
        ] {
            assert!(said.contains(part), "{part:?} in {said}");
        }
        let reported = node.router.shards_inconsistent().unwrap();
        assert!(reported.contains("makes the apply again"), "{reported}");
        assert_eq!(journaled(data.path()), ["layouts", "rows", "applied city"]);
        assert_a_restart_makes_b_again(data.path(), &model).await;
    });
}

/// The same when the journal takes the apply's record and refuses its undo's (an fsync fails):
/// the answer says so, A is served with every row, a restart before the next write makes the
/// apply again (as the answer says), and the next write journals the undo before its rows.
#[test]
fn an_apply_whose_reshape_fails_and_whose_undo_is_not_journaled_says_so() {
    let data = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let (node, _, mut model) = filled_node(data.path(), 1).await;
        let faults = Faults {
            syncs_before_failures: 1,
            sync_failures: 1,
            ..Faults::default()
        };
        (node.router)
            .inject_journal_faults(Arc::new(Mutex::new(faults)))
            .await;
        let refused = node.apply(B, &node.snapshotter()).await;
        match refused {
            Err(ApplyError::UndoNotJournaled {
                failed: ApplyFailure::Reshape { shard: 1, .. },
                journal,
            }) => assert!(!journal.is_unwritable(), "{journal}"),
            other => panic!("expected a failed reshape, its undo unjournaled, got {other:?}"),
        }
        node.assert_holds(&model, "after the undo").await;
        assert_eq!(
            journaled(data.path()),
            ["layouts", "rows", "applied city"],
            "the undo is pending"
        );
        assert_a_restart_makes_b_again(data.path(), &model).await;
        the_write_journals_the_undo_first(&node, data.path(), &mut model).await;
    });
}

/// A start whose replay of an apply fails in a shard (its arena cannot grow for the copies) is
/// refused, naming the apply and the shard.
#[test]
fn a_replayed_apply_whose_reshape_fails_refuses_the_start() {
    let data = tempfile::tempdir().unwrap();
    System::new().block_on(async {
        let (node, fails, _) = filled_node(data.path(), 1).await;
        fails.store(false, Ordering::Relaxed);
        node.apply(B, &node.snapshotter()).await.unwrap();
        let crashed = crash(data.path());
        let fails = Arc::new(AtomicBool::new(true));
        let refused = Node::try_start(crashed.path(), None, Some((1, fails))).await;
        match refused.err() {
            Some(StoreError::Reapply { hash, reason }) => {
                assert_eq!(hash, hash_of(B));
                assert!(
                    reason.contains("shard 1 could not reshape its data"),
                    "{reason}"
                );
            }
            other => panic!("expected the start refused, got {other:?}"),
        }
    });
}
