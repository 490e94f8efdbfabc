//! The Feast peer: Feast's Python feature server (`feast serve`) over its local (SQLite) online
//! store, in a virtualenv of its own (`pip install feast`, once, kept in the user's cache),
//! holding the same rows as Quiver: a Feast repository is generated from the data sets' views
//! and services, applied, and its online store written with `write_to_online_store`. Realtime
//! features are left out (Feast computes them in Python on-demand views, which cannot be
//! generated from CEL), so Feast serves the rest of each service; the report says so.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{json, Map, Value as Json};

use super::dataset::DataSet;
use super::peers::{Protocol, Target};
use super::process::{free_local_address, scratch_dir, ChildServer};
use super::BenchError;
use crate::registry::types::DataType;
use crate::registry::{FeatureView, ViewKind};

/// The loader: the harness's rows into Feast's online store, 10,000 per write.
const LOADER_SCRIPT: &str = r#"# Writes the rows the harness generated into Feast's online store.
import json
import pandas as pd
from feast import FeatureStore

store = FeatureStore(repo_path=".")
manifest = json.load(open("manifest.json"))
for view in manifest["views"]:
    rows = [json.loads(line) for line in open(view["file"])]
    for row in rows:
        for column, kind in view["columns"].items():
            if kind == "json":
                row[column] = json.dumps(row[column])
    frame = pd.DataFrame(rows)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    for column, kind in view["columns"].items():
        if kind == "timestamp":
            frame[column] = pd.to_datetime(frame[column], utc=True)
    for start in range(0, len(frame), 10000):
        store.write_to_online_store(view["name"], frame.iloc[start:start + 10000])
"#;

const FEATURE_STORE_YAML: &str = "project: quiver_bench
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online_store.db
offline_store:
  type: file
entity_key_serialization_version: 3
";

/// Where Feast's virtualenv lives between runs.
fn venv_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("quiver-bench").join("feast-venv")
}

/// Runs `command` to completion; its output, on failure, becomes the error.
fn run(what: &str, command: &mut Command) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("{what} could not run: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    Err(format!("{what} failed: {}", last.unwrap_or("no output")))
}

/// Makes the virtualenv and installs Feast into it, unless done by an earlier run.
fn install_feast(venv: &Path) -> Result<(), String> {
    if venv.join("bin/feast").exists() {
        return Ok(());
    }
    eprintln!(
        "installing Feast into {} (python3 -m venv; pip install feast): a few minutes, once",
        venv.display()
    );
    run(
        "python3 -m venv",
        Command::new("python3").args(["-m", "venv"]).arg(venv),
    )?;
    run(
        "pip install feast",
        Command::new(venv.join("bin/pip")).args(["install", "-q", "feast"]),
    )
}

/// Feast's type for one of ours, and how the loader converts the value: complex values are
/// served as their JSON text.
fn feast_type(data_type: &DataType) -> (String, &'static str) {
    let scalar = |data_type: &DataType| match data_type {
        DataType::Bool => Some("Bool"),
        DataType::Int64 => Some("Int64"),
        DataType::Float32 => Some("Float32"),
        DataType::Float64 => Some("Float64"),
        DataType::String => Some("String"),
        _ => None,
    };
    match data_type {
        DataType::Timestamp => ("UnixTimestamp".into(), "timestamp"),
        DataType::Array(element) => match scalar(element) {
            Some(name) => (format!("Array({name})"), "plain"),
            None => ("String".into(), "json"),
        },
        other => match scalar(other) {
            Some(name) => (name.into(), "plain"),
            None => ("String".into(), "json"),
        },
    }
}

/// The Feast repository (`features.py`) for the stored views and services of `data_sets`.
fn repository_python(views: &[&FeatureView], data_sets: &[Arc<DataSet>]) -> String {
    let mut python = String::from(
        "from datetime import timedelta\nfrom feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType\nfrom feast.types import Array, Bool, Float32, Float64, Int64, String, UnixTimestamp\n\nsource = FileSource(path=\"data/none.parquet\", timestamp_field=\"event_timestamp\")\n",
    );
    let mut entities = BTreeSet::new();
    for view in views {
        for key in &view.join_keys {
            if entities.insert(key.name.clone()) {
                let value_type = match key.data_type {
                    DataType::Int64 => "INT64",
                    _ => "STRING",
                };
                let _ = writeln!(
                    python,
                    "entity_{0} = Entity(name=\"{0}\", join_keys=[\"{0}\"], value_type=ValueType.{value_type})",
                    key.name
                );
            }
        }
    }
    for view in views {
        let entities: Vec<String> = view
            .join_keys
            .iter()
            .map(|k| format!("entity_{}", k.name))
            .collect();
        let mut fields: Vec<String> = view
            .join_keys
            .iter()
            .map(|k| {
                format!(
                    "Field(name=\"{}\", dtype={})",
                    k.name,
                    feast_type(&k.data_type).0
                )
            })
            .collect();
        fields.extend(view.features.iter().map(|f| {
            format!(
                "Field(name=\"{}\", dtype={})",
                f.name,
                feast_type(&f.data_type).0
            )
        }));
        let _ = writeln!(
            python,
            "view_{0} = FeatureView(name=\"{0}\", entities=[{1}], ttl=timedelta(0), online=True, source=source, schema=[{2}])",
            view.name,
            entities.join(", "),
            fields.join(", ")
        );
    }
    for data in data_sets {
        let service = data.service();
        let mut items: Vec<String> = Vec::new();
        for item in &service.items {
            let view = data.registry().view(item.view);
            if !matches!(view.kind, ViewKind::Realtime(_)) {
                // The service's selection of the view's features, as Feast's projection.
                let selected: Vec<String> = item
                    .features
                    .iter()
                    .map(|i| format!("\"{}\"", view.features[*i].name))
                    .collect();
                items.push(format!("view_{}[[{}]]", view.name, selected.join(", ")));
            }
        }
        let _ = writeln!(
            python,
            "service_{0} = FeatureService(name=\"{0}\", features=[{1}])",
            service.name,
            items.join(", ")
        );
    }
    python
}

/// Installs Feast if needed, generates and applies its repository, writes the data sets' rows
/// into its online store and starts `feast serve`. `Ok(Err(why))` when Feast cannot be used.
pub fn start_feast(data_sets: &[Arc<DataSet>]) -> Result<Result<Target, String>, BenchError> {
    let venv = venv_dir();
    if let Err(why) = install_feast(&venv) {
        return Ok(Err(why));
    }
    let scratch = scratch_dir("feast")?;
    let dir = scratch.0.clone();
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |e| BenchError::Io(path, e)
    };
    std::fs::create_dir_all(dir.join("data")).map_err(io(&dir))?;

    let mut views: Vec<&FeatureView> = Vec::new();
    for data in data_sets {
        for view in data.stored_views() {
            if !views.iter().any(|v| v.id == view.id) {
                views.push(view);
            }
        }
    }
    let mut manifest = Vec::new();
    let mut rng = SmallRng::seed_from_u64(0);
    let data = &data_sets[0];
    for view in &views {
        let file = format!("data/{}.jsonl", view.name);
        let mut rows = String::new();
        for index in 0..data.n_keys {
            let mut row = Map::new();
            for key in &view.join_keys {
                row.insert(key.name.clone(), super::dataset::key_value(key, index));
            }
            for feature in &view.features {
                row.insert(
                    feature.name.clone(),
                    data.value(&feature.data_type, &mut rng),
                );
            }
            row.insert(
                "event_timestamp".into(),
                json!(crate::time::format_timestamp(crate::time::now_micros())),
            );
            rows.push_str(&Json::Object(row).to_string());
            rows.push('\n');
        }
        std::fs::write(dir.join(&file), rows).map_err(io(&dir))?;
        let columns: Map<String, Json> = view
            .features
            .iter()
            .map(|f| (f.name.clone(), json!(feast_type(&f.data_type).1)))
            .collect();
        manifest.push(json!({"name": view.name, "file": file, "columns": columns}));
    }
    let files = [
        ("feature_store.yaml", FEATURE_STORE_YAML.to_string()),
        ("features.py", repository_python(&views, data_sets)),
        ("load.py", LOADER_SCRIPT.to_string()),
        // `feast apply` imports every Python file of the repository, unless ignored here.
        (".feastignore", "load.py\n".to_string()),
        ("manifest.json", json!({ "views": manifest }).to_string()),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).map_err(io(&dir))?;
    }
    let feast = venv.join("bin/feast");
    let python = venv.join("bin/python");
    if let Err(why) = run(
        "feast apply",
        Command::new(&feast).arg("apply").current_dir(&dir),
    )
    .and_then(|()| {
        run(
            "the Feast loader",
            Command::new(&python).arg("load.py").current_dir(&dir),
        )
    }) {
        return Ok(Err(why));
    }
    let address = free_local_address()?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut command = Command::new(&feast);
    command
        .args(["serve", "--host", "127.0.0.1", "--no-access-log", "--port"])
        .arg(address.port().to_string())
        .args(["--workers", &workers.to_string()])
        // Gunicorn's default recycles a worker every 1,000 requests, dropping its connections.
        .args(["--max-requests", "0"])
        .current_dir(&dir);
    let process = ChildServer::start_on("feast", command, address)?;
    Ok(Ok(Target {
        name: "feast".into(),
        address,
        protocol: Protocol::Feast,
        process: Some(process),
        backend_pid: None,
        workdir: Some(scratch),
    }))
}

/// Feast's request for these rows (`{"joinKeyMap": ...}` objects): the service's entities as
/// columns of values.
pub fn feast_request(service: &str, rows: &[Json]) -> Json {
    let mut entities: Map<String, Json> = Map::new();
    for row in rows {
        if let Some(keys) = row["joinKeyMap"].as_object() {
            for (name, value) in keys {
                let column = entities.entry(name.clone()).or_insert_with(|| json!([]));
                column.as_array_mut().expect("a column").push(value.clone());
            }
        }
    }
    json!({"feature_service": service, "entities": entities, "full_feature_names": true})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_to_feast_s_or_to_json_text() {
        assert_eq!(feast_type(&DataType::Int64), ("Int64".into(), "plain"));
        assert_eq!(
            feast_type(&DataType::Array(Box::new(DataType::String))),
            ("Array(String)".into(), "plain")
        );
        assert_eq!(
            feast_type(&DataType::Timestamp),
            ("UnixTimestamp".into(), "timestamp")
        );
        assert_eq!(
            feast_type(&DataType::Map(Box::new(DataType::Float64))),
            ("String".into(), "json")
        );
    }

    #[test]
    fn a_batch_request_has_one_column_per_entity() {
        let rows = [
            json!({"joinKeyMap": {"user_id": "key_1", "merchant": "key_2"}}),
            json!({"joinKeyMap": {"user_id": "key_3", "merchant": "key_4"}}),
        ];
        let request = feast_request("s", &rows);
        assert_eq!(request["entities"]["user_id"], json!(["key_1", "key_3"]));
        assert_eq!(request["entities"]["merchant"], json!(["key_2", "key_4"]));
        assert_eq!(request["feature_service"], "s");
    }
}
