//! WASIp3 handlers: `async` functions on `wasi:http@0.3` (cargo feature `p3`).
//!
//! A p3 handler is an `async fn` taking the same [`Request`] and returning
//! the same [`IntoResponse`] types as a p2 one. Awaiting ([`sleep`],
//! [`outbound::send`]) suspends only that request, so with
//! `isolation = "instance"` and `concurrency > 1` one instance serves many
//! requests at once:
//!
//! ```no_run
//! use std::time::Duration;
//! use wisp_sdk::{Request, Response, p3};
//!
//! #[p3::http_handler]
//! async fn handle(req: Request) -> Response {
//!     let ms: u64 = req.query_param("ms").and_then(|ms| ms.parse().ok()).unwrap_or(0);
//!     p3::sleep(Duration::from_millis(ms)).await;
//!     Response::text(format!("Hello, world! path={}\n", req.path_with_query()))
//! }
//! ```
//!
//! The component exports `wasi:http/handler@0.3.0` (the `wasi:http/service`
//! world, through the `wasip3` crate's bindings, `=0.9.0`: the release whose
//! WIT is exactly wasmtime 48's `0.3.0`) and `wizer-initialize`, so the
//! [init hook](crate::http_handler#init-hook) works as for p2 handlers.
//!
//! Differences from p2 handlers, all about bodies:
//! - The request body is read whole before the handler runs; `body()`,
//!   `text()`, `json()` and `into_body_reader()` then read from memory.
//! - A [`Response::stream`](crate::Response::stream) body is produced whole
//!   (its closure cannot await), then sent; other bodies are sent as they are.
//! - [`outbound::send`] returns once the response body has arrived.
//!
//! Everything else of the SDK ([`env`](crate::env), [`Headers`](crate::Headers),
//! [`CloudEvent::from_request`](crate::CloudEvent::from_request), …) works
//! unchanged. Only use the p2 [`outbound`](crate::outbound) client from a p2
//! handler: it blocks.

#[cfg(target_arch = "wasm32")]
mod wasm;

use std::time::Duration;

#[cfg(doc)]
use crate::{IntoResponse, Request};

/// Turns an `async fn` into the component's `wasi:http@0.3` HTTP handler.
///
/// The function takes a [`Request`] and returns anything that implements
/// [`IntoResponse`], like [`http_handler`](crate::http_handler); a crate has
/// exactly one handler. Takes the same `init = path` argument (see
/// [Init hook](crate::http_handler#init-hook)).
///
/// Off wasm the attribute exports nothing and the handler is an ordinary
/// `async fn`, so unit tests call it through [`block_on`]:
///
/// ```
/// use wisp_sdk::{Method, Request, Response, p3};
///
/// #[p3::http_handler]
/// async fn handle(mut req: Request) -> Result<Response, wisp_sdk::BodyError> {
///     let name = req.text()?.trim().to_owned();
///     Ok(Response::text(format!("hi {name}\n")))
/// }
///
/// # fn main() {
/// let reply = p3::block_on(handle(Request::new(Method::Post, "/").with_body("ann")));
/// assert_eq!(reply.unwrap().into_body_bytes().unwrap(), b"hi ann\n");
/// # }
/// ```
pub use wisp_sdk_macros::p3_http_handler as http_handler;

/// Waits for `duration` without blocking the instance: other requests it
/// serves run meanwhile (`wasi:clocks/monotonic-clock@0.3.0` `wait-for`).
/// Off wasm it sleeps the calling thread, which is what a unit test wants.
///
/// ```
/// use std::time::Duration;
///
/// wisp_sdk::p3::block_on(async {
///     wisp_sdk::p3::sleep(Duration::from_millis(1)).await;
/// });
/// ```
pub async fn sleep(duration: Duration) {
    #[cfg(target_arch = "wasm32")]
    wasm::sleep(duration).await;
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::sleep(duration);
}

/// Runs a future to completion on the current thread: how host-side unit
/// tests call a p3 handler (see [`http_handler`]). Not available on wasm,
/// where the component model runs the handler's future.
///
/// ```
/// assert_eq!(wisp_sdk::p3::block_on(async { 6 * 7 }), 42);
/// ```
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};

    struct Unpark(std::thread::Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Outbound HTTP calls from a p3 handler, through `wasi:http/client@0.3.0`.
///
/// The requests and responses are those of the p2 [`outbound`](crate::outbound)
/// module; only sending is `async`. The host decides which destinations
/// are allowed; a refused call is a [`ClientError`](crate::outbound::ClientError) for which
/// [`is_denied`](crate::outbound::ClientError::is_denied) is true.
///
/// ```no_run
/// use wisp_sdk::{Request, Response, p3};
///
/// #[p3::http_handler]
/// async fn handle(_req: Request) -> Response {
///     match p3::outbound::get("http://inventory.internal/stock?sku=1").await {
///         Ok(mut reply) => Response::text(reply.body_mut().text().unwrap_or("").to_owned()),
///         Err(e) if e.is_denied() => Response::text("not allowed\n").with_status(403),
///         Err(e) => Response::text(format!("{e}\n")).with_status(502),
///     }
/// }
/// ```
pub mod outbound {
    use crate::outbound::{ClientError, ClientResponse, OutboundRequest};

    /// Sends `request` and waits for the response, body included (read
    /// whole: [`ClientResponse::body_mut`] then reads from memory). Off
    /// wasm every call fails with [`ClientError::Unsupported`].
    ///
    /// ```no_run
    /// use wisp_sdk::{Method, outbound::OutboundRequest};
    ///
    /// # wisp_sdk::p3::block_on(async {
    /// let request = OutboundRequest::new(Method::Post, "http://orders.internal/orders")
    ///     .with_header("content-type", "application/json")
    ///     .with_body(r#"{"sku":"abc"}"#);
    /// let reply = wisp_sdk::p3::outbound::send(request).await?;
    /// assert_eq!(reply.status(), 201);
    /// # Ok::<(), wisp_sdk::outbound::ClientError>(())
    /// # });
    /// ```
    pub async fn send(request: OutboundRequest) -> Result<ClientResponse, ClientError> {
        let url = request.checked_url()?;
        #[cfg(target_arch = "wasm32")]
        return super::wasm::send(&request, &url).await;
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = url;
            Err(ClientError::Unsupported)
        }
    }

    /// `GET url`, the common case of [`send`].
    ///
    /// ```
    /// # wisp_sdk::p3::block_on(async {
    /// let reply = wisp_sdk::p3::outbound::get("http://example.com/").await;
    /// # #[cfg(not(target_arch = "wasm32"))]
    /// assert!(matches!(reply, Err(wisp_sdk::outbound::ClientError::Unsupported)));
    /// # });
    /// ```
    pub async fn get(url: &str) -> Result<ClientResponse, ClientError> {
        send(OutboundRequest::get(url)).await
    }
}

/// Publishing CloudEvents to Wisp topics from a p3 handler: as
/// [`wisp_sdk::events`](crate::events), awaited.
///
/// ```no_run
/// use wisp_sdk::{CloudEvent, Request, Response, p3};
///
/// #[p3::http_handler]
/// async fn handle(_req: Request) -> Response {
///     let event = CloudEvent::without_id("/clock", "com.example.tick");
///     match p3::events::publish("ticks", &event).await {
///         Ok(id) => Response::text(format!("{id}\n")).with_status(202),
///         Err(e) => Response::text(format!("{e}\n")).with_status(502),
///     }
/// }
/// ```
pub mod events {
    use crate::CloudEvent;
    use crate::events::PublishError;

    /// [`wisp_sdk::events::publish`](crate::events::publish) over
    /// `wasi:http/client@0.3.0`: publishes `event` to `topic` and returns
    /// its id. Off wasm every call fails with
    /// [`PublishError::Client`]`(`[`Unsupported`](crate::outbound::ClientError::Unsupported)`)`.
    ///
    /// ```
    /// # wisp_sdk::p3::block_on(async {
    /// let event = wisp_sdk::CloudEvent::without_id("/s", "t");
    /// let published = wisp_sdk::p3::events::publish("ticks", &event).await;
    /// # #[cfg(not(target_arch = "wasm32"))]
    /// assert!(published.is_err());
    /// # });
    /// ```
    pub async fn publish(topic: &str, event: &CloudEvent) -> Result<String, PublishError> {
        let request = crate::events::publish_request(topic, event)?;
        let mut reply = super::outbound::send(request).await.map_err(PublishError::Client)?;
        crate::events::read_reply(&mut reply)
    }
}

/// Support code for `#[p3::http_handler]`; see `crate::__private`.
#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use super::wasm::{
        ErrorCode, HandlerGuest, IncomingRequest, OutgoingResponse, export_service, serve, wasip3,
    };

    use crate::{IntoResponse, Request, Response};

    /// How `#[p3::http_handler]` turns a request into a response.
    pub async fn respond_http<R: IntoResponse, F: Future<Output = R>>(
        request: Request,
        handler: impl FnOnce(Request) -> F,
    ) -> Response {
        handler(request).await.into_response()
    }
}
