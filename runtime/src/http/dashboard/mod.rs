//! The dashboard: a web page on the admin address that charts every
//! function's last hour and lists revisions, recent invocations, topics,
//! queues and jobs. Its files (HTML, JS, CSS and the vendored uPlot) are
//! compiled into the binary and served without the token: they hold no
//! data. The page asks for the token, keeps it in the tab's sessionStorage
//! and sends it as a bearer header on every admin API call it makes
//! (docs/security.md says why not a cookie). Its data comes from the admin
//! API, [`series`] from this module.

mod series;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use wasmtime_wasi_http::WasiBody;

use crate::invoke::full;

pub use series::series;

/// Where the page is served.
const PAGE: &str = "/dashboard";

/// The page's files: path, media type, bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        PAGE,
        "text/html; charset=utf-8",
        include_bytes!("assets/index.html"),
    ),
    (
        "/dashboard/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "/dashboard/app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "/dashboard/vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "/dashboard/vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/vendor/uPlot.min.css"),
    ),
];

/// Scripts, styles and fetches only from the page's own origin, nothing
/// inline, no framing: a script that could read the token would have to
/// be one of the files above.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Whether `path` is the page or one of its files, which the admin API
/// serves without the token (Host and Origin are still checked), or `/`,
/// which leads to the page.
pub fn is_public(path: &str) -> bool {
    path == "/" || FILES.iter().any(|(file, ..)| *file == path)
}

/// The answer to `GET path` for a public path ([`is_public`]).
pub fn file(path: &str) -> Option<Response<WasiBody>> {
    if path == "/" {
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::SEE_OTHER;
        resp.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static(PAGE));
        return Some(resp);
    }
    let (_, media_type, bytes) = FILES.iter().find(|(file, ..)| *file == path)?;
    let mut resp = Response::new(full(Bytes::from_static(bytes)));
    let headers = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, *media_type),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        // A new binary may bring new files: revalidate every time.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_page_and_its_files_are_public() {
        for public in [
            "/",
            "/dashboard",
            "/dashboard/app.js",
            "/dashboard/vendor/uPlot.min.css",
        ] {
            assert!(is_public(public), "{public}");
            assert!(file(public).is_some(), "{public}");
        }
        for guarded in [
            "/dashboard/",
            "/dashboard/../v1/functions",
            "/dashboard/missing.js",
            "/v1/dashboard/series",
            "/metrics",
            "//",
        ] {
            assert!(!is_public(guarded), "{guarded}");
            assert!(file(guarded).is_none(), "{guarded}");
        }
        let page = file(PAGE).unwrap();
        assert_eq!(page.headers()[header::CONTENT_SECURITY_POLICY], POLICY);
        assert_eq!(file("/").unwrap().headers()[header::LOCATION], PAGE);
    }
}
