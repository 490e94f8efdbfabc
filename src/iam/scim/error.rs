//! What can go wrong with a SCIM request, by RFC 7644 `scimType`; `http` maps each to a status
//! and renders the `scimType` word.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimErrorKind {
    InvalidSyntax,
    InvalidValue,
    InvalidFilter,
    InvalidPath,
    NoTarget,
    Mutability,
    Uniqueness,
    NotFound,
    /// `If-Match` / `If-None-Match` do not hold for the resource's current version.
    PreconditionFailed,
    /// The server could not do it (e.g. the journal could not be written).
    Internal,
    /// Writes are refused until the journal can be repaired.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    pub kind: ScimErrorKind,
    pub detail: String,
}

impl ScimError {
    pub fn new(kind: ScimErrorKind, detail: impl Into<String>) -> ScimError {
        ScimError {
            kind,
            detail: detail.into(),
        }
    }
}
