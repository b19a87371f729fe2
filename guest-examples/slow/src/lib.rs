//! `slow`: sleeps `?ms=N` milliseconds, then answers `slept N ms` with
//! status `?status=S` (200 unless given; a 3xx also gets `location: /`).
//! The sleep blocks on a wasi:clocks pollable, which lets the host see an
//! instance that is waiting (not spinning) and test timeouts, concurrency,
//! and the status classes metrics count.

use wasi::clocks::monotonic_clock;
use wisp_sdk::{Request, Response, http_handler};

/// The query parameter `name` as a number, `default` when absent.
fn number<T: std::str::FromStr>(req: &Request, name: &str, default: T) -> Result<T, Response> {
    match req.query_param(name).map(|v| v.parse::<T>()) {
        None => Ok(default),
        Some(Ok(v)) => Ok(v),
        Some(Err(_)) => {
            Err(Response::text(format!("?{name}= must be a whole number\n")).with_status(400))
        }
    }
}

#[http_handler]
fn handle(req: Request) -> Response {
    let (ms, status) = match (number(&req, "ms", 0u64), number(&req, "status", 200u16)) {
        (Ok(ms), Ok(status)) if (100..=999).contains(&status) => (ms, status),
        (Err(bad), _) | (_, Err(bad)) => return bad,
        _ => return Response::text("?status= must be 100 to 999\n").with_status(400),
    };
    monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
    let response = Response::text(format!("slept {ms} ms\n")).with_status(status);
    match status {
        300..=399 => response.with_header("location", "/"),
        _ => response,
    }
}
