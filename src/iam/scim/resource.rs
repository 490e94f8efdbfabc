//! Validating a SCIM resource body against its schema into the canonical attribute object that
//! the directory stores (declared attributes only, schema spelling, extensions under their URN,
//! no read-only or write-only input), and projecting stored resources for `attributes` /
//! `excludedAttributes`.

use serde_json::{Map, Value as Json};

use super::error::{ScimError, ScimErrorKind};
use super::filter::strip_urn;
use super::schema::{self, Attribute, Kind, Mutability, Qualified, ResourceSchema};
use crate::echo::echo;

fn invalid(kind: ScimErrorKind, detail: String) -> ScimError {
    ScimError::new(kind, detail)
}

fn unknown(schema: &ResourceSchema, key: &str) -> ScimError {
    invalid(
        ScimErrorKind::InvalidSyntax,
        format!(
            "unknown attribute `{}` for a {}",
            echo(key),
            schema.resource_type
        ),
    )
}

/// Reads `body` as a full resource of `schema`: every core or extension attribute must be
/// declared, typed as declared, and the required ones present. `id`, `meta`, `schemas`,
/// read-only attributes and attributes of schemas this type does not have are ignored;
/// write-only ones (`password`) are checked and dropped. Returns the attributes to store (with
/// `externalId`).
pub fn validate_resource(
    schema: &ResourceSchema,
    body: &Json,
) -> Result<Map<String, Json>, ScimError> {
    let object = body.as_object().ok_or_else(|| {
        invalid(
            ScimErrorKind::InvalidSyntax,
            format!("a {} must be a JSON object", schema.resource_type),
        )
    })?;
    let mut attributes = Map::new();
    for (key, value) in object {
        let (attribute, target) = match schema.qualify(key) {
            Qualified::UnknownSchema => continue,
            Qualified::Extension(extension, None) => (extension, None),
            Qualified::Extension(extension, Some(name)) => {
                let sub = extension.sub(name).ok_or_else(|| unknown(schema, key))?;
                (sub, Some(extension.name))
            }
            Qualified::Core(name) => {
                if ["schemas", "id", "meta"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(name))
                {
                    continue;
                }
                if name.eq_ignore_ascii_case("externalId") {
                    match value {
                        Json::Null => {}
                        Json::String(s) => {
                            attributes.insert("externalId".into(), Json::String(s.clone()));
                        }
                        _ => {
                            return Err(invalid(
                                ScimErrorKind::InvalidValue,
                                "`externalId` must be a string".into(),
                            ))
                        }
                    }
                    continue;
                }
                (
                    schema.attribute(name).ok_or_else(|| unknown(schema, key))?,
                    None,
                )
            }
        };
        let Some(value) = validate_input(attribute, value, attribute.name)? else {
            continue;
        };
        match target {
            None => {
                attributes.insert(attribute.name.to_string(), value);
            }
            // `urn:...:enterprise:2.0:User:department` at the top level joins its extension.
            Some(extension) => {
                let container = attributes
                    .entry(extension)
                    .or_insert_with(|| Json::Object(Map::new()));
                if let Json::Object(container) = container {
                    container.insert(attribute.name.to_string(), value);
                }
            }
        }
    }
    check_required(schema, &attributes)?;
    Ok(attributes)
}

/// A client-sent value by mutability: read-only ones are ignored, write-only ones checked and
/// dropped, others checked and kept. `None`: nothing to store.
fn validate_input(
    attribute: &Attribute,
    value: &Json,
    path: &str,
) -> Result<Option<Json>, ScimError> {
    match attribute.mutability {
        Mutability::ReadOnly => Ok(None),
        Mutability::WriteOnly => validate_value(attribute, value, path).map(|_| None),
        Mutability::ReadWrite | Mutability::Immutable => validate_value(attribute, value, path),
    }
}

/// Every required attribute is present and not empty.
pub fn check_required(
    schema: &ResourceSchema,
    attributes: &Map<String, Json>,
) -> Result<(), ScimError> {
    for attribute in schema.attributes.iter().filter(|a| a.required) {
        match attributes.get(attribute.name) {
            Some(Json::String(s)) if !s.trim().is_empty() => {}
            _ => {
                return Err(invalid(
                    ScimErrorKind::InvalidValue,
                    format!(
                        "`{}` is required for a {} and must be a non-empty string",
                        attribute.name, schema.resource_type
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Checks one attribute value; `None` means "absent" (null or an empty list). `path` names it
/// in errors.
pub fn validate_value(
    attribute: &Attribute,
    value: &Json,
    path: &str,
) -> Result<Option<Json>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if attribute.multi_valued {
        let items = match value {
            Json::Array(items) => items.clone(),
            // Some identity providers send a single object where a list is declared.
            single => vec![single.clone()],
        };
        let mut checked = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(item) = validate_single(attribute, item, &format!("{path}[{i}]"))? {
                checked.push(item);
            }
        }
        return Ok((!checked.is_empty()).then_some(Json::Array(checked)));
    }
    validate_single(attribute, value, path)
}

fn validate_single(
    attribute: &Attribute,
    value: &Json,
    path: &str,
) -> Result<Option<Json>, ScimError> {
    let wrong = |expected: &str| {
        invalid(
            ScimErrorKind::InvalidValue,
            format!("`{path}` must be {expected}"),
        )
    };
    match attribute.kind {
        Kind::String | Kind::Reference | Kind::Binary => match value {
            Json::String(s) => Ok(Some(Json::String(s.clone()))),
            Json::Null => Ok(None),
            _ => Err(wrong("a string")),
        },
        Kind::Boolean => match value {
            Json::Bool(b) => Ok(Some(Json::Bool(*b))),
            // Entra ID sends booleans as "True"/"False".
            Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(Some(Json::Bool(true))),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(Some(Json::Bool(false))),
            Json::Null => Ok(None),
            _ => Err(wrong("a boolean")),
        },
        // Entra ID sends a single-valued complex attribute with a `value` (the enterprise
        // `manager`) as that value alone.
        Kind::Complex if value.is_string() && !attribute.multi_valued => {
            match attribute.sub("value") {
                Some(sub) => validate_single(sub, value, &format!("{path}.value"))
                    .map(|v| v.map(|v| Json::Object(Map::from_iter([("value".to_string(), v)])))),
                None => Err(wrong("an object")),
            }
        }
        Kind::Complex => {
            let object = value.as_object().ok_or_else(|| wrong("an object"))?;
            let mut checked = Map::new();
            for (key, sub_value) in object {
                // Some clients repeat `schemas` inside an extension's object.
                if attribute.is_extension() && key.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let sub = attribute.sub(key).ok_or_else(|| {
                    invalid(
                        ScimErrorKind::InvalidSyntax,
                        format!("unknown attribute `{path}.{}`", echo(key)),
                    )
                })?;
                if let Some(v) = validate_input(sub, sub_value, &format!("{path}.{}", sub.name))? {
                    checked.insert(sub.name.to_string(), v);
                }
            }
            Ok((!checked.is_empty()).then_some(Json::Object(checked)))
        }
    }
}

/// Parses a comma-separated attribute list (`userName,name.givenName,urn:...:User:emails`,
/// `urn:...:enterprise:2.0:User:department`): core URNs are dropped, extension URNs kept.
pub fn attribute_list(text: Option<&str>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .map(|name| without_core_urn(name.trim()).to_string())
            .filter(|name| !name.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// An attribute name without its core schema URN; an extension's URN stays, since it names
/// where the attribute is.
fn without_core_urn(name: &str) -> &str {
    match split_extension(name) {
        Some(_) => name,
        None => strip_urn(name),
    }
}

/// `urn:...:enterprise:2.0:User:department` -> (the extension's URN, `department`).
pub fn split_extension(name: &str) -> Option<(&'static str, Option<&str>)> {
    schema::ALL.iter().find_map(|s| match s.qualify(name) {
        Qualified::Extension(extension, sub) => Some((extension.name, sub)),
        _ => None,
    })
}

/// An attribute path (`name.givenName`, `urn:...:User:userName`,
/// `urn:...:enterprise:2.0:User:department`) as (top-level attribute, sub-attribute).
pub fn split_path(name: &str) -> (&str, Option<&str>) {
    let name = without_core_urn(name);
    match split_extension(name) {
        Some((urn, sub)) => (urn, sub),
        None => match name.split_once('.') {
            Some((top, sub)) => (top, Some(sub)),
            None => (name, None),
        },
    }
}

/// Applies `attributes` (only these, plus `id`, `schemas`, `meta`) or `excludedAttributes`
/// (all but these) to a rendered resource.
pub fn project(resource: Json, attributes: &[String], excluded: &[String]) -> Json {
    let Json::Object(object) = resource else {
        return resource;
    };
    let always = |key: &str| ["id", "schemas", "meta"].contains(&key);
    let named = |list: &[String], key: &str| {
        list.iter()
            .any(|a| split_path(a).0.eq_ignore_ascii_case(key))
    };
    let mut out = Map::new();
    for (key, value) in object {
        if always(&key) {
            out.insert(key, value);
        } else if !attributes.is_empty() {
            if named(attributes, &key) {
                let paths: Vec<(&str, Option<&str>)> = attributes
                    .iter()
                    .map(|a| split_path(a))
                    .filter(|(top, _)| top.eq_ignore_ascii_case(&key))
                    .collect();
                let whole = paths.iter().any(|(_, sub)| sub.is_none());
                let subs: Vec<&str> = paths.iter().filter_map(|(_, sub)| *sub).collect();
                out.insert(
                    key,
                    if whole {
                        value
                    } else {
                        keep_subs(value, &subs)
                    },
                );
            }
        } else if !excluded.iter().any(|a| a.eq_ignore_ascii_case(&key)) {
            out.insert(key, value);
        }
    }
    Json::Object(out)
}

fn keep_subs(value: Json, subs: &[&str]) -> Json {
    match value {
        Json::Object(object) => Json::Object(
            object
                .into_iter()
                .filter(|(k, _)| subs.iter().any(|s| s.eq_ignore_ascii_case(k)))
                .collect(),
        ),
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|item| keep_subs(item, subs))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::{ENTERPRISE_USER_URN, GROUP, USER};
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_attributes_only() {
        let body = json!({"schemas": ["x"], "id": "ignored", "USERNAME": "a@b.c", "active": "False",
                          "name": {"givenname": "A"}, "emails": {"value": "a@b.c"}, "externalId": "e1"});
        let stored = validate_resource(&USER, &body).unwrap();
        assert_eq!(
            Json::Object(stored),
            json!({"userName": "a@b.c", "active": false, "name": {"givenName": "A"},
                                                "emails": [{"value": "a@b.c"}], "externalId": "e1"})
        );
    }

    #[test]
    fn unknown_mistyped_and_missing_attributes_are_named() {
        let err =
            validate_resource(&USER, &json!({"userName": "a@b.c", "shoeSize": "x"})).unwrap_err();
        assert!(err.detail.contains("unknown attribute `shoeSize`"));
        let err = validate_resource(
            &USER,
            &json!({"userName": "a@b.c", ENTERPRISE_USER_URN: {"department": 7}}),
        )
        .unwrap_err();
        assert_eq!(err.kind, ScimErrorKind::InvalidValue);
        assert!(err.detail.contains(&format!(
            "`{ENTERPRISE_USER_URN}.department` must be a string"
        )));
        let err =
            validate_resource(&USER, &json!({"userName": "a@b.c", "password": 1})).unwrap_err();
        assert!(err.detail.contains("`password` must be a string"));
        let err = validate_resource(&USER, &json!({"userName": "a@b.c", "active": 3})).unwrap_err();
        assert!(err.detail.contains("`active` must be a boolean"));
        let err = validate_resource(&GROUP, &json!({"members": []})).unwrap_err();
        assert!(err.detail.contains("`displayName` is required"));
        let err = validate_resource(
            &USER,
            &json!({"userName": "a@b.c", "emails": [{"value": 1}]}),
        )
        .unwrap_err();
        assert!(err.detail.contains("`emails[0].value` must be a string"));
    }

    #[test]
    fn okta_and_entra_bodies_keep_the_directory_attributes_and_drop_the_password() {
        let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_URN],
            "userName": "t@okta.local", "name": {"givenName": "T", "middleName": "M"}, "locale": "en-US",
            "groups": [{"value": "g"}], "password": "1mz050nq", "title": "Eng", "preferredLanguage": "en",
            "phoneNumbers": [{"type": "work", "value": "+1 555"}], "nickName": "tt",
            "addresses": [{"type": "work", "locality": "Paris", "primary": true}],
            ENTERPRISE_USER_URN: {"department": "R&D", "employeeNumber": "42", "manager": "m1",
                "schemas": [ENTERPRISE_USER_URN]},
            "urn:ietf:params:scim:schemas:extension:okta:1.0:User": {"anything": 1}});
        let stored = validate_resource(&USER, &body).unwrap();
        assert!(stored.get("password").is_none() && stored.get("groups").is_none());
        assert!(!Json::Object(stored.clone())
            .to_string()
            .contains("1mz050nq"));
        assert_eq!(stored["name"]["middleName"], "M");
        assert_eq!(stored["locale"], "en-US");
        assert_eq!(stored["addresses"][0]["locality"], "Paris");
        assert_eq!(
            stored[ENTERPRISE_USER_URN],
            json!({"department": "R&D", "employeeNumber": "42", "manager": {"value": "m1"}})
        );
        assert!(
            !stored.keys().any(|k| k.contains("okta")),
            "unknown schemas are ignored"
        );
    }

    #[test]
    fn projection_keeps_id_schemas_meta() {
        let resource = json!({"id": "1", "schemas": [], "meta": {}, "userName": "u", "name": {"givenName": "g", "familyName": "f"}, "active": true});
        let only = project(
            resource.clone(),
            &attribute_list(Some("name.givenName")),
            &[],
        );
        assert_eq!(
            only,
            json!({"id": "1", "schemas": [], "meta": {}, "name": {"givenName": "g"}})
        );
        let enterprise = json!({"id": "1", ENTERPRISE_USER_URN: {"department": "d", "costCenter": "c"}, "title": "t"});
        assert_eq!(
            project(
                enterprise.clone(),
                &attribute_list(Some(&format!("{ENTERPRISE_USER_URN}:department"))),
                &[]
            ),
            json!({"id": "1", ENTERPRISE_USER_URN: {"department": "d"}})
        );
        assert_eq!(
            project(enterprise, &[], &attribute_list(Some(ENTERPRISE_USER_URN))),
            json!({"id": "1", "title": "t"})
        );
        let without = project(resource, &[], &attribute_list(Some("NAME,active")));
        assert_eq!(
            without,
            json!({"id": "1", "schemas": [], "meta": {}, "userName": "u"})
        );
    }
}
