//! Pre-initialization: a component that exports `wizer-initialize` has that
//! function run once, at deploy, with the same WASI the function gets; the
//! resulting memory and globals become a new component (Wizer), and every
//! invocation instantiates from that snapshot instead of redoing the work.
//! HTTP functions, command functions and jobs all go through [`runnable`];
//! a preview-1 command module (ruby.wasm) is pre-initialized before it is
//! adapted ([`module`]).

pub mod module;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use wasmparser::{Chunk, Parser, Payload};
use wasmtime::component::Component;
use wasmtime_wizer::Wizer;

use crate::config::{ByteSize, FunctionSpec, JobSpec};
use crate::deploy::artifact::{Artifacts, engine_fingerprint};
use crate::deploy::component;
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::{Host, HostConfig, new_store};
use crate::sandbox::tag::InstanceTag;
use crate::telemetry::ids::InstanceId;

/// The export Wizer calls, as the SDK's init hook and `wasmtime wizer` name it.
pub const INIT_EXPORT: &str = "wizer-initialize";

/// Whether the component `bytes` asks to be pre-initialized: whether it
/// exports `wizer-initialize`. Reads only the outer component's sections
/// (nested modules and components are skipped, not parsed), so nothing is
/// compiled to find out.
pub fn wants_init(bytes: &[u8]) -> Result<bool> {
    let invalid = |e: wasmparser::BinaryReaderError| anyhow!("not a valid component: {e}");
    let mut parser = Parser::new(0);
    let mut rest = bytes;
    loop {
        let Chunk::Parsed { consumed, payload } = parser.parse(rest, true).map_err(invalid)? else {
            bail!("not a valid component: it ends early");
        };
        rest = &rest[consumed..];
        match payload {
            Payload::ComponentExportSection(exports) => {
                for export in exports {
                    if export.map_err(invalid)?.name.name == INIT_EXPORT {
                        return Ok(true);
                    }
                }
            }
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => {
                rest = rest
                    .get(unchecked_range.len()..)
                    .ok_or_else(|| anyhow!("not a valid component: a nested module ends early"))?;
            }
            Payload::End(_) => return Ok(false),
            _ => {}
        }
    }
}

/// The settings init can observe: a function's or a job's.
pub struct Observed<'a> {
    pub env: &'a BTreeMap<String, String>,
    pub allowed_outbound_hosts: &'a [String],
    pub memory: ByteSize,
    pub dirs: &'a BTreeMap<String, String>,
}

impl<'a> From<&'a FunctionSpec> for Observed<'a> {
    fn from(spec: &'a FunctionSpec) -> Self {
        Observed {
            env: &spec.env,
            allowed_outbound_hosts: &spec.allowed_outbound_hosts,
            memory: spec.memory,
            dirs: &spec.dirs,
        }
    }
}

impl<'a> From<&'a JobSpec> for Observed<'a> {
    fn from(spec: &'a JobSpec) -> Self {
        Observed {
            env: &spec.env,
            allowed_outbound_hosts: &spec.allowed_outbound_hosts,
            memory: spec.memory,
            dirs: &spec.dirs,
        }
    }
}

/// Cache key of a snapshot: everything init can observe — the component,
/// the environment and capabilities it ran with, and the engine.
pub fn snapshot_key(
    component_digest: &str,
    observed: &Observed<'_>,
    engine_fingerprint: &str,
) -> String {
    let observed = serde_json::json!({
        // 2: a preview-1 module's init lists `/tmp` among its preopens.
        "format": 2,
        "component": component_digest,
        "env": observed.env,
        "allowed_outbound_hosts": observed.allowed_outbound_hosts,
        "memory": observed.memory,
        "dirs": observed.dirs,
        "engine": engine_fingerprint,
    });
    component::digest(observed.to_string().as_bytes())
}

/// How to pre-initialize one function's or job's component.
pub struct Init<'a> {
    /// The function or job, for the log.
    pub name: &'a str,
    pub observed: Observed<'a>,
    /// The WASI init runs with: the one every instance gets.
    pub host: &'a HostConfig,
    /// How long init may run: the function's `timeout`, the job's
    /// `task_timeout`.
    pub timeout: Duration,
}

/// What instances are made from.
pub struct Runnable {
    pub component: Component,
    /// Made from a pre-initialized snapshot.
    pub snapshotted: bool,
    /// Digest of the bytes compiled into `component`.
    pub digest: String,
}

/// The component `bytes` (whose digest is `digest`; `label` names it in the
/// log) compiled or, when it
/// exports `wizer-initialize` and `init` is given, its snapshot compiled: from
/// the artifact cache, or made now by running init. With the snapshot's code
/// cached, neither the original nor the snapshot is read or compiled. A
/// failing init is an error that names it and carries what the guest printed.
pub async fn runnable(
    artifacts: &Artifacts,
    engine: &WispEngine,
    bytes: Arc<[u8]>,
    digest: &str,
    label: &str,
    init: Option<Init<'_>>,
) -> Result<Runnable> {
    let init = match init {
        Some(init) if wants_init(&bytes)? => init,
        _ => {
            return Ok(Runnable {
                component: artifacts.compile(bytes, digest, label).await?,
                snapshotted: false,
                digest: digest.to_string(),
            });
        }
    };
    let key = snapshot_key(digest, &init.observed, &engine_fingerprint(&engine.engine));
    let component = compiled_snapshot(
        artifacts,
        &key,
        &key,
        &init,
        &format!("{label} (snapshot)"),
        run_init(engine, &bytes, init.host, init.timeout),
        async |snapshot| Ok(snapshot),
    )
    .await
    // Init instantiates without the link check a deploy does first: for a
    // component that cannot link, that check's error says more.
    .map_err(|e| link_error(engine, &bytes).unwrap_or(e))?;
    Ok(Runnable {
        component,
        snapshotted: true,
        digest: key,
    })
}

/// Why `bytes` does not link, if it does not (compiled only after a failure).
fn link_error(engine: &WispEngine, bytes: &[u8]) -> Option<anyhow::Error> {
    let compiled = component::compile(&engine.engine, bytes).ok()?;
    component::link(engine, &compiled).err()
}

/// The compiled code of a snapshot, stored under `compiled_key`: from the
/// artifact cache when present (then init does not run and the snapshot is
/// not even read); else the snapshot stored under `key`, or the one `make`
/// makes (then stored), turned into a component by `finish` and compiled.
/// A failing init is an error that says it refused the deploy.
pub(crate) async fn compiled_snapshot(
    artifacts: &Artifacts,
    key: &str,
    compiled_key: &str,
    init: &Init<'_>,
    label: &str,
    make: impl Future<Output = Result<Vec<u8>>>,
    finish: impl AsyncFnOnce(Arc<[u8]>) -> Result<Arc<[u8]>>,
) -> Result<Component> {
    if let Some(compiled) = artifacts.load(compiled_key, label) {
        artifacts.snapshot_compiled();
        tracing::info!(
            function = init.name,
            "loaded snapshot from the artifact cache (compiled)"
        );
        return Ok(compiled);
    }
    let snapshot = cached(artifacts, key, init, make).await?;
    artifacts
        .compile_into(compiled_key, finish(snapshot).await?, label)
        .await
}

/// The snapshot stored under `key`, or the one `make` makes (then stored).
/// A failing init is an error that says it refused the deploy.
async fn cached(
    artifacts: &Artifacts,
    key: &str,
    init: &Init<'_>,
    make: impl Future<Output = Result<Vec<u8>>>,
) -> Result<Arc<[u8]>> {
    if let Some(snap) = artifacts.snapshot(key) {
        tracing::info!(
            function = init.name,
            "loaded snapshot from the artifact cache"
        );
        return Ok(snap.into());
    }
    let started = std::time::Instant::now();
    let snap = make
        .await
        .map_err(|e| anyhow!("pre-initialization refused the deploy: {e:#}"))?;
    tracing::info!(
        function = init.name,
        ms = started.elapsed().as_millis() as u64,
        "pre-initialized"
    );
    artifacts.put_snapshot(key, &snap);
    Ok(snap.into())
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
    component::check_header(bytes)?;
    if !wants_init(bytes)? {
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
    outcome(
        result.map(|r| r.map(|(snapshot, _)| snapshot)),
        &output,
        timeout,
    )
}

/// What an init run under `timeout` came to: the snapshot, or an error
/// naming what went wrong and carrying what the guest printed.
pub(crate) fn outcome(
    result: Result<wasmtime::Result<Vec<u8>>, tokio::time::error::Elapsed>,
    output: &Mutex<String>,
    timeout: Duration,
) -> Result<Vec<u8>> {
    let printed = output.lock().map(|s| s.clone()).unwrap_or_default();
    let shown = if printed.is_empty() {
        "(the guest printed nothing)".to_string()
    } else {
        printed
    };
    match result {
        Ok(Ok(snapshot)) => Ok(snapshot),
        Ok(Err(e)) => bail!("its `{INIT_EXPORT}` failed: {e:#}\nguest output:\n{shown}"),
        Err(_) => bail!(
            "its `{INIT_EXPORT}` did not finish within the function's timeout of {}\nguest output:\n{shown}",
            crate::config::Span(timeout)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wants_init_reads_the_outer_exports_only() {
        let exporting = wat::parse_str(
            r#"(component
                 (core module $m (func (export "wizer-initialize")))
                 (core instance $i (instantiate $m))
                 (func $f (canon lift (core func $i "wizer-initialize")))
                 (export "wizer-initialize" (func $f)))"#,
        )
        .unwrap();
        assert!(wants_init(&exporting).unwrap());
        // The inner module and component export it; the component does not.
        let nested = wat::parse_str(
            r#"(component
                 (core module $m (func (export "wizer-initialize")))
                 (component $c
                   (core module $n (func (export "wizer-initialize")))
                   (core instance $i (instantiate $n))
                   (func $f (canon lift (core func $i "wizer-initialize")))
                   (export "wizer-initialize" (func $f))))"#,
        )
        .unwrap();
        assert!(!wants_init(&nested).unwrap());
        let err = wants_init(&nested[..nested.len() - 3]).unwrap_err();
        assert!(err.to_string().contains("not a valid component"), "{err}");
    }
}
