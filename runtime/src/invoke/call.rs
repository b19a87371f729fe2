//! A request from a trigger other than HTTP — an event delivery, a task,
//! a schedule firing — run to completion through [`invoke`](super::invoke):
//! the response is read to its end, the whole within a deadline, and the
//! outcome named the way every such trigger needs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::BodyExt;
use tracing::Instrument;
use wasmtime_wasi_http::WasiBody;

use crate::invoke::failure::died_mid_body;
use crate::invoke::{self, BodyLimits, Failure, LiveRevision};
use crate::logs::{Access, Entry, RecordLine};
use crate::sandbox::guestlog;
use crate::telemetry::ids::Trigger;
use crate::telemetry::metrics::Outcome as Counted;
use crate::telemetry::traces;

/// What an attempt means for whoever retries it.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A 2xx: done.
    Done,
    /// 429, 503 or Wisp's own refusal: try again later without counting
    /// the attempt against the function.
    BackPressure(String),
    /// Any other status, a trap, a timeout, no response: a counted attempt.
    Failed(String),
}

/// The limit of one attempt, and the setting that gave it (named in the
/// failure).
pub struct Deadline {
    pub limit: Duration,
    pub setting: &'static str,
}

/// Runs `request` on `live` as an invocation of `trigger`; `what` names the
/// attempt in the access log ("event 42 attempt 1").
pub async fn call(
    live: &Arc<LiveRevision>,
    bodies: &BodyLimits,
    trigger: Trigger,
    request: Request<WasiBody>,
    deadline: Deadline,
    what: &str,
) -> (u16, Outcome) {
    let invocation = invoke::start(trigger);
    let span = traces::invocation_span(&live.function, live.number, &invocation, request.headers());
    let started = Instant::now();
    live.metrics.invocation_started(trigger);
    let mut first_byte = None;
    let run = async {
        let (response, running) = invoke::invoke(live, invocation.clone(), bodies, request).await?;
        first_byte = Some(started.elapsed());
        let status = response.status().as_u16();
        // The guest may still be writing; its work is over when the body is.
        let complete = response.into_body().collect().await.is_ok();
        running.finish();
        Ok::<_, Failure>((status, complete))
    };
    let ended = tokio::time::timeout(deadline.limit, run.instrument(span.clone())).await;
    let (status, outcome, counted) = match ended {
        Err(_) => (
            504,
            Outcome::Failed(format!(
                "no response within {} = {}",
                deadline.setting,
                humantime::format_duration(deadline.limit)
            )),
            Counted::TimedOut,
        ),
        Ok(Err(failure)) if failure.is_back_pressure() => (
            failure.status(),
            Outcome::BackPressure(failure.to_string()),
            failure.outcome(),
        ),
        Ok(Err(failure)) => (
            failure.status(),
            Outcome::Failed(failure.to_string()),
            failure.outcome(),
        ),
        Ok(Ok((status, false))) => (
            status,
            Outcome::Failed(format!("status {status}, then the response body failed")),
            died_mid_body(&invocation),
        ),
        Ok(Ok((status, true))) => (
            status,
            match status {
                200..=299 => Outcome::Done,
                429 | 503 => Outcome::BackPressure(format!("the function answered {status}")),
                _ => Outcome::Failed(format!("the function answered {status}")),
            },
            Counted::of_status(status),
        ),
    };
    let duration = started.elapsed();
    traces::record_status(&span, status);
    live.metrics
        .invocation_finished(trigger, counted, first_byte.unwrap_or(duration), duration);
    let usage = invoke::cost::meter(
        &live.metrics,
        live.spec.memory.bytes(),
        &invocation,
        duration,
    );
    let duration_ms = crate::telemetry::logging::millis(duration);
    tracing::info!(
        target: "wisp::access",
        function = %live.function,
        revision = live.number,
        invocation = %invocation.id,
        %trigger,
        status,
        duration_ms,
        cpu_ms = usage.cpu.as_millis() as u64,
        gb_s = usage.gb_s,
        "{what}: {status}",
    );
    guestlog::record_after_output(Entry::access(
        live.function.clone(),
        Some(live.number),
        invocation.id,
        trigger,
        Access::metered(status, &usage, None),
        RecordLine::Text(format!("{what}: {status}")),
    ));
    (status, outcome)
}
