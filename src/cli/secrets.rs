//! `quiver secrets rotate-key`: ask a running server to re-encrypt every secret under a new
//! master key, without downtime.

use super::ServerArg;

#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every secret under a new master key.
    RotateKey(ServerArg),
}

pub fn run(args: SecretsArgs) -> anyhow::Result<()> {
    let SecretsCommand::RotateKey(server) = args.command;
    let body = server.post("/admin/secrets/rotate-key", None)?;
    match body["newMasterKey"].as_str() {
        Some(key) => println!(
            "master key rotated; set QUIVER_MASTER_KEY={key} before the next start (shown once)"
        ),
        None => println!("master key rotated; the key file was replaced"),
    }
    if let Some(id) = body["snapshot"].as_str() {
        println!(
            "snapshot {id} holds the secrets under the new key: back it up with the new key \
             (older snapshots open only with the previous one)"
        );
    }
    if let Some(error) = body["snapshotError"].as_str() {
        eprintln!("warning: the snapshot after the rotation failed: {error}");
    }
    Ok(())
}
