//! The hasher of maps whose keys are already uniform hashes (an xxh3 of a join key, a keyed
//! digest of an API key): it passes the key's `u64` through, since hashing it again (SipHash,
//! a few hundred instructions a lookup) spreads nothing further.

use std::hash::Hasher;

/// Passes a key's `write_u64` through as the hash; for keys that hash as one `u64` only.
#[derive(Debug, Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _: &[u8]) {
        unreachable!("Prehashed only hashes keys that hash as one u64")
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}
