//! Servers the harness starts as child processes (Quiver, the bare handler, redis-server), and
//! what `/proc` says about a server process: CPU seconds used and resident memory.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::BenchError;

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server process the harness started; dropping it kills the process.
pub struct ChildServer {
    pub name: String,
    pub address: SocketAddr,
    child: Child,
}

impl ChildServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `command` and waits for it to print `announcement` followed by `http://ADDRESS`.
    /// Its stderr goes to a log file in the temporary directory, named in any error.
    pub fn start_announced(
        name: &str,
        mut command: Command,
        announcement: &str,
    ) -> Result<ChildServer, BenchError> {
        let log = log_path(name);
        let mut child = spawn(name, &mut command, &log, Output::Piped)?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        // Keeps reading after the announcement, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(wait) {
                Ok(line) => {
                    let Some(url) = line.strip_prefix(announcement) else {
                        continue;
                    };
                    let address = url
                        .trim()
                        .trim_start_matches("http://")
                        .parse()
                        .map_err(|_| BenchError::Start(name.into(), format!("printed `{line}`")))?;
                    return Ok(ChildServer {
                        name: name.to_string(),
                        address,
                        child,
                    });
                }
                Err(_) => {
                    stop(&mut child);
                    return Err(BenchError::Start(
                        name.to_string(),
                        format!("it did not start listening; see {}", log.display()),
                    ));
                }
            }
        }
    }

    /// Starts `command` listening on `address` (chosen by the harness) and waits until that
    /// port accepts connections.
    pub fn start_on(
        name: &str,
        mut command: Command,
        address: SocketAddr,
    ) -> Result<ChildServer, BenchError> {
        let log = log_path(name);
        let mut child = spawn(name, &mut command, &log, Output::Logged)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(address).is_err() {
            if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                stop(&mut child);
                return Err(BenchError::Start(
                    name.to_string(),
                    format!("it did not start listening; see {}", log.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(ChildServer {
            name: name.to_string(),
            address,
            child,
        })
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Kills the process group `child` leads: a server's worker processes (Feast's) outlive their
/// master when only it is killed.
fn stop(child: &mut Child) {
    // SAFETY: kill only sends a signal, to the group this child leads (see `spawn`).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// Where a server's standard output goes; its standard error always goes to its log.
enum Output {
    /// To the harness, which reads the announcement of its address.
    Piped,
    /// To its log, next to its standard error.
    Logged,
}

/// Starts `command` as the leader of a process group of its own, so that stopping it stops
/// everything it started.
fn spawn(
    name: &str,
    command: &mut Command,
    log: &Path,
    output: Output,
) -> Result<Child, BenchError> {
    let io = |e| BenchError::Io(log.display().to_string(), e);
    let log = std::fs::File::create(log).map_err(io)?;
    let stdout = match output {
        Output::Piped => Stdio::piped(),
        Output::Logged => Stdio::from(log.try_clone().map_err(io)?),
    };
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| BenchError::Start(name.to_string(), e.to_string()))
}

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("quiver-bench-{name}.log"))
}

/// A directory of the harness's in the temporary directory, removed when dropped.
pub struct ScratchDir(pub PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes `quiver-bench-<name>-<pid>` in the temporary directory.
pub fn scratch_dir(name: &str) -> Result<ScratchDir, BenchError> {
    let dir = std::env::temp_dir().join(format!("quiver-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Io(dir.display().to_string(), e))?;
    Ok(ScratchDir(dir))
}

/// A free local port (bound and released: another process could take it first, which the
/// server's start then reports).
pub fn free_local_address() -> Result<SocketAddr, BenchError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| BenchError::Io("a free local port".into(), e))
}

/// A process's CPU time (user + system, all threads) and resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
}

/// The figures of a process and all its descendants (a server's worker processes count: Feast
/// serves from gunicorn workers). `None` where `/proc` is not readable.
pub fn process_stats(pid: u32) -> Option<ProcessStats> {
    let mut total = single_process_stats(pid)?;
    let mut parents = vec![pid];
    let mut all: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(parent) = read_stat_fields(child).and_then(|f| f.get(1)?.parse().ok()) {
            all.push((child, parent));
        }
    }
    while let Some(parent) = parents.pop() {
        for &(child, _) in all.iter().filter(|(_, p)| *p == parent) {
            if let Some(stats) = single_process_stats(child) {
                total.cpu_seconds += stats.cpu_seconds;
                total.rss_bytes += stats.rss_bytes;
            }
            parents.push(child);
        }
    }
    Some(total)
}

/// The fields of `/proc/<pid>/stat` after the command name: state, parent's pid, ...
fn read_stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it start past its `)`.
    let after_name = &stat[stat.rfind(')')? + 2..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// Reads one process's `/proc/<pid>/stat` (utime and stime, fields 14 and 15, in clock ticks)
/// and `/proc/<pid>/status` (`VmRSS`).
fn single_process_stats(pid: u32) -> Option<ProcessStats> {
    let fields = read_stat_fields(pid)?;
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(ProcessStats {
        cpu_seconds: ticks as f64 / clock_ticks_per_second(),
        rss_bytes: rss_kib * 1024,
    })
}

/// The harness's own CPU time (the load generator's, since the servers are other processes).
pub fn own_cpu_seconds() -> Option<f64> {
    single_process_stats(std::process::id()).map(|stats| stats.cpu_seconds)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_s_figures_include_its_children() {
        // A shell waiting for its `sleep` child: its own figures do not change meanwhile.
        let mut shell = Command::new("sh")
            .args(["-c", "sleep 5; true"])
            .spawn()
            .unwrap();
        let pid = shell.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut counted_child = false;
        while !counted_child && Instant::now() < deadline {
            let own = single_process_stats(pid).expect("/proc is readable on Linux");
            let tree = process_stats(pid).unwrap();
            counted_child = tree.rss_bytes > own.rss_bytes;
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = shell.kill();
        let _ = shell.wait();
        assert!(counted_child, "the sleeping child's memory was never added");
    }
}
