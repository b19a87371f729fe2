//! Pre-initializing a WASI preview-1 command module (ruby.wasm's driver
//! exports `wizer-initialize`): Wizer runs on the core module with
//! wasmtime-wasi's preview-1 host, before the module is adapted into a
//! component. Adapting first would not do: the adapter keeps its WASI
//! handles (stdio, preopened directories) in its own memory, which the
//! snapshot would freeze with handles of a store that is gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use wasmtime::{Linker, Store, UpdateDeadline};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wizer::Wizer;

use super::{INIT_EXPORT, Init, cached, outcome, snapshot_key};
use crate::deploy::artifact::{Artifacts, engine_fingerprint};
use crate::deploy::command::core_exports;
use crate::deploy::component;
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::{HostConfig, MemoryLimiter};
use crate::sandbox::tag::InstanceTag;
use crate::telemetry::ids::InstanceId;

/// Whether the core module `bytes` exports `wizer-initialize`.
pub fn wants_init(bytes: &[u8]) -> Result<bool> {
    Ok(core_exports(bytes)?.iter().any(|e| e == INIT_EXPORT))
}

/// A store's data while a module's init runs.
struct InitHost {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// The pre-initialized form of the module `bytes` (from the artifact cache,
/// or made now): `wizer-initialize` has run and is no longer exported, so
/// the module's `_start` finds the work done.
pub async fn snapshot(
    artifacts: &Artifacts,
    engine: &WispEngine,
    bytes: &[u8],
    init: &Init<'_>,
) -> Result<Arc<[u8]>> {
    let key = snapshot_key(
        &component::digest(bytes),
        &init.observed,
        &engine_fingerprint(&engine.engine),
    );
    cached(
        artifacts,
        &key,
        init,
        run_init(engine, bytes, init.host, init.timeout),
    )
    .await
}

async fn run_init(
    engine: &WispEngine,
    bytes: &[u8],
    host: &HostConfig,
    timeout: Duration,
) -> Result<Vec<u8>> {
    let output = Arc::new(Mutex::new(String::new()));
    let tag = InstanceTag::new(host.function.clone(), InstanceId(0), false);
    // Init gets no state (see `Host::capturing`).
    let mut wasi = host.wasi(tag.clone(), None, Some(output.clone()), &Default::default())?;
    let mut store = Store::new(
        &engine.engine,
        InitHost {
            wasi: wasi.build_p1(),
            limiter: MemoryLimiter::new(host.memory_limit, tag),
        },
    );
    store.limiter(|host| &mut host.limiter);
    // Yield at every epoch tick, so the timeout below can stop a busy init.
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    let mut linker = Linker::new(&engine.engine);
    p1::add_to_linker_async(&mut linker, |host: &mut InitHost| &mut host.wasi)?;
    let mut wizer = Wizer::new();
    wizer.init_func(INIT_EXPORT).keep_init_func(false);
    let run = wizer.run(&mut store, bytes, async |store, module| {
        linker.instantiate_async(store, module).await
    });
    let result = tokio::time::timeout(timeout, run).await;
    drop(store);
    outcome(result, &output, timeout)
}
