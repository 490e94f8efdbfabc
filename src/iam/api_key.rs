//! API key generation and the digest that stands in for a key everywhere it is stored.

use orion::hazardous::hash::blake2::blake2b::Blake2b;

/// 32 random bytes, hex-encoded: what a caller puts after `Tecton-key `.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    orion::util::secure_rand_bytes(&mut bytes)
        .expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The BLAKE2b-256 digest of a key. Keys are high-entropy random strings, so a plain digest
/// cannot be reversed by guessing.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ApiKeyDigest([u8; 32]);

impl std::fmt::Debug for ApiKeyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKeyDigest(..)")
    }
}

impl ApiKeyDigest {
    pub fn of(key: &str) -> ApiKeyDigest {
        let mut state = Blake2b::new(32).expect("32 is a valid BLAKE2b output size");
        state
            .update(key.as_bytes())
            .expect("hashing a short key cannot fail");
        let digest = state.finalize().expect("finalize after update cannot fail");
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        ApiKeyDigest(bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<ApiKeyDigest> {
        Some(ApiKeyDigest(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time.
    pub fn matches(&self, key: &str) -> bool {
        orion::util::secure_cmp(&ApiKeyDigest::of(key).0, &self.0).is_ok()
    }
}
