//! Publishing CloudEvents to Wisp topics.
//!
//! A function publishes with an ordinary outbound call to
//! `http://wisp.internal/topics/{topic}`, which never reaches the network:
//! Wisp takes the event, appends it to the topic and answers `202` with the
//! id it stored. [`publish`] makes that call in CloudEvents binary mode and
//! returns the id. The function needs no `allowed_outbound_hosts` entry for
//! it, but the topic must be in its manifest's `publish = [...]` list (else
//! `403`).
//!
//! ```no_run
//! use wisp_sdk::{CloudEvent, events};
//!
//! let event = CloudEvent::without_id("/shop", "com.example.order.created")
//!     .with_attribute("subject", "1")
//!     .with_data("application/json", r#"{"id":1,"item":"tea","quantity":2}"#);
//! match events::publish("orders", &event) {
//!     Ok(id) => println!("published {id}"),
//!     Err(e) if e.status() == Some(403) => eprintln!("orders is not in `publish`: {e}"),
//!     Err(e) => eprintln!("{e}"),
//! }
//! ```
//!
//! The call blocks until Wisp answers, so use it from `#[http_handler]` and
//! `#[event_handler]` functions; `p3` handlers use
//! `wisp_sdk::p3::events::publish(…).await` (cargo feature `p3`).

use std::fmt;

use crate::outbound::{ClientError, ClientResponse, OutboundRequest};
use crate::{CloudEvent, Method};

/// Where functions publish: `{PUBLISH_BASE}/{topic}`. Wisp answers it itself.
pub const PUBLISH_BASE: &str = "http://wisp.internal/topics";

/// Attributes Wisp sets on each delivery, never copied into a publish: a
/// received event forwarded as it is starts over at attempt 1.
const DELIVERY_ONLY: [&str; 1] = ["deliveryattempt"];

/// Longest error text kept from a refusal's body.
const MAX_MESSAGE: usize = 1024;

/// Publishes `event` to `topic` and returns the event's id: the one it
/// carries, or the one Wisp assigned if it was built with
/// [`CloudEvent::without_id`].
///
/// The event goes in binary mode: its attributes as `ce-*` headers
/// (percent-encoded as the HTTP binding asks), its data as the body with
/// `datacontenttype` as `Content-Type`. The `deliveryattempt` attribute of a
/// received event is not sent. Off wasm (unit tests) every call fails with
/// [`PublishError::Client`]`(`[`ClientError::Unsupported`]`)`.
///
/// ```no_run
/// use wisp_sdk::{CloudEvent, events};
///
/// let event = CloudEvent::without_id("/billing", "com.example.invoice.sent")
///     .with_attribute("partitionkey", "customer-7")
///     .with_data("text/plain", "invoice 12");
/// let id = events::publish("invoices", &event)?;
/// # Ok::<(), events::PublishError>(())
/// ```
pub fn publish(topic: &str, event: &CloudEvent) -> Result<String, PublishError> {
    let mut reply = publish_request(topic, event)?.send().map_err(PublishError::Client)?;
    read_reply(&mut reply)
}

/// Why [`publish`] returned no event id.
///
/// ```
/// use wisp_sdk::events::PublishError;
///
/// let refused = PublishError::Rejected { status: 403, message: "topic orders is not in publish".into() };
/// assert_eq!(refused.status(), Some(403));
/// assert_eq!(refused.to_string(), "Wisp refused the event (403): topic orders is not in publish");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// The event or topic cannot be sent as it is (an attribute name that is
    /// not lower-case letters and digits, an empty topic); nothing was sent.
    InvalidEvent(String),
    /// The call did not get an answer (see [`ClientError`]).
    Client(ClientError),
    /// Wisp answered with an error status: `400` a malformed event (the
    /// message names the attribute), `403` a topic not in the function's
    /// `publish` list, `404` an unknown topic, `429`/`503` come back later.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The answer's text (its `error` field if it is a JSON object with one).
        message: String,
    },
    /// Wisp accepted the event but its answer carried no event id.
    BadResponse(String),
}

impl PublishError {
    /// The status Wisp answered with, if it refused the event.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::events::PublishError::InvalidEvent("x".into()).status(), None);
    /// ```
    pub fn status(&self) -> Option<u16> {
        match self {
            PublishError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::InvalidEvent(reason) => write!(f, "invalid event: {reason}"),
            PublishError::Client(e) => write!(f, "could not reach wisp.internal: {e}"),
            PublishError::Rejected { status, message } => {
                write!(f, "Wisp refused the event ({status}): {message}")
            }
            PublishError::BadResponse(reason) => write!(f, "unexpected answer from wisp.internal: {reason}"),
        }
    }
}

impl std::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PublishError::Client(e) => Some(e),
            _ => None,
        }
    }
}

/// The binary-mode request that publishes `event` to `topic`.
pub(crate) fn publish_request(topic: &str, event: &CloudEvent) -> Result<OutboundRequest, PublishError> {
    if topic.is_empty() {
        return Err(PublishError::InvalidEvent("the topic name is empty".into()));
    }
    let url = format!("{PUBLISH_BASE}/{}", encode(topic, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
    let mut request = OutboundRequest::new(Method::Post, url);
    for (name, value) in event.attributes() {
        if DELIVERY_ONLY.contains(&name) || (name == "id" && value.is_empty()) {
            continue;
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            return Err(PublishError::InvalidEvent(format!(
                "attribute name {name:?} must be lower-case letters and digits"
            )));
        }
        if name == "datacontenttype" {
            request = request.with_header("content-type", value);
        } else {
            // CloudEvents HTTP binding 3.1.3.2: space, `"`, `%` and anything
            // outside printable ASCII are percent-encoded (as UTF-8).
            let value = encode(value, |b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%');
            request = request.with_header(&format!("ce-{name}"), value);
        }
    }
    // A known length rather than a chunked body: simpler for every receiver.
    let data = event.data().unwrap_or_default();
    Ok(request.with_header("content-length", data.len().to_string()).with_body(data))
}

/// Reads Wisp's answer to a publish (p2 and p3).
pub(crate) fn read_reply(reply: &mut ClientResponse) -> Result<String, PublishError> {
    let status = reply.status();
    let body = reply
        .body_mut()
        .bytes()
        .map_err(|e| PublishError::BadResponse(format!("{status} with an unreadable body: {e}")))?;
    parse_reply(status, body)
}

/// Parses Wisp's answer to a publish: `2xx {"id": …}` is the event id.
pub(crate) fn parse_reply(status: u16, body: &[u8]) -> Result<String, PublishError> {
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(body);
        let message = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(object)) => match object.get("error") {
                Some(serde_json::Value::String(error)) => error.clone(),
                _ => text.trim().to_owned(),
            },
            _ => text.trim().to_owned(),
        };
        let message = match message.char_indices().nth(MAX_MESSAGE) {
            Some((cut, _)) => format!("{}…", &message[..cut]),
            None if message.is_empty() => "(no message)".to_owned(),
            None => message,
        };
        return Err(PublishError::Rejected { status, message });
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(object)) => match object.get("id") {
            Some(serde_json::Value::String(id)) if !id.is_empty() => Ok(id.clone()),
            _ => Err(PublishError::BadResponse(format!("{status} without an \"id\" string"))),
        },
        _ => Err(PublishError::BadResponse(format!(
            "{status} with a body that is not a JSON object: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))),
    }
}

/// Percent-encodes every byte for which `keep` is false.
fn encode(value: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Request;

    fn headers(request: &OutboundRequest) -> Vec<(String, String)> {
        request.headers.iter().map(|(n, v)| (n.to_owned(), String::from_utf8(v.to_vec()).unwrap())).collect()
    }

    #[test]
    fn binary_mode_request() {
        let event = CloudEvent::new("e-1", "/shop", "com.example.order.created")
            .with_attribute("subject", "order 7")
            .with_attribute("partitionkey", "c-7")
            .with_attribute("deliveryattempt", "3")
            .with_data("application/json", r#"{"id":7}"#);
        let request = publish_request("orders", &event).unwrap();
        assert_eq!(request.url, "http://wisp.internal/topics/orders");
        assert_eq!(request.body, br#"{"id":7}"#);
        let mut sent = headers(&request);
        sent.sort();
        let expected: Vec<(String, String)> = [
            ("ce-id", "e-1"),
            ("ce-partitionkey", "c-7"),
            ("ce-source", "/shop"),
            ("ce-specversion", "1.0"),
            ("ce-subject", "order%207"),
            ("ce-type", "com.example.order.created"),
            ("content-length", "8"),
            ("content-type", "application/json"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .into();
        assert_eq!(sent, expected);
        assert!(request.checked_url().is_ok());
    }

    #[test]
    fn without_id_sends_no_id_and_no_data_means_empty_body() {
        let request = publish_request("t", &CloudEvent::without_id("/s", "x")).unwrap();
        let sent = headers(&request);
        assert!(!sent.iter().any(|(n, _)| n == "ce-id" || n == "content-type"), "{sent:?}");
        assert!(sent.contains(&("content-length".into(), "0".into())), "{sent:?}");
        assert!(request.body.is_empty());
    }

    #[test]
    fn round_trips_through_the_binary_parser() {
        let event = CloudEvent::new("1", "/s", "t")
            .with_attribute("subject", "100% \"tea\" é")
            .with_attribute("time", "2024-01-01T00:00:00Z")
            .with_data("text/plain; charset=utf-8", "hi");
        let request = publish_request("t", &event).unwrap();
        assert!(request.headers.validate().is_ok());
        let mut req = request
            .headers
            .iter()
            .fold(Request::new(Method::Post, "/"), |r, (n, v)| r.with_header(n, v.to_vec()))
            .with_body(request.body.clone());
        assert_eq!(CloudEvent::from_request(&mut req).unwrap(), event);
    }

    #[test]
    fn refuses_bad_names_and_topics() {
        let bad = CloudEvent::new("1", "/s", "t").with_attribute("Partition-Key", "x");
        assert!(matches!(publish_request("t", &bad), Err(PublishError::InvalidEvent(m)) if m.contains("Partition-Key")));
        assert!(matches!(publish_request("", &CloudEvent::new("1", "/s", "t")), Err(PublishError::InvalidEvent(_))));
        let odd = publish_request("a b/c", &CloudEvent::new("1", "/s", "t")).unwrap();
        assert_eq!(odd.url, "http://wisp.internal/topics/a%20b%2Fc");
    }

    #[test]
    fn reads_the_answer() {
        assert_eq!(parse_reply(202, br#"{"id":"abc"}"#), Ok("abc".into()));
        assert_eq!(parse_reply(200, br#"{"id":"abc","topic":"t"}"#), Ok("abc".into()));
        assert!(matches!(parse_reply(202, b"{}"), Err(PublishError::BadResponse(_))));
        assert!(matches!(parse_reply(202, b"ok"), Err(PublishError::BadResponse(_))));
        assert_eq!(
            parse_reply(403, br#"{"error":"topic orders is not in publish"}"#),
            Err(PublishError::Rejected { status: 403, message: "topic orders is not in publish".into() })
        );
        assert_eq!(
            parse_reply(400, b"missing ce-type\n"),
            Err(PublishError::Rejected { status: 400, message: "missing ce-type".into() })
        );
        assert_eq!(parse_reply(503, b"").unwrap_err().to_string(), "Wisp refused the event (503): (no message)");
        let long = "x".repeat(5000);
        let PublishError::Rejected { message, .. } = parse_reply(400, long.as_bytes()).unwrap_err() else {
            panic!()
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE + 1);
    }

    #[test]
    fn host_target_has_no_transport() {
        let err = publish("t", &CloudEvent::new("1", "/s", "t")).unwrap_err();
        assert_eq!(err, PublishError::Client(ClientError::Unsupported));
    }
}
