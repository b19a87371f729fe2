//! Helpers for the examples written directly against the `wasi` crate rather
//! than `wisp-sdk`: the hostile guests and `counter`. They stay SDK-free so the
//! runtime's tests exercise the raw wasi:http contract (including the ways a
//! guest can break it) without any SDK code in between.

use std::io::Write as _;

use wasi::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};
use wasi::io::streams::OutputStream;

/// Sets a response with `status` and `content-type` on `out` and returns the
/// body and its stream, so the caller decides how (and whether) to finish it.
pub fn start_response(
    out: ResponseOutparam,
    status: u16,
    content_type: &str,
) -> (OutgoingBody, OutputStream) {
    let headers = Fields::from_list(&[("content-type".into(), content_type.as_bytes().to_vec())])
        .expect("content-type is a valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("status is valid");
    let body = response.body().expect("body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("stream is taken once");
    (body, stream)
}

/// Answers with a whole body at once.
pub fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let (outgoing, mut stream) = start_response(out, status, content_type);
    // A client that went away is not this guest's problem: nothing to retry.
    let _ = write_all(&mut stream, body);
    finish(outgoing, stream);
}

/// Writes `bytes`, waiting for the host's permission (check-write) as needed.
pub fn write_all(stream: &mut OutputStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes)?;
    stream.flush()
}

/// Closes the stream and the body; the stream must go first (it is a child
/// resource of the body).
pub fn finish(body: OutgoingBody, stream: OutputStream) {
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}
