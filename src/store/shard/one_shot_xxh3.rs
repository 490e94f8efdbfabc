//! The hasher of a partition's tiles map, whose keys are byte strings: one call of xxh3 over the
//! whole key. `Hash` for `[u8]` feeds a hasher the length, then the bytes; xxhash-rust's
//! `Xxh3Builder` hasher buffers both through its streaming state (~260 instructions a lookup
//! of a ~25-byte key), this one hashes the bytes in one go, seeded with the length.

use std::hash::{BuildHasher, Hasher};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Builds [`OneShotXxh3Hasher`]s (a fixed seed, as `Xxh3Builder::new()` had).
#[derive(Debug, Default, Clone, Copy)]
pub struct OneShotXxh3;

impl BuildHasher for OneShotXxh3 {
    type Hasher = OneShotXxh3Hasher;

    fn build_hasher(&self) -> OneShotXxh3Hasher {
        OneShotXxh3Hasher(0)
    }
}

/// xxh3 of one byte string, seeded with what was written before it (its length).
#[derive(Debug)]
pub struct OneShotXxh3Hasher(u64);

impl Hasher for OneShotXxh3Hasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(5) ^ n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_by_their_bytes() {
        let hash = |key: &[u8]| OneShotXxh3.hash_one(Box::<[u8]>::from(key));
        assert_eq!(hash(b"view:key"), hash(b"view:key"));
        assert_ne!(hash(b"view:key"), hash(b"view:kez"));
        assert_ne!(hash(b""), hash(b"\0"));
        // A map finds a boxed key by the slice it borrows as.
        let mut map = std::collections::HashMap::with_hasher(OneShotXxh3);
        map.insert(Box::<[u8]>::from(&b"abc"[..]), 1);
        assert_eq!(map.get(&b"abc"[..]), Some(&1));
    }
}
