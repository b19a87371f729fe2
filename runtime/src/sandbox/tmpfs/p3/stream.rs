//! The `stream<u8>` of a `/tmp` file, which `read-via-stream` produces and
//! `write-via-stream`/`append-via-stream` consume, and the
//! `future<result<_, error-code>>` that tells how it ended.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use wasmtime::StoreContextMut;
use wasmtime::component::{
    Destination, Source, StreamConsumer, StreamProducer, StreamResult, VecBuffer,
};
use wasmtime_wasi::p3::bindings::filesystem::types::ErrorCode;

use super::convert::error_code;
use crate::sandbox::tmpfs::descriptor::MAX_READ;
use crate::sandbox::tmpfs::file::Cursor;

/// A `/tmp` file's `stream<u8>`, read or written through a cursor, and the
/// `future<result<_, error-code>>` that tells how it ended.
pub struct TmpStream {
    cursor: Cursor,
    result: Option<oneshot::Sender<Result<(), ErrorCode>>>,
}

impl TmpStream {
    pub fn new(cursor: Cursor, result: oneshot::Sender<Result<(), ErrorCode>>) -> Self {
        TmpStream {
            cursor,
            result: Some(result),
        }
    }

    fn close(&mut self, result: Result<(), ErrorCode>) {
        if let Some(tx) = self.result.take() {
            // The guest may have dropped the future: nobody to tell.
            let _ = tx.send(result);
        }
    }
}

impl Drop for TmpStream {
    fn drop(&mut self) {
        self.close(Ok(()));
    }
}

/// `read-via-stream`: from the offset to the end of the file, then closed.
impl<D> StreamProducer<D> for TmpStream {
    type Item = u8;
    type Buffer = VecBuffer<u8>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        mut dst: Destination<'a, u8, VecBuffer<u8>>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        // The bytes are in memory: always ready, never pending.
        let len = dst.remaining(&mut store).unwrap_or(MAX_READ).min(MAX_READ);
        if len == 0 {
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let bytes = self.cursor.read(len);
        if bytes.is_empty() {
            self.close(Ok(()));
            return Poll::Ready(Ok(StreamResult::Dropped));
        }
        dst.set_buffer(bytes.into());
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

/// `write-via-stream` and `append-via-stream`: each write goes in whole or
/// fails, closing the stream with the error (`insufficient-space` past the
/// memory limit).
impl<D> StreamConsumer<D> for TmpStream {
    type Item = u8;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        store: StoreContextMut<D>,
        src: Source<Self::Item>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let mut src = src.as_direct(store);
        let bytes = src.remaining();
        let len = bytes.len();
        match self.cursor.write(bytes) {
            Ok(()) => {
                src.mark_read(len);
                Poll::Ready(Ok(StreamResult::Completed))
            }
            Err(code) => {
                self.close(Err(error_code(code)));
                Poll::Ready(Ok(StreamResult::Dropped))
            }
        }
    }
}
