//! TrueFoundry Secret Groups JSON: request bodies and manifests in, camelCase groups and
//! secrets in `{"data": ...}` envelopes out, and TrueFoundry's (NestJS) error body
//! `{"statusCode","message"}`, with the status each vault error takes.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::echo::echo;
use crate::http::error::{ApiError, ErrorKind};
use crate::iam::AuthError;
use crate::iam::PrincipalKind;
use crate::secrets::crypto::Plaintext;
use crate::secrets::state::{Group, TfSecret, COLLABORATOR_ID};
use crate::secrets::truefoundry::{check_name, Page, PageRequest, SecretView};
use crate::secrets::{NameKind, SecretRef, SecretsError};
use crate::time::Micros;

/// TrueFoundry's error body.
#[derive(Debug)]
pub struct TfError {
    status: StatusCode,
    message: String,
}

impl std::fmt::Display for TfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for TfError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .json(json!({"statusCode": self.status.as_u16(), "message": self.message}))
    }
}

impl TfError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> TfError {
        TfError {
            status,
            message: message.into(),
        }
    }
}

/// TrueFoundry answers invalid input with 422 (the SDK types it) and a faulty secret store
/// with 424 Failed Dependency: a stored value that cannot be opened is that; the rest as
/// everywhere.
impl From<SecretsError> for TfError {
    fn from(error: SecretsError) -> TfError {
        let status = match (&error, ErrorKind::from(&error)) {
            (SecretsError::Tampered { .. }, _) => StatusCode::FAILED_DEPENDENCY,
            (_, ErrorKind::InvalidArgument) => StatusCode::UNPROCESSABLE_ENTITY,
            (_, kind) => kind.status(),
        };
        let message = match error {
            SecretsError::InvalidPage { limit, max } => {
                format!("limit must be between 1 and {max}, got {limit}")
            }
            SecretsError::Tampered {
                record: SecretRef::Group { tenant, group, key },
            } => format!("secret '{tenant}:{group}:{key}' could not be decrypted: its stored ciphertext was altered or sealed under another key"),
            other => other.to_string(),
        };
        TfError::new(status, message)
    }
}

impl From<ApiError> for TfError {
    fn from(error: ApiError) -> TfError {
        TfError::new(error.kind.status(), error.message)
    }
}

/// A bad or missing key is TrueFoundry's bare `401 Unauthorized`, answered before any body is
/// read; permissions are the vault's to check, against the group's collaborators.
impl From<AuthError> for TfError {
    fn from(error: AuthError) -> TfError {
        let error = ApiError::from(error);
        match error.kind {
            ErrorKind::Unauthenticated => TfError::new(StatusCode::UNAUTHORIZED, "Unauthorized"),
            _ => error.into(),
        }
    }
}

fn unprocessable(message: String) -> TfError {
    TfError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// The query of `GET /secret-groups`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListGroupsQuery {
    limit: Option<usize>,
    offset: Option<usize>,
    pub fqn: Option<String>,
    pub search: Option<String>,
}

/// TrueFoundry's defaults: the first 100.
fn page_request(limit: Option<usize>, offset: Option<usize>) -> PageRequest {
    PageRequest {
        limit: limit.unwrap_or(100),
        offset: offset.unwrap_or(0),
    }
}

impl ListGroupsQuery {
    pub fn page(&self) -> PageRequest {
        page_request(self.limit, self.offset)
    }
}

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: Option<String>,
}

/// The body of `POST /secret-groups`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateGroupBody {
    pub name: String,
    pub integration_id: Option<String>,
    #[serde(default)]
    secrets: Vec<KeyValue>,
}

impl CreateGroupBody {
    /// The new group's secrets: every one needs a value.
    pub fn take_secrets(&mut self) -> Result<Vec<(String, Plaintext)>, TfError> {
        std::mem::take(&mut self.secrets)
            .into_iter()
            .map(|kv| match kv.value {
                Some(value) => Ok((kv.key, Plaintext(value))),
                None => Err(unprocessable(format!(
                    "secret `{}` needs a value",
                    echo(&kv.key)
                ))),
            })
            .collect()
    }
}

/// The body of `PUT /secret-groups`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertGroupBody {
    pub manifest: Json,
    #[serde(default)]
    pub dry_run: bool,
}

/// What a manifest says of its group.
pub struct ManifestFields {
    pub name: String,
    pub integration_id: Option<String>,
}

impl UpsertGroupBody {
    /// The group's name and integration, after checking the manifest's `name` and `type`.
    pub fn fields(&self) -> Result<ManifestFields, TfError> {
        let name = self
            .manifest
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        check_name(NameKind::Group, &name).map_err(|_| {
            unprocessable(format!(
                "manifest.name `{}` must be {}",
                echo(&name),
                NameKind::Group.rule()
            ))
        })?;
        if self
            .manifest
            .get("type")
            .and_then(Json::as_str)
            .is_some_and(|t| t != "secret-group")
        {
            return Err(unprocessable(
                "manifest.type must be `secret-group`".to_string(),
            ));
        }
        check_manifest_fields(&self.manifest)?;
        let integration_id = self
            .manifest
            .get("integration_fqn")
            .and_then(Json::as_str)
            .map(str::to_string);
        Ok(ManifestFields {
            name,
            integration_id,
        })
    }
}

/// A secret-group manifest's fields, as the SDK's `SecretGroupManifest` declares them.
const MANIFEST_FIELDS: [&str; 5] = [
    "type",
    "name",
    "integration_fqn",
    "collaborators",
    "ownedBy",
];
/// The roles a collaborator may be given on a group.
const GROUP_ROLES: [&str; 3] = [
    "secret-group-admin",
    "secret-group-editor",
    "secret-group-viewer",
];
/// The kinds of subject a collaborator names (`team:` is TrueFoundry's; Quiver has no teams, so
/// it reaches no caller).
const SUBJECT_KINDS: [&str; 3] = ["user", "serviceaccount", "team"];

/// The manifest holds only a manifest's fields, and its collaborators are `{subject, role_id}`
/// with a subject of a known kind and one of the group roles. The manifest is kept whole and
/// answered back, so anything else it carried would be stored in plain text (a `secrets` list
/// with values was) and a misspelt role would silently give none.
fn check_manifest_fields(manifest: &Json) -> Result<(), TfError> {
    let Some(fields) = manifest.as_object() else {
        return Err(unprocessable("manifest must be an object".to_string()));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|f| !MANIFEST_FIELDS.contains(&f.as_str()))
    {
        return Err(unprocessable(format!(
            "manifest.{} is not a secret-group manifest field (expected {}); secrets are set \
             with PUT /api/svc/v1/secret-groups/{{id}}",
            echo(unknown),
            MANIFEST_FIELDS.join(", ")
        )));
    }
    if let Some(owned_by) = fields.get("ownedBy").filter(|o| !o.is_null()) {
        let account_only = owned_by
            .as_object()
            .is_some_and(|o| o.len() == 1 && o.get("account").is_some_and(Json::is_string));
        if !account_only {
            return Err(unprocessable(
                "manifest.ownedBy must be {\"account\": <name>}".to_string(),
            ));
        }
    }
    let collaborators = match fields.get("collaborators") {
        None | Some(Json::Null) => return Ok(()),
        Some(Json::Array(collaborators)) => collaborators,
        Some(_) => {
            return Err(unprocessable(
                "manifest.collaborators must be a list of {subject, role_id}".to_string(),
            ))
        }
    };
    for (i, collaborator) in collaborators.iter().enumerate() {
        let at = format!("manifest.collaborators[{i}]");
        let Some(collaborator) = collaborator.as_object() else {
            return Err(unprocessable(format!(
                "{at} must be an object {{subject, role_id}}"
            )));
        };
        if let Some(unknown) = collaborator
            .keys()
            .find(|f| !["subject", "role_id"].contains(&f.as_str()))
        {
            return Err(unprocessable(format!(
                "{at}.{} is not a collaborator field (expected subject, role_id)",
                echo(unknown)
            )));
        }
        let subject = collaborator.get("subject").and_then(Json::as_str);
        let kind_and_name = subject.and_then(|s| s.split_once(':'));
        if !kind_and_name
            .is_some_and(|(kind, name)| SUBJECT_KINDS.contains(&kind) && !name.is_empty())
        {
            return Err(unprocessable(format!(
                "{at}.subject must be `<kind>:<name>` with kind {}",
                SUBJECT_KINDS.join(", ")
            )));
        }
        let role = collaborator.get("role_id").and_then(Json::as_str);
        if !role.is_some_and(|role| GROUP_ROLES.contains(&role)) {
            return Err(unprocessable(format!(
                "{at}.role_id must be one of {}",
                GROUP_ROLES.join(", ")
            )));
        }
    }
    Ok(())
}

/// Whether the manifest names a service account as a collaborator (then its accounts must be
/// looked up, for [`bind_service_accounts`]).
pub fn names_service_accounts(manifest: &Json) -> bool {
    let entries = manifest.get("collaborators").and_then(Json::as_array);
    entries.into_iter().flatten().any(|entry| {
        let subject = entry.get("subject").and_then(Json::as_str);
        subject.is_some_and(|s| s.starts_with("serviceaccount:"))
    })
}

/// Binds each `serviceaccount:<name>` collaborator to the id `id_of(name)` gives
/// ([`COLLABORATOR_ID`]), so that the grant ends with that account rather than passing to a
/// later one of its name. A name no account has is refused: it would reach whichever account
/// took the name later.
pub fn bind_service_accounts(
    manifest: &mut Json,
    id_of: impl Fn(&str) -> Option<String>,
) -> Result<(), TfError> {
    let Some(entries) = manifest
        .get_mut("collaborators")
        .and_then(Json::as_array_mut)
    else {
        return Ok(());
    };
    for (i, entry) in entries.iter_mut().enumerate() {
        let subject = entry.get("subject").and_then(Json::as_str);
        let Some(name) = subject.and_then(|s| s.strip_prefix("serviceaccount:")) else {
            continue;
        };
        let id = id_of(name).ok_or_else(|| {
            unprocessable(format!(
                "manifest.collaborators[{i}].subject: service account `{}` does not exist",
                echo(name)
            ))
        })?;
        entry[COLLABORATOR_ID] = json!(id);
    }
    Ok(())
}

/// A stored manifest as its client wrote it: without the ids Quiver bound its service-account
/// collaborators to.
fn manifest_as_written(manifest: &Json) -> Json {
    let mut manifest = manifest.clone();
    if let Some(entries) = manifest
        .get_mut("collaborators")
        .and_then(Json::as_array_mut)
    {
        for entry in entries.iter_mut().filter_map(Json::as_object_mut) {
            entry.remove(COLLABORATOR_ID);
        }
    }
    manifest
}

/// The body of `PUT /secret-groups/{id}`: the full key set, a value only where it changes.
#[derive(Deserialize)]
pub struct UpdateGroupBody {
    secrets: Vec<KeyValue>,
}

impl UpdateGroupBody {
    pub fn into_secrets(self) -> Vec<(String, Option<Plaintext>)> {
        self.secrets
            .into_iter()
            .map(|kv| (kv.key, kv.value.map(Plaintext)))
            .collect()
    }
}

/// The body of `POST /secrets` (a list).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListSecretsBody {
    limit: Option<usize>,
    offset: Option<usize>,
    #[serde(default)]
    pub secret_fqns: Vec<String>,
    pub secret_group_id: Option<String>,
    #[serde(default)]
    pub with_value: bool,
}

impl ListSecretsBody {
    pub fn page(&self) -> PageRequest {
        page_request(self.limit, self.offset)
    }
}

/// ISO 8601 with milliseconds and `Z`, as TrueFoundry writes times.
fn time(micros: Micros) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros).map_or_else(String::new, |t| {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    })
}

/// The group's `createdBySubject`: the creator's id and kind, and its name as `subjectSlug`
/// and `subjectDisplayName` (a service account's name, or a user's `userName`; the same text
/// for both, as Quiver's principals have one name). A group created before Quiver kept the
/// creator's name has neither, as the SDK allows.
fn subject(group: &Group) -> Json {
    let creator = &group.created_by;
    let subject_type = match creator.kind {
        PrincipalKind::User => "user",
        PrincipalKind::ServiceAccount | PrincipalKind::BootstrapAdmin => "serviceaccount",
    };
    let mut subject = json!({"subjectId": creator.id, "subjectType": subject_type});
    if let Some(name) = &creator.name {
        subject["subjectSlug"] = json!(name);
        subject["subjectDisplayName"] = json!(name);
    }
    subject
}

/// The legacy `createdBy` string: the creator's name (a user's email), else its id.
fn created_by(group: &Group) -> &str {
    let creator = &group.created_by;
    creator.name.as_deref().unwrap_or(&creator.id)
}

fn secret_json(tenant: &str, group: &Group, secret: &TfSecret, value: Option<&Plaintext>) -> Json {
    let group_fqn = format!("{tenant}:{}", group.name);
    let fqn = format!("{group_fqn}:{}", secret.key);
    // Each version names its secret (the SDK's nested `Secret`, its required fields only).
    let parent =
        json!({"id": secret.id, "fqn": fqn, "name": secret.key, "secretGroupId": group.id});
    let versions: Vec<Json> = secret
        .versions
        .iter()
        .map(|v| json!({"id": v.id, "fqn": format!("{fqn}:{}", v.sealed.version), "version": v.sealed.version, "secret": parent,
                        "secretId": secret.id, "createdAt": time(v.sealed.created), "updatedAt": time(v.sealed.updated)}))
        .collect();
    let mut out = json!({
        "id": secret.id, "fqn": fqn, "name": secret.key, "secretGroupId": group.id,
        "createdBySubject": subject(group), "createdBy": created_by(group), "createdAt": time(secret.created),
        "updatedAt": time(secret.updated), "secretVersions": versions, "activeDeploymentsCount": 0,
    });
    if let Some(value) = value {
        out["value"] = Json::String(value.0.clone());
    }
    out
}

/// A secret, with its value when the vault gave one.
pub fn secret(tenant: &str, view: &SecretView) -> Json {
    secret_json(tenant, &view.group, &view.secret, view.value.as_ref())
}

/// A group with its secrets, never their values.
pub fn group(tenant: &str, group: &Group) -> Json {
    let secrets: Vec<Json> = group
        .secrets
        .values()
        .map(|s| secret_json(tenant, group, s, None))
        .collect();
    let mut out = json!({
        "id": group.id, "fqn": format!("{tenant}:{}", group.name), "name": group.name, "tenantName": tenant, "accountId": tenant,
        "createdBySubject": subject(group), "createdBy": created_by(group), "associatedSecrets": secrets,
        "createdAt": time(group.created), "updatedAt": time(group.updated),
    });
    if let Some(id) = &group.integration_id {
        out["integrationId"] = json!(id);
    }
    if let Some(manifest) = &group.manifest {
        out["manifest"] = manifest_as_written(manifest);
    }
    out
}

/// The fields a group may have, for `?attributes=`.
const GROUP_FIELDS: [&str; 12] = [
    "id",
    "fqn",
    "name",
    "tenantName",
    "accountId",
    "createdBySubject",
    "createdBy",
    "associatedSecrets",
    "integrationId",
    "manifest",
    "createdAt",
    "updatedAt",
];

/// The fields `?attributes=` asks for (repeated, `attributes=id&attributes=name`, or
/// comma-separated, `attributes=id,name`), `id` always among them; `None` for every field.
pub fn attributes(query: &str) -> Result<Option<Vec<String>>, TfError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let mut fields: Vec<String> = Vec::new();
    for (_, list) in pairs.into_iter().filter(|(key, _)| key == "attributes") {
        for field in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if !GROUP_FIELDS.contains(&field) {
                return Err(unprocessable(format!(
                    "attributes: `{}` is not a secret group field; expected some of {}",
                    echo(field),
                    GROUP_FIELDS.join(", ")
                )));
            }
            if !fields.iter().any(|f| f == field) {
                fields.push(field.to_string());
            }
        }
    }
    if fields.is_empty() {
        return Ok(None);
    }
    if !fields.iter().any(|f| f == "id") {
        fields.insert(0, "id".to_string());
    }
    Ok(Some(fields))
}

/// A group with only the fields asked for (all of them for `None`).
pub fn group_with(tenant: &str, item: &Group, fields: Option<&[String]>) -> Json {
    let mut out = group(tenant, item);
    if let (Some(fields), Json::Object(object)) = (fields, &mut out) {
        object.retain(|key, _| fields.iter().any(|f| f == key));
    }
    out
}

/// `?forceDelete=`: a delete that goes ahead even when the external secret store fails. The
/// vault is Quiver's own store, journaled with the delete, so there is nothing to force; the
/// flag is still checked, so a typo is an error rather than a surprise.
pub fn check_force_delete(query: &str) -> Result<(), TfError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    match pairs.iter().find(|(key, _)| key == "forceDelete") {
        None => Ok(()),
        Some((_, value)) if value == "true" || value == "false" => Ok(()),
        Some((_, value)) => Err(unprocessable(format!(
            "forceDelete must be true or false, got `{}`",
            echo(value)
        ))),
    }
}

/// `{"data": ...}`.
pub fn data(item: Json) -> Json {
    json!({ "data": item })
}

/// `{"data": [...], "pagination": {...}}`.
pub fn page<T>(page: &Page<T>, request: PageRequest, encode: impl Fn(&T) -> Json) -> Json {
    let data: Vec<Json> = page.items.iter().map(encode).collect();
    json!({"data": data, "pagination": {"total": page.total, "offset": request.offset, "limit": request.limit}})
}
