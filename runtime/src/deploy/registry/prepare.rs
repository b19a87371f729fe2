//! The slow part of a deploy, done before the change lock is taken:
//! compile (or load from the artifact cache), pre-initialize and link a
//! revision's component — or, for a command function, adapt and link its
//! command.

use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use wasmtime::component::Component;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::{Prepared, Registry, digest_of, host_config, short};
use crate::config::{FunctionSpec, Handler};
use crate::deploy::artifact::engine_fingerprint;
use crate::deploy::{command, component, snapshot};
use crate::invoke::revision::{Entry, Loaded};
use crate::sandbox::host::{Host, HostConfig};

impl Registry {
    /// What the function's instances are made from: the pre-initialized
    /// snapshot when the component has an init export (and `snapshot` is
    /// on), else the component itself. Both come from the artifact cache;
    /// the key of the one used is returned.
    async fn runnable(
        &self,
        spec: &FunctionSpec,
        bytes: &Arc<[u8]>,
        host: &HostConfig,
    ) -> Result<(Component, bool, String)> {
        let digest = digest_of(&spec.component)?;
        let original = self
            .artifacts
            .compile(bytes.clone(), digest, &short(digest))
            .await?;
        if !spec.snapshot || !snapshot::wants_init(&original) {
            return Ok((original, false, digest.to_string()));
        }
        let key = snapshot::snapshot_key(digest, spec, &engine_fingerprint(&self.engine.engine));
        let snap: Arc<[u8]> = match self.artifacts.snapshot(&key) {
            Some(snap) => {
                tracing::info!(function = %spec.name, "loaded snapshot from the artifact cache");
                snap.into()
            }
            None => {
                let started = std::time::Instant::now();
                let snap = snapshot::run_init(&self.engine, bytes, host, spec.timeout.0)
                    .await
                    .map_err(|e| anyhow!("pre-initialization refused the deploy: {e:#}"))?;
                tracing::info!(function = %spec.name, ms = started.elapsed().as_millis() as u64, "pre-initialized");
                self.artifacts.put_snapshot(&key, &snap);
                snap.into()
            }
        };
        let label = format!("{} (snapshot)", short(digest));
        let snap_digest = component::digest(&snap);
        Ok((
            self.artifacts.compile(snap, &snap_digest, &label).await?,
            true,
            snap_digest,
        ))
    }

    /// A command function's command: adapted if it is a preview-1 program,
    /// compiled through the cache (under the adapted bytes' digest), linked.
    async fn command(
        &self,
        spec: &FunctionSpec,
        bytes: &Arc<[u8]>,
    ) -> Result<(CommandPre<Host>, String)> {
        let original = bytes.clone();
        let adapted =
            tokio::task::spawn_blocking(move || command::componentize(&original)).await??;
        let key = component::digest(&adapted);
        let compiled = self
            .artifacts
            .compile(adapted.into(), &key, &format!("{} (command)", spec.name))
            .await?;
        Ok((command::prepare(&self.engine, &compiled)?, key))
    }

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
        if spec.handler == Handler::Cgi {
            let (pre, key) = self.command(spec, &bytes).await?;
            return Ok(Prepared {
                loaded: Loaded {
                    engine: self.engine.engine.clone(),
                    pre: Entry::Command(pre),
                    host,
                    snapshotted: false,
                },
                bytes,
                compiled: vec![key],
            });
        }
        let (component, snapshotted, key) = self.runnable(spec, &bytes, &host).await?;
        Ok(Prepared {
            loaded: Loaded {
                engine: self.engine.engine.clone(),
                pre: Entry::Proxy(component::prepare(&self.engine, &component)?),
                host,
                snapshotted,
            },
            bytes,
            compiled: vec![key],
        })
    }
}
