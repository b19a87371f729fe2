//! Hostile `loop`: never returns from the handler. The host must cut it off
//! (epoch deadline) and answer the client itself.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Loop;

impl Guest for Loop {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        let mut spins: u64 = 0;
        // black_box keeps the optimizer from proving the loop has no effect
        // (an effect-free infinite loop is undefined behaviour in LLVM terms).
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

wasi::http::proxy::export!(Loop);
