//! The wasi:http@0.3 side of p3 handlers, through the `wasip3` crate's
//! bindings: converts its resources to and from the SDK's plain types, like
//! `crate::wasm` does for 0.2. Only compiled for wasm32.

use std::time::Duration;

use wasip3::http::types::{self as wasi_http, Fields, Scheme, Trailers};
pub use wasip3::http::types::{
    ErrorCode, Request as IncomingRequest, Response as OutgoingResponse,
};
use wasip3::wit_bindgen::{FutureReader, StreamReader, spawn_local};
use wasip3::{wit_future, wit_stream};

pub use wasip3;
pub use wasip3::exports::http::handler::Guest as HandlerGuest;
pub use wasip3::http::service::export as export_service;

use crate::outbound::{ClientError, ClientResponse, OutboundRequest};
use crate::url::Url;
use crate::{Body, Headers, Request, Response, init};

pub(super) async fn sleep(duration: Duration) {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    wasip3::clocks::monotonic_clock::wait_for(nanos).await;
}

/// One request, start to finish: init hook (if the snapshot did not already
/// run it), conversion, the handler, and the response it returned.
pub async fn serve<F: Future<Output = Response>>(
    request: IncomingRequest,
    init: Option<fn()>,
    respond: impl FnOnce(Request) -> F,
) -> Result<OutgoingResponse, ErrorCode> {
    init::ensure_initialized(init);
    let request = request_from_wasi(request).await;
    Ok(response_to_wasi(respond(request).await))
}

async fn request_from_wasi(request: IncomingRequest) -> Request {
    let method = method_from_wasi(request.get_method());
    let path_with_query = request
        .get_path_with_query()
        .unwrap_or_else(|| "/".to_owned());
    let authority = request.get_authority();
    let headers = headers_from_fields(request.get_headers());
    let (body, trailers) = IncomingRequest::consume_body(request, body_handled());
    let body = read_body(body, trailers).await;
    Request::from_parts(method, path_with_query, authority, headers, body)
}

/// The `res` future `consume-body` wants, which would let us report a
/// failure to process the body: the SDK never does, the body is only read.
fn body_handled() -> FutureReader<Result<(), ErrorCode>> {
    let (_, handled) = wit_future::new(|| Ok(()));
    handled
}

/// A body read whole: the stream to its end, then the trailers future,
/// which says whether the stream ended because the body did or because it
/// broke (e.g. the client went away).
async fn read_body(
    body: StreamReader<u8>,
    trailers: FutureReader<Result<Option<Trailers>, ErrorCode>>,
) -> Body {
    let bytes = body.collect().await;
    let read = trailers.await.map(drop).map_err(|code| format!("{code:?}"));
    Body::from_read(bytes, read)
}

fn headers_from_fields(fields: Fields) -> Headers {
    fields.copy_all().into_iter().collect()
}

fn fields_from_headers(headers: Headers) -> Result<Fields, String> {
    Fields::from_list(&headers.into_entries())
        .map_err(|e| format!("header refused by the host: {e:?}"))
}

/// The response for the host, its body written by a task of its own once
/// the handler has returned the status and headers.
fn response_to_wasi(response: Response) -> OutgoingResponse {
    let (status, headers, body) = response.into_checked_parts();
    let fields = match fields_from_headers(headers) {
        Ok(fields) => fields,
        // e.g. a header the host forbids (`connection`, `keep-alive`, …):
        // say so instead of sending something the handler did not mean.
        Err(problem) => return response_to_wasi(Response::bad_response(&problem)),
    };
    let (bytes, written) = body.into_bytes();
    let (contents, trailers) = send_body(bytes, written.map_err(|e| e.to_string()));
    let (outgoing, _sent) = OutgoingResponse::new(fields, Some(contents), trailers);
    // into_checked_parts already limited the status to what the host
    // accepts; a new response's is 200 already (one call into the host fewer).
    if status != 200 {
        let _ = outgoing.set_status_code(status);
    }
    outgoing
}

/// A body stream for the host, and its trailers future: `bytes` are
/// written from a task of their own, after which the trailers future says
/// whether they are the whole body. When `complete` is an error they are
/// not, and the host cuts the message short instead of ending it normally.
fn send_body(
    bytes: Vec<u8>,
    complete: Result<(), String>,
) -> (
    StreamReader<u8>,
    FutureReader<Result<Option<Trailers>, ErrorCode>>,
) {
    let (mut contents_tx, contents) = wit_stream::new();
    let (trailers_tx, trailers) = wit_future::new(|| Ok(None));
    spawn_local(async move {
        contents_tx.write_all(bytes).await;
        drop(contents_tx);
        if let Err(problem) = complete {
            eprintln!("wisp-sdk: response body cut short: {problem}");
            let _ = trailers_tx
                .write(Err(ErrorCode::InternalError(Some(problem))))
                .await;
        }
    });
    (contents, trailers)
}

/// Sends an outbound request through `wasi:http/client@0.3.0`.
pub(crate) async fn send(
    request: &OutboundRequest,
    url: &Url<'_>,
) -> Result<ClientResponse, ClientError> {
    let invalid =
        |what: &str| ClientError::InvalidRequest(format!("invalid {what} for {}", request.url));
    let fields =
        fields_from_headers(request.headers.clone()).map_err(ClientError::InvalidRequest)?;
    // No body stream at all for an empty body, so a GET goes out without
    // a (chunked, empty) body.
    let (contents, trailers) = if request.body.is_empty() {
        let (_, trailers) = wit_future::new(|| Ok(None));
        (None, trailers)
    } else {
        let (contents, trailers) = send_body(request.body.clone(), Ok(()));
        (Some(contents), trailers)
    };
    let (outgoing, _sent) = wasi_http::Request::new(fields, contents, trailers, None);
    outgoing
        .set_method(&method_to_wasi(&request.method))
        .map_err(|()| invalid("method"))?;
    let scheme = if url.scheme.eq_ignore_ascii_case("https") {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(url.authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(&url.path_with_query))
        .map_err(|()| invalid("path"))?;

    let response = wasip3::http::client::send(outgoing)
        .await
        .map_err(ClientError::from_code)?;
    let status = response.get_status_code();
    let headers = headers_from_fields(response.get_headers());
    let (body, trailers) = wasi_http::Response::consume_body(response, body_handled());
    Ok(ClientResponse::new(
        status,
        headers,
        read_body(body, trailers).await,
    ))
}

crate::method::wasi_method_conversions!(wasi_http::Method);
