//! Tinybird's secrets (`/v0/secrets`, and `/v0/variables` as its CLI calls it): create,
//! update, delete, list, get, never returning a value. Limits: 100 secrets, 8 KB per value, and
//! 5 writes per second (a fixed one-second window, the vault being the only writer). Names are
//! identifiers (they become ClickHouse query parameters in Tinybird).

use std::time::{Duration, Instant};

use actix::{Handler, Message};

use super::crypto::Plaintext;
use super::state::{Change, Sealed, TbSecret};
use super::{gone, Caller, SecretsError, Vault, VaultActor};
use crate::time::now_micros;

pub const MAX_SECRETS: usize = 100;
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
pub const WRITES_PER_SECOND: u32 = 5;

#[derive(Debug, Clone)]
pub enum TbRequest {
    List,
    Get(String),
    /// `type` as sent (only `secret` is supported).
    Create {
        name: Option<String>,
        value: Option<Plaintext>,
        kind: Option<String>,
    },
    Update {
        name: String,
        value: Option<Plaintext>,
        kind: Option<String>,
    },
    Delete(String),
}

#[derive(Debug, Clone)]
pub enum TbAnswer {
    List(Vec<TbSecret>),
    One(TbSecret),
    Deleted,
}

/// The write budget after a request, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

/// Counts writes in the current one-second window.
#[derive(Debug)]
pub struct WriteLimiter {
    window_start: Instant,
    used: u32,
}

impl Default for WriteLimiter {
    fn default() -> WriteLimiter {
        WriteLimiter {
            window_start: Instant::now(),
            used: 0,
        }
    }
}

impl WriteLimiter {
    /// Takes one write from the budget, or says how long to wait.
    fn take(&mut self, now: Instant) -> Result<RateState, SecretsError> {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.used = 0;
        }
        if self.used >= WRITES_PER_SECOND {
            return Err(SecretsError::RateLimited {
                retry_after_secs: 1,
            });
        }
        self.used += 1;
        Ok(self.state())
    }

    fn state(&self) -> RateState {
        RateState {
            limit: WRITES_PER_SECOND,
            remaining: WRITES_PER_SECOND.saturating_sub(self.used),
            reset_secs: 1,
        }
    }
}

struct TbCall {
    caller: Caller,
    request: TbRequest,
}

impl Message for TbCall {
    type Result = Result<(TbAnswer, RateState), SecretsError>;
}

impl Vault {
    pub async fn tinybird(
        &self,
        caller: Caller,
        request: TbRequest,
    ) -> Result<(TbAnswer, RateState), SecretsError> {
        self.addr
            .send(TbCall { caller, request })
            .await
            .unwrap_or_else(|e| Err(gone(e)))
    }

    /// The value of a Tinybird secret, for `tb_secret()` templating inside Quiver.
    pub async fn tinybird_value(&self, name: String) -> Result<Option<Plaintext>, SecretsError> {
        self.addr
            .send(TbValue(name))
            .await
            .unwrap_or_else(|e| Err(gone(e)))
    }
}

pub(super) fn identity(name: &str, version: u64) -> String {
    format!("tinybird\0{name}\0{version}")
}

/// Longest secret name accepted.
const MAX_NAME_CHARS: usize = 255;

/// A name becomes a ClickHouse query parameter (`{name: String}`, `param_<name>`), so it must
/// be an identifier: a letter or `_`, then letters, digits and `_`.
fn check_name(name: &str) -> Result<(), SecretsError> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_CHARS;
    if valid {
        Ok(())
    } else {
        Err(SecretsError::Invalid(format!(
            "Invalid name \"{name}\": name must start with a letter or underscore and hold only letters, digits and underscores, at most {MAX_NAME_CHARS} characters"
        )))
    }
}

fn check_value(value: Option<Plaintext>) -> Result<Plaintext, SecretsError> {
    let value = value
        .filter(|v| !v.0.is_empty())
        .ok_or_else(|| SecretsError::Invalid("missing value".to_string()))?;
    if value.0.len() > MAX_VALUE_BYTES {
        return Err(SecretsError::Invalid(
            "Variable maximum size is 8KB".to_string(),
        ));
    }
    Ok(value)
}

impl VaultActor {
    fn tinybird(
        &mut self,
        caller: &Caller,
        request: TbRequest,
    ) -> Result<(TbAnswer, RateState), SecretsError> {
        let now = now_micros();
        let edited_by = format!("token: '{}'", caller.name);
        let not_found = || SecretsError::NotFound("Variable not found".to_string());
        match request {
            TbRequest::List => Ok((
                TbAnswer::List(self.state.tinybird.clone()),
                self.tinybird_writes.state(),
            )),
            TbRequest::Get(name) => {
                let found = self
                    .state
                    .tinybird
                    .iter()
                    .find(|s| s.name == name)
                    .ok_or_else(|| SecretsError::NotFound("Not found".to_string()))?;
                Ok((TbAnswer::One(found.clone()), self.tinybird_writes.state()))
            }
            // Checked in the order Tinybird's server checks them.
            TbRequest::Create { name, value, kind } => {
                let name =
                    name.ok_or_else(|| SecretsError::Invalid("Missing argument name".to_string()))?;
                let value = value
                    .filter(|v| !v.0.is_empty())
                    .ok_or_else(|| SecretsError::Invalid("missing value".to_string()))?;
                if name.is_empty() {
                    return Err(SecretsError::Invalid("missing name".to_string()));
                }
                check_name(&name)?;
                let value = check_value(Some(value))?;
                if kind.as_deref().is_some_and(|k| k != "secret") {
                    return Err(SecretsError::Invalid(
                        "Supported variable types are: secret".to_string(),
                    ));
                }
                if self.state.tinybird.iter().any(|s| s.name == name) {
                    return Err(SecretsError::Invalid(format!(
                        "Secret with name \"{name}\" already exists"
                    )));
                }
                if self.state.tinybird.len() >= MAX_SECRETS {
                    return Err(SecretsError::Invalid(format!(
                        "The maximum number of secrets for this workspace is {MAX_SECRETS}."
                    )));
                }
                let rate = self.tinybird_writes.take(Instant::now())?;
                let secret = TbSecret {
                    sealed: Sealed {
                        ciphertext: self.seal(&value, &identity(&name, 1)),
                        version: 1,
                        created: now,
                        updated: now,
                    },
                    name,
                    edited_by,
                };
                self.commit(vec![Change::PutTinybird(secret.clone())])?;
                Ok((TbAnswer::One(secret), rate))
            }
            TbRequest::Update { name, value, kind } => {
                if kind.is_some() {
                    return Err(SecretsError::Invalid(
                        "Variable type cannot be changed".to_string(),
                    ));
                }
                let value = value
                    .filter(|v| !v.0.is_empty())
                    .ok_or_else(|| SecretsError::Invalid("missing value".to_string()))?;
                let existing = self
                    .state
                    .tinybird
                    .iter()
                    .find(|s| s.name == name)
                    .cloned()
                    .ok_or_else(not_found)?;
                let value = check_value(Some(value))?;
                let rate = self.tinybird_writes.take(Instant::now())?;
                let version = existing.sealed.version + 1;
                let secret = TbSecret {
                    sealed: Sealed {
                        ciphertext: self.seal(&value, &identity(&name, version)),
                        version,
                        created: existing.sealed.created,
                        updated: now,
                    },
                    name,
                    edited_by,
                };
                self.commit(vec![Change::PutTinybird(secret.clone())])?;
                Ok((TbAnswer::One(secret), rate))
            }
            TbRequest::Delete(name) => {
                if !self.state.tinybird.iter().any(|s| s.name == name) {
                    return Err(not_found());
                }
                let rate = self.tinybird_writes.take(Instant::now())?;
                self.commit(vec![Change::DeleteTinybird(name)])?;
                Ok((TbAnswer::Deleted, rate))
            }
        }
    }
}

impl Handler<TbCall> for VaultActor {
    type Result = Result<(TbAnswer, RateState), SecretsError>;

    fn handle(&mut self, msg: TbCall, _: &mut Self::Context) -> Self::Result {
        self.tinybird(&msg.caller, msg.request)
    }
}

struct TbValue(String);

impl Message for TbValue {
    type Result = Result<Option<Plaintext>, SecretsError>;
}

impl Handler<TbValue> for VaultActor {
    type Result = Result<Option<Plaintext>, SecretsError>;

    fn handle(&mut self, msg: TbValue, _: &mut Self::Context) -> Self::Result {
        let Some(secret) = self.state.tinybird.iter().find(|s| s.name == msg.0) else {
            return Ok(None);
        };
        self.open(
            &secret.sealed.ciphertext,
            &identity(&secret.name, secret.sealed.version),
            &format!("secret `{}`", secret.name),
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_writes_a_second() {
        let mut limiter = WriteLimiter::default();
        let start = limiter.window_start;
        for remaining in (0..5).rev() {
            assert_eq!(limiter.take(start).unwrap().remaining, remaining);
        }
        assert_eq!(
            limiter.take(start + Duration::from_millis(900)),
            Err(SecretsError::RateLimited {
                retry_after_secs: 1
            })
        );
        assert!(
            limiter.take(start + Duration::from_millis(1001)).is_ok(),
            "a new window"
        );
    }
}
