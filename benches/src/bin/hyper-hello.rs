//! `hyper-hello`: the native ceiling of the HTTP comparison. The same answer
//! the `hello` guest gives (`Hello, world! path=<path>`), from plain hyper 1
//! on a multi-threaded tokio runtime, i.e. the server stack Wisp itself is
//! built on, minus Wasm. Wisp's req/s divided by this one is the share of
//! the machine's HTTP capacity that per-request instances leave.
//!
//! Usage: `hyper-hello [ADDR]` (default `127.0.0.1:0`); prints
//! `listening on http://ADDR` once the socket is bound, like `wisp serve`.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Path and query, as the guest's `path_with_query` reports them, so both
    // servers send byte-identical bodies.
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let body = format!("Hello, world! path={path}\n");
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()
        .context("usage: hyper-hello [ADDR], e.g. 127.0.0.1:8080")?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen on {addr}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        // Small responses on keep-alive connections: without NODELAY, Nagle
        // delays each response behind the previous one's ACK.
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let conn =
                http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(hello));
            // A client hanging up mid-request is routine under load; not an error.
            let _ = conn.await;
        });
    }
}
