//! Incoming bodies (of a request, or of an outbound call's response), read
//! either whole or as a stream.
//!
//! The source is any `Read`: the wasi:http input stream on wasm, plain bytes
//! in tests, so the buffering and error rules below are tested natively.

use std::fmt;
use std::io::{self, Cursor, Read};

use serde::de::DeserializeOwned;

/// An incoming body: of an outbound call's response
/// ([`ClientResponse::body_mut`](crate::outbound::ClientResponse::body_mut)),
/// or of a request, whose own `body`/`text`/`json` methods forward here.
/// Read it whole (kept after the first read, so `text()` after `bytes()`
/// works) or as a stream with [`into_reader`](Body::into_reader).
///
/// ```
/// let mut body = wisp_sdk::Body::from(r#"{"ok":true}"#);
/// assert_eq!(body.text().unwrap(), r#"{"ok":true}"#);
/// assert_eq!(body.json::<serde_json::Value>().unwrap()["ok"], true);
/// ```
pub struct Body {
    buffered: Vec<u8>,
    rest: Option<Box<dyn Read>>,
    /// Set when reading the rest failed: the buffered bytes are then partial
    /// and must never be handed out as the whole body.
    failed: Option<String>,
}

impl Body {
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Self {
        Body { buffered: bytes, rest: None, failed: None }
    }

    /// A body that was read whole up front (p3 handlers): `read` says
    /// whether the stream got to its end, as reading a `from_reader` body
    /// would.
    #[cfg(all(feature = "p3", target_arch = "wasm32"))]
    pub(crate) fn from_read(bytes: Vec<u8>, read: Result<(), String>) -> Self {
        Body { buffered: bytes, rest: None, failed: read.err() }
    }

    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn from_reader(reader: impl Read + 'static) -> Self {
        Body { buffered: Vec::new(), rest: Some(Box::new(reader)), failed: None }
    }

    /// The whole body, read on first use and then kept.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Body::from(vec![1u8, 2]).bytes().unwrap(), [1, 2]);
    /// ```
    pub fn bytes(&mut self) -> Result<&[u8], BodyError> {
        if let Some(mut rest) = self.rest.take()
            && let Err(e) = rest.read_to_end(&mut self.buffered)
        {
            self.failed = Some(e.to_string());
        }
        match &self.failed {
            Some(reason) => Err(BodyError::Read(reason.clone())),
            None => Ok(&self.buffered),
        }
    }

    /// The whole body as UTF-8 text.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Body::from("hi").text().unwrap(), "hi");
    /// ```
    pub fn text(&mut self) -> Result<&str, BodyError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| BodyError::NotUtf8)
    }

    /// The whole body parsed as JSON; invalid JSON is a [`BodyError::Json`],
    /// never a panic.
    ///
    /// ```
    /// assert!(wisp_sdk::Body::from("{").json::<serde_json::Value>().is_err());
    /// ```
    pub fn json<T: DeserializeOwned>(&mut self) -> Result<T, BodyError> {
        serde_json::from_slice(self.bytes()?).map_err(|e| BodyError::Json(e.to_string()))
    }

    /// The body as a stream (what was already read comes first).
    ///
    /// ```
    /// use std::io::Read;
    /// let mut text = String::new();
    /// wisp_sdk::Body::from("abc").into_reader().read_to_string(&mut text).unwrap();
    /// assert_eq!(text, "abc");
    /// ```
    pub fn into_reader(self) -> BodyReader {
        let rest: Box<dyn Read> = match (self.failed, self.rest) {
            (Some(reason), _) => Box::new(FailedReader(reason)),
            (None, Some(rest)) => rest,
            (None, None) => Box::new(io::empty()),
        };
        BodyReader { inner: Box::new(Cursor::new(self.buffered).chain(rest)) }
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::from_bytes(bytes)
    }
}

impl From<&str> for Body {
    fn from(text: &str) -> Self {
        Body::from_bytes(text.as_bytes().to_vec())
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body").field("buffered", &self.buffered.len()).finish_non_exhaustive()
    }
}

struct FailedReader(String);

impl Read for FailedReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other(self.0.clone()))
    }
}

/// A body as a byte stream, for bodies too big to hold in memory at once.
/// Implements [`std::io::Read`]; reading `0` bytes means the body ended.
///
/// ```
/// use std::io::Read;
/// use wisp_sdk::{Method, Request};
///
/// let req = Request::new(Method::Post, "/upload").with_body("some bytes");
/// let mut reader = req.into_body_reader();
/// let mut first = [0u8; 4];
/// reader.read_exact(&mut first).unwrap();
/// assert_eq!(&first, b"some");
/// ```
pub struct BodyReader {
    inner: Box<dyn Read>,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyReader { .. }")
    }
}

/// Why a body could not be read as asked. As a response (see
/// [`IntoResponse`](crate::IntoResponse)) it is a `400` naming the problem,
/// since each case is the sender's doing.
///
/// ```
/// use wisp_sdk::{BodyError, Method, Request};
///
/// let mut req = Request::new(Method::Post, "/").with_body("{not json");
/// let err = req.json::<serde_json::Value>().unwrap_err();
/// assert!(matches!(err, BodyError::Json(_)));
/// assert_eq!(err.status(), 400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyError {
    /// The stream broke before its end (e.g. the client went away).
    Read(String),
    /// The body is not valid UTF-8 text.
    NotUtf8,
    /// The body is not valid JSON for the expected type; holds serde's
    /// explanation (line, column, what was expected).
    Json(String),
}

impl BodyError {
    /// The HTTP status this error answers with: always `400 Bad Request`.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::BodyError::NotUtf8.status(), 400);
    /// ```
    pub fn status(&self) -> u16 {
        400
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Read(reason) => write!(f, "could not read the body: {reason}"),
            BodyError::NotUtf8 => f.write_str("the body is not valid UTF-8"),
            BodyError::Json(reason) => write!(f, "invalid JSON body: {reason}"),
        }
    }
}

impl std::error::Error for BodyError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields its bytes in small pieces, then fails if told to, like a
    /// network stream that breaks.
    struct Trickle(Vec<u8>, bool);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return if self.1 { Err(io::Error::other("reset")) } else { Ok(0) };
            }
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn reads_whole_stream_once() {
        let mut body = Body::from_reader(Trickle(b"hello world".to_vec(), false));
        assert_eq!(body.bytes().unwrap(), b"hello world");
        assert_eq!(body.text().unwrap(), "hello world");
    }

    #[test]
    fn broken_stream_is_an_error_every_time() {
        let mut body = Body::from_reader(Trickle(b"partial".to_vec(), true));
        assert_eq!(body.bytes(), Err(BodyError::Read("reset".into())));
        assert!(body.text().is_err());
        let mut rest = Vec::new();
        assert!(body.into_reader().read_to_end(&mut rest).is_err());
    }

    #[test]
    fn json_and_utf8_errors() {
        #[derive(serde::Deserialize, Debug)]
        struct Item {
            #[allow(dead_code)]
            name: String,
        }
        let mut body = Body::from_bytes(br#"{"name": 5}"#.to_vec());
        match body.json::<Item>() {
            Err(BodyError::Json(msg)) => assert!(msg.contains("invalid type"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(Body::from_bytes(vec![0xff]).text(), Err(BodyError::NotUtf8));
    }

    #[test]
    fn reader_continues_after_buffered_part() {
        let mut body = Body::from_reader(Trickle(b"abcdef".to_vec(), false));
        body.bytes().unwrap();
        let mut all = String::new();
        body.into_reader().read_to_string(&mut all).unwrap();
        assert_eq!(all, "abcdef");
    }
}
