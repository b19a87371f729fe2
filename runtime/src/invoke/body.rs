//! Request bodies on their way in: a client that stalls sending one is cut
//! off after `request_body_timeout` (between any two pieces, the first
//! included), a body of unknown length is read ahead of the guest up to
//! `max_request_body`, and what Wisp holds of such bodies at once is capped
//! server-wide by `max_buffered_body`.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, header};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::config::{ByteSize, Span};
use crate::invoke::failure::Failure;
use crate::invoke::invocation::Invocation;

/// The server-wide limits on request bodies; one per server, shared by
/// every invocation it starts.
pub struct BodyLimits {
    /// `request_body_timeout`.
    pub timeout: Span,
    /// `max_buffered_body`, one permit per byte held.
    buffered: Arc<Semaphore>,
    cap: ByteSize,
}

impl BodyLimits {
    pub fn new(timeout: Span, max_buffered: ByteSize) -> Arc<Self> {
        let permits = usize::try_from(max_buffered.bytes())
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        Arc::new(BodyLimits {
            timeout,
            buffered: Arc::new(Semaphore::new(permits)),
            cap: max_buffered,
        })
    }

    /// `body` cut off with an error when the client sends nothing for
    /// `timeout`; a timeout is recorded on `invocation` so the failure is
    /// named for what it is even when the guest was reading the body.
    pub fn timed(&self, body: WasiBody, invocation: &Arc<Invocation>) -> WasiBody {
        if body.is_end_stream() {
            return body;
        }
        TimedBody {
            inner: Some(body),
            timeout: self.timeout.0,
            sleep: Box::pin(tokio::time::sleep(self.timeout.0)),
            waiting: false,
            // Weak: the guest holds the body, and a strong reference would
            // make the invocation look awaited to its instance.
            invocation: Arc::downgrade(invocation),
        }
        .boxed_unsync()
    }

    /// Bytes of the buffer budget, or `None` when taking them would pass
    /// `max_buffered_body`.
    fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(bytes).ok()?;
        self.buffered.clone().try_acquire_many_owned(n).ok()
    }
}

/// A body whose every wait for the next frame is bounded.
struct TimedBody {
    /// `None` once timed out: the connection's body is let go.
    inner: Option<WasiBody>,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Whether `sleep` is armed for the current wait.
    waiting: bool,
    invocation: Weak<Invocation>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
        };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            this.waiting = false;
            return Poll::Ready(frame);
        }
        if !std::mem::replace(&mut this.waiting, true) {
            this.sleep.as_mut().reset(Instant::now() + this.timeout);
        }
        ready!(this.sleep.as_mut().poll(cx));
        this.inner = None;
        if let Some(invocation) = this.invocation.upgrade() {
            invocation.set_body_timed_out();
        }
        Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_some_and(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(SizeHint::default, Body::size_hint)
    }
}

/// A body read ahead of the guest, counted against `max_buffered_body`
/// until it is dropped.
struct HeldBody {
    data: Option<Bytes>,
    len: u64,
    _held: Option<OwnedSemaphorePermit>,
}

impl Body for HeldBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(if self.data.is_some() { self.len } else { 0 })
    }
}

/// Enforces `max_request_body` (`limit`). A declared length is checked up
/// front (the HTTP server then holds the client to it). A body of unknown
/// length is read up to the limit before the guest starts, as nginx does, so
/// an oversized one still gets a clean refusal instead of a guest failing
/// halfway through a response; what is read counts against
/// `max_buffered_body` until the guest is done with it.
pub async fn limit_body(
    limits: &BodyLimits,
    limit: ByteSize,
    invocation: &Invocation,
    request: Request<WasiBody>,
) -> Result<Request<WasiBody>, Failure> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let (parts, mut body) = request.into_parts();
    match declared {
        Some(n) if n > limit.bytes() => return Err(Failure::BodyTooLarge(limit)),
        Some(_) => return Ok(Request::from_parts(parts, body)),
        None if body.is_end_stream() => return Ok(Request::from_parts(parts, body)),
        None => {}
    }
    let mut read = BytesMut::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if invocation.body_timed_out() {
                Failure::BodyTimeout(limits.timeout)
            } else {
                Failure::BadBody(e.to_string())
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: a buffered body is passed on without them
        };
        if (read.len() + data.len()) as u64 > limit.bytes() {
            return Err(Failure::BodyTooLarge(limit));
        }
        let permit = limits
            .take(data.len())
            .ok_or(Failure::BodyBufferFull(limits.cap))?;
        match held.as_mut() {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        read.extend_from_slice(&data);
    }
    let body = HeldBody {
        len: read.len() as u64,
        data: Some(read.freeze()),
        _held: held,
    };
    Ok(Request::from_parts(parts, body.boxed_unsync()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use http_body_util::StreamBody;

    use crate::telemetry::ids::{InvocationId, Trigger};

    fn chunked(chunks: Vec<&'static [u8]>, then_stall: bool) -> Request<WasiBody> {
        let frames = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, HttpError>(Frame::data(Bytes::from_static(c)))),
        );
        let body = if then_stall {
            StreamBody::new(frames.chain(futures::stream::pending())).boxed_unsync()
        } else {
            StreamBody::new(frames).boxed_unsync()
        };
        Request::new(body)
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_and_frees_its_bytes() {
        let limits = BodyLimits::new(Span(Duration::from_millis(50)), ByteSize(10));
        let invocation = Invocation::new(InvocationId(1), Trigger::Http);
        let req = chunked(vec![b"abcdef"], true).map(|b| limits.timed(b, &invocation));
        let err = limit_body(&limits, ByteSize(100), &invocation, req)
            .await
            .unwrap_err();
        assert_eq!(err, Failure::BodyTimeout(limits.timeout));
        assert_eq!(limits.buffered.available_permits(), 10);
    }

    #[tokio::test]
    async fn buffered_bodies_share_one_budget() {
        let limits = BodyLimits::new(Span(Duration::from_secs(1)), ByteSize(10));
        let invocation = Invocation::new(InvocationId(1), Trigger::Http);
        let first = limit_body(
            &limits,
            ByteSize(100),
            &invocation,
            chunked(vec![b"abc", b"def"], false),
        )
        .await
        .unwrap();
        assert_eq!(limits.buffered.available_permits(), 4);
        let second = limit_body(
            &limits,
            ByteSize(100),
            &invocation,
            chunked(vec![b"12345"], false),
        )
        .await;
        assert_eq!(second.unwrap_err(), Failure::BodyBufferFull(ByteSize(10)));
        let bytes = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"abcdef");
        assert_eq!(limits.buffered.available_permits(), 10);
    }
}
