//! The JSON of the console's read-only routes (`/console/api/...`): the store's usage per view
//! and per shard, and the request history. Sizes are bytes, rates per second, durations
//! milliseconds, times RFC 3339.

use serde_json::{json, Value as Json};

use crate::metrics::History;
use crate::persist::format::ViewRefV1;
use crate::store::{ShardUsage, ViewUsage};
use crate::time::{format_timestamp, Micros, MICROS_PER_SECOND};

/// One view's line of the Store page.
pub struct ViewLine<'a> {
    pub view: &'a ViewRefV1,
    pub usage: ViewUsage,
    pub newest_event: Option<Micros>,
    pub rows_per_second: f64,
}

pub fn store(now: Micros, views: &[ViewLine], shards: &[ShardUsage]) -> Json {
    let views: Vec<Json> = views
        .iter()
        .map(|line| {
            json!({
                "workspace": line.view.workspace,
                "featureView": line.view.view,
                "rows": line.usage.rows,
                "bytes": line.usage.payload_bytes,
                "aggregatedKeys": line.usage.aggregated_keys,
                "newestEvent": line.newest_event.map(format_timestamp),
                "freshnessSeconds": line.newest_event
                    .map(|t| (now - t) as f64 / MICROS_PER_SECOND as f64),
                "ingestRowsPerSecond": line.rows_per_second,
            })
        })
        .collect();
    let shards: Vec<Json> = shards
        .iter()
        .enumerate()
        .map(|(shard, usage)| {
            json!({
                "shard": shard,
                "rows": usage.rows,
                "arenaMappedBytes": usage.arena_mapped_bytes,
                "arenaLiveBytes": usage.arena_used_bytes - usage.arena_dead_bytes,
                "arenaDeadBytes": usage.arena_dead_bytes,
            })
        })
        .collect();
    json!({"at": format_timestamp(now), "views": views, "shards": shards})
}

pub fn requests(history: &History, sample_every_seconds: u64) -> Json {
    let millis = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let samples: Vec<Json> = history
        .samples
        .iter()
        .map(|sample| {
            let seconds = sample.period.as_secs_f64();
            json!({
                "at": format_timestamp(sample.at),
                "requests": sample.requests,
                "perSecond": if seconds > 0.0 { sample.requests as f64 / seconds } else { 0.0 },
                "p50Ms": millis(sample.p50),
                "p99Ms": millis(sample.p99),
            })
        })
        .collect();
    json!({"sampleEverySeconds": sample_every_seconds, "samples": samples})
}
