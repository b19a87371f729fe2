//! `burn`: computes for `?ms=N` milliseconds of wall time, then answers
//! `burned N ms`. A legitimate CPU-heavy request (image resizing, hashing,
//! a report), unlike `loop`, which never ends: for CPU-time limits and for
//! the noisy-neighbour benchmark.

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
    let until = monotonic_clock::now().saturating_add(ms.saturating_mul(1_000_000));
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    while monotonic_clock::now() < until {
        // A few thousand rounds of real work between clock reads.
        for _ in 0..4096 {
            state = std::hint::black_box(state.rotate_left(5) ^ state.wrapping_mul(31));
        }
    }
    Response::text(format!("burned {ms} ms ({:x})\n", state & 0xf))
}
