//! Hostile `trap-after-headers`: commits a 200 and part of the body, then
//! traps. The host cannot change the status any more; it must cut the body
//! short so the client sees a broken response rather than a complete one.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct TrapAfterHeaders;

impl Guest for TrapAfterHeaders {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let (_body, mut stream) = raw_support::start_response(out, 200, "text/plain");
        let _ = raw_support::write_all(&mut stream, b"partial");
        panic!("trap after headers, on purpose");
    }
}

wasi::http::proxy::export!(TrapAfterHeaders);
