//! `[server.pool]`: the process-wide ceilings of wasmtime's pooling allocator.

use serde::{Deserialize, Serialize};

use crate::config::ByteSize;

/// Server-wide sizing of the instance pool (`[server.pool]` in the manifest).
/// The pool reserves address space for every slot up front, so these are the
/// hard ceilings of the whole process, shared by all functions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSettings {
    /// Component instances alive at once across all functions. Each
    /// in-flight invocation holds one; beyond this requests get 503.
    pub instances: u32,
    /// Core module instances. A Rust component instantiates ~3 (main module,
    /// adapter shims), JS and Python ones more, hence 5x `instances`.
    pub core_instances: u32,
    /// Linear memories. Most components have one; the adapter may add one.
    pub memories: u32,
    /// Tables: the main module's plus the shim modules' indirect-call tables.
    pub tables: u32,
    /// Largest linear memory any instance may grow to. A function whose
    /// `memory` limit exceeds it is refused at load rather than failing later.
    pub max_memory: ByteSize,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            instances: 1000,
            core_instances: 5000,
            memories: 2000,
            tables: 4000,
            max_memory: ByteSize::mib(1024),
        }
    }
}
