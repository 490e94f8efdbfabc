//! Join-key encoding and the shard routing function.
//!
//! `shard_of` is a pure function over a fixed hasher (xxh3 with the view id as seed): the same
//! view and key land on the same shard for a given shard count, in every process.

use crate::registry::value::Value;
use crate::registry::ViewId;

/// One join-key value, as keys are made of: a string (borrowed) or an int64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart<'a> {
    String(&'a str),
    Int64(i64),
}

/// The canonical bytes of a row's join-key values (in the view's join-key order).
/// Strings are length-prefixed and int64s fixed-width, so distinct keys never collide.
pub fn encode_key<'a>(values: impl IntoIterator<Item = &'a Value>, out: &mut Vec<u8>) {
    for value in values {
        encode_key_part(
            match value {
                Value::Int64(i) => KeyPart::Int64(*i),
                Value::String(s) => KeyPart::String(s),
                // Join keys are validated to be string or int64 before they get here.
                other => unreachable!("join key of unsupported kind {other:?}"),
            },
            out,
        );
    }
}

/// An encoded key as a [`Lookup`](crate::store::Lookup) owns it: in place when it is short
/// (most keys: a string of up to 41 bytes, or a few integers), else on the heap. A `Vec` for
/// every lookup cost an allocation and its free (~90 instructions) for each lookup of a
/// request.
#[derive(Clone)]
pub enum OwnedKey {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_BYTES],
    },
    Heap(Vec<u8>),
}

/// The longest key an [`OwnedKey`] holds in place: the enum is then 48 bytes, as large as a
/// key of a UUID string would need.
const INLINE_KEY_BYTES: usize = 46;

impl OwnedKey {
    /// A copy of `key`.
    pub fn copy_of(key: &[u8]) -> OwnedKey {
        OwnedKey::concat(&[], key)
    }

    /// The bytes of `head` then `tail`, copied once (a shard's tile key: its view and layout,
    /// then the join key).
    pub fn concat(head: &[u8], tail: &[u8]) -> OwnedKey {
        match head.len() + tail.len() {
            len @ 0..=INLINE_KEY_BYTES => {
                let mut bytes = [0; INLINE_KEY_BYTES];
                bytes[..head.len()].copy_from_slice(head);
                bytes[head.len()..len].copy_from_slice(tail);
                OwnedKey::Inline {
                    len: len as u8,
                    bytes,
                }
            }
            _ => OwnedKey::Heap([head, tail].concat()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            OwnedKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            OwnedKey::Heap(key) => key,
        }
    }
}

/// Keys equal, hash and borrow as their bytes, so that a map keyed by `OwnedKey` (a shard's
/// tiles) is searched with a borrowed `&[u8]`.
impl PartialEq for OwnedKey {
    fn eq(&self, other: &OwnedKey) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for OwnedKey {}

impl std::hash::Hash for OwnedKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state)
    }
}

impl std::borrow::Borrow<[u8]> for OwnedKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::ops::Deref for OwnedKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for OwnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_bytes().fmt(f)
    }
}

/// Appends one join-key value's bytes (see [`encode_key`]).
pub fn encode_key_part(part: KeyPart, out: &mut Vec<u8>) {
    match part {
        KeyPart::Int64(i) => {
            out.reserve(9);
            out.push(b'i');
            out.extend_from_slice(&i.to_le_bytes());
        }
        KeyPart::String(s) => encode_string_key_part(s.as_bytes(), out),
    }
}

/// Appends a string join-key value's bytes, given as its UTF-8 (checked by the caller: the
/// binary rows body's reader has checked it, and need not make a `&str` of it again).
pub fn encode_string_key_part(utf8: &[u8], out: &mut Vec<u8>) {
    // One allocation, not one per part: keys are encoded on every read.
    out.reserve(5 + utf8.len());
    out.push(b's');
    out.extend_from_slice(&(utf8.len() as u32).to_le_bytes());
    out.extend_from_slice(utf8);
}

/// The shard that owns `key` of `view` among `n_shards`.
pub fn shard_of(view: ViewId, key: &[u8], n_shards: usize) -> usize {
    shard_of_hash(key_hash(view, key), n_shards)
}

/// The hash that places `key` of `view` on a shard: xxh3 seeded with the view id.
pub fn key_hash(view: ViewId, key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, u64::from(view))
}

/// A join key of a view with its [`key_hash`], made only by hashing it: the two always agree.
#[derive(Debug, Clone, Copy)]
pub struct HashedKey<'a> {
    view: ViewId,
    key: &'a [u8],
    hash: u64,
}

impl<'a> HashedKey<'a> {
    pub fn new(view: ViewId, key: &'a [u8]) -> HashedKey<'a> {
        HashedKey {
            view,
            key,
            hash: key_hash(view, key),
        }
    }

    pub fn view(&self) -> ViewId {
        self.view
    }

    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }
}

/// The shard that owns a key whose [`key_hash`] is `hash`, among `n_shards`.
pub fn shard_of_hash(hash: u64, n_shards: usize) -> usize {
    (hash % n_shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_every_shard_and_are_stable() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let mut key = Vec::new();
            encode_key(&[Value::String(format!("user_{i}"))], &mut key);
            let shard = shard_of(7, &key, 4);
            assert_eq!(shard, shard_of(7, &key, 4));
            counts[shard] += 1;
        }
        assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
    }

    #[test]
    fn owned_keys_hold_every_length_and_go_to_the_heap_past_the_inline_bytes() {
        let long: Vec<u8> = (0..=200u8).collect();
        for len in 0..long.len() {
            let owned = OwnedKey::copy_of(&long[..len]);
            assert_eq!(owned.as_bytes(), &long[..len], "length {len}");
            let inline = matches!(owned, OwnedKey::Inline { .. });
            assert_eq!(inline, len <= INLINE_KEY_BYTES, "length {len}");
        }
        assert_eq!(std::mem::size_of::<OwnedKey>(), 48);
    }

    /// A key made of two parts is their bytes in order, in place or on the heap as a copy of
    /// them would be, and equals, hashes and borrows as those bytes whichever form it has.
    #[test]
    fn concatenated_keys_are_their_parts_bytes() {
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        let bytes: Vec<u8> = (0..=100u8).collect();
        let hasher = RandomState::new();
        for len in [0, 8, INLINE_KEY_BYTES, INLINE_KEY_BYTES + 1, 100] {
            let whole = &bytes[..len];
            for split in [0, len / 2, len] {
                let key = OwnedKey::concat(&whole[..split], &whole[split..]);
                assert_eq!(key.as_bytes(), whole, "length {len}, split {split}");
                let inline = matches!(key, OwnedKey::Inline { .. });
                assert_eq!(inline, len <= INLINE_KEY_BYTES, "length {len}");
                assert_eq!(hasher.hash_one(&key), hasher.hash_one(whole));
                let borrowed: &[u8] = std::borrow::Borrow::borrow(&key);
                assert_eq!(borrowed, whole);
            }
        }
        // The same bytes in either form are one key.
        let heap = OwnedKey::Heap(b"user_1".to_vec());
        assert_eq!(heap, OwnedKey::copy_of(b"user_1"));
        assert_ne!(heap, OwnedKey::copy_of(b"user_2"));
    }

    #[test]
    fn string_and_int_keys_differ() {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        encode_key(&[Value::String("1".into())], &mut a);
        encode_key(&[Value::Int64(1)], &mut b);
        assert_ne!(a, b);
    }
}
