//! Small responses Wisp writes itself: plain text and JSON, and the header
//! that names the invocation.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use serde::Serialize;
use wasmtime_wasi_http::WasiBody;

use crate::invoke::full;
use crate::telemetry::ids::InvocationId;

/// Response header carrying the invocation id, also found in every log line.
pub const INVOCATION_HEADER: &str = "x-wisp-invocation-id";

pub fn plain(status: StatusCode, body: String) -> Response<WasiBody> {
    with_type(status, Bytes::from(body), "text/plain; charset=utf-8")
}

/// Pretty JSON, or a plain 500 if `value` cannot be serialized.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<WasiBody> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => with_type(status, Bytes::from(body), "application/json"),
        Err(e) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

pub fn empty(status: StatusCode) -> Response<WasiBody> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

fn with_type(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<WasiBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// On every response, so written without the formatting machinery: the
/// name is parsed once and the id spelled into a stack buffer.
pub fn set_invocation_header<B>(resp: &mut Response<B>, id: InvocationId) {
    static NAME: HeaderName = HeaderName::from_static(INVOCATION_HEADER);
    if let Ok(v) = HeaderValue::from_bytes(&id.hex()) {
        resp.headers_mut().insert(NAME.clone(), v);
    }
}
