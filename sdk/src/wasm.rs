//! The wasi:http side: converts wasi resources to and from the SDK's plain
//! types, which is all that differs between a component and a host-side
//! unit test. Only compiled for wasm32.

use std::io::{self, Read, Write};
use std::rc::Rc;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    self as wasi_http, Fields, IncomingBody, OutgoingBody, OutgoingRequest, OutgoingResponse,
    Scheme,
};
pub use wasi::http::types::{IncomingRequest, ResponseOutparam};
use wasi::io::streams::{InputStream, StreamError};

use crate::outbound::{ClientError, ClientResponse, OutboundRequest};
use crate::request::Source;
use crate::response::ResponseBody;
use crate::url::Url;
use crate::{Body, Headers, Request, Response, init};

/// Bindings for the SDK's p2 world (`wit/world.wit`): wasi:http/proxy.
/// Every wasi interface maps onto the `wasi` crate's types instead of being
/// generated twice.
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "wisp:sdk/function",
        with: {
            "wasi:io/poll@0.2.12": wasi::io::poll,
            "wasi:io/error@0.2.12": wasi::io::error,
            "wasi:io/streams@0.2.12": wasi::io::streams,
            "wasi:clocks/monotonic-clock@0.2.12": wasi::clocks::monotonic_clock,
            "wasi:clocks/wall-clock@0.2.12": wasi::clocks::wall_clock,
            "wasi:random/random@0.2.12": wasi::random::random,
            "wasi:cli/stdout@0.2.12": wasi::cli::stdout,
            "wasi:cli/stderr@0.2.12": wasi::cli::stderr,
            "wasi:cli/stdin@0.2.12": wasi::cli::stdin,
            "wasi:http/types@0.2.12": wasi::http::types,
            "wasi:http/outgoing-handler@0.2.12": wasi::http::outgoing_handler,
        },
        pub_export_macro: true,
        export_macro_name: "export_function",
        default_bindings_module: "wisp_sdk::__private::bindings",
        runtime_path: "wisp_sdk::__private::wit_bindgen::rt",
    });
}

/// Bindings for the state imports (world `state`): wasi:keyvalue,
/// wasi:blobstore and wasi:config, behind `crate::kv`, `crate::blob` and
/// `crate::config`.
pub mod state_bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "wisp:sdk/state",
        generate_all,
        runtime_path: "wisp_sdk::__private::wit_bindgen::rt",
    });
}

/// Bindings for the `wizer-initialize` export (world `init`), shared by p2
/// and p3 handlers. A plain synchronous export, so the wit-bindgen runtime
/// it uses does not matter next to p3's.
pub mod init_bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "wisp:sdk/init",
        pub_export_macro: true,
        export_macro_name: "export_init",
        default_bindings_module: "wisp_sdk::__private::init_bindings",
        runtime_path: "wisp_sdk::__private::wit_bindgen::rt",
    });
}

pub use bindings::export_function;
pub use bindings::exports::wasi::http::incoming_handler::Guest as HandlerGuest;
pub use init_bindings::Guest as InitGuest;
pub use init_bindings::export_init;

/// One request, start to finish: init hook (if the snapshot did not already
/// run it), conversion, the handler, and sending what it returned.
pub fn serve(
    request: IncomingRequest,
    out: ResponseOutparam,
    init: Option<fn()>,
    respond: impl FnOnce(Request) -> Response,
) {
    init::ensure_initialized(init);
    let response = respond(request_from_wasi(request));
    send_response(out, response);
}

/// The method and path are read at once; the authority, headers and body
/// only when the handler asks (see [`Request::from_source`]).
fn request_from_wasi(request: IncomingRequest) -> Request {
    let method = method_from_wasi(request.method());
    let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
    let request = Rc::new(request);
    let body = Body::from_reader(RequestBody { reader: None, request: Some(request.clone()) });
    Request::from_source(method, path_with_query, request, body)
}

impl Source for IncomingRequest {
    fn authority(&self) -> Option<String> {
        IncomingRequest::authority(self)
    }

    fn headers(&self) -> Headers {
        headers_from_fields(IncomingRequest::headers(self))
    }
}

fn headers_from_fields(fields: Fields) -> Headers {
    fields.entries().into_iter().collect()
}

/// A request's body, consumed from the host on its first read.
struct RequestBody {
    reader: Option<IncomingReader<Rc<IncomingRequest>>>,
    /// Until the first read.
    request: Option<Rc<IncomingRequest>>,
}

impl Read for RequestBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(request) = self.request.take() {
            // consume() only fails when called twice; nothing to read then.
            if let Ok(body) = request.consume()
                && let Ok(stream) = body.stream()
            {
                self.reader = Some(IncomingReader { stream: Some(stream), _body: body, _parent: request });
            }
        }
        match &mut self.reader {
            Some(reader) => reader.read(buf),
            None => Ok(0),
        }
    }
}

/// A body stream plus the resources it hangs off, dropped child-first when
/// the reader goes away (field order is drop order).
struct IncomingReader<P> {
    stream: Option<InputStream>,
    _body: IncomingBody,
    _parent: P,
}

impl<P> Read for IncomingReader<P> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(stream) = &mut self.stream else { return Ok(0) };
        let n = Read::read(stream, buf)?; // io::Read's, not the inherent wasi `read`
        if n == 0 && !buf.is_empty() {
            self.stream = None; // ended: release it early
        }
        Ok(n)
    }
}

fn incoming_body<P: 'static>(body: IncomingBody, parent: P) -> Body {
    match body.stream() {
        Ok(stream) => Body::from_reader(IncomingReader { stream: Some(stream), _body: body, _parent: parent }),
        Err(()) => Body::from_bytes(Vec::new()),
    }
}

fn send_response(out: ResponseOutparam, response: Response) {
    let (status, headers, body) = response.into_checked_parts();
    let outgoing = match outgoing_response(status, headers) {
        Ok(outgoing) => outgoing,
        // e.g. a header the host forbids (`connection`, `keep-alive`, …):
        // say so instead of sending something the handler did not mean.
        Err(problem) => return send_response(out, Response::bad_response(&problem)),
    };
    // A fresh response always yields its body and stream exactly once.
    let outgoing_body = outgoing.body().expect("first call to body()");
    ResponseOutparam::set(out, Ok(outgoing));
    let written = match body {
        ResponseBody::Bytes(bytes) => write_bytes(&outgoing_body, &bytes),
        // The stream is a child of the body: it goes at the end of this
        // block, before the body is finished.
        ResponseBody::Stream(write) => {
            let mut stream = outgoing_body.write().expect("first call to write()");
            write(&mut stream).and_then(|()| Write::flush(&mut stream))
        }
    };
    finish_body(outgoing_body, written).unwrap_or_else(|e| {
        eprintln!("wisp-sdk: response body cut short: {e}");
    });
}

fn outgoing_response(status: u16, headers: Headers) -> Result<OutgoingResponse, String> {
    let fields = fields_from_headers(headers)?;
    let outgoing = OutgoingResponse::new(fields);
    // A new response's status is 200 already: one call into the host fewer.
    if status != 200 {
        outgoing.set_status_code(status).map_err(|()| format!("invalid status code {status}"))?;
    }
    Ok(outgoing)
}

/// Writes `bytes` to `body` whole and flushed; no stream at all for no
/// bytes. Up to 4096 bytes (the most `blocking-write-and-flush` takes) in
/// one call into the host, where io::Write makes three (check, write,
/// flush); more as io::Write does, as much per write as the host accepts.
fn write_bytes(body: &OutgoingBody, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut stream = body.write().expect("first call to write()");
    if bytes.len() > 4096 {
        // (io::Write's flush; the inherent wasi `flush` only starts one)
        return stream.write_all(bytes).and_then(|()| Write::flush(&mut stream));
    }
    stream.blocking_write_and_flush(bytes).map_err(|e| match e {
        StreamError::Closed => io::ErrorKind::UnexpectedEof.into(),
        StreamError::LastOperationFailed(e) => io::Error::other(e.to_debug_string()),
    })
}

fn fields_from_headers(headers: Headers) -> Result<Fields, String> {
    Fields::from_list(&headers.into_entries()).map_err(|e| format!("header refused by the host: {e:?}"))
}

/// Finishes a body that was written (and flushed) successfully, its stream
/// already dropped. A failed one is dropped unfinished instead, which tells
/// the host the body is incomplete, so the receiver sees an error rather
/// than a short success.
fn finish_body(body: OutgoingBody, written: io::Result<()>) -> io::Result<()> {
    written?;
    OutgoingBody::finish(body, None).map_err(|e| io::Error::other(format!("{e:?}")))
}

/// Clears WASI state the snapshot must not keep (see `init::wizer_initialize`):
/// - wasi-libc's copy of the environment, so `std::env` reads the running
///   instance's variables, not the pre-initialization run's;
/// - the preview1 adapter's state (cached stdout/stderr/preopen handles,
///   which would be dangling in a new store). The adapter exists for exactly
///   this purpose; it re-creates everything lazily on next use.
pub fn forget_wasi_state() {
    #[link(wasm_import_module = "wasi_snapshot_preview1")]
    unsafe extern "C" {
        fn reset_adapter_state();
    }
    unsafe extern "C" {
        fn __wasilibc_deinitialize_environ();
    }
    // SAFETY: both only reset caches that are rebuilt on next use, and run
    // at the end of init when nothing holds references into them.
    unsafe {
        __wasilibc_deinitialize_environ();
        reset_adapter_state();
    }
}

/// Sends an outbound request through `wasi:http/outgoing-handler`.
pub(crate) fn send(request: &OutboundRequest, url: &Url<'_>) -> Result<ClientResponse, ClientError> {
    let invalid = |what: &str| ClientError::InvalidRequest(format!("invalid {what} for {}", request.url));
    let fields = fields_from_headers(request.headers.clone()).map_err(ClientError::InvalidRequest)?;
    let outgoing = OutgoingRequest::new(fields);
    outgoing.set_method(&method_to_wasi(&request.method)).map_err(|()| invalid("method"))?;
    let scheme = if url.scheme.eq_ignore_ascii_case("https") { Scheme::Https } else { Scheme::Http };
    outgoing.set_scheme(Some(&scheme)).map_err(|()| invalid("scheme"))?;
    outgoing.set_authority(Some(url.authority)).map_err(|()| invalid("host"))?;
    outgoing.set_path_with_query(Some(&url.path_with_query)).map_err(|()| invalid("path"))?;
    let body = outgoing.body().expect("first call to body()");

    // Hand the request over before writing the body, so a large body flows
    // to the server instead of filling a buffer nobody drains yet.
    let pending = outgoing_handler::handle(outgoing, None).map_err(ClientError::from_code)?;
    let written = write_bytes(&body, &request.body);
    // A host that refuses the call closes the body stream and reports why
    // through the response future; a server may also answer early without
    // reading the whole body. Either way the future has the real outcome,
    // so a failed body write is only reported if the future has nothing else.
    let body_sent = finish_body(body, written);

    let response = loop {
        match pending.get() {
            Some(result) => break result,
            None => pending.subscribe().block(),
        }
    };
    let response = match response {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return Err(ClientError::from_code(code)),
        Err(()) => {
            let reason = body_sent.err().map_or("response already taken".to_owned(), |e| e.to_string());
            return Err(ClientError::Http(reason));
        }
    };
    let status = response.status();
    let headers = headers_from_fields(response.headers());
    let body = match response.consume() {
        Ok(body) => incoming_body(body, response),
        Err(()) => Body::from_bytes(Vec::new()),
    };
    Ok(ClientResponse::new(status, headers, body))
}

crate::method::wasi_method_conversions!(wasi_http::Method);
