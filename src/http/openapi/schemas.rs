//! The JSON schemas of `GET /openapi.json`: a few constructors over utoipa's schema builders,
//! then one schema per wire shape, named as the components the operations refer to. Each says
//! what `http::wire` and the handlers really send (schemathesis checks every answer against
//! them in `tests/clients/schemathesis`); where a vendor's contract leaves a field open, so
//! does the schema.

use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{RefOr, Required};

pub fn string() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
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
    all
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
    let feature_metadata = object(
        &[
            ("name", string()),
            ("dataType", data_type()),
            ("status", any()),
            ("effectiveTime", any()),
            ("description", string()),
            ("tags", map(string())),
        ],
        &[],
    );
    let named_type = object(&[("name", string()), ("dataType", data_type())], &["name"]);
    vec![
        (
            "FeatureServiceRequest",
            object(&[("params", params)], &["params"]),
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
                                ("features", array(feature_metadata.clone())),
                                ("sloInfo", map(any())),
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
                                ("features", array(feature_metadata)),
                                ("sloInfo", map(any())),
                                ("batchSloInfo", map(any())),
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
    vec![
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
        ("Rows", array(map(any()))),
        (
            "RowsLoaded",
            object(
                &[
                    ("rowsReceived", integer()),
                    ("rowsStored", integer()),
                    ("rowsOlderThanStored", integer()),
                ],
                &["rowsReceived", "rowsStored", "rowsOlderThanStored"],
            ),
        ),
        (
            "MasterKeyRotated",
            object(
                &[("rotated", boolean()), ("newMasterKey", string())],
                &["rotated"],
            ),
        ),
    ]
}

fn tecton_secrets() -> Vec<(&'static str, Schema)> {
    let assignment = object(
        &[
            (
                "resourceType",
                one_of_strings(&["RESOURCE_TYPE_SECRET_SCOPE"]),
            ),
            ("resourceId", string()),
            ("role", string()),
            ("principalType", string()),
            ("principalId", string()),
        ],
        &["role", "principalType", "principalId"],
    );
    vec![
        ("CreateScope", object(&[("scope", string())], &["scope"])),
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
            object(&[("assignments", array(assignment))], &["assignments"]),
        ),
        (
            "AssignedPrincipalsQuery",
            object(
                &[
                    ("resourceType", string()),
                    ("resourceId", string()),
                    ("roles", array(string())),
                    ("principalTypes", array(string())),
                ],
                &["resourceId"],
            ),
        ),
        (
            "AssignedRolesQuery",
            object(
                &[
                    ("principalType", string()),
                    ("principalId", string()),
                    ("resourceType", string()),
                    ("resourceIds", array(string())),
                    ("roles", array(string())),
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
        ("ScimBody", object(&[("schemas", array(string()))], &[])),
    ]
}

fn truefoundry() -> Vec<(&'static str, Schema)> {
    let key_value = object(
        &[("key", string()), ("value", nullable(Type::String))],
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
            object(
                &[
                    ("name", string()),
                    ("integrationId", nullable(Type::String)),
                    ("secrets", array(key_value.clone())),
                ],
                &["name"],
            ),
        ),
        (
            "UpsertSecretGroup",
            object(&[("manifest", any()), ("dryRun", boolean())], &["manifest"]),
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
            object(&[("name", string()), ("value", string())], &[]),
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
