//! Traces: OpenTelemetry spans of every invocation, exported as OTLP over
//! HTTP/protobuf when `[server.telemetry] otlp_endpoint` is set.
//!
//! Spans that live within one async call — an invocation, its admission
//! wait — are `tracing` spans of target [`TARGET`], turned into
//! OpenTelemetry spans by `tracing-opentelemetry`. Spans measured across
//! the tasks of wasmtime's handler — instantiation, guest run, outbound
//! calls — are made with the SDK's tracer directly, as children of the
//! invocation's context ([`Invocation::trace`]).
//!
//! Off (the default), nothing here runs on a request: [`TARGET`] spans are
//! disabled at their call sites, so they cost an atomic load, and no header
//! is read or written. On, spans are queued and exported in batches by the
//! SDK's own thread (`OTEL_BSP_SCHEDULE_DELAY` and friends apply), never on
//! the request's path.
//!
//! W3C trace context (`traceparent`, `tracestate`) is read from incoming
//! requests and from what events, tasks and job executions carry, and
//! written into the guest's outbound requests.

use std::any::TypeId;
use std::sync::OnceLock;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata};
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::Registry;
use tracing_subscriber::filter::{FilterFn, Filtered, LevelFilter};
use tracing_subscriber::layer::{Context as LayerContext, Layer};

use crate::config::OtlpEndpoint;
use crate::invoke::Invocation;
use crate::telemetry::ids::Trigger;

/// The target of the `tracing` spans that become OpenTelemetry spans; the
/// log output never shows them.
pub const TARGET: &str = "wisp::trace";

/// The W3C header carrying a span's context.
pub const TRACEPARENT: &str = "traceparent";

/// The environment variable carrying it into a job's commands (OpenTelemetry's
/// environment-variable carrier).
pub const TRACEPARENT_ENV: &str = "TRACEPARENT";

/// Set once, when export starts.
static EXPORT: OnceLock<Export> = OnceLock::new();

struct Export {
    tracer: Tracer,
    layer: OpenTelemetryLayer<Registry, Tracer>,
}

/// Whether spans are being made and exported.
pub fn on() -> bool {
    EXPORT.get().is_some()
}

/// The layer [`init_logging`](crate::telemetry::logging::init_logging)
/// installs: it passes [`TARGET`] spans to `tracing-opentelemetry` once
/// [`start`] has run, and disables them at their call sites until then.
pub fn layer() -> Filtered<Spans, FilterFn, Registry> {
    Spans.with_filter(
        FilterFn::new(traced as fn(&Metadata<'_>) -> bool).with_max_level_hint(LevelFilter::INFO),
    )
}

fn traced(meta: &Metadata<'_>) -> bool {
    meta.target() == TARGET && on()
}

/// The exporting side; flush it with [`Exporter::shutdown`] at exit.
pub struct Exporter(SdkTracerProvider);

/// Starts exporting to `endpoint`: from now on invocations make spans.
/// `OTEL_SERVICE_NAME` names the service (default `wisp`).
pub fn start(endpoint: &OtlpEndpoint) -> Result<Exporter> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.traces_url())
        .build()
        .with_context(|| format!("could not set up trace export to {endpoint}"))?;
    let resource = match std::env::var_os("OTEL_SERVICE_NAME") {
        Some(_) => Resource::builder().build(),
        None => Resource::builder().with_service_name("wisp").build(),
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("wisp");
    let layer = OpenTelemetryLayer::new(tracer.clone())
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    if EXPORT.set(Export { tracer, layer }).is_err() {
        anyhow::bail!("trace export was already started in this process");
    }
    // The filter's answers are cached per call site: ask again.
    tracing::callsite::rebuild_interest_cache();
    tracing::info!("exporting traces to {}", endpoint.traces_url());
    Ok(Exporter(provider))
}

impl Exporter {
    /// Exports the spans still queued (within the SDK's export timeout).
    pub async fn shutdown(self) {
        let provider = self.0;
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            tracing::warn!("the last spans may not have been exported: {e}");
        }
    }
}

/// The span of one invocation of `function` (revision `revision`): a child
/// of the caller's span when `headers` carry a `traceparent`. Records the
/// span's context in `invocation` for the spans made on the instance.
/// Disabled (and nothing read) when traces are off.
pub fn invocation_span(
    function: &str,
    revision: u64,
    invocation: &Invocation,
    headers: &HeaderMap,
) -> tracing::Span {
    if !on() {
        return tracing::Span::none();
    }
    let trigger = invocation.trigger;
    let kind = match trigger {
        Trigger::Http => "server",
        Trigger::Event | Trigger::Task => "consumer",
        Trigger::Schedule | Trigger::Job => "internal",
    };
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "invocation",
        otel.name = format!("invoke {function}"),
        otel.kind = kind,
        otel.status_code = tracing::field::Empty,
        wisp.function = function,
        wisp.revision = revision,
        wisp.trigger = trigger.as_str(),
        wisp.invocation_id = %invocation.id,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(parent) = parent(headers) {
        let _ = span.set_parent(parent);
    }
    invocation.set_trace(span.context());
    span
}

/// The span of one attempt of task `index` of a job execution, a child of
/// the execution's `traceparent` (from whoever started it) if any.
pub fn job_attempt_span(
    job: &str,
    execution: &str,
    index: u32,
    attempt: u32,
    traceparent: Option<&str>,
) -> tracing::Span {
    if !on() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "job task",
        otel.name = format!("run {job}"),
        otel.status_code = tracing::field::Empty,
        wisp.job = job,
        wisp.execution = execution,
        wisp.task_index = index,
        wisp.task_attempt = attempt,
        wisp.exit = tracing::field::Empty,
    );
    if let Some(parent) = traceparent.and_then(parse) {
        let _ = span.set_parent(parent);
    }
    span
}

/// Records how a job task's attempt ended on its span.
pub fn record_exit(span: &tracing::Span, exit: &str, success: bool) {
    span.record("wisp.exit", exit);
    if !success {
        span.record("otel.status_code", "error");
    }
}

/// `span`'s OpenTelemetry context (when traces are on).
pub fn context_of(span: &tracing::Span) -> Option<Context> {
    (!span.is_disabled()).then(|| span.context())
}

/// `span`'s context as a `traceparent` value (when traces are on).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let mut headers = HeaderMap::new();
    inject(&context_of(span)?, &mut headers);
    Some(headers.get(TRACEPARENT)?.to_str().ok()?.to_owned())
}

/// Records how an invocation ended on its span.
pub fn record_status(span: &tracing::Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// The span of the wait for an admission place (a child of the current
/// invocation span).
pub fn admission_span() -> tracing::Span {
    tracing::info_span!(target: TARGET, "admission")
}

/// An instance was made (or taken ready) for `parent`'s invocation between
/// `started` and `ended`; `cold`: instantiated then, not ahead of traffic;
/// `initialized`: it ran `wizer-initialize` when made (its snapshot was
/// still compiling).
pub fn instantiation(
    parent: &Context,
    started: SystemTime,
    ended: SystemTime,
    cold: bool,
    initialized: bool,
) {
    let Some(export) = EXPORT.get() else { return };
    let builder = export
        .tracer
        .span_builder("instantiation")
        .with_kind(SpanKind::Internal)
        .with_start_time(started)
        .with_attributes([
            KeyValue::new("wisp.cold_start", cold),
            KeyValue::new("wisp.initialized", initialized),
        ]);
    let mut span = export.tracer.build_with_context(builder, parent);
    opentelemetry::trace::Span::end_with_timestamp(&mut span, ended);
}

/// A span that ends when dropped.
pub type LiveSpan = opentelemetry_sdk::trace::Span;

/// The span of the guest running `parent`'s request on `instance`; it ends
/// when dropped.
pub fn guest_run(parent: &Context, instance: impl std::fmt::Display) -> Option<LiveSpan> {
    let export = EXPORT.get()?;
    let builder = export
        .tracer
        .span_builder("guest run")
        .with_kind(SpanKind::Internal)
        .with_attributes([KeyValue::new("wisp.instance_id", instance.to_string())]);
    Some(export.tracer.build_with_context(builder, parent))
}

/// The span of one outbound request of the guest serving `parent`, whose
/// context is written into `headers` so the callee continues the trace.
pub fn outbound(
    parent: &Context,
    method: &http::Method,
    uri: &http::Uri,
    headers: &mut HeaderMap,
) -> Option<LiveSpan> {
    let export = EXPORT.get()?;
    // No query: it may carry secrets.
    let url = format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    );
    let builder = export
        .tracer
        .span_builder(method.as_str().to_owned())
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("http.request.method", method.as_str().to_owned()),
            KeyValue::new("url.full", url),
            KeyValue::new("server.address", uri.host().unwrap_or("").to_owned()),
        ]);
    let span = export.tracer.build_with_context(builder, parent);
    let cx = Context::new()
        .with_remote_span_context(opentelemetry::trace::Span::span_context(&span).clone());
    inject(&cx, headers);
    Some(span)
}

/// Ends an outbound span with the response's status, or the failure.
pub fn outbound_done(mut span: LiveSpan, status: Result<u16, String>) {
    use opentelemetry::trace::Span as _;
    match status {
        Ok(code) => {
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
            if code >= 500 {
                span.set_status(Status::error(""));
            }
        }
        Err(why) => span.set_status(Status::error(why)),
    }
    span.end();
}

/// The caller's span context in `headers`, if they carry a valid one.
pub fn parent(headers: &HeaderMap) -> Option<Context> {
    headers.get(TRACEPARENT)?;
    let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), &Headers(headers));
    cx.span().span_context().is_valid().then_some(cx)
}

/// A valid `traceparent` among `headers`, to be carried with what a request
/// stores (an event, a task, a job execution) whether or not this server
/// exports traces: whoever handles the stored work continues the trace.
pub fn carried(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    valid_traceparent(value).then_some(value)
}

/// Whether `value` is a W3C `traceparent` with a valid trace and span id.
pub fn valid_traceparent(value: &str) -> bool {
    parse(value).is_some()
}

/// The span context in a `traceparent` value.
fn parse(traceparent: &str) -> Option<Context> {
    let mut headers = HeaderMap::new();
    headers.insert(TRACEPARENT, HeaderValue::from_str(traceparent).ok()?);
    parent(&headers)
}

/// Writes `cx` into `headers` as `traceparent` (and `tracestate`).
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeadersMut(headers));
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Forwards to `tracing-opentelemetry`'s layer once [`start`] made it; the
/// subscriber is built before the manifest that configures export is read.
pub struct Spans;

impl Spans {
    fn inner() -> Option<&'static OpenTelemetryLayer<Registry, Tracer>> {
        EXPORT.get().map(|e| &e.layer)
    }
}

impl Layer<Registry> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, Registry>) {
        if let Some(inner) = Self::inner() {
            inner.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, Registry>) {
        if let Some(inner) = Self::inner() {
            inner.on_record(id, values, ctx);
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: LayerContext<'_, Registry>) {
        if let Some(inner) = Self::inner() {
            inner.on_follows_from(id, follows, ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, Registry>) {
        if let Some(inner) = Self::inner() {
            inner.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, Registry>) {
        if let Some(inner) = Self::inner() {
            inner.on_enter(id, ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: LayerContext<'_, Registry>) {
        if let Some(inner) = Self::inner() {
            inner.on_exit(id, ctx);
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, Registry>) {
        if let Some(inner) = Self::inner() {
            inner.on_close(id, ctx);
        }
    }

    /// `OpenTelemetrySpanExt` finds the inner layer's hooks through this.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        // SAFETY: forwarded to the layer, which lives for the process.
        unsafe { Self::inner()?.downcast_raw(id) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_checked() {
        assert!(valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "not a traceparent",
        ] {
            assert!(!valid_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn a_context_round_trips_through_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let cx = parent(&headers).unwrap();
        let mut out = HeaderMap::new();
        inject(&cx, &mut out);
        assert_eq!(out[TRACEPARENT], headers[TRACEPARENT]);
    }
}
