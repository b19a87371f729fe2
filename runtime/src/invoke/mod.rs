//! The invocation core, the same for every trigger: [`invoke`] runs one
//! request against a function's live revision, with the function's own
//! limits, and returns the response or a typed [`Failure`].
//!
//! On the way: the request body limits ([`body`]), [`admission`] (one fair
//! wait with a deadline), an instance from [`instances`] (fresh, stashed or
//! reused), the [`worker`] that runs it, and [`failure`] to name how it
//! ended. Triggers other than HTTP run requests to completion with
//! [`call`].

pub mod admission;
pub mod body;
pub mod call;
pub mod cgi;
pub mod cost;
pub mod failure;
pub mod instances;
pub mod invocation;
pub mod revision;
pub mod source;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tracing::Instrument;
use wasmtime_wasi_http::WasiBody;

pub use body::BodyLimits;
pub use failure::Failure;
pub use invocation::Invocation;
pub use revision::LiveRevision;

use crate::telemetry::ids::{InvocationId, Trigger, random_seed};
use crate::telemetry::traces;

/// A new invocation of `trigger` with a process-unique id.
pub fn start(trigger: Trigger) -> Arc<Invocation> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if NEXT.load(Ordering::Relaxed) == 0 {
        let _ = NEXT.compare_exchange(0, random_seed() | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    Invocation::new(InvocationId(NEXT.fetch_add(1, Ordering::Relaxed)), trigger)
}

/// A response, and what must live as long as its body is being read: the
/// request's place among those in flight (reused instances; a fresh
/// instance's invocation holds its own), and the invocation, cancelled if
/// this is dropped before [`Running::finish`] (the reader went away).
pub struct Running {
    invocation: Arc<Invocation>,
    _place: Option<OwnedSemaphorePermit>,
    finished: bool,
}

impl Running {
    pub fn invocation(&self) -> &Arc<Invocation> {
        &self.invocation
    }

    /// The response was delivered (or failed) in full: nothing to cancel.
    pub fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            self.invocation.cancel();
        }
    }
}

/// Cancels the invocation if the call is dropped before it returns.
struct CancelOnDrop<'a>(Option<&'a Invocation>);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(invocation) = self.0 {
            invocation.cancel();
        }
    }
}

/// Runs `request` as `invocation` on `live`, its body held to `limits`.
/// Dropping the future (or the returned [`Running`] before the body is
/// read) cancels the invocation: its instance is dropped and its place
/// freed.
pub async fn invoke(
    live: &LiveRevision,
    invocation: Arc<Invocation>,
    limits: &BodyLimits,
    request: Request<WasiBody>,
) -> Result<(Response<WasiBody>, Running), Failure> {
    let result = run(live, &invocation, limits, request).await;
    if let Err(failure) = &result {
        tracing::warn!(
            function = %live.function, invocation = %invocation.id, trigger = %invocation.trigger,
            "{failure}"
        );
    }
    result
}

async fn run(
    live: &LiveRevision,
    invocation: &Arc<Invocation>,
    limits: &BodyLimits,
    request: Request<WasiBody>,
) -> Result<(Response<WasiBody>, Running), Failure> {
    let arrived = Instant::now();
    cost::check_budget(live)?;
    let mut cancel = CancelOnDrop(Some(invocation));
    let request = request.map(|b| limits.timed(b, invocation));
    let mut request =
        body::limit_body(limits, live.spec.max_request_body, invocation, request).await?;
    let handler = match &live.handler {
        revision::Handler::Proxy(handler) => handler,
        revision::Handler::Cgi(cgi) => {
            let served = cgi::serve(live, cgi, invocation, request, arrived).await;
            cancel.0 = None;
            return served;
        }
    };
    let instances = &handler.state().instances;
    let admission = &instances.admission;
    let deadline = arrived + admission.queue_timeout();
    let mut place = Some(
        admission
            .admit(deadline)
            .instrument(traces::admission_span())
            .await
            .map_err(Failure::AtCapacity)?,
    );
    if instances.reuse.is_none()
        && let Some(place) = place.take()
    {
        invocation.hold(place);
    }
    loop {
        let since = admission.generation();
        match handler.handle(invocation.clone(), request).await {
            Ok(response) => {
                cancel.0 = None;
                let running = Running {
                    invocation: invocation.clone(),
                    _place: place,
                    finished: false,
                };
                return Ok((response, running));
            }
            Err(error) => match failure::handed_back(error) {
                Ok(back) => {
                    request = back;
                    admission
                        .wait_for_capacity(since, deadline)
                        .instrument(traces::admission_span())
                        .await
                        .map_err(Failure::AtCapacity)?;
                }
                Err(error) => {
                    cancel.0 = None;
                    return Err(failure::classify(live, invocation, limits.timeout, &error));
                }
            },
        }
    }
}

/// A complete in-memory body in the type every response here uses.
pub fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}
