//! `event-probe`: a test guest for event delivery (the runtime's integration
//! tests subscribe it to topics). For every delivery it first reports what it
//! received to `{SINK}/seen` (env var `SINK`, e.g. `http://127.0.0.1:45678`;
//! the function needs it in `allowed_outbound_hosts`):
//!
//! ```json
//! {"id": "<ce-id>", "attempt": 2, "type": "<ce-type>", "subject": null,
//!  "partitionkey": null, "data": "<the data as text>"}
//! ```
//!
//! (`attempt` is `ce-deliveryattempt` as a number, `null` when absent; `subject`,
//! `partitionkey` and `data` are `null` when absent.) Then it answers as the
//! event's JSON data asks:
//!
//! | data | answer |
//! |---|---|
//! | `{"fail_until": N}` | `500` while the attempt is below N, then `204` |
//! | `{"poison": true}` | `500`, always |
//! | `{"status": S}` | `S` |
//! | `{"publish": {"topic": T, "type": X}}` (optional `"data"`: JSON) | publishes an event of type X (source `/event-probe`) to T through `wisp.internal`: `204` if Wisp accepted it, else `500` with its status |
//! | anything else, or not JSON | `204` |
//!
//! If the report cannot be made (no `SINK`, the call fails, the sink answers
//! other than 2xx), it answers `500`, so the event is redelivered. A request
//! that is not a CloudEvent gets `400` and is not reported.

use wisp_sdk::events::{self, PublishError};
use wisp_sdk::outbound::OutboundRequest;
use wisp_sdk::serde_json::{Value, json};
use wisp_sdk::{CloudEvent, Method, Request, Response, http_handler};

/// What the probe saw, as it reports it to the sink; `task` and `queue`
/// when it came as a task (`x-wisp-task`, `x-wisp-queue`).
fn report(event: &CloudEvent, task: Option<&str>, queue: Option<&str>) -> Value {
    json!({
        "id": event.id(),
        "attempt": event.delivery_attempt(),
        "type": event.event_type(),
        "subject": event.subject(),
        "partitionkey": event.attribute_value("partitionkey"),
        "data": event.data().map(String::from_utf8_lossy),
        "task": task,
        "queue": queue,
    })
}

fn send_report(report: Value) -> Result<(), String> {
    let sink = wisp_sdk::env::var("SINK").ok_or("env var SINK is not set")?;
    let report = report.to_string();
    let reply = OutboundRequest::new(Method::Post, format!("{}/seen", sink.trim_end_matches('/')))
        .with_header("content-type", "application/json")
        .with_header("content-length", report.len().to_string())
        .with_body(report)
        .send()
        .map_err(|e| format!("report to {sink} failed: {e}"))?;
    match reply.status() {
        200..=299 => Ok(()),
        status => Err(format!("the sink {sink} answered {status}")),
    }
}

/// Adds `{"queue": Q, "task": {...}}`'s task to queue Q through
/// `http://wisp.internal`: 204 when Wisp answered 201, else 500 naming the
/// status.
fn enqueue(spec: &Value) -> (u16, String) {
    let Some(queue) = spec.get("queue").and_then(Value::as_str) else {
        return (500, "enqueue needs a string queue".into());
    };
    let body = spec.get("task").cloned().unwrap_or_else(|| json!({})).to_string();
    let reply = OutboundRequest::new(Method::Post, format!("http://wisp.internal/queues/{queue}/tasks"))
        .with_header("content-type", "application/json")
        .with_header("content-length", body.len().to_string())
        .with_body(body)
        .send();
    match reply {
        Ok(reply) if reply.status() == 201 => (204, format!("enqueued to {queue}")),
        Ok(reply) => (500, format!("enqueue to {queue} answered {}", reply.status())),
        Err(e) => (500, format!("enqueue to {queue} failed: {e}")),
    }
}

/// What the event's data asks for: the status to answer, and why.
fn decide(event: &CloudEvent, publish: impl FnOnce(&str, &CloudEvent) -> Result<String, PublishError>) -> (u16, String) {
    let Ok(data) = event.data_json::<Value>() else {
        return (204, String::new());
    };
    let attempt = u64::from(event.delivery_attempt().unwrap_or(1));
    if let Some(n) = data.get("fail_until").and_then(Value::as_u64) {
        return if attempt < n { (500, format!("attempt {attempt} fails until {n}")) } else { (204, String::new()) };
    }
    if data.get("poison") == Some(&Value::Bool(true)) {
        return (500, "poison".into());
    }
    if let Some(status) = data.get("status").and_then(Value::as_u64) {
        return (u16::try_from(status).unwrap_or(500), format!("status {status} asked for"));
    }
    if let Some(spec) = data.get("publish") {
        let (Some(topic), Some(event_type)) =
            (spec.get("topic").and_then(Value::as_str), spec.get("type").and_then(Value::as_str))
        else {
            return (500, "publish needs a string topic and type".into());
        };
        let mut out = CloudEvent::without_id("/event-probe", event_type);
        if let Some(payload) = spec.get("data") {
            out = out.with_data("application/json", payload.to_string());
        }
        return match publish(topic, &out) {
            Ok(id) => (204, format!("published {id} to {topic}")),
            Err(e) => (500, match e.status() {
                Some(status) => format!("publish to {topic} answered {status}: {e}"),
                None => format!("publish to {topic} failed: {e}"),
            }),
        };
    }
    if let Some(task) = data.get("enqueue") {
        return enqueue(task);
    }
    (204, String::new())
}

#[http_handler]
fn handle(mut req: Request) -> Response {
    let task = req.header("x-wisp-task").map(str::to_owned);
    let queue = req.header("x-wisp-queue").map(str::to_owned);
    let task_attempt = req.header("x-wisp-task-attempt").map(str::to_owned);
    let mut event = match CloudEvent::from_request(&mut req) {
        Ok(event) => event,
        Err(e) => return Response::text(format!("{e}\n")).with_status(e.status()),
    };
    // A task (or a schedule's firing) counts its attempts in x-wisp-task-attempt.
    if event.delivery_attempt().is_none()
        && let Some(attempt) = task_attempt
    {
        event = event.with_attribute("deliveryattempt", attempt);
    }
    let (status, why) = match send_report(report(&event, task.as_deref(), queue.as_deref())) {
        Ok(()) => decide(&event, events::publish),
        Err(reason) => (500, reason),
    };
    println!("event-probe: id={} attempt={:?} -> {status} {why}", event.id(), event.delivery_attempt());
    if why.is_empty() { Response::new(status) } else { Response::text(format!("{why}\n")).with_status(status) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str, attempt: u32) -> CloudEvent {
        CloudEvent::new("e1", "/t", "com.example.test")
            .with_attribute("deliveryattempt", attempt.to_string())
            .with_data("application/json", data)
    }

    fn status(data: &str, attempt: u32) -> u16 {
        decide(&event(data, attempt), |_, _| Ok("p1".into())).0
    }

    #[test]
    fn reports_what_it_saw() {
        let seen = report(&event(r#"{"a":1}"#, 3).with_attribute("partitionkey", "k"), Some("t1"), Some("q"));
        assert_eq!(
            seen,
            json!({"id": "e1", "attempt": 3, "type": "com.example.test", "subject": null,
                   "partitionkey": "k", "data": "{\"a\":1}", "task": "t1", "queue": "q"})
        );
        let bare = report(&CloudEvent::new("e2", "/t", "x"), None, None);
        assert_eq!((bare["attempt"].clone(), bare["data"].clone()), (Value::Null, Value::Null));
    }

    #[test]
    fn answers_as_the_data_asks() {
        assert_eq!((status(r#"{"fail_until": 3}"#, 1), status(r#"{"fail_until": 3}"#, 2)), (500, 500));
        assert_eq!(status(r#"{"fail_until": 3}"#, 3), 204);
        assert_eq!(status(r#"{"poison": true}"#, 9), 500);
        assert_eq!(status(r#"{"status": 429}"#, 1), 429);
        assert_eq!(status(r#"{"other": 1}"#, 1), 204);
        assert_eq!(status("plain text", 1), 204);
        assert_eq!(status(r#"{"publish": {"topic": "t"}}"#, 1), 500);
    }

    #[test]
    fn publishes_when_asked() {
        let asked = event(r#"{"publish": {"topic": "next", "type": "com.example.next", "data": {"n": 1}}}"#, 1);
        let mut published = None;
        let (status, _) = decide(&asked, |topic, e| {
            published = Some((topic.to_owned(), e.event_type().to_owned(), e.data_text().map(str::to_owned)));
            Ok("p1".into())
        });
        assert_eq!(status, 204);
        assert_eq!(published, Some(("next".into(), "com.example.next".into(), Some(r#"{"n":1}"#.into()))));
        let refused = decide(&asked, |_, _| Err(PublishError::Rejected { status: 403, message: "no".into() }));
        assert_eq!(refused.0, 500);
        assert!(refused.1.contains("403"), "{}", refused.1);
    }

    #[test]
    fn without_a_sink_it_fails_so_the_event_comes_back() {
        let response = handle(
            Request::new(Method::Post, "/")
                .with_header("ce-specversion", "1.0")
                .with_header("ce-id", "1")
                .with_header("ce-source", "/t")
                .with_header("ce-type", "x"),
        );
        assert_eq!(response.status(), 500);
        assert_eq!(handle(Request::new(Method::Post, "/")).status(), 400);
    }
}
