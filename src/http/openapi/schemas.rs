//! The JSON schemas of `GET /openapi.json`: a few constructors over utoipa's schema builders,
//! then one schema per wire shape, named as the components the operations refer to. Each says
//! what `http::wire` and the handlers really send (schemathesis checks every answer against
//! them in `tests/clients/schemathesis`); where a vendor's contract leaves a field open, so
//! does the schema.

use serde_json::{json, Value as Json};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{RefOr, Required};

pub fn string() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

pub fn number() -> Schema {
    ObjectBuilder::new().schema_type(Type::Number).into()
}

/// A string the pattern matches.
fn matching(pattern: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .into()
}

/// The names of Tecton scopes and keys (`names::is_scope_name`).
pub fn vault_name() -> Schema {
    matching("^[A-Za-z0-9._-]{1,128}$")
}

/// The names of TrueFoundry groups and keys (`secrets::truefoundry::check_name`): as
/// [`vault_name`], with a letter or digit among them.
pub fn truefoundry_name() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[A-Za-z0-9._-]*[A-Za-z0-9][A-Za-z0-9._-]*$"))
        .max_length(Some(128))
        .into()
}

/// A Tinybird secret's name (`secrets::tinybird::check_name`): a ClickHouse parameter name.
pub fn tinybird_name() -> Schema {
    matching("^[A-Za-z_][A-Za-z0-9_]{0,254}$")
}

pub fn integer() -> Schema {
    ObjectBuilder::new().schema_type(Type::Integer).into()
}

pub fn boolean() -> Schema {
    ObjectBuilder::new().schema_type(Type::Boolean).into()
}

/// Any JSON value (a feature value, a vendor's free-form field).
pub fn any() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .into()
}

/// `value` or `null`.
fn nullable(value: Type) -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![value, Type::Null]))
        .into()
}

/// One of the listed strings.
pub fn one_of_strings(values: &[&str]) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .into()
}

pub fn array(items: impl Into<RefOr<Schema>>) -> Schema {
    let items: RefOr<Schema> = items.into();
    ArrayBuilder::new().items(items).into()
}

/// An object with these properties, the `required` ones always present; other properties are
/// allowed (JSON Schema's default), so a vendor field added later does not break clients.
pub fn object(properties: &[(&str, Schema)], required: &[&str]) -> Schema {
    let mut builder = ObjectBuilder::new().schema_type(Type::Object);
    for (name, schema) in properties {
        builder = builder.property(*name, schema.clone());
    }
    for name in required {
        builder = builder.required(*name);
    }
    builder.into()
}

/// An object whose every property value has the schema `value`.
pub fn map(value: impl Into<RefOr<Schema>>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(value.into())))
        .into()
}

/// `{}`: what Tecton answers for a call with nothing to say.
pub fn empty_object() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

/// `schema` with example values (schemathesis sends them first, so that each operation is also
/// called with a request the demo's data answers).
fn with_examples(schema: Schema, examples: impl IntoIterator<Item = Json>) -> Schema {
    match schema {
        Schema::Object(mut object) => {
            object.examples = examples.into_iter().collect();
            Schema::Object(object)
        }
        Schema::Array(mut array) => {
            array.examples = examples.into_iter().collect();
            Schema::Array(array)
        }
        other => other,
    }
}

pub fn one_of(variants: impl IntoIterator<Item = Schema>) -> Schema {
    let mut builder = OneOfBuilder::new();
    for variant in variants {
        builder = builder.item(variant);
    }
    builder.into()
}

pub fn reference(name: &str) -> RefOr<Schema> {
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(name))
}

/// Whether a path parameter or body is required, in utoipa's words.
pub fn required(yes: bool) -> Required {
    if yes {
        Required::True
    } else {
        Required::False
    }
}

/// Every named schema, for `components.schemas`.
pub fn components() -> Vec<(&'static str, Schema)> {
    let mut all = Vec::new();
    all.extend(errors());
    all.extend(feature_service());
    all.extend(ingest());
    all.extend(admin());
    all.extend(tecton_secrets());
    all.extend(scim());
    all.extend(truefoundry());
    all.extend(tinybird());
    all.extend(operations());
    all.extend(console());
    all
}

/// The console's own JSON (`http::wire::console`).
fn console() -> Vec<(&'static str, Schema)> {
    vec![
        (
            "ConsoleStore",
            object(
                &[
                    ("at", string()),
                    ("views", array(any())),
                    ("shards", array(any())),
                ],
                &["at", "views", "shards"],
            ),
        ),
        (
            "ConsoleRequests",
            object(
                &[("sampleEverySeconds", integer()), ("samples", array(any()))],
                &["sampleEverySeconds", "samples"],
            ),
        ),
    ]
}

/// Each family's error body (`http::error` for Tecton's, the `wire` modules for the others).
fn errors() -> Vec<(&'static str, Schema)> {
    vec![
        (
            "TectonError",
            object(
                &[
                    ("error", string()),
                    ("code", integer()),
                    ("message", string()),
                ],
                &["error", "code", "message"],
            ),
        ),
        (
            "IngestError",
            one_of([
                object(
                    &[(
                        "requestError",
                        object(
                            &[("errorMessage", string()), ("errorType", string())],
                            &["errorMessage", "errorType"],
                        ),
                    )],
                    &["requestError"],
                ),
                object(
                    &[
                        ("workspaceName", string()),
                        (
                            "recordErrors",
                            array(object(&[("errorMessage", string())], &[])),
                        ),
                    ],
                    &["workspaceName", "recordErrors"],
                ),
            ]),
        ),
        (
            "ScimError",
            object(
                &[
                    ("schemas", array(string())),
                    ("status", string()),
                    ("detail", string()),
                    ("scimType", string()),
                ],
                &["schemas", "status", "detail"],
            ),
        ),
        (
            "TrueFoundryError",
            object(
                &[("statusCode", integer()), ("message", string())],
                &["statusCode", "message"],
            ),
        ),
        (
            "TinybirdError",
            object(
                &[("error", string()), ("documentation", string())],
                &["error"],
            ),
        ),
    ]
}

/// A feature's data type as Tecton writes it: `{"type": "int64"}`, arrays with
/// `elementType`, structs with `fields`.
fn data_type() -> Schema {
    object(&[("type", string())], &["type"])
}

fn feature_service() -> Vec<(&'static str, Schema)> {
    let join_key_map = map(any());
    let metadata_options = object(
        &[
            "includeNames",
            "includeEffectiveTimes",
            "includeDataTypes",
            "includeSloInfo",
            "includeServingStatus",
            "includeFeatureDescriptions",
            "includeFeatureTags",
        ]
        .map(|name| (name, nullable(Type::Boolean))),
        &[],
    );
    let params = object(
        &[
            ("workspaceName", nullable(Type::String)),
            ("featureServiceName", nullable(Type::String)),
            ("featureServiceId", nullable(Type::String)),
            ("joinKeyMap", join_key_map.clone()),
            ("requestContextMap", join_key_map.clone()),
            ("metadataOptions", metadata_options),
            ("requestOptions", map(any())),
            ("allowPartialResults", nullable(Type::Boolean)),
            (
                "requestData",
                array(object(
                    &[
                        ("joinKeyMap", join_key_map.clone()),
                        ("requestContextMap", join_key_map),
                    ],
                    &[],
                )),
            ),
        ],
        &[],
    );
    // A batch answers each feature's status per row, and each row's sloInfo.
    let feature_metadata = |status: Schema| {
        object(
            &[
                ("name", string()),
                ("dataType", data_type()),
                ("status", status),
                ("effectiveTime", string()),
                ("description", string()),
                ("tags", map(string())),
            ],
            &[],
        )
    };
    let slo_info = object(
        &[
            ("sloEligible", boolean()),
            ("sloServerTimeSeconds", number()),
            ("dynamodbResponseSizeBytes", integer()),
            ("serverTimeSeconds", number()),
            ("storeMaxLatency", number()),
            ("storeResponseSizeBytes", integer()),
            ("sloIneligibilityReasons", array(string())),
        ],
        &["sloEligible", "serverTimeSeconds"],
    );
    let named_type = object(&[("name", string()), ("dataType", data_type())], &["name"]);
    vec![
        (
            "FeatureServiceRequest",
            with_examples(
                object(&[("params", params)], &["params"]),
                [
                    json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
                        "joinKeyMap": {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"},
                        "metadataOptions": {"includeServingStatus": true, "includeSloInfo": true}}}),
                    json!({"params": {"workspaceName": "prod", "featureServiceName": "user_risk_service",
                        "requestData": [{"joinKeyMap": {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"}},
                                        {"joinKeyMap": {"user_id": "user_1002", "merchant": "fraud_Haley Group"}}]}}),
                ],
            ),
        ),
        (
            "GetFeaturesResponse",
            object(
                &[
                    (
                        "result",
                        object(&[("features", array(any()))], &["features"]),
                    ),
                    (
                        "metadata",
                        object(
                            &[
                                ("features", array(feature_metadata(string()))),
                                ("sloInfo", slo_info.clone()),
                            ],
                            &[],
                        ),
                    ),
                ],
                &["result"],
            ),
        ),
        (
            "GetFeaturesBatchResponse",
            object(
                &[
                    (
                        "result",
                        array(object(&[("features", array(any()))], &["features"])),
                    ),
                    (
                        "metadata",
                        object(
                            &[
                                ("features", array(feature_metadata(array(string())))),
                                ("sloInfo", array(slo_info.clone())),
                                ("batchSloInfo", slo_info),
                            ],
                            &[],
                        ),
                    ),
                ],
                &["result"],
            ),
        ),
        (
            "FeatureServiceMetadata",
            object(
                &[
                    ("featureServiceType", string()),
                    ("inputJoinKeys", array(named_type.clone())),
                    ("inputRequestContextKeys", array(named_type.clone())),
                    ("featureValues", array(named_type)),
                ],
                &[],
            ),
        ),
        ("Empty", empty_object()),
    ]
}

fn ingest() -> Vec<(&'static str, Schema)> {
    vec![
        (
            "IngestRequest",
            with_examples(
                object(
                    &[
                        ("workspace_name", string()),
                        ("dry_run", boolean()),
                        (
                            "records",
                            map(array(object(&[("record", map(any()))], &["record"]))),
                        ),
                    ],
                    &["workspace_name", "records"],
                ),
                [
                    json!({"workspace_name": "prod", "dry_run": true, "records": {"transactions": [{"record": {
                "user_id": "user_1001", "merchant": "fraud_Kirlin and Sons", "terminal_id": 77, "amt": 42.5,
                "category": "grocery_pos", "is_online": false, "transaction_id": "tx_schemathesis",
                "is_fraud": 0, "timestamp": "2030-01-01T00:00:00Z"}}]}}),
                ],
            ),
        ),
        (
            "IngestResponse",
            object(
                &[
                    ("workspaceName", string()),
                    ("ingestMetrics", map(any())),
                    ("recordErrors", array(any())),
                ],
                &["workspaceName"],
            ),
        ),
    ]
}

fn admin() -> Vec<(&'static str, Schema)> {
    let file = object(
        &[("path", string()), ("content", string())],
        &["path", "content"],
    );
    let workspace = object(
        &[
            ("name", string()),
            ("live", boolean()),
            ("files", array(file)),
        ],
        &["name", "live", "files"],
    );
    vec![
        (
            "ApplyRepository",
            object(
                &[
                    ("workspaces", array(workspace)),
                    ("expectedHash", string()),
                    ("allowDataLoss", boolean()),
                ],
                &["workspaces"],
            ),
        ),
        (
            "RepositoryApplied",
            object(
                &[
                    ("applied", boolean()),
                    ("hash", string()),
                    ("plan", map(any())),
                ],
                &["applied", "hash", "plan"],
            ),
        ),
        (
            "Repository",
            object(
                &[
                    ("format", integer()),
                    ("hash", string()),
                    ("workspaces", map(any())),
                ],
                &["format", "hash", "workspaces"],
            ),
        ),
        (
            "SnapshotStarted",
            object(
                &[("id", any()), ("status", one_of_strings(&["started"]))],
                &["id", "status"],
            ),
        ),
        (
            "SnapshotList",
            object(
                &[
                    (
                        "snapshots",
                        array(object(
                            &[
                                ("id", any()),
                                ("path", string()),
                                ("createdAt", any()),
                                ("bytes", integer()),
                                ("shards", integer()),
                                ("items", any()),
                                ("checksum", any()),
                            ],
                            &["id"],
                        )),
                    ),
                    ("lastFailure", any()),
                ],
                &["snapshots"],
            ),
        ),
        (
            "Rows",
            with_examples(
                string(),
                [json!(
                    "{\"user_id\": \"user_1001\", \"credit_score\": 700}\n"
                )],
            ),
        ),
        (
            "RowsLoaded",
            object(
                &[
                    ("rowsReceived", integer()),
                    ("rowsStored", integer()),
                    ("rowsOlderThanStored", integer()),
                    ("rowsTooFarInFuture", integer()),
                ],
                &[
                    "rowsReceived",
                    "rowsStored",
                    "rowsOlderThanStored",
                    "rowsTooFarInFuture",
                ],
            ),
        ),
        (
            "MasterKeyRotated",
            object(
                &[
                    ("rotated", boolean()),
                    ("newMasterKey", string()),
                    ("snapshot", nullable(Type::String)),
                    ("snapshotError", string()),
                ],
                &["rotated"],
            ),
        ),
    ]
}

fn tecton_secrets() -> Vec<(&'static str, Schema)> {
    // The names Quiver accepts (`ScopeRole::parse` also takes the secret_scope_* aliases).
    let roles = one_of_strings(&["read_scope_role", "write_scope_role", "manage_scope_role"]);
    let principal_types = one_of_strings(&[
        "PRINCIPAL_TYPE_USER",
        "PRINCIPAL_TYPE_SERVICE_ACCOUNT",
        "PRINCIPAL_TYPE_GROUP",
        "PRINCIPAL_TYPE_WORKSPACE",
    ]);
    let assignment = object(
        &[
            (
                "resourceType",
                one_of_strings(&["RESOURCE_TYPE_SECRET_SCOPE"]),
            ),
            ("resourceId", string()),
            ("role", roles.clone()),
            ("principalType", principal_types.clone()),
            ("principalId", string()),
        ],
        &["role", "principalType", "principalId"],
    );
    vec![
        (
            "CreateScope",
            object(&[("scope", vault_name())], &["scope"]),
        ),
        (
            "ScopeList",
            object(
                &[("scopes", array(object(&[("name", string())], &["name"])))],
                &["scopes"],
            ),
        ),
        (
            "KeyList",
            object(
                &[("keys", array(object(&[("name", string())], &["name"])))],
                &["keys"],
            ),
        ),
        ("SecretValue", object(&[("value", string())], &["value"])),
        (
            "Assignments",
            with_examples(
                object(&[("assignments", array(assignment))], &["assignments"]),
                [
                    json!({"assignments": [{"resourceType": "RESOURCE_TYPE_SECRET_SCOPE",
                    "resourceId": "schemathesis", "role": "read_scope_role",
                    "principalType": "PRINCIPAL_TYPE_USER", "principalId": "someone"}]}),
                ],
            ),
        ),
        (
            "AssignedPrincipalsQuery",
            object(
                &[
                    (
                        "resourceType",
                        one_of_strings(&["RESOURCE_TYPE_SECRET_SCOPE"]),
                    ),
                    ("resourceId", string()),
                    ("roles", array(roles.clone())),
                    ("principalTypes", array(principal_types.clone())),
                ],
                &["resourceId"],
            ),
        ),
        (
            "AssignedRolesQuery",
            object(
                &[
                    ("principalType", principal_types),
                    ("principalId", string()),
                    (
                        "resourceType",
                        one_of_strings(&["RESOURCE_TYPE_SECRET_SCOPE"]),
                    ),
                    ("resourceIds", array(string())),
                    ("roles", array(roles)),
                ],
                &["principalType", "principalId"],
            ),
        ),
        ("Assigned", map(any())),
        (
            "ProxyEnvelope",
            object(
                &[
                    ("method", string()),
                    ("metadata", map(any())),
                    ("request", string()),
                ],
                &["method"],
            ),
        ),
        (
            "ProxyAnswer",
            object(
                &[
                    (
                        "status",
                        object(
                            &[("code", integer()), ("detail", string())],
                            &["code", "detail"],
                        ),
                    ),
                    ("response", string()),
                    ("metadata", map(any())),
                ],
                &["status", "response", "metadata"],
            ),
        ),
    ]
}

fn scim() -> Vec<(&'static str, Schema)> {
    let resource = object(
        &[
            ("schemas", array(string())),
            ("id", string()),
            ("meta", map(any())),
        ],
        &["schemas"],
    );
    vec![
        ("ScimResource", resource.clone()),
        (
            "ScimListResponse",
            object(
                &[
                    ("schemas", array(string())),
                    ("totalResults", integer()),
                    ("startIndex", integer()),
                    ("itemsPerPage", integer()),
                    ("Resources", array(resource)),
                ],
                &["schemas", "totalResults"],
            ),
        ),
        (
            "ScimBody",
            with_examples(
                object(&[("schemas", array(string()))], &[]),
                [
                    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": "userName sw \"a\""}),
                ],
            ),
        ),
        (
            "ScimNewResource",
            with_examples(
                object(&[("schemas", array(string()))], &[]),
                [
                    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": "ana@example.com", "name": {"givenName": "Ana"}}),
                ],
            ),
        ),
    ]
}

fn truefoundry() -> Vec<(&'static str, Schema)> {
    let key_value = object(
        &[
            ("key", truefoundry_name()),
            ("value", nullable(Type::String)),
        ],
        &["key"],
    );
    let group = object(
        &[
            ("id", string()),
            ("fqn", string()),
            ("name", string()),
            ("tenantName", string()),
            ("associatedSecrets", array(any())),
            ("createdAt", string()),
            ("updatedAt", string()),
            ("integrationId", string()),
            ("manifest", any()),
        ],
        &["id", "fqn", "name"],
    );
    let secret = object(
        &[
            ("id", string()),
            ("fqn", string()),
            ("name", string()),
            ("secretGroupId", string()),
            ("value", string()),
            ("secretVersions", array(any())),
        ],
        &["id", "fqn", "name", "secretGroupId"],
    );
    let page = |item: Schema| {
        object(
            &[
                ("data", array(item)),
                (
                    "pagination",
                    object(
                        &[
                            ("total", integer()),
                            ("offset", integer()),
                            ("limit", integer()),
                        ],
                        &["total", "offset", "limit"],
                    ),
                ),
            ],
            &["data", "pagination"],
        )
    };
    vec![
        (
            "CreateSecretGroup",
            with_examples(
                object(
                    &[
                        ("name", truefoundry_name()),
                        ("integrationId", nullable(Type::String)),
                        ("secrets", array(key_value.clone())),
                    ],
                    &["name"],
                ),
                [
                    json!({"name": "schemathesis-group", "secrets": [{"key": "token", "value": "s3cret"}]}),
                ],
            ),
        ),
        (
            "UpsertSecretGroup",
            object(
                &[
                    (
                        "manifest",
                        object(
                            &[
                                ("type", one_of_strings(&["secret-group"])),
                                ("name", truefoundry_name()),
                                ("integration_fqn", string()),
                                (
                                    "collaborators",
                                    array(object(
                                        &[
                                            ("subject", string()),
                                            (
                                                "role_id",
                                                one_of_strings(&[
                                                    "secret-group-admin",
                                                    "secret-group-editor",
                                                    "secret-group-viewer",
                                                ]),
                                            ),
                                        ],
                                        &["subject", "role_id"],
                                    )),
                                ),
                                ("ownedBy", object(&[("account", string())], &["account"])),
                            ],
                            &["name"],
                        ),
                    ),
                    ("dryRun", boolean()),
                ],
                &["manifest"],
            ),
        ),
        (
            "UpdateSecretGroup",
            object(&[("secrets", array(key_value))], &["secrets"]),
        ),
        (
            "ListSecrets",
            object(
                &[
                    ("limit", integer()),
                    ("offset", integer()),
                    ("secretFqns", array(string())),
                    ("secretGroupId", nullable(Type::String)),
                    ("withValue", boolean()),
                ],
                &[],
            ),
        ),
        (
            "SecretGroupAnswer",
            object(&[("data", group.clone())], &["data"]),
        ),
        ("SecretGroupPage", page(group)),
        (
            "SecretAnswer",
            object(&[("data", secret.clone())], &["data"]),
        ),
        ("SecretPage", page(secret)),
        ("Deleted", integer()),
    ]
}

fn tinybird() -> Vec<(&'static str, Schema)> {
    let secret = object(
        &[
            ("name", string()),
            ("type", string()),
            ("created_at", string()),
            ("updated_at", string()),
            ("edited_by", any()),
        ],
        &["name", "type"],
    );
    vec![
        (
            "TinybirdParameters",
            with_examples(
                object(&[("name", tinybird_name()), ("value", string())], &[]),
                [json!({"name": "schemathesis_secret", "value": "s3cret"})],
            ),
        ),
        ("TinybirdSecret", secret.clone()),
        (
            "TinybirdSecretList",
            object(
                &[
                    ("secrets", array(secret.clone())),
                    ("variables", array(secret)),
                ],
                &[],
            ),
        ),
        ("TinybirdDeleted", object(&[("ok", boolean())], &["ok"])),
    ]
}

/// Health and the document itself.
fn operations() -> Vec<(&'static str, Schema)> {
    vec![
        (
            "Health",
            object(
                &[
                    ("status", string()),
                    ("reason", string()),
                    ("journals", any()),
                ],
                &["status"],
            ),
        ),
        ("OpenApiDocument", map(any())),
        ("Text", string()),
    ]
}
