//! `counter`: a process-global counter bumped on every request. Because the
//! host gives each request a fresh instance, the answer is always `1`; a `2`
//! means state leaked between requests.
//!
//! Every request also writes one byte in every other page of two arrays,
//! one in the image's initialized data and one in zeroed memory: 96
//! separate dirty regions, more than the 32 that wasmtime's slot reset
//! collects per scan (see `vendor/README.md`). A fresh instance checks
//! first that none of those writes is still there.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

static COUNT: AtomicU64 = AtomicU64::new(0);

/// The host's page size: the unit the slot reset works in.
const PAGE: usize = 4096;

/// `N` bytes, page-aligned, each `FILL` to begin with.
#[repr(C, align(4096))]
struct Pages<const N: usize, const FILL: u8>([AtomicU8; N]);

impl<const N: usize, const FILL: u8> Pages<N, FILL> {
    const NEW: Self = Pages([const { AtomicU8::new(FILL) }; N]);

    /// Pages whose first byte is no longer `FILL`.
    fn changed(&self) -> usize {
        (0..N / PAGE)
            .filter(|p| self.0[p * PAGE].load(Ordering::Relaxed) != FILL)
            .count()
    }

    fn scribble(&self) {
        for p in (0..N / PAGE).step_by(2) {
            self.0[p * PAGE].store(0xab, Ordering::Relaxed);
        }
    }
}

/// In the data segments, so in the memory's copy-on-write image.
static DATA: Pages<{ 64 * PAGE }, 0x11> = Pages::NEW;
/// Zeroed: past the image, in memory the slot starts with none of.
static ZEROED: Pages<{ 128 * PAGE }, 0> = Pages::NEW;

struct Counter;

impl Guest for Counter {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let n = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
        // A reused instance (`isolation = "instance"`) sees its own writes.
        let left = if n == 1 {
            DATA.changed() + ZEROED.changed()
        } else {
            0
        };
        DATA.scribble();
        ZEROED.scribble();
        let body = match left {
            0 => format!("{n}\n"),
            left => format!("{n}, and {left} pages written by an earlier request\n"),
        };
        raw_support::respond(out, 200, "text/plain", body.as_bytes());
    }
}

wasi::http::proxy::export!(Counter);
