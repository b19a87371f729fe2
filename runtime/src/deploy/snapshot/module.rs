//! Pre-initializing a WASI preview-1 command module (ruby.wasm's driver
//! exports `wizer-initialize`): Wizer runs on the core module with
//! wasmtime-wasi's preview-1 host, before the module is adapted into a
//! component. Adapting first would not do: the adapter keeps its WASI
//! handles (stdio, preopened directories) in its own memory, which the
//! snapshot would freeze with handles of a store that is gone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::Notify;
use wasmtime::component::Component;
use wasmtime::{Linker, Store, UpdateDeadline};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wizer::Wizer;

use super::{INIT_EXPORT, Init, compiled_snapshot, outcome, snapshot_key};
use crate::deploy::artifact::{Artifacts, engine_fingerprint};
use crate::deploy::command::{adapt, adapted_key, core_exports};
use crate::deploy::component;
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::HostConfig;
use crate::sandbox::memory::{MemoryBudget, MemoryLimiter};
use crate::sandbox::tag::InstanceTag;
use crate::sandbox::tmpfs::TMP;
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

/// The pre-initialized form of the module `bytes`, adapted into a component
/// and compiled, and its artifact key: from the artifact cache, or made now
/// (`wizer-initialize` has run and is no longer exported, so the module's
/// `_start` finds the work done). With its code cached, nothing is
/// pre-initialized, read, adapted or compiled.
pub async fn compiled(
    artifacts: &Artifacts,
    engine: &WispEngine,
    bytes: &[u8],
    init: &Init<'_>,
    label: &str,
) -> Result<(Component, String)> {
    let key = snapshot_key(
        &component::digest(bytes),
        &init.observed,
        &engine_fingerprint(&engine.engine),
    );
    let compiled_key = adapted_key(&key);
    let component = compiled_snapshot(
        artifacts,
        &key,
        &compiled_key,
        init,
        &format!("{label} (snapshot)"),
        run_init(engine, bytes, init.host, init.timeout),
        adapt,
    )
    .await?;
    Ok((component, compiled_key))
}

/// Runs the module's init under `timeout` and returns the snapshot module.
/// Wizer compiles the instrumented module first (~25 s of CPU for the
/// 30 MB ruby.wasm), so this runs on a blocking thread, and `timeout`
/// counts from instantiation: it limits the guest, not the compiler.
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
    // Instances get an in-memory `/tmp` after `dirs`, which the preview-1
    // host cannot serve; an empty scratch directory stands in, so wasi-libc
    // lists the same preopens in the same order at init as in every run
    // (it keeps the list it saw first, in the snapshot).
    let scratch = tempfile::tempdir()?;
    wasi.preopened_dir(scratch.path(), TMP, FsPerms::ReadWrite)?;
    let mut store = Store::new(
        &engine.engine,
        InitHost {
            wasi: wasi.build_p1(),
            limiter: MemoryLimiter::new(MemoryBudget::new(host.memory_limit), tag),
        },
    );
    store.limiter(|host| &mut host.limiter);
    // Yield at every epoch tick, so the timeout below can stop a busy init.
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    let mut linker = Linker::new(&engine.engine);
    p1::add_to_linker_async(&mut linker, |host: &mut InitHost| &mut host.wasi)?;
    let bytes = bytes.to_vec();
    let runtime = tokio::runtime::Handle::current();
    let result = tokio::task::spawn_blocking(move || {
        runtime.block_on(async {
            let instantiated = Notify::new();
            let mut wizer = Wizer::new();
            wizer.init_func(INIT_EXPORT).keep_init_func(false);
            let run = wizer.run(&mut store, &bytes, async |store, module| {
                instantiated.notify_one();
                linker.instantiate_async(store, module).await
            });
            tokio::pin!(run);
            tokio::select! {
                done = &mut run => Ok(done),
                () = instantiated.notified() => tokio::time::timeout(timeout, run).await,
            }
        })
    })
    .await?;
    outcome(result, &output, timeout)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use wasmparser::{Operator, Parser, Payload};

    use super::*;
    use crate::config::ByteSize;
    use crate::deploy::snapshot::Observed;

    /// A preview-1 command whose `wizer-initialize` runs `init`.
    fn command(init: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module
                 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 (global $booted (mut i32) (i32.const 0))
                 (func (export "wizer-initialize") {init})
                 (func (export "_start") (call $exit (global.get $booted))))"#
        ))
        .unwrap()
    }

    /// What a deploy makes of `bytes`: its snapshot, adapted and compiled.
    async fn compiled_of(bytes: &[u8], timeout: Duration) -> Result<Component> {
        let engine = WispEngine::for_tests();
        let metrics = crate::telemetry::metrics::Metrics::new();
        let artifacts = Artifacts::new(
            engine.engine.clone(),
            None,
            1 << 30,
            metrics.artifact_cache.clone(),
        )?;
        let host = HostConfig::bare("t", &engine, 1 << 26);
        let (env, dirs) = (BTreeMap::new(), BTreeMap::new());
        let init = Init {
            name: "t",
            observed: Observed {
                env: &env,
                allowed_outbound_hosts: &[],
                memory: ByteSize(1 << 26),
                dirs: &dirs,
            },
            host: &host,
            timeout,
        };
        compiled(&artifacts, &engine, bytes, &init, "t")
            .await
            .map(|(component, _)| component)
    }

    /// The snapshot module init makes of `bytes`.
    async fn snapshot_of(bytes: &[u8]) -> Vec<u8> {
        let engine = WispEngine::for_tests();
        let host = HostConfig::bare("t", &engine, 1 << 26);
        run_init(&engine, bytes, &host, Duration::from_secs(30))
            .await
            .unwrap()
    }

    /// The initial values of the module's globals.
    fn globals(bytes: &[u8]) -> Vec<i32> {
        let mut values = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            if let Payload::GlobalSection(section) = payload.unwrap() {
                for global in section {
                    let mut ops = global.unwrap().init_expr.get_operators_reader();
                    if let Operator::I32Const { value } = ops.read().unwrap() {
                        values.push(value);
                    }
                }
            }
        }
        values
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn init_runs_on_the_core_module_and_leaves_the_export_out() {
        let module = command("(global.set $booted (i32.const 7))");
        assert!(wants_init(&module).unwrap());
        let snap = snapshot_of(&module).await;
        assert!(!wants_init(&snap).unwrap());
        assert!(globals(&snap).contains(&7), "{:?}", globals(&snap));
        compiled_of(&module, Duration::from_secs(30)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trap_or_a_timeout_in_init_refuses_the_deploy() {
        let trap = compiled_of(&command("(unreachable)"), Duration::from_secs(30))
            .await
            .unwrap_err();
        let trap = format!("{trap:#}");
        assert!(
            trap.contains("pre-initialization refused the deploy")
                && trap.contains("`wizer-initialize` failed"),
            "{trap}"
        );
        let stuck = compiled_of(&command("(loop (br 0))"), Duration::from_millis(300))
            .await
            .unwrap_err();
        let stuck = format!("{stuck:#}");
        assert!(stuck.contains("did not finish within"), "{stuck}");
    }
}
