//! Every instance's writable `/tmp`, in memory, as the Cloud Run execution
//! environment gives one: a fresh empty tree per instance, dropped with it,
//! whose bytes count against the function's `memory` limit together with
//! the instance's linear memories (see `sandbox::memory`). A write past the
//! limit fails in the guest with `insufficient-space` (ENOSPC).
//!
//! Wisp links its own wasi:filesystem@0.2 `types` and `preopens` over
//! wasmtime-wasi's, handing every descriptor that is not `/tmp` (the
//! function's read-only `dirs`) to wasmtime-wasi unchanged. wasi 0.3 (p3)
//! guests keep wasmtime-wasi's filesystem: only their `dirs`, no `/tmp`.

mod file;
mod tree;
mod wasi;

use wasmtime::component::Linker;
use wasmtime_wasi::p2::bindings::filesystem::{preopens, types};

pub use tree::Tree;
pub use wasi::{TMP, WispFs, WispFsView};

/// Links wasi:filesystem@0.2 `types` and `preopens` in place of the ones
/// `wasmtime_wasi::p2::add_to_linker_async` linked; `view` gives an
/// instance's view of its filesystem.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> WispFsView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = types::add_to_linker::<T, WispFs>(linker, view)
        .and_then(|()| preopens::add_to_linker::<T, WispFs>(linker, view));
    linker.allow_shadowing(false);
    linked
}
