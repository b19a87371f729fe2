//! The slow part of a deploy, done before the change lock is taken:
//! compile (or load from the artifact cache), pre-initialize and link a
//! revision's component — for a command function, its command, adapted
//! first if it is a preview-1 program.

use anyhow::{Result, bail};

use super::{Prepared, Registry, digest_of, host_config, short};
use crate::config::{FunctionSpec, Handler};
use crate::deploy::snapshot::{self, Init};
use crate::deploy::{command, component};
use crate::invoke::revision::{Entry, Loaded};
use crate::invoke::source::Start;
use crate::sandbox::host::HostConfig;

/// How init runs for `spec`, unless its `snapshot` setting is off.
fn init<'a>(spec: &'a FunctionSpec, host: &'a HostConfig) -> Option<Init<'a>> {
    spec.snapshot.then(|| Init {
        name: &spec.name,
        observed: spec.into(),
        host,
        timeout: spec.timeout.0,
    })
}

impl Registry {
    /// Checks `spec`, then compiles (or loads from the cache), pre-initializes
    /// and links its component: the slow part of a deploy, done before the
    /// change lock is taken.
    pub(super) async fn prepare(&self, spec: &FunctionSpec) -> Result<Prepared> {
        let max = self.engine.pool.max_memory;
        if spec.memory > max {
            bail!(
                "memory = {} exceeds the largest memory the instance pool allows ([server.pool] \
                 max_memory = {max}); lower the function's memory or raise max_memory",
                spec.memory
            );
        }
        let host = host_config(spec, &self.engine, &self.services)?;
        let bytes = self.bytes(digest_of(&spec.component)?)?;
        let init = init(spec, &host);
        let (pre, start, key, pending) = if spec.handler == Handler::Cgi {
            let label = format!("{} (command)", spec.name);
            let command =
                command::load(&self.artifacts, &self.engine, bytes.clone(), init, &label).await?;
            let start = if command.snapshotted {
                Start::Snapshot
            } else {
                Start::AsIs
            };
            (Entry::Command(command.pre), start, command.digest, None)
        } else {
            let digest = digest_of(&spec.component)?;
            let runnable = snapshot::runnable(
                &self.artifacts,
                &self.engine,
                bytes.clone(),
                digest,
                &short(digest),
                init,
            )
            .await?;
            let pre = Entry::Proxy(component::prepare(&self.engine, &runnable.component)?);
            let start = match (&runnable.pending, runnable.snapshotted) {
                (Some(_), _) => Start::Init,
                (None, true) => Start::Snapshot,
                (None, false) => Start::AsIs,
            };
            (pre, start, runnable.digest, runnable.pending)
        };
        Ok(Prepared {
            loaded: Loaded {
                engine: self.engine.engine.clone(),
                pre,
                host,
                start,
            },
            bytes,
            // While a snapshot is pending, the key its code will have.
            compiled: vec![key],
            pending,
        })
    }
}
