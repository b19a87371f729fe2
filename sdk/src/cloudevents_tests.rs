//! Parsing tests for both HTTP modes, and the status each outcome maps to.

use super::*;
use crate::Method;

fn binary(headers: &[(&str, &str)], body: &str) -> Result<CloudEvent, EventError> {
    let headers: Headers = headers.iter().copied().collect();
    CloudEvent::from_http(&headers, body.as_bytes())
}

fn structured(json: &str) -> Result<CloudEvent, EventError> {
    let headers: Headers = [("content-type", "application/cloudevents+json; charset=utf-8")]
        .into_iter()
        .collect();
    CloudEvent::from_http(&headers, json.as_bytes())
}

const CE: [(&str, &str); 4] =
    [("ce-specversion", "1.0"), ("ce-id", "a1"), ("ce-source", "/src"), ("ce-type", "com.x.t")];

#[test]
fn binary_mode_reads_headers_and_body() {
    let mut headers = CE.to_vec();
    headers.extend([
        ("Content-Type", "application/json"),
        ("ce-subject", "sub%20ject"),
        ("CE-TraceParent", "00-abc"),
        ("x-other", "ignored"),
    ]);
    let event = binary(&headers, r#"{"k":true}"#).unwrap();
    assert_eq!((event.id(), event.source(), event.event_type()), ("a1", "/src", "com.x.t"));
    assert_eq!(event.data_content_type(), Some("application/json"));
    assert_eq!(event.subject(), Some("sub ject"));
    assert_eq!(event.attribute_value("traceparent"), Some("00-abc"));
    assert_eq!(event.attribute_value("x-other"), None);
    assert_eq!(event.data_json::<serde_json::Value>().unwrap()["k"], true);
}

#[test]
fn binary_mode_names_missing_headers() {
    let err = binary(&[("ce-type", "t")], "").unwrap_err();
    assert_eq!(err.status(), 400);
    assert_eq!(
        err.to_string(),
        "missing required CloudEvent header(s): ce-id, ce-source, ce-specversion"
    );
}

#[test]
fn empty_body_means_no_data() {
    assert_eq!(binary(&CE, "").unwrap().data(), None);
}

#[test]
fn structured_mode_with_json_data_and_extensions() {
    let event = structured(
        r#"{"specversion":"1.0","id":"9","source":"/s","type":"t",
            "time":"2024-01-01T00:00:00Z","retries":3,"sampled":true,"data":{"poison":true}}"#,
    )
    .unwrap();
    assert_eq!(event.time(), Some("2024-01-01T00:00:00Z"));
    assert_eq!(event.attribute_value("retries"), Some("3"));
    assert_eq!(event.attribute_value("sampled"), Some("true"));
    assert_eq!(event.data_text(), Some(r#"{"poison":true}"#));
}

#[test]
fn structured_string_data_is_raw_unless_json() {
    let text = structured(
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi"}"#,
    )
    .unwrap();
    assert_eq!(text.data_text(), Some("hi"));
    let json = structured(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"hi"}"#).unwrap();
    assert_eq!(json.data_text(), Some(r#""hi""#));
}

#[test]
fn structured_base64_data() {
    let event = structured(
        r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAEC/w=="}"#,
    )
    .unwrap();
    assert_eq!(event.data(), Some(&[0, 1, 2, 255][..]));
    let bad = structured(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"!!"}"#);
    assert!(matches!(bad, Err(EventError::BadAttribute { name, .. }) if name == "data_base64"));
}

#[test]
fn structured_errors() {
    assert!(matches!(structured("{nope"), Err(EventError::InvalidJson(_))));
    assert!(matches!(structured("[1]"), Err(EventError::InvalidJson(_))));
    assert_eq!(
        structured(r#"{"specversion":"1.0","id":1,"source":"/s","type":"t"}"#),
        Err(EventError::BadAttribute { name: "id".into(), reason: "expected a string".into() })
    );
    assert_eq!(
        structured(r#"{"specversion":"0.3","id":"1","source":"/s","type":"t"}"#),
        Err(EventError::UnsupportedSpecVersion("0.3".into()))
    );
    let missing = structured(r#"{"id":"1","source":""}"#).unwrap_err();
    assert_eq!(missing.to_string(), "missing required CloudEvent attribute(s): source, specversion, type");
}

#[test]
fn batch_mode_is_refused() {
    let headers: Headers = [("content-type", "application/cloudevents-batch+json")].into_iter().collect();
    assert_eq!(CloudEvent::from_http(&headers, b"[]").unwrap_err().status(), 415);
}

#[test]
fn base64_decoder() {
    assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
    assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(decode_base64("").unwrap(), b"");
    assert!(decode_base64("a").is_none());
}

fn request(headers: &[(&str, &str)], body: &str) -> Request {
    headers
        .iter()
        .fold(Request::new(Method::Post, "/events"), |r, (k, v)| r.with_header(k, *v))
        .with_body(body)
}

#[test]
fn dispatch_maps_outcomes_to_statuses() {
    let ok = respond_event(request(&CE, ""), |_| ());
    assert_eq!(ok.status(), 204);
    let failed = respond_event(request(&CE, ""), |_| Err::<(), _>("poison"));
    assert_eq!(failed.status(), 500);
    assert_eq!(failed.into_body_bytes().unwrap(), b"event a1 failed: poison\n");
    let mut called = false;
    let malformed = respond_event(request(&CE[1..], ""), |_| called = true);
    assert_eq!(malformed.status(), 400);
    assert!(!called);
}
