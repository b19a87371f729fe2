use super::*;
use serde_json::json;

const MAX: usize = 64 * 1024;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    map
}

fn binary(pairs: &[(&str, &str)], body: &'static [u8]) -> Result<Vec<CloudEvent>, EventError> {
    from_http(&headers(pairs), Bytes::from_static(body), MAX)
}

fn structured(event: Value) -> Result<CloudEvent, EventError> {
    let body = Bytes::from(event.to_string());
    let mut events = from_http(&headers(&[("content-type", STRUCTURED)]), body, MAX)?;
    assert_eq!(events.len(), 1);
    Ok(events.remove(0))
}

fn batch(body: Value) -> Result<Vec<CloudEvent>, EventError> {
    from_http(
        &headers(&[("content-type", BATCH)]),
        Bytes::from(body.to_string()),
        MAX,
    )
}

/// The smallest valid binary-mode request, plus `extra` headers.
fn minimal_binary(extra: &[(&str, &str)]) -> Result<Vec<CloudEvent>, EventError> {
    let mut pairs = vec![
        ("ce-specversion", "1.0"),
        ("ce-source", "/orders"),
        ("ce-type", "order.created"),
    ];
    pairs.extend_from_slice(extra);
    binary(&pairs, b"")
}

fn minimal_json() -> Value {
    json!({"specversion": "1.0", "source": "/orders", "type": "order.created"})
}

/// `minimal_json` with `member` set to `value`.
fn json_with(member: &str, value: Value) -> Value {
    let mut event = minimal_json();
    event[member] = value;
    event
}

#[track_caller]
fn assert_refused(
    result: Result<impl fmt::Debug, EventError>,
    attribute: Option<&str>,
    says: &str,
) {
    let error = result.expect_err("should be refused");
    assert_eq!(error.attribute.as_deref(), attribute, "{error}");
    assert!(
        error.to_string().contains(says),
        "`{error}` should say `{says}`"
    );
}

fn event(attributes: &[(&str, &str)], data: &'static [u8]) -> CloudEvent {
    CloudEvent {
        attributes: attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        data: Bytes::from_static(data),
    }
}

fn full_event() -> CloudEvent {
    event(
        &[
            ("specversion", "1.0"),
            ("id", "order-17"),
            ("source", "/orders"),
            ("type", "order.created"),
            ("time", "2026-11-28T10:00:00Z"),
            ("subject", "17"),
            ("dataschema", "https://example.com/order.json"),
            ("datacontenttype", "application/json"),
            ("tenant", "acme"),
        ],
        br#"{"total":12}"#,
    )
}

#[test]
fn binary_mode_parses_headers_and_body() {
    let events = binary(
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", "a1"),
            ("ce-source", "/orders"),
            ("ce-type", "order.created"),
            ("CE-Subject", "17"),
            ("ce-tenant", "acme"),
            ("content-type", "text/plain; charset=utf-8"),
            ("accept", "*/*"),
        ],
        b"hello",
    )
    .expect("valid");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.id(), "a1");
    assert_eq!(e.attribute("source"), Some("/orders"));
    assert_eq!(e.attribute("type"), Some("order.created"));
    assert_eq!(e.attribute("subject"), Some("17"));
    assert_eq!(e.attribute("tenant"), Some("acme"));
    assert_eq!(
        e.attribute("datacontenttype"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(e.attribute("accept"), None);
    assert_eq!(&e.data[..], b"hello");
}

#[test]
fn binary_mode_without_content_type_has_no_datacontenttype() {
    let e = &minimal_binary(&[]).expect("valid")[0];
    assert_eq!(e.attribute("datacontenttype"), None);
    assert!(e.data.is_empty());
}

#[test]
fn structured_mode_parses_attributes_and_json_data() {
    let mut input = json_with("data", json!({"total": 12, "items": ["a"]}));
    input["id"] = json!("a1");
    input["subject"] = Value::Null;
    input["priority"] = json!(5);
    input["urgent"] = json!(true);
    let e = structured(input).expect("valid");
    assert_eq!(e.id(), "a1");
    assert_eq!(e.attribute("priority"), Some("5"));
    assert_eq!(e.attribute("urgent"), Some("true"));
    assert_eq!(e.attribute("subject"), None, "null is absent");
    // No datacontenttype: JSON by the format's default, said explicitly.
    assert_eq!(e.attribute("datacontenttype"), Some("application/json"));
    let data: Value = serde_json::from_slice(&e.data).expect("JSON data");
    assert_eq!(data, json!({"total": 12, "items": ["a"]}));
}

#[test]
fn structured_content_type_is_matched_without_case_or_parameters() {
    let body = Bytes::from(minimal_json().to_string());
    let h = headers(&[(
        "content-type",
        "Application/CloudEvents+JSON; charset=utf-8",
    )]);
    let events = from_http(&h, body, MAX).expect("valid");
    assert_eq!(events[0].attribute("type"), Some("order.created"));
}

#[test]
fn structured_string_data_is_text_unless_json() {
    let mut text = json_with("data", json!("<a/>"));
    text["datacontenttype"] = json!("application/xml");
    assert_eq!(&structured(text).expect("valid").data[..], b"<a/>");

    let json_string = structured(json_with("data", json!("just a string"))).expect("valid");
    assert_eq!(&json_string.data[..], br#""just a string""#);

    let mut cloud_json = json_with("data", json!("s"));
    cloud_json["datacontenttype"] = json!("application/vnd.wisp+json");
    assert_eq!(&structured(cloud_json).expect("valid").data[..], br#""s""#);
}

#[test]
fn structured_null_data_is_an_explicit_json_null() {
    let e = structured(json_with("data", Value::Null)).expect("valid");
    assert_eq!(&e.data[..], b"null");
    assert_eq!(e.to_json()["data"], Value::Null);
}

#[test]
fn structured_data_base64_is_decoded() {
    let mut input = json_with("data_base64", json!(BASE64.encode([0u8, 159, 255])));
    input["datacontenttype"] = json!("application/octet-stream");
    let e = structured(input).expect("valid");
    assert_eq!(&e.data[..], &[0u8, 159, 255]);
    assert_eq!(e.attribute("data_base64"), None);

    let e = structured(json_with("data_base64", Value::Null)).expect("valid");
    assert!(e.data.is_empty());
    assert_eq!(e.attribute("datacontenttype"), None);
}

#[test]
fn structured_data_members_are_checked() {
    let mut both = json_with("data", json!(1));
    both["data_base64"] = json!("AA==");
    assert_refused(structured(both), None, "not both");
    assert_refused(
        structured(json_with("data_base64", json!("not base64!"))),
        None,
        "not valid base64",
    );
    assert_refused(
        structured(json_with("data_base64", json!(7))),
        None,
        "base64 string",
    );
}

#[test]
fn structured_body_must_be_a_json_object() {
    let h = headers(&[("content-type", STRUCTURED)]);
    assert_refused(
        from_http(&h, Bytes::from_static(b"{nope"), MAX),
        None,
        "not valid JSON",
    );
    assert_refused(
        from_http(&h, Bytes::from_static(b"[]"), MAX),
        None,
        "JSON object",
    );
}

#[test]
fn structured_attribute_values_must_be_strings_or_extension_scalars() {
    assert_refused(
        structured(json_with("id", json!(42))),
        Some("id"),
        "must be a string",
    );
    assert_refused(
        structured(json_with("time", json!(true))),
        Some("time"),
        "must be a string",
    );
    assert_refused(
        structured(json_with("tenant", json!({"a": 1}))),
        Some("tenant"),
        "string, an integer or a boolean",
    );
    assert_refused(
        structured(json_with("ratio", json!(1.5))),
        Some("ratio"),
        "string, an integer or a boolean",
    );
}

#[test]
fn batch_of_three() {
    let events = batch(json!([
        json_with("id", json!("1")),
        json_with("data", json!({"n": 2})),
        json_with("data_base64", json!("AQI=")),
    ]))
    .expect("valid");
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].id(), "1");
    assert_eq!(&events[1].data[..], br#"{"n":2}"#);
    assert_eq!(&events[2].data[..], &[1u8, 2]);
    assert_ne!(events[1].id(), events[2].id());
}

#[test]
fn batch_is_refused_whole_naming_the_element() {
    assert_refused(batch(json!([])), None, "empty");
    assert_refused(batch(minimal_json()), None, "JSON array");
    let bad = json!([minimal_json(), json_with("specversion", json!("0.3"))]);
    assert_refused(batch(bad), Some("specversion"), "(batch element 1)");
    assert_refused(batch(json!([minimal_json(), 3])), None, "(batch element 1)");
}

#[test]
fn other_event_formats_are_refused() {
    let h = headers(&[("content-type", "application/cloudevents+avro")]);
    assert_refused(
        from_http(&h, Bytes::new(), MAX),
        None,
        "unsupported event format",
    );
}

#[test]
fn binary_headers_round_trip_through_from_http() {
    let original = full_event();
    let h = original.binary_headers();
    assert_eq!(
        h.get(CONTENT_TYPE).map(HeaderValue::as_bytes),
        Some(&b"application/json"[..])
    );
    assert!(h.get("ce-datacontenttype").is_none());
    assert_eq!(
        h.get("ce-id").map(HeaderValue::as_bytes),
        Some(&b"order-17"[..])
    );
    let parsed = from_http(&h, original.data.clone(), MAX).expect("valid");
    assert_eq!(parsed, vec![original]);
}

#[test]
fn percent_encoding_round_trips_utf8() {
    let mut original = full_event();
    let subject = "a b \"quoted\" 100% café ✓ {x}";
    original.set_attribute("subject", subject);
    let h = original.binary_headers();
    let encoded = h
        .get("ce-subject")
        .expect("header")
        .to_str()
        .expect("ASCII");
    assert_eq!(
        encoded,
        "a%20b%20%22quoted%22%20100%25%20caf%C3%A9%20%E2%9C%93%20{x}"
    );
    let parsed = from_http(&h, original.data.clone(), MAX).expect("valid");
    assert_eq!(parsed[0].attribute("subject"), Some(subject));
    assert_eq!(parsed, vec![original]);
}

#[test]
fn binary_values_are_percent_decoded_and_must_be_utf8() {
    let e = &minimal_binary(&[("ce-subject", "caf%C3%A9%2Fx%zz")]).expect("valid")[0];
    assert_eq!(
        e.attribute("subject"),
        Some("café/x%zz"),
        "malformed escapes are kept"
    );
    assert_refused(
        minimal_binary(&[("ce-subject", "%FF")]),
        Some("subject"),
        "not UTF-8",
    );
    assert_refused(
        minimal_binary(&[("ce-subject", "a%0Ab")]),
        Some("subject"),
        "disallowed character U+000A",
    );
}

#[test]
fn binary_request_without_specversion_says_how_to_publish() {
    assert_refused(
        binary(&[("content-type", "application/json")], b"{}"),
        Some("specversion"),
        "Content-Type: application/cloudevents+json",
    );
    assert_refused(binary(&[], b"x"), Some("specversion"), "ce-* headers");
}

#[test]
fn binary_mode_header_errors_name_the_attribute() {
    assert_refused(
        minimal_binary(&[("ce-tenant", "a"), ("ce-tenant", "b")]),
        Some("tenant"),
        "more than once",
    );
    assert_refused(
        minimal_binary(&[("ce-datacontenttype", "text/plain")]),
        Some("datacontenttype"),
        "Content-Type header",
    );
    assert_refused(
        minimal_binary(&[("ce-data", "x")]),
        Some("data"),
        "reserved",
    );
    assert_refused(
        minimal_binary(&[("ce-my-ext", "x")]),
        Some("my-ext"),
        "lowercase letters",
    );
    let mut h = headers(&[
        ("ce-specversion", "1.0"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
    ]);
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_bytes(b"text/\xe9").expect("obs-text"),
    );
    assert_refused(
        from_http(&h, Bytes::new(), MAX),
        Some("datacontenttype"),
        "printable ASCII",
    );
}

#[test]
fn validation_errors_name_their_attribute() {
    let mut no_spec = minimal_json();
    no_spec
        .as_object_mut()
        .expect("object")
        .remove("specversion");
    assert_refused(structured(no_spec), Some("specversion"), "is required");
    assert_refused(
        structured(json_with("specversion", json!("0.3"))),
        Some("specversion"),
        "attribute `specversion`: must be \"1.0\", got \"0.3\"",
    );
    for required in ["source", "type"] {
        let mut missing = minimal_json();
        missing.as_object_mut().expect("object").remove(required);
        assert_refused(structured(missing), Some(required), "is required");
        assert_refused(
            structured(json_with(required, json!(""))),
            Some(required),
            "not be empty",
        );
    }
    for optional in ["id", "subject", "dataschema"] {
        assert_refused(
            structured(json_with(optional, json!(""))),
            Some(optional),
            "not be empty",
        );
    }
    assert_refused(
        structured(json_with("time", json!("yesterday"))),
        Some("time"),
        "RFC 3339",
    );
    assert_refused(
        structured(json_with("datacontenttype", json!(""))),
        Some("datacontenttype"),
        "media type",
    );
    assert_refused(
        structured(json_with("datacontenttype", json!("text/é"))),
        Some("datacontenttype"),
        "media type",
    );
    assert_refused(
        structured(json_with("tenant", json!("\u{FFFF}"))),
        Some("tenant"),
        "U+FFFF",
    );
}

#[test]
fn attribute_names_follow_the_spec() {
    let long = "a".repeat(MAX_NAME_LEN + 1);
    for bad in ["Tenant", "ten_ant", "ténant", long.as_str()] {
        assert_refused(
            structured(json_with(bad, json!("x"))),
            Some(bad),
            "lowercase letters",
        );
    }
    let longest = "a1".repeat(MAX_NAME_LEN / 2);
    let e = structured(json_with(&longest, json!("x"))).expect("20 characters are allowed");
    assert_eq!(e.attribute(&longest), Some("x"));
}

#[test]
fn oversized_events_are_refused_with_size_and_limit() {
    let e =
        &minimal_binary(&[("ce-id", "x"), ("ce-time", "2026-11-28T10:00:00Z")]).expect("valid")[0];
    let exact = e.size();
    let h = e.binary_headers();
    assert!(
        from_http(&h, Bytes::new(), exact).is_ok(),
        "at the limit is fine"
    );
    let error = from_http(&h, Bytes::from_static(b"!"), exact).expect_err("one byte over");
    assert_eq!(error.attribute, None);
    let says = format!("{} bytes", exact + 1);
    assert!(error.message.contains(&says), "{error}");
    assert!(
        error.message.contains(&format!("limit of {exact} bytes")),
        "{error}"
    );
}

#[test]
fn assigned_attributes_count_against_the_limit() {
    // Without id and time the request is small, but what is stored is not.
    let sent = event(
        &[("specversion", "1.0"), ("source", "/s"), ("type", "t")],
        b"",
    );
    let result = from_http(&sent.binary_headers(), Bytes::new(), sent.size());
    assert_refused(result, None, "over the limit");
}

#[test]
fn id_and_time_are_assigned_when_absent() {
    let first = &minimal_binary(&[]).expect("valid")[0];
    let second = &minimal_binary(&[]).expect("valid")[0];
    for e in [first, second] {
        assert_eq!(e.id().len(), 32);
        assert!(
            e.id()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let time = e.attribute("time").expect("time");
        assert!(time.ends_with('Z') && time.contains('.'), "{time}");
        assert!(DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
    }
    assert_ne!(first.id(), second.id());
}

#[test]
fn id_and_time_are_kept_when_present() {
    let time = "2026-11-28T10:00:00+01:00";
    let e = &minimal_binary(&[("ce-id", "mine"), ("ce-time", time)]).expect("valid")[0];
    assert_eq!(e.id(), "mine");
    assert_eq!(e.attribute("time"), Some(time));
}

#[test]
fn to_json_shows_json_data_as_json() {
    let json = full_event().to_json();
    assert_eq!(json["data"], json!({"total": 12}));
    assert_eq!(json["id"], json!("order-17"));
    assert_eq!(json["datacontenttype"], json!("application/json"));
    assert!(json.get("data_base64").is_none());
}

#[test]
fn to_json_shows_text_data_as_a_string() {
    let e = event(&[("datacontenttype", "text/plain")], "héllo".as_bytes());
    assert_eq!(e.to_json()["data"], json!("héllo"));
}

#[test]
fn to_json_shows_other_data_as_base64() {
    let binary = event(
        &[("datacontenttype", "image/png")],
        &[0x89, b'P', b'N', b'G'],
    );
    assert_eq!(binary.to_json()["data_base64"], json!("iVBORw=="));
    let undeclared = event(&[], b"plain");
    assert_eq!(undeclared.to_json()["data_base64"], json!("cGxhaW4="));
    let broken_json = event(&[("datacontenttype", "application/json")], b"{nope");
    assert_eq!(broken_json.to_json()["data_base64"], json!("e25vcGU="));
    let empty = event(&[("datacontenttype", "text/plain")], b"");
    assert!(empty.to_json().get("data").is_none());
    assert!(empty.to_json().get("data_base64").is_none());
}

#[test]
fn to_json_reads_back_as_the_same_event() {
    let mut text = full_event();
    text.set_attribute("datacontenttype", "text/plain");
    let mut binary = full_event();
    binary.attributes.remove("datacontenttype");
    binary.data = Bytes::from_static(&[0, 1, 2, 255]);
    for original in [full_event(), text, binary] {
        assert_eq!(structured(original.to_json()).expect("valid"), original);
    }
}

#[test]
fn serde_stores_data_as_base64() {
    let original = event(&[("id", "1")], &[0, 255]);
    let stored = serde_json::to_value(&original).expect("serializes");
    assert_eq!(stored, json!({"attributes": {"id": "1"}, "data": "AP8="}));
    let read: CloudEvent = serde_json::from_value(stored).expect("deserializes");
    assert_eq!(read, original);
    let corrupt = json!({"attributes": {}, "data": "%%"});
    assert!(serde_json::from_value::<CloudEvent>(corrupt).is_err());
}

#[test]
fn new_event_is_complete_and_valid() {
    let e = new_event(
        "wisp:schedules/nightly",
        "wisp.schedule.fired",
        Some("application/json"),
        Bytes::from_static(b"{}"),
    );
    assert_eq!(e.attribute("specversion"), Some("1.0"));
    assert_eq!(e.attribute("source"), Some("wisp:schedules/nightly"));
    assert_eq!(e.attribute("type"), Some("wisp.schedule.fired"));
    assert_eq!(e.attribute("datacontenttype"), Some("application/json"));
    assert_eq!(e.id().len(), 32);
    assert!(e.attribute("time").is_some());
    let parsed = from_http(&e.binary_headers(), e.data.clone(), MAX).expect("valid");
    assert_eq!(parsed, vec![e]);

    let bare = new_event("/s", "t", None, Bytes::new());
    assert_eq!(bare.attribute("datacontenttype"), None);
}

#[test]
fn size_counts_names_values_and_data() {
    let e = event(&[("id", "abc"), ("type", "t")], b"12345");
    assert_eq!(e.size(), 2 + 3 + 4 + 1 + 5);
    assert_eq!(event(&[], b"").id(), "");
}

#[test]
fn binary_headers_survive_attributes_set_unchecked() {
    let mut e = full_event();
    e.set_attribute("bad name", "x");
    e.set_attribute("datacontenttype", "text/\u{1}");
    let h = e.binary_headers();
    assert_eq!(h.len(), e.attributes.len() - 1, "the bad name is left out");
    assert_eq!(
        h.get(CONTENT_TYPE).map(HeaderValue::as_bytes),
        Some(&b"text/%01"[..])
    );
}

#[test]
fn errors_display_their_attribute() {
    let e = EventError::for_attribute("time", "must be RFC 3339");
    assert_eq!(e.to_string(), "attribute `time`: must be RFC 3339");
    assert_eq!(EventError::for_event("too big").to_string(), "too big");
}
