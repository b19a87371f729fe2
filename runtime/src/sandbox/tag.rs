//! What identifies a running instance in logs: its function, its own id and
//! the invocation it serves. Guest output and limit reports are tagged with
//! it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::sandbox::cpu::EPOCH_TICK;
use crate::sandbox::memory::MemoryBudget;
use crate::telemetry::ids::{InstanceId, InvocationId};

/// Which function, instance and invocation an instance is serving; set when
/// a request starts on it.
pub struct InstanceTag {
    pub function: Arc<str>,
    pub instance: InstanceId,
    /// The instance serves several requests at once (`concurrency > 1`), so
    /// its output cannot be attributed to one invocation: it is tagged with
    /// the instance id alone.
    pub shared: bool,
    invocation: AtomicU64,
    /// A memory growth was refused: the guest hit its `memory` limit.
    memory_exceeded: AtomicBool,
    /// The guest was stopped at its `cpu_time` limit.
    cpu_exceeded: AtomicBool,
    /// The trace context of the invocation that started on it last, when
    /// traces are on: the parent of its outbound calls' spans.
    trace: Mutex<Option<opentelemetry::Context>>,
    /// Epoch ticks charged over the instance's life (see `sandbox::cpu`),
    /// readable outside the store for cost metering.
    cpu_ticks: AtomicU64,
    /// The instance's memory budget, for its high-water mark.
    memory: OnceLock<Arc<MemoryBudget>>,
    /// Its output is not logged: it is redoing the init a snapshot would
    /// have given it, whose output was logged once, at deploy.
    quiet: AtomicBool,
}

impl InstanceTag {
    pub fn new(function: Arc<str>, instance: InstanceId, shared: bool) -> Arc<Self> {
        Arc::new(InstanceTag {
            function,
            instance,
            shared,
            invocation: AtomicU64::new(0),
            memory_exceeded: AtomicBool::new(false),
            cpu_exceeded: AtomicBool::new(false),
            trace: Mutex::new(None),
            cpu_ticks: AtomicU64::new(0),
            memory: OnceLock::new(),
            quiet: AtomicBool::new(false),
        })
    }

    pub fn set_invocation(&self, id: InvocationId) {
        self.invocation.store(id.0, Ordering::Relaxed);
    }

    /// The invocation that started on it last, also on a shared instance.
    pub fn latest_invocation(&self) -> InvocationId {
        InvocationId(self.invocation.load(Ordering::Relaxed))
    }

    /// The invocation its output belongs to; `None` while the instance is
    /// shared by concurrent requests.
    pub fn invocation(&self) -> Option<InvocationId> {
        (!self.shared).then(|| InvocationId(self.invocation.load(Ordering::Relaxed)))
    }

    pub fn set_trace(&self, cx: opentelemetry::Context) {
        *self.trace.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx);
    }

    /// The trace context of the invocation that started on it last (on a
    /// shared instance, possibly not the one making a call).
    pub fn trace(&self) -> Option<opentelemetry::Context> {
        self.trace.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_memory_exceeded(&self) {
        self.memory_exceeded.store(true, Ordering::Relaxed);
    }

    pub fn memory_exceeded(&self) -> bool {
        self.memory_exceeded.load(Ordering::Relaxed)
    }

    pub fn set_cpu_exceeded(&self) {
        self.cpu_exceeded.store(true, Ordering::Relaxed);
    }

    pub fn cpu_exceeded(&self) -> bool {
        self.cpu_exceeded.load(Ordering::Relaxed)
    }

    /// The guest was charged a tick of CPU time.
    pub fn charge_tick(&self) {
        self.cpu_ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// CPU time charged over the instance's life, in ticks.
    pub fn cpu_ticks(&self) -> u64 {
        self.cpu_ticks.load(Ordering::Relaxed)
    }

    /// Stops (`true`) or resumes logging the instance's output.
    pub fn set_quiet(&self, quiet: bool) {
        self.quiet.store(quiet, Ordering::Relaxed);
    }

    pub fn quiet(&self) -> bool {
        self.quiet.load(Ordering::Relaxed)
    }

    /// Watches `budget` for [`InstanceTag::peak_memory`].
    pub fn set_memory(&self, budget: Arc<MemoryBudget>) {
        let _ = self.memory.set(budget);
    }

    /// The most memory (linear memories and `/tmp`) the instance has held.
    pub fn peak_memory(&self) -> u64 {
        self.memory.get().map_or(0, |b| b.peak() as u64)
    }
}

/// CPU time of `ticks` epoch ticks.
pub fn ticks_to_time(ticks: u64) -> Duration {
    EPOCH_TICK * u32::try_from(ticks).unwrap_or(u32::MAX)
}

/// The invocation field of a log line: the invocation id, or `-` when the
/// line belongs to a shared instance (its `instance` field says which).
pub struct InvocationField(pub Option<InvocationId>);

impl fmt::Display for InvocationField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => id.fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_instances_name_no_invocation() {
        let tag = InstanceTag::new("f".into(), InstanceId(1), true);
        tag.set_invocation(InvocationId(7));
        assert_eq!(InvocationField(tag.invocation()).to_string(), "-");
        let tag = InstanceTag::new("f".into(), InstanceId(1), false);
        tag.set_invocation(InvocationId(7));
        assert_eq!(
            InvocationField(tag.invocation()).to_string(),
            "0000000000000007"
        );
    }
}
