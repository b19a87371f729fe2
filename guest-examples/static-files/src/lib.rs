//! `static-files`: answers `GET /<name>` with the file `/static/<name>`.
//! Files are only there when the function is given a directory
//! (`dirs = { "/static" = "public" }`); otherwise every read fails with 404,
//! because no directory is preopened by default.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct StaticFiles;

impl Guest for StaticFiles {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let name = path.split('?').next().unwrap_or("").rsplit('/').next().unwrap_or("");
        match std::fs::read(format!("/static/{name}")) {
            Ok(bytes) => raw_support::respond(out, 200, "application/octet-stream", &bytes),
            Err(e) => raw_support::respond(out, 404, "text/plain", format!("{name}: {e}\n").as_bytes()),
        }
    }
}

wasi::http::proxy::export!(StaticFiles);
