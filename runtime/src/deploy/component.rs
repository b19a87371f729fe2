//! Turning bytes into something runnable, with an error that says what is
//! wrong and what to do for every kind of input we refuse.

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre};
use wasmtime_wasi_http::handler::ProxyPre;

use crate::deploy::snapshot;
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::Host;

/// Content address of a component: lowercase hex SHA-256.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Refuses files that are not components before the compiler sees them.
pub fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        bail!(
            "not a WebAssembly file (it does not start with the `\\0asm` magic bytes); \
             give the path of a compiled .wasm component"
        );
    }
    match bytes[4..8] {
        // Core modules carry version 1, layer 0.
        [1, 0, 0, 0] => bail!(
            "this is a core WebAssembly module, not a component; build for the wasm32-wasip2 \
             target, or wrap it with `wasm-tools component new module.wasm --adapt \
             wasi_snapshot_preview1=wasi_snapshot_preview1.proxy.wasm -o component.wasm` \
             (the adapter ships in the crate wasi-preview1-component-adapter-provider)"
        ),
        [_, _, 1, 0] => Ok(()),
        _ => bail!(
            "unknown WebAssembly version/layer {:?}; Wisp runs components",
            &bytes[4..8]
        ),
    }
}

/// Compiles a component. CPU-heavy: call it off the async runtime.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    check_header(bytes)?;
    Component::new(engine, bytes).map_err(|e| anyhow!("not a valid component: {e:#}"))
}

/// Links the component against what Wisp provides and finds its HTTP export.
pub fn prepare(engine: &WispEngine, component: &Component) -> Result<ProxyPre<Host>> {
    let pre = link(engine, component)?;
    if let Ok(p3) = wasmtime_wasi_http::p3::bindings::ServicePre::new(pre.clone()) {
        return Ok(ProxyPre::P3(p3));
    }
    wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
        .map(ProxyPre::P2)
        .map_err(|_| {
            anyhow!(
                "the component exports no HTTP handler: Wisp needs \
                 `wasi:http/incoming-handler@0.2.x` (or `wasi:http/handler@0.3.x`), but it \
                 exports {}. Build it for the wasi:http proxy world",
                exports(engine, component)
            )
        })
}

/// Links the component against what Wisp provides, naming what it imports
/// that Wisp does not.
pub fn link(engine: &WispEngine, component: &Component) -> Result<InstancePre<Host>> {
    engine.linker.instantiate_pre(component).map_err(|e| {
        anyhow!(
            "the component imports something Wisp does not provide: {e:#}. Wisp provides \
             WASI 0.2 (cli, clocks, filesystem, io, random, sockets), wasi:http 0.2 and \
             their 0.3 versions, wasi:keyvalue 0.2.0-draft and 0.2.0-draft2, and wasi:config \
             0.2.0-rc.1 and 0.2.0-draft-2024-09-27{}",
            spin_hint(engine, component)
        )
    })
}

/// For a component built for Spin: every Spin-specific interface it imports
/// (Wisp serves none of them), and what to use instead. Empty otherwise.
fn spin_hint(engine: &WispEngine, component: &Component) -> String {
    let spin: Vec<String> = component
        .component_type()
        .imports(&engine.engine)
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("spin:") || name.starts_with("fermyon:"))
        .map(|name| format!("`{name}`"))
        .collect();
    if spin.is_empty() {
        return String::new();
    }
    format!(
        ". It imports Spin's own interfaces, which Wisp does not serve: {}. Spin components \
         run on Wisp when they use the standard ones instead (spin-sdk binds \
         wasi:keyvalue@0.2.0-draft2 and wasi:config@0.2.0-draft-2024-09-27 in \
         `spin_sdk::experimental`); see docs/state.md, \"Running Spin components\"",
        spin.join(", ")
    )
}

/// What `component` exports, for refusals: "`a`, `b`" or "nothing" (what
/// instrumenting it for a snapshot added left out).
pub fn exports(engine: &WispEngine, component: &Component) -> String {
    let names: Vec<String> = component
        .component_type()
        .exports(&engine.engine)
        .filter(|(name, _)| *name != snapshot::ACCESS_EXPORT)
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}

/// Reads a component file, naming the path in any error.
pub fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("could not read component `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_wasm_and_core_modules() {
        let err = check_header(b"hello world").unwrap_err().to_string();
        assert!(err.contains("not a WebAssembly file"), "{err}");
        let core = wat::parse_str("(module)").unwrap();
        let err = check_header(&core).unwrap_err().to_string();
        assert!(err.contains("core WebAssembly module"), "{err}");
        let component = wat::parse_str("(component)").unwrap();
        check_header(&component).unwrap();
    }

    #[test]
    fn names_every_spin_import_it_refuses() {
        let engine = WispEngine::for_tests();
        let bytes = wat::parse_str(
            r#"(component
                (import "spin:key-value/key-value@3.0.0" (instance (export "open" (func))))
                (import "fermyon:spin/variables@2.0.0" (instance (export "get" (func)))))"#,
        )
        .unwrap();
        let component = compile(&engine.engine, &bytes).unwrap();
        let err = prepare(&engine, &component).err().unwrap().to_string();
        assert!(err.contains("does not provide"), "{err}");
        assert!(
            err.contains("Wisp does not serve: `spin:key-value/key-value@3.0.0`, `fermyon:spin/variables@2.0.0`"),
            "{err}"
        );
    }

    #[test]
    fn refuses_component_without_handler() {
        let engine = WispEngine::for_tests();
        let bytes = wat::parse_str("(component)").unwrap();
        let component = compile(&engine.engine, &bytes).unwrap();
        let err = prepare(&engine, &component).err().unwrap().to_string();
        assert!(err.contains("exports no HTTP handler"), "{err}");
        assert!(err.contains("exports nothing"), "{err}");
    }
}
