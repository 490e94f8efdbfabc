//! `tecton_proto.data`: workspaces, and Tecton's stored definitions (FCOs, "first-class objects")
//! as `GetFeatureService` answers them in an `FcoContainer`: a feature service and the feature
//! views it reads. Only the fields Quiver fills in (see `data.proto`); the SDK reads every other field
//! as its default.

use std::collections::BTreeMap;

use super::args::Pipeline;
use super::common::{AggregationFunctionParams, Duration, Field, Id, Schema, TimeWindow};

/// `tecton_proto.data.WorkspaceCapabilities`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkspaceCapabilities {
    /// A live workspace (Quiver's `live = true`) materializes.
    #[prost(bool, tag = "1")]
    pub materializable: bool,
}

/// `tecton_proto.data.Workspace`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Workspace {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub capabilities: Option<WorkspaceCapabilities>,
}

impl From<&crate::registry::Workspace> for Workspace {
    fn from(workspace: &crate::registry::Workspace) -> Workspace {
        Workspace {
            name: workspace.name.clone(),
            capabilities: Some(WorkspaceCapabilities {
                materializable: workspace.live,
            }),
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FcoContainer {
    #[prost(message, repeated, tag = "1")]
    pub root_ids: Vec<Id>,
    #[prost(message, repeated, tag = "2")]
    pub fcos: Vec<Fco>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Fco {
    #[prost(oneof = "FcoKind", tags = "4, 6")]
    pub fco: Option<FcoKind>,
}

/// The `fco` oneof of `Fco`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FcoKind {
    #[prost(message, tag = "4")]
    FeatureService(FeatureService),
    #[prost(message, tag = "6")]
    FeatureView(FeatureView),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FcoMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(string, tag = "7")]
    pub workspace: String,
    #[prost(btree_map = "string, string", tag = "12")]
    pub tags: BTreeMap<String, String>,
    #[prost(enumeration = "super::common::FrameworkVersion", tag = "15")]
    pub framework_version: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureService {
    #[prost(message, optional, tag = "1")]
    pub feature_service_id: Option<Id>,
    #[prost(message, repeated, tag = "2")]
    pub feature_set_items: Vec<FeatureSetItem>,
    #[prost(message, optional, tag = "9")]
    pub fco_metadata: Option<FcoMetadata>,
    #[prost(bool, tag = "11")]
    pub online_serving_enabled: bool,
}

/// One view as a service uses it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureSetItem {
    #[prost(message, optional, tag = "6")]
    pub feature_view_id: Option<Id>,
    #[prost(message, repeated, tag = "3")]
    pub join_configuration_items: Vec<JoinConfigurationItem>,
    #[prost(string, tag = "4")]
    pub namespace: String,
    #[prost(string, repeated, tag = "5")]
    pub feature_columns: Vec<String>,
}

/// A view's join key (`package_column_name`) and the request's key it is read from.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinConfigurationItem {
    #[prost(string, tag = "1")]
    pub spine_column_name: String,
    #[prost(string, tag = "2")]
    pub package_column_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureView {
    #[prost(message, optional, tag = "1")]
    pub feature_view_id: Option<Id>,
    #[prost(message, optional, tag = "2")]
    pub fco_metadata: Option<FcoMetadata>,
    #[prost(string, repeated, tag = "4")]
    pub join_keys: Vec<String>,
    #[prost(message, optional, tag = "11")]
    pub schemas: Option<FeatureViewSchemas>,
    #[prost(oneof = "FeatureViewType", tags = "7, 8, 17")]
    pub feature_view_type: Option<FeatureViewType>,
    #[prost(string, tag = "10")]
    pub timestamp_key: String,
    #[prost(message, optional, tag = "6")]
    pub pipeline: Option<Pipeline>,
    #[prost(enumeration = "super::common::BatchComputeMode", optional, tag = "31")]
    pub batch_compute_mode: Option<i32>,
}

/// The `feature_view_type` oneof of `FeatureView`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum FeatureViewType {
    #[prost(message, tag = "7")]
    TemporalAggregate(TemporalAggregate),
    #[prost(message, tag = "8")]
    Temporal(Temporal),
    #[prost(message, tag = "17")]
    RealtimeFeatureView(RealtimeFeatureView),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewSchemas {
    #[prost(message, optional, tag = "1")]
    pub view_schema: Option<Schema>,
    /// The SDK requires one for a materialized view; Quiver's storage has no Tecton schema.
    #[prost(message, optional, tag = "2")]
    pub materialization_schema: Option<Schema>,
}

/// A batch or stream view without aggregation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Temporal {
    #[prost(message, optional, tag = "16")]
    pub serving_ttl: Option<Duration>,
    #[prost(enumeration = "super::common::DataSourceType", tag = "17")]
    pub data_source_type: i32,
    #[prost(message, repeated, tag = "23")]
    pub attributes: Vec<Attribute>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TemporalAggregate {
    #[prost(message, optional, tag = "1")]
    pub slide_interval: Option<Duration>,
    #[prost(message, repeated, tag = "2")]
    pub features: Vec<Aggregate>,
    #[prost(bool, tag = "3")]
    pub is_continuous: bool,
    #[prost(enumeration = "super::common::DataSourceType", tag = "4")]
    pub data_source_type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Aggregate {
    #[prost(string, tag = "1")]
    pub input_feature_name: String,
    #[prost(string, tag = "2")]
    pub output_feature_name: String,
    #[prost(enumeration = "super::common::AggregationFunction", tag = "3")]
    pub function: i32,
    #[prost(message, optional, tag = "5")]
    pub function_params: Option<AggregationFunctionParams>,
    #[prost(message, optional, tag = "6")]
    pub time_window: Option<TimeWindow>,
    #[prost(string, tag = "8")]
    pub description: String,
    #[prost(btree_map = "string, string", tag = "9")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RealtimeFeatureView {
    #[prost(message, repeated, tag = "4")]
    pub attributes: Vec<Attribute>,
}

/// A feature that is a column of the view's rows (or of a realtime view's output).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Attribute {
    #[prost(message, optional, tag = "1")]
    pub column: Option<Field>,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub tags: BTreeMap<String, String>,
}

/// `CreateServiceAccountRequest`: an API-key account unless `credentials_type` asks otherwise.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateServiceAccountRequest {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(enumeration = "CredentialsType", tag = "3")]
    pub credentials_type: i32,
}

/// `ServiceAccountCredentialsType`: an API key (also when unspecified) or OAuth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum CredentialsType {
    Unspecified = 0,
    ApiKey = 1,
    OauthClientCredentials = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateServiceAccountResponse {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(bool, tag = "4")]
    pub is_active: bool,
    #[prost(string, tag = "5")]
    pub api_key: String,
    #[prost(enumeration = "CredentialsType", tag = "7")]
    pub credentials_type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceAccount {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(bool, tag = "4")]
    pub is_active: bool,
    #[prost(enumeration = "CredentialsType", tag = "8")]
    pub credentials_type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetServiceAccountsRequest {
    #[prost(string, tag = "1")]
    pub search: String,
    #[prost(string, repeated, tag = "2")]
    pub ids: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetServiceAccountsResponse {
    #[prost(message, repeated, tag = "1")]
    pub service_accounts: Vec<ServiceAccount>,
}

/// Only the fields present change: `tecton service-account update/activate/deactivate` each
/// set some of them, and `is_active = false` is not the same as leaving it out.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateServiceAccountRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub description: Option<String>,
    #[prost(bool, optional, tag = "4")]
    pub is_active: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateServiceAccountResponse {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(bool, tag = "4")]
    pub is_active: bool,
}

/// `DeleteServiceAccountRequest` (its response is empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteServiceAccountRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}
