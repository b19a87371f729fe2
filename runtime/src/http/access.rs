//! One access-log line and one count per HTTP invocation, written when its
//! response body ends — or when the client goes away first (status 499, as
//! nginx logs it), which also cancels the invocation.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::invoke::failure::died_mid_body;
use crate::invoke::{Failure, Invocation, LiveRevision, Running};
use crate::logs::{Access, Entry, RecordLine};
use crate::sandbox::guestlog;
use crate::telemetry::logging::millis;
use crate::telemetry::metrics::Outcome;
use crate::telemetry::traces;

pub use crate::invoke::failure::CLIENT_CLOSED;

/// How a response ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ended {
    Complete,
    /// The instance died after the head was sent.
    Failed,
    /// The client went away first.
    ClientGone,
}

/// An invocation being served; counted in flight from creation, and logged
/// exactly once, at the latest when dropped.
pub struct AccessRecord {
    live: Arc<LiveRevision>,
    invocation: Arc<Invocation>,
    method: Method,
    uri: Uri,
    started: Instant,
    /// Since `started`, when the response head was handed out.
    first_byte: Option<Duration>,
    status: u16,
    /// Wisp's refusal or kill, if the response is one.
    failure: Option<Outcome>,
    logged: bool,
    /// The invocation's span (disabled when traces are off); it ends with
    /// the record.
    span: tracing::Span,
}

impl AccessRecord {
    pub fn start(
        live: Arc<LiveRevision>,
        invocation: Arc<Invocation>,
        method: Method,
        uri: Uri,
    ) -> Self {
        live.metrics.invocation_started(invocation.trigger);
        AccessRecord {
            live,
            invocation,
            method,
            uri,
            started: Instant::now(),
            first_byte: None,
            status: CLIENT_CLOSED,
            failure: None,
            logged: false,
            span: tracing::Span::none(),
        }
    }

    /// Ends `span` with the record, its status recorded.
    pub fn traced(mut self, span: tracing::Span) -> Self {
        self.span = span;
        self
    }

    /// Hands `resp`, Wisp's answer to `failure`, out (see [`Self::attach`]).
    pub fn refuse(mut self, failure: &Failure, resp: Response<WasiBody>) -> Response<WasiBody> {
        self.failure = Some(failure.outcome());
        self.attach(resp, None)
    }

    /// Hands `resp` out with a body that logs this record when it ends;
    /// `running` (absent for Wisp's own refusals) lives as long as the body.
    pub fn attach(
        mut self,
        resp: Response<WasiBody>,
        running: Option<Running>,
    ) -> Response<WasiBody> {
        self.status = resp.status().as_u16();
        self.first_byte = Some(self.started.elapsed());
        // These responses have no body for hyper to read to its end.
        let bodiless = self.method == Method::HEAD || matches!(self.status, 204 | 304);
        resp.map(|inner| {
            LoggedBody {
                inner,
                record: Some(self),
                running,
                complete: bodiless,
            }
            .boxed_unsync()
        })
    }

    fn finish(&mut self, ended: Ended) {
        if std::mem::replace(&mut self.logged, true) {
            return;
        }
        if ended == Ended::ClientGone {
            self.status = CLIENT_CLOSED;
        }
        let duration = self.started.elapsed();
        let trigger = self.invocation.trigger;
        let outcome = match ended {
            Ended::ClientGone => Outcome::ClientClosed,
            Ended::Failed => died_mid_body(&self.invocation),
            Ended::Complete => self
                .failure
                .unwrap_or_else(|| Outcome::of_status(self.status)),
        };
        let first_byte = self.first_byte.unwrap_or(duration);
        traces::record_status(&self.span, self.status);
        self.live
            .metrics
            .invocation_finished(trigger, outcome, first_byte, duration);
        let live = &self.live;
        let usage = crate::invoke::cost::meter(
            &live.metrics,
            live.spec.memory.bytes(),
            &self.invocation,
            duration,
        );
        tracing::info!(
            target: "wisp::access",
            function = %self.live.function,
            revision = self.live.number,
            invocation = %self.invocation.id,
            %trigger,
            method = %self.method,
            path = %self.uri.path(),
            status = self.status,
            duration_ms = millis(duration),
            cpu_ms = usage.cpu.as_millis() as u64,
            gb_s = usage.gb_s,
            complete = ended == Ended::Complete,
            "{} {} {}",
            self.method, self.uri.path(), self.status,
        );
        guestlog::record_after_output(Entry::access(
            self.live.function.clone(),
            Some(self.live.number),
            self.invocation.id,
            trigger,
            Access::metered(
                self.status,
                &usage,
                Some((self.method.clone(), self.uri.path().to_string())),
            ),
            RecordLine::Request,
        ));
    }
}

impl Drop for AccessRecord {
    /// Dropped before a response was attached: the client went away while
    /// the invocation was queued or running.
    fn drop(&mut self) {
        self.finish(Ended::ClientGone);
    }
}

struct LoggedBody {
    inner: WasiBody,
    record: Option<AccessRecord>,
    running: Option<Running>,
    complete: bool,
}

impl LoggedBody {
    fn end(&mut self, ended: Ended) {
        if let Some(mut record) = self.record.take() {
            record.finish(ended);
        }
        if ended != Ended::ClientGone
            && let Some(running) = self.running.take()
        {
            running.finish();
        }
        // Otherwise `running` drops with the body and cancels the invocation.
    }

    fn instance_failed(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|r| r.invocation().failed())
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() {
            if self.instance_failed() {
                // The instance died mid-body: make the client see a broken
                // response rather than a short one that looks complete.
                self.end(Ended::Failed);
                return Poll::Ready(Some(Err(HttpError::HttpResponseIncomplete)));
            }
            self.complete = true;
            self.end(Ended::Complete);
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
        let ended = if self.complete || self.inner.is_end_stream() {
            Ended::Complete
        } else {
            Ended::ClientGone
        };
        self.end(ended);
    }
}
