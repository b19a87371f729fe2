//! `resize`: an example job task, a `wasi:cli/run` command (`fn main`).
//!
//! A `[[job]]` runs it once per task; it reads which task it is from
//! `WISP_TASK_INDEX`, `WISP_TASK_COUNT` and `WISP_TASK_ATTEMPT` (falling back
//! to the `CLOUD_RUN_TASK_*` names, so it runs on Cloud Run Jobs unchanged),
//! prints `resize: task I/N attempt A args=[...]`, pretends to work and exits 0.
//!
//! Knobs, all env vars, for the runtime's tests:
//! - `SINK=http://host:port`: POSTs `{"task": I, "attempt": A, "event": "start",
//!   "execution": E}` to `$SINK/seen` before working and the same with
//!   `"event": "end"` and `"exit": CODE` after (wasi:http outbound: the job
//!   needs `SINK` in `allowed_outbound_hosts`). A report that fails exits 4.
//! - `SLEEP_MS=N`: works (sleeps) N ms between start and end.
//! - `FAIL_UNTIL_ATTEMPT=K`: attempts below K fail with exit code 1.
//! - `FAIL_TASK=I`: task I always fails with exit code 2.

use std::time::Duration;

use wisp_sdk::Method;
use wisp_sdk::outbound::OutboundRequest;
use wisp_sdk::serde_json::{Value, json};

/// `WISP_<name>`, else `CLOUD_RUN_<name>`.
fn job_var(name: &str) -> Option<String> {
    std::env::var(format!("WISP_{name}"))
        .or_else(|_| std::env::var(format!("CLOUD_RUN_{name}")))
        .ok()
}

fn number(value: Option<String>, default: u64) -> u64 {
    value.and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn report(sink: &str, event: Value) -> Result<(), String> {
    let body = event.to_string();
    let reply = OutboundRequest::new(Method::Post, format!("{}/seen", sink.trim_end_matches('/')))
        .with_header("content-type", "application/json")
        .with_header("content-length", body.len().to_string())
        .with_body(body)
        .send()
        .map_err(|e| format!("report to {sink} failed: {e}"))?;
    match reply.status() {
        200..=299 => Ok(()),
        status => Err(format!("the sink {sink} answered {status}")),
    }
}

/// Exits with `code` as the process's exit code. `std::process::exit` would
/// reach the host as a plain failure (status 1) on wasip2;
/// `wasi:cli/exit.exit-with-code` carries the code itself.
fn exit(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    #[cfg(target_arch = "wasm32")]
    if code != 0 {
        wasi::cli::exit::exit_with_code(code);
    }
    std::process::exit(i32::from(code))
}

fn main() {
    let task = number(job_var("TASK_INDEX"), 0);
    let count = number(job_var("TASK_COUNT"), 1);
    let attempt = number(job_var("TASK_ATTEMPT"), 0);
    let execution = job_var("EXECUTION");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sink = std::env::var("SINK").ok().filter(|s| !s.is_empty());

    println!("resize: task {task}/{count} attempt {attempt} args={args:?}");

    if let Some(sink) = &sink {
        let start =
            json!({"task": task, "attempt": attempt, "event": "start", "execution": execution});
        if let Err(e) = report(sink, start) {
            eprintln!("resize: {e}");
            exit(4);
        }
    }

    let sleep_ms = number(std::env::var("SLEEP_MS").ok(), 0);
    if sleep_ms > 0 {
        std::thread::sleep(Duration::from_millis(sleep_ms));
    }

    let fail_until = number(std::env::var("FAIL_UNTIL_ATTEMPT").ok(), 0);
    let fail_task = std::env::var("FAIL_TASK")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    let code: u8 = if fail_task == Some(task) {
        eprintln!("resize: task {task} fails on every attempt (FAIL_TASK={task})");
        2
    } else if attempt < fail_until {
        eprintln!("resize: task {task} attempt {attempt} fails (FAIL_UNTIL_ATTEMPT={fail_until})");
        1
    } else {
        println!("resize: task {task} done");
        0
    };

    if let Some(sink) = &sink {
        let end = json!({"task": task, "attempt": attempt, "event": "end", "execution": execution, "exit": code});
        if let Err(e) = report(sink, end) {
            eprintln!("resize: {e}");
            exit(4);
        }
    }
    exit(code);
}
