//! Identity end to end: SCIM objects, service-account keys and the roles every endpoint
//! enforces, plus hostile SCIM input that must change nothing.

use serde_json::{json, Value as Json};

use super::common::{timestamp_in, Reply, Server, ADMIN_KEY};

const SCIM: &str = "/api/scim/v2";

pub(super) fn scim(
    server: &Server,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&Json>,
) -> Reply {
    let bytes = body.map(|b| b.to_string().into_bytes());
    scim_bytes(server, method, path, key, bytes.as_deref(), &[])
}

/// A SCIM request under `/api/scim/v2` with `Authorization: Bearer <key>`, the body sent as
/// these exact bytes, and any extra headers.
pub(super) fn scim_bytes(
    server: &Server,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&[u8]>,
    extra_headers: &[(&str, &str)],
) -> Reply {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/scim+json"),
    ];
    headers.extend_from_slice(extra_headers);
    server.request(method, &format!("{SCIM}{path}"), &headers, body)
}

/// Creates a service account with these roles; returns (id, api key).
fn service_account(server: &Server, name: &str, roles: Json) -> (String, String) {
    let reply = scim(
        server,
        "POST",
        "/ServiceAccounts",
        ADMIN_KEY,
        Some(&json!({"name": name, "roles": roles})),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = reply.json();
    (
        body["id"].as_str().unwrap().to_string(),
        body["apiKey"].as_str().unwrap().to_string(),
    )
}

fn get_features(server: &Server, key: &str) -> Reply {
    let request = json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": "user_1001", "merchant": "m"}}});
    server.post_json("/api/v1/feature-service/get-features", Some(key), &request)
}

fn ingest(server: &Server, key: &str, dry_run: bool) -> Reply {
    let body = json!({"workspace_name": "prod", "dry_run": dry_run, "records": {"transactions": [{"record": {
        "user_id": "u", "merchant": "m", "terminal_id": 1, "amt": 1.0, "category": "c", "is_online": true,
        "timestamp": timestamp_in(0)}}]}});
    server.post_json("/ingest", Some(key), &body)
}

pub(super) fn assert_scim_error(
    reply: &Reply,
    status: u16,
    scim_type: Option<&str>,
    fragment: &str,
) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/scim+json"));
    let body = reply.json();
    assert_eq!(
        body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(body["status"], status.to_string());
    assert_eq!(
        body.get("scimType").and_then(Json::as_str),
        scim_type,
        "{body}"
    );
    assert!(
        body["detail"].as_str().unwrap().contains(fragment),
        "`{}` should contain `{fragment}`",
        body["detail"]
    );
}

#[test]
fn roles_decide_what_each_key_may_do() {
    let server = Server::start();
    let (_, consumer) = service_account(
        &server,
        "consumer-bot",
        json!([{"type": "workspace_prod", "value": "consumer"}]),
    );
    let (_, editor) = service_account(
        &server,
        "editor-bot",
        json!([{"type": "workspace_prod", "value": "editor"}]),
    );
    let (_, other) = service_account(
        &server,
        "staging-bot",
        json!([{"type": "workspace_staging", "value": "owner"}]),
    );
    let (_, viewer) = service_account(
        &server,
        "viewer-bot",
        json!([{"type": "all_workspaces", "value": "viewer"}]),
    );

    assert_eq!(get_features(&server, &consumer).status, 200);
    let denied = ingest(&server, &consumer, false);
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.json()["requestError"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("editor role"));

    assert_eq!(ingest(&server, &editor, false).status, 200);
    assert_eq!(
        get_features(&server, &editor).status,
        200,
        "editor includes consumer"
    );

    let foreign = get_features(&server, &other);
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.json()["code"], 7);
    assert!(foreign.json()["message"]
        .as_str()
        .unwrap()
        .contains("workspace `prod`"));

    assert_eq!(
        get_features(&server, &viewer).status,
        403,
        "viewers read metadata, not features"
    );
    let metadata =
        json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service"}});
    assert_eq!(
        server
            .post_json("/api/v1/feature-service/metadata", Some(&viewer), &metadata)
            .status,
        200
    );
    assert_eq!(
        ingest(&server, &viewer, true).status,
        200,
        "a dry run needs only viewer"
    );

    for key in [&consumer, &editor, &viewer] {
        assert_scim_error(
            &scim(&server, "GET", "/Users", key, None),
            403,
            None,
            "not an admin",
        );
        assert_eq!(
            server
                .post_json("/admin/snapshots", Some(key), &json!({}))
                .status,
            403
        );
        let load = server.request(
            "POST",
            "/admin/workspaces/prod/feature-views/user_profile/rows",
            &[("Authorization", &format!("Tecton-key {key}"))],
            Some(b""),
        );
        assert_eq!(load.status, 403);
    }
    assert_scim_error(
        &scim(&server, "GET", "/Users", "no-such-key", None),
        401,
        None,
        "invalid",
    );
}

#[test]
fn deactivating_a_service_account_revokes_its_key_and_the_key_is_shown_once() {
    let server = Server::start();
    let (id, key) = service_account(
        &server,
        "short-lived",
        json!([{"type": "workspace_prod", "value": "consumer"}]),
    );
    let fetched = scim(
        &server,
        "GET",
        &format!("/ServiceAccounts/{id}"),
        ADMIN_KEY,
        None,
    )
    .json();
    assert!(
        fetched.get("apiKey").is_none(),
        "the key is never shown again"
    );
    let listed = scim(&server, "GET", "/ServiceAccounts", ADMIN_KEY, None);
    assert!(!listed.body.contains(&key));
    // Several requests, so that each HTTP worker's memo of verified keys holds this one.
    for _ in 0..8 {
        assert_eq!(get_features(&server, &key).status, 200);
    }

    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "Replace", "value": {"active": "False"}}]});
    assert_eq!(
        scim(
            &server,
            "PATCH",
            &format!("/ServiceAccounts/{id}"),
            ADMIN_KEY,
            Some(&patch)
        )
        .status,
        200
    );
    for _ in 0..8 {
        assert_eq!(
            get_features(&server, &key).status,
            401,
            "revoked at once, on every worker"
        );
    }
    let reactivate = json!({"Operations": [{"op": "replace", "path": "active", "value": true}]});
    assert_eq!(
        scim(
            &server,
            "PATCH",
            &format!("/ServiceAccounts/{id}"),
            ADMIN_KEY,
            Some(&reactivate)
        )
        .status,
        200
    );
    assert_eq!(
        get_features(&server, &key).status,
        200,
        "reactivation restores the same key"
    );
}

#[test]
fn a_groups_role_reaches_its_members_and_leaves_with_them() {
    let server = Server::start();
    let (id, key) = service_account(&server, "grouped", json!([]));
    assert_eq!(get_features(&server, &key).status, 403);
    let group = scim(
        &server,
        "POST",
        "/Groups",
        ADMIN_KEY,
        Some(&json!({"displayName": "fraud-readers",
        "members": [{"value": id}], "roles": [{"type": "workspace_prod", "value": "consumer"}]})),
    );
    assert_eq!(group.status, 201, "{}", group.body);
    let group_id = group.json()["id"].as_str().unwrap().to_string();
    assert_eq!(get_features(&server, &key).status, 200);

    let leave =
        json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]});
    assert_eq!(
        scim(
            &server,
            "PATCH",
            &format!("/Groups/{group_id}"),
            ADMIN_KEY,
            Some(&leave)
        )
        .status,
        200
    );
    assert_eq!(get_features(&server, &key).status, 403);
}

#[test]
fn users_follow_tectons_rules() {
    let server = Server::start();
    let created = scim(
        &server,
        "POST",
        "/Users",
        ADMIN_KEY,
        Some(
            &json!({"userName": "Ana@Example.com", "name": {"givenName": "Ana"},
        "emails": [{"value": "ana@example.com", "type": "work", "primary": true}]}),
        ),
    );
    assert_eq!(created.status, 201);
    assert_eq!(
        created.header("location"),
        created.json()["meta"]["location"].as_str()
    );
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    let id = created.json()["id"].as_str().unwrap().to_string();
    let found = scim(
        &server,
        "GET",
        "/Users?filter=userName+eq+%22ana%40example.com%22",
        ADMIN_KEY,
        None,
    )
    .json();
    assert_eq!(found["totalResults"], 1);
    let by_email = scim(
        &server,
        "GET",
        "/Users?filter=emails%5Btype+eq+%22work%22%5D.value+eq+%22ana%40example.com%22",
        ADMIN_KEY,
        None,
    )
    .json();
    assert_eq!(by_email["Resources"][0]["id"], id.as_str());
    let page = scim(
        &server,
        "GET",
        "/Users?startIndex=1&count=0",
        ADMIN_KEY,
        None,
    )
    .json();
    assert_eq!(
        (
            page["totalResults"].as_u64(),
            page["Resources"].as_array().map(Vec::len)
        ),
        (Some(1), Some(0))
    );
    let projected = scim(
        &server,
        "GET",
        &format!("/Users/{id}?attributes=name.givenName"),
        ADMIN_KEY,
        None,
    )
    .json();
    assert_eq!(projected["name"], json!({"givenName": "Ana"}));
    assert!(projected.get("userName").is_none() && projected.get("meta").is_some());

    // Tecton: a user replaced with active=false is deleted.
    let replaced = scim(
        &server,
        "PUT",
        &format!("/Users/{id}"),
        ADMIN_KEY,
        Some(&json!({"userName": "ana@example.com", "active": false})),
    );
    assert_eq!(replaced.status, 200);
    assert_scim_error(
        &scim(&server, "GET", &format!("/Users/{id}"), ADMIN_KEY, None),
        404,
        None,
        "not found",
    );
    assert_scim_error(
        &scim(&server, "DELETE", &format!("/Users/{id}"), ADMIN_KEY, None),
        404,
        None,
        "not found",
    );
}

/// Method, path, body, expected status, scimType and a fragment of the detail.
type HostileCase = (
    &'static str,
    &'static str,
    Option<Json>,
    u16,
    Option<&'static str>,
    &'static str,
);

#[test]
fn hostile_scim_input_gets_a_clear_error_and_changes_nothing() {
    let server = Server::start();
    let created = scim(
        &server,
        "POST",
        "/Groups",
        ADMIN_KEY,
        Some(&json!({"displayName": "Ops Team"})),
    );
    assert_eq!(created.status, 201);
    let users = |server: &Server| {
        scim(server, "GET", "/Users", ADMIN_KEY, None).json()["totalResults"].clone()
    };

    let cases: Vec<HostileCase> = vec![
        (
            "GET",
            "/Users?filter=userName+xx+%22a%22",
            None,
            400,
            Some("invalidFilter"),
            "unknown operator",
        ),
        (
            "GET",
            "/Users?filter=%28%28userName+eq+%22a%22",
            None,
            400,
            Some("invalidFilter"),
            "invalid filter",
        ),
        (
            "GET",
            "/Users?startIndex=abc",
            None,
            400,
            Some("invalidValue"),
            "startIndex",
        ),
        (
            "POST",
            "/Users",
            Some(json!({"userName": "x@y.io", "shoeSize": 44})),
            400,
            Some("invalidSyntax"),
            "unknown attribute `shoeSize`",
        ),
        (
            "POST",
            "/Users",
            Some(json!({"userName": "not-an-email"})),
            400,
            Some("invalidValue"),
            "must be an email",
        ),
        (
            "POST",
            "/Users",
            Some(json!({"name": {"givenName": "NoUserName"}})),
            400,
            Some("invalidValue"),
            "`userName` is required",
        ),
        (
            "POST",
            "/Users",
            Some(
                json!({"userName": "x@y.io", "roles": [{"type": "account_type", "value": "root"}]}),
            ),
            400,
            Some("invalidValue"),
            "roles[0]",
        ),
        (
            "POST",
            "/Users",
            Some(json!(["not", "an", "object"])),
            400,
            Some("invalidSyntax"),
            "request body is not a JSON object",
        ),
        (
            "POST",
            "/Groups",
            Some(json!({"displayName": "ops team"})),
            409,
            Some("uniqueness"),
            "already exists",
        ),
        (
            "POST",
            "/Groups",
            Some(json!({"displayName": "x", "members": [{"value": "ghost"}]})),
            400,
            Some("invalidValue"),
            "members[0].value",
        ),
        (
            "POST",
            "/Nothing",
            Some(json!({})),
            404,
            None,
            "no SCIM resource type",
        ),
        (
            "DELETE",
            "/ServiceProviderConfig",
            None,
            405,
            None,
            "not allowed",
        ),
        ("GET", "/Users/does-not-exist", None, 404, None, "not found"),
    ];
    for (method, path, body, status, scim_type, fragment) in cases {
        let reply = scim(&server, method, path, ADMIN_KEY, body.as_ref());
        assert_scim_error(&reply, status, scim_type, fragment);
    }
    let auth = format!("Bearer {ADMIN_KEY}");
    let malformed = server.request(
        "POST",
        &format!("{SCIM}/Users"),
        &[("Authorization", &auth)],
        Some(b"{\"userName\": "),
    );
    assert_scim_error(&malformed, 400, Some("invalidSyntax"), "not valid JSON");
    let huge = json!({"userName": "big@y.io", "displayName": "x".repeat(1024 * 1024)}).to_string();
    let oversized = server.request(
        "POST",
        &format!("{SCIM}/Users"),
        &[("Authorization", &auth)],
        Some(huge.as_bytes()),
    );
    assert_scim_error(&oversized, 413, None, "limit");
    assert_eq!(users(&server), 0, "nothing was created");

    // Unicode names round-trip exactly and still collide case-insensitively.
    let unicode = json!({"userName": "Zoë.Ünal@exämple.com", "displayName": "Zoë 🚀 \u{200b}"});
    let created = scim(&server, "POST", "/Users", ADMIN_KEY, Some(&unicode));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["displayName"], unicode["displayName"]);
    let clash = scim(
        &server,
        "POST",
        "/Users",
        ADMIN_KEY,
        Some(&json!({"userName": "zoë.ünal@EXÄMPLE.com"})),
    );
    assert_scim_error(&clash, 409, Some("uniqueness"), "already exists");
    assert_eq!(users(&server), 1);
}

#[test]
fn a_v2_path_checks_its_workspace_before_looking_the_service_up() {
    let server = Server::start();
    let (_, consumer) = service_account(
        &server,
        "prod-reader",
        json!([{"type": "workspace_prod", "value": "consumer"}]),
    );
    let metadata = |workspace: &str, service: &str| {
        let auth = format!("Tecton-key {consumer}");
        let path = format!("/api/v2/workspaces/{workspace}/feature-services/{service}/metadata");
        server.request("GET", &path, &[("Authorization", &auth)], None)
    };
    // Elsewhere, an unknown service and a known one are the same refusal.
    assert_eq!(metadata("staging", "nope").status, 403);
    assert_eq!(metadata("staging", "experiment_service").status, 403);
    assert_eq!(metadata("prod", "nope").status, 404);
    assert_eq!(metadata("prod", "user_risk_service").status, 200);
}

#[test]
fn a_v1_body_naming_a_workspace_is_checked_before_the_service_is_looked_up() {
    let server = Server::start();
    let (_, staging) = service_account(
        &server,
        "staging-reader",
        json!([{"type": "workspace_staging", "value": "consumer"}]),
    );
    let ask = |path: &str, workspace: &str, service: &str| {
        let row = json!({"user_id": "user_1001", "merchant": "m"});
        let request = json!({"params": {"workspaceName": workspace, "featureServiceName": service,
            "joinKeyMap": row, "requestData": [{"joinKeyMap": row}]}});
        server.post_json(path, Some(&staging), &request).status
    };
    // The middleware's GetFeatures, the router's (a `%`-encoded path), and the other v1 calls.
    for path in [
        "/api/v1/feature-service/get-features",
        "/api/v1/feature-service/get%2Dfeatures",
        "/api/v1/feature-service/get-features-batch",
        "/api/v1/feature-service/metadata",
        "/api/v1/feature-service/get-feature-service-state",
    ] {
        // Elsewhere, a known service, an unknown one and an unknown workspace are one refusal.
        assert_eq!(ask(path, "prod", "user_risk_service"), 403, "{path}");
        assert_eq!(ask(path, "prod", "no_such_service"), 403, "{path}");
        assert_eq!(ask(path, "no_such_workspace", "x"), 403, "{path}");
        // Its own workspace still tells an unknown service apart.
        assert_eq!(ask(path, "staging", "no_such_service"), 404, "{path}");
    }
}
