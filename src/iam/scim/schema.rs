//! The SCIM schemas Quiver serves (users, groups, service accounts): the single description from
//! which `/Schemas` is published and requests are validated, so that what is declared is exactly
//! what is stored and returned.

use serde_json::{json, Value as Json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Complex,
    Reference,
}

/// One attribute of a schema.
#[derive(Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: Kind,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: &'static str,
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
        mutability: "readWrite",
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

const ROLE_SUB: &[Attribute] = &[simple("type", Kind::String), simple("value", Kind::String)];
const ROLES: Attribute = complex("roles", true, ROLE_SUB);

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
        ],
    ),
    simple("displayName", Kind::String),
    complex(
        "emails",
        true,
        &[
            simple("value", Kind::String),
            simple("type", Kind::String),
            simple("primary", Kind::Boolean),
        ],
    ),
    simple("active", Kind::Boolean),
    ROLES,
];

const MEMBER_SUB: &[Attribute] = &[
    Attribute {
        mutability: "immutable",
        ..simple("value", Kind::String)
    },
    Attribute {
        mutability: "immutable",
        reference_types: &["User", "ServiceAccount"],
        ..simple("$ref", Kind::Reference)
    },
    Attribute {
        mutability: "immutable",
        ..simple("type", Kind::String)
    },
    Attribute {
        mutability: "readOnly",
        ..simple("display", Kind::String)
    },
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
    // Shown once, in the response that creates the account.
    Attribute {
        mutability: "readOnly",
        returned: "request",
        case_exact: true,
        ..simple("apiKey", Kind::String)
    },
];

/// A resource type and its schema.
#[derive(Debug)]
pub struct ResourceSchema {
    pub resource_type: &'static str,
    pub endpoint: &'static str,
    pub urn: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

pub const USER: ResourceSchema = ResourceSchema {
    resource_type: "User",
    endpoint: "/Users",
    urn: "urn:ietf:params:scim:schemas:core:2.0:User",
    description: "A person; Tecton users sign in with their email as userName",
    attributes: USER_ATTRIBUTES,
};

pub const GROUP: ResourceSchema = ResourceSchema {
    resource_type: "Group",
    endpoint: "/Groups",
    urn: "urn:ietf:params:scim:schemas:core:2.0:Group",
    description: "A group of users and service accounts; members inherit its roles",
    attributes: GROUP_ATTRIBUTES,
};

pub const SERVICE_ACCOUNT: ResourceSchema = ResourceSchema {
    resource_type: "ServiceAccount",
    endpoint: "/ServiceAccounts",
    urn: "urn:ietf:params:scim:schemas:core:2.0:ServiceAccount",
    description: "A non-human principal whose API key calls Quiver",
    attributes: SERVICE_ACCOUNT_ATTRIBUTES,
};

pub const ALL: [&ResourceSchema; 3] = [&USER, &GROUP, &SERVICE_ACCOUNT];

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

impl ResourceSchema {
    /// The attribute named `name` (case-insensitive).
    pub fn attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

impl Attribute {
    pub fn sub(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    fn to_json(&self) -> Json {
        let mut attribute = json!({
            "name": self.name,
            "type": match self.kind { Kind::String => "string", Kind::Boolean => "boolean", Kind::Complex => "complex", Kind::Reference => "reference" },
            "multiValued": self.multi_valued,
            "description": "",
            "required": self.required,
            "caseExact": self.case_exact,
            "mutability": self.mutability,
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

/// `/Schemas/{urn}`.
pub fn schema_json(schema: &ResourceSchema, base_url: &str) -> Json {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": schema.urn,
        "name": schema.resource_type,
        "description": schema.description,
        "attributes": schema.attributes.iter().map(Attribute::to_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base_url}/Schemas/{}", schema.urn)},
    })
}

/// `/ResourceTypes/{name}`.
pub fn resource_type_json(schema: &ResourceSchema, base_url: &str) -> Json {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": schema.resource_type,
        "name": schema.resource_type,
        "endpoint": schema.endpoint,
        "description": schema.description,
        "schema": schema.urn,
        "meta": {"resourceType": "ResourceType", "location": format!("{base_url}/ResourceTypes/{}", schema.resource_type)},
    })
}

/// `/ServiceProviderConfig`: what is implemented, and nothing more.
pub fn service_provider_config(base_url: &str) -> Json {
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
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base_url}/ServiceProviderConfig")},
    })
}
