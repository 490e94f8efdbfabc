//! Tinybird's secrets API words: the parameters of a create or update (checked in the order
//! Tinybird's server checks them), the secret object (never a value), the `X-RateLimit-*`
//! headers, and the error body `{"error", "documentation"}` with the status and text each vault
//! error takes (Tinybird answers 400 where others say 409 or 422).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder, ResponseError};
use serde_json::{json, Value as Json};

use crate::echo::echo;
use crate::http::error::{ApiError, ErrorKind};
use crate::iam::AuthError;
use crate::secrets::crypto::Plaintext;
use crate::secrets::state::TbSecret;
use crate::secrets::tinybird::{check_name, check_value, RateState, REQUESTS_PER_SECOND};
use crate::secrets::SecretsError;
use crate::time::Micros;

const DOCS: &str = "https://docs.tinybird.co/api-reference/environment-variables-api";

#[derive(Debug)]
pub struct TbError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl std::fmt::Display for TbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for TbError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header(("Retry-After", seconds.to_string()));
            rate_headers(
                &mut response,
                RateState {
                    limit: REQUESTS_PER_SECOND,
                    remaining: 0,
                    reset_secs: seconds,
                },
            );
        }
        response.json(json!({"error": self.message, "documentation": DOCS}))
    }
}

impl TbError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> TbError {
        TbError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A 400 with this text.
    fn bad_request(message: impl Into<String>) -> TbError {
        TbError::new(StatusCode::BAD_REQUEST, message)
    }

    /// `GET /v0/variables/{name}` of a secret that does not exist.
    pub fn not_found() -> TbError {
        TbError::new(StatusCode::NOT_FOUND, "Not found")
    }
}

/// Tinybird's status for a kind of error: invalid input and a duplicate are 400 (there is no
/// 409 or 422 in this API), and a refused token is 403.
fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        ErrorKind::Unauthenticated => StatusCode::FORBIDDEN,
        kind => kind.status(),
    }
}

/// Body errors (too large, too slow) keep the table's words.
impl From<ApiError> for TbError {
    fn from(error: ApiError) -> TbError {
        TbError::new(status(error.kind), error.message)
    }
}

/// Tinybird's texts for a token it refuses, answered before any body is read.
impl From<AuthError> for TbError {
    fn from(error: AuthError) -> TbError {
        let kind = ApiError::from(error).kind;
        let message = match kind {
            ErrorKind::Unauthenticated => "invalid authentication token",
            _ => "token needs scope admin",
        };
        TbError::new(status(kind), message)
    }
}

/// Tinybird's texts where its server has one; a full workspace is 403, the page's "Limit
/// reached" (its 400 is for invalid parameters).
impl From<SecretsError> for TbError {
    fn from(error: SecretsError) -> TbError {
        let status = match error {
            SecretsError::TinybirdFull { .. } => StatusCode::FORBIDDEN,
            _ => status(ErrorKind::from(&error)),
        };
        let message = match error {
            SecretsError::RateLimited { retry_after_secs } => {
                return TbError {
                    status,
                    message: format!("Too many requests: retry after {retry_after_secs} seconds"),
                    retry_after: Some(retry_after_secs),
                }
            }
            SecretsError::TinybirdNotFound(_) => "Variable not found".to_string(),
            SecretsError::InvalidName { name, .. } => format!(
                "Invalid name \"{}\": name must start with a letter or underscore and hold only letters, digits and underscores, at most 255 characters",
                echo(&name)
            ),
            SecretsError::ValueTooLarge { .. } => "Variable maximum size is 8KB".to_string(),
            SecretsError::TinybirdExists(name) => {
                format!("Secret with name \"{}\" already exists", echo(&name))
            }
            SecretsError::TinybirdFull { max_secrets } => {
                format!("The maximum number of secrets for this workspace is {max_secrets}.")
            }
            other => other.to_string(),
        };
        TbError::new(status, message)
    }
}

/// A non-empty `value` parameter.
fn required_value(params: &mut HashMap<String, String>) -> Result<Plaintext, TbError> {
    params
        .remove("value")
        .filter(|v| !v.is_empty())
        .map(Plaintext)
        .ok_or_else(|| TbError::bad_request("missing value"))
}

/// The name and value of a create: `name`, `value` and an optional `type` (only `secret`).
pub fn create_parameters(
    mut params: HashMap<String, String>,
) -> Result<(String, Plaintext), TbError> {
    let name = params
        .remove("name")
        .ok_or_else(|| TbError::bad_request("Missing argument name"))?;
    let value = required_value(&mut params)?;
    if name.is_empty() {
        return Err(TbError::bad_request("missing name"));
    }
    // Checked here as well as in the vault, to answer in Tinybird's order: name, size, type.
    check_name(&name)?;
    check_value(&value)?;
    if params.get("type").is_some_and(|t| t != "secret") {
        return Err(TbError::bad_request("Supported variable types are: secret"));
    }
    Ok((name, value))
}

/// The new value of an update; its `type` cannot change.
pub fn update_parameters(mut params: HashMap<String, String>) -> Result<Plaintext, TbError> {
    if params.contains_key("type") {
        return Err(TbError::bad_request("Variable type cannot be changed"));
    }
    required_value(&mut params)
}

pub fn rate_headers(response: &mut HttpResponseBuilder, rate: RateState) {
    response
        .insert_header(("X-RateLimit-Limit", rate.limit.to_string()))
        .insert_header(("X-RateLimit-Remaining", rate.remaining.to_string()))
        .insert_header(("X-RateLimit-Reset", rate.reset_secs.to_string()));
}

/// Naive ISO 8601, microseconds only when there are any (as Tinybird writes them).
fn time(micros: Micros) -> String {
    let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros) else {
        return String::new();
    };
    if micros % 1_000_000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    }
}

/// A secret: never its value.
pub fn secret(secret: &TbSecret) -> Json {
    json!({"name": secret.name, "type": "secret", "created_at": time(secret.sealed.created),
           "updated_at": time(secret.sealed.updated), "edited_by": secret.edited_by})
}

/// Every secret, under `list_key` (`secrets` or `variables`, after the path).
pub fn list(list_key: &str, secrets: &[TbSecret]) -> Json {
    json!({ list_key: secrets.iter().map(secret).collect::<Vec<_>>() })
}

pub fn deleted() -> Json {
    json!({"ok": true})
}
