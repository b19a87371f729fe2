//! Storage events through the real binary: a store with `events = "TOPIC"`
//! publishes `dev.wisp.kv.key.updated` / `.deleted` (blob stores:
//! `dev.wisp.blob.object.finalized` / `.deleted`) for every change, from
//! guests and from the operator, delivered at least once — also for the
//! writes acknowledged just before a `kill -9`.
//!
//! `kv-probe` writes; `event-probe`, subscribed to the topic, reports each
//! delivery to a [`Sink`] this test runs.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::redis::Redis;
use common::{Sink, Wisp, client, eventually, guest, send};

/// Store `cache` (on `backend`, embedded without one) publishing to topic
/// `cache-events`, written by `kv-probe` at `/probe`, watched by
/// `event-probe`.
fn manifest(dir: &Path, sink: &Sink, backend: Option<&str>) -> String {
    let backend = backend
        .map(|url| format!("backend = {{ redis = \"{url}\" }}"))
        .unwrap_or_default();
    format!(
        r#"
{server}
[[topic]]
name = "cache-events"

[[store]]
name = "cache"
kind = "keyvalue"
events = "cache-events"
{backend}

[[function]]
name = "probe"
component = "{probe}"
route = "/probe"
keyvalue = ["cache"]
max_instances = 50
max_queue = 1000
queue_timeout = "60s"

[[function]]
name = "watcher"
component = "{watcher}"
env = {{ SINK = "{sink}" }}
allowed_outbound_hosts = ["{sink}"]
[function.trigger]
topic = "cache-events"
max_in_flight = 16
"#,
        server = common::server_table(dir),
        probe = guest("kv-probe").display(),
        watcher = guest("event-probe").display(),
        sink = sink.url,
    )
}

/// `(type, subject)` of every delivery, with how often each event id came.
fn deliveries(sink: &Sink) -> (Vec<(String, String)>, usize) {
    let mut times: HashMap<String, usize> = HashMap::new();
    let mut seen = Vec::new();
    for report in sink.reports() {
        let id = report.body["id"].as_str().unwrap_or_default().to_string();
        let n = times.entry(id).or_default();
        *n += 1;
        if *n == 1 {
            seen.push((
                report.body["type"].as_str().unwrap_or_default().to_string(),
                report.body["subject"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ));
        }
    }
    (seen, times.values().map(|n| n - 1).sum())
}

/// Waits for as many distinct events as `expected` holds, then checks they
/// are exactly those (in any order); returns the duplicate deliveries.
async fn delivered_exactly(sink: &Sink, wisp: &Wisp, mut expected: Vec<(String, String)>) -> usize {
    eventually("every change's event is delivered", || {
        deliveries(sink).0.len() >= expected.len()
    })
    .await;
    let (mut seen, duplicates) = deliveries(sink);
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected, "{}", wisp.logs());
    duplicates
}

/// The JSON data of the first delivered event about `subject`.
fn data_of(sink: &Sink, subject: &str) -> serde_json::Value {
    let report = sink
        .reports()
        .into_iter()
        .find(|r| r.body["subject"] == subject)
        .unwrap_or_else(|| panic!("no event about `{subject}` was delivered"));
    serde_json::from_str(report.body["data"].as_str().unwrap()).unwrap()
}

fn updated(key: &str) -> (String, String) {
    ("dev.wisp.kv.key.updated".into(), key.into())
}

fn deleted(key: &str) -> (String, String) {
    ("dev.wisp.kv.key.deleted".into(), key.into())
}

/// Guest sets, an increment, guest deletes and the operator's writes: one
/// event each, with the key as subject and the store and size as data.
async fn every_change_is_an_event(backend: Option<&str>) {
    const N: usize = 40;
    let sink = Sink::start(std::time::Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, backend));
    let probe = |op: &str, key: &str| format!("{}/probe/{op}?store=cache&key={key}", wisp.url);
    let http = client();
    let sets: Vec<_> = (0..N)
        .map(|i| {
            let req = http.post(probe("set", &format!("k{i}"))).body("value");
            tokio::spawn(send(req))
        })
        .collect();
    for set in sets {
        let (status, body) = set.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    for (op, key) in [("incr", "visits"), ("delete", "k0"), ("delete", "k1")] {
        let (status, body) = send(http.get(probe(op, key))).await;
        assert_eq!(status, 200, "{op} {key}: {body}");
    }
    let admin = wisp.admin.as_ref().unwrap();
    let (status, body) = send(
        http.put(format!("{admin}/v1/stores/cache/keys/by-operator"))
            .body("x"),
    )
    .await;
    assert!((200..300).contains(&status), "{body}");
    let (status, body) = send(http.delete(format!("{admin}/v1/stores/cache/keys/k2"))).await;
    assert!((200..300).contains(&status), "{body}");

    let mut expected: Vec<(String, String)> = (0..N).map(|i| updated(&format!("k{i}"))).collect();
    expected.extend([
        updated("visits"),
        deleted("k0"),
        deleted("k1"),
        updated("by-operator"),
        deleted("k2"),
    ]);
    let changes = expected.len();
    let duplicates = delivered_exactly(&sink, &wisp, expected).await;
    println!("{changes} changes, {changes} events, {duplicates} duplicate deliveries");

    assert_eq!(
        data_of(&sink, "visits"),
        serde_json::json!({ "store": "cache", "key": "visits", "size": 1 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_changes_are_delivered_as_events() {
    every_change_is_an_event(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_changes_are_delivered_as_events() {
    let redis = Redis::start();
    every_change_is_an_event(Some(&redis.url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_acknowledged_writes_loses_no_event() {
    // A slow watcher keeps events waiting when the server is killed.
    let sink = Sink::start(std::time::Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(dir.path(), &sink, None);
    let mut wisp = Wisp::up(dir.path(), &text);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (acked, base) = (acked.clone(), wisp.url.clone());
            tokio::spawn(async move {
                let http = client();
                for i in 0.. {
                    let key = format!("w{w}-{i}");
                    let url = format!("{base}/probe/set?store=cache&key={key}");
                    match http.post(url).body("v").send().await {
                        Ok(resp) if resp.status() == 200 => acked.lock().unwrap().push(key),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    eventually("200 writes are acknowledged", || {
        acked.lock().unwrap().len() >= 200
    })
    .await;
    wisp.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let before = deliveries(&sink).0.len();
    assert!(
        before < acked.len(),
        "every event was delivered before the kill"
    );

    let wisp = Wisp::up(dir.path(), &text);
    let missing = || {
        let seen = deliveries(&sink).0;
        acked
            .iter()
            .filter(|key| !seen.contains(&updated(key)))
            .count()
    };
    eventually("every acknowledged write's event is delivered", || {
        missing() == 0
    })
    .await;
    let (seen, duplicates) = deliveries(&sink);
    println!(
        "kill -9: {} acknowledged writes, {before} events delivered before the kill, {} after restart, {duplicates} duplicate deliveries",
        acked.len(),
        seen.len()
    );
    drop(wisp);
}

/// A blob store with `events`: objects finished by a guest or put by the
/// operator publish `.finalized` with their size, deletes of objects that
/// existed `.deleted`, and deleting a missing object nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_changes_are_delivered_as_events() {
    let sink = Sink::start(std::time::Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
{server}
[[topic]]
name = "photo-events"

[[store]]
name = "photos"
kind = "blobstore"
events = "photo-events"

[[function]]
name = "blobs"
component = "{probe}"
route = "/blob"
blobstore = ["photos"]

[[function]]
name = "watcher"
component = "{watcher}"
env = {{ SINK = "{sink}" }}
allowed_outbound_hosts = ["{sink}"]
[function.trigger]
topic = "photo-events"
"#,
        server = common::server_table(dir.path()),
        probe = guest("blob-probe").display(),
        watcher = guest("event-probe").display(),
        sink = sink.url,
    );
    let wisp = Wisp::up(dir.path(), &text);
    let http = client();
    let probe = |op: &str, name: &str| format!("{}/blob/{op}?store=photos&name={name}", wisp.url);
    for (name, body) in [("2024/cat.ppm", "P3 1 1 255 0 0 0"), ("dog.ppm", "P3")] {
        let (status, answer) = send(http.post(probe("put", name)).body(body)).await;
        assert_eq!(status, 200, "{answer}");
    }
    for name in ["dog.ppm", "never-written"] {
        let (status, answer) = send(http.post(probe("delete", name))).await;
        assert_eq!(status, 200, "{answer}");
    }
    let admin = wisp.admin.as_ref().unwrap();
    let url = format!("{admin}/v1/blobs/photos/objects/by-operator.txt");
    let (status, answer) = send(http.put(&url).body("12345")).await;
    assert!((200..300).contains(&status), "{answer}");
    let (status, answer) = send(http.delete(&url)).await;
    assert!((200..300).contains(&status), "{answer}");

    let finalized = |key: &str| {
        (
            "dev.wisp.blob.object.finalized".to_string(),
            key.to_string(),
        )
    };
    let deleted = |key: &str| ("dev.wisp.blob.object.deleted".to_string(), key.to_string());
    let expected = vec![
        finalized("2024/cat.ppm"),
        finalized("dog.ppm"),
        deleted("dog.ppm"),
        finalized("by-operator.txt"),
        deleted("by-operator.txt"),
    ];
    // An event for the missing object's delete would be one too many, or
    // in place of one expected here.
    delivered_exactly(&sink, &wisp, expected).await;
    assert_eq!(
        data_of(&sink, "2024/cat.ppm"),
        serde_json::json!({ "store": "photos", "key": "2024/cat.ppm", "size": 16 })
    );
}

#[test]
fn events_must_name_a_declared_topic() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[[topic]]\nname = \"audit\"\n\n[[store]]\nname = \"cache\"\nkind = \"keyvalue\"\nevents = \"cache-events\"\n",
        common::server_table(dir.path())
    );
    let err = common::refused_at_load(
        dir.path(),
        &text,
        "store `cache`: `events`: no topic `cache-events`; declare it with a [[topic]] table (declared: audit)",
    );
    assert!(err.contains("wisp.toml:11:"), "{err}");
}
