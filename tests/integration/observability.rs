//! What operators look at: `/metrics` (numbers that move with traffic, labels that carry no key,
//! secret, join-key value or raw path; who may read it), `/healthz` and `/readyz` during and
//! after a start-up, and the request log (a request id that round-trips; no secret in a line).

use std::time::{Duration, Instant};

use serde_json::json;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::common::{Reply, Server, ServerBuilder, ADMIN_KEY, PATIENCE};
use super::proxy::{call, strings, SECRETS};
use super::secrets::service_account;

/// Values a request carried that no metric label (nor log line) may show.
pub struct Sensitive {
    pub values: Vec<String>,
}

/// Sends traffic through every family that carries something sensitive: a join-key value, a
/// service account's new API key, secret values through each secrets API (Tecton, TrueFoundry,
/// Tinybird with `?token=`, Tecton's metadata proxy with the key in its envelope), an
/// `Authorization` header, ingest records, and a raw path segment.
pub fn sensitive_traffic(server: &Server) -> Sensitive {
    let join_key = "user_joinkey_q7x31";
    let read = json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": join_key, "merchant": "m_1"}}});
    let reply = server.admin_post("/api/v1/feature-service/get-features", &read);
    assert_eq!(reply.status, 200, "{}", reply.body);

    let records = json!([
        {"record": {"user_id": join_key, "merchant": "m_1", "terminal_id": 7, "amt": 12.5,
            "category": "grocery", "is_online": true, "timestamp": super::common::timestamp_in(-5)}},
        {"record": {"user_id": join_key, "merchant": "m_1", "terminal_id": 7, "amt": 1.0,
            "category": "grocery", "is_online": true, "timestamp": super::common::timestamp_in(86_400)}},
    ]);
    let reply = server.admin_post(
        "/ingest",
        &json!({"workspace_name": "prod", "dry_run": false, "records": {"transactions": records}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    let bearer = format!("Bearer {ADMIN_KEY}");
    let (account_id, account_key) = service_account(
        server,
        "metrics-reader",
        json!([{"type": "workspace_prod", "value": "viewer"}]),
    );
    let path = format!("/api/scim/v2/ServiceAccounts/{account_id}");
    assert_eq!(
        server
            .request("GET", &path, &[("Authorization", &bearer)], None)
            .status,
        200
    );

    let tecton_secret = "tecton-secret-value-84k2";
    let tecton = |method: &str, path: &str, body: Option<&[u8]>| -> Reply {
        server.request(
            method,
            &format!("/api/v1/secrets-service{path}"),
            &[
                ("Authorization", &format!("Tecton-key {ADMIN_KEY}")),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    assert_eq!(tecton("POST", "/scopes/scope_rawpath_55", None).status, 200);
    let put = json!({"value": tecton_secret}).to_string();
    let reply = tecton(
        "PUT",
        "/scopes/scope_rawpath_55/keys/k1",
        Some(put.as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    let truefoundry_secret = "truefoundry-secret-value-19zz";
    let group = json!({"name": "grp", "integrationId": "i1",
        "secrets": [{"key": "K", "value": truefoundry_secret}]})
    .to_string();
    let reply = server.request(
        "POST",
        "/api/svc/v1/secret-groups",
        &[
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        Some(group.as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    let tinybird_secret = "tinybird-secret-value-70qa";
    let reply = server.request(
        "POST",
        &format!("/v0/secrets?token={ADMIN_KEY}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(format!("name=pg_password&value={tinybird_secret}").as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Tecton's metadata proxy: the key and the secret inside the JSON envelope's body.
    let proxy_secret = "proxy-secret-value-3m8d";
    let scope = STANDARD.encode(strings(&[(1, "proxy_scope")]));
    let create = format!("{SECRETS}/CreateSecretScope");
    let (status, _) = call(server, "/api/proxy", &create, Some(ADMIN_KEY), &scope);
    assert_eq!(status, 200);
    let put = STANDARD.encode(strings(&[(1, "proxy_scope"), (2, "k"), (3, proxy_secret)]));
    let put_method = format!("{SECRETS}/PutSecretValue");
    let (status, answer) = call(server, "/api/proxy", &put_method, Some(ADMIN_KEY), &put);
    assert_eq!(
        (status, &answer["status"]["code"]),
        (200, &json!(0)),
        "{answer}"
    );

    // The new account's key in an Authorization header, on a route it may use.
    let metadata =
        json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service"}});
    let reply = server.post_json(
        "/api/v1/feature-service/metadata",
        Some(&account_key),
        &metadata,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    Sensitive {
        values: vec![
            ADMIN_KEY.to_string(),
            account_key,
            account_id,
            join_key.to_string(),
            tecton_secret.to_string(),
            truefoundry_secret.to_string(),
            tinybird_secret.to_string(),
            proxy_secret.to_string(),
            put,
            "scope_rawpath_55".to_string(),
        ],
    }
}

/// `GET /metrics` on the API's address, as the admin.
fn scrape(server: &Server) -> String {
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let reply = server.request("GET", "/metrics", &[("Authorization", &auth)], None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    reply.body
}

/// The sum of every sample whose series starts with `series` (a name, optionally followed by
/// the first labels: `quiver_http_requests_total{api="scim"`); 0 when there is none.
fn total(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#') && line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The address `server.metrics_address` is served on, as the server printed it.
fn metrics_url(server: &Server) -> String {
    server
        .printed
        .iter()
        .find_map(|line| line.strip_prefix("quiver metrics on "))
        .expect("the server prints its metrics address")
        .trim()
        .to_string()
}

#[test]
fn metrics_move_with_traffic_and_no_label_carries_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(dir.path()).start();
    let before = scrape(&server);
    let sensitive = sensitive_traffic(&server);
    server.snapshot();
    // The snapshot is listed once its file is renamed in, a moment before its duration is
    // recorded: scrape until it is.
    let deadline = Instant::now() + PATIENCE;
    let after = loop {
        let after = scrape(&server);
        let recorded = total(&after, "quiver_snapshot_duration_seconds_count")
            > total(&before, "quiver_snapshot_duration_seconds_count");
        if recorded || Instant::now() > deadline {
            break after;
        }
        std::thread::sleep(Duration::from_millis(20));
    };

    let moved = |series: &str| {
        assert!(
            total(&after, series) > total(&before, series),
            "{series} did not move:\n{after}"
        )
    };
    moved(
        r#"quiver_http_requests_total{api="feature_service",route="/api/v1/feature-service/get-features",method="POST",status="200"}"#,
    );
    moved(r#"quiver_http_request_duration_seconds_count{api="feature_service""#);
    moved(
        r#"quiver_http_requests_total{api="scim",route="/api/scim/v2/{resource}/{id}",method="GET",status="200"}"#,
    );
    moved(r#"quiver_http_requests_total{api="tecton_secrets""#);
    moved(r#"quiver_http_requests_total{api="truefoundry""#);
    moved(r#"quiver_http_requests_total{api="tinybird""#);
    moved(r#"quiver_http_requests_total{api="proxy",route="/api/proxy""#);
    moved(r#"quiver_ingest_records_total{outcome="accepted""#);
    moved(r#"quiver_ingest_records_total{outcome="rejected",reason="too_far_in_future"}"#);
    moved(r#"quiver_journal_appended_bytes_total{journal="rows"}"#);
    moved(r#"quiver_journal_appended_bytes_total{journal="vault"}"#);
    moved(r#"quiver_journal_fsync_duration_seconds_count{journal="directory"}"#);
    moved("quiver_snapshot_duration_seconds_count");
    assert!(total(&after, "quiver_snapshot_size_bytes") > 0.0);
    assert!(after.contains("quiver_snapshot_age_seconds "));
    assert!(total(&after, "quiver_shard_rows") > 0.0);
    assert!(
        total(
            &after,
            r#"quiver_shard_arena_bytes{shard="0",state="live"}"#
        ) > 0.0
    );
    assert!(after.contains(r#"quiver_shard_mailbox_depth{shard="0"} "#));
    assert!(after.contains(
        r#"quiver_feature_freshness_seconds{workspace="prod",feature_view="user_last_transaction"} "#
    ));

    for value in &sensitive.values {
        assert!(!after.contains(value.as_str()), "{value} is in the metrics");
    }
}

#[test]
fn metrics_need_a_viewer_on_the_api_address_and_nothing_on_their_own() {
    let server = ServerBuilder::new()
        .arg("--metrics-address")
        .arg("127.0.0.1:0")
        .start();
    let main = server.request("GET", "/metrics", &[], None);
    assert_eq!(main.status, 401, "{}", main.body);
    let wrong = server.request(
        "GET",
        "/metrics",
        &[("Authorization", "Tecton-key not-a-key")],
        None,
    );
    assert_eq!(wrong.status, 401);
    assert!(scrape(&server).contains("quiver_http_requests_total"));
    let key_with_roles = |name: &str, roles: serde_json::Value| {
        format!("Tecton-key {}", service_account(&server, name, roles).1)
    };
    let viewer = key_with_roles(
        "viewer",
        json!([{"type": "workspace_prod", "value": "viewer"}]),
    );
    let nobody = key_with_roles("nobody", json!([]));
    let as_key = |auth: &str| {
        server
            .request("GET", "/metrics", &[("Authorization", auth)], None)
            .status
    };
    assert_eq!((as_key(&viewer), as_key(&nobody)), (200, 403));
    // The per-view series are of the caller's workspaces only.
    let staging = key_with_roles(
        "staging-viewer",
        json!([{"type": "workspace_staging", "value": "viewer"}]),
    );
    let text_as = |auth: &str| {
        server
            .request("GET", "/metrics", &[("Authorization", auth)], None)
            .body
    };
    let prod_freshness = r#"quiver_feature_freshness_seconds{workspace="prod""#;
    assert!(text_as(&viewer).contains(prod_freshness));
    let for_staging = text_as(&staging);
    assert!(for_staging.contains("quiver_http_requests_total"));
    assert!(!for_staging.contains(prod_freshness), "{for_staging}");

    let open = ureq::get(&metrics_url(&server))
        .call()
        .expect("the metrics address answers");
    assert_eq!(open.status(), 200);
    let text = open.into_string().unwrap();
    assert!(text.contains(r#"quiver_http_requests_total{api="operations",route="/metrics",method="GET",status="401"}"#), "{text}");
}

#[test]
fn readyz_is_503_while_start_up_recovers_and_200_after() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // State to recover: the demo seed, written through the journal.
    let first = ServerBuilder::new().data_dir(&data).start();
    let read = json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": "user_1001", "merchant": "m_1"}}});
    let before = first.admin_post("/api/v1/feature-service/get-features", &read);
    assert_eq!(before.status, 200, "{}", before.body);
    first.kill9();

    // Start-up waits while this file exists (the server's test hook), so the test sees it.
    let hold = dir.path().join("hold");
    std::fs::write(&hold, b"").unwrap();
    let server = ServerBuilder::new()
        .data_dir(&data)
        .env("QUIVER_TEST_HOLD_START_UP", hold.to_str().unwrap())
        .start_listening();
    assert_eq!(server.request("GET", "/healthz", &[], None).status, 200);
    let starting = server.request("GET", "/readyz", &[], None);
    assert_eq!(starting.status, 503, "{}", starting.body);
    assert_eq!(starting.json()["status"], "starting");
    assert!(starting.json()["reason"]
        .as_str()
        .unwrap()
        .contains("recovering"));
    let refused = server.admin_post("/api/v1/feature-service/get-features", &read);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(server.request("GET", "/health", &[], None).status, 200);

    std::fs::remove_file(&hold).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = server.request("GET", "/readyz", &[], None);
        if ready.status == 200 {
            assert_eq!(ready.json()["status"], "ready");
            break;
        }
        assert_eq!(ready.status, 503, "{}", ready.body);
        assert!(Instant::now() < deadline, "never ready: {}", ready.body);
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = server.admin_post("/api/v1/feature-service/get-features", &read);
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.json()["result"], before.json()["result"]);
    assert_eq!(server.request("GET", "/healthz", &[], None).status, 200);
}

#[test]
fn a_request_id_round_trips_and_names_the_request_in_the_log() {
    let server = ServerBuilder::new().env("QUIVER_LOG", "info").start();
    let given = server.request("GET", "/healthz", &[("X-Request-Id", "req-42.a_b:c")], None);
    assert_eq!(given.header("x-request-id"), Some("req-42.a_b:c"));
    let refused = server.request(
        "POST",
        "/api/v1/feature-service/get-features",
        &[("X-Request-Id", "req-refused")],
        Some(b"{}"),
    );
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("x-request-id"), Some("req-refused"));
    let unknown = server.request(
        "GET",
        "/no/such/route",
        &[("X-Request-Id", "req-404")],
        None,
    );
    assert_eq!(unknown.header("x-request-id"), Some("req-404"));

    let generated = server.request("GET", "/healthz", &[], None);
    let id = generated
        .header("x-request-id")
        .expect("an id is generated");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let forged = server.request(
        "GET",
        "/healthz",
        &[("X-Request-Id", "a b\" status=200")],
        None,
    );
    let replaced = forged.header("x-request-id").unwrap();
    assert!(replaced.len() == 32 && replaced != id, "{replaced}");
    let too_long = "x".repeat(129);
    let long = server.request("GET", "/healthz", &[("X-Request-Id", &too_long)], None);
    assert_ne!(long.header("x-request-id"), Some(too_long.as_str()));

    let log = server.terminate();
    let line = |id: &str| {
        log.lines()
            .find(|line| line.contains(id) && line.contains("answered"))
            .unwrap_or_else(|| panic!("no request line for {id}:\n{log}"))
            .to_string()
    };
    let healthz = line("req-42.a_b:c");
    assert!(
        healthz.contains("/healthz") && healthz.contains("status=200") && healthz.contains("GET"),
        "{healthz}"
    );
    assert!(healthz.contains("duration_ms="), "{healthz}");
    assert!(line("req-refused").contains("status=401"));
    let unmatched = line("req-404");
    assert!(
        unmatched.contains("route=\"unmatched\"") || unmatched.contains("route=unmatched"),
        "the raw path is not logged: {unmatched}"
    );
    assert!(!log.contains("/no/such/route"));
}

#[test]
fn json_logs_carry_no_secret_key_or_authorization_header() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new()
        .data_dir(dir.path())
        .env("QUIVER_LOG", "debug")
        .env("QUIVER_LOG_FORMAT", "json")
        .start();
    let sensitive = sensitive_traffic(&server);
    let log = server.terminate();
    let mut requests = 0;
    for line in log.lines() {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if entry["fields"]["message"] == "answered" {
            requests += 1;
            assert!(entry["span"]["request_id"].is_string(), "{line}");
            assert!(entry["fields"]["route"].is_string(), "{line}");
            assert!(entry["fields"]["status"].is_u64(), "{line}");
        }
    }
    assert_eq!(
        requests, 11,
        "one line per request sensitive_traffic sends:\n{log}"
    );
    for value in
        sensitive
            .values
            .iter()
            .map(String::as_str)
            .chain(["Tecton-key", "Bearer", "token="])
    {
        assert!(!log.contains(value), "{value} is in the log:\n{log}");
    }
}

/// Malformed HTTP is the client's mistake, answered 400 (431 for a head too large): actix
/// logged each one at ERROR from its HTTP/1 dispatcher, so anyone who could reach the port
/// could fill the log with ERROR lines (and page whoever watches them). None reaches the log
/// now, at the default level, while the server's own lines still do.
#[test]
fn malformed_http_writes_no_error_line_to_the_log() {
    use std::io::{Read, Write};
    let server = ServerBuilder::new().env("QUIVER_LOG", "info").start();
    let address = server.base_url.trim_start_matches("http://").to_string();
    let garbage: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 a TLS hello sent to plain HTTP\r\n\r\n",
    ];
    let mut huge_head = b"GET /healthz HTTP/1.1\r\nX-Filler: ".to_vec();
    huge_head.extend(std::iter::repeat_n(b'a', 64 * 1024));
    huge_head.extend_from_slice(b"\r\n\r\n");
    for bytes in garbage.iter().copied().chain([huge_head.as_slice()]) {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        // The server may answer and close before taking all of a head too large.
        let _ = stream.write_all(bytes);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );
    }
    assert_eq!(server.request("GET", "/healthz", &[], None).status, 200);
    let log = server.terminate();
    let errors: Vec<&str> = log.lines().filter(|line| line.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(
        log.contains("answered") && log.contains("WARN quiver::secrets"),
        "the server's own lines still reach the log:\n{log}"
    );
}
