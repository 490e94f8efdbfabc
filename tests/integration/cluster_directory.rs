//! The SCIM directory and the vault in cluster mode, on a real NATS JetStream cluster (skipped,
//! saying so, without `nats-server`): a user and a service account made on one node, the
//! account's API key used on another; a refused request publishes nothing; an update from a
//! stale version loses; secrets of all three APIs put on one node and read on another; the
//! same userName, or TrueFoundry group name, created on two nodes at once is created once; a
//! node restarted after SIGKILL replays both streams and authenticates the same keys; the
//! streams' bytes on the NATS servers' disks hold no secret value and no API key.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

use super::cluster::{cluster_status, node, NatsCluster};
use super::common::{Reply, Server, ADMIN_KEY, PATIENCE};
use super::identity::{scim, scim_bytes};
use super::scim_protocol::files_under;
use super::secrets::{tecton, tf, tinybird};

/// Plaintext values put through the APIs; none may reach the streams.
const TECTON_VALUE: &str = "tecton-plaintext-5f1c";
const GROUP_VALUE: &str = "truefoundry-plaintext-77aa";
const TINYBIRD_VALUE: &str = "tinybird-plaintext-c0de";

/// The statuses of one POST of `body` to `path`, as the admin, sent to two nodes at once (a
/// `Server` stays on its thread), sorted.
fn posted_on_two_at_once(
    nodes: &[Server],
    path: &str,
    content_type: &str,
    body: &Json,
) -> Vec<u16> {
    let mut statuses: Vec<u16> = std::thread::scope(|scope| {
        let posts: Vec<_> = nodes[..2]
            .iter()
            .map(|server| {
                let url = format!("{}{path}", server.base_url);
                scope.spawn(move || {
                    let reply = ureq::post(&url)
                        .set("Authorization", &format!("Bearer {ADMIN_KEY}"))
                        .set("Content-Type", content_type)
                        .send_string(&body.to_string());
                    match reply {
                        Ok(response) => response.status(),
                        Err(ureq::Error::Status(status, _)) => status,
                        Err(error) => panic!("POST {url} failed: {error}"),
                    }
                })
            })
            .collect();
        posts.into_iter().map(|post| post.join().unwrap()).collect()
    });
    statuses.sort();
    statuses
}

/// Waits until `server` counts `expected` of something (`count`), panicking at the deadline.
fn wait_for_count(server: &Server, expected: u64, what: &str, count: impl Fn(&Server) -> u64) {
    let deadline = Instant::now() + PATIENCE;
    while count(server) != expected {
        assert!(
            Instant::now() < deadline,
            "{} never counts {expected} {what}",
            server.base_url
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `request` on `server` until it answers `status` (panics at the deadline).
fn wait_for_status(server: &Server, status: u16, request: impl Fn(&Server) -> Reply) -> Reply {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = request(server);
        if reply.status == status {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "{} still answers {}, not {status}: {}",
            server.base_url,
            reply.status,
            reply.body
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many users named `user_name` `server` lists.
fn users_named(server: &Server, user_name: &str) -> u64 {
    let path = format!("/Users?filter=userName%20eq%20%22{user_name}%22");
    let listed = scim(server, "GET", &path, ADMIN_KEY, None);
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.json()["totalResults"].as_u64().unwrap()
}

/// How many TrueFoundry groups named `shared` `server` lists.
fn groups_named_shared(server: &Server) -> u64 {
    let listed = tf(
        server,
        "GET",
        "/secret-groups?limit=100&search=shared",
        ADMIN_KEY,
        None,
    );
    assert_eq!(listed.status, 200, "{}", listed.body);
    let groups = listed.json()["data"].as_array().unwrap().clone();
    groups.iter().filter(|g| g["name"] == "shared").count() as u64
}

/// How many messages `stream` holds (`quiver cluster status`' first line).
fn messages_in(nats: &NatsCluster, stream: &str) -> u64 {
    let printed = cluster_status(nats, stream);
    let count = printed
        .strip_prefix(&format!("stream {stream}: "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok());
    count.unwrap_or_else(|| panic!("no message count in {printed}"))
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|path| {
            std::fs::read(path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

#[test]
fn directory_and_vault_changes_reach_every_node_in_the_same_order() {
    let Some((nats, dir)) = NatsCluster::start_three() else {
        return;
    };
    let mut nodes: Vec<Server> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| node(&nats, id))
        .collect();

    // A user and a service account made on node 1: node 1 reads its own writes at once, the
    // account's key authenticates on node 3 once node 3 has applied the stream.
    let user = scim(
        &nodes[0],
        "POST",
        "/Users",
        ADMIN_KEY,
        Some(
            &json!({"userName": "ana@example.com", "roles": [{"type": "account_type", "value": "admin"}]}),
        ),
    );
    assert_eq!(user.status, 201, "{}", user.body);
    let user_id = user.json()["id"].as_str().unwrap().to_string();
    let user_path = format!("/Users/{user_id}");
    assert_eq!(
        scim(&nodes[0], "GET", &user_path, ADMIN_KEY, None).status,
        200
    );
    let account = scim(
        &nodes[0],
        "POST",
        "/ServiceAccounts",
        ADMIN_KEY,
        Some(&json!({"name": "ci", "roles": [{"type": "account_type", "value": "admin"}]})),
    );
    assert_eq!(account.status, 201, "{}", account.body);
    let api_key = account.json()["apiKey"].as_str().unwrap().to_string();
    let listed_with_key = |server: &Server| scim(server, "GET", "/ServiceAccounts", &api_key, None);
    assert_eq!(listed_with_key(&nodes[0]).status, 200);
    let on_node_3 = wait_for_status(&nodes[2], 200, listed_with_key);
    assert!(on_node_3.body.contains("\"ci\""), "{}", on_node_3.body);
    wait_for_status(&nodes[2], 200, |server| {
        scim(server, "GET", &user_path, ADMIN_KEY, None)
    });

    // A refused request publishes nothing: bad input, a caller without the role.
    let (directory_messages, vault_messages) = (
        messages_in(&nats, "QUIVER_DIRECTORY"),
        messages_in(&nats, "QUIVER_VAULT"),
    );
    let not_an_email = json!({"userName": "not-an-email"});
    let refused = scim(&nodes[0], "POST", "/Users", ADMIN_KEY, Some(&not_an_email));
    assert_eq!(refused.status, 400, "{}", refused.body);
    let plain = scim(
        &nodes[0],
        "POST",
        "/ServiceAccounts",
        ADMIN_KEY,
        Some(&json!({"name": "plain"})),
    );
    assert_eq!(plain.status, 201, "{}", plain.body);
    let plain_key = plain.json()["apiKey"].as_str().unwrap().to_string();
    let bo = json!({"userName": "bo@example.com"});
    assert_eq!(
        scim(&nodes[0], "POST", "/Users", &plain_key, Some(&bo)).status,
        403
    );
    let into_no_scope = tecton(
        &nodes[0],
        "PUT",
        "/scopes/absent/keys/k",
        ADMIN_KEY,
        Some(json!({"value": TECTON_VALUE})),
    );
    assert_eq!(into_no_scope.status, 404, "{}", into_no_scope.body);
    assert_eq!(
        messages_in(&nats, "QUIVER_DIRECTORY"),
        directory_messages + 1,
        "only the service account was published"
    );
    assert_eq!(messages_in(&nats, "QUIVER_VAULT"), vault_messages);

    // An update made from an old version loses to the one the stream took first, on every
    // node: If-Match names version 1, node 2 has seen version 2 by then.
    let renamed = scim(
        &nodes[1],
        "PATCH",
        &user_path,
        ADMIN_KEY,
        Some(
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "title", "value": "lead"}]}),
        ),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.body);
    let stale = scim_bytes(
        &nodes[2],
        "PUT",
        &user_path,
        ADMIN_KEY,
        Some(
            json!({"userName": "ana@example.com"})
                .to_string()
                .as_bytes(),
        ),
        &[("If-Match", "W/\"1\"")],
    );
    assert_eq!(stale.status, 412, "{}", stale.body);

    // The same userName, then the same TrueFoundry group name, created on two nodes at once:
    // one creation wins everywhere, the other is answered 409.
    let created = posted_on_two_at_once(&nodes, "/api/scim/v2/Users", "application/scim+json", &bo);
    assert_eq!(created, [201, 409]);
    let shared = json!({"name": "shared", "secrets": [{"key": "S", "value": GROUP_VALUE}]});
    let created = posted_on_two_at_once(
        &nodes,
        "/api/svc/v1/secret-groups",
        "application/json",
        &shared,
    );
    assert_eq!(created, [200, 409]);
    for server in &nodes {
        wait_for_count(server, 1, "bo", |s| users_named(s, "bo@example.com"));
        wait_for_count(server, 1, "groups named shared", groups_named_shared);
    }

    // Secrets of the three APIs put on node 2, read on node 1.
    assert_eq!(
        tecton(&nodes[1], "POST", "/scopes/ops", ADMIN_KEY, None).status,
        200
    );
    let put = tecton(
        &nodes[1],
        "PUT",
        "/scopes/ops/keys/db",
        ADMIN_KEY,
        Some(json!({"value": TECTON_VALUE})),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    let group = tf(
        &nodes[1],
        "POST",
        "/secret-groups",
        ADMIN_KEY,
        Some(json!({"name": "grp", "integrationId": "i1",
            "secrets": [{"key": "K", "value": GROUP_VALUE}]})),
    );
    assert_eq!(group.status, 200, "{}", group.body);
    let secret_id = group.json()["data"]["associatedSecrets"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let form = format!("name=tb_password&value={TINYBIRD_VALUE}");
    let tb = tinybird(&nodes[1], "POST", "/v0/secrets", Some(&form));
    assert_eq!(tb.status, 200, "{}", tb.body);
    let read_all = |server: &Server| {
        let scope_value = wait_for_status(server, 200, |s| {
            tecton(s, "GET", "/scopes/ops/keys/db", ADMIN_KEY, None)
        });
        assert_eq!(scope_value.json()["value"], TECTON_VALUE);
        let group_value = wait_for_status(server, 200, |s| {
            tf(s, "GET", &format!("/secrets/{secret_id}"), ADMIN_KEY, None)
        });
        assert_eq!(group_value.json()["data"]["value"], GROUP_VALUE);
        wait_for_status(server, 200, |s| {
            tinybird(s, "GET", "/v0/secrets/tb_password", None)
        });
    };
    read_all(&nodes[0]);

    // SIGKILL node 3 and start it again: it replays both streams before it answers.
    nodes.pop().unwrap().kill9();
    let restarted = node(&nats, "n3");
    assert_eq!(listed_with_key(&restarted).status, 200);
    assert_eq!(users_named(&restarted, "bo@example.com"), 1);
    assert_eq!(groups_named_shared(&restarted), 1);
    let title = scim(&restarted, "GET", &user_path, ADMIN_KEY, None).json()["title"].clone();
    assert_eq!(title, "lead");
    read_all(&restarted);

    // The streams' files hold names, never a value or an API key.
    assert!(!files_containing(dir.path(), "ana@example.com").is_empty());
    assert!(!files_containing(dir.path(), "tb_password").is_empty());
    for secret in [TECTON_VALUE, GROUP_VALUE, TINYBIRD_VALUE, &api_key] {
        assert_eq!(files_containing(dir.path(), secret), Vec::<PathBuf>::new());
    }
}
