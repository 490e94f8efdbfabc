//! SCIM 2.0 logic that does not depend on HTTP: the schemas Quiver serves, resource validation
//! and projection, filters, PATCH, entity tags and how unique names compare.

pub mod error;
pub mod etag;
pub mod filter;
pub mod names;
pub mod patch;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimErrorKind};
