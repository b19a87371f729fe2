//! One delivery attempt: the event as a CloudEvents binary-mode POST to the
//! function's wasi:http handler, run by the invocation core like any other
//! trigger's request ([`call`]).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request};

use crate::events::cloudevent::CloudEvent;
use crate::invoke::call::{Deadline, Outcome, call};
use crate::invoke::{self, BodyLimits, LiveRevision};
use crate::telemetry::ids::Trigger;
use crate::telemetry::traces;

/// Header carrying the attempt number (1 on the first delivery).
pub const ATTEMPT_HEADER: &str = "ce-deliveryattempt";

/// Delivers `event` to `live` as attempt number `attempt`, within
/// `ack_deadline`.
pub async fn deliver(
    live: &Arc<LiveRevision>,
    bodies: &BodyLimits,
    event: &CloudEvent,
    attempt: u32,
    ack_deadline: Duration,
) -> Outcome {
    let mut request = Request::new(invoke::full(event.data.clone()));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = internal_uri(live.spec.delivery_path());
    *request.headers_mut() = event.binary_headers();
    request
        .headers_mut()
        .insert(ATTEMPT_HEADER, HeaderValue::from(attempt));
    // The delivery's invocation continues the publisher's trace.
    if let Some(traceparent) = event.attribute(traces::TRACEPARENT)
        && let Ok(value) = HeaderValue::from_str(traceparent)
    {
        request.headers_mut().insert(traces::TRACEPARENT, value);
    }
    let deadline = Deadline {
        limit: ack_deadline,
        setting: "ack_deadline",
    };
    let what = format!("event {} attempt {attempt}", event.id());
    call(live, bodies, Trigger::Event, request, deadline, &what)
        .await
        .1
}

/// The URI of a request Wisp makes to a function itself: wasi:http wants an
/// authority, and `localhost` is as good as any (no network is involved).
pub fn internal_uri(path_and_query: &str) -> http::Uri {
    format!("http://localhost{path_and_query}")
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("http://localhost/"))
}
