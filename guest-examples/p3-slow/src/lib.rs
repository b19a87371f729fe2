//! `p3-slow`: a WASIp3 (`wasi:http@0.3`) function. Its handler is `async`:
//! one instance can serve many requests at once, each awaiting its timer or
//! its outbound call while the others run.
//!
//! - `GET /?ms=N` sleeps N ms (`monotonic-clock.wait-for`), then answers
//!   `slept N ms count=C`, where C counts requests this instance has seen:
//!   1 on every request with a fresh instance, growing when instances are reused.
//! - `GET /?url=http://host:port/path` fetches the URL and answers its body.
//! - `GET /?trap=1` panics (the instance is discarded).

use std::sync::atomic::{AtomicU64, Ordering};

use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(P3Slow);

static COUNT: AtomicU64 = AtomicU64::new(0);

struct P3Slow;

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

impl wasip3::exports::http::handler::Guest for P3Slow {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let count = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
        let path = request.get_path_with_query().unwrap_or_default();
        let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
        if query_param(query, "trap").is_some() {
            panic!("p3-slow: trap requested");
        }
        if let Some(url) = query_param(query, "url") {
            return match fetch(url).await {
                Ok(body) => Ok(respond(200, body)),
                Err(e) => Ok(respond(502, format!("outbound error: {e:?}\n").into_bytes())),
            };
        }
        let ms: u64 = query_param(query, "ms").and_then(|v| v.parse().ok()).unwrap_or(0);
        wasip3::clocks::monotonic_clock::wait_for(ms * 1_000_000).await;
        Ok(respond(200, format!("slept {ms} ms count={count}\n").into_bytes()))
    }
}

fn respond(status: u16, body: Vec<u8>) -> Response {
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(body_rx), trailers_rx);
    drop(trailers_tx);
    let _ = response.set_status_code(status);
    wit_bindgen::spawn_local(async move {
        body_tx.write_all(body).await;
    });
    response
}

/// GETs an `http://host[:port]/path` URL through `wasi:http/client`.
async fn fetch(url: &str) -> Result<Vec<u8>, ErrorCode> {
    let rest = url.strip_prefix("http://").ok_or(ErrorCode::HttpRequestUriInvalid)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers_tx);
    let (request, _sent) = Request::new(Fields::new(), None, trailers_rx, None);
    request.set_scheme(Some(&Scheme::Http)).map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    request.set_authority(Some(authority)).map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    request.set_path_with_query(Some(path)).map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    let response = wasip3::http::client::send(request).await?;
    let (done_tx, done_rx) = wit_future::new(|| Ok(()));
    drop(done_tx);
    let (body, _trailers) = Response::consume_body(response, done_rx);
    Ok(body.collect().await)
}
