//! Pre-initialization: a component that exports `wizer-initialize` has that
//! function run once, at deploy, with the same WASI the function gets; the
//! resulting memory and globals become a new component (Wizer), and every
//! invocation instantiates from that snapshot instead of redoing the work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use wasmtime::component::Component;
use wasmtime_wizer::Wizer;

use crate::config::FunctionSpec;
use crate::deploy::component;
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::{Host, HostConfig, new_store};
use crate::sandbox::tag::InstanceTag;
use crate::telemetry::ids::InstanceId;

/// The export Wizer calls, as the SDK's init hook and `wasmtime wizer` name it.
pub const INIT_EXPORT: &str = "wizer-initialize";

/// Whether `component` asks to be pre-initialized.
pub fn wants_init(component: &Component) -> bool {
    component.get_export(None, INIT_EXPORT).is_some()
}

/// Cache key of a snapshot: everything init can observe — the component,
/// the environment and capabilities it ran with, and the engine.
pub fn snapshot_key(
    component_digest: &str,
    spec: &FunctionSpec,
    engine_fingerprint: &str,
) -> String {
    let observed = serde_json::json!({
        "format": 1,
        "component": component_digest,
        "env": spec.env,
        "allowed_outbound_hosts": spec.allowed_outbound_hosts,
        "memory": spec.memory,
        "dirs": spec.dirs,
        "engine": engine_fingerprint,
    });
    component::digest(observed.to_string().as_bytes())
}

/// Pre-initializes `bytes` with `env` and default limits; `None` when the
/// component has no `wizer-initialize` export.
pub async fn preinitialize(
    engine: &WispEngine,
    bytes: &[u8],
    env: &[(String, String)],
) -> Result<Option<Vec<u8>>> {
    let host = HostConfig {
        env: env.to_vec(),
        ..HostConfig::bare("preinit", engine, engine.pool.max_memory.bytes())
    };
    let compiled = component::compile(&engine.engine, bytes)?;
    if !wants_init(&compiled) {
        return Ok(None);
    }
    run_init(engine, bytes, &host, Duration::from_secs(60))
        .await
        .map(Some)
}

/// Runs the init export under `timeout` and returns the snapshot component.
/// A trap or timeout is an error carrying what the guest printed.
pub async fn run_init(
    engine: &WispEngine,
    bytes: &[u8],
    host: &HostConfig,
    timeout: Duration,
) -> Result<Vec<u8>> {
    let output = Arc::new(Mutex::new(String::new()));
    // Init runs outside any invocation; its output goes to the deploy error.
    let tag = InstanceTag::new(host.function.clone(), InstanceId(0), false);
    let mut store = new_store(&engine.engine, Host::capturing(host, tag, output.clone())?);
    let mut wizer = Wizer::new();
    wizer.init_func(INIT_EXPORT).keep_init_func(true);
    let linker = &engine.linker;
    let run = wizer.run_component(&mut store, bytes, async |store, component| {
        linker.instantiate_async(store, component).await
    });
    let result = tokio::time::timeout(timeout, run).await;
    drop(store);
    let printed = output.lock().map(|s| s.clone()).unwrap_or_default();
    let shown = if printed.is_empty() {
        "(the guest printed nothing)".to_string()
    } else {
        printed
    };
    match result {
        Ok(Ok((snapshot, _))) => Ok(snapshot),
        Ok(Err(e)) => bail!("its `{INIT_EXPORT}` failed: {e:#}\nguest output:\n{shown}"),
        Err(_) => bail!(
            "its `{INIT_EXPORT}` did not finish within the function's timeout of {}\nguest output:\n{shown}",
            crate::config::Span(timeout)
        ),
    }
}
