//! Every way an invocation can end without a response, named once. The
//! HTTP gateway maps these to statuses; other triggers map them to their own
//! notion of retry or failure.

use std::fmt;
use std::sync::Arc;

use wasmtime::{PoolConcurrencyLimitError, Trap};
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, TrapOrPanicError};

use crate::config::{ByteSize, Span};
use crate::invoke::admission::Rejected;
use crate::invoke::invocation::Invocation;
use crate::invoke::revision::LiveRevision;
use crate::telemetry::metrics::Outcome;

/// Why an invocation produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No function of that name (or at that route).
    NotFound,
    /// Every instance was busy: the queue was full, or the wait ran out.
    AtCapacity(Rejected),
    /// The server-wide instance pool (`[server.pool]`) is exhausted.
    PoolExhausted,
    /// The request body is larger than `max_request_body`.
    BodyTooLarge(ByteSize),
    /// The request body could not be read.
    BadBody(String),
    /// The client sent no part of the body for `request_body_timeout`.
    BodyTimeout(Span),
    /// Reading the body ahead of the guest would take Wisp past
    /// `[server] max_buffered_body`, the bodies it holds at once.
    BodyBufferFull(ByteSize),
    /// No instance could be made for another reason.
    StartFailed(String),
    /// No response within `timeout`.
    TimedOut(Span),
    /// The guest computed for longer than `cpu_time`.
    CpuLimit(Span),
    /// The guest asked for more memory than `memory` and failed.
    MemoryLimit(ByteSize),
    /// The guest trapped (a panic, an abort, a stack overflow …).
    Trapped(String),
    /// The guest's handler returned without producing a response.
    NoResponse,
    /// Whoever waited for the response went away first.
    Cancelled,
    /// A command function (CGI) ended without a response head.
    CommandFailed(String),
    /// The function used more than its `budget` of GB-seconds in the
    /// trailing hour; enough of it leaves the window in `frees_in`.
    BudgetSpent { budget: String, frees_in: Span },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotFound => f.write_str("no such function"),
            Failure::AtCapacity(rejected) => write!(f, "max_instances reached: {rejected}"),
            Failure::PoolExhausted => f.write_str(
                "instance pool exhausted: every [server.pool] instance is in use; raise [server.pool] limits",
            ),
            Failure::BodyTooLarge(limit) => write!(
                f,
                "request body limit reached: larger than max_request_body = {limit}"
            ),
            Failure::BadBody(e) => write!(f, "could not read the request body: {e}"),
            Failure::BodyTimeout(timeout) => write!(
                f,
                "request body timeout reached: the client sent nothing for request_body_timeout = {timeout}"
            ),
            Failure::BodyBufferFull(limit) => write!(
                f,
                "request body buffer full: the server holds max_buffered_body = {limit} of request bodies; raise [server] max_buffered_body or send a content-length"
            ),
            Failure::StartFailed(e) => write!(f, "instantiation failed: {e}"),
            Failure::TimedOut(timeout) => {
                write!(f, "timeout reached: no response within timeout = {timeout}")
            }
            Failure::CpuLimit(limit) => write!(
                f,
                "cpu time limit reached: the guest computed for more than cpu_time = {limit}"
            ),
            Failure::MemoryLimit(limit) => write!(
                f,
                "function failed: memory limit reached (memory = {limit}); the guest's allocation failed"
            ),
            Failure::Trapped(message) => write!(f, "function failed: {message}"),
            Failure::NoResponse => {
                f.write_str("function failed: the handler returned without a response")
            }
            Failure::Cancelled => f.write_str("cancelled: nobody waits for the response any more"),
            Failure::CommandFailed(why) => write!(f, "command failed: {why}"),
            Failure::BudgetSpent { budget, frees_in } => write!(
                f,
                "budget spent: the function used more than budget = {budget} GB-s in the last \
                 hour; new invocations are refused until {} (in {frees_in})",
                humantime::format_rfc3339_seconds(
                    std::time::SystemTime::now() + frees_in.0
                )
            ),
        }
    }
}

impl Failure {
    /// The HTTP status that answers it, also what logs and metrics of
    /// other triggers record: 4xx when the request was at fault, 429/503
    /// when Wisp was full (retry later), 5xx when the guest failed.
    pub fn status(&self) -> u16 {
        match self {
            Failure::NotFound => 404,
            Failure::AtCapacity(_) | Failure::BudgetSpent { .. } => 429,
            Failure::PoolExhausted | Failure::BodyBufferFull(_) => 503,
            Failure::BodyTooLarge(_) => 413,
            Failure::BadBody(_) => 400,
            Failure::BodyTimeout(_) => 408,
            Failure::TimedOut(_) => 504,
            // Distinct from a timeout (504), a full server (503) and a
            // failing guest (500): it computed too long; retrying won't help.
            Failure::CpuLimit(_) => 508,
            Failure::StartFailed(_)
            | Failure::MemoryLimit(_)
            | Failure::Trapped(_)
            | Failure::NoResponse => 500,
            Failure::Cancelled => CLIENT_CLOSED,
            // The command is the upstream a CGI gateway answers for.
            Failure::CommandFailed(_) => 502,
        }
    }

    /// How metrics count it: Wisp's refusals and the limits it enforces by
    /// name, the rest by the class of [`Failure::status`].
    pub fn outcome(&self) -> Outcome {
        match self {
            Failure::BodyTooLarge(_) => Outcome::TooLarge,
            Failure::AtCapacity(_) => Outcome::TooManyRequests,
            Failure::BudgetSpent { .. } => Outcome::Budget,
            Failure::PoolExhausted | Failure::BodyBufferFull(_) => Outcome::Unavailable,
            Failure::TimedOut(_) => Outcome::TimedOut,
            Failure::CpuLimit(_) => Outcome::CpuTime,
            Failure::MemoryLimit(_) => Outcome::Memory,
            // A guest that traps before answering is often seen first as
            // one that returned without a response.
            Failure::Trapped(_) | Failure::NoResponse => Outcome::Trap,
            Failure::Cancelled => Outcome::ClientClosed,
            Failure::NotFound
            | Failure::BadBody(_)
            | Failure::BodyTimeout(_)
            | Failure::StartFailed(_)
            | Failure::CommandFailed(_) => Outcome::of_status(self.status()),
        }
    }

    /// Wisp was too busy to run it, or the function's budget is spent: not
    /// the guest's failure, worth a retry later.
    pub fn is_back_pressure(&self) -> bool {
        self.retry_after().is_some()
    }

    /// When a retry may succeed: the budget's next free moment, or a
    /// second for a busy server.
    pub fn retry_after(&self) -> Option<Span> {
        match self {
            Failure::AtCapacity(_) | Failure::PoolExhausted | Failure::BodyBufferFull(_) => {
                Some(Span(std::time::Duration::from_secs(1)))
            }
            Failure::BudgetSpent { frees_in, .. } => Some(*frees_in),
            _ => None,
        }
    }
}

/// Status logged when whoever waited went away before the response was
/// complete (as nginx logs it).
pub const CLIENT_CLOSED: u16 = 499;

/// The request came back from `ProxyHandler` unserved because every
/// instance slot was taken: offer it again once capacity changes.
pub fn handed_back(
    error: wasmtime::Error,
) -> Result<wasmtime_wasi_http::handler::Request, wasmtime::Error> {
    let refused = error
        .downcast_ref::<InstantiationError<Arc<Invocation>>>()
        .is_some_and(|e| e.error.is::<crate::invoke::admission::AtCapacity>());
    if !refused {
        return Err(error);
    }
    let e = error.downcast::<InstantiationError<Arc<Invocation>>>()?;
    Ok(e.request.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// How metrics count an invocation whose instance died after the response
/// head was sent (the body broke off): by the limit that killed it, else a
/// trap.
pub fn died_mid_body(invocation: &Invocation) -> Outcome {
    if invocation.cpu_exceeded() {
        Outcome::CpuTime
    } else if invocation.timed_out() {
        Outcome::TimedOut
    } else if invocation.memory_exceeded() {
        Outcome::Memory
    } else {
        Outcome::Trap
    }
}

/// Names how `invocation` ended, from what `ProxyHandler` returned and what
/// its instance recorded.
pub fn classify(
    live: &LiveRevision,
    invocation: &Invocation,
    body_timeout: Span,
    error: &wasmtime::Error,
) -> Failure {
    if invocation.cancelled() {
        return Failure::Cancelled;
    }
    if invocation.body_timed_out() {
        return Failure::BodyTimeout(body_timeout);
    }
    if invocation.cpu_exceeded() {
        return Failure::CpuLimit(live.spec.cpu_time.unwrap_or(live.spec.timeout));
    }
    if invocation.timed_out() || error.is::<ExpirationError>() {
        return Failure::TimedOut(live.spec.timeout);
    }
    if let Some(e) = error.downcast_ref::<InstantiationError<Arc<Invocation>>>() {
        return if e.error.is::<PoolConcurrencyLimitError>() {
            Failure::PoolExhausted
        } else {
            Failure::StartFailed(format!("{:#}", e.error))
        };
    }
    if invocation.memory_exceeded() {
        return Failure::MemoryLimit(live.spec.memory);
    }
    if error.is::<Trap>() {
        return Failure::Trapped(format!("{error:#}"));
    }
    if error.is::<TrapOrPanicError>() {
        return Failure::Trapped("the instance serving it failed (see its log line)".into());
    }
    let message = format!("{error:#}");
    if message.contains("never invoked `response-outparam::set`") {
        return Failure::NoResponse;
    }
    Failure::Trapped(message)
}
