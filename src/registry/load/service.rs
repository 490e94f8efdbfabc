//! Feature services: the views they select, aliases and join-key maps, in Tecton's feature order.

use super::logging::build_logging;
use super::*;

pub(super) fn build_service(
    site: &Site,
    raw: &RawService,
    workspace: &Workspace,
    registry: &Registry,
) -> Result<FeatureService, RegistryError> {
    if raw.features.is_empty() {
        return Err(site.error("a feature service needs at least one feature view"));
    }
    let mut input_join_keys: Vec<Field> = Vec::new();
    let mut items: Vec<ServiceItem> = Vec::with_capacity(raw.features.len());
    for raw_item in &raw.features {
        let view_id = *workspace.views.get(&raw_item.view).ok_or_else(|| {
            site.error(format!(
                "references feature view `{}`, which does not exist",
                raw_item.view
            ))
        })?;
        let view = registry.view(view_id);
        let namespace = raw_item.alias.clone().unwrap_or_else(|| view.name.clone());
        check_name(site, "alias", &namespace)?;
        if items.iter().any(|item| item.namespace == namespace) {
            return Err(site.error(format!(
                "uses the namespace `{namespace}` twice; give one of the views an `alias`"
            )));
        }
        if let Some(unknown) = raw_item
            .join_key_map
            .keys()
            .find(|k| !view.join_keys.iter().any(|j| &j.name == *k))
        {
            return Err(site.error(format!(
                "join_key_map renames `{unknown}`, which is not a join key of `{}`",
                view.name
            )));
        }
        let mut key_inputs = Vec::with_capacity(view.join_keys.len());
        for key in &view.join_keys {
            let request_name = raw_item.join_key_map.get(&key.name).unwrap_or(&key.name);
            let index = match input_join_keys.iter().position(|k| &k.name == request_name) {
                Some(i) if input_join_keys[i].data_type != key.data_type => {
                    return Err(site.error(format!(
                        "request join key `{request_name}` would be both {} and {}",
                        input_join_keys[i].data_type, key.data_type
                    )))
                }
                Some(i) => i,
                None => {
                    input_join_keys.push(Field {
                        name: request_name.clone(),
                        data_type: key.data_type.clone(),
                    });
                    input_join_keys.len() - 1
                }
            };
            key_inputs.push(index);
        }
        let mut features: Vec<usize> = match &raw_item.select {
            None => (0..view.features.len()).collect(),
            Some(selected) => {
                if selected.is_empty() {
                    return Err(site.error(format!("selects no features of `{}`", view.name)));
                }
                let mut indices = Vec::with_capacity(selected.len());
                for name in selected {
                    let index = view
                        .features
                        .iter()
                        .position(|f| &f.name == name)
                        .ok_or_else(|| {
                            site.error(format!(
                                "selects feature `{name}`, which `{}` does not have",
                                view.name
                            ))
                        })?;
                    if indices.contains(&index) {
                        return Err(site.error(format!("selects feature `{name}` twice")));
                    }
                    indices.push(index);
                }
                indices
            }
        };
        // Tecton's order: features alphabetical within a view, views alphabetical by namespace.
        features.sort_by(|a, b| view.features[*a].name.cmp(&view.features[*b].name));
        items.push(ServiceItem {
            view: view_id,
            namespace,
            key_inputs,
            lookups: Vec::new(),
            features,
        });
    }
    // Tecton's order: realtime views first, then the others, each group by namespace.
    let is_realtime =
        |item: &ServiceItem| matches!(registry.view(item.view).kind, ViewKind::Realtime(_));
    items.sort_by(|a, b| (!is_realtime(a), &a.namespace).cmp(&(!is_realtime(b), &b.namespace)));
    // The stored views each item reads, each (view, key) one lookup of the service and each
    // key one list of request inputs, in the items' order: the order of a row's lookups.
    let mut lookup_keys: Vec<Vec<Option<usize>>> = Vec::new();
    let mut lookups: Vec<ServiceLookup> = Vec::new();
    for item in &mut items {
        let view = registry.view(item.view);
        // Aggregate i is feature i; past 64, no bit (the store computes those always).
        let (stored_views, aggregate_bits) = match &view.kind {
            ViewKind::Realtime(spec) => {
                (spec.sources.iter().map(|(id, _)| *id).collect(), u64::MAX)
            }
            _ => (
                vec![item.view],
                item.features
                    .iter()
                    .fold(0, |bits, &i| bits | 1u64.checked_shl(i as u32).unwrap_or(0)),
            ),
        };
        for stored in stored_views {
            // A stored view's join keys are found by name among the item view's.
            let key: Vec<Option<usize>> = registry
                .view(stored)
                .join_keys
                .iter()
                .map(|join_key| {
                    let position = view.join_keys.iter().position(|k| k.name == join_key.name);
                    position.map(|i| item.key_inputs[i])
                })
                .collect();
            let key = lookup_keys
                .iter()
                .position(|k| *k == key)
                .unwrap_or_else(|| {
                    lookup_keys.push(key);
                    lookup_keys.len() - 1
                });
            let lookup = match lookups
                .iter()
                .position(|l| l.view == stored && l.key == key)
            {
                Some(i) => {
                    lookups[i].aggregate_bits |= aggregate_bits;
                    i
                }
                None => {
                    lookups.push(ServiceLookup {
                        view: stored,
                        key,
                        aggregate_bits,
                    });
                    lookups.len() - 1
                }
            };
            item.lookups.push(lookup);
        }
    }
    let mut request_context_keys: Vec<Field> = Vec::new();
    for item in &items {
        if let ViewKind::Realtime(spec) = &registry.view(item.view).kind {
            for field in &spec.request_schema {
                match request_context_keys.iter().find(|f| f.name == field.name) {
                    Some(existing) if existing.data_type != field.data_type => {
                        return Err(site.error(format!(
                            "request context key `{}` would be both {} and {}",
                            field.name, existing.data_type, field.data_type
                        )))
                    }
                    Some(_) => {}
                    None => request_context_keys.push(field.clone()),
                }
            }
        }
    }
    let n_features = items.iter().map(|item| item.features.len()).sum();
    Ok(FeatureService {
        id: object_id("feature_service", &workspace.name, &raw.name),
        name: raw.name.clone(),
        workspace: workspace.name.clone(),
        description: raw.description.clone(),
        input_join_keys,
        items,
        n_features,
        lookup_keys,
        lookups,
        request_context_keys,
        logging: raw
            .logging
            .as_ref()
            .map(|raw| build_logging(site, raw))
            .transpose()?,
    })
}
