//! `ClientRequestId`: the `X-Request-Id` a client sent, read where a handler needs it (the
//! feature log records it). Only a short printable value is taken; anything else counts as none,
//! so that whoever uses it makes its own.

use std::convert::Infallible;
use std::future::{ready, Ready};

use actix_web::{dev::Payload, FromRequest, HttpRequest};

const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 200;

#[derive(Debug)]
pub struct ClientRequestId(pub Option<String>);

impl FromRequest for ClientRequestId {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = request
            .headers()
            .get(HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= MAX_LEN)
            .filter(|id| id.chars().all(|c| c.is_ascii_graphic()))
            .map(str::to_string);
        ready(Ok(ClientRequestId(id)))
    }
}
