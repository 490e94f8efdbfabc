//! Per-push-source ingest tokens: each source's `ingest_token` setting (a `tb_secret()`
//! template) rendered from the vault at start-up, and the check `/ingest` makes before it
//! writes a source's records. Rendered tokens are `Plaintext`: never printed or logged.

use std::collections::HashMap;

use super::IngestError;
use crate::registry::Registry;
use crate::secrets::crypto::Plaintext;
use crate::secrets::Vault;

/// (workspace, push source) -> its rendered token; sources without a setting are open.
#[derive(Debug, Default)]
pub struct IngestTokens {
    by_source: HashMap<(String, String), Plaintext>,
}

impl IngestTokens {
    /// Renders every push source's `ingest_token` from the vault's Tinybird secrets. A secret
    /// that does not exist (and has no default) is an error naming the source and the secret.
    pub async fn render(registry: &Registry, vault: &Vault) -> Result<IngestTokens, IngestError> {
        let mut by_source = HashMap::new();
        for workspace in registry.workspaces() {
            for source in workspace.push_sources.values() {
                let Some(template) = &source.ingest_token else {
                    continue;
                };
                let setting_error = |problem: String| IngestError::TokenSetting {
                    workspace: workspace.name.clone(),
                    source_name: source.name.clone(),
                    problem,
                };
                let mut values = HashMap::new();
                for name in template.secret_names() {
                    let value = vault
                        .tinybird_value(name.to_string())
                        .await
                        .map_err(|error| setting_error(error.to_string()))?;
                    if let Some(value) = value {
                        values.insert(name.to_string(), value);
                    }
                }
                let token = template
                    .render(|name| values.get(name).cloned())
                    .map_err(|error| setting_error(error.to_string()))?;
                if token.0.is_empty() {
                    return Err(setting_error("renders to an empty token".to_string()));
                }
                by_source.insert((workspace.name.clone(), source.name.clone()), token);
            }
        }
        Ok(IngestTokens { by_source })
    }

    /// Checks the token a request gave for `source` (in constant time).
    pub fn check(
        &self,
        workspace: &str,
        source: &str,
        given: Option<&str>,
    ) -> Result<(), IngestError> {
        let Some(expected) = self
            .by_source
            .get(&(workspace.to_string(), source.to_string()))
        else {
            return Ok(());
        };
        let matches = given.is_some_and(|given| {
            orion::util::secure_cmp(given.as_bytes(), expected.0.as_bytes()).is_ok()
        });
        if matches {
            Ok(())
        } else {
            Err(IngestError::WrongToken(source.to_string()))
        }
    }
}
