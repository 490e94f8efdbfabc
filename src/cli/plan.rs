//! `quiver plan`: validates the repository on disk as start-up does, asks the running server
//! which repository it serves (`GET /admin/repository`), and prints the difference with what each
//! change does to stored data, Terraform-style (`+` add, `-` remove, `~` change) or as JSON.
//!
//! Exit status, as `terraform plan -detailed-exitcode`: 0 when nothing differs, 2 when there
//! are changes, 1 on any error (an invalid repository, an unreachable server, a refused key).

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context;

use super::{ConfigArg, ServerArg};
use crate::config::{Overrides, Settings};
use crate::registry::plan::{Effect, Plan};
use crate::registry::repository::Repository;
use crate::registry::{build_registry, WorkspaceFiles, WorkspaceSource};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    server: ServerArg,
    /// Print the plan as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The exit status of a plan with changes.
const EXIT_CHANGES: i32 = 2;

pub fn run(args: PlanArgs) -> anyhow::Result<()> {
    let plan = served_plan(&args.server, &read_repository(&args.config)?)?;
    let output = if args.json {
        format!("{:#}\n", plan.to_json())
    } else {
        render(&plan)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output.as_bytes())?;
    stdout.flush()?;
    if !plan.is_empty() {
        std::process::exit(EXIT_CHANGES);
    }
    Ok(())
}

/// Every workspace's repository files, as the configuration lists them.
pub(super) fn read_repository(config: &ConfigArg) -> anyhow::Result<Vec<WorkspaceFiles>> {
    let settings = Settings::load(&config.path, &Overrides::default())?;
    let workspaces = settings.workspaces.iter().map(WorkspaceSource::read);
    Ok(workspaces.collect::<Result<_, _>>()?)
}

/// Validates `workspaces` as start-up does (errors name file, object and problem) and plans them
/// against the repository the server serves.
pub(super) fn served_plan(
    server: &ServerArg,
    workspaces: &[WorkspaceFiles],
) -> anyhow::Result<Plan> {
    let wanted = Repository::describe(&build_registry(workspaces, None)?);
    let served = server
        .get("/admin/repository")
        .context("asking the server which repository it serves")?;
    let served = Repository::from_json(&served).context("reading the server's repository")?;
    Ok(Plan::between(&served, &wanted))
}

/// The plan as a reviewer reads it: one line per object, indented lines per property, each with
/// what happens to stored data, then a summary.
pub(super) fn render(plan: &Plan) -> String {
    if plan.is_empty() {
        return format!(
            "No changes: the repository on disk is the one being served ({}).\n",
            plan.to_hash
        );
    }
    let mut out = format!(
        "Repository served: {}\nRepository on disk: {}\n",
        plan.from_hash, plan.to_hash
    );
    for workspace in &plan.workspaces {
        let _ = write!(
            out,
            "\n{} workspace {}",
            workspace.action.sign(),
            workspace.name
        );
        if let Some((before, after)) = workspace.live {
            let mode = |live| if live { "live" } else { "development" };
            let _ = write!(out, ": {} -> {}", mode(before), mode(after));
        }
        out.push('\n');
        for object in &workspace.objects {
            let _ = writeln!(
                out,
                "  {} {} {}  # {}",
                object.action.sign(),
                object.kind.name(),
                object.name,
                data_words(object.effect)
            );
            for property in &object.properties {
                let value = match (&property.before, &property.after) {
                    (Some(before), Some(after)) => format!("{before:?} -> {after:?}"),
                    (Some(value), None) | (None, Some(value)) => format!("{value:?}"),
                    (None, None) => String::new(),
                };
                let effect = match property.effect {
                    Effect::NoData => property.effect.text().to_string(),
                    effect => format!("{}: {}", effect.text(), property.reason),
                };
                let _ = writeln!(
                    out,
                    "      {} {} = {value}  # {effect}",
                    property.action().sign(),
                    property.name,
                );
            }
        }
    }
    let (add, change, remove) = plan.counts();
    let _ = write!(
        out,
        "\nPlan: {add} to add, {change} to change, {remove} to remove."
    );
    if plan.drops_data() {
        let dropping = plan
            .changes()
            .filter(|c| c.effect == Effect::Dropped)
            .count();
        let _ = write!(
            out,
            " {dropping} would drop stored data: apply needs --allow-data-loss."
        );
    }
    out.push('\n');
    out
}

/// An object's effect as its line says it: "stored data: kept", or "no stored data".
fn data_words(effect: Effect) -> String {
    match effect {
        Effect::NoData => effect.text().to_string(),
        _ => format!("stored data: {}", effect.text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::plan::Action;
    use crate::registry::repository::{ObjectKind, Properties, WorkspaceDescription};

    #[test]
    fn a_plan_reads_like_a_terraform_plan() {
        let view = |ttl: &str| -> Properties {
            [("kind", "batch"), ("ttl", ttl), ("features.f", "int64")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let repository = |ttl: &str| {
            let mut workspace = WorkspaceDescription {
                live: true,
                ..Default::default()
            };
            workspace.objects.insert(
                ObjectKind::FeatureView,
                [("v".to_string(), view(ttl))].into(),
            );
            Repository {
                workspaces: [("prod".to_string(), workspace)].into(),
            }
        };
        let plan = Plan::between(&repository("30d"), &repository("60d"));
        let text = render(&plan);
        assert!(text.contains("~ workspace prod\n"), "{text}");
        assert!(
            text.contains("  ~ feature_view v  # stored data: kept\n"),
            "{text}"
        );
        assert!(
            text.contains("      ~ ttl = \"30d\" -> \"60d\"  # kept: applies at read time\n"),
            "{text}"
        );
        assert!(text.ends_with("Plan: 0 to add, 1 to change, 0 to remove.\n"));
        assert_eq!(plan.workspaces[0].objects[0].action, Action::Change);
        assert!(
            render(&Plan::between(&repository("1d"), &repository("1d"))).starts_with("No changes")
        );
    }
}
