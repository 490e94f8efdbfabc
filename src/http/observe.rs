//! The middleware around every request: counts it in the metrics by API family, route pattern,
//! method and status, with its duration. Labels name the route's pattern
//! (`/api/scim/v2/{resource}/{id}`), never the path, so no identifier a client sent reaches them.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;

use crate::metrics;

/// The route label of a request no route took.
const UNMATCHED: &str = "unmatched";

/// Which API family each route prefix belongs to (`api` in the metrics).
const FAMILIES: &[(&str, &str)] = &[
    ("/api/v1/feature-service/", "feature_service"),
    ("/api/v2/workspaces/", "feature_service"),
    ("/ingest", "ingest"),
    ("/api/v1/ingest", "ingest"),
    ("/api/scim/", "scim"),
    ("/api/v1/secrets-service/", "tecton_secrets"),
    ("/v1/secrets-service/", "tecton_secrets"),
    ("/api/v1/authorization-service/", "tecton_secrets"),
    ("/api/svc/v1/", "truefoundry"),
    ("/v0/", "tinybird"),
    ("/api/proxy", "proxy"),
    ("/proxy", "proxy"),
    ("/admin/", "admin"),
    ("/health", "operations"),
    ("/readyz", "operations"),
    ("/metrics", "operations"),
];

/// The API family of a route pattern.
fn api_of(route: &str) -> &'static str {
    FAMILIES
        .iter()
        .find(|(prefix, _)| route.starts_with(prefix))
        .map_or("other", |(_, api)| api)
}

/// The method as a label: one of the methods the APIs use, or `other` (a client may send any
/// token as a method; labels stay a closed set).
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

pub async fn observe_requests(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(request.method());
    let answered = next.call(request).await;
    // Routing happens inside `next`: only the answered request knows its pattern.
    let (route, status) = match &answered {
        Ok(response) => (
            response.request().match_pattern(),
            response.status().as_u16(),
        ),
        Err(error) => (None, error.as_response_error().status_code().as_u16()),
    };
    let route = route.unwrap_or_else(|| UNMATCHED.to_string());
    let api = if route == UNMATCHED {
        UNMATCHED
    } else {
        api_of(&route)
    };
    metrics::http_request(api, route, method, status, started.elapsed());
    answered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_belong_to_their_family() {
        assert_eq!(api_of("/api/scim/v2/{resource}/{id}"), "scim");
        assert_eq!(
            api_of("/v1/secrets-service/scopes/{scope}"),
            "tecton_secrets"
        );
        assert_eq!(api_of("/api/v1/ingest"), "ingest");
        assert_eq!(
            api_of("/api/v1/feature-service/get-features"),
            "feature_service"
        );
        assert_eq!(api_of("/somewhere"), "other");
    }

    #[test]
    fn unknown_methods_are_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(
            method_label(&Method::from_bytes(b"SECRET").unwrap()),
            "other"
        );
    }
}
