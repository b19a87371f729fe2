//! The ids and kinds every log line and metric of an invocation carries.

use std::fmt::{self, Write};

/// Identifies one invocation in logs, metrics and the response header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvocationId(pub u64);

impl InvocationId {
    /// The id as 16 lowercase hex digits, as it is displayed.
    pub fn hex(self) -> [u8; 16] {
        let mut digits = [0u8; 16];
        // 8 bytes always fit 16 digits.
        let _ = hex::encode_to_slice(self.0.to_be_bytes(), &mut digits);
        digits
    }
}

impl fmt::Display for InvocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hex()
            .iter()
            .try_for_each(|&digit| f.write_char(char::from(digit)))
    }
}

/// Identifies one instance (one `Store`) for as long as it lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceId(pub u64);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A random start keeps ids from repeating across restarts.
pub fn random_seed() -> u64 {
    std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8)
}

/// What caused an invocation: every log line and metric of an invocation
/// names its trigger. Jobs will add theirs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    Http,
    /// A delivery of a topic's event to a subscribed function.
    Event,
    /// A task of a queue.
    Task,
    /// A schedule's firing.
    Schedule,
    /// An attempt of a job's task.
    Job,
}

impl Trigger {
    pub const ALL: [Trigger; 5] = [
        Trigger::Http,
        Trigger::Event,
        Trigger::Task,
        Trigger::Schedule,
        Trigger::Job,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Http => "http",
            Trigger::Event => "event",
            Trigger::Task => "task",
            Trigger::Schedule => "schedule",
            Trigger::Job => "job",
        }
    }

    /// Position in [`Trigger::ALL`], for per-trigger counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fixed_width_hex() {
        for (id, spelled) in [
            (0, "0000000000000000"),
            (255, "00000000000000ff"),
            (0x0123_4567_89ab_cdef, "0123456789abcdef"),
            (u64::MAX, "ffffffffffffffff"),
        ] {
            assert_eq!(InvocationId(id).to_string(), spelled);
            assert_eq!(InvocationId(id).hex(), spelled.as_bytes());
        }
    }

    #[test]
    fn triggers_index_their_table() {
        for (i, t) in Trigger::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }
}
