//! Every instance's writable `/tmp`, in memory, as the Cloud Run execution
//! environment gives one: a fresh empty tree per instance, dropped with it,
//! whose bytes count against the function's `memory` limit together with
//! the instance's linear memories (see `sandbox::memory`). A write past the
//! limit fails in the guest with `insufficient-space` (ENOSPC).
//!
//! Wisp links its own wasi:filesystem `types` and `preopens`, both 0.2 and
//! 0.3, over wasmtime-wasi's, handing every descriptor that is not `/tmp`
//! (the function's read-only `dirs`) to wasmtime-wasi unchanged. The tree
//! (`tree`, `file`) and the operations on an open `/tmp` descriptor
//! (`descriptor`) are shared; `p2` and `p3` adapt them to each version.

mod descriptor;
mod file;
mod p2;
mod p3;
mod tree;

use wasmtime::component::Linker;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem as fs2;
use wasmtime_wasi::p3::bindings::filesystem as fs3;

pub use descriptor::{TMP, WispFs, WispFsView};
pub use tree::Tree;

/// Links wasi:filesystem@0.2 and @0.3 `types` and `preopens` in place of
/// the ones `wasmtime_wasi::p2::add_to_linker_async` and
/// `wasmtime_wasi::p3::add_to_linker` linked; `view` gives an instance's
/// view of its filesystem, and `T`'s `WasiFilesystemView` wasmtime-wasi's
/// part of it (the same context and table).
pub fn add_to_linker<T: WasiFilesystemView + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> WispFsView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = fs2::types::add_to_linker::<T, WispFs>(linker, view)
        .and_then(|()| fs2::preopens::add_to_linker::<T, WispFs>(linker, view))
        .and_then(|()| fs3::types::add_to_linker::<T, WispFs>(linker, view))
        .and_then(|()| fs3::preopens::add_to_linker::<T, WispFs>(linker, view));
    linker.allow_shadowing(false);
    linked
}
