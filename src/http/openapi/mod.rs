//! `GET /openapi.json`: the OpenAPI 3.1 document of every route the API address mounts, built
//! with utoipa's typed model from one table ([`operations`]) that mirrors the routes modules'
//! `configure` functions. A test walks the actix application's own resource map and the
//! server's answers to every method, so a route added without its operation here fails the
//! build's tests; schemathesis checks the answers against the schemas. The document is open
//! to everyone, like `/health`: it describes the APIs and holds nothing about their data.

mod schemas;
#[cfg(test)]
mod tests;

use actix_web::{web, HttpResponse};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths,
    ResponseBuilder, ResponsesBuilder,
};

use serde_json::{json, Value as Json};
use utoipa::openapi::schema::Schema;

use schemas::{integer, one_of_strings, reference, string, tinybird_name, vault_name};

/// The document, encoded once per worker.
struct Document(String);

pub fn configure(cfg: &mut web::ServiceConfig) {
    let json = encoded(document()).to_string();
    cfg.app_data(web::Data::new(Document(json)))
        .route("/openapi.json", web::get().to(serve));
}

async fn serve(document: web::Data<Document>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.0.clone())
}

/// The document as JSON. utoipa 5.5 writes a link's `operationId` as `operation_id` (its
/// `Link` lacks the camelCase renaming its other types have), which OpenAPI tools ignore:
/// the links are renamed here.
fn encoded(document: OpenApi) -> Json {
    let mut json = serde_json::to_value(document).expect("an OpenAPI document always encodes");
    let operations = json["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut());
    let answers = operations
        .filter_map(Json::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation["responses"].as_object_mut())
        .flat_map(|responses| responses.values_mut());
    for answer in answers {
        let links = answer.get_mut("links").and_then(Json::as_object_mut);
        for link in links.into_iter().flat_map(|links| links.values_mut()) {
            let link = link.as_object_mut().expect("a link is an object");
            if let Some(id) = link.remove("operation_id") {
                link.insert("operationId".to_string(), id);
            }
        }
    }
    json
}

/// Who answers a route: how its callers authenticate and how it words an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// Health probes and this document: no key.
    Open,
    /// The Feature Service, `/admin`, `/metrics`, the secrets and authorization services.
    Tecton,
    /// The Stream Ingest API (Tecton's key, its own error shape).
    Ingest,
    /// The SDK's gRPC-over-HTTP proxy: the key travels inside the envelope.
    Proxy,
    Scim,
    TrueFoundry,
    Tinybird,
}

impl Family {
    fn tag(self) -> &'static str {
        match self {
            Family::Open => "operations",
            Family::Tecton => "tecton",
            Family::Ingest => "ingest",
            Family::Proxy => "proxy",
            Family::Scim => "scim",
            Family::TrueFoundry => "truefoundry",
            Family::Tinybird => "tinybird",
        }
    }

    /// Alternatives: any one of them authenticates.
    fn security(self) -> Vec<SecurityRequirement> {
        let scheme = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
        match self {
            Family::Open | Family::Proxy => Vec::new(),
            Family::Tecton | Family::Ingest | Family::Scim | Family::TrueFoundry => {
                vec![scheme(TECTON_KEY), scheme(BEARER)]
            }
            Family::Tinybird => vec![scheme(BEARER), scheme(TINYBIRD_TOKEN)],
        }
    }

    fn error_schema(self) -> &'static str {
        match self {
            Family::Open | Family::Tecton | Family::Proxy => "TectonError",
            Family::Ingest => "IngestError",
            Family::Scim => "ScimError",
            Family::TrueFoundry => "TrueFoundryError",
            Family::Tinybird => "TinybirdError",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Family::Scim => "application/scim+json",
            _ => "application/json",
        }
    }
}

const TECTON_KEY: &str = "TectonKey";
const BEARER: &str = "Bearer";
const TINYBIRD_TOKEN: &str = "TinybirdToken";

/// One method on one path.
struct Operation {
    method: HttpMethod,
    path: String,
    family: Family,
    summary: &'static str,
    /// The request body's schema, if the operation reads one.
    body: Option<&'static str>,
    /// The success status and its body's schema (`None`: no body).
    answer: (u16, Option<&'static str>),
    query: &'static [&'static str],
    /// The success body's media type, when it is not the family's.
    answer_type: Option<&'static str>,
    /// The request body's media types, when they are not the family's.
    body_types: &'static [&'static str],
    /// Operations that take what a successful answer names (OpenAPI links, which
    /// schemathesis's stateful phase follows: create a resource, then read, change, delete it).
    follow: Vec<Follow>,
}

/// An OpenAPI link: the operation at `method path`, its parameters as runtime expressions
/// (`$response.body#/id`, `$request.path.scope`).
struct Follow {
    method: HttpMethod,
    path: String,
    parameters: &'static [(&'static str, &'static str)],
}

impl Operation {
    fn new(
        method: HttpMethod,
        path: impl Into<String>,
        family: Family,
        summary: &'static str,
    ) -> Operation {
        Operation {
            method,
            path: path.into(),
            family,
            summary,
            body: None,
            answer: (200, None),
            query: &[],
            answer_type: None,
            body_types: &[],
            follow: Vec::new(),
        }
    }

    /// Links from the success answer to each method on `path`.
    fn then(
        mut self,
        methods: &[HttpMethod],
        path: impl Into<String>,
        parameters: &'static [(&'static str, &'static str)],
    ) -> Operation {
        let path = path.into();
        for method in methods {
            self.follow.push(Follow {
                method: method.clone(),
                path: path.clone(),
                parameters,
            });
        }
        self
    }

    fn body(mut self, schema: &'static str) -> Operation {
        self.body = Some(schema);
        self
    }

    /// A body in other media types than the family's (JSON Lines, a form).
    fn body_as(mut self, media_types: &'static [&'static str], schema: &'static str) -> Operation {
        self.body = Some(schema);
        self.body_types = media_types;
        self
    }

    fn answers(mut self, status: u16, schema: &'static str) -> Operation {
        self.answer = (status, Some(schema));
        self
    }

    fn answers_text(mut self, media_type: &'static str) -> Operation {
        self.answer = (200, Some("Text"));
        self.answer_type = Some(media_type);
        self
    }

    fn answers_nothing(mut self, status: u16) -> Operation {
        self.answer = (status, None);
        self
    }

    fn query(mut self, names: &'static [&'static str]) -> Operation {
        self.query = names;
        self
    }

    fn build(&self) -> utoipa::openapi::path::Operation {
        let family = self.family;
        let content = |schema: &str| {
            ContentBuilder::new()
                .schema(Some(reference(schema)))
                .build()
        };
        let mut answer = ResponseBuilder::new().description(self.summary);
        if let (_, Some(schema)) = self.answer {
            let media_type = self.answer_type.unwrap_or(family.content_type());
            answer = answer.content(media_type, content(schema));
        }
        for follow in &self.follow {
            let mut link =
                LinkBuilder::new().operation_id(operation_id(&follow.method, &follow.path));
            for (name, expression) in follow.parameters {
                link = link.parameter(*name, *expression);
            }
            answer = answer.link(operation_id(&follow.method, &follow.path), link.build());
        }
        let mut responses = ResponsesBuilder::new()
            .response(self.answer.0.to_string(), answer.build())
            .response(
                "default",
                ResponseBuilder::new()
                    .description("an error, in the family's shape")
                    .content(family.content_type(), content(family.error_schema()))
                    .build(),
            );
        if let Some(extra) = self.extra_answer() {
            responses = responses.response(extra.0, extra.1);
        }
        let mut operation = OperationBuilder::new()
            .operation_id(Some(operation_id(&self.method, &self.path)))
            .tag(family.tag())
            .summary(Some(self.summary))
            .responses(responses.build())
            .securities(Some(family.security()));
        for name in path_parameters(&self.path) {
            let (schema, example) = path_parameter(name);
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(schemas::required(true))
                    .schema(Some(schema))
                    .example(example),
            );
        }
        for name in self.query {
            let schema = if ["limit", "offset", "startIndex", "count"].contains(name) {
                integer()
            } else {
                string()
            };
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(schemas::required(false))
                    .schema(Some(schema)),
            );
        }
        if let Some(schema) = self.body {
            let mut body = RequestBodyBuilder::new().required(Some(schemas::required(true)));
            let family_type = [family.content_type()];
            let media_types = match self.body_types {
                [] => &family_type[..],
                listed => listed,
            };
            for media_type in media_types {
                body = body.content(*media_type, content(schema));
            }
            operation = operation.request_body(Some(body.build()));
        }
        operation.build()
    }

    /// The answers beside success and errors: `/readyz`'s 503 with a reason, SCIM's 304 to
    /// a matching `If-None-Match`.
    fn extra_answer(&self) -> Option<(&'static str, utoipa::openapi::Response)> {
        let family = self.family;
        match (self.family, self.path.as_str()) {
            (Family::Open, "/readyz") => Some((
                "503",
                ResponseBuilder::new()
                    .description("still starting, or a journal refuses writes")
                    .content(
                        family.content_type(),
                        ContentBuilder::new()
                            .schema(Some(reference("Health")))
                            .build(),
                    )
                    .build(),
            )),
            (Family::Scim, path) if path.ends_with("/{id}") && self.method == HttpMethod::Get => {
                Some((
                    "304",
                    ResponseBuilder::new()
                        .description("the resource still has the `If-None-Match` version")
                        .build(),
                ))
            }
            _ => None,
        }
    }
}

/// A path parameter's schema, and a value the demo's data has (what schemathesis tries first).
fn path_parameter(name: &str) -> (Schema, Option<Json>) {
    let (schema, example) = match name {
        "resource" => {
            let kinds = one_of_strings(&["Users", "Groups", "ServiceAccounts"]);
            return (kinds, None);
        }
        "workspace" => (string(), "prod"),
        "service" => (string(), "user_risk_service"),
        "view" => (string(), "user_profile"),
        "scope" => (vault_name(), "schemathesis"),
        "key" => (vault_name(), "token"),
        "name" => (tinybird_name(), "schemathesis_secret"),
        "file" => (string(), "index.html"),
        _ => return (string(), None),
    };
    (schema, Some(json!(example)))
}

/// `post__api_scim_v2__resource_` for `POST /api/scim/v2/{resource}`: one character for
/// each, so that `/v0/secrets` and `/v0/secrets/` stay apart.
fn operation_id(method: &HttpMethod, path: &str) -> String {
    let method = serde_json::to_value(method).expect("a method encodes");
    let method = method.as_str().expect("a method is a string");
    let path: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{method}_{path}")
}

/// The `{name}` segments of a path, in order.
fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Every operation of the API address, in the order the routes modules register them.
fn operations() -> Vec<Operation> {
    use Family::{Ingest, Open, Proxy, Tecton};
    use HttpMethod::{Get, Post};
    let mut all = vec![
        Operation::new(Get, "/openapi.json", Open, "this document").answers(200, "OpenApiDocument"),
        Operation::new(Get, "/health", Open, "liveness, with the journals' state")
            .answers(200, "Health"),
        Operation::new(Get, "/healthz", Open, "the process is alive").answers(200, "Health"),
        Operation::new(
            Get,
            "/readyz",
            Open,
            "recovery is done and journals accept writes",
        )
        .answers(200, "Health"),
        Operation::new(
            Get,
            "/metrics",
            Tecton,
            "Prometheus text format 0.0.4 (a viewer's key; open on server.metrics_address)",
        )
        .answers_text(crate::metrics::CONTENT_TYPE),
    ];
    let feature_service = [
        ("get-features", "GetFeaturesResponse", "features of one row"),
        (
            "get-features-batch",
            "GetFeaturesBatchResponse",
            "features of many rows",
        ),
    ];
    for (call, answer, summary) in feature_service {
        all.push(
            Operation::new(
                Post,
                format!("/api/v1/feature-service/{call}"),
                Tecton,
                summary,
            )
            .body("FeatureServiceRequest")
            .answers(200, answer),
        );
    }
    all.extend([
        Operation::new(
            Post,
            "/api/v1/feature-service/metadata",
            Tecton,
            "a feature service's join keys, request context and features",
        )
        .body("FeatureServiceRequest")
        .answers(200, "FeatureServiceMetadata"),
        Operation::new(
            Post,
            "/api/v1/feature-service/get-feature-service-state",
            Tecton,
            "Tecton's service state: Quiver has none to report and answers {}",
        )
        .body("FeatureServiceRequest")
        .answers(200, "Empty"),
        Operation::new(
            Post,
            "/api/v1/feature-service/query-features",
            Tecton,
            "partial join keys: not supported (Tecton's UNIMPLEMENTED, 501)",
        )
        .body("FeatureServiceRequest")
        .answers(501, "TectonError"),
    ]);
    let v2 = "/api/v2/workspaces/{workspace}/feature-services/{service}";
    for (call, answer, summary) in feature_service {
        all.push(
            Operation::new(Post, format!("{v2}/{call}"), Tecton, summary)
                .body("FeatureServiceRequest")
                .answers(200, answer),
        );
    }
    all.push(
        Operation::new(
            Get,
            format!("{v2}/metadata"),
            Tecton,
            "a feature service's metadata",
        )
        .answers(200, "FeatureServiceMetadata"),
    );
    for path in ["/ingest", "/api/v1/ingest"] {
        all.push(
            Operation::new(
                Post,
                path,
                Ingest,
                "write (or dry-run) records of push sources",
            )
            .body("IngestRequest")
            .answers(200, "IngestResponse"),
        );
    }
    all.extend(admin());
    all.extend(scim());
    for base in ["/api/v1/secrets-service", "/v1/secrets-service"] {
        all.extend(tecton_secrets(base));
    }
    let authorization = "/api/v1/authorization-service";
    all.extend(role_assignments(authorization));
    for path in ["/api/proxy", "/proxy"] {
        all.push(
            Operation::new(
                Post,
                path,
                Proxy,
                "the Tecton SDK's gRPC-over-HTTP envelope (the key in metadata.authorization)",
            )
            .body("ProxyEnvelope")
            .answers(200, "ProxyAnswer"),
        );
    }
    all.extend(truefoundry());
    for (base, list) in [("/v0/secrets", "secrets"), ("/v0/variables", "variables")] {
        all.extend(tinybird(base, list));
    }
    all.extend(console());
    all
}

/// The operator console: its files (open: they hold no data) and the JSON its pages read.
fn console() -> Vec<Operation> {
    use Family::{Open, Tecton};
    use HttpMethod::Get;
    vec![
        Operation::new(Get, "/console", Open, "redirects to /console/").answers_nothing(308),
        Operation::new(
            Get,
            "/console/{file}",
            Open,
            "a file of the console (HTML, CSS, JS)",
        )
        .answers_text("text/*"),
        Operation::new(
            Get,
            "/console/api/repository",
            Tecton,
            "the repository, of the workspaces a viewer may see",
        )
        .answers(200, "Repository"),
        Operation::new(
            Get,
            "/console/api/store",
            Tecton,
            "rows, bytes and freshness per view; rows and arena bytes per shard",
        )
        .answers(200, "ConsoleStore"),
        Operation::new(
            Get,
            "/console/api/requests",
            Tecton,
            "the last hour's request rate and p50/p99",
        )
        .answers(200, "ConsoleRequests"),
    ]
}

fn admin() -> Vec<Operation> {
    use Family::Tecton;
    use HttpMethod::{Get, Post};
    vec![
        Operation::new(
            Post,
            "/admin/workspaces/{workspace}/feature-views/{view}/rows",
            Tecton,
            "load rows into a batch feature view (a newer stored row wins)",
        )
        .body_as(&["application/x-ndjson"], "Rows")
        .answers(200, "RowsLoaded"),
        Operation::new(
            Post,
            "/admin/secrets/rotate-key",
            Tecton,
            "seal every secret under a new master key",
        )
        .answers(200, "MasterKeyRotated"),
        Operation::new(
            Get,
            "/admin/repository",
            Tecton,
            "the loaded feature repository",
        )
        .answers(200, "Repository"),
        Operation::new(
            Post,
            "/admin/repository",
            Tecton,
            "apply a repository: validated, planned, swapped in whole (409: stale or losing data)",
        )
        .body("ApplyRepository")
        .answers(200, "RepositoryApplied"),
        Operation::new(Post, "/admin/snapshots", Tecton, "start a snapshot")
            .answers(202, "SnapshotStarted"),
        Operation::new(Get, "/admin/snapshots", Tecton, "the snapshots on disk")
            .answers(200, "SnapshotList"),
    ]
}

fn scim() -> Vec<Operation> {
    use Family::Scim;
    use HttpMethod::{Delete, Get, Patch, Post, Put};
    let base = "/api/scim/v2";
    let list_query: &[&str] = &[
        "filter",
        "startIndex",
        "count",
        "sortBy",
        "sortOrder",
        "attributes",
        "excludedAttributes",
    ];
    let projection: &[&str] = &["attributes", "excludedAttributes"];
    let get = |path: &str, summary, answer| {
        Operation::new(Get, format!("{base}{path}"), Scim, summary).answers(200, answer)
    };
    vec![
        get(
            "/ServiceProviderConfig",
            "what this SCIM server supports",
            "ScimResource",
        ),
        get("/ResourceTypes", "the resource types", "ScimListResponse"),
        get("/ResourceTypes/{id}", "one resource type", "ScimResource"),
        get("/Schemas", "the schemas", "ScimListResponse"),
        get("/Schemas/{id}", "one schema", "ScimResource"),
        Operation::new(
            Post,
            format!("{base}/Bulk"),
            Scim,
            "bulk operations: not supported (RFC 7644's 501)",
        )
        .body("ScimBody")
        .answers(501, "ScimError"),
        Operation::new(Post, format!("{base}/.search"), Scim, "search every type")
            .body("ScimBody")
            .answers(200, "ScimListResponse"),
        Operation::new(
            Post,
            format!("{base}/{{resource}}/.search"),
            Scim,
            "search one type",
        )
        .body("ScimBody")
        .answers(200, "ScimListResponse"),
        get(
            "/{resource}",
            "list Users, Groups or ServiceAccounts",
            "ScimListResponse",
        )
        .query(list_query),
        Operation::new(Post, format!("{base}/{{resource}}"), Scim, "create")
            .body("ScimNewResource")
            .answers(201, "ScimResource")
            .then(
                &[Get, Put, Patch, Delete],
                format!("{base}/{{resource}}/{{id}}"),
                &[
                    ("resource", "$request.path.resource"),
                    ("id", "$response.body#/id"),
                ],
            ),
        get("/{resource}/{id}", "one resource", "ScimResource").query(projection),
        Operation::new(Put, format!("{base}/{{resource}}/{{id}}"), Scim, "replace")
            .body("ScimNewResource")
            .answers(200, "ScimResource"),
        Operation::new(Patch, format!("{base}/{{resource}}/{{id}}"), Scim, "patch")
            .body("ScimBody")
            .answers(200, "ScimResource"),
        Operation::new(
            Delete,
            format!("{base}/{{resource}}/{{id}}"),
            Scim,
            "delete",
        )
        .answers_nothing(204),
    ]
}

fn tecton_secrets(base: &str) -> Vec<Operation> {
    use Family::Tecton;
    use HttpMethod::{Delete, Get, Post, Put};
    let at = |path: &str| format!("{base}{path}");
    let key = at("/scopes/{scope}/keys/{key}");
    let mut all = vec![
        Operation::new(Get, at("/scopes"), Tecton, "the secret scopes").answers(200, "ScopeList"),
        Operation::new(
            Post,
            at("/scopes"),
            Tecton,
            "create a scope (named in the body)",
        )
        .body("CreateScope")
        .answers(200, "Empty"),
        Operation::new(Post, at("/scopes/{scope}"), Tecton, "create a scope")
            .answers(200, "Empty")
            .then(
                &[Put, Get, Delete],
                key.clone(),
                &[("scope", "$request.path.scope")],
            )
            .then(
                &[Get],
                at("/scopes/{scope}/keys"),
                &[("scope", "$request.path.scope")],
            ),
        Operation::new(
            Delete,
            at("/scopes/{scope}"),
            Tecton,
            "delete a scope and its keys",
        )
        .answers(200, "Empty"),
        Operation::new(Get, at("/scopes/{scope}/keys"), Tecton, "a scope's keys")
            .answers(200, "KeyList"),
        Operation::new(Get, key.clone(), Tecton, "a secret's value").answers(200, "SecretValue"),
        Operation::new(Put, key.clone(), Tecton, "put a secret's value")
            .body("SecretValue")
            .answers(200, "Empty"),
        Operation::new(Post, key.clone(), Tecton, "put a secret's value")
            .body("SecretValue")
            .answers(200, "Empty"),
        Operation::new(Delete, key, Tecton, "delete a secret").answers(200, "Empty"),
        Operation::new(
            Post,
            at("/scopes/{scope}/assign-roles"),
            Tecton,
            "grant roles on this scope",
        )
        .body("Assignments")
        .answers(200, "Empty"),
        Operation::new(
            Post,
            at("/scopes/{scope}/unassign-roles"),
            Tecton,
            "revoke roles on this scope",
        )
        .body("Assignments")
        .answers(200, "Empty"),
    ];
    all.extend(role_assignments(base));
    all
}

/// The role calls the secrets service and the authorization service share.
fn role_assignments(base: &str) -> Vec<Operation> {
    use Family::Tecton;
    use HttpMethod::Post;
    vec![
        Operation::new(Post, format!("{base}/assign-roles"), Tecton, "grant roles")
            .body("Assignments")
            .answers(200, "Empty"),
        Operation::new(
            Post,
            format!("{base}/unassign-roles"),
            Tecton,
            "revoke roles",
        )
        .body("Assignments")
        .answers(200, "Empty"),
        Operation::new(
            Post,
            format!("{base}/get-assigned-principals"),
            Tecton,
            "who holds roles on a scope",
        )
        .body("AssignedPrincipalsQuery")
        .answers(200, "Assigned"),
        Operation::new(
            Post,
            format!("{base}/get-assigned-roles"),
            Tecton,
            "a principal's roles",
        )
        .body("AssignedRolesQuery")
        .answers(200, "Assigned"),
    ]
}

fn truefoundry() -> Vec<Operation> {
    use Family::TrueFoundry;
    use HttpMethod::{Delete, Get, Post, Put};
    let at = |path: &str| format!("/api/svc/v1{path}");
    vec![
        Operation::new(Get, at("/secret-groups"), TrueFoundry, "the secret groups")
            .query(&["limit", "offset", "fqn", "search"])
            .answers(200, "SecretGroupPage"),
        Operation::new(
            Post,
            at("/secret-groups"),
            TrueFoundry,
            "create a secret group",
        )
        .body("CreateSecretGroup")
        .answers(200, "SecretGroupAnswer")
        .then(
            &[Get, Put, Delete],
            at("/secret-groups/{id}"),
            &[("id", "$response.body#/data/id")],
        )
        .then(
            &[Get, Delete],
            at("/secrets/{id}"),
            &[("id", "$response.body#/data/associatedSecrets/0/id")],
        ),
        Operation::new(
            Put,
            at("/secret-groups"),
            TrueFoundry,
            "create or update a group from a manifest",
        )
        .body("UpsertSecretGroup")
        .answers(200, "SecretGroupAnswer"),
        Operation::new(
            Get,
            at("/secret-groups/{id}"),
            TrueFoundry,
            "one secret group",
        )
        .answers(200, "SecretGroupAnswer"),
        Operation::new(
            Put,
            at("/secret-groups/{id}"),
            TrueFoundry,
            "set a group's secrets",
        )
        .body("UpdateSecretGroup")
        .answers(200, "SecretGroupAnswer"),
        Operation::new(
            Delete,
            at("/secret-groups/{id}"),
            TrueFoundry,
            "delete a secret group",
        )
        .answers(200, "Empty"),
        Operation::new(Post, at("/secrets"), TrueFoundry, "list secrets")
            .body("ListSecrets")
            .answers(200, "SecretPage"),
        Operation::new(Get, at("/secrets/{id}"), TrueFoundry, "one secret")
            .answers(200, "SecretAnswer"),
        Operation::new(Delete, at("/secrets/{id}"), TrueFoundry, "delete a secret")
            .answers(200, "Deleted"),
    ]
}

/// Tinybird's CLIs send forms; its API also takes JSON (and the query string).
const TINYBIRD_BODY: &[&str] = &["application/x-www-form-urlencoded", "application/json"];

/// Tinybird's secrets at `base`, the list under `list` (`/v0/variables` is the CLI's path).
fn tinybird(base: &str, list: &'static str) -> Vec<Operation> {
    use Family::Tinybird;
    use HttpMethod::{Delete, Get, Post, Put};
    let summary = if list == "secrets" {
        "the secrets, under `secrets`"
    } else {
        "the secrets, under `variables`"
    };
    let mut all = Vec::new();
    for path in [base.to_string(), format!("{base}/")] {
        all.push(
            Operation::new(Get, path.clone(), Tinybird, summary).answers(200, "TinybirdSecretList"),
        );
        all.push(
            Operation::new(
                Post,
                path,
                Tinybird,
                "create a secret (form, JSON or query)",
            )
            .body_as(TINYBIRD_BODY, "TinybirdParameters")
            .answers(200, "TinybirdSecret")
            .then(
                &[Get, Put, Delete],
                format!("{base}/{{name}}"),
                &[("name", "$response.body#/name")],
            ),
        );
    }
    let named = format!("{base}/{{name}}");
    all.extend([
        Operation::new(Get, named.clone(), Tinybird, "one secret").answers(200, "TinybirdSecret"),
        Operation::new(Put, named.clone(), Tinybird, "change a secret's value")
            .body_as(TINYBIRD_BODY, "TinybirdParameters")
            .answers(200, "TinybirdSecret"),
        Operation::new(Delete, named, Tinybird, "delete a secret").answers(200, "TinybirdDeleted"),
    ]);
    all
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    for operation in operations() {
        paths.add_path_operation(
            &operation.path,
            vec![operation.method.clone()],
            operation.build(),
        );
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            TECTON_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Tecton-key <key>`: an API key (the admin key, or one a service account got)",
            ))),
        )
        .security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Bearer <key>`: the same API keys"))
                    .build(),
            ),
        )
        .security_scheme(
            TINYBIRD_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "`?token=<key>`, what Tinybird's CLIs send",
            ))),
        );
    for (name, schema) in schemas::components() {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Quiver")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(env!("CARGO_PKG_DESCRIPTION")))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}
