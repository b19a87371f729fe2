//! `init-prints`: prints from the init hook and from every request.
//!
//! The point is the snapshot: printing during init makes the WASI layer open
//! stdout in the store used for pre-initialization. If that handle survived
//! into the snapshot, every later print would use a handle that does not
//! exist in the request's store and trap. The SDK clears it after init, so
//! both lines below show up in the function's log.

use wisp_sdk::{Request, Response, http_handler};

fn init() {
    println!("init-prints: init ran");
}

#[http_handler(init = init)]
fn handle(_req: Request) -> Response {
    println!("init-prints: handling request");
    Response::text("ok\n")
}
