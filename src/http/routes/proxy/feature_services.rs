//! `MetadataService/GetFeatureService`: a feature service's definitions, as
//! `tecton.get_workspace(ws).get_feature_service(fs)` reads them before `get_online_features`,
//! answered from the registry by `wire::tecton_proto::definitions`. The caller needs the viewer
//! role on the service's workspace, as for the JSON metadata routes. Services of a development
//! workspace are described too, as Tecton does; the SDK itself refuses to read them online.

use prost::Message;

use super::decode;
use crate::echo::echo;
use crate::http::error::{ApiError, ErrorKind};
use crate::http::wire::tecton_proto::definitions::feature_service_container;
use crate::http::wire::tecton_proto::metadataservice as mds;
use crate::http::AppState;
use crate::iam::{Permission, Principal};
use crate::registry::FeatureService;

pub(super) fn get(
    state: &AppState,
    caller: &Principal,
    message: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let request: mds::GetFeatureServiceRequest = decode(message)?;
    let served = state.served.current();
    let not_found = |message: String| ApiError::new(ErrorKind::NotFound, message);
    let service: &FeatureService =
        match (request.service_reference.as_str(), &request.id) {
            (name, None) if !name.is_empty() => {
                // Checked before the lookup, so a caller without the role learns nothing of it.
                caller.require(Permission::ReadMetadata(&request.workspace))?;
                let workspace = served
                    .registry
                    .workspace(&request.workspace)
                    .ok_or_else(|| {
                        not_found(format!(
                            "workspace `{}` does not exist",
                            echo(&request.workspace)
                        ))
                    })?;
                workspace.services.get(name).ok_or_else(|| {
                    not_found(format!(
                        "feature service `{}` does not exist in workspace `{}`",
                        echo(name),
                        workspace.name
                    ))
                })?
            }
            ("", Some(id)) => {
                let id = id.to_hex();
                let service = served
                    .registry
                    .service_by_id(&id)
                    .ok_or_else(|| not_found(format!("no feature service has id `{id}`")))?;
                caller.require(Permission::ReadMetadata(&service.workspace))?;
                service
            }
            _ => return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                "give the feature service either by `service_reference` (with `workspace`) or by \
                 `id`",
            )),
        };
    Ok(mds::GetFeatureServiceResponse {
        fco_container: Some(feature_service_container(&served.registry, service)),
    }
    .encode_to_vec())
}
