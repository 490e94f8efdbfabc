//! The servers a run measures: Quiver (started by the harness, or already running at a URL)
//! and the peers it is compared with, each reached at a socket address, with its process (when
//! the harness started it) for CPU and memory figures.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::bare::{self, BodyParsing};
use super::process::{process_stats, ChildServer, ProcessStats, ScratchDir};
use super::redis_front;
use super::report::LIMIT;
use super::BenchError;

/// The announcement `quiver serve` prints, followed by `http://ADDRESS`.
const QUIVER_LISTENING: &str = "quiver listening on ";

/// How the load generator talks to a target.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Protocol {
    /// Tecton's HTTP API (Quiver, the limit, the Redis front end).
    Http,
    /// Feast's feature server's HTTP API.
    Feast,
    /// Redis's own protocol, straight from the load generator.
    Resp,
}

/// A server under measurement.
pub struct Target {
    pub name: String,
    pub address: SocketAddr,
    pub protocol: Protocol,
    /// The process, when the harness started it (dropping the target stops it).
    pub process: Option<ChildServer>,
    /// A process that serves the target's requests behind it (Redis behind its front end),
    /// whose CPU time counts too.
    pub backend_pid: Option<u32>,
    /// Files the server works from, removed after it stops (fields drop in order).
    pub workdir: Option<ScratchDir>,
}

impl Target {
    /// The target's process's figures, plus its backend's CPU time.
    pub fn stats(&self) -> Option<ProcessStats> {
        let mut stats = self.process.as_ref().and_then(|p| process_stats(p.pid()))?;
        if let Some(backend) = self.backend_pid {
            stats.cpu_seconds += process_stats(backend)?.cpu_seconds;
        }
        Some(stats)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// Starts `quiver serve` (this very binary) over the repository of `config`, with
/// `admin_key`, in memory or keeping its state in `data_dir`.
pub fn start_quiver(
    config: &Path,
    admin_key: &str,
    data_dir: Option<&Path>,
) -> Result<Target, BenchError> {
    let mut command = Command::new(this_binary()?);
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("QUIVER_DATA_DIR")
        .env("QUIVER_ADMIN_KEY", admin_key)
        .env("QUIVER_LOG", "warn");
    if let Some(dir) = data_dir {
        command.arg("--data-dir").arg(dir);
    }
    let process = ChildServer::start_announced("quiver", command, QUIVER_LISTENING)?;
    Ok(Target {
        name: super::report::QUIVER.into(),
        address: process.address,
        protocol: Protocol::Http,
        process: Some(process),
        backend_pid: None,
        workdir: None,
    })
}

/// A Quiver the harness did not start, at `url` (`http://HOST:PORT`).
pub fn running_quiver(url: &str) -> Result<Target, BenchError> {
    let host_port = url
        .trim_end_matches('/')
        .trim_start_matches("http://")
        .to_string();
    let address = host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| BenchError::BadUrl(url.to_string()))?;
    Ok(Target {
        name: super::report::QUIVER.into(),
        address,
        protocol: Protocol::Http,
        process: None,
        backend_pid: None,
        workdir: None,
    })
}

/// Starts the limit (`quiver bench bare-server`) answering from the responses file.
pub fn start_limit(responses_file: &Path, parsing: BodyParsing) -> Result<Target, BenchError> {
    let command = limit_command(this_binary()?, responses_file, parsing);
    let process = ChildServer::start_announced(LIMIT, command, bare::LISTENING)?;
    Ok(Target {
        name: LIMIT.into(),
        address: process.address,
        protocol: Protocol::Http,
        process: Some(process),
        backend_pid: None,
        workdir: None,
    })
}

/// The command line that starts the limit with `binary`.
fn limit_command(binary: PathBuf, responses_file: &Path, parsing: BodyParsing) -> Command {
    let mut command = Command::new(binary);
    command
        .args([
            "bench",
            "bare-server",
            "--listen",
            "127.0.0.1:0",
            "--responses",
        ])
        .arg(responses_file);
    if parsing == BodyParsing::Skipped {
        command.arg("--skip-parsing");
    }
    command
}

/// Starts the Redis peer's front end (`quiver bench redis-front`) over the Redis at `redis`,
/// taking the answers' metadata from the responses file.
pub fn start_redis_front(
    config: &Path,
    redis: &Target,
    responses_file: &Path,
) -> Result<Target, BenchError> {
    let mut command = Command::new(this_binary()?);
    command
        .args(["bench", "redis-front", "--listen", "127.0.0.1:0", "--redis"])
        .arg(redis.address.to_string())
        .arg("--responses")
        .arg(responses_file)
        .arg("--config")
        .arg(config);
    let process = ChildServer::start_announced("redis-front", command, redis_front::LISTENING)?;
    Ok(Target {
        name: "redis".into(),
        address: process.address,
        protocol: Protocol::Http,
        process: Some(process),
        backend_pid: redis.process.as_ref().map(ChildServer::pid),
        workdir: None,
    })
}

fn this_binary() -> Result<PathBuf, BenchError> {
    std::env::current_exe().map_err(|e| BenchError::Io("the quiver binary".into(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limit is told to skip parsing exactly when the run asks for it.
    #[test]
    fn the_limit_skips_parsing_only_when_asked() {
        let args = |parsing| {
            let command = limit_command("quiver".into(), Path::new("answers.json"), parsing);
            command
                .get_args()
                .map(|arg| arg.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let parsing = args(BodyParsing::Json);
        assert_eq!(parsing[..2], ["bench", "bare-server"]);
        assert!(parsing.ends_with(&["--responses".into(), "answers.json".into()]));
        assert!(!parsing.contains(&"--skip-parsing".to_string()));
        assert_eq!(args(BodyParsing::Skipped).last().unwrap(), "--skip-parsing");
    }
}
