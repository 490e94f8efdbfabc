//! Synthetic feature repositories of a chosen shape (`quiver bench --data`): one entity, some
//! batch views of typed features, some stream views of aggregations over one push source, and
//! one service reading them all, written as TOML with a `config.toml` beside it, so Quiver
//! loads them like any repository and the data set generator fills them.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::process::{scratch_dir, ScratchDir};
use super::BenchError;

/// The workspace and service a synthetic repository defines.
pub const WORKSPACE: &str = "bench";
pub const SERVICE: &str = "synthetic_service";

/// How big and of what a synthetic repository is.
#[derive(Debug, Clone)]
pub struct RepositoryShape {
    pub batch_views: usize,
    pub features_per_view: usize,
    /// Feature types, cycled over the features (`int64`, `float64`, `string`, `array<string>`...).
    pub feature_types: Vec<String>,
    pub aggregate_views: usize,
    pub aggregations_per_view: usize,
    /// Aggregation functions and windows, cycled over the aggregations.
    pub functions: Vec<String>,
    pub windows: Vec<String>,
    pub interval: String,
}

/// A repository written to a directory of its own, removed when dropped.
pub struct SyntheticRepository {
    pub config: PathBuf,
    _dir: ScratchDir,
}

impl RepositoryShape {
    /// The repository's TOML.
    pub fn repository_toml(&self) -> String {
        let mut toml = String::from(
            "[[entity]]\nname = \"entity\"\njoin_keys = [{ name = \"entity_id\", type = \"string\" }]\n",
        );
        let cycled = |list: &[String], i: usize| list[i % list.len().max(1)].clone();
        for view in 0..self.batch_views {
            let _ = write!(
                toml,
                "\n[[batch_feature_view]]\nname = \"batch_view_{view}\"\nentities = [\"entity\"]\ntimestamp_field = \"timestamp\"\nfeatures = [\n"
            );
            for feature in 0..self.features_per_view {
                let data_type = cycled(&self.feature_types, feature);
                let _ = writeln!(
                    toml,
                    "  {{ name = \"f{feature}\", type = \"{data_type}\" }},"
                );
            }
            toml.push_str("]\n");
        }
        if self.aggregate_views > 0 {
            toml.push_str(
                "\n[[push_source]]\nname = \"events\"\nschema = [\n  { name = \"entity_id\", type = \"string\" },\n  { name = \"value\", type = \"float64\" },\n  { name = \"timestamp\", type = \"timestamp\" },\n]\n",
            );
        }
        for view in 0..self.aggregate_views {
            let _ = write!(
                toml,
                "\n[[stream_feature_view]]\nname = \"aggregate_view_{view}\"\nsource = \"events\"\nentities = [\"entity\"]\ntimestamp_field = \"timestamp\"\naggregation_interval = \"{}\"\naggregations = [\n",
                self.interval
            );
            for aggregation in 0..self.aggregations_per_view {
                let _ = writeln!(
                    toml,
                    "  {{ column = \"value\", function = \"{}\", window = \"{}\" }},",
                    cycled(&self.functions, aggregation),
                    // Functions and windows advance together, so that a shape with as many
                    // aggregations as functions x windows holds every combination once.
                    cycled(&self.windows, aggregation / self.functions.len().max(1)),
                );
            }
            toml.push_str("]\n");
        }
        let views: Vec<String> = (0..self.batch_views)
            .map(|v| format!("batch_view_{v}"))
            .chain((0..self.aggregate_views).map(|v| format!("aggregate_view_{v}")))
            .map(|name| format!("{{ view = \"{name}\" }}"))
            .collect();
        let _ = write!(
            toml,
            "\n[[feature_service]]\nname = \"{SERVICE}\"\nfeatures = [{}]\n",
            views.join(", ")
        );
        toml
    }

    /// Writes the repository and a `config.toml` serving it (in memory, no demo seed) into a
    /// new directory in the temporary directory.
    pub fn write(&self) -> Result<SyntheticRepository, BenchError> {
        let scratch = scratch_dir("repository")?;
        let dir = &scratch.0;
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |e| BenchError::Io(path, e)
        };
        let repository = dir.join("repository.toml");
        std::fs::write(&repository, self.repository_toml()).map_err(io(&repository))?;
        let config = dir.join("config.toml");
        let text = format!(
            "[[workspace]]\nname = \"{WORKSPACE}\"\nlive = true\nrepository = \"repository.toml\"\n"
        );
        std::fs::write(&config, text).map_err(io(&config))?;
        Ok(SyntheticRepository {
            config,
            _dir: scratch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{load_registry, WorkspaceSource};

    #[test]
    fn a_shape_becomes_a_repository_quiver_loads() {
        let shape = RepositoryShape {
            batch_views: 2,
            features_per_view: 5,
            feature_types: vec!["int64".into(), "string".into(), "array<float64>".into()],
            aggregate_views: 1,
            aggregations_per_view: 6,
            functions: vec!["sum".into(), "mean".into(), "count".into()],
            windows: vec!["1h".into(), "1d".into()],
            interval: "10m".into(),
        };
        let written = shape.write().unwrap();
        let registry = load_registry(&[WorkspaceSource {
            name: WORKSPACE.into(),
            live: true,
            repository: written.config.with_file_name("repository.toml"),
        }])
        .expect("the synthetic repository is valid");
        let service = &registry.workspace(WORKSPACE).unwrap().services[SERVICE];
        assert_eq!(service.items.len(), 3);
        assert_eq!(service.n_features, 2 * 5 + 6);
        let aggregates = registry
            .view_by_name(WORKSPACE, "aggregate_view_0")
            .unwrap();
        let names: Vec<&str> = aggregates
            .features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert!(names.contains(&"value_mean_1d_10m"), "{names:?}");
        assert!(names.contains(&"value_count_1h_10m"), "{names:?}");
        let dir = written.config.parent().unwrap().to_path_buf();
        drop(written);
        assert!(!dir.exists());
    }
}
