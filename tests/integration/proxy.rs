//! Tecton's metadata proxy (`POST /api/proxy`): the envelope, its authentication, gRPC codes
//! inside 2xx answers, lenient base64, and the secrets calls under the same role rules as the
//! JSON routes. The real SDK and CLI are driven by tests/clients/tecton_sdk.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use serde_json::{json, Value as Json};

use super::common::{Server, ADMIN_KEY};

pub(super) const SECRETS: &str = "/tecton_proto.secrets.SecretsService";

/// A protobuf message of string fields, (tag, value) each, as the SDK serialises it.
pub(super) fn strings(fields: &[(u8, &str)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (tag, value) in fields {
        bytes.push(tag << 3 | 2);
        bytes.push(u8::try_from(value.len()).expect("short test strings"));
        bytes.extend_from_slice(value.as_bytes());
    }
    bytes
}

/// Sends one envelope; returns the HTTP status and the answer's JSON.
pub(super) fn call(
    server: &Server,
    path: &str,
    method: &str,
    key: Option<&str>,
    request: &str,
) -> (u16, Json) {
    let mut metadata = json!({"x-request-id": "r1", "x-workspace": "prod"});
    if let Some(key) = key {
        metadata["authorization"] = json!(format!("Tecton-key {key}"));
    }
    let body = json!({"method": method, "metadata": metadata, "request": request});
    let reply = server.request(
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    );
    (reply.status, reply.json())
}

/// Creates a service account through SCIM; returns its record (with `id` and `apiKey`).
fn service_account(server: &Server, body: Json) -> Json {
    let reply = server.request(
        "POST",
        "/api/scim/v2/ServiceAccounts",
        &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()
}

fn ok_response(answer: &Json) -> Vec<u8> {
    assert_eq!(answer["status"]["code"], 0, "{answer}");
    STANDARD
        .decode(answer["response"].as_str().unwrap())
        .unwrap()
}

#[test]
fn secrets_through_the_envelope() {
    let server = Server::start();
    let admin = Some(ADMIN_KEY);
    // Python's base64.encodebytes: a newline every 76 characters and at the end.
    let long_scope = "s".repeat(70);
    let wrapped = STANDARD.encode(strings(&[(1, &long_scope)]));
    let wrapped = format!("{}\n{}\n", &wrapped[..76], &wrapped[76..]);
    let (status, answer) = call(
        &server,
        "/api/proxy",
        &format!("{SECRETS}/CreateSecretScope"),
        admin,
        &wrapped,
    );
    assert_eq!(status, 200);
    assert!(ok_response(&answer).is_empty());

    let put = STANDARD_NO_PAD.encode(strings(&[(1, &long_scope), (2, "k"), (3, "v1")]));
    let (_, answer) = call(
        &server,
        "/proxy",
        &format!("{SECRETS}/PutSecretValue"),
        admin,
        &put,
    );
    ok_response(&answer);
    let get = STANDARD.encode(strings(&[(1, &long_scope), (2, "k")]));
    let (_, answer) = call(
        &server,
        "/api/proxy",
        &format!("{SECRETS}/GetSecretValue"),
        admin,
        &get,
    );
    assert_eq!(ok_response(&answer), strings(&[(1, "v1")]));
    let (_, answer) = call(
        &server,
        "/api/proxy",
        &format!("{SECRETS}/ListSecretScopes"),
        admin,
        "",
    );
    // ListSecretScopesResponse { scopes: [SecretScope { name }] }: field 1 holds a message.
    let scope = strings(&[(1, &long_scope)]);
    let mut expected = vec![1 << 3 | 2, u8::try_from(scope.len()).unwrap()];
    expected.extend(scope);
    assert_eq!(ok_response(&answer), expected);
}

#[test]
fn errors_are_grpc_codes_inside_2xx_answers() {
    let server = Server::start();
    let method = format!("{SECRETS}/ListSecretScopes");
    let (status, answer) = call(&server, "/api/proxy", &method, None, "");
    assert_eq!(
        (status, &answer["status"]["code"]),
        (200, &json!(16)),
        "{answer}"
    );
    let (_, answer) = call(&server, "/api/proxy", &method, Some("not-a-key"), "");
    assert_eq!(answer["status"]["code"], 16, "{answer}");

    let (_, answer) = call(
        &server,
        "/api/proxy",
        "/tecton_proto.Nowhere/Nothing",
        Some(ADMIN_KEY),
        "",
    );
    assert_eq!(answer["status"]["code"], 12, "{answer}");
    assert!(answer["status"]["detail"]
        .as_str()
        .unwrap()
        .contains("Nowhere"));
    let get = format!("{SECRETS}/GetSecretValue");
    let (_, answer) = call(&server, "/api/proxy", &get, Some(ADMIN_KEY), "not base64!");
    assert_eq!(answer["status"]["code"], 3, "{answer}");
    let (_, answer) = call(
        &server,
        "/api/proxy",
        &get,
        Some(ADMIN_KEY),
        &STANDARD.encode([0xff]),
    );
    assert_eq!(answer["status"]["code"], 3, "{answer}");
    let missing = STANDARD.encode(strings(&[(1, "none"), (2, "k")]));
    let (_, answer) = call(&server, "/api/proxy", &get, Some(ADMIN_KEY), &missing);
    assert_eq!(answer["status"]["code"], 5, "{answer}");

    // An envelope that is not one is an HTTP error: the SDK raises on the status.
    let reply = server.request("POST", "/api/proxy", &[], Some(b"{\"metadata\": {}}"));
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[test]
fn scope_roles_hold_through_the_proxy() {
    let server = Server::start();
    let reader = service_account(&server, json!({"name": "reader", "roles": []}));
    let key = reader["apiKey"].as_str().unwrap().to_string();
    let scope = STANDARD.encode(strings(&[(1, "vault")]));
    let create = format!("{SECRETS}/CreateSecretScope");
    ok_response(&call(&server, "/api/proxy", &create, Some(ADMIN_KEY), &scope).1);
    let put = STANDARD.encode(strings(&[(1, "vault"), (2, "k"), (3, "v")]));
    let (_, answer) = call(
        &server,
        "/api/proxy",
        &format!("{SECRETS}/PutSecretValue"),
        Some(&key),
        &put,
    );
    assert_eq!(answer["status"]["code"], 7, "{answer}");
    let (_, answer) = call(
        &server,
        "/api/proxy",
        &format!("{SECRETS}/ListSecrets"),
        Some(&key),
        &scope,
    );
    assert_eq!(answer["status"]["code"], 7, "{answer}");
}

#[test]
fn access_control_catalogue_and_directory_roles() {
    let server = Server::start();
    let auth = "/tecton_proto.auth.AuthorizationService";
    let (_, answer) = call(
        &server,
        "/api/proxy",
        &format!("{auth}/GetRoles"),
        Some(ADMIN_KEY),
        "",
    );
    let catalogue = String::from_utf8_lossy(&ok_response(&answer)).into_owned();
    for role in ["secret_scope_reader", "read_scope_role", "admin", "viewer"] {
        assert!(
            catalogue.contains(role),
            "{role} missing from {catalogue:?}"
        );
    }

    // ListAssignedRoles on workspaces reads a directory record: an admin's, or one's own.
    let body = json!({"name": "other", "roles": [{"type": "workspace_prod", "value": "viewer"}]});
    let created = service_account(&server, body);
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["apiKey"].as_str().unwrap(),
    );
    // principal_type = SERVICE_ACCOUNT (2), principal_id, resource_type = WORKSPACE (3).
    let mut request = vec![1 << 3, 2];
    request.extend(strings(&[(2, id)]));
    request.extend([3 << 3, 3]);
    let request = STANDARD.encode(request);
    let list = format!("{auth}/ListAssignedRoles");
    let (_, answer) = call(&server, "/api/proxy", &list, Some(key), &request);
    let own = ok_response(&answer);
    assert!(String::from_utf8_lossy(&own).contains("viewer"));
    let (_, answer) = call(&server, "/api/proxy", &list, Some(ADMIN_KEY), &request);
    assert_eq!(ok_response(&answer), own);

    let nosy = service_account(&server, json!({"name": "nosy"}));
    let nosy = nosy["apiKey"].as_str().unwrap();
    let (_, answer) = call(&server, "/api/proxy", &list, Some(nosy), &request);
    assert_eq!(answer["status"]["code"], 7, "{answer}");
}
