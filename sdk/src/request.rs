//! The request a handler receives.

use std::cell::OnceCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;

use crate::{Body, BodyError, BodyReader, Headers, Method, url};

/// An incoming HTTP request.
///
/// The path is the full path the host received (a function mounted under a
/// prefix such as `/api` sees `/api/...`). The body is read on demand, whole
/// ([`body`](Request::body), [`text`](Request::text), [`json`](Request::json))
/// or as a stream ([`into_body_reader`](Request::into_body_reader)).
/// The authority and headers too are fetched from the host on first use:
/// each part costs calls into the host, and a handler pays only for what
/// it reads.
///
/// [`Request::new`] builds one by hand, which is how handlers are unit-tested:
///
/// ```
/// use wisp_sdk::{Method, Request};
///
/// let mut req = Request::new(Method::Post, "/items?dry_run=1")
///     .with_header("content-type", "application/json")
///     .with_body(r#"{"name":"x"}"#);
/// assert_eq!(req.path(), "/items");
/// assert_eq!(req.query_param("dry_run").as_deref(), Some("1"));
/// assert_eq!(req.json::<serde_json::Value>().unwrap()["name"], "x");
/// ```
pub struct Request {
    method: Method,
    path_with_query: String,
    /// Read from [`Self::source`] on first use, unless set when built.
    authority: OnceCell<Option<String>>,
    /// Read from [`Self::source`] on first use, unless set when built.
    headers: OnceCell<Headers>,
    body: Body,
    /// Where the parts not read yet come from: the host's request, for a
    /// wasi:http@0.2 handler. Each part costs calls into the host (headers:
    /// three), so one the handler never looks at is never fetched.
    source: Option<Rc<dyn Source>>,
}

/// The host's request, asked for the parts of a [`Request`] it does not
/// carry yet.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // implemented by the wasi glue
pub(crate) trait Source {
    fn authority(&self) -> Option<String>;
    fn headers(&self) -> Headers;
}

impl Request {
    /// A request with no headers and an empty body.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Get, "/");
    /// assert_eq!(req.path(), "/");
    /// ```
    pub fn new(method: Method, path_with_query: impl Into<String>) -> Self {
        Request::from_parts(method, path_with_query.into(), None, Headers::new(), Body::from_bytes(Vec::new()))
    }

    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // used by the wasi glue
    pub(crate) fn from_parts(
        method: Method,
        path_with_query: String,
        authority: Option<String>,
        headers: Headers,
        body: Body,
    ) -> Self {
        Request {
            method,
            path_with_query,
            authority: OnceCell::from(authority),
            headers: OnceCell::from(headers),
            body,
            source: None,
        }
    }

    /// A request whose authority and headers are read from `source` when
    /// first asked for (`body` is expected to be just as lazy).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // used by the wasi glue
    pub(crate) fn from_source(method: Method, path_with_query: String, source: Rc<dyn Source>, body: Body) -> Self {
        Request {
            method,
            path_with_query,
            authority: OnceCell::new(),
            headers: OnceCell::new(),
            body,
            source: Some(source),
        }
    }

    /// Adds a header (builder style, for tests).
    ///
    /// ```
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Get, "/").with_header("X-Id", "7");
    /// assert_eq!(req.header("x-id"), Some("7"));
    /// ```
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.headers();
        if let Some(headers) = self.headers.get_mut() {
            headers.append(name, value);
        }
        self
    }

    /// Replaces the body (builder style, for tests).
    ///
    /// ```
    /// let mut req = wisp_sdk::Request::new(wisp_sdk::Method::Put, "/").with_body("data");
    /// assert_eq!(req.body().unwrap(), b"data");
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Body::from_bytes(body.into());
        self
    }

    /// The request method.
    ///
    /// ```
    /// use wisp_sdk::{Method, Request};
    /// assert_eq!(Request::new(Method::Delete, "/x").method(), &Method::Delete);
    /// ```
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path and query exactly as received, e.g. `/a/b?x=1`.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Get, "/a?x=1");
    /// assert_eq!(req.path_with_query(), "/a?x=1");
    /// ```
    pub fn path_with_query(&self) -> &str {
        &self.path_with_query
    }

    /// The path without the query, still percent-encoded.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Get, "/a%20b?x=1");
    /// assert_eq!(req.path(), "/a%20b");
    /// ```
    pub fn path(&self) -> &str {
        self.path_with_query.split_once('?').map_or(&self.path_with_query, |(path, _)| path)
    }

    /// The raw query string after `?`, if there is one.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Get, "/?a=1&b");
    /// assert_eq!(req.query(), Some("a=1&b"));
    /// ```
    pub fn query(&self) -> Option<&str> {
        self.path_with_query.split_once('?').map(|(_, query)| query)
    }

    /// The decoded query as `(key, value)` pairs, repeats and order kept.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Get, "/?tag=a&tag=b+c");
    /// let tags: Vec<_> = req.query_pairs().into_iter().map(|(_, v)| v).collect();
    /// assert_eq!(tags, ["a", "b c"]);
    /// ```
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query().map(url::parse_query).unwrap_or_default()
    }

    /// The first decoded value of query parameter `name`.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Get, "/?url=http%3A%2F%2Fx%2F");
    /// assert_eq!(req.query_param("url").as_deref(), Some("http://x/"));
    /// assert_eq!(req.query_param("missing"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The authority (`host[:port]`) the request was addressed to, when the
    /// host passes it on.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Request::new(wisp_sdk::Method::Get, "/").authority(), None);
    /// ```
    pub fn authority(&self) -> Option<&str> {
        self.authority
            .get_or_init(|| self.source.as_ref().and_then(|source| source.authority()))
            .as_deref()
    }

    /// All request headers.
    ///
    /// ```
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Get, "/").with_header("a", "1");
    /// assert_eq!(req.headers().len(), 1);
    /// ```
    pub fn headers(&self) -> &Headers {
        self.headers
            .get_or_init(|| self.source.as_ref().map_or_else(Headers::new, |source| source.headers()))
    }

    /// The first value of header `name` as text (case-insensitive name).
    ///
    /// ```
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Get, "/").with_header("Accept", "*/*");
    /// assert_eq!(req.header("accept"), Some("*/*"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name)
    }

    /// The whole body. Read from the client on first use, then kept.
    ///
    /// ```
    /// let mut req = wisp_sdk::Request::new(wisp_sdk::Method::Post, "/").with_body(vec![1, 2]);
    /// assert_eq!(req.body().unwrap(), [1, 2]);
    /// ```
    pub fn body(&mut self) -> Result<&[u8], BodyError> {
        self.body.bytes()
    }

    /// The whole body as UTF-8 text.
    ///
    /// ```
    /// let mut req = wisp_sdk::Request::new(wisp_sdk::Method::Post, "/").with_body("hi");
    /// assert_eq!(req.text().unwrap(), "hi");
    /// ```
    pub fn text(&mut self) -> Result<&str, BodyError> {
        self.body.text()
    }

    /// The whole body parsed as JSON into `T`. Invalid JSON is an `Err`
    /// ([`BodyError::Json`], a `400` if returned from a handler), never a
    /// panic.
    ///
    /// ```
    /// #[derive(serde::Deserialize)]
    /// struct New { name: String }
    ///
    /// let mut req = wisp_sdk::Request::new(wisp_sdk::Method::Post, "/").with_body(r#"{"name":"x"}"#);
    /// assert_eq!(req.json::<New>().unwrap().name, "x");
    /// ```
    pub fn json<T: DeserializeOwned>(&mut self) -> Result<T, BodyError> {
        self.body.json()
    }

    /// The body as a stream, for bodies of any size: see [`BodyReader`].
    ///
    /// ```
    /// use std::io::Read;
    /// let req = wisp_sdk::Request::new(wisp_sdk::Method::Post, "/").with_body("abc");
    /// let mut s = String::new();
    /// req.into_body_reader().read_to_string(&mut s).unwrap();
    /// assert_eq!(s, "abc");
    /// ```
    pub fn into_body_reader(self) -> BodyReader {
        self.body.into_reader()
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path_with_query", &self.path_with_query)
            .field("authority", &self.authority())
            .field("headers", self.headers())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_query_split_on_first_question_mark() {
        let req = Request::new(Method::Get, "/p?a=1?b=2");
        assert_eq!(req.path(), "/p");
        assert_eq!(req.query(), Some("a=1?b=2"));
        assert_eq!(req.query_param("a").as_deref(), Some("1?b=2"));
        let bare = Request::new(Method::Get, "/only");
        assert_eq!((bare.path(), bare.query()), ("/only", None));
        assert!(bare.query_pairs().is_empty());
    }

    /// The host's request, counting what it is asked for.
    #[derive(Default)]
    struct Counted {
        authority: std::cell::Cell<u32>,
        headers: std::cell::Cell<u32>,
    }

    impl Source for Counted {
        fn authority(&self) -> Option<String> {
            self.authority.set(self.authority.get() + 1);
            Some("example.com".into())
        }

        fn headers(&self) -> Headers {
            self.headers.set(self.headers.get() + 1);
            [("accept".to_owned(), b"*/*".to_vec())].into_iter().collect()
        }
    }

    #[test]
    fn host_parts_are_fetched_once_and_only_when_read() {
        let source = Rc::new(Counted::default());
        let body = Body::from_bytes(Vec::new());
        let req = Request::from_source(Method::Get, "/x".into(), source.clone(), body);
        assert_eq!(req.path(), "/x");
        assert_eq!((source.authority.get(), source.headers.get()), (0, 0));
        assert_eq!(req.header("accept"), Some("*/*"));
        assert_eq!(req.headers().len(), 1);
        assert_eq!((source.authority.get(), source.headers.get()), (0, 1));
        assert_eq!(req.authority(), Some("example.com"));
        assert_eq!(req.authority(), Some("example.com"));
        assert_eq!((source.authority.get(), source.headers.get()), (1, 1));
        // A header added by hand goes beside the host's, not instead of them.
        let req = req.with_header("x-id", "7");
        assert_eq!((req.header("accept"), req.header("x-id")), (Some("*/*"), Some("7")));
        assert_eq!(source.headers.get(), 1);
    }

    #[test]
    fn body_accessors_share_one_read() {
        let mut req = Request::new(Method::Post, "/").with_body(r#"{"n":1}"#);
        assert_eq!(req.text().unwrap(), r#"{"n":1}"#);
        let v: serde_json::Value = req.json().unwrap();
        assert_eq!(v["n"], 1);
    }

    #[test]
    fn bad_json_is_an_error_not_a_panic() {
        let mut req = Request::new(Method::Post, "/").with_body("{");
        assert!(matches!(req.json::<serde_json::Value>(), Err(BodyError::Json(_))));
    }
}
