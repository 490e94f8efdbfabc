//! The hasher of a partition's tiles map, whose keys are byte strings: one call of xxh3 over the
//! whole key. `Hash` for `[u8]` feeds a hasher the length, then the bytes; xxhash-rust's
//! `Xxh3Builder` hasher buffers both through its streaming state (~260 instructions a lookup
//! of a ~25-byte key), this one hashes the bytes in one go, seeded with the length mixed into
//! the map's own random seed (join keys come from writers: a known seed would let one search
//! offline for keys that collide and make a shard's tile lookups linear).

use std::hash::{BuildHasher, Hasher};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Builds [`OneShotXxh3Hasher`]s from one seed, drawn at random for each map.
#[derive(Debug, Clone, Copy)]
pub struct OneShotXxh3 {
    seed: u64,
}

impl OneShotXxh3 {
    pub fn random() -> OneShotXxh3 {
        OneShotXxh3 {
            seed: rand::random(),
        }
    }
}

impl BuildHasher for OneShotXxh3 {
    type Hasher = OneShotXxh3Hasher;

    fn build_hasher(&self) -> OneShotXxh3Hasher {
        OneShotXxh3Hasher(self.seed)
    }
}

/// xxh3 of one byte string, seeded with the map's seed and what was written before it (its
/// length).
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
        let builder = OneShotXxh3::random();
        let hash = |key: &[u8]| builder.hash_one(Box::<[u8]>::from(key));
        assert_eq!(hash(b"view:key"), hash(b"view:key"));
        assert_ne!(hash(b"view:key"), hash(b"view:kez"));
        assert_ne!(hash(b""), hash(b"\0"));
        // Another map's seed places the same key elsewhere (equal by chance once in 2^64).
        assert_ne!(
            hash(b"view:key"),
            OneShotXxh3::random().hash_one(Box::<[u8]>::from(&b"view:key"[..]))
        );
        // A map finds a boxed key by the slice it borrows as.
        let mut map = std::collections::HashMap::with_hasher(OneShotXxh3::random());
        map.insert(Box::<[u8]>::from(&b"abc"[..]), 1);
        assert_eq!(map.get(&b"abc"[..]), Some(&1));
    }
}
