//! The SCIM schemas Quiver serves (users with the enterprise extension, groups, service
//! accounts): the single description from which `/Schemas` and `/ResourceTypes` are published
//! and requests are validated, so that what is declared is exactly what is stored and returned.
//!
//! Users carry the whole RFC 7643 §4.1 core schema and the §4.3 enterprise extension, all kept
//! and returned, except `password`: Tecton has no passwords, so it is declared `writeOnly` and
//! `returned: never`, checked for type and discarded.

use serde_json::{json, Value as Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Complex,
    Reference,
    /// Base64 text (`x509Certificates.value`).
    Binary,
}

/// RFC 7643 §7 `mutability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadWrite,
    ReadOnly,
    Immutable,
    /// Accepted on input, never stored or returned (`password`).
    WriteOnly,
}

/// One attribute of a schema.
#[derive(Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: Kind,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: &'static str,
    pub uniqueness: &'static str,
    pub sub_attributes: &'static [Attribute],
    pub reference_types: &'static [&'static str],
}

const fn simple(name: &'static str, kind: Kind) -> Attribute {
    Attribute {
        name,
        kind,
        multi_valued: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: "default",
        uniqueness: "none",
        sub_attributes: &[],
        reference_types: &[],
    }
}

const fn complex(
    name: &'static str,
    multi_valued: bool,
    sub_attributes: &'static [Attribute],
) -> Attribute {
    Attribute {
        multi_valued,
        sub_attributes,
        ..simple(name, Kind::Complex)
    }
}

const fn read_only(attribute: Attribute) -> Attribute {
    Attribute {
        mutability: Mutability::ReadOnly,
        ..attribute
    }
}

const fn external_reference(name: &'static str) -> Attribute {
    Attribute {
        reference_types: &["external"],
        ..simple(name, Kind::Reference)
    }
}

/// `value`, `display`, `type`, `primary`: the sub-attributes of RFC 7643's multi-valued
/// attributes, whose `value` differs in type.
const fn plural_sub(value: Attribute) -> [Attribute; 4] {
    [
        value,
        simple("display", Kind::String),
        simple("type", Kind::String),
        simple("primary", Kind::Boolean),
    ]
}

/// emails, phoneNumbers, ims, entitlements.
const PLURAL_SUB: &[Attribute] = &plural_sub(simple("value", Kind::String));

const ROLE_SUB: &[Attribute] = &[simple("type", Kind::String), simple("value", Kind::String)];
const ROLES: Attribute = complex("roles", true, ROLE_SUB);

/// A user's or service account's groups: computed from group membership, never written.
const GROUPS: Attribute = read_only(complex(
    "groups",
    true,
    &[
        read_only(simple("value", Kind::String)),
        read_only(Attribute {
            reference_types: &["Group"],
            ..simple("$ref", Kind::Reference)
        }),
        read_only(simple("display", Kind::String)),
        read_only(simple("type", Kind::String)),
    ],
));

const USER_ATTRIBUTES: &[Attribute] = &[
    Attribute {
        required: true,
        uniqueness: "server",
        ..simple("userName", Kind::String)
    },
    complex(
        "name",
        false,
        &[
            simple("formatted", Kind::String),
            simple("familyName", Kind::String),
            simple("givenName", Kind::String),
            simple("middleName", Kind::String),
            simple("honorificPrefix", Kind::String),
            simple("honorificSuffix", Kind::String),
        ],
    ),
    simple("displayName", Kind::String),
    simple("nickName", Kind::String),
    external_reference("profileUrl"),
    simple("title", Kind::String),
    simple("userType", Kind::String),
    simple("preferredLanguage", Kind::String),
    simple("locale", Kind::String),
    simple("timezone", Kind::String),
    simple("active", Kind::Boolean),
    Attribute {
        mutability: Mutability::WriteOnly,
        returned: "never",
        case_exact: true,
        ..simple("password", Kind::String)
    },
    complex("emails", true, PLURAL_SUB),
    complex("phoneNumbers", true, PLURAL_SUB),
    complex("ims", true, PLURAL_SUB),
    complex("photos", true, &plural_sub(external_reference("value"))),
    complex(
        "addresses",
        true,
        &[
            simple("formatted", Kind::String),
            simple("streetAddress", Kind::String),
            simple("locality", Kind::String),
            simple("region", Kind::String),
            simple("postalCode", Kind::String),
            simple("country", Kind::String),
            simple("type", Kind::String),
            simple("primary", Kind::Boolean),
        ],
    ),
    GROUPS,
    complex("entitlements", true, PLURAL_SUB),
    ROLES,
    complex(
        "x509Certificates",
        true,
        &plural_sub(simple("value", Kind::Binary)),
    ),
];

pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// RFC 7643 §4.3. Stored, like on the wire, as one object under the extension's URN.
pub const ENTERPRISE_USER: Extension = Extension {
    name: "EnterpriseUser",
    description: "Enterprise User",
    attribute: complex(
        ENTERPRISE_USER_URN,
        false,
        &[
            simple("employeeNumber", Kind::String),
            simple("costCenter", Kind::String),
            simple("organization", Kind::String),
            simple("division", Kind::String),
            simple("department", Kind::String),
            complex(
                "manager",
                false,
                &[
                    Attribute {
                        reference_types: &["User"],
                        ..simple("value", Kind::String)
                    },
                    Attribute {
                        reference_types: &["User"],
                        ..simple("$ref", Kind::Reference)
                    },
                    simple("displayName", Kind::String),
                ],
            ),
        ],
    ),
};

const MEMBER_SUB: &[Attribute] = &[
    Attribute {
        mutability: Mutability::Immutable,
        ..simple("value", Kind::String)
    },
    Attribute {
        mutability: Mutability::Immutable,
        reference_types: &["User", "ServiceAccount"],
        ..simple("$ref", Kind::Reference)
    },
    Attribute {
        mutability: Mutability::Immutable,
        ..simple("type", Kind::String)
    },
    read_only(simple("display", Kind::String)),
];

const GROUP_ATTRIBUTES: &[Attribute] = &[
    Attribute {
        required: true,
        uniqueness: "server",
        ..simple("displayName", Kind::String)
    },
    simple("description", Kind::String),
    complex("members", true, MEMBER_SUB),
    ROLES,
];

const SERVICE_ACCOUNT_ATTRIBUTES: &[Attribute] = &[
    Attribute {
        required: true,
        uniqueness: "server",
        ..simple("name", Kind::String)
    },
    simple("description", Kind::String),
    simple("active", Kind::Boolean),
    ROLES,
    GROUPS,
    // Shown once, in the response that creates the account.
    Attribute {
        returned: "request",
        case_exact: true,
        ..read_only(simple("apiKey", Kind::String))
    },
];

/// A schema extension: its attributes are the sub-attributes of `attribute`, a complex
/// attribute named by the extension's URN, which is how resources carry it.
#[derive(Debug)]
pub struct Extension {
    pub name: &'static str,
    pub description: &'static str,
    pub attribute: Attribute,
}

impl Extension {
    pub fn urn(&self) -> &'static str {
        self.attribute.name
    }
}

/// A resource type and its schema.
#[derive(Debug)]
pub struct ResourceSchema {
    pub resource_type: &'static str,
    pub endpoint: &'static str,
    pub urn: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
    pub extensions: &'static [&'static Extension],
}

pub const USER: ResourceSchema = ResourceSchema {
    resource_type: "User",
    endpoint: "/Users",
    urn: "urn:ietf:params:scim:schemas:core:2.0:User",
    description: "A person; Tecton users sign in with their email as userName",
    attributes: USER_ATTRIBUTES,
    extensions: &[&ENTERPRISE_USER],
};

pub const GROUP: ResourceSchema = ResourceSchema {
    resource_type: "Group",
    endpoint: "/Groups",
    urn: "urn:ietf:params:scim:schemas:core:2.0:Group",
    description: "A group of users and service accounts; members inherit its roles",
    attributes: GROUP_ATTRIBUTES,
    extensions: &[],
};

pub const SERVICE_ACCOUNT: ResourceSchema = ResourceSchema {
    resource_type: "ServiceAccount",
    endpoint: "/ServiceAccounts",
    urn: "urn:ietf:params:scim:schemas:core:2.0:ServiceAccount",
    description: "A non-human principal whose API key calls Quiver",
    attributes: SERVICE_ACCOUNT_ATTRIBUTES,
    extensions: &[],
};

pub const ALL: [&ResourceSchema; 3] = [&USER, &GROUP, &SERVICE_ACCOUNT];

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// Where an attribute name (possibly URN-qualified) points.
#[derive(Debug)]
pub enum Qualified<'a> {
    /// A core attribute path (`userName`, `name.givenName`, `emails[type eq "work"]`).
    Core(&'a str),
    /// An extension itself (`rest` is `None`) or a path inside it.
    Extension(&'static Attribute, Option<&'a str>),
    /// A URN of a schema this resource type does not have: ignored, not refused.
    UnknownSchema,
}

/// `name` after `prefix` and a `:`, compared case-insensitively.
fn after_urn<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    name[prefix.len()..].strip_prefix(':')
}

impl ResourceSchema {
    /// The core attribute named `name` (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Resolves a schema URN prefix: `urn:...:core:2.0:User:userName` is the core `userName`,
    /// `urn:...:enterprise:2.0:User:department` the extension's `department`.
    pub fn qualify<'a>(&self, name: &'a str) -> Qualified<'a> {
        if let Some(rest) = after_urn(name, self.urn) {
            return Qualified::Core(rest);
        }
        for extension in self.extensions {
            let urn = extension.urn();
            if name.eq_ignore_ascii_case(urn) {
                return Qualified::Extension(&extension.attribute, None);
            }
            if let Some(rest) = after_urn(name, urn) {
                return Qualified::Extension(&extension.attribute, Some(rest));
            }
        }
        if name
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        {
            Qualified::UnknownSchema
        } else {
            Qualified::Core(name)
        }
    }

    /// Every schema URN a stored resource declares: the core one, and each extension it holds.
    pub fn schemas_of(&self, attributes: &serde_json::Map<String, Json>) -> Vec<&'static str> {
        std::iter::once(self.urn)
            .chain(
                self.extensions
                    .iter()
                    .map(|e| e.urn())
                    .filter(|urn| attributes.contains_key(*urn)),
            )
            .collect()
    }
}

impl Attribute {
    /// Whether this is a schema extension's object (named by its URN).
    pub fn is_extension(&self) -> bool {
        self.name.starts_with("urn:")
    }

    pub fn sub(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    fn to_json(&self) -> Json {
        let mut attribute = json!({
            "name": self.name,
            "type": match self.kind { Kind::String => "string", Kind::Boolean => "boolean", Kind::Complex => "complex", Kind::Reference => "reference", Kind::Binary => "binary" },
            "multiValued": self.multi_valued,
            "description": "",
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": match self.mutability { Mutability::ReadWrite => "readWrite", Mutability::ReadOnly => "readOnly", Mutability::Immutable => "immutable", Mutability::WriteOnly => "writeOnly" },
            "returned": self.returned,
            "uniqueness": self.uniqueness,
        });
        if !self.sub_attributes.is_empty() {
            attribute["subAttributes"] =
                Json::Array(self.sub_attributes.iter().map(Attribute::to_json).collect());
        }
        if !self.reference_types.is_empty() {
            attribute["referenceTypes"] = json!(self.reference_types);
        }
        attribute
    }
}

fn schema_document(urn: &str, name: &str, description: &str, attributes: &[Attribute]) -> Json {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": urn,
        "name": name,
        "description": description,
        "attributes": attributes.iter().map(Attribute::to_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("/Schemas/{urn}")},
    })
}

/// Every `/Schemas` document: each resource type's core schema, then each extension's.
/// Locations are relative to the SCIM base URL, which only `http` knows.
pub fn all_schemas() -> Vec<Json> {
    let core = ALL
        .iter()
        .map(|s| schema_document(s.urn, s.resource_type, s.description, s.attributes));
    let extensions = ALL
        .iter()
        .flat_map(|s| s.extensions)
        .map(|e| schema_document(e.urn(), e.name, e.description, e.attribute.sub_attributes));
    core.chain(extensions).collect()
}

/// `/ResourceTypes/{name}`.
pub fn resource_type_json(schema: &ResourceSchema) -> Json {
    let extensions: Vec<Json> = schema
        .extensions
        .iter()
        .map(|e| json!({"schema": e.urn(), "required": false}))
        .collect();
    let mut resource_type = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": schema.resource_type,
        "name": schema.resource_type,
        "endpoint": schema.endpoint,
        "description": schema.description,
        "schema": schema.urn,
        "meta": {"resourceType": "ResourceType", "location": format!("/ResourceTypes/{}", schema.resource_type)},
    });
    if !extensions.is_empty() {
        resource_type["schemaExtensions"] = Json::Array(extensions);
    }
    resource_type
}

/// `/ServiceProviderConfig`: what is implemented, and nothing more.
pub fn service_provider_config() -> Json {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": 1000},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "API key",
            "description": "A service account API key with account_type=admin, as `Authorization: Bearer <key>` or `Tecton-key <key>`",
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": "/ServiceProviderConfig"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urn_prefixes_resolve_to_core_extension_or_unknown() {
        assert!(matches!(
            USER.qualify("userName"),
            Qualified::Core("userName")
        ));
        assert!(matches!(
            USER.qualify("URN:ietf:params:scim:schemas:core:2.0:User:name.givenName"),
            Qualified::Core("name.givenName")
        ));
        assert!(matches!(
            USER.qualify("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"),
            Qualified::Extension(e, Some("manager")) if e.name == ENTERPRISE_USER_URN
        ));
        assert!(matches!(
            USER.qualify(ENTERPRISE_USER_URN),
            Qualified::Extension(_, None)
        ));
        assert!(matches!(
            GROUP.qualify(ENTERPRISE_USER_URN),
            Qualified::UnknownSchema
        ));
        assert!(matches!(
            USER.qualify("urn:okta:custom:1.0:User:shoeSize"),
            Qualified::UnknownSchema
        ));
    }

    #[test]
    fn discovery_lists_the_extension_and_password_is_write_only() {
        let schemas = all_schemas();
        let ids: Vec<&str> = schemas.iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&ENTERPRISE_USER_URN));
        let password = USER.attribute("password").unwrap().to_json();
        assert_eq!(
            (
                password["mutability"].as_str(),
                password["returned"].as_str()
            ),
            (Some("writeOnly"), Some("never"))
        );
        assert_eq!(
            resource_type_json(&USER)["schemaExtensions"][0]["schema"],
            ENTERPRISE_USER_URN
        );
    }
}
