//! Realtime views: request schema, upstream views and one compiled CEL expression per feature.

use super::*;

/// A realtime view: its request schema, upstream views and one compiled expression per feature.
pub(super) fn build_realtime_view(
    site: &Site,
    raw: &RawRealtimeView,
    id: ViewId,
    workspace: &Workspace,
    registry: &Registry,
) -> Result<FeatureView, RegistryError> {
    let request_schema = parse_fields(site, "request field", &raw.request_schema)?;
    let mut sources = Vec::with_capacity(raw.sources.len());
    let mut join_keys: Vec<Field> = Vec::new();
    for name in &raw.sources {
        let source_id = *workspace.views.get(name).ok_or_else(|| {
            site.error(format!("reads feature view `{name}`, which does not exist"))
        })?;
        let source = registry.view(source_id);
        if matches!(source.kind, ViewKind::Realtime(_)) {
            return Err(site.error(format!(
                "reads realtime view `{name}`; realtime views read stored views only"
            )));
        }
        for key in &source.join_keys {
            if !join_keys.iter().any(|k| k.name == key.name) {
                join_keys.push(key.clone());
            }
        }
        sources.push((source_id, name.clone()));
    }
    if raw.features.is_empty() {
        return Err(site.error("a realtime feature view needs at least one feature"));
    }
    let source_names: Vec<String> = raw.sources.clone();
    let mut features = Vec::with_capacity(raw.features.len());
    let mut programs = Vec::with_capacity(raw.features.len());
    for raw_feature in &raw.features {
        check_name(site, "feature name", &raw_feature.name)?;
        if features
            .iter()
            .any(|f: &Feature| f.name == raw_feature.name)
        {
            return Err(site.error(format!("feature `{}` is declared twice", raw_feature.name)));
        }
        let data_type = DataType::parse(&raw_feature.data_type)
            .map_err(|e| site.error(format!("feature `{}`: {e}", raw_feature.name)))?;
        programs.push(
            crate::registry::realtime::compile(&raw_feature.expression, &source_names)
                .map_err(|e| site.error(format!("feature `{}`: {e}", raw_feature.name)))?,
        );
        features.push(Feature {
            name: raw_feature.name.clone(),
            data_type,
            column: String::new(),
            description: raw_feature.description.clone(),
            tags: BTreeMap::new(),
        });
    }
    let expressions: Vec<String> = raw.features.iter().map(|f| f.expression.clone()).collect();
    let source_features: Vec<(&str, &[Feature])> = sources
        .iter()
        .map(|(source_id, name)| (name.as_str(), &registry.view(*source_id).features[..]))
        .collect();
    let reads = source_features
        .iter()
        .map(|(name, features)| {
            crate::registry::realtime::features_read(&expressions, name, features)
        })
        .collect();
    let direct = expressions
        .iter()
        .map(|e| crate::registry::realtime::direct_form(e, &source_features))
        .collect();
    Ok(FeatureView {
        id,
        layout: 0,
        workspace: workspace.name.clone(),
        name: raw.name.clone(),
        kind: ViewKind::Realtime(Arc::new(crate::registry::realtime::RealtimeSpec {
            request_schema,
            sources,
            programs,
            expressions,
            reads,
            direct,
        })),
        description: raw.description.clone(),
        tags: raw.tags.clone(),
        join_keys,
        timestamp_field: String::new(),
        ttl: None,
        features,
        row_columns: Vec::new(),
        aggregation: None,
    })
}
