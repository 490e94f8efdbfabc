//! A key's memo: the encoded window values of its last read, for that read's window end and
//! aggregates. Windows move only at tile boundaries, so until the end moves or the key is
//! written, every read would merge the same partials again: a read whose end and aggregates
//! match copies the memo instead of walking the tiles.
//!
//! Readers share the tiles (the partition's read lock) and publish the memo through an
//! epoch-reclaimed pointer (`crossbeam-epoch`): a reader replacing it retires the old one, which
//! is freed once no reader pinned before the swap can still be copying it. The writer has the
//! tiles to itself (`&mut`) and clears the memo before every change, freeing it at once: no
//! reader can be holding it, so a memo never outlives the tiles it was computed from.
//!
//! A memo is one allocation: its window end, its aggregates and then its payload, so that a
//! read of it is one dependent load (which `prefetch` starts early), not two.

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::atomic::Ordering;

use crossbeam_epoch::{self as epoch, Atomic, Owned, Pointer, Shared};

use super::AggregateMask;
use crate::time::Micros;

/// What one read computed: for windows ending at `end` (8 bytes, little-endian), the
/// aggregates `wanted` (8 bytes), then their values encoded as a row (null for the others and
/// for empty windows). Bytes, behind crossbeam's length: a struct with a boxed payload would
/// be two allocations a memo and two dependent loads a read.
type Memo = [MaybeUninit<u8>];

/// The bytes before a memo's payload: its end and its aggregates.
const MEMO_HEADER: usize = 16;

/// A memo of `payload`, for windows ending at `end` with aggregates `wanted`.
fn new_memo(end: Micros, wanted: AggregateMask, payload: &[u8]) -> Owned<Memo> {
    let mut memo = Owned::<Memo>::init(MEMO_HEADER + payload.len());
    let (end, wanted) = (end.to_le_bytes(), wanted.bits().to_le_bytes());
    for (at, byte) in memo
        .iter_mut()
        .zip(end.iter().chain(&wanted).chain(payload))
    {
        at.write(*byte);
    }
    memo
}

/// A memo's payload, if it is for windows ending at `end` with aggregates `wanted`.
fn payload_of(memo: &Memo, end: Micros, wanted: AggregateMask) -> Option<&[u8]> {
    // SAFETY: `new_memo` wrote every byte before the memo was published.
    let bytes = unsafe { &*(memo as *const Memo as *const [u8]) };
    let (header, payload) = bytes.split_at(MEMO_HEADER);
    let word = |at: usize| header[at..at + 8].try_into().expect("8 bytes");
    (Micros::from_le_bytes(word(0)) == end && u64::from_le_bytes(word(8)) == wanted.bits())
        .then_some(payload)
}

/// A read's hold on the memos: the thread pinned at the first memo it reads, once a read
/// rather than once a key. A thread's outermost pin is a locked compare-and-swap, a full
/// barrier that also keeps the read's cache misses from overlapping, and every 128th runs a
/// collection that reads every thread's epoch. A read of plain rows only never pins.
#[derive(Default)]
pub struct MemoReads(Option<epoch::Guard>);

impl MemoReads {
    fn guard(&mut self) -> &epoch::Guard {
        self.0.get_or_insert_with(epoch::pin)
    }
}

/// One key's memo, or none. Derived state: a clone starts without one.
#[derive(Default)]
pub(super) struct MemoCell(Atomic<Memo>);

impl MemoCell {
    /// Appends the memoised payload for windows ending at `end` with aggregates `wanted` to
    /// `out`; false, appending nothing, if the memo is of another read (or there is none).
    pub fn copy_to(
        &self,
        end: Micros,
        wanted: AggregateMask,
        reads: &mut MemoReads,
        out: &mut Vec<u8>,
    ) -> bool {
        // Acquire pairs with the publishing swap's release: the memo is seen whole.
        let memo = self.0.load(Ordering::Acquire, reads.guard());
        // SAFETY: the memo was published whole and, being pinned, this reader keeps it from
        // being freed until `reads` drops (a writer's `clear` needs `&mut self`, which cannot
        // coexist with this borrow).
        match unsafe { memo.as_ref() }.and_then(|memo| payload_of(memo, end, wanted)) {
            Some(payload) => {
                out.extend_from_slice(payload);
                true
            }
            None => false,
        }
    }

    /// Starts loading the memo, if there is one (see `store::prefetch`): its first two cache
    /// lines, which hold the payloads of most keys.
    pub fn prefetch(&self, reads: &mut MemoReads) {
        let memo = self.0.load(Ordering::Acquire, reads.guard());
        if !memo.is_null() {
            let at = memo.into_usize();
            crate::store::prefetch::prefetch(at as *const u8);
            crate::store::prefetch::prefetch(at.wrapping_add(64) as *const u8);
        }
    }

    /// Makes `payload` the memo for windows ending at `end` with aggregates `wanted`. The
    /// caller computed it from the tiles it holds shared, so no write came in between.
    pub fn publish(
        &self,
        end: Micros,
        wanted: AggregateMask,
        reads: &mut MemoReads,
        payload: &[u8],
    ) {
        let memo = new_memo(end, wanted, payload);
        let guard = reads.guard();
        let old = self.0.swap(memo, Ordering::AcqRel, guard);
        if !old.is_null() {
            // SAFETY: unlinked by the swap; readers that loaded it are pinned, and the epoch
            // frees it only after they have all unpinned.
            unsafe { guard.defer_destroy(old) };
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        // SAFETY: only compared with null, never dereferenced.
        self.0
            .load(Ordering::Acquire, unsafe { epoch::unprotected() })
            .is_null()
    }

    /// Drops the memo, before the tiles change.
    pub fn clear(&mut self) {
        // SAFETY: `&mut self`: no reader holds the tiles, so none is reading the memo.
        let guard = unsafe { epoch::unprotected() };
        let memo = self.0.load(Ordering::Relaxed, guard);
        if !memo.is_null() {
            self.0.store(Shared::null(), Ordering::Relaxed);
            // SAFETY: unlinked above, and no reader holds it (see above).
            drop(unsafe { memo.into_owned() });
        }
    }
}

impl Drop for MemoCell {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Clone for MemoCell {
    fn clone(&self) -> MemoCell {
        MemoCell::default()
    }
}

impl fmt::Debug for MemoCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoCell")
    }
}
