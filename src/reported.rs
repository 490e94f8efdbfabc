//! Conditions a part of the process reports about itself (a journal refusing writes, a cluster
//! replica stalled) for `/health` and `/readyz` to read without asking the part, which may be
//! the one stuck. Each part owns its cell and is the only one to set it; a reader only loads it.
//! A condition is a fact about the disk or the cluster, not state a request changes.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

/// What is wrong with one part now, if anything. Clones share the cell: the part keeps one to
/// set, the handle `/health` reads keeps another.
#[derive(Clone, Debug, Default)]
pub struct Condition(Arc<ArcSwapOption<String>>);

impl Condition {
    /// Reports `reason`, or (`None`) that the part is well again; answers whether something
    /// was reported before.
    pub fn set(&self, reason: Option<String>) -> bool {
        self.0.swap(reason.map(Arc::new)).is_some()
    }

    /// What is reported now.
    pub fn reason(&self) -> Option<String> {
        self.0.load().as_deref().cloned()
    }
}

/// The conditions of parts that come and go (a cluster node's replicas start and stop with the
/// partitions it holds), by name: each part still owns and sets its own cell; the list only
/// says which cells there are. A part started again under a name takes the name's entry.
#[derive(Clone, Default)]
pub struct Conditions(Arc<ArcSwap<Vec<(String, Condition)>>>);

impl Conditions {
    /// A new cell for the part named `name`, listed in place of the name's earlier one.
    pub fn add(&self, name: &str) -> Condition {
        let condition = Condition::default();
        self.0.rcu(|listed| {
            let mut listed: Vec<_> = listed
                .iter()
                .filter(|(listed, _)| listed != name)
                .cloned()
                .collect();
            listed.push((name.to_string(), condition.clone()));
            listed
        });
        condition
    }

    /// Every condition reported now, `(name, reason)`, by name.
    pub fn reported(&self) -> Vec<(String, String)> {
        let mut reported: Vec<_> = self
            .0
            .load()
            .iter()
            .filter_map(|(name, condition)| Some((name.clone(), condition.reason()?)))
            .collect();
        reported.sort();
        reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_reports_and_clears_its_own_condition_and_a_restart_takes_its_name() {
        let conditions = Conditions::default();
        let first = conditions.add("s/a");
        let other = conditions.add("s/b");
        assert!(!first.set(Some("stalled".into())));
        assert_eq!(
            conditions.reported(),
            vec![("s/a".to_string(), "stalled".to_string())]
        );
        other.set(Some("ended".into()));
        // Started again under its name: the old cell is no longer listed.
        let again = conditions.add("s/a");
        assert_eq!(
            conditions.reported(),
            vec![("s/b".to_string(), "ended".to_string())]
        );
        again.set(Some("stalled again".into()));
        assert!(other.set(None));
        assert_eq!(
            conditions.reported(),
            vec![("s/a".to_string(), "stalled again".to_string())]
        );
    }
}
