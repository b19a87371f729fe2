//! Functions and their revisions: deploy, roll back, delete, restore after a
//! restart. A deploy compiles and links off to the side, then swaps the
//! function's current revision atomically; requests already running keep the
//! revision they started on. A function whose stored revision cannot be
//! loaded at start is kept as failed (listed, unhealthy, serving nothing)
//! until it is deployed, rolled back or deleted.

use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail};
use dashmap::DashMap;
use serde::Serialize;
use tokio_util::task::TaskTracker;

use crate::config::{AllowedHosts, FunctionSpec};
use crate::deploy::artifact::Artifacts;
use crate::deploy::routes::RouteTable;
use crate::deploy::snapshot::Pending;
use crate::deploy::{command, component};
use crate::invoke::LiveRevision;
use crate::invoke::revision::Loaded;
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::{HostConfig, preopens};
use crate::sandbox::outbound::internal;
use crate::state::Services;
use crate::store::{History, Revision, StateDir};
use crate::telemetry::metrics::{FunctionMetrics, Metrics, MetricsSnapshot};

mod gc;
mod prepare;
mod restore;
mod snapshot;

/// A refusal the admin API reports as 404 rather than 400.
#[derive(Debug)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// Whether a function serves.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ready,
    /// Its stored current revision could not be loaded at start.
    Failed,
}

/// What the admin API shows of a function.
#[derive(Serialize)]
pub struct FunctionInfo {
    pub name: String,
    pub status: Status,
    /// Why a failed function could not be loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub current_revision: u64,
    /// `None` when failed.
    pub world: Option<&'static str>,
    pub snapshotted: bool,
    /// The current revision's settings; `None` when its record is unreadable.
    pub spec: Option<FunctionSpec>,
    pub revisions: usize,
    pub metrics: MetricsSnapshot,
}

/// A deployed function: its history and the revision serving it.
struct Function {
    history: History,
    live: Arc<LiveRevision>,
    /// Artifact keys of the compiled code `live` runs.
    compiled: Vec<String>,
}

/// A stored function that could not be loaded at start.
struct Failed {
    /// `None` when its record itself is unreadable.
    history: Option<History>,
    error: String,
}

/// A revision compiled and linked, ready to go live.
struct Prepared {
    loaded: Loaded,
    /// The component, to store again should garbage collection have removed
    /// it while this deploy was compiling.
    bytes: Arc<[u8]>,
    compiled: Vec<String>,
    /// A snapshot this deploy made, to compile once the revision serves.
    pending: Option<Pending>,
}

pub struct Registry {
    engine: Arc<WispEngine>,
    state: Option<StateDir>,
    /// Stores and secrets that deploys resolve grants against.
    services: Arc<Services>,
    functions: DashMap<String, Function>,
    failed: DashMap<String, Failed>,
    /// The process's metrics, where each function's series are resolved.
    telemetry: Arc<Metrics>,
    /// Kept across revisions and deletes so counters never go backwards.
    metrics: DashMap<String, Arc<FunctionMetrics>>,
    /// Uploaded components by digest: those live revisions and pending
    /// uploads use (the state dir has all); without a state dir, every one
    /// a revision references.
    components: DashMap<String, Arc<[u8]>>,
    /// Components uploaded and not yet deployed, by digest, with when.
    uploads: DashMap<String, Instant>,
    artifacts: Arc<Artifacts>,
    /// Snapshots being compiled after their deploy.
    compiling: TaskTracker,
    keep_revisions: usize,
    routes: RwLock<Arc<RouteTable<LiveRevision>>>,
    /// Serializes changes so route checks and swaps see a consistent set.
    changes: tokio::sync::Mutex<()>,
    /// Bumped after every change of the deployed set, for triggers that
    /// follow it (event subscriptions).
    changed: tokio::sync::watch::Sender<u64>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks `spec` and resolves what its instances are given, once per
/// deploy; init and every instance use the result.
fn host_config(
    spec: &FunctionSpec,
    engine: &WispEngine,
    services: &Services,
) -> Result<HostConfig> {
    let allowed: AllowedHosts = spec
        .validate()
        .map_err(|(key, msg)| anyhow!("`{key}`: {msg}"))?;
    Ok(HostConfig {
        state: Arc::new(services.grants(spec)?),
        function: spec.name.as_str().into(),
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        allowed: Arc::new(allowed),
        own_ports: engine.own_ports.clone(),
        internal: engine.internal.clone(),
        grants: Arc::new(internal::Grants {
            publish: spec.publish.clone(),
            enqueue: spec.enqueue.clone(),
        }),
        memory_limit: spec.memory.bytes(),
        dirs: preopens(&spec.dirs)?,
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
    /// `keep_revisions` bounds each function's history (at least 1).
    pub fn new(
        engine: Arc<WispEngine>,
        state: Option<StateDir>,
        services: Arc<Services>,
        artifacts: Artifacts,
        keep_revisions: usize,
        telemetry: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Registry {
            engine,
            state,
            services,
            functions: DashMap::new(),
            failed: DashMap::new(),
            telemetry,
            metrics: DashMap::new(),
            components: DashMap::new(),
            uploads: DashMap::new(),
            artifacts: Arc::new(artifacts),
            compiling: TaskTracker::new(),
            keep_revisions: keep_revisions.max(1),
            routes: RwLock::default(),
            changes: tokio::sync::Mutex::new(()),
            changed: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The revision serving `path`, if any. The hot path: one read lock and
    /// one `Arc` clone.
    pub fn route(&self, path: &str) -> Option<Arc<LiveRevision>> {
        let table = self.routes.read().unwrap_or_else(|e| e.into_inner());
        table.lookup(path).cloned()
    }

    /// The artifact cache (compiled code by content hash), for what else
    /// Wisp compiles: jobs' commands.
    pub fn artifacts(&self) -> &Artifacts {
        &self.artifacts
    }

    /// The revision of function `name` serving now, if it is deployed: what
    /// every trigger other than an HTTP route invokes.
    pub fn live(&self, name: &str) -> Option<Arc<LiveRevision>> {
        self.functions.get(name).map(|f| f.live.clone())
    }

    /// Validates, compiles and stores an uploaded component; returns its
    /// `sha256:` reference.
    pub async fn add_component(&self, bytes: Vec<u8>) -> Result<String> {
        let digest = component::digest(&bytes);
        let bytes: Arc<[u8]> = bytes.into();
        Self::check_component(&bytes)?;
        if !command::is_core_module(&bytes) {
            let compiled = self
                .artifacts
                .compile(bytes.clone(), &digest, &short(&digest))
                .await?;
            if let Err(http) = component::prepare(&self.engine, &compiled) {
                command::prepare(&self.engine, &compiled).map_err(|_| http)?;
            }
        }
        self.store_component(digest, bytes)
    }

    /// Stores a component that is about to be deployed (which compiles and
    /// links it, or finds its snapshot's code in the cache) after the checks
    /// that need no compiler; returns its `sha256:` reference.
    pub fn add_component_to_deploy(&self, bytes: Vec<u8>) -> Result<String> {
        let digest = component::digest(&bytes);
        let bytes: Arc<[u8]> = bytes.into();
        Self::check_component(&bytes)?;
        self.store_component(digest, bytes)
    }

    /// Refuses what is neither a component nor a preview-1 command.
    fn check_component(bytes: &[u8]) -> Result<()> {
        if command::is_core_module(bytes) {
            // A preview-1 program: only a command (`handler = "cgi"`) runs
            // it, adapted (once) at deploy; check now that it is one.
            if let Err(why) = command::check_start(bytes) {
                let http = component::check_header(bytes)
                    .err()
                    .unwrap_or_else(|| anyhow!(""));
                bail!("{http:#}; nor is it a command for handler = \"cgi\": {why:#}");
            }
            Ok(())
        } else {
            component::check_header(bytes)
        }
    }

    fn store_component(&self, digest: String, bytes: Arc<[u8]>) -> Result<String> {
        if let Some(state) = &self.state {
            state.put_component(&digest, &bytes)?;
        }
        self.components.insert(digest.clone(), bytes);
        self.uploads.insert(digest.clone(), Instant::now());
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

    fn live_revision(
        &self,
        spec: &FunctionSpec,
        number: u64,
        loaded: Loaded,
        pending: Option<Pending>,
    ) -> Result<Arc<LiveRevision>> {
        let metrics = self
            .metrics
            .entry(spec.name.clone())
            .or_insert_with(|| Arc::new(self.telemetry.function(&spec.name)))
            .clone();
        crate::logs::set_bounds(
            &spec.name,
            spec.logs.max_bytes.map(|b| b.bytes()),
            spec.logs.max_age.map(|a| a.0),
        );
        let live = LiveRevision::new(spec.clone(), number, loaded, metrics)?;
        if let Some(pending) = pending {
            self.compile_snapshot(&live, pending);
        }
        Ok(live)
    }

    fn check_route_free(&self, spec: &FunctionSpec) -> Result<()> {
        let Some(route) = spec.http_route() else {
            return Ok(());
        };
        for other in self.functions.iter() {
            if other.key() != &spec.name && other.live.spec.http_route() == Some(route) {
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
                .filter_map(|f| Some((f.live.spec.http_route()?.to_string(), f.live.clone()))),
        );
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Changes whenever a function is deployed, rolled back or deleted.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Saves `history` and makes `live` serve; the revision it replaces is
    /// retired (its requests in flight finish on it), and what no revision
    /// needs any more is collected.
    fn commit(
        &self,
        history: History,
        live: Arc<LiveRevision>,
        compiled: Vec<String>,
    ) -> Result<()> {
        if let Some(state) = &self.state {
            state.save(&history)?;
        }
        let name = history.name.clone();
        let replaced = self.functions.insert(
            name.clone(),
            Function {
                history,
                live,
                compiled,
            },
        );
        self.failed.remove(&name);
        self.publish_routes();
        if let Some(old) = replaced {
            old.live.retire();
        }
        self.collect_garbage();
        Ok(())
    }

    /// Deploys `spec` (whose component is a `sha256:` reference) as the
    /// function's new current revision.
    pub async fn deploy(
        &self,
        spec: FunctionSpec,
        manifest_applied: Option<String>,
    ) -> Result<Revision> {
        let prepared = self.prepare(&spec).await?;
        let _changes = self.changes.lock().await;
        self.check_route_free(&spec)?;
        let digest = digest_of(&spec.component)?.to_string();
        if let Some(state) = &self.state {
            state.put_component(&digest, &prepared.bytes)?;
        }
        // A function that failed to load keeps its history too.
        let mut record = self.stored(&spec.name).unwrap_or_else(|| History {
            name: spec.name.clone(),
            current: 0,
            revisions: Vec::new(),
            manifest_applied: None,
        });
        let number = record.revisions.iter().map(|r| r.number).max().unwrap_or(0) + 1;
        let live = self.live_revision(&spec, number, prepared.loaded, prepared.pending)?;
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
        gc::trim(&mut record, self.keep_revisions);
        self.uploads.remove(&digest);
        self.commit(record, live, prepared.compiled)?;
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
        let prepared = self.prepare(&target.spec).await?;
        let live = self.live_revision(
            &target.spec,
            target.number,
            prepared.loaded,
            prepared.pending,
        )?;
        record.current = target.number;
        self.commit(record, live, prepared.compiled)?;
        tracing::info!(function = %name, revision = target.number, "rolled back");
        Ok(target)
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let _changes = self.changes.lock().await;
        if !self.functions.contains_key(name) && !self.failed.contains_key(name) {
            return Err(NotFound(format!("no function named `{name}`")).into());
        }
        if let Some(state) = &self.state {
            state.remove(name)?;
        }
        let removed = self.functions.remove(name);
        self.failed.remove(name);
        self.publish_routes();
        if let Some((_, old)) = removed {
            old.live.retire();
        }
        self.collect_garbage();
        tracing::info!(function = %name, "deleted");
        Ok(())
    }

    /// The stored history of `name`, loaded or failed.
    fn stored(&self, name: &str) -> Option<History> {
        match self.functions.get(name) {
            Some(f) => Some(f.history.clone()),
            None => self.failed.get(name).and_then(|f| f.history.clone()),
        }
    }

    fn record(&self, name: &str) -> Result<History> {
        if let Some(history) = self.stored(name) {
            return Ok(history);
        }
        match self.failed.get(name) {
            Some(failed) => Err(anyhow!(
                "function `{name}` has no readable history ({}); deploy it again or delete it",
                failed.error
            )),
            None => Err(NotFound(format!("no function named `{name}`")).into()),
        }
    }

    pub fn revisions(&self, name: &str) -> Result<Vec<Revision>> {
        Ok(self.record(name)?.revisions)
    }

    pub fn info(&self, name: &str) -> Result<FunctionInfo> {
        if let Some(function) = self.functions.get(name) {
            let live = &function.live;
            return Ok(FunctionInfo {
                name: name.to_string(),
                status: Status::Ready,
                error: None,
                current_revision: live.number,
                world: Some(live.world),
                snapshotted: live.snapshotted(),
                spec: Some(live.spec.clone()),
                revisions: function.history.revisions.len(),
                metrics: live.metrics.snapshot(),
            });
        }
        let failed = self
            .failed
            .get(name)
            .ok_or_else(|| NotFound(format!("no function named `{name}`")))?;
        let history = failed.history.as_ref();
        Ok(FunctionInfo {
            name: name.to_string(),
            status: Status::Failed,
            error: Some(failed.error.clone()),
            current_revision: history.map_or(0, |h| h.current),
            world: None,
            snapshotted: false,
            spec: history
                .and_then(History::current_revision)
                .map(|r| r.spec.clone()),
            revisions: history.map_or(0, |h| h.revisions.len()),
            metrics: self
                .metrics
                .get(name)
                .map(|m| m.snapshot())
                .unwrap_or_default(),
        })
    }

    pub fn list(&self) -> Vec<FunctionInfo> {
        let mut names: Vec<String> = self.functions.iter().map(|e| e.key().clone()).collect();
        names.extend(self.failed.iter().map(|e| e.key().clone()));
        names.sort();
        names.iter().filter_map(|n| self.info(n).ok()).collect()
    }

    /// Functions that failed to load at start, with why, by name.
    pub fn failures(&self) -> Vec<(String, String)> {
        let mut failed: Vec<_> = self
            .failed
            .iter()
            .map(|f| (f.key().clone(), f.error.clone()))
            .collect();
        failed.sort();
        failed
    }

    /// The series of function `name` (kept after it is deleted).
    pub fn function_metrics(&self, name: &str) -> Option<Arc<FunctionMetrics>> {
        self.metrics.get(name).map(|m| m.clone())
    }

    /// The process's metrics (every function's, deleted ones included).
    pub fn telemetry(&self) -> &Metrics {
        &self.telemetry
    }
}
