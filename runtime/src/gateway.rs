//! The public HTTP side: route a request to its function's current revision,
//! run it, and turn every way an invocation can end into the status a user
//! expects, with the invocation id on every response and one access-log line
//! per invocation.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::LengthLimitError;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use wasmtime::PoolConcurrencyLimitError;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::admission::Rejected;
use crate::host::InvocationId;
use crate::invoke::Invocation;
use crate::registry::{Live, Registry};

/// Response header carrying the invocation id, also found in every log line.
pub const INVOCATION_HEADER: &str = "x-wisp-invocation-id";

pub struct Gateway {
    registry: Arc<Registry>,
    next_id: AtomicU64,
}

impl Gateway {
    pub fn new(registry: Arc<Registry>) -> Arc<Self> {
        // A random start keeps ids from repeating across restarts.
        let seed =
            std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0u8);
        Arc::new(Gateway {
            registry,
            next_id: AtomicU64::new(seed),
        })
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<WasiBody> {
        let started = Instant::now();
        let id = InvocationId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let Some(live) = self.registry.route(uri.path()) else {
            let mut resp = plain(
                StatusCode::NOT_FOUND,
                format!("no function is routed at `{}`\n", uri.path()),
            );
            set_invocation_header(&mut resp, id);
            tracing::info!(target: "wisp::access", invocation = %id, %method, path = %uri.path(), status = 404, "no route");
            return resp;
        };
        live.metrics.invocation_started();
        let invocation = Invocation::new(id);
        let resp = self.invoke(&live, &invocation, req).await;
        AccessRecord {
            live,
            invocation,
            method,
            uri,
            started,
            status: 0,
        }
        .attach(resp)
    }

    async fn invoke(
        &self,
        live: &Live,
        invocation: &Arc<Invocation>,
        req: Request<Incoming>,
    ) -> Response<WasiBody> {
        let req = match limit_body(live, invocation.id, req).await {
            Ok(req) => req,
            Err(resp) => return resp,
        };
        match run(live, invocation, req).await {
            Ok(mut resp) => {
                set_invocation_header(&mut resp, invocation.id);
                resp
            }
            Err(error) => failure(live, invocation, &error),
        }
    }
}

/// Hands the request to the revision. When reused instances are all busy
/// and `max_instances` are live, the request waits in the bounded queue and
/// is offered again until an instance can take it or `queue_timeout` ends.
async fn run(
    live: &Live,
    invocation: &Arc<Invocation>,
    mut req: Request<WasiBody>,
) -> wasmtime::Result<Response<WasiBody>> {
    let admission = &live.handler.state().maker.admission;
    let mut queued = None;
    let mut deadline = None;
    loop {
        let error = match live.handler.handle(invocation.clone(), req).await {
            Ok(resp) => return Ok(resp),
            Err(error) => error,
        };
        let at_capacity = error
            .downcast_ref::<InstantiationError<Arc<Invocation>>>()
            .is_some_and(|e| e.error.downcast_ref::<Rejected>() == Some(&Rejected::AtCapacity));
        if !at_capacity {
            return Err(error);
        }
        let Ok(rejected) = error.downcast::<InstantiationError<Arc<Invocation>>>() else {
            unreachable!("checked just above");
        };
        req = rejected
            .request
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        if queued.is_none() {
            queued = Some(admission.enter_queue().map_err(wasmtime::Error::from)?);
            deadline = Some(Instant::now() + admission.queue_timeout());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(wasmtime::Error::from(Rejected::QueueTimeout));
        }
        tokio::time::sleep(QUEUE_POLL).await;
    }
}

/// How often a queued request is offered again to a busy reused instance.
const QUEUE_POLL: Duration = Duration::from_millis(5);

/// Enforces `max_request_body`. A declared length is checked up front (hyper
/// then holds the client to it). A chunked body is read up to the limit
/// before the guest starts, as nginx does, so an oversized one still gets a
/// clean 413 instead of a guest failing halfway through a response.
async fn limit_body(
    live: &Live,
    id: InvocationId,
    req: Request<Incoming>,
) -> Result<Request<WasiBody>, Response<WasiBody>> {
    let limit = live.spec.max_request_body.bytes();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (parts, body) = req.into_parts();
    let body = match declared {
        Some(n) if n > limit => return Err(too_large(live, id)),
        Some(_) => body.map_err(HttpError::from).boxed_unsync(),
        None if body.is_end_stream() => body.map_err(HttpError::from).boxed_unsync(),
        None => match Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
            .await
        {
            Ok(collected) => full(collected.to_bytes()),
            Err(e) if e.is::<LengthLimitError>() => return Err(too_large(live, id)),
            Err(e) => {
                let mut resp = plain(
                    StatusCode::BAD_REQUEST,
                    format!("could not read the request body: {e}\n"),
                );
                set_invocation_header(&mut resp, id);
                return Err(resp);
            }
        },
    };
    Ok(Request::from_parts(parts, body))
}

fn too_large(live: &Live, id: InvocationId) -> Response<WasiBody> {
    tracing::warn!(
        function = %live.function, invocation = %id,
        "request body limit reached: larger than max_request_body = {}", live.spec.max_request_body
    );
    let mut resp = plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body is larger than this function's limit of {}\n",
            live.spec.max_request_body
        ),
    );
    set_invocation_header(&mut resp, id);
    resp
}

/// Maps how an invocation failed to a response, and logs the limit it hit.
fn failure(live: &Live, invocation: &Invocation, error: &wasmtime::Error) -> Response<WasiBody> {
    let (function, id) = (&live.function, invocation.id);
    let spec = &live.spec;
    let mut retry_after = false;
    let (status, message) = if invocation.timed_out.load(Ordering::Relaxed)
        || error.is::<ExpirationError>()
    {
        tracing::warn!(%function, invocation = %id, "timeout reached: no response within timeout = {}", spec.timeout);
        (
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the function did not respond within its timeout of {}",
                spec.timeout
            ),
        )
    } else if let Some(rejected) = error.downcast_ref::<Rejected>() {
        retry_after = true;
        too_many(live, id, rejected)
    } else if let Some(e) = error.downcast_ref::<InstantiationError<Arc<Invocation>>>() {
        if let Some(rejected) = e.error.downcast_ref::<Rejected>() {
            retry_after = true;
            too_many(live, id, rejected)
        } else if e
            .error
            .downcast_ref::<PoolConcurrencyLimitError>()
            .is_some()
        {
            retry_after = true;
            tracing::warn!(%function, invocation = %id, "instance pool exhausted: {}; raise [server.pool] limits", e.error);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at capacity".to_string(),
            )
        } else {
            tracing::warn!(%function, invocation = %id, "instantiation failed: {:#}", e.error);
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the function could not be started".to_string(),
            )
        }
    } else {
        tracing::warn!(%function, invocation = %id, "function failed: {error:#}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the function failed (trap, panic or no response)".to_string(),
        )
    };
    let mut resp = plain(status, format!("{message}; invocation id {id}\n"));
    if retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    set_invocation_header(&mut resp, id);
    resp
}

/// A complete in-memory body in the type every response here uses.
pub fn full(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// The 429 for a function whose instances are all busy, with its log line.
fn too_many(live: &Live, id: InvocationId, rejected: &Rejected) -> (StatusCode, String) {
    let spec = &live.spec;
    tracing::warn!(
        function = %live.function, invocation = %id,
        "max_instances reached: {rejected} (max_instances = {}, max_queue = {}, queue_timeout = {})",
        spec.max_instances, spec.max_queue, spec.queue_timeout
    );
    (
        StatusCode::TOO_MANY_REQUESTS,
        "too many requests: every instance of this function is busy".to_string(),
    )
}

pub fn plain(status: StatusCode, body: String) -> Response<WasiBody> {
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn set_invocation_header<B>(resp: &mut Response<B>, id: InvocationId) {
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        resp.headers_mut().insert(INVOCATION_HEADER, v);
    }
}

/// Writes the access-log line and counts the invocation when its response
/// body ends (or is abandoned), so durations include streaming.
struct AccessRecord {
    live: Arc<Live>,
    invocation: Arc<Invocation>,
    method: Method,
    uri: Uri,
    started: Instant,
    status: u16,
}

impl AccessRecord {
    fn attach(mut self, resp: Response<WasiBody>) -> Response<WasiBody> {
        self.status = resp.status().as_u16();
        // These responses have no body for hyper to read to its end.
        let bodiless = self.method == Method::HEAD || matches!(self.status, 204 | 304);
        resp.map(|inner| {
            LoggedBody {
                inner,
                record: Some(self),
                complete: bodiless,
            }
            .boxed_unsync()
        })
    }

    fn finish(self, complete: bool) {
        let duration = self.started.elapsed();
        self.live.metrics.invocation_finished(self.status);
        tracing::info!(
            target: "wisp::access",
            function = %self.live.function,
            revision = self.live.revision,
            invocation = %self.invocation.id,
            method = %self.method,
            path = %self.uri.path(),
            status = self.status,
            duration_ms = duration_ms(duration),
            complete,
            "{} {} {}",
            self.method, self.uri.path(), self.status,
        );
    }
}

fn duration_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

struct LoggedBody {
    inner: WasiBody,
    record: Option<AccessRecord>,
    complete: bool,
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none()
            && self
                .record
                .as_ref()
                .is_some_and(|r| r.invocation.failed.load(Ordering::Relaxed))
        {
            // The instance died mid-body: make the client see a broken
            // response rather than a short one that looks complete.
            if let Some(record) = self.record.take() {
                record.finish(false);
            }
            return Poll::Ready(Some(Err(HttpError::HttpResponseIncomplete)));
        }
        if frame.is_none() {
            self.complete = true;
            if let Some(record) = self.record.take() {
                record.finish(true);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.finish(self.complete || self.inner.is_end_stream());
        }
    }
}
