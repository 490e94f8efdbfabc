//! The test harness: start a `quiver` server process on `127.0.0.1:0`, learn its port from the
//! line it prints, and send it HTTP requests. Dropping the server kills the process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// How long a test waits for a server to do what it is expected to do (start, converge with
/// other nodes, finish a snapshot): generous, since a loaded 2-core CI box can be slow, and a
/// test that passes never waits it out.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// The repository root, where `config.toml` and `features/` are.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How to start a server: which config, which environment, which data directory.
pub struct ServerBuilder {
    config: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// Where the server's stderr (its log) goes instead of a pipe the test reads.
    stderr_to: Option<PathBuf>,
}

impl ServerBuilder {
    pub fn new() -> ServerBuilder {
        ServerBuilder {
            config: repo_root().join("config.toml"),
            env: vec![("QUIVER_ADMIN_KEY".into(), ADMIN_KEY.into())],
            args: Vec::new(),
            stderr_to: None,
        }
    }

    pub fn config(mut self, path: impl AsRef<Path>) -> ServerBuilder {
        self.config = path.as_ref().to_path_buf();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> ServerBuilder {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn without_env(mut self, key: &str) -> ServerBuilder {
        self.env.retain(|(k, _)| k != key);
        self
    }

    pub fn arg(mut self, arg: &str) -> ServerBuilder {
        self.args.push(arg.into());
        self
    }

    /// Sends the server's log to the file `path` (e.g. `/dev/full`); it is then not read back.
    pub fn stderr_to(mut self, path: &Path) -> ServerBuilder {
        self.stderr_to = Some(path.to_path_buf());
        self
    }

    /// Keeps state in `dir` (`--data-dir`).
    pub fn data_dir(self, dir: &Path) -> ServerBuilder {
        self.arg("--data-dir")
            .arg(dir.to_str().expect("a UTF-8 path"))
    }

    /// `quiver serve` with this builder's config, flags and environment, on a free port.
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_quiver"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&self.args);
        command
            .env_remove("QUIVER_DATA_DIR")
            .env_remove("QUIVER_ADMIN_KEY")
            .env("QUIVER_LOG", "warn")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Starts the server and waits until it is ready (it prints `quiver listening on`).
    pub fn start(self) -> Server {
        self.start_until("quiver listening on ")
    }

    /// Starts the server and returns as soon as it listens, before its start-up is done (it
    /// prints `quiver starting on`).
    pub fn start_listening(self) -> Server {
        self.start_until("quiver starting on ")
    }

    /// Starts the server and waits (at most [`PATIENCE`] between lines) until it prints `announcement`
    /// and its URL. Panics with its stderr if it exits first.
    fn start_until(self, announcement: &str) -> Server {
        let mut command = self.command();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(path) = &self.stderr_to {
            let file = std::fs::OpenOptions::new().write(true).open(path);
            command.stderr(file.expect("the log file opens"));
        }
        let mut child = command.spawn().expect("the quiver binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut printed = Vec::new();
        loop {
            match lines_rx.recv_timeout(PATIENCE) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix(announcement) {
                        // Read all along: a server that logs more than a pipe holds (64 KiB)
                        // would otherwise block in its next log line, every thread that logs.
                        let stderr = child.stderr.take().map(|mut stderr| {
                            std::thread::spawn(move || {
                                let mut text = String::new();
                                let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
                                text
                            })
                        });
                        return Server {
                            child,
                            base_url: url.trim().to_string(),
                            printed,
                            lines: lines_rx,
                            stderr,
                        };
                    }
                    printed.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let output = child
                        .wait_with_output()
                        .expect("the server's output can be read");
                    panic!(
                        "quiver did not start; stdout: {printed:?}; stderr: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
            }
        }
    }

    /// Runs the server binary to completion with these settings (for start-up failures).
    pub fn run_to_exit(self) -> std::process::Output {
        self.command().output().expect("the quiver binary runs")
    }
}

/// A running server.
pub struct Server {
    child: Child,
    pub base_url: String,
    /// Lines printed before the listening line (e.g. a generated admin key).
    pub printed: Vec<String>,
    #[allow(dead_code)]
    lines: mpsc::Receiver<String>,
    /// Everything the server logs, read as it comes; the text once the process has exited.
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// A response: status, headers and body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Server {
    pub fn start() -> Server {
        ServerBuilder::new().start()
    }

    /// The server process's id (to read its memory use from `/proc`, or to hold its lock).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Sends a request; `headers` are added as given.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout(Duration::from_secs(30))
            .build();
        let mut request = agent.request(method, &self.url(path));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(bytes) => request.send_bytes(bytes),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path} failed: {error}"),
        };
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .filter_map(|name| {
                response
                    .header(&name)
                    .map(|value| (name.clone(), value.to_string()))
            })
            .collect();
        let body = response.into_string().expect("a text body");
        Reply {
            status,
            headers,
            body,
        }
    }

    /// POSTs JSON with `Authorization: Tecton-key <key>` (no header when `key` is `None`).
    pub fn post_json(&self, path: &str, key: Option<&str>, body: &Json) -> Reply {
        let auth = key.map(|k| format!("Tecton-key {k}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        self.request("POST", path, &headers, Some(body.to_string().as_bytes()))
    }

    /// Takes a snapshot through the admin API (waiting out a previous one still finishing) and
    /// returns its file once it is listed.
    pub fn snapshot(&self) -> PathBuf {
        let deadline = Instant::now() + PATIENCE;
        let reply = loop {
            // The previous snapshot is listed as soon as its file is renamed in, a moment before it
            // finishes dropping covered journal segments.
            let reply = self.admin_post("/admin/snapshots", &serde_json::json!({}));
            if reply.status != 409 || Instant::now() > deadline {
                break reply;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(reply.status, 202, "{}", reply.body);
        let id = reply.json()["id"].as_str().unwrap().to_string();
        loop {
            let auth = format!("Tecton-key {ADMIN_KEY}");
            let listing = self
                .request("GET", "/admin/snapshots", &[("Authorization", &auth)], None)
                .json();
            if let Some(found) = listing["snapshots"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["id"] == id)
            {
                return PathBuf::from(found["path"].as_str().unwrap());
            }
            assert!(Instant::now() < deadline, "snapshot {id} never appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// POSTs JSON as the admin.
    pub fn admin_post(&self, path: &str, body: &Json) -> Reply {
        self.post_json(path, Some(ADMIN_KEY), body)
    }

    /// Kills the process with SIGKILL, waits for it, and returns what it logged.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr()
    }

    /// Sends SIGTERM (a graceful stop), waits for the exit, and returns what it logged.
    pub fn terminate(mut self) -> String {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
        let exit = self.child.wait().expect("the server exits");
        assert!(exit.success(), "a graceful stop exits 0, got {exit}");
        self.stderr()
    }

    /// What the server logged; call only once it has exited (the reader ends at its EOF).
    fn stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    /// Kills the process; when the test is failing, prints what the server logged, to tell why.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let logged = self.stderr();
            eprintln!("{} logged:\n{logged}", self.base_url);
        }
    }
}

/// The current time as RFC 3339, offset by `seconds`.
pub fn timestamp_in(seconds: i64) -> String {
    use quiver::time::{format_timestamp, now_micros, MICROS_PER_SECOND};
    format_timestamp(
        now_micros() / MICROS_PER_SECOND * MICROS_PER_SECOND + seconds * MICROS_PER_SECOND,
    )
}

/// The segment files of the journal in `dir` (not the journal's other files), oldest first.
pub fn journal_segments(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "journal"))
        .collect();
    segments.sort();
    segments
}
