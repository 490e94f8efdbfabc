//! API keys: generation, and the keyed BLAKE2b digest (orion) that stands in for a key
//! everywhere it is stored. The digest key is per installation (`iam.key` in the data
//! directory, else `QUIVER_IAM_KEY`, which a cluster's nodes share, else random per run in
//! memory), so digests in a snapshot or a memory dump cannot be
//! checked against guessed keys elsewhere.

use std::hash::{Hash, Hasher};
use std::path::Path;

use orion::hazardous::mac::blake2b::{Blake2b, SecretKey};

use super::key_memo::{self, TagSecret};
use crate::persist::data_dir::MissingKeyFile;

/// 32 random bytes, hex-encoded: what a caller puts after `Tecton-key `.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    orion::util::secure_rand_bytes(&mut bytes)
        .expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keyed digest of an API key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyDigest(pub [u8; 32]);

/// A digest hashes as its first eight bytes: a keyed BLAKE2b output is uniform, and no one
/// without the digest key can choose one, so hashing it again (SipHash of 32 bytes, ~260
/// instructions a request in the key index) spreads nothing further. Maps of digests take
/// those bits as the hash with [`crate::prehashed::Prehashed`].
impl Hash for ApiKeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (bits, _) = self
            .0
            .split_first_chunk::<8>()
            .expect("a digest has 32 bytes");
        state.write_u64(u64::from_le_bytes(*bits));
    }
}

impl std::fmt::Debug for ApiKeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeyDigest(..)")
    }
}

impl ApiKeyDigest {
    pub fn from_bytes(bytes: &[u8]) -> Option<ApiKeyDigest> {
        Some(ApiKeyDigest(bytes.try_into().ok()?))
    }
}

/// Computes digests under the installation's key, and remembers those of keys that verified
/// (`key_memo`) under a secret of its own.
#[derive(Clone)]
pub struct KeyHasher {
    key: [u8; 32],
    tags: TagSecret,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

const HASHER_KEY_FILE: &str = "iam.key";

#[derive(Debug, thiserror::Error)]
pub enum DigestKeyError {
    #[error("{path} is missing, but the data directory holds state ({state}). It is the key every stored API-key digest (the admin's and each service account's) was computed with: without it no API key authenticates. Copy it back from your backup (mode 0600) and start again; or start once with --replace-lost-keys to create a new one (every service account's key must then be re-issued, and a new admin key is printed unless QUIVER_ADMIN_KEY is set); or remove the data directory's state to start fresh")]
    Missing { path: String, state: String },
    #[error("{0} is not a 32-byte key")]
    Invalid(String),
    #[error("QUIVER_IAM_KEY must be 64 hex characters (32 bytes)")]
    BadEnvironmentKey,
    #[error("API-key digest key file: {0}")]
    Io(#[from] std::io::Error),
}

impl KeyHasher {
    /// The key from `data_dir/iam.key`, or a random one for an in-memory server. An absent file
    /// is created (mode 0600) or refused, as `missing` says. A new key makes the stored admin
    /// digest (`admin_key.digest`) meaningless, so it is removed: a new admin key is made.
    pub fn open(
        data_dir: Option<&Path>,
        missing: &MissingKeyFile,
    ) -> Result<KeyHasher, DigestKeyError> {
        let Some(dir) = data_dir else {
            return Ok(KeyHasher::random());
        };
        let path = dir.join(HASHER_KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| DigestKeyError::Invalid(path.display().to_string()))?;
                return Ok(KeyHasher::with_key(key));
            }
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
            Err(_) => {}
        }
        if let MissingKeyFile::Refuse { state } = missing {
            return Err(DigestKeyError::Missing {
                path: path.display().to_string(),
                state: state.clone(),
            });
        }
        std::fs::create_dir_all(dir)?;
        match std::fs::remove_file(dir.join(super::ADMIN_DIGEST_FILE)) {
            Ok(()) => tracing::warn!(
                "a new {HASHER_KEY_FILE} was created: the stored admin key digest was removed"
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        let hasher = KeyHasher::random();
        write_private(&path, &hasher.key)?;
        Ok(hasher)
    }

    /// The key given as 64 hex characters (`QUIVER_IAM_KEY`).
    pub fn from_hex(text: &str) -> Result<KeyHasher, DigestKeyError> {
        let key =
            crate::secrets::crypto::parse_hex(text).ok_or(DigestKeyError::BadEnvironmentKey)?;
        Ok(KeyHasher::with_key(key))
    }

    pub fn random() -> KeyHasher {
        let mut key = [0u8; 32];
        orion::util::secure_rand_bytes(&mut key)
            .expect("the operating system's random source failed");
        KeyHasher::with_key(key)
    }

    fn with_key(key: [u8; 32]) -> KeyHasher {
        KeyHasher {
            key,
            tags: TagSecret::random(),
        }
    }

    /// What `accept` makes of `api_key`'s digest: the digest is computed, or recalled from this
    /// thread's memo of keys `accept` took before. The memo learns a digest only once `accept`
    /// takes it, and forgets one it refuses (a revoked key), so it never holds an unknown key.
    pub fn verify<T>(
        &self,
        api_key: &str,
        accept: impl FnOnce(&ApiKeyDigest) -> Option<T>,
    ) -> Option<T> {
        let tag = self.tags.tag(api_key);
        if let Some(digest) = key_memo::recall(tag) {
            let accepted = accept(&digest);
            if accepted.is_none() {
                key_memo::forget(tag);
            }
            return accepted;
        }
        let digest = self.digest(api_key);
        let accepted = accept(&digest)?;
        key_memo::remember(tag, digest);
        Some(accepted)
    }

    pub fn digest(&self, api_key: &str) -> ApiKeyDigest {
        let secret = SecretKey::from_slice(&self.key).expect("32 bytes is a valid BLAKE2b key");
        let mut state = Blake2b::new(&secret, 32).expect("32 is a valid BLAKE2b output size");
        state
            .update(api_key.as_bytes())
            .expect("hashing a short key cannot fail");
        let tag = state.finalize().expect("finalize after update cannot fail");
        ApiKeyDigest(
            tag.unprotected_as_bytes()
                .try_into()
                .expect("a 32-byte tag"),
        )
    }
}

/// Writes a file readable only by its owner.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_hashes_as_its_first_eight_bytes_in_a_map_of_digests() {
        use std::hash::{BuildHasher, BuildHasherDefault};
        let hasher = KeyHasher::random();
        let digests: Vec<ApiKeyDigest> = (0..64)
            .map(|i| hasher.digest(&format!("key-{i}")))
            .collect();
        let bits = BuildHasherDefault::<crate::prehashed::Prehashed>::default();
        for digest in &digests {
            let first: [u8; 8] = digest.0[..8].try_into().unwrap();
            assert_eq!(bits.hash_one(digest), u64::from_le_bytes(first));
        }
        let index: std::collections::HashMap<
            _,
            _,
            BuildHasherDefault<crate::prehashed::Prehashed>,
        > = digests.iter().enumerate().map(|(i, d)| (*d, i)).collect();
        for (i, digest) in digests.iter().enumerate() {
            assert_eq!(index.get(digest), Some(&i));
        }
        assert_eq!(index.get(&hasher.digest("key-64")), None);
    }

    #[test]
    fn the_memo_holds_only_keys_that_verified_and_forgets_a_revoked_one() {
        let hasher = KeyHasher::random();
        let key = generate_api_key();
        let tag = hasher.tags.tag(&key);
        let digest = hasher.digest(&key);

        assert_eq!(hasher.verify(&key, |_| None::<()>), None);
        assert_eq!(key_memo::recall(tag), None, "a refused key never enters");

        assert_eq!(hasher.verify(&key, |seen| Some(*seen)), Some(digest));
        assert_eq!(key_memo::recall(tag), Some(digest));
        assert_eq!(
            hasher.verify(&key, |seen| Some(*seen)),
            Some(digest),
            "recalled: the same digest"
        );

        // Revoked: the index no longer takes the digest, remembered or not.
        assert_eq!(hasher.verify(&key, |_| None::<()>), None);
        assert_eq!(key_memo::recall(tag), None, "a refused digest is forgotten");
    }

    #[test]
    fn another_hasher_does_not_recall_the_first_ones_digests() {
        let first = KeyHasher::random();
        let second = KeyHasher::random();
        let key = generate_api_key();
        assert_eq!(
            first.verify(&key, |seen| Some(*seen)),
            Some(first.digest(&key))
        );
        assert_eq!(
            second.verify(&key, |seen| Some(*seen)),
            Some(second.digest(&key))
        );
        assert_ne!(first.digest(&key), second.digest(&key));
    }
}
