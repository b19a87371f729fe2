//! `inprocess`: what one invocation costs inside the host, without sockets.
//!
//! For each guest it times, per invocation, the whole cycle a request goes
//! through in Wisp: admission, a new `Store` and instance from the
//! revision's `InstancePre` on the pooling allocator, the wasi:http handler
//! called with a synthetic `GET`, the response body read to the end, and the
//! store dropped. Three modes:
//!
//! - `fresh`: from the component as built (init, if any, runs lazily in
//!   every instance);
//! - `fresh-snapshot`: from its pre-initialized snapshot, as Wisp serves it;
//! - `warm`: one instance, created on the first request and called again
//!   and again (`isolation = "instance"`), the model of servers that reuse
//!   instances; the difference to `fresh-snapshot` is the price of
//!   per-request isolation.
//!
//! Every mode drives Wisp's own invocation core (`wisp::invoke::invoke` on a
//! `LiveRevision`), the exact code the gateway runs.
//!
//! It runs on a current-thread runtime: the number wanted is CPU cost per
//! invocation, and on a shared 2-core machine cross-thread wake-ups would
//! add more noise than signal (the HTTP section measures the real server).
//!
//! Output: one JSON object per line on stdout (`benches/report.py` reads
//! them), progress on stderr.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use serde_json::json;
use wasmtime::component::Component;
use wisp::config::{FunctionSpec, Isolation, PoolSettings, ServerSettings, Span};
use wisp::deploy::{component, snapshot};
use wisp::invoke::revision::{Entry, Loaded};
use wisp::invoke::source::Start;
use wisp::invoke::{self, BodyLimits, LiveRevision};
use wisp::sandbox::engine::WispEngine;
use wisp::sandbox::host::HostConfig;
use wisp::telemetry::ids::Trigger;
use wisp::telemetry::metrics::FunctionMetrics;
use wisp_benches::Summary;

#[derive(Parser)]
#[command(about = "Per-invocation cost inside the Wisp host (JSON lines on stdout)")]
struct Args {
    /// Where the built guests are (`<name>.wasm`).
    #[arg(long, default_value = "guest-examples/target")]
    guest_dir: PathBuf,
    /// Guests to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "hello,init-heavy")]
    guests: Vec<String>,
    /// Timed invocations per mode.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Untimed invocations first, to fault in the pool slots and code pages.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Modes to run, comma-separated (fresh, fresh-snapshot, warm); one
    /// alone is handy under a profiler.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fresh,fresh-snapshot,warm"
    )]
    modes: Vec<String>,
    /// Seconds one mode may take before it stops early: init-heavy without
    /// its snapshot costs tens of milliseconds per invocation, and a few
    /// hundred of those give a stable median.
    #[arg(long, default_value_t = 20.0)]
    budget_secs: f64,
}

/// Same request for every mode; `?key=1` is what init-heavy looks up, and
/// hello just echoes it.
fn request() -> Result<wasmtime_wasi_http::handler::Request> {
    Ok(http::Request::get("http://localhost/bench?key=1")
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync())?)
}

/// Reads a response to the end, as the gateway does, and checks that the
/// guest really answered: a benchmark of failing requests measures nothing.
async fn consume(resp: wasmtime_wasi_http::handler::Response) -> Result<Bytes> {
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the response body: {e:?}"))?
        .to_bytes();
    ensure!(status == 200, "guest answered {status}: {body:?}");
    Ok(body)
}

fn host_config(engine: &WispEngine) -> HostConfig {
    HostConfig::bare("bench", engine, 128 << 20)
}

/// Runs `one` `warmup` times untimed, then up to `iterations` times timed,
/// stopping early once `budget` is spent (warm-up gets a fifth of it).
async fn sample(args: &Args, mut one: impl AsyncFnMut() -> Result<Bytes>) -> Result<Vec<Duration>> {
    let budget = Duration::from_secs_f64(args.budget_secs);
    let started = Instant::now();
    let first = one().await?;
    if let Ok(text) = std::str::from_utf8(&first)
        && text.contains("init_runs=")
        && !text.contains("init_runs=1")
    {
        bail!("init must have run exactly once per instance, the guest says: {text}");
    }
    for _ in 1..args.warmup {
        if started.elapsed() > budget / 5 {
            break;
        }
        one().await?;
    }
    let started = Instant::now();
    let mut samples = Vec::with_capacity(args.iterations);
    while samples.len() < args.iterations && started.elapsed() < budget {
        let t = Instant::now();
        one().await?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

/// Invocations through Wisp's own invocation core, the code the gateway
/// runs: `reuse` false is `isolation = "invocation"` (a fresh instance each
/// time), true is `isolation = "instance"` with one request at a time.
async fn measure(
    args: &Args,
    engine: &WispEngine,
    component: &Component,
    reuse: bool,
) -> Result<(Vec<Duration>, u64)> {
    let metrics = Arc::new(FunctionMetrics::default());
    let mut spec = FunctionSpec::new("bench", "bench.wasm");
    spec.max_instances = 1;
    if reuse {
        spec.isolation = Isolation::Instance;
        // It goes after a second without work, like `wasmtime serve`'s
        // default idle timeout.
        spec.idle_timeout = Some(Span(Duration::from_secs(1)));
    }
    let loaded = Loaded {
        engine: engine.engine.clone(),
        pre: Entry::Proxy(component::prepare(engine, component)?),
        host: host_config(engine),
        start: Start::AsIs,
    };
    let live = LiveRevision::new(spec, 1, loaded, metrics.clone())?;
    // The server's defaults, as the gateway applies them.
    let server = ServerSettings::default();
    let bodies = BodyLimits::new(server.request_body_timeout, server.max_buffered_body);
    let samples = sample(args, async || {
        let invocation = invoke::start(Trigger::Http);
        let (resp, running) = invoke::invoke(&live, invocation, &bodies, request()?)
            .await
            .map_err(|f| anyhow::anyhow!("{f}"))?;
        let body = consume(resp).await?;
        running.finish();
        // A fresh instance is dropped by its worker task once the response
        // is done; that is part of its cost, so wait for it.
        while !reuse && metrics.snapshot().instances_live != 0 {
            tokio::task::yield_now().await;
        }
        Ok(body)
    })
    .await?;
    // Let a reused instance reach its idle timeout and go before the next
    // mode, so they never share the machine.
    while metrics.snapshot().instances_live != 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((samples, metrics.snapshot().instances_created))
}

/// The pre-initialized form of `bytes`, made the way Wisp makes it at deploy
/// (`None` if the guest has no `wizer-initialize` export).
async fn snapshot_of(engine: &WispEngine, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    snapshot::preinitialize(engine, bytes, &[]).await
}

fn report(guest: &str, mode: &str, samples: &[Duration], instances: u64) -> Option<Summary> {
    let s = Summary::of(samples)?;
    eprintln!(
        "inprocess: {guest:<12} {mode:<15} n={:<5} p50={:>9.1} µs  p99={:>9.1} µs  ({instances} instances)",
        s.n, s.p50_us, s.p99_us
    );
    println!(
        "{}",
        json!({"kind": "inprocess", "guest": guest, "mode": mode, "n": s.n,
               "p50_us": s.p50_us, "p99_us": s.p99_us, "mean_us": s.mean_us, "instances": instances})
    );
    Some(s)
}

async fn run_guest(args: &Args, engine: &WispEngine, guest: &str) -> Result<()> {
    let path = args.guest_dir.join(format!("{guest}.wasm"));
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "could not read `{}`; run scripts/build-guests",
            path.display()
        )
    })?;
    let compile = |bytes: &[u8]| component::compile(&engine.engine, bytes);
    let plain = compile(&bytes)?;
    let started = Instant::now();
    let snapshot = match snapshot_of(engine, &bytes).await? {
        Some(snap) => Some(compile(&snap)?),
        None => None,
    };
    let preinit_ms = started.elapsed().as_secs_f64() * 1e3;

    if snapshot.is_none() {
        eprintln!("inprocess: {guest} exports no wizer-initialize; no snapshot to measure");
    }
    let run = async |mode: &str, component: Option<&Component>, reuse| -> Result<Option<Summary>> {
        let Some(component) = component.filter(|_| args.modes.iter().any(|m| m == mode)) else {
            return Ok(None);
        };
        let (samples, n) = measure(args, engine, component, reuse).await?;
        Ok(report(guest, mode, &samples, n))
    };
    let cold = run("fresh", Some(&plain), false).await?;
    let snap = run("fresh-snapshot", snapshot.as_ref(), false).await?;
    let warm_s = run("warm", Some(snapshot.as_ref().unwrap_or(&plain)), true).await?;
    let ratio = |a: Option<Summary>, b: Option<Summary>| Some(a?.p50_us / b?.p50_us);
    let diff = |a: Option<Summary>, b: Option<Summary>| Some(a?.p50_us - b?.p50_us);
    println!(
        "{}",
        json!({"kind": "inprocess-derived", "guest": guest,
               "preinit_and_compile_ms": snapshot.as_ref().map(|_| preinit_ms),
               "no_snapshot_over_snapshot_p50": ratio(cold, snap),
               "snapshot_instance_over_warm_p50_us": diff(snap, warm_s)})
    );
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let engine = WispEngine::new(&PoolSettings::default())?;
        for guest in &args.guests {
            run_guest(&args, &engine, guest)
                .await
                .with_context(|| format!("guest `{guest}`"))?;
        }
        Ok(())
    })
}
