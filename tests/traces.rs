//! Traces end to end: the real `wisp` binary exports OTLP/HTTP protobuf to
//! a receiver this test runs, which decodes it with `opentelemetry-proto`;
//! the assertions are on the spans it received and on the `traceparent`
//! headers the guests' outbound requests carried.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::{Sink, Wisp, client, eventually, guest, refused_at_load, send, server_table};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;

/// The caller's span, as a W3C `traceparent` sends it.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn caller_traceparent() -> String {
    format!("00-{TRACE_ID}-{CALLER_SPAN}-01")
}

/// One span as the receiver got it; ids in lowercase hex.
#[derive(Clone, Debug)]
struct Span {
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: SpanKind,
    /// Its status is an error.
    error: bool,
    attributes: HashMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// One request the receiver got: its path and headers.
#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    headers: http::HeaderMap,
}

/// A loopback HTTP server that answers every request 200 and keeps it; what
/// is POSTed to `/v1/traces` is decoded as OTLP spans.
#[derive(Clone)]
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            url: format!("http://{}", listener.local_addr().unwrap()),
            spans: Arc::default(),
            requests: Arc::default(),
        };
        let kept = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            if parts.uri.path() == "/v1/traces" {
                                kept.spans.lock().unwrap().extend(decode(&body));
                            }
                            kept.requests.lock().unwrap().push(Recorded {
                                path: parts.uri.path().to_string(),
                                headers: parts.headers,
                            });
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from("recorded")),
                            ))
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        receiver
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    fn requests_to(&self, path: &str) -> Vec<Recorded> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits for a span `what` describes and returns it.
    async fn span(&self, what: &str, matches: impl Fn(&Span) -> bool) -> Span {
        eventually(&format!("the receiver got {what}"), || {
            self.spans().iter().any(&matches)
        })
        .await;
        self.spans().into_iter().find(matches).unwrap()
    }
}

/// The spans in one OTLP export request.
fn decode(body: &[u8]) -> Vec<Span> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    let mut spans = Vec::new();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(AnyValue::StringValue(s)) => s.clone(),
                            Some(AnyValue::IntValue(i)) => i.to_string(),
                            Some(AnyValue::BoolValue(b)) => b.to_string(),
                            other => format!("{other:?}"),
                        };
                        (kv.key.clone(), value)
                    })
                    .collect();
                spans.push(Span {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    kind: span.kind(),
                    error: span
                        .status
                        .as_ref()
                        .is_some_and(|s| s.code() == StatusCode::Error),
                    name: span.name,
                    attributes,
                });
            }
        }
    }
    spans
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `wisp up` with `manifest`, exporting every 50 ms.
fn up_exporting(dir: &std::path::Path, manifest: &str) -> Wisp {
    let file = dir.join("wisp.toml");
    std::fs::write(&file, manifest).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
    cmd.arg("up")
        .arg("-f")
        .arg(&file)
        .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    Wisp::start(cmd).expect("wisp up did not start")
}

fn telemetry_table(receiver: &Receiver) -> String {
    format!("[server.telemetry]\notlp_endpoint = \"{}\"\n", receiver.url)
}

/// An order posted with a `traceparent`: its invocation continues the
/// caller's trace with spans for admission, instantiation, the guest's run
/// and its publish call, and the event's delivery to a subscriber — and
/// that subscriber's own outbound call — are in the same trace, each the
/// child of the call that caused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_follows_an_order_from_http_through_its_event() {
    let receiver = Receiver::start().await;
    let sink = Sink::start(std::time::Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let wisp = up_exporting(
        dir.path(),
        &format!(
            r#"{server}{telemetry}
[[topic]]
name = "orders"

[[function]]
name = "order-api"
component = "{api}"
route = "/orders"
publish = ["orders"]

[[function]]
name = "probe"
component = "{probe}"
env = {{ SINK = "{sink}" }}
allowed_outbound_hosts = ["{sink}"]
[function.trigger]
topic = "orders"
"#,
            server = server_table(dir.path()),
            telemetry = telemetry_table(&receiver),
            api = guest("order-api").display(),
            probe = guest("event-probe").display(),
            sink = sink.url,
        ),
    );

    let (status, body) = send(
        client()
            .post(format!("{}/orders", wisp.url))
            .header("traceparent", caller_traceparent())
            .header("content-type", "application/json")
            .body(r#"{"id": 7, "item": "tea", "quantity": 2}"#),
    )
    .await;
    assert_eq!(status, 202, "{body}");

    let api = receiver
        .span("order-api's invocation span", |s| {
            s.attr("wisp.function") == Some("order-api")
        })
        .await;
    assert_eq!(api.name, "invoke order-api");
    assert_eq!(api.trace_id, TRACE_ID, "not the caller's trace: {api:?}");
    assert_eq!(api.parent, CALLER_SPAN, "not the caller's child: {api:?}");
    assert_eq!(api.kind, SpanKind::Server);
    assert_eq!(api.attr("wisp.trigger"), Some("http"));
    assert_eq!(api.attr("wisp.revision"), Some("1"));
    assert_eq!(api.attr("http.response.status_code"), Some("202"));
    let id = api.attr("wisp.invocation_id").unwrap();
    assert!(
        wisp.logs().contains(&format!("invocation={id}")),
        "the span's invocation id is not the logged one: {id}"
    );

    let child = |name: &'static str| {
        let api = api.clone();
        move |s: &Span| s.name == name && s.parent == api.span_id && s.trace_id == TRACE_ID
    };
    for name in ["admission", "instantiation", "guest run"] {
        receiver
            .span(
                &format!("a `{name}` child of order-api's span"),
                child(name),
            )
            .await;
    }
    let publish = receiver
        .span("order-api's publish call", child("POST"))
        .await;
    assert_eq!(publish.kind, SpanKind::Client);
    assert_eq!(
        publish.attr("url.full"),
        Some("http://wisp.internal/topics/orders")
    );
    assert_eq!(publish.attr("http.response.status_code"), Some("202"));

    // The delivery: a child of the publish call, through the event.
    let delivery = receiver
        .span("the event delivery's invocation span", |s| {
            s.attr("wisp.function") == Some("probe")
        })
        .await;
    assert_eq!(delivery.trace_id, TRACE_ID, "{delivery:?}");
    assert_eq!(delivery.parent, publish.span_id, "{delivery:?}");
    assert_eq!(delivery.attr("wisp.trigger"), Some("event"));
    assert_eq!(delivery.kind, SpanKind::Consumer);
    let report = receiver
        .span("the probe's report call", |s| {
            s.kind == SpanKind::Client && s.parent == delivery.span_id
        })
        .await;
    assert_eq!(report.trace_id, TRACE_ID);
    assert_eq!(
        report.attr("url.full"),
        Some(format!("{}/seen", sink.url).as_str())
    );
}

/// The traceparent a guest's outbound request carries names the outbound
/// call's span, itself a child of the invocation; with traces off, Wisp
/// adds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_requests_carry_the_invocations_trace() {
    let receiver = Receiver::start().await;
    let upstream = Receiver::start().await;
    let manifest = |telemetry: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{telemetry}\n\
             [[function]]\nname = \"out\"\ncomponent = \"{}\"\nallowed_outbound_hosts = [\"{}\"]\n",
            guest("outbound").display(),
            upstream.url,
        )
    };
    let fetch = |wisp: &Wisp| {
        client()
            .get(format!("{}/?url={}/hello", wisp.url, upstream.url))
            .header("traceparent", caller_traceparent())
    };

    let dir = tempfile::tempdir().unwrap();
    let wisp = up_exporting(dir.path(), &manifest(&telemetry_table(&receiver)));
    let (status, body) = send(fetch(&wisp)).await;
    assert_eq!((status, body.as_str()), (200, "recorded"));
    let sent = upstream.requests_to("/hello");
    let traceparent = sent[0].headers["traceparent"].to_str().unwrap().to_owned();
    let call = receiver
        .span("the outbound call's span", |s| s.kind == SpanKind::Client)
        .await;
    assert_eq!(traceparent, format!("00-{TRACE_ID}-{}-01", call.span_id));
    assert_eq!(call.name, "GET");
    assert_eq!(call.attr("http.response.status_code"), Some("200"));
    let invocation = receiver
        .span("the invocation span", |s| s.span_id == call.parent)
        .await;
    assert_eq!(invocation.parent, CALLER_SPAN);
    assert!(!call.error && !invocation.error, "{call:?} {invocation:?}");

    // A call the host denies fails its span, and the guest's 502 the
    // invocation's.
    let (status, _) = send(
        client()
            .get(format!("{}/?url=http://127.0.0.1:9/", wisp.url))
            .header("traceparent", caller_traceparent()),
    )
    .await;
    assert_eq!(status, 502);
    let denied = receiver
        .span("the denied call's span", |s| {
            s.attr("url.full") == Some("http://127.0.0.1:9/")
        })
        .await;
    assert!(denied.error, "{denied:?}");
    let failed = receiver
        .span("the failed invocation's span", |s| {
            s.span_id == denied.parent
        })
        .await;
    assert_eq!(failed.attr("http.response.status_code"), Some("502"));
    assert!(failed.error, "{failed:?}");
    drop(wisp);

    let dir = tempfile::tempdir().unwrap();
    let wisp = up_exporting(dir.path(), &manifest(""));
    let (status, _) = send(fetch(&wisp)).await;
    assert_eq!(status, 200);
    let sent = upstream.requests_to("/hello");
    assert_eq!(sent.len(), 2);
    assert!(
        !sent[1].headers.contains_key("traceparent"),
        "traces are off, yet Wisp added {:?}",
        sent[1].headers.get("traceparent")
    );
}

/// A task added with a `traceparent` and a job execution started with one
/// continue that trace: the task's delivery and each job task attempt are
/// its children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_job_executions_continue_their_producers_trace() {
    let receiver = Receiver::start().await;
    let sink = Sink::start(std::time::Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let wisp = up_exporting(
        dir.path(),
        &format!(
            r#"{server}{telemetry}
[[queue]]
name = "work"
function = "probe"

[[function]]
name = "probe"
component = "{probe}"
env = {{ SINK = "{sink}" }}
allowed_outbound_hosts = ["{sink}"]

[[job]]
name = "batch"
component = "{job}"
env = {{ SINK = "{sink}" }}
allowed_outbound_hosts = ["{sink}"]
"#,
            server = server_table(dir.path()),
            telemetry = telemetry_table(&receiver),
            probe = guest("event-probe").display(),
            job = guest("resize").display(),
            sink = sink.url,
        ),
    );
    let admin = wisp.admin.clone().unwrap();

    let (status, body) = send(
        client()
            .post(format!("{admin}/v1/queues/work/tasks"))
            .header("traceparent", caller_traceparent())
            .body(r#"{"body": "{}"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let task = receiver
        .span("the task's invocation span", |s| {
            s.attr("wisp.trigger") == Some("task")
        })
        .await;
    assert_eq!(
        (task.trace_id.as_str(), task.parent.as_str()),
        (TRACE_ID, CALLER_SPAN)
    );
    assert_eq!(task.attr("wisp.function"), Some("probe"));

    let (status, body) = send(
        client()
            .post(format!("{admin}/v1/jobs/batch/executions"))
            .header("traceparent", caller_traceparent())
            .body("{}"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let attempt = receiver
        .span("the job task's span", |s| s.name == "run batch")
        .await;
    assert_eq!(
        (attempt.trace_id.as_str(), attempt.parent.as_str()),
        (TRACE_ID, CALLER_SPAN)
    );
    assert_eq!(attempt.attr("wisp.task_index"), Some("0"));
    assert_eq!(attempt.attr("wisp.exit"), Some("exit code 0"));
    // The command's own outbound calls (its reports) are the attempt's children.
    receiver
        .span("a report call of the job task", |s| {
            s.kind == SpanKind::Client && s.parent == attempt.span_id
        })
        .await;
}

#[test]
fn a_bad_otlp_endpoint_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    for (endpoint, says) in [
        ("127.0.0.1:4318", "is not an http:// URL"),
        ("https://collector:4318", "https is not supported"),
    ] {
        let err = refused_at_load(
            dir.path(),
            &format!("[server.telemetry]\notlp_endpoint = \"{endpoint}\"\n"),
            says,
        );
        assert!(err.contains("http://127.0.0.1:4318"), "{err}");
    }
    let out = common::wisp_command(&[
        "serve",
        "nothing.wasm",
        "--otlp-endpoint",
        "ftp://collector",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("not an http:// URL"),
        "{err}"
    );
}
