//! Query strings, parsed by hand: one that does not parse is an [`ApiError`] naming the
//! parameter (`invalid query parameter `limit`: ...`), answered in the route family's error
//! shape `E`. actix's `web::Query` would answer its own plain text.

use std::future::{ready, Ready};
use std::marker::PhantomData;

use actix_web::{dev::Payload, FromRequest, HttpRequest, ResponseError};
use serde::de::DeserializeOwned;

use super::error::{without_quoted_values, ApiError, ErrorKind};
use crate::echo::echo;

/// The request's query string as `T`.
pub struct Query<T, E = ApiError>(pub T, PhantomData<fn() -> E>);

impl<T, E> Query<T, E> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T, E> std::ops::Deref for Query<T, E> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Parses a query string; an error names the parameter when it is one parameter's value.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = without_quoted_values(&error.into_inner().to_string());
        let message = if path == "." {
            format!("invalid query string: {inner}")
        } else {
            format!("invalid query parameter `{}`: {inner}", echo(&path))
        };
        ApiError::new(ErrorKind::InvalidArgument, message)
    })
}

impl<T, E> FromRequest for Query<T, E>
where
    T: DeserializeOwned,
    E: From<ApiError> + ResponseError + 'static,
{
    type Error = E;
    type Future = Ready<Result<Query<T, E>, E>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            parse_query(request.query_string())
                .map(|query| Query(query, PhantomData))
                .map_err(E::from),
        )
    }
}
