//! CloudEvents 1.0 over HTTP: binary mode (attributes in `ce-*` headers, data
//! in the body) and structured mode (the whole event as
//! `application/cloudevents+json`). Batch mode is refused with `415`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{BodyError, Headers, Request, Response, url};

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";
const REQUIRED: [&str; 4] = ["id", "source", "specversion", "type"];
const OPTIONAL: [&str; 4] = ["datacontenttype", "dataschema", "subject", "time"];

/// A CloudEvents 1.0 event.
///
/// Required attributes are plain accessors; optional ones return `Option`;
/// extension attributes are strings by name. Data is kept as bytes and can be
/// read as text or JSON.
///
/// ```
/// use wisp_sdk::{CloudEvent, Method, Request};
///
/// let mut req = Request::new(Method::Post, "/")
///     .with_header("ce-specversion", "1.0")
///     .with_header("ce-id", "42")
///     .with_header("ce-source", "/orders")
///     .with_header("ce-type", "com.example.order.created")
///     .with_header("content-type", "application/json")
///     .with_body(r#"{"order": 7}"#);
/// let event = CloudEvent::from_request(&mut req).unwrap();
/// assert_eq!(event.event_type(), "com.example.order.created");
/// assert_eq!(event.data_json::<serde_json::Value>().unwrap()["order"], 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudEvent {
    attributes: BTreeMap<String, String>,
    data: Option<Vec<u8>>,
}

impl CloudEvent {
    /// A `specversion` 1.0 event with the other required attributes and no
    /// data. Useful for tests of event handlers.
    ///
    /// ```
    /// let event = wisp_sdk::CloudEvent::new("1", "/test", "com.example.ping");
    /// assert_eq!(event.spec_version(), "1.0");
    /// ```
    pub fn new(id: &str, source: &str, event_type: &str) -> Self {
        let attributes = [("id", id), ("source", source), ("specversion", "1.0"), ("type", event_type)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        CloudEvent { attributes, data: None }
    }

    /// Sets the data and its `datacontenttype` (builder style).
    ///
    /// ```
    /// let event = wisp_sdk::CloudEvent::new("1", "/s", "t").with_data("text/plain", "hi");
    /// assert_eq!(event.data_text(), Some("hi"));
    /// ```
    pub fn with_data(mut self, content_type: &str, data: impl Into<Vec<u8>>) -> Self {
        self.attributes.insert("datacontenttype".into(), content_type.into());
        self.data = Some(data.into());
        self
    }

    /// An event to [publish](crate::events::publish) whose `id` Wisp assigns:
    /// `specversion` 1.0, `source` and `type` set, no data. Its
    /// [`id`](Self::id) is empty until then; [`publish`](crate::events::publish)
    /// returns the one Wisp chose.
    ///
    /// ```
    /// let event = wisp_sdk::CloudEvent::without_id("/shop", "com.example.order.created")
    ///     .with_attribute("subject", "1")
    ///     .with_data("application/json", r#"{"id":1}"#);
    /// assert_eq!(event.id(), "");
    /// assert_eq!(event.subject(), Some("1"));
    /// ```
    pub fn without_id(source: &str, event_type: &str) -> Self {
        let mut event = Self::new("", source, event_type);
        event.attributes.remove("id");
        event
    }

    /// Sets any attribute by name (builder style): `subject`, `time`,
    /// `dataschema`, or an extension such as `partitionkey` (which orders
    /// delivery on topics with `ordered = true`). Names are lower-case
    /// letters and digits; [`publish`](crate::events::publish) refuses others.
    ///
    /// ```
    /// let event = wisp_sdk::CloudEvent::new("1", "/s", "t").with_attribute("partitionkey", "customer-7");
    /// assert_eq!(event.attribute_value("partitionkey"), Some("customer-7"));
    /// ```
    pub fn with_attribute(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attributes.insert(name.to_owned(), value.into());
        self
    }

    /// Parses the event carried by `request`, in binary or structured mode.
    ///
    /// ```
    /// use wisp_sdk::{CloudEvent, Method, Request};
    ///
    /// let mut req = Request::new(Method::Post, "/")
    ///     .with_header("content-type", "application/cloudevents+json")
    ///     .with_body(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a":1}}"#);
    /// let event = CloudEvent::from_request(&mut req).unwrap();
    /// assert_eq!(event.data(), Some(&br#"{"a":1}"#[..]));
    /// ```
    pub fn from_request(request: &mut Request) -> Result<Self, EventError> {
        let headers = request.headers().clone();
        let body = request.body().map_err(EventError::Body)?;
        Self::from_http(&headers, body)
    }

    /// Parses an event from HTTP headers and body (what
    /// [`from_request`](Self::from_request) does after reading the body).
    ///
    /// ```
    /// use wisp_sdk::{CloudEvent, EventError, Headers};
    ///
    /// let headers: Headers = [("ce-specversion", "1.0"), ("ce-id", "1")].into_iter().collect();
    /// let err = CloudEvent::from_http(&headers, b"").unwrap_err();
    /// assert_eq!(err, EventError::Missing(vec!["ce-source".into(), "ce-type".into()]));
    /// ```
    pub fn from_http(headers: &Headers, body: &[u8]) -> Result<Self, EventError> {
        let media_type = headers
            .get("content-type")
            .map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        match media_type.as_deref() {
            Some(STRUCTURED) => Self::from_structured(body),
            Some(BATCH) => Err(EventError::Batch),
            _ => Self::from_binary(headers, body),
        }
    }

    fn from_binary(headers: &Headers, body: &[u8]) -> Result<Self, EventError> {
        let mut attributes = BTreeMap::new();
        for (name, value) in headers.iter() {
            let Some(attribute) = name.strip_prefix("ce-") else { continue };
            let value = std::str::from_utf8(value).map_err(|_| EventError::BadAttribute {
                name: attribute.to_owned(),
                reason: "not UTF-8".into(),
            })?;
            // The HTTP binding percent-encodes characters a header cannot carry.
            attributes.insert(attribute.to_owned(), url::percent_decode(value, false));
        }
        if let Some(content_type) = headers.get("content-type") {
            attributes.insert("datacontenttype".into(), content_type.to_owned());
        }
        let data = (!body.is_empty()).then(|| body.to_vec());
        Self::checked(attributes, data, |name| format!("ce-{name}"))
    }

    fn from_structured(body: &[u8]) -> Result<Self, EventError> {
        let object: Map<String, Value> = match serde_json::from_slice(body) {
            Ok(Value::Object(object)) => object,
            Ok(_) => return Err(EventError::InvalidJson("the event must be a JSON object".into())),
            Err(e) => return Err(EventError::InvalidJson(e.to_string())),
        };
        let mut attributes = BTreeMap::new();
        let (mut data, mut data_base64) = (None, None);
        for (name, value) in object {
            match (name.as_str(), value) {
                (_, Value::Null) => {}
                ("data", value) => data = Some(value),
                ("data_base64", Value::String(encoded)) => data_base64 = Some(encoded),
                (name, Value::String(s)) => {
                    attributes.insert(name.to_owned(), s);
                }
                // Extensions may be booleans or integers; the core attributes
                // must be strings.
                (name, value @ (Value::Bool(_) | Value::Number(_)))
                    if !REQUIRED.contains(&name) && !OPTIONAL.contains(&name) =>
                {
                    attributes.insert(name.to_owned(), value.to_string());
                }
                (name, _) => {
                    return Err(EventError::BadAttribute {
                        name: name.to_owned(),
                        reason: "expected a string".into(),
                    });
                }
            }
        }
        let data = match (data, data_base64) {
            (Some(_), Some(_)) => {
                return Err(EventError::InvalidJson("both data and data_base64 are set".into()));
            }
            (None, Some(encoded)) => Some(decode_base64(&encoded).ok_or_else(|| {
                EventError::BadAttribute { name: "data_base64".into(), reason: "not valid base64".into() }
            })?),
            (Some(Value::String(text)), None)
                if !is_json_media_type(attributes.get("datacontenttype")) =>
            {
                Some(text.into_bytes())
            }
            (Some(value), None) => Some(value.to_string().into_bytes()),
            (None, None) => None,
        };
        Self::checked(attributes, data, str::to_owned)
    }

    /// Enforces the required attributes; `label` names them as the sender
    /// wrote them (header or JSON key) in the error.
    fn checked(
        attributes: BTreeMap<String, String>,
        data: Option<Vec<u8>>,
        label: impl Fn(&str) -> String,
    ) -> Result<Self, EventError> {
        let missing: Vec<String> = REQUIRED
            .iter()
            .filter(|name| attributes.get(**name).is_none_or(|v| v.is_empty()))
            .map(|name| label(name))
            .collect();
        if !missing.is_empty() {
            return Err(EventError::Missing(missing));
        }
        match attributes.get("specversion").map(String::as_str) {
            Some("1.0") => Ok(CloudEvent { attributes, data }),
            other => Err(EventError::UnsupportedSpecVersion(other.unwrap_or_default().to_owned())),
        }
    }

    fn attribute(&self, name: &str) -> &str {
        self.attributes.get(name).map_or("", String::as_str)
    }

    /// `id`: unique per `source`; a redelivery carries the same id.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::CloudEvent::new("7", "/s", "t").id(), "7");
    /// ```
    pub fn id(&self) -> &str {
        self.attribute("id")
    }

    /// `source`: the context in which the event happened (a URI reference).
    ///
    /// ```
    /// assert_eq!(wisp_sdk::CloudEvent::new("7", "/s", "t").source(), "/s");
    /// ```
    pub fn source(&self) -> &str {
        self.attribute("source")
    }

    /// `specversion`: always `1.0` (other versions are rejected).
    ///
    /// ```
    /// assert_eq!(wisp_sdk::CloudEvent::new("7", "/s", "t").spec_version(), "1.0");
    /// ```
    pub fn spec_version(&self) -> &str {
        self.attribute("specversion")
    }

    /// `type`: what happened, e.g. `com.example.order.created`.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::CloudEvent::new("7", "/s", "t").event_type(), "t");
    /// ```
    pub fn event_type(&self) -> &str {
        self.attribute("type")
    }

    /// `datacontenttype`, e.g. `application/json`.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::CloudEvent::new("7", "/s", "t").data_content_type(), None);
    /// ```
    pub fn data_content_type(&self) -> Option<&str> {
        self.attributes.get("datacontenttype").map(String::as_str)
    }

    /// `dataschema`, a URI.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::CloudEvent::new("7", "/s", "t").data_schema(), None);
    /// ```
    pub fn data_schema(&self) -> Option<&str> {
        self.attributes.get("dataschema").map(String::as_str)
    }

    /// `subject`: the event's subject within the source.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::CloudEvent::new("7", "/s", "t").subject(), None);
    /// ```
    pub fn subject(&self) -> Option<&str> {
        self.attributes.get("subject").map(String::as_str)
    }

    /// `time`, as sent (an RFC 3339 timestamp).
    ///
    /// ```
    /// assert_eq!(wisp_sdk::CloudEvent::new("7", "/s", "t").time(), None);
    /// ```
    pub fn time(&self) -> Option<&str> {
        self.attributes.get("time").map(String::as_str)
    }

    /// Any attribute by name, including extensions (e.g. `traceparent`).
    ///
    /// ```
    /// let event = wisp_sdk::CloudEvent::new("7", "/s", "t");
    /// assert_eq!(event.attribute_value("source"), Some("/s"));
    /// assert_eq!(event.attribute_value("partitionkey"), None);
    /// ```
    pub fn attribute_value(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Which delivery of this event this is, `1` the first time: Wisp's
    /// `deliveryattempt` extension (`ce-deliveryattempt`). The `id` stays the
    /// same on every attempt. `None` when the sender did not set it (the event
    /// did not come through a Wisp topic) or it is not a number.
    ///
    /// ```
    /// let event = wisp_sdk::CloudEvent::new("1", "/s", "t");
    /// assert_eq!(event.delivery_attempt(), None);
    /// assert_eq!(event.with_attribute("deliveryattempt", "3").delivery_attempt(), Some(3));
    /// ```
    pub fn delivery_attempt(&self) -> Option<u32> {
        self.attribute_value("deliveryattempt")?.trim().parse().ok()
    }

    /// Every attribute, by name (data excluded), in name order.
    pub(crate) fn attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The event's data as bytes (JSON data is its JSON text).
    ///
    /// ```
    /// assert_eq!(wisp_sdk::CloudEvent::new("7", "/s", "t").data(), None);
    /// ```
    pub fn data(&self) -> Option<&[u8]> {
        self.data.as_deref()
    }

    /// The data as UTF-8 text, if present and valid.
    ///
    /// ```
    /// let e = wisp_sdk::CloudEvent::new("1", "/s", "t").with_data("text/plain", "hi");
    /// assert_eq!(e.data_text(), Some("hi"));
    /// ```
    pub fn data_text(&self) -> Option<&str> {
        self.data().and_then(|d| std::str::from_utf8(d).ok())
    }

    /// The data parsed as JSON into `T`.
    ///
    /// ```
    /// let e = wisp_sdk::CloudEvent::new("1", "/s", "t").with_data("application/json", "[1,2]");
    /// assert_eq!(e.data_json::<Vec<u8>>().unwrap(), [1, 2]);
    /// ```
    pub fn data_json<T: DeserializeOwned>(&self) -> Result<T, EventError> {
        let data = self.data().ok_or_else(|| EventError::BadData("the event has no data".into()))?;
        serde_json::from_slice(data).map_err(|e| EventError::BadData(e.to_string()))
    }
}

fn is_json_media_type(content_type: Option<&String>) -> bool {
    let Some(ct) = content_type else { return true }; // JSON is the default
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media == "application/json" || media == "text/json" || media.ends_with("+json")
}

/// Standard base64 (RFC 4648 §4), padding optional.
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    let digits = input.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in digits {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (digits.len() % 4 != 1).then_some(out)
}

/// Why a request is not a CloudEvent this SDK accepts. Each case is the
/// sender's mistake, so redelivering the same request would not help:
/// [`status`](Self::status) is `400` (`415` for batch mode).
///
/// ```
/// use wisp_sdk::{CloudEvent, EventError, Headers};
///
/// let headers: Headers = [("content-type", "application/cloudevents+json")].into_iter().collect();
/// let err = CloudEvent::from_http(&headers, br#"{"specversion":"1.0"}"#).unwrap_err();
/// assert_eq!(err.to_string(), "missing required CloudEvent attribute(s): id, source, type");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// Required attributes are absent; named as sent (`ce-id` in binary mode,
    /// `id` in structured mode).
    Missing(Vec<String>),
    /// `specversion` is not `1.0`.
    UnsupportedSpecVersion(String),
    /// A structured-mode body is not a JSON object.
    InvalidJson(String),
    /// An attribute has the wrong form.
    BadAttribute {
        /// The attribute's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The event's data could not be read as asked.
    BadData(String),
    /// Batch mode (`application/cloudevents-batch+json`) is not supported.
    Batch,
    /// The request body could not be read.
    Body(BodyError),
}

impl EventError {
    /// The HTTP status to answer with.
    ///
    /// ```
    /// assert_eq!(wisp_sdk::EventError::Batch.status(), 415);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            EventError::Batch => 415,
            _ => 400,
        }
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::Missing(names) if names.iter().any(|n| n.starts_with("ce-")) => {
                write!(f, "missing required CloudEvent header(s): {}", names.join(", "))
            }
            EventError::Missing(names) => {
                write!(f, "missing required CloudEvent attribute(s): {}", names.join(", "))
            }
            EventError::UnsupportedSpecVersion(v) => {
                write!(f, "unsupported CloudEvents specversion {v:?} (expected \"1.0\")")
            }
            EventError::InvalidJson(reason) => write!(f, "invalid structured CloudEvent: {reason}"),
            EventError::BadAttribute { name, reason } => {
                write!(f, "invalid CloudEvent attribute {name:?}: {reason}")
            }
            EventError::BadData(reason) => write!(f, "unusable CloudEvent data: {reason}"),
            EventError::Batch => f.write_str("batched CloudEvents are not supported; send one event per request"),
            EventError::Body(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for EventError {}

/// What an [`event_handler`](crate::event_handler) may return: `()` (always
/// succeeds) or `Result<(), E>` with `E: Display`, whose error text goes into
/// the `500` answer and the function's log.
///
/// ```
/// use wisp_sdk::EventOutcome;
/// assert_eq!(().into_outcome(), Ok(()));
/// assert_eq!(Err::<(), _>("nope").into_outcome(), Err("nope".to_string()));
/// ```
pub trait EventOutcome {
    /// `Ok(())` to acknowledge, `Err(reason)` to ask for redelivery.
    fn into_outcome(self) -> Result<(), String>;
}

impl EventOutcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display> EventOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// How `#[event_handler]` runs: handles one request: `204` on success, `500` on
/// failure (so the platform retries), `400`/`415` if there is no valid event.
pub fn respond_event<O: EventOutcome>(mut request: Request, handler: impl FnOnce(CloudEvent) -> O) -> Response {
    let event = match CloudEvent::from_request(&mut request) {
        Ok(event) => event,
        Err(e) => return Response::text(format!("{e}\n")).with_status(e.status()),
    };
    let id = event.id().to_owned();
    match handler(event).into_outcome() {
        Ok(()) => Response::new(204),
        Err(reason) => {
            eprintln!("wisp-sdk: event {id} failed: {reason}");
            Response::text(format!("event {id} failed: {reason}\n")).with_status(500)
        }
    }
}

#[cfg(test)]
#[path = "cloudevents_tests.rs"]
mod tests;
