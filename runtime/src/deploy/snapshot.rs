//! Pre-initialization: a component that exports `wizer-initialize` has that
//! function run once, at deploy, with the same WASI the function gets; the
//! resulting memory and globals become a new component (Wizer), and every
//! invocation instantiates from that snapshot instead of redoing the work.
//! HTTP functions, command functions and jobs all go through [`runnable`];
//! a preview-1 command module (ruby.wasm) is pre-initialized before it is
//! adapted ([`module`]).
//!
//! Init runs in the component Wizer instruments, compiled for it. When init
//! ran at this deploy, an HTTP function serves from that compiled component
//! at once (each instance calling `wizer-initialize` first) while the
//! snapshot is compiled in the background ([`Pending`]); commands and jobs
//! compile the snapshot before they run ([`Runnable::compiled`]).

pub mod module;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use wasmparser::{Chunk, Parser, Payload};
use wasmtime::Store;
use wasmtime::component::{Component, ComponentExportIndex, Instance};
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

use crate::config::{ByteSize, FunctionSpec, JobSpec};
use crate::deploy::artifact::{self, Artifacts, engine_fingerprint};
use crate::deploy::component;
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::{Host, HostConfig, new_store};
use crate::sandbox::tag::InstanceTag;
use crate::telemetry::ids::InstanceId;

/// The export Wizer calls, as the SDK's init hook and `wasmtime wizer` name it.
pub const INIT_EXPORT: &str = "wizer-initialize";

/// The export Wizer's instrumentation adds (reading memories and globals).
pub const ACCESS_EXPORT: &str = "wasmtime:wizer/access";

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
    /// Digest of the bytes compiled into `component`; while a snapshot is
    /// [`Pending`], the key its code is to be stored under.
    pub digest: String,
    /// Set when init ran now, the cache holding nothing of this snapshot:
    /// `component` is then the original instrumented for the snapshot,
    /// whose every instance must call `wizer-initialize` before it serves,
    /// until the snapshot itself is compiled.
    pub pending: Option<Pending>,
}

/// A snapshot made by this deploy whose code is still to be compiled.
pub struct Pending {
    snapshot: Arc<[u8]>,
    key: String,
    label: String,
}

impl Pending {
    /// The artifact key its code is stored under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Compiles the snapshot into the artifact cache, under the key a
    /// restart looks for.
    pub async fn compile(self, artifacts: &Artifacts) -> Result<Component> {
        artifacts
            .compile_into(&self.key, self.snapshot, &self.label)
            .await
    }
}

impl Runnable {
    fn snapshot(component: Component, key: String) -> Self {
        Runnable {
            component,
            snapshotted: true,
            digest: key,
            pending: None,
        }
    }

    /// The same with a pending snapshot compiled now, for what cannot move
    /// its instances over to the snapshot later (commands and jobs).
    pub async fn compiled(self, artifacts: &Artifacts) -> Result<Runnable> {
        match self.pending {
            None => Ok(self),
            Some(pending) => Ok(Runnable::snapshot(
                pending.compile(artifacts).await?,
                self.digest,
            )),
        }
    }
}

/// The component `bytes` (whose digest is `digest`; `label` names it in the
/// log) compiled or, when it exports `wizer-initialize` and `init` is given,
/// its snapshot: its code from the artifact cache, or the snapshot from the
/// cache compiled now, or else init run now, leaving the snapshot
/// [`Pending`] and the instrumented component to serve meanwhile. With the
/// snapshot's code cached, neither the original nor the snapshot is read or
/// compiled. A failing init is an error that names it and carries what the
/// guest printed.
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
                pending: None,
            });
        }
    };
    let key = snapshot_key(digest, &init.observed, &engine_fingerprint(&engine.engine));
    let snapshot_label = format!("{label} (snapshot)");
    if let Some(component) = cached_code(artifacts, &key, &init, &snapshot_label) {
        return Ok(Runnable::snapshot(component, key));
    }
    if let Some(snapshot) = stored(artifacts, &key, &init) {
        let component = artifacts
            .compile_into(&key, snapshot, &snapshot_label)
            .await?;
        return Ok(Runnable::snapshot(component, key));
    }
    let (snapshot, instrumented) = made(
        artifacts,
        &key,
        &init,
        initialize(engine, &bytes, init.host, init.timeout, label),
    )
    .await?;
    Ok(Runnable {
        component: instrumented,
        snapshotted: false,
        digest: key.clone(),
        pending: Some(Pending {
            snapshot,
            key,
            label: snapshot_label,
        }),
    })
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
    if let Some(compiled) = cached_code(artifacts, compiled_key, init, label) {
        return Ok(compiled);
    }
    let snapshot = match stored(artifacts, key, init) {
        Some(snapshot) => snapshot,
        None => {
            let make = async { make.await.map(|snapshot| (snapshot, ())).map_err(refused) };
            made(artifacts, key, init, make).await?.0
        }
    };
    artifacts
        .compile_into(compiled_key, finish(snapshot).await?, label)
        .await
}

/// A snapshot's code stored under `compiled_key`, if the cache has it.
fn cached_code(
    artifacts: &Artifacts,
    compiled_key: &str,
    init: &Init<'_>,
    label: &str,
) -> Option<Component> {
    let compiled = artifacts.load(compiled_key, label)?;
    artifacts.snapshot_compiled();
    tracing::info!(
        function = init.name,
        "loaded snapshot from the artifact cache (compiled)"
    );
    Some(compiled)
}

/// The snapshot stored under `key`, if the cache has it.
fn stored(artifacts: &Artifacts, key: &str, init: &Init<'_>) -> Option<Arc<[u8]>> {
    let snapshot = artifacts.snapshot(key)?;
    tracing::info!(
        function = init.name,
        "loaded snapshot from the artifact cache"
    );
    Some(snapshot.into())
}

/// Runs `make` (pre-initialization: the snapshot, and whatever else it
/// made), says how long it took, and stores the snapshot under `key`.
async fn made<T>(
    artifacts: &Artifacts,
    key: &str,
    init: &Init<'_>,
    make: impl Future<Output = Result<(Vec<u8>, T)>>,
) -> Result<(Arc<[u8]>, T)> {
    let started = std::time::Instant::now();
    let (snapshot, made) = make.await?;
    tracing::info!(
        function = init.name,
        ms = started.elapsed().as_millis() as u64,
        "pre-initialized"
    );
    artifacts.put_snapshot(key, &snapshot);
    Ok((snapshot.into(), made))
}

/// A failing init, as the deploy's refusal.
fn refused(e: anyhow::Error) -> anyhow::Error {
    anyhow!("pre-initialization refused the deploy: {e:#}")
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
    let (snapshot, _) =
        initialize(engine, bytes, &host, Duration::from_secs(60), "preinit").await?;
    Ok(Some(snapshot))
}

/// Instruments `bytes` for a snapshot (Wizer: every memory and global made
/// readable through an added `wasmtime:wizer/access` export), compiles it
/// once, runs its init under `timeout` and takes the snapshot. Returns the
/// snapshot component and the instrumented one compiled, which links like
/// the original (it only exports more) and whose instances start as the
/// snapshot's do once they have called `wizer-initialize`. A component
/// that does not link is refused with the link error; a failing init with
/// what the guest printed.
async fn initialize(
    engine: &WispEngine,
    bytes: &[u8],
    host: &HostConfig,
    timeout: Duration,
    label: &str,
) -> Result<(Vec<u8>, Component)> {
    let mut wizer = Wizer::new();
    wizer.init_func(INIT_EXPORT).keep_init_func(true);
    let (cx, instrumented) = wizer
        .instrument_component(bytes)
        .map_err(|e| refused(e.into()))?;
    let label = format!("{label} (instrumented)");
    let component = artifact::compile(&engine.engine, instrumented.into(), &label)
        .await
        .map_err(refused)?;
    let pre = component::link(engine, &component)?;
    let init = init_export(&component).map_err(refused)?;
    let output = Arc::new(Mutex::new(String::new()));
    // Init runs outside any invocation; its output goes to the deploy error.
    let tag = InstanceTag::new(host.function.clone(), InstanceId(0), false);
    let mut store = new_store(&engine.engine, Host::capturing(host, tag, output.clone())?);
    let run = async {
        let instance = pre.instantiate_async(&mut store).await?;
        call_init(&mut store, &instance, init).await?;
        let state = &mut WasmtimeWizerComponent {
            store: &mut store,
            instance,
        };
        wizer.snapshot_component(&cx, state).await
    };
    let result = tokio::time::timeout(timeout, run).await;
    // Its last line, printed without a newline, is captured as it goes.
    drop(store);
    let snapshot = outcome(result, &output, timeout).map_err(refused)?;
    Ok((snapshot, component))
}

/// Where `component` exports `wizer-initialize`.
pub fn init_export(component: &Component) -> Result<ComponentExportIndex> {
    component
        .get_export_index(None, INIT_EXPORT)
        .ok_or_else(|| anyhow!("the component does not export `{INIT_EXPORT}`"))
}

/// Calls `init` (see [`init_export`]) on `instance`.
pub async fn call_init<T: Send>(
    store: &mut Store<T>,
    instance: &Instance,
    init: ComponentExportIndex,
) -> wasmtime::Result<()> {
    instance
        .get_typed_func::<(), ()>(&mut *store, init)
        .map_err(|e| e.context(format!("`{INIT_EXPORT}` must be a `func()`")))?
        .call_async(&mut *store, ())
        .await
        .map_err(|e| e.context("the initialization function trapped"))
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
