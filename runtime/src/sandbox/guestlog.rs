//! Guest stdout/stderr become host log records, one per line, tagged with the
//! function, instance and invocation ([`InstanceTag`]). Nothing a guest
//! prints reaches the host's own stdout, and no guest can grow the host's
//! memory or hold up a request thread with its output:
//!
//! - a line is cut at [`MAX_LINE`] bytes;
//! - an invocation logs at most [`MAX_LINES_PER_INVOCATION`] lines and
//!   [`MAX_BYTES_PER_INVOCATION`] bytes;
//! - lines are handed to one logging thread through a bounded queue
//!   ([`QUEUE_LINES`], [`QUEUE_BYTES`]) without ever waiting for it.
//!
//! What is dropped (past the caps, or with the queue full) is counted in the
//! function's `wisp_guest_log_dropped_total` and said once per invocation.
//!
//! The logging thread also hands each line to the function's log store
//! ([`crate::logs`]), which never makes it wait.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, oneshot};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::config::ByteSize;
use crate::logs::{self, Entry};
use crate::sandbox::tag::{InstanceTag, InvocationField};
use crate::state::secrets::redact;
use crate::telemetry::ids::{InstanceId, InvocationId};
use crate::telemetry::metrics::FunctionMetrics;

/// Longest line kept; the rest of an overlong line is dropped and the kept
/// part is marked as truncated.
pub const MAX_LINE: usize = 16 * 1024;

/// Lines one invocation may log; later ones are dropped and counted.
pub const MAX_LINES_PER_INVOCATION: u32 = 1000;

/// Bytes of lines one invocation may log; later lines are dropped and
/// counted.
pub const MAX_BYTES_PER_INVOCATION: usize = 1 << 20;

/// Lines waiting for the logging thread, across all instances; when it is
/// this far behind, new lines are dropped rather than waited for.
pub const QUEUE_LINES: usize = 4096;

/// Bytes of lines waiting for the logging thread.
pub const QUEUE_BYTES: usize = 4 << 20;

/// Most output kept for an error message.
const MAX_CAPTURE: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line on its way to the log, tagged as it was when written.
struct Record {
    function: Arc<str>,
    invocation: Option<InvocationId>,
    instance: InstanceId,
    stream: Stream,
    truncated: bool,
    line: String,
}

enum Message {
    Line(Record),
    /// An invocation's output was cut short.
    Dropped(Record),
    /// Answered once everything sent before it is logged.
    Flush(oneshot::Sender<()>),
    /// A record for the log store, kept after the lines sent before it.
    After(Entry),
}

/// The queue to the logging thread.
struct Pipeline {
    queue: mpsc::Sender<Message>,
    /// Bytes of lines in `queue`.
    queued: Arc<AtomicUsize>,
}

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let (queue, mut rx) = mpsc::channel(QUEUE_LINES);
        let queued = Arc::new(AtomicUsize::new(0));
        let count = queued.clone();
        let spawned = std::thread::Builder::new()
            .name("wisp-guest-log".into())
            .spawn(move || {
                while let Some(message) = rx.blocking_recv() {
                    match message {
                        Message::Line(r) => {
                            // Counted until stored, so an access record
                            // that finds nothing queued is stored after it.
                            let len = r.line.len();
                            log_line(r);
                            count.fetch_sub(len, Ordering::Relaxed);
                        }
                        Message::Dropped(r) => log_dropped(r),
                        Message::Flush(done) => {
                            let _ = done.send(());
                        }
                        Message::After(entry) => logs::record(entry),
                    }
                }
            });
        if let Err(e) = spawned {
            // The receiver is gone with the closure: every line is dropped
            // and counted, and the host goes on.
            tracing::error!(
                "could not start the guest log thread; guest output will be dropped: {e}"
            );
        }
        Pipeline { queue, queued }
    })
}

fn log_line(r: Record) {
    tracing::info!(
        target: "wisp::guest",
        function = %r.function,
        invocation = %InvocationField(r.invocation),
        instance = %r.instance,
        stream = r.stream.name(),
        truncated = r.truncated,
        "{}",
        r.line
    );
    store(r);
}

fn log_dropped(r: Record) {
    tracing::warn!(
        function = %r.function,
        invocation = %InvocationField(r.invocation),
        instance = %r.instance,
        "{}",
        r.line
    );
    store(r);
}

fn store(r: Record) {
    logs::record(Entry::guest(
        r.function,
        r.invocation,
        r.stream.name(),
        r.line,
    ));
}

/// Starts the logging thread now rather than at the first invocation,
/// whose response would otherwise wait for the thread to be made.
pub fn start() {
    pipeline();
}

/// Keeps `entry` in the log store after the guest lines queued so far (an
/// access record after its invocation's output): straight away when none
/// are (most invocations print nothing; the logging thread need not wake)
/// or the queue is full; never waits.
pub fn record_after_output(entry: Entry) {
    let pipeline = pipeline();
    if pipeline.queued.load(Ordering::Relaxed) == 0 {
        return logs::record(entry);
    }
    if let Err(e) = pipeline.queue.try_send(Message::After(entry))
        && let Message::After(entry) = e.into_inner()
    {
        logs::record(entry);
    }
}

/// Waits (up to `within`) until the lines queued so far are logged.
pub async fn flush(within: Duration) {
    let (done, logged) = oneshot::channel();
    let _ = tokio::time::timeout(within, async {
        if pipeline().queue.send(Message::Flush(done)).await.is_ok() {
            let _ = logged.await;
        }
    })
    .await;
}

/// Why an invocation's output was cut short.
#[derive(Clone, Copy)]
enum Cut {
    Cap,
    QueueFull,
}

/// What one instance's invocation has logged so far, shared by its stdout
/// and stderr.
#[derive(Default)]
struct Budget {
    /// The invocation counted; a new one starts a new budget.
    invocation: u64,
    lines: u32,
    bytes: usize,
    /// The cut was said for this invocation.
    said: bool,
}

/// What an instance's stdout and stderr share: its tag, its budget, its
/// function's counters and the init capture.
struct Output {
    tag: Arc<InstanceTag>,
    budget: Mutex<Budget>,
    metrics: Option<Arc<FunctionMetrics>>,
    /// Also receives every line, up to [`MAX_CAPTURE`] bytes.
    sink: Option<Arc<Mutex<String>>>,
    /// Secret values the function was granted, replaced before a line goes
    /// anywhere.
    secrets: Arc<[String]>,
}

impl Output {
    fn record(&self, stream: Stream, truncated: bool, line: String) -> Record {
        Record {
            function: self.tag.function.clone(),
            invocation: self.tag.invocation(),
            instance: self.tag.instance,
            stream,
            truncated,
            line,
        }
    }

    /// Sends one complete line on, or drops and counts it; a quiet
    /// instance's goes nowhere.
    fn emit(&self, stream: Stream, truncated: bool, line: &[u8]) {
        if self.tag.quiet() {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let line = redact(&line, &self.secrets);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if let Some(sink) = &self.sink {
            let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
            if sink.len() + line.len() < MAX_CAPTURE {
                sink.push_str(stream.name());
                sink.push_str(": ");
                sink.push_str(line);
                sink.push('\n');
            }
        }
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        let invocation = self.tag.latest_invocation().0;
        if budget.invocation != invocation {
            *budget = Budget {
                invocation,
                ..Budget::default()
            };
        }
        if budget.lines >= MAX_LINES_PER_INVOCATION
            || budget.bytes + line.len() > MAX_BYTES_PER_INVOCATION
        {
            return self.dropped(&mut budget, Cut::Cap);
        }
        let pipeline = pipeline();
        let len = line.len();
        if pipeline.queued.fetch_add(len, Ordering::Relaxed) + len > QUEUE_BYTES {
            pipeline.queued.fetch_sub(len, Ordering::Relaxed);
            return self.dropped(&mut budget, Cut::QueueFull);
        }
        let record = self.record(stream, truncated, line.to_owned());
        if pipeline.queue.try_send(Message::Line(record)).is_err() {
            pipeline.queued.fetch_sub(len, Ordering::Relaxed);
            return self.dropped(&mut budget, Cut::QueueFull);
        }
        budget.lines += 1;
        budget.bytes += len;
    }

    /// Counts a dropped line, and says so the first time in an invocation:
    /// through the queue, after the lines it kept, or right here when the
    /// queue has no room.
    fn dropped(&self, budget: &mut Budget, cut: Cut) {
        if let Some(metrics) = &self.metrics {
            metrics.guest_log_dropped(1);
        }
        if std::mem::replace(&mut budget.said, true) {
            return;
        }
        let why = match cut {
            Cut::Cap => format!(
                "more than {MAX_LINES_PER_INVOCATION} lines or {} in this invocation",
                ByteSize(MAX_BYTES_PER_INVOCATION as u64)
            ),
            Cut::QueueFull => format!(
                "the log is {QUEUE_LINES} lines or {} behind the guests' output",
                ByteSize(QUEUE_BYTES as u64)
            ),
        };
        let message = format!(
            "guest output dropped: {why}; the rest of this invocation's output is not logged \
             (counted in wisp_guest_log_dropped_total)"
        );
        let record = self.record(Stream::Stderr, false, message);
        if let Err(e) = pipeline().queue.try_send(Message::Dropped(record))
            && let Message::Dropped(record) = e.into_inner()
        {
            log_dropped(record);
        }
    }
}

/// One instance's stdout or stderr. Clones share the line buffer, so a line
/// written in pieces through several stream handles is still one record.
#[derive(Clone)]
pub struct GuestLog {
    inner: Arc<LineBuffer>,
}

struct LineBuffer {
    output: Arc<Output>,
    stream: Stream,
    state: Mutex<LineState>,
}

#[derive(Default)]
struct LineState {
    line: Vec<u8>,
    truncated: bool,
}

impl GuestLog {
    /// An instance's stdout and stderr. Dropped lines count in `metrics`;
    /// `sink` also receives every line (init runs, whose output belongs in
    /// the deploy error); `secrets` are redacted from every line.
    pub fn pair(
        tag: Arc<InstanceTag>,
        metrics: Option<Arc<FunctionMetrics>>,
        sink: Option<Arc<Mutex<String>>>,
        secrets: Arc<[String]>,
    ) -> (GuestLog, GuestLog) {
        let output = Arc::new(Output {
            tag,
            budget: Mutex::default(),
            metrics,
            sink,
            secrets,
        });
        let log = |stream| GuestLog {
            inner: Arc::new(LineBuffer {
                output: output.clone(),
                stream,
                state: Mutex::default(),
            }),
        };
        (log(Stream::Stdout), log(Stream::Stderr))
    }

    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut state = self.inner.state.lock().unwrap_or_else(|e| e.into_inner());
        while !bytes.is_empty() {
            let (chunk, rest, newline) = match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            let room = MAX_LINE.saturating_sub(state.line.len());
            if chunk.len() > room {
                state.truncated = true;
            }
            state
                .line
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            if newline {
                self.inner.emit(&mut state);
            }
            bytes = rest;
        }
    }
}

impl LineBuffer {
    fn emit(&self, state: &mut LineState) {
        self.output.emit(self.stream, state.truncated, &state.line);
        state.line.clear();
        state.truncated = false;
    }
}

impl Drop for LineBuffer {
    /// A last line without a newline is still logged when the instance goes.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if !state.line.is_empty() {
            let mut state = std::mem::take(state);
            self.emit(&mut state);
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestLog {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestLog {
    async fn ready(&mut self) {}
}

impl AsyncWrite for GuestLog {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invocation_past_its_cap_is_counted_and_the_next_starts_afresh() {
        let tag = InstanceTag::new("f".into(), InstanceId(1), false);
        let metrics = Arc::new(FunctionMetrics::default());
        let sink = Arc::new(Mutex::new(String::new()));
        let (stdout, stderr) = GuestLog::pair(
            tag.clone(),
            Some(metrics.clone()),
            Some(sink),
            Arc::from([]),
        );
        tag.set_invocation(InvocationId(1));
        let extra = 5;
        for i in 0..MAX_LINES_PER_INVOCATION as u64 + extra {
            let log = if i % 2 == 0 { &stdout } else { &stderr };
            log.write_bytes(b"line\n");
        }
        assert_eq!(metrics.snapshot().guest_log_dropped, extra);
        tag.set_invocation(InvocationId(2));
        stdout.write_bytes(b"fresh\n");
        assert_eq!(metrics.snapshot().guest_log_dropped, extra);
        // One long line spends the byte budget at once.
        let long = vec![b'x'; MAX_LINE - 1];
        for _ in 0..MAX_BYTES_PER_INVOCATION / long.len() + 1 {
            stdout.write_bytes(&long);
            stdout.write_bytes(b"\n");
        }
        assert_eq!(metrics.snapshot().guest_log_dropped, extra + 1);
    }
}
