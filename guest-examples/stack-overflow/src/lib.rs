//! Hostile `stack-overflow`: recurses without bound. Wasm's stack guard turns
//! this into a trap the host must report cleanly.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

/// Not a tail call (work happens after the recursive call) and fed through
/// black_box, so the compiler can neither turn it into a loop nor fold it.
#[inline(never)]
#[allow(unconditional_recursion)] // unbounded on purpose
fn descend(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 16]);
    descend(std::hint::black_box(depth + 1)).wrapping_add(frame[depth as usize % 16])
}

struct StackOverflow;

impl Guest for StackOverflow {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        std::hint::black_box(descend(0));
    }
}

wasi::http::proxy::export!(StackOverflow);
