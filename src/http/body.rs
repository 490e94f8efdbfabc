//! Reading request bodies under the configured size limit, and parsing JSON with errors that
//! name the offending field (`params.joinKeyMap: invalid type: ...`).

use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorKind};

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
pub async fn read_limited(mut payload: Payload, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("request body is larger than the {limit}-byte limit"),
        )
    };
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => too_large(),
            other => ApiError::new(
                ErrorKind::InvalidArgument,
                format!("could not read the request body: {other}"),
            ),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses a JSON body into `T`; a syntax error or a mistyped field is a 400 naming where.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "request body is empty; expected a JSON object",
        ));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("request body is not valid JSON: {inner}")
        } else if path == "." {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid request body at `{path}`: {inner}")
        };
        ApiError::new(ErrorKind::InvalidArgument, message)
    })
}
