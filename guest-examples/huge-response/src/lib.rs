//! Hostile `huge-response`: streams 64 MiB in 64 KiB chunks. It tests that the
//! host streams bodies with backpressure instead of buffering them.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

const TOTAL: usize = 64 << 20;
const CHUNK: usize = 64 << 10;

struct HugeResponse;

impl Guest for HugeResponse {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let (body, mut stream) = raw_support::start_response(out, 200, "application/octet-stream");
        let chunk = vec![b'x'; CHUNK];
        for _ in 0..TOTAL / CHUNK {
            // write_all honours check-write, so a slow client slows us down
            // rather than growing the host's buffers. Stop if the client left.
            if raw_support::write_all(&mut stream, &chunk).is_err() {
                return;
            }
        }
        raw_support::finish(body, stream);
    }
}

wasi::http::proxy::export!(HugeResponse);
