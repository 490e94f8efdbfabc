//! Repository validation: every error names its file, object and problem.

use super::*;

fn load_text(text: &str) -> Result<Registry, RegistryError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo.toml");
    std::fs::write(&path, text).unwrap();
    load_registry(&[WorkspaceSource {
        name: "prod".into(),
        live: true,
        repository: path,
    }])
}

const BASE: &str = r#"
    [[entity]]
    name = "user"
    join_keys = [{ name = "user_id", type = "string" }]
    [[push_source]]
    name = "tx"
    schema = [{ name = "user_id", type = "string" }, { name = "ts", type = "timestamp" }, { name = "amt", type = "float64" }]
    [[stream_feature_view]]
    name = "last_tx"
    source = "tx"
    entities = ["user"]
    timestamp_field = "ts"
    features = [{ name = "zeta", type = "float64", column = "amt" }, { name = "alpha", type = "float64", column = "amt" }]
"#;

#[test]
fn a_valid_repository_orders_features_alphabetically() {
    let text = format!("{BASE}\n[[feature_service]]\nname = \"svc\"\nfeatures = [{{ view = \"last_tx\", alias = \"t\", join_key_map = {{ user_id = \"uid\" }} }}]");
    let registry = load_text(&text).unwrap();
    let service = &registry.workspace("prod").unwrap().services["svc"];
    assert_eq!(service.input_join_keys[0].name, "uid");
    let view = registry.view(service.items[0].view);
    let names: Vec<_> = service.items[0]
        .features
        .iter()
        .map(|i| view.features[*i].name.as_str())
        .collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(service.id.len(), 32);
    assert_eq!(registry.service_by_id(&service.id).unwrap().name, "svc");
    assert_eq!(
        registry.workspace("prod").unwrap().push_sources["tx"].subscribers,
        vec![0]
    );
}

#[test]
fn errors_name_the_file_object_and_problem() {
    let cases = [
        (format!("{BASE}\n[[feature_service]]\nname = \"svc\"\nfeatures = [{{ view = \"nope\" }}]"), "feature_service `svc`: references feature view `nope`"),
        (BASE.replace("\"float64\", column", "\"float65\", column"), "unknown type `float65`"),
        (BASE.replace("entities = [\"user\"]", "entities = [\"usr\"]"), "unknown entity `usr`"),
        (format!("{BASE}\n[[entity]]\nname = \"user\"\njoin_keys = [{{ name = \"x\", type = \"string\" }}]"), "entity `user`: the name `user` is already used"),
        (BASE.replace("source = \"tx\"", "source = \"rx\""), "unknown push source `rx`"),
        (BASE.replace("column = \"amt\" }, { name = \"alpha\"", "column = \"amount\" }, { name = \"alpha\""), "no column `amount`"),
        (format!("{BASE}\nttl_typo = 1"), "not a valid repository file"),
    ];
    for (text, expected) in cases {
        let message = load_text(&text).unwrap_err().to_string();
        assert!(
            message.contains(expected),
            "{message} should contain {expected}"
        );
        assert!(message.contains("repo.toml"), "{message}");
    }
}

#[test]
fn aggregations_and_realtime_views_are_validated() {
    let aggregate = |aggregations: &str, interval: &str| {
        format!("{BASE}\n[[stream_feature_view]]\nname = \"agg\"\nsource = \"tx\"\nentities = [\"user\"]\ntimestamp_field = \"ts\"\naggregation_interval = \"{interval}\"\naggregations = [{aggregations}]")
    };
    let registry = load_text(&aggregate("{ column = \"amt\", function = \"mean\", window = \"1h\" }, { column = \"amt\", function = \"last(2)\", window = \"lifetime\" }", "10m")).unwrap();
    let view = registry.view_by_name("prod", "agg").unwrap();
    let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["amt_mean_1h_10m", "amt_last_2_lifetime_10m"]);
    assert_eq!(view.features[1].data_type.to_string(), "array<float64>");
    let cases = [
        (aggregate("{ column = \"amt\", function = \"median\", window = \"1h\" }", "10m"), "unknown aggregation function `median`"),
        (aggregate("{ column = \"amt\", function = \"mean\", window = \"25m\" }", "10m"), "must be a multiple of the aggregation_interval"),
        (aggregate("{ column = \"nope\", function = \"count\", window = \"1h\" }", "10m"), "the push source has no column `nope`"),
        (aggregate("{ column = \"user_id\", function = \"count\", window = \"1h\" }", "10m"), "a join key or the timestamp field cannot be aggregated"),
        (aggregate("{ column = \"amt\", function = \"mean\", window = \"1h\" }, { column = \"amt\", function = \"mean\", window = \"1h\" }", "10m"), "used twice"),
        (aggregate("{ column = \"amt\", function = \"approx_percentile(2)\", window = \"1h\" }", "10m"), "from 0 to 1"),
    ];
    for (text, expected) in cases {
        let message = load_text(&text).unwrap_err().to_string();
        assert!(
            message.contains(expected),
            "{message} should contain {expected}"
        );
    }
    let realtime = |expression: &str| {
        format!("{BASE}\n[[realtime_feature_view]]\nname = \"rt\"\nrequest_schema = [{{ name = \"amount\", type = \"float64\" }}]\nsources = [\"last_tx\"]\n[[realtime_feature_view.features]]\nname = \"f\"\ntype = \"boolean\"\nexpression = \"{expression}\"")
    };
    assert!(load_text(&realtime("request.amount > last_tx.alpha")).is_ok());
    let message = load_text(&realtime("request.amount > elsewhere.x"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("realtime_feature_view `rt`: feature `f`")
            && message.contains("reads `elsewhere`"),
        "{message}"
    );
    let message = load_text(&realtime("request.amount >"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("does not parse"), "{message}");
    // Too deep for the parser's stack: refused on its text, before the parser runs, the view
    // and feature named.
    let deep = format!("{}true{}", "(".repeat(400), ")".repeat(400));
    let message = load_text(&realtime(&deep)).unwrap_err().to_string();
    assert!(
        message.contains("realtime_feature_view `rt`: feature `f`: the expression nests brackets")
            && message.contains("400 deep; at most 32"),
        "{message}"
    );
    // One that parses but would overflow a worker when evaluated, as a snapshot of a build
    // that took it holds it: start-up's `ServedRepository::recover` builds it through here and
    // refuses it (`RecoverError::Invalid`), named, instead of serving it.
    let deep = format!("request{} > 1.0", ".amount".repeat(500));
    let stored = WorkspaceFiles::new(
        "prod".into(),
        true,
        [("features/prod/repo.toml".to_string(), realtime(&deep))],
    );
    let message = build_registry(&[stored], None).unwrap_err().to_string();
    assert!(
        message.contains("realtime_feature_view `rt`: feature `f`: the expression nests operations 502 deep; at most 32"),
        "{message}"
    );
}

fn with_logging(table: &str) -> String {
    format!("{BASE}\n[[feature_service]]\nname = \"svc\"\nfeatures = [{{ view = \"last_tx\" }}]\n[feature_service.logging]\n{table}")
}

#[test]
fn logging_defaults_follow_tecton_and_every_setting_is_read() {
    let registry = load_text(&with_logging("")).unwrap();
    let logging = registry.workspace("prod").unwrap().services["svc"]
        .logging
        .clone()
        .unwrap();
    assert_eq!(logging.sample_rate, 1.0);
    assert!(logging.log_request_context && logging.log_statuses && !logging.log_effective_times);
    assert_eq!(logging.format, LogFormat::Parquet);

    let table = "sample_rate = 0.25\nlog_effective_times = true\nlog_statuses = false\n\
                 exclude_request_context_fields = [\"ip\"]\nformat = \"jsonl\"\n\
                 roll_size_bytes = 1024\nroll_interval = \"5m\"";
    let registry = load_text(&with_logging(table)).unwrap();
    let logging = registry.workspace("prod").unwrap().services["svc"]
        .logging
        .clone()
        .unwrap();
    assert_eq!(
        logging,
        LoggingConfig {
            sample_rate: 0.25,
            log_request_context: true,
            exclude_request_context_fields: vec!["ip".into()],
            log_effective_times: true,
            log_statuses: false,
            format: LogFormat::JsonLines,
            roll_size_bytes: 1024,
            roll_interval: 300_000_000,
        }
    );
}

#[test]
fn logging_errors_name_the_service_and_the_setting() {
    let cases = [
        ("sample_rate = 0.0", "logging: sample_rate is 0"),
        ("sample_rate = 1.5", "must be above 0 and at most 1"),
        (
            "format = \"csv\"",
            "format `csv` is not one of `parquet`, `jsonl`",
        ),
        ("roll_size_bytes = 0", "roll_size_bytes must be above 0"),
        (
            "roll_interval = \"soon\"",
            "logging: roll_interval: expected a duration",
        ),
        (
            "exclude_request_context_fields = [\"ip\", \"ip\"]",
            "names `ip` twice",
        ),
        (
            "log_request_context = false\nexclude_request_context_fields = [\"ip\"]",
            "no effect with log_request_context = false",
        ),
        ("sample = 1.0", "unknown field `sample`"),
    ];
    for (table, expected) in cases {
        let error = load_text(&with_logging(table)).unwrap_err().to_string();
        assert!(error.contains(expected), "{table}: {error}");
        assert!(error.contains("repo.toml"), "{error}");
    }
    let error = load_text(&with_logging("sample_rate = 2.0"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("feature_service `svc`"), "{error}");
}

/// Each item's stored views carry their join keys' request inputs, renames applied: a
/// realtime view's sources through the realtime item's `join_key_map`; a view read by two
/// different keys is two lookups.
#[test]
fn items_resolve_their_stored_views_join_keys_to_request_inputs() {
    let text = format!("{BASE}\n[[realtime_feature_view]]\nname = \"rt\"\nrequest_schema = [{{ name = \"amount\", type = \"float64\" }}]\nsources = [\"last_tx\"]\n[[realtime_feature_view.features]]\nname = \"f\"\ntype = \"boolean\"\nexpression = \"request.amount > last_tx.alpha\"\n[[feature_service]]\nname = \"svc\"\nfeatures = [{{ view = \"last_tx\" }}, {{ view = \"rt\", join_key_map = {{ user_id = \"uid\" }} }}]");
    let registry = load_text(&text).unwrap();
    let service = &registry.workspace("prod").unwrap().services["svc"];
    let inputs: Vec<_> = service
        .input_join_keys
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    assert_eq!(inputs, ["user_id", "uid"]);
    let last_tx = registry.view_by_name("prod", "last_tx").unwrap().id;
    // Realtime views first: the two items read the same view by different request keys,
    // two lookups.
    assert_eq!(service.lookup_keys, [vec![Some(1)], vec![Some(0)]]);
    // A realtime view's source computes every aggregate; the view itself its two features.
    let lookup = |key, aggregate_bits| ServiceLookup {
        view: last_tx,
        key,
        aggregate_bits,
    };
    assert_eq!(service.lookups, [lookup(0, u64::MAX), lookup(1, 0b11)]);
    assert_eq!(service.items[0].lookups, [0]);
    assert_eq!(service.items[1].lookups, [1]);
}
