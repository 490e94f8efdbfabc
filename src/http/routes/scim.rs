//! SCIM 2.0 at `/api/scim/v2`: Users, Groups and ServiceAccounts (list, search, create, get,
//! replace, patch, delete) and the discovery endpoints. Admin only: every handler takes
//! `ScimAdmin` first, so a non-admin is refused before any body is read. Every error is a SCIM
//! error.

use std::collections::HashMap;

use actix_web::http::header::{ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value as Json};

use super::super::auth::Admin;
use super::super::body::JsonBody;
use super::super::error::{ApiError, ErrorKind};
use super::super::extract::Query;
use super::super::wire::scim::{with_base_url, ScimHttpError, SCIM_CONTENT_TYPE};
use super::super::AppState;
use crate::echo::echo;
use crate::iam::directory::{ListQuery, ResourceKind, UpdateMode};
use crate::iam::scim::etag::{EntityTags, Preconditions};
use crate::iam::scim::filter::parse_filter;
use crate::iam::scim::resource::{attribute_list, project};
use crate::iam::scim::schema::{self, ResourceSchema};
use crate::iam::scim::{ScimError, ScimErrorKind};

const BASE: &str = "/api/scim/v2";
/// The largest page a list returns (also published as `filter.maxResults`).
const MAX_RESULTS: usize = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(BASE)
            .service(
                get_only("/ServiceProviderConfig").route(web::get().to(service_provider_config)),
            )
            .service(get_only("/ResourceTypes").route(web::get().to(resource_types)))
            .service(get_only("/ResourceTypes/{id}").route(web::get().to(resource_type)))
            .service(get_only("/Schemas").route(web::get().to(schemas)))
            .service(get_only("/Schemas/{id}").route(web::get().to(schema_by_id)))
            .service(
                web::resource("/Bulk")
                    .route(web::post().to(bulk))
                    .default_service(web::to(method_not_allowed)),
            )
            .service(
                web::resource("/.search")
                    .route(web::post().to(search))
                    .default_service(web::to(method_not_allowed)),
            )
            .route("/{resource}/.search", web::post().to(search))
            .route("/{resource}", web::get().to(list))
            .route("/{resource}", web::post().to(create))
            .route("/{resource}/{id}", web::get().to(get))
            .route("/{resource}/{id}", web::put().to(update))
            .route("/{resource}/{id}", web::patch().to(update))
            .route("/{resource}/{id}", web::delete().to(delete))
            .default_service(web::to(fallback)),
    );
}

/// A discovery resource: GET only, anything else 405.
fn get_only(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(
    _: ScimAdmin,
    request: HttpRequest,
) -> Result<HttpResponse, ScimHttpError> {
    Err(wrong_method(&request))
}

fn wrong_method(request: &HttpRequest) -> ScimHttpError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} is not allowed on {}", request.method(), request.path()),
    )
    .into()
}

fn base_url(request: &HttpRequest) -> String {
    let info = request.connection_info();
    format!("{}://{}{BASE}", info.scheme(), info.host())
}

/// An authenticated admin, refused in SCIM's error shape.
type ScimAdmin = Admin<ScimHttpError>;

/// Query parameters, refused in SCIM's error shape.
type ScimQuery = Query<HashMap<String, String>, ScimHttpError>;

fn scim_json(status: StatusCode, body: &Json) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(SCIM_CONTENT_TYPE)
        .body(body.to_string())
}

fn kind_of(segment: &str) -> Result<ResourceKind, ScimHttpError> {
    match segment {
        "Users" => Ok(ResourceKind::User),
        "Groups" => Ok(ResourceKind::Group),
        "ServiceAccounts" => Ok(ResourceKind::ServiceAccount),
        other => Err(ApiError::new(
            ErrorKind::NotFound,
            format!("no SCIM resource type at /{}", echo(other)),
        )
        .into()),
    }
}

/// A resource with its references made absolute, its `ETag` (and `Location` when created).
fn resource_response(status: StatusCode, request: &HttpRequest, resource: Json) -> HttpResponse {
    let resource = with_base_url(resource, &base_url(request));
    let mut response = HttpResponse::build(status);
    response.content_type(SCIM_CONTENT_TYPE);
    if let Some(version) = resource["meta"]["version"].as_str() {
        response.insert_header((ETAG, version.to_string()));
    }
    if status == StatusCode::CREATED {
        if let Some(location) = resource["meta"]["location"].as_str() {
            response.insert_header((LOCATION, location.to_string()));
        }
    }
    response.body(resource.to_string())
}

/// SCIM bodies are small (a user, a group's member list); anything near a megabyte is hostile.
const MAX_SCIM_BODY_BYTES: usize = 256 * 1024;

async fn read_body(body: JsonBody) -> Result<Json, ScimHttpError> {
    Ok(body.read(MAX_SCIM_BODY_BYTES).await?)
}

fn list_response(total: usize, start_index: usize, resources: Vec<Json>) -> Json {
    json!({
        "schemas": [schema::LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

async fn service_provider_config(
    _: ScimAdmin,
    request: HttpRequest,
) -> Result<HttpResponse, ScimHttpError> {
    let config = with_base_url(schema::service_provider_config(), &base_url(&request));
    Ok(scim_json(StatusCode::OK, &config))
}

async fn resource_types(_: ScimAdmin, request: HttpRequest) -> Result<HttpResponse, ScimHttpError> {
    let base = base_url(&request);
    let all: Vec<Json> = schema::ALL
        .iter()
        .map(|s| with_base_url(schema::resource_type_json(s), &base))
        .collect();
    Ok(scim_json(StatusCode::OK, &list_response(all.len(), 1, all)))
}

fn find_schema(
    matches: impl Fn(&ResourceSchema) -> bool,
    what: &str,
) -> Result<&'static ResourceSchema, ScimHttpError> {
    schema::ALL
        .into_iter()
        .find(|s| matches(s))
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no {what}")).into())
}

async fn resource_type(
    _: ScimAdmin,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimHttpError> {
    let found = find_schema(
        |s| s.resource_type == id.as_str(),
        &format!("resource type `{}`", echo(&id)),
    )?;
    let resource_type = with_base_url(schema::resource_type_json(found), &base_url(&request));
    Ok(scim_json(StatusCode::OK, &resource_type))
}

async fn schemas(_: ScimAdmin, request: HttpRequest) -> Result<HttpResponse, ScimHttpError> {
    let base = base_url(&request);
    let all: Vec<Json> = schema::all_schemas()
        .into_iter()
        .map(|s| with_base_url(s, &base))
        .collect();
    Ok(scim_json(StatusCode::OK, &list_response(all.len(), 1, all)))
}

async fn schema_by_id(
    _: ScimAdmin,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimHttpError> {
    let found = schema::all_schemas()
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no schema `{}`", echo(&id))))?;
    Ok(scim_json(
        StatusCode::OK,
        &with_base_url(found, &base_url(&request)),
    ))
}

/// The list parameters, from a query string or a `.search` body.
struct ListParameters {
    filter: Option<String>,
    start_index: usize,
    count: Option<usize>,
    sort_by: Option<String>,
    descending: bool,
    attributes: Vec<String>,
    excluded: Vec<String>,
}

fn number(value: Option<&Json>, name: &str) -> Result<Option<i64>, ScimHttpError> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => n.as_i64().map(Some).ok_or_else(|| bad_value(name)),
        Some(Json::String(s)) => s.trim().parse().map(Some).map_err(|_| bad_value(name)),
        Some(_) => Err(bad_value(name)),
    }
}

fn bad_value(name: &str) -> ScimHttpError {
    ScimError::new(
        ScimErrorKind::InvalidValue,
        format!("`{name}` must be an integer"),
    )
    .into()
}

impl ListParameters {
    fn from_json(object: &Json) -> Result<ListParameters, ScimHttpError> {
        let text = |name: &str| {
            crate::iam::scim::filter::get_ci(object, name)
                .and_then(|v| v.as_str().map(str::to_string))
        };
        let list = |name: &str| match crate::iam::scim::filter::get_ci(object, name) {
            Some(Json::Array(items)) => items
                .iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect::<Vec<_>>()
                .join(","),
            Some(Json::String(s)) => s.clone(),
            _ => String::new(),
        };
        let sort_order = text("sortOrder").unwrap_or_default().to_ascii_lowercase();
        if !sort_order.is_empty() && sort_order != "ascending" && sort_order != "descending" {
            return Err(ScimError::new(
                ScimErrorKind::InvalidValue,
                "`sortOrder` must be ascending or descending",
            )
            .into());
        }
        let start_index = number(
            crate::iam::scim::filter::get_ci(object, "startIndex"),
            "startIndex",
        )?
        .unwrap_or(1)
        .max(1) as usize;
        let count = number(crate::iam::scim::filter::get_ci(object, "count"), "count")?
            .map(|c| (c.max(0) as usize).min(MAX_RESULTS));
        Ok(ListParameters {
            filter: text("filter"),
            start_index,
            count,
            sort_by: text("sortBy"),
            descending: sort_order == "descending",
            attributes: attribute_names("attributes", Some(&list("attributes")))?,
            excluded: attribute_names("excludedAttributes", Some(&list("excludedAttributes")))?,
        })
    }
}

/// Runs a list over some resource types, paging over their concatenation.
async fn run_list(
    state: &AppState,
    request: &HttpRequest,
    kinds: &[ResourceKind],
    parameters: ListParameters,
) -> Result<HttpResponse, ScimHttpError> {
    let filter = match &parameters.filter {
        Some(text) => Some(parse_filter(text).map_err(|e| {
            ScimError::new(ScimErrorKind::InvalidFilter, format!("invalid filter: {e}"))
        })?),
        None => None,
    };
    let base = base_url(request);
    let mut total = 0;
    let mut matching = Vec::new();
    for kind in kinds {
        let query = ListQuery {
            kind: *kind,
            filter: filter.clone(),
            sort_by: parameters.sort_by.clone(),
            descending: parameters.descending,
        };
        let resources = state.directory.list(query).await?;
        total += resources.len();
        matching.extend(resources);
    }
    let page: Vec<Json> = matching
        .into_iter()
        .skip(parameters.start_index - 1)
        .take(parameters.count.unwrap_or(MAX_RESULTS))
        .map(|r| {
            let projected = project(r, &parameters.attributes, &parameters.excluded);
            with_base_url(projected, &base)
        })
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &list_response(total, parameters.start_index, page),
    ))
}

async fn list(
    _: ScimAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    resource: web::Path<String>,
    query: ScimQuery,
) -> Result<HttpResponse, ScimHttpError> {
    let kind = kind_of(&resource)?;
    let object: serde_json::Map<String, Json> = query
        .into_inner()
        .into_iter()
        .map(|(k, v)| (k, Json::String(v)))
        .collect();
    run_list(
        &state,
        &request,
        &[kind],
        ListParameters::from_json(&Json::Object(object))?,
    )
    .await
}

/// `POST /{resource}/.search`, or `POST /.search` over every resource type.
async fn search(
    _: ScimAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ScimHttpError> {
    // Not an `Option<web::Path<_>>`: on `/.search` its failed extraction logs the request
    // path at debug level, and a log line never holds a path.
    let kinds = match request.match_info().get("resource") {
        Some(resource) => vec![kind_of(resource)?],
        None => vec![
            ResourceKind::User,
            ResourceKind::Group,
            ResourceKind::ServiceAccount,
        ],
    };
    let body = read_body(body).await?;
    run_list(&state, &request, &kinds, ListParameters::from_json(&body)?).await
}

async fn create(
    admin: ScimAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    resource: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, ScimHttpError> {
    let kind = kind_of(&resource)?;
    let body = read_body(body).await?;
    let created = state.directory.create(kind, body, admin.0.to_ref()).await?;
    Ok(resource_response(StatusCode::CREATED, &request, created))
}

/// The most names `attributes` or `excludedAttributes` may list: many times every attribute
/// and sub-attribute Quiver has; a list's projection costs names x attributes per resource.
const MAX_ATTRIBUTE_NAMES: usize = 100;

/// A projection list (`attributes=a,b.c`), refused over [`MAX_ATTRIBUTE_NAMES`].
fn attribute_names(field: &str, text: Option<&str>) -> Result<Vec<String>, ScimHttpError> {
    let names = attribute_list(text);
    if names.len() > MAX_ATTRIBUTE_NAMES {
        return Err(ScimError::new(
            ScimErrorKind::InvalidValue,
            format!(
                "`{field}` lists {} names; the limit is {MAX_ATTRIBUTE_NAMES}",
                names.len()
            ),
        )
        .into());
    }
    Ok(names)
}

/// `attributes` / `excludedAttributes` of a query string.
fn projection(
    query: &HashMap<String, String>,
) -> Result<(Vec<String>, Vec<String>), ScimHttpError> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    Ok((
        attribute_names("attributes", get("attributes"))?,
        attribute_names("excludedAttributes", get("excludedAttributes"))?,
    ))
}

async fn get(
    _: ScimAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: ScimQuery,
) -> Result<HttpResponse, ScimHttpError> {
    let (resource, id) = path.into_inner();
    let found = state.directory.get(kind_of(&resource)?, id).await?;
    if let (Some(tags), Some(version)) = (
        preconditions(&request).if_none_match,
        found["meta"]["version"].as_str(),
    ) {
        if tags.contains(version) {
            return Ok(HttpResponse::NotModified()
                .insert_header((ETAG, version.to_string()))
                .finish());
        }
    }
    let (attributes, excluded) = projection(&query)?;
    Ok(resource_response(
        StatusCode::OK,
        &request,
        project(found, &attributes, &excluded),
    ))
}

/// PUT replaces a resource, PATCH applies operations to it.
async fn update(
    _: ScimAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: JsonBody,
) -> Result<HttpResponse, ScimHttpError> {
    let (resource, id) = path.into_inner();
    let kind = kind_of(&resource)?;
    let mode = if request.method() == Method::PATCH {
        UpdateMode::Patch
    } else {
        UpdateMode::Replace
    };
    let body = read_body(body).await?;
    let updated = state
        .directory
        .update(kind, id, body, mode, preconditions(&request))
        .await?;
    Ok(resource_response(StatusCode::OK, &request, updated))
}

async fn delete(
    _: ScimAdmin,
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ScimHttpError> {
    let (resource, id) = path.into_inner();
    state
        .directory
        .delete(kind_of(&resource)?, id, preconditions(&request))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `If-Match` / `If-None-Match`, checked by the directory against the version it changes.
fn preconditions(request: &HttpRequest) -> Preconditions {
    let tags = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(EntityTags::parse)
    };
    Preconditions {
        if_match: tags(IF_MATCH),
        if_none_match: tags(IF_NONE_MATCH),
    }
}

/// Bulk operations are not implemented (`bulk.supported: false`): 501, as RFC 7644 asks.
async fn bulk(_: ScimAdmin) -> Result<HttpResponse, ScimHttpError> {
    Err(ApiError::new(
        ErrorKind::NotImplemented,
        "bulk operations are not supported; send each operation as its own request",
    )
    .into())
}

/// Unknown paths are 404; known paths with another method are 405.
async fn fallback(_: ScimAdmin, request: HttpRequest) -> Result<HttpResponse, ScimHttpError> {
    let path = request.path().trim_start_matches(BASE);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let known = match segments.as_slice() {
        [first] | [first, _] => kind_of(first).is_ok(),
        _ => false,
    };
    if known {
        Err(wrong_method(&request))
    } else {
        Err(ApiError::new(
            ErrorKind::NotFound,
            format!("no SCIM endpoint at {}", request.path()),
        )
        .into())
    }
}
