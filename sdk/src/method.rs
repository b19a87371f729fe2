//! HTTP request methods.

use std::fmt;

/// An HTTP method. The common ones are variants so handlers can `match`;
/// anything else arrives as [`Method::Other`].
///
/// ```
/// use wisp_sdk::Method;
///
/// assert_eq!(Method::from("GET"), Method::Get);
/// assert_eq!(Method::from("PURGE"), Method::Other("PURGE".into()));
/// assert_eq!(Method::Delete.as_str(), "DELETE");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, as sent.
    Other(String),
}

impl Method {
    /// The method as it appears on the wire.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::Method::Patch.as_str(), "PATCH");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other(other) => other,
        }
    }
}

impl From<&str> for Method {
    fn from(s: &str) -> Self {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "CONNECT" => Method::Connect,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
/// `method_from_wasi` and `method_to_wasi` for a wasi `Method` type: the
/// SDK's `Method` and wasi:http's (0.2 and 0.3 alike) mirror each other
/// variant for variant.
#[cfg(target_arch = "wasm32")]
macro_rules! wasi_method_conversions {
    ($wasi:ty) => {
        $crate::method::wasi_method_conversions!(
            $wasi; Get, Head, Post, Put, Delete, Connect, Options, Trace, Patch
        );
    };
    ($wasi:ty; $($variant:ident),*) => {
        type WasiMethod = $wasi;

        fn method_from_wasi(method: WasiMethod) -> $crate::Method {
            match method {
                $(WasiMethod::$variant => $crate::Method::$variant,)*
                WasiMethod::Other(other) => $crate::Method::Other(other),
            }
        }

        fn method_to_wasi(method: &$crate::Method) -> WasiMethod {
            match method {
                $($crate::Method::$variant => WasiMethod::$variant,)*
                $crate::Method::Other(other) => WasiMethod::Other(other.clone()),
            }
        }
    };
}
#[cfg(target_arch = "wasm32")]
pub(crate) use wasi_method_conversions;
