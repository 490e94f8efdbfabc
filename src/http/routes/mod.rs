//! One module per resource, each exposing `configure`.

pub mod admin;
pub mod console;
pub mod feature_service;
pub mod health;
pub mod ingest;
pub mod metrics;
pub mod proxy;
pub mod scim;
pub mod tecton_secrets;
pub mod tinybird;
pub mod truefoundry;
