//! SCIM protocol details identity providers rely on: entity tags and preconditions, `/Bulk`,
//! list filters, sorting and paging on every resource type, `groups` kept true as memberships
//! change, names that compare after Unicode normalisation, and kept attributes that survive
//! restarts while the discarded password never reaches disk.

use serde_json::{json, Value as Json};

use super::common::{Reply, Server, ServerBuilder, ADMIN_KEY};
use super::identity::{assert_scim_error, scim_bytes};

fn send(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<&Json>,
    headers: &[(&str, &str)],
) -> Reply {
    let bytes = body.map(|b| b.to_string().into_bytes());
    scim_bytes(server, method, path, ADMIN_KEY, bytes.as_deref(), headers)
}

fn create(server: &Server, path: &str, body: Json) -> Json {
    let reply = send(server, "POST", path, Some(&body), &[]);
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()
}

fn list(server: &Server, path: &str) -> Json {
    let reply = send(server, "GET", path, None, &[]);
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    reply.json()
}

/// `attribute` of each resource a list returned.
pub(super) fn names(listed: &Json, attribute: &str) -> Vec<String> {
    listed["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[attribute].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn entity_tags_guard_changes_and_reads() {
    let server = Server::start();
    let created = send(
        &server,
        "POST",
        "/Users",
        Some(&json!({"userName": "etag@example.com"})),
        &[],
    );
    let etag = created.header("etag").unwrap().to_string();
    let id = created.json()["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");

    let unchanged = send(&server, "GET", &path, None, &[("If-None-Match", &etag)]);
    assert_eq!((unchanged.status, unchanged.body.as_str()), (304, ""));
    assert_eq!(unchanged.header("etag"), Some(etag.as_str()));
    let other = send(&server, "GET", &path, None, &[("If-None-Match", "W/\"7\"")]);
    assert_eq!(other.status, 200);

    let rename = json!({"Operations": [{"op": "replace", "path": "displayName", "value": "E"}]});
    let strong_form = etag.trim_start_matches("W/");
    let first = send(
        &server,
        "PATCH",
        &path,
        Some(&rename),
        &[("If-Match", strong_form)],
    );
    assert_eq!(first.status, 200, "{}", first.body);
    let newer = first.header("etag").unwrap().to_string();
    assert_ne!(newer, etag);

    // The old tag is stale now: nothing changes, with a SCIM error.
    let stale_patch = send(
        &server,
        "PATCH",
        &path,
        Some(&rename),
        &[("If-Match", &etag)],
    );
    assert_scim_error(&stale_patch, 412, None, "If-Match");
    let stale_put = send(
        &server,
        "PUT",
        &path,
        Some(&json!({"userName": "etag@example.com", "title": "x"})),
        &[("If-Match", &etag)],
    );
    assert_scim_error(&stale_put, 412, None, "If-Match");
    assert_scim_error(
        &send(&server, "DELETE", &path, None, &[("If-Match", &etag)]),
        412,
        None,
        "If-Match",
    );
    assert_scim_error(
        &send(
            &server,
            "PATCH",
            &path,
            Some(&rename),
            &[("If-None-Match", "*")],
        ),
        412,
        None,
        "If-None-Match",
    );
    let read = send(&server, "GET", &path, None, &[]);
    assert_eq!(read.header("etag"), Some(newer.as_str()));
    assert!(
        read.json().get("title").is_none(),
        "a failed precondition changes nothing"
    );

    let deleted = send(
        &server,
        "DELETE",
        &path,
        None,
        &[("If-Match", &format!("\"0\", {newer}"))],
    );
    assert_eq!(deleted.status, 204, "{}", deleted.body);
}

#[test]
fn bulk_is_not_implemented_and_says_so_to_a_post_only() {
    let server = Server::start();
    let bulk =
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": []});
    assert_scim_error(
        &send(&server, "POST", "/Bulk", Some(&bulk), &[]),
        501,
        None,
        "bulk operations are not supported",
    );
    let config = list(&server, "/ServiceProviderConfig");
    assert_eq!(config["bulk"]["supported"], false);
    // RFC 7644 3.7: bulk is a POST; another method is refused as one, not as bulk.
    assert_scim_error(
        &send(&server, "GET", "/Bulk", None, &[]),
        405,
        None,
        "GET is not allowed on /api/scim/v2/Bulk",
    );
    assert_scim_error(
        &scim_bytes(&server, "POST", "/Bulk", "wrong-key", Some(b"{}"), &[]),
        401,
        None,
        "invalid",
    );
}

#[test]
fn names_that_render_the_same_are_the_same_name() {
    let server = Server::start();
    create(&server, "/Groups", json!({"displayName": "Caf\u{e9} Team"}));
    assert_scim_error(
        &send(
            &server,
            "POST",
            "/Groups",
            Some(&json!({"displayName": "CAFE\u{301} team"})),
            &[],
        ),
        409,
        Some("uniqueness"),
        "already exists",
    );
    create(
        &server,
        "/ServiceAccounts",
        json!({"name": "\u{c5}ngstr\u{f6}m"}),
    );
    assert_scim_error(
        &send(
            &server,
            "POST",
            "/ServiceAccounts",
            Some(&json!({"name": "A\u{30a}ngstro\u{308}m"})),
            &[],
        ),
        409,
        Some("uniqueness"),
        "already exists",
    );
    // Stored as sent: only the comparison folds.
    let groups = list(&server, "/Groups");
    assert_eq!(
        names(&groups, "displayName"),
        vec!["Caf\u{e9} Team".to_string()]
    );
}

#[test]
fn filters_sorting_and_paging_on_every_resource_type() {
    let server = Server::start();
    for name in ["engineering", "Sales", "analytics"] {
        create(&server, "/Groups", json!({"displayName": name}));
    }
    for name in ["fraudRiskApp", "batch-loader"] {
        create(&server, "/ServiceAccounts", json!({"name": name}));
    }
    let engineering = list(&server, "/Groups?filter=displayName+eq+%22ENGINEERING%22");
    assert_eq!(names(&engineering, "displayName"), vec!["engineering"]);
    let app = list(
        &server,
        "/ServiceAccounts?filter=name+eq+%22fraudriskapp%22",
    );
    assert_eq!(names(&app, "name"), vec!["fraudRiskApp"]);
    assert_eq!(
        list(&server, "/ServiceAccounts?filter=name+eq+%22nope%22")["totalResults"],
        0
    );

    let ascending = list(&server, "/Groups?sortBy=displayName&sortOrder=ascending");
    assert_eq!(
        names(&ascending, "displayName"),
        vec!["analytics", "engineering", "Sales"]
    );
    let descending = list(&server, "/Groups?sortBy=displayName&sortOrder=descending");
    assert_eq!(
        names(&descending, "displayName"),
        vec!["Sales", "engineering", "analytics"]
    );
    assert_scim_error(
        &send(
            &server,
            "GET",
            "/Groups?sortBy=displayName&sortOrder=sideways",
            None,
            &[],
        ),
        400,
        Some("invalidValue"),
        "sortOrder",
    );

    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    for (user, department, given) in [
        ("u1", "Ops", "Zoe"),
        ("u2", "hr", "Al"),
        ("u3", "Eng", "Mo"),
    ] {
        create(
            &server,
            "/Users",
            json!({"userName": format!("{user}@example.com"), "name": {"givenName": given},
                   enterprise: {"department": department}}),
        );
    }
    let by_department = list(&server, &format!("/Users?sortBy={enterprise}:department"));
    assert_eq!(
        names(&by_department, "userName"),
        vec!["u3@example.com", "u2@example.com", "u1@example.com"]
    );
    let by_given_name = list(&server, "/Users?sortBy=name.givenName&sortOrder=descending");
    assert_eq!(
        names(&by_given_name, "userName"),
        vec!["u1@example.com", "u3@example.com", "u2@example.com"]
    );

    // startIndex below 1 means 1; a negative count means 0 (RFC 7644 §3.4.2.4).
    let from_zero = list(&server, "/Groups?sortBy=displayName&startIndex=0&count=2");
    assert_eq!(
        (
            from_zero["startIndex"].as_u64(),
            names(&from_zero, "displayName")
        ),
        (
            Some(1),
            vec!["analytics".to_string(), "engineering".to_string()]
        )
    );
    let second_page = list(&server, "/Groups?sortBy=displayName&startIndex=3&count=2");
    assert_eq!(names(&second_page, "displayName"), vec!["Sales"]);
    let negative = list(&server, "/Groups?startIndex=-5&count=-1");
    assert_eq!(
        (
            negative["totalResults"].as_u64(),
            negative["itemsPerPage"].as_u64(),
            negative["startIndex"].as_u64()
        ),
        (Some(3), Some(0), Some(1))
    );
}

#[test]
fn groups_attribute_follows_every_membership_change() {
    let server = Server::start();
    let user = create(&server, "/Users", json!({"userName": "member@example.com"}));
    let bot = create(&server, "/ServiceAccounts", json!({"name": "member-bot"}));
    let (user_id, bot_id) = (user["id"].as_str().unwrap(), bot["id"].as_str().unwrap());
    assert!(user.get("groups").is_none(), "no groups yet");
    let group = create(
        &server,
        "/Groups",
        json!({"displayName": "readers", "members": [{"value": user_id}, {"value": bot_id}]}),
    );
    let group_id = group["id"].as_str().unwrap();
    let groups_of = |path: &str| list(&server, path)["groups"].clone();
    let expected = |name: &str| {
        json!([{"value": group_id, "display": name, "type": "direct",
                "$ref": format!("{}/api/scim/v2/Groups/{group_id}", server.base_url)}])
    };
    assert_eq!(groups_of(&format!("/Users/{user_id}")), expected("readers"));
    assert_eq!(
        groups_of(&format!("/ServiceAccounts/{bot_id}")),
        expected("readers")
    );
    let listed = list(
        &server,
        "/Users?filter=groups.value+eq+%22{}%22"
            .replace("{}", group_id)
            .as_str(),
    );
    assert_eq!(listed["totalResults"], 1, "groups can be filtered on");

    let user_etag = |server: &Server| {
        let reply = send(server, "GET", &format!("/Users/{user_id}"), None, &[]);
        reply.header("etag").unwrap().to_string()
    };
    let before_rename = user_etag(&server);
    let rename =
        json!({"Operations": [{"op": "replace", "path": "displayName", "value": "viewers"}]});
    assert_eq!(
        send(
            &server,
            "PATCH",
            &format!("/Groups/{group_id}"),
            Some(&rename),
            &[]
        )
        .status,
        200
    );
    assert_eq!(groups_of(&format!("/Users/{user_id}")), expected("viewers"));
    assert_ne!(
        user_etag(&server),
        before_rename,
        "a member's ETag changes with its groups"
    );

    let leave = json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{user_id}\"]")}]});
    assert_eq!(
        send(
            &server,
            "PATCH",
            &format!("/Groups/{group_id}"),
            Some(&leave),
            &[]
        )
        .status,
        200
    );
    assert_eq!(groups_of(&format!("/Users/{user_id}")), Json::Null);
    assert_eq!(
        groups_of(&format!("/ServiceAccounts/{bot_id}")),
        expected("viewers")
    );

    // `groups` is read-only: a client cannot join a group through it.
    let join =
        json!({"Operations": [{"op": "add", "path": "groups", "value": [{"value": group_id}]}]});
    assert_scim_error(
        &send(
            &server,
            "PATCH",
            &format!("/Users/{user_id}"),
            Some(&join),
            &[],
        ),
        400,
        Some("mutability"),
        "read-only",
    );
    let change_id =
        json!({"Operations": [{"op": "replace", "value": {"id": "another", "displayName": "x"}}]});
    assert_scim_error(
        &send(
            &server,
            "PATCH",
            &format!("/Groups/{group_id}"),
            Some(&change_id),
            &[],
        ),
        400,
        Some("mutability"),
        "`id` is read-only",
    );

    assert_eq!(
        send(&server, "DELETE", &format!("/Groups/{group_id}"), None, &[]).status,
        204
    );
    assert_eq!(groups_of(&format!("/ServiceAccounts/{bot_id}")), Json::Null);
}

/// Every file under `dir`, recursively.
pub(super) fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn kept_attributes_survive_restarts_and_no_password_reaches_disk() {
    let data = tempfile::tempdir().unwrap();
    let start = || ServerBuilder::new().data_dir(data.path()).start();
    let server = start();
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let sent = json!({"userName": "kept@example.com", "password": "pw-9f1c7e2d", "locale": "fr-FR",
        "name": {"givenName": "K", "middleName": "M"}, "phoneNumbers": [{"type": "work", "value": "1"}],
        enterprise: {"department": "Ops", "manager": {"value": "m1"}}});
    let created = create(&server, "/Users", sent);
    let path = format!("/Users/{}", created["id"].as_str().unwrap());
    let group = create(
        &server,
        "/Groups",
        json!({"displayName": "kept", "members": [{"value": created["id"]}]}),
    );
    // The resource without the server's address, which changes with each start.
    let read = |server: &Server| {
        list(server, &path)
            .to_string()
            .replace(&server.base_url, "")
    };
    let expected = read(&server);
    assert!(expected.contains(group["id"].as_str().unwrap()));
    server.kill9();

    let from_journal = start();
    assert_eq!(read(&from_journal), expected);
    from_journal.terminate();
    let from_snapshot = start();
    assert_eq!(read(&from_snapshot), expected);
    drop(from_snapshot);

    for file in files_under(data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(11).any(|w| w == b"pw-9f1c7e2d"),
            "{} holds the password",
            file.display()
        );
    }
}

#[test]
fn mistyped_values_are_named_and_unknown_schemas_ignored() {
    let server = Server::start();
    let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    for (body, fragment) in [
        (
            json!({"userName": "typed@example.com", "title": 5}),
            "`title` must be a string".to_string(),
        ),
        (
            json!({"userName": "typed@example.com", "addresses": [{"primary": "often"}]}),
            "`addresses[0].primary` must be a boolean".to_string(),
        ),
        (
            json!({"userName": "typed@example.com", enterprise: {"department": ["a"]}}),
            format!("`{enterprise}.department` must be a string"),
        ),
        (
            json!({"userName": "typed@example.com", "password": {"clear": "x"}}),
            "`password` must be a string".to_string(),
        ),
    ] {
        let reply = send(&server, "POST", "/Users", Some(&body), &[]);
        assert_scim_error(&reply, 400, Some("invalidValue"), &fragment);
    }
    assert_eq!(list(&server, "/Users")["totalResults"], 0);
    let custom = json!({"userName": "typed@example.com",
        "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User": {"tag": "701984"},
        "urn:okta:app:custom:1.0:User:costCode": 7});
    let created = create(&server, "/Users", custom);
    assert!(!created.to_string().contains("701984") && !created.to_string().contains("costCode"));
}

#[test]
fn every_reference_is_absolute_under_the_host_called() {
    let server = Server::start();
    let base = format!("{}/api/scim/v2", server.base_url);
    let group = create(&server, "/Groups", json!({"displayName": "Refs"}));
    let group_id = group["id"].as_str().unwrap();
    let user = create(&server, "/Users", json!({"userName": "refs@example.com"}));
    let user_id = user["id"].as_str().unwrap();
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": user_id}]}]});
    assert_eq!(
        send(
            &server,
            "PATCH",
            &format!("/Groups/{group_id}"),
            Some(&patch),
            &[]
        )
        .status,
        200
    );

    let listed = list(&server, "/Users");
    let listed_user = &listed["Resources"][0];
    assert_eq!(
        listed_user["meta"]["location"],
        format!("{base}/Users/{user_id}")
    );
    assert_eq!(
        listed_user["groups"][0]["$ref"],
        format!("{base}/Groups/{group_id}")
    );
    let fetched = list(&server, &format!("/Groups/{group_id}"));
    assert_eq!(
        fetched["meta"]["location"],
        format!("{base}/Groups/{group_id}")
    );
    assert_eq!(
        list(&server, "/ServiceProviderConfig")["meta"]["location"],
        format!("{base}/ServiceProviderConfig")
    );
    assert_eq!(
        list(&server, "/ResourceTypes/User")["meta"]["location"],
        format!("{base}/ResourceTypes/User")
    );
    for schema in list(&server, "/Schemas")["Resources"].as_array().unwrap() {
        let location = schema["meta"]["location"].as_str().unwrap();
        assert_eq!(
            location,
            format!("{base}/Schemas/{}", schema["id"].as_str().unwrap())
        );
    }
}
