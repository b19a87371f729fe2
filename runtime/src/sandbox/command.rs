//! Running a command — a `wasi:cli/run` component, or a WASI preview-1
//! program adapted into one at deploy — once, to completion: its arguments,
//! environment, stdin and stdout are the caller's (a job task, a CGI
//! request); its stderr goes to the log; its limits are any instance's.

use std::time::Duration;

use bytes::Bytes;
use wasmtime::Engine;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::cli::AsyncStdoutStream;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::sandbox::host::{Host, new_store};

/// Bytes of stdout the guest may write ahead of the reader.
pub const STDOUT_BUDGET: usize = 64 << 10;

/// What one run gets beyond its function's or job's settings.
pub struct Stdio {
    /// `argv[1..]`; `argv[0]` is the program's name.
    pub args: Vec<String>,
    /// Added to the configured environment.
    pub env: Vec<(String, String)>,
    pub stdin: Bytes,
    /// Where stdout and stderr go; `None`: to the log.
    pub stdout: Option<AsyncStdoutStream>,
    pub stderr: Option<AsyncStdoutStream>,
}

/// How a run ended.
#[derive(Debug, PartialEq)]
pub enum Exit {
    /// `exit(code)`, or 0 when `main` returned.
    Code(i32),
    /// A trap (including memory and CPU limits, which the instance's tag
    /// names), or a failure to instantiate.
    Failed(String),
    /// Still running at the deadline; stopped.
    TimedOut,
}

impl Exit {
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Failed(e) => write!(f, "failed: {e}"),
            Exit::TimedOut => f.write_str("timed out"),
        }
    }
}

/// Runs the command in `host` until it exits or `timeout` passes.
pub async fn run(engine: &Engine, pre: &CommandPre<Host>, host: Host, timeout: Duration) -> Exit {
    let tag = host.tag.clone();
    let mut store = new_store(engine, host);
    let run = async {
        let command = pre.instantiate_async(&mut store).await?;
        command.wasi_cli_run().call_run(&mut store).await
    };
    match tokio::time::timeout(timeout, run).await {
        Err(_) => Exit::TimedOut,
        Ok(Ok(Ok(()))) => Exit::Code(0),
        Ok(Ok(Err(()))) => Exit::Code(1),
        Ok(Err(e)) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => Exit::Code(exit.0),
            None if tag.memory_exceeded() => Exit::Failed(format!("memory limit reached: {e:#}")),
            None if tag.cpu_exceeded() => Exit::Failed("cpu_time limit reached".into()),
            None => Exit::Failed(format!("{e:#}")),
        },
    }
}
