//! `GET /openapi.json` against the running server: open to anyone, OpenAPI 3.1, and for every
//! documented path each method is routed exactly where the document says. (That the paths
//! themselves are the mounted ones is `http::openapi`'s unit test, which walks actix's
//! resource map; the methods need the state the handlers run with.)

use serde_json::{Map, Value as Json};

use super::common::{Server, ADMIN_KEY};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The path with every `{parameter}` filled in.
fn concrete(template: &str) -> String {
    let segments: Vec<&str> = template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "probe"
            } else {
                segment
            }
        })
        .collect();
    segments.join("/")
}

/// Whether a concrete path is one the template names.
fn matches(template: &str, path: &str) -> bool {
    let (template, path): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template
            .iter()
            .zip(&path)
            .all(|(t, p)| t.starts_with('{') || t == p)
}

/// Whether a route took the request: the answers of the default services (an unknown path,
/// a method a path does not take) are the only 404s and 405s that say so.
fn routed(status: u16, body: &str) -> bool {
    let refused_by_router = ["no route for", "is not allowed on", "no SCIM endpoint at"]
        .iter()
        .any(|phrase| body.contains(phrase));
    !(matches!(status, 404 | 405) && refused_by_router)
}

#[test]
fn the_document_is_open_and_every_routed_method_is_in_it() {
    let server = Server::start();
    let reply = server.request("GET", "/openapi.json", &[], None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let document = reply.json();
    assert_eq!(document["openapi"], "3.1.0");
    let paths: &Map<String, Json> = document["paths"].as_object().expect("paths");
    let documented = |method: &str, path: &str| {
        paths.iter().any(|(template, item)| {
            matches(template, path) && item.get(method.to_lowercase()).is_some()
        })
    };
    let auth = format!("Tecton-key {ADMIN_KEY}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let mut wrong = Vec::new();
    for (template, item) in paths {
        let path = concrete(template);
        for method in METHODS {
            let body = (method != "GET" && method != "DELETE").then_some(&b"{}"[..]);
            let reply = server.request(method, &path, &headers, body);
            let routed = routed(reply.status, &reply.body);
            let here = item.get(method.to_lowercase()).is_some();
            // A method documented here must be routed; one routed must be documented on some
            // path that names this one (`GET /Users/.search` is `GET /{resource}/{id}`).
            if (here && !routed) || (routed && !documented(method, &path)) {
                wrong.push(format!("{method} {path}: {} {}", reply.status, reply.body));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "routed and documented disagree:\n{}",
        wrong.join("\n")
    );
}
