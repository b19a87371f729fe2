//! Write Wisp functions in Rust.
//!
//! A function is a WebAssembly component that handles HTTP requests. This
//! crate turns a plain Rust function into one:
//!
//! ```
//! use wisp_sdk::{http_handler, Request, Response};
//!
//! #[http_handler]
//! fn handle(req: Request) -> Response {
//!     Response::text(format!("Hello, world! path={}\n", req.path_with_query()))
//! }
//! ```
//!
//! The component targets the standard `wasi:http/proxy@0.2` world, so it also
//! runs on other wasi:http hosts (`wasmtime serve`, Spin, …). Beyond that world
//! it exports one extra function, `wizer-initialize`, which Wisp calls once at
//! deploy time to snapshot your [init hook](http_handler#init-hook) (the
//! "global scope" of Cloud Run); other hosts ignore it and the hook runs on
//! the first request instead.
//!
//! What is here:
//! - [`http_handler`]: an HTTP function taking a [`Request`] and returning
//!   anything that is [`IntoResponse`] ([`Response`], `String`,
//!   `Result<Response, E>`, …).
//! - [`event_handler`]: a CloudEvents function taking a [`CloudEvent`] (binary
//!   or structured HTTP mode); success answers `204`, an error answers `500` so
//!   the platform retries.
//! - [`env`]: environment variables; [`outbound`]: a small HTTP client over
//!   `wasi:http/outgoing-handler`.
//! - [`events`]: publishing CloudEvents to Wisp topics
//!   ([`events::publish`]).
//! - [`kv`]: key-value stores (`wasi:keyvalue`), with atomic counters;
//!   [`config`]: configuration values and secrets (`wasi:config`).
//! - `p3` (cargo feature `p3`): `async` HTTP handlers on `wasi:http@0.3`,
//!   which one instance runs many of at once, with `p3::sleep` and an async
//!   `p3::outbound` client.
//!
//! The request, response and event types also compile for your host target,
//! so a function's logic can be unit-tested with a plain `cargo test` by
//! calling the handler function directly.

// The attribute macros and wit-bindgen's generated code name this crate by
// its path, which must also resolve from inside it.
extern crate self as wisp_sdk;

mod body;
mod cloudevents;
mod headers;
mod init;
mod macros;
mod method;
mod request;
mod response;
mod url;
#[cfg(target_arch = "wasm32")]
mod wasm;

pub mod blob;
pub mod config;
pub mod env;
pub mod events;
pub mod kv;
pub mod outbound;
#[cfg(feature = "p3")]
pub mod p3;

pub use body::{Body, BodyError, BodyReader};
pub use cloudevents::{CloudEvent, EventError, EventOutcome};
pub use headers::Headers;
pub use init::init_once;
pub use method::Method;
pub use request::Request;
pub use response::{IntoResponse, Response};
/// Re-exported so handlers can build JSON with [`serde_json::json!`] without
/// a separate dependency.
pub use serde_json;

/// Turns a function into the component's HTTP handler.
///
/// The function takes a [`Request`] and returns anything that implements
/// [`IntoResponse`]. A crate has exactly one handler ([`http_handler`] or
/// [`event_handler`]): it becomes the component's
/// `wasi:http/incoming-handler` export.
///
/// ```
/// use wisp_sdk::{http_handler, Request, Response};
///
/// #[http_handler]
/// fn handle(mut req: Request) -> Result<Response, wisp_sdk::BodyError> {
///     let name = req.text()?.trim().to_owned();
///     Ok(Response::text(format!("hi {name}\n")))
/// }
/// # fn main() {
/// # let reply = handle(Request::new(wisp_sdk::Method::Post, "/").with_body("ann"));
/// # assert_eq!(reply.unwrap().into_body_bytes().unwrap(), b"hi ann\n");
/// # }
/// ```
///
/// # Init hook
///
/// `#[http_handler(init = path::to::fn)]` names a `fn()` that runs once per
/// instance before the first request. On Wisp it runs at deploy time and its
/// effects (filled tables, compiled patterns) are captured in the component's
/// pre-initialized snapshot, so requests start with them at no cost. On hosts
/// without pre-initialization it runs lazily on the first request: the
/// function behaves the same everywhere.
///
/// ```
/// use std::sync::LazyLock;
/// use wisp_sdk::{http_handler, Request, Response};
///
/// static SQUARES: LazyLock<Vec<u64>> = LazyLock::new(|| (0..1000).map(|n| n * n).collect());
///
/// fn warm_up() {
///     LazyLock::force(&SQUARES);
/// }
///
/// #[http_handler(init = warm_up)]
/// fn handle(req: Request) -> Response {
///     let n: usize = req.query_param("n").and_then(|n| n.parse().ok()).unwrap_or(0);
///     match SQUARES.get(n) {
///         Some(square) => Response::text(format!("{square}\n")),
///         None => Response::text("out of range\n").with_status(400),
///     }
/// }
/// ```
///
/// The snapshot is taken in a different store than the ones that serve
/// requests, so don't keep open handles (files, outbound responses) from the
/// hook, and remember that values it reads from the environment are those of
/// the pre-initialization run. The SDK resets WASI's cached handles and
/// environment after the hook, so printing and [`env`] work normally later.
pub use wisp_sdk_macros::http_handler;

/// Turns a function into the component's CloudEvents handler.
///
/// The function takes a [`CloudEvent`] and returns `()` or
/// `Result<(), E>` with `E: Display` (see [`EventOutcome`]). The SDK parses
/// the event from the HTTP request in binary mode (`ce-*` headers) or
/// structured mode (`application/cloudevents+json`) and answers:
/// - `204 No Content` when the handler succeeds,
/// - `500` with the error's text when it fails, so the platform redelivers,
/// - `400` (or `415` for batches) with a message naming the problem when the
///   request is not a valid CloudEvent: retrying would not help.
///
/// Takes the same `init = path` argument as [`http_handler`].
///
/// ```
/// use wisp_sdk::{event_handler, CloudEvent};
///
/// #[event_handler]
/// fn on_event(event: CloudEvent) -> Result<(), String> {
///     println!("got {} from {}", event.event_type(), event.source());
///     if event.event_type() == "com.example.poison" {
///         return Err("cannot process this event".into());
///     }
///     Ok(())
/// }
/// ```
pub use wisp_sdk_macros::event_handler;

/// Support code for the attribute macros. Not a public API: it changes
/// without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::cloudevents::respond_event;
    pub use crate::init::{ensure_initialized, wizer_initialize};
    #[cfg(feature = "p3")]
    pub use crate::p3::__private as p3;
    #[cfg(target_arch = "wasm32")]
    pub use crate::wasm::{
        HandlerGuest, IncomingRequest, InitGuest, ResponseOutparam, bindings, export_function,
        export_init, init_bindings, serve,
    };
    #[cfg(target_arch = "wasm32")]
    pub use wit_bindgen;

    use crate::{IntoResponse, Request, Response};

    /// How `#[http_handler]` turns a request into a response.
    pub fn respond_http<R: IntoResponse>(request: Request, handler: impl FnOnce(Request) -> R) -> Response {
        handler(request).into_response()
    }
}
