//! Commands as components: a `wasi:cli/run` component is linked as is; a
//! WASI preview-1 core module with a `_start` export (Go's `GOOS=wasip1`,
//! wasi-sdk, ruby.wasm) is first wrapped into one with the preview-1
//! command adapter. Anything else is refused, naming what it is. A command
//! that exports `wizer-initialize` is pre-initialized like an HTTP function.

use std::sync::{Arc, LazyLock};

use anyhow::{Result, anyhow, bail};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
};
use wasmparser::{Parser, Payload};
use wasmtime::component::Component;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::deploy::artifact::Artifacts;
use crate::deploy::component;
use crate::deploy::snapshot::{self, Init};
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::Host;

/// Whether `bytes` is a core module (not a component).
pub fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[..4] == b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// The exports of a core module, by name.
pub(crate) fn core_exports(bytes: &[u8]) -> Result<Vec<String>> {
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        if let Payload::ExportSection(section) =
            payload.map_err(|e| anyhow!("not a valid module: {e}"))?
        {
            for export in section {
                exports.push(
                    export
                        .map_err(|e| anyhow!("not a valid module: {e}"))?
                        .name
                        .to_string(),
                );
            }
        }
    }
    Ok(exports)
}

/// Refuses a core module without `_start` (a reactor, a library), naming
/// what it exports. Only parses the export section: cheap even for a 30 MB
/// interpreter, so uploads check it and the deploy adapts once.
pub fn check_start(bytes: &[u8]) -> Result<()> {
    let exports = core_exports(bytes)?;
    if !exports.iter().any(|e| e == "_start") {
        bail!(
            "this core module exports no `_start`, so it is not a WASI command ({}); build \
             the program as a command (wasm32-wasip1 `main`, Go GOOS=wasip1) or as a \
             wasi:cli/run component",
            if exports.is_empty() {
                "it exports nothing".to_string()
            } else {
                format!("it exports {}", exports.join(", "))
            }
        );
    }
    Ok(())
}

/// The preview-1 command module `bytes` wrapped with the command adapter
/// into a component. CPU-heavy: call it off the async runtime.
pub fn componentize(bytes: &[u8]) -> Result<Vec<u8>> {
    check_start(bytes)?;
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|e| {
            e.adapter(
                WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
            )
        })
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| anyhow!("could not adapt the WASI preview-1 module into a component: {e:#}"))
}

/// [`componentize`] on a blocking thread.
pub async fn adapt(bytes: Arc<[u8]>) -> Result<Arc<[u8]>> {
    Ok(tokio::task::spawn_blocking(move || componentize(&bytes))
        .await??
        .into())
}

/// Artifact key of the compiled code of a module adapted by [`componentize`]:
/// what was adapted (`input`, a module's digest or its snapshot's key) and the
/// adapter, so a warm start neither adapts nor hashes the adapted bytes.
pub fn adapted_key(input: &str) -> String {
    static ADAPTER: LazyLock<String> =
        LazyLock::new(|| component::digest(WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER));
    // Bump when `componentize` encodes differently.
    const FORMAT: u32 = 1;
    component::digest(format!("adapted {FORMAT} {input} {}", *ADAPTER).as_bytes())
}

/// A command, ready to run.
pub struct Loaded {
    pub pre: CommandPre<Host>,
    /// Digest of the compiled bytes (the snapshot's, when pre-initialized).
    pub digest: String,
    pub snapshotted: bool,
}

/// Adapts `bytes` if it is a preview-1 program, compiles it through the
/// artifact cache, pre-initializes it when it exports `wizer-initialize`
/// and `init` is given, and links it. Init's failure refuses the deploy.
pub async fn load(
    artifacts: &Artifacts,
    engine: &WispEngine,
    bytes: Arc<[u8]>,
    init: Option<Init<'_>>,
    label: &str,
) -> Result<Loaded> {
    if !is_core_module(&bytes) {
        component::check_header(&bytes)?;
        let digest = component::digest(&bytes);
        let runnable = snapshot::runnable(artifacts, engine, bytes, &digest, label, init)
            .await?
            .compiled(artifacts)
            .await?;
        return Ok(Loaded {
            pre: prepare(engine, &runnable.component)?,
            digest: runnable.digest,
            snapshotted: runnable.snapshotted,
        });
    }
    // A preview-1 module is pre-initialized before it is adapted (see
    // `snapshot::module`); its adapted code is cached by what was adapted.
    check_start(&bytes)?;
    let (component, key, snapshotted) = match init {
        Some(init) if snapshot::module::wants_init(&bytes)? => {
            let (component, key) =
                snapshot::module::compiled(artifacts, engine, &bytes, &init, label).await?;
            (component, key, true)
        }
        _ => {
            let key = adapted_key(&component::digest(&bytes));
            let component = match artifacts.load(&key, label) {
                Some(component) => component,
                None => {
                    artifacts
                        .compile_into(&key, adapt(bytes).await?, label)
                        .await?
                }
            };
            (component, key, false)
        }
    };
    Ok(Loaded {
        pre: prepare(engine, &component)?,
        digest: key,
        snapshotted,
    })
}

/// Links a command component against what Wisp provides.
pub fn prepare(engine: &WispEngine, component: &Component) -> Result<CommandPre<Host>> {
    let pre = engine
        .linker
        .instantiate_pre(component)
        .map_err(|e| anyhow!("the command imports something Wisp does not provide: {e:#}"))?;
    CommandPre::new(pre).map_err(|_| {
        let exports = component::exports(engine, component);
        let http = if exports.contains("wasi:http/incoming-handler") {
            "; it is an HTTP function: serve it as a [[function]]"
        } else {
            ""
        };
        anyhow!(
            "the component is not a command: it needs to export `wasi:cli/run@0.2.x`, but it \
             exports {exports}{http}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_without_start_and_reactors_are_refused_naming_what_they_are() {
        let reactor = wat::parse_str(r#"(module (func (export "_initialize")))"#).unwrap();
        let err = componentize(&reactor).unwrap_err().to_string();
        assert!(
            err.contains("no `_start`") && err.contains("_initialize"),
            "{err}"
        );
        let empty = wat::parse_str("(module)").unwrap();
        let err = componentize(&empty).unwrap_err().to_string();
        assert!(err.contains("exports nothing"), "{err}");
    }

    #[test]
    fn a_preview1_command_is_adapted_into_a_runnable_component() {
        let module = wat::parse_str(
            r#"(module
                 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 (func (export "_start") (call $exit (i32.const 7))))"#,
        )
        .unwrap();
        let component = componentize(&module).unwrap();
        assert_eq!(&component[4..8], &[0x0d, 0, 1, 0]);
        let engine = WispEngine::for_tests();
        let compiled = Component::new(&engine.engine, &component).unwrap();
        prepare(&engine, &compiled).unwrap();
        let http = wat::parse_str("(component)").unwrap();
        let compiled = Component::new(&engine.engine, &http).unwrap();
        let err = prepare(&engine, &compiled).err().unwrap().to_string();
        assert!(
            err.contains("not a command") && err.contains("exports nothing"),
            "{err}"
        );
    }
}
