//! Integration tests: each test starts the real `quiver` binary on a free port and talks HTTP
//! to it. One test binary (modules per area) keeps link time down.

// Each area uses a different part of the harness.
mod aggregation;
mod apply;
mod bench;
mod cluster;
mod cluster_directory;
#[allow(dead_code)]
mod common;
mod config;
mod console;
mod data_dir;
mod errors;
mod faults;
mod feature_log;
mod feature_service;
mod hostile;
mod identity;
mod ingest;
mod observability;
mod openapi;
mod persistence;
mod plan;
mod proxy;
mod registry;
mod scim_protocol;
mod scim_providers;
mod secrets;
mod tls;
