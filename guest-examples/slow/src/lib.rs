//! `slow`: sleeps `?ms=N` milliseconds, then answers `slept N ms`. The sleep
//! blocks on a wasi:clocks pollable, which lets the host see an instance
//! that is waiting (not spinning) and test timeouts and concurrency.

use wasi::clocks::monotonic_clock;
use wisp_sdk::{Request, Response, http_handler};

#[http_handler]
fn handle(req: Request) -> Response {
    let ms = match req.query_param("ms").map(|ms| ms.parse::<u64>()) {
        None => 0,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => {
            return Response::text("?ms= must be a whole number of milliseconds\n").with_status(400);
        }
    };
    monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
    Response::text(format!("slept {ms} ms\n"))
}
