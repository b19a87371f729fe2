//! Hostile `panic`: panics before answering. With `panic = "abort"` that is a
//! trap; the message goes to stderr first, for the host to log.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Panic;

impl Guest for Panic {
    fn handle(_request: IncomingRequest, _out: ResponseOutparam) {
        panic!("guest panicked on purpose");
    }
}

wasi::http::proxy::export!(Panic);
