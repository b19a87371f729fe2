//! `http://wisp.internal`: Wisp's own services — publishing events, adding
//! tasks — that a
//! guest reaches with plain outbound HTTP, so every language's ordinary
//! HTTP client works. Requests to it are served in-process, never resolved
//! or sent over a network, and need no `allowed_outbound_hosts` entry; what
//! a function may do there is its grants' business (`publish = [...]`,
//! `enqueue = [...]`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use http::{Request, Response, Uri};
use wasmtime_wasi_http::WasiBody;

/// The host name guests use.
pub const HOST: &str = "wisp.internal";

/// What one function may do on `wisp.internal`.
#[derive(Debug, Default)]
pub struct Grants {
    /// Topics it may publish to.
    pub publish: Vec<String>,
    /// Queues it may add tasks to.
    pub enqueue: Vec<String>,
}

/// Who is calling.
#[derive(Clone)]
pub struct Caller {
    pub function: Arc<str>,
    pub grants: Arc<Grants>,
}

pub type Answer = Pin<Box<dyn Future<Output = Response<WasiBody>> + Send>>;

/// Serves `wisp.internal` requests.
pub trait Service: Send + Sync + 'static {
    fn serve(&self, caller: Caller, request: Request<WasiBody>) -> Answer;
}

/// Routes `/topics/…` and `/queues/…` to the services that own them.
pub struct Router {
    pub topics: Arc<dyn Service>,
    pub queues: Arc<dyn Service>,
}

impl Service for Router {
    fn serve(&self, caller: Caller, request: Request<WasiBody>) -> Answer {
        if request.uri().path().starts_with("/queues/") {
            self.queues.serve(caller, request)
        } else {
            self.topics.serve(caller, request)
        }
    }
}

/// Where the server puts the service once it exists: functions are
/// deployed before it, and look it up at request time.
#[derive(Default)]
pub struct Slot(OnceLock<Arc<dyn Service>>);

impl Slot {
    pub fn set(&self, service: Arc<dyn Service>) {
        let _ = self.0.set(service);
    }

    pub fn get(&self) -> Option<&Arc<dyn Service>> {
        self.0.get()
    }
}

/// Whether `uri` is addressed to `wisp.internal`.
pub fn is_internal(uri: &Uri) -> bool {
    uri.host().is_some_and(|h| h.eq_ignore_ascii_case(HOST))
}
