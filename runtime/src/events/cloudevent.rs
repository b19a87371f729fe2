//! CloudEvents 1.0 over HTTP: the codec for what producers publish and what
//! Wisp delivers. Publishing accepts all three content modes of the HTTP
//! binding (binary, structured JSON, JSON batch); delivery uses binary mode,
//! where the body is the data untouched and the attributes travel as
//! `ce-*` headers, so a function reads its event as a plain HTTP request.
//!
//! Every event is checked against the spec before it is stored, and gets
//! the two attributes Wisp assigns when the producer left them out: `id`
//! (32 lowercase hex characters, 128 random bits from the OS) and `time`
//! (the publish time, RFC 3339 UTC with microseconds). A request carrying
//! a W3C `traceparent` header gives it to the events it publishes as their
//! `traceparent` attribute (the CloudEvents distributed-tracing extension)
//! unless they have one, so their deliveries continue the publisher's trace.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};
use serde_json::{Map, Value};

use crate::telemetry::traces;

/// The only version Wisp speaks; 0.3 events are refused rather than guessed at.
const SPEC_VERSION: &str = "1.0";
/// Structured mode: the body is one event in the JSON format.
const STRUCTURED: &str = "application/cloudevents+json";
/// Batched mode: the body is a JSON array of events in the JSON format.
const BATCH: &str = "application/cloudevents-batch+json";
/// The attribute that maps to `Content-Type` instead of a `ce-` header.
const DATA_CONTENT_TYPE: &str = "datacontenttype";
/// The spec's attributes, which are strings in JSON; only extensions may be
/// integers or booleans there.
const CORE_ATTRIBUTES: [&str; 8] = [
    "id",
    "source",
    "specversion",
    "type",
    DATA_CONTENT_TYPE,
    "dataschema",
    "subject",
    "time",
];
/// The spec's limit on attribute names (a SHOULD there; a MUST here, so
/// every name Wisp stores also fits other brokers and SDKs).
const MAX_NAME_LEN: usize = 20;

/// What the HTTP binding percent-encodes in `ce-` header values: space,
/// `"`, `%` and everything outside printable ASCII (the encoder always
/// escapes non-ASCII bytes; `CONTROLS` adds 0x00-0x1F and 0x7F).
const HEADER_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// A CloudEvents 1.0 event as Wisp stores and delivers it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CloudEvent {
    /// Every context attribute by name — id, source, specversion, type, the
    /// optional datacontenttype, dataschema, subject, time, and extensions —
    /// as strings (CloudEvents' canonical string forms).
    pub attributes: BTreeMap<String, String>,
    /// The data, as bytes (empty when the event has none). Stored as base64
    /// so arbitrary bytes survive a JSON record at 4/3 of their size.
    #[serde(with = "base64_bytes")]
    pub data: Bytes,
}

impl CloudEvent {
    /// The event's id; "" if absent, which [`from_http`] and [`new_event`]
    /// never let happen.
    pub fn id(&self) -> &str {
        self.attribute("id").unwrap_or("")
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }

    /// Sets an attribute as is: the name and value are the caller's to get
    /// right ([`from_http`] is where input is checked).
    pub fn set_attribute(&mut self, name: &str, value: impl Into<String>) {
        self.attributes.insert(name.to_owned(), value.into());
    }

    /// Bytes counted against `max_event_size`: attribute names + values +
    /// data. Independent of the encoding, so a limit means the same in
    /// every mode.
    pub fn size(&self) -> usize {
        let attributes: usize = self.attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
        attributes + self.data.len()
    }

    /// Binary-mode headers for delivering the event: `ce-<attr>` for every
    /// attribute except `datacontenttype`, which becomes `Content-Type`;
    /// values percent-encoded per the HTTP binding (space, `"`, `%` and
    /// bytes outside printable ASCII). An attribute whose name cannot be a
    /// header name (possible only through [`CloudEvent::set_attribute`],
    /// since [`from_http`] refuses such names) is left out, and a content
    /// type that cannot be a header value is sent percent-encoded.
    pub fn binary_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.attributes.len());
        for (name, value) in &self.attributes {
            if name == DATA_CONTENT_TYPE {
                let value = HeaderValue::from_str(value).unwrap_or_else(|_| encode_header(value));
                headers.insert(CONTENT_TYPE, value);
            } else if let Ok(header) = HeaderName::from_bytes(format!("ce-{name}").as_bytes()) {
                headers.insert(header, encode_header(value));
            }
        }
        headers
    }

    /// The structured JSON form (for listings): attributes as members; data
    /// as a JSON value when `datacontenttype` is JSON and the data parses,
    /// as a string when another content type is declared and the data is
    /// UTF-8, else as `data_base64`. Absent when the data is empty. Each
    /// choice reads back through [`from_http`] as the same bytes, which is
    /// why undeclared data is never shown as a string: structured mode
    /// would take it for JSON.
    pub fn to_json(&self) -> Value {
        let mut members: Map<String, Value> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if !self.data.is_empty() {
            let (name, value) = self.data_member();
            members.insert(name.to_owned(), value);
        }
        Value::Object(members)
    }

    fn data_member(&self) -> (&'static str, Value) {
        match self.attribute(DATA_CONTENT_TYPE) {
            Some(content_type) if is_json(content_type) => {
                if let Ok(value) = serde_json::from_slice(&self.data) {
                    return ("data", value);
                }
            }
            Some(_) => {
                if let Ok(text) = std::str::from_utf8(&self.data) {
                    return ("data", Value::String(text.to_owned()));
                }
            }
            None => {}
        }
        ("data_base64", Value::String(BASE64.encode(&self.data)))
    }
}

/// Why a publish was refused: names the attribute when one is at fault.
#[derive(Debug)]
pub struct EventError {
    pub attribute: Option<String>,
    pub message: String,
}

impl EventError {
    fn for_attribute(name: &str, message: impl Into<String>) -> Self {
        EventError {
            attribute: Some(name.to_owned()),
            message: message.into(),
        }
    }

    fn for_event(message: impl Into<String>) -> Self {
        EventError {
            attribute: None,
            message: message.into(),
        }
    }

    /// Says which element of a batch was refused, since the whole batch is.
    fn in_batch(mut self, index: usize) -> Self {
        self.message = format!("{} (batch element {index})", self.message);
        self
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.attribute {
            Some(name) => write!(f, "attribute `{name}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for EventError {}

/// Parses the events of one publish request (its headers and complete body):
/// - `Content-Type: application/cloudevents+json` → one structured event;
/// - `application/cloudevents-batch+json` → a JSON array of structured
///   events (an empty array is refused: a publish that publishes nothing is
///   a producer's mistake);
/// - any other `application/cloudevents…` type → refused (only the JSON
///   format is supported);
/// - otherwise binary mode: attributes from `ce-*` headers (values
///   percent-decoded), datacontenttype from `Content-Type` (if present),
///   data = body.
///
/// Every event is checked against the spec: `specversion` present and
/// "1.0"; `source` and `type` present and non-empty; `id`, `subject` and
/// `dataschema` non-empty if present; `time` RFC 3339; `datacontenttype` a
/// printable-ASCII media type; names 1 to 20 lowercase letters and digits,
/// not `data` or `data_base64`; values free of control characters. It then
/// gets `id`, `time` and the request's `traceparent` if it lacks them, and must fit `max_event_size` as
/// [`CloudEvent::size`] counts it, so nothing stored is ever over the
/// limit. A batch is accepted or refused whole.
pub fn from_http(
    headers: &HeaderMap,
    body: Bytes,
    max_event_size: usize,
) -> Result<Vec<CloudEvent>, EventError> {
    let traceparent = traces::carried(headers);
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(media_type);
    match media_type.as_deref() {
        Some(STRUCTURED) => {
            let event = from_structured(parse_json(&body)?)?;
            Ok(vec![complete(event, traceparent, max_event_size)?])
        }
        Some(BATCH) => {
            let Value::Array(elements) = parse_json(&body)? else {
                return Err(EventError::for_event(
                    "a batch (application/cloudevents-batch+json) must be a JSON array of events",
                ));
            };
            if elements.is_empty() {
                return Err(EventError::for_event(
                    "the batch is empty: send at least one event",
                ));
            }
            elements
                .into_iter()
                .enumerate()
                .map(|(i, element)| {
                    from_structured(element)
                        .and_then(|event| complete(event, traceparent, max_event_size))
                        .map_err(|e| e.in_batch(i))
                })
                .collect()
        }
        Some(other) if other.starts_with("application/cloudevents") => {
            Err(EventError::for_event(format!(
                "unsupported event format `{other}`: send {STRUCTURED}, {BATCH}, or binary mode (ce-* headers)"
            )))
        }
        _ => Ok(vec![complete(
            from_binary(headers, body)?,
            traceparent,
            max_event_size,
        )?]),
    }
}

/// A new event (used for Wisp's own events such as schedule firings): id
/// and time assigned.
pub fn new_event(
    source: &str,
    event_type: &str,
    content_type: Option<&str>,
    data: Bytes,
) -> CloudEvent {
    let mut event = CloudEvent {
        attributes: BTreeMap::new(),
        data,
    };
    event.set_attribute("specversion", SPEC_VERSION);
    event.set_attribute("id", new_id());
    event.set_attribute("source", source);
    event.set_attribute("type", event_type);
    event.set_attribute("time", now());
    if let Some(content_type) = content_type {
        event.set_attribute(DATA_CONTENT_TYPE, content_type);
    }
    event
}

/// Checks an event, fills in what Wisp assigns, then checks its size
/// (after filling, so the limit holds for what is stored).
fn complete(
    mut event: CloudEvent,
    traceparent: Option<&str>,
    max_event_size: usize,
) -> Result<CloudEvent, EventError> {
    validate(&event)?;
    if let Some(traceparent) = traceparent
        && !event.attributes.contains_key(traces::TRACEPARENT)
    {
        event.set_attribute(traces::TRACEPARENT, traceparent);
    }
    if !event.attributes.contains_key("id") {
        event.set_attribute("id", new_id());
    }
    if !event.attributes.contains_key("time") {
        event.set_attribute("time", now());
    }
    let size = event.size();
    if size > max_event_size {
        return Err(EventError::for_event(format!(
            "the event is {size} bytes (attribute names and values plus data), over the limit of {max_event_size} bytes"
        )));
    }
    Ok(event)
}

/// The spec's rules, whatever the mode: `specversion` is "1.0"; `source`
/// and `type` are present; names are valid and not reserved; values are
/// well-formed for their attribute.
fn validate(event: &CloudEvent) -> Result<(), EventError> {
    for (name, value) in &event.attributes {
        check_name(name)?;
        check_value(name, value)?;
    }
    match event.attribute("specversion") {
        Some(SPEC_VERSION) => {}
        Some(other) => {
            return Err(EventError::for_attribute(
                "specversion",
                format!("must be \"{SPEC_VERSION}\", got {other:?}"),
            ));
        }
        None => {
            return Err(EventError::for_attribute(
                "specversion",
                format!("is required and must be \"{SPEC_VERSION}\""),
            ));
        }
    }
    for required in ["source", "type"] {
        if !event.attributes.contains_key(required) {
            return Err(EventError::for_attribute(required, "is required"));
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), EventError> {
    if name == "data" || name == "data_base64" {
        return Err(EventError::for_attribute(
            name,
            "is reserved for the event's data and cannot be an attribute",
        ));
    }
    let valid = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(EventError::for_attribute(
            name,
            format!("names are 1 to {MAX_NAME_LEN} lowercase letters a-z and digits 0-9"),
        ))
    }
}

fn check_value(name: &str, value: &str) -> Result<(), EventError> {
    // The spec's String type excludes control characters and noncharacters.
    if let Some(c) = value
        .chars()
        .find(|&c| c.is_control() || is_noncharacter(c))
    {
        return Err(EventError::for_attribute(
            name,
            format!("contains the disallowed character U+{:04X}", u32::from(c)),
        ));
    }
    match name {
        "id" | "source" | "type" | "subject" | "dataschema" if value.is_empty() => {
            Err(EventError::for_attribute(name, "must not be empty"))
        }
        // It travels as the Content-Type header on delivery, so it must be
        // a valid header value.
        DATA_CONTENT_TYPE
            if value.is_empty() || !value.bytes().all(|b| (b' '..=b'~').contains(&b)) =>
        {
            Err(EventError::for_attribute(
                name,
                "must be a media type in printable ASCII, like `application/json`",
            ))
        }
        "time" => DateTime::parse_from_rfc3339(value).map(drop).map_err(|e| {
            EventError::for_attribute(
                name,
                format!(
                    "must be an RFC 3339 timestamp like 2026-01-02T03:04:05Z, got {value:?} ({e})"
                ),
            )
        }),
        _ => Ok(()),
    }
}

fn is_noncharacter(c: char) -> bool {
    let c = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&c) || c & 0xFFFE == 0xFFFE
}

/// Binary mode: `ce-*` headers are the attributes (the `http` crate has
/// already lowercased their names), `Content-Type` is `datacontenttype`,
/// the body is the data.
fn from_binary(headers: &HeaderMap, body: Bytes) -> Result<CloudEvent, EventError> {
    let mut attributes = BTreeMap::new();
    for header in headers.keys() {
        let Some(name) = header.as_str().strip_prefix("ce-") else {
            continue;
        };
        let mut values = headers.get_all(header).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(EventError::for_attribute(name, "was sent more than once"));
        };
        if name == DATA_CONTENT_TYPE {
            return Err(EventError::for_attribute(
                name,
                "in binary mode the data's content type is the Content-Type header, not ce-datacontenttype",
            ));
        }
        let decoded = percent_decode(value.as_bytes()).collect::<Vec<u8>>();
        let value = String::from_utf8(decoded)
            .map_err(|_| EventError::for_attribute(name, "is not UTF-8 once percent-decoded"))?;
        attributes.insert(name.to_owned(), value);
    }
    if !attributes.contains_key("specversion") {
        return Err(EventError::for_attribute(
            "specversion",
            format!(
                "missing: send the event's attributes as ce-* headers (ce-specversion: {SPEC_VERSION}, \
                 ce-source, ce-type), or the whole event as JSON with Content-Type: {STRUCTURED}"
            ),
        ));
    }
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
        let content_type = content_type.to_str().map_err(|_| {
            EventError::for_attribute(
                DATA_CONTENT_TYPE,
                "the Content-Type header must be printable ASCII",
            )
        })?;
        attributes.insert(DATA_CONTENT_TYPE.to_owned(), content_type.to_owned());
    }
    Ok(CloudEvent {
        attributes,
        data: body,
    })
}

/// One event in the JSON format: members are attributes, except `data`
/// (any JSON value) and `data_base64` (base64 bytes), at most one of them.
/// A `null` member counts as absent, as the format says, except `data`,
/// where `null` is an explicit JSON payload.
fn from_structured(value: Value) -> Result<CloudEvent, EventError> {
    let Value::Object(members) = value else {
        return Err(EventError::for_event(
            "a structured event must be a JSON object of attributes and data",
        ));
    };
    let mut attributes = BTreeMap::new();
    let mut data = None;
    let mut data_base64 = None;
    for (name, value) in members {
        match name.as_str() {
            "data" => data = Some(value),
            "data_base64" => data_base64 = Some(value).filter(|v| !v.is_null()),
            _ => {
                if let Some(value) = attribute_string(&name, value)? {
                    attributes.insert(name, value);
                }
            }
        }
    }
    let data = match (data, data_base64) {
        (Some(_), Some(_)) => {
            return Err(EventError::for_event(
                "an event has `data` or `data_base64`, not both",
            ));
        }
        (None, Some(Value::String(text))) => BASE64.decode(text).map(Bytes::from).map_err(|e| {
            EventError::for_event(format!("`data_base64` is not valid base64: {e}"))
        })?,
        (None, Some(_)) => {
            return Err(EventError::for_event(
                "`data_base64` must be a base64 string",
            ));
        }
        (Some(value), None) => structured_data(&mut attributes, value),
        (None, None) => Bytes::new(),
    };
    Ok(CloudEvent { attributes, data })
}

/// A structured attribute's string form: strings as they are, and for
/// extensions the JSON format's other types, integers and booleans, as
/// their canonical strings. `None` for `null` (absent).
fn attribute_string(name: &str, value: Value) -> Result<Option<String>, EventError> {
    let core = CORE_ATTRIBUTES.contains(&name);
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        Value::Bool(b) if !core => Ok(Some(b.to_string())),
        Value::Number(n) if !core && (n.is_i64() || n.is_u64()) => Ok(Some(n.to_string())),
        _ if core => Err(EventError::for_attribute(name, "must be a string")),
        _ => Err(EventError::for_attribute(
            name,
            "must be a string, an integer or a boolean",
        )),
    }
}

/// The bytes of a structured `data` member. Without a content type the
/// data is JSON (the format's default), and the event says so explicitly,
/// so a binary-mode delivery carries `Content-Type: application/json`.
/// JSON data is stored as its serialized JSON; a string under any other
/// content type is stored as its UTF-8 text (other values as their JSON).
fn structured_data(attributes: &mut BTreeMap<String, String>, value: Value) -> Bytes {
    let content_type = attributes
        .entry(DATA_CONTENT_TYPE.to_owned())
        .or_insert_with(|| "application/json".to_owned());
    match value {
        Value::String(text) if !is_json(content_type) => Bytes::from(text),
        value => Bytes::from(value.to_string()),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, EventError> {
    serde_json::from_slice(body)
        .map_err(|e| EventError::for_event(format!("the body is not valid JSON: {e}")))
}

/// A content type's media type without parameters, lowercased:
/// `Application/JSON; charset=utf-8` → `application/json`.
fn media_type(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

/// JSON as the JSON format defines it: a media type `*/json` or `*/*+json`.
fn is_json(content_type: &str) -> bool {
    let media_type = media_type(content_type);
    media_type
        .split_once('/')
        .is_some_and(|(_, subtype)| subtype == "json" || subtype.ends_with("+json"))
}

fn encode_header(value: &str) -> HeaderValue {
    let encoded = utf8_percent_encode(value, HEADER_ESCAPES).to_string();
    HeaderValue::from_str(&encoded).expect("percent-encoded values are printable ASCII")
}

/// 128 random bits: unique without coordination, across restarts and hosts.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS random source fails only on a broken system; std's HashMap
    // panics in that case too.
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    hex::encode(bytes)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Serde for [`CloudEvent::data`]: base64 text in JSON records.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(data: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64
            .decode(text)
            .map(Bytes::from)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests;
