//! `tecton_proto.secrets`: the Secrets Service calls of `tecton secrets ...`.

#[derive(Clone, PartialEq, prost::Message)]
pub struct SecretScope {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SecretKey {
    #[prost(string, tag = "1")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListSecretScopesResponse {
    #[prost(message, repeated, tag = "1")]
    pub scopes: Vec<SecretScope>,
}

/// `CreateSecretScopeRequest`, `DeleteSecretScopeRequest` and `ListSecretsRequest`: each is
/// `string scope = 1` alone.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeRequest {
    #[prost(string, tag = "1")]
    pub scope: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListSecretsResponse {
    #[prost(message, repeated, tag = "2")]
    pub keys: Vec<SecretKey>,
}

/// `GetSecretValueRequest` and `DeleteSecretRequest`: `scope = 1`, `key = 2`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SecretRequest {
    #[prost(string, tag = "1")]
    pub scope: String,
    #[prost(string, tag = "2")]
    pub key: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSecretValueResponse {
    #[prost(string, tag = "1")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutSecretValueRequest {
    #[prost(string, tag = "1")]
    pub scope: String,
    #[prost(string, tag = "2")]
    pub key: String,
    #[prost(string, tag = "3")]
    pub value: String,
}
