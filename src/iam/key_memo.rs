//! A per-thread memo of API keys that authenticated recently: presented key -> its keyed
//! BLAKE2b digest, so that a caller sending the same key again skips the digest (about 6k
//! instructions, 9 % of a plain GetFeatures). It remembers the value of a pure function, never
//! who a key belongs to: every request still looks the digest up in the directory's current
//! key index, so a revoked key or a changed role takes effect at once, with nothing to
//! invalidate.
//!
//! Why that is sound:
//! - A slot is found and confirmed by a tag, the xxh3-128 of the presented key under a
//!   192-byte secret drawn from the operating system per `KeyHasher` (never persisted, logged
//!   or shown by `Debug`). Without the secret no one can aim a key at a tag; a false hit needs
//!   a 128-bit match with a key that verified, which only that key's holder could even try to
//!   craft, and it would grant what that key grants, only while the index still accepts it.
//! - A slot is filled only after the index accepted the freshly computed digest: unknown keys
//!   never enter, so hostile traffic can neither fill the memo nor evict a valid key.
//! - Bounded: `SLOTS` direct-mapped slots per thread (a key whose tag lands on a taken slot
//!   replaces the older key); a remembered digest the index refuses is forgotten.
//! - Per thread (`thread_local!`), so no lock and no shared map (house rule); each HTTP worker
//!   warms its own.
//! - It holds tags and digests: what the key index already holds in memory (digests, and the
//!   digest key beside them), never a key.

use std::cell::Cell;

use xxhash_rust::xxh3::xxh3_128_with_secret;

use super::ApiKeyDigest;

/// Slots per thread: a worker serving more distinct keys than this at once computes digests
/// again for some of them, no more.
const SLOTS: usize = 64;

/// xxh3's own secret size.
const SECRET_LEN: usize = 192;

/// The per-`KeyHasher` secret that keys the memo's tags.
#[derive(Clone)]
pub struct TagSecret([u8; SECRET_LEN]);

impl TagSecret {
    pub fn random() -> TagSecret {
        let mut secret = [0u8; SECRET_LEN];
        orion::util::secure_rand_bytes(&mut secret)
            .expect("the operating system's random source failed");
        TagSecret(secret)
    }

    /// The tag of a presented key.
    pub fn tag(&self, api_key: &str) -> u128 {
        xxh3_128_with_secret(api_key.as_bytes(), &self.0)
    }
}

type Slot = Cell<Option<(u128, ApiKeyDigest)>>;

thread_local! {
    static MEMO: [Slot; SLOTS] = const { [const { Cell::new(None) }; SLOTS] };
}

fn slot_of(tag: u128) -> usize {
    (tag as usize) % SLOTS
}

/// The digest remembered for `tag` on this thread.
pub fn recall(tag: u128) -> Option<ApiKeyDigest> {
    MEMO.with(|memo| {
        memo[slot_of(tag)]
            .get()
            .filter(|(held, _)| *held == tag)
            .map(|(_, digest)| digest)
    })
}

/// Remembers a digest the key index has just accepted.
pub fn remember(tag: u128, digest: ApiKeyDigest) {
    MEMO.with(|memo| memo[slot_of(tag)].set(Some((tag, digest))));
}

/// Forgets `tag` (its digest was refused: the key was revoked).
pub fn forget(tag: u128) {
    MEMO.with(|memo| {
        let slot = &memo[slot_of(tag)];
        if slot.get().is_some_and(|(held, _)| held == tag) {
            slot.set(None);
        }
    });
}
