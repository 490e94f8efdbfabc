//! The SCIM error response (RFC 7644 §3.12): every non-2xx answer under `/api/scim/v2`, with
//! `status` as a string, an optional `scimType` and `Content-Type: application/scim+json`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::error::{ApiError, ErrorKind};
use crate::iam::scim::{schema, ScimError, ScimErrorKind};
use crate::iam::AuthError;

pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

#[derive(Debug)]
pub struct ScimHttpError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl std::fmt::Display for ScimHttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

impl ScimHttpError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> ScimHttpError {
        ScimHttpError {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
}

impl ResponseError for ScimHttpError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = json!({"schemas": [schema::ERROR], "status": self.status.as_u16().to_string(), "detail": self.detail});
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = json!(scim_type);
        }
        HttpResponse::build(self.status)
            .content_type(SCIM_CONTENT_TYPE)
            .body(body.to_string())
    }
}

impl From<ScimError> for ScimHttpError {
    fn from(error: ScimError) -> ScimHttpError {
        let status = match error.kind {
            ScimErrorKind::Uniqueness => StatusCode::CONFLICT,
            ScimErrorKind::NotFound => StatusCode::NOT_FOUND,
            ScimErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ScimErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ScimErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        ScimHttpError::new(status, error.kind.scim_type(), error.detail)
    }
}

impl From<AuthError> for ScimHttpError {
    fn from(error: AuthError) -> ScimHttpError {
        ApiError::from(error).into()
    }
}

/// Body-reading and JSON errors from the shared helpers keep their status, in SCIM's shape.
impl From<ApiError> for ScimHttpError {
    fn from(error: ApiError) -> ScimHttpError {
        let scim_type = (error.kind == ErrorKind::InvalidArgument).then_some("invalidSyntax");
        ScimHttpError::new(error.kind.status(), scim_type, error.message)
    }
}
