//! The state directory: uploaded components by content hash and each
//! function's revision history, written crash-safely.

mod records;

pub use records::{History, Revision, StateDir, write_atomic};
