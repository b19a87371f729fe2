//! Functions and their revisions: deploy, roll back, delete, restore after a
//! restart. A deploy compiles and links off to the side, then swaps the
//! function's current revision atomically; requests already running keep the
//! revision they started on.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use dashmap::DashMap;
use serde::Serialize;
use wasmtime::component::Component;
use wasmtime_wasi_http::handler::{ProxyHandler, ProxyPre};

use crate::admission::Admission;
use crate::artifact::{Artifacts, engine_fingerprint};
use crate::component;
use crate::engine::WispEngine;
use crate::host::HostConfig;
use crate::invoke::{Reuse, RevisionState};
use crate::outbound::AllowedHosts;
use crate::route::{RouteTable, normalize};
use crate::snapshot;
use crate::spec::{DEFAULT_IDLE_TIMEOUT, FunctionSpec, Isolation};
use crate::state::{FunctionRecord, Revision, StateDir};
use crate::telemetry::{FunctionMetrics, MetricsSnapshot};
use crate::warm::Maker;

/// A revision that is loaded and can serve requests.
pub struct Live {
    pub function: Arc<str>,
    pub revision: u64,
    pub spec: FunctionSpec,
    pub handler: ProxyHandler<RevisionState>,
    pub metrics: Arc<FunctionMetrics>,
    pub world: &'static str,
    /// Instances start from a pre-initialized snapshot.
    pub snapshotted: bool,
}

/// A refusal the admin API reports as 404 rather than 400.
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// What the admin API shows of a function.
#[derive(Serialize)]
pub struct FunctionInfo {
    pub name: String,
    pub current_revision: u64,
    pub world: &'static str,
    pub snapshotted: bool,
    pub spec: FunctionSpec,
    pub revisions: usize,
    pub metrics: MetricsSnapshot,
}

struct Entry {
    record: FunctionRecord,
    live: Arc<Live>,
}

pub struct Registry {
    engine: Arc<WispEngine>,
    state: Option<StateDir>,
    functions: DashMap<String, Entry>,
    /// Kept across revisions and deletes so counters never go backwards.
    metrics: DashMap<String, Arc<FunctionMetrics>>,
    /// Uploaded components by digest (also in the state dir when there is one).
    components: DashMap<String, Arc<[u8]>>,
    artifacts: Artifacts,
    routes: RwLock<Arc<RouteTable<Live>>>,
    /// Serializes changes so route checks and swaps see a consistent set.
    changes: tokio::sync::Mutex<()>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What instances of `spec` are given.
fn host_config(spec: &FunctionSpec) -> Result<HostConfig> {
    let allowed = AllowedHosts::parse(&spec.allowed_outbound_hosts).map_err(|e| anyhow!(e))?;
    Ok(HostConfig {
        function: spec.name.as_str().into(),
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        allowed: Arc::new(allowed),
        memory_limit: spec.memory.bytes(),
        dirs: spec
            .dirs
            .iter()
            .map(|(guest, host)| {
                let dir = std::path::PathBuf::from(host);
                if dir.is_dir() {
                    Ok((dir, guest.clone()))
                } else {
                    Err(anyhow!(
                        "`dirs`: `{guest}` = `{host}`: no such directory on the host"
                    ))
                }
            })
            .collect::<Result<_>>()?,
    })
}

/// Digests are long; logs show the first 12 hex digits, like git.
fn short(digest: &str) -> String {
    format!("sha256:{}", &digest[..digest.len().min(12)])
}

fn digest_of(reference: &str) -> Result<&str> {
    reference
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| anyhow!("component must be `sha256:<64 hex digits>` of an uploaded component, got `{reference}`"))
}

impl Registry {
    pub fn new(
        engine: Arc<WispEngine>,
        state: Option<StateDir>,
        artifacts: Artifacts,
    ) -> Arc<Self> {
        Arc::new(Registry {
            engine,
            state,
            functions: DashMap::new(),
            metrics: DashMap::new(),
            components: DashMap::new(),
            artifacts,
            routes: RwLock::default(),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// The revision serving `path`, if any. The hot path: one read lock and
    /// one `Arc` clone.
    pub fn route(&self, path: &str) -> Option<Arc<Live>> {
        let table = self.routes.read().unwrap_or_else(|e| e.into_inner());
        table.lookup(path).cloned()
    }

    /// Validates, compiles and stores a component; returns its `sha256:`
    /// reference.
    pub async fn add_component(&self, bytes: Vec<u8>) -> Result<String> {
        component::check_header(&bytes)?;
        let digest = component::digest(&bytes);
        let bytes: Arc<[u8]> = bytes.into();
        let compiled = self
            .artifacts
            .compile(bytes.clone(), &digest, &short(&digest))
            .await?;
        component::prepare(&self.engine, &compiled)?;
        if let Some(state) = &self.state {
            state.put_component(&digest, &bytes)?;
        }
        self.components.insert(digest.clone(), bytes);
        Ok(format!("sha256:{digest}"))
    }

    fn bytes(&self, digest: &str) -> Result<Arc<[u8]>> {
        if let Some(b) = self.components.get(digest) {
            return Ok(b.clone());
        }
        let bytes: Arc<[u8]> = match &self.state {
            Some(state) => state.get_component(digest)?.into(),
            None => bail!("component sha256:{digest} was never uploaded"),
        };
        self.components.insert(digest.to_string(), bytes.clone());
        Ok(bytes)
    }

    /// What the function's instances are made from: the pre-initialized
    /// snapshot when the component has an init export (and `snapshot` is
    /// on), else the component itself. Both come from the artifact cache.
    async fn runnable(&self, spec: &FunctionSpec) -> Result<(Component, bool)> {
        let digest = digest_of(&spec.component)?;
        let bytes = self.bytes(digest)?;
        let original = self
            .artifacts
            .compile(bytes.clone(), digest, &short(digest))
            .await?;
        if !spec.snapshot || !snapshot::wants_init(&original) {
            return Ok((original, false));
        }
        let key = snapshot::snapshot_key(digest, spec, &engine_fingerprint(&self.engine.engine));
        let snap: Arc<[u8]> = match self.artifacts.snapshot(&key) {
            Some(snap) => {
                tracing::info!(function = %spec.name, "loaded snapshot from the artifact cache");
                snap.into()
            }
            None => {
                let started = std::time::Instant::now();
                let snap =
                    snapshot::run_init(&self.engine, &bytes, &host_config(spec)?, spec.timeout.0)
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
        ))
    }

    fn load(
        &self,
        spec: &FunctionSpec,
        revision: u64,
        (component, snapshotted): &(Component, bool),
    ) -> Result<Arc<Live>> {
        let max = self.engine.pool.max_memory;
        if spec.memory > max {
            bail!(
                "memory = {} exceeds the largest memory the instance pool allows ([server.pool] \
                 max_memory = {max}); lower the function's memory or raise max_memory",
                spec.memory
            );
        }
        let pre = component::prepare(&self.engine, component)?;
        let world = match pre {
            ProxyPre::P2(_) => "wasi:http@0.2",
            ProxyPre::P3(_) => "wasi:http@0.3",
        };
        if spec.concurrency > 1 && matches!(pre, ProxyPre::P2(_)) {
            bail!(
                "concurrency = {} needs a wasi:http@0.3 component, but this one is wasi:http@0.2, \
                 whose handler serves one request at a time per instance; use concurrency = 1 \
                 or build it for wasi:http@0.3",
                spec.concurrency
            );
        }
        let reuse = (spec.isolation == Isolation::Instance).then(|| Reuse {
            concurrency: spec.concurrency as usize,
            max_requests: spec.max_requests_per_instance,
            idle_timeout: spec.idle_timeout.map_or(DEFAULT_IDLE_TIMEOUT, |t| t.0),
            min_instances: spec.min_instances as usize,
        });
        let host = host_config(spec)?;
        let function = host.function.clone();
        let metrics = self.metrics.entry(spec.name.clone()).or_default().clone();
        let maker = Maker::new(
            self.engine.engine.clone(),
            pre,
            host,
            spec.timeout.0,
            Admission::new(spec.max_instances, spec.max_queue, spec.queue_timeout.0),
            metrics.clone(),
            reuse,
        );
        let state = RevisionState { maker };
        Ok(Arc::new(Live {
            function,
            revision,
            spec: spec.clone(),
            handler: ProxyHandler::new(state),
            metrics,
            world,
            snapshotted: *snapshotted,
        }))
    }

    fn check_route_free(&self, spec: &FunctionSpec) -> Result<()> {
        let route = normalize(&spec.route);
        for other in self.functions.iter() {
            if other.key() != &spec.name && normalize(&other.live.spec.route) == route {
                bail!(
                    "route `{route}` is already served by function `{}`",
                    other.key()
                );
            }
        }
        Ok(())
    }

    fn publish_routes(&self) {
        let table = RouteTable::new(
            self.functions
                .iter()
                .map(|e| (e.live.spec.route.clone(), e.live.clone())),
        );
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    fn commit(&self, record: FunctionRecord, live: Arc<Live>) -> Result<()> {
        if let Some(state) = &self.state {
            state.save(&record)?;
        }
        self.functions
            .insert(record.name.clone(), Entry { record, live });
        self.publish_routes();
        Ok(())
    }

    /// Deploys `spec` (whose component is a `sha256:` reference) as the
    /// function's new current revision.
    pub async fn deploy(
        &self,
        spec: FunctionSpec,
        manifest_applied: Option<String>,
    ) -> Result<Revision> {
        spec.validate()
            .map_err(|(key, msg)| anyhow!("`{key}`: {msg}"))?;
        let component = self.runnable(&spec).await?;
        let _changes = self.changes.lock().await;
        self.check_route_free(&spec)?;
        let mut record = match self.functions.get(&spec.name) {
            Some(e) => e.record.clone(),
            None => FunctionRecord {
                name: spec.name.clone(),
                current: 0,
                revisions: Vec::new(),
                manifest_applied: None,
            },
        };
        let number = record.revisions.iter().map(|r| r.number).max().unwrap_or(0) + 1;
        let live = self.load(&spec, number, &component)?;
        let revision = Revision {
            number,
            spec,
            created: now(),
        };
        record.revisions.push(revision.clone());
        record.current = number;
        if manifest_applied.is_some() {
            record.manifest_applied = manifest_applied;
        }
        self.commit(record, live)?;
        tracing::info!(function = %revision.spec.name, revision = number, "deployed");
        Ok(revision)
    }

    /// Makes an earlier revision current again: `to`, or the one before the
    /// current revision.
    pub async fn rollback(&self, name: &str, to: Option<u64>) -> Result<Revision> {
        let _changes = self.changes.lock().await;
        let mut record = self.record(name)?;
        let target = match to {
            Some(n) => record
                .revision(n)
                .ok_or_else(|| NotFound(format!("function `{name}` has no revision {n}")))?,
            None => record
                .revisions
                .iter()
                .filter(|r| r.number < record.current)
                .max_by_key(|r| r.number)
                .ok_or_else(|| {
                    anyhow!(
                        "function `{name}` has no revision before {}",
                        record.current
                    )
                })?,
        }
        .clone();
        self.check_route_free(&target.spec)?;
        let component = self.runnable(&target.spec).await?;
        let live = self.load(&target.spec, target.number, &component)?;
        record.current = target.number;
        self.commit(record, live)?;
        tracing::info!(function = %name, revision = target.number, "rolled back");
        Ok(target)
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let _changes = self.changes.lock().await;
        self.record(name)?;
        if let Some(state) = &self.state {
            state.remove(name)?;
        }
        self.functions.remove(name);
        self.publish_routes();
        tracing::info!(function = %name, "deleted");
        Ok(())
    }

    fn record(&self, name: &str) -> Result<FunctionRecord> {
        self.functions
            .get(name)
            .map(|e| e.record.clone())
            .ok_or_else(|| NotFound(format!("no function named `{name}`")).into())
    }

    pub fn revisions(&self, name: &str) -> Result<Vec<Revision>> {
        Ok(self.record(name)?.revisions)
    }

    pub fn info(&self, name: &str) -> Result<FunctionInfo> {
        let entry = self
            .functions
            .get(name)
            .ok_or_else(|| NotFound(format!("no function named `{name}`")))?;
        Ok(FunctionInfo {
            name: name.to_string(),
            current_revision: entry.live.revision,
            world: entry.live.world,
            snapshotted: entry.live.snapshotted,
            spec: entry.live.spec.clone(),
            revisions: entry.record.revisions.len(),
            metrics: entry.live.metrics.snapshot(),
        })
    }

    pub fn list(&self) -> Vec<FunctionInfo> {
        let mut names: Vec<String> = self.functions.iter().map(|e| e.key().clone()).collect();
        names.sort();
        names.iter().filter_map(|n| self.info(n).ok()).collect()
    }

    pub fn metrics(&self) -> Vec<(String, MetricsSnapshot)> {
        let mut all: Vec<_> = self
            .metrics
            .iter()
            .map(|e| (e.key().clone(), e.value().snapshot()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Loads every function stored in the state directory. A function that
    /// no longer loads is logged and skipped so the others still serve.
    pub async fn restore(&self) -> Result<()> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        for record in state.load_all()? {
            let loaded = async {
                let rev = record
                    .current_revision()
                    .with_context(|| format!("current revision {} is missing", record.current))?;
                let component = self.runnable(&rev.spec).await?;
                self.check_route_free(&rev.spec)?;
                self.load(&rev.spec, rev.number, &component)
            }
            .await;
            match loaded {
                Ok(live) => {
                    tracing::info!(function = %record.name, revision = record.current, "restored");
                    self.functions
                        .insert(record.name.clone(), Entry { record, live });
                }
                Err(e) => tracing::error!(function = %record.name, "could not restore: {e:#}"),
            }
        }
        self.publish_routes();
        Ok(())
    }

    /// Deletes functions that came from the manifest but are no longer in
    /// it; functions deployed only through the admin API stay.
    pub async fn retire_undeclared(&self, declared: &[String]) -> Result<()> {
        let retired: Vec<String> = self
            .functions
            .iter()
            .filter(|e| e.record.manifest_applied.is_some() && !declared.contains(e.key()))
            .map(|e| e.key().clone())
            .collect();
        for name in retired {
            tracing::info!(function = %name, "no longer in the manifest; removing it");
            self.delete(&name).await?;
        }
        Ok(())
    }

    /// The fingerprint of a manifest entry last applied to `name`.
    pub fn manifest_applied(&self, name: &str) -> Option<String> {
        self.functions
            .get(name)
            .and_then(|e| e.record.manifest_applied.clone())
    }
}
