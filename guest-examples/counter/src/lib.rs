//! `counter`: a process-global counter bumped on every request. Because the
//! host gives each request a fresh instance, the answer is always `1`; a `2`
//! means state leaked between requests.

use std::sync::atomic::{AtomicU64, Ordering};

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

static COUNT: AtomicU64 = AtomicU64::new(0);

struct Counter;

impl Guest for Counter {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
        raw_support::respond(out, 200, "text/plain", format!("{n}\n").as_bytes());
    }
}

wasi::http::proxy::export!(Counter);
