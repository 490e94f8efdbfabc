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
    decode, encode, AggregateLayoutV1, AggregationLayoutV1, FieldV1, ViewLayoutV1, ViewLayoutsV1,
    ViewRefV1,
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
    /// The views whose data in these forms applies moved to another form accepting the loss
    /// (`--allow-data-loss`), with that move: read in its form, their rows are read as those
    /// applies converted the data (a column of another type null, a removed one gone, a
    /// cleared view's rows left out) rather than refused.
    loss_accepted: HashMap<ViewRefV1, AcceptedLoss>,
}

/// An apply moved `view`'s data out of form `from` into `to` (`None`: the view stores nothing
/// now) losing some of it, the loss accepted (`--allow-data-loss`), maybe after earlier applies
/// moved it through the forms `through`: what a cluster records so that its nodes read the
/// view's rows still in `from` as those applies converted them, one after the other.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AcceptedLoss {
    pub view: ViewRefV1,
    pub from: ViewLayoutV1,
    pub to: Option<ViewLayoutV1>,
    /// The forms between `from` and `to`, oldest first; empty for one apply's own move. (Last,
    /// so that a record of an older build, which has none, is this one's prefix: `decode`.)
    pub through: Vec<ViewLayoutV1>,
}

impl AcceptedLoss {
    /// The loss of moving `view`'s data from `from` to `to`, if the move loses data: what a
    /// node reading rows in `from` under `to` would refuse without it, or a removed feature's
    /// (aggregate's) values, which a later form adding it back must not read again.
    pub fn of_move(
        view: &ViewRefV1,
        from: &ViewLayoutV1,
        to: Option<&ViewLayoutV1>,
    ) -> Option<AcceptedLoss> {
        AcceptedLoss {
            view: view.clone(),
            from: from.clone(),
            to: to.cloned(),
            through: Vec::new(),
        }
        .if_lossy()
    }

    /// This loss, if moving the data through `through` loses any of it (see `of_move`).
    fn if_lossy(self) -> Option<AcceptedLoss> {
        // Back in the form it left: its rows written before and after look alike, and are
        // read as they are (a record would null the later ones too).
        if self.to.as_ref() == Some(&self.from) {
            return None;
        }
        let converted = remap_through(&self.view, &self.from, &self.through, self.to.as_ref());
        let kept = |map: &Option<Vec<Option<usize>>>, stored: usize| {
            map.as_ref()
                .is_none_or(|map| (0..stored).all(|i| map.contains(&Some(i))))
        };
        let from = &self.from;
        let stored_aggregates = from.aggregation.as_ref().map_or(0, |a| a.aggregates.len());
        let loses = converted.dropped
            || !kept(&converted.columns, from.columns.len())
            || !kept(&converted.aggregates, stored_aggregates)
            || Self::needs_flag(&self.view, from, self.to.as_ref());
        loses.then_some(self)
    }

    /// Whether the move is one an apply makes only when allowed to lose data: one a node
    /// would refuse to read rows across without a record (a removed feature is not).
    fn needs_flag(view: &ViewRefV1, from: &ViewLayoutV1, to: Option<&ViewLayoutV1>) -> bool {
        remap_for(view, from, to, RowsIn::ClusterStream, false).is_err()
    }

    /// What names the loss: the view and the two forms, not the way between them (a node
    /// reading rows in `from` under `to` looks it up by them). The same bytes as a whole
    /// record of an older build, which had no `through`.
    pub fn name(&self) -> Vec<u8> {
        encode(&(&self.view, &self.from, &self.to))
    }

    /// A recorded loss, of this build or an older one (no `through`: one apply's own move).
    pub fn decode(bytes: &[u8]) -> Result<AcceptedLoss, String> {
        decode::<AcceptedLoss>(bytes).or_else(|error| {
            let (view, from, to) = decode(bytes).map_err(|_| error)?;
            Ok(AcceptedLoss {
                view,
                from,
                to,
                through: Vec::new(),
            })
        })
    }

    /// The losses to record for an apply's `moves` (each view's data from one form to
    /// another, as `AcceptedLoss`es whether they lose data or not), given those `recorded`
    /// already: a move that loses data, when the apply may lose it (`lossy_allowed`; a removed
    /// feature needs no leave); and, for each recorded loss into a move's old form, the one
    /// from that loss's older form into the new one through the move's old form, lossy or not
    /// the move, when the way loses data: a later apply carries a recorded loss on, so that
    /// rows still in the older form are read in the newest as every apply since converted
    /// them (a feature the first one removed stays gone when a later one adds it back).
    pub fn to_record(
        moves: &[AcceptedLoss],
        recorded: &[AcceptedLoss],
        lossy_allowed: bool,
    ) -> Vec<AcceptedLoss> {
        let mut losses: Vec<AcceptedLoss> = Vec::new();
        for moved in moves {
            let to = moved.to.as_ref();
            let own = AcceptedLoss::of_move(&moved.view, &moved.from, to)
                .filter(|_| lossy_allowed || !Self::needs_flag(&moved.view, &moved.from, to));
            let carried = (recorded.iter())
                .filter(|loss| loss.view == moved.view && loss.to.as_ref() == Some(&moved.from))
                .filter_map(|loss| {
                    let mut through = loss.through.clone();
                    through.push(moved.from.clone());
                    AcceptedLoss {
                        view: moved.view.clone(),
                        from: loss.from.clone(),
                        to: moved.to.clone(),
                        through,
                    }
                    .if_lossy()
                });
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

    /// Every view these forms know, with its form.
    pub fn views(&self) -> impl Iterator<Item = (&ViewRefV1, &ViewLayoutV1)> {
        self.forms.iter()
    }

    /// True the first time `view`'s rows are reshaped.
    pub fn first_reshape(&mut self, view: &ViewRefV1) -> bool {
        self.reshaped.insert(view.clone())
    }

    /// Applies moved `loss.view`'s data out of these forms into `loss.to`, accepting the loss:
    /// from here on its rows in them, read in `loss.to`, are read as they converted the data.
    pub fn accept_loss(&mut self, loss: AcceptedLoss) {
        self.loss_accepted.insert(loss.view.clone(), loss);
    }

    /// Whether `view`'s rows in these forms are read lossily into `to`.
    pub fn loss_accepted(&self, view: &ViewRefV1, to: Option<&ViewLayoutV1>) -> bool {
        self.accepted_loss(view, to).is_some()
    }

    fn accepted_loss(&self, view: &ViewRefV1, to: Option<&ViewLayoutV1>) -> Option<&AcceptedLoss> {
        self.loss_accepted
            .get(view)
            .filter(|accepted| accepted.to.as_ref() == to)
    }

    /// How `view`'s rows in these forms are read in the serving form `current` (see
    /// `remap_for`).
    pub fn remap(
        &self,
        view: &ViewRefV1,
        stored: &ViewLayoutV1,
        current: Option<&ViewLayoutV1>,
    ) -> Result<Remap, LayoutMismatch> {
        match self.accepted_loss(view, current) {
            Some(loss) => Ok(remap_through(view, stored, &loss.through, current)),
            None => remap_for(view, stored, current, self.rows_in, false),
        }
    }
}

/// How data stored in form `stored` is read in `current` after applies moved it through the
/// forms `through` into `current`, each converting it (`remap_for`, the loss accepted): the
/// steps' maps composed, so that what one step left out stays out.
fn remap_through(
    view: &ViewRefV1,
    stored: &ViewLayoutV1,
    through: &[ViewLayoutV1],
    current: Option<&ViewLayoutV1>,
) -> Remap {
    let steps = std::iter::once(stored).chain(through);
    let tos = through.iter().map(Some).chain([current]);
    // Stored column (aggregate) of each column (aggregate) of the form reached so far.
    let mut columns = identity(stored.columns.len());
    let mut aggregates = stored
        .aggregation
        .as_ref()
        .map(|a| identity(a.aggregates.len()));
    for (from, to) in steps.zip(tos) {
        let step = remap_for(view, from, to, RowsIn::ClusterStream, true)
            .expect("a conversion accepting the loss refuses nothing");
        let Some(to) = to.filter(|_| !step.dropped) else {
            return Remap::dropped();
        };
        let step_columns = step
            .columns
            .unwrap_or_else(|| in_place_map(from.columns.len(), to.columns.len()));
        columns = compose(&columns, &step_columns);
        if let (Some(kept), Some(from_tiles), Some(to_tiles)) =
            (&aggregates, &from.aggregation, &to.aggregation)
        {
            let step_aggregates = step.aggregates.unwrap_or_else(|| {
                in_place_map(from_tiles.aggregates.len(), to_tiles.aggregates.len())
            });
            aggregates = Some(compose(kept, &step_aggregates));
        }
    }
    let aggregates = aggregates.filter(|map| !is_identity(map, map.len()));
    Remap {
        columns: (!appends_only(&columns, stored.columns.len())).then_some(columns),
        aggregates,
        dropped: false,
    }
}

fn identity(len: usize) -> Vec<Option<usize>> {
    (0..len).map(Some).collect()
}

/// A map that keeps the first `from` entries where they are, and reads the rest of `to` null.
fn in_place_map(from: usize, to: usize) -> Vec<Option<usize>> {
    (0..to).map(|i| (i < from).then_some(i)).collect()
}

/// `then` after `first`: entry `i` is what `first` gives for `then[i]`.
fn compose(first: &[Option<usize>], then: &[Option<usize>]) -> Vec<Option<usize>> {
    then.iter()
        .map(|from| from.and_then(|j| first.get(j).copied().flatten()))
        .collect()
}

fn is_identity(map: &[Option<usize>], len: usize) -> bool {
    map.len() == len && map.iter().enumerate().all(|(i, from)| *from == Some(i))
}

/// Whether a row of `stored` stored columns reads as `map` says without a rewrite: it keeps
/// every stored column where it is and only appends new ones (read null: rows are read
/// padded with nulls). A removed column, even the last, needs one: left in the row, it would
/// be read again by a later form that adds a column back in its place.
pub(super) fn appends_only(map: &[Option<usize>], stored: usize) -> bool {
    map.len() >= stored
        && map
            .iter()
            .enumerate()
            .all(|(i, from)| *from == (i < stored).then_some(i))
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
    // A column of another type maps to none below (null), as an apply converts it, and so do
    // the partials of the aggregates over it: the apply clears their tiles.
    let retyped: Vec<(&FieldV1, &FieldV1)> = (current.columns.iter())
        .filter_map(|column| {
            let was = stored.columns.iter().find(|c| c.name == column.name)?;
            (was.data_type != column.data_type).then_some((column, was))
        })
        .collect();
    let aggregates = match (&stored.aggregation, &current.aggregation) {
        (None, None) => None,
        (Some(was), Some(is)) => match aggregate_map(was, is, &retyped) {
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
    if let (Some((column, was)), false) = (retyped.first(), accepted) {
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
    // As an apply.
    Ok(Remap {
        columns: (!appends_only(&map, stored.columns.len())).then_some(map),
        aggregates,
        dropped: false,
    })
}

/// Which stored aggregate's partials each serving aggregate keeps (`None` when the tiles are
/// already laid out so), none over a `retyped` input column; an error names what an apply
/// would clear.
fn aggregate_map(
    stored: &AggregationLayoutV1,
    current: &AggregationLayoutV1,
    retyped: &[(&FieldV1, &FieldV1)],
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
    // A partial is `function(input)` (`registry::repository::aggregate_texts`).
    let over_retyped = |partial: &str| {
        let input = partial
            .strip_suffix(')')
            .and_then(|text| text.split_once('('))
            .map(|(_, input)| input);
        retyped
            .iter()
            .any(|(column, _)| Some(column.name.as_str()) == input)
    };
    if partials(stored) == partials(current) && retyped.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        current
            .aggregates
            .iter()
            .map(|wanted| {
                (stored.aggregates.iter())
                    .position(|a| a.partial == wanted.partial)
                    .filter(|_| !over_retyped(&wanted.partial))
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
        let moved = |to: Option<&ViewLayoutV1>| AcceptedLoss {
            view: view(),
            from: stored.clone(),
            to: to.cloned(),
            through: Vec::new(),
        };
        written.accept_loss(moved(Some(&retyped)));
        let remap = written.remap(&view(), &stored, Some(&retyped)).unwrap();
        assert_eq!(remap.columns, Some(vec![None, Some(1)]));
        assert!(!remap.dropped);
        // Only into the form the apply moved the data to: another is refused as ever.
        let other = layout(&[("credit", "string"), ("country", "string")]);
        assert!(written.remap(&view(), &stored, Some(&other)).is_err());

        let mut keyed = stored.clone();
        keyed.join_keys = vec![field("user_id", "int64")];
        for cleared in [Some(&keyed), Some(&aggregating(1, &[])), None] {
            written.accept_loss(moved(cleared));
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
            through: Vec::new(),
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
            vec![AcceptedLoss {
                through: vec![retyped],
                ..move_to(&stored, &retyped_appended)
            }]
        );
    }

    /// The first apply retypes `credit` (accepting the loss) and removes `country`; a later
    /// one adds `country` back. Rows still in the first form, read in the newest, read as the
    /// node that made both applies reads them: `credit` and `country` null (the first apply
    /// dropped their values), not `country`'s old value matched by name.
    #[test]
    fn a_carried_loss_reads_rows_through_every_form_between() {
        let stored = layout(&[
            ("credit", "float64"),
            ("country", "string"),
            ("age", "int64"),
        ]);
        let dropped = layout(&[("credit", "int64"), ("age", "int64")]);
        let added_back = layout(&[("credit", "int64"), ("age", "int64"), ("country", "string")]);
        let first = AcceptedLoss::of_move(&view(), &stored, Some(&dropped)).unwrap();
        let second = AcceptedLoss::of_move(&view(), &dropped, Some(&added_back));
        assert_eq!(second, None, "adding a feature back loses nothing");
        // Removing one needs no leave, but is recorded: a later form may add it back.
        let removing = AcceptedLoss {
            view: view(),
            from: stored.clone(),
            to: Some(layout(&[("credit", "float64"), ("age", "int64")])),
            through: Vec::new(),
        };
        assert_eq!(
            AcceptedLoss::to_record(std::slice::from_ref(&removing), &[], false),
            vec![removing.clone()]
        );
        // A later apply adding it back elsewhere carries that on, though the direct move loses
        // nothing; back in the very form it left, rows before and after look alike: nothing.
        let mut elsewhere = stored.clone();
        elsewhere.columns.rotate_left(1);
        let adding_back = |to: &ViewLayoutV1| AcceptedLoss {
            view: view(),
            from: removing.to.clone().unwrap(),
            to: Some(to.clone()),
            through: Vec::new(),
        };
        let carried = AcceptedLoss::to_record(
            &[adding_back(&elsewhere)],
            std::slice::from_ref(&removing),
            false,
        );
        assert_eq!(carried.len(), 1);
        assert_eq!(carried[0].through, vec![removing.to.clone().unwrap()]);
        assert!(AcceptedLoss::to_record(
            &[adding_back(&stored)],
            std::slice::from_ref(&removing),
            false
        )
        .is_empty());
        let carried = AcceptedLoss::to_record(
            &[AcceptedLoss {
                view: view(),
                from: dropped.clone(),
                to: Some(added_back.clone()),
                through: Vec::new(),
            }],
            std::slice::from_ref(&first),
            false,
        );
        assert_eq!(carried.len(), 1);
        assert_eq!(carried[0].through, vec![dropped.clone()]);
        // Named by its view and forms only: a replica looks it up by them.
        let direct = AcceptedLoss::of_move(&view(), &stored, Some(&added_back)).unwrap();
        assert_eq!(carried[0].name(), direct.name());

        let mut written = WrittenLayouts::in_stream(&crate::persist::format::ViewLayoutsV1 {
            views: vec![view()],
            layouts: vec![Some(stored.clone())],
        });
        written.accept_loss(carried[0].clone());
        let remap = written.remap(&view(), &stored, Some(&added_back)).unwrap();
        assert_eq!(remap.columns, Some(vec![None, Some(2), None]));
        // Without the form between, `country` would come back.
        written.accept_loss(direct);
        let skipping = written.remap(&view(), &stored, Some(&added_back)).unwrap();
        assert_eq!(skipping.columns, Some(vec![None, Some(2), Some(1)]));
    }

    /// An aggregate whose partial one apply left out starts empty when a later one adds it
    /// back; a cleared step leaves the rows out whatever follows.
    #[test]
    fn a_carried_loss_composes_aggregates_and_clears() {
        const HOUR: i64 = 3_600_000_000;
        let stored = aggregating(HOUR, &[("sum(amt)", "1d"), ("count(amt)", "1d")]);
        let removed = aggregating(HOUR, &[("count(amt)", "1d")]);
        let added_back = aggregating(HOUR, &[("count(amt)", "1d"), ("sum(amt)", "1d")]);
        let remap = remap_through(&view(), &stored, &[removed], Some(&added_back));
        assert_eq!(remap.aggregates, Some(vec![Some(1), None]));
        assert_eq!(remap.columns, None);
        let rekeyed = ViewLayoutV1 {
            join_keys: vec![field("user_id", "int64")],
            ..stored.clone()
        };
        let remap = remap_through(&view(), &stored, &[rekeyed], Some(&stored));
        assert!(remap.dropped);
    }

    /// An aggregating view's input column of another type (the loss accepted) reads null and
    /// its aggregates' tiles start empty, as the apply's reshape clears them; the others keep
    /// theirs.
    #[test]
    fn an_input_of_another_type_clears_the_tiles_over_it() {
        const HOUR: i64 = 3_600_000_000;
        let mut stored = aggregating(HOUR, &[("sum(amt)", "1d"), ("count(fee)", "1d")]);
        stored.columns = vec![field("amt", "float64"), field("fee", "float64")];
        let mut retyped = stored.clone();
        retyped.columns[0] = field("amt", "int64");
        assert!(AcceptedLoss::of_move(&view(), &stored, Some(&retyped)).is_some());
        let remap = remap_for(
            &view(),
            &stored,
            Some(&retyped),
            RowsIn::ClusterStream,
            true,
        )
        .unwrap();
        assert_eq!(remap.columns, Some(vec![None, Some(1)]));
        assert_eq!(remap.aggregates, Some(vec![None, Some(1)]));
    }

    /// A removed column is written out of the rows, even the last one: a later form that adds
    /// it back must not read its old value.
    #[test]
    fn a_removed_last_column_is_rewritten_out() {
        let stored = layout(&[("credit", "int64"), ("country", "string")]);
        let remap = remap_for(
            &view(),
            &stored,
            Some(&layout(&[("credit", "int64")])),
            RowsIn::DataDirectory,
            false,
        )
        .unwrap();
        assert_eq!(remap.columns, Some(vec![Some(0)]));
    }
}
