//! Observing every request (the outermost part of `http::middleware`): gives it a request id (the client's `X-Request-Id`, or
//! a new one), echoed in the answer and carried by every log line written while it runs
//! (a `request` span); writes one log line per request (method, route pattern, status,
//! duration); counts it in the metrics by API family, route pattern, method and status.
//!
//! Logs and labels name the route's pattern (`/api/scim/v2/{resource}/{id}`), never the path
//! or query (a Tinybird `?token=`, a scope's name), and no header or body is ever logged.

use std::borrow::Cow;
use std::fmt;
use std::time::Instant;

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::web::Bytes;
use actix_web::HttpRequest;
use tracing::Span;

use crate::metrics;

/// Where a request id comes from and goes back.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-given request id kept; a longer one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

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
    ("/console", "console"),
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

/// The client's request id when it is a plain token (letters, digits, `-_.:`, at most 128
/// characters: nothing that could forge a log line), else a new random one.
fn request_id(request: &ServiceRequest) -> RequestId {
    let given = request.headers().get(&REQUEST_ID).filter(|id| {
        let id = id.as_bytes();
        (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    RequestId(match given {
        // The header's own bytes, shared, not copied.
        Some(id) => id.clone(),
        None => made_id(hex_id(rand::random())),
    })
}

/// A new id's header value: its digits moved in, neither copied nor checked. A header value's
/// check reads every byte (~270 instructions for these 32, a request), and these are hex
/// digits by construction (`hex_id`, tested against `format!`); debug builds check them still.
fn made_id(digits: [u8; 32]) -> HeaderValue {
    // SAFETY: the unchecked constructor requires UTF-8; hex digits are ASCII, and ASCII
    // letters and digits are also what a header value may hold.
    unsafe { HeaderValue::from_maybe_shared_unchecked(Bytes::from_owner(digits)) }
}

/// `format!("{bits:032x}")`, written into a byte array: `format!` cost about as much as the
/// rest of the middleware, and a digit at a time ~250 instructions; here eight digits a step.
fn hex_id(bits: u128) -> [u8; 32] {
    let mut digits = [0u8; 32];
    for (place, eight) in digits.chunks_exact_mut(8).enumerate() {
        let nibbles = (bits >> (96 - 32 * place)) as u32;
        eight.copy_from_slice(&hex_digits(nibbles).to_be_bytes());
    }
    digits
}

/// The eight hex digits of `nibbles`, the most significant in the highest byte.
fn hex_digits(nibbles: u32) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Each nibble spread into a byte of its own, in place order.
    let mut spread = u64::from(nibbles);
    spread = (spread | spread << 16) & 0x0000_ffff_0000_ffff;
    spread = (spread | spread << 8) & 0x00ff_00ff_00ff_00ff;
    spread = (spread | spread << 4) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in each byte whose nibble is past 9 (adding 6 carries it into the byte's fifth bit).
    let letters = ((spread + 6 * ONES) >> 4) & ONES;
    spread + u64::from(b'0') * ONES + letters * u64::from(b'a' - b'0' - 10)
}

/// The pattern of the route that took the request: its name where it has one (the Feature
/// Service's resources are named by their patterns, see `routes::feature_service`: the name is
/// read in place, where actix builds the pattern as a new `String`), else its pattern.
fn route_of(request: &HttpRequest) -> Option<Cow<'_, str>> {
    match request.match_name() {
        Some(name) => Some(Cow::Borrowed(name)),
        None => request.match_pattern().map(Cow::Owned),
    }
}

/// The id [`Observed`] gave the request, for handlers that record it (the feature log).
/// Held as the header value it is echoed as: shared, not copied, between the middleware, the
/// handler and the answer (made as text, it was checked and copied again for the echo, ~250
/// instructions a request).
#[derive(Debug, Clone)]
pub struct RequestId(HeaderValue);

tokio::task_local! {
    /// The id of the request whose middleware chain and handler are running: the middleware
    /// polls the rest of the chain in its scope ([`Observed::within`]). Not the request's
    /// extensions: inserting the id there, reading it back and clearing it when actix pools
    /// the request cost ~800 instructions a request, the scope ~150.
    static CURRENT_REQUEST_ID: RequestId;
}

impl RequestId {
    /// The id of the request being served on this task; `None` where the middleware does not
    /// run.
    pub fn current() -> Option<RequestId> {
        CURRENT_REQUEST_ID.try_with(RequestId::clone).ok()
    }

    /// The id as text (read again from its bytes: ask only where it is written).
    pub fn as_str(&self) -> &str {
        self.0.to_str().expect("a request id is a plain token")
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request under observation: made when it comes in, told when it is answered.
pub struct Observed {
    started: Instant,
    method: &'static str,
    id: RequestId,
    span: Span,
}

impl Observed {
    /// Starts observing `request`: its id, its span, the clock.
    pub fn start(request: &ServiceRequest) -> Observed {
        let id = request_id(request);
        Observed {
            started: Instant::now(),
            method: method_label(request.method()),
            span: tracing::info_span!("request", request_id = %id),
            id,
        }
    }

    /// When the request came in.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The request's id, for a handler the middleware calls itself.
    pub fn request_id(&self) -> RequestId {
        self.id.clone()
    }

    /// Runs `f` (a poll of the rest of the chain) in the request's span, with its id the
    /// current one for [`RequestId`].
    pub fn within<R>(&self, f: impl FnOnce() -> R) -> R {
        let _entered = self.span.enter();
        CURRENT_REQUEST_ID.sync_scope(self.id.clone(), f)
    }

    /// Runs `f` in the request's span, with no request id current: for work that reads none
    /// (setting the id current and back cost ~110 instructions).
    pub fn in_span<R>(&self, f: impl FnOnce() -> R) -> R {
        self.span.in_scope(f)
    }

    /// The request is answered: echoes its id, logs one line, counts it. `served` is the
    /// pattern of the route that answered without actix's router, if one did.
    pub fn answered<B>(
        &self,
        answered: &mut Result<ServiceResponse<B>, actix_web::Error>,
        served: Option<&'static str>,
    ) {
        let elapsed = self.started.elapsed();
        // Routing happens inside the chain: only the answered request knows its pattern.
        let (route, status) = match answered {
            Ok(response) => {
                response.headers_mut().insert(REQUEST_ID, self.id.0.clone());
                let route = served.map(Cow::Borrowed);
                let route = route.or_else(|| route_of(response.request()));
                (route, response.status().as_u16())
            }
            Err(error) => (None, error.as_response_error().status_code().as_u16()),
        };
        let route = route.unwrap_or(Cow::Borrowed(UNMATCHED));
        let method = self.method;
        self.span.in_scope(|| {
            tracing::info!(
                method,
                route = &*route,
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                "answered"
            )
        });
        let api = if route == UNMATCHED {
            UNMATCHED
        } else {
            api_of(&route)
        };
        metrics::http_request(api, &route, method, status, elapsed);
    }
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
        assert_eq!(api_of("/console/api/store"), "console");
        assert_eq!(api_of("/somewhere"), "other");
    }

    #[test]
    fn new_ids_are_32_hex_digits() {
        for bits in [0, 1, 0xabc, u128::MAX, u128::MAX / 3, rand::random()] {
            assert_eq!(
                std::str::from_utf8(&hex_id(bits)).unwrap(),
                format!("{bits:032x}")
            );
        }
    }

    #[test]
    fn a_plain_client_id_is_kept_and_any_other_replaced() {
        let id_of = |given: Option<&str>| {
            let mut request = actix_web::test::TestRequest::default();
            if let Some(given) = given {
                request = request.insert_header((REQUEST_ID, given));
            }
            request_id(&request.to_srv_request()).to_string()
        };
        assert_eq!(id_of(Some("trace-1.a:b_C")), "trace-1.a:b_C");
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        for replaced in [None, Some("a b"), Some(""), Some("a\tb"), Some(&long[..])] {
            let made = id_of(replaced);
            assert_eq!(made.len(), 32, "{replaced:?}");
            assert!(made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
        }
        assert_ne!(id_of(None), id_of(None));
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
