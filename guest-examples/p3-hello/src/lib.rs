//! `p3-hello`: `hello` as an async `wasi:http@0.3` handler. Answers every
//! request with the same greeting as `hello` (byte for byte, so benchmarks
//! can compare the two); `?ms=N` first waits N ms without blocking the
//! instance, so one instance serves many such requests at once.

use std::time::Duration;

use wisp_sdk::{Request, Response, p3};

#[p3::http_handler]
async fn handle(req: Request) -> Response {
    let ms: u64 = req
        .query_param("ms")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0);
    if ms > 0 {
        p3::sleep(Duration::from_millis(ms)).await;
    }
    Response::text(format!("Hello, world! path={}\n", req.path_with_query()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_with_full_path_and_query() {
        let reply = p3::block_on(handle(Request::new(wisp_sdk::Method::Get, "/a/b?ms=1&x=1")));
        assert_eq!(
            reply.headers().get("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            reply.into_body_bytes().unwrap(),
            b"Hello, world! path=/a/b?ms=1&x=1\n"
        );
    }
}
