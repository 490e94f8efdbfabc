"""Writes, as .proto text, the Tecton SDK messages Quiver speaks, from the descriptors that the
SDK's generated `tecton_proto` modules embed. Run with the SDK's virtualenv:

    tests/clients/.venv-tecton-sdk/bin/python tests/clients/tecton_sdk/dump_protos.py src/http/wire

Only the messages named in MESSAGES (and the enums their fields use) are written, one file per
protobuf package (src/http/wire/tecton_proto/<package>.proto), with their field names, numbers
and types as published; Quiver's prost structs beside them follow these files.
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


def message_lines(message, enums):
    lines = [f"message {message.name} {{"]
    for field in message.fields:
        oneof = field.containing_oneof
        note = f"  // oneof {oneof.name}" if oneof is not None and not oneof.name.startswith("_") else ""
        lines.append(f"  {label(field)}{field_type(field)} {field.name} = {field.number};{note}")
        if field.enum_type is not None and field.enum_type not in enums:
            enums.append(field.enum_type)
    return lines + ["}", ""]


def main():
    for module in MODULES:
        importlib.import_module(module)
    pool = descriptor_pool.Default()
    packages = {}
    for name in MESSAGES:
        message = pool.FindMessageTypeByName(name)
        packages.setdefault(message.file.package, []).append(message)
    for package, messages in packages.items():
        enums = []
        lines = [
            f"// Taken from the descriptors of PyPI tecton=={version('tecton')} (its tecton_proto package)",
            "// by tests/clients/tecton_sdk/dump_protos.py: only the messages Quiver speaks, with",
            "// Tecton's field names and numbers.",
            'syntax = "proto2";',
            f"package {package};",
            "",
        ]
        for message in messages:
            lines += message_lines(message, enums)
        for enum in enums:
            lines.append(f"enum {enum.name} {{")
            lines += [f"  {value.name} = {value.number};" for value in enum.values]
            lines += ["}", ""]
        path = os.path.join(sys.argv[1], package.replace(".", "/") + ".proto")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as out:
            out.write("\n".join(lines))


main()
