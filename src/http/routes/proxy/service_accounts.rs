//! `tecton service-account create / list / update / activate / deactivate / delete`: the
//! `MetadataService` service-account calls, made on the directory's SCIM ServiceAccounts as
//! `/api/scim/v2/ServiceAccounts` makes them, and under its rule: admins only. An account has
//! one API key, given once in the answer that creates it, so the CLI's `*-secret` commands
//! (more keys per account, OAuth client secrets) are not served.

use std::sync::Arc;

use prost::Message;
use serde_json::{json, Map, Value as Json};

use super::{decode, unimplemented};
use crate::http::error::{ApiError, ErrorKind};
use crate::http::wire::tecton_proto::data as wire;
use crate::http::AppState;
use crate::iam::directory::{ListQuery, ResourceKind, UpdateMode};
use crate::iam::scim::etag::Preconditions;
use crate::iam::{Permission, Principal};

pub(super) async fn call(
    state: &AppState,
    caller: Arc<Principal>,
    name: &str,
    message: &[u8],
) -> Result<Vec<u8>, ApiError> {
    // Checked first, as SCIM's extractor does, so a non-admin learns nothing of the accounts.
    caller.require(Permission::Admin)?;
    let response = match name {
        "CreateServiceAccount" => create(state, &caller, decode(message)?)
            .await?
            .encode_to_vec(),
        "GetServiceAccounts" => list(state, decode(message)?).await?.encode_to_vec(),
        "UpdateServiceAccount" => update(state, decode(message)?).await?.encode_to_vec(),
        "DeleteServiceAccount" => {
            let request: wire::DeleteServiceAccountRequest = decode(message)?;
            state
                .directory
                .delete(
                    ResourceKind::ServiceAccount,
                    request.id,
                    Preconditions::default(),
                )
                .await?;
            ().encode_to_vec()
        }
        _ => return Err(unimplemented(&format!("MetadataService/{name}"))),
    };
    Ok(response)
}

async fn create(
    state: &AppState,
    caller: &Principal,
    request: wire::CreateServiceAccountRequest,
) -> Result<wire::CreateServiceAccountResponse, ApiError> {
    let api_key = [
        wire::CredentialsType::Unspecified,
        wire::CredentialsType::ApiKey,
    ];
    if !api_key
        .map(|kind| kind as i32)
        .contains(&request.credentials_type)
    {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "credentials_type: Quiver's service accounts have API keys; OAuth client \
             credentials (`--oauth`) are not supported",
        ));
    }
    let mut body = json!({"name": request.name});
    if !request.description.is_empty() {
        body["description"] = json!(request.description);
    }
    let created = state
        .directory
        .create(ResourceKind::ServiceAccount, body, caller.to_ref())
        .await?;
    let account = service_account(&created);
    Ok(wire::CreateServiceAccountResponse {
        id: account.id,
        name: account.name,
        description: account.description,
        is_active: account.is_active,
        api_key: text(&created, "apiKey"),
        credentials_type: wire::CredentialsType::ApiKey as i32,
    })
}

/// Every account, or those whose id is in `ids` and whose id, name or description contains
/// `search` (ignoring case), as the CLI's `--search-string` promises.
async fn list(
    state: &AppState,
    request: wire::GetServiceAccountsRequest,
) -> Result<wire::GetServiceAccountsResponse, ApiError> {
    let query = ListQuery {
        kind: ResourceKind::ServiceAccount,
        filter: None,
        sort_by: None,
        descending: false,
    };
    let search = request.search.to_lowercase();
    let service_accounts = state
        .directory
        .list(query)
        .await?
        .iter()
        .map(service_account)
        .filter(|account| request.ids.is_empty() || request.ids.contains(&account.id))
        .filter(|account| {
            [&account.id, &account.name, &account.description]
                .iter()
                .any(|text| text.to_lowercase().contains(&search))
        })
        .collect();
    Ok(wire::GetServiceAccountsResponse { service_accounts })
}

/// A SCIM PATCH of the fields the request carries; deactivating keeps the account and its
/// roles but its key stops working, as SCIM's `active: false` does.
async fn update(
    state: &AppState,
    request: wire::UpdateServiceAccountRequest,
) -> Result<wire::UpdateServiceAccountResponse, ApiError> {
    let mut changes = Map::new();
    if let Some(name) = request.name {
        changes.insert("name".into(), json!(name));
    }
    if let Some(description) = request.description {
        changes.insert("description".into(), json!(description));
    }
    if let Some(active) = request.is_active {
        changes.insert("active".into(), json!(active));
    }
    if changes.is_empty() {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "give at least one of name, description and is_active to change",
        ));
    }
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": changes}],
    });
    let updated = state
        .directory
        .update(
            ResourceKind::ServiceAccount,
            request.id,
            patch,
            UpdateMode::Patch,
            Preconditions::default(),
        )
        .await?;
    let account = service_account(&updated);
    Ok(wire::UpdateServiceAccountResponse {
        id: account.id,
        name: account.name,
        description: account.description,
        is_active: account.is_active,
    })
}

/// A directory record (SCIM JSON) as Tecton's `ServiceAccount`.
fn service_account(record: &Json) -> wire::ServiceAccount {
    wire::ServiceAccount {
        id: text(record, "id"),
        name: text(record, "name"),
        description: text(record, "description"),
        // An account created without `active` is active (the key index reads it so).
        is_active: record["active"].as_bool().unwrap_or(true),
        credentials_type: wire::CredentialsType::ApiKey as i32,
    }
}

fn text(record: &Json, attribute: &str) -> String {
    record[attribute].as_str().unwrap_or_default().to_string()
}
