//! `json-api`: a tiny JSON API.
//!
//! - `GET  …/items/<id>` → `200 {"id":<id>,"name":"item-<id>"}`
//! - `POST …/items` with `{"name":"x"}` → `201 {"id":1,"name":"x"}`
//! - bad JSON → `400 {"error":"…"}`; unknown route → `404`; wrong method → `405`
//!
//! Routes match the *end* of the path: the host passes the full request
//! path, and the same function may be mounted at `/` or under a prefix such
//! as `/api`, so `/items/7` and `/api/v1/items/7` are the same route. (Each
//! request gets a fresh instance, so there is no store: ids start at 1.)

use serde::{Deserialize, Serialize};
use wisp_sdk::{IntoResponse, Method, Request, Response, http_handler};

#[derive(Serialize)]
struct Item {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

/// Errors answer with a JSON body, like the rest of the API.
struct ApiError(u16, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Response::json(&wisp_sdk::serde_json::json!({ "error": self.1 })).with_status(self.0)
    }
}

enum Route<'a> {
    Items,
    Item(&'a str),
}

/// Finds `items` as the last or second-to-last path segment.
fn route(path: &str) -> Option<Route<'_>> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match segments.as_slice() {
        [.., "items"] => Some(Route::Items),
        [.., "items", id] => Some(Route::Item(id)),
        _ => None,
    }
}

#[http_handler]
fn handle(mut req: Request) -> Result<Response, ApiError> {
    let not_allowed = |allow: &str| ApiError(405, format!("method not allowed; use {allow}"));
    match (route(req.path()), req.method()) {
        (Some(Route::Item(id)), Method::Get) => {
            let id: u64 = id.parse().map_err(|_| ApiError(400, format!("item id must be a number, got {id:?}")))?;
            Ok(Response::json(&Item { id, name: format!("item-{id}") }))
        }
        (Some(Route::Items), Method::Post) => {
            let new: NewItem = req.json().map_err(|e| ApiError(400, e.to_string()))?;
            Ok(Response::json(&Item { id: 1, name: new.name }).with_status(201))
        }
        (Some(Route::Item(_)), _) => Err(not_allowed("GET")),
        (Some(Route::Items), _) => Err(not_allowed("POST")),
        (None, _) => Err(ApiError(404, format!("no route for {}", req.path()))),
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: Method, path: &str, body: &str) -> (u16, String) {
        let response = handle(Request::new(method, path).with_body(body)).into_response();
        let status = response.status();
        (status, String::from_utf8(response.into_body_bytes().unwrap()).unwrap())
    }

    #[test]
    fn routes_on_the_path_suffix() {
        assert_eq!(call(Method::Get, "/api/items/7", ""), (200, r#"{"id":7,"name":"item-7"}"#.into()));
        assert_eq!(call(Method::Get, "/items/7?x=1", "").0, 200);
        assert_eq!(call(Method::Post, "/items", r#"{"name":"x"}"#), (201, r#"{"id":1,"name":"x"}"#.into()));
        assert_eq!(call(Method::Get, "/other", "").0, 404);
        assert_eq!(call(Method::Delete, "/items/1", "").0, 405);
    }

    #[test]
    fn bad_json_is_400_with_json_error() {
        let (status, body) = call(Method::Post, "/items", "{nope");
        assert_eq!(status, 400);
        assert!(body.starts_with(r#"{"error":"#), "{body}");
    }
}
