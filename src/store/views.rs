//! What the store knows of the repository, per view id: how journal records and snapshots name
//! the view, how it aggregates, the layout (generation of its stored form) its rows and tiles
//! have, that form described for snapshots and the journal (a layout number means nothing to
//! another process), and its watermark. One `StoreViews` is built per registry; an apply
//! builds the next one ([`StoreViews::reshaped`]) and hands it to the writer and every shard
//! in journal order.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::layouts::stored_form;
use super::replicated::LogForms;
use super::watermark::Watermarks;
use crate::metrics::ViewWrites;
use crate::persist::format::{ViewLayoutV1, ViewLayoutsV1, ViewRefV1};
use crate::registry::aggregation::AggregationSpec;
use crate::registry::{Layout, Registry, ViewId};

/// The store's table of views (index = view id; removed views' ids hold nothing).
#[derive(Debug)]
pub struct StoreViews {
    names: Vec<Option<ViewRefV1>>,
    ids: HashMap<ViewRefV1, ViewId>,
    specs: Vec<Option<Arc<AggregationSpec>>>,
    layouts: Vec<Layout>,
    /// The stored form each layout stands for (`None`: a realtime view, or a table built from
    /// names alone, whose form is not known).
    forms: Vec<Option<ViewLayoutV1>>,
    /// `forms` as a cluster's stream names them, made when a node first publishes rows under
    /// this table (never in single-node mode).
    log_forms: OnceLock<Arc<LogForms>>,
    pub(super) watermarks: Watermarks,
    /// Rows written per view since start (not counting recovery), for the console's ingest rate.
    pub(super) writes: ViewWrites,
}

impl StoreViews {
    /// Views by id (index = id), every one in its first layout.
    pub fn new(names: Vec<ViewRefV1>, specs: Vec<Option<Arc<AggregationSpec>>>) -> StoreViews {
        let n_views = names.len();
        StoreViews::build(
            names.into_iter().map(Some).collect(),
            specs,
            vec![0; n_views],
            vec![None; n_views],
            Watermarks::new(n_views),
            ViewWrites::new(n_views),
        )
    }

    /// The views of `registry`.
    pub fn of(registry: &Registry) -> StoreViews {
        let n_views = registry.view_id_bound();
        StoreViews::of_with(registry, Watermarks::new(n_views), ViewWrites::new(n_views))
    }

    /// The views of `registry`, an apply's successor of `self`: watermarks carry over except for
    /// the views `cleared` names (their stored data is gone); write counts carry over.
    pub fn reshaped(&self, registry: &Registry, cleared: impl Fn(ViewId) -> bool) -> StoreViews {
        let n_views = registry.view_id_bound();
        let watermarks = self.watermarks.carried(n_views, cleared);
        StoreViews::of_with(registry, watermarks, self.writes.grown(n_views))
    }

    fn of_with(registry: &Registry, watermarks: Watermarks, writes: ViewWrites) -> StoreViews {
        let n_views = registry.view_id_bound();
        let mut names = vec![None; n_views];
        let mut specs = vec![None; n_views];
        let mut layouts = vec![0; n_views];
        let mut forms = vec![None; n_views];
        for view in registry.views() {
            let id = view.id as usize;
            names[id] = Some(ViewRefV1 {
                workspace: view.workspace.clone(),
                view: view.name.clone(),
            });
            specs[id] = view.aggregation.clone();
            layouts[id] = view.layout;
            forms[id] = stored_form(view);
        }
        StoreViews::build(names, specs, layouts, forms, watermarks, writes)
    }

    fn build(
        names: Vec<Option<ViewRefV1>>,
        specs: Vec<Option<Arc<AggregationSpec>>>,
        layouts: Vec<Layout>,
        forms: Vec<Option<ViewLayoutV1>>,
        watermarks: Watermarks,
        writes: ViewWrites,
    ) -> StoreViews {
        let ids = names
            .iter()
            .enumerate()
            .filter_map(|(id, name)| Some((name.clone()?, id as ViewId)))
            .collect();
        StoreViews {
            names,
            ids,
            specs,
            layouts,
            forms,
            log_forms: OnceLock::new(),
            watermarks,
            writes,
        }
    }

    /// One past the highest view id.
    pub fn id_bound(&self) -> usize {
        self.names.len()
    }

    /// How journal records and snapshots name `view`.
    pub fn name(&self, view: ViewId) -> Option<&ViewRefV1> {
        self.names.get(view as usize)?.as_ref()
    }

    /// The names a snapshot's rows section lists, index = view id. A removed view's id holds
    /// no rows (its reshape cleared them) and is listed under an empty name no repository has.
    pub fn names_by_id(&self) -> Vec<ViewRefV1> {
        self.names
            .iter()
            .map(|name| {
                name.clone().unwrap_or_else(|| ViewRefV1 {
                    workspace: String::new(),
                    view: String::new(),
                })
            })
            .collect()
    }

    /// Every view's id and name.
    pub fn names(&self) -> impl Iterator<Item = (ViewId, &ViewRefV1)> {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(id, name)| Some((id as ViewId, name.as_ref()?)))
    }

    /// The id of the view a journal record or snapshot names.
    pub fn id(&self, name: &ViewRefV1) -> Option<ViewId> {
        self.ids.get(name).copied()
    }

    /// `view`'s aggregation, if it aggregates.
    pub fn spec(&self, view: ViewId) -> Option<&Arc<AggregationSpec>> {
        self.specs.get(view as usize)?.as_ref()
    }

    /// The layout `view`'s stored rows and tiles have.
    pub fn layout(&self, view: ViewId) -> Option<Layout> {
        self.name(view)?;
        self.layouts.get(view as usize).copied()
    }

    /// The stored form `view`'s rows and tiles have, if known.
    pub fn form(&self, view: ViewId) -> Option<&ViewLayoutV1> {
        self.forms.get(view as usize)?.as_ref()
    }

    /// Every view's stored form, index = view id (as `names_by_id`), for a snapshot's head.
    pub fn forms_by_id(&self) -> Vec<Option<ViewLayoutV1>> {
        self.forms.clone()
    }

    /// The journal's layouts record of this table: the form of each view's rows from here on.
    pub fn layouts_record(&self) -> ViewLayoutsV1 {
        let (views, layouts) = self
            .names()
            .map(|(id, name)| (name.clone(), self.form(id).cloned()))
            .unzip();
        ViewLayoutsV1 { views, layouts }
    }

    /// This table's forms as a cluster's stream names them (its layouts record).
    pub fn log_forms(&self) -> &Arc<LogForms> {
        self.log_forms
            .get_or_init(|| Arc::new(LogForms::of(self.layouts_record())))
    }
}
