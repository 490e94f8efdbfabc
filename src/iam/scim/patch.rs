//! SCIM PATCH (RFC 7644 §3.5.2) as Okta and Entra ID send it: `op` in any case, paths `attr`,
//! `attr.sub`, URN-qualified names, `attr[filter]` and `attr[filter].sub`, and path-less
//! operations whose value is an object (with dotted or URN-qualified keys). Operations apply to
//! a copy of the resource's attributes; the caller validates the result as a whole, so a PATCH
//! applies completely or not at all.

use serde_json::{Map, Value as Json};

use super::error::{ScimError, ScimErrorKind};
use super::filter::{get_ci, parse_filter, strip_urn, Filter};
use super::schema::ResourceSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Add,
    Replace,
    Remove,
}

/// A parsed `path`.
struct Target {
    attr: String,
    filter: Option<Filter>,
    sub: Option<String>,
}

fn error(kind: ScimErrorKind, detail: impl Into<String>) -> ScimError {
    ScimError::new(kind, detail)
}

/// Applies a PatchOp body's `Operations` to `attributes`.
pub fn apply_patch(
    schema: &ResourceSchema,
    attributes: &mut Map<String, Json>,
    body: &Json,
) -> Result<(), ScimError> {
    let operations = get_ci(body, "Operations")
        .and_then(Json::as_array)
        .ok_or_else(|| {
            error(
                ScimErrorKind::InvalidSyntax,
                "a PATCH body needs an `Operations` list",
            )
        })?;
    if operations.is_empty() {
        return Err(error(ScimErrorKind::InvalidSyntax, "`Operations` is empty"));
    }
    for (index, operation) in operations.iter().enumerate() {
        let op = match get_ci(operation, "op")
            .and_then(Json::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => OpKind::Add,
            Some("replace") => OpKind::Replace,
            Some("remove") => OpKind::Remove,
            other => {
                return Err(error(
                    ScimErrorKind::InvalidSyntax,
                    format!("Operations[{index}].op must be add, replace or remove, got {other:?}"),
                ))
            }
        };
        let value = get_ci(operation, "value");
        match get_ci(operation, "path")
            .and_then(Json::as_str)
            .filter(|p| !p.trim().is_empty())
        {
            Some(path) => {
                let target = parse_path(schema, path)?;
                apply_at(attributes, &target, op, value, path)?;
            }
            None => {
                if op == OpKind::Remove {
                    return Err(error(
                        ScimErrorKind::NoTarget,
                        format!("Operations[{index}]: remove needs a `path`"),
                    ));
                }
                let object = value.and_then(Json::as_object).ok_or_else(|| {
                    error(
                        ScimErrorKind::InvalidValue,
                        format!("Operations[{index}]: without a path, `value` must be an object"),
                    )
                })?;
                for (key, item) in object {
                    // Entra ID sends URN-keyed objects: {"urn:...:User": {...}} is a nested value.
                    if key.to_ascii_lowercase().starts_with("urn:")
                        && item.is_object()
                        && schema.attribute(strip_urn(key)).is_none()
                    {
                        for (inner_key, inner) in item.as_object().expect("checked is_object") {
                            let target = parse_path(schema, inner_key)?;
                            apply_at(attributes, &target, op, Some(inner), inner_key)?;
                        }
                        continue;
                    }
                    let target = parse_path(schema, key)?;
                    apply_at(attributes, &target, op, Some(item), key)?;
                }
            }
        }
    }
    Ok(())
}

fn parse_path(schema: &ResourceSchema, path: &str) -> Result<Target, ScimError> {
    let bad = || {
        error(
            ScimErrorKind::InvalidPath,
            format!("`{path}` is not a valid path"),
        )
    };
    let (head, filter, tail) = match path.find('[') {
        Some(open) => {
            let close = path.rfind(']').filter(|c| *c > open).ok_or_else(bad)?;
            let filter = parse_filter(&path[open + 1..close])
                .map_err(|e| error(ScimErrorKind::InvalidPath, format!("`{path}`: {e}")))?;
            let tail = &path[close + 1..];
            let sub = match tail.strip_prefix('.') {
                Some(sub) if !sub.is_empty() => Some(sub.to_string()),
                None if tail.is_empty() => None,
                _ => return Err(bad()),
            };
            (strip_urn(&path[..open]).to_string(), Some(filter), sub)
        }
        None => {
            let name = strip_urn(path);
            match name.split_once('.') {
                Some((attr, sub)) => (attr.to_string(), None, Some(sub.to_string())),
                None => (name.to_string(), None, None),
            }
        }
    };
    if head.eq_ignore_ascii_case("externalId") && filter.is_none() && tail_is_none(&tail) {
        return Ok(Target {
            attr: "externalId".into(),
            filter: None,
            sub: None,
        });
    }
    let attribute = schema.attribute(&head).ok_or_else(|| {
        error(
            ScimErrorKind::InvalidPath,
            format!("`{path}`: unknown attribute `{head}`"),
        )
    })?;
    if attribute.mutability == "readOnly" {
        return Err(error(
            ScimErrorKind::Mutability,
            format!("`{}` is read-only", attribute.name),
        ));
    }
    let sub = match tail {
        Some(sub) => {
            let declared = attribute.sub(&sub).ok_or_else(|| {
                error(
                    ScimErrorKind::InvalidPath,
                    format!("`{path}`: unknown sub-attribute `{sub}`"),
                )
            })?;
            Some(declared.name.to_string())
        }
        None => None,
    };
    if filter.is_some() && !attribute.multi_valued {
        return Err(error(
            ScimErrorKind::InvalidPath,
            format!("`{path}`: a filter needs a multi-valued attribute"),
        ));
    }
    Ok(Target {
        attr: attribute.name.to_string(),
        filter,
        sub,
    })
}

fn tail_is_none(tail: &Option<String>) -> bool {
    tail.is_none()
}

fn apply_at(
    attributes: &mut Map<String, Json>,
    target: &Target,
    op: OpKind,
    value: Option<&Json>,
    path: &str,
) -> Result<(), ScimError> {
    let need_value = || {
        value.filter(|v| !v.is_null()).ok_or_else(|| {
            error(
                ScimErrorKind::InvalidValue,
                format!("`{path}`: {op:?} needs a value"),
            )
        })
    };
    match (&target.filter, &target.sub) {
        (None, None) => match op {
            OpKind::Remove => match value.filter(|v| !v.is_null()) {
                // {"op":"remove","path":"members","value":[{"value":"id"}]}: remove those items.
                Some(Json::Array(items)) => {
                    if let Some(Json::Array(current)) = attributes.get_mut(&target.attr) {
                        current.retain(|item| {
                            !items.iter().any(|gone| {
                                get_ci(gone, "value")
                                    .is_some_and(|v| Some(v) == get_ci(item, "value"))
                            })
                        });
                    }
                }
                _ => {
                    attributes.remove(&target.attr);
                }
            },
            OpKind::Add => {
                let value = need_value()?;
                match (attributes.get_mut(&target.attr), value) {
                    (Some(Json::Array(current)), Json::Array(new)) => {
                        for item in new {
                            if !current.contains(item) {
                                current.push(item.clone());
                            }
                        }
                    }
                    (Some(Json::Array(current)), single) => {
                        if !current.contains(single) {
                            current.push(single.clone());
                        }
                    }
                    (Some(Json::Object(current)), Json::Object(new)) => {
                        for (k, v) in new {
                            current.insert(k.clone(), v.clone());
                        }
                    }
                    _ => {
                        attributes.insert(target.attr.clone(), value.clone());
                    }
                }
            }
            OpKind::Replace => {
                attributes.insert(target.attr.clone(), need_value()?.clone());
            }
        },
        (None, Some(sub)) => {
            let entry = attributes
                .entry(target.attr.clone())
                .or_insert_with(|| Json::Object(Map::new()));
            let object = entry.as_object_mut().ok_or_else(|| {
                error(
                    ScimErrorKind::InvalidPath,
                    format!("`{path}` addresses a sub-attribute of a list; use a filter"),
                )
            })?;
            match op {
                OpKind::Remove => {
                    object.remove(sub);
                }
                _ => {
                    object.insert(sub.clone(), need_value()?.clone());
                }
            }
        }
        (Some(filter), sub) => {
            let items = match attributes.get_mut(&target.attr) {
                Some(Json::Array(items)) => items,
                _ => {
                    return Err(error(
                        ScimErrorKind::NoTarget,
                        format!("`{path}` matches nothing"),
                    ))
                }
            };
            let matching: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| filter.matches(item))
                .map(|(i, _)| i)
                .collect();
            if matching.is_empty() {
                return Err(error(
                    ScimErrorKind::NoTarget,
                    format!("`{path}` matches nothing"),
                ));
            }
            match (op, sub) {
                (OpKind::Remove, None) => {
                    let mut index = 0;
                    items.retain(|_| {
                        let keep = !matching.contains(&index);
                        index += 1;
                        keep
                    });
                }
                (OpKind::Remove, Some(sub)) => {
                    for i in matching {
                        if let Some(object) = items[i].as_object_mut() {
                            object.remove(sub);
                        }
                    }
                }
                (_, None) => {
                    let value = need_value()?;
                    for i in matching {
                        match (&mut items[i], value) {
                            (Json::Object(item), Json::Object(new)) if op == OpKind::Add => {
                                for (k, v) in new {
                                    item.insert(k.clone(), v.clone());
                                }
                            }
                            (slot, _) => *slot = value.clone(),
                        }
                    }
                }
                (_, Some(sub)) => {
                    let value = need_value()?;
                    for i in matching {
                        if let Some(object) = items[i].as_object_mut() {
                            object.insert(sub.clone(), value.clone());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::schema::{GROUP, USER};
    use super::*;
    use serde_json::json;

    fn patched(schema: &ResourceSchema, start: Json, ops: Json) -> Result<Json, ScimError> {
        let mut attributes = start.as_object().unwrap().clone();
        apply_patch(
            schema,
            &mut attributes,
            &json!({"schemas": [], "Operations": ops}),
        )?;
        Ok(Json::Object(attributes))
    }

    #[test]
    fn okta_and_entra_shapes() {
        let user = json!({"userName": "a@b.c", "active": true, "emails": [{"value": "a@b.c", "type": "work"}]});
        let out = patched(
            &USER,
            user.clone(),
            json!([{"op": "Replace", "value": {"active": false, "name.givenName": "Ann"}}]),
        )
        .unwrap();
        assert_eq!(out["active"], false);
        assert_eq!(out["name"], json!({"givenName": "Ann"}));
        let out = patched(&USER, user.clone(), json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@b.c"}])).unwrap();
        assert_eq!(out["emails"], json!([{"value": "new@b.c", "type": "work"}]));
        let out = patched(&USER, user.clone(), json!([{"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName", "value": "A"}])).unwrap();
        assert_eq!(out["displayName"], "A");
        let err = patched(
            &USER,
            user,
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
        )
        .unwrap_err();
        assert_eq!(err.kind, ScimErrorKind::NoTarget);
    }

    #[test]
    fn group_membership() {
        let group = json!({"displayName": "g", "members": [{"value": "u1"}, {"value": "u2"}]});
        let out = patched(
            &GROUP,
            group.clone(),
            json!([{"op": "add", "path": "members", "value": [{"value": "u3"}]}]),
        )
        .unwrap();
        assert_eq!(out["members"].as_array().unwrap().len(), 3);
        let out = patched(
            &GROUP,
            group.clone(),
            json!([{"op": "remove", "path": "members[value eq \"u1\"]"}]),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u2"}]));
        let out = patched(
            &GROUP,
            group.clone(),
            json!([{"op": "remove", "path": "members", "value": [{"value": "u2"}]}]),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u1"}]));
        let out = patched(
            &GROUP,
            group,
            json!([{"op": "replace", "path": "members", "value": []}]),
        )
        .unwrap();
        assert_eq!(out["members"], json!([]));
    }

    #[test]
    fn bad_operations_are_refused() {
        let user = json!({"userName": "a@b.c"});
        for (ops, kind) in [
            (
                json!([{"op": "move", "path": "userName"}]),
                ScimErrorKind::InvalidSyntax,
            ),
            (
                json!([{"op": "add", "path": "nickName", "value": "x"}]),
                ScimErrorKind::InvalidPath,
            ),
            (
                json!([{"op": "add", "path": "emails[type eq", "value": "x"}]),
                ScimErrorKind::InvalidPath,
            ),
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                ScimErrorKind::InvalidPath,
            ),
            (json!([{"op": "remove"}]), ScimErrorKind::NoTarget),
            (json!([]), ScimErrorKind::InvalidSyntax),
        ] {
            assert_eq!(
                patched(&USER, user.clone(), ops.clone()).unwrap_err().kind,
                kind,
                "{ops}"
            );
        }
    }
}
