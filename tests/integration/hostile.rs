//! Hostile requests are cheap to refuse: a refused caller is answered before its body is read,
//! every API family has a body size limit and a read timeout, a flood of stalled bodies leaves
//! the server's memory bounded, and SCIM filters cannot nest or chain past fixed bounds.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::common::{repo_root, Reply, Server, ServerBuilder, ADMIN_KEY};

/// Tecton's limit, the default `max_body_bytes`: what the attacker declared.
const FOUR_MIB: usize = 4 * 1024 * 1024;

/// A copy of the demo config with another body read timeout, repository paths made absolute.
fn config_with_body_timeout(dir: &Path, timeout: &str) -> PathBuf {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("config.toml")).unwrap();
    let default = "body_read_timeout = \"10s\"";
    assert!(text.contains(default), "config.toml states the default");
    let text = text
        .replace(default, &format!("body_read_timeout = \"{timeout}\""))
        .replace("\"features/", &format!("\"{}/features/", root.display()));
    let config = dir.join("config.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// A server whose bodies must arrive within `timeout`.
fn start_with_body_timeout(timeout: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_body_timeout(dir.path(), timeout);
    (ServerBuilder::new().config(&config).start(), dir)
}

#[test]
fn a_zero_body_read_timeout_stops_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_body_timeout(dir.path(), "0s");
    let output = ServerBuilder::new().config(&config).run_to_exit();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.body_read_timeout `0s` must be longer than 0s"),
        "{stderr}"
    );
}

/// An HTTP/1.1 request written by hand, so that it can stop mid-body as a hostile client does.
struct RawRequest {
    stream: TcpStream,
}

impl RawRequest {
    /// Sends the head (with `Content-Length: declared` when given) and then `sent`.
    fn start(
        base_url: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        declared: Option<usize>,
        sent: &[u8],
    ) -> RawRequest {
        let address = base_url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("the server accepts a connection");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
        if let Some(length) = declared {
            head.push_str(&format!("Content-Length: {length}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("the head is sent");
        // A server that refuses early may close before taking all of it: that is allowed.
        let _ = stream.write_all(sent);
        RawRequest { stream }
    }

    /// The answer's status and JSON body, waiting at most `wait` for it, after which the server must close the connection within `wait`: a refused
    /// body, even a stalled chunked one, must not hold its connection.
    fn reply_then_closed(mut self, wait: Duration) -> (u16, Json) {
        let answer = self.read_reply(wait);
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut buffer = [0u8; 1024];
        match self.stream.read(&mut buffer) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Ok(n) => panic!("unexpected bytes after the answer: {:?}", &buffer[..n]),
            Err(e) => panic!("the connection is still open after {wait:?} ({e})"),
        }
        answer
    }

    /// The answer's status and JSON body, waiting at most `wait` for it.
    fn read_reply(&mut self, wait: Duration) -> (u16, Json) {
        let deadline = Instant::now() + wait;
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            if let Some(answer) = parse_response(&received) {
                return answer;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let got = || String::from_utf8_lossy(&received).to_string();
            assert!(
                !left.is_zero(),
                "no complete answer within {wait:?}; got {:?}",
                got()
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buffer) {
                Ok(0) => panic!(
                    "the server closed without a complete answer; got {:?}",
                    got()
                ),
                Ok(n) => received.extend_from_slice(&buffer[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("reading the answer failed ({e}); got {:?}", got()),
            }
        }
    }
}

/// A complete response with a `Content-Length` JSON body; `None` while it is incomplete.
fn parse_response(bytes: &[u8]) -> Option<(u16, Json)> {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..split]).expect("an ASCII head");
    let body = &bytes[split + 4..];
    let status = head.split(' ').nth(1)?.parse().expect("a numeric status");
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .map(|(_, value)| value.trim().parse().expect("a numeric Content-Length"))?;
    if body.len() < length {
        return None;
    }
    let json = serde_json::from_slice(&body[..length])
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    Some((status, json))
}

/// Each API family's error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Feature Service, secrets service, `/admin`: `{"error", "code", "message"}`.
    Tecton,
    /// Stream Ingest: `{"requestError": {"errorMessage", "errorType"}}`.
    Ingest,
    Scim,
    TrueFoundry,
    Tinybird,
}

/// Checks `body` has `family`'s error shape for `status`; returns its message.
fn error_message(family: Family, status: u16, body: &Json) -> String {
    let message = match family {
        Family::Tecton => {
            assert!(body["code"].is_u64(), "{body}");
            assert_eq!(body["error"], body["message"], "{body}");
            &body["message"]
        }
        Family::Ingest => {
            assert!(body["requestError"]["errorType"].is_string(), "{body}");
            &body["requestError"]["errorMessage"]
        }
        Family::Scim => {
            assert_eq!(
                body["schemas"],
                json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
            );
            assert_eq!(body["status"], status.to_string(), "{body}");
            &body["detail"]
        }
        Family::TrueFoundry => {
            assert_eq!(body["statusCode"], status, "{body}");
            &body["message"]
        }
        Family::Tinybird => {
            assert!(body["documentation"].is_string(), "{body}");
            &body["error"]
        }
    };
    message.as_str().expect("a text message").to_string()
}

const NO_KEY: &[(&str, &str)] = &[];
const BAD_KEY: &[(&str, &str)] = &[("Authorization", "Bearer not-a-key")];

/// A request that must be refused before its body is read.
struct Refused<'a> {
    family: Family,
    method: &'static str,
    path: &'static str,
    headers: &'a [(&'a str, &'a str)],
    /// Tinybird says 403 where the others say 401.
    status: u16,
}

/// One request per route family that takes a body, without a valid key.
fn unauthenticated() -> Vec<Refused<'static>> {
    let refused = |family, method, path, headers, status| Refused {
        family,
        method,
        path,
        headers,
        status,
    };
    vec![
        refused(
            Family::Tecton,
            "POST",
            "/api/v1/feature-service/get-features",
            NO_KEY,
            401,
        ),
        refused(
            Family::Tecton,
            "POST",
            "/api/v2/workspaces/prod/feature-services/user_risk_service/get-features-batch",
            BAD_KEY,
            401,
        ),
        refused(
            Family::Tecton,
            "POST",
            "/api/v1/feature-service/metadata",
            BAD_KEY,
            401,
        ),
        refused(Family::Ingest, "POST", "/ingest", NO_KEY, 401),
        refused(
            Family::Tecton,
            "POST",
            "/admin/workspaces/prod/feature-views/user_profile/rows",
            BAD_KEY,
            401,
        ),
        refused(Family::Scim, "POST", "/api/scim/v2/.search", NO_KEY, 401),
        refused(
            Family::Scim,
            "PATCH",
            "/api/scim/v2/Users/someone",
            BAD_KEY,
            401,
        ),
        refused(
            Family::Tecton,
            "PUT",
            "/api/v1/secrets-service/scopes/s/keys/k",
            NO_KEY,
            401,
        ),
        refused(
            Family::Tecton,
            "POST",
            "/api/v1/authorization-service/assign-roles",
            BAD_KEY,
            401,
        ),
        refused(
            Family::TrueFoundry,
            "POST",
            "/api/svc/v1/secret-groups",
            NO_KEY,
            401,
        ),
        refused(
            Family::TrueFoundry,
            "POST",
            "/api/svc/v1/secrets",
            BAD_KEY,
            401,
        ),
        refused(
            Family::Tinybird,
            "POST",
            "/v0/variables?token=not-a-key",
            NO_KEY,
            403,
        ),
        refused(Family::Tinybird, "PUT", "/v0/secrets/name", BAD_KEY, 403),
    ]
}

fn scim_search(server: &Server, filter: &str) -> Reply {
    server.admin_post("/api/scim/v2/.search", &json!({ "filter": filter }))
}

fn assert_invalid_filter(reply: &Reply, fragment: &str) {
    assert_eq!(reply.status, 400, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["scimType"], "invalidFilter", "{body}");
    let detail = error_message(Family::Scim, 400, &body);
    assert!(detail.contains(fragment), "{detail}");
}

#[test]
fn deep_or_long_scim_filters_get_invalid_filter_and_the_server_lives() {
    let server = Server::start();
    // The request: ~7,000 terms, about 55 KB, used to overflow a stack and abort.
    let long_chain = vec!["a pr"; 7000].join(" or ");
    assert_invalid_filter(
        &scim_search(&server, &long_chain),
        "the limit is 8192 bytes",
    );
    let levels = 40;
    for deep in [
        format!(
            "{}userName pr{}",
            "not (".repeat(levels),
            ")".repeat(levels)
        ),
        format!("{}value pr{}", "emails[".repeat(levels), "]".repeat(levels)),
        format!("{}userName pr{}", "(".repeat(levels), ")".repeat(levels)),
    ] {
        assert_invalid_filter(&scim_search(&server, &deep), "more than 32 levels");
    }
    // Projections are bounded too: their cost is names x attributes for every resource listed.
    let names = vec!["userName"; 101].join(",");
    let projected = server.admin_post("/api/scim/v2/.search", &json!({ "attributes": names }));
    assert_eq!(projected.status, 400, "{}", projected.body);
    assert_eq!(projected.json()["scimType"], "invalidValue");
    assert!(
        projected.body.contains("the limit is 100"),
        "{}",
        projected.body
    );
    // A long chain under the length limit is a flat list: it is answered.
    let chain = vec!["title pr"; 500].join(" or ") + " or userName pr";
    let listed = scim_search(&server, &chain);
    assert_eq!(listed.status, 200, "{}", listed.body);

    // A PATCH path's filter has the same bounds.
    let group = server.admin_post("/api/scim/v2/Groups", &json!({"displayName": "Deep"}));
    assert_eq!(group.status, 201, "{}", group.body);
    let id = group.json()["id"].as_str().unwrap().to_string();
    let deep_path = format!(
        "members[{}value pr{}]",
        "(".repeat(levels),
        ")".repeat(levels)
    );
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": deep_path}]});
    let auth = format!("Bearer {ADMIN_KEY}");
    let patched = server.request(
        "PATCH",
        &format!("/api/scim/v2/Groups/{id}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/scim+json"),
        ],
        Some(patch.to_string().as_bytes()),
    );
    assert_eq!(patched.status, 400, "{}", patched.body);
    assert!(
        patched.body.contains("more than 32 levels"),
        "{}",
        patched.body
    );

    assert_eq!(server.request("GET", "/health", &[], None).status, 200);
    assert!(scim_user_count(&server).is_u64(), "SCIM still answers");
}

/// A malformed filter or PATCH op is refused in the request's own words (its tokens, the end of
/// the filter, the op it sent), never in the parser's (`Some(..)`, `None`, `Word(..)`).
#[test]
fn malformed_scim_filters_and_ops_are_refused_in_the_requests_words() {
    let server = Server::start();
    for (filter, fragment) in [
        (
            "userName eq \"a\" and",
            "expected an attribute name, got the end of the filter",
        ),
        (
            "userName eq",
            "expected a value after the operator, got the end",
        ),
        ("(userName pr", "expected `)`, got the end of the filter"),
        ("emails[type pr", "expected `]`, got the end of the filter"),
        ("userName pr )", "unexpected `)` after a complete filter"),
        (
            "userName eq (",
            "expected a value after the operator, got `(`",
        ),
    ] {
        let reply = scim_search(&server, filter);
        assert_invalid_filter(&reply, fragment);
        for parser_word in ["Some(", "None", "Word(", "Close", "OpenBracket"] {
            assert!(
                !reply.body.contains(parser_word),
                "{filter}: {}",
                reply.body
            );
        }
    }
    let id = scim_user(&server, "ops@example.com");
    let auth = format!("Bearer {ADMIN_KEY}");
    let patch = |operations: Json| scim_patch(&server, &id, operations);
    for (operations, fragment) in [
        (
            json!([{"op": "explode", "path": "title", "value": "x"}]),
            "Operations[0].op must be add, replace or remove, got `explode`",
        ),
        (
            json!([{"op": "Explode", "path": "title", "value": "x"}]),
            "Operations[0].op must be add, replace or remove, got `Explode`",
        ),
        (
            json!([{"path": "title", "value": "x"}]),
            "Operations[0].op must be add, replace or remove, got no op",
        ),
        (
            json!([{"op": 1, "path": "title", "value": "x"}]),
            "Operations[0].op must be add, replace or remove, got an op that is not a string",
        ),
        (
            json!([{"op": "replace", "path": "title"}]),
            "`title`: replace needs a value",
        ),
    ] {
        let reply = patch(operations);
        assert_eq!(reply.status, 400, "{}", reply.body);
        let detail = error_message(Family::Scim, 400, &reply.json());
        assert!(detail.contains(fragment), "{detail}");
    }
    let unchanged = server.request(
        "GET",
        &format!("/api/scim/v2/Users/{id}"),
        &[("Authorization", &auth)],
        None,
    );
    assert!(
        unchanged.json().get("title").is_none(),
        "{}",
        unchanged.body
    );
}

/// A new SCIM user named `user_name`; answers its id.
fn scim_user(server: &Server, user_name: &str) -> String {
    let user = server.admin_post("/api/scim/v2/Users", &json!({"userName": user_name}));
    assert_eq!(user.status, 201, "{}", user.body);
    user.json()["id"].as_str().unwrap().to_string()
}

/// A SCIM PATCH of user `id` with `operations`, as the admin.
fn scim_patch(server: &Server, id: &str, operations: Json) -> Reply {
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": operations});
    server.request(
        "PATCH",
        &format!("/api/scim/v2/Users/{id}"),
        &[
            ("Authorization", &format!("Bearer {ADMIN_KEY}")),
            ("Content-Type", "application/scim+json"),
        ],
        Some(body.to_string().as_bytes()),
    )
}

/// An add of thousands of values to a list of thousands (a big group's members, a user's emails)
/// looks each up in a set past a few lookups (`scim::patch::Values`): what is held already is
/// still added once. Its speed is not asserted here (a timed test fails on a busy machine); the
/// commit that made it measured three 9,000-email adds at 14.1 s before and 0.7 s after.
#[test]
fn a_patch_adding_thousands_of_values_to_a_long_list_adds_each_once() {
    let server = Server::start();
    let id = scim_user(&server, "many@example.com");
    let add_emails = |from: usize| {
        let emails: Vec<Json> = (from..from + 9000)
            .map(|i| json!({"value": format!("{i}@x.io")}))
            .collect();
        scim_patch(
            &server,
            &id,
            json!([{"op": "add", "path": "emails", "value": emails}]),
        )
    };
    for from in [0, 9000] {
        let added = add_emails(from);
        assert_eq!(added.status, 200, "{}", added.body);
    }
    // Half of these are held already.
    let last = add_emails(13_500);
    assert_eq!(last.status, 200, "{}", last.body);
    let emails = last.json()["emails"].as_array().unwrap().clone();
    assert_eq!(emails.len(), 22_500);
    let distinct: std::collections::BTreeSet<&str> = emails
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), 22_500, "each value once");
}

/// A key that authenticates but holds no role and is not an admin.
fn key_without_roles(server: &Server) -> String {
    let created = server.admin_post("/api/scim/v2/ServiceAccounts", &json!({"name": "no-roles"}));
    assert_eq!(created.status, 201, "{}", created.body);
    created.json()["apiKey"].as_str().unwrap().to_string()
}

#[test]
fn refused_callers_are_answered_before_their_body_arrives() {
    // A server that waited for these bodies would answer only after 60 s: the client gives up
    // long before, so an answer proves the body was not awaited.
    let (server, _dir) = start_with_body_timeout("60s");
    let key = key_without_roles(&server);
    let bearer = format!("Bearer {key}");
    let with_key: &[(&str, &str)] = &[("Authorization", &bearer)];
    // A valid key without the permission: 403, also before the body.
    let forbidden = |family, path| Refused {
        family,
        method: "POST",
        path,
        headers: with_key,
        status: 403,
    };
    let mut refused = unauthenticated();
    refused.extend([
        forbidden(Family::Tecton, "/api/v1/feature-service/get-features"),
        forbidden(
            Family::Tecton,
            "/api/v2/workspaces/prod/feature-services/user_risk_service/get-features",
        ),
        forbidden(Family::Ingest, "/ingest"),
        forbidden(
            Family::Tecton,
            "/admin/workspaces/prod/feature-views/user_profile/rows",
        ),
        forbidden(Family::Scim, "/api/scim/v2/Users"),
        forbidden(Family::Tinybird, "/v0/variables"),
    ]);

    // Each declares 4 MiB (or sends a 4 MiB chunk, which actix would otherwise drain for as long
    // as the client sends), sends 64 KiB and stalls; all at once.
    let first_part = vec![b' '; 64 * 1024];
    let mut chunk = format!("{FOUR_MIB:x}\r\n").into_bytes();
    chunk.extend_from_slice(&first_part);
    let started: Vec<_> = refused
        .iter()
        .flat_map(|r| {
            let mut chunked = r.headers.to_vec();
            chunked.push(("Transfer-Encoding", "chunked"));
            let base = &server.base_url;
            [
                RawRequest::start(
                    base,
                    r.method,
                    r.path,
                    r.headers,
                    Some(FOUR_MIB),
                    &first_part,
                ),
                RawRequest::start(base, r.method, r.path, &chunked, None, &chunk),
            ]
            .map(|request| (r, request))
        })
        .collect();
    for (r, request) in started {
        let (status, body) = request.reply_then_closed(Duration::from_secs(15));
        let (method, path) = (r.method, r.path);
        assert_eq!(status, r.status, "{method} {path}: {body}");
        let message = error_message(r.family, status, &body);
        assert!(!message.contains("body"), "{method} {path}: {message}");
        if let Family::Ingest = r.family {
            let expected = if status == 401 {
                "AuthenticationError"
            } else {
                "PermissionDeniedError"
            };
            assert_eq!(body["requestError"]["errorType"], expected);
        }
    }
}

/// The server's resident memory, from `/proc/<pid>/status`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

#[test]
fn a_flood_of_stalled_unauthenticated_bodies_leaves_memory_bounded() {
    let server = Server::start();
    let features = json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": "user_1001", "merchant": "m"}}});
    let answered = |server: &Server| {
        let reply = server.admin_post("/api/v1/feature-service/get-features", &features);
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    answered(&server);
    let before = rss_kib(server.pid());

    // The attack: declare 4 MiB, send all but the last byte, stall. One connection in
    // two goes to TrueFoundry or Tinybird, which used to buffer the body before the key check.
    let read_before_the_key_check = [
        ("POST", "/api/svc/v1/secret-groups"),
        ("POST", "/v0/variables"),
    ];
    let others = [
        ("POST", "/api/v1/feature-service/get-features"),
        ("POST", "/api/scim/v2/.search"),
        ("POST", "/ingest"),
        ("PUT", "/api/v1/secrets-service/scopes/s/keys/k"),
    ];
    let flood: Vec<_> = (0..100)
        .map(|i| {
            let (method, path) = if i % 2 == 0 {
                read_before_the_key_check[i / 2 % 2]
            } else {
                others[i / 2 % others.len()]
            };
            let base_url = server.base_url.clone();
            std::thread::spawn(move || {
                let mut request =
                    RawRequest::start(&base_url, method, path, NO_KEY, Some(FOUR_MIB), b"");
                request
                    .stream
                    .set_write_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let chunk = vec![b' '; 64 * 1024];
                let mut left = FOUR_MIB - 1;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if request.stream.write_all(&chunk[..n]).is_err() {
                        break;
                    }
                    left -= n;
                }
                request
            })
        })
        .collect();
    // Served during the flood.
    assert_eq!(server.request("GET", "/health", &[], None).status, 200);
    answered(&server);
    let stalled: Vec<RawRequest> = flood.into_iter().map(|t| t.join().unwrap()).collect();
    answered(&server);
    let after = rss_kib(server.pid());
    assert!(
        after < before + 100 * 1024,
        "RSS grew from {before} KiB to {after} KiB with {} stalled connections",
        stalled.len()
    );
}

/// Bodies read at once hold at most `server.max_body_bytes_in_flight` (here one worker's, with
/// room for one and a half bodies): a body that would pass it gets 503 in its family's shape
/// and its connection closed, and once the body holding the room is done the same request is
/// read again. A thousand clients sending 4 MiB each would otherwise hold 4 GB. The bodies are
/// larger than actix reads at once (128 KiB and its buffer's growth), so a whole body cannot
/// arrive as one chunk, which is actix's read and not counted, however the server is scheduled
/// (it did under load: no body was refused).
#[test]
fn bodies_read_at_once_hold_at_most_max_body_bytes_in_flight() {
    const BODY: usize = 600_000;
    let server = ServerBuilder::new()
        .arg("--workers=1")
        .arg(&format!("--max-body-bytes={BODY}"))
        .arg(&format!("--max-body-bytes-in-flight={}", BODY * 3 / 2))
        .start();
    let tecton_key = format!("Tecton-key {ADMIN_KEY}");
    let headers = authorization(&tecton_key);
    let ingest = |sent: &[u8]| {
        RawRequest::start(
            &server.base_url,
            "POST",
            "/ingest",
            &headers,
            Some(BODY),
            sent,
        )
    };
    // Three quarters of a body, then a stall: it holds 450,000 bytes until it is sent whole
    // (counted whether actix hands them over in one chunk or several).
    let mut holding = ingest(&[b' '; BODY * 3 / 4]);
    let whole = vec![b' '; BODY];
    // Once the server has read what the stalled body sent (retried until then), a whole one
    // does not fit beside it.
    let refusal = (0..100)
        .find_map(|_| {
            let (status, body) = ingest(&whole).read_reply(Duration::from_secs(30));
            if status == 503 {
                return Some(body);
            }
            assert_eq!(status, 400, "a body of spaces is not JSON: {body}");
            std::thread::sleep(Duration::from_millis(100));
            None
        })
        .expect("a body past the room left is refused");
    let message = error_message(Family::Ingest, 503, &refusal);
    assert!(
        message.contains("server.max_body_bytes_in_flight"),
        "{message}"
    );
    // The stalled body, sent whole, is read (and refused for what it is, not for room).
    holding.stream.write_all(&[b' '; BODY / 4]).unwrap();
    let (status, body) = holding.read_reply(Duration::from_secs(30));
    assert_eq!(status, 400, "{body}");
    let (status, body) = ingest(&whole).read_reply(Duration::from_secs(30));
    assert_eq!(status, 400, "the room is given back: {body}");
    assert_eq!(server.request("GET", "/health", &[], None).status, 200);
}

#[test]
fn an_authenticated_stalled_body_gets_408_after_the_read_timeout() {
    let (server, _dir) = start_with_body_timeout("2s");
    let tecton_key = format!("Tecton-key {ADMIN_KEY}");
    let bearer = format!("Bearer {ADMIN_KEY}");
    let tinybird = format!("/v0/variables?token={ADMIN_KEY}");
    let stalled: Vec<(Family, &str, String, &str)> = vec![
        (
            Family::Tecton,
            "POST",
            "/api/v1/feature-service/get-features".into(),
            &tecton_key,
        ),
        (Family::Ingest, "POST", "/ingest".into(), &tecton_key),
        (
            Family::Tecton,
            "POST",
            "/admin/workspaces/prod/feature-views/user_profile/rows".into(),
            &tecton_key,
        ),
        (Family::Scim, "POST", "/api/scim/v2/Users".into(), &bearer),
        (
            Family::Tecton,
            "PUT",
            "/api/v1/secrets-service/scopes/s/keys/k".into(),
            &tecton_key,
        ),
        (
            Family::TrueFoundry,
            "POST",
            "/api/svc/v1/secret-groups".into(),
            &bearer,
        ),
        (Family::Tinybird, "POST", tinybird, ""),
    ];
    // All stall at once, with a declared length and chunked; each is cut by the server, not
    // by this test's generous wait.
    let started: Vec<_> = stalled
        .iter()
        .flat_map(|(family, method, path, auth)| {
            let headers = authorization(auth);
            let mut chunked = headers.clone();
            chunked.push(("Transfer-Encoding", "chunked"));
            let declared = RawRequest::start(
                &server.base_url,
                method,
                path,
                &headers,
                Some(1000),
                b"{\"par",
            );
            let chunked = RawRequest::start(
                &server.base_url,
                method,
                path,
                &chunked,
                None,
                b"3e8\r\n{\"par",
            );
            [
                (*family, method, path, declared),
                (*family, method, path, chunked),
            ]
        })
        .collect();
    for (family, method, path, request) in started {
        let (status, body) = request.reply_then_closed(Duration::from_secs(30));
        assert_eq!(status, 408, "{method} {path}: {body}");
        let message = error_message(family, 408, &body);
        assert!(message.contains("2-second read timeout"), "{message}");
    }
    assert_eq!(server.request("GET", "/health", &[], None).status, 200);
}

fn scim_user_count(server: &Server) -> Json {
    let auth = format!("Bearer {ADMIN_KEY}");
    let users = server.request(
        "GET",
        "/api/scim/v2/Users",
        &[("Authorization", &auth)],
        None,
    );
    users.json()["totalResults"].clone()
}

/// `Authorization: <auth>`, or no header for a route whose key is in its query string.
fn authorization(auth: &str) -> Vec<(&str, &str)> {
    if auth.is_empty() {
        Vec::new()
    } else {
        vec![("Authorization", auth)]
    }
}

#[test]
fn oversize_bodies_get_413_in_each_familys_shape_and_write_nothing() {
    let server = Server::start();
    let tecton_key = format!("Tecton-key {ADMIN_KEY}");
    let bearer = format!("Bearer {ADMIN_KEY}");
    let scope = server.request(
        "POST",
        "/api/v1/secrets-service/scopes/hostile",
        &[("Authorization", &tecton_key)],
        Some(b""),
    );
    assert_eq!(scope.status, 200, "{}", scope.body);
    let users_before = scim_user_count(&server);

    let tinybird = format!("/v0/variables?token={ADMIN_KEY}");
    // Family, method, path, key, the route's limit.
    let oversize: Vec<(Family, &str, &str, &str, usize)> = vec![
        (
            Family::Tecton,
            "POST",
            "/api/v1/feature-service/get-features",
            &tecton_key,
            FOUR_MIB,
        ),
        (Family::Ingest, "POST", "/ingest", &tecton_key, FOUR_MIB),
        (
            Family::Tecton,
            "POST",
            "/admin/workspaces/prod/feature-views/user_profile/rows",
            &tecton_key,
            64 * 1024 * 1024,
        ),
        (
            Family::Scim,
            "POST",
            "/api/scim/v2/Users",
            &bearer,
            256 * 1024,
        ),
        (
            Family::Tecton,
            "PUT",
            "/api/v1/secrets-service/scopes/hostile/keys/k",
            &tecton_key,
            512 * 1024,
        ),
        (
            Family::TrueFoundry,
            "POST",
            "/api/svc/v1/secret-groups",
            &bearer,
            1024 * 1024,
        ),
        (Family::Tinybird, "POST", &tinybird, "", 64 * 1024),
    ];
    // Declared: refused without reading the body. Chunked (and still being sent): refused when
    // the read passes the limit. All at once, then every answer is checked.
    let started: Vec<_> = oversize
        .iter()
        .flat_map(|&(family, method, path, auth, limit)| {
            let headers = authorization(auth);
            let mut chunked = headers.clone();
            chunked.push(("Transfer-Encoding", "chunked"));
            let mut chunk = format!("{:x}\r\n", limit + 1).into_bytes();
            chunk.resize(chunk.len() + limit + 1, b' ');
            let base = &server.base_url;
            [
                RawRequest::start(base, method, path, &headers, Some(limit + 1), b"{"),
                RawRequest::start(base, method, path, &chunked, None, &chunk),
            ]
            .map(|request| (family, method, path, limit, request))
        })
        .collect();
    for (family, method, path, limit, request) in started {
        let (status, body) = request.reply_then_closed(Duration::from_secs(15));
        assert_eq!(status, 413, "{method} {path}: {body}");
        let message = error_message(family, 413, &body);
        assert!(
            message.contains(&format!("{limit}-byte limit")),
            "{message}"
        );
    }

    // Nothing was written.
    let keys = server.request(
        "GET",
        "/api/v1/secrets-service/scopes/hostile/keys",
        &[("Authorization", &tecton_key)],
        None,
    );
    assert_eq!(keys.json()["keys"], json!([]), "{}", keys.body);
    let groups = server.request(
        "GET",
        "/api/svc/v1/secret-groups",
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(groups.json()["pagination"]["total"], 0, "{}", groups.body);
    let variables = server.request("GET", &tinybird, &[], None);
    assert_eq!(
        variables.json()["variables"],
        json!([]),
        "{}",
        variables.body
    );
    let users_after = scim_user_count(&server);
    assert_eq!(users_after, users_before);
}

#[test]
fn an_empty_token_parameter_does_not_shadow_the_authorization_header() {
    let server = Server::start();
    let bearer = format!("Bearer {ADMIN_KEY}");
    let by_header = server.request(
        "GET",
        "/v0/variables?token=",
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(by_header.status, 200, "{}", by_header.body);
    assert_eq!(by_header.json()["variables"], json!([]));
    let neither = server.request("GET", "/v0/variables?token=", &[], None);
    assert_eq!(neither.status, 403, "{}", neither.body);
    assert_eq!(neither.json()["error"], "invalid authentication token");
}

/// Checks a refusal that echoes a client's over-long `sent` value: `family`'s shape and
/// `status`, the value's first 64 characters and its length, not the rest of it.
fn assert_echo_bounded(family: Family, status: u16, reply: &Reply, sent: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_message_echo_bounded(&error_message(family, status, &reply.json()), sent);
}

/// Checks `message` names `sent` by its first 64 characters and its length only.
fn assert_message_echo_bounded(message: &str, sent: &str) {
    let shown = format!("{}… ({} bytes)", &sent[..64], sent.len());
    assert!(message.contains(&shown), "{message}");
    assert!(message.len() < 400, "{} bytes: {message}", message.len());
}

/// An over-long name, id or field is named in its refusal by its first 64 characters and its
/// length, in every family (a 5000-byte name was echoed whole, twice in Tecton's body).
#[test]
fn an_over_long_name_is_echoed_cut_to_a_bound_in_every_family() {
    let server = Server::start();
    let tecton_key = format!("Tecton-key {ADMIN_KEY}");
    let tecton = [("Authorization", tecton_key.as_str())];
    let long = "n".repeat(5000);
    let cases: Vec<(Family, u16, &str, String, Option<String>)> = vec![
        (
            Family::Tecton,
            400,
            "POST",
            format!("/api/v1/secrets-service/scopes/{long}"),
            Some(String::new()),
        ),
        (
            Family::Tecton,
            404,
            "POST",
            "/api/v1/feature-service/get-features".into(),
            Some(
                json!({"params": {"workspaceName": "prod", "featureServiceName": long,
                    "joinKeyMap": {}}})
                .to_string(),
            ),
        ),
        (
            Family::Ingest,
            404,
            "POST",
            "/ingest".into(),
            Some(
                json!({"workspace_name": long, "dry_run": false,
                    "records": {"transactions": []}})
                .to_string(),
            ),
        ),
        (
            Family::Tecton,
            404,
            "POST",
            format!("/admin/workspaces/prod/feature-views/{long}/rows"),
            Some(String::new()),
        ),
        (
            Family::TrueFoundry,
            422,
            "POST",
            "/api/svc/v1/secret-groups".into(),
            Some(json!({"name": long, "integrationFqn": "x", "secrets": []}).to_string()),
        ),
        (
            Family::TrueFoundry,
            404,
            "GET",
            format!("/api/svc/v1/secret-groups/{long}"),
            None,
        ),
        (
            Family::Scim,
            404,
            "GET",
            format!("/api/scim/v2/Users/{long}"),
            None,
        ),
        (
            Family::Scim,
            400,
            "POST",
            "/api/scim/v2/Users".into(),
            Some(json!({"userName": "u@example.com", long.clone(): 1}).to_string()),
        ),
        (
            Family::Tinybird,
            400,
            "POST",
            format!("/v0/variables?token={ADMIN_KEY}"),
            Some(format!("name={long}&value=v")),
        ),
    ];
    for (family, status, method, path, body) in cases {
        let headers: &[(&str, &str)] = if family == Family::Tinybird {
            &[]
        } else {
            &tecton
        };
        let reply = server.request(method, &path, headers, body.as_deref().map(str::as_bytes));
        assert_echo_bounded(family, status, &reply, &long);
    }
    // Nothing was made under the long name.
    let groups = server.request("GET", "/api/svc/v1/secret-groups", &tecton, None);
    assert_eq!(groups.json()["data"], json!([]), "{}", groups.body);
    assert_eq!(scim_user_count(&server), json!(0));
}

/// A row's over-long value is named in `/ingest`'s and the rows endpoint's refusals by its first
/// 64 characters and its length, as a name is, and neither stores anything.
#[test]
fn an_over_long_row_value_is_echoed_cut_to_a_bound_and_nothing_is_stored() {
    let server = Server::start();
    let tecton_key = format!("Tecton-key {ADMIN_KEY}");
    let tecton = [("Authorization", tecton_key.as_str())];
    let long = "t".repeat(5000);
    let record = json!({"user_id": "user_echo", "merchant": "fraud_Kirlin and Sons",
        "terminal_id": 77, "amt": 1.5, "category": "grocery_pos", "is_online": false,
        "timestamp": long});
    let ingest = json!({"workspace_name": "prod", "dry_run": false,
        "records": {"transactions": [{"record": record}]}});
    let reply = server.request(
        "POST",
        "/ingest",
        &tecton,
        Some(ingest.to_string().as_bytes()),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    let refused = reply.json();
    let message = refused["recordErrors"][0]["errorMessage"].as_str().unwrap();
    assert_message_echo_bounded(message, &long);

    let row = json!({"user_id": "user_echo", "timestamp": "2024-05-01T12:00:00Z",
        "credit_score": long});
    let reply = server.request(
        "POST",
        "/admin/workspaces/prod/feature-views/user_profile/rows",
        &tecton,
        Some(format!("{row}\n").as_bytes()),
    );
    // A value of the wrong JSON type is named in its JSON text.
    assert_echo_bounded(Family::Tecton, 400, &reply, &json!(long).to_string());

    let read = json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": "user_echo", "merchant": "fraud_Kirlin and Sons"},
        "metadataOptions": {"includeServingStatus": true}}});
    let reply = server.request(
        "POST",
        "/api/v1/feature-service/get-features",
        &tecton,
        Some(read.to_string().as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let statuses: Vec<Json> = reply.json()["metadata"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            let name = f["name"].as_str().unwrap();
            name.starts_with("user_profile.") || name.starts_with("user_last_transaction.")
        })
        .map(|f| f["status"].clone())
        .collect();
    assert!(!statuses.is_empty());
    assert!(statuses.iter().all(|s| s == "MISSING_DATA"), "{statuses:?}");
}

/// A list where a nested object is expected (serde would read a struct from a list of its
/// fields in order) is refused in the family's shape, naming the field and an object, and
/// nothing is written.
#[test]
fn a_list_where_a_nested_object_is_expected_is_refused_naming_the_field() {
    let server = Server::start();
    let tecton_key = format!("Tecton-key {ADMIN_KEY}");
    let tecton = [("Authorization", tecton_key.as_str())];
    let params = |extra: (&str, Json)| {
        let mut params = json!({"workspaceName": "prod", "featureServiceName": "user_risk_service",
            "joinKeyMap": {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"}});
        params[extra.0] = extra.1;
        json!({"params": params})
    };
    let cases: Vec<(Family, u16, &str, Json, &str)> = vec![
        (
            Family::Tecton,
            400,
            "/api/v1/feature-service/get-features",
            params((
                "metadataOptions",
                json!([true, true, true, true, true, true, true]),
            )),
            "`params.metadataOptions`",
        ),
        (
            Family::Tecton,
            400,
            "/api/v1/feature-service/get-features-batch",
            params(("requestData", json!([[{"user_id": "user_1001"}, {}]]))),
            "`params.requestData[0]`",
        ),
        (
            Family::Tecton,
            400,
            "/api/v1/feature-service/get-features",
            json!({"params": ["prod", "user_risk_service"]}),
            "`params`",
        ),
        (
            Family::TrueFoundry,
            400,
            "/api/svc/v1/secret-groups",
            json!({"name": "listed", "secrets": [["K", "v"]]}),
            "`secrets[0]`",
        ),
        (
            Family::Tecton,
            400,
            "/api/v1/secrets-service/assign-roles",
            json!({"assignments": [["RESOURCE_TYPE_SECRET_SCOPE", "s", "read_scope_role",
                "PRINCIPAL_TYPE_USER", "someone"]]}),
            "`assignments[0]`",
        ),
    ];
    for (family, status, path, body, field) in cases {
        let reply = server.request("POST", path, &tecton, Some(body.to_string().as_bytes()));
        assert_eq!(reply.status, status, "{path}: {}", reply.body);
        let message = error_message(family, status, &reply.json());
        assert!(message.contains(field), "{message}");
        assert!(
            message.contains("invalid type: array, expected an object"),
            "{message}"
        );
    }
    let groups = server.request("GET", "/api/svc/v1/secret-groups", &tecton, None);
    assert_eq!(groups.json()["data"], json!([]), "{}", groups.body);
}

/// A raw byte that is not ASCII in the request line is refused by actix-http's connection
/// handler before any Quiver code runs (README, "Limits"): 400, an empty body, closed. Its
/// percent-encoded form reaches the routes and gets the family's JSON (404: no GET route
/// there). Should actix ever hand such a request on, this fails and the README's exception
/// goes.
#[test]
fn a_raw_non_ascii_byte_in_the_path_is_actixs_own_400() {
    let server = Server::start();
    let address = server.url("").trim_start_matches("http://").to_string();
    let exchange = |path: &[u8]| -> String {
        let mut stream = TcpStream::connect(&address).unwrap();
        let mut request = b"GET ".to_vec();
        request.extend_from_slice(path);
        request.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(&request).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).unwrap();
        String::from_utf8_lossy(&answer).to_lowercase()
    };
    let raw = exchange(b"/api/v1/secrets-service/scopes/\xff");
    assert!(raw.starts_with("http/1.1 400 "), "{raw}");
    assert!(raw.contains("content-length: 0\r\n"), "{raw}");
    assert!(!raw.contains("x-request-id"), "no Quiver code ran: {raw}");
    let encoded = exchange(b"/api/v1/secrets-service/scopes/%FF");
    assert!(encoded.starts_with("http/1.1 404 "), "{encoded}");
    assert!(encoded.contains("x-request-id"), "{encoded}");
    assert!(encoded.contains("application/json"), "{encoded}");
}
