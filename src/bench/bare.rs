//! The limit: a bare actix-web server that parses each GetFeatures request body as JSON, like
//! Quiver, and answers with the bytes Quiver answered for the same workload (a sample taken
//! before the run), so its figures are what HTTP and JSON parsing alone cost on this machine.
//! With `--limit-skips-parsing` it does not parse (it finds the service's name in the bytes),
//! so its figures are what HTTP alone costs: the floor under any handler of the same requests.
//! It is a peer for `quiver bench`, not part of Quiver's HTTP layer: it shares nothing with it.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// The announcement the harness waits for, followed by `http://ADDRESS`.
pub const LISTENING: &str = "bare handler listening on ";

/// The fixed answers: for each (request path, feature service name), a response body.
pub type Responses = HashMap<(String, String), web::Bytes>;

/// What the limit does with a request body before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyParsing {
    /// Parses it as JSON, as Quiver must.
    Json,
    /// Only looks for a service's name in it.
    Skipped,
}

impl BodyParsing {
    pub fn skipped_when(skip: bool) -> Self {
        if skip {
            Self::Skipped
        } else {
            Self::Json
        }
    }
}

/// Serves `responses` on `listen` until the process is killed.
pub fn serve_bare(listen: &str, responses: Responses, parsing: BodyParsing) -> std::io::Result<()> {
    serve_peer(listen, LISTENING, routes(Arc::new(responses), parsing))
}

/// The bare handler's one route: every `POST`, answered from `responses`.
fn routes(
    responses: Arc<Responses>,
    parsing: BodyParsing,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
    move |config| {
        config
            .app_data(web::Data::from(responses.clone()))
            .app_data(web::Data::new(parsing))
            .default_service(web::post().to(answer));
    }
}

/// Runs a peer server (one worker per core, like Quiver) configured by `configure` on `listen`
/// until the process is killed, announcing its address with `announcement` for the harness.
pub fn serve_peer(
    listen: &str,
    announcement: &'static str,
    configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || App::new().configure(configure.clone()))
            .workers(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .bind(listen)?;
        for address in server.addrs() {
            println!("{announcement}http://{address}");
        }
        server.run().await
    })
}

async fn answer(
    request: HttpRequest,
    body: web::Bytes,
    responses: web::Data<Responses>,
    parsing: web::Data<BodyParsing>,
) -> HttpResponse {
    let path = request.path();
    let found = match **parsing {
        // Parse like Quiver does, so JSON decoding is on both sides of the comparison.
        BodyParsing::Json => {
            let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return HttpResponse::BadRequest().finish();
            };
            let service = parsed["params"]["featureServiceName"]
                .as_str()
                .unwrap_or_default();
            responses.get(&(path.to_string(), service.to_string()))
        }
        // The longest name found, should one service's name hold another's.
        BodyParsing::Skipped => responses
            .iter()
            .filter(|((at, service), _)| {
                at == path && memchr::memmem::find(&body, service.as_bytes()).is_some()
            })
            .max_by_key(|((_, service), _)| service.len())
            .map(|(_, bytes)| bytes),
    };
    match found {
        Some(bytes) => HttpResponse::Ok()
            .content_type("application/json")
            .body(bytes.clone()),
        None => HttpResponse::NotFound().finish(),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{test, App};

    use super::*;

    const PATH: &str = "/api/v1/feature-service/get-features";

    fn responses() -> Arc<Responses> {
        let answer = |service: &str| {
            (
                (PATH.to_string(), service.to_string()),
                web::Bytes::from(format!("{{\"answer of\":\"{service}\"}}")),
            )
        };
        Arc::new(Responses::from([
            answer("fraud_detection_feature_service"),
            answer("user_risk_service"),
        ]))
    }

    /// Whether it parses or not, the limit answers each service's requests with that
    /// service's bytes, and a service it has no answer for with 404.
    #[actix_web::test]
    async fn the_limit_answers_each_service_with_its_bytes_parsed_or_not() {
        for parsing in [BodyParsing::Json, BodyParsing::Skipped] {
            let app = test::init_service(App::new().configure(routes(responses(), parsing))).await;
            for service in [
                "fraud_detection_feature_service",
                "user_risk_service",
                "other",
            ] {
                let body = format!(
                    "{{\"params\":{{\"workspaceName\":\"prod\",\"featureServiceName\":\"{service}\"}}}}"
                );
                let request = test::TestRequest::post()
                    .uri(PATH)
                    .set_payload(body)
                    .to_request();
                let response = test::call_service(&app, request).await;
                if service == "other" {
                    assert_eq!(response.status(), 404, "{parsing:?}");
                    continue;
                }
                assert_eq!(response.status(), 200, "{parsing:?} {service}");
                let answer = test::read_body(response).await;
                assert_eq!(
                    answer,
                    format!("{{\"answer of\":\"{service}\"}}"),
                    "{parsing:?}"
                );
            }
            // Only the parsing limit refuses a body that is not JSON.
            let request = test::TestRequest::post()
                .uri(PATH)
                .set_payload("user_risk_service, not JSON")
                .to_request();
            let status = test::call_service(&app, request).await.status();
            let expected = match parsing {
                BodyParsing::Json => 400,
                BodyParsing::Skipped => 200,
            };
            assert_eq!(status, expected, "{parsing:?}");
        }
    }
}
