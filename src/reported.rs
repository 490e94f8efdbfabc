//! Conditions a part of the process reports for `/health` and `/readyz` to read without asking
//! the part (a journal refusing writes, a cluster replica stalled): what is wrong, by what.
//! A condition is a fact about the disk or the cluster, not state a request changes; each
//! part sets and clears its own entries.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// What is wrong now, by the key of what it is wrong with.
pub struct Reported<K>(Mutex<BTreeMap<K, String>>);

impl<K: Ord + Clone> Reported<K> {
    pub const fn new() -> Reported<K> {
        Reported(Mutex::new(BTreeMap::new()))
    }

    /// Reports `reason` for `key`, or (`None`) that it is well again; answers whether it was
    /// reported before.
    pub fn set(&self, key: &K, reason: Option<String>) -> bool {
        let mut reported = self.lock();
        match reason {
            Some(reason) => reported.insert(key.clone(), reason),
            None => reported.remove(key),
        }
        .is_some()
    }

    /// Every condition reported now, `(key, reason)`.
    pub fn list(&self) -> Vec<(K, String)> {
        let reported = self.lock();
        reported
            .iter()
            .map(|(key, reason)| (key.clone(), reason.clone()))
            .collect()
    }

    /// A panic elsewhere while it was held leaves the map whole (each change is one call).
    fn lock(&self) -> MutexGuard<'_, BTreeMap<K, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Ord + Clone> Default for Reported<K> {
    fn default() -> Reported<K> {
        Reported::new()
    }
}
