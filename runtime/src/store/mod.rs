//! The state directory: uploaded components by content hash and each
//! function's revision history, written crash-safely; and the embedded
//! database the durable queues share ([`sqlite`]).

mod files;
mod records;
pub mod sqlite;

pub use files::{Leftovers, TEMP_PREFIX, remove_leftover_temps, write_atomic};
pub use records::{History, Revision, StateDir};
