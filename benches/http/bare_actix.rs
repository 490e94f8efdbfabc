//! The baseline for the HTTP benchmark: a bare actix-web handler that parses the same
//! GetFeatures request body as Quiver and answers with a fixed response of the same size, so
//! the difference to Quiver is the cost of auth, routing to shards, lookups and encoding.
//!
//! Run: `cargo run --release --example bare_actix -- 127.0.0.1:8091 <response-file>`.

use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8091".to_string());
    let response = match args.next() {
        Some(path) => std::fs::read(path)?,
        None => b"{\"result\":{\"features\":[]}}".to_vec(),
    };
    let response = web::Bytes::from(response);
    HttpServer::new(move || {
        let response = response.clone();
        App::new().route(
            "/api/v1/feature-service/get-features",
            web::post().to(move |body: web::Bytes| {
                let response = response.clone();
                async move {
                    // Parse like Quiver does, so JSON decoding is on both sides of the comparison.
                    match serde_json::from_slice::<serde_json::Value>(&body) {
                        Ok(_) => HttpResponse::Ok()
                            .content_type("application/json")
                            .body(response),
                        Err(_) => HttpResponse::BadRequest().finish(),
                    }
                }
            }),
        )
    })
    .bind(listen)?
    .run()
    .await
}
