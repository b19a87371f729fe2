//! Hostile `memory-bomb`: allocates 1 MiB chunks forever and keeps them alive.
//! The host's memory limit must stop it as a trap, not take the process down.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

const CHUNK: usize = 1 << 20;

struct MemoryBomb;

impl Guest for MemoryBomb {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every page so the memory is really committed, and hand the
            // chunk to black_box so the allocation cannot be elided.
            let chunk = std::hint::black_box(vec![0xA5u8; CHUNK]);
            hoard.push(chunk);
            std::hint::black_box(&hoard);
        }
    }
}

wasi::http::proxy::export!(MemoryBomb);
