//! Error bodies byte for byte, for the paths no other area pins whole: the `/admin` family, the
//! ingest API's error types, SCIM's `/Bulk` and unknown paths, and query strings that do not
//! parse (which get the family's shape, not actix's plain text).

use serde_json::{json, Value as Json};

use super::common::{Reply, Server, ADMIN_KEY};

fn tecton(message: &str, code: u64) -> Json {
    json!({"error": message, "code": code, "message": message})
}

fn scim_error(status: u16, scim_type: Option<&str>, detail: &str) -> Json {
    let mut body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.to_string(), "detail": detail});
    if let Some(scim_type) = scim_type {
        body["scimType"] = json!(scim_type);
    }
    body
}

fn assert_body(reply: &Reply, status: u16, body: Json) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.json(), body);
}

fn admin(server: &Server, method: &str, path: &str, body: &[u8]) -> Reply {
    let auth = format!("Bearer {ADMIN_KEY}");
    server.request(method, path, &[("Authorization", &auth)], Some(body))
}

#[test]
fn admin_errors_have_tectons_shape() {
    let server = Server::start();
    let unknown_view = admin(
        &server,
        "POST",
        "/admin/workspaces/prod/feature-views/nope/rows",
        b"{}",
    );
    assert_body(
        &unknown_view,
        404,
        tecton("feature view `nope` not found in workspace `prod`", 5),
    );
    let bad_line = admin(
        &server,
        "POST",
        "/admin/workspaces/prod/feature-views/user_profile/rows",
        b"not json\n",
    );
    assert_eq!(bad_line.status, 400, "{}", bad_line.body);
    assert_eq!(bad_line.json()["code"], 3);
    assert!(bad_line.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("line 1"));
    let in_memory = tecton(
        "snapshots need a data directory; this server keeps state in memory only",
        9,
    );
    assert_body(
        &admin(&server, "POST", "/admin/snapshots", b""),
        409,
        in_memory.clone(),
    );
    assert_body(
        &admin(&server, "GET", "/admin/snapshots", b""),
        409,
        in_memory,
    );
    assert_body(
        &admin(&server, "DELETE", "/admin/snapshots", b""),
        405,
        tecton("DELETE is not allowed on /admin/snapshots", 12),
    );
    let no_key = server.request("POST", "/admin/snapshots", &[], Some(b""));
    assert_eq!(no_key.status, 401);
    assert_eq!(no_key.json()["code"], 16);
}

#[test]
fn ingest_errors_name_their_type() {
    let server = Server::start();
    let request_error = |message: &str, error_type: &str| json!({"requestError": {"errorMessage": message, "errorType": error_type}});
    let unknown_workspace = json!({"workspace_name": "nope", "dry_run": false,
        "records": {"transactions": [{"record": {}}]}});
    assert_body(
        &server.admin_post("/ingest", &unknown_workspace),
        404,
        request_error("Workspace `nope` not found", "NotFoundError"),
    );
    let no_key = server.post_json("/ingest", None, &json!({}));
    assert_eq!(no_key.status, 401);
    assert_eq!(
        no_key.json()["requestError"]["errorType"],
        "AuthenticationError"
    );
    let oversized = vec![b' '; 4 * 1024 * 1024 + 1];
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let too_large = server.request(
        "POST",
        "/ingest",
        &[("Authorization", &auth)],
        Some(&oversized),
    );
    assert_body(
        &too_large,
        413,
        request_error(
            "request body is larger than the 4194304-byte limit",
            "RequestValidationError",
        ),
    );
    let wrong_method = server.request("GET", "/ingest", &[("Authorization", &auth)], None);
    assert_body(
        &wrong_method,
        405,
        tecton("GET is not allowed on /ingest", 12),
    );
}

#[test]
fn scim_bulk_and_unknown_paths_have_scims_shape() {
    let server = Server::start();
    let bulk = admin(&server, "POST", "/api/scim/v2/Bulk", b"{}");
    assert_body(
        &bulk,
        501,
        scim_error(
            501,
            None,
            "bulk operations are not supported; send each operation as its own request",
        ),
    );
    assert_eq!(bulk.header("content-type"), Some("application/scim+json"));
    assert_body(
        &admin(&server, "GET", "/api/scim/v2/Users/a/b", b""),
        404,
        scim_error(404, None, "no SCIM endpoint at /api/scim/v2/Users/a/b"),
    );
    assert_body(
        &admin(&server, "PUT", "/api/scim/v2/Users", b"{}"),
        405,
        scim_error(405, None, "PUT is not allowed on /api/scim/v2/Users"),
    );
    assert_body(
        &admin(&server, "GET", "/api/scim/v2/Users?count=many", b""),
        400,
        scim_error(400, Some("invalidValue"), "`count` must be an integer"),
    );
}

#[test]
fn a_query_string_that_does_not_parse_gets_the_familys_shape() {
    let server = Server::start();
    let reply = admin(&server, "GET", "/api/svc/v1/secret-groups?limit=abc", b"");
    assert_eq!(reply.status, 400, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["statusCode"], 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("`limit`"), "{message}");
}

#[test]
fn an_unknown_route_under_a_familys_prefix_gets_its_shape() {
    let server = Server::start();
    assert_body(
        &admin(&server, "GET", "/api/svc/v1/nothing", b""),
        404,
        json!({"statusCode": 404, "message": "no route for GET /api/svc/v1/nothing"}),
    );
    assert_body(
        &admin(&server, "POST", "/v0/secrets/a_name", b""),
        404,
        json!({"error": "no route for POST /v0/secrets/a_name",
               "documentation": "https://docs.tinybird.co/api-reference/environment-variables-api"}),
    );
    assert_body(
        &admin(&server, "GET", "/api/v9/nothing", b""),
        404,
        tecton("no route for GET /api/v9/nothing", 5),
    );
}

/// A body sent compressed (`Content-Encoding: gzip`, as some HTTP clients do on their own) is
/// not read as JSON and refused as "not valid JSON": Quiver reads bodies as sent, so the
/// refusal says what is wrong, 415 naming the header, in each family's shape, on the
/// GetFeatures hot path (served by the middleware) and on the routes behind the router alike.
/// `identity` is no encoding: such a body is read as any other.
#[test]
fn a_compressed_body_is_refused_for_its_encoding_in_each_familys_shape() {
    let server = Server::start();
    // `{"params": {}}`, gzipped.
    let gzipped: Vec<u8> = (0..66)
        .step_by(2)
        .map(|i| {
            let hex = "1f8b0800000000000203ab562a482c4acc2d56b252a8aead0500ec5e52d00e000000";
            u8::from_str_radix(&hex[i..i + 2], 16).unwrap()
        })
        .collect();
    let send = |path: &str, auth: &str, encoding: &str, body: &[u8]| {
        server.request(
            "POST",
            path,
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
                ("Content-Encoding", encoding),
            ],
            Some(body),
        )
    };
    let tecton_key = format!("Tecton-key {ADMIN_KEY}");
    let bearer = format!("Bearer {ADMIN_KEY}");
    let message = "the request body has a Content-Encoding other than identity; only identity \
                   is accepted: send the body uncompressed";
    let cases = [
        // The hot path, and the same route through the router (a path that needs decoding).
        ("/api/v1/feature-service/get-features", &tecton_key, tecton(message, 3)),
        (
            "/api/v2/workspaces/pro%64/feature-services/fraud_detection_feature_service/get-features",
            &tecton_key,
            tecton(message, 3),
        ),
        ("/api/v1/feature-service/metadata", &tecton_key, tecton(message, 3)),
        ("/api/v1/secrets-service/scopes", &tecton_key, tecton(message, 3)),
        (
            "/api/svc/v1/secret-groups",
            &bearer,
            json!({"statusCode": 415, "message": message}),
        ),
        (
            "/api/scim/v2/Users",
            &bearer,
            scim_error(415, None, message),
        ),
        (
            "/ingest",
            &tecton_key,
            json!({"requestError": {"errorMessage": message, "errorType": "RequestValidationError"}}),
        ),
        // Bodies that are not JSON documents: rows (JSON Lines) and Tinybird's forms.
        (
            "/admin/workspaces/prod/feature-views/user_profile/rows",
            &tecton_key,
            tecton(message, 3),
        ),
        (
            "/v0/secrets",
            &bearer,
            json!({"error": message,
                   "documentation": "https://docs.tinybird.co/api-reference/environment-variables-api"}),
        ),
    ];
    for (path, auth, body) in cases {
        let reply = send(path, auth, "gzip", &gzipped);
        assert_eq!((reply.status, reply.json()), (415, body), "{path}");
    }
    let binary_rows = server.request(
        "POST",
        "/admin/workspaces/prod/feature-views/user_profile/rows",
        &[
            ("Authorization", &tecton_key),
            ("Content-Type", "application/vnd.quiver.rows.v1"),
            ("Content-Encoding", "br"),
        ],
        Some(&gzipped),
    );
    assert_eq!(binary_rows.status, 415, "{}", binary_rows.body);
    let identity = send(
        "/api/v1/feature-service/get-features",
        &tecton_key,
        "identity",
        b"{",
    );
    assert_eq!(identity.status, 400, "{}", identity.body);
    assert!(
        identity.body.contains("not valid JSON"),
        "{}",
        identity.body
    );
}
