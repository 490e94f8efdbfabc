//! SCIM as sent: resources whose references (`meta.location`, a group's `$ref`) the directory
//! and the schema description give relative to the SCIM base URL, made absolute for the host the
//! client called; and the error response (RFC 7644 §3.12), every non-2xx answer under
//! `/api/scim/v2`: `status` as a string, an optional `scimType`, `Content-Type:
//! application/scim+json`. Only the body is SCIM's: the status is the error table's.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Value as Json};

use crate::http::error::{ApiError, ErrorKind};
use crate::iam::scim::{schema, ScimError, ScimErrorKind};
use crate::iam::AuthError;

/// `resource` with its references under `base_url` (`https://host/api/scim/v2`).
pub fn with_base_url(mut resource: Json, base_url: &str) -> Json {
    let absolute = |reference: &mut Json| {
        if let Json::String(path) = reference {
            *path = format!("{base_url}{path}");
        }
    };
    if let Some(location) = resource.pointer_mut("/meta/location") {
        absolute(location);
    }
    if let Some(Json::Array(groups)) = resource.get_mut("groups") {
        for group in groups {
            if let Some(reference) = group.get_mut("$ref") {
                absolute(reference);
            }
        }
    }
    resource
}

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

#[derive(Debug)]
pub struct ScimHttpError {
    error: ApiError,
    scim_type: Option<&'static str>,
}

impl std::fmt::Display for ScimHttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl ResponseError for ScimHttpError {
    fn status_code(&self) -> StatusCode {
        self.error.kind.status()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut body = json!({"schemas": [schema::ERROR], "status": status.as_u16().to_string(), "detail": self.error.message});
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type);
        }
        HttpResponse::build(status)
            .content_type(SCIM_CONTENT_TYPE)
            .body(body.to_string())
    }
}

/// RFC 7644's `scimType` of a SCIM error (none for those that only have a status).
fn scim_type(kind: ScimErrorKind) -> Option<&'static str> {
    match kind {
        ScimErrorKind::InvalidSyntax => Some("invalidSyntax"),
        ScimErrorKind::InvalidValue => Some("invalidValue"),
        ScimErrorKind::InvalidFilter => Some("invalidFilter"),
        ScimErrorKind::InvalidPath => Some("invalidPath"),
        ScimErrorKind::NoTarget => Some("noTarget"),
        ScimErrorKind::Mutability => Some("mutability"),
        ScimErrorKind::Uniqueness => Some("uniqueness"),
        ScimErrorKind::NotFound
        | ScimErrorKind::PreconditionFailed
        | ScimErrorKind::Internal
        | ScimErrorKind::Unavailable => None,
    }
}

impl From<ScimError> for ScimHttpError {
    fn from(error: ScimError) -> ScimHttpError {
        ScimHttpError {
            scim_type: scim_type(error.kind),
            error: error.into(),
        }
    }
}

impl From<AuthError> for ScimHttpError {
    fn from(error: AuthError) -> ScimHttpError {
        ApiError::from(error).into()
    }
}

/// Errors outside SCIM's own (a body or query string that does not parse, a body too large,
/// an unknown path): a 400 among them is `invalidSyntax`.
impl From<ApiError> for ScimHttpError {
    fn from(error: ApiError) -> ScimHttpError {
        ScimHttpError {
            scim_type: (error.kind == ErrorKind::InvalidArgument).then_some("invalidSyntax"),
            error,
        }
    }
}
