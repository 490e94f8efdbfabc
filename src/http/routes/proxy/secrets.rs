//! `SecretsService` through the proxy: the same Vault calls, and so the same scope roles, as
//! `/api/v1/secrets-service`.

use std::sync::Arc;

use prost::Message;

use super::{decode, unimplemented};
use crate::http::error::ApiError;
use crate::http::wire::tecton_proto::secrets as wire;
use crate::http::AppState;
use crate::iam::Principal;
use crate::secrets::crypto::Plaintext;

pub async fn call(
    state: &AppState,
    caller: Arc<Principal>,
    name: &str,
    message: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let vault = &state.vault;
    let response = match name {
        "ListSecretScopes" => {
            let scopes = vault.list_scopes().await?;
            let scopes = scopes
                .into_iter()
                .map(|name| wire::SecretScope { name })
                .collect();
            wire::ListSecretScopesResponse { scopes }.encode_to_vec()
        }
        "CreateSecretScope" => {
            let request: wire::ScopeRequest = decode(message)?;
            vault.create_scope(caller, request.scope).await?;
            ().encode_to_vec()
        }
        "DeleteSecretScope" => {
            let request: wire::ScopeRequest = decode(message)?;
            vault.delete_scope(caller, request.scope).await?;
            ().encode_to_vec()
        }
        "ListSecrets" => {
            let request: wire::ScopeRequest = decode(message)?;
            let keys = vault.list_keys(caller, request.scope).await?;
            let keys = keys
                .into_iter()
                .map(|name| wire::SecretKey { name })
                .collect();
            wire::ListSecretsResponse { keys }.encode_to_vec()
        }
        "GetSecretValue" => {
            let request: wire::SecretRequest = decode(message)?;
            let value = vault.get_value(caller, request.scope, request.key).await?;
            wire::GetSecretValueResponse { value: value.0 }.encode_to_vec()
        }
        "PutSecretValue" => {
            let request: wire::PutSecretValueRequest = decode(message)?;
            let value = Plaintext(request.value);
            vault
                .put_value(caller, request.scope, request.key, value)
                .await?;
            ().encode_to_vec()
        }
        "DeleteSecret" => {
            let request: wire::SecretRequest = decode(message)?;
            vault.delete_key(caller, request.scope, request.key).await?;
            ().encode_to_vec()
        }
        _ => return Err(unimplemented(&format!("SecretsService/{name}"))),
    };
    Ok(response)
}
