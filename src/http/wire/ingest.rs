//! Tecton Stream Ingest API JSON: `{"workspace_name", "dry_run", "records": {source: [{"record": {...}}]}}`
//! in, `ingestMetrics` (counts as strings) or `requestError` / `recordErrors` out: the ingest
//! family's renderer of the error table (`IngestRefusal`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{json, Map, Value as Json};

use crate::http::error::{ApiError, ErrorKind};
use crate::iam::AuthError;
use crate::ingest::{IngestError, IngestPlan, RecordError};
use crate::registry::Registry;
use crate::store::StoreError;

/// A parsed ingest request.
#[derive(Debug)]
pub struct IngestRequest {
    pub workspace: String,
    pub dry_run: bool,
    /// Push source name and its records' field maps, in request order.
    pub records: Vec<(String, Vec<Json>)>,
}

/// Field lookup that accepts the snake_case name and its camelCase twin.
fn field<'a>(object: &'a Map<String, Json>, snake: &str, camel: &str) -> Option<&'a Json> {
    object
        .get(snake)
        .or_else(|| object.get(camel))
        .filter(|v| !v.is_null())
}

/// Reads the request; the error is the message for a `requestError`.
pub fn parse_ingest_request(body: &Json) -> Result<IngestRequest, String> {
    let object = body
        .as_object()
        .ok_or("The request body must be a JSON object")?;
    let missing = |name: &str| format!("Required field `{name}` is missing in the request");
    let workspace = match field(object, "workspace_name", "workspaceName") {
        None => return Err(missing("workspace_name")),
        Some(Json::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err("Field `workspace_name` must be a non-empty string".to_string()),
    };
    let dry_run = match field(object, "dry_run", "dryRun") {
        None => return Err(missing("dry_run")),
        Some(Json::Bool(flag)) => *flag,
        Some(_) => return Err("Field `dry_run` must be a boolean".to_string()),
    };
    let sources =
        match field(object, "records", "records") {
            None => return Err(missing("records")),
            Some(Json::Object(sources)) if !sources.is_empty() => sources,
            Some(_) => return Err(
                "Field `records` must be an object mapping push source names to lists of records"
                    .to_string(),
            ),
        };
    let mut records = Vec::with_capacity(sources.len());
    for (source, entries) in sources {
        let entries = entries.as_array().ok_or_else(|| {
            format!("Field `records.{source}` must be a list of {{\"record\": {{...}}}} objects")
        })?;
        let mut fields = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            match entry.get("record") {
                Some(record @ Json::Object(_)) => fields.push(record.clone()),
                _ => {
                    return Err(format!(
                    "Field `records.{source}[{index}]` must be an object with a `record` object"
                ))
                }
            }
        }
        records.push((source.clone(), fields));
    }
    Ok(IngestRequest {
        workspace,
        dry_run,
        records,
    })
}

fn request_error(message: &str, error_type: &str) -> Json {
    json!({"requestError": {"errorMessage": message, "errorType": error_type}})
}

fn record_errors(workspace: &str, errors: &[RecordError]) -> Json {
    let entries: Vec<Json> = errors
        .iter()
        .map(|e| {
            let mut entry = Map::new();
            if let Some(view) = &e.feature_view {
                entry.insert("featureViewName".into(), Json::String(view.clone()));
            }
            entry.insert("pushSourceName".into(), Json::String(e.push_source.clone()));
            entry.insert("errorType".into(), Json::String(e.error_type.into()));
            entry.insert("errorMessage".into(), Json::String(e.message.clone()));
            Json::Object(entry)
        })
        .collect();
    json!({"workspaceName": workspace, "recordErrors": entries})
}

/// The 200 answer; a dry run reports what would have been written.
pub fn ingest_metrics(registry: &Registry, workspace: &str, plan: &IngestPlan) -> Json {
    let views: Vec<Json> = plan
        .per_view
        .iter()
        .map(|(id, count)| {
            let view = registry.view(*id);
            json!({
                "featureViewName": view.name,
                "onlineRecordIngestCount": count.to_string(),
                "offlineRecordIngestCount": "0",
                "featureViewId": crate::registry::object_id("feature_view", workspace, &view.name),
            })
        })
        .collect();
    let sources: Vec<Json> = plan
        .per_source
        .iter()
        .map(|(name, _)| {
            json!({
                "dataSourceName": name,
                "offlineRecordIngestCount": "0",
                "dataSourceId": crate::registry::object_id("push_source", workspace, name),
            })
        })
        .collect();
    let mut body = json!({"workspaceName": workspace, "ingestMetrics": {"featureViewIngestMetrics": views, "dataSourceIngestMetrics": sources}});
    if !plan.rejected.is_empty() {
        body["recordErrors"] = record_errors(workspace, &plan.rejected)["recordErrors"].take();
    }
    body
}

/// An ingest answer other than 200, in the ingest API's own body shapes: the error table's
/// status, and `{"requestError": {"errorMessage", "errorType"}}` or, for records that failed
/// validation, one entry per record.
#[derive(Debug)]
pub struct IngestRefusal {
    status: StatusCode,
    body: Json,
}

impl std::fmt::Display for IngestRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ingest refused with {}", self.status)
    }
}

impl ResponseError for IngestRefusal {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(&self.body)
    }
}

impl From<ApiError> for IngestRefusal {
    fn from(error: ApiError) -> IngestRefusal {
        let error_type = match error.kind {
            ErrorKind::Unauthenticated => "AuthenticationError",
            ErrorKind::PermissionDenied => "PermissionDeniedError",
            ErrorKind::NotFound => "NotFoundError",
            ErrorKind::Unavailable => "UnavailableError",
            ErrorKind::Internal => "InternalError",
            _ => "RequestValidationError",
        };
        IngestRefusal {
            status: error.kind.status(),
            body: request_error(&error.message, error_type),
        }
    }
}

impl From<AuthError> for IngestRefusal {
    fn from(error: AuthError) -> IngestRefusal {
        ApiError::from(error).into()
    }
}

impl From<StoreError> for IngestRefusal {
    fn from(error: StoreError) -> IngestRefusal {
        ApiError::from(error).into()
    }
}

/// The plan's errors: records that failed validation get one entry each, with the workspace.
pub fn refuse_plan(workspace: &str, error: IngestError) -> IngestRefusal {
    let records = match &error {
        IngestError::Records(errors) => Some(record_errors(workspace, errors)),
        _ => None,
    };
    let refusal = IngestRefusal::from(ApiError::from(error));
    match records {
        Some(body) => IngestRefusal { body, ..refusal },
        None => refusal,
    }
}
