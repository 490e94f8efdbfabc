//! The Redis peer: a `redis-server` the harness starts without persistence, holding the same
//! rows as Quiver, laid out the way feature servers over Redis lay them out: one hash per
//! (view, key), one field per feature holding the value as it is served (Tecton's JSON
//! encoding, so a front end splices it without re-encoding). Aggregate features hold their
//! current values (what a batch job would materialise), so Redis computes no windows.
//! A read is one pipelined HGETALL per stored view of the service, done either by the load
//! generator itself (`redis-raw`) or by the front end in `redis_front` (`redis`).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{Map, Value as Json};

use super::dataset::{key_value, DataSet, KeyPicker};
use super::load::{CallOutcome, Client};
use super::peers::{Protocol, Target};
use super::process::{free_local_address, ChildServer};
use super::resp::{encode_command, Reply, RespConnection};
use super::BenchError;
use crate::registry::value::{TectonJson, Value};
use crate::registry::{FeatureService, FeatureView, Registry, ViewId, ViewKind};

/// Hashes written per pipeline while loading.
const LOAD_PIPELINE: u64 = 1000;

/// The RDB file a `SAVE` of the harness's Redis writes (in the temporary directory).
pub fn rdb_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("quiver-bench-{}.rdb", std::process::id()))
}

/// Starts `redis-server` on a free port, without automatic RDB snapshots or the append-only
/// file (a `SAVE` writes `rdb_path()`). `Ok(None)` when it is not installed.
pub fn start_redis() -> Result<Option<Target>, BenchError> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        return Ok(None);
    }
    let address = free_local_address()?;
    let mut command = Command::new("redis-server");
    command
        .args(["--bind", "127.0.0.1", "--port"])
        .arg(address.port().to_string())
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"]);
    let rdb = rdb_path();
    command
        .arg("--dir")
        .arg(rdb.parent().expect("a file in the temporary directory"))
        .arg("--dbfilename")
        .arg(rdb.file_name().expect("a file name"));
    let process = ChildServer::start_on("redis", command, address)?;
    Ok(Some(Target {
        name: "redis-raw".into(),
        address,
        protocol: Protocol::Resp,
        process: Some(process),
        backend_pid: None,
        workdir: None,
    }))
}

/// The hash holding `view`'s row for these join-key values (in the view's join-key order).
pub fn hash_key(view: &FeatureView, key_values: &[&Json]) -> Vec<u8> {
    let mut key = view.name.clone().into_bytes();
    for value in key_values {
        key.push(b':');
        key.extend_from_slice(value.to_string().as_bytes());
    }
    key
}

/// Writes every key of the data set's stored views (those not in `loaded`) into Redis.
pub async fn load_into_redis(
    data: &DataSet,
    address: SocketAddr,
    loaded: &mut BTreeSet<ViewId>,
) -> Result<(), BenchError> {
    let io = |e: std::io::Error| BenchError::Io(format!("redis at {address}"), e);
    let mut connection = RespConnection::connect(address).await.map_err(io)?;
    let mut rng = SmallRng::seed_from_u64(0);
    for view in data.stored_views() {
        if !loaded.insert(view.id) {
            continue;
        }
        let mut first = 0;
        while first < data.n_keys {
            let last = (first + LOAD_PIPELINE).min(data.n_keys);
            let mut commands = Vec::new();
            for index in first..last {
                let keys: Vec<Json> = view.join_keys.iter().map(|k| key_value(k, index)).collect();
                let mut args = vec![
                    b"HSET".to_vec(),
                    hash_key(view, &keys.iter().collect::<Vec<_>>()),
                ];
                for feature in &view.features {
                    let value = data.value(&feature.data_type, &mut rng);
                    let value = Value::from_json(&value, &feature.data_type)
                        .expect("generated values have their type");
                    args.push(feature.name.clone().into_bytes());
                    args.push(serde_json::to_vec(&TectonJson(&value)).expect("serialises"));
                }
                encode_command(
                    &mut commands,
                    &args.iter().map(Vec::as_slice).collect::<Vec<_>>(),
                );
            }
            let replies = connection
                .pipeline(&commands, (last - first) as usize)
                .await
                .map_err(io)?;
            if let Some(Reply::Error(error)) = replies.iter().find(|r| matches!(r, Reply::Error(_)))
            {
                return Err(BenchError::Load(
                    format!("redis HSET {}", view.name),
                    error.clone(),
                ));
            }
            first = last;
        }
    }
    Ok(())
}

/// Redis's own count of the memory its data uses (`used_memory` of `INFO memory`).
pub async fn used_memory(address: SocketAddr) -> Result<u64, BenchError> {
    let io = |e: std::io::Error| BenchError::Io(format!("redis at {address}"), e);
    let mut connection = RespConnection::connect(address).await.map_err(io)?;
    let mut command = Vec::new();
    encode_command(&mut command, &[b"INFO", b"memory"]);
    let replies = connection.pipeline(&command, 1).await.map_err(io)?;
    let Some(Reply::Bulk(Some(text))) = replies.first() else {
        return Err(BenchError::Load(
            "redis INFO".into(),
            format!("{replies:?}"),
        ));
    };
    String::from_utf8_lossy(text)
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| BenchError::Load("redis INFO".into(), "no used_memory".into()))
}

/// How one service's feature vector is read from Redis and put together.
pub struct ServiceReads {
    /// The stored views to read, in pipeline order.
    stored: Vec<ViewId>,
}

impl ServiceReads {
    pub fn new(registry: &Registry, service: &FeatureService) -> ServiceReads {
        let mut stored = Vec::new();
        for item in &service.items {
            for id in stored_views_of(registry, item.view) {
                if !stored.contains(&id) {
                    stored.push(id);
                }
            }
        }
        ServiceReads { stored }
    }

    /// Appends one HGETALL per stored view for the row with these join keys (by input name)
    /// and returns how many commands it appended.
    pub fn encode_reads(
        &self,
        registry: &Registry,
        join_keys: &Map<String, Json>,
        out: &mut Vec<u8>,
    ) -> usize {
        for id in &self.stored {
            let view = registry.view(*id);
            let values: Vec<&Json> = view
                .join_keys
                .iter()
                .map(|k| join_keys.get(&k.name).unwrap_or(&Json::Null))
                .collect();
            encode_command(out, &[b"HGETALL", &hash_key(view, &values)]);
        }
        self.stored.len()
    }

    /// The feature vector of one row, as Tecton's JSON list, from the replies of its reads.
    pub fn vector(
        &self,
        registry: &Registry,
        service: &FeatureService,
        request_context: &Map<String, Json>,
        replies: &[Reply],
    ) -> Result<String, String> {
        let mut hashes: HashMap<ViewId, HashMap<&[u8], &[u8]>> = HashMap::new();
        for (id, reply) in self.stored.iter().zip(replies) {
            let Reply::Array(Some(fields)) = reply else {
                return Err(format!("HGETALL answered {reply:?}"));
            };
            let pairs = fields.chunks(2).filter_map(|pair| match pair {
                [Reply::Bulk(Some(name)), Reply::Bulk(Some(value))] => {
                    Some((name.as_slice(), value.as_slice()))
                }
                _ => None,
            });
            hashes.insert(*id, pairs.collect());
        }
        let mut out = String::from("[");
        for item in &service.items {
            let view = registry.view(item.view);
            for index in &item.features {
                if out.len() > 1 {
                    out.push(',');
                }
                let feature = &view.features[*index];
                match &view.kind {
                    ViewKind::Realtime(spec) => {
                        let value = realtime_value(
                            registry,
                            spec,
                            *index,
                            &feature.data_type,
                            request_context,
                            &hashes,
                        );
                        out.push_str(
                            &serde_json::to_string(&TectonJson(&value)).expect("serialises"),
                        );
                    }
                    _ => {
                        let stored = hashes
                            .get(&item.view)
                            .and_then(|h| h.get(feature.name.as_bytes()));
                        match stored {
                            Some(text) => {
                                out.push_str(std::str::from_utf8(text).map_err(|e| e.to_string())?)
                            }
                            None => out.push_str("null"),
                        }
                    }
                }
            }
        }
        out.push(']');
        Ok(out)
    }
}

fn stored_views_of(registry: &Registry, id: ViewId) -> Vec<ViewId> {
    match &registry.view(id).kind {
        ViewKind::Realtime(spec) => spec.sources.iter().map(|(id, _)| *id).collect(),
        _ => vec![id],
    }
}

/// Evaluates a realtime feature as a feature server over Redis would: over the request context
/// and the upstream views' values read from their hashes.
fn realtime_value(
    registry: &Registry,
    spec: &crate::registry::realtime::RealtimeSpec,
    index: usize,
    data_type: &crate::registry::types::DataType,
    request_context: &Map<String, Json>,
    hashes: &HashMap<ViewId, HashMap<&[u8], &[u8]>>,
) -> Value {
    use crate::registry::realtime::{evaluate, map, to_cel};
    let request = map(spec.request_schema.iter().map(|field| {
        let value = request_context
            .get(&field.name)
            .and_then(|json| Value::from_json(json, &field.data_type).ok())
            .unwrap_or(Value::Null);
        (field.name.clone(), to_cel(&value))
    }));
    let mut variables = vec![("request", request)];
    for (source_id, source_name) in &spec.sources {
        let source = registry.view(*source_id);
        let hash = hashes.get(source_id);
        let features = source.features.iter().map(|feature| {
            let value = hash
                .and_then(|h| h.get(feature.name.as_bytes()))
                .and_then(|text| serde_json::from_slice::<Json>(text).ok())
                .and_then(|json| Value::from_json(&json, &feature.data_type).ok())
                .unwrap_or(Value::Null);
            (feature.name.clone(), to_cel(&value))
        });
        variables.push((source_name.as_str(), map(features)));
    }
    evaluate(&spec.programs[index], &variables, data_type)
}

/// The load generator speaking RESP straight to Redis: each call is the pipelined HGETALLs of
/// one GetFeatures (or of every row of a batch), keys drawn like the HTTP workloads'.
pub struct RedisRawClient {
    pub address: SocketAddr,
    pub data: Arc<DataSet>,
    pub keys: KeyPicker,
    pub rows: usize,
    pub reads: ServiceReads,
}

impl Client for RedisRawClient {
    type Connection = RespConnection;

    async fn connect(&self) -> Result<RespConnection, String> {
        RespConnection::connect(self.address)
            .await
            .map_err(|e| e.to_string())
    }

    async fn call(&self, connection: &mut RespConnection, rng: &mut SmallRng) -> CallOutcome {
        let mut commands = Vec::new();
        let mut count = 0;
        for _ in 0..self.rows {
            let row = self.data.request_data(&self.keys, rng);
            let join_keys = row["joinKeyMap"]
                .as_object()
                .expect("request data has keys");
            let join_keys = view_key_names(self.data.registry(), self.data.service(), join_keys);
            count += self
                .reads
                .encode_reads(self.data.registry(), &join_keys, &mut commands);
        }
        match connection.pipeline(&commands, count).await {
            Err(_) => CallOutcome::Broken("io".into()),
            Ok(replies) if replies.iter().any(|r| matches!(r, Reply::Error(_))) => {
                CallOutcome::Refused("redis error".into())
            }
            Ok(_) => CallOutcome::Succeeded,
        }
    }
}

/// The join keys of a request by the views' own key names (undoing the service's
/// `join_key_map` renames), which is how the hashes are named.
pub fn view_key_names(
    registry: &Registry,
    service: &FeatureService,
    join_keys: &Map<String, Json>,
) -> Map<String, Json> {
    let mut by_name = Map::new();
    for item in &service.items {
        let view = registry.view(item.view);
        for (key, input) in view.join_keys.iter().zip(&item.key_inputs) {
            let input_name = &service.input_join_keys[*input].name;
            if let Some(value) = join_keys.get(input_name) {
                by_name.insert(key.name.clone(), value.clone());
            }
        }
    }
    by_name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::dataset::demo_registry;

    fn hash(fields: &[(&str, &str)]) -> Reply {
        Reply::Array(Some(
            fields
                .iter()
                .flat_map(|(name, value)| {
                    [
                        Reply::Bulk(Some(name.as_bytes().to_vec())),
                        Reply::Bulk(Some(value.as_bytes().to_vec())),
                    ]
                })
                .collect(),
        ))
    }

    #[test]
    fn a_vector_is_put_together_from_the_hashes_in_service_order_with_realtime_features() {
        let registry = demo_registry();
        let service =
            &registry.workspace("prod").unwrap().services["fraud_detection_feature_service"];
        let reads = ServiceReads::new(&registry, service);
        let join_keys = serde_json::json!({"user_id": "u1", "merchant": "m1"});
        let mut commands = Vec::new();
        let count = reads.encode_reads(&registry, join_keys.as_object().unwrap(), &mut commands);
        let text = String::from_utf8_lossy(&commands);
        assert_eq!(text.matches("HGETALL").count(), count);
        assert!(text.contains("merchant_fraud_rate:\"m1\""), "{text}");
        assert!(
            text.contains("user_transaction_amount_metrics:\"u1\""),
            "{text}"
        );

        // Every stored view's hash is empty but one: the metrics the realtime feature reads.
        let replies: Vec<Reply> = reads
            .stored
            .iter()
            .map(|id| match registry.view(*id).name.as_str() {
                "user_transaction_amount_metrics" => hash(&[("amt_mean_1d_10m", "5.5")]),
                "user_distinct_merchant_transaction_count_30d" => {
                    hash(&[("distinct_merchant_transaction_count_30d", "\"669\"")])
                }
                _ => Reply::Array(Some(Vec::new())),
            })
            .collect();
        let context = serde_json::json!({"amount": 10.0});
        let vector = reads
            .vector(&registry, service, context.as_object().unwrap(), &replies)
            .unwrap();
        let values: Vec<Json> = serde_json::from_str(&vector).unwrap();
        assert_eq!(values.len(), service.n_features);
        // Tecton's order: the realtime view first, then merchant_fraud_rate's three, then the
        // distinct count, then the metrics.
        assert_eq!(values[0], Json::Bool(true));
        assert_eq!(values[1], Json::Null);
        assert_eq!(values[4], Json::String("669".into()));
        assert_eq!(values[5], serde_json::json!(5.5));
    }
}
