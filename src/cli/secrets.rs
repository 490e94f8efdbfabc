//! `quiver secrets rotate-key`: ask a running server to re-encrypt every secret under a new
//! master key, without downtime.

use anyhow::{bail, Context};

#[derive(Debug, clap::Args)]
pub struct SecretsArgs {
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every secret under a new master key.
    RotateKey {
        #[arg(long, env = "QUIVER_URL", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long = "api-key", env = "QUIVER_ADMIN_KEY", hide_env_values = true)]
        api_key: String,
    },
}

pub fn run(args: SecretsArgs) -> anyhow::Result<()> {
    let SecretsCommand::RotateKey { server, api_key } = args.command;
    let url = format!("{}/admin/secrets/rotate-key", server.trim_end_matches('/'));
    match ureq::post(&url)
        .set("Authorization", &format!("Tecton-key {api_key}"))
        .call()
    {
        Ok(response) => {
            let body: serde_json::Value = response
                .into_json()
                .context("the server's answer was not JSON")?;
            match body["newMasterKey"].as_str() {
                Some(key) => println!("master key rotated; set QUIVER_MASTER_KEY={key} before the next start (shown once)"),
                None => println!("master key rotated; the key file was replaced"),
            }
            Ok(())
        }
        Err(ureq::Error::Status(code, response)) => bail!(
            "the server refused with {code}: {}",
            response.into_string().unwrap_or_default()
        ),
        Err(error) => bail!("could not reach {server}: {error}"),
    }
}
