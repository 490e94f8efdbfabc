//! Okta's and Microsoft Entra ID's documented provisioning sequences, replayed against the real
//! server. Request bodies are the published samples byte for byte (Okta: "SCIM 2.0 Protocol
//! Reference"; Microsoft: "Tutorial: Develop and plan provisioning for a SCIM endpoint in
//! Microsoft Entra ID"); only the documents' resource ids are replaced by the ids this server
//! assigned, since ids are the server's to choose.

use serde_json::{json, Value as Json};

use super::common::{Reply, Server, ADMIN_KEY};
use super::identity::{assert_scim_error, scim_bytes};
use super::scim_protocol::names;

/// Sends `body` as these exact bytes, as the admin.
fn send(server: &Server, method: &str, path: &str, body: Option<&str>) -> Reply {
    scim_bytes(
        server,
        method,
        path,
        ADMIN_KEY,
        body.map(str::as_bytes),
        &[],
    )
}

/// Sends and expects `status`; returns the JSON body (`null` for an empty one).
fn expect(server: &Server, method: &str, path: &str, body: Option<&str>, status: u16) -> Json {
    let reply = send(server, method, path, body);
    assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
    if reply.body.is_empty() {
        Json::Null
    } else {
        reply.json()
    }
}

fn id_of(resource: &Json) -> String {
    resource["id"].as_str().expect("an id").to_string()
}

/// The ids of the groups a user's `groups` attribute lists.
fn group_ids(user: &Json) -> Vec<&str> {
    user["groups"]
        .as_array()
        .map(|groups| groups.iter().filter_map(|g| g["value"].as_str()).collect())
        .unwrap_or_default()
}

const OKTA_USER_ID: &str = "23a35c27-23d3-4c03-b4c5-6443c09e7173";
const OKTA_OTHER_USER_ID: &str = "89bb1940-b905-4575-9e7f-6f887cfb368e";
const OKTA_GROUP_ID: &str = "abf4dd94-a4c0-4f67-89c9-76b03340cb9b";

const OKTA_CREATE_USER: &str = r#"{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "test.user@okta.local",
    "name": {
        "givenName": "Test",
        "familyName": "User"
    },
    "emails": [{
        "primary": true,
        "value": "test.user@okta.local",
        "type": "work"
    }],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": true
}"#;

const OKTA_REPLACE_USER: &str = r#"{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "id": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
    "userName": "test.user@okta.local",
    "name": {
        "givenName": "Another",
        "middleName": "Excited",
        "familyName": "User"
    },
    "emails": [{
        "primary": true,
        "value": "test.user@okta.local",
        "type": "work",
        "display": "test.user@okta.local"
    }],
    "active": true,
    "groups": [],
    "meta": {
        "resourceType": "User"
    }
}"#;

const OKTA_DEACTIVATE_USER: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "replace",
        "value": {
            "active": false
        }
    }]
}"#;

/// The password sync the reference lists among Okta's PATCH operations, in the shape of its
/// deactivation.
const OKTA_SYNC_PASSWORD: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "replace",
        "value": {
            "password": "t1meMa$9\"ine"
        }
    }]
}"#;

const OKTA_CREATE_GROUP: &str = r#"{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
    "displayName": "Test SCIMv2",
    "members": []
}"#;

const OKTA_RENAME_GROUP: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "replace",
        "value": {
            "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
            "displayName": "Test SCIMv2"
        }
    }]
}"#;

const OKTA_UPDATE_MEMBERS: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
          "op": "remove",
          "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"
        },
        {
          "op": "add",
          "path": "members",
          "value": [{
              "value": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
              "display": "test.user@okta.local"
        }]
    }]
}"#;

const OKTA_REPLACE_MEMBERS: &str = r#"{
  "schemas": [
    "urn:ietf:params:scim:api:messages:2.0:PatchOp"
  ],
  "Operations": [
    {
      "op": "replace",
      "path": "members",
      "value": [
        {
          "value": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
          "display": "test.user@okta.local"
        },
        {
          "value": "89bb1940-b905-4575-9e7f-6f887cfb368e",
          "display": "test.user@okta.local"
        }
      ]
    }
  ]
}"#;

#[test]
fn okta_provisioning_sequence_from_its_scim_reference() {
    let server = Server::start();
    let lookup =
        "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100";
    let none = expect(&server, "GET", lookup, None, 200);
    assert_eq!(
        (
            &none["totalResults"],
            &none["startIndex"],
            &none["itemsPerPage"],
            &none["Resources"]
        ),
        (&json!(0), &json!(1), &json!(0), &json!([]))
    );

    let created = send(&server, "POST", "/Users", Some(OKTA_CREATE_USER));
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        !created.body.contains("1mz050nq"),
        "the password is never returned"
    );
    let user = created.json();
    let user_id = id_of(&user);
    for (attribute, sent) in [
        ("userName", json!("test.user@okta.local")),
        ("name", json!({"givenName": "Test", "familyName": "User"})),
        ("locale", json!("en-US")),
        ("externalId", json!("00ujl29u0le5T6Aj10h7")),
        ("displayName", json!("Test User")),
        ("active", json!(true)),
    ] {
        assert_eq!(user[attribute], sent, "{attribute}");
    }
    assert!(user.get("password").is_none());
    assert_scim_error(
        &send(&server, "POST", "/Users", Some(OKTA_CREATE_USER)),
        409,
        Some("uniqueness"),
        "already exists",
    );
    let found = expect(&server, "GET", lookup, None, 200);
    assert_eq!(found["Resources"][0]["id"], user_id.as_str());
    let all = expect(&server, "GET", "/Users?startIndex=1&count=100", None, 200);
    assert_eq!(all["totalResults"], 1);
    let read = expect(&server, "GET", &format!("/Users/{user_id}"), None, 200);
    assert_eq!(read["locale"], "en-US");

    let user_path = format!("/Users/{user_id}");
    let replace = OKTA_REPLACE_USER.replace(OKTA_USER_ID, &user_id);
    let replaced = expect(&server, "PUT", &user_path, Some(&replace), 200);
    assert_eq!(replaced["name"]["middleName"], "Excited");
    assert_eq!(replaced["emails"][0]["display"], "test.user@okta.local");

    let deactivated = expect(
        &server,
        "PATCH",
        &user_path,
        Some(OKTA_DEACTIVATE_USER),
        200,
    );
    assert_eq!(deactivated["active"], false);
    let read = expect(&server, "GET", &user_path, None, 200);
    assert_eq!(read["active"], false, "deactivation is a soft delete");
    let reactivate = OKTA_DEACTIVATE_USER.replace("false", "true");
    let reactivated = expect(&server, "PATCH", &user_path, Some(&reactivate), 200);
    assert_eq!(reactivated["active"], true);
    let synced = send(&server, "PATCH", &user_path, Some(OKTA_SYNC_PASSWORD));
    assert_eq!(synced.status, 200, "{}", synced.body);
    assert!(!synced.body.contains("t1meMa"));

    // A second user, the one the membership sample removes.
    let other = OKTA_CREATE_USER
        .replace("test.user@okta.local", "other.user@okta.local")
        .replace("00ujl29u0le5T6Aj10h7", "00ujl29u0le5T6Aj10h8");
    let other_id = id_of(&expect(&server, "POST", "/Users", Some(&other), 201));

    let group = expect(&server, "POST", "/Groups", Some(OKTA_CREATE_GROUP), 201);
    assert_eq!(group["displayName"], "Test SCIMv2");
    let group_id = id_of(&group);
    let group_path = format!("/Groups/{group_id}");
    let groups = expect(&server, "GET", "/Groups?startIndex=1&count=100", None, 200);
    assert_eq!(groups["Resources"][0]["id"], group_id.as_str());
    expect(&server, "GET", &group_path, None, 200);

    let rename = OKTA_RENAME_GROUP.replace(OKTA_GROUP_ID, &group_id);
    let same = expect(&server, "PATCH", &group_path, Some(&rename), 200);
    assert_eq!(same["displayName"], "Test SCIMv2");
    let rename = rename.replace("Test SCIMv2", "Test SCIMv20");
    let renamed = expect(&server, "PATCH", &group_path, Some(&rename), 200);
    assert_eq!(renamed["displayName"], "Test SCIMv20");
    let with_ids = |body: &str| {
        body.replace(OKTA_USER_ID, &user_id)
            .replace(OKTA_OTHER_USER_ID, &other_id)
    };

    let pushed = expect(
        &server,
        "PATCH",
        &group_path,
        Some(&with_ids(OKTA_REPLACE_MEMBERS)),
        200,
    );
    assert_eq!(pushed["members"].as_array().map(Vec::len), Some(2));
    let other_path = format!("/Users/{other_id}");
    let other_user = expect(&server, "GET", &other_path, None, 200);
    assert_eq!(group_ids(&other_user), vec![group_id.as_str()]);
    assert_eq!(other_user["groups"][0]["display"], "Test SCIMv20");

    let updated = expect(
        &server,
        "PATCH",
        &group_path,
        Some(&with_ids(OKTA_UPDATE_MEMBERS)),
        200,
    );
    assert_eq!(updated["members"], json!([{"value": user_id}]));
    assert!(group_ids(&expect(&server, "GET", &other_path, None, 200)).is_empty());
    let member = expect(&server, "GET", &user_path, None, 200);
    assert_eq!(group_ids(&member), vec![group_id.as_str()]);

    let deleted = send(&server, "DELETE", &group_path, None);
    assert_eq!((deleted.status, deleted.body.as_str()), (204, ""));
    assert_scim_error(
        &send(&server, "GET", &group_path, None),
        404,
        None,
        "not found",
    );
    assert!(group_ids(&expect(&server, "GET", &user_path, None, 200)).is_empty());
}

const ENTRA_CREATE_USER: &str = r#"{
    "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
    "active": true,
    "emails": [{
        "primary": true,
        "type": "work",
        "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"
    }],
    "meta": {
        "resourceType": "User"
    },
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName"
    },
    "roles": []
}"#;

const ENTRA_UPDATE_MULTI_VALUED: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [
            {
            "op": "Replace",
            "path": "emails[type eq \"work\"].value",
            "value": "updatedEmail@microsoft.com"
            },
            {
            "op": "Replace",
            "path": "name.familyName",
            "value": "updatedFamilyName"
            }
    ]
}"#;

const ENTRA_UPDATE_SINGLE_VALUED: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "userName",
        "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    }]
}"#;

const ENTRA_DISABLE_USER: &str = r#"{
    "Operations": [
        {
            "op": "Replace",
            "path": "active",
            "value": false
        }
    ],
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ]
}"#;

const ENTRA_CREATE_GROUP: &str = r#"{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
    "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
    "displayName": "displayName",
    "meta": {
        "resourceType": "Group"
    }
}"#;

const ENTRA_UPDATE_GROUP: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "displayName",
        "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    }]
}"#;

const ENTRA_USER_ID: &str = "f648f8d5ea4e4cd38e9c";

const ENTRA_ADD_MEMBERS: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Add",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}"#;

const ENTRA_REMOVE_MEMBERS: &str = r#"{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Remove",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}"#;

#[test]
fn entra_provisioning_sequence_from_its_scim_tutorial() {
    let server = Server::start();
    let nobody = expect(
        &server,
        "GET",
        "/Users?filter=userName%20eq%20%22non-existent%20user%22",
        None,
        200,
    );
    assert_eq!(
        (&nobody["totalResults"], &nobody["Resources"]),
        (&json!(0), &json!([]))
    );

    // Tecton signs users in with an email as userName; the sample's is not one.
    assert_scim_error(
        &send(&server, "POST", "/Users", Some(ENTRA_CREATE_USER)),
        400,
        Some("invalidValue"),
        "must be an email address",
    );
    let upn = "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee@testuser.com";
    let create = ENTRA_CREATE_USER.replace(
        "\"Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee\"",
        &format!("\"{upn}\""),
    );
    let user = expect(&server, "POST", "/Users", Some(&create), 201);
    assert_eq!(user["externalId"], "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef");
    assert_eq!(user["name"]["formatted"], "givenName familyName");
    let user_id = id_of(&user);
    let user_path = format!("/Users/{user_id}");
    expect(&server, "GET", &user_path, None, 200);
    let by_name = expect(
        &server,
        "GET",
        &format!("/Users?filter=userName%20eq%20%22{upn}%22"),
        None,
        200,
    );
    assert_eq!(by_name["Resources"][0]["id"], user_id.as_str());

    let updated = expect(
        &server,
        "PATCH",
        &user_path,
        Some(ENTRA_UPDATE_MULTI_VALUED),
        200,
    );
    assert_eq!(updated["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(updated["emails"][0]["primary"], true);
    assert_eq!(updated["name"]["familyName"], "updatedFamilyName");
    let renamed = expect(
        &server,
        "PATCH",
        &user_path,
        Some(ENTRA_UPDATE_SINGLE_VALUED),
        200,
    );
    assert_eq!(
        renamed["userName"],
        "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    );
    let disabled = expect(&server, "PATCH", &user_path, Some(ENTRA_DISABLE_USER), 200);
    assert_eq!(disabled["active"], false);
    assert_eq!(
        expect(&server, "GET", &user_path, None, 200)["active"],
        false
    );
    let enable = ENTRA_DISABLE_USER.replace("false", "true");
    assert_eq!(
        expect(&server, "PATCH", &user_path, Some(&enable), 200)["active"],
        true
    );

    let group = expect(&server, "POST", "/Groups", Some(ENTRA_CREATE_GROUP), 201);
    assert_eq!(group["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    let group_id = id_of(&group);
    let group_path = format!("/Groups/{group_id}");
    let fetched = expect(
        &server,
        "GET",
        &format!("{group_path}?excludedAttributes=members"),
        None,
        200,
    );
    assert_eq!(fetched["displayName"], "displayName");
    let listed = expect(
        &server,
        "GET",
        "/Groups?excludedAttributes=members&filter=displayName%20eq%20%22displayName%22",
        None,
        200,
    );
    assert_eq!(listed["Resources"][0]["id"], group_id.as_str());
    let renamed = expect(&server, "PATCH", &group_path, Some(ENTRA_UPDATE_GROUP), 200);
    assert_eq!(
        renamed["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );

    let add = ENTRA_ADD_MEMBERS.replace(ENTRA_USER_ID, &user_id);
    let with_member = expect(&server, "PATCH", &group_path, Some(&add), 200);
    assert_eq!(with_member["members"], json!([{"value": user_id}]));
    let member = expect(&server, "GET", &user_path, None, 200);
    assert_eq!(group_ids(&member), vec![group_id.as_str()]);
    let remove = ENTRA_REMOVE_MEMBERS.replace(ENTRA_USER_ID, &user_id);
    let without = expect(&server, "PATCH", &group_path, Some(&remove), 200);
    assert!(without.get("members").is_none_or(|m| m == &json!([])));
    assert!(group_ids(&expect(&server, "GET", &user_path, None, 200)).is_empty());

    assert_eq!(send(&server, "DELETE", &group_path, None).status, 204);
    assert_eq!(send(&server, "DELETE", &user_path, None).status, 204);
    assert_scim_error(
        &send(&server, "GET", &user_path, None),
        404,
        None,
        "not found",
    );
}

/// The tutorial's example user, with the enterprise `manager` and a custom extension.
const ENTRA_SCHEMA_EXAMPLE: &str = r#"{
     "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
      "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User"],
     "userName":"bjensen@testuser.com",
     "id": "48af03ac28ad4fb88478",
     "externalId":"bjensen",
     "name":{
       "familyName":"Jensen",
       "givenName":"Barbara"
     },
     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
     "manager": "123456"
   },
     "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User": {
     "tag": "701984"
   },
   "meta": {
     "resourceType": "User",
     "created": "2010-01-23T04:56:22Z",
     "lastModified": "2011-05-13T04:42:34Z",
     "version": "W\/\"3694e05e9dff591\"",
     "location":
 "https://example.com/v2/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
   }
}"#;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[test]
fn entra_default_attribute_mappings_are_kept_and_declared() {
    let server = Server::start();
    let created = expect(&server, "POST", "/Users", Some(ENTRA_SCHEMA_EXAMPLE), 201);
    let id = id_of(&created);
    assert_ne!(id, "48af03ac28ad4fb88478", "the server assigns ids");
    assert_eq!(created[ENTERPRISE]["manager"], json!({"value": "123456"}));
    assert!(
        !created.to_string().contains("701984"),
        "a schema Quiver does not have is ignored"
    );
    assert_eq!(
        created["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE])
    );

    // Every target of Entra's default user mappings, as the tutorial's table names them.
    let mappings = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Add", "path": format!("{ENTERPRISE}:department"), "value": "Sales"},
        {"op": "Add", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "100009"},
        {"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": "98765"},
        {"op": "Add", "path": "displayName", "value": "Barbara Jensen"},
        {"op": "Add", "path": "title", "value": "Engineer"},
        {"op": "Add", "path": "preferredLanguage", "value": "en-US"},
        {"op": "Add", "path": "nickName", "value": "Babs"},
        {"op": "Add", "path": "phoneNumbers[type eq \"fax\"].value", "value": "+1 555 0100"},
        {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0101"},
        {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555 0102"},
        {"op": "Add", "path": "emails[type eq \"other\"].Value", "value": "babs@testuser.com"},
        {"op": "Add", "path": "addresses[type eq \"work\"].postalCode", "value": "98052"},
        {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
        {"op": "Add", "path": "addresses[type eq \"other\"].Formatted", "value": "Building 4"},
    ]});
    let path = format!("/Users/{id}");
    let patched = expect(&server, "PATCH", &path, Some(&mappings.to_string()), 200);
    let read = expect(&server, "GET", &path, None, 200);
    assert_eq!(patched, read, "what PATCH answers is what is kept");
    assert_eq!(
        read[ENTERPRISE],
        json!({"manager": {"value": "98765"}, "department": "Sales", "employeeNumber": "100009"})
    );
    assert_eq!(read["phoneNumbers"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        read["addresses"],
        json!([{"type": "work", "postalCode": "98052", "streetAddress": "1 Main St"},
               {"type": "other", "formatted": "Building 4"}])
    );
    assert_eq!(
        read["emails"],
        json!([{"type": "other", "value": "babs@testuser.com"}])
    );
    for (attribute, value) in [
        ("title", "Engineer"),
        ("preferredLanguage", "en-US"),
        ("nickName", "Babs"),
    ] {
        assert_eq!(read[attribute], value);
    }

    // A PUT with a core sub-attribute Quiver did not keep before.
    let mut replace = read.clone();
    replace["name"]["middleName"] = json!("Ann");
    let replaced = expect(&server, "PUT", &path, Some(&replace.to_string()), 200);
    assert_eq!(replaced["name"]["middleName"], "Ann");
    assert_eq!(replaced["title"], "Engineer");

    // Discovery describes every attribute returned.
    let schemas = expect(&server, "GET", "/Schemas", None, 200);
    let declared = |urn: &str| -> Vec<String> {
        schemas["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == urn)
            .unwrap_or_else(|| panic!("/Schemas lists {urn}"))["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    let core = declared("urn:ietf:params:scim:schemas:core:2.0:User");
    let enterprise = declared(ENTERPRISE);
    for key in replaced.as_object().unwrap().keys() {
        let known = ["schemas", "id", "meta", "externalId", ENTERPRISE].contains(&key.as_str());
        assert!(known || core.contains(key), "`{key}` is not declared");
    }
    for key in replaced[ENTERPRISE].as_object().unwrap().keys() {
        assert!(enterprise.contains(key), "`{key}` is not declared");
    }
    let user_type = expect(&server, "GET", "/ResourceTypes/User", None, 200);
    assert_eq!(
        user_type["schemaExtensions"],
        json!([{"schema": ENTERPRISE, "required": false}])
    );
}

/// Tecton's own filter examples leave values unquoted (`displayName eq engineering`,
/// `name eq fraudRiskApp`, `username eq email@example.com`), as does the Entra tutorial's
/// `externalId eq jyoung`; Quiver reads an unquoted simple value as a string.
#[test]
fn unquoted_filter_values_as_tecton_and_entra_write_them() {
    let server = Server::start();
    for group in [
        r#"{"displayName": "engineering"}"#,
        r#"{"displayName": "engineering-leads"}"#,
    ] {
        expect(&server, "POST", "/Groups", Some(group), 201);
    }
    expect(
        &server,
        "POST",
        "/ServiceAccounts",
        Some(r#"{"name": "fraudRiskApp"}"#),
        201,
    );
    let user = json!({"userName": "email@example.com", "externalId": "jyoung",
        ENTERPRISE: {"employeeNumber": "100009"}});
    expect(&server, "POST", "/Users", Some(&user.to_string()), 201);
    expect(
        &server,
        "POST",
        "/Users",
        Some(r#"{"userName": "other@example.com"}"#),
        201,
    );

    let groups = expect(
        &server,
        "GET",
        "/Groups?filter=displayName%20eq%20engineering",
        None,
        200,
    );
    assert_eq!(names(&groups, "displayName"), vec!["engineering"]);
    let accounts = expect(
        &server,
        "GET",
        "/ServiceAccounts?filter=name%20eq%20fraudRiskApp",
        None,
        200,
    );
    assert_eq!(names(&accounts, "name"), vec!["fraudRiskApp"]);
    for filter in [
        "username%20eq%20email@example.com".to_string(),
        "externalId%20eq%20jyoung".to_string(),
        format!("{ENTERPRISE}:employeeNumber%20eq%20100009"),
    ] {
        let users = expect(
            &server,
            "GET",
            &format!("/Users?filter={filter}"),
            None,
            200,
        );
        assert_eq!(
            names(&users, "userName"),
            vec!["email@example.com"],
            "{filter}"
        );
    }
    assert_scim_error(
        &send(&server, "GET", "/Users?filter=userName%20eq%20and", None),
        400,
        Some("invalidFilter"),
        "expected a value",
    );
    // Names compare after Unicode normalisation in filters too.
    expect(
        &server,
        "POST",
        "/Groups",
        Some(r#"{"displayName": "Caf\u00e9"}"#),
        201,
    );
    let cafe = expect(
        &server,
        "GET",
        "/Groups?filter=displayName%20eq%20%22CAFE%CC%81%22",
        None,
        200,
    );
    assert_eq!(names(&cafe, "displayName"), vec!["Caf\u{e9}"]);
}
