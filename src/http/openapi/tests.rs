//! The document against the application: the paths actix mounts are the paths documented.
//! (Which methods each path takes needs the running server: `tests/integration/openapi.rs`.)

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use actix_web::dev::Service;
use actix_web::{test as actix_test, App};

use super::{document, encoded};

/// Every full path pattern the application routes, read from its resource map. actix-web has
/// no public listing of its routes, but the map's `Debug` form prints each resource's pattern
/// (`patterns: Single("/x")`), nested by indentation under its scope's, and `nodes: None` on
/// resources (scopes hold `Some`); a map with named resources also lists them under `named`.
/// A change in that form fails here, loudly.
async fn mounted_paths() -> BTreeSet<String> {
    let dump = Rc::new(RefCell::new(String::new()));
    let sink = Rc::clone(&dump);
    let app = actix_test::init_service(App::new().configure(super::super::api_routes).wrap_fn(
        move |request, service| {
            *sink.borrow_mut() = format!("{:#?}", request.request().resource_map());
            service.call(request)
        },
    ))
    .await;
    actix_test::call_service(&app, actix_test::TestRequest::get().uri("/").to_request()).await;
    let dump = dump.borrow();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut patterns: Vec<String> = Vec::new();
    let mut paths = BTreeSet::new();
    let mut lines = dump.lines();
    while let Some(line) = lines.next() {
        match line.trim() {
            "patterns: Single(" => {
                let depth = (indent(line) - 8) / 12;
                let pattern = lines.next().expect("a pattern after `Single(`").trim();
                let pattern = pattern.trim_end_matches(',').trim_matches('"').to_string();
                patterns.truncate(depth);
                patterns.push(pattern);
            }
            // Named resources (the Feature Service's) are listed again under their names,
            // outside the tree: the tree lists them all.
            "named: {" => {
                let end = format!("{}}},", " ".repeat(indent(line)));
                lines.by_ref().find(|skipped| *skipped == end);
            }
            "nodes: None," => {
                assert_eq!((indent(line) - 4) / 12 + 1, patterns.len(), "{dump}");
                paths.insert(without_regexes(&patterns.concat()));
            }
            trimmed => assert!(
                !trimmed.starts_with("patterns:"),
                "a resource with several patterns: {trimmed}"
            ),
        }
    }
    assert!(paths.contains("/health"), "no route read from {dump}");
    paths
}

/// `/v0/secrets/{name:.+}` as OpenAPI writes it: `/v0/secrets/{name}` (a regex may hold a
/// `/`, as `{file:[^/]*}` does, so the braces are followed, not the segments).
fn without_regexes(pattern: &str) -> String {
    let mut path = String::with_capacity(pattern.len());
    let mut depth = 0;
    let mut in_regex = false;
    for c in pattern.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ':' if depth == 1 => in_regex = true,
            _ => {}
        }
        if depth == 0 {
            in_regex = false;
        }
        if !in_regex {
            path.push(c);
        }
    }
    path
}

#[actix_web::test]
async fn every_mounted_path_is_documented_and_nothing_else() {
    let mounted = mounted_paths().await;
    let documented: BTreeSet<String> = document().paths.paths.keys().cloned().collect();
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let unmounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        undocumented.is_empty() && unmounted.is_empty(),
        "mounted but not in the document: {undocumented:?}; documented but not mounted: {unmounted:?}"
    );
}

#[test]
fn a_path_regex_is_left_out() {
    assert_eq!(
        without_regexes("/v0/secrets/{name:.+}"),
        "/v0/secrets/{name}"
    );
    assert_eq!(without_regexes("/a/{b}/c:d"), "/a/{b}/c:d");
}

#[test]
fn every_operation_refers_to_schemas_that_exist() {
    let json = serde_json::to_value(document()).expect("the document encodes");
    let schemas = &json["components"]["schemas"];
    let text = json.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').expect("a closing quote")];
        assert!(schemas.get(name).is_some(), "no schema named {name}");
    }
    assert_eq!(json["openapi"], "3.1.0");
}

#[test]
fn operation_ids_are_unique_and_every_link_names_one() {
    let json = encoded(document());
    let mut ids = BTreeSet::new();
    let mut targets = Vec::new();
    for item in json["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("a path item").values() {
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            for answer in operation["responses"]
                .as_object()
                .expect("responses")
                .values()
            {
                if let Some(links) = answer["links"].as_object() {
                    targets.extend(links.values().map(|link| link["operationId"].clone()));
                }
            }
        }
    }
    assert!(!targets.is_empty());
    for target in targets {
        assert!(
            ids.contains(target.as_str().expect("a name")),
            "no operation {target}"
        );
    }
}
