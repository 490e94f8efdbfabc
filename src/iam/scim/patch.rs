//! SCIM PATCH (RFC 7644 §3.5.2) as Okta and Entra ID send it: `op` in any case, paths `attr`,
//! `attr.sub`, URN-qualified names (core and enterprise extension), `attr[filter]` and
//! `attr[filter].sub`, and path-less operations whose value is an object (with dotted or
//! URN-qualified keys). Read-only attributes (`id`, `meta`, `schemas`, `groups`) may be named
//! with their current values, as Okta does when it renames a group; changing them is a
//! `mutability` error. `password` is checked and dropped; attributes of schemas the resource
//! type does not have are ignored. Operations apply to a copy of the resource's attributes; the
//! caller validates the result as a whole, so a PATCH applies completely or not at all.

use std::collections::HashSet;

use serde_json::{Map, Value as Json};

use super::error::{ScimError, ScimErrorKind};
use super::filter::{get_ci, parse_filter, AttrPath, Filter, Op};
use super::resource::validate_value;
use super::schema::{Attribute, Mutability, Qualified, ResourceSchema};
use crate::echo::echo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Add,
    Replace,
    Remove,
}

impl OpKind {
    /// The op as a PatchOp body writes it.
    fn word(self) -> &'static str {
        match self {
            OpKind::Add => "add",
            OpKind::Replace => "replace",
            OpKind::Remove => "remove",
        }
    }
}

/// A parsed `path` of a stored attribute: a core attribute's name or an extension's URN.
struct Target {
    attr: String,
    filter: Option<Filter>,
    sub: Option<String>,
}

/// What a path names.
enum Resolved {
    Stored(Target),
    /// Read-only (`id`, `meta`, `schemas`, `groups`, ...): only its current value is accepted.
    Fixed {
        attr: String,
        sub: Option<String>,
    },
    /// Write-only (`password`): checked, never stored.
    WriteOnly(&'static Attribute),
    /// An attribute of a schema this resource type does not have.
    Ignored,
}

fn error(kind: ScimErrorKind, detail: impl Into<String>) -> ScimError {
    ScimError::new(kind, detail)
}

/// Applies a PatchOp body's `Operations` to `attributes`; `current` is the resource as it is
/// rendered now (for the read-only attributes an operation may repeat).
pub fn apply_patch(
    schema: &ResourceSchema,
    attributes: &mut Map<String, Json>,
    current: &Json,
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
        let given = get_ci(operation, "op");
        let op = match given
            .and_then(Json::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => OpKind::Add,
            Some("replace") => OpKind::Replace,
            Some("remove") => OpKind::Remove,
            _ => {
                // As sent (case kept); anything but a string is named as such, not echoed.
                let got = match given {
                    None => "no op".to_string(),
                    Some(Json::String(op)) => format!("`{}`", echo(op)),
                    Some(_) => "an op that is not a string".to_string(),
                };
                return Err(error(
                    ScimErrorKind::InvalidSyntax,
                    format!("Operations[{index}].op must be add, replace or remove, got {got}"),
                ));
            }
        };
        let value = get_ci(operation, "value");
        let mut apply = |path: &str, value: Option<&Json>| {
            let resolved = parse_path(schema, path)?;
            apply_resolved(attributes, current, &resolved, op, value, path)
        };
        match get_ci(operation, "path")
            .and_then(Json::as_str)
            .filter(|p| !p.trim().is_empty())
        {
            Some(path) => apply(path, value)?,
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
                    // A schema's URN as key holds that schema's attributes: Entra ID sends
                    // {"urn:...:core:2.0:User": {...}} and {"urn:...:enterprise:2.0:User": {...}}.
                    let prefix = if key.eq_ignore_ascii_case(schema.urn) {
                        Some(String::new())
                    } else if let Qualified::Extension(extension, None) = schema.qualify(key) {
                        Some(format!("{}:", extension.name))
                    } else {
                        None
                    };
                    match (prefix, item.as_object()) {
                        (Some(prefix), Some(inner)) => {
                            let schemas = |key: &String| key.eq_ignore_ascii_case("schemas");
                            for (inner_key, inner_item) in inner.iter().filter(|(k, _)| !schemas(k))
                            {
                                apply(&format!("{prefix}{inner_key}"), Some(inner_item))?;
                            }
                        }
                        _ => apply(key, Some(item))?,
                    }
                }
            }
        }
    }
    Ok(())
}

fn parse_path(schema: &ResourceSchema, path: &str) -> Result<Resolved, ScimError> {
    let bad = || {
        error(
            ScimErrorKind::InvalidPath,
            format!("`{}` is not a valid path", echo(path)),
        )
    };
    let unknown = |what: &str, name: &str| {
        error(
            ScimErrorKind::InvalidPath,
            format!("`{}`: unknown {what} `{}`", echo(path), echo(name)),
        )
    };
    let (head, filter, tail) = match path.find('[') {
        Some(open) => {
            let close = path.rfind(']').filter(|c| *c > open).ok_or_else(bad)?;
            let filter = parse_filter(&path[open + 1..close])
                .map_err(|e| error(ScimErrorKind::InvalidPath, format!("`{}`: {e}", echo(path))))?;
            let tail = &path[close + 1..];
            let sub = match tail.strip_prefix('.') {
                Some(sub) if !sub.is_empty() => Some(sub),
                None if tail.is_empty() => None,
                _ => return Err(bad()),
            };
            (&path[..open], Some(filter), sub)
        }
        None => (path, None, None),
    };
    let (attribute, sub) = match schema.qualify(head) {
        Qualified::UnknownSchema => return Ok(Resolved::Ignored),
        Qualified::Extension(extension, rest) => {
            if filter.is_some() {
                return Err(bad());
            }
            (extension, rest)
        }
        Qualified::Core(name) => {
            let (name, sub) = match (filter.is_some(), name.split_once('.')) {
                (false, Some((name, sub))) => (name, Some(sub)),
                _ => (name, tail),
            };
            if ["id", "meta", "schemas"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(name))
                && filter.is_none()
            {
                return Ok(Resolved::Fixed {
                    attr: name.to_ascii_lowercase(),
                    sub: sub.map(str::to_string),
                });
            }
            if name.eq_ignore_ascii_case("externalId") && filter.is_none() && sub.is_none() {
                return Ok(Resolved::Stored(Target {
                    attr: "externalId".into(),
                    filter: None,
                    sub: None,
                }));
            }
            let attribute = schema
                .attribute(name)
                .ok_or_else(|| unknown("attribute", name))?;
            (attribute, sub)
        }
    };
    let sub = match sub {
        Some(sub) => Some(
            attribute
                .sub(sub)
                .ok_or_else(|| unknown("sub-attribute", sub))?
                .name
                .to_string(),
        ),
        None => None,
    };
    match attribute.mutability {
        Mutability::ReadOnly => {
            return Ok(Resolved::Fixed {
                attr: attribute.name.to_string(),
                sub,
            })
        }
        Mutability::WriteOnly => return Ok(Resolved::WriteOnly(attribute)),
        Mutability::ReadWrite | Mutability::Immutable => {}
    }
    if filter.is_some() && !attribute.multi_valued {
        return Err(error(
            ScimErrorKind::InvalidPath,
            format!("`{}`: a filter needs a multi-valued attribute", echo(path)),
        ));
    }
    Ok(Resolved::Stored(Target {
        attr: attribute.name.to_string(),
        filter,
        sub,
    }))
}

/// Whether `given` repeats `current`: strings case-insensitively, lists as sets, objects
/// field by field (a client may send part of `meta`); null and `[]` are "absent".
fn repeats(current: Option<&Json>, given: &Json) -> bool {
    let absent = |v: &Json| v.is_null() || v.as_array().is_some_and(Vec::is_empty);
    match (current, given) {
        (None, given) => absent(given),
        (Some(current), given) if absent(given) => absent(current),
        (Some(Json::String(a)), Json::String(b)) => a.eq_ignore_ascii_case(b),
        (Some(Json::Array(a)), Json::Array(b)) => {
            a.len() == b.len() && b.iter().all(|g| a.iter().any(|c| repeats(Some(c), g)))
        }
        (Some(current @ Json::Object(_)), Json::Object(b)) => {
            b.iter().all(|(key, g)| repeats(get_ci(current, key), g))
        }
        (Some(a), b) => a == b,
    }
}

fn apply_resolved(
    attributes: &mut Map<String, Json>,
    current: &Json,
    resolved: &Resolved,
    op: OpKind,
    value: Option<&Json>,
    path: &str,
) -> Result<(), ScimError> {
    match resolved {
        Resolved::Ignored => Ok(()),
        Resolved::WriteOnly(attribute) => {
            validate_value(attribute, value.unwrap_or(&Json::Null), attribute.name).map(|_| ())
        }
        Resolved::Fixed { attr, sub } => {
            let now = get_ci(current, attr).and_then(|v| match sub {
                Some(sub) => get_ci(v, sub),
                None => Some(v),
            });
            match value {
                Some(value) if op != OpKind::Remove && repeats(now, value) => Ok(()),
                _ => Err(error(
                    ScimErrorKind::Mutability,
                    format!("`{}` is read-only and cannot be changed", echo(path)),
                )),
            }
        }
        Resolved::Stored(target) => apply_at(attributes, target, op, value, path),
    }
}

/// For `add`/`replace` through `attr[k eq "v"]` that matches nothing: the new item
/// `{"k": "v"}` (Entra ID adds a work phone number as `phoneNumbers[type eq "work"].value`).
fn new_item(filter: &Filter) -> Option<Json> {
    match filter {
        Filter::Compare(AttrPath { attr, sub: None }, Op::Eq, wanted) if !wanted.is_null() => Some(
            Json::Object(Map::from_iter([(attr.clone(), wanted.clone())])),
        ),
        _ => None,
    }
}

/// Whether a list already holds `item`: the same `value` for complex items (a member added
/// again with a `display` is the same member), equality otherwise.
fn holds(list: &[Json], item: &Json) -> bool {
    match get_ci(item, "value") {
        Some(value) => list.iter().any(|have| get_ci(have, "value") == Some(value)),
        None => list.contains(item),
    }
}

/// Above this many lookups in a list, its values are hashed into [`Values`] first: below it a
/// walk of the list per lookup costs less than hashing every value it holds (one op's add of
/// one member to a long group is a walk, as it always was).
const FEW_LOOKUPS: usize = 16;

/// The `value`s of a list's items, looked up without a walk of the list: adding or removing n
/// members of a group of m compared n x m values (an add of 9,000 emails took 10 s of the
/// directory's one thread in a debug build). String values (ids, emails) are in a set; any
/// other is compared as before.
#[derive(Default)]
struct Values {
    strings: HashSet<String>,
    others: Vec<Json>,
}

impl Values {
    fn of<'a>(items: impl IntoIterator<Item = &'a Json>) -> Values {
        let mut values = Values::default();
        for value in items.into_iter().filter_map(|item| get_ci(item, "value")) {
            values.insert(value);
        }
        values
    }

    /// Adds `value`; false if it was there already.
    fn insert(&mut self, value: &Json) -> bool {
        match value {
            Json::String(text) => self.strings.insert(text.clone()),
            other if self.others.contains(other) => false,
            other => {
                self.others.push(other.clone());
                true
            }
        }
    }

    fn contains(&self, value: &Json) -> bool {
        match value {
            Json::String(text) => self.strings.contains(text.as_str()),
            other => self.others.contains(other),
        }
    }
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
                format!("`{}`: {} needs a value", echo(path), op.word()),
            )
        })
    };
    match (&target.filter, &target.sub) {
        (None, None) => match op {
            OpKind::Remove => match value.filter(|v| !v.is_null()) {
                // {"op":"remove","path":"members","value":[{"value":"id"}]}: remove those items.
                Some(Json::Array(items)) => {
                    if let Some(Json::Array(current)) = attributes.get_mut(&target.attr) {
                        let gone = (items.len() > FEW_LOOKUPS).then(|| Values::of(items));
                        let is_gone = |value: &Json| match &gone {
                            Some(gone) => gone.contains(value),
                            None => items.iter().any(|g| get_ci(g, "value") == Some(value)),
                        };
                        current.retain(|item| !get_ci(item, "value").is_some_and(is_gone));
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
                        let mut held =
                            (new.len() > FEW_LOOKUPS).then(|| Values::of(current.iter()));
                        for item in new {
                            let fresh = match (held.as_mut(), get_ci(item, "value")) {
                                (Some(held), Some(value)) => held.insert(value),
                                _ => !holds(current, item),
                            };
                            if fresh {
                                current.push(item.clone());
                            }
                        }
                    }
                    (Some(Json::Array(current)), single) => {
                        if !holds(current, single) {
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
                    format!(
                        "`{}` addresses a sub-attribute of a list; use a filter",
                        echo(path)
                    ),
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
            let no_target = || {
                error(
                    ScimErrorKind::NoTarget,
                    format!("`{}` matches nothing", echo(path)),
                )
            };
            let creates = op != OpKind::Remove;
            let entry = attributes.entry(target.attr.clone());
            let items = match entry.or_insert_with(|| Json::Array(Vec::new())) {
                Json::Array(items) => items,
                _ => return Err(no_target()),
            };
            let mut matching: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| filter.matches(item))
                .map(|(i, _)| i)
                .collect();
            if matching.is_empty() {
                match new_item(filter).filter(|_| creates) {
                    Some(item) => {
                        items.push(item);
                        matching.push(items.len() - 1);
                    }
                    None => return Err(no_target()),
                }
            }
            match (op, sub) {
                (OpKind::Remove, None) => {
                    let mut index = 0;
                    // `matching` is in ascending order.
                    items.retain(|_| {
                        let keep = matching.binary_search(&index).is_err();
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
        let mut current = start.clone();
        current["id"] = json!("id1");
        current["schemas"] = json!([schema.urn]);
        current["meta"] = json!({"resourceType": schema.resource_type, "version": "W/\"1\""});
        apply_patch(
            schema,
            &mut attributes,
            &current,
            &json!({"schemas": [], "Operations": ops}),
        )?;
        Ok(Json::Object(attributes))
    }

    #[test]
    fn read_only_attributes_may_be_repeated_not_changed() {
        let group = json!({"displayName": "old"});
        let out = patched(
            &GROUP,
            group.clone(),
            json!([{"op": "replace", "value": {"id": "id1", "displayName": "New",
                "schemas": ["URN:ietf:params:scim:schemas:core:2.0:Group"], "meta": {"resourceType": "Group"}}}]),
        )
        .unwrap();
        assert_eq!(out, json!({"displayName": "New"}));
        for value in [
            json!({"id": "other", "displayName": "New"}),
            json!({"meta": {"version": "W/\"9\""}}),
            json!({"schemas": ["urn:x"]}),
        ] {
            let err = patched(
                &GROUP,
                group.clone(),
                json!([{"op": "replace", "value": value}]),
            )
            .unwrap_err();
            assert_eq!(err.kind, ScimErrorKind::Mutability, "{value}");
        }
        let err = patched(
            &USER,
            json!({"userName": "a@b.c"}),
            json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
        )
        .unwrap_err();
        assert_eq!(err.kind, ScimErrorKind::Mutability);
    }

    #[test]
    fn password_is_dropped_and_unknown_schemas_ignored() {
        let user = json!({"userName": "a@b.c"});
        let out = patched(&USER, user.clone(), json!([{"op": "replace", "value": {"password": "x",
            "urn:okta:custom:1.0:User:shoe": 44}}, {"op": "replace", "path": "password", "value": "y"}]))
        .unwrap();
        assert_eq!(out, user);
        let err = patched(
            &USER,
            user,
            json!([{"op": "replace", "value": {"password": 3}}]),
        )
        .unwrap_err();
        assert_eq!(err.kind, ScimErrorKind::InvalidValue);
    }

    #[test]
    fn entra_extension_and_filtered_adds() {
        let user = json!({"userName": "a@b.c"});
        let urn = crate::iam::scim::schema::ENTERPRISE_USER_URN;
        let out = patched(&USER, user, json!([
            {"op": "Add", "path": format!("{urn}:manager"), "value": "m1"},
            {"op": "Add", "path": format!("{urn}:department"), "value": "R&D"},
            {"op": "Replace", "value": {urn: {"employeeNumber": "7"}}},
            {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555"},
            {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Paris"},
            {"op": "Replace", "path": "addresses[type eq \"work\"].postalCode", "value": "75001"},
        ]))
        .unwrap();
        assert_eq!(
            out[urn],
            json!({"manager": "m1", "department": "R&D", "employeeNumber": "7"})
        );
        assert_eq!(
            out["phoneNumbers"],
            json!([{"type": "work", "value": "+1 555"}])
        );
        assert_eq!(
            out["addresses"],
            json!([{"type": "work", "locality": "Paris", "postalCode": "75001"}])
        );
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
        let again = patched(
            &GROUP,
            group.clone(),
            json!([{"op": "add", "path": "members", "value": [{"value": "u1", "display": "U"}]}]),
        )
        .unwrap();
        assert_eq!(
            again["members"], group["members"],
            "an existing member is not added twice"
        );
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
        // A list's adds and removes by value find values as `holds` finds them: an item added
        // twice in one op once, a value held already not again, values of any JSON type; so
        // do many, looked up in a set (fillers added and removed again).
        for fillers in [0, FEW_LOOKUPS + 1] {
            let fillers: Vec<Json> = (0..fillers)
                .map(|i| json!({"value": format!("f{i}")}))
                .collect();
            let mut added = vec![
                json!({"value": "u3"}),
                json!({"value": "u3", "display": "again"}),
                json!({"value": "u2"}),
                json!({"value": 7}),
                json!({"value": 7}),
                json!({"display": "no value"}),
                json!({"display": "no value"}),
            ];
            added.extend(fillers.iter().cloned());
            let many = patched(
                &GROUP,
                group.clone(),
                json!([{"op": "add", "path": "members", "value": added}]),
            )
            .unwrap();
            let mut expected = vec![
                json!({"value": "u1"}),
                json!({"value": "u2"}),
                json!({"value": "u3"}),
                json!({"value": 7}),
                json!({"display": "no value"}),
            ];
            expected.extend(fillers.iter().cloned());
            assert_eq!(many["members"], Json::Array(expected));
            let mut removed = vec![
                json!({"value": "u1"}),
                json!({"value": 7}),
                json!({"value": "absent"}),
                json!({"display": "no value"}),
            ];
            removed.extend(fillers);
            let fewer = patched(
                &GROUP,
                many,
                json!([{"op": "remove", "path": "members", "value": removed}]),
            )
            .unwrap();
            assert_eq!(
                fewer["members"],
                json!([{"value": "u2"}, {"value": "u3"}, {"display": "no value"}])
            );
        }
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
                json!([{"op": "add", "path": "shoeSize", "value": "x"}]),
                ScimErrorKind::InvalidPath,
            ),
            (
                json!([{"op": "add", "path": "emails[type eq", "value": "x"}]),
                ScimErrorKind::InvalidPath,
            ),
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                ScimErrorKind::Mutability,
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
