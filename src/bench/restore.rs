//! Restart time with the data set on disk: Quiver starting from a snapshot of it (taken with
//! `POST /admin/snapshots`) against redis-server loading an RDB file of the same rows. Both
//! clocks run from the process's start until it answers, so both include starting up.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dataset::DataSet;
use super::peers::{start_quiver, Target};
use super::process::{free_local_address, scratch_dir, ChildServer};
use super::redis::rdb_path;
use super::resp::{encode_command, Reply, RespConnection};
use super::workloads::load_data_set;
use super::BenchError;

/// How long a snapshot or a restart may take.
const PATIENCE: Duration = Duration::from_secs(600);

/// One restart: how long it took and how big the file it read was.
#[derive(Debug, Clone)]
pub struct RestoreFigure {
    pub target: String,
    pub seconds: f64,
    pub file_bytes: u64,
}

/// A file removed when dropped.
struct ScratchFile(PathBuf);

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Loads the data sets into a Quiver with a data directory, snapshots it, stops it, and times
/// a restart from the snapshot.
pub fn quiver_restore(
    config: &Path,
    admin_key: &str,
    data_sets: &[Arc<DataSet>],
    load_connections: usize,
) -> Result<RestoreFigure, BenchError> {
    let scratch = scratch_dir("restore")?;
    let quiver = start_quiver(config, admin_key, Some(&scratch.0))?;
    let mut loaded = BTreeSet::new();
    for data in data_sets {
        load_data_set(
            data,
            0..data.n_keys,
            &quiver.base_url(),
            admin_key,
            load_connections,
            &mut loaded,
        )?;
    }
    let file_bytes = take_snapshot(&quiver.base_url(), admin_key)?;
    drop(quiver);
    let started = Instant::now();
    let restarted = start_quiver(config, admin_key, Some(&scratch.0))?;
    let seconds = started.elapsed().as_secs_f64();
    drop(restarted);
    Ok(RestoreFigure {
        target: "quiver (snapshot)".into(),
        seconds,
        file_bytes,
    })
}

/// Takes a snapshot and waits until its file is listed; returns its size.
fn take_snapshot(base_url: &str, admin_key: &str) -> Result<u64, BenchError> {
    let authorization = format!("Tecton-key {admin_key}");
    let url = format!("{base_url}/admin/snapshots");
    let failed = |e: String| BenchError::Load("/admin/snapshots".into(), e);
    let answer = |request: ureq::Request| -> Result<serde_json::Value, BenchError> {
        let response = request
            .set("Authorization", &authorization)
            .call()
            .map_err(|e| failed(e.to_string()))?;
        response.into_json().map_err(|e| failed(e.to_string()))
    };
    let started = answer(ureq::post(&url))?;
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let listing = answer(ureq::get(&url))?;
        let snapshot = listing["snapshots"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["id"] == started["id"]));
        if let Some(bytes) = snapshot.and_then(|s| s["bytes"].as_u64()) {
            return Ok(bytes);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(failed("the snapshot was not written in time".into()))
}

/// Saves the loaded Redis to its RDB file and times a second redis-server loading it.
pub fn redis_restore(redis: &Target) -> Result<RestoreFigure, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let io = |e: std::io::Error| BenchError::Io("redis".into(), e);
    runtime.block_on(async {
        let mut connection = RespConnection::connect(redis.address).await.map_err(io)?;
        let mut save = Vec::new();
        encode_command(&mut save, &[b"SAVE"]);
        match connection.pipeline(&save, 1).await.map_err(io)?.as_slice() {
            [Reply::Simple(_)] => Ok(()),
            other => Err(BenchError::Load("redis SAVE".into(), format!("{other:?}"))),
        }
    })?;
    let rdb = ScratchFile(rdb_path());
    let file_bytes = std::fs::metadata(&rdb.0)
        .map_err(|e| BenchError::Io(rdb.0.display().to_string(), e))?
        .len();
    let address = free_local_address()?;
    let mut command = Command::new("redis-server");
    command
        .args(["--bind", "127.0.0.1", "--port"])
        .arg(address.port().to_string())
        .arg("--dir")
        .arg(rdb.0.parent().expect("a file in the temporary directory"))
        .arg("--dbfilename")
        .arg(rdb.0.file_name().expect("a file name"))
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"]);
    let started = Instant::now();
    let restarted = ChildServer::start_on("redis-restore", command, address)?;
    // Redis accepts connections while it loads and answers -LOADING until it is done.
    runtime.block_on(async {
        let mut ping = Vec::new();
        encode_command(&mut ping, &[b"PING"]);
        let mut connection = RespConnection::connect(address).await.map_err(io)?;
        while started.elapsed() < PATIENCE {
            if connection.pipeline(&ping, 1).await.map_err(io)? == [Reply::Simple("PONG".into())] {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(BenchError::Load(
            "redis restart".into(),
            "it never answered PING".into(),
        ))
    })?;
    let seconds = started.elapsed().as_secs_f64();
    drop(restarted);
    Ok(RestoreFigure {
        target: "redis (RDB)".into(),
        seconds,
        file_bytes,
    })
}
