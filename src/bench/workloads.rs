//! The workloads a bench run drives, each an HTTP request shape over a data set: GetFeatures of
//! one row and of a batch, `/ingest` of a batch of events, and the bulk loader's rows endpoint;
//! and the initial load of a data set into a server, through the same public endpoints.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::Value as Json;

use super::dataset::{key_value, recent_time, write_json, DataSet, KeyPicker, LoadTarget};
use super::feast::feast_request;
use super::http_client::{BodyMaker, HttpClient};
use super::progress::Progress;
use super::redis::{RedisRawClient, ServiceReads};
use super::BenchError;
use crate::registry::{Field, ViewId};

pub const GET_FEATURES_PATH: &str = "/api/v1/feature-service/get-features";
pub const GET_FEATURES_BATCH_PATH: &str = "/api/v1/feature-service/get-features-batch";
pub const INGEST_PATH: &str = "/ingest";
/// Feast's feature server's read endpoint.
const FEAST_PATH: &str = "/get-online-features";

/// Rows or events per request of the initial load.
const LOAD_CHUNK: u64 = 2000;

/// What one request of a workload is.
#[derive(Debug, Clone)]
pub enum RequestShape {
    GetFeatures,
    GetFeaturesBatch { rows: usize },
    Ingest { source: String, events: usize },
    BulkLoad { view: ViewId, rows: usize },
}

/// A named request shape over a data set.
#[derive(Clone)]
pub struct Workload {
    pub name: String,
    pub shape: RequestShape,
    data: Arc<DataSet>,
    keys: KeyPicker,
}

impl Workload {
    /// GetFeatures (single and batch) of the data set's service, and, when `writes` is set,
    /// `/ingest` into its first push source and the bulk loader into its first batch view.
    pub fn for_data_set(
        data: Arc<DataSet>,
        keys: &KeyPicker,
        batch_rows: usize,
        writes: Option<(usize, usize)>,
    ) -> Vec<Workload> {
        let service = data.service().name.clone();
        let mut shapes = vec![
            (format!("get_features {service}"), RequestShape::GetFeatures),
            (
                format!("get_features_batch({batch_rows}) {service}"),
                RequestShape::GetFeaturesBatch { rows: batch_rows },
            ),
        ];
        if let Some((events, rows)) = writes {
            for target in data.load_targets() {
                let already = |prefix: &str| shapes.iter().any(|(n, _)| n.starts_with(prefix));
                match target {
                    LoadTarget::Events(source) if !already("ingest") => shapes.push((
                        format!("ingest({events}) {source}"),
                        RequestShape::Ingest {
                            source: source.to_string(),
                            events,
                        },
                    )),
                    LoadTarget::Rows(view) if !already("bulk_load") => shapes.push((
                        format!("bulk_load({rows}) {}", view.name),
                        RequestShape::BulkLoad {
                            view: view.id,
                            rows,
                        },
                    )),
                    _ => {}
                }
            }
        }
        shapes
            .into_iter()
            .map(|(name, shape)| Workload {
                name,
                shape,
                data: data.clone(),
                keys: keys.clone(),
            })
            .collect()
    }

    pub fn service_name(&self) -> &str {
        &self.data.service().name
    }

    /// Rows or events per request.
    pub fn items_per_request(&self) -> u64 {
        match &self.shape {
            RequestShape::GetFeatures => 1,
            RequestShape::GetFeaturesBatch { rows } | RequestShape::BulkLoad { rows, .. } => {
                *rows as u64
            }
            RequestShape::Ingest { events, .. } => *events as u64,
        }
    }

    /// What the items of a request are, for throughput figures.
    pub fn item_unit(&self) -> &'static str {
        match self.shape {
            RequestShape::GetFeatures => "req",
            RequestShape::GetFeaturesBatch { .. } | RequestShape::BulkLoad { .. } => "rows",
            RequestShape::Ingest { .. } => "events",
        }
    }

    /// Whether the peers (which only read) can serve it.
    pub fn reads(&self) -> bool {
        matches!(
            self.shape,
            RequestShape::GetFeatures | RequestShape::GetFeaturesBatch { .. }
        )
    }

    pub fn path(&self) -> String {
        match &self.shape {
            RequestShape::GetFeatures => GET_FEATURES_PATH.into(),
            RequestShape::GetFeaturesBatch { .. } => GET_FEATURES_BATCH_PATH.into(),
            RequestShape::Ingest { .. } => INGEST_PATH.into(),
            RequestShape::BulkLoad { view, .. } => {
                let view = self.data.registry().view(*view);
                rows_path(&view.workspace, &view.name)
            }
        }
    }

    /// One request body, keys drawn from the workload's distribution.
    pub fn body(&self, rng: &mut SmallRng) -> Vec<u8> {
        let data = &self.data;
        match &self.shape {
            RequestShape::GetFeatures => data.get_features_body(None, &self.keys, rng),
            RequestShape::GetFeaturesBatch { rows } => {
                data.get_features_body(Some(*rows), &self.keys, rng)
            }
            RequestShape::Ingest { source, events } => {
                let target = LoadTarget::Events(source);
                let mut body = IngestBody::new(&data.service().workspace, source);
                for _ in 0..*events {
                    let at = recent_time(&target);
                    let key = self.keys.pick(rng);
                    body.record(|out| data.write_item(out, &target, key, at, rng));
                }
                body.finish()
            }
            RequestShape::BulkLoad { view, rows } => {
                let target = LoadTarget::Rows(data.registry().view(*view));
                let at = recent_time(&target);
                let mut body = Vec::new();
                for _ in 0..*rows {
                    let key = self.keys.pick(rng);
                    data.write_item(&mut body, &target, key, at, rng);
                    body.push(b'\n');
                }
                body
            }
        }
    }

    /// An HTTP client that sends this workload's requests to `address`.
    pub fn http_client(&self, address: SocketAddr, api_key: Option<&str>) -> HttpClient {
        let workload = self.clone();
        let make_body: BodyMaker = Box::new(move |rng| workload.body(rng));
        HttpClient::new(
            address,
            &self.path(),
            match self.shape {
                RequestShape::BulkLoad { .. } => "application/x-ndjson",
                _ => "application/json",
            },
            api_key.map(|key| format!("Tecton-key {key}")),
            make_body,
        )
    }

    /// Rows per read request.
    fn rows_per_read(&self) -> usize {
        match self.shape {
            RequestShape::GetFeaturesBatch { rows } => rows,
            _ => 1,
        }
    }

    /// A client reading this workload's rows straight from Redis (read workloads only).
    pub fn redis_client(&self, address: SocketAddr) -> RedisRawClient {
        RedisRawClient {
            address,
            data: self.data.clone(),
            keys: self.keys.clone(),
            rows: self.rows_per_read(),
            reads: ServiceReads::new(self.data.registry(), self.data.service()),
        }
    }

    /// A client asking Feast's feature server for this workload's rows (read workloads only).
    pub fn feast_client(&self, address: SocketAddr) -> HttpClient {
        let workload = self.clone();
        let make_body: BodyMaker = Box::new(move |rng| {
            let rows: Vec<Json> = (0..workload.rows_per_read())
                .map(|_| workload.data.request_data(&workload.keys, rng))
                .collect();
            feast_request(workload.service_name(), &rows)
                .to_string()
                .into_bytes()
        });
        HttpClient::new(address, FEAST_PATH, "application/json", None, make_body)
    }
}

fn rows_path(workspace: &str, view: &str) -> String {
    format!("/admin/workspaces/{workspace}/feature-views/{view}/rows")
}

/// An `/ingest` body written in place: `{"workspace_name":...,"dry_run":false,"records":
/// {source:[{"record":{...}},...]}}`.
struct IngestBody {
    body: Vec<u8>,
    records: usize,
}

impl IngestBody {
    fn new(workspace: &str, source: &str) -> IngestBody {
        let mut body = br#"{"workspace_name":"#.to_vec();
        write_json(&mut body, workspace);
        body.extend_from_slice(br#","dry_run":false,"records":{"#);
        write_json(&mut body, source);
        body.extend_from_slice(b":[");
        IngestBody { body, records: 0 }
    }

    /// Adds a record, the JSON object `write` appends.
    fn record(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.records > 0 {
            self.body.push(b',');
        }
        self.body.extend_from_slice(br#"{"record":"#);
        write(&mut self.body);
        self.body.push(b'}');
        self.records += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        self.body.extend_from_slice(b"]}}");
        self.body
    }
}

/// Items drawn for the initial load of one target (view or push source) and reused: their
/// join-key fields are written for each key, the rest (drawn once, as JSON text) is the same
/// every `LOAD_VARIANTS` keys. Drawing every value took the harness more CPU per row than
/// the server spent storing it, on the same cores.
struct LoadItems<'a> {
    target: &'a LoadTarget<'a>,
    key_fields: Vec<&'a Field>,
    /// For each of the target's load times (`DataSet::load_times`), the non-key members of
    /// drawn items: `"name":value,...`.
    rests: Vec<Vec<String>>,
}

const LOAD_VARIANTS: u64 = 1024;

impl<'a> LoadItems<'a> {
    fn new(data: &'a DataSet, target: &'a LoadTarget<'a>) -> LoadItems<'a> {
        let key_fields = data.key_fields(target);
        let mut rng = SmallRng::seed_from_u64(0);
        let rests = data
            .load_times(target)
            .into_iter()
            .map(|at| {
                (0..LOAD_VARIANTS)
                    .map(|index| {
                        data.item_members(target, index, at, &mut rng)
                            .filter(|(name, _)| !key_fields.iter().any(|key| key.name == *name))
                            .map(|(name, value)| format!("{}:{value}", Json::from(name)))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect()
            })
            .collect();
        LoadItems {
            target,
            key_fields,
            rests,
        }
    }

    /// Items a key: one at each load time.
    fn items_per_key(&self) -> u64 {
        self.rests.len() as u64
    }

    /// Appends the item of key number `index` at load time number `time` as a JSON object.
    fn write_item(&self, index: u64, time: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        for field in &self.key_fields {
            write_json(out, &field.name);
            out.push(b':');
            write_json(out, &key_value(field, index));
            out.push(b',');
        }
        out.extend_from_slice(self.rests[time][(index % LOAD_VARIANTS) as usize].as_bytes());
        out.push(b'}');
    }

    /// The request that loads keys `keys`: (path, content type, body).
    fn request(&self, data: &DataSet, keys: Range<u64>) -> (String, &'static str, Vec<u8>) {
        let times = 0..self.rests.len();
        match self.target {
            LoadTarget::Rows(view) => {
                let mut body = Vec::new();
                for index in keys {
                    for time in times.clone() {
                        self.write_item(index, time, &mut body);
                        body.push(b'\n');
                    }
                }
                (
                    rows_path(&view.workspace, &view.name),
                    "application/x-ndjson",
                    body,
                )
            }
            LoadTarget::Events(source) => {
                let mut body = IngestBody::new(&data.service().workspace, source);
                for index in keys {
                    for time in times.clone() {
                        body.record(|out| self.write_item(index, time, out));
                    }
                }
                (INGEST_PATH.to_string(), "application/json", body.finish())
            }
        }
    }
}

/// Loads keys `keys` of the data set into the server at `base_url` (batch views through the
/// bulk loader's endpoint, stream views through `/ingest`) over `connections` connections at
/// once, with progress, skipping the views and sources named in `loaded` (another data set
/// loaded them) and adding its own; returns how many rows and events it sent.
pub fn load_data_set(
    data: &DataSet,
    keys: Range<u64>,
    base_url: &str,
    api_key: &str,
    connections: usize,
    loaded: &mut BTreeSet<String>,
) -> Result<u64, BenchError> {
    let targets: Vec<LoadTarget> = data
        .load_targets()
        .into_iter()
        .filter(|target| {
            loaded.insert(match target {
                LoadTarget::Rows(view) => format!("view {}", view.name),
                LoadTarget::Events(source) => format!("source {source}"),
            })
        })
        .collect();
    let items: Vec<LoadItems> = targets
        .iter()
        .map(|target| LoadItems::new(data, target))
        .collect();
    let chunks: Vec<(&LoadItems, Range<u64>)> = items
        .iter()
        .flat_map(|items| {
            keys.clone()
                .step_by(LOAD_CHUNK as usize)
                .map(move |first| (items, first..(first + LOAD_CHUNK).min(keys.end)))
        })
        .collect();
    let total: u64 = items
        .iter()
        .map(|items| (keys.end - keys.start) * items.items_per_key())
        .sum();
    let progress = Progress::new(
        &format!("loading {} into quiver", data.service().name),
        total,
    );
    let next_chunk = AtomicUsize::new(0);
    let authorization = format!("Tecton-key {api_key}");
    let send_chunks = || -> Result<(), BenchError> {
        let agent = ureq::Agent::new();
        while let Some((items, range)) = chunks.get(next_chunk.fetch_add(1, Ordering::Relaxed)) {
            let (path, content_type, body) = items.request(data, range.clone());
            let sent = agent
                .post(&format!("{}{path}", base_url.trim_end_matches('/')))
                .set("Authorization", &authorization)
                .set("Content-Type", content_type)
                .send_bytes(&body);
            if let Err(error) = sent {
                // The other connections stop at their next chunk.
                next_chunk.store(chunks.len(), Ordering::Relaxed);
                return Err(BenchError::Load(path, error.to_string()));
            }
            progress.advance((range.end - range.start) * items.items_per_key());
        }
        Ok(())
    };
    let outcomes: Vec<Result<(), BenchError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections.max(1))
            .map(|_| scope.spawn(send_chunks))
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a loader thread does not panic"))
            .collect()
    });
    progress.finish();
    outcomes.into_iter().collect::<Result<(), _>>()?;
    Ok(total)
}

/// One answer of the server for a workload's first request (the bare handler's fixed answer).
pub fn sample_answer(
    workload: &Workload,
    base_url: &str,
    api_key: &str,
) -> Result<String, BenchError> {
    let body = workload.body(&mut SmallRng::seed_from_u64(0));
    let path = workload.path();
    let response = ureq::post(&format!("{}{path}", base_url.trim_end_matches('/')))
        .set("Authorization", &format!("Tecton-key {api_key}"))
        .set("Content-Type", "application/json")
        .send_bytes(&body)
        .map_err(|e| BenchError::Load(path.clone(), e.to_string()))?;
    response
        .into_string()
        .map_err(|e| BenchError::Load(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::dataset::demo_data_set;

    /// The items a write body carries: a bulk-load body's lines, an `/ingest` body's records
    /// (its envelope checked).
    fn sent_items(target: &LoadTarget, body: &[u8]) -> Vec<Json> {
        match target {
            LoadTarget::Rows(_) => std::str::from_utf8(body)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
            LoadTarget::Events(source) => {
                let body: Json = serde_json::from_slice(body).unwrap();
                assert_eq!(body["workspace_name"], "prod");
                assert_eq!(body["dry_run"], false);
                let records = body["records"][source].as_array().unwrap();
                records.iter().map(|r| r["record"].clone()).collect()
            }
        }
    }

    /// The member names of an item of `target`, as drawn.
    fn drawn_names<'a>(data: &'a DataSet, target: &LoadTarget<'a>) -> BTreeSet<&'a str> {
        let mut rng = SmallRng::seed_from_u64(0);
        data.item_members(target, 0, recent_time(target), &mut rng)
            .map(|(name, _)| name)
            .collect()
    }

    fn member_names(item: &Json) -> BTreeSet<&str> {
        item.as_object()
            .unwrap()
            .keys()
            .map(|n| n.as_str())
            .collect()
    }

    /// An `/ingest` workload's body holds its events and a bulk-load workload's body its
    /// rows, each item whole (every member `item_members` names) and every join key of an
    /// item holding the value of one drawn key.
    #[test]
    fn write_requests_hold_whole_items_each_of_one_key() {
        let data = Arc::new(demo_data_set("fraud_detection_feature_service", 1000));
        let keys = KeyPicker::new(1000, crate::bench::dataset::KeyDistribution::Uniform);
        let workloads = Workload::for_data_set(data.clone(), &keys, 10, Some((7, 5)));
        let writes: Vec<&Workload> = workloads.iter().filter(|w| !w.reads()).collect();
        assert_eq!(writes.len(), 2);
        for workload in writes {
            let target = match &workload.shape {
                RequestShape::Ingest { source, .. } => LoadTarget::Events(source),
                RequestShape::BulkLoad { view, .. } => {
                    LoadTarget::Rows(data.registry().view(*view))
                }
                _ => unreachable!("only writes"),
            };
            let items = sent_items(&target, &workload.body(&mut SmallRng::seed_from_u64(1)));
            assert_eq!(items.len() as u64, workload.items_per_request());
            let expected = drawn_names(&data, &target);
            let key_fields = data.key_fields(&target);
            assert!(!key_fields.is_empty());
            for item in &items {
                assert_eq!(member_names(item), expected, "{item}");
                let first = &item[&key_fields[0].name];
                let index = (0..1000)
                    .find(|i| key_value(key_fields[0], *i) == *first)
                    .expect("a key of the universe");
                for field in &key_fields {
                    assert_eq!(item[&field.name], key_value(field, index), "{item}");
                }
            }
        }
    }

    /// Every loaded item is a whole row or event (all its fields, typed as drawn), with the
    /// key values of its own key, whatever variant its other values come from.
    #[test]
    fn load_requests_hold_an_item_per_key_with_its_own_key_values() {
        let data = demo_data_set("user_risk_service", 5000);
        let targets = data.load_targets();
        assert!(targets.iter().any(|t| matches!(t, LoadTarget::Events(_))));
        for target in &targets {
            let items = LoadItems::new(&data, target);
            let expected = drawn_names(&data, target);
            let keys = 2990..3010;
            let (_, _, body) = items.request(&data, keys.clone());
            let sent = sent_items(target, &body);
            let per_key = data.load_times(target).len();
            assert_eq!(items.items_per_key(), per_key as u64);
            assert_eq!(sent.len(), keys.clone().count() * per_key);
            for (item, index) in sent
                .iter()
                .zip(keys.flat_map(|index| std::iter::repeat_n(index, per_key)))
            {
                assert_eq!(member_names(item), expected);
                for field in data.key_fields(target) {
                    assert_eq!(item[&field.name], key_value(field, index), "{item}");
                }
            }
        }
    }
}
