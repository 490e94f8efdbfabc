//! Tinybird's secrets (`/v0/secrets`, and `/v0/variables` as its CLI calls it): create,
//! update, delete, list, get, never returning a value. Limits, from Tinybird's page: 100
//! secrets, 8 KB per value, and 5 requests per second, reads included (a fixed one-second
//! window counted in the vault, which every request reaches). Names are
//! identifiers (they become ClickHouse query parameters in Tinybird).

use std::time::{Duration, Instant};

use actix::{Handler, Message};

use super::crypto::Plaintext;
use super::state::{Change, Sealed, TbSecret};
use super::{Caller, NameKind, SecretRef, SecretsError, Vault, VaultActor};
use crate::time::now_micros;

pub const MAX_SECRETS: usize = 100;
pub const MAX_VALUE_BYTES: usize = 8 * 1024;
pub const REQUESTS_PER_SECOND: u32 = 5;

/// The request budget after a request, for the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

/// Counts requests in the current one-second window.
#[derive(Debug)]
pub struct RequestLimiter {
    window_start: Instant,
    used: u32,
}

impl Default for RequestLimiter {
    fn default() -> RequestLimiter {
        RequestLimiter {
            window_start: Instant::now(),
            used: 0,
        }
    }
}

impl RequestLimiter {
    /// Takes one request from the budget, or says how long to wait.
    fn take(&mut self, now: Instant) -> Result<RateState, SecretsError> {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.used = 0;
        }
        if self.used >= REQUESTS_PER_SECOND {
            return Err(SecretsError::RateLimited {
                retry_after_secs: 1,
            });
        }
        self.used += 1;
        Ok(self.state())
    }

    fn state(&self) -> RateState {
        RateState {
            limit: REQUESTS_PER_SECOND,
            remaining: REQUESTS_PER_SECOND.saturating_sub(self.used),
            reset_secs: 1,
        }
    }
}

/// An answer and the request budget left after it.
pub type Rated<T> = (T, RateState);

// Tinybird's API is for admins only, which the HTTP layer checks; a write names its editor.
message!(ListTinybird {} -> Rated<Vec<TbSecret>>);
message!(GetTinybird { name: String } -> Rated<Option<TbSecret>>);
message!(CreateTinybird { caller: Caller, name: String, value: Plaintext } -> Rated<TbSecret>);
message!(UpdateTinybird { caller: Caller, name: String, value: Plaintext } -> Rated<TbSecret>);
message!(DeleteTinybird { name: String } -> Rated<()>);

impl Vault {
    /// Every Tinybird secret, in the order they were created.
    pub async fn list_tinybird(&self) -> Result<Rated<Vec<TbSecret>>, SecretsError> {
        self.ask(ListTinybird {}).await
    }

    pub async fn get_tinybird(
        &self,
        name: String,
    ) -> Result<Rated<Option<TbSecret>>, SecretsError> {
        self.ask(GetTinybird { name }).await
    }

    pub async fn create_tinybird(
        &self,
        caller: Caller,
        name: String,
        value: Plaintext,
    ) -> Result<Rated<TbSecret>, SecretsError> {
        self.ask(CreateTinybird {
            caller,
            name,
            value,
        })
        .await
    }

    pub async fn update_tinybird(
        &self,
        caller: Caller,
        name: String,
        value: Plaintext,
    ) -> Result<Rated<TbSecret>, SecretsError> {
        self.ask(UpdateTinybird {
            caller,
            name,
            value,
        })
        .await
    }

    pub async fn delete_tinybird(&self, name: String) -> Result<Rated<()>, SecretsError> {
        self.ask(DeleteTinybird { name }).await
    }

    /// The value of a Tinybird secret, for `tb_secret()` templating inside Quiver.
    pub async fn tinybird_value(&self, name: String) -> Result<Option<Plaintext>, SecretsError> {
        self.ask(TinybirdValue { name }).await
    }
}

pub(super) fn identity(name: &str, version: u64) -> String {
    format!("tinybird\0{name}\0{version}")
}

/// Longest secret name accepted.
const MAX_NAME_CHARS: usize = 255;

/// A name becomes a ClickHouse query parameter (`{name: String}`, `param_<name>`), so it must
/// be an identifier: a letter or `_`, then letters, digits and `_`.
pub fn check_name(name: &str) -> Result<(), SecretsError> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME_CHARS;
    if valid {
        Ok(())
    } else {
        Err(SecretsError::InvalidName {
            kind: NameKind::Tinybird,
            name: name.to_string(),
        })
    }
}

/// A value is at most `MAX_VALUE_BYTES` bytes.
pub fn check_value(value: &Plaintext) -> Result<(), SecretsError> {
    if value.0.len() > MAX_VALUE_BYTES {
        return Err(SecretsError::ValueTooLarge {
            max_bytes: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

impl VaultActor {
    fn tinybird_secret(&self, name: &str) -> Option<&TbSecret> {
        self.state.tinybird.iter().find(|s| s.name == name)
    }

    /// Seals and journals a secret's new version, as edited by `caller`.
    fn put_tinybird(
        &mut self,
        caller: &Caller,
        name: String,
        value: &Plaintext,
        version: u64,
        created: Option<i64>,
    ) -> Result<TbSecret, SecretsError> {
        let now = now_micros();
        let secret = TbSecret {
            sealed: Sealed {
                ciphertext: self.seal(value, &identity(&name, version)),
                version,
                created: created.unwrap_or(now),
                updated: now,
            },
            name,
            edited_by: format!("token: '{}'", caller.name),
        };
        self.commit(vec![Change::PutTinybird(secret.clone())])?;
        Ok(secret)
    }
}

impl Handler<ListTinybird> for VaultActor {
    type Result = Result<Rated<Vec<TbSecret>>, SecretsError>;

    fn handle(&mut self, _: ListTinybird, _: &mut Self::Context) -> Self::Result {
        let rate = self.tinybird_requests.take(Instant::now())?;
        Ok((self.state.tinybird.clone(), rate))
    }
}

impl Handler<GetTinybird> for VaultActor {
    type Result = Result<Rated<Option<TbSecret>>, SecretsError>;

    fn handle(&mut self, msg: GetTinybird, _: &mut Self::Context) -> Self::Result {
        let rate = self.tinybird_requests.take(Instant::now())?;
        let found = self.tinybird_secret(&msg.name).cloned();
        Ok((found, rate))
    }
}

impl Handler<CreateTinybird> for VaultActor {
    type Result = Result<Rated<TbSecret>, SecretsError>;

    fn handle(&mut self, msg: CreateTinybird, _: &mut Self::Context) -> Self::Result {
        let CreateTinybird {
            caller,
            name,
            value,
        } = msg;
        let rate = self.tinybird_requests.take(Instant::now())?;
        check_name(&name)?;
        check_value(&value)?;
        if self.tinybird_secret(&name).is_some() {
            return Err(SecretsError::TinybirdExists(name));
        }
        if self.state.tinybird.len() >= MAX_SECRETS {
            return Err(SecretsError::TinybirdFull {
                max_secrets: MAX_SECRETS,
            });
        }
        Ok((
            self.put_tinybird(&caller, name, &value, Sealed::FIRST_VERSION, None)?,
            rate,
        ))
    }
}

impl Handler<UpdateTinybird> for VaultActor {
    type Result = Result<Rated<TbSecret>, SecretsError>;

    fn handle(&mut self, msg: UpdateTinybird, _: &mut Self::Context) -> Self::Result {
        let UpdateTinybird {
            caller,
            name,
            value,
        } = msg;
        let rate = self.tinybird_requests.take(Instant::now())?;
        let Some(existing) = self.tinybird_secret(&name) else {
            return Err(SecretsError::TinybirdNotFound(name));
        };
        let (version, created) = (existing.sealed.version + 1, existing.sealed.created);
        check_value(&value)?;
        let secret = self.put_tinybird(&caller, name, &value, version, Some(created))?;
        Ok((secret, rate))
    }
}

impl Handler<DeleteTinybird> for VaultActor {
    type Result = Result<Rated<()>, SecretsError>;

    fn handle(&mut self, msg: DeleteTinybird, _: &mut Self::Context) -> Self::Result {
        let rate = self.tinybird_requests.take(Instant::now())?;
        if self.tinybird_secret(&msg.name).is_none() {
            return Err(SecretsError::TinybirdNotFound(msg.name));
        }
        self.commit(vec![Change::DeleteTinybird(msg.name)])?;
        Ok(((), rate))
    }
}

message!(TinybirdValue { name: String } -> Option<Plaintext>);

impl Handler<TinybirdValue> for VaultActor {
    type Result = Result<Option<Plaintext>, SecretsError>;

    fn handle(&mut self, msg: TinybirdValue, _: &mut Self::Context) -> Self::Result {
        let Some(secret) = self.tinybird_secret(&msg.name) else {
            return Ok(None);
        };
        self.open(
            &secret.sealed.ciphertext,
            &identity(&secret.name, secret.sealed.version),
            || SecretRef::Tinybird {
                name: secret.name.clone(),
            },
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_requests_a_second() {
        let mut limiter = RequestLimiter::default();
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
