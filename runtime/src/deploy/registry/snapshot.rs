//! A snapshot made by a deploy (nothing of it was cached) is compiled after
//! the revision starts serving: until then its instances come from the
//! component instrumented for init, which init needed compiled anyway, and
//! run `wizer-initialize` first (see `invoke::source`). So a fresh cache
//! costs one compile before the first response, not two.

use std::sync::Arc;

use super::Registry;
use crate::deploy::component;
use crate::deploy::snapshot::Pending;
use crate::invoke::LiveRevision;

impl Registry {
    /// Compiles `pending` into the artifact cache in the background, then
    /// has `live`'s new instances start from it. A failure is logged and
    /// the revision keeps initializing each new instance.
    pub(super) fn compile_snapshot(&self, live: &Arc<LiveRevision>, pending: Pending) {
        let Some(instances) = live.instances().cloned() else {
            return;
        };
        let (artifacts, engine) = (self.artifacts.clone(), self.engine.clone());
        self.compiling.spawn(async move {
            let key = pending.key().to_owned();
            let switched = async {
                let component = pending.compile(&artifacts).await?;
                if instances.is_retired() {
                    // Replaced while compiling: its code leaves memory, as
                    // that of revisions no longer served does (`retain`).
                    artifacts.forget(&key);
                }
                instances.start_from_snapshot(component::prepare(&engine, &component)?)
            };
            let function = &instances.host.function;
            match switched.await {
                Ok(()) => tracing::info!(
                    function = %function,
                    "snapshot ready: new instances start from it"
                ),
                Err(e) => tracing::warn!(
                    function = %function,
                    "could not compile the snapshot ({e:#}); new instances keep running \
                     `wizer-initialize` first"
                ),
            }
        });
    }

    /// Resolves once no snapshot is being compiled, so that one a deploy
    /// made is in the artifact cache for the next start.
    pub async fn snapshots_compiled(&self) {
        self.compiling.close();
        self.compiling.wait().await;
    }
}
