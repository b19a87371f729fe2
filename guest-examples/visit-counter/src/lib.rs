//! `visit-counter`: every `GET` adds one to `visits` in the key-value store
//! `counter` and answers the new count. The increment is atomic in the
//! store, so concurrent requests, each in its own fresh instance, never
//! lose a visit. A function not granted the store gets `403`.

use wisp_sdk::kv::{self, Error};
use wisp_sdk::{Method, Request, Response, http_handler};

/// The store this function must be granted (`keyvalue = ["counter"]`).
const STORE: &str = "counter";

#[http_handler]
fn handle(req: Request) -> Response {
    if *req.method() != Method::Get {
        return Response::text("use GET\n").with_status(405);
    }
    match kv::open(STORE).and_then(|store| store.increment("visits", 1)) {
        Ok(visits) => Response::text(format!("{visits}\n")),
        Err(Error::AccessDenied) => Response::text(format!(
            "this function is not granted the key-value store `{STORE}`; add keyvalue = [\"{STORE}\"] to it in wisp.toml\n"
        ))
        .with_status(403),
        Err(e) => Response::text(format!("the store failed: {e}\n")).with_status(500),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_get_counts_one_more() {
        let first = handle(Request::new(Method::Get, "/"));
        assert_eq!(first.into_body_bytes().unwrap(), b"1\n");
        let second = handle(Request::new(Method::Get, "/"));
        assert_eq!(second.into_body_bytes().unwrap(), b"2\n");
        assert_eq!(handle(Request::new(Method::Post, "/")).status(), 405);
    }
}
