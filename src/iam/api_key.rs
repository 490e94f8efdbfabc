//! API keys: generation, and the keyed BLAKE2b digest (orion) that stands in for a key
//! everywhere it is stored. The digest key is per installation (`iam.key` in the data
//! directory, or random per run in memory), so digests in a snapshot or a memory dump cannot be
//! checked against guessed keys elsewhere.

use std::path::Path;

use orion::hazardous::mac::blake2b::{Blake2b, SecretKey};

/// 32 random bytes, hex-encoded: what a caller puts after `Tecton-key `.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    orion::util::secure_rand_bytes(&mut bytes)
        .expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keyed digest of an API key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyDigest(pub [u8; 32]);

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

/// Computes digests under the installation's key.
#[derive(Clone)]
pub struct KeyHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

const HASHER_KEY_FILE: &str = "iam.key";

impl KeyHasher {
    /// The key from `data_dir/iam.key` (created with mode 0600 on first start), or a random one
    /// for an in-memory server.
    pub fn open(data_dir: Option<&Path>) -> std::io::Result<KeyHasher> {
        let Some(dir) = data_dir else {
            return Ok(KeyHasher::random());
        };
        let path = dir.join(HASHER_KEY_FILE);
        if let Ok(bytes) = std::fs::read(&path) {
            if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
                return Ok(KeyHasher { key });
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not a 32-byte key", path.display()),
            ));
        }
        std::fs::create_dir_all(dir)?;
        let hasher = KeyHasher::random();
        write_private(&path, &hasher.key)?;
        Ok(hasher)
    }

    pub fn random() -> KeyHasher {
        let mut key = [0u8; 32];
        orion::util::secure_rand_bytes(&mut key)
            .expect("the operating system's random source failed");
        KeyHasher { key }
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
