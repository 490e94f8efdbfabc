//! The limit: a bare actix-web server that parses each GetFeatures request body as JSON, like
//! Quiver, and answers with the bytes Quiver answered for the same workload (a sample taken
//! before the run), so its figures are what HTTP and JSON parsing alone cost on this machine.
//! It is a peer for `quiver bench`, not part of Quiver's HTTP layer: it shares nothing with it.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// The announcement the harness waits for, followed by `http://ADDRESS`.
pub const LISTENING: &str = "bare handler listening on ";

/// The fixed answers: for each (request path, feature service name), a response body.
pub type Responses = HashMap<(String, String), web::Bytes>;

/// Serves `responses` on `listen` until the process is killed.
pub fn serve_bare(listen: &str, responses: Responses) -> std::io::Result<()> {
    let responses = Arc::new(responses);
    serve_peer(listen, LISTENING, move |config| {
        config
            .app_data(web::Data::from(responses.clone()))
            .default_service(web::post().to(answer));
    })
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
) -> HttpResponse {
    // Parse like Quiver does, so JSON decoding is on both sides of the comparison.
    let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return HttpResponse::BadRequest().finish();
    };
    let service = parsed["params"]["featureServiceName"]
        .as_str()
        .unwrap_or_default();
    match responses.get(&(request.path().to_string(), service.to_string())) {
        Some(bytes) => HttpResponse::Ok()
            .content_type("application/json")
            .body(bytes.clone()),
        None => HttpResponse::NotFound().finish(),
    }
}
