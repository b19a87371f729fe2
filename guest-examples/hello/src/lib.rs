//! `hello`: answers every request with a greeting and the request's path.
//! The greeting comes from the `GREETING` env var when set, so it also shows
//! env vars reaching a function.

use wisp_sdk::{Request, Response, env, http_handler};

#[http_handler]
fn handle(req: Request) -> Response {
    let greeting = env::var("GREETING").unwrap_or_else(|| "Hello".to_owned());
    Response::text(format!("{greeting}, world! path={}\n", req.path_with_query()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_with_full_path_and_query() {
        // GREETING is unset in tests unless the caller's shell exports it.
        let greeting = env::var("GREETING").unwrap_or_else(|| "Hello".to_owned());
        let body = handle(Request::new(wisp_sdk::Method::Get, "/a/b?x=1")).into_body_bytes().unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), format!("{greeting}, world! path=/a/b?x=1\n"));
    }
}
