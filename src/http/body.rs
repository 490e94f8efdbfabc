//! Reading request bodies, only after the caller is checked, under the route's size limit and
//! the configured read timeout; and parsing JSON with errors that name the offending field
//! (`params.joinKeyMap: invalid type: ...`).

use std::future::{ready, Ready};
use std::time::Duration;

use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{dev, FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ErrorKind};
use super::AppState;

/// A request body not read yet. Taking one reads nothing: the handler calls [`UnreadBody::read`]
/// once the caller has passed its checks, so a refused caller costs no body buffer.
pub struct UnreadBody {
    payload: dev::Payload,
    /// `Content-Length`, when the client declared one.
    declared_len: Option<u64>,
    /// `server.body_read_timeout`: the whole body must arrive within it.
    timeout: Duration,
}

impl FromRequest for UnreadBody {
    type Error = ApiError;
    type Future = Ready<Result<UnreadBody, ApiError>>;

    fn from_request(request: &HttpRequest, payload: &mut dev::Payload) -> Self::Future {
        let state = request
            .app_data::<web::Data<AppState>>()
            .expect("AppState is registered by http::configure");
        let declared_len = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse().ok());
        ready(Ok(UnreadBody {
            payload: payload.take(),
            declared_len,
            timeout: state.limits.body_read_timeout,
        }))
    }
}

impl UnreadBody {
    /// Reads the whole body: 413 when it declares or reaches more than `limit` bytes (nothing
    /// is read for a declared excess), 408 when it has not all arrived within the read timeout.
    /// On either refusal the buffer is dropped at once and actix closes the connection.
    pub async fn read(self, limit: usize) -> Result<Bytes, ApiError> {
        let too_large = || {
            ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("request body is larger than the {limit}-byte limit"),
            )
        };
        if self.declared_len.is_some_and(|len| len > limit as u64) {
            return Err(too_large());
        }
        let timeout = self.timeout;
        let mut payload = self.payload;
        // A declared length within the limit is trusted for the first allocation only.
        let mut body = BytesMut::with_capacity(self.declared_len.unwrap_or(0) as usize);
        let reading = async {
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
            Ok(())
        };
        let outcome = tokio::time::timeout(timeout, reading).await;
        match outcome {
            Ok(read) => read.map(|()| body.freeze()),
            Err(_) => Err(ApiError::new(
                ErrorKind::RequestTimeout,
                format!(
                    "the request body did not arrive within the {}-second read timeout",
                    timeout.as_secs_f64()
                ),
            )),
        }
    }
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
