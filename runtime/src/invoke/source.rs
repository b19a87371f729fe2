//! What a revision's new instances are made from, and the one way they are
//! made. A function whose snapshot was made by this deploy serves at once
//! from the component Wizer instrumented to take it (compiled for init
//! anyway), calling `wizer-initialize` on each new instance before it
//! serves: what the snapshot would have given it, paid per instance. Once
//! the snapshot is compiled (in the background, see
//! `deploy::registry::snapshot`) new instances start from it instead.

use std::time::Duration;

use anyhow::Result;
use wasmtime::Store;
use wasmtime::component::ComponentExportIndex;
use wasmtime_wasi_http::handler::{Proxy, ProxyPre};
use wasmtime_wasi_http::{p2, p3};

use crate::config::Span;
use crate::deploy::snapshot::{INIT_EXPORT, call_init, init_export};
use crate::sandbox::host::Host;

/// How a revision's instances start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// From the component as it is.
    AsIs,
    /// From its pre-initialized snapshot.
    Snapshot,
    /// From the component instrumented for its snapshot, each calling
    /// `wizer-initialize` first, until the snapshot is compiled.
    Init,
}

/// A linked component and how its instances start.
pub struct Source {
    pre: ProxyPre<Host>,
    /// Called on each new instance before it serves ([`Start::Init`]).
    init: Option<ComponentExportIndex>,
    start: Start,
}

impl Source {
    pub fn new(pre: ProxyPre<Host>, start: Start) -> Result<Self> {
        let init = match start {
            Start::Init => Some(init_export(instance_pre(&pre).component())?),
            Start::AsIs | Start::Snapshot => None,
        };
        Ok(Source { pre, init, start })
    }

    pub fn start(&self) -> Start {
        self.start
    }

    /// A new instance in `store`, initialized when it must be (within
    /// `timeout`, its output not logged: init's was, at deploy).
    pub async fn instantiate(
        &self,
        store: &mut Store<Host>,
        timeout: Duration,
    ) -> wasmtime::Result<Proxy> {
        let Some(init) = self.init else {
            return self.pre.instantiate_async(store).await;
        };
        let instance = instance_pre(&self.pre)
            .instantiate_async(&mut *store)
            .await?;
        let tag = store.data().tag.clone();
        tag.set_quiet(true);
        let ran = tokio::time::timeout(timeout, call_init(store, &instance, init)).await;
        tag.set_quiet(false);
        match ran {
            Ok(done) => done?,
            Err(_) => wasmtime::bail!(
                "`{INIT_EXPORT}` did not finish within the function's timeout of {} in a new \
                 instance",
                Span(timeout)
            ),
        }
        Ok(match &self.pre {
            ProxyPre::P2(_) => Proxy::P2(p2::bindings::Proxy::new(store, &instance)?),
            ProxyPre::P3(_) => Proxy::P3(p3::bindings::Service::new(store, &instance)?),
        })
    }
}

fn instance_pre(pre: &ProxyPre<Host>) -> &wasmtime::component::InstancePre<Host> {
    match pre {
        ProxyPre::P2(pre) => pre.instance_pre(),
        ProxyPre::P3(pre) => pre.instance_pre(),
    }
}
