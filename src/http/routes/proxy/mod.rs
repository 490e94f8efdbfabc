//! Tecton's metadata proxy, `POST /api/proxy` (and `/proxy`): how the Tecton SDK and CLI make
//! every call but online reads. The body is a JSON envelope `{"method": "/pkg.Service/Method",
//! "metadata": {"authorization": "Tecton-key KEY", ...}, "request": "<base64 protobuf>"}`; the
//! answer is always a 2xx `{"status": {"code", "detail"}, "response": "<base64>", "metadata"}`
//! with the gRPC code of the outcome, as the SDK expects. Each call is decoded with the prost
//! structs of `wire/tecton_proto` and answered by the same domain handles, under the same role
//! rules, as the JSON routes.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use prost::Message;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};

use crate::http::body::JsonBody;
use crate::http::error::{ApiError, ErrorKind};
use crate::http::wire::tecton_proto::common::Id;
use crate::http::wire::tecton_proto::data::Workspace;
use crate::http::wire::tecton_proto::metadataservice as mds;
use crate::http::AppState;
use crate::iam::{Permission, Principal};

mod access_control;
mod directory_roles;
mod feature_services;
mod secrets;
mod service_accounts;

pub fn configure(cfg: &mut web::ServiceConfig) {
    for path in ["/api/proxy", "/proxy"] {
        cfg.route(path, web::post().to(call));
    }
}

/// A secret value is at most 64 KiB; base64 and JSON add a third and the envelope's metadata.
const MAX_ENVELOPE_BYTES: usize = 512 * 1024;

/// The SDK encodes with Python's `base64.encodebytes` (a newline every 76 characters); other
/// clients may leave the padding out. Whitespace is dropped before decoding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Deserialize)]
struct Envelope {
    method: String,
    #[serde(default)]
    metadata: Map<String, Json>,
    #[serde(default)]
    request: String,
}

/// An envelope that cannot be read is an HTTP error (the SDK raises on it); everything after
/// that is answered inside the envelope.
async fn call(state: web::Data<AppState>, body: JsonBody) -> Result<HttpResponse, ApiError> {
    let envelope: Envelope = body.read(MAX_ENVELOPE_BYTES).await?;
    let (code, detail, response) = match answer(&state, &envelope).await {
        Ok(response) => (0, String::new(), STANDARD.encode(response)),
        Err(error) => (error.kind.grpc_code(), error.message, String::new()),
    };
    Ok(HttpResponse::Ok().json(json!({
        "status": {"code": code, "detail": detail},
        "response": response,
        "metadata": {},
    })))
}

/// Authenticates the envelope's `metadata.authorization` as the `Authorization` header of the
/// JSON routes, then runs the call.
async fn answer(state: &AppState, envelope: &Envelope) -> Result<Vec<u8>, ApiError> {
    let authorization = match envelope.metadata.get("authorization") {
        None => None,
        Some(Json::String(value)) => Some(value.as_str()),
        Some(_) => {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                "metadata.authorization must be a string",
            ))
        }
    };
    let caller = state.directory.authenticate(authorization)?;
    let compact: Vec<u8> = envelope
        .request
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    let message = LENIENT_BASE64.decode(compact).map_err(|error| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("request is not base64: {error}"),
        )
    })?;
    dispatch(state, caller, &envelope.method, &message).await
}

pub(super) fn decode<M: Message + Default>(message: &[u8]) -> Result<M, ApiError> {
    M::decode(message).map_err(|error| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("request is not a valid protobuf message: {error}"),
        )
    })
}

/// One arm per method Quiver answers; an unknown one is gRPC UNIMPLEMENTED.
async fn dispatch(
    state: &AppState,
    caller: Arc<Principal>,
    method: &str,
    message: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let service = method.rsplit_once('/').map_or("", |(service, _)| service);
    let name = method.rsplit('/').next().unwrap_or(method);
    let response = match (service, name) {
        ("/tecton_proto.metadataservice.MetadataService", "GetConfigs" | "GetLoginConfigs") => {
            // No cluster setting of Tecton's changes how its client talks to Quiver.
            mds::GetConfigsResponse::default().encode_to_vec()
        }
        (
            "/tecton_proto.metadataservice.MetadataService",
            "Nop" | "IngestClientLogs" | "IngestAnalytics",
        ) => ().encode_to_vec(),
        ("/tecton_proto.metadataservice.MetadataService", "IntrospectApiKey") => {
            // Whoever holds a key may learn whose it is (`tecton get-caller-identity`).
            let request: mds::IntrospectApiKeyRequest = decode(message)?;
            let authorization = format!("Tecton-key {}", request.api_key);
            let owner = state
                .directory
                .authenticate(Some(&authorization))
                .map_err(|_| ApiError::new(ErrorKind::NotFound, "no such API key"))?;
            mds::IntrospectApiKeyResponse {
                id: Id::from_hex(&owner.id),
                description: String::new(),
                created_by: String::new(),
                active: true,
                is_admin: owner.is_admin,
                name: owner.name.clone(),
            }
            .encode_to_vec()
        }
        ("/tecton_proto.metadataservice.MetadataService", "GetUser") => {
            access_control::user(state, caller, message).await?
        }
        ("/tecton_proto.metadataservice.MetadataService", "ListWorkspaces") => {
            // The workspaces whose metadata the caller may read, as the JSON metadata routes.
            let served = state.served.current();
            let workspaces = served
                .registry
                .workspaces()
                .filter(|workspace| {
                    caller
                        .require(Permission::ReadMetadata(&workspace.name))
                        .is_ok()
                })
                .map(Workspace::from)
                .collect();
            mds::ListWorkspacesResponse { workspaces }.encode_to_vec()
        }
        ("/tecton_proto.metadataservice.MetadataService", "GetWorkspace") => {
            let request: mds::GetWorkspaceRequest = decode(message)?;
            caller.require(Permission::ReadMetadata(&request.workspace_name))?;
            let served = state.served.current();
            let workspace = served
                .registry
                .workspace(&request.workspace_name)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorKind::NotFound,
                        format!("workspace `{}` does not exist", request.workspace_name),
                    )
                })?;
            mds::GetWorkspaceResponse {
                workspace: Some(workspace.into()),
            }
            .encode_to_vec()
        }
        ("/tecton_proto.metadataservice.MetadataService", "GetFeatureService") => {
            feature_services::get(state, &caller, message)?
        }
        (
            "/tecton_proto.metadataservice.MetadataService",
            "CreateServiceAccount"
            | "GetServiceAccounts"
            | "UpdateServiceAccount"
            | "DeleteServiceAccount",
        ) => service_accounts::call(state, caller, name, message).await?,
        ("/tecton_proto.secrets.SecretsService", _) => {
            secrets::call(state, caller, name, message).await?
        }
        ("/tecton_proto.auth.AuthorizationService", _) => {
            access_control::call(state, caller, name, message).await?
        }
        _ => return Err(unimplemented(method)),
    };
    Ok(response)
}

pub(super) fn unimplemented(method: &str) -> ApiError {
    // ErrorKind::MethodNotAllowed is gRPC UNIMPLEMENTED (12).
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("Quiver does not serve {method}"),
    )
}
