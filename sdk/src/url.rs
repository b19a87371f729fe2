//! The small slice of URL handling a function needs: query strings, percent
//! decoding, and splitting an absolute URL into the parts wasi:http wants.
//! Hand-written rather than a dependency: it is little code, and every byte
//! of a dependency ends up in every component.

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`, as in form
/// encoding). Malformed escapes are kept literally rather than rejected,
/// because a lenient read of a query is more useful than an error here;
/// invalid UTF-8 becomes U+FFFD.
pub(crate) fn percent_decode(input: &str, plus_is_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits `a=1&b=x%20y&flag` into decoded pairs; a key without `=` gets an
/// empty value.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

/// The parts of an absolute `http(s)://authority/path?query` URL, in the
/// shape `wasi:http/types.outgoing-request` takes them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Url<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub path_with_query: String,
}

impl<'a> Url<'a> {
    pub(crate) fn parse(url: &'a str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("invalid URL {url:?}: expected scheme://host/path"))?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(format!("invalid URL {url:?}: only http and https are supported"));
        }
        // The authority ends at the first '/', '?' or '#'; a fragment is never
        // sent to a server.
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.is_empty() || authority.contains(char::is_whitespace) {
            return Err(format!("invalid URL {url:?}: missing or bad host"));
        }
        let tail = tail.split('#').next().unwrap_or("");
        let path_with_query = match tail.chars().next() {
            None => "/".to_owned(),
            Some('?') => format!("/{tail}"),
            Some(_) => tail.to_owned(),
        };
        Ok(Url { scheme, authority, path_with_query })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(percent_decode("a%20b+c", true), "a b c");
        assert_eq!(percent_decode("a%20b+c", false), "a b+c");
        assert_eq!(percent_decode("http%3A%2F%2Fx", false), "http://x");
        assert_eq!(percent_decode("%C3%A9", false), "é");
    }

    #[test]
    fn keeps_malformed_escapes() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
    }

    #[test]
    fn parses_query_pairs() {
        assert_eq!(
            parse_query("a=1&b=x%20y&flag&&c=d=e"),
            [("a", "1"), ("b", "x y"), ("flag", ""), ("c", "d=e")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(parse_query("").is_empty());
    }

    #[test]
    fn splits_urls() {
        let u = Url::parse("http://127.0.0.1:8080/a/b?x=1#frag").unwrap();
        assert_eq!(
            u,
            Url { scheme: "http", authority: "127.0.0.1:8080", path_with_query: "/a/b?x=1".into() }
        );
        assert_eq!(Url::parse("https://example.com").unwrap().path_with_query, "/");
        assert_eq!(Url::parse("https://example.com?q").unwrap().path_with_query, "/?q");
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(Url::parse("example.com/x").is_err());
        assert!(Url::parse("ftp://example.com/").is_err());
        assert!(Url::parse("http:///path").is_err());
    }
}
