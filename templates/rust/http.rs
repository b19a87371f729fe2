//! {{name}}: answers every request with a greeting and the request's path.

use wisp_sdk::{Request, Response, http_handler};

#[http_handler]
fn handle(req: Request) -> Response {
    Response::text(format!("Hello from {{name}}! path={}\n", req.path_with_query()))
}
