//! One outbound HTTP/1 exchange, as wasi:http's default client makes it but
//! over a connection [`connect`] opened: handshake, send, and the guest's
//! connect, first-byte and between-bytes timeouts.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::sandbox::outbound::connect::{Failure, connect};
use crate::sandbox::outbound::policy::Reach;

/// Drives the connection after the response head arrived; resolves with
/// what went wrong on it, if anything.
pub type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// wasi:http's default for every timeout the guest leaves unset.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Sends `req` to an address `reach` permits and returns the response
/// (its body streaming) and the future that drives the connection.
pub async fn send(
    mut req: Request<WasiBody>,
    options: Option<RequestOptions>,
    reach: Reach,
) -> Result<(Response<WasiBody>, IoFuture), Failure> {
    let timeout = |pick: fn(RequestOptions) -> Option<Duration>| {
        options.and_then(pick).unwrap_or(DEFAULT_TIMEOUT)
    };
    let connect_timeout = timeout(|o| o.connect_timeout);
    let first_byte_timeout = timeout(|o| o.first_byte_timeout);
    // A zero interval would panic in tokio; a nanosecond is as good as zero.
    let between_bytes_timeout = timeout(|o| o.between_bytes_timeout).max(Duration::from_nanos(1));

    let stream = tokio::time::timeout(connect_timeout, connect(req.uri(), &reach))
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)?
    .map_err(Error::from)?;

    // The request carries scheme and authority; on the wire only a proxy
    // would want them, and hyper does not strip them itself.
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(path);

    let send = async move {
        let res = tokio::time::timeout(first_byte_timeout, sender.send_request(req))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)??;
        let mut between_bytes = tokio::time::interval(between_bytes_timeout);
        between_bytes.reset();
        Ok::<_, Error>(res.map(|incoming| {
            BetweenBytes {
                incoming,
                between_bytes,
            }
            .boxed_unsync()
        }))
    };
    let mut send = pin!(send);
    let mut conn = Some(conn);
    // Wait for the response head while driving the connection's I/O.
    let res = poll_fn(|cx| match send.as_mut().poll(cx) {
        Poll::Ready(res) => Poll::Ready(res),
        Poll::Pending => {
            let Some(driving) = conn.as_mut() else {
                return Poll::Pending;
            };
            let done = ready!(Pin::new(driving).poll(cx));
            conn = None;
            match done {
                // The connection finished cleanly: the response is ready.
                Ok(()) => send.as_mut().poll(cx),
                Err(e) => Poll::Ready(Err(Error::from(e))),
            }
        }
    })
    .await?;
    let io = async move {
        match conn {
            None => Ok(()),
            Some(conn) => conn.await.map_err(|e| {
                if e.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::from(e)
                }
            }),
        }
    };
    Ok((res, Box::new(io)))
}

/// A response body that fails with `ConnectionReadTimeout` when the
/// upstream goes quiet for longer than the between-bytes timeout.
struct BetweenBytes {
    incoming: Incoming,
    between_bytes: tokio::time::Interval,
}

impl http_body::Body for BetweenBytes {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(Some(Ok(frame))) => {
                self.between_bytes.reset();
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                ready!(self.between_bytes.poll_tick(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
