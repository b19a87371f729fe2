//! Guest stdout/stderr become host log records, one per line, tagged with the
//! function, instance and invocation ([`InstanceTag`]). Nothing a guest prints reaches the host's own
//! stdout, and no line can grow the host's memory without bound.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::sandbox::tag::{InstanceTag, InvocationField};

/// Longest line kept; the rest of an overlong line is dropped and the kept
/// part is marked as truncated.
pub const MAX_LINE: usize = 16 * 1024;

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

/// One instance's stdout or stderr. Clones share the line buffer, so a line
/// written in pieces through several stream handles is still one record.
#[derive(Clone)]
pub struct GuestLog {
    inner: Arc<LineBuffer>,
}

struct LineBuffer {
    tag: Arc<InstanceTag>,
    stream: Stream,
    state: Mutex<LineState>,
    /// Also receives every line, up to [`MAX_CAPTURE`] bytes.
    sink: Option<Arc<Mutex<String>>>,
}

/// Most output kept for an error message.
const MAX_CAPTURE: usize = 64 * 1024;

#[derive(Default)]
struct LineState {
    line: Vec<u8>,
    truncated: bool,
}

impl GuestLog {
    pub fn new(tag: Arc<InstanceTag>, stream: Stream, sink: Option<Arc<Mutex<String>>>) -> Self {
        GuestLog {
            inner: Arc::new(LineBuffer {
                tag,
                stream,
                state: Mutex::default(),
                sink,
            }),
        }
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
        let line = String::from_utf8_lossy(&state.line);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        tracing::info!(
            target: "wisp::guest",
            function = %self.tag.function,
            invocation = %InvocationField(self.tag.invocation()),
            instance = %self.tag.instance,
            stream = self.stream.name(),
            truncated = state.truncated,
            "{line}"
        );
        if let Some(sink) = &self.sink {
            let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
            if sink.len() + line.len() < MAX_CAPTURE {
                sink.push_str(self.stream.name());
                sink.push_str(": ");
                sink.push_str(line);
                sink.push('\n');
            }
        }
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
