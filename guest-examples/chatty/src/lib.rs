//! `chatty`: prints `?lines=N` lines to stdout (10 without `?lines`), then
//! answers `printed N lines`. A guest that floods its log, for the host's
//! per-invocation output caps.

use std::io::Write;

use wisp_sdk::{Request, Response, http_handler};

#[http_handler]
fn handle(req: Request) -> Response {
    let lines = match req.query_param("lines").map(|n| n.parse::<u64>()) {
        None => 10,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return Response::text("?lines= must be a whole number\n").with_status(400);
        }
    };
    let mut out = std::io::stdout().lock();
    for i in 0..lines {
        // A failed write (the host never fails one) must not stop the answer.
        let _ = writeln!(out, "chatty: line {i}");
    }
    let _ = out.flush();
    Response::text(format!("printed {lines} lines\n"))
}
