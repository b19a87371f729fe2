//! One delivery attempt: the event as a CloudEvents binary-mode POST to the
//! function's wasi:http handler, through the same invocation core as HTTP
//! requests, and what its answer means for the event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Method, Request};
use http_body_util::BodyExt;

use crate::events::cloudevent::CloudEvent;
use crate::invoke::{self, BodyLimits, LiveRevision};
use crate::telemetry::ids::Trigger;

/// Header carrying the attempt number (1 on the first delivery).
pub const ATTEMPT_HEADER: &str = "ce-deliveryattempt";

/// What an attempt means for the event.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A 2xx: the event is done.
    Acked,
    /// 429, 503 or Wisp's own refusal: try again later without counting
    /// the attempt.
    BackPressure(String),
    /// Any other status, a trap, a timeout, no response: a counted attempt.
    Failed(String),
}

/// Delivers `event` to `live` as attempt number `attempt`, within
/// `deadline`.
pub async fn deliver(
    live: &Arc<LiveRevision>,
    bodies: &BodyLimits,
    event: &CloudEvent,
    attempt: u32,
    deadline: Duration,
) -> Outcome {
    let invocation = invoke::start(Trigger::Event);
    let started = Instant::now();
    live.metrics.invocation_started(Trigger::Event);
    let mut request = Request::new(invoke::full(event.data.clone()));
    *request.method_mut() = Method::POST;
    // wasi:http wants an authority; the function's own address is as good
    // as any, and no network is involved.
    if let Ok(uri) = format!("http://localhost{}", live.spec.delivery_path()).parse() {
        *request.uri_mut() = uri;
    }
    *request.headers_mut() = event.binary_headers();
    request
        .headers_mut()
        .insert(ATTEMPT_HEADER, HeaderValue::from(attempt));
    let run = async {
        let (response, running) = invoke::invoke(live, invocation.clone(), bodies, request).await?;
        let status = response.status().as_u16();
        // The guest may still be writing; its work is over when the body is.
        let complete = response.into_body().collect().await.is_ok();
        running.finish();
        Ok::<_, crate::invoke::Failure>((status, complete))
    };
    let (status, outcome) = match tokio::time::timeout(deadline, run).await {
        Err(_) => (
            504,
            Outcome::Failed(format!(
                "no acknowledgement within ack_deadline = {}",
                humantime::format_duration(deadline)
            )),
        ),
        Ok(Err(failure)) if failure.is_back_pressure() => {
            (failure.status(), Outcome::BackPressure(failure.to_string()))
        }
        Ok(Err(failure)) => (failure.status(), Outcome::Failed(failure.to_string())),
        Ok(Ok((status, false))) => (
            status,
            Outcome::Failed(format!("status {status}, then the response body failed")),
        ),
        Ok(Ok((status, true))) => (
            status,
            match status {
                200..=299 => Outcome::Acked,
                429 | 503 => Outcome::BackPressure(format!("the function answered {status}")),
                _ => Outcome::Failed(format!("the function answered {status}")),
            },
        ),
    };
    live.metrics.invocation_finished(Trigger::Event, status);
    tracing::info!(
        target: "wisp::access",
        function = %live.function,
        revision = live.number,
        invocation = %invocation.id,
        trigger = %Trigger::Event,
        event = %event.id(),
        attempt,
        status,
        duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        "event {} attempt {attempt}: {status}",
        event.id(),
    );
    outcome
}
