//! What the registry keeps, and for how long: each history holds at most
//! `keep_revisions` revisions (the current one always among them); a stored
//! component no revision references is removed; memory keeps the component
//! bytes and compiled code of live revisions only. Runs after every deploy,
//! rollback and delete, and once at start.
//!
//! Order makes it crash-safe: a history is saved without a revision before
//! that revision's component is removed, so no stored history ever
//! references a missing component; a crash in between only leaves a
//! component that the next collection removes.

use std::collections::HashSet;
use std::time::Duration;

use super::{Registry, digest_of};
use crate::store::History;

/// How long an uploaded component that no revision references yet is kept
/// for the deploy that will use it.
const UPLOAD_GRACE: Duration = Duration::from_secs(3600);

/// Drops the oldest revisions beyond `keep` (at least 1), never the current
/// one; returns whether any went.
pub(super) fn trim(history: &mut History, keep: usize) -> bool {
    if history.revisions.len() <= keep {
        return false;
    }
    let mut others: Vec<u64> = history
        .revisions
        .iter()
        .map(|r| r.number)
        .filter(|&n| n != history.current)
        .collect();
    others.sort_unstable_by(|a, b| b.cmp(a));
    others.truncate(keep.saturating_sub(1));
    history
        .revisions
        .retain(|r| r.number == history.current || others.contains(&r.number));
    true
}

impl Registry {
    /// Once at start, after restore and the manifest: trims histories written
    /// under a larger `keep_revisions`, forgets the uploads made while
    /// starting (deployed by now, or not needed), and collects.
    pub async fn settle(&self) {
        let _changes = self.changes.lock().await;
        // Nothing else runs yet: holding the maps while saving is fine.
        for mut f in self.functions.iter_mut() {
            let mut history = f.history.clone();
            if trim(&mut history, self.keep_revisions) && self.save_trimmed(&history) {
                f.history = history;
            }
        }
        for mut f in self.failed.iter_mut() {
            if let Some(mut history) = f.history.clone()
                && trim(&mut history, self.keep_revisions)
                && self.save_trimmed(&history)
            {
                f.history = Some(history);
            }
        }
        self.uploads.clear();
        self.collect_garbage();
    }

    /// Saves a trimmed history; on failure the untrimmed one stays, in
    /// memory as on disk.
    fn save_trimmed(&self, history: &History) -> bool {
        let Some(state) = &self.state else {
            return true;
        };
        match state.save(history) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(function = %history.name, "could not trim the history: {e:#}");
                false
            }
        }
    }

    /// Removes stored components no revision references and lets go of the
    /// memory no live revision uses. Called with the change lock held.
    /// Failures are logged: the change that ran it is already committed.
    pub(super) fn collect_garbage(&self) {
        let mut referenced = HashSet::new();
        let mut every_history_known = true;
        let mut add = |history: &History| {
            for r in &history.revisions {
                if let Ok(digest) = digest_of(&r.spec.component) {
                    referenced.insert(digest.to_string());
                }
            }
        };
        for f in self.functions.iter() {
            add(&f.history);
        }
        for f in self.failed.iter() {
            match &f.history {
                Some(history) => add(history),
                None => every_history_known = false,
            }
        }
        self.uploads.retain(|_, at| at.elapsed() < UPLOAD_GRACE);
        let pending: HashSet<String> = self.uploads.iter().map(|u| u.key().clone()).collect();

        if let Some(state) = &self.state {
            if every_history_known {
                let unused = state.component_digests().map(|stored| {
                    stored
                        .into_iter()
                        .filter(|d| !referenced.contains(d) && !pending.contains(d))
                        .collect::<Vec<_>>()
                });
                match unused.and_then(|unused| {
                    state.remove_components(&unused)?;
                    Ok(unused.len())
                }) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("removed {n} component(s) no revision uses"),
                    Err(e) => tracing::warn!("could not remove unused components: {e:#}"),
                }
            } else {
                tracing::warn!(
                    "keeping every stored component: an unreadable function record may \
                     reference some; deploy that function again or delete it"
                );
            }
        }

        let live: HashSet<String> = self
            .functions
            .iter()
            .filter_map(|f| digest_of(&f.live.spec.component).ok().map(str::to_string))
            .collect();
        // Without a state dir memory is the only copy, kept for rollbacks.
        let keep_referenced = self.state.is_none();
        self.components.retain(|d, _| {
            live.contains(d) || pending.contains(d) || (keep_referenced && referenced.contains(d))
        });
        let mut compiled = pending;
        for f in self.functions.iter() {
            compiled.extend(f.compiled.iter().cloned());
        }
        self.artifacts.retain(&compiled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FunctionSpec;
    use crate::store::Revision;

    fn history(numbers: &[u64], current: u64) -> History {
        History {
            name: "f".into(),
            current,
            revisions: numbers
                .iter()
                .map(|&number| Revision {
                    number,
                    spec: FunctionSpec::new("f", "sha256:00"),
                    created: 0,
                })
                .collect(),
            manifest_applied: None,
        }
    }

    fn numbers(h: &History) -> Vec<u64> {
        h.revisions.iter().map(|r| r.number).collect()
    }

    #[test]
    fn trimming_keeps_the_newest_and_always_the_current() {
        let mut h = history(&[1, 2, 3, 4, 5], 5);
        assert!(!trim(&mut h, 5));
        assert!(trim(&mut h, 2));
        assert_eq!(numbers(&h), [4, 5]);

        let mut h = history(&[1, 2, 3, 4, 5], 2);
        assert!(trim(&mut h, 3));
        assert_eq!(
            numbers(&h),
            [2, 4, 5],
            "the current one and the 2 newest others"
        );
        assert!(trim(&mut h, 1));
        assert_eq!(numbers(&h), [2], "rolled back to 2: it stays, alone");
    }
}
