//! Outbound HTTP calls through `wasi:http/outgoing-handler`.
//!
//! The host decides which destinations a function may reach; a refused call
//! is a [`ClientError::Http`] carrying the host's error code
//! (`ErrorCode::HttpRequestDenied`), like any other transport failure.
//!
//! ```no_run
//! use wisp_sdk::outbound;
//!
//! let mut reply = outbound::get("http://example.com/status")?;
//! println!("{} {}", reply.status(), reply.body_mut().text()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use crate::{Body, Headers, Method};

/// An outbound request, built then [`send`](Self::send)-ed.
///
/// ```no_run
/// use wisp_sdk::{Method, outbound::OutboundRequest};
///
/// let reply = OutboundRequest::new(Method::Post, "http://orders.internal/orders")
///     .with_header("content-type", "application/json")
///     .with_body(r#"{"sku":"abc"}"#)
///     .send()?;
/// assert_eq!(reply.status(), 201);
/// # Ok::<(), wisp_sdk::outbound::ClientError>(())
/// ```
#[derive(Clone, Debug)]
pub struct OutboundRequest {
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // used by the wasi glue
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) headers: Headers,
    pub(crate) body: Vec<u8>,
}

impl OutboundRequest {
    /// A request for `url` (`http://` or `https://`), no headers, empty body.
    ///
    /// ```
    /// let req = wisp_sdk::outbound::OutboundRequest::new(wisp_sdk::Method::Delete, "http://x/1");
    /// # let _ = req;
    /// ```
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        OutboundRequest { method, url: url.into(), headers: Headers::new(), body: Vec::new() }
    }

    /// A `GET` for `url`.
    ///
    /// ```
    /// let req = wisp_sdk::outbound::OutboundRequest::get("http://x/");
    /// # let _ = req;
    /// ```
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// Adds a header.
    ///
    /// ```
    /// let req = wisp_sdk::outbound::OutboundRequest::get("http://x/").with_header("accept", "text/plain");
    /// # let _ = req;
    /// ```
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.append(name, value);
        self
    }

    /// Sets the body.
    ///
    /// ```
    /// let req = wisp_sdk::outbound::OutboundRequest::new(wisp_sdk::Method::Put, "http://x/k").with_body("v");
    /// # let _ = req;
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request and waits for the response's status and headers;
    /// the body is read when asked for.
    ///
    /// ```no_run
    /// let reply = wisp_sdk::outbound::OutboundRequest::get("http://x/").send();
    /// if let Err(e) = &reply {
    ///     eprintln!("outbound call failed: {e}");
    /// }
    /// ```
    pub fn send(self) -> Result<ClientResponse, ClientError> {
        let url = self.checked_url()?;
        #[cfg(target_arch = "wasm32")]
        return crate::wasm::send(&self, &url);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = url;
            Err(ClientError::Unsupported)
        }
    }

    /// The URL split into the parts wasi:http wants, once the headers are
    /// known to be sendable: what every transport checks before sending.
    pub(crate) fn checked_url(&self) -> Result<crate::url::Url<'_>, ClientError> {
        self.headers
            .validate()
            .map_err(ClientError::InvalidRequest)?;
        crate::url::Url::parse(&self.url).map_err(ClientError::InvalidRequest)
    }
}

/// `GET url`, the common case of [`OutboundRequest`].
///
/// ```no_run
/// let body = wisp_sdk::outbound::get("http://example.com/")?.body_mut().text()?.to_owned();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn get(url: &str) -> Result<ClientResponse, ClientError> {
    OutboundRequest::get(url).send()
}

/// The response to an outbound request.
///
/// ```no_run
/// let mut reply = wisp_sdk::outbound::get("http://example.com/")?;
/// if reply.status() == 200 {
///     let len = reply.body_mut().bytes()?.len();
///     println!("{len} bytes of {:?}", reply.header("content-type"));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClientResponse {
    status: u16,
    headers: Headers,
    body: Body,
}

impl ClientResponse {
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub(crate) fn new(status: u16, headers: Headers, body: Body) -> Self {
        ClientResponse { status, headers, body }
    }

    /// The status code.
    ///
    /// ```no_run
    /// assert_eq!(wisp_sdk::outbound::get("http://x/")?.status(), 200);
    /// # Ok::<(), wisp_sdk::outbound::ClientError>(())
    /// ```
    pub fn status(&self) -> u16 {
        self.status
    }

    /// All response headers.
    ///
    /// ```no_run
    /// let n = wisp_sdk::outbound::get("http://x/")?.headers().len();
    /// # Ok::<(), wisp_sdk::outbound::ClientError>(())
    /// ```
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name` as text.
    ///
    /// ```no_run
    /// let ct = wisp_sdk::outbound::get("http://x/")?.header("content-type").map(str::to_owned);
    /// # Ok::<(), wisp_sdk::outbound::ClientError>(())
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The body, to read whole (`bytes`, `text`, `json`) as a [`Body`].
    ///
    /// ```no_run
    /// let mut reply = wisp_sdk::outbound::get("http://x/")?;
    /// let v: serde_json::Value = reply.body_mut().json()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn body_mut(&mut self) -> &mut Body {
        &mut self.body
    }

    /// The body, e.g. to relay it as a stream into a
    /// [`Response::stream`](crate::Response::stream).
    ///
    /// ```no_run
    /// let mut upstream = wisp_sdk::outbound::get("http://x/big")?.into_body().into_reader();
    /// let relay = wisp_sdk::Response::stream("application/octet-stream", move |out| {
    ///     std::io::copy(&mut upstream, out).map(drop)
    /// });
    /// # Ok::<(), wisp_sdk::outbound::ClientError>(())
    /// ```
    pub fn into_body(self) -> Body {
        self.body
    }
}

impl fmt::Debug for ClientResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// Why an outbound call produced no response.
///
/// ```
/// use wisp_sdk::outbound::ClientError;
///
/// let denied = ClientError::Http("ErrorCode::HttpRequestDenied".into());
/// assert!(denied.is_denied());
/// assert_eq!(denied.to_string(), "ErrorCode::HttpRequestDenied");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The request was malformed (bad URL, bad header) and was not sent.
    InvalidRequest(String),
    /// The host or the network failed the call. Holds the wasi:http
    /// `error-code` as its debug text, e.g. `ErrorCode::HttpRequestDenied`
    /// (the host's policy refused the destination) or
    /// `ErrorCode::ConnectionRefused`.
    Http(String),
    /// Outbound HTTP only exists inside a component (the wasm32 target); in
    /// host-side unit tests every call fails with this.
    Unsupported,
}

impl ClientError {
    /// A wasi:http `ErrorCode` (0.2 or 0.3) as its debug text, e.g.
    /// `ErrorCode::HttpRequestDenied`.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn from_code(code: impl fmt::Debug) -> ClientError {
        ClientError::Http(format!("{code:?}"))
    }

    /// Whether the host's policy refused the destination.
    ///
    /// ```
    /// assert!(!wisp_sdk::outbound::ClientError::Unsupported.is_denied());
    /// ```
    pub fn is_denied(&self) -> bool {
        matches!(self, ClientError::Http(code) if code == "ErrorCode::HttpRequestDenied")
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::InvalidRequest(reason) | ClientError::Http(reason) => f.write_str(reason),
            ClientError::Unsupported => f.write_str("outbound HTTP is only available in a wasm component"),
        }
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_requests_fail_before_sending() {
        let bad_url = OutboundRequest::get("not a url").send().unwrap_err();
        assert!(matches!(bad_url, ClientError::InvalidRequest(ref m) if m.contains("not a url")));
        let bad_header = OutboundRequest::get("http://x/").with_header("a b", "v").send().unwrap_err();
        assert!(matches!(bad_header, ClientError::InvalidRequest(_)));
    }

    #[test]
    fn host_target_has_no_transport() {
        assert_eq!(get("http://x/").unwrap_err(), ClientError::Unsupported);
    }
}
