//! The store's side of a replicated log (cluster mode): the [`RowLog`] that [`Router::write`]
//! hands accepted rows to instead of the writer, and the way back: records read from the log are
//! applied to the shards unjournaled, as recovery applies journal records, and read in the
//! forms their rows were written in ([`LogForms`]), reshaped or refused as recovery does.
//!
//! The store knows nothing of NATS: `cluster` implements [`RowLog`].

use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::layouts::{AcceptedLoss, WrittenLayouts};
use super::recovery::{note_reshapes, remaps_of, serving_write, view_ids_of, views_holding};
use super::router::{Router, StoreError};
use super::shard::{RowWrite, ViewReshape, WriteOutcome};
use super::writer::journal_record;
use crate::persist::format::{decode, encode, RowsV1, ViewLayoutV1, ViewLayoutsV1, ViewRefV1};
use crate::registry::{Registry, ViewId};

/// Where accepted rows go in cluster mode; the log applies them (on every node) itself.
pub trait RowLog: Send + Sync {
    /// Resolves once the rows are durably in the log and applied on this node, with what
    /// applying them did.
    fn append(&self, rows: Vec<RowWrite>) -> BoxFuture<'static, Result<WriteOutcome, StoreError>>;
    /// Records the data an apply's `moves` lose (each view's data from one form to another;
    /// `AcceptedLoss::to_record` says which to record, given those recorded before), so that
    /// a node reading a view's rows in a form it moved the data out of (a replay from the
    /// stream's start) reads them as the apply converted them rather than refuse them.
    /// Resolves once the log holds them, with those this call recorded (not another node's
    /// apply of the same change): what `withdraw_losses` takes back if this apply is not made.
    fn accept_losses(
        &self,
        moves: Vec<AcceptedLoss>,
        lossy_allowed: bool,
    ) -> BoxFuture<'static, Result<Vec<AcceptedLoss>, StoreError>>;
    /// Takes back `losses`, recorded for an apply that was not made.
    fn withdraw_losses(
        &self,
        losses: Vec<AcceptedLoss>,
    ) -> BoxFuture<'static, Result<(), StoreError>>;
}

/// A views table's stored forms as a log names them: the journal's layouts record (without
/// its marker) sorted by view name, so that the same forms give the same bytes in every
/// process whatever ids its views have, and its name, the xxh3-128 of those bytes. A record's
/// rows are read back in the forms it names: nodes of one cluster may serve different
/// repositories (an apply is per node), so the forms of whoever wrote a record, not the latest
/// published, say what its rows are.
#[derive(Debug)]
pub struct LogForms {
    /// The xxh3-128 of `record` as 32 hex digits, made once: every message carries it.
    pub name: String,
    pub record: Vec<u8>,
    /// Set by the log once it holds `record` (before the first record naming it), so that a
    /// write checks one flag, not a set of names.
    pub published: AtomicBool,
}

impl LogForms {
    pub(super) fn of(layouts: ViewLayoutsV1) -> LogForms {
        let mut by_name: Vec<_> = layouts.views.into_iter().zip(layouts.layouts).collect();
        by_name.sort_by(|(a, _), (b, _)| (&a.workspace, &a.view).cmp(&(&b.workspace, &b.view)));
        let (views, layouts) = by_name.into_iter().unzip();
        let record = encode(&ViewLayoutsV1 { views, layouts });
        LogForms {
            name: format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&record)),
            record,
            published: AtomicBool::new(false),
        }
    }

    /// The forms a log's `record` (a [`LogForms::record`]) gives, to read records named by it.
    pub fn read(record: &[u8]) -> Result<WrittenLayouts, String> {
        Ok(WrittenLayouts::in_stream(&decode(record)?))
    }
}

impl Router {
    /// This router with its writes sent to `log`; call before the router is cloned.
    pub fn with_log(mut self, log: Arc<dyn RowLog>) -> Router {
        self.log = Some(log);
        self
    }

    /// In cluster mode, records in the log the data an apply to `after` doing `reshapes` loses
    /// (when `lossy_allowed`), view by view, and carries on the losses recorded before into
    /// the views' new forms (`RowLog::accept_losses`, `AcceptedLoss::to_record`): before the
    /// apply reshapes, so that no node replaying the stream after it misses it. Answers what
    /// this call recorded, for [`Router::withdraw_losses`] should the apply not be made.
    /// Nothing without a log.
    pub async fn accept_losses(
        &self,
        after: &Registry,
        reshapes: &[(ViewId, ViewReshape)],
        lossy_allowed: bool,
    ) -> Result<Vec<AcceptedLoss>, StoreError> {
        let Some(log) = &self.log else {
            return Ok(Vec::new());
        };
        let moves: Vec<AcceptedLoss> = {
            let views = self.views.load();
            let cleared = |view| {
                reshapes
                    .iter()
                    .any(|(id, reshape)| *id == view && *reshape == ViewReshape::Clear)
            };
            let next = views.reshaped(after, cleared);
            // Every view whose form changes, reshaped or not (a feature appended needs no
            // rewrite, yet carries on a loss recorded into the old form).
            views
                .names()
                // A view the apply removes needs none: its rows are skipped by name.
                .filter(|(id, _)| after.find_view(*id).is_some())
                .filter(|(id, _)| views.form(*id) != next.form(*id))
                .filter_map(|(id, name)| {
                    Some(AcceptedLoss {
                        view: name.clone(),
                        from: views.form(id)?.clone(),
                        to: next.form(id).cloned(),
                        through: Vec::new(),
                    })
                })
                .collect()
        };
        if moves.is_empty() {
            return Ok(moves);
        }
        log.accept_losses(moves, lossy_allowed).await
    }

    /// Takes back what [`Router::accept_losses`] recorded for an apply that was not made (best
    /// effort: a failure is logged, and leaves nodes started on the new files reading the
    /// view's older rows as the apply would have).
    pub async fn withdraw_losses(&self, losses: Vec<AcceptedLoss>) {
        if let (Some(log), false) = (&self.log, losses.is_empty()) {
            if let Err(error) = log.withdraw_losses(losses).await {
                tracing::warn!(%error, "could not take back the data loss an apply that was not made recorded in the cluster");
            }
        }
    }

    /// The form `view` is stored in now (`None`: it stores nothing, or is not served).
    pub fn form(&self, view: &ViewRefV1) -> Option<ViewLayoutV1> {
        let views = self.views.load();
        views.form(views.id(view)?).cloned()
    }

    /// The id of the forms this node serves (`LogForms::name`).
    pub fn forms_name(&self) -> String {
        self.views.load().log_forms().name.clone()
    }

    /// Rows as one record of the log (the journal's versioned format: views named, not
    /// numbered, so that every node reads them alike), and the forms they are encoded in. Rows
    /// encoded for a layout an apply has replaced since are refused, as the writer refuses
    /// them: published under the new forms, every node would read them shifted.
    pub fn encode_record(&self, rows: &[RowWrite]) -> Result<(Vec<u8>, Arc<LogForms>), StoreError> {
        let views = self.views.load();
        if let Some(row) = rows
            .iter()
            .find(|row| views.layout(row.view) != Some(row.layout))
        {
            return Err(StoreError::RepositoryChanged(row.view));
        }
        Ok((journal_record(&views, rows), Arc::clone(views.log_forms())))
    }

    /// Applies a record read from the log, without journaling it, its rows written in the
    /// forms `written` gives (empty for a record of an older build, which names none: its rows
    /// are taken in the serving form). Rows of views this node's repository does not have are
    /// skipped (and logged); a form the serving one cannot take refuses the whole record.
    pub async fn apply_record(
        &self,
        record: &[u8],
        written: &mut WrittenLayouts,
    ) -> Result<WriteOutcome, StoreError> {
        let stored: RowsV1 =
            decode(record).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let views = self.views.load_full();
        let ids = view_ids_of(&views, &stored.views);
        // Only views with rows in this record can refuse it.
        let holding = || {
            let stored_views = stored.rows.iter().map(|row| Ok(row.view));
            views_holding(stored.views.len(), stored_views, &[])
        };
        let remaps = remaps_of(&views, &stored.views, &ids, written, holding)?;
        note_reshapes(&stored.views, &remaps, written);
        let mut writes = Vec::with_capacity(stored.rows.len());
        for row in stored.rows {
            writes.extend(serving_write(&views, &ids, &remaps, row)?);
        }
        self.write_with(writes, false).await
    }
}

#[cfg(test)]
mod tests {
    use actix::System;

    use super::*;
    use crate::persist::format::ViewRefV1;
    use crate::registry::value::Value;
    use crate::store::recovery::tests::{
        profile_registry, profile_row, profile_write, AGE_CITY_ZIP,
    };

    /// The same forms give the same id whatever order (view ids) the table lists them in.
    #[test]
    fn log_forms_are_named_by_content_not_by_view_ids() {
        let registry = profile_registry(AGE_CITY_ZIP);
        let mut layouts = crate::store::views::StoreViews::of(&registry).layouts_record();
        layouts.views.push(ViewRefV1 {
            workspace: "a".into(),
            view: "first".into(),
        });
        layouts.layouts.push(None);
        let mut reversed = layouts.clone();
        reversed.views.reverse();
        reversed.layouts.reverse();
        let (one, other) = (LogForms::of(layouts), LogForms::of(reversed));
        assert_eq!((one.name, one.record), (other.name, other.record));
    }

    /// A record written while `profile` had `age, city, zip`, applied by a node whose files
    /// dropped `age`: read in the forms it names, its row is `city, zip`; applied by a node
    /// whose `age` is float64, it is refused naming the view and the difference, nothing
    /// written.
    #[test]
    fn a_record_is_read_in_the_forms_it_names() {
        System::new().block_on(async {
            let before = profile_registry(AGE_CITY_ZIP);
            let writer = Router::start_with(1, 4096, &before).unwrap();
            let (record, forms) = writer
                .encode_record(&[profile_write(&before, "u")])
                .unwrap();

            let after = profile_registry(
                r#"{ name = "city", type = "string" }, { name = "zip", type = "string" }"#,
            );
            let reader = Router::start_with(2, 4096, &after).unwrap();
            let mut written = LogForms::read(&forms.record).unwrap();
            reader.apply_record(&record, &mut written).await.unwrap();
            assert_eq!(
                profile_row(&reader, &after, "u"),
                Some(vec![Value::String("Oslo".into()), Value::String("u".into())])
            );

            let retyped = profile_registry(&AGE_CITY_ZIP.replace("int64", "float64"));
            let refusing = Router::start_with(1, 4096, &retyped).unwrap();
            let error = refusing
                .apply_record(&record, &mut written)
                .await
                .unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("ws/profile in the cluster's stream were written when it had another form (`age` was int64 and is float64 now)"),
                "{message}"
            );
            assert_eq!(profile_row(&refusing, &retyped, "u"), None);
        });
    }
}
