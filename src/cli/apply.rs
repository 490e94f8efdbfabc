//! `quiver apply`: validates the repository on disk as start-up does, prints the plan against
//! the running server's repository (as `quiver plan`), asks for a `yes` (unless `--yes`), and
//! sends the files to `POST /admin/repository` with the hash the plan was made against, so the
//! server refuses it if its repository changed meanwhile. A plan that drops stored data needs
//! `--allow-data-loss`, or the interactive `yes` given to a question that says so.

use std::io::{BufRead, Write as _};

use anyhow::{bail, Context};
use serde_json::{json, Value as Json};

use super::plan::{read_repository, render, served_plan};
use super::{ConfigArg, ServerArg};
use crate::registry::WorkspaceFiles;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    server: ServerArg,
    /// Apply without asking.
    #[arg(long)]
    yes: bool,
    /// Apply even when the plan drops stored data (a removed view, new join keys, ...).
    #[arg(long)]
    allow_data_loss: bool,
}

pub fn run(args: ApplyArgs) -> anyhow::Result<()> {
    let workspaces = read_repository(&args.config)?;
    let plan = served_plan(&args.server, &workspaces)?;
    print!("{}", render(&plan));
    if plan.is_empty() {
        return Ok(());
    }
    let drops_data = plan.drops_data();
    if drops_data && args.yes && !args.allow_data_loss {
        bail!("this plan drops stored data: apply it with --allow-data-loss");
    }
    if !args.yes {
        let question = if drops_data && !args.allow_data_loss {
            "\nApply this plan, DROPPING the stored data it says? Only 'yes' applies: "
        } else {
            "\nApply this plan? Only 'yes' applies: "
        };
        if !confirmed(question)? {
            bail!("apply cancelled");
        }
    }
    let body = apply_body(&workspaces, &plan.from_hash, drops_data);
    let answer = args
        .server
        .post_json("/admin/repository", &body)
        .context("applying the repository")?;
    println!(
        "Applied: the server serves repository {}.",
        answer["hash"].as_str().unwrap_or_default()
    );
    Ok(())
}

/// Asks `question` on the terminal; true for a `yes`.
fn confirmed(question: &str) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(question.as_bytes())?;
    stdout.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// The body of `POST /admin/repository`.
fn apply_body(workspaces: &[WorkspaceFiles], expected_hash: &str, allow_data_loss: bool) -> Json {
    let workspaces: Vec<Json> = workspaces
        .iter()
        .map(|workspace| {
            let files: Vec<Json> = workspace
                .files
                .iter()
                .map(|(path, content)| json!({"path": path.display().to_string(), "content": content}))
                .collect();
            json!({"name": workspace.name, "live": workspace.live, "files": files})
        })
        .collect();
    json!({
        "workspaces": workspaces,
        "expectedHash": expected_hash,
        "allowDataLoss": allow_data_loss,
    })
}
