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

use crate::config::{AllowedHosts, FunctionSpec, normalize_route};
use crate::deploy::artifact::{Artifacts, engine_fingerprint};
use crate::deploy::component;
use crate::deploy::routes::RouteTable;
use crate::deploy::snapshot;
use crate::invoke::LiveRevision;
use crate::invoke::revision::Loaded;
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::HostConfig;
use crate::store::{History, Revision, StateDir};
use crate::telemetry::metrics::{FunctionMetrics, MetricsSnapshot};

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

/// A deployed function: its history and the revision serving it.
struct Function {
    history: History,
    live: Arc<LiveRevision>,
}

pub struct Registry {
    engine: Arc<WispEngine>,
    state: Option<StateDir>,
    functions: DashMap<String, Function>,
    /// Kept across revisions and deletes so counters never go backwards.
    metrics: DashMap<String, Arc<FunctionMetrics>>,
    /// Uploaded components by digest (also in the state dir when there is one).
    components: DashMap<String, Arc<[u8]>>,
    artifacts: Artifacts,
    routes: RwLock<Arc<RouteTable<LiveRevision>>>,
    /// Serializes changes so route checks and swaps see a consistent set.
    changes: tokio::sync::Mutex<()>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks `spec` and resolves what its instances are given, once per
/// deploy; init and every instance use the result.
fn host_config(spec: &FunctionSpec, engine: &WispEngine) -> Result<HostConfig> {
    let allowed: AllowedHosts = spec
        .validate()
        .map_err(|(key, msg)| anyhow!("`{key}`: {msg}"))?;
    Ok(HostConfig {
        function: spec.name.as_str().into(),
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        allowed: Arc::new(allowed),
        own_ports: engine.own_ports.clone(),
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
        cpu_time: spec.cpu_time.map(|t| t.0),
        cpu_weight: spec.cpu_weight,
        lanes: engine.lanes.clone(),
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
    pub fn route(&self, path: &str) -> Option<Arc<LiveRevision>> {
        let table = self.routes.read().unwrap_or_else(|e| e.into_inner());
        table.lookup(path).cloned()
    }

    /// The revision of function `name` serving now, if it is deployed: what
    /// every trigger other than an HTTP route invokes.
    pub fn live(&self, name: &str) -> Option<Arc<LiveRevision>> {
        self.functions.get(name).map(|f| f.live.clone())
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
    async fn runnable(&self, spec: &FunctionSpec, host: &HostConfig) -> Result<(Component, bool)> {
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
                let snap = snapshot::run_init(&self.engine, &bytes, host, spec.timeout.0)
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

    /// Checks `spec`, then compiles (or loads from the cache), pre-initializes
    /// and links its component: the slow part of a deploy, done before the
    /// change lock is taken.
    async fn prepare(&self, spec: &FunctionSpec) -> Result<Loaded> {
        let max = self.engine.pool.max_memory;
        if spec.memory > max {
            bail!(
                "memory = {} exceeds the largest memory the instance pool allows ([server.pool] \
                 max_memory = {max}); lower the function's memory or raise max_memory",
                spec.memory
            );
        }
        let host = host_config(spec, &self.engine)?;
        let (component, snapshotted) = self.runnable(spec, &host).await?;
        Ok(Loaded {
            engine: self.engine.engine.clone(),
            pre: component::prepare(&self.engine, &component)?,
            host,
            snapshotted,
        })
    }

    fn live_revision(
        &self,
        spec: &FunctionSpec,
        number: u64,
        loaded: Loaded,
    ) -> Result<Arc<LiveRevision>> {
        let metrics = self.metrics.entry(spec.name.clone()).or_default().clone();
        LiveRevision::new(spec.clone(), number, loaded, metrics)
    }

    fn check_route_free(&self, spec: &FunctionSpec) -> Result<()> {
        let route = normalize_route(&spec.route);
        for other in self.functions.iter() {
            if other.key() != &spec.name && normalize_route(&other.live.spec.route) == route {
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
                .map(|f| (f.live.spec.route.clone(), f.live.clone())),
        );
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    /// Saves `history` and makes `live` serve; the revision it replaces is
    /// retired (its requests in flight finish on it).
    fn commit(&self, history: History, live: Arc<LiveRevision>) -> Result<()> {
        if let Some(state) = &self.state {
            state.save(&history)?;
        }
        let replaced = self
            .functions
            .insert(history.name.clone(), Function { history, live });
        self.publish_routes();
        if let Some(old) = replaced {
            old.live.retire();
        }
        Ok(())
    }

    /// Deploys `spec` (whose component is a `sha256:` reference) as the
    /// function's new current revision.
    pub async fn deploy(
        &self,
        spec: FunctionSpec,
        manifest_applied: Option<String>,
    ) -> Result<Revision> {
        let loaded = self.prepare(&spec).await?;
        let _changes = self.changes.lock().await;
        self.check_route_free(&spec)?;
        let mut record = match self.functions.get(&spec.name) {
            Some(f) => f.history.clone(),
            None => History {
                name: spec.name.clone(),
                current: 0,
                revisions: Vec::new(),
                manifest_applied: None,
            },
        };
        let number = record.revisions.iter().map(|r| r.number).max().unwrap_or(0) + 1;
        let live = self.live_revision(&spec, number, loaded)?;
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
        let loaded = self.prepare(&target.spec).await?;
        let live = self.live_revision(&target.spec, target.number, loaded)?;
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
        let removed = self.functions.remove(name);
        self.publish_routes();
        if let Some((_, old)) = removed {
            old.live.retire();
        }
        tracing::info!(function = %name, "deleted");
        Ok(())
    }

    fn record(&self, name: &str) -> Result<History> {
        self.functions
            .get(name)
            .map(|f| f.history.clone())
            .ok_or_else(|| NotFound(format!("no function named `{name}`")).into())
    }

    pub fn revisions(&self, name: &str) -> Result<Vec<Revision>> {
        Ok(self.record(name)?.revisions)
    }

    pub fn info(&self, name: &str) -> Result<FunctionInfo> {
        let function = self
            .functions
            .get(name)
            .ok_or_else(|| NotFound(format!("no function named `{name}`")))?;
        let live = &function.live;
        Ok(FunctionInfo {
            name: name.to_string(),
            current_revision: live.number,
            world: live.world,
            snapshotted: live.snapshotted,
            spec: live.spec.clone(),
            revisions: function.history.revisions.len(),
            metrics: live.metrics.snapshot(),
        })
    }

    pub fn list(&self) -> Vec<FunctionInfo> {
        let mut names: Vec<String> = self.functions.iter().map(|e| e.key().clone()).collect();
        names.sort();
        names.iter().filter_map(|n| self.info(n).ok()).collect()
    }

    /// Every function's counters, deleted ones included, by name.
    pub fn metrics(&self) -> Vec<(String, Arc<FunctionMetrics>)> {
        let mut all: Vec<_> = self
            .metrics
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
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
                self.check_route_free(&rev.spec)?;
                let loaded = self.prepare(&rev.spec).await?;
                self.live_revision(&rev.spec, rev.number, loaded)
            }
            .await;
            match loaded {
                Ok(live) => {
                    tracing::info!(function = %record.name, revision = record.current, "restored");
                    self.functions.insert(
                        record.name.clone(),
                        Function {
                            history: record,
                            live,
                        },
                    );
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
            .filter(|f| f.history.manifest_applied.is_some() && !declared.contains(f.key()))
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
            .and_then(|f| f.history.manifest_applied.clone())
    }
}
