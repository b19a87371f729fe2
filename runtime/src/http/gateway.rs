//! The public HTTP side: route a request to its function's live revision,
//! run it through the invocation core, and map every way an invocation can
//! end to the status a user expects — the one place that does — with the
//! invocation id on every response.

use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::deploy::registry::Registry;
use crate::http::access::AccessRecord;
use crate::http::respond::{plain, set_invocation_header};
use crate::invoke::admission::Rejected;
use crate::invoke::{self, BodyLimits, Failure, LiveRevision};
use crate::telemetry::ids::{InvocationId, Trigger};
use crate::telemetry::traces;

pub struct Gateway {
    registry: Arc<Registry>,
    bodies: Arc<BodyLimits>,
}

impl Gateway {
    pub fn new(registry: Arc<Registry>, bodies: Arc<BodyLimits>) -> Arc<Self> {
        Arc::new(Gateway { registry, bodies })
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<WasiBody> {
        let invocation = invoke::start(Trigger::Http);
        let id = invocation.id;
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let Some(live) = self.registry.route(uri.path()) else {
            let mut resp = plain(
                StatusCode::NOT_FOUND,
                format!("no function is routed at `{}`\n", uri.path()),
            );
            set_invocation_header(&mut resp, id);
            tracing::info!(target: "wisp::access", invocation = %id, trigger = %Trigger::Http, %method, path = %uri.path(), status = 404, "no route");
            return resp;
        };
        // From here on the request is logged exactly once, also if the
        // client goes away before the response (status 499).
        let span = traces::invocation_span(&live.function, live.number, &invocation, req.headers());
        let record =
            AccessRecord::start(live.clone(), invocation.clone(), method, uri).traced(span.clone());
        let req = req.map(|body| body.map_err(HttpError::from).boxed_unsync());
        let invoked = invoke::invoke(&live, invocation, &self.bodies, req).instrument(span);
        match invoked.await {
            Ok((mut resp, running)) => {
                set_invocation_header(&mut resp, id);
                record.attach(resp, Some(running))
            }
            Err(failure) => {
                let resp = failure_response(&live, &failure, id);
                record.refuse(&failure, resp)
            }
        }
    }
}

/// The status and text for each way an invocation fails.
fn failure_response(
    live: &LiveRevision,
    failure: &Failure,
    id: InvocationId,
) -> Response<WasiBody> {
    let spec = &live.spec;
    let message = match failure {
        Failure::NotFound => format!("function `{}` is not deployed", live.function),
        Failure::AtCapacity(Rejected::QueueFull | Rejected::QueueTimeout) => {
            "too many requests: every instance of this function is busy".to_string()
        }
        Failure::PoolExhausted => "the server is at capacity".to_string(),
        Failure::BodyTooLarge(limit) => {
            format!("request body is larger than this function's limit of {limit}")
        }
        Failure::BadBody(e) => format!("could not read the request body: {e}"),
        Failure::BodyTimeout(timeout) => {
            format!("the request body stalled: nothing arrived for {timeout}")
        }
        // Not 413: the body may be fine, the server is holding too many
        // others at the moment; retrying later may succeed.
        Failure::BodyBufferFull(_) => {
            "the server is holding too many request bodies; retry, or send a content-length"
                .to_string()
        }
        Failure::StartFailed(_) => "the function could not be started".to_string(),
        Failure::TimedOut(_) => format!(
            "the function did not respond within its timeout of {}",
            spec.timeout
        ),
        Failure::CpuLimit(limit) => {
            format!("the function used more than its cpu_time limit of {limit}")
        }
        Failure::MemoryLimit(_) | Failure::Trapped(_) | Failure::NoResponse => {
            "the function failed (trap, panic or no response)".to_string()
        }
        // Nobody reads this one; the access log says 499.
        Failure::Cancelled => "cancelled".to_string(),
        Failure::CommandFailed(why) => format!("the function's command failed: {why}"),
    };
    let status = StatusCode::from_u16(failure.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = plain(status, format!("{message}; invocation id {id}\n"));
    set_invocation_header(&mut resp, id);
    if failure.is_back_pressure() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}
