//! The stored form a view's rows were written in, as persisted data says it
//! (`persist::format::ViewLayoutV1`), and what recovery does with rows written in a form other
//! than the one served now. Layout numbers are process-local (they start again at every
//! start), so a snapshot and the journal describe the form itself: join keys, row columns,
//! aggregation. Rows of another form are reshaped as an apply reshapes them where that loses
//! nothing an apply would ask `--allow-data-loss` for: a row's (or an event's) columns matched
//! by name and type (a removed feature goes, a new one reads null), an aggregating view's
//! tiles matched by partial (function and input; a new one starts empty). Any other
//! difference (a type, join keys, a tile interval or compaction, a view turned into or out of
//! an aggregating or realtime one) refuses the start, naming the view and the difference: rows
//! misread in silence would be acknowledged data changed. (A view that holds no rows or tiles
//! has nothing to misread: recovery lets it take the served form, `recovery.rs`.)

use std::collections::{HashMap, HashSet};

use crate::persist::format::{
    AggregateLayoutV1, AggregationLayoutV1, FieldV1, ViewLayoutV1, ViewLayoutsV1, ViewRefV1,
};
use crate::registry::aggregation::duration_text;
use crate::registry::repository::aggregate_texts;
use crate::registry::value::Value;
use crate::registry::{FeatureView, Field, ViewKind};
use crate::store::row::{decode_row, encode_row};

/// `view`'s stored form; `None` for a realtime view, which stores nothing.
pub fn stored_form(view: &FeatureView) -> Option<ViewLayoutV1> {
    if matches!(view.kind, ViewKind::Realtime(_)) {
        return None;
    }
    let fields = |fields: &[Field]| {
        fields
            .iter()
            .map(|field| FieldV1 {
                name: field.name.clone(),
                data_type: field.data_type.to_string(),
            })
            .collect()
    };
    Some(ViewLayoutV1 {
        join_keys: fields(&view.join_keys),
        columns: fields(&view.row_columns),
        aggregation: view.aggregation.as_deref().map(|spec| AggregationLayoutV1 {
            interval_micros: spec.interval,
            compaction_micros: spec.compaction,
            aggregates: aggregate_texts(spec)
                .into_iter()
                .map(|(partial, window)| AggregateLayoutV1 { partial, window })
                .collect(),
        }),
    })
}

/// How a view's stored data becomes the serving form's (`None`s: taken as it is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remap {
    /// A row's (or an event's) values: new column `i` is stored column `columns[i]` (null when
    /// `None`).
    pub columns: Option<Vec<Option<usize>>>,
    /// An aggregating view's tiles: new aggregate `i` keeps stored aggregate
    /// `aggregates[i]`'s partials (empty when `None`).
    pub aggregates: Option<Vec<Option<usize>>>,
    /// The rows are left out: an apply that accepted losing data cleared the view's data in
    /// the form they were written in (a cluster's stream, see `WrittenLayouts::accept_loss`).
    pub dropped: bool,
}

impl Remap {
    pub fn is_identity(&self) -> bool {
        self.columns.is_none() && self.aggregates.is_none() && !self.dropped
    }

    fn dropped() -> Remap {
        Remap {
            dropped: true,
            ..Remap::default()
        }
    }
}

/// The forms rows in persisted data were written in, by view name, as recovery reads it: from
/// the snapshot's head, then each layouts record of the journal (or, for a cluster's stream,
/// the forms its messages name). A view it does not know (a snapshot, journal or message of an
/// older build) has its rows taken as the serving form, as before.
#[derive(Debug, Default)]
pub struct WrittenLayouts {
    forms: HashMap<ViewRefV1, ViewLayoutV1>,
    pub(super) rows_in: RowsIn,
    /// The views whose rows were reshaped so far, so that a long journal says so once a view.
    reshaped: HashSet<ViewRefV1>,
    /// The views whose data in these forms an apply moved to another form accepting the loss
    /// (`--allow-data-loss`), with that form (`None`: it stores nothing now): read in it, their
    /// rows are read as that apply converted its data (a column of another type null, a
    /// cleared view's rows left out) rather than refused.
    loss_accepted: HashMap<ViewRefV1, Option<ViewLayoutV1>>,
}

/// An apply moved `view`'s data out of form `from` into `to` (`None`: the view stores nothing
/// now) losing some of it, the loss accepted (`--allow-data-loss`): what a cluster records so
/// that its nodes read the view's rows still in `from` as that apply converted them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AcceptedLoss {
    pub view: ViewRefV1,
    pub from: ViewLayoutV1,
    pub to: Option<ViewLayoutV1>,
}

impl AcceptedLoss {
    /// The loss of moving `view`'s data from `from` to `to`, if the move loses data (what a
    /// node reading rows in `from` under `to` would refuse without it).
    pub fn of_move(
        view: &ViewRefV1,
        from: &ViewLayoutV1,
        to: Option<&ViewLayoutV1>,
    ) -> Option<AcceptedLoss> {
        remap_for(view, from, to, RowsIn::ClusterStream, false)
            .is_err()
            .then(|| AcceptedLoss {
                view: view.clone(),
                from: from.clone(),
                to: to.cloned(),
            })
    }

    /// The losses to record for an apply's `moves` (each view's data from one form to
    /// another, as `AcceptedLoss`es whether they lose data or not), given those `recorded`
    /// already: a move that loses data, when the apply may lose it (`lossy_allowed`); and,
    /// for each recorded loss into a move's old form, the one from that loss's older form
    /// into the new one, lossy or not the move, when it loses data: a later apply carries an
    /// accepted loss on, so that rows still in the older form are read in the newest.
    pub fn to_record(
        moves: &[AcceptedLoss],
        recorded: &[AcceptedLoss],
        lossy_allowed: bool,
    ) -> Vec<AcceptedLoss> {
        let mut losses: Vec<AcceptedLoss> = Vec::new();
        for moved in moves {
            let to = moved.to.as_ref();
            let own = lossy_allowed
                .then(|| AcceptedLoss::of_move(&moved.view, &moved.from, to))
                .flatten();
            let carried = (recorded.iter())
                .filter(|loss| loss.view == moved.view && loss.to.as_ref() == Some(&moved.from))
                .filter_map(|loss| AcceptedLoss::of_move(&moved.view, &loss.from, to));
            for loss in own.into_iter().chain(carried) {
                if !losses.contains(&loss) {
                    losses.push(loss);
                }
            }
        }
        losses
    }
}

impl WrittenLayouts {
    /// The forms `layouts` gives the views `views` names (parallel lists; a head of an older
    /// build has no layouts).
    pub fn of(views: &[ViewRefV1], layouts: &[Option<ViewLayoutV1>]) -> WrittenLayouts {
        WrittenLayouts {
            forms: forms_of(views, layouts),
            rows_in: RowsIn::DataDirectory,
            reshaped: HashSet::new(),
            loss_accepted: HashMap::new(),
        }
    }

    /// The forms a cluster's stream says its messages' rows were written in.
    pub fn in_stream(layouts: &ViewLayoutsV1) -> WrittenLayouts {
        WrittenLayouts {
            rows_in: RowsIn::ClusterStream,
            ..WrittenLayouts::of(&layouts.views, &layouts.layouts)
        }
    }

    /// A journal's layouts record: from here on, its forms.
    pub fn follow(&mut self, record: &ViewLayoutsV1) {
        self.forms = forms_of(&record.views, &record.layouts);
    }

    pub fn get(&self, view: &ViewRefV1) -> Option<&ViewLayoutV1> {
        self.forms.get(view)
    }

    /// True the first time `view`'s rows are reshaped.
    pub fn first_reshape(&mut self, view: &ViewRefV1) -> bool {
        self.reshaped.insert(view.clone())
    }

    /// An apply moved `view`'s data out of these forms into `to`, accepting the loss: from
    /// here on its rows in them, read in `to`, are read as that apply converted its data.
    pub fn accept_loss(&mut self, view: ViewRefV1, to: Option<ViewLayoutV1>) {
        self.loss_accepted.insert(view, to);
    }

    /// Whether `view`'s rows in these forms are read lossily into `to`.
    pub fn loss_accepted(&self, view: &ViewRefV1, to: Option<&ViewLayoutV1>) -> bool {
        self.loss_accepted
            .get(view)
            .is_some_and(|accepted| accepted.as_ref() == to)
    }

    /// How `view`'s rows in these forms are read in the serving form `current` (see
    /// `remap_for`).
    pub fn remap(
        &self,
        view: &ViewRefV1,
        stored: &ViewLayoutV1,
        current: Option<&ViewLayoutV1>,
    ) -> Result<Remap, LayoutMismatch> {
        remap_for(
            view,
            stored,
            current,
            self.rows_in,
            self.loss_accepted(view, current),
        )
    }
}

fn forms_of(
    views: &[ViewRefV1],
    layouts: &[Option<ViewLayoutV1>],
) -> HashMap<ViewRefV1, ViewLayoutV1> {
    views
        .iter()
        .zip(layouts)
        .filter_map(|(view, layout)| Some((view.clone(), layout.clone()?)))
        .collect()
}

/// A view's rows were written in a form the serving one cannot take without losing or
/// misreading data.
#[derive(Debug)]
pub struct LayoutMismatch {
    pub workspace: String,
    pub view: String,
    pub difference: String,
    pub rows_in: RowsIn,
}

/// Where the rows of a [`LayoutMismatch`] are: what is refused, and what to do, differ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowsIn {
    /// A snapshot or the journal: the start is refused.
    #[default]
    DataDirectory,
    /// A cluster's stream: the message is not applied (at a node's start, the start is refused).
    ClusterStream,
}

impl std::error::Error for LayoutMismatch {}

impl std::fmt::Display for LayoutMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let LayoutMismatch {
            workspace,
            view,
            difference,
            ..
        } = self;
        match self.rows_in {
            RowsIn::DataDirectory => write!(f, "the stored rows of feature view {workspace}/{view} were written when it had another form ({difference}), and a restart does not change stored data that way; refusing to start rather than misread or drop them. Start with the repository files they were written under (the view as it was), then make the change with `quiver apply`, which converts the stored data (or drops it, with --allow-data-loss)"),
            RowsIn::ClusterStream => write!(f, "rows of feature view {workspace}/{view} in the cluster's stream were written when it had another form ({difference}), which this node's repository files cannot take; refusing them rather than misread or drop them. Give this node the repository files they were written under (the view as it was), then make the change on every node with `quiver apply`, which converts the stored data (or drops it, with --allow-data-loss)"),
        }
    }
}

/// How data stored in form `stored` of `view` (in `rows_in`) is read in the serving form
/// `current` (`None`: the view stores nothing now). What would lose data is refused, unless
/// the loss was `accepted` (an apply made the same change with `--allow-data-loss`): then it
/// is read as that apply converted it (`store::reshape`): a column of another type null, and
/// a view the apply cleared left out.
fn remap_for(
    view: &ViewRefV1,
    stored: &ViewLayoutV1,
    current: Option<&ViewLayoutV1>,
    rows_in: RowsIn,
    accepted: bool,
) -> Result<Remap, LayoutMismatch> {
    let refuse = |difference: String| match accepted {
        true => Ok(Remap::dropped()),
        false => Err(LayoutMismatch {
            workspace: view.workspace.clone(),
            view: view.view.clone(),
            difference,
            rows_in,
        }),
    };
    let Some(current) = current else {
        return refuse("it is now a realtime view, which stores nothing".into());
    };
    if stored == current {
        return Ok(Remap::default());
    }
    if stored.join_keys != current.join_keys {
        return refuse(format!(
            "join keys {} then, {} now",
            fields_text(&stored.join_keys),
            fields_text(&current.join_keys)
        ));
    }
    let aggregates = match (&stored.aggregation, &current.aggregation) {
        (None, None) => None,
        (Some(was), Some(is)) => match aggregate_map(was, is) {
            Ok(map) => map,
            Err(difference) => return refuse(difference),
        },
        (was, _) => {
            let kind = |aggregating: bool| match aggregating {
                true => "aggregating",
                false => "not aggregating",
            };
            return refuse(format!(
                "{} then, {} now",
                kind(was.is_some()),
                kind(was.is_none())
            ));
        }
    };
    // A column of another type maps to none below (null), as an apply converts it.
    let retyped = current.columns.iter().find_map(|column| {
        let was = stored.columns.iter().find(|c| c.name == column.name)?;
        (was.data_type != column.data_type).then_some((column, was))
    });
    if let (Some((column, was)), false) = (retyped, accepted) {
        return refuse(format!(
            "`{}` was {} and is {} now",
            column.name, was.data_type, column.data_type
        ));
    }
    let map: Vec<Option<usize>> = current
        .columns
        .iter()
        .map(|column| stored.columns.iter().position(|c| c == column))
        .collect();
    // As an apply: rows read padded with nulls, so columns appended after the stored ones (or
    // the last ones removed) need no rewrite.
    let in_place = map
        .iter()
        .enumerate()
        .all(|(i, from)| *from == Some(i) || (from.is_none() && i >= stored.columns.len()));
    Ok(Remap {
        columns: (!in_place).then_some(map),
        aggregates,
        dropped: false,
    })
}

/// Which stored aggregate's partials each serving aggregate keeps (`None` when the tiles are
/// already laid out so); an error names what an apply would clear.
fn aggregate_map(
    stored: &AggregationLayoutV1,
    current: &AggregationLayoutV1,
) -> Result<Option<Vec<Option<usize>>>, String> {
    if stored.interval_micros != current.interval_micros {
        return Err(format!(
            "aggregation interval {} then, {} now",
            duration_text(stored.interval_micros),
            duration_text(current.interval_micros)
        ));
    }
    if stored.compaction_micros != current.compaction_micros {
        let text = |compaction: Option<i64>| match compaction {
            Some(width) => format!("compaction to {}", duration_text(width)),
            None => "no compaction".into(),
        };
        return Err(format!(
            "{} then, {} now",
            text(stored.compaction_micros),
            text(current.compaction_micros)
        ));
    }
    let partials = |layout: &AggregationLayoutV1| -> Vec<String> {
        layout
            .aggregates
            .iter()
            .map(|a| a.partial.clone())
            .collect()
    };
    if partials(stored) == partials(current) {
        return Ok(None);
    }
    Ok(Some(
        current
            .aggregates
            .iter()
            .map(|wanted| {
                stored
                    .aggregates
                    .iter()
                    .position(|a| a.partial == wanted.partial)
            })
            .collect(),
    ))
}

fn fields_text(fields: &[FieldV1]) -> String {
    let fields: Vec<String> = fields
        .iter()
        .map(|f| format!("{} {}", f.name, f.data_type))
        .collect();
    format!("({})", fields.join(", "))
}

/// `payload` (an encoded row) with its values moved as `map` says.
pub fn remap_row(payload: &[u8], map: &[Option<usize>]) -> Result<Vec<u8>, String> {
    let values = decode_row(payload).map_err(|e| e.to_string())?;
    let moved: Vec<Value> = map
        .iter()
        .map(|from| {
            from.and_then(|j| values.get(j).cloned())
                .unwrap_or_default()
        })
        .collect();
    let mut out = Vec::new();
    encode_row(&moved, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, data_type: &str) -> FieldV1 {
        FieldV1 {
            name: name.into(),
            data_type: data_type.into(),
        }
    }

    fn layout(columns: &[(&str, &str)]) -> ViewLayoutV1 {
        ViewLayoutV1 {
            join_keys: vec![field("user_id", "string")],
            columns: columns.iter().map(|(n, t)| field(n, t)).collect(),
            aggregation: None,
        }
    }

    fn view() -> ViewRefV1 {
        ViewRefV1 {
            workspace: "prod".into(),
            view: "user_profile".into(),
        }
    }

    #[test]
    fn a_removed_feature_is_mapped_out_and_the_others_keep_their_values() {
        let stored = layout(&[("credit", "int64"), ("age", "int64"), ("country", "string")]);
        let current = layout(&[("credit", "int64"), ("country", "string"), ("new", "bool")]);
        let remap = remap_for(
            &view(),
            &stored,
            Some(&current),
            RowsIn::DataDirectory,
            false,
        )
        .unwrap();
        let map = remap.columns.unwrap();
        assert_eq!(map, vec![Some(0), Some(2), None]);
        let mut row = Vec::new();
        encode_row(
            &[
                Value::Int64(700),
                Value::Int64(11),
                Value::String("DE".into()),
            ],
            &mut row,
        );
        let moved = decode_row(&remap_row(&row, &map).unwrap()).unwrap();
        assert_eq!(
            moved,
            vec![Value::Int64(700), Value::String("DE".into()), Value::Null]
        );
    }

    #[test]
    fn the_same_form_or_an_appended_feature_needs_no_rewrite() {
        let stored = layout(&[("credit", "int64")]);
        let same = remap_for(
            &view(),
            &stored,
            Some(&stored),
            RowsIn::DataDirectory,
            false,
        )
        .unwrap();
        assert!(same.is_identity());
        let appended = layout(&[("credit", "int64"), ("new", "string")]);
        assert!(remap_for(
            &view(),
            &stored,
            Some(&appended),
            RowsIn::DataDirectory,
            false
        )
        .unwrap()
        .is_identity());
    }

    fn aggregating(interval: i64, aggregates: &[(&str, &str)]) -> ViewLayoutV1 {
        ViewLayoutV1 {
            aggregation: Some(AggregationLayoutV1 {
                interval_micros: interval,
                compaction_micros: None,
                aggregates: aggregates
                    .iter()
                    .map(|(partial, window)| AggregateLayoutV1 {
                        partial: partial.to_string(),
                        window: window.to_string(),
                    })
                    .collect(),
            }),
            ..layout(&[("amt", "float64")])
        }
    }

    /// As an apply: a new window over a partial the tiles keep takes it, a new function starts
    /// empty, a removed aggregate's partial goes; only a new window needs no remap.
    #[test]
    fn aggregates_keep_the_partials_of_the_same_function_and_input() {
        const HOUR: i64 = 3_600_000_000;
        let stored = aggregating(HOUR, &[("sum(amt)", "1d"), ("count(amt)", "1d")]);
        let windows = aggregating(HOUR, &[("sum(amt)", "7d"), ("count(amt)", "1d")]);
        assert!(remap_for(
            &view(),
            &stored,
            Some(&windows),
            RowsIn::DataDirectory,
            false
        )
        .unwrap()
        .is_identity());
        let changed = aggregating(
            HOUR,
            &[
                ("count(amt)", "1d"),
                ("sum(amt)", "7d"),
                ("mean(amt)", "1d"),
            ],
        );
        let remap = remap_for(
            &view(),
            &stored,
            Some(&changed),
            RowsIn::DataDirectory,
            false,
        )
        .unwrap();
        assert_eq!(remap.aggregates, Some(vec![Some(1), Some(0), None]));
        assert_eq!(remap.columns, None);

        let error = remap_for(
            &view(),
            &stored,
            Some(&aggregating(2 * HOUR, &[])),
            RowsIn::DataDirectory,
            false,
        )
        .unwrap_err();
        assert_eq!(error.difference, "aggregation interval 1h then, 2h now");
    }

    #[test]
    fn a_type_join_key_or_aggregation_change_is_refused_naming_it() {
        let stored = layout(&[("credit", "float64")]);
        let error = remap_for(
            &view(),
            &stored,
            Some(&layout(&[("credit", "int64")])),
            RowsIn::DataDirectory,
            false,
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("prod/user_profile"), "{message}");
        assert!(
            message.contains("`credit` was float64 and is int64 now"),
            "{message}"
        );
        assert!(message.contains("quiver apply"), "{message}");

        let mut keyed = stored.clone();
        keyed.join_keys = vec![field("user_id", "int64")];
        let error =
            remap_for(&view(), &stored, Some(&keyed), RowsIn::DataDirectory, false).unwrap_err();
        assert!(error.difference.contains("join keys"), "{error}");

        let error = remap_for(
            &view(),
            &stored,
            Some(&aggregating(1, &[])),
            RowsIn::DataDirectory,
            false,
        )
        .unwrap_err();
        assert_eq!(error.difference, "not aggregating then, aggregating now");

        let error = remap_for(&view(), &stored, None, RowsIn::DataDirectory, false).unwrap_err();
        assert!(error.difference.contains("realtime"), "{error}");
    }

    /// An apply that made the change with `--allow-data-loss` is followed by a replay of older
    /// rows: a retyped feature reads null and the others keep their values; a view the apply
    /// cleared (new join keys, another aggregation, turned realtime) has its rows left out.
    #[test]
    fn rows_in_a_form_an_apply_moved_out_of_accepting_loss_read_as_it_converted_them() {
        let stored = layout(&[("credit", "float64"), ("country", "string")]);
        let mut written = WrittenLayouts::in_stream(&crate::persist::format::ViewLayoutsV1 {
            views: vec![view()],
            layouts: vec![Some(stored.clone())],
        });
        let retyped = layout(&[("credit", "int64"), ("country", "string")]);
        assert!(written.remap(&view(), &stored, Some(&retyped)).is_err());
        written.accept_loss(view(), Some(retyped.clone()));
        let remap = written.remap(&view(), &stored, Some(&retyped)).unwrap();
        assert_eq!(remap.columns, Some(vec![None, Some(1)]));
        assert!(!remap.dropped);
        // Only into the form the apply moved the data to: another is refused as ever.
        let other = layout(&[("credit", "string"), ("country", "string")]);
        assert!(written.remap(&view(), &stored, Some(&other)).is_err());

        let mut keyed = stored.clone();
        keyed.join_keys = vec![field("user_id", "int64")];
        for cleared in [Some(&keyed), Some(&aggregating(1, &[])), None] {
            written.accept_loss(view(), cleared.cloned());
            let remap = written.remap(&view(), &stored, cleared).unwrap();
            assert!(remap.dropped && !remap.is_identity(), "{cleared:?}");
        }
        // A move that loses nothing needs no record of its own, nor one the apply may not
        // make; a later move carries a recorded loss on, lossy or not.
        let appended = layout(&[
            ("credit", "float64"),
            ("country", "string"),
            ("new", "bool"),
        ]);
        let move_to = |from: &ViewLayoutV1, to: &ViewLayoutV1| AcceptedLoss {
            view: view(),
            from: from.clone(),
            to: Some(to.clone()),
        };
        assert_eq!(
            AcceptedLoss::of_move(&view(), &stored, Some(&appended)),
            None
        );
        let retyping = move_to(&stored, &retyped);
        assert_eq!(
            AcceptedLoss::to_record(std::slice::from_ref(&retyping), &[], true),
            vec![retyping.clone()]
        );
        assert!(AcceptedLoss::to_record(std::slice::from_ref(&retyping), &[], false).is_empty());
        let retyped_appended =
            layout(&[("credit", "int64"), ("country", "string"), ("new", "bool")]);
        let later = move_to(&retyped, &retyped_appended);
        assert_eq!(
            AcceptedLoss::to_record(&[later], &[retyping], false),
            vec![move_to(&stored, &retyped_appended)]
        );
    }
}
