//! What an apply does to stored data, view by view ([`plan_reshapes`]): the same rules as
//! `registry::plan` rates for the reviewer, computed here from the two registries so that the
//! shards can carry them out. A view keeps its id (and so its shard for every key) across the
//! apply; only a view whose stored form changed is touched:
//! - gone, turned realtime, new join keys, a new tile interval or compaction, turned into or out
//!   of an aggregating view: cleared;
//! - a row view: columns matched by name and type (a new one reads null until written);
//! - an aggregating view at the same interval: aggregates matched by function and input column
//!   (a new window over a partial the tiles keep is answered from them at once).

use super::layouts::appends_only;
use super::shard::ViewReshape;
use crate::registry::aggregation::AggregationSpec;
use crate::registry::{FeatureView, Registry, ViewId, ViewKind};

/// The reshape of every stored view of `before` whose stored form `after` changes.
pub fn plan_reshapes(before: &Registry, after: &Registry) -> Vec<(ViewId, ViewReshape)> {
    before
        .views()
        .filter(|old| !matches!(old.kind, ViewKind::Realtime(_)))
        .filter_map(|old| {
            let reshape = match after.find_view(old.id) {
                None => ViewReshape::Clear,
                Some(new) if new.layout == old.layout => return None,
                Some(new) => reshape_view(old, new)?,
            };
            Some((old.id, reshape))
        })
        .collect()
}

/// How `old`'s stored data becomes `new`'s, or `None` when it is already in `new`'s form.
fn reshape_view(old: &FeatureView, new: &FeatureView) -> Option<ViewReshape> {
    if matches!(new.kind, ViewKind::Realtime(_)) || new.join_keys != old.join_keys {
        return Some(ViewReshape::Clear);
    }
    match (&old.aggregation, &new.aggregation) {
        (None, None) => {
            let map: Vec<Option<usize>> = new
                .row_columns
                .iter()
                .map(|column| old.row_columns.iter().position(|c| c == column))
                .collect();
            (!appends_only(&map, old.row_columns.len())).then_some(ViewReshape::Columns(map))
        }
        (Some(old_spec), Some(new_spec))
            if old_spec.interval == new_spec.interval
                && old_spec.compaction == new_spec.compaction =>
        {
            Some(ViewReshape::Aggregates(
                (0..new_spec.aggregates.len())
                    .map(|i| same_partial(old_spec, new_spec, i))
                    .collect(),
            ))
        }
        _ => Some(ViewReshape::Clear),
    }
}

/// The old aggregate whose partial is new aggregate `i`'s: the same function over the same
/// input column.
fn same_partial(old: &AggregationSpec, new: &AggregationSpec, i: usize) -> Option<usize> {
    let wanted = &new.aggregates[i];
    let column = &new.inputs[wanted.input];
    old.aggregates
        .iter()
        .position(|a| a.function == wanted.function && &old.inputs[a.input] == column)
}

#[cfg(test)]
mod tests {
    use actix::System;

    use super::*;
    use crate::registry::value::Value;
    use crate::registry::{build_registry, WorkspaceFiles};
    use crate::store::row::{decode_row, encode_row};
    use crate::store::tiles::AggregateMask;
    use crate::store::{Lookup, ReadContext, Router, RowWrite, StoreError};

    /// What a reshape journals; these stores have no journal.
    fn applied() -> crate::persist::format::RepositoryV1 {
        crate::persist::format::RepositoryV1 {
            hash: "test".into(),
            workspaces: Vec::new(),
        }
    }

    fn registry(text: &str, previous: Option<&Registry>) -> Registry {
        let files = WorkspaceFiles::new("ws".into(), true, [("repo.toml".into(), text.into())]);
        build_registry(&[files], previous).unwrap()
    }

    const BASE: &str = r#"
[[entity]]
name = "user"
join_keys = [{ name = "user_id", type = "string" }]

[[push_source]]
name = "events"
schema = [{ name = "user_id", type = "string" }, { name = "amt", type = "float64" }, { name = "ts", type = "timestamp" }]

[[batch_feature_view]]
name = "profile"
entities = ["user"]
timestamp_field = "ts"
features = [{ name = "age", type = "int64" }, { name = "city", type = "string" }]

[[stream_feature_view]]
name = "spend"
entities = ["user"]
source = "events"
timestamp_field = "ts"
aggregation_interval = "1h"
aggregations = [{ column = "amt", function = "sum", window = "1d" }]
"#;

    fn reshape_of(before: &Registry, after: &Registry, view: &str) -> Option<ViewReshape> {
        let id = before.view_by_name("ws", view).unwrap().id;
        plan_reshapes(before, after)
            .into_iter()
            .find(|(v, _)| *v == id)
            .map(|(_, r)| r)
    }

    #[test]
    fn ids_stay_and_each_change_reshapes_as_planned() {
        let before = registry(BASE, None);
        // A view added before the others keeps their ids.
        let text = BASE
            .replace(
                "[[batch_feature_view]]\nname = \"profile\"",
                "[[batch_feature_view]]\nname = \"aaa\"\nentities = [\"user\"]\ntimestamp_field = \"ts\"\nfeatures = [{ name = \"x\", type = \"int64\" }]\n\n[[batch_feature_view]]\nname = \"profile\"",
            )
            .replace(
                "features = [{ name = \"age\", type = \"int64\" }, { name = \"city\"",
                "features = [{ name = \"score\", type = \"int64\" }, { name = \"age\", type = \"int64\" }, { name = \"city\"",
            )
            .replace(
                "window = \"1d\" }]",
                "window = \"1d\" }, { column = \"amt\", function = \"sum\", window = \"7d\" }]",
            );
        let after = registry(&text, Some(&before));
        for name in ["profile", "spend"] {
            assert_eq!(
                before.view_by_name("ws", name).unwrap().id,
                after.view_by_name("ws", name).unwrap().id
            );
        }
        assert_eq!(
            reshape_of(&before, &after, "profile"),
            Some(ViewReshape::Columns(vec![None, Some(0), Some(1)]))
        );
        assert_eq!(
            reshape_of(&before, &after, "spend"),
            Some(ViewReshape::Aggregates(vec![Some(0), Some(0)]))
        );
        // Removing a view clears it; an unchanged repository touches nothing.
        let without = registry(
            &text.replace("name = \"spend\"", "name = \"spend2\""),
            Some(&after),
        );
        assert_eq!(
            reshape_of(&after, &without, "spend"),
            Some(ViewReshape::Clear)
        );
        assert!(plan_reshapes(&after, &registry(&text, Some(&after))).is_empty());
    }

    #[test]
    fn a_new_interval_clears_and_an_appended_column_needs_no_rewrite() {
        let before = registry(BASE, None);
        let after = registry(
            &BASE.replace("\"1h\"", "\"2h\"").replace(
                "{ name = \"city\", type = \"string\" }",
                "{ name = \"city\", type = \"string\" }, { name = \"zip\", type = \"string\" }",
            ),
            Some(&before),
        );
        assert_eq!(
            reshape_of(&before, &after, "spend"),
            Some(ViewReshape::Clear)
        );
        assert_eq!(reshape_of(&before, &after, "profile"), None);
        assert_ne!(
            before.view_by_name("ws", "profile").unwrap().layout,
            after.view_by_name("ws", "profile").unwrap().layout
        );
    }

    #[test]
    fn old_layouts_stay_readable_until_retired_and_old_writes_are_refused_and_unpublished() {
        let before = registry(BASE, None);
        let text = BASE.replace(
            "features = [{ name = \"age\", type = \"int64\" },",
            "features = [{ name = \"score\", type = \"int64\" }, { name = \"age\", type = \"int64\" },",
        );
        let after = registry(&text, Some(&before));
        let old = before.view_by_name("ws", "profile").unwrap();
        let new = after.view_by_name("ws", "profile").unwrap();
        let row = |layout| {
            let mut payload = Vec::new();
            encode_row(
                &[Value::Int64(30), Value::String("Oslo".into())],
                &mut payload,
            );
            RowWrite {
                view: old.id,
                layout,
                key: b"u1".to_vec(),
                event_time: 1,
                payload,
            }
        };
        System::new().block_on(async {
            let router = Router::start_with(2, 4096, &before).unwrap();
            router.write(vec![row(old.layout)]).await.unwrap();
            let read = |layout| {
                let lookup = Lookup::new(old.id, layout, b"u1".to_vec(), AggregateMask::ALL);
                let context = ReadContext {
                    now: 10,
                    leading_edge: None,
                    timed: false,
                };
                let read = router.read(&[lookup], context);
                read.row(0).map(|row| decode_row(row.payload).unwrap())
            };
            router
                .reshape(&after, plan_reshapes(&before, &after), &applied())
                .await
                .unwrap();
            let (age, city) = (Value::Int64(30), Value::String("Oslo".into()));
            assert_eq!(read(old.layout), Some(vec![age.clone(), city.clone()]));
            assert_eq!(
                read(new.layout),
                Some(vec![Value::Null, age.clone(), city.clone()])
            );
            let refused = router.write(vec![row(old.layout)]).await;
            assert!(matches!(refused, Err(StoreError::RepositoryChanged(id)) if id == old.id));
            // Nor are they published to a cluster's log under the new forms.
            let unpublished = router.encode_record(&[row(old.layout)]);
            assert!(matches!(unpublished, Err(StoreError::RepositoryChanged(id)) if id == old.id));
            assert!(router.encode_record(&[row(new.layout)]).is_ok());

            router.retire_layouts().await.unwrap();
            assert_eq!(read(old.layout), None);
            assert_eq!(read(new.layout), Some(vec![Value::Null, age, city]));
            let usage = router.usage().await.unwrap();
            assert_eq!(usage.iter().map(|u| u.rows).sum::<usize>(), 1);
            assert!(usage.iter().all(|u| u.arena_dead_bytes == 0));
        });
    }
    /// The node that applies both reads a feature one apply removed and a later one added
    /// back null for the rows written before, even when it was the last column (whose values
    /// a reshape once left in the rows, unread until the column came back).
    #[test]
    fn a_last_feature_removed_and_added_back_reads_null() {
        let before = registry(BASE, None);
        let without = BASE.replace(", { name = \"city\", type = \"string\" }", "");
        assert_ne!(without, BASE);
        let middle = registry(&without, Some(&before));
        let after = registry(BASE, Some(&middle));
        let old = before.view_by_name("ws", "profile").unwrap();
        let new = after.view_by_name("ws", "profile").unwrap();
        let mut payload = Vec::new();
        encode_row(
            &[Value::Int64(30), Value::String("Oslo".into())],
            &mut payload,
        );
        let row = RowWrite {
            view: old.id,
            layout: old.layout,
            key: b"u1".to_vec(),
            event_time: 1,
            payload,
        };
        System::new().block_on(async {
            let router = Router::start_with(2, 4096, &before).unwrap();
            router.write(vec![row]).await.unwrap();
            for (from, to) in [(&before, &middle), (&middle, &after)] {
                router
                    .reshape(to, plan_reshapes(from, to), &applied())
                    .await
                    .unwrap();
                router.retire_layouts().await.unwrap();
            }
            let lookup = Lookup::new(old.id, new.layout, b"u1".to_vec(), AggregateMask::ALL);
            let context = ReadContext {
                now: 10,
                leading_edge: None,
                timed: false,
            };
            let read = router.read(&[lookup], context);
            let mut row = decode_row(read.row(0).unwrap().payload).unwrap();
            // Rows are read padded with nulls.
            row.resize(2, Value::Null);
            assert_eq!(row, vec![Value::Int64(30), Value::Null]);
        });
    }
    /// snap12's exports walk the arena's records, which an apply's reshape leaves in place for
    /// the older requests: an export cut before the reshape holds the old layout's rows, one
    /// cut after it (the apply's own snapshot) the new layout's only, and a restore keys them
    /// under the restoring repository's current layout and counts them for the console.
    #[test]
    fn exports_across_a_reshape_are_cuts_of_one_layout_and_restore_counted() {
        use crate::persist::format::{decode_rows_v2, row_records, RowRecordV2};
        use crate::persist::snapshot::through_a_file;
        use crate::persist::{FsyncPolicy, SnapshotSource};
        use crate::store::writer::StartSnapshot;

        const KEYS: usize = 200;
        let before = registry(BASE, None);
        let text = BASE.replace(
            "features = [{ name = \"age\", type = \"int64\" },",
            "features = [{ name = \"score\", type = \"int64\" }, { name = \"age\", type = \"int64\" },",
        );
        let after = registry(&text, Some(&before));
        let view = before.view_by_name("ws", "profile").unwrap();
        let (view, old_layout) = (view.id, view.layout);
        let rows = (0..KEYS).map(|i| {
            let mut payload = Vec::new();
            encode_row(
                &[Value::Int64(i as i64), Value::String("Oslo".into())],
                &mut payload,
            );
            RowWrite {
                view,
                layout: old_layout,
                key: format!("u{i}").into_bytes(),
                event_time: 1,
                payload,
            }
        });
        // Every exported record: (view, number of columns).
        fn columns<'a>(records: impl Iterator<Item = RowRecordV2<'a>>) -> Vec<(u32, usize)> {
            records
                .map(|record| (record.view, decode_row(record.payload).unwrap().len()))
                .collect()
        }
        let section_columns = |payload: &[u8]| {
            let (_, shards) = decode_rows_v2(payload).unwrap();
            columns(shards.into_iter().flat_map(row_records).map(Result::unwrap))
        };
        System::new().block_on(async {
            let router = Router::start_with(2, 4096, &before).unwrap();
            router.write(rows.collect()).await.unwrap();
            // The export is asked for first; the reshape queues behind it and lands while its
            // loan of the arena is held.
            let applied = applied();
            let (started, reshaped) = futures_util::join!(
                router.writer.send(StartSnapshot),
                router.reshape(&after, plan_reshapes(&before, &after), &applied)
            );
            reshaped.unwrap();
            let (_, _, receivers) = started.unwrap().unwrap();
            let mut records = Vec::new();
            for receiver in receivers {
                let export = receiver.await.unwrap();
                records.extend(columns(export.records.live_records()));
            }
            assert_eq!(records, vec![(view, 2); KEYS], "the cut before the apply");

            // The apply's own snapshot: after the reshape, before the old layout retires.
            let snapshot = through_a_file(&[router.take_section().await.unwrap()]);
            assert_eq!(
                section_columns(&snapshot.sections[0].payload),
                vec![(view, 3); KEYS]
            );

            router.retire_layouts().await.unwrap();
            let restored = Router::start_with(3, 4096, &after).unwrap();
            let journal = tempfile::tempdir().unwrap();
            restored
                .recover(
                    Some(&snapshot),
                    journal.path(),
                    FsyncPolicy::Never,
                    &crate::store::recovery::NoApplies,
                    |_| {},
                )
                .await
                .unwrap();
            for store in [&router, &restored] {
                assert_eq!(store.view_usage().await.unwrap()[view as usize].rows, KEYS);
            }
            let layout = after.view(view).layout;
            let lookup = Lookup::new(view, layout, b"u7".to_vec(), AggregateMask::ALL);
            let context = ReadContext {
                now: 10,
                leading_edge: None,
                timed: false,
            };
            let read = restored.read(&[lookup], context);
            assert_eq!(
                decode_row(read.row(0).unwrap().payload).unwrap(),
                vec![Value::Null, Value::Int64(7), Value::String("Oslo".into())]
            );
        });
    }

    /// An apply whose snapshot failed undoes its reshape: the old layout reads and takes writes
    /// as before, the new one holds nothing and refuses writes, a removed feature's values are
    /// back, the console counts one row a key, and a snapshot holds each key once in the old
    /// form. The same apply then goes through as if the first had never been tried.
    #[test]
    fn an_undone_reshape_leaves_the_store_as_it_was() {
        use crate::persist::format::{decode_rows_v2, row_records};
        use crate::persist::SnapshotSource;

        let before = registry(BASE, None);
        // `age` removed, `score` added first: every row's columns move.
        let text = BASE.replace(
            "features = [{ name = \"age\", type = \"int64\" },",
            "features = [{ name = \"score\", type = \"int64\" },",
        );
        let after = registry(&text, Some(&before));
        let old = before.view_by_name("ws", "profile").unwrap();
        let new = after.view_by_name("ws", "profile").unwrap();
        let row = |layout, key: &str, age| {
            let mut payload = Vec::new();
            encode_row(
                &[Value::Int64(age), Value::String("Oslo".into())],
                &mut payload,
            );
            RowWrite {
                view: old.id,
                layout,
                key: key.as_bytes().to_vec(),
                event_time: 1,
                payload,
            }
        };
        System::new().block_on(async {
            let router = Router::start_with(2, 4096, &before).unwrap();
            let keys: Vec<String> = (0..50).map(|i| format!("u{i}")).collect();
            let rows = keys.iter().map(|k| row(old.layout, k, 30)).collect();
            router.write(rows).await.unwrap();
            let read = |layout, key: &str| {
                let lookup =
                    Lookup::new(old.id, layout, key.as_bytes().to_vec(), AggregateMask::ALL);
                let context = ReadContext {
                    now: 10,
                    leading_edge: None,
                    timed: false,
                };
                let read = router.read(&[lookup], context);
                read.row(0).map(|row| decode_row(row.payload).unwrap())
            };
            let undo = router
                .reshape(&after, plan_reshapes(&before, &after), &applied())
                .await
                .unwrap();
            assert_eq!(
                read(new.layout, "u1"),
                Some(vec![Value::Null, Value::String("Oslo".into())])
            );
            router.undo_reshape(undo).await.unwrap();

            let (age, city) = (Value::Int64(30), Value::String("Oslo".into()));
            assert_eq!(
                read(old.layout, "u1"),
                Some(vec![age.clone(), city.clone()])
            );
            assert_eq!(read(new.layout, "u1"), None);
            let refused = router.write(vec![row(new.layout, "u1", 31)]).await;
            assert!(matches!(refused, Err(StoreError::RepositoryChanged(_))));
            router.write(vec![row(old.layout, "u2", 32)]).await.unwrap();
            assert_eq!(
                read(old.layout, "u2"),
                Some(vec![Value::Int64(32), city.clone()])
            );
            assert_eq!(router.view_usage().await.unwrap()[old.id as usize].rows, 50);
            let section = router.take_section().await.unwrap();
            let mut payload = section.payload.to_vec();
            for part in &section.payload_tail {
                for piece in part.pieces() {
                    payload.extend_from_slice(piece);
                }
            }
            let (_, shards) = decode_rows_v2(&payload).unwrap();
            let records: Vec<usize> = shards
                .into_iter()
                .flat_map(row_records)
                .map(|record| decode_row(record.unwrap().payload).unwrap().len())
                .collect();
            assert_eq!(records, vec![2; 50], "each key once, in the old form");

            // Applied again, as if for the first time; old data retires and compacts away.
            let _ = router
                .reshape(&after, plan_reshapes(&before, &after), &applied())
                .await
                .unwrap();
            router.retire_layouts().await.unwrap();
            assert_eq!(read(new.layout, "u2"), Some(vec![Value::Null, city]));
            let usage = router.usage().await.unwrap();
            assert_eq!(usage.iter().map(|u| u.rows).sum::<usize>(), 50);
            assert!(usage.iter().all(|u| u.arena_dead_bytes == 0));
        });
    }

    /// Writes made between an apply's reshape and its undo (while the apply's snapshot is
    /// written, say) cannot take the arena room the reshape reserved for its undo: with growth
    /// failing, they fail for want of memory once only that room is left, and the undo still
    /// goes through in every shard (no shard left on the apply's table), the rows written
    /// meanwhile kept.
    #[test]
    fn writes_between_a_reshape_and_its_undo_leave_the_undo_its_room() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        const KEYS: usize = 60;
        const SHARDS: usize = 2;
        let tags = r#"
[[batch_feature_view]]
name = "tags"
entities = ["user"]
timestamp_field = "ts"
features = [{ name = "tag", type = "string" }]
"#;
        let before = registry(&format!("{BASE}{tags}"), None);
        // `age` removed, `score` added first: every profile row is copied; `tags` stays.
        let text = BASE.replace(
            "features = [{ name = \"age\", type = \"int64\" },",
            "features = [{ name = \"score\", type = \"int64\" },",
        );
        let after = registry(&format!("{text}{tags}"), Some(&before));
        let (old, new) = (
            before.view_by_name("ws", "profile").unwrap(),
            after.view_by_name("ws", "profile").unwrap(),
        );
        let tags = after.view_by_name("ws", "tags").unwrap();
        assert_eq!(
            before.view_by_name("ws", "tags").unwrap().layout,
            tags.layout
        );
        let row = |view: &crate::registry::FeatureView, key: String, values: &[Value]| {
            let mut payload = Vec::new();
            encode_row(values, &mut payload);
            RowWrite {
                view: view.id,
                layout: view.layout,
                key: key.into_bytes(),
                event_time: 1,
                payload,
            }
        };
        let city = Value::String("Oslo".into());
        System::new().block_on(async {
            let router = Router::start_with(SHARDS, 4096, &before).unwrap();
            let read = |view: ViewId, layout, key: &str| {
                let lookup = Lookup::new(view, layout, key.as_bytes().to_vec(), AggregateMask::ALL);
                let context = ReadContext {
                    now: 10,
                    leading_edge: None,
                    timed: false,
                };
                let read = router.read(&[lookup], context);
                read.row(0).map(|row| decode_row(row.payload).unwrap())
            };
            let profiles = (0..KEYS).map(|i| {
                row(
                    old,
                    format!("u{i}"),
                    &[Value::Int64(i as i64), city.clone()],
                )
            });
            router.write(profiles.collect()).await.unwrap();
            let undo = router
                .reshape(&after, plan_reshapes(&before, &after), &applied())
                .await
                .unwrap();

            // No more memory: writes of the view the apply leaves as it was go on until the
            // arenas are full, one row at a time.
            let fails = Arc::new(AtomicBool::new(true));
            for shard in 0..SHARDS {
                router
                    .inject_arena_growth_faults(shard, Arc::clone(&fails))
                    .await;
            }
            let tag = |i: usize| Value::String(format!("tag number {i} of the rows written"));
            let mut written = Vec::new();
            let refused = loop {
                let i = written.len();
                assert!(i < 10_000, "the arenas never filled");
                match router
                    .write(vec![row(tags, format!("t{i}"), &[tag(i)])])
                    .await
                {
                    Ok(outcome) => assert_eq!(outcome.stored, 1),
                    Err(error) => break error,
                }
                written.push(format!("t{i}"));
            };
            assert!(
                matches!(&refused, StoreError::Io(error) if error.raw_os_error() == Some(12)),
                "refused for want of memory: {refused}"
            );
            assert!(!written.is_empty(), "writes go on beside the room held");

            router.undo_reshape(undo).await.unwrap();
            for i in 0..KEYS {
                let key = format!("u{i}");
                assert_eq!(
                    read(old.id, old.layout, &key),
                    Some(vec![Value::Int64(i as i64), city.clone()]),
                    "{key} as before the apply"
                );
                // A shard whose undo failed would still hold the apply's layout.
                assert_eq!(read(new.id, new.layout, &key), None, "{key} taken back");
            }
            for (i, key) in written.iter().enumerate() {
                assert_eq!(read(tags.id, tags.layout, key), Some(vec![tag(i)]));
            }
            let usage = router.view_usage().await.unwrap();
            assert_eq!(usage[old.id as usize].rows, KEYS);
            assert_eq!(usage[tags.id as usize].rows, written.len());

            // Memory again: the store takes writes of the old form, as before the apply.
            fails.store(false, Ordering::Relaxed);
            router
                .write(vec![row(
                    old,
                    "u0".into(),
                    &[Value::Int64(99), city.clone()],
                )])
                .await
                .unwrap();
            assert_eq!(
                read(old.id, old.layout, "u0"),
                Some(vec![Value::Int64(99), city.clone()])
            );
        });
    }

    /// An undo that fails in a shard (one that stopped: the reshape held the undo's room, so
    /// memory cannot fail it) says so: the answer and `/health`'s cell say the shards hold
    /// different tables until a restart, and no snapshot keeps them so.
    #[test]
    fn an_undo_that_fails_in_a_shard_says_the_store_is_inconsistent() {
        use crate::persist::SnapshotSource;

        let before = registry(BASE, None);
        let text = BASE.replace(
            "features = [{ name = \"age\", type = \"int64\" },",
            "features = [{ name = \"score\", type = \"int64\" },",
        );
        let after = registry(&text, Some(&before));
        System::new().block_on(async {
            let router = Router::start_with(2, 4096, &before).unwrap();
            let undo = router
                .reshape(&after, plan_reshapes(&before, &after), &applied())
                .await
                .unwrap();
            assert_eq!(router.shards_inconsistent(), None);
            router.stop_shard(1).await;
            let failed = router.undo_reshape(undo).await.unwrap_err();
            assert!(
                matches!(failed, StoreError::UndoFailed { shard: 1, .. }),
                "{failed:?}"
            );
            let said = failed.to_string();
            assert!(
                said.contains("left inconsistent") && said.contains("restart the server"),
                "{said}"
            );
            assert_eq!(router.shards_inconsistent(), Some(said.clone()));
            let refused = router.take_section().await.unwrap_err();
            assert_eq!(refused.to_string(), said);
        });
    }
}
