//! One execution of a job: its tasks run `parallelism` at a time, each
//! attempt a fresh instance of the command with the Cloud Run Jobs
//! environment, retried up to `max_retries`; every state change is recorded
//! before the next step, so a restart resumes where it was.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wasmtime::Engine;
use wasmtime_wasi::cli::AsyncStdoutStream;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::config::JobSpec;
use crate::invoke::instances::next_instance_id;
use crate::invoke::{self, cost};
use crate::jobs::metrics::Counters;
use crate::jobs::store::{Execution, JobStore, TaskState};
use crate::logs::{self, Access, Entry, RecordLine};
use crate::sandbox::command::{self, Exit, STDOUT_BUDGET, Stdio};
use crate::sandbox::host::{Host, HostConfig};
use crate::sandbox::tag::InstanceTag;
use crate::telemetry::ids::Trigger;
use crate::telemetry::metrics::{FunctionMetrics, Outcome};
use crate::telemetry::traces;

/// How long the last lines of an attempt's output may take to be stored.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Lines of output written to the store at once.
const LOG_BATCH: usize = 64;

/// A job, loaded: its settings and its linked command.
pub struct Job {
    pub spec: JobSpec,
    pub pre: CommandPre<Host>,
    pub host: HostConfig,
    /// Its attempts as invocations of trigger `job`, under its name.
    pub metrics: Arc<FunctionMetrics>,
    pub counters: Counters,
}

/// What every task of one execution shares.
struct Context {
    job: Arc<Job>,
    exec: Execution,
    store: JobStore,
    engine: Engine,
    cancel: CancellationToken,
}

/// Runs (or resumes) `exec` to its end; returns its final state.
pub async fn execute(
    job: Arc<Job>,
    exec: Execution,
    tasks: Vec<TaskState>,
    store: JobStore,
    engine: Engine,
    cancel: CancellationToken,
) -> &'static str {
    let slots = Arc::new(Semaphore::new(exec.parallelism.max(1) as usize));
    let cx = Arc::new(Context {
        job,
        exec,
        store,
        engine,
        cancel,
    });
    let mut running = Vec::new();
    let mut failed = false;
    for task in tasks {
        match task.state.as_str() {
            "succeeded" => continue,
            "failed" => {
                failed = true;
                continue;
            }
            _ => {}
        }
        // An attempt a restart interrupted is not the task's failure.
        let done = if task.state == "running" {
            task.attempts.saturating_sub(1)
        } else {
            task.attempts
        };
        let (cx, slots) = (cx.clone(), slots.clone());
        running.push(tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return false;
            };
            run_task(&cx, task.index, done).await
        }));
    }
    for task in running {
        failed |= !task.await.unwrap_or(false);
    }
    let state = if cx.cancel.is_cancelled() {
        "cancelled"
    } else if failed {
        "failed"
    } else {
        "succeeded"
    };
    if let Err(e) = cx.store.finish(&cx.exec.id, state).await {
        tracing::error!(execution = %cx.exec.id, "{e:#}");
    }
    cx.job.counters.execution_ended(state);
    tracing::info!(job = %cx.job.spec.name, execution = %cx.exec.id, "execution {state}");
    state
}

/// Runs task `idx` until it succeeds or runs out of retries; whether it
/// succeeded.
async fn run_task(cx: &Context, idx: u32, mut attempt: u32) -> bool {
    let exec = &cx.exec.id;
    loop {
        if cx.cancel.is_cancelled() {
            return false;
        }
        if let Err(e) = cx.store.start_task(exec, idx, attempt + 1).await {
            tracing::error!(execution = %exec, "{e:#}");
            return false;
        }
        let exit = tokio::select! {
            exit = run_attempt(cx, idx, attempt) => exit,
            _ = cx.cancel.cancelled() => return false,
        };
        let retries_left = attempt < cx.job.spec.max_retries;
        let state = match (exit.success(), retries_left) {
            (true, _) => "succeeded",
            (false, true) => "pending",
            (false, false) => "failed",
        };
        tracing::info!(
            job = %cx.job.spec.name, execution = %exec, task = idx, attempt,
            "task {idx} attempt {attempt}: {exit}"
        );
        if let Err(e) = cx.store.end_task(exec, idx, state, exit.to_string()).await {
            tracing::error!(execution = %exec, "{e:#}");
        }
        cx.job.counters.attempt_ended(state);
        match state {
            "succeeded" => return true,
            "failed" => return false,
            _ => attempt += 1,
        }
    }
}

/// The status an attempt's access record shows (as HTTP would: 200 for
/// exit 0, 504 for a timeout, 508 past `cpu_time`, 500 otherwise) and how
/// metrics count it.
fn counted(exit: &Exit, tag: &InstanceTag) -> (u16, Outcome) {
    match exit {
        Exit::Code(0) => (200, Outcome::Success),
        Exit::Code(_) => (500, Outcome::ServerError),
        Exit::TimedOut => (504, Outcome::TimedOut),
        Exit::Failed(_) if tag.cpu_exceeded() => (508, Outcome::CpuTime),
        Exit::Failed(_) if tag.memory_exceeded() => (500, Outcome::Memory),
        Exit::Failed(_) => (500, Outcome::Trap),
    }
}

/// The environment of one attempt: the job's, the execution's overrides,
/// and the Cloud Run Jobs variables under both names.
/// With traces on, `TRACEPARENT` is the attempt's span, so what the command
/// does continues the trace.
fn environment(
    cx: &Context,
    idx: u32,
    attempt: u32,
    span: &tracing::Span,
) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> = cx.exec.env.clone();
    if let Some(traceparent) = traces::traceparent_of(span) {
        env.insert(traces::TRACEPARENT_ENV.into(), traceparent);
    }
    let values = [
        ("JOB", cx.job.spec.name.clone()),
        ("EXECUTION", cx.exec.id.clone()),
        ("TASK_INDEX", idx.to_string()),
        ("TASK_COUNT", cx.exec.tasks.to_string()),
        ("TASK_ATTEMPT", attempt.to_string()),
    ];
    for (name, value) in values {
        env.insert(format!("WISP_{name}"), value.clone());
        env.insert(format!("CLOUD_RUN_{name}"), value);
    }
    env.into_iter().collect()
}

/// A pipe whose lines go to the job's log, tagged with task and attempt.
fn log_pipe(
    cx: &Context,
    idx: u32,
    attempt: u32,
    stream: &'static str,
) -> (AsyncStdoutStream, tokio::task::JoinHandle<()>) {
    let (writer, reader) = tokio::io::duplex(STDOUT_BUDGET);
    let (store, exec, job) = (
        cx.store.clone(),
        cx.exec.id.clone(),
        cx.job.spec.name.clone(),
    );
    let drain = tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        let mut batch = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(target: "wisp::job", %job, execution = %exec, task = idx, attempt, stream, "{line}");
            batch.push(line);
            if batch.len() >= LOG_BATCH {
                store.log(&exec, idx, attempt, stream, std::mem::take(&mut batch));
            }
        }
        if !batch.is_empty() {
            store.log(&exec, idx, attempt, stream, batch);
        }
    });
    (AsyncStdoutStream::new(STDOUT_BUDGET, writer), drain)
}

async fn run_attempt(cx: &Context, idx: u32, attempt: u32) -> Exit {
    let span = traces::job_attempt_span(
        &cx.job.spec.name,
        &cx.exec.id,
        idx,
        attempt,
        cx.exec.env.get(traces::TRACEPARENT_ENV).map(String::as_str),
    );
    let (stdout, out_drain) = log_pipe(cx, idx, attempt, "stdout");
    let (stderr, err_drain) = log_pipe(cx, idx, attempt, "stderr");
    let stdio = Stdio {
        args: cx.job.spec.args.clone(),
        env: environment(cx, idx, attempt, &span),
        stdin: bytes::Bytes::new(),
        stdout: Some(stdout),
        stderr: Some(stderr),
    };
    let tag = InstanceTag::new(cx.job.host.function.clone(), next_instance_id(), false);
    if let Some(cx) = traces::context_of(&span) {
        tag.set_trace(cx);
    }
    let invocation = invoke::start(Trigger::Job);
    tag.set_invocation(invocation.id);
    invocation.started_on(&tag);
    let (metrics, started) = (&cx.job.metrics, Instant::now());
    metrics.invocation_started(Trigger::Job);
    cx.job.counters.attempts.fetch_add(1, Relaxed);
    let exit = match Host::command(&cx.job.host, tag.clone(), metrics.clone(), stdio) {
        Ok(host) => {
            let run = command::run(&cx.engine, &cx.job.pre, host, cx.job.spec.task_timeout.0);
            run.instrument(span.clone()).await
        }
        Err(e) => Exit::Failed(format!("{e:#}")),
    };
    traces::record_exit(&span, &exit.to_string(), exit.success());
    let (status, outcome) = counted(&exit, &tag);
    let wall = started.elapsed();
    metrics.invocation_finished(Trigger::Job, outcome, wall, wall);
    let usage = cost::meter(metrics, cx.job.spec.memory.bytes(), &invocation, wall);
    let what = format!("task {idx} attempt {attempt}: {exit}");
    logs::record(Entry::access(
        cx.job.host.function.clone(),
        None,
        invocation.id,
        Trigger::Job,
        Access::metered(status, &usage, None),
        RecordLine::Text(what),
    ));
    // The store (and with it the pipes' writers) is gone: the drains end,
    // unless a writer lingers somewhere; the lines are in the log anyway.
    for drain in [out_drain, err_drain] {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
    }
    exit
}
