//! `tecton_proto.args`: a realtime view's pipeline, as far as the SDK reads it: the request
//! context its features need and the upstream views they read, side by side under one
//! `join_inputs_node` (Quiver's realtime features are expressions, not Tecton transformations).

use super::common::{Id, Schema};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Pipeline {
    #[prost(message, optional, tag = "1")]
    pub root: Option<PipelineNode>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PipelineNode {
    #[prost(oneof = "NodeType", tags = "4, 5, 9")]
    pub node_type: Option<NodeType>,
}

/// The `node_type` oneof of `PipelineNode`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NodeType {
    #[prost(message, tag = "4")]
    RequestDataSourceNode(RequestDataSourceNode),
    #[prost(message, tag = "5")]
    FeatureViewNode(FeatureViewNode),
    #[prost(message, tag = "9")]
    JoinInputsNode(JoinInputsNode),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct JoinInputsNode {
    #[prost(message, repeated, tag = "2")]
    pub nodes: Vec<PipelineNode>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestDataSourceNode {
    #[prost(message, optional, tag = "1")]
    pub request_context: Option<RequestContext>,
    #[prost(string, tag = "2")]
    pub input_name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestContext {
    #[prost(message, optional, tag = "2")]
    pub tecton_schema: Option<Schema>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct FeatureViewNode {
    #[prost(message, optional, tag = "1")]
    pub feature_view_id: Option<Id>,
    #[prost(string, tag = "3")]
    pub input_name: String,
}
