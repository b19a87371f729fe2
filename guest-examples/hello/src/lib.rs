//! `hello`: answers every request with a greeting and the request's path.
//! The greeting comes from the `GREETING` env var when set, so it also shows
//! env vars reaching a function.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Hello;

impl Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".into());
        let body = format!("{greeting}, world! path={path}\n");
        raw_support::respond(out, 200, "text/plain; charset=utf-8", body.as_bytes());
    }
}

wasi::http::proxy::export!(Hello);
