//! Tecton Stream Ingest API JSON: `{"workspace_name", "dry_run", "records": {source: [{"record": {...}}]}}`
//! in, `ingestMetrics` (counts as strings) or `requestError` / `recordErrors` out: the ingest
//! family's renderer of the error table (`IngestRefusal`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use crate::http::error::{ApiError, ErrorKind};
use crate::iam::AuthError;
use crate::ingest::row::TypedRecords;
use crate::ingest::{IngestError, IngestPlan, RecordError};
use crate::registry::value::ValueSeed;
use crate::registry::{Field, PushSource, Registry, Workspace};
use crate::store::StoreError;

/// A parsed ingest request: its records as JSON trees (`parse_ingest_request`) or typed by
/// their sources' schemas (`read_typed_request`).
#[derive(Debug)]
pub struct IngestRequest<R = Vec<Json>> {
    pub workspace: String,
    pub dry_run: bool,
    /// Push source name and its records, in request order.
    pub records: Vec<(String, R)>,
}

/// Field lookup that accepts the snake_case name and its camelCase twin (not both).
fn field<'a>(
    object: &'a Map<String, Json>,
    snake: &str,
    camel: &str,
) -> Result<Option<&'a Json>, String> {
    if snake != camel && object.contains_key(snake) && object.contains_key(camel) {
        return Err(format!(
            "Fields `{snake}` and `{camel}` are one field given twice; give one"
        ));
    }
    Ok(object
        .get(snake)
        .or_else(|| object.get(camel))
        .filter(|v| !v.is_null()))
}

/// The path of the first object key given twice in `body` (`records.transactions`), if any:
/// a JSON tree keeps the last of twin keys and silently drops what the first held. Read only
/// for a body the typed reader declined (it declines twins itself).
pub fn twin_key(body: &[u8]) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    TwinKeys { path: "" }
        .deserialize(&mut deserializer)
        .ok()
        .flatten()
}

/// Walks a JSON value for [`twin_key`], `path` being where it is.
struct TwinKeys<'p> {
    path: &'p str,
}

impl TwinKeys<'_> {
    fn at(&self, step: &str) -> String {
        match self.path {
            "" => step.to_string(),
            path => format!("{path}.{step}"),
        }
    }
}

impl<'de> DeserializeSeed<'de> for TwinKeys<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TwinKeys<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut index = 0;
        loop {
            let path = format!("{}[{index}]", self.path);
            match seq.next_element_seed(TwinKeys { path: &path })? {
                None => return Ok(found),
                Some(twin) => found = found.or(twin),
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.at(&key);
            if keys.insert(key) {
                let twin = map.next_value_seed(TwinKeys { path: &path })?;
                found = found.or(twin);
            } else {
                map.next_value::<IgnoredAny>()?;
                found = found.or(Some(path));
            }
        }
        Ok(found)
    }
}

/// Reads the request; the error is the message for a `requestError`.
pub fn parse_ingest_request(body: &Json) -> Result<IngestRequest, String> {
    let object = body
        .as_object()
        .ok_or("The request body must be a JSON object")?;
    let missing = |name: &str| format!("Required field `{name}` is missing in the request");
    let workspace = match field(object, "workspace_name", "workspaceName")? {
        None => return Err(missing("workspace_name")),
        Some(Json::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err("Field `workspace_name` must be a non-empty string".to_string()),
    };
    let dry_run = match field(object, "dry_run", "dryRun")? {
        None => return Err(missing("dry_run")),
        Some(Json::Bool(flag)) => *flag,
        Some(_) => return Err("Field `dry_run` must be a boolean".to_string()),
    };
    let sources =
        match field(object, "records", "records")? {
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

/// Reads a well-formed request straight into typed records (no JSON tree, no per-record maps);
/// `None` for anything else: malformed JSON, a missing or mistyped field, an unknown workspace
/// or source, a record the source's schema refuses. Then `parse_ingest_request` reads the body
/// again and the plan words the refusal, so both paths answer every request alike. One pass
/// when the body names its workspace before `records` (as clients write it); otherwise a
/// second, with the workspace the first found.
pub fn read_typed_request(body: &[u8], registry: &Registry) -> Option<IngestRequest<TypedRecords>> {
    // Checked once for the whole body, so that serde_json need not check each string again,
    // and invalid UTF-8 in a skipped value is declined as the tree reader refuses it.
    let text = std::str::from_utf8(body).ok()?;
    // Each source's slots allocated once, not grown by doubling (8 reallocations and copies,
    // ~34k instructions a body of 100 records). Each record opens two objects (its entry and
    // itself), the body and `records` one each: counting braces counts the records (more if
    // values hold braces), at a few instructions a 32 bytes (a search for `"record"` cost
    // ~25k a body, most of what it saved).
    let expected_records = memchr::memchr_iter(b'{', body).count().saturating_sub(2) / 2;
    let read = |workspace: Option<&Workspace>| {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let read = TypedBody {
            registry,
            workspace,
            expected_records,
        }
        .deserialize(&mut deserializer)
        .ok()?;
        deserializer.end().ok()?;
        Some(read)
    };
    let first = read(None)?;
    let records = match first.records {
        Some(records) => records,
        None => read(Some(live_workspace(registry, &first.workspace)?))?.records?,
    };
    Some(IngestRequest {
        workspace: first.workspace,
        dry_run: first.dry_run,
        records,
    })
}

fn live_workspace<'a>(registry: &'a Registry, name: &str) -> Option<&'a Workspace> {
    registry.workspace(name).filter(|workspace| workspace.live)
}

/// Each reader below is its own seed: it asks the deserializer for its JSON shape and visits it.
macro_rules! seeds_by_shape {
    ($($reader:ty => $shape:ident,)*) => {$(
        impl<'de> DeserializeSeed<'de> for $reader {
            type Value = <Self as Visitor<'de>>::Value;

            fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
                deserializer.$shape(self)
            }
        }
    )*};
}

seeds_by_shape! {
    TypedBody<'_> => deserialize_map,
    BodyKeys => deserialize_str,
    TypedSources<'_> => deserialize_map,
    TypedEntries<'_> => deserialize_seq,
    TypedEntry<'_> => deserialize_map,
    TypedRecord<'_> => deserialize_map,
    SchemaField<'_> => deserialize_str,
    KeyIs => deserialize_str,
}

/// Refuses what the typed reader does not take; never shown (the tree path words refusals).
fn not_typed<E: de::Error>() -> E {
    E::custom("left to the JSON tree reader")
}

/// The body: its records are read typed once the workspace is known, given (second pass) or
/// read before `records`; otherwise skipped, for a second pass.
struct TypedBody<'a> {
    registry: &'a Registry,
    workspace: Option<&'a Workspace>,
    /// Records the body holds, at most: each source's records have room for them.
    expected_records: usize,
}

struct ReadBody {
    workspace: String,
    dry_run: bool,
    /// `None`: `records` came before the workspace's name.
    records: Option<Vec<(String, TypedRecords)>>,
}

impl<'de> Visitor<'de> for TypedBody<'_> {
    type Value = ReadBody;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an ingest request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReadBody, A::Error> {
        let mut workspace_name: Option<String> = None;
        let mut dry_run = None;
        // Outer `Some`: `records` was met (a second one is declined, as are twin names).
        let mut records = None;
        while let Some(key) = map.next_key_seed(BodyKeys)? {
            match key {
                BodyKey::Workspace if workspace_name.is_none() => {
                    workspace_name = Some(map.next_value()?);
                }
                BodyKey::DryRun if dry_run.is_none() => dry_run = Some(map.next_value()?),
                BodyKey::Records if records.is_none() => {
                    let workspace = match (self.workspace, &workspace_name) {
                        (Some(workspace), _) => Some(workspace),
                        (None, Some(name)) => {
                            Some(live_workspace(self.registry, name).ok_or_else(not_typed)?)
                        }
                        (None, None) => None,
                    };
                    records = Some(match workspace {
                        Some(workspace) => Some(map.next_value_seed(TypedSources {
                            registry: self.registry,
                            workspace,
                            expected_records: self.expected_records,
                        })?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                            None
                        }
                    });
                }
                BodyKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
                BodyKey::Workspace | BodyKey::DryRun | BodyKey::Records => return Err(not_typed()),
            }
        }
        Ok(ReadBody {
            workspace: workspace_name
                .filter(|name| !name.is_empty())
                .ok_or_else(not_typed)?,
            dry_run: dry_run.ok_or_else(not_typed)?,
            records: records.ok_or_else(not_typed)?,
        })
    }
}

/// A key of the body, under either spelling `parse_ingest_request` accepts (no allocation).
enum BodyKey {
    Workspace,
    DryRun,
    Records,
    Other,
}

/// Reads a `BodyKey`.
struct BodyKeys;

impl Visitor<'_> for BodyKeys {
    type Value = BodyKey;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<BodyKey, E> {
        Ok(match key {
            "workspace_name" | "workspaceName" => BodyKey::Workspace,
            "dry_run" | "dryRun" => BodyKey::DryRun,
            "records" => BodyKey::Records,
            _ => BodyKey::Other,
        })
    }
}

/// `records`: push source name -> its list of `{"record": {...}}`.
struct TypedSources<'a> {
    registry: &'a Registry,
    workspace: &'a Workspace,
    expected_records: usize,
}

impl<'de> Visitor<'de> for TypedSources<'_> {
    type Value = Vec<(String, TypedRecords)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("push source names mapped to lists of records")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut sources: Vec<(String, TypedRecords)> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let source = self
                .workspace
                .push_sources
                .get(&name)
                .filter(|source| !source.subscribers.is_empty())
                .ok_or_else(not_typed)?;
            if sources.iter().any(|(seen, _)| *seen == name) {
                return Err(not_typed());
            }
            let mut records = TypedRecords::new(self.registry, source, self.expected_records)
                .ok_or_else(not_typed)?;
            map.next_value_seed(TypedEntries(Target {
                source,
                records: &mut records,
            }))?;
            sources.push((name, records));
        }
        if sources.is_empty() {
            return Err(not_typed());
        }
        Ok(sources)
    }
}

/// Where a source's records are read to: its schema and the records read so far.
struct Target<'a> {
    source: &'a PushSource,
    records: &'a mut TypedRecords,
}

impl Target<'_> {
    fn reborrow(&mut self) -> Target<'_> {
        Target {
            source: self.source,
            records: &mut *self.records,
        }
    }
}

/// One source's list of `{"record": {...}}` entries.
struct TypedEntries<'a>(Target<'a>);

impl<'de> Visitor<'de> for TypedEntries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut target = self.0;
        while let Some(()) = seq.next_element_seed(TypedEntry(target.reborrow()))? {}
        Ok(())
    }
}

/// `{"record": {...}}`: other keys are ignored, as `parse_ingest_request` does.
struct TypedEntry<'a>(Target<'a>);

impl<'de> Visitor<'de> for TypedEntry<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object with a `record` object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut target = self.0;
        let mut read = false;
        while let Some(is_record) = map.next_key_seed(KeyIs("record"))? {
            if !is_record {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if read {
                return Err(not_typed());
            }
            target.records.push_record();
            map.next_value_seed(TypedRecord(target.reborrow()))?;
            read = true;
        }
        if read {
            Ok(())
        } else {
            Err(not_typed())
        }
    }
}

/// A record's fields, each read as its schema field's type into the last record's slots.
struct TypedRecord<'a>(Target<'a>);

impl<'de> Visitor<'de> for TypedRecord<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a record object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Target { source, records } = self.0;
        let schema = &source.schema;
        let mut expected = 0;
        while let Some(field) = map.next_key_seed(SchemaField { schema, expected })? {
            expected = field + 1;
            let value = map.next_value_seed(ValueSeed(&schema[field].data_type))?;
            if !records.set(field, value) {
                return Err(not_typed());
            }
        }
        Ok(())
    }
}

/// A record's key as the index of its schema field (no allocation); an unknown one refuses.
/// Clients mostly write a record's fields in the schema's order, so the field after the last
/// one read (`expected`) is compared first (a search compared 4 names a key on average).
struct SchemaField<'a> {
    schema: &'a [Field],
    expected: usize,
}

impl Visitor<'_> for SchemaField<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field of the push source's schema")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<usize, E> {
        if self
            .schema
            .get(self.expected)
            .is_some_and(|field| field.name == name)
        {
            return Ok(self.expected);
        }
        self.schema
            .iter()
            .position(|field| field.name == name)
            .ok_or_else(not_typed)
    }
}

/// Whether an object's key is the one named (no allocation).
struct KeyIs(&'static str);

impl Visitor<'_> for KeyIs {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
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

/// The 200 answer; a dry run reports what would have been written. Serialised as it is (no
/// `Json` tree built and walked, ~40k instructions an answer of six views): keys in the order
/// of the fields.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestMetrics<'a> {
    workspace_name: &'a str,
    ingest_metrics: Metrics<'a>,
    /// Events an aggregating view refused, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    record_errors: Option<Json>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metrics<'a> {
    feature_view_ingest_metrics: Vec<ViewMetrics<'a>>,
    data_source_ingest_metrics: Vec<SourceMetrics<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ViewMetrics<'a> {
    feature_view_name: &'a str,
    online_record_ingest_count: String,
    offline_record_ingest_count: &'static str,
    feature_view_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SourceMetrics<'a> {
    data_source_name: &'a str,
    offline_record_ingest_count: &'static str,
    data_source_id: String,
}

pub fn ingest_metrics<'a>(
    registry: &'a Registry,
    workspace: &'a str,
    plan: &'a IngestPlan,
) -> IngestMetrics<'a> {
    let views = plan
        .per_view
        .iter()
        .map(|(id, count)| {
            let view = registry.view(*id);
            ViewMetrics {
                feature_view_name: &view.name,
                online_record_ingest_count: count.to_string(),
                offline_record_ingest_count: "0",
                feature_view_id: crate::registry::object_id("feature_view", workspace, &view.name),
            }
        })
        .collect();
    let sources = plan
        .per_source
        .iter()
        .map(|(name, _)| SourceMetrics {
            data_source_name: name,
            offline_record_ingest_count: "0",
            data_source_id: crate::registry::object_id("push_source", workspace, name),
        })
        .collect();
    IngestMetrics {
        workspace_name: workspace,
        ingest_metrics: Metrics {
            feature_view_ingest_metrics: views,
            data_source_ingest_metrics: sources,
        },
        record_errors: (!plan.rejected.is_empty())
            .then(|| record_errors(workspace, &plan.rejected)["recordErrors"].take()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::bench::dataset::demo_registry;
    use crate::ingest::plan_ingest;
    use crate::time::{format_timestamp, now_micros, MICROS_PER_SECOND};

    /// The plan (or refusal) a body gets, read both ways: the typed reader must take it.
    fn plans(registry: &Registry, body: &str) -> (String, String) {
        let now = now_micros();
        let skew = 60 * MICROS_PER_SECOND;
        let typed =
            read_typed_request(body.as_bytes(), registry).expect("the typed reader takes it");
        let json: Json = serde_json::from_str(body).unwrap();
        let tree = parse_ingest_request(&json).unwrap();
        assert_eq!(
            (&typed.workspace, typed.dry_run),
            (&tree.workspace, tree.dry_run)
        );
        let plan = |result: Result<IngestPlan, IngestError>| format!("{result:?}");
        (
            plan(plan_ingest(
                registry,
                &typed.workspace,
                &typed.records,
                now,
                skew,
            )),
            plan(plan_ingest(
                registry,
                &tree.workspace,
                &tree.records,
                now,
                skew,
            )),
        )
    }

    #[test]
    fn typed_and_tree_reading_plan_the_same_rows_and_refusals() {
        let registry = demo_registry();
        let now = format_timestamp(now_micros());
        let old = format_timestamp(now_micros() - 40 * 86_400 * MICROS_PER_SECOND);
        let records = [
            // Every field, int64 and float64 in their other accepted forms.
            format!(
                r#"{{"user_id": "u1", "merchant": "m\u00e9", "terminal_id": "7", "amt": "1.5",
                "category": "food", "is_online": true, "transaction_id": "t1", "is_fraud": 0,
                "timestamp": "{now}"}}"#
            ),
            format!(
                r#"{{"timestamp": "{now}", "user_id": "u2", "merchant": "m2", "amt": 3,
                "terminal_id": -4, "is_fraud": null, "is_online": null}}"#
            ),
            format!(
                r#"{{"user_id": "u3", "merchant": "m3", "terminal_id": 1, "amt": "NaN",
                "timestamp": "{now}"}}"#
            ),
            // Refused one by one: older than the views' windows and ttls.
            format!(
                r#"{{"user_id": "u4", "merchant": "m4", "terminal_id": 2, "amt": 1e3,
                "timestamp": "{old}"}}"#
            ),
        ];
        let entries: Vec<String> = records
            .iter()
            .map(|record| format!(r#"{{"record": {record}, "note": [1, {{"x": null}}]}}"#))
            .collect();
        let entries = entries.join(",");
        let bodies = [
            format!(
                r#"{{"workspace_name": "prod", "dry_run": false, "records": {{"transactions": [{entries}]}}}}"#
            ),
            // camelCase, the workspace after the records, an unknown field.
            format!(
                r#"{{"records": {{"transactions": [{entries}]}}, "extra": {{}}, "dryRun": true, "workspaceName": "prod"}}"#
            ),
            // Well formed, refused by the plan with the tree path's words: a join key missing.
            r#"{"workspace_name": "prod", "dry_run": false, "records": {"transactions": [{"record": {"user_id": "u"}}]}}"#.to_string(),
        ];
        for body in &bodies {
            let (typed, tree) = plans(&registry, body);
            assert_eq!(typed, tree, "{body}");
        }
        assert!(plans(&registry, &bodies[2]).0.contains("is missing"));
    }

    /// The 200 answer as it was built before, a JSON tree: the model of `IngestMetrics`.
    fn metrics_tree(registry: &Registry, workspace: &str, plan: &IngestPlan) -> Json {
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

    /// One field of a `transactions` record as JSON text, in any form the schema's type takes
    /// (strings with escapes and non-ASCII, numbers as strings), null, or left out (`None`).
    /// The views' join keys and timestamp are rarely left out or null, so that most requests
    /// are written, row by row, rather than refused whole.
    fn transaction_field(
        name: &'static str,
    ) -> impl Strategy<Value = (&'static str, Option<String>)> {
        let required = ["user_id", "merchant", "terminal_id", "timestamp"].contains(&name);
        let (given, null) = if required { (0.98, 1) } else { (0.5, 10) };
        let text = move |strategy: BoxedStrategy<Json>| {
            prop::option::weighted(given, prop_oneof![null => Just(Json::Null), 60 => strategy])
                .prop_map(move |json| (name, json.map(|json| json.to_string())))
        };
        let now = now_micros();
        match name {
            "terminal_id" | "is_fraud" => text(
                prop_oneof![
                    any::<i64>().prop_map(Json::from),
                    (-999i64..999).prop_map(|i| Json::from(format!(" {i}"))),
                ]
                .boxed(),
            ),
            "amt" => text(
                prop_oneof![
                    (-1e6f64..1e6).prop_map(Json::from),
                    (-500i64..500).prop_map(Json::from),
                    (-1e3f64..1e3).prop_map(|f| Json::from(f.to_string())),
                    prop::sample::select(vec!["NaN", "Infinity", "-Infinity"]).prop_map(Json::from),
                ]
                .boxed(),
            ),
            "is_online" => text(any::<bool>().prop_map(Json::from).boxed()),
            // From two days back (past some windows and ttls) to past the future skew.
            "timestamp" => text(
                (-2 * 86_400i64..120)
                    .prop_map(move |seconds| {
                        Json::from(format_timestamp(now + seconds * MICROS_PER_SECOND))
                    })
                    .boxed(),
            ),
            _ => text(
                "[a-c\"\\\n\u{e9}\u{1F600}]{0,6}"
                    .prop_map(Json::from)
                    .boxed(),
            ),
        }
    }

    fn transaction_record() -> impl Strategy<Value = String> {
        let fields = [
            "user_id",
            "merchant",
            "terminal_id",
            "amt",
            "category",
            "is_online",
            "transaction_id",
            "is_fraud",
            "timestamp",
        ]
        .map(transaction_field);
        fields.prop_shuffle().prop_map(|fields| {
            let given: Vec<String> = fields
                .iter()
                .filter_map(|(name, text)| Some(format!("\"{name}\": {}", text.as_ref()?)))
                .collect();
            format!("{{{}}}", given.join(", "))
        })
    }

    proptest! {
        /// Records the typed reader encodes field by field plan the same rows, byte for byte,
        /// and the same refusals as their JSON trees.
        #[test]
        fn typed_records_plan_what_their_trees_plan(
            records in prop::collection::vec(transaction_record(), 1..8),
        ) {
            let registry = demo_registry();
            let entries: Vec<String> =
                records.iter().map(|record| format!(r#"{{"record": {record}}}"#)).collect();
            let body = format!(
                r#"{{"workspace_name": "prod", "dry_run": false, "records": {{"transactions": [{}]}}}}"#,
                entries.join(",")
            );
            let (typed, tree) = plans(&registry, &body);
            prop_assert_eq!(typed, tree);
            // The answer's bytes, as the tree wrote them (views written and refused).
            let request = read_typed_request(body.as_bytes(), &registry).unwrap();
            let skew = 60 * MICROS_PER_SECOND;
            if let Ok(plan) =
                plan_ingest(&registry, "prod", &request.records, now_micros(), skew)
            {
                prop_assert_eq!(
                    serde_json::to_string(&ingest_metrics(&registry, "prod", &plan)).unwrap(),
                    serde_json::to_string(&metrics_tree(&registry, "prod", &plan)).unwrap()
                );
            }
        }
    }

    #[test]
    fn a_sources_slots_are_allocated_once_for_the_records_named() {
        let registry = demo_registry();
        let record = r#"{"record": {"user_id": "u", "merchant": "m", "terminal_id": 1, "timestamp": "2026-01-01T00:00:00Z"}}"#;
        let width = registry.workspace("prod").unwrap().push_sources["transactions"]
            .schema
            .len();
        for count in [1, 7, 100] {
            let body = format!(
                r#"{{"workspace_name": "prod", "dry_run": false, "records": {{"transactions": [{}]}}}}"#,
                vec![record; count].join(",")
            );
            let request = read_typed_request(body.as_bytes(), &registry).unwrap();
            let (_, records) = &request.records[0];
            assert_eq!(records.slot_capacity(), count * width, "{count}");
        }
    }

    #[test]
    fn anything_not_well_formed_is_left_to_the_tree_reader() {
        let registry = demo_registry();
        let record = r#"{"user_id": "u", "merchant": "m", "terminal_id": 1, "timestamp": "2026-01-01T00:00:00Z"}"#;
        let body = |workspace: &str, records: &str| {
            format!(r#"{{"workspace_name": {workspace}, "dry_run": false, "records": {records}}}"#)
        };
        let with_record = |record: &str| {
            body(
                r#""prod""#,
                &format!(r#"{{"transactions": [{{"record": {record}}}]}}"#),
            )
        };
        assert!(read_typed_request(with_record(record).as_bytes(), &registry).is_some());
        let refused = [
            with_record(r#"{"user_id": "u", "nope": 1}"#),
            with_record(r#"{"user_id": 5}"#),
            with_record(r#"{"terminal_id": 1.5}"#),
            with_record(r#"{"terminal_id": 9223372036854775808}"#),
            with_record(r#"{"timestamp": "yesterday"}"#),
            with_record(r#"{"user_id": "u", "user_id": "v"}"#),
            with_record("null"),
            with_record("[]"),
            body(r#""prod""#, r#"{"transactions": [{"no_record": {}}]}"#),
            body(r#""prod""#, r#"{"transactions": [{"record": {}, "record": {}}]}"#),
            body(r#""prod""#, r#"{"transactions": {}}"#),
            body(r#""prod""#, r#"{"no_such_source": []}"#),
            body(r#""prod""#, r#"{"transactions": [], "transactions": []}"#),
            body(r#""prod""#, "{}"),
            body(r#""prod""#, "[]"),
            body(r#""""#, r#"{"transactions": []}"#),
            body("null", r#"{"transactions": []}"#),
            body(r#""no_such_workspace""#, r#"{"transactions": []}"#),
            r#"{"workspace_name": "prod", "workspaceName": "prod", "dry_run": false, "records": {"transactions": []}}"#.to_string(),
            r#"{"workspace_name": "prod", "records": {"transactions": []}}"#.to_string(),
            r#"{"records": {"transactions": []}, "workspace_name": "nope", "dry_run": false}"#
                .to_string(),
            r#"{"records": {"transactions": [{"record": {"nope": 1}}]}, "workspace_name": "prod", "dry_run": false}"#
                .to_string(),
            format!("{} x", with_record(record)),
            with_record(record).replace("}}", "}"),
        ];
        for body in &refused {
            assert!(
                read_typed_request(body.as_bytes(), &registry).is_none(),
                "{body}"
            );
        }
        // Invalid UTF-8 in a value the typed reader skips: the tree reader refuses the body.
        let mut bad_utf8 = b"{\"extra\": \"\xff\", ".to_vec();
        bad_utf8.extend_from_slice(&with_record(record).as_bytes()[1..]);
        assert!(serde_json::from_slice::<Json>(&bad_utf8).is_err());
        assert!(read_typed_request(&bad_utf8, &registry).is_none());
    }
}
