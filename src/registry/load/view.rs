//! Batch and stream feature views: schema, entity join keys, timestamp, ttl and features.

use super::*;

pub(super) fn build_view(
    site: &Site,
    kind: &str,
    raw: &RawView,
    id: ViewId,
    workspace: &Workspace,
) -> Result<FeatureView, RegistryError> {
    let aggregating = raw.aggregation_interval.is_some()
        || !raw.aggregations.is_empty()
        || raw.stream_processing_mode.is_some();
    if aggregating && kind != "stream_feature_view" {
        return Err(site.error("only stream feature views aggregate"));
    }
    if aggregating && !raw.features.is_empty() {
        return Err(
            site.error("declares both `features` and `aggregations`; a view does one or the other")
        );
    }
    if raw.entities.is_empty() {
        return Err(site.error("a feature view needs at least one entity"));
    }
    let mut join_keys: Vec<Field> = Vec::new();
    for entity_name in &raw.entities {
        let entity = workspace
            .entities
            .get(entity_name)
            .ok_or_else(|| site.error(format!("unknown entity `{entity_name}`")))?;
        for key in &entity.join_keys {
            match join_keys.iter().find(|k| k.name == key.name) {
                Some(existing) if existing.data_type != key.data_type => {
                    return Err(site.error(format!(
                        "join key `{}` is {} in one entity and {} in another",
                        key.name, existing.data_type, key.data_type
                    )))
                }
                Some(_) => {}
                None => join_keys.push(key.clone()),
            }
        }
    }
    let ttl = raw
        .ttl
        .as_deref()
        .map(|text| parse_duration(text).map_err(|e| site.error(format!("ttl: {e}"))))
        .transpose()?;
    if ttl == Some(0) {
        return Err(site.error("ttl must be longer than 0s (leave it out to keep rows forever)"));
    }
    if raw.features.is_empty() && !aggregating {
        return Err(site.error("a feature view needs at least one feature"));
    }
    let mut features: Vec<Feature> = Vec::with_capacity(raw.features.len());
    for raw_feature in &raw.features {
        check_name(site, "feature name", &raw_feature.name)?;
        if features.iter().any(|f| f.name == raw_feature.name) {
            return Err(site.error(format!("feature `{}` is declared twice", raw_feature.name)));
        }
        let data_type = DataType::parse(&raw_feature.data_type)
            .map_err(|e| site.error(format!("feature `{}`: {e}", raw_feature.name)))?;
        let column = raw_feature
            .column
            .clone()
            .unwrap_or_else(|| raw_feature.name.clone());
        if column == raw.timestamp_field || join_keys.iter().any(|k| k.name == column) {
            return Err(site.error(format!(
                "feature `{}` reads column `{column}`, which is a join key or the timestamp field",
                raw_feature.name
            )));
        }
        features.push(Feature {
            name: raw_feature.name.clone(),
            data_type,
            column,
            description: raw_feature.description.clone(),
            tags: raw_feature.tags.clone(),
        });
    }
    let mut aggregation = None;
    let view_kind = match (kind, &raw.source) {
        ("batch_feature_view", None) => ViewKind::Batch,
        ("batch_feature_view", Some(_)) => {
            return Err(site.error(
                "a batch feature view has no `source`; use a stream_feature_view for push sources",
            ))
        }
        (_, None) => {
            return Err(site.error("a stream feature view needs a `source` (a push source name)"))
        }
        (_, Some(source_name)) => {
            let source = workspace
                .push_sources
                .get(source_name)
                .ok_or_else(|| site.error(format!("unknown push source `{source_name}`")))?;
            let column_type = |column: &str| {
                source
                    .schema
                    .iter()
                    .find(|f| f.name == column)
                    .map(|f| &f.data_type)
            };
            for key in &join_keys {
                match column_type(&key.name) {
                    Some(t) if *t == key.data_type => {}
                    Some(t) => {
                        return Err(site.error(format!(
                            "join key `{}` is {} but push source `{source_name}` has it as {t}",
                            key.name, key.data_type
                        )))
                    }
                    None => {
                        return Err(site.error(format!(
                            "push source `{source_name}` has no field for join key `{}`",
                            key.name
                        )))
                    }
                }
            }
            match column_type(&raw.timestamp_field) {
                Some(DataType::Timestamp) => {}
                Some(t) => return Err(site.error(format!("timestamp field `{}` is {t} in push source `{source_name}`; it must be timestamp", raw.timestamp_field))),
                None => return Err(site.error(format!("push source `{source_name}` has no timestamp field `{}`", raw.timestamp_field))),
            }
            if aggregating {
                let (aggregate_features, spec) =
                    build_aggregation(site, raw, &source.schema, &join_keys)?;
                features = aggregate_features;
                aggregation = Some(Arc::new(spec));
            }
            for feature in features.iter().filter(|_| !aggregating) {
                match column_type(&feature.column) {
                    Some(t) if *t == feature.data_type => {}
                    Some(t) => {
                        return Err(site.error(format!(
                        "feature `{}` is {} but push source `{source_name}` has column `{}` as {t}",
                        feature.name, feature.data_type, feature.column
                    )))
                    }
                    None => {
                        return Err(site.error(format!(
                            "push source `{source_name}` has no column `{}` for feature `{}`",
                            feature.column, feature.name
                        )))
                    }
                }
            }
            ViewKind::Stream {
                source: source_name.clone(),
            }
        }
    };
    Ok(FeatureView {
        id,
        layout: 0,
        workspace: workspace.name.clone(),
        name: raw.name.clone(),
        kind: view_kind,
        description: raw.description.clone(),
        tags: raw.tags.clone(),
        join_keys,
        timestamp_field: raw.timestamp_field.clone(),
        ttl: if aggregation.is_some() { None } else { ttl },
        row_columns: match &aggregation {
            Some(spec) => spec.inputs.clone(),
            None => features
                .iter()
                .map(|f| Field {
                    name: f.column.clone(),
                    data_type: f.data_type.clone(),
                })
                .collect(),
        },
        features,
        aggregation,
    })
}
