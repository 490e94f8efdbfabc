//! The one error type of the Tecton-style JSON APIs: every domain error maps to a kind, every kind
//! to an HTTP status and a gRPC code, and the body is always
//! `{"error": <message>, "code": <grpc code>, "message": <message>}` (Tecton's shape).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::iam::AuthError;
use crate::serving::ServingError;

/// What went wrong, independent of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    PayloadTooLarge,
    /// The body did not arrive within `server.body_read_timeout`.
    RequestTimeout,
    MethodNotAllowed,
    ResourceExhausted,
    /// The work did not finish within the budget the request set.
    DeadlineExceeded,
    Internal,
    /// Writes are refused until the server can repair its journal.
    Unavailable,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC status code Tecton puts in `code` (grpc-gateway's mapping).
    pub fn grpc_code(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument | ErrorKind::PayloadTooLarge => 3,
            ErrorKind::RequestTimeout | ErrorKind::DeadlineExceeded => 4,
            ErrorKind::NotFound => 5,
            ErrorKind::AlreadyExists => 6,
            ErrorKind::PermissionDenied => 7,
            ErrorKind::FailedPrecondition => 9,
            ErrorKind::ResourceExhausted => 8,
            ErrorKind::MethodNotAllowed => 12,
            ErrorKind::Internal => 13,
            ErrorKind::Unavailable => 14,
            ErrorKind::Unauthenticated => 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind.status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.kind.status()).json(
            json!({"error": self.message, "code": self.kind.grpc_code(), "message": self.message}),
        )
    }
}

impl From<ServingError> for ApiError {
    fn from(error: ServingError) -> ApiError {
        let kind = match &error {
            ServingError::BothLocators
            | ServingError::NoLocator
            | ServingError::MissingWorkspace
            | ServingError::MissingJoinKey(_)
            | ServingError::InvalidJoinKey { .. }
            | ServingError::MissingRequestContext(_)
            | ServingError::InvalidRequestContext { .. }
            | ServingError::UnexpectedRequestContext(_) => ErrorKind::InvalidArgument,
            ServingError::UnknownService { .. } | ServingError::UnknownServiceId(_) => {
                ErrorKind::NotFound
            }
            ServingError::LatencyBudgetExceeded => ErrorKind::DeadlineExceeded,
            ServingError::Store(_) | ServingError::CorruptRow(_) => ErrorKind::Internal,
        };
        if kind == ErrorKind::Internal {
            tracing::error!(%error, "serving failed");
        }
        ApiError::new(kind, error.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        let kind = match error {
            AuthError::MissingHeader | AuthError::Malformed | AuthError::UnknownKey => {
                ErrorKind::Unauthenticated
            }
            AuthError::MissingRole { .. } | AuthError::NotAdmin(_) => ErrorKind::PermissionDenied,
        };
        ApiError::new(kind, error.to_string())
    }
}
