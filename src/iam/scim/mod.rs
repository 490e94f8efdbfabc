//! SCIM 2.0 logic that does not depend on HTTP: the schemas Quiver serves, resource validation
//! and projection, filters and PATCH.

pub mod error;
pub mod filter;
pub mod patch;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimErrorKind};
