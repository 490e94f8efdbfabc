//! Cluster mode on a real NATS JetStream cluster (Debian's `nats-server`; these tests skip,
//! saying so, when it is not installed): three NATS servers and three Quiver nodes on loopback
//! ports. A write through one node is read from every node; `quiver cluster status` shows the
//! nodes caught up; a node restarted after SIGKILL replays the stream and serves what was
//! written before; a node SIGKILLed during writes lost none it acknowledged; a node added at
//! runtime serves every earlier write once started; writes go on after one NATS server is
//! killed; without NATS, writes answer 503. Partitioned mode (2 owners per partition): every
//! key is read from every node (forwarded to owners), also with an owner SIGKILLed, and a node
//! added at runtime takes partitions and serves them once caught up; a partition whose catch-up
//! failed part-way is replayed again counting no message twice. A replicated node with a
//! data directory snapshots its rows with the stream sequence they cover, and after SIGKILL
//! resumes the stream after it: every write served, no aggregation counted twice; a snapshot
//! recording no stream sequence is refused. Rows in the stream are read in the form they were
//! written in when the files change between runs: reshaped, or the start refused; a running
//! node that cannot read a message stalls there, saying so, until its files are brought in line;
//! one whose consumer ends says so, and resumes after the last message it applied. Rows
//! another node writes while an apply is taken back (its snapshot failed) are kept.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::common::{timestamp_in, Server, ServerBuilder, PATIENCE};
use super::persistence::{
    ingest, ingest_until_refused, last_amount, load_profile, profile, profile_feature,
    profile_without_account_age, transaction, ACCOUNT_AGE_DAYS,
};

/// `nats-server`, from PATH or where Debian installs it (`/usr/sbin`, often not on a user's PATH).
fn nats_server() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/sbin/nats-server");
        debian.is_file().then_some(debian)
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How many times a NATS cluster is started before its test fails (see [`NatsCluster::start`]).
const NATS_STARTS: usize = 3;

/// NATS clusters started by this process so far: each is named apart (see
/// [`NatsCluster::try_start`]).
static NATS_CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// The client port a nats-server's ports file (in `dir`) lists, once the file lists its route
/// port too (it is written when the server listens on both).
fn listening_client_port(dir: &Path) -> Option<u16> {
    let file = std::fs::read_dir(dir).ok()?.next()?.ok()?.path();
    let ports: Json = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    ports["cluster"]
        .as_array()
        .filter(|routes| !routes.is_empty())?;
    let client_url = ports["nats"][0].as_str()?;
    client_url.rsplit(':').next()?.parse().ok()
}

/// A NATS cluster of `n` servers with JetStream, each killed when this is dropped.
pub(super) struct NatsCluster {
    servers: Vec<Child>,
    client_ports: Vec<u16>,
}

impl NatsCluster {
    /// Three servers in a new temporary directory (dropped after them), or `None`, saying the
    /// test is skipped, when `nats-server` is not installed.
    pub(super) fn start_three() -> Option<(NatsCluster, tempfile::TempDir)> {
        let Some(binary) = nats_server() else {
            eprintln!("skipped: nats-server is not installed (apt-get install nats-server)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        Some((NatsCluster::start(&binary, dir.path(), 3), dir))
    }

    /// Starts `n` servers, again with other route ports (at most [`NATS_STARTS`] times) while
    /// one exits before it listens: a route port found free may be taken by another process
    /// (another test's server) before nats-server binds it, and nats-server then exits.
    fn start(binary: &Path, dir: &Path, n: usize) -> NatsCluster {
        let mut failures = Vec::new();
        for attempt in 0..NATS_STARTS {
            match NatsCluster::try_start(binary, &dir.join(format!("start{attempt}")), n) {
                Ok(cluster) => return cluster,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("the NATS cluster never started: {failures:#?}");
    }

    /// Each server's client port is chosen by the kernel as nats-server binds it (`-p -1`) and
    /// read back from its ports file, written once it listens for clients and routes; route
    /// ports must be known before the servers start, to name each other's. The cluster has a
    /// name of its own: a route port of another test's cluster taken by one of these servers
    /// would otherwise merge the two (same name), JetStream losing its leader in both.
    fn try_start(binary: &Path, dir: &Path, n: usize) -> Result<NatsCluster, String> {
        let name = format!(
            "quiver-test-{}-{}",
            std::process::id(),
            NATS_CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let servers = (0..n)
            .map(|i| {
                let routes: Vec<String> = route_ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, port)| format!("nats://127.0.0.1:{port}"))
                    .collect();
                let ports_dir = dir.join(format!("s{i}-ports"));
                std::fs::create_dir_all(&ports_dir).unwrap();
                Command::new(binary)
                    .args(["-a", "127.0.0.1", "-js", "-p", "-1"])
                    .arg("--ports_file_dir")
                    .arg(ports_dir)
                    .arg("-l")
                    .arg(dir.join(format!("s{i}.log")))
                    .arg("-sd")
                    .arg(dir.join(format!("s{i}")))
                    .arg("--server_name")
                    .arg(format!("s{i}"))
                    .args(["--cluster_name", &name, "--cluster"])
                    .arg(format!("nats://127.0.0.1:{}", route_ports[i]))
                    .arg("--routes")
                    .arg(routes.join(","))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("nats-server starts")
            })
            .collect();
        // Dropped on failure: the servers started are killed.
        let mut cluster = NatsCluster {
            servers,
            client_ports: Vec::new(),
        };
        let deadline = Instant::now() + PATIENCE;
        for i in 0..n {
            let log = || std::fs::read_to_string(dir.join(format!("s{i}.log"))).unwrap_or_default();
            let client_port = loop {
                if let Some(port) = listening_client_port(&dir.join(format!("s{i}-ports"))) {
                    break port;
                }
                if let Ok(Some(exit)) = cluster.servers[i].try_wait() {
                    return Err(format!(
                        "nats-server s{i} exited ({exit}) before it listened: {}",
                        log()
                    ));
                }
                assert!(
                    Instant::now() < deadline,
                    "nats-server s{i} did not listen within {PATIENCE:?}: {}",
                    log()
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            cluster.client_ports.push(client_port);
        }
        Ok(cluster)
    }

    /// Kills server `i` with SIGKILL.
    fn kill(&mut self, i: usize) {
        let _ = self.servers[i].kill();
        let _ = self.servers[i].wait();
    }

    /// Every server's client URL, as `--nats-urls` takes them.
    fn urls(&self) -> String {
        self.client_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// The API-key digest key and the master key every node of a test cluster shares.
const IAM_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const MASTER_KEY: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// A server builder with the keys a cluster's nodes share.
fn with_shared_keys(builder: ServerBuilder) -> ServerBuilder {
    builder
        .env("QUIVER_IAM_KEY", IAM_KEY)
        .env("QUIVER_MASTER_KEY", MASTER_KEY)
}

/// A Quiver node of the cluster (the demo config: its seeds are not loaded in cluster mode).
pub(super) fn node(nats: &NatsCluster, node_id: &str) -> Server {
    node_builder(nats, node_id).start()
}
/// A node of a partitioned cluster: each of the 4 partitions owned by 2 nodes.
fn partitioned_node(nats: &NatsCluster, node_id: &str) -> Server {
    partitioned_builder(nats, node_id).start()
}

fn partitioned_builder(nats: &NatsCluster, node_id: &str) -> ServerBuilder {
    node_builder(nats, node_id)
        .arg("--cluster-owners")
        .arg("2")
        // A start that does not finish prints its stderr: the partitions it gained and caught up.
        .env("QUIVER_LOG", "info")
}

fn node_builder(nats: &NatsCluster, node_id: &str) -> ServerBuilder {
    with_shared_keys(ServerBuilder::new())
        .arg("--nats-urls")
        .arg(&nats.urls())
        .arg("--node-id")
        .arg(node_id)
        .arg("--cluster-replicas")
        .arg("3")
        .arg("--cluster-partitions")
        .arg("4")
}

/// What `quiver cluster status` prints for `stream`.
pub(super) fn cluster_status(nats: &NatsCluster, stream: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args([
            "cluster",
            "status",
            "--cluster-stream",
            stream,
            "--nats-urls",
        ])
        .arg(nats.urls())
        .env("QUIVER_LOG", "warn")
        .output()
        .expect("quiver runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Polls `server` until the user's `last_amount` is `expected` (panics at the deadline).
fn wait_for_amount(server: &Server, user: &str, expected: &Json) {
    wait_for_answer(server, user, expected, last_amount);
}

/// Polls `server` until `read` answers `expected` for `user` (panics at the deadline).
fn wait_for_answer<T: PartialEq + std::fmt::Debug>(
    server: &Server,
    user: &str,
    expected: &T,
    read: impl Fn(&Server, &str) -> T,
) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = read(server, user);
        if &answer == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} still answers {answer:?} for {user}, not {expected:?}",
            server.base_url
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn writes_through_one_node_are_read_from_every_node_across_node_restarts_and_nats_failures() {
    let Some((mut nats, _dir)) = NatsCluster::start_three() else {
        return;
    };
    let nodes: Vec<Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| node(&nats, id))
        .collect();

    // The writing node answers once JetStream acknowledged and it applied the rows itself.
    ingest(&nodes[0], "alice", 12.5);
    assert_eq!(last_amount(&nodes[0], "alice"), json!(12.5));
    ingest(&nodes[1], "bob", 7.25);
    for node in &nodes {
        wait_for_amount(node, "alice", &json!(12.5));
        wait_for_amount(node, "bob", &json!(7.25));
    }

    // `quiver cluster status` shows the three nodes, and each catches up to the stream's end.
    // Their heartbeats list them live, each owning every partition (replicated mode).
    let printed = wait_for_status(&nats, "the nodes catching up", |printed| {
        ["n1", "n2", "n3"].iter().all(|id| {
            let line_of = |end: &str| {
                printed
                    .lines()
                    .any(|line| line.trim_start().starts_with(id) && line.ends_with(end))
            };
            line_of(" behind 0") && line_of("s ago")
        }) && owner_lines(printed).len() == 4
            && owner_lines(printed)
                .iter()
                .all(|line| line.matches(" ready").count() == 3)
    });
    assert!(printed.starts_with("stream QUIVER: "), "{printed}");
    assert!(
        printed.contains("  server s"),
        "the stream's replicas are listed: {printed}"
    );

    // A node keeps nothing across a restart: it replays the stream from its start.
    let mut nodes = nodes;
    nodes.pop().unwrap().kill9();
    let restarted = node(&nats, "n3");
    assert_eq!(last_amount(&restarted, "alice"), json!(12.5));
    assert_eq!(last_amount(&restarted, "bob"), json!(7.25));
    ingest(&restarted, "carol", 3.0);
    for node in nodes.iter().chain([&restarted]) {
        wait_for_amount(node, "carol", &json!(3.0));
    }

    // SIGKILL a node during writes through it: every write it acknowledged is on the others.
    let written = kill_during_writes(restarted, "during_kill");
    // A node added at runtime catches up before it answers (its start waits for that), then
    // serves everything.
    let added = node(&nats, "n4");
    assert_eq!(last_amount(&added, "alice"), json!(12.5));
    for (user, amount) in &written {
        assert_eq!(last_amount(&added, user), json!(amount));
        for node in &nodes {
            wait_for_amount(node, user, &json!(amount));
        }
    }
    nodes.push(added);

    // One NATS server of three lost: the stream keeps a quorum, so writes are acknowledged
    // again once JetStream has moved the stream's leader if it was there (a 503 meanwhile).
    nats.kill(2);
    let killed = Instant::now();
    let deadline = killed + PATIENCE;
    let mut refused = 0;
    loop {
        let reply = nodes[0].admin_post("/ingest", &transaction("erin", 2.0));
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(
            Instant::now() < deadline,
            "no write acknowledged after losing one NATS server"
        );
        refused += 1;
    }
    eprintln!(
        "after losing a NATS server, {refused} write(s) answered 503 before one was acknowledged, {:?} after the kill",
        killed.elapsed()
    );
    for node in &nodes {
        wait_for_amount(node, "erin", &json!(2.0));
    }

    // Without NATS no write is acknowledged: 503, and reads keep answering.
    drop(nats);
    let reply = nodes[1].admin_post("/ingest", &transaction("dave", 1.0));
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("cluster log"), "{}", reply.body);
    assert_eq!(last_amount(&nodes[1], "alice"), json!(12.5));
}

/// Polls every node until it answers each user's amount.
fn wait_for_users(nodes: &[Server], users: &[(String, f64)]) {
    for node in nodes {
        for (user, amount) in users {
            wait_for_amount(node, user, &json!(amount));
        }
    }
}

/// Writes through `node` (a new user per write, `<prefix>_<i>`, so that each acknowledged write
/// can be checked on every node) and SIGKILLs it after 5 acknowledgements: the users and
/// amounts it acknowledged.
fn kill_during_writes(node: Server, prefix: &str) -> Vec<(String, f64)> {
    let acknowledged = AtomicUsize::new(0);
    let base_url = node.base_url.clone();
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            ingest_until_refused(&base_url, Duration::from_secs(10), &acknowledged, |i| {
                (format!("{prefix}_{i}"), i as f64 + 0.5)
            })
        });
        let deadline = Instant::now() + PATIENCE;
        while acknowledged.load(Ordering::Relaxed) < 5 {
            assert!(Instant::now() < deadline, "no write acknowledged");
            std::thread::sleep(Duration::from_millis(5));
        }
        node.kill9();
        writer.join().unwrap()
    })
}

/// Polls `quiver cluster status` until `done` holds for what it prints (panics at the deadline).
fn wait_for_status(nats: &NatsCluster, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let printed = cluster_status(nats, "QUIVER");
        if done(&printed) {
            return printed;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened: {printed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The owner lines of `quiver cluster status`: one per partition.
fn owner_lines(printed: &str) -> Vec<&str> {
    printed
        .lines()
        .filter(|line| line.trim_start().starts_with("partition "))
        .collect()
}

#[test]
fn a_partitioned_cluster_serves_every_key_from_every_node_through_owner_loss_and_growth() {
    let Some((nats, _dir)) = NatsCluster::start_three() else {
        return;
    };
    let mut nodes: Vec<Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| partitioned_node(&nats, id))
        .collect();
    // Every partition settles on 2 owners, both caught up (the first node held them all until
    // the others were ready).
    let settled = |printed: &str| {
        let lines = owner_lines(printed);
        lines.len() == 4 && lines.iter().all(|line| line.matches(" ready").count() == 2)
    };
    let printed = wait_for_status(&nats, "the partitions settling on 2 owners", settled);
    assert!(printed.contains("nodes (heartbeats):"), "{printed}");
    // 8 ownerships over 3 nodes: some node holds only some partitions, and forwards the rest.
    let holds_all = |id: &str| {
        owner_lines(&printed)
            .iter()
            .all(|line| line.contains(&format!("{id} ready")))
    };
    assert!(
        !["n1", "n2", "n3"].iter().all(|id| holds_all(id)),
        "{printed}"
    );

    // Written through one node, every key is read from every node (forwarded where not held).
    let users: Vec<(String, f64)> = (0..12)
        .map(|i| (format!("part_{i}"), i as f64 + 0.25))
        .collect();
    for (user, amount) in &users {
        ingest(&nodes[0], user, *amount);
    }
    wait_for_users(&nodes, &users);
    // Status shows each owner's lag on its partition: none once they all applied the writes.
    wait_for_status(&nats, "every owner applying every write", |printed| {
        settled(printed)
            && owner_lines(printed)
                .iter()
                .all(|line| line.matches(" ready (behind 0)").count() == 2)
    });

    // An owner SIGKILLed during writes through it: the other owner of each of its partitions
    // answers, every write it acknowledged included.
    let during_kill = kill_during_writes(nodes.pop().unwrap(), "partitioned_kill");
    let mut users = users;
    users.extend(during_kill);
    wait_for_users(&nodes, &users);

    // A node added at runtime takes partitions (n3's, among others) and serves them once caught
    // up; every key still reads the same from every node.
    nodes.push(partitioned_node(&nats, "n4"));
    let holds_some = |printed: &str, id: &str| {
        owner_lines(printed)
            .iter()
            .any(|line| line.contains(&format!("{id} ready")))
    };
    wait_for_status(&nats, "n4 taking partitions", |printed| {
        settled(printed) && holds_some(printed, "n4") && !printed.contains("n3 ready")
    });
    wait_for_users(&nodes, &users);

    // The killed node rejoins under its id: it takes partitions again, catches up, serves.
    nodes.push(partitioned_node(&nats, "n3"));
    wait_for_status(&nats, "n3 rejoining", |printed| {
        settled(printed) && holds_some(printed, "n3")
    });
    wait_for_users(&nodes, &users);
}

/// A partition's catch-up that fails part-way (the test hook ends the replica's consumer after
/// a message, as a consumer deleted under it does) is retried from the stream's start: over
/// none of the rows the failed one applied, so each transaction is counted once.
#[test]
fn a_partition_whose_catch_up_failed_counts_no_message_twice() {
    let Some((nats, dir)) = NatsCluster::start_three() else {
        return;
    };
    let n1 = partitioned_node(&nats, "n1");
    // Three messages in the user's partition: a catch-up of it can fail after the first.
    for i in 0..3 {
        ingest_transaction(&n1, "twice", &format!("t{i}"));
    }
    assert_eq!(recent_count(&n1, "twice"), json!("3"));

    // n2 joins (2 owners, 2 nodes: it owns every partition); while the hook's file exists, its
    // catch-up of every partition holding more than one message fails, and is retried.
    // (A write is a message per partition it touches: a view's rows of a key land in the
    // partition of (view, key).)
    let failing: Vec<String> = cluster_status(&nats, "QUIVER")
        .lines()
        .filter_map(|line| {
            let (subject, messages) = line.trim().split_once(' ')?;
            let partition = subject.strip_prefix("QUIVER.rows.")?;
            (messages.parse::<u64>().ok()? > 1).then(|| format!("partition={partition}"))
        })
        .collect();
    assert!(!failing.is_empty());
    let fault = dir.path().join("end-catch-up");
    std::fs::write(&fault, b"").unwrap();
    let log = dir.path().join("n2.log");
    std::fs::write(&log, b"").unwrap();
    let n2 = partitioned_builder(&nats, "n2")
        .env("QUIVER_TEST_END_CATCH_UP", fault.to_str().unwrap())
        .stderr_to(&log)
        .start_listening();
    let deadline = Instant::now() + PATIENCE;
    let all_failed = |logged: &str| {
        let failed = logged
            .lines()
            .filter(|line| line.contains("catching up a partition failed"));
        let failed: Vec<&str> = failed.collect();
        failing
            .iter()
            .all(|partition| failed.iter().any(|line| line.ends_with(partition.as_str())))
    };
    while !all_failed(&std::fs::read_to_string(&log).unwrap()) {
        assert!(Instant::now() < deadline, "not every catch-up failed");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_file(&fault).unwrap();
    while n2.request("GET", "/readyz", &[], None).status != 200 {
        assert!(Instant::now() < deadline, "n2 never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(recent_count(&n2, "twice"), json!("3"));
    assert_eq!(aggregates_of(&n2, "twice"), aggregates_of(&n1, "twice"));
}

/// Ingests one transaction of `user` (with an id, which the count aggregations count).
fn ingest_transaction(server: &Server, user: &str, id: &str) {
    let record = json!({"user_id": user, "merchant": "m", "terminal_id": 1, "amt": 1.0,
        "category": "c", "is_online": false, "transaction_id": id, "timestamp": timestamp_in(0)});
    let body = json!({"workspace_name": "prod", "dry_run": false,
        "records": {"transactions": [{"record": record}]}});
    let reply = server.admin_post("/ingest", &body);
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// `transaction_aggregates_service`'s features for `user`: (name, value) in order.
fn aggregates_of(server: &Server, user: &str) -> Vec<(String, Json)> {
    let request = json!({"params": {"workspaceName": "prod",
        "featureServiceName": "transaction_aggregates_service", "joinKeyMap": {"user_id": user},
        "metadataOptions": {"includeNames": true}}});
    let reply = server.admin_post("/api/v1/feature-service/get-features", &request);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    let names = body["metadata"]["features"].as_array().unwrap().iter();
    let names = names.map(|meta| meta["name"].as_str().unwrap().to_string());
    names
        .zip(body["result"]["features"].as_array().unwrap().clone())
        .collect()
}

/// The user's count of transactions in the last hour (`user_recent_activity`, continuous).
fn recent_count(server: &Server, user: &str) -> Json {
    aggregates_of(server, user)
        .into_iter()
        .find(|(name, _)| name.ends_with("transaction_id_count_1h_continuous"))
        .expect("the service has the 1h count")
        .1
}

#[test]
fn a_node_with_a_data_dir_resumes_the_stream_after_its_snapshot() {
    let Some((nats, dir)) = NatsCluster::start_three() else {
        return;
    };
    let data_dir = dir.path().join("n1-data");
    let snapshotting_node = || {
        node_builder(&nats, "n1")
            .data_dir(&data_dir)
            .env("QUIVER_LOG", "info")
            .start()
    };
    let n1 = snapshotting_node();
    let n2 = node(&nats, "n2");
    // Some writes (a message per partition a write touches), then a snapshot covering them.
    for i in 0..3 {
        ingest_transaction(&n1, "snap", &format!("t{i}"));
    }
    ingest(&n1, "alice", 12.5);
    n1.snapshot();
    // More, through both nodes; n1 applies them all before it is killed.
    ingest_transaction(&n2, "snap", "t3");
    ingest_transaction(&n1, "snap", "t4");
    ingest(&n2, "bob", 7.25);
    wait_for_amount(&n1, "bob", &json!(7.25));
    assert_eq!(recent_count(&n1, "snap"), json!("5"));
    n1.kill9();

    // Restarted, it loads the snapshot and replays only the messages after it: every write is
    // served and the aggregations match a node that replayed the whole stream.
    let restarted = snapshotting_node();
    assert_eq!(last_amount(&restarted, "alice"), json!(12.5));
    assert_eq!(last_amount(&restarted, "bob"), json!(7.25));
    assert_eq!(recent_count(&restarted, "snap"), json!("5"));
    let fresh = node(&nats, "n3");
    assert_eq!(
        aggregates_of(&restarted, "snap"),
        aggregates_of(&fresh, "snap")
    );
    // And it keeps applying the stream.
    ingest_transaction(&n2, "snap", "t5");
    let deadline = Instant::now() + PATIENCE;
    while recent_count(&restarted, "snap") != json!("6") {
        assert!(
            Instant::now() < deadline,
            "the restarted node never applied t5"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // It resumed after the snapshot's sequence, not from the stream's start.
    let logged = restarted.terminate();
    let field = |name: &str| -> u64 {
        let line = logged
            .lines()
            .find(|line| line.contains("caught up with the cluster's stream"))
            .unwrap_or_else(|| panic!("{logged}"));
        let value = line.split(&format!(" {name}=")).nth(1).expect(name);
        value.split(' ').next().unwrap().parse().expect(name)
    };
    let (resumed_after, caught_up_at) = (field("resumed_after"), field("sequence"));
    assert!(
        0 < resumed_after && resumed_after < caught_up_at,
        "{logged}"
    );
}

/// The files changed between runs, as in persistence's tests, but the rows are in the stream:
/// `user_profile` loses `account_age_days`. A node started on the new files replays the rows
/// written before in the form they were written in, reshaped to its own (the other features
/// intact, not shifted into the gap), and so applies those a node still on the old files
/// writes meanwhile; a node whose files changed the feature's type refuses to start, naming
/// the view and the difference.
#[test]
fn rows_replayed_from_the_stream_are_read_in_the_form_they_were_written_in() {
    let Some((nats, _dir)) = NatsCluster::start_three() else {
        return;
    };
    let repository = super::registry::broken_config("features/prod/views.toml", "", "");
    let config = repository.path().join("config.toml");
    let old_files = node_builder(&nats, "n1").config(&config).start();
    load_profile(&old_files, "u_old", "700");

    let views = repository.path().join("features/prod/views.toml");
    let original = std::fs::read_to_string(&views).unwrap();
    assert!(original.contains(ACCOUNT_AGE_DAYS));
    std::fs::write(&views, original.replace(ACCOUNT_AGE_DAYS, "")).unwrap();
    let new_files = node_builder(&nats, "n2")
        .config(&config)
        .env("QUIVER_LOG", "info")
        .start();
    assert_eq!(
        profile(&new_files, "u_old"),
        profile_without_account_age(700)
    );
    load_profile(&old_files, "u_live", "650");
    wait_for_answer(
        &new_files,
        "u_live",
        &profile_without_account_age(650),
        profile,
    );
    let logged = new_files.terminate();
    assert!(logged.contains("reshaped to its features now"), "{logged}");

    let float64 = ACCOUNT_AGE_DAYS.replace("int64", "float64");
    std::fs::write(&views, original.replace(ACCOUNT_AGE_DAYS, &float64)).unwrap();
    let refused = node_builder(&nats, "n3").config(&config).run_to_exit();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for needle in [
        "prod/user_profile",
        "`account_age_days` was int64 and is float64 now",
        "quiver apply",
    ] {
        assert!(stderr.contains(needle), "{needle} in: {stderr}");
    }
}

/// A running node that cannot read a message another node wrote (that node's files changed a
/// feature's type) stops applying the stream there and says so (`/readyz` 503, `/health`
/// degraded), rather than skip it; once its files are brought in line (`quiver apply`) it
/// applies that message and every later one.
#[test]
fn a_node_stalls_at_a_message_it_cannot_read_until_its_files_are_brought_in_line() {
    let Some((nats, _dir)) = NatsCluster::start_three() else {
        return;
    };
    let float64 = ACCOUNT_AGE_DAYS.replace("int64", "float64");
    let float64 =
        super::registry::broken_config("features/prod/views.toml", ACCOUNT_AGE_DAYS, &float64);
    let float64 = float64.path().join("config.toml");
    let old_files = node(&nats, "n1");
    let new_files = node_builder(&nats, "n2").config(&float64).start();
    load_profile(&new_files, "u_float", "640");
    ingest(&new_files, "after", 4.5);

    let deadline = Instant::now() + PATIENCE;
    let ready = loop {
        let ready = old_files.request("GET", "/readyz", &[], None);
        if ready.status == 503 {
            break ready.json();
        }
        assert!(Instant::now() < deadline, "n1 never said it stalled");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ready["status"], "degraded", "{ready}");
    let health = old_files.request("GET", "/health", &[], None);
    assert_eq!(health.status, 200);
    let reason = health.json()["replicas"]["QUIVER/n1"]["error"].to_string();
    assert!(reason.contains("prod/user_profile"), "{}", health.body);
    // Nothing after the message is applied either: the stream's order is kept.
    assert_eq!(last_amount(&old_files, "after"), Json::Null);

    let applied = super::plan::quiver(
        "apply",
        &old_files,
        &float64,
        &["--yes", "--allow-data-loss"],
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    wait_for_amount(&old_files, "after", &json!(4.5));
    assert_eq!(
        profile(&old_files, "u_float"),
        profile(&new_files, "u_float")
    );
    let ready = old_files.request("GET", "/readyz", &[], None);
    assert_eq!(ready.status, 200, "{}", ready.body);
}

/// After `quiver apply --allow-data-loss` changed a feature's type (its stored values lost),
/// a node replaying the stream from its start under the new files reads the rows written
/// before as the apply converted them (that feature null, the others kept) rather than refuse
/// to start, also after later applies (a feature one removes and another adds back reads
/// null for the rows written before, as on the node that applied); later rows and other
/// views' rows are read as ever.
/// (Files changed without an apply are still refused:
/// `rows_replayed_from_the_stream_are_read_in_the_form_they_were_written_in`.)
#[test]
fn a_replay_reads_older_rows_as_an_apply_that_accepted_data_loss_converted_them() {
    let Some((nats, _dir)) = NatsCluster::start_three() else {
        return;
    };
    let repository = super::registry::broken_config("features/prod/views.toml", "", "");
    let config = repository.path().join("config.toml");
    let n1 = node_builder(&nats, "n1").config(&config).start();
    load_profile(&n1, "u_old", "700");
    ingest(&n1, "kept", 1.5);

    let views = repository.path().join("features/prod/views.toml");
    let original = std::fs::read_to_string(&views).unwrap();
    let float64 = ACCOUNT_AGE_DAYS.replace("int64", "float64");
    std::fs::write(&views, original.replace(ACCOUNT_AGE_DAYS, &float64)).unwrap();
    let applied = super::plan::quiver("apply", &n1, &config, &["--yes", "--allow-data-loss"]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    load_profile(&n1, "u_new", "640");
    let converted = profile(&n1, "u_old");
    let age = |features: &[(String, Json)]| {
        let age = features
            .iter()
            .find(|(name, _)| name.ends_with(".account_age_days"));
        age.expect("account_age_days is served").1.clone()
    };
    assert_eq!(age(&converted), Json::Null, "{converted:?}");
    assert!(converted.contains(&("user_profile.credit_score".into(), json!("700"))));
    let written_after = profile(&n1, "u_new");
    assert_eq!(age(&written_after), json!(11.0), "{written_after:?}");

    // A later apply (dropping `home_country`) carries the accepted loss on: rows still in the
    // first form are read in the newest.
    let home_country = "  { name = \"home_country\", type = \"string\" },\n";
    let retyped = std::fs::read_to_string(&views).unwrap();
    assert!(retyped.contains(home_country));
    std::fs::write(&views, retyped.replace(home_country, "")).unwrap();
    let applied = super::plan::quiver("apply", &n1, &config, &["--yes", "--allow-data-loss"]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let converted = profile(&n1, "u_old");
    let written_after = profile(&n1, "u_new");
    assert!(!converted
        .iter()
        .any(|(name, _)| name.ends_with(".home_country")));
    assert_eq!(age(&converted), Json::Null, "{converted:?}");
    assert_eq!(age(&written_after), json!(11.0), "{written_after:?}");

    // A third apply adds `home_country` back (appended): rows written before the apply that
    // removed it read it null, as on the node that made every apply, not its old value.
    let signup_time = "  { name = \"signup_time\", type = \"timestamp\" },\n";
    let dropped = std::fs::read_to_string(&views).unwrap();
    assert!(dropped.contains(signup_time));
    let added_back = format!("{signup_time}{home_country}");
    std::fs::write(&views, dropped.replacen(signup_time, &added_back, 1)).unwrap();
    let applied = super::plan::quiver("apply", &n1, &config, &["--yes"]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let country = |features: &[(String, Json)]| {
        let country = features
            .iter()
            .find(|(name, _)| name.ends_with(".home_country"));
        country.expect("home_country is served").1.clone()
    };
    let converted = profile(&n1, "u_old");
    let written_after = profile(&n1, "u_new");
    assert_eq!(country(&converted), Json::Null, "{converted:?}");
    assert_eq!(country(&written_after), Json::Null, "{written_after:?}");
    assert_eq!(age(&converted), Json::Null, "{converted:?}");

    let n2 = node_builder(&nats, "n2").config(&config).start();
    assert_eq!(profile(&n2, "u_old"), converted);
    wait_for_answer(&n2, "u_new", &written_after, profile);
    wait_for_amount(&n2, "kept", &json!(1.5));
    // So does the node that applied, started again (in memory, it replays the stream too).
    drop(n1);
    let n1 = node_builder(&nats, "n1").config(&config).start();
    assert_eq!(profile(&n1, "u_old"), converted);
    wait_for_answer(&n1, "u_new", &written_after, profile);
}

/// An apply whose snapshot fails on a node with a data directory is taken back there; rows
/// another node wrote meanwhile, to the view the apply reshaped, are applied on it once the
/// apply is taken back, in the form it serves again. (Its replica is held through the apply:
/// applied in between, they were written in the apply's form, which the undo drops.)
#[test]
fn rows_written_elsewhere_during_an_apply_taken_back_are_kept() {
    let Some((nats, dir)) = NatsCluster::start_three() else {
        return;
    };
    let repository = super::registry::broken_config("features/prod/views.toml", "", "");
    let config = repository.path().join("config.toml");
    let data = dir.path().join("n1-data");
    let hook = dir.path().join("hold-apply");
    let n1 = node_builder(&nats, "n1")
        .config(&config)
        .data_dir(&data)
        .env("QUIVER_TEST_HOLD_APPLY", hook.to_str().unwrap())
        .start();
    let n2 = node_builder(&nats, "n2").config(&config).start();
    load_profile(&n1, "u_old", "700");
    wait_for_answer(&n2, "u_old", &profile(&n1, "u_old"), profile);

    // The apply's snapshot cannot be written (the snapshot directory is a file: a full disk in
    // the field), and the apply is held between its reshape and its snapshot.
    let snapshots = data.join("snapshots");
    if snapshots.exists() {
        std::fs::remove_dir_all(&snapshots).unwrap();
    }
    std::fs::write(&snapshots, "not a directory").unwrap();
    let views = repository.path().join("features/prod/views.toml");
    let original = std::fs::read_to_string(&views).unwrap();
    std::fs::write(&views, original.replace(ACCOUNT_AGE_DAYS, "")).unwrap();
    std::fs::write(&hook, "").unwrap();
    let held = dir.path().join("hold-apply.held");
    let apply = super::plan::quiver_command("apply", &n1, &config, &["--yes", "--allow-data-loss"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("quiver runs");
    let deadline = Instant::now() + PATIENCE;
    while !held.exists() {
        assert!(
            Instant::now() < deadline,
            "the apply never reached its hold"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    load_profile(&n2, "u_window", "650");
    let credit = |n: &Server, u: &str| profile_feature(&profile(n, u), "credit_score");
    wait_for_answer(&n2, "u_window", &json!("650"), credit);
    // Time for n1's replica to apply it now, were it not held (it did, in milliseconds,
    // before the hold): the undo would then drop it.
    std::thread::sleep(Duration::from_secs(1));
    std::fs::remove_file(&hook).unwrap();
    let refused = apply.wait_with_output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("the repository was not applied"),
        "{stderr}"
    );
    wait_for_answer(&n1, "u_window", &profile(&n2, "u_window"), profile);
    assert_eq!(profile(&n1, "u_old"), profile(&n2, "u_old"));
    // n1 serves its old form again, `account_age_days` included.
    assert_eq!(
        profile_feature(&profile(&n1, "u_window"), "account_age_days"),
        json!("11")
    );
    let ready = n1.request("GET", "/readyz", &[], None);
    assert_eq!(ready.status, 200, "{}", ready.body);

    // Once the snapshot can be written, the same apply is made, and the replica, let go,
    // applies what is written after it.
    std::fs::remove_file(&snapshots).unwrap();
    let applied = super::plan::quiver("apply", &n1, &config, &["--yes", "--allow-data-loss"]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    load_profile(&n2, "u_after", "640");
    wait_for_answer(&n1, "u_after", &profile_without_account_age(640), profile);
}

/// A caught-up node whose consumer ends (NATS restarted, the consumer deleted, a network
/// error; the test hook ends it) says so (`/readyz` 503, `/health` degraded, naming the
/// consumer) rather than serve stale rows as ready, and opens it again after the last message
/// it applied: once it can, it applies the later writes, none twice, and is ready again.
#[test]
fn a_node_whose_consumer_ends_says_so_and_resumes_after_its_last_message() {
    let Some((nats, dir)) = NatsCluster::start_three() else {
        return;
    };
    let fault = dir.path().join("end-stream");
    let n1 = node_builder(&nats, "n1")
        .env("QUIVER_TEST_END_STREAM", fault.to_str().unwrap())
        .start();
    let n2 = node(&nats, "n2");
    ingest_transaction(&n2, "resumed", "t0");
    wait_for_answer(&n1, "resumed", &json!("1"), recent_count);

    // n1 applies the next message (a write may be several), then its consumer ends, and ends
    // again whenever it is opened, until the file goes.
    std::fs::write(&fault, b"").unwrap();
    ingest_transaction(&n2, "resumed", "t1");
    let deadline = Instant::now() + PATIENCE;
    let ready = loop {
        let ready = n1.request("GET", "/readyz", &[], None);
        if ready.status == 503 {
            break ready.json();
        }
        assert!(
            Instant::now() < deadline,
            "n1 never said its consumer ended"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(ready["status"], "degraded", "{ready}");
    let health = n1.request("GET", "/health", &[], None);
    assert_eq!(health.status, 200);
    let reason = health.json()["replicas"]["QUIVER/n1"]["error"].to_string();
    assert!(reason.contains("consumer ended"), "{}", health.body);
    ingest_transaction(&n2, "resumed", "t2");

    std::fs::remove_file(&fault).unwrap();
    wait_for_answer(&n1, "resumed", &json!("3"), recent_count);
    assert_eq!(aggregates_of(&n1, "resumed"), aggregates_of(&n2, "resumed"));
    while n1.request("GET", "/readyz", &[], None).status != 200 {
        assert!(
            Instant::now() < deadline,
            "n1 never said it was ready again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_cluster_node_refuses_a_snapshot_that_records_no_stream_sequence() {
    let Some((nats, dir)) = NatsCluster::start_three() else {
        return;
    };
    // A single server's snapshot: replaying the stream over its rows would apply them twice.
    let data_dir = dir.path().join("single");
    let single = ServerBuilder::new().data_dir(&data_dir).start();
    ingest(&single, "alice", 12.5);
    single.snapshot();
    single.terminate();
    let output = node_builder(&nats, "n1").data_dir(&data_dir).run_to_exit();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("it was not taken by a cluster node (it records no stream sequence)"),
        "{stderr}"
    );
}

#[test]
fn a_node_whose_nats_servers_are_unreachable_refuses_to_start() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let output = with_shared_keys(ServerBuilder::new())
        .arg("--nats-urls")
        .arg(&url)
        .arg("--node-id")
        .arg("n1")
        .run_to_exit();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("could not join the cluster"), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot connect to NATS at {url}")),
        "{stderr}"
    );
}

#[test]
fn a_node_without_the_shared_keys_refuses_to_start() {
    let url = format!("nats://127.0.0.1:{}", free_port());
    let cluster_node = || {
        ServerBuilder::new()
            .arg("--nats-urls")
            .arg(&url)
            .arg("--node-id")
            .arg("n1")
    };
    let output = cluster_node()
        .env("QUIVER_MASTER_KEY", MASTER_KEY)
        .run_to_exit();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cluster mode needs QUIVER_IAM_KEY"),
        "{stderr}"
    );
    let output = cluster_node().env("QUIVER_IAM_KEY", IAM_KEY).run_to_exit();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cluster mode needs the same master key on every node"),
        "{stderr}"
    );
}
