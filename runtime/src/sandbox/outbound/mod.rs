//! Outbound HTTP is closed by default: a guest may only call the origins its
//! function lists in `allowed_outbound_hosts` ([`AllowedHosts`]). An origin
//! that names its host reaches whatever that host resolves to; a wildcard
//! one (`*`, `https://*`, `http://*:*`) only public addresses, never
//! loopback, private, link-local or unspecified ones ([`address`]) nor
//! Wisp's own ports ([`policy`]). The check is made on the resolved address
//! that is then connected to ([`connect`]), and the exchange itself is
//! wasi:http's default client's ([`exchange`]). Requests to
//! `http://wisp.internal` go to Wisp's own services instead ([`internal`]).

pub mod address;
pub mod connect;
pub mod exchange;
pub mod internal;
pub mod policy;

use std::future::Future;
use std::sync::Arc;

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::AllowedHosts;
use crate::sandbox::outbound::connect::Failure;
use crate::sandbox::outbound::exchange::IoFuture;
use crate::sandbox::outbound::policy::{OwnPorts, Reach};
use crate::sandbox::tag::InstanceTag;
use crate::telemetry::traces;

/// wasi:http hooks of one store: checks every outgoing request against the
/// function's allow list, then sends it through Wisp's own connector.
pub struct OutboundHooks {
    pub allowed: Arc<AllowedHosts>,
    pub own_ports: Arc<OwnPorts>,
    pub function: Arc<str>,
    pub internal: Arc<internal::Slot>,
    pub grants: Arc<internal::Grants>,
    /// Whose outbound calls these are: their spans are children of its
    /// invocation's.
    pub tag: Arc<InstanceTag>,
}

type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let traced = if traces::on() { self.tag.trace() } else { None };
        let Some(cx) = traced else {
            return self.send(request, options, fut);
        };
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let Some(span) = traces::outbound(&cx, &method, &uri, request.headers_mut()) else {
            return self.send(request, options, fut);
        };
        let sent = Box::into_pin(self.send(request, options, fut));
        Box::new(async move {
            let result = sent.await;
            let status = match &result {
                Ok((response, _)) => Ok(response.status().as_u16()),
                Err(e) => Err(e.to_string()),
            };
            traces::outbound_done(span, status);
            result
        })
    }
}

impl OutboundHooks {
    /// Sends `request` where it goes: Wisp's own services, or an allowed
    /// origin.
    fn send(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        if internal::is_internal(request.uri()) {
            let Some(service) = self.internal.get().cloned() else {
                return Box::new(async { Err(HttpError::HttpRequestDenied) });
            };
            let caller = internal::Caller {
                function: self.function.clone(),
                grants: self.grants.clone(),
            };
            return Box::new(async move {
                let response = service.serve(caller, request).await;
                let io: IoFuture = Box::new(async { Ok(()) });
                Ok((response, io))
            });
        }
        let Some(grant) = self.allowed.grant(request.uri()) else {
            tracing::warn!(
                function = %self.function,
                uri = %request.uri(),
                "outbound request denied: origin not in allowed_outbound_hosts"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        let reach = Reach::new(grant, self.own_ports.clone());
        let function = self.function.clone();
        Box::new(async move {
            let uri = request.uri().clone();
            exchange::send(request, options, reach)
                .await
                .map_err(|failure| match failure {
                    Failure::Http(e) => e,
                    Failure::Denied(denial) => {
                        tracing::warn!(
                            function = %function,
                            uri = %uri,
                            "outbound request denied: {denial}"
                        );
                        HttpError::HttpRequestDenied
                    }
                })
        })
    }
}
