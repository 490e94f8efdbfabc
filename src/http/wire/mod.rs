//! JSON shapes of the APIs Quiver speaks, kept apart from the handlers so that each handler reads
//! as "parse, call the domain, encode".

pub mod common_request;
pub mod console;
pub mod feature_service;
pub mod ingest;
pub mod repository;
pub mod scim;
pub mod tecton_proto;
pub mod tecton_secrets;
pub mod tinybird;
pub mod truefoundry;
