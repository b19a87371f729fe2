//! The init hook: code that runs once per instance before the first request.
//!
//! Wisp pre-initializes components that export `wizer-initialize`: it runs
//! the export once at deploy time and snapshots the instance's memory, so
//! every request starts from the initialized state. The snapshot is taken
//! in a different store than the ones serving requests, which is why the
//! export also clears WASI state cached during init (see `wizer_initialize`).
//! Other hosts never call the export, so `serve` runs the hook lazily.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the hook ran in this instance (or in the snapshot it came from).
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// Runs `init` unless it already ran in this instance.
#[doc(hidden)]
pub fn ensure_initialized(init: Option<fn()>) {
    // Instances are single-threaded, so swap is enough; setting the flag
    // first also keeps a hook that re-enters the handler from recursing.
    if !INITIALIZED.swap(true, Ordering::SeqCst)
        && let Some(init) = init
    {
        init();
    }
}

/// Runs a command's init hook unless the snapshot it started from already
/// ran it: the first line of `main` in a command that uses [`command_init!`]
/// (on Wisp with snapshots the hook ran at deploy; elsewhere it runs now).
///
/// [`command_init!`]: crate::command_init
pub fn init_once(init: fn()) {
    ensure_initialized(Some(init));
}

/// The `wizer-initialize` export: run the hook, then forget everything WASI
/// handed out during it, because those handles belong to the store that is
/// about to be thrown away.
#[doc(hidden)]
pub fn wizer_initialize(init: Option<fn()>) {
    ensure_initialized(init);
    // Output buffered during init would otherwise be replayed by every
    // instance made from the snapshot.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(target_arch = "wasm32")]
    crate::wasm::forget_wasi_state();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    static RUNS: AtomicU32 = AtomicU32::new(0);

    fn hook() {
        RUNS.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn hook_runs_once_whichever_path_comes_first() {
        wizer_initialize(Some(hook));
        ensure_initialized(Some(hook));
        ensure_initialized(Some(hook));
        assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    }
}
