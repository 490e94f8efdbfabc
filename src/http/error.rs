//! The one error table. Every domain error maps here, in one `From` impl each, to an
//! [`ErrorKind`] and a message ([`ApiError`]); every kind has one HTTP status and one gRPC code.
//! Each API family only renders an `ApiError` in its own body shape: Tecton's
//! `{"error": <message>, "code": <grpc code>, "message": <message>}` here (Feature Service,
//! secrets service, `/admin`), SCIM's, the Stream Ingest API's, TrueFoundry's and Tinybird's in
//! their `wire` modules. Bodies that do not parse (`body::parse_json`) and query
//! strings that do not (`extract::Query`) are `ApiError`s too, so they get the family's shape.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::served::ApplyError;
use super::wire::feature_service::serving_error_message;
use crate::echo::echo;
use crate::iam::scim::{ScimError, ScimErrorKind};
use crate::iam::AuthError;
use crate::ingest::file::BadRow;
use crate::ingest::IngestError;
use crate::metrics::HistoryGone;
use crate::persist::PersistError;
use crate::secrets::SecretsError;
use crate::serving::ServingError;
use crate::store::StoreError;

/// What went wrong, independent of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    /// `If-Match` / `If-None-Match` do not hold (SCIM's entity tags).
    PreconditionFailed,
    PayloadTooLarge,
    /// A body sent in a form Quiver does not read (a `Content-Encoding` other than identity).
    UnsupportedMediaType,
    /// The body did not arrive within `server.body_read_timeout`.
    RequestTimeout,
    MethodNotAllowed,
    ResourceExhausted,
    /// The work did not finish within the budget the request set.
    DeadlineExceeded,
    /// A part of a protocol Quiver does not implement (SCIM's `/Bulk`).
    NotImplemented,
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
            ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC status code Tecton puts in `code` (grpc-gateway's mapping).
    pub fn grpc_code(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument
            | ErrorKind::PayloadTooLarge
            | ErrorKind::UnsupportedMediaType => 3,
            ErrorKind::RequestTimeout | ErrorKind::DeadlineExceeded => 4,
            ErrorKind::NotFound => 5,
            ErrorKind::AlreadyExists => 6,
            ErrorKind::PermissionDenied => 7,
            ErrorKind::FailedPrecondition | ErrorKind::PreconditionFailed => 9,
            ErrorKind::ResourceExhausted => 8,
            ErrorKind::MethodNotAllowed | ErrorKind::NotImplemented => 12,
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

/// Serde's words for a value a client sent in the wrong shape, without the value itself
/// (`string "…"`, `character `…``, `integer `…``, `floating point `…``, `unknown variant
/// `…``): it may be a secret sent in the wrong place (a PIN sent as a number, say), and an
/// error body reaches logs and proxies that a secret must not. Field names and what was
/// expected stay; booleans, which hold no secret, stay too.
pub fn without_quoted_values(message: &str) -> String {
    /// The length of a quoted value and its closing mark, from just after the opening.
    type QuotedLen = fn(&str) -> Option<usize>;
    /// What stands in for the opening and the value (the value without its closing mark).
    type StandIn = fn(&str) -> String;
    // (opening, length of what it quotes, what stands in for the opening and the value)
    const QUOTES: [(&str, QuotedLen, StandIn); 6] = [
        // Debug-formatted: `"` and `\` inside are escaped, so the first bare `"` ends it.
        ("string \"", debug_string_len, |_| "a string".into()),
        // One character, then the closing backtick; anything else is not serde's words (a
        // client's field name can hold "character `"), and is dropped with the rest.
        (
            "character `",
            |rest| {
                let len = rest.chars().next()?.len_utf8();
                rest[len..].starts_with('`').then_some(len + 1)
            },
            |_| "a character".into(),
        ),
        (
            "unknown variant `",
            |rest| rest.find("`, ").map(|end| end + 1),
            |_| "unknown variant".into(),
        ),
        // Serde writes numbers with digits, a sign, a point, an exponent, `inf` or `NaN`;
        // anything else is not serde's words and is dropped with the rest, as above.
        ("integer `", number_len, |_| "an integer".into()),
        ("floating point `", number_len, |_| {
            "a floating point number".into()
        }),
        // A field's name, not a value: named, as any echo is, within a bound.
        (
            "unknown field `",
            // The last of serde's endings: the name is the client's and may hold either.
            |rest| {
                let end = rest.rfind("`, expected ");
                end.or_else(|| rest.rfind("`, there are no fields"))
                    .map(|end| end + 1)
            },
            |name| {
                let name = name.strip_suffix('`').unwrap_or(name);
                format!("unknown field `{}`", echo(name))
            },
        ),
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some((at, opening, quoted_len, stand_in)) = QUOTES
        .iter()
        .filter_map(|&(opening, len, stand_in)| Some((rest.find(opening)?, opening, len, stand_in)))
        .min_by_key(|&(at, ..)| at)
    {
        out.push_str(&rest[..at]);
        let quoted = &rest[at + opening.len()..];
        // Not closed: the rest is all value.
        let Some(len) = quoted_len(quoted) else {
            out.push_str(&stand_in(""));
            return out;
        };
        out.push_str(&stand_in(&quoted[..len]));
        rest = &quoted[len..];
    }
    out.push_str(rest);
    out
}

/// The length of a number as serde writes it and its closing backtick.
fn number_len(quoted: &str) -> Option<usize> {
    let end = quoted.find('`')?;
    let number = &quoted[..end];
    let serde_writes = |c: char| c.is_ascii_digit() || "+-.eEinfNa".contains(c);
    (!number.is_empty() && number.chars().all(serde_writes)).then_some(end + 1)
}

/// The length of a Debug-formatted string's body and its closing quote.
fn debug_string_len(quoted: &str) -> Option<usize> {
    let mut escaped = false;
    quoted.char_indices().find_map(|(i, c)| match (escaped, c) {
        (true, _) => {
            escaped = false;
            None
        }
        (false, '\\') => {
            escaped = true;
            None
        }
        (false, '"') => Some(i + 1),
        (false, _) => None,
    })
}

// The table: one `From` per domain error.

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
            // gRPC's own word for a message over its size limit.
            ServingError::ResponseSizeLimitExceeded { .. } => ErrorKind::ResourceExhausted,
            // No node holding a partition answered (partitioned cluster): retry.
            ServingError::Store(store) if store.is_unavailable() => ErrorKind::Unavailable,
            ServingError::Store(_) | ServingError::CorruptRow(_) => ErrorKind::Internal,
        };
        if kind == ErrorKind::Internal {
            tracing::error!(%error, "serving failed");
        }
        ApiError::new(kind, serving_error_message(&error))
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

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> ApiError {
        let kind = match error {
            IngestError::UnknownWorkspace(_) | IngestError::UnknownSource { .. } => {
                ErrorKind::NotFound
            }
            IngestError::NotLive(_) | IngestError::NoSubscribers(_) | IngestError::Records(_) => {
                ErrorKind::InvalidArgument
            }
            IngestError::WrongToken(_) => ErrorKind::Unauthenticated,
            // A start-up error; no request meets it.
            IngestError::TokenSetting { .. } => ErrorKind::Internal,
        };
        ApiError::new(kind, error.to_string())
    }
}

impl From<BadRow> for ApiError {
    fn from(error: BadRow) -> ApiError {
        ApiError::new(ErrorKind::InvalidArgument, error.to_string())
    }
}

/// A failed feature write: the journal's refusal is said as it is (503); anything else is
/// logged and answered without the server's internals.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        tracing::error!(%error, "feature write failed");
        if error.is_unavailable() {
            ApiError::new(ErrorKind::Unavailable, error.to_string())
        } else {
            ApiError::new(ErrorKind::Internal, "the store could not write the rows")
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(error: ApplyError) -> ApiError {
        let kind = match error {
            ApplyError::Store(store) => return store.into(),
            ApplyError::Invalid(_) | ApplyError::IngestToken(_) => ErrorKind::InvalidArgument,
            ApplyError::StalePlan { .. } | ApplyError::DataLoss(_) => ErrorKind::FailedPrecondition,
            ApplyError::NotApplied(_)
            | ApplyError::UndoNotJournaled { .. }
            | ApplyError::NotTakenBack { .. } => ErrorKind::Internal,
        };
        ApiError::new(kind, error.to_string())
    }
}

impl From<PersistError> for ApiError {
    fn from(error: PersistError) -> ApiError {
        let kind = match error {
            PersistError::Busy => ErrorKind::AlreadyExists,
            PersistError::Io(_)
            | PersistError::Journal(_)
            | PersistError::Snapshot(_)
            | PersistError::UnsupportedSnapshot { .. }
            | PersistError::LostWrites(_) => ErrorKind::Internal,
        };
        ApiError::new(kind, error.to_string())
    }
}

/// Only while the server stops.
impl From<HistoryGone> for ApiError {
    fn from(error: HistoryGone) -> ApiError {
        ApiError::new(ErrorKind::Unavailable, error.to_string())
    }
}

impl From<ScimError> for ApiError {
    fn from(error: ScimError) -> ApiError {
        let kind = match error.kind {
            ScimErrorKind::InvalidSyntax
            | ScimErrorKind::InvalidValue
            | ScimErrorKind::InvalidFilter
            | ScimErrorKind::InvalidPath
            | ScimErrorKind::NoTarget
            | ScimErrorKind::Mutability => ErrorKind::InvalidArgument,
            ScimErrorKind::Uniqueness => ErrorKind::AlreadyExists,
            ScimErrorKind::NotFound => ErrorKind::NotFound,
            ScimErrorKind::PreconditionFailed => ErrorKind::PreconditionFailed,
            ScimErrorKind::Internal => ErrorKind::Internal,
            ScimErrorKind::Unavailable => ErrorKind::Unavailable,
        };
        ApiError::new(kind, error.detail)
    }
}

/// What kind of failure a vault error is. TrueFoundry and Tinybird start from it too, with
/// their own status for a few kinds (422 for invalid input; 400 for duplicates and limits).
impl From<&SecretsError> for ErrorKind {
    fn from(error: &SecretsError) -> ErrorKind {
        use SecretsError::*;
        match error {
            InvalidName { .. }
            | ValueTooLarge { .. }
            | InvalidPage { .. }
            | ScopeFull { .. }
            | GroupFull { .. }
            | DuplicateKey(_)
            | NewKeyWithoutValue(_) => ErrorKind::InvalidArgument,
            ScopeNotFound(_)
            | ScopeSecretNotFound { .. }
            | GroupNotFound(_)
            | GroupSecretNotFound(_)
            | TinybirdNotFound(_) => ErrorKind::NotFound,
            ScopeExists(_)
            | GroupExists(_)
            | GroupOwnedByAnother(_)
            | TinybirdExists(_)
            | GroupKeyChangedMeanwhile { .. } => ErrorKind::AlreadyExists,
            ScopeRoleNeeded { .. } | NoGroupAccess { .. } | GroupAccessNeeded { .. } => {
                ErrorKind::PermissionDenied
            }
            ScopeNotEmpty { .. } | TinybirdFull { .. } => ErrorKind::FailedPrecondition,
            RateLimited { .. } => ErrorKind::ResourceExhausted,
            Tampered { .. } | Internal(_) => ErrorKind::Internal,
            Unavailable(_) => ErrorKind::Unavailable,
        }
    }
}

impl From<SecretsError> for ApiError {
    fn from(error: SecretsError) -> ApiError {
        ApiError::new(ErrorKind::from(&error), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::without_quoted_values;

    #[test]
    fn serde_messages_keep_what_was_expected_but_not_the_value_sent() {
        let cases = [
            (
                r#"invalid type: string "SECRET \"quoted\" \\ and more", expected struct Body at line 1 column 9"#,
                "invalid type: a string, expected struct Body at line 1 column 9",
            ),
            (
                r#"invalid value: string "SECRET", expected a timestamp"#,
                "invalid value: a string, expected a timestamp",
            ),
            (
                "invalid type: character `S`, expected a boolean",
                "invalid type: a character, expected a boolean",
            ),
            (
                "unknown variant `SECRET`, expected one of `reader`, `writer`",
                "unknown variant, expected one of `reader`, `writer`",
            ),
            (
                r#"first string "A", then string "B""#,
                "first a string, then a string",
            ),
            (
                r#"invalid type: string "unterminated"#,
                "invalid type: a string",
            ),
            (
                "invalid type: integer `987654321`, expected a string",
                "invalid type: an integer, expected a string",
            ),
            (
                "invalid value: integer `-1`, expected usize",
                "invalid value: an integer, expected usize",
            ),
            (
                "invalid type: floating point `-9.876543210987654e+19`, expected a string",
                "invalid type: a floating point number, expected a string",
            ),
            (
                "invalid type: floating point `NaN`, expected u32",
                "invalid type: a floating point number, expected u32",
            ),
            (
                "invalid type: boolean `true`, expected a string",
                "invalid type: boolean `true`, expected a string",
            ),
            // A client's field name that looks like serde's words is a name, not a value.
            (
                "unknown field `integer `12ab`, expected `value`",
                "unknown field `integer `12ab`, expected `value`",
            ),
            (
                &format!("unknown field `{}`, there are no fields", "f".repeat(100)),
                &format!(
                    "unknown field `{}… (100 bytes)`, there are no fields",
                    "f".repeat(64)
                ),
            ),
            // Not a number as serde writes one: dropped with the rest.
            (
                "invalid value: integer `12ab`, expected `value`",
                "invalid value: an integer",
            ),
            (
                "unknown field `vlaue`, expected `value`",
                "unknown field `vlaue`, expected `value`",
            ),
            // serde's words with a character that is not one: never a split character.
            (
                "invalid type: character `éé`, expected `value`",
                "invalid type: a character",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(without_quoted_values(message), expected, "{message}");
        }
    }
}
