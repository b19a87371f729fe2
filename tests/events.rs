//! Event-driven functions through the real binary: publish over the admin
//! API and from guests, delivery at least once with retries, backoff, dead
//! letters, ordering keys, and no loss across `kill -9`.
//!
//! The `event-probe` guest reports every delivery it gets to a [`Sink`]
//! this test runs, then answers as the event's data asks (see its README).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use common::{Sink, Wisp, client, eventually, guest, send};
use serde_json::{Value, json};

/// A manifest with topics `orders` and `orders-dlq` and the probe
/// subscribed to `orders` with `trigger` settings.
fn manifest(dir: &Path, sink: &Sink, trigger: &str, extra: &str) -> String {
    format!(
        r#"
{server}
[[topic]]
name = "orders"

[[topic]]
name = "orders-dlq"

[[topic]]
name = "audit"

[[function]]
name = "probe"
component = "{probe}"
env = {{ SINK = "{sink}" }}
allowed_outbound_hosts = ["{sink}"]
publish = ["audit"]
[function.trigger]
topic = "orders"
dead_letter_topic = "orders-dlq"
{trigger}
{extra}
"#,
        server = common::server_table(dir),
        probe = guest("event-probe").display(),
        sink = sink.url,
    )
}

/// Publishes one event in binary mode; returns its id.
async fn publish(wisp: &Wisp, topic: &str, headers: &[(&str, &str)], data: Value) -> String {
    let admin = wisp.admin.as_ref().unwrap();
    let mut req = client()
        .post(format!("{admin}/v1/topics/{topic}/events"))
        .header("ce-specversion", "1.0")
        .header("ce-source", "/test")
        .header("ce-type", "com.example.test")
        .header("content-type", "application/json")
        .body(data.to_string());
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let (status, body) = send(req).await;
    assert_eq!(status, 202, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    answer["id"].as_str().unwrap().to_string()
}

async fn admin_get(wisp: &Wisp, path: &str) -> Value {
    let admin = wisp.admin.as_ref().unwrap();
    let (status, body) = send(client().get(format!("{admin}{path}"))).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn attempts(reports: &[common::Report]) -> Vec<u64> {
    reports
        .iter()
        .map(|r| r.body["attempt"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_backoff_then_dead_lettered_while_others_flow() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let trigger = "max_attempts = 3\nmin_backoff = \"300ms\"\nmax_backoff = \"2s\"";
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, trigger, ""));

    // Fails twice, then succeeds: three attempts, one id, growing numbers,
    // spaced at least min_backoff apart.
    let flaky = publish(&wisp, "orders", &[], json!({ "fail_until": 3 })).await;
    eventually("the flaky event succeeds on attempt 3", || {
        sink.of(&flaky).len() >= 3
    })
    .await;
    let seen = sink.of(&flaky);
    assert_eq!(attempts(&seen), vec![1, 2, 3]);
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(300), "retried after {gap:?}");
    }

    // A poison event is dead-lettered after exactly max_attempts, and the
    // events published after it are delivered meanwhile.
    let poison = publish(
        &wisp,
        "orders",
        &[("ce-subject", "bad order")],
        json!({ "poison": true }),
    )
    .await;
    let mut fine = Vec::new();
    for i in 0..5 {
        fine.push(publish(&wisp, "orders", &[], json!({ "n": i })).await);
    }
    eventually("the other events are delivered", || {
        fine.iter().all(|id| !sink.of(id).is_empty())
    })
    .await;
    assert!(
        sink.of(&poison).len() < 3,
        "the other events waited for the poison event to be dead-lettered"
    );
    let dead = loop {
        let dead = admin_get(&wisp, "/v1/topics/orders-dlq/events").await;
        if dead.as_array().is_some_and(|d| !d.is_empty()) {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(attempts(&sink.of(&poison)), vec![1, 2, 3]);
    let dead = &dead[0];
    assert_eq!(dead["id"], poison.as_str());
    assert_eq!(dead["subject"], "bad order", "original attributes are kept");
    assert_eq!(dead["deliveryattempt"], "3");
    assert!(
        dead["deadletterreason"].as_str().unwrap().contains("500"),
        "{dead}"
    );
    assert_eq!(dead["data"], json!({ "poison": true }));

    let topics = admin_get(&wisp, "/v1/topics").await;
    let orders = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "orders")
        .unwrap();
    assert_eq!(orders["published"], 7);
    let probe = &orders["subscriptions"][0];
    assert_eq!(probe["function"], "probe");
    assert_eq!(probe["acked"], 6);
    assert_eq!(probe["dead_lettered"], 1);
    assert_eq!(probe["retried"], 4);
    assert_eq!(probe["backlog"], 0);
    let admin = wisp.admin.as_ref().unwrap();
    let (_, metrics) = send(client().get(format!("{admin}/metrics"))).await;
    for line in [
        "wisp_events_published_total{topic=\"orders\"} 7",
        "wisp_events_dead_lettered_total{topic=\"orders\",function=\"probe\"} 1",
        "wisp_invocation_outcomes_total{function=\"probe\",trigger=\"event\",outcome=\"5xx\"} 5",
    ] {
        assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");
    }

    // Replay sends it back to `orders` without its dead-letter attributes:
    // delivered again from attempt 1, and the dead-letter topic is empty.
    let (status, body) = send(client().post(format!("{admin}/v1/topics/orders-dlq/replay"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["replayed"], 1);
    eventually("the replayed event is delivered again", || {
        sink.of(&poison).len() >= 4
    })
    .await;
    assert_eq!(sink.of(&poison)[3].body["attempt"], 1);
}

/// A function dropped from the manifest leaves no deliveries behind: the
/// next start forgets them (after its listeners are up, off the start's
/// path), and says how many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_subscribers_pending_deliveries_are_forgotten_at_the_next_start() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let trigger = "max_attempts = 5\nmin_backoff = \"1h\"\nmax_backoff = \"1h\"";
    let mut wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, trigger, ""));
    // It fails, and its retry is an hour away: the delivery stays pending.
    let poison = publish(&wisp, "orders", &[], json!({ "poison": true })).await;
    eventually("the first attempt fails", || !sink.of(&poison).is_empty()).await;
    wisp.signal("INT");
    assert!(wisp.wait_exit(Duration::from_secs(30)).success());

    let without = format!(
        "{}\n[[topic]]\nname = \"orders\"\n\n[[topic]]\nname = \"orders-dlq\"\n",
        common::server_table(dir.path())
    );
    let wisp = Wisp::up(dir.path(), &without);
    wisp.wait_for_log("forgot 1 deliveries of deleted functions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordered_subscription_holds_back_only_the_failing_key() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let trigger = "ordered = true\nmax_attempts = 2\nmin_backoff = \"400ms\"\nmax_in_flight = 4";
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, trigger, ""));

    let poison = publish(
        &wisp,
        "orders",
        &[("ce-partitionkey", "a")],
        json!({ "poison": true }),
    )
    .await;
    let a2 = publish(
        &wisp,
        "orders",
        &[("ce-partitionkey", "a")],
        json!({ "n": 2 }),
    )
    .await;
    let b1 = publish(
        &wisp,
        "orders",
        &[("ce-partitionkey", "b")],
        json!({ "n": 1 }),
    )
    .await;
    eventually("key a's second event is delivered", || {
        !sink.of(&a2).is_empty()
    })
    .await;
    let poison_seen = sink.of(&poison);
    assert_eq!(attempts(&poison_seen), vec![1, 2]);
    let a2_at = sink.of(&a2)[0].at;
    assert!(
        a2_at >= poison_seen[1].at,
        "key a's second event went before the first was dead-lettered"
    );
    let b1_at = sink.of(&b1)[0].at;
    assert!(b1_at < poison_seen[1].at, "key b waited for key a");
    assert_eq!(sink.of(&a2)[0].body["partitionkey"], "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_publish_to_granted_topics_only() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    // A second function subscribed to `audit` sees what the probe publishes.
    let auditor = format!(
        r#"
[[function]]
name = "auditor"
component = "{}"
env = {{ SINK = "{}" }}
allowed_outbound_hosts = ["{}"]
[function.trigger]
topic = "audit"
"#,
        guest("event-probe").display(),
        sink.url,
        sink.url
    );
    let wisp = Wisp::up(
        dir.path(),
        &manifest(dir.path(), &sink, "max_attempts = 1", &auditor),
    );
    publish(
        &wisp,
        "orders",
        &[],
        json!({ "publish": { "topic": "audit", "type": "com.example.audited" } }),
    )
    .await;
    eventually("the audit event reaches the auditor", || {
        sink.reports()
            .iter()
            .any(|r| r.body["type"] == "com.example.audited")
    })
    .await;

    // `orders-dlq` is not in the probe's `publish` list: 403 to the guest.
    publish(
        &wisp,
        "orders",
        &[],
        json!({ "publish": { "topic": "orders-dlq", "type": "com.example.sneaky" } }),
    )
    .await;
    wisp.wait_for_log("publish denied: topic not in `publish`");
    assert!(
        !sink
            .reports()
            .iter()
            .any(|r| r.body["type"] == "com.example.sneaky")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_and_unknown_topics_are_refused_with_the_reason() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, "", ""));
    let admin = wisp.admin.as_ref().unwrap();
    let post = |topic: &str| client().post(format!("{admin}/v1/topics/{topic}/events"));

    let (status, body) = send(
        post("orders")
            .header("ce-specversion", "1.0")
            .header("ce-source", "/test")
            .body("x"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`type`"), "{body}");

    let (status, body) = send(
        post("orders")
            .header("content-type", "application/cloudevents+json")
            .body(r#"{"specversion": "0.3", "id": "1", "source": "/s", "type": "t"}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("specversion"), "{body}");

    let (status, body) = send(
        post("orders")
            .header("content-type", "application/cloudevents+json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = send(
        post("nope")
            .header("ce-specversion", "1.0")
            .header("ce-source", "/s")
            .header("ce-type", "t"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no topic `nope`"), "{body}");

    // A batch: every event gets an id, assigned when absent.
    let (status, body) = send(
        post("orders")
            .header("content-type", "application/cloudevents-batch+json")
            .body(
                json!([
                    { "specversion": "1.0", "id": "mine", "source": "/s", "type": "t" },
                    { "specversion": "1.0", "source": "/s", "type": "t", "data": { "n": 2 } }
                ])
                .to_string(),
            ),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let ids: Value = serde_json::from_str(&body).unwrap();
    let ids = ids["ids"].as_array().unwrap();
    assert_eq!(ids[0], "mine");
    assert!(!ids[1].as_str().unwrap().is_empty());
}

#[test]
fn manifests_naming_missing_or_duplicate_topics_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let probe = guest("event-probe");
    let cases = [
        (
            "[[topic]]\nname = \"a\"\n\n[[topic]]\nname = \"a\"\n".to_string(),
            "wisp.toml:5: topic `a`: `name`: duplicate name",
        ),
        (
            format!(
                "[[function]]\nname = \"f\"\ncomponent = \"{}\"\n[function.trigger]\ntopic = \"missing\"\n",
                probe.display()
            ),
            "function `f`: `topic`: no topic `missing`",
        ),
        (
            format!(
                "[[topic]]\nname = \"t\"\n[[function]]\nname = \"f\"\ncomponent = \"{}\"\npublish = [\"elsewhere\"]\n",
                probe.display()
            ),
            "function `f`: `publish`: no topic `elsewhere`",
        ),
    ];
    for (text, expected) in cases {
        common::refused_at_load(dir.path(), &text, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_delivery_loses_no_acknowledged_event() {
    // Each report takes a few milliseconds, so deliveries are in flight
    // whenever the server is killed.
    let sink = Sink::start(Duration::from_millis(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(
        dir.path(),
        &sink,
        "max_in_flight = 4\nmin_backoff = \"100ms\"",
        "",
    );
    let mut wisp = Wisp::up(dir.path(), &text);

    let admin = wisp.admin.clone().unwrap();
    let mut published = Vec::new();
    for batch in 0..10 {
        let events: Vec<Value> = (0..100)
            .map(|i| {
                json!({ "specversion": "1.0", "id": format!("e{batch}-{i}"), "source": "/kill",
                        "type": "com.example.test", "data": { "n": i } })
            })
            .collect();
        let (status, body) = send(
            client()
                .post(format!("{admin}/v1/topics/orders/events"))
                .header("content-type", "application/cloudevents-batch+json")
                .body(Value::Array(events).to_string()),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let ids: Value = serde_json::from_str(&body).unwrap();
        published.extend(
            ids["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().to_string()),
        );
    }
    assert_eq!(published.len(), 1000);

    for round in 1..=3 {
        let before = sink.ids().len();
        eventually("some more events are delivered", || {
            sink.ids().len() >= before + 100
        })
        .await;
        wisp.kill();
        let delivered = sink.ids().len();
        assert!(
            delivered < 1000,
            "round {round}: all delivered before the kill"
        );
        wisp = Wisp::up(dir.path(), &text);
    }
    eventually("every acknowledged event is delivered", || {
        published.iter().all(|id| sink.ids().contains(id))
    })
    .await;
    let mut times: HashMap<String, usize> = HashMap::new();
    for r in sink.reports() {
        *times
            .entry(r.body["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let duplicates: usize = times.values().map(|n| n - 1).sum();
    println!(
        "kill -9 x3: 1000 events, {} deliveries, {duplicates} duplicates (at least once)",
        sink.reports().len()
    );
}
