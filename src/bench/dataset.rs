//! The synthetic data set of one feature service: for every join key, a universe of `n_keys`
//! values; for every view the service reads, rows (batch views, sent to the bulk loader) or
//! events (stream views, sent to their push source's `/ingest`); and request bodies for
//! GetFeatures with keys drawn from a distribution. Values are random but typed by the
//! repository's schemas, so the server validates and stores them like real data.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Zipf};
use serde_json::{json, Map, Value as Json};

use super::BenchError;
use crate::registry::types::DataType;
use crate::registry::{FeatureService, FeatureView, Field, Registry, ViewKind};
use crate::time::{format_timestamp, now_micros, Micros, MICROS_PER_SECOND};

/// How request keys are drawn from the key universe.
#[derive(Debug, Clone, Copy, PartialEq, clap::ValueEnum)]
pub enum KeyDistribution {
    Uniform,
    /// Zipf with exponent 1: a few hot keys take most requests.
    Zipf,
}

/// Draws key indexes in `0..n_keys`.
#[derive(Debug, Clone)]
pub struct KeyPicker {
    n_keys: u64,
    zipf: Option<Zipf<f64>>,
}

impl KeyPicker {
    pub fn new(n_keys: u64, distribution: KeyDistribution) -> KeyPicker {
        let n_keys = n_keys.max(1);
        let zipf = match distribution {
            KeyDistribution::Uniform => None,
            KeyDistribution::Zipf => {
                Some(Zipf::new(n_keys as f64, 1.0).expect("n >= 1 and s = 1 are valid"))
            }
        };
        KeyPicker { n_keys, zipf }
    }

    pub fn pick(&self, rng: &mut SmallRng) -> u64 {
        match &self.zipf {
            // Zipf samples ranks 1..=n; rank 1 is the hottest key.
            Some(zipf) => (zipf.sample(rng) as u64).clamp(1, self.n_keys) - 1,
            None => rng.random_range(0..self.n_keys),
        }
    }
}

/// The value of key number `index` of a join key: the same for every view that uses the key,
/// whatever the key is called in the view or the service.
pub fn key_value(field: &Field, index: u64) -> Json {
    match field.data_type {
        DataType::Int64 => json!(index),
        _ => json!(format!("key_{index}")),
    }
}

/// `value` as JSON text at the end of `body`.
pub fn write_json(body: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(body, value).expect("strings and JSON values serialise");
}

/// `{"name":value,...}` at the end of `body`, the members in the order `members` gives them.
fn write_object<'a>(body: &mut Vec<u8>, members: impl Iterator<Item = (&'a str, Json)>) {
    use serde::Serializer;
    (&mut serde_json::Serializer::new(body))
        .collect_map(members)
        .expect("strings and JSON values serialise");
}

/// A moment ago, as the bench has always timed what no tile waits for: a row a minute back,
/// an event a second back.
pub fn recent_time(target: &LoadTarget) -> Micros {
    now_micros()
        - match target {
            LoadTarget::Rows(_) => 60 * MICROS_PER_SECOND,
            LoadTarget::Events(_) => MICROS_PER_SECOND,
        }
}

/// One feature service's data set shape. It owns its registry, so request generators built on
/// it can live on the load generator's threads.
pub struct DataSet {
    registry: Arc<Registry>,
    workspace: String,
    service_name: String,
    pub n_keys: u64,
    /// Characters in every generated string value.
    pub string_bytes: usize,
    /// Every join key name of the views the service reads, found once: an event's fields are
    /// matched against them for every event the load generator writes.
    join_key_names: Vec<String>,
}

/// What must be sent to a server to hold the data set: rows per batch view, events per push
/// source.
pub enum LoadTarget<'a> {
    /// Rows for `POST /admin/workspaces/{ws}/feature-views/{view}/rows`.
    Rows(&'a FeatureView),
    /// Events for `POST /ingest` into this push source.
    Events(&'a str),
}

impl DataSet {
    pub fn new(
        registry: Arc<Registry>,
        workspace: &str,
        service: &str,
        n_keys: u64,
        string_bytes: usize,
    ) -> Result<DataSet, BenchError> {
        if registry
            .workspace(workspace)
            .and_then(|ws| ws.services.get(service))
            .is_none()
        {
            return Err(BenchError::UnknownService(format!("{workspace}.{service}")));
        }
        let mut data = DataSet {
            registry,
            workspace: workspace.to_string(),
            service_name: service.to_string(),
            n_keys,
            string_bytes,
            join_key_names: Vec::new(),
        };
        data.join_key_names = (data.stored_views().into_iter())
            .flat_map(|view| view.join_keys.iter().map(|key| key.name.clone()))
            .collect();
        Ok(data)
    }

    /// Whether `field` holds a join key of the views the service reads.
    fn is_join_key(&self, field: &Field) -> bool {
        self.join_key_names.contains(&field.name)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn service(&self) -> &FeatureService {
        self.registry
            .workspace(&self.workspace)
            .and_then(|ws| ws.services.get(&self.service_name))
            .expect("checked when the data set was made")
    }

    /// The stored views the service reads, directly or through a realtime view's sources.
    pub fn stored_views(&self) -> Vec<&FeatureView> {
        let mut views: Vec<&FeatureView> = Vec::new();
        for item in &self.service().items {
            let view = self.registry.view(item.view);
            let upstream = match &view.kind {
                ViewKind::Realtime(spec) => spec
                    .sources
                    .iter()
                    .map(|(id, _)| self.registry.view(*id))
                    .collect(),
                _ => vec![view],
            };
            for view in upstream {
                if !views.iter().any(|v| v.id == view.id) {
                    views.push(view);
                }
            }
        }
        views
    }

    /// Where the data set's rows go: each batch view, and each push source once (it feeds
    /// every view subscribed to it).
    pub fn load_targets(&self) -> Vec<LoadTarget<'_>> {
        let mut targets = Vec::new();
        let mut sources: Vec<&str> = Vec::new();
        for view in self.stored_views() {
            match &view.kind {
                ViewKind::Stream { source } if !sources.contains(&source.as_str()) => {
                    sources.push(source);
                    targets.push(LoadTarget::Events(source));
                }
                ViewKind::Stream { .. } | ViewKind::Realtime(_) => {}
                ViewKind::Batch => targets.push(LoadTarget::Rows(view)),
            }
        }
        targets
    }

    /// The members of a row (batch view) or event (push source) of a load target for key
    /// number `index` at event time `at`, in the order the bulk loader and `/ingest` read
    /// them; values are drawn as the members are iterated.
    pub fn item_members<'a: 'r, 'r>(
        &'a self,
        target: &LoadTarget<'a>,
        index: u64,
        at: Micros,
        rng: &'r mut SmallRng,
    ) -> Box<dyn Iterator<Item = (&'a str, Json)> + 'r> {
        match *target {
            LoadTarget::Rows(view) => {
                let keys = view.join_keys.iter();
                let timestamp = (view.timestamp_field.as_str(), json!(format_timestamp(at)));
                let columns = view.row_columns.iter();
                Box::new(
                    keys.map(move |key| (key.name.as_str(), key_value(key, index)))
                        .chain(std::iter::once(timestamp))
                        .chain(columns.map(move |column| {
                            (column.name.as_str(), self.value(&column.data_type, rng))
                        })),
                )
            }
            LoadTarget::Events(source) => {
                Box::new(self.push_source_schema(source).iter().map(move |field| {
                    let value = if self.is_join_key(field) {
                        key_value(field, index)
                    } else if field.data_type == DataType::Timestamp {
                        json!(format_timestamp(at))
                    } else {
                        self.value(&field.data_type, rng)
                    };
                    (field.name.as_str(), value)
                }))
            }
        }
    }

    /// `item_members` as a JSON object at the end of `body`. Built as a `serde_json::Map`
    /// first (names cloned, an ordered map an item) and then printed, an `/ingest` body of
    /// 100 events cost the load generator about half the server's CPU for it.
    pub fn write_item(
        &self,
        body: &mut Vec<u8>,
        target: &LoadTarget,
        index: u64,
        at: Micros,
        rng: &mut SmallRng,
    ) {
        write_object(body, self.item_members(target, index, at, rng));
    }

    /// When a load target's items happen: one item a key at each of these times. An
    /// aggregating view answers from whole tiles only (its windows end at the last tile
    /// boundary), so an item at the moment of loading would count in no window until its tile
    /// closes, and the service would answer no data for the run. So each tile width of the
    /// aggregating views the target feeds gets a time in the middle of its last complete tile,
    /// as in a store that has taken events for a while; a target feeding none, a moment ago.
    pub fn load_times(&self, target: &LoadTarget) -> Vec<Micros> {
        let now = now_micros();
        let mut widths: Vec<Micros> = self
            .stored_views()
            .into_iter()
            .filter(|view| match (target, &view.kind) {
                (LoadTarget::Rows(rows_view), _) => rows_view.id == view.id,
                (LoadTarget::Events(source), ViewKind::Stream { source: fed_by }) => {
                    fed_by == source
                }
                (LoadTarget::Events(_), _) => false,
            })
            .filter_map(|view| view.aggregation.as_ref().map(|spec| spec.interval))
            .collect();
        widths.sort_unstable();
        widths.dedup();
        if widths.is_empty() {
            return vec![recent_time(target)];
        }
        widths
            .into_iter()
            .map(|width| now - now.rem_euclid(width) - width / 2)
            .collect()
    }

    /// The fields of a load target's items that hold key values (all the rest is drawn).
    pub fn key_fields<'a>(&'a self, target: &LoadTarget<'a>) -> Vec<&'a Field> {
        match target {
            LoadTarget::Rows(view) => view.join_keys.iter().collect(),
            LoadTarget::Events(source) => self
                .push_source_schema(source)
                .iter()
                .filter(|field| self.is_join_key(field))
                .collect(),
        }
    }

    fn push_source_schema(&self, source: &str) -> &[Field] {
        &self
            .registry
            .workspace(&self.workspace)
            .and_then(|ws| ws.push_sources.get(source))
            .expect("load targets name the workspace's push sources")
            .schema
    }

    /// `{"joinKeyMap": ..., "requestContextMap": ...}` for keys drawn with `keys`.
    pub fn request_data(&self, keys: &KeyPicker, rng: &mut SmallRng) -> Json {
        let service = self.service();
        let join_keys: Map<String, Json> = service
            .input_join_keys
            .iter()
            .map(|key| (key.name.clone(), key_value(key, keys.pick(rng))))
            .collect();
        let context: Map<String, Json> = service
            .request_context_keys
            .iter()
            .map(|field| (field.name.clone(), self.value(&field.data_type, rng)))
            .collect();
        json!({"joinKeyMap": join_keys, "requestContextMap": context})
    }

    /// A GetFeatures body (`batch` = None) or a GetFeaturesBatch body of `batch` rows, as JSON
    /// text: what `request_data` draws, in the same order of draws, written as it is drawn.
    /// Built as `serde_json::Value`s (an ordered map an object, a SipHash a member, the row
    /// maps cloned) and then printed, a body cost the load generator more CPU than the rest
    /// of its request, on the cores it shares with the server.
    pub fn get_features_body(
        &self,
        batch: Option<usize>,
        keys: &KeyPicker,
        rng: &mut SmallRng,
    ) -> Vec<u8> {
        let mut body = Vec::with_capacity(128 + 96 * batch.unwrap_or(1));
        body.extend_from_slice(br#"{"params":{"workspaceName":"#);
        write_json(&mut body, &self.workspace);
        body.extend_from_slice(br#","featureServiceName":"#);
        write_json(&mut body, &self.service_name);
        match batch {
            None => {
                body.push(b',');
                self.write_request_data(&mut body, keys, rng);
            }
            Some(rows) => {
                body.extend_from_slice(br#","requestData":["#);
                for row in 0..rows {
                    if row > 0 {
                        body.push(b',');
                    }
                    body.push(b'{');
                    self.write_request_data(&mut body, keys, rng);
                    body.push(b'}');
                }
                body.push(b']');
            }
        }
        body.extend_from_slice(b"}}");
        body
    }

    /// `"joinKeyMap":{...},"requestContextMap":{...}` (`request_data`'s members) into `body`.
    fn write_request_data(&self, body: &mut Vec<u8>, keys: &KeyPicker, rng: &mut SmallRng) {
        let service = self.service();
        body.extend_from_slice(br#""joinKeyMap":"#);
        let join_keys = service.input_join_keys.iter();
        write_object(
            body,
            join_keys.map(|key| (key.name.as_str(), key_value(key, keys.pick(rng)))),
        );
        body.extend_from_slice(br#","requestContextMap":"#);
        let context = service.request_context_keys.iter();
        write_object(
            body,
            context.map(|field| (field.name.as_str(), self.value(&field.data_type, rng))),
        );
    }

    /// A random value of `data_type`, strings `string_bytes` long.
    pub fn value(&self, data_type: &DataType, rng: &mut SmallRng) -> Json {
        match data_type {
            DataType::Bool => json!(rng.random_bool(0.5)),
            DataType::Int64 => json!(rng.random_range(0..1000)),
            DataType::Float32 | DataType::Float64 => {
                json!((rng.random_range(0.0..1000.0f64) * 100.0).round() / 100.0)
            }
            DataType::String => json!(random_string(rng, self.string_bytes)),
            DataType::Timestamp => json!(format_timestamp(
                now_micros() - rng.random_range(0..86_400) * MICROS_PER_SECOND
            )),
            DataType::Array(element) => (0..3).map(|_| self.value(element, rng)).collect(),
            DataType::Struct(fields) => Json::Object(
                fields
                    .iter()
                    .map(|f| (f.name.clone(), self.value(&f.data_type, rng)))
                    .collect(),
            ),
            DataType::Map(element) => Json::Object(
                (0..2)
                    .map(|i| (format!("k{i}"), self.value(element, rng)))
                    .collect(),
            ),
        }
    }
}

/// A data set of the demo's `prod` service `service`, `n_keys` keys, for tests.
#[cfg(test)]
pub(crate) fn demo_data_set(service: &str, n_keys: u64) -> DataSet {
    DataSet::new(Arc::new(demo_registry()), "prod", service, n_keys, 8).unwrap()
}

/// The demo repository's `prod` workspace, for tests.
#[cfg(test)]
pub(crate) fn demo_registry() -> Registry {
    crate::registry::load_registry(&[crate::registry::WorkspaceSource {
        name: "prod".into(),
        live: true,
        repository: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("features/prod"),
    }])
    .expect("the demo repository loads")
}

fn random_string(rng: &mut impl Rng, length: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..length)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn zipf_keys_favour_the_first_keys_and_stay_in_range() {
        let picker = KeyPicker::new(1000, KeyDistribution::Zipf);
        let mut rng = SmallRng::seed_from_u64(1);
        let picks: Vec<u64> = (0..10_000).map(|_| picker.pick(&mut rng)).collect();
        assert!(picks.iter().all(|&k| k < 1000));
        let hottest = picks.iter().filter(|&&k| k == 0).count();
        let median_key = picks.iter().filter(|&&k| k == 500).count();
        assert!(
            hottest > 10 * median_key.max(1),
            "{hottest} vs {median_key}"
        );
    }

    #[test]
    fn uniform_keys_cover_the_universe() {
        let picker = KeyPicker::new(10, KeyDistribution::Uniform);
        let mut rng = SmallRng::seed_from_u64(2);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[picker.pick(&mut rng) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    /// The bodies written as text hold what `request_data` draws from the same seed, in the
    /// shapes GetFeatures and GetFeaturesBatch read.
    #[test]
    fn request_bodies_hold_the_rows_request_data_draws() {
        let data = demo_data_set("fraud_detection_feature_service", 1000);
        let keys = KeyPicker::new(1000, KeyDistribution::Uniform);
        let drawn = |seed, rows: usize| -> Vec<Json> {
            let mut rng = SmallRng::seed_from_u64(seed);
            (0..rows)
                .map(|_| data.request_data(&keys, &mut rng))
                .collect()
        };
        let body = |seed, batch| -> Json {
            let mut rng = SmallRng::seed_from_u64(seed);
            serde_json::from_slice(&data.get_features_body(batch, &keys, &mut rng)).unwrap()
        };
        let row = &drawn(3, 1)[0];
        assert_eq!(
            body(3, None),
            json!({"params": {
                "workspaceName": "prod",
                "featureServiceName": "fraud_detection_feature_service",
                "joinKeyMap": row["joinKeyMap"],
                "requestContextMap": row["requestContextMap"],
            }})
        );
        assert!(row["requestContextMap"]["amount"].is_number(), "{row}");
        assert_eq!(
            body(4, Some(3)),
            json!({"params": {
                "workspaceName": "prod",
                "featureServiceName": "fraud_detection_feature_service",
                "requestData": drawn(4, 3),
            }})
        );
    }

    /// The seed service's push source feeds views tiled by 10 minutes and by a day: each key
    /// gets an event in the middle of the last complete tile of each width, so every window
    /// (which ends at its last tile boundary) holds it; a batch view without tiles, a row of a
    /// minute ago.
    #[test]
    fn load_times_fall_in_the_last_complete_tile_of_each_width_the_target_feeds() {
        let data = demo_data_set("fraud_detection_feature_service", 10);
        let before = now_micros();
        let targets = data.load_targets();
        let times = |wanted: &dyn Fn(&LoadTarget) -> bool| {
            data.load_times(targets.iter().find(|t| wanted(t)).expect("a target"))
        };
        let events = times(&|t| matches!(t, LoadTarget::Events("transactions")));
        let after = now_micros();
        let minute = 60 * MICROS_PER_SECOND;
        assert_eq!(events.len(), 2, "{events:?}");
        for (time, width) in events.iter().zip([10 * minute, 24 * 60 * minute]) {
            // In the tile before the one `now` is in, at its middle.
            let last_boundary = after - after.rem_euclid(width);
            assert!(
                *time == last_boundary - width / 2
                    || *time == before - before.rem_euclid(width) - width / 2,
                "{time} for tiles of {width}"
            );
            assert!(*time < before - before.rem_euclid(width));
        }
        let rows = times(&|t| matches!(t, LoadTarget::Rows(view) if view.aggregation.is_none()));
        assert_eq!(rows.len(), 1);
        assert!((before - 60 * MICROS_PER_SECOND..=after).contains(&rows[0]));
    }
}
