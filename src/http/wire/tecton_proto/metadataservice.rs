//! `tecton_proto.metadataservice`: the client configuration every SDK process asks for first.

use std::collections::HashMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetConfigsResponse {
    #[prost(map = "string, string", tag = "1")]
    pub key_values: HashMap<String, String>,
}
