//! Hostile `init-fails`: prints a line, then panics in its init hook. A host
//! that pre-initializes must refuse to deploy it and show that output; a
//! host that does not will see every request fail the same way.

use wisp_sdk::{Request, Response, http_handler};

fn init() {
    println!("init-fails: loading configuration");
    panic!("init-fails: configuration is missing, on purpose");
}

#[http_handler(init = init)]
fn handle(_req: Request) -> Response {
    Response::text("unreachable\n")
}
