//! The response a handler returns.

use std::fmt;
use std::io::{self, Write};

use serde::Serialize;

use crate::{BodyError, Headers};

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// Produces a streamed body: called once, after the status and headers are
/// sent, with the stream to write to.
type StreamFn = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()>>;

pub(crate) enum ResponseBody {
    Bytes(Vec<u8>),
    Stream(StreamFn),
}

impl ResponseBody {
    /// The whole body, running a stream to its end: the bytes it produced,
    /// and whether it got there (a failed stream's bytes are partial).
    pub(crate) fn into_bytes(self) -> (Vec<u8>, io::Result<()>) {
        match self {
            ResponseBody::Bytes(bytes) => (bytes, Ok(())),
            ResponseBody::Stream(write) => {
                let mut out = Vec::new();
                let written = write(&mut out);
                (out, written)
            }
        }
    }
}

/// An HTTP response: a status, headers and a body that is either bytes or a
/// stream written after the headers go out.
///
/// Constructors pick the status `200` and a fitting `content-type`; the
/// `with_*` builders adjust:
///
/// ```
/// use wisp_sdk::Response;
///
/// let created = Response::json(&serde_json::json!({"id": 1}))
///     .with_status(201)
///     .with_header("location", "/items/1");
/// assert_eq!(created.status(), 201);
/// assert_eq!(created.headers().get("content-type"), Some("application/json"));
/// ```
pub struct Response {
    status: u16,
    headers: Headers,
    body: ResponseBody,
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Response::new(204).status(), 204);
    /// ```
    pub fn new(status: u16) -> Self {
        Response { status, headers: Headers::new(), body: ResponseBody::Bytes(Vec::new()) }
    }

    /// `200` with a UTF-8 `text/plain` body.
    ///
    /// ```
    /// let r = wisp_sdk::Response::text("hi\n");
    /// assert_eq!(r.into_body_bytes().unwrap(), b"hi\n");
    /// ```
    pub fn text(body: impl Into<String>) -> Self {
        Self::bytes(TEXT, body.into())
    }

    /// `200` with `value` serialized as JSON. If serialization fails (only
    /// possible for types whose `Serialize` can fail, e.g. maps with
    /// non-string keys) the response is a `500` saying so.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Item { id: u32 }
    /// let r = wisp_sdk::Response::json(&Item { id: 7 });
    /// assert_eq!(r.into_body_bytes().unwrap(), br#"{"id":7}"#);
    /// ```
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => Self::bytes(JSON, bytes),
            Err(e) => Self::text(format!("could not serialize the JSON response: {e}\n"))
                .with_status(500),
        }
    }

    /// `200` with raw bytes and the given `content-type`.
    ///
    /// ```
    /// let r = wisp_sdk::Response::bytes("image/png", vec![0x89, b'P']);
    /// assert_eq!(r.headers().get("content-type"), Some("image/png"));
    /// ```
    pub fn bytes(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new(200)
            .with_header("content-type", content_type)
            .with_body_bytes(body.into())
    }

    /// `200` with a streamed body: `write` runs after the headers are sent
    /// and writes the body piece by piece, so any size fits in constant
    /// memory. Writes wait while the client is slow (backpressure).
    ///
    /// If `write` fails, the response is cut short: the status is already
    /// sent, so the client sees a truncated body, not a success.
    ///
    /// ```
    /// use std::io::Write;
    /// let r = wisp_sdk::Response::stream("text/plain", |out| {
    ///     for i in 0..3 {
    ///         writeln!(out, "line {i}")?;
    ///     }
    ///     Ok(())
    /// });
    /// assert_eq!(r.into_body_bytes().unwrap(), b"line 0\nline 1\nline 2\n");
    /// ```
    pub fn stream(
        content_type: &str,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()> + 'static,
    ) -> Self {
        Self::new(200).with_header("content-type", content_type).with_stream(write)
    }

    /// `404` with a short text body.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Response::not_found().status(), 404);
    /// ```
    pub fn not_found() -> Self {
        Self::text("not found\n").with_status(404)
    }

    /// Sets the status code (100–999; anything else is sent as a `500`).
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Response::text("gone").with_status(410).status(), 410);
    /// ```
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header, keeping existing ones with the same name. A name that
    /// is not an HTTP token, or a value with CR/LF, makes the response a
    /// `500` naming the header when sent, rather than being silently dropped.
    ///
    /// ```
    /// let r = wisp_sdk::Response::text("").with_header("cache-control", "no-store");
    /// assert_eq!(r.headers().get("Cache-Control"), Some("no-store"));
    /// ```
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Replaces the body with `body`, keeping status and headers.
    ///
    /// ```
    /// let r = wisp_sdk::Response::new(202).with_body_bytes(b"queued".to_vec());
    /// assert_eq!(r.into_body_bytes().unwrap(), b"queued");
    /// ```
    pub fn with_body_bytes(mut self, body: Vec<u8>) -> Self {
        self.body = ResponseBody::Bytes(body);
        self
    }

    /// Replaces the body with a stream (see [`Response::stream`]), keeping
    /// status and headers.
    ///
    /// ```
    /// use std::io::Write;
    /// let r = wisp_sdk::Response::new(200).with_stream(|out| out.write_all(b"streamed"));
    /// assert!(r.headers().is_empty());
    /// assert_eq!(r.into_body_bytes().unwrap(), b"streamed");
    /// ```
    pub fn with_stream(
        mut self,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()> + 'static,
    ) -> Self {
        self.body = ResponseBody::Stream(Box::new(write));
        self
    }

    /// The status code.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Response::text("").status(), 200);
    /// ```
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers.
    ///
    /// ```
    /// assert!(wisp_sdk::Response::new(200).headers().is_empty());
    /// ```
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The headers, to change in place.
    ///
    /// ```
    /// let mut r = wisp_sdk::Response::text("x");
    /// r.headers_mut().set("content-type", "text/markdown");
    /// assert_eq!(r.headers().get("content-type"), Some("text/markdown"));
    /// ```
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The whole body, running a streamed body to completion. Meant for
    /// tests of handlers.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Response::text("ok").into_body_bytes().unwrap(), b"ok");
    /// ```
    pub fn into_body_bytes(self) -> io::Result<Vec<u8>> {
        let (bytes, written) = self.body.into_bytes();
        written.map(|()| bytes)
    }

    /// The `500` sent instead of a response the host would reject, naming
    /// `problem` (also printed to stderr, for the function's logs).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn bad_response(problem: &str) -> Response {
        eprintln!("wisp-sdk: handler returned a bad response: {problem}");
        Response::text(format!("bad response from function: {problem}\n")).with_status(500)
    }

    /// Status, headers and body, after checking what the host would reject:
    /// an invalid response becomes a `500` that says what was wrong.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn into_checked_parts(self) -> (u16, Headers, ResponseBody) {
        let problem = if !(100..=999).contains(&self.status) {
            Some(format!("invalid status code {}", self.status))
        } else {
            self.headers.validate().err()
        };
        match problem {
            Some(problem) => {
                let fallback = Response::bad_response(&problem);
                (fallback.status, fallback.headers, fallback.body)
            }
            None => (self.status, self.headers, self.body),
        }
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = match &self.body {
            ResponseBody::Bytes(b) => format!("{} bytes", b.len()),
            ResponseBody::Stream(_) => "stream".to_owned(),
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .finish()
    }
}

/// What a handler may return: anything that can become a [`Response`].
///
/// Implemented for [`Response`], `String` and `&'static str` (a `200` text
/// response), [`BodyError`] (a `400`), and `Result<T, E>` where both sides
/// are `IntoResponse`, so handlers can use `?`. Implement it for your own
/// error type to choose its status and body.
///
/// ```
/// use wisp_sdk::{IntoResponse, Response};
///
/// enum ApiError { NotFound }
///
/// impl IntoResponse for ApiError {
///     fn into_response(self) -> Response {
///         match self {
///             ApiError::NotFound => Response::json(&serde_json::json!({"error": "not found"}))
///                 .with_status(404),
///         }
///     }
/// }
///
/// let r: Result<Response, ApiError> = Err(ApiError::NotFound);
/// assert_eq!(r.into_response().status(), 404);
/// ```
pub trait IntoResponse {
    /// Converts `self` into the response to send.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        let status = self.status();
        Response::text(format!("{self}\n")).with_status(status)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(r: Response) -> (u16, Headers, Vec<u8>) {
        let (status, headers, body) = r.into_checked_parts();
        let body = Response { status, headers: Headers::new(), body }.into_body_bytes().unwrap();
        (status, headers, body)
    }

    #[test]
    fn builders_set_status_headers_body() {
        let (status, headers, body) = parts(Response::text("hi").with_status(201).with_header("x-a", "1"));
        assert_eq!(status, 201);
        assert_eq!(headers.get("content-type"), Some(TEXT));
        assert_eq!(headers.get("x-a"), Some("1"));
        assert_eq!(body, b"hi");
    }

    #[test]
    fn invalid_response_becomes_500_naming_the_problem() {
        let (status, _, body) = parts(Response::text("x").with_status(42));
        assert_eq!(status, 500);
        assert!(String::from_utf8(body).unwrap().contains("invalid status code 42"));
        let (status, _, body) = parts(Response::text("x").with_header("x", "a\nb"));
        assert_eq!(status, 500);
        assert!(String::from_utf8(body).unwrap().contains("\"x\""));
    }

    #[test]
    fn json_serialization_failure_is_500() {
        use std::collections::HashMap;
        let bad: HashMap<(u8, u8), u8> = [((1, 2), 3)].into_iter().collect();
        assert_eq!(Response::json(&bad).status(), 500);
    }

    #[test]
    fn results_and_errors_convert() {
        let ok: Result<&'static str, BodyError> = Ok("fine");
        assert_eq!(ok.into_response().status(), 200);
        let err: Result<&'static str, BodyError> = Err(BodyError::NotUtf8);
        let r = err.into_response();
        assert_eq!(r.status(), 400);
        assert_eq!(r.into_body_bytes().unwrap(), b"the body is not valid UTF-8\n");
    }

    #[test]
    fn stream_errors_surface() {
        let r = Response::stream("text/plain", |out| {
            out.write_all(b"part")?;
            Err(io::Error::other("boom"))
        });
        assert!(r.into_body_bytes().is_err());
    }
}
