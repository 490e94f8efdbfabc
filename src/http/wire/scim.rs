//! SCIM resources as sent: the directory and the schema description give references
//! (`meta.location`, a group's `$ref`) relative to the SCIM base URL; the answer makes them
//! absolute for the host the client called.

use serde_json::Value as Json;

/// `resource` with its references under `base_url` (`https://host/api/scim/v2`).
pub fn with_base_url(mut resource: Json, base_url: &str) -> Json {
    let absolute = |reference: &mut Json| {
        if let Json::String(path) = reference {
            *path = format!("{base_url}{path}");
        }
    };
    if let Some(location) = resource.pointer_mut("/meta/location") {
        absolute(location);
    }
    if let Some(Json::Array(groups)) = resource.get_mut("groups") {
        for group in groups {
            if let Some(reference) = group.get_mut("$ref") {
                absolute(reference);
            }
        }
    }
    resource
}
