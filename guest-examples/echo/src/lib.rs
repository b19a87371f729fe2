//! `echo`: streams the request body back unchanged, with its content-type.
//! Reads and writes in chunks, so a body of any size passes through in
//! constant memory, and a slow client slows the upload (backpressure).

use std::io::Read;

use wisp_sdk::{Request, Response, http_handler};

const CHUNK: usize = 64 << 10;

#[http_handler]
fn handle(req: Request) -> Response {
    let content_type = req.header("content-type").map(str::to_owned);
    let mut body = req.into_body_reader();
    let response = Response::new(200).with_stream(move |out| {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = body.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&buf[..n])?;
        }
    });
    match content_type {
        Some(content_type) => response.with_header("content-type", content_type),
        None => response,
    }
}
