//! Process lifecycle: load functions, bind listeners, serve until SIGINT or
//! SIGTERM, then stop accepting and let in-flight invocations finish within
//! the grace period.
//!
//! The front door: at most `max_connections` connections are served at
//! once (beyond it, new ones wait in the kernel's accept backlog), and a
//! connection that delivers no complete request head within
//! `idle_timeout` is closed — whether it is new or idle between requests.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wasmtime_wasi_http::WasiBody;

use crate::config::{Manifest, ServerSettings, StateSpec, default_max_connections};
use crate::deploy::artifact::Artifacts;
use crate::deploy::registry::Registry;
use crate::events::metrics::EventsCollector;
use crate::events::sqlite::SqliteStore;
use crate::events::{Events, publish};
use crate::http::admin::{Admin, AdminToken, Guard, Triggers, canonical_files_root};
use crate::http::gateway::Gateway;
use crate::invoke::BodyLimits;
use crate::jobs::Jobs;
use crate::jobs::metrics::JobsCollector;
use crate::jobs::store::JobStore;
use crate::logs::{self, Bounds, LogStore};
use crate::sandbox::engine::WispEngine;
use crate::sandbox::guestlog;
use crate::sandbox::outbound::internal;
use crate::state::Services;
use crate::store::StateDir;
use crate::tasks::metrics::TasksCollector;
use crate::tasks::store::TaskStore;
use crate::tasks::{self, Tasks};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::metrics::pool::PoolCollector;
use crate::telemetry::traces;

/// Connections the admin API serves at once, apart from function traffic
/// so a flood there cannot lock the operator out.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// How often "max_connections reached" may be logged.
const SATURATION_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How long queued guest output may take to reach the log at exit.
const LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Loads `functions` (component paths) and serves them, with the admin API
/// when `settings.admin` is set, until a shutdown signal.
pub async fn run(manifest: Manifest) -> Result<()> {
    serve(manifest, false, drop).await
}

/// [`run`], handing the registry to `started` once every function is
/// deployed and the listeners are bound (`wisp up --watch` redeploys
/// rebuilt functions through it: then `redeploys`).
pub async fn serve(
    manifest: Manifest,
    redeploys: bool,
    started: impl FnOnce(Arc<Registry>),
) -> Result<()> {
    let Manifest {
        server: settings,
        topics,
        queues,
        schedules,
        state: stores,
        jobs,
        functions,
        builds: _,
    } = manifest;
    let nofile = raise_fd_limit();
    settings.check_admin()?;
    settings.check_limits()?;
    let traces = (settings.telemetry.otlp_endpoint.as_ref())
        .map(traces::start)
        .transpose()?;
    let state = settings
        .state_dir
        .as_deref()
        .map(StateDir::open)
        .transpose()?;
    // Before loading anything: a bad token file or files_root fails fast.
    let admin_token = settings
        .admin
        .map(|_| AdminToken::resolve(&settings))
        .transpose()?;
    let files_root = settings
        .files_root
        .as_deref()
        .map(canonical_files_root)
        .transpose()?;
    let state_path = state.as_ref().map(|s| s.root().to_path_buf());
    // Reserving the instance pool (one mprotect per fiber stack's guard
    // page, slot bookkeeping) and opening the stores are most of a start's
    // work: the engine is made on this thread, which goes on with the start,
    // while the stores open on another. With the default 1,000 stacks the
    // stores are done first and this thread never sleeps waiting for them
    // (waking a sleeping thread costs a start ~0.5 ms on a virtual
    // machine); with a pool fitted to fixed functions the engine is the
    // quicker one (benches/README.md, "Issue 18").
    let opening = {
        let (state_path, bounds) = (state_path.clone(), logs_bounds(&settings));
        tokio::task::spawn_blocking(move || Stores::open(state_path.as_deref(), bounds, &stores))
    };
    let mut pool = settings.pool.clone();
    if settings.admin.is_none() && state.is_none() && jobs.is_empty() && !redeploys {
        pool.fit_to(&functions);
        tracing::info!(
            "instance pool: {} fiber stacks, as many as the {} function(s) served can use",
            pool.stack_slots(),
            functions.len()
        );
    }
    let engine = WispEngine::new(&pool)?;
    let Stores {
        logs,
        services,
        events: event_store,
        tasks: task_store,
        jobs: job_store,
    } = opening
        .await
        .context("the thread opening the stores crashed")??;
    let own_ports = engine.own_ports.clone();
    let internal = engine.internal.clone();
    let engine_for_jobs = engine.clone();
    let metrics = Arc::new(Metrics::new());
    if let Some(pool) = PoolCollector::new(&engine.engine, &pool) {
        metrics.register_collector(pool);
    }
    let artifacts = Artifacts::new(
        engine.engine.clone(),
        settings.cache_dir().as_deref(),
        settings.cache_max_size.bytes(),
        metrics.artifact_cache.clone(),
    )?;
    let registry = Registry::new(
        engine,
        state,
        services.clone(),
        artifacts,
        settings.keep_revisions.get(),
        metrics.clone(),
    );
    registry.restore().await?;
    let declared: Vec<String> = functions.iter().map(|f| f.name.clone()).collect();
    for spec in functions {
        let name = spec.name.clone();
        let path = spec.component.clone();
        registry
            .apply_declared(spec)
            .await
            .with_context(|| format!("function `{name}` (`{path}`)"))?;
    }
    registry.retire_undeclared(&declared).await?;
    registry.settle().await;
    let bodies = BodyLimits::new(settings.request_body_timeout, settings.max_buffered_body);
    let events = Events::new(event_store, topics, registry.clone(), bodies.clone());
    let jobs = Jobs::open(job_store, jobs, engine_for_jobs, &registry).await?;
    let tasks = Tasks::open(
        task_store,
        queues,
        schedules,
        registry.clone(),
        bodies.clone(),
        jobs.clone(),
    )
    .await?;
    internal.set(Arc::new(internal::Router {
        topics: Arc::new(publish::Internal(events.clone())),
        queues: Arc::new(tasks::internal::Internal(tasks.clone())),
    }));
    metrics.register_collector(EventsCollector(events.clone()));
    metrics.register_collector(TasksCollector(tasks.clone()));
    metrics.register_collector(JobsCollector(jobs.clone()));
    events.start().await?;
    services.connect_events(events.clone());
    tasks.start();
    jobs.start().await?;

    let signals = Signals::listen()?;
    let listener = bind(settings.listen, "functions").await?;
    let admin_listener = match settings.admin {
        Some(addr) => Some(bind(addr, "admin API").await?),
        None => None,
    };
    // Functions were deployed before the ports were known; their outbound
    // policies read this shared set at request time.
    own_ports.add(listener.local_addr()?.port(), "functions");
    if let Some(admin) = &admin_listener {
        own_ports.add(admin.local_addr()?.port(), "admin API");
    }
    let stop = CancellationToken::new();
    let graceful = Arc::new(GracefulShutdown::new());

    let max_connections = settings
        .max_connections
        .unwrap_or_else(|| default_max_connections(nofile));
    tracing::info!(
        "front door: max_connections = {max_connections}{}, idle_timeout = {}, request_body_timeout = {}, max_buffered_body = {}",
        if settings.max_connections.is_none() {
            format!(" (from the open file limit {nofile})")
        } else {
            String::new()
        },
        settings.idle_timeout,
        settings.request_body_timeout,
        settings.max_buffered_body,
    );
    println!("wisp: listening on http://{}", listener.local_addr()?);
    started(registry.clone());
    let gateway = Gateway::new(registry.clone(), bodies);
    // Each loop's door holds the only other references to `graceful`, so
    // it can be unwrapped for the drain once the loops have returned.
    let door = |max_connections| Door {
        stop: stop.clone(),
        graceful: graceful.clone(),
        idle_timeout: settings.idle_timeout.0,
        max_connections,
    };
    let mut loops = vec![tokio::spawn(accept_loop(
        listener,
        door(max_connections as usize),
        gateway,
    ))];
    if let (Some(listener), Some(token)) = (admin_listener, admin_token) {
        let bound = listener.local_addr()?;
        // Before the admin line: scripts may stop reading at that one.
        if let Some(file) = token.generated_file() {
            println!("wisp: admin token in {}", file.display());
        }
        println!("wisp: admin API on http://{bound}");
        let admin = Admin::new(
            registry.clone(),
            Triggers {
                events: events.clone(),
                tasks: tasks.clone(),
                jobs: jobs.clone(),
                services: services.clone(),
                logs: logs.clone(),
            },
            Guard::new(token, bound),
            files_root,
        );
        loops.push(tokio::spawn(accept_loop(
            listener,
            door(ADMIN_MAX_CONNECTIONS),
            admin,
        )));
    }

    let signal = signals.recv().await;
    tracing::info!(
        "{signal}: no longer accepting connections; draining in-flight requests for up to {}",
        settings.shutdown_grace
    );
    stop.cancel();
    // Follows never end on their own: end them, or the drain waits for them.
    logs.stop_follows();
    events.stop().await;
    tasks.stop().await;
    jobs.stop().await;
    for l in loops {
        let _ = l.await;
    }
    // The accept loops have returned, so this is the last reference.
    let drain = async {
        if let Ok(graceful) = Arc::try_unwrap(graceful) {
            graceful.shutdown().await;
        }
        // A snapshot still compiling goes into the cache for the next start.
        registry.snapshots_compiled().await;
    };
    match tokio::time::timeout(settings.shutdown_grace.0, drain).await {
        Ok(()) => tracing::info!("all requests finished; bye"),
        Err(_) => tracing::warn!("grace period over; abandoning the requests still running"),
    }
    guestlog::flush(LOG_FLUSH_TIMEOUT).await;
    if let Err(e) = logs.flush().await {
        tracing::warn!("the log store's last records may be lost: {e:#}");
    }
    if let Some(traces) = traces {
        traces.shutdown().await;
    }
    Ok(())
}

/// The stores a server opens at start.
struct Stores {
    logs: LogStore,
    services: Arc<Services>,
    events: SqliteStore,
    tasks: TaskStore,
    jobs: JobStore,
}

impl Stores {
    fn open(state: Option<&Path>, bounds: Bounds, declared: &StateSpec) -> Result<Self> {
        let logs = LogStore::open(state, bounds)?;
        logs::install(logs.clone());
        guestlog::start();
        Ok(Stores {
            logs,
            services: Services::open(state, declared)?,
            events: Events::open_store(state)?,
            tasks: TaskStore::open(state)?,
            jobs: JobStore::open(state)?,
        })
    }
}

fn logs_bounds(settings: &ServerSettings) -> Bounds {
    Bounds {
        max_bytes: settings.logs_max_bytes.bytes(),
        max_age: settings.logs_max_age.0,
    }
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("could not listen for {what} on {addr}; is another server using it? pick another address or port 0")
    })
}

/// Something that answers HTTP requests: the gateway or the admin API.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: Request<Incoming>) -> impl Future<Output = Response<WasiBody>> + Send;
}

impl Handler for Gateway {
    fn handle(&self, req: Request<Incoming>) -> impl Future<Output = Response<WasiBody>> + Send {
        Gateway::handle(self, req)
    }
}

impl Handler for Admin {
    fn handle(&self, req: Request<Incoming>) -> impl Future<Output = Response<WasiBody>> + Send {
        Admin::handle(self, req)
    }
}

/// How one listener admits connections.
struct Door {
    stop: CancellationToken,
    graceful: Arc<GracefulShutdown>,
    idle_timeout: Duration,
    max_connections: usize,
}

async fn accept_loop<H: Handler>(listener: TcpListener, door: Door, handler: Arc<H>) {
    // One permit per connection, held by its task: with none left, the
    // loop stops accepting and new connections wait in the backlog.
    let open = Arc::new(Semaphore::new(door.max_connections));
    let mut said_full: Option<Instant> = None;
    loop {
        let permit = match open.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if said_full.is_none_or(|t| t.elapsed() >= SATURATION_LOG_INTERVAL) {
                    said_full = Some(Instant::now());
                    tracing::warn!(
                        "max_connections = {} reached: new connections wait in the accept backlog until one closes",
                        door.max_connections
                    );
                }
                tokio::select! {
                    _ = door.stop.cancelled() => return,
                    permit = open.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return, // never closed
                    },
                }
            }
        };
        let stream = tokio::select! {
            _ = door.stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE under a connection flood: back off
                    // instead of spinning, and keep serving the open ones.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small response chunks (streams, SSE) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = hyper::service::service_fn(move |req| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler.handle(req).await) }
        });
        let conn = http1::Builder::new()
            .keep_alive(true)
            // hyper's header read timer runs from the moment a connection
            // is ready for a request (accepted, or done with the previous
            // response) until that request's head is complete: it is both
            // the header read timeout and the keep-alive idle timeout.
            .timer(TokioTimer::new())
            .header_read_timeout(door.idle_timeout)
            // One contiguous write per response rather than `writev` of
            // head, chunk sizes and body pieces: for the small responses
            // functions mostly send, the kernel's loopback/TCP path costs
            // less for one buffer than for several, and the copy is tiny.
            .writev(false)
            .serve_connection(TokioIo::new(stream), service);
        let conn = door.graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("connection ended with an error: {e}");
            }
            drop(permit);
        });
    }
}

/// SIGTERM and SIGINT, listened for from before the ports open: a signal
/// sent as soon as the first response is out must find Wisp's handler, not
/// the default action, which kills the process without a drain.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("could not listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("could not listen for SIGINT")?,
        })
    }

    /// The first of them to come.
    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Each connection and each instance's streams take descriptors; the
/// default soft limit of 1024 would cap concurrency far below the pool.
/// Returns the limit in force.
fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => {
            tracing::debug!("open file limit: {n}");
            n
        }
        Err(e) => {
            let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
            tracing::warn!("could not raise the open file limit (staying at {soft}): {e}");
            soft
        }
    }
}
