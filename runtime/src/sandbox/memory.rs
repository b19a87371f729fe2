//! An instance's memory budget: its linear memories plus the bytes its
//! in-memory `/tmp` holds, together within the function's `memory` limit.
//! The [`MemoryLimiter`] charges linear memory as it grows; `/tmp` files
//! charge their contents as they grow (see `sandbox::tmpfs`), so whichever
//! grows second sees what the other holds.

use std::sync::{Arc, Mutex};

use wasmtime::ResourceLimiter;

use crate::sandbox::tag::InstanceTag;

/// What one instance holds, shared by its limiter and its `/tmp`.
pub struct MemoryBudget {
    limit: usize,
    used: Mutex<Usage>,
}

#[derive(Default)]
struct Usage {
    /// The sum of the instance's linear memories.
    linear: usize,
    /// Bytes `/tmp` holds (file contents and a per-node allowance).
    files: usize,
    /// The most `linear + files` has been.
    peak: usize,
}

impl Usage {
    fn total(&self) -> usize {
        self.linear.saturating_add(self.files)
    }

    fn note_peak(&mut self) {
        self.peak = self.peak.max(self.total());
    }
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(MemoryBudget {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            used: Mutex::default(),
        })
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        // Nothing panics while holding the lock; a poisoned one is still sound.
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A linear memory grows from `current` to `desired` bytes; false when
    /// that would pass the limit.
    fn grow_linear(&self, current: usize, desired: usize) -> bool {
        let mut used = self.usage();
        let linear = used.linear - current.min(used.linear) + desired;
        if linear.saturating_add(used.files) > self.limit {
            return false;
        }
        used.linear = linear;
        used.note_peak();
        true
    }

    /// Takes `bytes` for `/tmp`; false (and nothing taken) when that would
    /// pass the limit.
    pub fn reserve(&self, bytes: usize) -> bool {
        let mut used = self.usage();
        if used.total().saturating_add(bytes) > self.limit {
            return false;
        }
        used.files += bytes;
        used.note_peak();
        true
    }

    /// Gives back `bytes` [`reserve`](Self::reserve)d for `/tmp`.
    pub fn release(&self, bytes: usize) {
        let mut used = self.usage();
        used.files = used.files.saturating_sub(bytes);
    }

    /// Bytes `/tmp` holds now.
    pub fn files(&self) -> usize {
        self.usage().files
    }

    /// The most the instance has held at once (linear memory never
    /// shrinks; `/tmp` may have).
    pub fn peak(&self) -> usize {
        self.usage().peak
    }
}

/// Caps the sum of an instance's linear memories and its `/tmp`. Growth past
/// the cap fails inside the guest (`memory.grow` returns -1), which Rust and
/// C guests turn into an abort: a trap, then 500, never harm to the host.
pub struct MemoryLimiter {
    budget: Arc<MemoryBudget>,
    /// Told when a growth is refused, so the failure can be named (the
    /// guest's own trap that follows says only `unreachable`).
    tag: Arc<InstanceTag>,
}

impl MemoryLimiter {
    pub fn new(budget: Arc<MemoryBudget>, tag: Arc<InstanceTag>) -> Self {
        MemoryLimiter { budget, tag }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if !self.budget.grow_linear(current, desired) {
            self.tag.set_memory_exceeded();
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag() -> Arc<InstanceTag> {
        InstanceTag::new("f".into(), crate::telemetry::ids::InstanceId(1), false)
    }

    #[test]
    fn limiter_sums_memories_and_flags_refusals() {
        let tag = tag();
        let mut l = MemoryLimiter::new(MemoryBudget::new(100), tag.clone());
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap());
        assert!(!tag.memory_exceeded());
        assert!(!l.memory_growing(60, 80, None).unwrap());
        assert!(tag.memory_exceeded());
        assert!(l.memory_growing(30, 40, None).unwrap());
    }

    #[test]
    fn files_and_linear_memory_share_the_limit() {
        let budget = MemoryBudget::new(100);
        let mut l = MemoryLimiter::new(budget.clone(), tag());
        assert!(budget.reserve(70));
        // Growth after /tmp grew sees the /tmp bytes.
        assert!(!l.memory_growing(0, 40, None).unwrap());
        assert!(l.memory_growing(0, 30, None).unwrap());
        // And /tmp sees the memory.
        assert!(!budget.reserve(1));
        budget.release(20);
        assert_eq!(budget.files(), 50);
        assert!(budget.reserve(20));
        assert!(!budget.reserve(1));
        assert_eq!(budget.peak(), 100);
    }
}
