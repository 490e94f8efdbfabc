//! Tecton's protobuf messages, as the SDK and CLI send them through `/api/proxy`: hand-written
//! prost structs whose field tags follow the `*.proto` files beside them (dumped from the SDK's own
//! descriptors, version in their headers). proto2 `optional string` fields are plain `String`
//! here: the wire form is the same, and an empty string reads back as the unset default.
//! `definitions` maps Quiver's registry to Tecton's definitions (`GetFeatureService`).

pub mod args;
pub mod auth;
pub mod common;
pub mod data;
pub mod definitions;
pub mod metadataservice;
pub mod secrets;
