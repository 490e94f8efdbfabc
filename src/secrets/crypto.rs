//! Encryption at rest: XChaCha20-Poly1305 (orion's `aead`) under the master key, with each
//! secret's identity as associated data, so a ciphertext moved to another record fails to open.
//! Plaintext lives only in `Plaintext`, whose `Debug` is redacted.

use std::path::{Path, PathBuf};

use orion::hazardous::aead::xchacha20poly1305::{open, seal, Nonce, SecretKey};

use crate::persist::data_dir::MissingKeyFile;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A secret value in memory. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(pub String);

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plaintext(<redacted>)")
    }
}

/// The key everything is sealed under.
pub struct MasterKey(SecretKey);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("QUIVER_MASTER_KEY must be 64 hex characters (32 bytes)")]
    BadEnvironmentKey,
    #[error("{0}: a master key file must hold exactly 32 bytes")]
    BadKeyFile(String),
    #[error("{path} is missing, but the data directory holds state ({state}). It is the master key every stored secret is sealed under: without it no secret can be read. Copy it back from your backup (mode 0600), or set QUIVER_MASTER_KEY to its 64 hex characters, and start again; or start once with --replace-lost-keys to create a new key (secrets sealed under the lost one stay unreadable until they are deleted and put again); or remove the data directory's state to start fresh")]
    Missing { path: String, state: String },
    #[error("master key file: {0}")]
    Io(#[from] std::io::Error),
    #[error("{path} (the key of an interrupted rotation): {source}")]
    RotationKey {
        path: String,
        #[source]
        source: Box<KeyError>,
    },
}

/// Where the master key came from, for the start-up log.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File,
    /// Created now (development); the loud warning is the caller's.
    CreatedFile,
    /// In memory only: a new random key each run.
    Ephemeral,
}

/// 64 hex characters as 32 bytes (a key given in the environment).
pub(crate) fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(bytes)
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The file a rotation writes the new key to before it is final.
pub fn next_key_path(key_file: &Path) -> PathBuf {
    key_file.with_extension("next")
}

/// The vault's keys at start-up, and the file a rotation replaces.
#[derive(Debug)]
pub struct MasterKeys {
    /// The current key, then the key of an interrupted rotation if one was found.
    pub keys: Vec<MasterKey>,
    /// The key file; `None` when the key came from `QUIVER_MASTER_KEY` or the server is in
    /// memory (a rotation then answers the new key instead of writing it).
    pub rotation_file: Option<PathBuf>,
}

impl MasterKeys {
    /// Loads the master key (`env_key`, else `key_file`, created only as `missing` allows) and
    /// logs where it came from. A `.next` key beside the file means a rotation was interrupted:
    /// values then open with either key.
    pub fn load(
        env_key: Option<&str>,
        key_file: Option<&Path>,
        missing: &MissingKeyFile,
    ) -> Result<MasterKeys, KeyError> {
        let (key, source) = MasterKey::load(env_key, key_file, missing)?;
        match source {
            KeySource::Environment => tracing::info!("master key taken from QUIVER_MASTER_KEY"),
            KeySource::File => tracing::info!("master key loaded from its key file"),
            KeySource::CreatedFile => tracing::warn!(
                key_file = %key_file.map(|p| p.display().to_string()).unwrap_or_default(),
                "CREATED A NEW MASTER KEY FILE (mode 0600): fine for development; in production set QUIVER_MASTER_KEY or provision the file, and back it up: without it no secret can be read"
            ),
            KeySource::Ephemeral => tracing::warn!(
                "secrets are sealed with a random per-run master key (no data directory)"
            ),
        }
        let rotation_file = match source {
            KeySource::Environment => None,
            _ => key_file.map(Path::to_path_buf),
        };
        let mut keys = vec![key];
        if let Some(next) = rotation_file
            .as_deref()
            .map(next_key_path)
            .filter(|p| p.exists())
        {
            let (next_key, _) =
                MasterKey::load(None, Some(&next), missing).map_err(|e| KeyError::RotationKey {
                    path: next.display().to_string(),
                    source: Box::new(e),
                })?;
            tracing::warn!(key_file = %next.display(), "an interrupted key rotation was found; values open with either key; run `quiver secrets rotate-key` again");
            keys.push(next_key);
        }
        Ok(MasterKeys {
            keys,
            rotation_file,
        })
    }
}

impl MasterKey {
    /// From `QUIVER_MASTER_KEY` (hex), else the key file (if absent: created with mode 0600,
    /// or refused, as `missing` says), else a random key for an in-memory server.
    pub fn load(
        env_key: Option<&str>,
        key_file: Option<&Path>,
        missing: &MissingKeyFile,
    ) -> Result<(MasterKey, KeySource), KeyError> {
        if let Some(text) = env_key.filter(|t| !t.is_empty()) {
            let bytes = parse_hex(text).ok_or(KeyError::BadEnvironmentKey)?;
            return Ok((MasterKey::from_bytes(&bytes), KeySource::Environment));
        }
        let Some(path) = key_file else {
            return Ok((MasterKey::random(), KeySource::Ephemeral));
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::BadKeyFile(path.display().to_string()))?;
                Ok((MasterKey::from_bytes(&bytes), KeySource::File))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if let MissingKeyFile::Refuse { state } = missing {
                    return Err(KeyError::Missing {
                        path: path.display().to_string(),
                        state: state.clone(),
                    });
                }
                let key = MasterKey::random();
                key.write_file(path)?;
                Ok((key, KeySource::CreatedFile))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub fn random() -> MasterKey {
        MasterKey(SecretKey::generate())
    }

    fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        MasterKey(SecretKey::from_slice(bytes).expect("32 bytes is a valid key"))
    }

    /// Writes the key to `path` atomically, readable only by the owner.
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(self.0.unprotected_as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    }

    pub fn hex(&self) -> String {
        to_hex(self.0.unprotected_as_bytes())
    }

    /// Encrypts `value` with `identity` as associated data: a random 24-byte nonce, then the
    /// ciphertext and its 16-byte tag.
    pub fn seal(&self, value: &Plaintext, identity: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        orion::util::secure_rand_bytes(&mut nonce)
            .expect("the operating system's random source failed");
        let mut out = vec![0u8; NONCE_LEN + value.0.len() + TAG_LEN];
        out[..NONCE_LEN].copy_from_slice(&nonce);
        seal(
            &self.0,
            &Nonce::from(nonce),
            value.0.as_bytes(),
            Some(identity.as_bytes()),
            &mut out[NONCE_LEN..],
        )
        .expect("sealing into a buffer of the right size cannot fail");
        out
    }

    /// Decrypts; `None` when the ciphertext was altered, belongs to another record or another
    /// key.
    pub fn open(&self, sealed: &[u8], identity: &str) -> Option<Plaintext> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let nonce = Nonce::from_slice(&sealed[..NONCE_LEN]).ok()?;
        let mut out = vec![0u8; sealed.len() - NONCE_LEN - TAG_LEN];
        open(
            &self.0,
            &nonce,
            &sealed[NONCE_LEN..],
            Some(identity.as_bytes()),
            &mut out,
        )
        .ok()?;
        String::from_utf8(out).ok().map(Plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_record_and_key() {
        let key = MasterKey::random();
        let secret = Plaintext("hunter2".into());
        let sealed = key.seal(&secret, "tecton/db/password/1");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(key.open(&sealed, "tecton/db/password/1"), Some(secret));
        assert_eq!(
            key.open(&sealed, "tecton/db/other/1"),
            None,
            "moved to another record"
        );
        assert_eq!(
            MasterKey::random().open(&sealed, "tecton/db/password/1"),
            None,
            "another key"
        );
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert_eq!(key.open(&flipped, "tecton/db/password/1"), None, "tampered");
        assert_eq!(
            format!("{:?}", Plaintext("x".into())),
            "Plaintext(<redacted>)"
        );
    }

    #[test]
    fn key_sources() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let refuse = MissingKeyFile::Refuse {
            state: "1 snapshot(s)".into(),
        };
        let error = MasterKey::load(None, Some(&path), &refuse).unwrap_err();
        assert!(
            error.to_string().contains("master.key is missing"),
            "{error}"
        );
        assert!(!path.exists(), "a refusal creates nothing");
        let (created, source) =
            MasterKey::load(None, Some(&path), &MissingKeyFile::Create).unwrap();
        assert_eq!(source, KeySource::CreatedFile);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, source) = MasterKey::load(None, Some(&path), &refuse).unwrap();
        assert_eq!((source, again.hex()), (KeySource::File, created.hex()));
        std::fs::remove_file(&path).unwrap();
        let (from_env, source) =
            MasterKey::load(Some(&created.hex()), Some(&path), &refuse).unwrap();
        assert_eq!(
            (source, from_env.hex()),
            (KeySource::Environment, created.hex())
        );
        assert!(MasterKey::load(Some("xyz"), None, &refuse).is_err());
    }

    #[test]
    fn an_interrupted_rotation_opens_values_with_either_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let old = MasterKeys::load(None, Some(&path), &MissingKeyFile::Create).unwrap();
        assert_eq!(old.keys.len(), 1);
        assert_eq!(old.rotation_file.as_deref(), Some(path.as_path()));
        let next = MasterKey::random();
        next.write_file(&next_key_path(&path)).unwrap();
        let both = MasterKeys::load(None, Some(&path), &MissingKeyFile::Create).unwrap();
        let hexes: Vec<String> = both.keys.iter().map(MasterKey::hex).collect();
        assert_eq!(hexes, [old.keys[0].hex(), next.hex()]);
        std::fs::write(next_key_path(&path), b"short").unwrap();
        let error = MasterKeys::load(None, Some(&path), &MissingKeyFile::Create).unwrap_err();
        assert!(
            error.to_string().contains("interrupted rotation"),
            "{error}"
        );
        let from_env = MasterKeys::load(Some(&next.hex()), Some(&path), &MissingKeyFile::Create);
        assert_eq!(
            from_env.unwrap().rotation_file,
            None,
            "a key from the environment has no file to rotate"
        );
    }
}
