//! Tecton's metadata proxy (`POST /api/proxy`): the envelope, its authentication, gRPC codes
//! inside 2xx answers, lenient base64, the secrets calls under the same role rules as the JSON
//! routes, feature service definitions from the registry, and workspace roles and service accounts
//! on the directory. The real SDK and CLI are driven by tests/clients/tecton_sdk.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use prost::Message;
use quiver::http::wire::tecton_proto::args::NodeType;
use quiver::http::wire::tecton_proto::common::{AggregationFunction, DataTypeEnum, Id, Window};
use quiver::http::wire::tecton_proto::data::{FcoContainer, FcoKind, FeatureView, FeatureViewType};
use quiver::http::wire::tecton_proto::metadataservice as mds;
use quiver::http::wire::tecton_proto::{auth, data};
use quiver::registry::object_id;
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

/// Asks for a feature service's definitions; answers the gRPC code and the container.
fn get_feature_service(
    server: &Server,
    key: &str,
    request: &mds::GetFeatureServiceRequest,
) -> (u64, Option<FcoContainer>) {
    let method = "/tecton_proto.metadataservice.MetadataService/GetFeatureService";
    let (_, answer) = call(
        server,
        "/api/proxy",
        method,
        Some(key),
        &STANDARD.encode(request.encode_to_vec()),
    );
    let code = answer["status"]["code"].as_u64().unwrap();
    if code != 0 {
        return (code, None);
    }
    let response = mds::GetFeatureServiceResponse::decode(&*ok_response(&answer)).unwrap();
    (code, response.fco_container)
}

fn by_name(workspace: &str, service: &str) -> mds::GetFeatureServiceRequest {
    mds::GetFeatureServiceRequest {
        service_reference: service.to_string(),
        workspace: workspace.to_string(),
        id: None,
    }
}

#[test]
fn feature_service_definitions_from_the_registry() {
    let server = Server::start();
    let service_id = object_id("feature_service", "prod", "fraud_detection_feature_service");
    let (_, container) = get_feature_service(
        &server,
        ADMIN_KEY,
        &by_name("prod", "fraud_detection_feature_service"),
    );
    let container = container.unwrap();
    assert_eq!(container.root_ids, [Id::from_hex(&service_id).unwrap()]);
    let Some(FcoKind::FeatureService(service)) = &container.fcos[0].fco else {
        panic!("the root comes first: {:?}", container.fcos[0]);
    };
    let namespaces: Vec<&str> = service
        .feature_set_items
        .iter()
        .map(|item| item.namespace.as_str())
        .collect();
    assert_eq!(
        namespaces,
        [
            "transaction_amount_is_higher_than_average",
            "merchant_fraud_rate",
            "user_distinct_merchant_transaction_count_30d",
            "user_transaction_amount_metrics",
            "user_transaction_counts",
        ]
    );
    assert_eq!(
        service.feature_set_items[4].feature_columns,
        ["transaction_id_last_3_1d_1d"]
    );
    let views: Vec<&FeatureView> = container.fcos[1..]
        .iter()
        .map(|fco| match &fco.fco {
            Some(FcoKind::FeatureView(view)) => view,
            other => panic!("a view: {other:?}"),
        })
        .collect();
    let view = |name: &str| {
        *views
            .iter()
            .find(|view| view.fco_metadata.as_ref().unwrap().name == name)
            .unwrap_or_else(|| panic!("{name} is in the container"))
    };

    // The realtime view: its request context and the upstream view it reads, which the
    // container holds too.
    let realtime = view("transaction_amount_is_higher_than_average");
    let Some(NodeType::JoinInputsNode(inputs)) = &realtime
        .pipeline
        .as_ref()
        .unwrap()
        .root
        .as_ref()
        .unwrap()
        .node_type
    else {
        panic!("{realtime:?}");
    };
    let Some(NodeType::RequestDataSourceNode(request)) = &inputs.nodes[0].node_type else {
        panic!("{inputs:?}");
    };
    let context = request.request_context.as_ref().unwrap();
    let column = &context.tecton_schema.as_ref().unwrap().columns[0];
    assert_eq!(column.name, "amount");
    assert_eq!(
        column.offline_data_type.as_ref().unwrap().r#type,
        DataTypeEnum::Float64 as i32
    );
    let Some(NodeType::FeatureViewNode(upstream)) = &inputs.nodes[1].node_type else {
        panic!("{inputs:?}");
    };
    assert_eq!(upstream.input_name, "user_transaction_amount_metrics");
    assert_eq!(
        upstream.feature_view_id,
        view("user_transaction_amount_metrics").feature_view_id
    );

    // An aggregate: its input column, function and window relative to the window's end.
    let Some(FeatureViewType::TemporalAggregate(aggregate)) =
        &view("user_transaction_amount_metrics").feature_view_type
    else {
        panic!("an aggregating view");
    };
    let mean_1h = &aggregate.features[0];
    assert_eq!(
        (
            mean_1h.input_feature_name.as_str(),
            mean_1h.output_feature_name.as_str(),
            mean_1h.function
        ),
        ("amt", "amt_mean_1h_10m", AggregationFunction::Mean as i32)
    );
    let Some(Window::RelativeTimeWindow(window)) = &mean_1h.time_window.as_ref().unwrap().window
    else {
        panic!("{mean_1h:?}");
    };
    assert_eq!(window.window_start.as_ref().unwrap().seconds, -3600);
    assert_eq!(window.window_end.as_ref().unwrap().seconds, 0);
    assert_eq!(aggregate.slide_interval.as_ref().unwrap().seconds, 600);

    // The same service by its id.
    let by_id = mds::GetFeatureServiceRequest {
        id: Id::from_hex(&service_id),
        ..mds::GetFeatureServiceRequest::default()
    };
    let (_, again) = get_feature_service(&server, ADMIN_KEY, &by_id);
    assert_eq!(again.unwrap(), container);
}

#[test]
fn feature_service_definitions_are_found_and_checked_as_metadata() {
    let server = Server::start();
    let (code, _) = get_feature_service(&server, ADMIN_KEY, &by_name("prod", "nope"));
    assert_eq!(code, 5, "NOT_FOUND");
    let (code, _) = get_feature_service(&server, ADMIN_KEY, &by_name("nope", "user_risk_service"));
    assert_eq!(code, 5, "NOT_FOUND");
    // A development workspace's services are described too (they are not served).
    let (code, _) = get_feature_service(
        &server,
        ADMIN_KEY,
        &by_name("staging", "experiment_service"),
    );
    assert_eq!(code, 0);

    let outsider = service_account(&server, json!({"name": "outsider", "roles": []}));
    let key = outsider["apiKey"].as_str().unwrap();
    let (code, _) = get_feature_service(&server, key, &by_name("prod", "user_risk_service"));
    assert_eq!(code, 7, "PERMISSION_DENIED without the viewer role");
    let viewer = service_account(
        &server,
        json!({"name": "viewer", "roles": [{"type": "workspace_prod", "value": "viewer"}]}),
    );
    let key = viewer["apiKey"].as_str().unwrap();
    let (code, _) = get_feature_service(&server, key, &by_name("prod", "user_risk_service"));
    assert_eq!(code, 0);
}

/// A directory record's SCIM `roles`.
fn scim_roles(server: &Server, id: &str) -> Json {
    let reply = server.request(
        "GET",
        &format!("/api/scim/v2/ServiceAccounts/{id}"),
        &[("Authorization", &format!("Bearer {ADMIN_KEY}"))],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["roles"].clone()
}

fn assign(server: &Server, key: &str, method: &str, assignments: Vec<auth::Assignment>) -> u64 {
    let request = auth::AssignmentsRequest { assignments };
    let (_, answer) = call(
        server,
        "/api/proxy",
        &format!("/tecton_proto.auth.AuthorizationService/{method}"),
        Some(key),
        &STANDARD.encode(request.encode_to_vec()),
    );
    answer["status"]["code"].as_u64().unwrap()
}

fn on_workspace(workspace: &str, role: &str, service_account: &str) -> auth::Assignment {
    auth::Assignment {
        resource_type: auth::RESOURCE_TYPE_WORKSPACE,
        resource_id: workspace.to_string(),
        role: role.to_string(),
        principal_type: auth::PRINCIPAL_TYPE_SERVICE_ACCOUNT,
        principal_id: service_account.to_string(),
    }
}

#[test]
fn workspace_roles_are_directory_roles_for_admins_to_assign() {
    let server = Server::start();
    let bot = service_account(&server, json!({"name": "bot"}));
    let (id, key) = (bot["id"].as_str().unwrap(), bot["apiKey"].as_str().unwrap());
    let editor = on_workspace("prod", "editor", id);
    assert_eq!(
        assign(&server, ADMIN_KEY, "AssignRoles", vec![editor.clone()]),
        0
    );
    let admin = auth::Assignment {
        resource_type: auth::RESOURCE_TYPE_ORGANIZATION,
        resource_id: String::new(),
        role: "admin".to_string(),
        ..editor.clone()
    };
    assert_eq!(
        assign(&server, ADMIN_KEY, "AssignRoles", vec![admin.clone()]),
        0
    );
    assert_eq!(
        scim_roles(&server, id),
        json!([{"type": "workspace_prod", "value": "editor"}, {"type": "account_type", "value": "admin"}])
    );
    assert_eq!(assign(&server, ADMIN_KEY, "UnassignRoles", vec![admin]), 0);

    // Checked whole before anything is written: a bad assignment stops the good one.
    let viewer = on_workspace("staging", "viewer", id);
    let nowhere = on_workspace("nope", "viewer", id);
    let not_a_role = on_workspace("prod", "secret_scope_reader", id);
    let scope = auth::Assignment {
        resource_type: auth::RESOURCE_TYPE_SECRET_SCOPE,
        resource_id: "keys".to_string(),
        role: "secret_scope_reader".to_string(),
        ..viewer.clone()
    };
    for (bad, code) in [(nowhere, 5), (not_a_role, 3), (scope, 3)] {
        let assignments = vec![viewer.clone(), bad];
        assert_eq!(assign(&server, ADMIN_KEY, "AssignRoles", assignments), code);
    }
    // Only admins assign them, as only admins write SCIM.
    assert_eq!(assign(&server, key, "AssignRoles", vec![viewer]), 7);

    // Who holds a role on prod: the directory's records, to admins.
    let holders = |key: &str| {
        let request = auth::ListAssignedPrincipalsRequest {
            resource_type: auth::RESOURCE_TYPE_WORKSPACE,
            resource_id: "prod".to_string(),
            ..Default::default()
        };
        let (_, answer) = call(
            &server,
            "/api/proxy",
            "/tecton_proto.auth.AuthorizationService/ListAssignedPrincipals",
            Some(key),
            &STANDARD.encode(request.encode_to_vec()),
        );
        answer
    };
    let answer = holders(ADMIN_KEY);
    let found = auth::ListAssignedPrincipalsResponse::decode(&*ok_response(&answer)).unwrap();
    let ids: Vec<&str> = found
        .assignments
        .iter()
        .filter_map(|a| Some(a.principal.as_ref()?.service_account.as_ref()?.id.as_str()))
        .collect();
    assert_eq!(ids, [id]);
    assert_eq!(holders(key)["status"]["code"], 7);
    assert_eq!(
        scim_roles(&server, id),
        json!([{"type": "workspace_prod", "value": "editor"}])
    );
    assert_eq!(
        assign(&server, ADMIN_KEY, "UnassignRoles", vec![editor.clone()]),
        0
    );
    assert_eq!(scim_roles(&server, id), Json::Null, "no roles left");
    assert_eq!(assign(&server, ADMIN_KEY, "UnassignRoles", vec![editor]), 5);
}

#[test]
fn service_accounts_are_the_directorys() {
    let server = Server::start();
    let metadata = "/tecton_proto.metadataservice.MetadataService";
    let send = |key: &str, method: &str, request: Vec<u8>| {
        let (_, answer) = call(
            &server,
            "/api/proxy",
            &format!("{metadata}/{method}"),
            Some(key),
            &STANDARD.encode(request),
        );
        answer
    };
    let create = data::CreateServiceAccountRequest {
        name: "ci".to_string(),
        description: "CI pipeline".to_string(),
        credentials_type: 0,
    };
    let answer = send(ADMIN_KEY, "CreateServiceAccount", create.encode_to_vec());
    let created = data::CreateServiceAccountResponse::decode(&*ok_response(&answer)).unwrap();
    assert!(created.is_active && !created.api_key.is_empty());
    let again = send(ADMIN_KEY, "CreateServiceAccount", create.encode_to_vec());
    assert_eq!(again["status"]["code"], 6, "ALREADY_EXISTS: {again}");

    let search = |key: &str, text: &str| {
        let request = data::GetServiceAccountsRequest {
            search: text.to_string(),
            ids: Vec::new(),
        };
        send(key, "GetServiceAccounts", request.encode_to_vec())
    };
    let found =
        data::GetServiceAccountsResponse::decode(&*ok_response(&search(ADMIN_KEY, "ci pipe")))
            .unwrap();
    assert_eq!(found.service_accounts.len(), 1);
    assert_eq!(found.service_accounts[0].id, created.id);
    let none =
        data::GetServiceAccountsResponse::decode(&*ok_response(&search(ADMIN_KEY, "nobody")))
            .unwrap();
    assert!(none.service_accounts.is_empty());
    // Managing accounts is for admins, as in SCIM.
    assert_eq!(search(&created.api_key, "")["status"]["code"], 7);

    // Deactivated, its key no longer authenticates.
    let deactivate = data::UpdateServiceAccountRequest {
        id: created.id.clone(),
        is_active: Some(false),
        ..Default::default()
    };
    let answer = send(
        ADMIN_KEY,
        "UpdateServiceAccount",
        deactivate.encode_to_vec(),
    );
    let updated = data::UpdateServiceAccountResponse::decode(&*ok_response(&answer)).unwrap();
    assert_eq!((updated.name.as_str(), updated.is_active), ("ci", false));
    assert_eq!(search(&created.api_key, "")["status"]["code"], 16);

    let delete = data::DeleteServiceAccountRequest {
        id: created.id.clone(),
    };
    ok_response(&send(
        ADMIN_KEY,
        "DeleteServiceAccount",
        delete.encode_to_vec(),
    ));
    let gone = send(ADMIN_KEY, "DeleteServiceAccount", delete.encode_to_vec());
    assert_eq!(gone["status"]["code"], 5, "NOT_FOUND: {gone}");
}
