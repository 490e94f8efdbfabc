//! Quiver's registry as Tecton's definitions: the `FcoContainer` that `GetFeatureService`
//! answers, holding the service and every view it reads (with a realtime view's upstream views),
//! in the shape the SDK builds its `FeatureService` from before `get_online_features`: ids, names,
//! join keys, view schemas, features and their types, aggregations and their windows, and a
//! realtime view's request context. The one place that knows both; the registry knows no
//! protobuf.

use super::args::{
    FeatureViewNode, JoinInputsNode, NodeType, Pipeline, PipelineNode, RequestContext,
    RequestDataSourceNode,
};
use super::common::{
    AggregationFunction, AggregationFunctionParams, ApproxCountDistinctParams,
    ApproxPercentileParams, BatchComputeMode, Column, CountParams, DataSourceType, DataType,
    DataTypeEnum, Duration, Field, FrameworkVersion, FunctionParams, Id, LifetimeWindow,
    RelativeTimeWindow, Schema, StructField, TimeWindow, TimeWindowSeries, Window,
};
use super::data::{
    Aggregate, Attribute, Fco, FcoContainer, FcoKind, FcoMetadata, FeatureService, FeatureSetItem,
    FeatureView, FeatureViewSchemas, FeatureViewType, JoinConfigurationItem, RealtimeFeatureView,
    Temporal, TemporalAggregate,
};
use crate::registry::aggregation::{AggregationSpec, Function, Window as QuiverWindow};
use crate::registry::realtime::RealtimeSpec;
use crate::registry::types::DataType as QuiverType;
use crate::registry::{self, Registry, ViewId, ViewKind};

/// The Python input name of a realtime view's request context: Quiver's expressions read it as
/// `request.<field>`.
const REQUEST_INPUT_NAME: &str = "request";

/// The service as the root, then each view it reads once, then the upstream views of its
/// realtime views.
pub fn feature_service_container(
    registry: &Registry,
    service: &registry::FeatureService,
) -> FcoContainer {
    let mut views: Vec<ViewId> = Vec::new();
    let direct = service.items.iter().map(|item| item.view);
    for view in direct.clone() {
        if !views.contains(&view) {
            views.push(view);
        }
    }
    for view in direct {
        if let ViewKind::Realtime(spec) = &registry.view(view).kind {
            for (upstream, _) in &spec.sources {
                if !views.contains(upstream) {
                    views.push(*upstream);
                }
            }
        }
    }
    let service_fco = Fco {
        fco: Some(FcoKind::FeatureService(feature_service(registry, service))),
    };
    let view_fcos = views.into_iter().map(|view| Fco {
        fco: Some(FcoKind::FeatureView(feature_view(
            registry,
            registry.view(view),
        ))),
    });
    FcoContainer {
        root_ids: Id::from_hex(&service.id).into_iter().collect(),
        fcos: std::iter::once(service_fco).chain(view_fcos).collect(),
    }
}

fn feature_service(registry: &Registry, service: &registry::FeatureService) -> FeatureService {
    let feature_set_items = service
        .items
        .iter()
        .map(|item| {
            let view = registry.view(item.view);
            FeatureSetItem {
                feature_view_id: view_id(view),
                join_configuration_items: view
                    .join_keys
                    .iter()
                    .zip(&item.key_inputs)
                    .map(|(key, &input)| JoinConfigurationItem {
                        spine_column_name: service.input_join_keys[input].name.clone(),
                        package_column_name: key.name.clone(),
                    })
                    .collect(),
                namespace: item.namespace.clone(),
                feature_columns: item
                    .features
                    .iter()
                    .map(|&feature| view.features[feature].name.clone())
                    .collect(),
            }
        })
        .collect();
    FeatureService {
        feature_service_id: Id::from_hex(&service.id),
        feature_set_items,
        fco_metadata: Some(metadata(
            &service.name,
            service.description.as_deref(),
            &service.workspace,
            &Default::default(),
        )),
        // Every service of the registry is served online (in a live workspace).
        online_serving_enabled: true,
    }
}

fn feature_view(registry: &Registry, view: &registry::FeatureView) -> FeatureView {
    let key_columns = view.join_keys.iter().map(column);
    let timestamp = Column {
        name: view.timestamp_field.clone(),
        offline_data_type: Some(data_type(&QuiverType::Timestamp)),
    };
    let (feature_view_type, view_schema, pipeline) = match (&view.kind, &view.aggregation) {
        (ViewKind::Realtime(spec), _) => (
            FeatureViewType::RealtimeFeatureView(RealtimeFeatureView {
                attributes: attributes(view),
            }),
            view.features
                .iter()
                .map(|feature| named_column(&feature.name, &feature.data_type))
                .collect(),
            Some(realtime_pipeline(registry, spec)),
        ),
        (kind, Some(aggregation)) => (
            FeatureViewType::TemporalAggregate(temporal_aggregate(view, kind, aggregation)),
            key_columns
                .chain(aggregation.inputs.iter().map(column))
                .chain([timestamp])
                .collect(),
            None,
        ),
        (kind, None) => (
            FeatureViewType::Temporal(Temporal {
                serving_ttl: view.ttl.map(Duration::from_micros),
                data_source_type: data_source_type(kind) as i32,
                attributes: attributes(view),
            }),
            key_columns
                .chain(
                    view.features
                        .iter()
                        .map(|feature| named_column(&feature.name, &feature.data_type)),
                )
                .chain([timestamp])
                .collect(),
            None,
        ),
    };
    let realtime = matches!(view.kind, ViewKind::Realtime(_));
    FeatureView {
        feature_view_id: view_id(view),
        fco_metadata: Some(metadata(
            &view.name,
            view.description.as_deref(),
            &view.workspace,
            &view.tags,
        )),
        // A realtime view has no join keys of its own: its upstream views bring theirs.
        join_keys: if realtime {
            Vec::new()
        } else {
            view.join_keys.iter().map(|key| key.name.clone()).collect()
        },
        schemas: Some(FeatureViewSchemas {
            view_schema: Some(Schema {
                columns: view_schema,
            }),
            materialization_schema: Some(Schema::default()),
        }),
        feature_view_type: Some(feature_view_type),
        timestamp_key: if realtime {
            String::new()
        } else {
            view.timestamp_field.clone()
        },
        pipeline,
        batch_compute_mode: (!realtime).then_some(BatchComputeMode::Rift as i32),
    }
}

fn temporal_aggregate(
    view: &registry::FeatureView,
    kind: &ViewKind,
    aggregation: &AggregationSpec,
) -> TemporalAggregate {
    // A continuous view's interval is one microsecond (see `aggregation::duration_text`).
    let is_continuous = aggregation.interval == 1;
    let features = view
        .features
        .iter()
        .zip(&aggregation.aggregates)
        .map(|(feature, aggregate)| {
            let (function, params) = function(aggregate.function);
            Aggregate {
                input_feature_name: aggregation.inputs[aggregate.input].name.clone(),
                output_feature_name: feature.name.clone(),
                function: function as i32,
                function_params: params.map(|params| AggregationFunctionParams {
                    params: Some(params),
                }),
                time_window: Some(time_window(aggregate.window)),
                description: feature.description.clone().unwrap_or_default(),
                tags: feature.tags.clone(),
            }
        })
        .collect();
    TemporalAggregate {
        slide_interval: Some(Duration::from_micros(if is_continuous {
            0
        } else {
            aggregation.interval
        })),
        features,
        is_continuous,
        data_source_type: data_source_type(kind) as i32,
    }
}

fn function(function: Function) -> (AggregationFunction, Option<FunctionParams>) {
    let count = |n: usize| CountParams {
        n: i32::try_from(n).unwrap_or(i32::MAX),
    };
    match function {
        Function::Count => (AggregationFunction::Count, None),
        Function::Sum => (AggregationFunction::Sum, None),
        Function::Mean => (AggregationFunction::Mean, None),
        Function::Min => (AggregationFunction::Min, None),
        Function::Max => (AggregationFunction::Max, None),
        Function::Last => (AggregationFunction::Last, None),
        Function::VarSamp => (AggregationFunction::VarSamp, None),
        Function::VarPop => (AggregationFunction::VarPop, None),
        Function::StddevSamp => (AggregationFunction::StddevSamp, None),
        Function::StddevPop => (AggregationFunction::StddevPop, None),
        Function::LastN(n) => (
            AggregationFunction::LastNonDistinctN,
            Some(FunctionParams::LastN(count(n))),
        ),
        Function::LastDistinctN(n) => (
            AggregationFunction::LastDistinctN,
            Some(FunctionParams::LastN(count(n))),
        ),
        Function::FirstN(n) => (
            AggregationFunction::FirstNonDistinctN,
            Some(FunctionParams::FirstN(count(n))),
        ),
        Function::FirstDistinctN(n) => (
            AggregationFunction::FirstDistinctN,
            Some(FunctionParams::FirstN(count(n))),
        ),
        Function::ApproxCountDistinct(precision) => (
            AggregationFunction::ApproxCountDistinct,
            Some(FunctionParams::ApproxCountDistinct(
                ApproxCountDistinctParams {
                    precision: i32::from(precision),
                },
            )),
        ),
        Function::ApproxPercentile {
            quantile_millionths,
            precision,
        } => (
            AggregationFunction::ApproxPercentile,
            Some(FunctionParams::ApproxPercentile(ApproxPercentileParams {
                percentile: f64::from(quantile_millionths) / 1e6,
                precision: i32::try_from(precision).unwrap_or(i32::MAX),
            })),
        ),
    }
}

/// Tecton's windows are relative to the window's end: `[-(offset + size), -offset)`.
fn time_window(window: QuiverWindow) -> TimeWindow {
    let relative = |size: i64, offset: i64| RelativeTimeWindow {
        window_start: Some(Duration::from_micros(-(offset + size))),
        window_end: Some(Duration::from_micros(-offset)),
    };
    let window = match window {
        QuiverWindow::Time { size, offset } => Window::RelativeTimeWindow(relative(size, offset)),
        QuiverWindow::Lifetime => Window::LifetimeWindow(LifetimeWindow {}),
        series @ QuiverWindow::Series {
            size, start, step, ..
        } => Window::TimeWindowSeries(TimeWindowSeries {
            // Oldest first, as Quiver answers the series' values.
            time_windows: (1..=series.series_len() as i64)
                .map(|k| relative(size, start - k * step))
                .collect(),
        }),
    };
    TimeWindow {
        window: Some(window),
    }
}

/// The request context, then each upstream view, side by side: what the SDK reads of a
/// realtime view's inputs.
fn realtime_pipeline(registry: &Registry, spec: &RealtimeSpec) -> Pipeline {
    let request = (!spec.request_schema.is_empty()).then(|| PipelineNode {
        node_type: Some(NodeType::RequestDataSourceNode(RequestDataSourceNode {
            request_context: Some(RequestContext {
                tecton_schema: Some(Schema {
                    columns: spec.request_schema.iter().map(column).collect(),
                }),
            }),
            input_name: REQUEST_INPUT_NAME.to_string(),
        })),
    });
    let upstream = spec.sources.iter().map(|(view, name)| PipelineNode {
        node_type: Some(NodeType::FeatureViewNode(FeatureViewNode {
            feature_view_id: view_id(registry.view(*view)),
            input_name: name.clone(),
        })),
    });
    Pipeline {
        root: Some(PipelineNode {
            node_type: Some(NodeType::JoinInputsNode(JoinInputsNode {
                nodes: request.into_iter().chain(upstream).collect(),
            })),
        }),
    }
}

fn attributes(view: &registry::FeatureView) -> Vec<Attribute> {
    view.features
        .iter()
        .map(|feature| Attribute {
            column: Some(Field {
                name: feature.name.clone(),
                dtype: Some(data_type(&feature.data_type)),
            }),
            description: feature.description.clone().unwrap_or_default(),
            tags: feature.tags.clone(),
        })
        .collect()
}

fn metadata(
    name: &str,
    description: Option<&str>,
    workspace: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> FcoMetadata {
    FcoMetadata {
        name: name.to_string(),
        description: description.unwrap_or_default().to_string(),
        workspace: workspace.to_string(),
        tags: tags.clone(),
        framework_version: FrameworkVersion::Fwv6 as i32,
    }
}

/// A view's id: the registry's stable object id, as `/ingest` answers it.
fn view_id(view: &registry::FeatureView) -> Option<Id> {
    Id::from_hex(&registry::object_id(
        "feature_view",
        &view.workspace,
        &view.name,
    ))
}

fn data_source_type(kind: &ViewKind) -> DataSourceType {
    match kind {
        ViewKind::Stream { .. } => DataSourceType::PushNoBatch,
        ViewKind::Batch | ViewKind::Realtime(_) => DataSourceType::Batch,
    }
}

fn column(field: &registry::Field) -> Column {
    named_column(&field.name, &field.data_type)
}

fn named_column(name: &str, data_type_: &QuiverType) -> Column {
    Column {
        name: name.to_string(),
        offline_data_type: Some(data_type(data_type_)),
    }
}

fn data_type(data_type_: &QuiverType) -> DataType {
    let simple = |kind: DataTypeEnum| DataType {
        r#type: kind as i32,
        ..DataType::default()
    };
    match data_type_ {
        QuiverType::Bool => simple(DataTypeEnum::Bool),
        QuiverType::Int64 => simple(DataTypeEnum::Int64),
        QuiverType::Float32 => simple(DataTypeEnum::Float32),
        QuiverType::Float64 => simple(DataTypeEnum::Float64),
        QuiverType::String => simple(DataTypeEnum::String),
        QuiverType::Timestamp => simple(DataTypeEnum::Timestamp),
        QuiverType::Array(element) => DataType {
            array_element_type: Some(Box::new(data_type(element))),
            ..simple(DataTypeEnum::Array)
        },
        QuiverType::Struct(fields) => DataType {
            struct_fields: fields
                .iter()
                .map(|field| StructField {
                    name: field.name.clone(),
                    data_type: Some(data_type(&field.data_type)),
                })
                .collect(),
            ..simple(DataTypeEnum::Struct)
        },
        QuiverType::Map(value) => DataType {
            map_key_type: Some(Box::new(simple(DataTypeEnum::String))),
            map_value_type: Some(Box::new(data_type(value))),
            ..simple(DataTypeEnum::Map)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, Settings};
    use crate::registry::load_registry;

    fn demo() -> Registry {
        let settings =
            Settings::load(std::path::Path::new("config.toml"), &Overrides::default()).unwrap();
        load_registry(&settings.workspaces).unwrap()
    }

    fn aggregate<'c>(container: &'c FcoContainer, view: &str) -> &'c TemporalAggregate {
        container
            .fcos
            .iter()
            .find_map(|fco| match &fco.fco {
                Some(FcoKind::FeatureView(found))
                    if found.fco_metadata.as_ref().unwrap().name == view =>
                {
                    match &found.feature_view_type {
                        Some(FeatureViewType::TemporalAggregate(aggregate)) => Some(aggregate),
                        _ => None,
                    }
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{view} aggregates"))
    }

    fn feature<'a>(aggregate: &'a TemporalAggregate, name: &str) -> &'a Aggregate {
        let found = aggregate
            .features
            .iter()
            .find(|feature| feature.output_feature_name == name);
        found.unwrap_or_else(|| panic!("{name} is a feature"))
    }

    fn seconds(duration: &Option<Duration>) -> i64 {
        duration.as_ref().unwrap().seconds
    }

    #[test]
    fn windows_functions_and_modes_as_tecton_writes_them() {
        let registry = demo();
        let service =
            &registry.workspace("prod").unwrap().services["transaction_aggregates_service"];
        let container = feature_service_container(&registry, service);
        let counts = aggregate(&container, "user_transaction_counts");

        // A series of seven one-day windows, oldest first, the last ending at the window end.
        let series = feature(counts, "transaction_id_count_series_7d_0s_1d");
        let Some(Window::TimeWindowSeries(series)) = &series.time_window.as_ref().unwrap().window
        else {
            panic!("{series:?}");
        };
        let bounds: Vec<(i64, i64)> = series
            .time_windows
            .iter()
            .map(|window| (seconds(&window.window_start), seconds(&window.window_end)))
            .collect();
        let day = 86_400;
        assert_eq!(bounds.len(), 7);
        assert_eq!(bounds[0], (-7 * day, -6 * day));
        assert_eq!(bounds[6], (-day, 0));

        let lifetime = feature(counts, "transaction_id_last_distinct_2_lifetime_1d");
        assert_eq!(lifetime.function, AggregationFunction::LastDistinctN as i32);
        assert_eq!(
            lifetime.function_params.as_ref().unwrap().params,
            Some(FunctionParams::LastN(CountParams { n: 2 }))
        );
        assert_eq!(
            lifetime.time_window.as_ref().unwrap().window,
            Some(Window::LifetimeWindow(LifetimeWindow {}))
        );
        let median = feature(counts, "amt_approx_percentile_p0_5_1d_1d");
        let Some(FunctionParams::ApproxPercentile(params)) =
            &median.function_params.as_ref().unwrap().params
        else {
            panic!("{median:?}");
        };
        assert_eq!(params.percentile, 0.5);

        // Continuous mode: no tiles, so no slide interval.
        let recent = aggregate(&container, "user_recent_activity");
        assert!(recent.is_continuous);
        assert_eq!(seconds(&recent.slide_interval), 0);
        assert_eq!(recent.data_source_type, DataSourceType::PushNoBatch as i32);
    }

    #[test]
    fn renamed_join_keys_and_aliases_reach_the_feature_set_items() {
        let registry = demo();
        let service = &registry.workspace("prod").unwrap().services["payment_risk_service"];
        let container = feature_service_container(&registry, service);
        let Some(FcoKind::FeatureService(service)) = &container.fcos[0].fco else {
            panic!("the service comes first");
        };
        let payee = &service.feature_set_items[0];
        assert_eq!(payee.namespace, "payee");
        assert_eq!(
            payee.join_configuration_items,
            [JoinConfigurationItem {
                spine_column_name: "payee_merchant".into(),
                package_column_name: "merchant".into(),
            }]
        );
        // Each view once, after the service.
        assert_eq!(container.fcos.len(), 1 + 3);
    }
}
