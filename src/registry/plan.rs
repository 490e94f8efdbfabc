//! Planning a repository change: what differs between the repository a server serves and the one
//! wanted (objects added, removed and changed per workspace, with the properties that changed),
//! and what each change does to the data already stored. `quiver plan` prints a [`Plan`];
//! `quiver apply` will execute one, so every change says exactly what apply must do.
//!
//! The effect rules, from mildest to harshest ([`Effect`]):
//! - no stored data: entities, push sources, feature services, realtime views and a workspace's
//!   live flag hold no rows, so changing them touches nothing stored;
//! - kept: the stored rows or tiles stay valid. A ttl or leading-edge change applies at read
//!   time; a new feature column of a row view reads null until written; a removed feature is no
//!   longer served; descriptions and tags are metadata; a stream view's source or timestamp
//!   field only changes how new input is read; a removed aggregate whose partial (function over column) another
//!   aggregate still keeps loses nothing;
//! - re-derived: a new aggregate, or a new window for an existing one, at the same tile interval
//!   and with a partial the view already keeps per tile, is answered from the existing tiles
//!   (back as far as the old horizon kept them);
//! - empty until loaded: a new stored view, or an aggregate with a partial no tile holds yet,
//!   starts empty and fills as rows are loaded or events ingested;
//! - dropped: the stored form is no longer valid and is cleared: a removed view (or workspace),
//!   new join keys, a feature (or an aggregating view's input column) whose type or source
//!   column changed, a new tile interval, a view
//!   turned into or out of an aggregating one, a changed compaction, an aggregate whose partial
//!   no other aggregate keeps. Apply refuses such a plan without `--allow-data-loss`.
//!
//! A changed object's effect is its harshest property change's. A stored view's property with no
//! rule here is rated dropped, so a property added to the description later cannot lose data
//! without the plan saying so.

use std::collections::BTreeSet;

use serde_json::{json, Value as Json};

use super::repository::{aggregate_partial, ObjectKind, Properties, Repository};

/// What a change does to stored data, mildest first (so `max` is the harshest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    NoData,
    Kept,
    Rederived,
    EmptyUntilLoaded,
    Dropped,
}

impl Effect {
    /// The words a plan uses.
    pub fn text(self) -> &'static str {
        match self {
            Effect::NoData => "no stored data",
            Effect::Kept => "kept",
            Effect::Rederived => "re-derived",
            Effect::EmptyUntilLoaded => "empty until loaded",
            Effect::Dropped => "dropped",
        }
    }
}

/// Whether an object or property is new, gone or different.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Remove,
    Change,
}

impl Action {
    /// Terraform's markers: `+`, `-`, `~`.
    pub fn sign(self) -> char {
        match self {
            Action::Add => '+',
            Action::Remove => '-',
            Action::Change => '~',
        }
    }

    fn word(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
            Action::Change => "change",
        }
    }
}

/// The difference between two repositories.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The content hashes of the repository served and of the one wanted.
    pub from_hash: String,
    pub to_hash: String,
    /// Only workspaces with changes, in name order.
    pub workspaces: Vec<WorkspacePlan>,
}

/// The changes to one workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspacePlan {
    pub name: String,
    pub action: Action,
    /// `(before, after)` when the workspace switches between live and development.
    pub live: Option<(bool, bool)>,
    /// By kind, then name.
    pub objects: Vec<ObjectChange>,
}

/// One object added, removed or changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChange {
    pub kind: ObjectKind,
    pub name: String,
    pub action: Action,
    pub effect: Effect,
    /// For a change: the properties that differ, in name order.
    pub properties: Vec<PropertyChange>,
}

/// One property that differs.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyChange {
    pub name: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub effect: Effect,
    /// Why the effect is what it is, for the reviewer.
    pub reason: String,
}

impl PropertyChange {
    pub fn action(&self) -> Action {
        match (&self.before, &self.after) {
            (None, _) => Action::Add,
            (_, None) => Action::Remove,
            _ => Action::Change,
        }
    }
}

impl Plan {
    /// What it takes to go from the repository `served` to the repository `wanted`.
    pub fn between(served: &Repository, wanted: &Repository) -> Plan {
        let names: BTreeSet<&String> = served
            .workspaces
            .keys()
            .chain(wanted.workspaces.keys())
            .collect();
        let empty = Default::default();
        let workspaces = names
            .into_iter()
            .filter_map(|name| {
                let before = served.workspaces.get(name);
                let after = wanted.workspaces.get(name);
                let action = match (before, after) {
                    (None, _) => Action::Add,
                    (_, None) => Action::Remove,
                    _ => Action::Change,
                };
                let (before, after) = (before.unwrap_or(&empty), after.unwrap_or(&empty));
                let live = match action {
                    Action::Change if before.live != after.live => Some((before.live, after.live)),
                    _ => None,
                };
                let mut objects = Vec::new();
                for kind in ObjectKind::ALL {
                    let names: BTreeSet<&String> = before
                        .objects_of(kind)
                        .chain(after.objects_of(kind))
                        .map(|(name, _)| name)
                        .collect();
                    objects.extend(names.into_iter().filter_map(|name| {
                        object_change(
                            kind,
                            name,
                            before.object(kind, name),
                            after.object(kind, name),
                        )
                    }));
                }
                let changed = action != Action::Change || live.is_some() || !objects.is_empty();
                changed.then(|| WorkspacePlan {
                    name: name.clone(),
                    action,
                    live,
                    objects,
                })
            })
            .collect();
        Plan {
            from_hash: served.content_hash(),
            to_hash: wanted.content_hash(),
            workspaces,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.workspaces.is_empty()
    }

    /// Whether applying it would clear stored data (apply then needs `--allow-data-loss`).
    pub fn drops_data(&self) -> bool {
        self.changes().any(|c| c.effect == Effect::Dropped)
    }

    pub fn changes(&self) -> impl Iterator<Item = &ObjectChange> {
        self.workspaces.iter().flat_map(|w| &w.objects)
    }

    /// How many objects are added, changed and removed.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |action| self.changes().filter(|c| c.action == action).count();
        (
            count(Action::Add),
            count(Action::Change),
            count(Action::Remove),
        )
    }

    /// The plan as `quiver plan --json` prints it.
    pub fn to_json(&self) -> Json {
        let workspaces: Vec<Json> = self
            .workspaces
            .iter()
            .map(|w| {
                let objects: Vec<Json> = w
                    .objects
                    .iter()
                    .map(|o| {
                        let properties: Vec<Json> = o
                            .properties
                            .iter()
                            .map(|p| {
                                json!({"name": p.name, "action": p.action().word(),
                                       "before": p.before, "after": p.after,
                                       "effect": p.effect.text(), "reason": p.reason})
                            })
                            .collect();
                        json!({"kind": o.kind.name(), "name": o.name, "action": o.action.word(),
                               "effect": o.effect.text(), "properties": properties})
                    })
                    .collect();
                let live = w
                    .live
                    .map(|(before, after)| json!({"before": before, "after": after}));
                json!({"name": w.name, "action": w.action.word(), "live": live, "objects": objects})
            })
            .collect();
        let (add, change, remove) = self.counts();
        json!({
            "fromHash": self.from_hash,
            "toHash": self.to_hash,
            "changes": !self.is_empty(),
            "dropsData": self.drops_data(),
            "summary": {"add": add, "change": change, "remove": remove},
            "workspaces": workspaces,
        })
    }
}

fn is_stored_view(kind: ObjectKind, props: &Properties) -> bool {
    kind == ObjectKind::FeatureView && props.get("kind").is_some_and(|k| k != "realtime")
}

fn object_change(
    kind: ObjectKind,
    name: &str,
    before: Option<&Properties>,
    after: Option<&Properties>,
) -> Option<ObjectChange> {
    let change = |action, effect, properties| ObjectChange {
        kind,
        name: name.to_string(),
        action,
        effect,
        properties,
    };
    match (before, after) {
        (None, Some(after)) => Some(change(
            Action::Add,
            if is_stored_view(kind, after) {
                Effect::EmptyUntilLoaded
            } else {
                Effect::NoData
            },
            Vec::new(),
        )),
        (Some(before), None) => Some(change(
            Action::Remove,
            if is_stored_view(kind, before) {
                Effect::Dropped
            } else {
                Effect::NoData
            },
            Vec::new(),
        )),
        (Some(before), Some(after)) if before != after => {
            let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
            let properties: Vec<PropertyChange> = keys
                .into_iter()
                .filter(|key| before.get(*key) != after.get(*key))
                .map(|key| {
                    let (effect, reason) =
                        if is_stored_view(kind, before) && is_stored_view(kind, after) {
                            stored_view_effect(key, before, after)
                        } else if kind == ObjectKind::FeatureView && key == "kind" {
                            kind_effect(before, after)
                        } else {
                            (Effect::NoData, "nothing stored".to_string())
                        };
                    PropertyChange {
                        name: key.clone(),
                        before: before.get(key).cloned(),
                        after: after.get(key).cloned(),
                        effect,
                        reason,
                    }
                })
                .collect();
            let effect = properties
                .iter()
                .map(|p| p.effect)
                .max()
                .unwrap_or(Effect::NoData);
            Some(change(Action::Change, effect, properties))
        }
        _ => None,
    }
}

/// A view turned into or out of a realtime one.
fn kind_effect(before: &Properties, after: &Properties) -> (Effect, String) {
    if is_stored_view(ObjectKind::FeatureView, before) {
        (Effect::Dropped, "a realtime view stores no rows".into())
    } else if is_stored_view(ObjectKind::FeatureView, after) {
        (Effect::EmptyUntilLoaded, "a new stored view".into())
    } else {
        (Effect::NoData, "nothing stored".into())
    }
}

/// The effect of one property change of a view that stores rows or tiles, before and after.
fn stored_view_effect(key: &str, before: &Properties, after: &Properties) -> (Effect, String) {
    let old = before.get(key);
    let new = after.get(key);
    let (group, _) = key.split_once('.').unwrap_or((key, ""));
    let result = |effect, reason: &str| (effect, reason.to_string());
    match group {
        "kind" => result(Effect::Kept, "batch and stream views store the same rows"),
        "ttl" | "aggregation_leading_edge" => result(Effect::Kept, "applies at read time"),
        "description" | "tags" | "descriptions" | "feature_tags" => {
            result(Effect::Kept, "metadata only")
        }
        "source" | "timestamp_field" => result(Effect::Kept, "changes how new input is read"),
        "join_keys" => result(Effect::Dropped, "rows are keyed by the join keys"),
        "aggregation_interval" => result(Effect::Dropped, "tiles are cut at the interval"),
        "compaction" => result(Effect::Dropped, "compaction changes the tiles' widths"),
        "inputs" => match (old, new) {
            (Some(_), Some(_)) => {
                result(Effect::Dropped, "the tiles of its aggregates are cleared")
            }
            _ => result(Effect::Kept, "read by its aggregates"),
        },
        "features" => match (old, new) {
            (None, _) => result(Effect::Kept, "new column reads null until written"),
            (_, None) => result(Effect::Kept, "no longer served"),
            _ => result(Effect::Dropped, "stored values no longer fit"),
        },
        "aggregates" => {
            let removed = old.map(|old| aggregate_removed(old, after));
            let added = new.map(|new| aggregate_added(new, before, after));
            removed
                .into_iter()
                .chain(added)
                .max_by_key(|(effect, _)| *effect)
                .expect("a changed property is present before or after")
        }
        _ => result(Effect::Dropped, "unknown property"),
    }
}

/// The partials (`mean(amt)`) of a view's aggregates, with the aggregate keeping each.
fn partials(props: &Properties) -> impl Iterator<Item = (&str, &str)> {
    props.iter().filter_map(|(key, value)| {
        let name = key.strip_prefix("aggregates.")?;
        Some((aggregate_partial(value), name))
    })
}

/// An aggregate gone (or no longer this partial): its partial is lost unless another aggregate
/// still keeps it.
fn aggregate_removed(old: &str, after: &Properties) -> (Effect, String) {
    let partial = aggregate_partial(old);
    match partials(after).find(|(p, _)| *p == partial) {
        Some(_) => (Effect::Kept, format!("`{partial}` is still kept per tile")),
        None => (
            Effect::Dropped,
            format!("the `{partial}` tiles are cleared"),
        ),
    }
}

/// An aggregate new (or now this partial): answered from existing tiles if the view already
/// keeps its partial at the same interval.
fn aggregate_added(new: &str, before: &Properties, after: &Properties) -> (Effect, String) {
    let partial = aggregate_partial(new);
    let same_interval = before.get("aggregation_interval") == after.get("aggregation_interval");
    match partials(before).find(|(p, _)| *p == partial) {
        Some((_, source)) if same_interval => {
            (Effect::Rederived, format!("from the tiles of `{source}`"))
        }
        _ => (
            Effect::EmptyUntilLoaded,
            format!("no tile holds `{partial}` yet"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::repository::{WorkspaceDescription, REPOSITORY_FORMAT};

    fn props(pairs: &[(&str, &str)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn batch_view() -> Properties {
        props(&[
            ("kind", "batch"),
            ("join_keys", "user_id:string"),
            ("timestamp_field", "timestamp"),
            ("ttl", "30d"),
            ("features.credit_score", "int64"),
        ])
    }

    fn aggregating_view() -> Properties {
        props(&[
            ("kind", "stream"),
            ("source", "transactions"),
            ("join_keys", "user_id:string"),
            ("timestamp_field", "timestamp"),
            ("aggregation_interval", "10m"),
            ("aggregation_leading_edge", "WallClockTime"),
            ("aggregates.amt_mean_1h_10m", "mean(amt) over 1h"),
            ("aggregates.amt_sum_1h_10m", "sum(amt) over 1h"),
            ("inputs.amt", "float64"),
        ])
    }

    fn repository(views: &[(&str, Properties)], services: &[&str]) -> Repository {
        let mut workspace = WorkspaceDescription {
            live: true,
            ..Default::default()
        };
        for (name, view) in views {
            workspace
                .objects
                .entry(ObjectKind::FeatureView)
                .or_default()
                .insert(name.to_string(), view.clone());
        }
        for name in services {
            workspace
                .objects
                .entry(ObjectKind::FeatureService)
                .or_default()
                .insert(name.to_string(), props(&[("features.v.a", "v.a")]));
        }
        Repository {
            workspaces: [("prod".to_string(), workspace)].into(),
        }
    }

    /// The plan of changing view `v` from `before` to `after`: its one object change.
    fn view_change(before: Properties, after: Properties) -> ObjectChange {
        let plan = Plan::between(
            &repository(&[("v", before)], &[]),
            &repository(&[("v", after)], &[]),
        );
        let changes: Vec<&ObjectChange> = plan.changes().collect();
        assert_eq!(changes.len(), 1, "{plan:#?}");
        changes[0].clone()
    }

    fn with(mut view: Properties, key: &str, value: Option<&str>) -> Properties {
        match value {
            Some(value) => view.insert(key.to_string(), value.to_string()),
            None => view.remove(key),
        };
        view
    }

    #[test]
    fn identical_repositories_plan_nothing_and_hash_alike() {
        let plan = Plan::between(
            &repository(&[("v", batch_view())], &["s"]),
            &repository(&[("v", batch_view())], &["s"]),
        );
        assert!(plan.is_empty());
        assert_eq!(plan.from_hash, plan.to_hash);
        assert!(!plan.drops_data());
    }

    #[test]
    fn a_new_view_is_empty_until_loaded_and_a_removed_one_dropped() {
        let plan = Plan::between(
            &repository(&[("old", batch_view())], &[]),
            &repository(&[("new", batch_view())], &[]),
        );
        let effects: Vec<(&str, Action, Effect)> = plan
            .changes()
            .map(|c| (c.name.as_str(), c.action, c.effect))
            .collect();
        assert_eq!(
            effects,
            [
                ("new", Action::Add, Effect::EmptyUntilLoaded),
                ("old", Action::Remove, Effect::Dropped)
            ]
        );
        assert!(plan.drops_data());
        assert_ne!(plan.from_hash, plan.to_hash);
    }

    #[test]
    fn a_new_feature_column_is_kept_and_reads_null() {
        let change = view_change(
            batch_view(),
            with(batch_view(), "features.fico", Some("int64")),
        );
        assert_eq!(change.effect, Effect::Kept);
        assert_eq!(change.properties[0].action(), Action::Add);
        assert!(change.properties[0].reason.contains("null until written"));
    }

    #[test]
    fn a_ttl_change_is_kept_and_applies_at_read_time() {
        let change = view_change(batch_view(), with(batch_view(), "ttl", Some("60d")));
        assert_eq!(change.effect, Effect::Kept);
        assert_eq!(change.properties[0].before.as_deref(), Some("30d"));
        assert_eq!(change.properties[0].after.as_deref(), Some("60d"));
    }

    #[test]
    fn a_changed_feature_type_or_join_key_drops_the_rows() {
        let retyped = view_change(
            batch_view(),
            with(batch_view(), "features.credit_score", Some("float64")),
        );
        assert_eq!(retyped.effect, Effect::Dropped);
        let rekeyed = view_change(
            batch_view(),
            with(batch_view(), "join_keys", Some("account_id:string")),
        );
        assert_eq!(rekeyed.effect, Effect::Dropped);
    }

    #[test]
    fn a_new_window_over_a_kept_partial_is_rederived_from_the_tiles() {
        let change = view_change(
            aggregating_view(),
            with(
                aggregating_view(),
                "aggregates.amt_mean_7d_10m",
                Some("mean(amt) over 7d"),
            ),
        );
        assert_eq!(change.effect, Effect::Rederived);
        assert!(change.properties[0].reason.contains("amt_mean_1h_10m"));
    }

    #[test]
    fn a_new_function_starts_empty() {
        let change = view_change(
            aggregating_view(),
            with(
                aggregating_view(),
                "aggregates.amt_max_1h_10m",
                Some("max(amt) over 1h"),
            ),
        );
        assert_eq!(change.effect, Effect::EmptyUntilLoaded);
    }

    #[test]
    fn an_interval_change_drops_the_tiles_and_no_window_is_rederived() {
        let after = with(aggregating_view(), "aggregation_interval", Some("1h"));
        let after = with(
            after,
            "aggregates.amt_mean_1d_1h",
            Some("mean(amt) over 1d"),
        );
        let change = view_change(aggregating_view(), after);
        assert_eq!(change.effect, Effect::Dropped);
        let added = &change.properties[0];
        assert_eq!(added.name, "aggregates.amt_mean_1d_1h");
        assert_eq!(added.effect, Effect::EmptyUntilLoaded);
    }

    /// The tiles keep partials of the input's values: a new type clears them (as the apply's
    /// reshape does), so the plan says so and apply asks for `--allow-data-loss`.
    #[test]
    fn an_input_column_of_another_type_drops_its_tiles() {
        let retyped = view_change(
            aggregating_view(),
            with(aggregating_view(), "inputs.amt", Some("int64")),
        );
        assert_eq!(retyped.effect, Effect::Dropped);
        assert_eq!(retyped.properties[0].name, "inputs.amt");
        let new_input = view_change(
            aggregating_view(),
            with(
                with(aggregating_view(), "inputs.fee", Some("float64")),
                "aggregates.fee_sum_1h_10m",
                Some("sum(fee) over 1h"),
            ),
        );
        assert_eq!(new_input.effect, Effect::EmptyUntilLoaded);
    }

    #[test]
    fn a_changed_function_drops_its_tiles_unless_another_aggregate_keeps_them() {
        let changed = view_change(
            aggregating_view(),
            with(
                aggregating_view(),
                "aggregates.amt_sum_1h_10m",
                Some("max(amt) over 1h"),
            ),
        );
        assert_eq!(changed.effect, Effect::Dropped);
        let removed_but_shared = view_change(
            with(
                aggregating_view(),
                "aggregates.amt_mean_1d_10m",
                Some("mean(amt) over 1d"),
            ),
            aggregating_view(),
        );
        assert_eq!(removed_but_shared.effect, Effect::Kept);
        let window_only = view_change(
            aggregating_view(),
            with(
                aggregating_view(),
                "aggregates.amt_sum_1h_10m",
                Some("sum(amt) over 2h"),
            ),
        );
        assert_eq!(window_only.effect, Effect::Rederived);
    }

    #[test]
    fn services_and_workspace_flags_touch_no_stored_data() {
        let mut wanted = repository(&[("v", batch_view())], &["s", "t"]);
        wanted.workspaces.get_mut("prod").unwrap().live = false;
        let plan = Plan::between(&repository(&[("v", batch_view())], &["s"]), &wanted);
        assert_eq!(plan.workspaces[0].live, Some((true, false)));
        let change = plan.changes().next().unwrap();
        assert_eq!(
            (change.action, change.effect),
            (Action::Add, Effect::NoData)
        );
        assert!(!plan.drops_data());
        assert_eq!(plan.counts(), (1, 0, 0));
    }

    #[test]
    fn a_removed_workspace_drops_its_views() {
        let plan = Plan::between(
            &repository(&[("v", batch_view())], &[]),
            &Repository::default(),
        );
        assert_eq!(plan.workspaces[0].action, Action::Remove);
        assert!(plan.drops_data());
    }

    #[test]
    fn the_json_form_reads_back_identically() {
        let original = repository(&[("v", aggregating_view())], &["s"]);
        let json = original.to_json();
        let read = Repository::from_json(&json).unwrap();
        assert_eq!(read, original);
        assert_eq!(json["hash"], original.content_hash());
        let mut future = json.clone();
        future["format"] = serde_json::json!(REPOSITORY_FORMAT + 1);
        assert!(Repository::from_json(&future)
            .unwrap_err()
            .to_string()
            .contains(&format!("format {}", REPOSITORY_FORMAT + 1)));
        let mut tampered = json.clone();
        tampered["workspaces"]["prod"]["feature_views"]["v"]["aggregation_interval"] =
            serde_json::json!("1h");
        assert!(Repository::from_json(&tampered)
            .unwrap_err()
            .to_string()
            .contains("is not that of its content"));
    }
}
