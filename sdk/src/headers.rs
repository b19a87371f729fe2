//! An ordered, case-insensitive header list.
//!
//! HTTP allows repeated headers and arbitrary bytes in values, and wasi:http
//! hands them over as a list of `(name, bytes)`; a plain list keeps both
//! properties and is cheap for the handful of headers a function sees.

use std::fmt;

/// HTTP headers: names compared case-insensitively (stored lowercase), values
/// as bytes, repeats and order kept.
///
/// ```
/// use wisp_sdk::Headers;
///
/// let mut headers = Headers::new();
/// headers.append("Set-Cookie", "a=1");
/// headers.append("set-cookie", "b=2");
/// headers.set("Content-Type", "text/plain");
/// assert_eq!(headers.get("content-type"), Some("text/plain"));
/// assert_eq!(headers.get_all("SET-COOKIE").count(), 2);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Vec<u8>)>,
}

impl Headers {
    /// An empty header list.
    ///
    /// ```
    /// assert!(wisp_sdk::Headers::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// The first value of `name` as text, or `None` if absent or not UTF-8.
    ///
    /// ```
    /// let headers: wisp_sdk::Headers = [("Accept", "text/html")].into_iter().collect();
    /// assert_eq!(headers.get("accept"), Some("text/html"));
    /// ```
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `name` as raw bytes.
    ///
    /// ```
    /// let headers: wisp_sdk::Headers = [("x-raw", "\u{e9}")].into_iter().collect();
    /// assert_eq!(headers.get_bytes("x-raw"), Some("\u{e9}".as_bytes()));
    /// ```
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Every value of `name`, in order.
    ///
    /// ```
    /// let headers: wisp_sdk::Headers = [("via", "a"), ("Via", "b")].into_iter().collect();
    /// let all: Vec<&[u8]> = headers.get_all("via").collect();
    /// assert_eq!(all, [b"a", b"b"]);
    /// ```
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Whether `name` is present.
    ///
    /// ```
    /// let headers: wisp_sdk::Headers = [("ce-id", "1")].into_iter().collect();
    /// assert!(headers.contains("CE-ID"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.get_bytes(name).is_some()
    }

    /// Adds a value, keeping any existing ones.
    ///
    /// ```
    /// let mut headers = wisp_sdk::Headers::new();
    /// headers.append("vary", "accept");
    /// headers.append("vary", "origin");
    /// assert_eq!(headers.len(), 2);
    /// ```
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let mut name = name.into();
        name.make_ascii_lowercase();
        self.entries.push((name, value.into()));
    }

    /// Replaces every value of `name` with `value`.
    ///
    /// ```
    /// let mut headers: wisp_sdk::Headers = [("x", "1"), ("x", "2")].into_iter().collect();
    /// headers.set("X", "3");
    /// assert_eq!(headers.get_all("x").count(), 1);
    /// assert_eq!(headers.get("x"), Some("3"));
    /// ```
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        let name = name.into();
        self.remove(&name);
        self.append(name, value);
    }

    /// Removes every value of `name`.
    ///
    /// ```
    /// let mut headers: wisp_sdk::Headers = [("x", "1")].into_iter().collect();
    /// headers.remove("x");
    /// assert!(headers.is_empty());
    /// ```
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// All `(name, value)` pairs in order; names are lowercase.
    ///
    /// ```
    /// let headers: wisp_sdk::Headers = [("A", "1")].into_iter().collect();
    /// assert_eq!(headers.iter().next(), Some(("a", &b"1"[..])));
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Number of `(name, value)` pairs.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Headers::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no headers.
    ///
    /// ```
    /// assert!(wisp_sdk::Headers::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks every name is an HTTP token and no value contains CR, LF or
    /// NUL, so a bad header becomes a clear error instead of a host refusal.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (name, value) in &self.entries {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(format!("invalid header name {name:?}"));
            }
            if value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(format!("invalid value for header {name:?}"));
            }
        }
        Ok(())
    }

    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))] // used by the wasi glue
    pub(crate) fn into_entries(self) -> Vec<(String, Vec<u8>)> {
        self.entries
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<K: Into<String>, V: Into<Vec<u8>>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.append(name, value);
        }
        headers
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_repeats_kept() {
        let mut h: Headers = [("Content-Type", "a"), ("X-Y", "1"), ("x-y", "2")]
            .into_iter()
            .collect();
        assert_eq!(h.get("CONTENT-TYPE"), Some("a"));
        assert_eq!(h.get_all("x-y").collect::<Vec<_>>(), [b"1", b"2"]);
        h.set("x-Y", "3");
        assert_eq!(h.get_all("x-y").collect::<Vec<_>>(), [b"3"]);
        assert_eq!(h.iter().map(|(n, _)| n).collect::<Vec<_>>(), ["content-type", "x-y"]);
    }

    #[test]
    fn non_utf8_value_is_bytes_only() {
        let h: Headers = [("x", vec![0xff, 0xfe])].into_iter().collect();
        assert_eq!(h.get("x"), None);
        assert_eq!(h.get_bytes("x"), Some(&[0xff, 0xfe][..]));
    }

    #[test]
    fn validate_rejects_bad_names_and_values() {
        let ok: Headers = [("x-ok", "fine value")].into_iter().collect();
        assert!(ok.validate().is_ok());
        let bad_name: Headers = [("bad name", "v")].into_iter().collect();
        assert!(bad_name.validate().unwrap_err().contains("bad name"));
        let bad_value: Headers = [("x", "a\r\nb: c")].into_iter().collect();
        assert!(bad_value.validate().is_err());
    }
}
