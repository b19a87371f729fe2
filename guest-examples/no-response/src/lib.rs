//! Hostile `no-response`: returns from the handler without ever setting the
//! response-outparam. The host must answer the client with an error itself.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct NoResponse;

impl Guest for NoResponse {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        // Dropping the outparam unset is exactly the misbehaviour under test.
        drop(out);
    }
}

wasi::http::proxy::export!(NoResponse);
