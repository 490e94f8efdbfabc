//! The three secrets APIs end to end: every endpoint with the seeds' sample bodies, the role
//! rules, Tinybird's limits, durability across SIGKILL without plaintext on disk or in the
//! log, and tampering.

use serde_json::{json, Value as Json};

use super::common::{Reply, Server, ServerBuilder, ADMIN_KEY};

const TECTON: &str = "/api/v1/secrets-service";

pub(super) fn tecton(
    server: &Server,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Json>,
) -> Reply {
    let auth = format!("Tecton-key {key}");
    send_json(server, method, &format!("{TECTON}{path}"), &auth, body)
}

/// A request with this `Authorization` and `body` as JSON.
fn send_json(server: &Server, method: &str, path: &str, auth: &str, body: Option<Json>) -> Reply {
    let bytes = body.map(|b| b.to_string().into_bytes());
    server.request(
        method,
        path,
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ],
        bytes.as_deref(),
    )
}

pub(super) fn service_account(server: &Server, name: &str, roles: Json) -> (String, String) {
    service_account_by(server, ADMIN_KEY, name, roles)
}

fn assignment(principal_type: &str, principal_id: &str, role: &str) -> Json {
    json!({"assignments": [{"principal_type": principal_type, "principal_id": principal_id,
        "resource_type": "RESOURCE_TYPE_SECRET_SCOPE", "resource_id": "payments", "role": role}]})
}

#[test]
fn tecton_scopes_secrets_and_roles() {
    let server = Server::start();
    let (reader_id, reader) = service_account(&server, "reader", json!([]));
    let (writer_id, writer) = service_account(&server, "writer", json!([]));
    let (_, consumer) = service_account(
        &server,
        "prod-consumer",
        json!([{"type": "workspace_prod", "value": "consumer"}]),
    );
    let (_, manager) = service_account(&server, "manager", json!([]));

    // Any principal may create a scope and becomes its manager.
    assert_eq!(
        tecton(&server, "POST", "/scopes/payments", &manager, None).status,
        200
    );
    assert_eq!(
        tecton(
            &server,
            "POST",
            "/scopes",
            &manager,
            Some(json!({"scope": "payments"}))
        )
        .status,
        409
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes", &manager, None).json(),
        json!({"scopes": [{"name": "payments"}]})
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes", &reader, None).json(),
        json!({"scopes": [{"name": "payments"}]}),
        "every scope in the cluster, even to a key with no role on it"
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes", "not-a-key", None).status,
        401
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes/payments/keys", &reader, None).status,
        403,
        "listing scopes shows no keys"
    );
    assert_eq!(
        tecton(
            &server,
            "PUT",
            "/scopes/payments/keys/stripe",
            &manager,
            Some(json!({"value": "sk_live_123"}))
        )
        .status,
        200
    );
    assert_eq!(
        tecton(
            &server,
            "PUT",
            "/scopes/payments/keys/stripe",
            &manager,
            Some(json!({"value": "sk_live_456"}))
        )
        .status,
        200,
        "put is idempotent create-or-overwrite"
    );

    assert_eq!(
        tecton(
            &server,
            "GET",
            "/scopes/payments/keys/stripe",
            &reader,
            None
        )
        .status,
        403
    );
    assert_eq!(
        tecton(
            &server,
            "POST",
            "/assign-roles",
            &manager,
            Some(assignment(
                "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
                &reader_id,
                "read_scope_role"
            ))
        )
        .status,
        200
    );
    assert_eq!(
        tecton(
            &server,
            "POST",
            "/assign-roles",
            &manager,
            Some(assignment(
                "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
                &writer_id,
                "secret_scope_writer"
            ))
        )
        .status,
        200
    );
    assert_eq!(
        tecton(
            &server,
            "GET",
            "/scopes/payments/keys/stripe",
            &reader,
            None
        )
        .json(),
        json!({"value": "sk_live_456"})
    );
    let denied = tecton(
        &server,
        "PUT",
        "/scopes/payments/keys/stripe",
        &reader,
        Some(json!({"value": "x"})),
    );
    assert_eq!(denied.status, 403, "readers cannot write");
    assert!(denied.json()["message"]
        .as_str()
        .unwrap()
        .contains("write_scope_role"));
    assert_eq!(
        tecton(
            &server,
            "PUT",
            "/scopes/payments/keys/db",
            &writer,
            Some(json!({"value": "pg"}))
        )
        .status,
        200
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes/payments/keys", &writer, None).json(),
        json!({"keys": [{"name": "db"}, {"name": "stripe"}]})
    );
    assert_eq!(
        tecton(
            &server,
            "POST",
            "/assign-roles",
            &writer,
            Some(assignment(
                "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
                &writer_id,
                "manage_scope_role"
            ))
        )
        .status,
        403,
        "writers cannot manage"
    );
    assert_eq!(
        tecton(&server, "DELETE", "/scopes/payments", &writer, None).status,
        403
    );

    // A workspace grant lets that workspace's keys read.
    assert_eq!(
        tecton(&server, "GET", "/scopes/payments/keys/db", &consumer, None).status,
        403
    );
    assert_eq!(
        tecton(
            &server,
            "POST",
            "/assign-roles",
            &manager,
            Some(assignment(
                "PRINCIPAL_TYPE_WORKSPACE",
                "prod",
                "read_scope_role"
            ))
        )
        .status,
        200
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes/payments/keys/db", &consumer, None).json(),
        json!({"value": "pg"})
    );

    // The seed's views of assignments.
    let principals = tecton(
        &server,
        "POST",
        "/get-assigned-principals",
        &manager,
        Some(
            json!({"resource_type": "RESOURCE_TYPE_SECRET_SCOPE", "resource_id": "payments", "principal_types": ["PRINCIPAL_TYPE_SERVICE_ACCOUNT"]}),
        ),
    );
    assert_eq!(principals.status, 200, "{}", principals.body);
    let assignments = principals.json()["assignments"].as_array().unwrap().clone();
    let reader_entry = assignments
        .iter()
        .find(|a| a["principal"]["service_account"]["id"] == reader_id.as_str())
        .unwrap();
    assert_eq!(
        reader_entry["principal"]["service_account"]["name"],
        "reader"
    );
    assert_eq!(
        reader_entry["role_assignments"][0]["roles_granted"][0],
        json!({"role": "read_scope_role", "role_assignment_sources": [{"assignment_type": "ROLE_ASSIGNMENT_TYPE_DIRECT"}]})
    );
    let roles = tecton(
        &server,
        "POST",
        "/get-assigned-roles",
        &writer,
        Some(
            json!({"principal_type": "PRINCIPAL_TYPE_SERVICE_ACCOUNT", "principal_id": writer_id, "resource_type": "RESOURCE_TYPE_SECRET_SCOPE"}),
        ),
    );
    assert_eq!(
        roles.json(),
        json!({"assignments": [{"resource_type": "RESOURCE_TYPE_SECRET_SCOPE", "resource_id": "payments",
        "roles_granted": [{"role": "write_scope_role", "role_assignment_sources": [{"assignment_type": "ROLE_ASSIGNMENT_TYPE_DIRECT"}]}]}]})
    );

    // A revoked role takes effect on the next request.
    assert_eq!(
        server
            .post_json(
                "/api/v1/authorization-service/unassign-roles",
                Some(&manager),
                &assignment(
                    "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
                    &reader_id,
                    "read_scope_role"
                )
            )
            .status,
        200
    );
    assert_eq!(
        tecton(
            &server,
            "GET",
            "/scopes/payments/keys/stripe",
            &reader,
            None
        )
        .status,
        403
    );

    // Bad input and a non-empty scope.
    let bad_role = tecton(
        &server,
        "POST",
        "/assign-roles",
        &manager,
        Some(assignment(
            "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
            &reader_id,
            "owner",
        )),
    );
    assert!(bad_role.json()["message"]
        .as_str()
        .unwrap()
        .contains("read_scope_role, write_scope_role or manage_scope_role"));
    assert_eq!(
        tecton(
            &server,
            "POST",
            "/assign-roles",
            &manager,
            Some(assignment(
                "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
                "ghost",
                "read_scope_role"
            ))
        )
        .status,
        400
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes/nope/keys/x", &manager, None).status,
        404
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes/payments/keys/nope", &manager, None).status,
        404
    );
    let not_empty = tecton(&server, "DELETE", "/scopes/payments", &manager, None);
    assert_eq!(not_empty.status, 409);
    assert!(not_empty.json()["message"]
        .as_str()
        .unwrap()
        .contains("still holds 2 secret(s)"));
    for key in ["stripe", "db"] {
        assert_eq!(
            tecton(
                &server,
                "DELETE",
                &format!("/scopes/payments/keys/{key}"),
                &manager,
                None
            )
            .status,
            200
        );
    }
    assert_eq!(
        tecton(&server, "DELETE", "/scopes/payments", &manager, None).status,
        200
    );
    assert_eq!(
        server
            .request(
                "GET",
                "/v1/secrets-service/scopes",
                &[("Authorization", &format!("Tecton-key {ADMIN_KEY}"))],
                None
            )
            .json(),
        json!({"scopes": []})
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes", "bad-key", None).status,
        401
    );
}

/// A service account created by `creator_key` (which must be an admin's).
fn service_account_by(
    server: &Server,
    creator_key: &str,
    name: &str,
    roles: Json,
) -> (String, String) {
    let body = json!({"name": name, "roles": roles}).to_string();
    let reply = server.request(
        "POST",
        "/api/scim/v2/ServiceAccounts",
        &[("Authorization", &format!("Bearer {creator_key}"))],
        Some(body.as_bytes()),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = reply.json();
    (
        body["id"].as_str().unwrap().to_string(),
        body["apiKey"].as_str().unwrap().to_string(),
    )
}

pub(super) fn tf(
    server: &Server,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Json>,
) -> Reply {
    let auth = format!("Bearer {key}");
    send_json(server, method, &format!("/api/svc/v1{path}"), &auth, body)
}

#[test]
fn truefoundry_secret_groups_and_versions() {
    let server = Server::start();
    let created = tf(
        &server,
        "POST",
        "/secret-groups",
        ADMIN_KEY,
        Some(
            json!({"name": "grp", "integrationId": "i1", "secrets": [{"key": "K", "value": "v1"}, {"key": "N", "value": "n1"}]}),
        ),
    );
    assert_eq!(
        created.status, 200,
        "the seed's create answers 200: {}",
        created.body
    );
    let group = created.json()["data"].clone();
    let id = group["id"].as_str().unwrap().to_string();
    assert_eq!(
        (group["fqn"].as_str(), group["tenantName"].as_str()),
        (Some("quiver:grp"), Some("quiver"))
    );
    assert!(group["accountId"].is_string() && group["createdBySubject"]["subjectType"].is_string());
    let secrets = group["associatedSecrets"].as_array().unwrap();
    assert_eq!(secrets[0]["fqn"], "quiver:grp:K");
    assert_eq!(secrets[0]["secretVersions"][0]["version"], 1);
    assert_eq!(
        secrets[0]["secretVersions"][0]["secret"],
        json!({"id": secrets[0]["id"], "fqn": "quiver:grp:K", "name": "K", "secretGroupId": id}),
        "a version names its secret"
    );
    assert_eq!(
        group["createdBySubject"],
        json!({"subjectId": "bootstrap-admin", "subjectType": "serviceaccount",
               "subjectSlug": "bootstrap admin", "subjectDisplayName": "bootstrap admin"})
    );
    assert_eq!(group["createdBy"], "bootstrap admin");
    assert_eq!(secrets[0]["createdBy"], group["createdBy"]);
    assert!(!created.body.contains("v1\""), "groups never carry values");
    assert_eq!(
        tf(
            &server,
            "POST",
            "/secret-groups",
            ADMIN_KEY,
            Some(json!({"name": "grp", "secrets": []}))
        )
        .status,
        409
    );

    // Update: the full key set. K changes (version 2), N keeps its value, an omitted key goes.
    let updated = tf(
        &server,
        "PUT",
        &format!("/secret-groups/{id}"),
        ADMIN_KEY,
        Some(
            json!({"secrets": [{"key": "K", "value": "v2"}, {"key": "N"}, {"key": "NEW", "value": "x"}]}),
        ),
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    let after = updated.json()["data"]["associatedSecrets"].clone();
    let by_name = |name: &str| {
        after
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name("K")["secretVersions"].as_array().unwrap().len(), 2);
    assert_eq!(by_name("N")["secretVersions"].as_array().unwrap().len(), 1);
    let dropped = tf(
        &server,
        "PUT",
        &format!("/secret-groups/{id}"),
        ADMIN_KEY,
        Some(json!({"secrets": [{"key": "K"}]})),
    );
    assert_eq!(
        dropped.json()["data"]["associatedSecrets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let k_id = by_name("K")["id"].as_str().unwrap().to_string();
    assert_eq!(
        tf(&server, "GET", &format!("/secrets/{k_id}"), ADMIN_KEY, None).json()["data"]["value"],
        "v2"
    );

    // Lists: values only with withValue; an empty page past the end.
    let listed = tf(
        &server,
        "POST",
        "/secrets",
        ADMIN_KEY,
        Some(json!({"limit": 100, "offset": 0, "secretGroupId": id, "withValue": false})),
    )
    .json();
    assert!(listed["data"][0].get("value").is_none());
    assert_eq!(listed["pagination"]["total"], 1);
    let with_value = tf(
        &server,
        "POST",
        "/secrets",
        ADMIN_KEY,
        Some(json!({"limit": 100, "offset": 0, "secretFqns": ["quiver:grp:K"], "withValue": true})),
    )
    .json();
    assert_eq!(with_value["data"][0]["value"], "v2");
    let past_end = tf(
        &server,
        "GET",
        "/secret-groups?limit=100&offset=5",
        ADMIN_KEY,
        None,
    )
    .json();
    assert_eq!(
        (
            past_end["data"].as_array().unwrap().len(),
            past_end["pagination"]["total"].as_u64()
        ),
        (0, Some(1))
    );
    let by_fqn = tf(
        &server,
        "GET",
        "/secret-groups?limit=1&offset=0&fqn=quiver:grp",
        ADMIN_KEY,
        None,
    )
    .json();
    assert_eq!(by_fqn["data"][0]["id"], id.as_str());
    assert_eq!(
        tf(&server, "GET", "/secret-groups?limit=0", ADMIN_KEY, None).status,
        422
    );

    // search: a substring of a group's name or of one of its keys.
    let other = tf(
        &server,
        "POST",
        "/secret-groups",
        ADMIN_KEY,
        Some(json!({"name": "billing", "secrets": [{"key": "STRIPE", "value": "s"}]})),
    );
    assert_eq!(other.status, 200, "{}", other.body);
    let other_id = other.json()["data"]["id"].as_str().unwrap().to_string();
    let found = |search: &str| -> Vec<String> {
        tf(
            &server,
            "GET",
            &format!("/secret-groups?search={search}"),
            ADMIN_KEY,
            None,
        )
        .json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(found("bill"), ["billing"], "by group name");
    assert_eq!(found("TRIP"), ["billing"], "by key");
    assert_eq!(found("K"), ["grp"], "by key");
    assert!(found("nothing-like-it").is_empty());

    // attributes: only those fields, with the id; repeated or comma-separated.
    let trimmed = tf(
        &server,
        "GET",
        "/secret-groups?search=bill&attributes=name&attributes=fqn",
        ADMIN_KEY,
        None,
    )
    .json();
    assert_eq!(
        trimmed["data"][0],
        json!({"id": other_id, "name": "billing", "fqn": "quiver:billing"})
    );
    let commas = tf(
        &server,
        "GET",
        "/secret-groups?search=bill&attributes=id,name",
        ADMIN_KEY,
        None,
    )
    .json();
    assert_eq!(
        commas["data"][0],
        json!({"id": other_id, "name": "billing"})
    );
    let unknown = tf(
        &server,
        "GET",
        "/secret-groups?attributes=name,colour",
        ADMIN_KEY,
        None,
    );
    assert_eq!(unknown.status, 422);
    assert!(unknown.json()["message"]
        .as_str()
        .unwrap()
        .contains("`colour` is not a secret group field"));

    // forceDelete is a boolean; anything else is refused and deletes nothing.
    let bad_force = tf(
        &server,
        "DELETE",
        &format!("/secret-groups/{other_id}?forceDelete=yes"),
        ADMIN_KEY,
        None,
    );
    assert_eq!(bad_force.status, 422, "{}", bad_force.body);
    assert_eq!(
        tf(
            &server,
            "GET",
            &format!("/secret-groups/{other_id}"),
            ADMIN_KEY,
            None
        )
        .status,
        200
    );
    assert_eq!(
        tf(
            &server,
            "DELETE",
            &format!("/secret-groups/{other_id}?forceDelete=true"),
            ADMIN_KEY,
            None
        )
        .json(),
        json!({})
    );

    // Upsert by manifest, collaborators and access.
    let (_, viewer) = service_account(&server, "tf-viewer", json!([]));
    // Refused by what it asked for: a caller with no part in the group is not told its name.
    for (path, asked) in [
        (
            format!("/secret-groups/{id}"),
            format!("secret group with id '{id}'"),
        ),
        (
            format!("/secrets/{k_id}"),
            format!("the secret group of secret with id '{k_id}'"),
        ),
    ] {
        let refused = tf(&server, "GET", &path, &viewer, None);
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(
            refused.body.contains(&asked) && !refused.body.contains("grp"),
            "{path}: {}",
            refused.body
        );
    }
    let manifest = json!({"manifest": {"type": "secret-group", "name": "grp", "integration_fqn": "internal:secret-store",
        "collaborators": [{"subject": "serviceaccount:tf-viewer", "role_id": "secret-group-viewer"}]}, "dryRun": false});
    assert_eq!(
        tf(&server, "PUT", "/secret-groups", ADMIN_KEY, Some(manifest)).status,
        200
    );
    assert_eq!(
        tf(&server, "GET", &format!("/secrets/{k_id}"), &viewer, None).json()["data"]["value"],
        "v2"
    );
    assert_eq!(
        tf(
            &server,
            "DELETE",
            &format!("/secrets/{k_id}"),
            &viewer,
            None
        )
        .status,
        403,
        "viewers cannot delete"
    );

    // Editors change a group's secrets, not the group; admins may change its collaborators.
    let (_, editor) = service_account(&server, "tf-editor", json!([]));
    let (_, group_admin) = service_account(&server, "tf-admin", json!([]));
    let roles = json!({"manifest": {"type": "secret-group", "name": "grp", "collaborators": [
        {"subject": "serviceaccount:tf-viewer", "role_id": "secret-group-viewer"},
        {"subject": "serviceaccount:tf-editor", "role_id": "secret-group-editor"},
        {"subject": "serviceaccount:tf-admin", "role_id": "secret-group-admin"},
        {"subject": "user:ana@example.com", "role_id": "secret-group-viewer"}]}});
    assert_eq!(
        tf(
            &server,
            "PUT",
            "/secret-groups",
            ADMIN_KEY,
            Some(roles.clone())
        )
        .status,
        200
    );
    let group_path = format!("/secret-groups/{id}");
    let keys = json!({"secrets": [{"key": "K"}, {"key": "E", "value": "e"}]});
    assert_eq!(
        tf(&server, "PUT", &group_path, &viewer, Some(keys.clone())).status,
        403,
        "viewers cannot change secrets"
    );
    let edited = tf(&server, "PUT", &group_path, &editor, Some(keys));
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(
        edited.json()["data"]["associatedSecrets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        tf(
            &server,
            "PUT",
            "/secret-groups",
            &editor,
            Some(roles.clone())
        )
        .status,
        403,
        "editors cannot change collaborators"
    );
    assert_eq!(
        tf(&server, "DELETE", &group_path, &editor, None).status,
        403,
        "editors cannot delete the group"
    );
    let by_admin = tf(
        &server,
        "PUT",
        "/secret-groups",
        &group_admin,
        Some(roles.clone()),
    );
    assert_eq!(
        by_admin.status, 200,
        "a group's admins may change its collaborators"
    );
    assert_eq!(
        by_admin.json()["data"]["manifest"]["collaborators"],
        roles["manifest"]["collaborators"],
        "`user:` collaborators are kept (they reach no caller: users hold no API keys)"
    );

    let deleted = tf(
        &server,
        "DELETE",
        &format!("/secrets/{k_id}"),
        ADMIN_KEY,
        None,
    );
    assert_eq!((deleted.status, deleted.body.as_str()), (200, "1"));
    let gone = tf(
        &server,
        "DELETE",
        &format!("/secret-groups/{id}"),
        ADMIN_KEY,
        None,
    );
    assert_eq!((gone.status, gone.json()), (200, json!({})));
    let missing = tf(
        &server,
        "GET",
        &format!("/secret-groups/{id}"),
        ADMIN_KEY,
        None,
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["statusCode"], 404);
    assert_eq!(
        tf(&server, "GET", "/secret-groups", "bad-key", None).json(),
        json!({"statusCode": 401, "message": "Unauthorized"})
    );
}

/// A Tinybird call as a patient client makes it: a 429 (5 requests a second, reads included)
/// is waited out and the call repeated, at most 20 times.
pub(super) fn tinybird(server: &Server, method: &str, path: &str, form: Option<&str>) -> Reply {
    for _ in 0..20 {
        let reply = tinybird_once(server, method, path, form);
        if reply.status != 429 {
            return reply;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    panic!("{method} {path} was rate limited 20 times in a row");
}

fn tinybird_once(server: &Server, method: &str, path: &str, form: Option<&str>) -> Reply {
    let url = format!(
        "{path}{}token={ADMIN_KEY}",
        if path.contains('?') { "&" } else { "?" }
    );
    server.request(
        method,
        &url,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.map(str::as_bytes),
    )
}

#[test]
fn tinybird_secrets_with_their_limits() {
    let server = Server::start();
    let created = tinybird(
        &server,
        "POST",
        "/v0/secrets",
        Some("name=pg_password&value=s3cr%26t%3Dx+y"),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let body = created.json();
    assert_eq!(
        (body["name"].as_str(), body["type"].as_str()),
        (Some("pg_password"), Some("secret"))
    );
    assert!(
        body["created_at"].is_string()
            && body["updated_at"].is_string()
            && body["edited_by"].is_string()
    );
    assert!(body.get("value").is_none());
    assert_eq!(created.header("x-ratelimit-limit"), Some("5"));

    // The same handlers on the CLI's path, with a Bearer token and a JSON body too.
    let auth = format!("Bearer {ADMIN_KEY}");
    let json_create = server.request(
        "POST",
        "/v0/variables",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(br#"{"name": "kafka", "value": "k"}"#),
    );
    assert_eq!(json_create.status, 200);
    let listed = tinybird(&server, "GET", "/v0/variables", None).json();
    let names: Vec<&str> = listed["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pg_password", "kafka"]);
    assert!(tinybird(&server, "GET", "/v0/secrets", None).json()["secrets"].is_array());
    assert!(
        !tinybird(&server, "GET", "/v0/secrets", None)
            .body
            .contains("s3cr"),
        "values are never returned"
    );

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let updated = tinybird(&server, "PUT", "/v0/secrets/pg_password", Some("value=new"));
    assert_eq!(updated.status, 200);
    assert_eq!(updated.json()["created_at"], body["created_at"]);
    assert_eq!(
        tinybird(
            &server,
            "PUT",
            "/v0/secrets/pg_password",
            Some("value=x&type=secret")
        )
        .json()["error"],
        "Variable type cannot be changed"
    );
    assert_eq!(
        tinybird(&server, "GET", "/v0/secrets/pg_password", None).json()["name"],
        "pg_password"
    );
    let unknown = tinybird(&server, "GET", "/v0/secrets/nope", None);
    assert_eq!(
        (unknown.status, unknown.json()["error"].as_str()),
        (404, Some("Not found"))
    );
    // An update is not a create: an unknown name is a 404 and creates nothing.
    let put_unknown = tinybird(&server, "PUT", "/v0/variables/nope", Some("value=v"));
    assert_eq!(
        (put_unknown.status, put_unknown.json()["error"].as_str()),
        (404, Some("Variable not found"))
    );
    assert_eq!(
        tinybird(&server, "GET", "/v0/variables/nope", None).status,
        404
    );
    let delete_unknown = tinybird(&server, "DELETE", "/v0/variables/nope", None);
    assert_eq!(
        (
            delete_unknown.status,
            delete_unknown.json()["error"].as_str()
        ),
        (404, Some("Variable not found"))
    );
    assert_eq!(
        tinybird(&server, "DELETE", "/v0/secrets/kafka", None).json(),
        json!({"ok": true})
    );

    // Errors in Tinybird's order and shape.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let errors = [
        ("value=x", "Missing argument name"),
        ("name=a", "missing value"),
        ("name=&value=x", "missing name"),
        (
            "name=bad+name%21&value=x",
            "Invalid name \"bad name!\": name must start with a letter or underscore and hold only letters, digits and underscores, at most 255 characters",
        ),
        (
            "name=9lives&value=x",
            "Invalid name \"9lives\": name must start with a letter or underscore and hold only letters, digits and underscores, at most 255 characters",
        ),
        (
            "name=t&value=x&type=other",
            "Supported variable types are: secret",
        ),
        (
            "name=pg_password&value=x",
            "Secret with name \"pg_password\" already exists",
        ),
    ];
    for (form, message) in errors {
        let reply = tinybird(&server, "POST", "/v0/secrets", Some(form));
        assert_eq!(
            (
                reply.status,
                reply.json()["error"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            ),
            (400, message.to_string()),
            "{form}"
        );
        assert!(reply.json()["documentation"].is_string());
    }
    let oversized = format!("name=big&value={}", "x".repeat(8 * 1024 + 1));
    assert_eq!(
        tinybird(&server, "POST", "/v0/secrets", Some(&oversized)).json()["error"],
        "Variable maximum size is 8KB"
    );

    // 403 for a bad token and for a non-admin token (Tinybird never answers 401).
    let bad = server.request("GET", "/v0/secrets?token=nope", &[], None);
    assert_eq!(
        (bad.status, bad.json()["error"].as_str()),
        (403, Some("invalid authentication token"))
    );
    let (_, consumer) = service_account(
        &server,
        "tb-consumer",
        json!([{"type": "workspace_prod", "value": "consumer"}]),
    );
    let not_admin = server.request("GET", &format!("/v0/secrets?token={consumer}"), &[], None);
    assert_eq!(
        (not_admin.status, not_admin.json()["error"].as_str()),
        (403, Some("token needs scope admin"))
    );
}

/// A Tinybird name or value that is not UTF-8 once percent-decoded (in a form body or the query
/// string) is refused naming the parameter, not stored with U+FFFD in place of its bytes.
#[test]
fn tinybird_refuses_a_value_that_is_not_utf8_rather_than_altering_it() {
    let server = Server::start();
    let raw = server.request(
        "POST",
        &format!("/v0/secrets?token={ADMIN_KEY}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(b"name=raw&value=s3cr\xfft"),
    );
    let refusals = [
        ("form body", "value", raw),
        (
            "form body",
            "value",
            tinybird(
                &server,
                "POST",
                "/v0/secrets",
                Some("name=encoded&value=%FF%FE"),
            ),
        ),
        (
            "query string",
            "value",
            tinybird(&server, "POST", "/v0/secrets?name=query&value=%C3", None),
        ),
        (
            "form body",
            "value",
            tinybird(&server, "PUT", "/v0/secrets/kept", Some("value=%E9t%E9")),
        ),
    ];
    for (place, name, refusal) in refusals {
        assert_eq!(refusal.status, 400, "{}", refusal.body);
        assert_eq!(
            refusal.json()["error"],
            format!("{place}: the value of `{name}` is not UTF-8 once percent-decoded"),
        );
    }
    let name = tinybird(&server, "POST", "/v0/secrets", Some("name=%FFx&value=v"));
    assert_eq!(name.status, 400, "{}", name.body);
    assert_eq!(
        name.json()["error"],
        "form body: the value of `name` is not UTF-8 once percent-decoded"
    );
    let parameter = tinybird(&server, "POST", "/v0/secrets", Some("%FF=1&name=n&value=v"));
    assert_eq!(parameter.status, 400, "{}", parameter.body);
    assert_eq!(
        parameter.json()["error"],
        "form body: a parameter's name is not UTF-8"
    );
    // UTF-8, percent-encoded or not, is a value like any other.
    let accented = tinybird(
        &server,
        "POST",
        "/v0/secrets",
        Some("name=kept&value=%C3%A9t%C3%A9"),
    );
    assert_eq!(accented.status, 200, "{}", accented.body);
    let listed = tinybird(&server, "GET", "/v0/secrets", None).json();
    assert_eq!(listed["secrets"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["secrets"][0]["name"], "kept");
}

#[test]
fn tinybird_request_rate_and_count_limits() {
    let server = Server::start();
    let mut limited = None;
    for i in 0..7 {
        let reply = tinybird_once(
            &server,
            "POST",
            "/v0/secrets",
            Some(&format!("name=burst{i}&value=v")),
        );
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.expect("more than 5 requests in a second are refused");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert!(limited.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("Too many requests"));

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let reads: Vec<u16> = (0..7)
        .map(|_| tinybird_once(&server, "GET", "/v0/secrets", None).status)
        .collect();
    assert!(reads.contains(&429), "reads count too: {reads:?}");

    let mut count = tinybird(&server, "GET", "/v0/secrets", None).json()["secrets"]
        .as_array()
        .unwrap()
        .len();
    while count < 100 {
        let reply = tinybird_once(
            &server,
            "POST",
            "/v0/secrets",
            Some(&format!("name=fill{count}&value=v")),
        );
        match reply.status {
            200 => count += 1,
            429 => std::thread::sleep(std::time::Duration::from_millis(250)),
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let full = tinybird(
        &server,
        "POST",
        "/v0/secrets",
        Some("name=one_too_many&value=v"),
    );
    assert_eq!(
        (full.status, full.json()["error"].as_str()),
        (
            403,
            Some("The maximum number of secrets for this workspace is 100.")
        )
    );
}

/// A manifest holds a manifest's fields only, with well-formed collaborators: anything else
/// is refused (422 naming it) and creates nothing. It is kept whole and answered back, so a
/// `secrets` list with values was stored in plain text, and a misspelt role gave none.
#[test]
fn a_manifest_with_other_fields_or_malformed_collaborators_is_refused_whole() {
    let server = Server::start();
    let upsert = |manifest: Json| {
        let body = json!({"manifest": manifest, "dryRun": false});
        tf(&server, "PUT", "/secret-groups", ADMIN_KEY, Some(body))
    };
    let base = json!({"type": "secret-group", "name": "canary", "integration_fqn": "internal:x"});
    let with = |field: &str, value: Json| {
        let mut manifest = base.clone();
        manifest[field] = value;
        manifest
    };
    let refusals = [
        (
            with(
                "secrets",
                json!([{"key": "A", "value": "manifest-plaintext-1c9e"}]),
            ),
            "manifest.secrets is not a secret-group manifest field",
        ),
        (
            with(
                "collaborators",
                json!([{"subject": "serviceaccount:ci", "role_id": "secret-group-owner"}]),
            ),
            "manifest.collaborators[0].role_id must be one of",
        ),
        (
            with(
                "collaborators",
                json!([{"subject": "ci", "role_id": "secret-group-viewer"}]),
            ),
            "manifest.collaborators[0].subject must be `<kind>:<name>`",
        ),
        (
            with(
                "collaborators",
                json!([{"subject": "user:a@b.c", "role_id": "secret-group-viewer", "value": "x"}]),
            ),
            "manifest.collaborators[0].value is not a collaborator field",
        ),
        (
            with("ownedBy", json!({"account": "acme", "token": "x"})),
            "manifest.ownedBy must be",
        ),
    ];
    for (manifest, expected) in refusals {
        let reply = upsert(manifest);
        assert_eq!(reply.status, 422, "{}", reply.body);
        assert!(reply.body.contains(expected), "{}", reply.body);
        assert!(
            !reply.body.contains("manifest-plaintext-1c9e"),
            "{}",
            reply.body
        );
    }
    let listed = tf(&server, "GET", "/secret-groups", ADMIN_KEY, None).json();
    assert_eq!(listed["data"], json!([]), "nothing was created");
    let accepted = upsert(with("ownedBy", json!({"account": "acme"})));
    assert_eq!(accepted.status, 200, "{}", accepted.body);
}

/// A `serviceaccount:` collaborator is the account it named when the manifest was written: a
/// new account given the name of a deleted one gets nothing, and a name no account has is
/// refused (it would have reached whoever took the name later). Answers show the manifest as
/// written.
#[test]
fn a_collaborator_grant_ends_with_its_service_account() {
    let server = Server::start();
    let (ci_id, ci_key) = service_account(&server, "ci-bot", json!([]));
    let created = tf(
        &server,
        "POST",
        "/secret-groups",
        ADMIN_KEY,
        Some(json!({"name": "prodcreds", "secrets": [{"key": "K", "value": "v"}]})),
    );
    let secret_id = created.json()["data"]["associatedSecrets"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let collaborators =
        json!([{"subject": "serviceaccount:CI-bot", "role_id": "secret-group-viewer"}]);
    let manifest = |collaborators: &Json| json!({"manifest": {"type": "secret-group", "name": "prodcreds", "collaborators": collaborators}});
    let upserted = tf(
        &server,
        "PUT",
        "/secret-groups",
        ADMIN_KEY,
        Some(manifest(&collaborators)),
    );
    assert_eq!(upserted.status, 200, "{}", upserted.body);
    assert_eq!(
        upserted.json()["data"]["manifest"]["collaborators"],
        collaborators
    );
    let read = |key: &str| tf(&server, "GET", &format!("/secrets/{secret_id}"), key, None).status;
    assert_eq!(read(&ci_key), 200);

    let scim_delete = super::identity::scim(
        &server,
        "DELETE",
        &format!("/ServiceAccounts/{ci_id}"),
        ADMIN_KEY,
        None,
    );
    assert_eq!(scim_delete.status, 204, "{}", scim_delete.body);
    let (_, namesake_key) = service_account(&server, "ci-bot", json!([]));
    assert_ne!(
        read(&namesake_key),
        200,
        "the grant ended with the account it named"
    );
    // The manifest as answered (no ids), sent again: the subject keeps its binding.
    let again = tf(
        &server,
        "PUT",
        "/secret-groups",
        ADMIN_KEY,
        Some(manifest(&collaborators)),
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert_ne!(
        read(&namesake_key),
        200,
        "sent again, the grant is still the old account's"
    );

    let nobody = json!([{"subject": "serviceaccount:nobody", "role_id": "secret-group-viewer"}]);
    let refused = tf(
        &server,
        "PUT",
        "/secret-groups",
        ADMIN_KEY,
        Some(manifest(&nobody)),
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("service account `nobody` does not exist"),
        "{}",
        refused.body
    );
}

/// A group's name is first come, first served (any key may create one), so an upsert by name
/// is not allowed to adopt a group someone else made: a workspace admin who upserts
/// `payments-prod` after another key created it would become a co-admin of the other key's
/// group, and what the admin then wrote there the creator would read. Refused (409, naming the
/// group and saying it is someone else's), dry run included, and the group is left as it was;
/// the creator and the admins it named go on upserting it.
#[test]
fn an_upsert_does_not_adopt_a_group_another_principal_created() {
    let server = Server::start();
    let (_, squatter) = service_account(&server, "squatter", json!([]));
    let (_, ops_admin) = service_account(
        &server,
        "ops-admin",
        json!([{"type": "account_type", "value": "admin"}]),
    );
    let created = tf(
        &server,
        "POST",
        "/secret-groups",
        &squatter,
        Some(json!({"name": "payments-prod", "secrets": []})),
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let group_path = format!(
        "/secret-groups/{}",
        created.json()["data"]["id"].as_str().unwrap()
    );
    let upsert = |key: &str, collaborators: Json, dry_run: bool| {
        let manifest = json!({"type": "secret-group", "name": "payments-prod",
            "integration_fqn": "internal:secret-store", "collaborators": collaborators});
        tf(
            &server,
            "PUT",
            "/secret-groups",
            key,
            Some(json!({"manifest": manifest, "dryRun": dry_run})),
        )
    };
    let admins_team =
        json!([{"subject": "serviceaccount:ops-admin", "role_id": "secret-group-admin"}]);
    // A key with no rights on the group gets the same answer as an admin's (not 403).
    let (_, stranger) = service_account(&server, "stranger", json!([]));
    for (key, dry_run) in [
        (ADMIN_KEY, false),
        (ADMIN_KEY, true),
        (&ops_admin, false),
        (&stranger, false),
    ] {
        let refused = upsert(key, admins_team.clone(), dry_run);
        assert_eq!(
            (refused.status, refused.json()),
            (
                409,
                json!({"statusCode": 409, "message": "Secret group 'payments-prod' already exists and is owned by another principal; it was not changed: use another name, or ask one of its admins to add you as a `secret-group-admin` collaborator"})
            ),
            "dry run {dry_run}"
        );
    }
    let group = tf(&server, "GET", &group_path, &squatter, None).json();
    assert!(
        group["data"]["manifest"].is_null(),
        "nothing was adopted: {group}"
    );

    // Its creator upserts it, naming an admin; that admin then may upsert it too.
    let by_creator = upsert(&squatter, admins_team.clone(), false);
    assert_eq!(by_creator.status, 200, "{}", by_creator.body);
    let by_named_admin = upsert(&ops_admin, admins_team, false);
    assert_eq!(by_named_admin.status, 200, "{}", by_named_admin.body);
    // The bootstrap admin is still no collaborator of it.
    assert_eq!(upsert(ADMIN_KEY, json!([]), false).status, 409);
}

/// A group holds at most 1,000 secrets, on create and on update (the full key set).
#[test]
fn whether_a_workspace_exists_is_told_only_to_a_key_that_may_view_it() {
    let server = Server::start();
    let (_, stranger) = service_account(&server, "stranger", json!([]));
    let (_, viewer) = service_account(
        &server,
        "viewer",
        json!([{"type": "all_workspaces", "value": "viewer"}]),
    );
    // Each manages a scope of its own and grants it to workspaces.
    let assign = |key: &str, scope: &str, workspace: &str| {
        let created = tecton(&server, "POST", &format!("/scopes/{scope}"), key, None);
        assert!(matches!(created.status, 200 | 409), "{}", created.body);
        let body = json!({"assignments": [{"principal_type": "PRINCIPAL_TYPE_WORKSPACE",
            "principal_id": workspace, "resource_type": "RESOURCE_TYPE_SECRET_SCOPE",
            "resource_id": scope, "role": "read_scope_role"}]});
        tecton(&server, "POST", "/assign-roles", key, Some(body))
    };
    // A key with no role anywhere cannot tell a workspace from a name that is none...
    for workspace in ["prod", "staging", "no_such_workspace"] {
        let granted = assign(&stranger, "strangers", workspace);
        assert_eq!(granted.status, 200, "{workspace}: {}", granted.body);
    }
    // ...while a key that may view every workspace is told of its typo.
    assert_eq!(assign(&viewer, "viewers", "prod").status, 200);
    let typo = assign(&viewer, "viewers", "no_such_workspace");
    assert_eq!(typo.status, 400, "{}", typo.body);
    assert!(typo.body.contains("does not exist"), "{}", typo.body);
}

/// A TrueFoundry group name or key of punctuation alone (`.` and `..` are path segments a client
/// resolves away) is refused as the vault's other invalid names are, 422 naming the rule, and
/// nothing is made; a name with a letter or digit among the same marks is taken.
#[test]
fn truefoundry_names_of_punctuation_alone_are_refused() {
    let server = Server::start();
    let rule = "at least one a letter or digit";
    for name in [".", "..", "-", "_", "...", "-._"] {
        let create = json!({"name": name, "secrets": [{"key": "K", "value": "v"}]});
        let refused = tf(&server, "POST", "/secret-groups", ADMIN_KEY, Some(create));
        assert_eq!(refused.status, 422, "{name}: {}", refused.body);
        assert_eq!(refused.json()["statusCode"], 422);
        let message = refused.json()["message"].as_str().unwrap().to_string();
        assert!(
            message.contains(&format!("group name `{name}`")),
            "{message}"
        );
        assert!(message.contains(rule), "{message}");
        let upsert = json!({"manifest": {"type": "secret-group", "name": name,
            "integration_fqn": "truefoundry:quiver"}});
        let refused = tf(&server, "PUT", "/secret-groups", ADMIN_KEY, Some(upsert));
        assert_eq!(refused.status, 422, "{name}: {}", refused.body);
        let with_key = json!({"name": "grp", "secrets": [{"key": name, "value": "v"}]});
        let refused = tf(&server, "POST", "/secret-groups", ADMIN_KEY, Some(with_key));
        assert_eq!(refused.status, 422, "{name}: {}", refused.body);
        assert!(refused.body.contains(rule), "{}", refused.body);
    }
    let listed = tf(&server, "GET", "/secret-groups", ADMIN_KEY, None);
    assert_eq!(listed.json()["data"], json!([]), "{}", listed.body);
    let create = json!({"name": "-a.", "secrets": [{"key": "_1", "value": "v"}]});
    let created = tf(&server, "POST", "/secret-groups", ADMIN_KEY, Some(create));
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.json()["data"]["name"], "-a.");
}

#[test]
fn a_group_holds_at_most_a_thousand_secrets() {
    let server = Server::start();
    let secrets = |n: usize| -> Vec<Json> {
        (0..n)
            .map(|i| json!({"key": format!("K{i}"), "value": "v"}))
            .collect()
    };
    let too_many = json!({"name": "big", "secrets": secrets(1001)});
    let refused = tf(&server, "POST", "/secret-groups", ADMIN_KEY, Some(too_many));
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(
        refused.body.contains("at most 1000 secrets"),
        "{}",
        refused.body
    );
    let full = json!({"name": "big", "secrets": secrets(1000)});
    let created = tf(&server, "POST", "/secret-groups", ADMIN_KEY, Some(full));
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.json()["data"]["id"].as_str().unwrap().to_string();
    let path = format!("/secret-groups/{id}");
    let grown = json!({"secrets": secrets(1001)});
    let refused = tf(&server, "PUT", &path, ADMIN_KEY, Some(grown));
    assert_eq!(refused.status, 422, "{}", refused.body);
    let group = tf(&server, "GET", &path, ADMIN_KEY, None).json();
    assert_eq!(
        group["data"]["associatedSecrets"].as_array().unwrap().len(),
        1000
    );
}

/// A secret sent in the wrong shape (a bare string or a list for Tecton's `{"value"}`, a number
/// where a string is expected, strings for TrueFoundry's key-value pairs) is refused, naming
/// what was expected but not echoing it, and nothing is stored.
#[test]
fn a_secret_sent_in_the_wrong_shape_is_not_echoed_in_the_refusal() {
    let server = Server::start();
    assert_eq!(
        tecton(&server, "POST", "/scopes/ops", ADMIN_KEY, None).status,
        200
    );
    let secret = "wrong-shape-plaintext-7d2e";
    // A PIN is a secret too: numbers are not echoed either.
    let (pin, float_pin) = ("4817263950", "48172.6395");
    let put = |body: Json| tecton(&server, "PUT", "/scopes/ops/keys/k", ADMIN_KEY, Some(body));
    let group = |secrets: Json| {
        let body = json!({"name": "g", "secrets": secrets});
        tf(&server, "POST", "/secret-groups", ADMIN_KEY, Some(body))
    };
    let number = |text: &str| serde_json::from_str::<Json>(text).unwrap();
    // (refusal, what it must say)
    let refusals = [
        (
            put(json!(secret)),
            "not a JSON object; expected a JSON object",
        ),
        // Serde would read a struct from a list of its fields: `["v"]` as `{"value": "v"}`.
        (
            put(json!([secret])),
            "not a JSON object; expected a JSON object",
        ),
        (
            put(json!({"value": number(pin)})),
            "at `value`: invalid type: an integer, expected a string",
        ),
        (
            put(json!({"value": number(float_pin)})),
            "at `value`: invalid type: a floating point number, expected a string",
        ),
        (group(json!([secret])), "a string, expected"),
        (
            group(json!([{"key": "K", "value": number(pin)}])),
            "at `secrets[0].value`: invalid type: an integer, expected a string",
        ),
    ];
    for (refusal, fragment) in refusals {
        assert!(
            (400..500).contains(&refusal.status),
            "{} {}",
            refusal.status,
            refusal.body
        );
        assert!(refusal.body.contains(fragment), "{}", refusal.body);
        for sent in [secret, pin, float_pin] {
            assert!(!refusal.body.contains(sent), "{}", refusal.body);
        }
    }
    let keys = tecton(&server, "GET", "/scopes/ops/keys", ADMIN_KEY, None);
    assert_eq!(keys.json()["keys"], json!([]), "{}", keys.body);
    let groups = tf(&server, "GET", "/secret-groups", ADMIN_KEY, None);
    assert_eq!(groups.json()["pagination"]["total"], 0, "{}", groups.body);
}

#[test]
fn secrets_survive_sigkill_and_never_reach_disk_or_log_in_plaintext() {
    let data = tempfile::tempdir().unwrap();
    let plaintexts = [
        "tecton-plaintext-6f1c",
        "truefoundry-plaintext-93ab",
        "tinybird-plaintext-51de",
    ];
    let server = ServerBuilder::new()
        .data_dir(data.path())
        .env("QUIVER_LOG", "debug")
        .start();
    assert_eq!(
        tecton(&server, "POST", "/scopes/ops", ADMIN_KEY, None).status,
        200
    );
    assert_eq!(
        tecton(
            &server,
            "PUT",
            "/scopes/ops/keys/k",
            ADMIN_KEY,
            Some(json!({"value": plaintexts[0]}))
        )
        .status,
        200
    );
    let group = tf(
        &server,
        "POST",
        "/secret-groups",
        ADMIN_KEY,
        Some(json!({"name": "g", "secrets": [{"key": "K", "value": plaintexts[1]}]})),
    );
    let secret_id = group.json()["data"]["associatedSecrets"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let group_id = group.json()["data"]["id"].as_str().unwrap().to_string();
    // A new version of K and a new key L: journaled as changes of their own, replayed in order.
    let (k_v2, l_value) = (
        format!("{}-v2", plaintexts[1]),
        format!("{}-l", plaintexts[1]),
    );
    let update = json!({"secrets": [{"key": "K", "value": k_v2}, {"key": "L", "value": l_value}]});
    let path = format!("/secret-groups/{group_id}");
    assert_eq!(
        tf(&server, "PUT", &path, ADMIN_KEY, Some(update)).status,
        200
    );
    assert_eq!(
        tinybird(
            &server,
            "POST",
            "/v0/secrets",
            Some(&format!("name=tb&value={}", plaintexts[2]))
        )
        .status,
        200
    );
    let mut log = server.kill9();

    let server = ServerBuilder::new()
        .data_dir(data.path())
        .env("QUIVER_LOG", "debug")
        .start();
    assert_eq!(
        tecton(&server, "GET", "/scopes/ops/keys/k", ADMIN_KEY, None).json()["value"],
        plaintexts[0]
    );
    assert_eq!(
        tf(
            &server,
            "GET",
            &format!("/secrets/{secret_id}"),
            ADMIN_KEY,
            None
        )
        .json()["data"]["value"],
        k_v2.as_str()
    );
    let group = tf(&server, "GET", &path, ADMIN_KEY, None).json();
    let secrets = group["data"]["associatedSecrets"].as_array().unwrap();
    let keys: Vec<&str> = secrets
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["K", "L"]);
    assert_eq!(secrets[0]["secretVersions"].as_array().unwrap().len(), 2);
    assert_eq!(tinybird(&server, "GET", "/v0/secrets/tb", None).status, 200);
    // A snapshot, a rotation and a shutdown snapshot: still no plaintext anywhere.
    assert_eq!(
        server
            .admin_post("/admin/secrets/rotate-key", &json!({}))
            .status,
        200
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes/ops/keys/k", ADMIN_KEY, None).json()["value"],
        plaintexts[0],
        "readable after rotation"
    );
    log.push_str(&server.terminate());

    let mut files = Vec::new();
    let mut dirs = vec![data.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path)
            } else {
                files.push(path)
            }
        }
    }
    assert!(files
        .iter()
        .any(|f| f.to_string_lossy().contains("snapshot-")));
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for plaintext in plaintexts {
            assert!(
                !bytes
                    .windows(plaintext.len())
                    .any(|w| w == plaintext.as_bytes()),
                "{} holds `{plaintext}`",
                file.display()
            );
        }
    }
    for plaintext in plaintexts {
        assert!(!log.contains(plaintext), "the log holds `{plaintext}`");
    }
}

#[test]
fn a_tampered_ciphertext_is_a_clear_error_for_that_secret_only() {
    use quiver::persist::format::{checksum, decode, encode, VaultChangeV3};
    use quiver::persist::journal::parse_records;

    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    assert_eq!(
        tecton(&server, "POST", "/scopes/ops", ADMIN_KEY, None).status,
        200
    );
    assert_eq!(
        tecton(
            &server,
            "PUT",
            "/scopes/ops/keys/victim",
            ADMIN_KEY,
            Some(json!({"value": "v"}))
        )
        .status,
        200
    );
    assert_eq!(
        tecton(&server, "POST", "/scopes/other", ADMIN_KEY, None).status,
        200
    );
    assert_eq!(
        tecton(
            &server,
            "PUT",
            "/scopes/other/keys/fine",
            ADMIN_KEY,
            Some(json!({"value": "ok"}))
        )
        .status,
        200
    );
    // A TrueFoundry group with a victim and a fine key.
    let group = tf(
        &server,
        "POST",
        "/secret-groups",
        ADMIN_KEY,
        Some(json!({"name": "tg", "secrets": [{"key": "victim", "value": "v"}, {"key": "fine", "value": "ok"}]})),
    )
    .json()["data"]
        .clone();
    let group_path = format!("/secret-groups/{}", group["id"].as_str().unwrap());
    let secret_id = |key: &str| {
        group["associatedSecrets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == key)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    server.kill9();

    // Flip one bit of each victim's ciphertext and re-frame the record with a valid checksum, as
    // an attacker with write access to the disk could.
    let journal_dir = data.path().join("journal").join("vault");
    let segment = super::common::journal_segments(&journal_dir)
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let (records, _) = parse_records(&std::fs::read(&segment).unwrap());
    let mut rewritten = Vec::new();
    let mut tampered = false;
    for record in records {
        let mut changes: Vec<VaultChangeV3> = decode(&record).unwrap();
        for change in changes.iter_mut() {
            match change {
                VaultChangeV3::PutScopeSecret { key, sealed, .. } if key == "victim" => {
                    *sealed.ciphertext.last_mut().unwrap() ^= 1;
                    tampered = true;
                }
                VaultChangeV3::PutGroupSecret { secret, .. } if secret.key == "victim" => {
                    *secret.versions[0].sealed.ciphertext.last_mut().unwrap() ^= 1;
                }
                _ => {}
            }
        }
        let payload = encode(&changes);
        rewritten.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        rewritten.extend_from_slice(&checksum(&payload).to_le_bytes());
        rewritten.extend_from_slice(&payload);
    }
    assert!(tampered);
    std::fs::write(&segment, rewritten).unwrap();

    let server = ServerBuilder::new().data_dir(data.path()).start();
    let reply = tecton(&server, "GET", "/scopes/ops/keys/victim", ADMIN_KEY, None);
    assert_eq!(reply.status, 500, "{}", reply.body);
    let message = reply.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("secret `ops/victim` could not be decrypted"),
        "{message}"
    );
    assert_eq!(
        tecton(&server, "GET", "/scopes/other/keys/fine", ADMIN_KEY, None).json()["value"],
        "ok",
        "other secrets still open"
    );
    // TrueFoundry: 424 Failed Dependency (its status for a faulty secret store), naming the
    // secret, for a read and for an update that must compare against the stored value; the
    // group's other secret still opens, and an update that leaves the victim alone works.
    let unreadable = json!({"statusCode": 424, "message": "secret 'quiver:tg:victim' could not be decrypted: its stored ciphertext was altered or sealed under another key"});
    let read = tf(
        &server,
        "GET",
        &format!("/secrets/{}", secret_id("victim")),
        ADMIN_KEY,
        None,
    );
    assert_eq!((read.status, read.json()), (424, unreadable.clone()));
    let update = json!({"secrets": [{"key": "victim", "value": "new"}, {"key": "fine"}]});
    let updated = tf(&server, "PUT", &group_path, ADMIN_KEY, Some(update));
    assert_eq!((updated.status, updated.json()), (424, unreadable));
    assert_eq!(
        tf(
            &server,
            "GET",
            &format!("/secrets/{}", secret_id("fine")),
            ADMIN_KEY,
            None
        )
        .json()["data"]["value"],
        "ok"
    );
    let untouched = json!({"secrets": [{"key": "victim"}, {"key": "fine", "value": "ok2"}]});
    assert_eq!(
        tf(&server, "PUT", &group_path, ADMIN_KEY, Some(untouched)).status,
        200
    );
    assert_eq!(
        server.request("GET", "/health", &[], None).status,
        200,
        "no crash"
    );
}

/// The journal's records of `data_dir`'s vault, oldest first.
fn vault_journal_records(data_dir: &std::path::Path) -> Vec<Vec<u8>> {
    super::common::journal_segments(&data_dir.join("journal").join("vault"))
        .iter()
        .flat_map(|segment| {
            quiver::persist::journal::parse_records(&std::fs::read(segment).unwrap()).0
        })
        .collect()
}

#[test]
fn the_vault_journal_grows_by_one_small_record_per_put() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    assert_eq!(
        tecton(&server, "POST", "/scopes/big", ADMIN_KEY, None).status,
        200
    );
    let value = |i: usize| format!("value-{i:04}-0123456789");
    let puts = 200;
    for i in 0..puts {
        let reply = tecton(
            &server,
            "PUT",
            &format!("/scopes/big/keys/key-{i:04}"),
            ADMIN_KEY,
            Some(json!({ "value": value(i) })),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    server.kill9();

    let records = vault_journal_records(data.path());
    assert_eq!(records.len(), 1 + puts, "one record per request");
    let first_put = records[1].len();
    let last_put = records[puts].len();
    assert!(
        last_put <= first_put + 8,
        "the last put's record ({last_put} bytes) is as small as the first ({first_put} bytes)"
    );
    let total: usize = records.iter().map(Vec::len).sum();
    assert!(
        total <= records[0].len() + puts * (first_put + 8),
        "{total} bytes for {puts} puts of {first_put}-byte records"
    );

    let server = ServerBuilder::new().data_dir(data.path()).start();
    for i in 0..puts {
        let reply = tecton(
            &server,
            "GET",
            &format!("/scopes/big/keys/key-{i:04}"),
            ADMIN_KEY,
            None,
        );
        assert_eq!(reply.json()["value"], value(i), "key-{i:04} after SIGKILL");
    }
}

#[test]
fn a_scope_holds_at_most_1000_secrets() {
    let server = Server::start();
    assert_eq!(
        tecton(&server, "POST", "/scopes/full", ADMIN_KEY, None).status,
        200
    );
    for i in 0..1000 {
        let path = format!("/scopes/full/keys/k{i}");
        let reply = tecton(
            &server,
            "PUT",
            &path,
            ADMIN_KEY,
            Some(json!({"value": "v"})),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let reply = tecton(
        &server,
        "PUT",
        "/scopes/full/keys/one-more",
        ADMIN_KEY,
        Some(json!({"value": "v"})),
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("already holds 1000 secrets"),
        "{}",
        reply.body
    );
    assert_eq!(
        tecton(
            &server,
            "PUT",
            "/scopes/full/keys/k7",
            ADMIN_KEY,
            Some(json!({"value": "new"}))
        )
        .status,
        200,
        "an existing secret still takes a new value"
    );
    assert_eq!(
        tecton(
            &server,
            "GET",
            "/scopes/full/keys/one-more",
            ADMIN_KEY,
            None
        )
        .status,
        404,
        "the refused put changed nothing"
    );
}

#[test]
fn assign_roles_tells_a_caller_without_the_role_nothing_about_principals() {
    let server = Server::start();
    let (_, manager) = service_account(&server, "manager", json!([]));
    let (known_id, outsider) = service_account(&server, "outsider", json!([]));
    assert_eq!(
        tecton(&server, "POST", "/scopes/payments", &manager, None).status,
        200
    );
    let attempt = |principal_id: &str| {
        let body = assignment(
            "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
            principal_id,
            "manage_scope_role",
        );
        tecton(&server, "POST", "/assign-roles", &outsider, Some(body))
    };
    let known = attempt(&known_id);
    let unknown = attempt("no-such-principal");
    assert_eq!(known.status, 403, "{}", known.body);
    assert_eq!((unknown.status, unknown.body), (known.status, known.body));
    // The manager still learns that a principal does not exist.
    let body = assignment(
        "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
        "no-such-principal",
        "read_scope_role",
    );
    let reply = tecton(&server, "POST", "/assign-roles", &manager, Some(body));
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("does not exist"), "{}", reply.body);
}

/// Every family's error body, byte for byte: the vault's errors reach each API in its vendor's
/// shape and words, and a refactoring of either side must not change them.
#[test]
fn each_familys_error_bodies_are_pinned() {
    let server = Server::start();
    let tecton_error = |status: u16, code: u16, message: &str| {
        (
            status,
            json!({"error": message, "code": code, "message": message}),
        )
    };
    assert_eq!(
        tecton(&server, "POST", "/scopes/s1", ADMIN_KEY, None).status,
        200
    );
    let put = |value: &str| Some(json!({ "value": value }));
    assert_eq!(
        tecton(&server, "PUT", "/scopes/s1/keys/k", ADMIN_KEY, put("v")).status,
        200
    );
    let one = |scope: &str, principal_type: &str, id: &str, role: &str| {
        Some(
            json!({"assignments": [{"principal_type": principal_type, "principal_id": id,
            "resource_type": "RESOURCE_TYPE_SECRET_SCOPE", "resource_id": scope, "role": role}]}),
        )
    };
    let tecton_cases = [
        ("POST", "/scopes/bad%20name!", None, tecton_error(400, 3, "scope name `bad name!` must be 1-128 letters, digits, `_`, `-` or `.`, other than `.` and `..`")),
        ("POST", "/scopes/s1", None, tecton_error(409, 6, "Secret scope `s1` already exists")),
        ("PUT", "/scopes/s1/keys/bad%20key", put("v"), tecton_error(400, 3, "secret key `bad key` must be 1-128 letters, digits, `_`, `-` or `.`, other than `.` and `..`")),
        ("PUT", "/scopes/s1/keys/k", put(&"x".repeat(64 * 1024 + 1)), tecton_error(400, 3, "a secret value is at most 65536 bytes")),
        ("PUT", "/scopes/nope/keys/k", put("v"), tecton_error(404, 5, "Secret scope `nope` not found")),
        ("GET", "/scopes/s1/keys/zz", None, tecton_error(404, 5, "Secret `zz` not found in scope `s1`")),
        ("DELETE", "/scopes/s1", None, tecton_error(409, 9, "Secret scope `s1` still holds 1 secret(s); delete them before deleting the scope")),
        ("POST", "/assign-roles", Some(json!({"assignments": []})), tecton_error(400, 3, "`assignments` is empty")),
        ("POST", "/assign-roles", one("s1", "BAD", "x", "read_scope_role"), tecton_error(400, 3, "principal_type `BAD` must be PRINCIPAL_TYPE_USER, _SERVICE_ACCOUNT, _GROUP or _WORKSPACE")),
        ("POST", "/assign-roles", one("s1", "PRINCIPAL_TYPE_USER", "x", "bad"), tecton_error(400, 3, "role `bad` must be read_scope_role, write_scope_role or manage_scope_role")),
        ("POST", "/assign-roles", one("s1", "PRINCIPAL_TYPE_USER", "nobody", "read_scope_role"), tecton_error(400, 3, "PRINCIPAL_TYPE_USER `nobody` does not exist")),
        ("POST", "/assign-roles", one("nope", "PRINCIPAL_TYPE_WORKSPACE", "prod", "read_scope_role"), tecton_error(404, 5, "Secret scope `nope` not found")),
        ("POST", "/get-assigned-principals", Some(json!({"resource_id": "nope"})), tecton_error(404, 5, "Secret scope `nope` not found")),
    ];
    for (method, path, body, expected) in tecton_cases {
        let reply = tecton(&server, method, path, ADMIN_KEY, body);
        assert_eq!((reply.status, reply.json()), expected, "{method} {path}");
    }

    let tf_error =
        |status: u16, message: &str| (status, json!({"statusCode": status, "message": message}));
    let created = tf(
        &server,
        "POST",
        "/secret-groups",
        ADMIN_KEY,
        Some(json!({"name": "g1", "secrets": [{"key": "A", "value": "1"}]})),
    );
    let group = format!(
        "/secret-groups/{}",
        created.json()["data"]["id"].as_str().unwrap()
    );
    let tf_cases = [
        (
            "POST",
            "/secret-groups".to_string(),
            Some(json!({"name": "bad name", "secrets": []})),
            tf_error(
                422,
                "group name `bad name` must be 1-128 letters, digits, `.`, `_` or `-`, at least \
                 one a letter or digit",
            ),
        ),
        (
            "POST",
            "/secret-groups".to_string(),
            Some(json!({"name": "g2", "secrets": [{"key": "A"}]})),
            tf_error(422, "secret `A` needs a value"),
        ),
        (
            "POST",
            "/secret-groups".to_string(),
            Some(
                json!({"name": "g2", "secrets": [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}]}),
            ),
            tf_error(422, "secret key `A` appears twice"),
        ),
        (
            "POST",
            "/secret-groups".to_string(),
            Some(json!({"name": "g1", "secrets": []})),
            tf_error(409, "Secret group 'g1' already exists"),
        ),
        (
            "GET",
            "/secret-groups?limit=0".to_string(),
            None,
            tf_error(422, "limit must be between 1 and 1000, got 0"),
        ),
        (
            "GET",
            "/secret-groups/nope".to_string(),
            None,
            tf_error(404, "Secret group with id 'nope' not found"),
        ),
        (
            "PUT",
            group.clone(),
            Some(json!({"secrets": [{"key": "A"}, {"key": "C"}]})),
            tf_error(422, "new secret key `C` needs a value"),
        ),
        (
            "PUT",
            "/secret-groups".to_string(),
            Some(json!({"manifest": {"name": "bad name"}})),
            tf_error(
                422,
                "manifest.name `bad name` must be 1-128 letters, digits, `.`, `_` or `-`, at least \
                 one a letter or digit",
            ),
        ),
        (
            "PUT",
            "/secret-groups".to_string(),
            Some(json!({"manifest": {"name": "g2", "type": "other"}})),
            tf_error(422, "manifest.type must be `secret-group`"),
        ),
        (
            "POST",
            "/secrets".to_string(),
            Some(json!({"limit": 10, "offset": 0, "secretGroupId": "nope"})),
            tf_error(404, "Secret group with id 'nope' not found"),
        ),
        (
            "GET",
            "/secrets/nope".to_string(),
            None,
            tf_error(404, "Secret with id 'nope' not found"),
        ),
        (
            "DELETE",
            "/secrets/nope".to_string(),
            None,
            tf_error(404, "Secret with id 'nope' not found"),
        ),
    ];
    for (method, path, body, expected) in tf_cases {
        let reply = tf(&server, method, &path, ADMIN_KEY, body);
        assert_eq!((reply.status, reply.json()), expected, "{method} {path}");
    }

    let docs = "https://docs.tinybird.co/api-reference/environment-variables-api";
    let tb_error =
        |status: u16, message: &str| (status, json!({"error": message, "documentation": docs}));
    assert_eq!(
        tinybird(&server, "POST", "/v0/variables", Some("name=a&value=x")).status,
        200
    );
    let big = format!("value={}", "x".repeat(8 * 1024 + 1));
    let tb_cases = [
        (
            "POST",
            "/v0/variables",
            Some("name=a&value=x".to_string()),
            tb_error(400, "Secret with name \"a\" already exists"),
        ),
        ("GET", "/v0/variables/zz", None, tb_error(404, "Not found")),
        (
            "PUT",
            "/v0/variables/a",
            Some("value=y&type=secret".to_string()),
            tb_error(400, "Variable type cannot be changed"),
        ),
        (
            "PUT",
            "/v0/variables/a",
            Some(String::new()),
            tb_error(400, "missing value"),
        ),
        (
            "PUT",
            "/v0/variables/zz",
            Some("value=y".to_string()),
            tb_error(404, "Variable not found"),
        ),
        (
            "PUT",
            "/v0/variables/a",
            Some(big),
            tb_error(400, "Variable maximum size is 8KB"),
        ),
        (
            "DELETE",
            "/v0/variables/zz",
            None,
            tb_error(404, "Variable not found"),
        ),
    ];
    for (method, path, form, expected) in tb_cases {
        let reply = tinybird(&server, method, path, form.as_deref());
        assert_eq!((reply.status, reply.json()), expected, "{method} {path}");
    }
}

/// `quiver secrets rotate-key` killed with SIGKILL at each of its crash points, rebuilt from
/// the files a rotation leaves there (the new key is written to `master.next` first, then the
/// values are re-sealed in the journal, then `master.next` replaces `master.key`): the values
/// open after the restart, and the next rotation finishes the job.
#[test]
fn a_rotation_killed_midway_is_finished_by_the_next_one() {
    let data = tempfile::tempdir().unwrap();
    let key_file = data.path().join("master.key");
    let next_file = data.path().join("master.next");
    let value = "rotation-plaintext-2b7d";
    let server = ServerBuilder::new().data_dir(data.path()).start();
    assert_eq!(
        tecton(&server, "POST", "/scopes/ops", ADMIN_KEY, None).status,
        200
    );
    let put = json!({"value": value});
    let reply = tecton(&server, "PUT", "/scopes/ops/keys/k", ADMIN_KEY, Some(put));
    assert_eq!(reply.status, 200);
    let old_key = std::fs::read(&key_file).unwrap();
    let rotate = |server: &Server| {
        let reply = server.admin_post("/admin/secrets/rotate-key", &json!({}));
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    rotate(&server);
    let new_key = std::fs::read(&key_file).unwrap();
    assert_ne!(old_key, new_key);
    server.kill9();

    // Killed after the journal commit, before the rename: values sealed under the key that is
    // now `master.next`, an earlier key in `master.key`. Then killed before the commit: values
    // under `master.key`, and `master.next` holds a key nothing was sealed under.
    for killed_after_commit in [true, false] {
        let current = std::fs::read(&key_file).unwrap();
        let (key, next) = if killed_after_commit {
            (&old_key, &current)
        } else {
            (&current, &old_key)
        };
        std::fs::write(&key_file, key).unwrap();
        std::fs::write(&next_file, next).unwrap();
        let server = ServerBuilder::new().data_dir(data.path()).start();
        let read = |server: &Server| {
            tecton(server, "GET", "/scopes/ops/keys/k", ADMIN_KEY, None).json()["value"].clone()
        };
        assert_eq!(read(&server), value, "either key opens the values");
        rotate(&server);
        assert!(!next_file.exists(), "the rotation replaced the key file");
        assert_eq!(read(&server), value);
        let log = server.kill9();
        assert!(!log.contains(value));

        let server = ServerBuilder::new().data_dir(data.path()).start();
        assert_eq!(
            read(&server),
            value,
            "the finished rotation needs no second key"
        );
        server.kill9();
    }
}

/// Who created a TrueFoundry group (`createdBySubject`, `createdBy`) and a service account
/// (Tecton's `service_account.creator`) is kept: read back after a create, and again after a
/// restart that loads a snapshot (what was created before it) and replays the journal (what
/// was created after).
#[test]
fn creators_are_kept_across_snapshot_and_journal_replay() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    let admin_roles = json!([{"type": "account_type", "value": "admin"}]);
    let (provisioner_id, provisioner) =
        service_account(&server, "provisioner", admin_roles.clone());
    let create_group = |server: &Server, name: &str| {
        let reply = tf(
            server,
            "POST",
            "/secret-groups",
            &provisioner,
            Some(json!({"name": name, "secrets": [{"key": "K", "value": "v"}]})),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["data"]["id"].as_str().unwrap().to_string()
    };
    let expected_subject = json!({"subjectId": provisioner_id, "subjectType": "serviceaccount",
        "subjectSlug": "provisioner", "subjectDisplayName": "provisioner"});
    let check_group = |server: &Server, id: &str| {
        let group = tf(
            server,
            "GET",
            &format!("/secret-groups/{id}"),
            ADMIN_KEY,
            None,
        )
        .json();
        let group = &group["data"];
        assert_eq!(group["createdBySubject"], expected_subject, "{group}");
        assert_eq!(group["createdBy"], "provisioner");
        let secret = &group["associatedSecrets"][0];
        assert_eq!(secret["createdBySubject"], expected_subject);
        assert_eq!(secret["createdBy"], "provisioner");
    };
    assert_eq!(
        tecton(&server, "POST", "/scopes/payments", ADMIN_KEY, None).status,
        200
    );
    let assign = |server: &Server, account: &str| {
        let reply = tecton(
            server,
            "POST",
            "/assign-roles",
            ADMIN_KEY,
            Some(assignment(
                "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
                account,
                "read_scope_role",
            )),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    let check_creators = |server: &Server, expected: &[(&str, Json)]| {
        let reply = tecton(
            server,
            "POST",
            "/get-assigned-principals",
            ADMIN_KEY,
            Some(json!({"resource_type": "RESOURCE_TYPE_SECRET_SCOPE", "resource_id": "payments"})),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let assignments = reply.json()["assignments"].clone();
        for (account, creator) in expected {
            let found = assignments
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["principal"]["service_account"]["id"] == *account)
                .unwrap_or_else(|| panic!("{account} in {assignments}"));
            assert_eq!(found["principal"]["service_account"]["creator"], *creator);
        }
    };
    let by_provisioner =
        json!({"principal_type": "PRINCIPAL_TYPE_SERVICE_ACCOUNT", "id": provisioner_id});
    let by_bootstrap_admin =
        json!({"principal_type": "PRINCIPAL_TYPE_SERVICE_ACCOUNT", "id": "bootstrap-admin"});

    // Before the snapshot: in its section.
    let (early_reader, _) = service_account_by(&server, &provisioner, "early-reader", json!([]));
    let early_group = create_group(&server, "early");
    assign(&server, &early_reader);
    assign(&server, &provisioner_id);
    check_group(&server, &early_group);
    server.snapshot();
    // After it: in the journal only; an update of an account keeps its creator.
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "description", "value": "reads payments"}]});
    let patched = server.request(
        "PATCH",
        &format!("/api/scim/v2/ServiceAccounts/{early_reader}"),
        &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
        Some(patch.to_string().as_bytes()),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    let (late_reader, _) = service_account_by(&server, &provisioner, "late-reader", json!([]));
    let late_group = create_group(&server, "late");
    assign(&server, &late_reader);
    let expected = [
        (early_reader.as_str(), by_provisioner.clone()),
        (late_reader.as_str(), by_provisioner.clone()),
        (provisioner_id.as_str(), by_bootstrap_admin),
    ];
    check_creators(&server, &expected);
    check_group(&server, &late_group);

    server.kill9();
    let server = ServerBuilder::new().data_dir(data.path()).start();
    check_creators(&server, &expected);
    check_group(&server, &early_group);
    check_group(&server, &late_group);
}

/// A SCIM resource created by the admin; answers its id.
fn scim_create(server: &Server, resource: &str, body: Json) -> String {
    let reply = server.request(
        "POST",
        &format!("/api/scim/v2/{resource}"),
        &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_string()
}

/// Tecton's role-assignment views over HTTP with users and groups as principals, and their
/// filters: `principal_types` and `roles` on `get-assigned-principals`, `resource_ids` and
/// `roles` on `get-assigned-roles` (camelCase accepted too).
#[test]
fn assignment_views_filter_and_show_users_and_groups() {
    let server = Server::start();
    let user = scim_create(
        &server,
        "Users",
        json!({"userName": "ana@example.com", "name": {"givenName": "Ana", "familyName": "Lima"}}),
    );
    let group = scim_create(&server, "Groups", json!({"displayName": "risk-team"}));
    for scope in ["payments", "ledger"] {
        assert_eq!(
            tecton(
                &server,
                "POST",
                &format!("/scopes/{scope}"),
                ADMIN_KEY,
                None
            )
            .status,
            200
        );
    }
    let assign = |scope: &str, principal_type: &str, id: &str, role: &str| {
        let body = json!({"assignments": [{"principal_type": principal_type, "principal_id": id,
            "resource_type": "RESOURCE_TYPE_SECRET_SCOPE", "resource_id": scope, "role": role}]});
        let reply = tecton(&server, "POST", "/assign-roles", ADMIN_KEY, Some(body));
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    assign("payments", "PRINCIPAL_TYPE_USER", &user, "read_scope_role");
    assign(
        "payments",
        "PRINCIPAL_TYPE_GROUP",
        &group,
        "write_scope_role",
    );
    assign("ledger", "PRINCIPAL_TYPE_USER", &user, "manage_scope_role");

    // The assignments a view call answers for `base` with `filters` added.
    let assignments = |path: &str, mut base: Json, filters: Json| {
        base.as_object_mut()
            .unwrap()
            .extend(filters.as_object().unwrap().clone());
        let reply = tecton(&server, "POST", path, ADMIN_KEY, Some(base));
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["assignments"].clone()
    };
    let principals = |filters: Json| {
        let base = json!({"resourceType": "RESOURCE_TYPE_SECRET_SCOPE", "resourceId": "payments"});
        assignments("/get-assigned-principals", base, filters)
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["principal"].clone())
            .collect::<Vec<Json>>()
    };
    let ana = json!({"user": {"id": user, "login_email": "ana@example.com", "first_name": "Ana", "last_name": "Lima"}});
    let risk_team = json!({"group": {"id": group, "name": "risk-team"}});
    assert_eq!(
        principals(json!({"principalTypes": ["PRINCIPAL_TYPE_USER"]})),
        std::slice::from_ref(&ana)
    );
    assert_eq!(
        principals(json!({"principal_types": ["PRINCIPAL_TYPE_GROUP"]})),
        std::slice::from_ref(&risk_team)
    );
    assert_eq!(
        principals(json!({"roles": ["write_scope_role"]})),
        [risk_team]
    );
    assert_eq!(
        principals(
            json!({"roles": ["read_scope_role"], "principalTypes": ["PRINCIPAL_TYPE_USER"]})
        ),
        [ana]
    );

    let roles = |filters: Json| {
        let base = json!({"principalType": "PRINCIPAL_TYPE_USER", "principalId": user,
            "resourceType": "RESOURCE_TYPE_SECRET_SCOPE"});
        let mut found: Vec<(String, String)> = assignments("/get-assigned-roles", base, filters)
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["resource_id"].as_str().unwrap().to_string(),
                    a["roles_granted"][0]["role"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        found.sort();
        found
    };
    let pair = |scope: &str, role: &str| (scope.to_string(), role.to_string());
    assert_eq!(
        roles(json!({})),
        [
            pair("ledger", "manage_scope_role"),
            pair("payments", "read_scope_role")
        ]
    );
    assert_eq!(
        roles(json!({"resourceIds": ["ledger"]})),
        [pair("ledger", "manage_scope_role")]
    );
    assert_eq!(
        roles(json!({"resource_ids": ["payments"]})),
        [pair("payments", "read_scope_role")]
    );
    assert_eq!(
        roles(json!({"roles": ["read_scope_role"]})),
        [pair("payments", "read_scope_role")]
    );

    let bad = tecton(
        &server,
        "POST",
        "/get-assigned-principals",
        ADMIN_KEY,
        Some(json!({"resource_id": "payments", "principal_types": ["PRINCIPAL_TYPE_ROBOT"]})),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("PRINCIPAL_TYPE_ROBOT"), "{}", bad.body);
}
