"""Writes, as .proto text, the Tecton SDK messages Quiver speaks, from the descriptors that the
SDK's generated `tecton_proto` modules embed. Run with the SDK's virtualenv:

    tests/clients/.venv-tecton-sdk/bin/python tests/clients/tecton_sdk/dump_protos.py src/http/wire

Only the messages named in MESSAGES (and the enums their fields use) are written, one file per
protobuf package (src/http/wire/tecton_proto/<package>.proto), with their field names, numbers
and types as published; Quiver's prost structs beside them follow these files. A name followed by
`:field,field` keeps only those fields of a large message (the ones Quiver fills in); the others
keep their numbers in Tecton's descriptor and are left out here.
"""

import importlib
import os
import sys
from importlib.metadata import version

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor

MODULES = [
    "tecton_proto.metadataservice.metadata_service__client_pb2",
    "tecton_proto.secrets.secrets_service__client_pb2",
    "tecton_proto.auth.authorization_service__client_pb2",
    "tecton_proto.data.workspace__client_pb2",
    "tecton_proto.data.fco__client_pb2",
    "tecton_proto.data.service_account__client_pb2",
]

MESSAGES = [
    "tecton_proto.metadataservice.GetConfigsResponse",
    "tecton_proto.metadataservice.ListWorkspacesResponse",
    "tecton_proto.metadataservice.GetWorkspaceRequest",
    "tecton_proto.metadataservice.GetWorkspaceResponse",
    "tecton_proto.metadataservice.IntrospectApiKeyRequest",
    "tecton_proto.metadataservice.IntrospectApiKeyResponse",
    "tecton_proto.common.Id",
    "tecton_proto.metadataservice.GetUserRequest",
    "tecton_proto.metadataservice.GetUserResponse",
    "tecton_proto.data.WorkspaceCapabilities",
    "tecton_proto.data.Workspace",
    "tecton_proto.secrets.SecretScope",
    "tecton_proto.secrets.SecretKey",
    "tecton_proto.secrets.ListSecretScopesResponse",
    "tecton_proto.secrets.CreateSecretScopeRequest",
    "tecton_proto.secrets.DeleteSecretScopeRequest",
    "tecton_proto.secrets.ListSecretsRequest",
    "tecton_proto.secrets.ListSecretsResponse",
    "tecton_proto.secrets.GetSecretValueRequest",
    "tecton_proto.secrets.GetSecretValueResponse",
    "tecton_proto.secrets.PutSecretValueRequest",
    "tecton_proto.secrets.DeleteSecretRequest",
    "tecton_proto.auth.RoleDefinition",
    "tecton_proto.auth.GetRolesResponse",
    "tecton_proto.auth.Assignment",
    "tecton_proto.auth.AssignRolesRequest",
    "tecton_proto.auth.UnassignRolesRequest",
    "tecton_proto.auth.ListAssignedRolesRequest",
    "tecton_proto.auth.RoleAssignmentSource",
    "tecton_proto.auth.RoleAssignmentSummary",
    "tecton_proto.auth.ResourceAndRoleAssignmentsV2",
    "tecton_proto.auth.ListAssignedRolesResponse",
    "tecton_proto.auth.ListAssignedPrincipalsRequest",
    "tecton_proto.auth.UserBasic",
    "tecton_proto.auth.ServiceAccountBasic",
    "tecton_proto.auth.GroupBasic",
    "tecton_proto.auth.WorkspaceBasic",
    "tecton_proto.auth.PrincipalBasic",
    "tecton_proto.auth.AssignmentBasicV2",
    "tecton_proto.auth.ListAssignedPrincipalsResponse",
    # GetFeatureService: what `get_workspace(ws).get_feature_service(fs)` reads to build the
    # service, its views and the request context that `get_online_features` sends.
    "tecton_proto.metadataservice.GetFeatureServiceRequest:service_reference,workspace,id",
    "tecton_proto.metadataservice.GetFeatureServiceResponse",
    "tecton_proto.data.FcoContainer:root_ids,fcos",
    "tecton_proto.data.Fco:feature_view,feature_service",
    "tecton_proto.data.FcoMetadata:name,description,workspace,tags,framework_version",
    "tecton_proto.data.FeatureService:feature_service_id,feature_set_items,fco_metadata,online_serving_enabled",
    "tecton_proto.data.FeatureSetItem",
    "tecton_proto.data.JoinConfigurationItem",
    "tecton_proto.data.FeatureView:feature_view_id,fco_metadata,join_keys,schemas,temporal_aggregate,temporal,"
    "realtime_feature_view,timestamp_key,pipeline,batch_compute_mode",
    "tecton_proto.data.FeatureViewSchemas:view_schema,materialization_schema",
    "tecton_proto.data.Temporal:serving_ttl,data_source_type,attributes",
    "tecton_proto.data.TemporalAggregate:slide_interval,features,is_continuous,data_source_type",
    "tecton_proto.data.Aggregate:input_feature_name,output_feature_name,function,function_params,time_window,"
    "description,tags",
    "tecton_proto.data.RealtimeFeatureView:attributes",
    "tecton_proto.data.Attribute",
    "tecton_proto.common.Schema",
    "tecton_proto.common.Column:name,offline_data_type",
    "tecton_proto.common.Field",
    "tecton_proto.common.DataType",
    "tecton_proto.common.StructField",
    "tecton_proto.common.AggregationFunctionParams",
    "tecton_proto.common.LastNParams",
    "tecton_proto.common.FirstNParams",
    "tecton_proto.common.ApproxCountDistinctParams",
    "tecton_proto.common.ApproxPercentileParams",
    "tecton_proto.common.TimeWindow",
    "tecton_proto.common.RelativeTimeWindow",
    "tecton_proto.common.LifetimeWindow",
    "tecton_proto.common.TimeWindowSeries",
    "tecton_proto.args.Pipeline",
    "tecton_proto.args.PipelineNode:request_data_source_node,feature_view_node,join_inputs_node",
    "tecton_proto.args.JoinInputsNode",
    "tecton_proto.args.RequestDataSourceNode",
    "tecton_proto.args.RequestContext:tecton_schema",
    "tecton_proto.args.FeatureViewNode:feature_view_id,input_name",
    # `tecton service-account ...`: an account's API key is given once, at creation.
    "tecton_proto.data.CreateServiceAccountRequest",
    "tecton_proto.data.CreateServiceAccountResponse:id,name,description,is_active,api_key,credentials_type",
    "tecton_proto.data.ServiceAccount:id,name,description,is_active,credentials_type",
    "tecton_proto.data.GetServiceAccountsRequest",
    "tecton_proto.data.GetServiceAccountsResponse",
    "tecton_proto.data.UpdateServiceAccountRequest",
    "tecton_proto.data.UpdateServiceAccountResponse:id,name,description,is_active",
    "tecton_proto.data.DeleteServiceAccountRequest",
] + sys.argv[2:]

SCALARS = {
    value: name[len("TYPE_"):].lower()
    for name, value in vars(FieldDescriptor).items()
    if name.startswith("TYPE_") and name not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")
}


def field_type(field):
    if field.message_type is not None:
        if field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields
            return f"map<{field_type(key)}, {field_type(value)}>"
        return "." + field.message_type.full_name
    if field.enum_type is not None:
        return "." + field.enum_type.full_name
    return SCALARS[field.type]


def label(field):
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return ""
    if field.label == FieldDescriptor.LABEL_REPEATED:
        return "repeated "
    # A oneof member is written as an optional field with a `// oneof NAME` note.
    return "optional "


def message_lines(message, kept, enums):
    lines = [f"message {message.name} {{"]
    for field in message.fields:
        if kept is not None and field.name not in kept:
            continue
        oneof = field.containing_oneof
        note = f"  // oneof {oneof.name}" if oneof is not None and not oneof.name.startswith("_") else ""
        lines.append(f"  {label(field)}{field_type(field)} {field.name} = {field.number};{note}")
        if field.enum_type is not None:
            package = enums.setdefault(field.enum_type.file.package, [])
            if field.enum_type not in package:
                package.append(field.enum_type)
    return lines + ["}", ""]


def main():
    for module in MODULES:
        importlib.import_module(module)
    pool = descriptor_pool.Default()
    packages = {}
    for entry in MESSAGES:
        name, _, fields = entry.partition(":")
        message = pool.FindMessageTypeByName(name)
        kept = fields.split(",") if fields else None
        missing = set(kept or []) - {field.name for field in message.fields}
        assert not missing, f"{name} has no field {missing}"
        packages.setdefault(message.file.package, []).append((message, kept))
    # An enum is written in its own package's file, whichever package's message uses it.
    enums = {}
    for package, messages in packages.items():
        for message, kept in messages:
            message_lines(message, kept, enums)
    for package in list(packages) + [package for package in enums if package not in packages]:
        messages = packages.get(package, [])
        lines = [
            f"// Taken from the descriptors of PyPI tecton=={version('tecton')} (its tecton_proto package)",
            "// by tests/clients/tecton_sdk/dump_protos.py: only the messages Quiver speaks (of the",
            "// large ones, only the fields it fills in), with Tecton's field names and numbers.",
            'syntax = "proto2";',
            f"package {package};",
            "",
        ]
        for message, kept in messages:
            lines += message_lines(message, kept, {})
        for enum in enums.get(package, []):
            lines.append(f"enum {enum.name} {{")
            lines += [f"  {value.name} = {value.number};" for value in enum.values]
            lines += ["}", ""]
        path = os.path.join(sys.argv[1], package.replace(".", "/") + ".proto")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as out:
            out.write("\n".join(lines))


main()
