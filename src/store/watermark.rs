//! Per-view watermarks: the latest event time each view has seen, across every shard.
//! `LATEST_EVENT_TIME` windows end at an aggregating view's watermark, so it must not depend on
//! which shard a key lands in (or on how many shards there are); every view's watermark is the
//! age the freshness metric reports.
//!
//! Each shard advances the watermarks of the events it applies (a `fetch_max`, so the order in
//! which shards apply does not matter); readers on any thread load them. An apply gives the
//! store a new set ([`Watermarks::carried`]) that shares the atomics of the views it keeps.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::registry::ViewId;
use crate::time::Micros;

/// No event seen yet.
const NONE: Micros = Micros::MIN;

/// One watermark per view id (index = view id).
#[derive(Debug)]
pub struct Watermarks(Vec<Arc<AtomicI64>>);

impl Watermarks {
    pub fn new(n_views: usize) -> Watermarks {
        Watermarks(
            (0..n_views)
                .map(|_| Arc::new(AtomicI64::new(NONE)))
                .collect(),
        )
    }

    /// Watermarks for `n_views` ids that share this set's atomics except for the views `cleared`
    /// says (and new ids), which start with no event seen.
    pub fn carried(&self, n_views: usize, cleared: impl Fn(ViewId) -> bool) -> Watermarks {
        Watermarks(
            (0..n_views)
                .map(|id| match self.0.get(id) {
                    Some(kept) if !cleared(id as ViewId) => Arc::clone(kept),
                    _ => Arc::new(AtomicI64::new(NONE)),
                })
                .collect(),
        )
    }

    /// Moves `view`'s watermark up to `event_time` (never down).
    pub fn advance(&self, view: ViewId, event_time: Micros) {
        if let Some(watermark) = self.0.get(view as usize) {
            watermark.fetch_max(event_time, Ordering::AcqRel);
        }
    }

    /// The latest event time `view` has seen in any shard, if any.
    pub fn get(&self, view: ViewId) -> Option<Micros> {
        self.0
            .get(view as usize)
            .map(|w| w.load(Ordering::Acquire))
            .filter(|&t| t != NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_only_forward_and_per_view() {
        let watermarks = Watermarks::new(2);
        assert_eq!(watermarks.get(0), None);
        watermarks.advance(0, 50);
        watermarks.advance(0, 20);
        assert_eq!(watermarks.get(0), Some(50));
        assert_eq!(watermarks.get(1), None);
        watermarks.advance(7, 1);
        assert_eq!(watermarks.get(7), None);
    }

    #[test]
    fn carried_watermarks_share_kept_views_and_reset_cleared_ones() {
        let watermarks = Watermarks::new(2);
        watermarks.advance(0, 50);
        watermarks.advance(1, 60);
        let carried = watermarks.carried(3, |id| id == 1);
        assert_eq!(carried.get(0), Some(50));
        assert_eq!(carried.get(1), None);
        assert_eq!(carried.get(2), None);
        // A shard still applying to the old set moves the kept view's watermark in both.
        watermarks.advance(0, 70);
        assert_eq!(carried.get(0), Some(70));
    }
}
