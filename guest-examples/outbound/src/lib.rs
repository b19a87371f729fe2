//! `outbound`: `GET /?url=<url-encoded http(s) URL>` fetches that URL through
//! wasi:http's outgoing-handler and relays the body (streamed, status 200,
//! upstream status in `x-upstream-status`). A call the host refuses or that
//! fails answers `502 outbound error: <error code>`; a malformed URL, `400`.

use std::io;

use wisp_sdk::outbound::{self, ClientError};
use wisp_sdk::{Request, Response, http_handler};

#[http_handler]
fn handle(req: Request) -> Response {
    let Some(url) = req.query_param("url") else {
        return Response::text("usage: /?url=<url-encoded http URL>\n").with_status(400);
    };
    match outbound::get(&url) {
        Ok(upstream) => {
            let status = upstream.status().to_string();
            let content_type =
                upstream.header("content-type").unwrap_or("application/octet-stream").to_owned();
            let mut body = upstream.into_body().into_reader();
            Response::stream(&content_type, move |out| io::copy(&mut body, out).map(drop))
                .with_header("x-upstream-status", status)
        }
        Err(ClientError::InvalidRequest(reason)) => {
            Response::text(format!("bad url: {reason}\n")).with_status(400)
        }
        Err(e) => Response::text(format!("outbound error: {e}\n")).with_status(502),
    }
}
