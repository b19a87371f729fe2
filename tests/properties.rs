//! Property tests over everything Wisp parses from users and clients: the
//! manifest, sizes and durations, routes, admin JSON bodies and component
//! headers. Whatever the input: never a panic, and every refusal names the
//! problem. Case counts are bounded so the file runs in seconds in CI.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use proptest::prelude::*;
use wisp::config::{ByteSize, FunctionSpec, Manifest, Span};
use wisp::deploy::component::check_header;
use wisp::deploy::routes::RouteTable;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Values of the kinds manifest keys take, well-formed or not.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-zA-Z0-9 /._:*\\-]{0,12}".prop_map(|s| format!("{s:?}")),
        "[0-9]{1,4}(Ki|Mi|Gi|k|M|ms|s|m|h|x)?".prop_map(|s| format!("\"{s}\"")),
        Just("true".to_string()),
        Just("{ A = \"b\" }".to_string()),
        Just("[\"*\", \"http://127.0.0.1:9\"]".to_string()),
        "\\PC{0,6}".prop_map(|s| format!("{s:?}")),
    ]
}

const KEYS: &[&str] = &[
    "name",
    "component",
    "route",
    "memory",
    "timeout",
    "max_instances",
    "max_queue",
    "queue_timeout",
    "max_request_body",
    "env",
    "allowed_outbound_hosts",
    "dirs",
    "isolation",
    "concurrency",
    "max_requests_per_instance",
    "idle_timeout",
    "min_instances",
    "snapshot",
    "cpu_time",
    "cpu_weight",
    "bogus",
];

/// A manifest of a few `[[function]]` tables with known keys and arbitrary
/// values, so most inputs get past the TOML syntax into Wisp's checks.
fn manifest() -> impl Strategy<Value = String> {
    let table = prop::collection::vec((0..KEYS.len(), value()), 0..6).prop_map(|pairs| {
        let mut text = String::from("[[function]]\n");
        for (key, value) in pairs {
            text.push_str(&format!("{} = {value}\n", KEYS[key]));
        }
        text
    });
    (prop::collection::vec(table, 0..4), any::<bool>()).prop_map(|(tables, crlf)| {
        let text = tables.concat();
        if crlf {
            text.replace('\n', "\r\n")
        } else {
            text
        }
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn manifests_parse_or_name_the_file(text in manifest()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wisp.toml");
        if let Err(e) = Manifest::parse(&path, &text) {
            let message = format!("{e:#}");
            prop_assert!(message.contains("wisp.toml"), "{message}");
        }
    }

    #[test]
    fn any_text_as_a_manifest_never_panics(text in "\\PC{0,200}") {
        let _ = Manifest::parse(Path::new("wisp.toml"), &text);
    }

    #[test]
    fn sizes_parse_round_trip_or_name_the_input(s in "\\PC{0,12}|[0-9]{1,20}(Ki|Mi|Gi|Ti|k|M|G|T)?B?") {
        match ByteSize::from_str(&s) {
            Ok(size) => prop_assert_eq!(ByteSize::from_str(&size.to_string()), Ok(size)),
            Err(e) => prop_assert!(e.contains(s.trim().trim_end_matches('B')), "{e}"),
        }
    }

    #[test]
    fn durations_parse_round_trip_or_say_how_to_write_them(s in "\\PC{0,12}|[0-9]{1,8}(ms|s|m|h|d|us|ns)") {
        match Span::from_str(&s) {
            Ok(span) => prop_assert_eq!(Span::from_str(&span.to_string()).map(|s| s.0), Ok(span.0)),
            Err(e) => prop_assert!(e.contains("invalid duration"), "{e}"),
        }
    }

    #[test]
    fn routes_match_the_longest_whole_segment_prefix(
        routes in prop::collection::vec("(/[a-c]{1,2}){0,3}/?", 0..6),
        path in "(/[a-c]{0,2}){0,4}",
    ) {
        let table = RouteTable::new(routes.iter().map(|r| (r.clone(), Arc::new(r.clone()))));
        let normal = |r: &str| match r.trim_end_matches('/') {
            "" => "/".to_string(),
            r => r.to_string(),
        };
        let matches = |route: &str| {
            route == "/" || path.strip_prefix(route).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let best = routes.iter().map(|r| normal(r)).filter(|r| matches(r)).max_by_key(|r| r.len());
        prop_assert_eq!(table.lookup(&path).map(|r| normal(r)), best);
    }

    #[test]
    fn admin_deploy_bodies_are_refused_with_a_reason(body in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(spec) = serde_json::from_slice::<FunctionSpec>(&body) {
            let _ = spec.validate();
        }
    }

    #[test]
    fn admin_deploy_settings_validate_or_name_their_key(
        pairs in prop::collection::vec((0..KEYS.len() - 1, value()), 0..6),
    ) {
        // The same keys as JSON, as `wisp deploy` sends them.
        let mut object = serde_json::Map::new();
        for (key, value) in pairs {
            let toml_value: Result<toml::Value, _> = toml::from_str(&format!("v = {value}"));
            if let Ok(toml::Value::Table(t)) = toml_value
                && let Some(v) = t.get("v")
                && let Ok(json) = serde_json::to_value(v)
            {
                object.insert(KEYS[key].to_string(), json);
            }
        }
        match serde_json::from_value::<FunctionSpec>(serde_json::Value::Object(object)) {
            Ok(spec) => {
                if let Err((key, message)) = spec.validate() {
                    prop_assert!(KEYS.contains(&key), "unknown key {key}");
                    prop_assert!(!message.is_empty());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn component_headers_are_checked_without_panics(bytes in prop::collection::vec(any::<u8>(), 0..16)) {
        if let Err(e) = check_header(&bytes) {
            let message = e.to_string();
            prop_assert!(
                message.contains("WebAssembly") || message.contains("component"),
                "{message}"
            );
        }
    }

    #[test]
    fn component_headers_with_the_magic_say_what_they_are(version in any::<[u8; 4]>()) {
        let mut bytes = b"\0asm".to_vec();
        bytes.extend_from_slice(&version);
        match check_header(&bytes) {
            Ok(()) => prop_assert_eq!(&version[2..], &[1, 0]),
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.contains("core WebAssembly module") || message.contains("version"), "{message}");
            }
        }
    }
}
