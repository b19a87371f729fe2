//! `/metrics` through the real binary, parsed with a Prometheus text parser
//! (`prometheus-parse`): invocations by outcome class and refusal, latency
//! histograms that count every invocation, cold and warm instances, the
//! pool, and the artifact cache across a restart.

mod common;

use std::path::Path;

use common::prom::{buckets, scrape, value};
use common::{Wisp, guest, send};
use prometheus_parse::Scrape;

/// The manifest of the traffic test: `slow` (a fresh instance per request,
/// 1 KiB bodies), `busy` (the same, one at a time and no queue), `warm`
/// (the same guest, its instance reused) and `panic`.
fn manifest(dir: &Path) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"
state_dir = "{state}"
cache_dir = "{cache}"

[[function]]
name = "slow"
component = "{slow}"
route = "/slow"
max_request_body = "1Ki"

[[function]]
name = "busy"
component = "{slow}"
route = "/busy"
max_instances = 1
max_queue = 0

[[function]]
name = "warm"
component = "{slow}"
route = "/warm"
isolation = "instance"

[[function]]
name = "panic"
component = "{panic}"
route = "/panic"
"#,
        state = dir.join("state").display(),
        cache = dir.join("cache").display(),
        slow = guest("slow").display(),
        panic = guest("panic").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_latencies_and_instances_are_counted_per_function() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path()));
    let url = wisp.url.clone();
    // The cache was empty: `slow` (deployed first) serves from the snapshot
    // once its code is compiled, after the deploy; `busy` and `warm` (the
    // same snapshot) compiled it or found it compiled.
    wisp.wait_for_lines("`slow` snapshot ready", 1, |line| {
        line.contains("snapshot ready") && line.contains("function=slow")
    });
    // Redirects are counted, not followed.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let status = |path: &str| {
        let (http, url) = (http.clone(), url.clone());
        let path = path.to_string();
        async move { send(http.get(format!("{url}{path}"))).await.0 }
    };

    // One request holds `busy`'s only instance; with no queue, the next
    // is refused with 429 at once.
    let held = tokio::spawn(status("/busy?ms=3000"));
    wisp.wait_for_metrics("busy", "a request in flight", |m| {
        common::counter(m, "in_flight") == 1
    })
    .await;
    assert_eq!(status("/busy").await, 429);
    assert_eq!(held.await.unwrap(), 200);

    for (path, want) in [
        ("/slow", 200),
        ("/slow?status=201", 201),
        ("/slow?status=302", 302),
        ("/slow?status=307", 307),
        ("/slow?status=404", 404),
        ("/slow?ms=soon", 400),
        ("/slow?status=500", 500),
        // The function's own 503 is a 5xx, not Wisp's refusal.
        ("/slow?status=503", 503),
    ] {
        assert_eq!(status(path).await, want, "{path}");
    }
    let big = http.post(format!("{url}/slow")).body(vec![b'x'; 4096]);
    assert_eq!(send(big).await.0, 413);
    assert_eq!(status("/panic").await, 500);
    for _ in 0..3 {
        assert_eq!(status("/warm").await, 200);
    }
    // Fresh instances go once their response is done.
    wisp.wait_for_metrics("slow", "no instance live", |m| {
        common::counter(m, "instances_live") == 0 && common::counter(m, "in_flight") == 0
    })
    .await;

    let m = scrape(&wisp).await;
    let outcome = |function: &str, outcome: &str| {
        value(
            &m,
            "wisp_invocation_outcomes_total",
            &[
                ("function", function),
                ("trigger", "http"),
                ("outcome", outcome),
            ],
        )
    };
    let want = [
        ("2xx", 2.0),
        ("3xx", 2.0),
        ("4xx", 2.0),
        ("5xx", 2.0),
        ("413", 1.0),
        ("429", 0.0),
        ("1xx", 0.0),
        ("503", 0.0),
        ("504", 0.0),
        ("memory", 0.0),
        ("trap", 0.0),
        ("cpu_time", 0.0),
        ("client_closed", 0.0),
    ];
    for (name, n) in want {
        assert_eq!(outcome("slow", name), n, "slow outcome {name}\n{}", m.1);
    }
    assert_eq!(outcome("busy", "2xx"), 1.0, "{}", m.1);
    assert_eq!(outcome("busy", "429"), 1.0, "{}", m.1);
    assert_eq!(outcome("panic", "trap"), 1.0, "{}", m.1);
    assert_eq!(outcome("panic", "5xx"), 0.0, "{}", m.1);

    let slow_http = [("function", "slow"), ("trigger", "http")];
    let invocations = value(&m, "wisp_invocations_total", &slow_http);
    assert_eq!(invocations, want.iter().map(|w| w.1).sum::<f64>());
    assert_eq!(value(&m, "wisp_in_flight", &slow_http), 0.0);
    let busy_http = [("function", "busy"), ("trigger", "http")];
    for histogram in [
        "wisp_time_to_first_byte_seconds",
        "wisp_invocation_duration_seconds",
    ] {
        for (labels, n) in [(slow_http, invocations), (busy_http, 2.0)] {
            let count = value(&m, &format!("{histogram}_count"), &labels);
            assert_eq!(count, n, "{histogram} {labels:?}");
            let counts = buckets(&m, histogram, &labels);
            let (last, all) = *counts.last().unwrap();
            assert!(last.is_infinite() && all == n, "{histogram}: {counts:?}");
        }
        // The held request took at least 3 s: it is not in the 2.5 s bucket.
        let counts = buckets(&m, histogram, &busy_http);
        let under = counts.iter().find(|(le, _)| *le == 2.5).unwrap().1;
        assert_eq!(under, 1.0, "{histogram}: {counts:?}");
    }
    let sum = |h: &str| value(&m, &format!("{h}_sum"), &busy_http);
    assert!(sum("wisp_invocation_duration_seconds") >= 3.0);
    assert!(sum("wisp_time_to_first_byte_seconds") <= sum("wisp_invocation_duration_seconds"));

    // `slow` makes a fresh instance for every request its guest saw (not
    // the 413) and reuses none; `warm` made one and reused it.
    let instances = |name: &str, function: &str| {
        value(
            &m,
            &format!("wisp_instances_{name}"),
            &[("function", function)],
        )
    };
    assert_eq!(instances("created_total", "slow"), invocations - 1.0);
    // (Failed once in CI with 2.0 and did not reproduce in 28 runs; the
    // server's log says which requests made which instances.)
    assert_eq!(
        instances("created_total", "busy"),
        1.0,
        "{}\n{}",
        m.1,
        wisp.logs()
    );
    assert_eq!(instances("reused_total", "slow"), 0.0);
    assert_eq!(instances("live", "slow"), 0.0);
    assert_eq!(instances("created_total", "warm"), 1.0);
    assert_eq!(instances("reused_total", "warm"), 2.0);
    assert_eq!(instances("live", "warm"), 1.0);
    // The SDK's guests are pre-initialized: every instance is a snapshot's.
    let (_, info) = common::get(&format!(
        "{}/v1/functions/slow",
        wisp.admin.as_ref().unwrap()
    ))
    .await;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["snapshotted"], true, "{info}");
    assert_eq!(
        instances("from_snapshot_total", "slow"),
        instances("created_total", "slow")
    );
    assert_eq!(value(&m, "wisp_queue_depth", &[("function", "busy")]), 0.0);

    // The warm instance holds a pool slot; the pool has the default size.
    let slots = |name: &str| value(&m, name, &[("kind", "component_instances")]);
    assert!(slots("wisp_pool_slots_in_use") >= 1.0, "{}", m.1);
    assert_eq!(slots("wisp_pool_slots"), 1000.0);

    // Unlabelled series have no braces (benches/events-load reads this one).
    assert!(
        m.1.lines()
            .any(|l| l.starts_with("wisp_event_store_commits_total ")),
        "{}",
        m.1
    );

    // The admin API's JSON counts the same.
    let json = wisp.metrics("slow").await;
    assert_eq!(json["outcomes"]["3xx"], 2, "{json}");
    assert_eq!(json["outcomes"]["413"], 1, "{json}");
    assert_eq!(json["invocations"], invocations as u64, "{json}");
    assert_eq!(wisp.metrics("busy").await["outcomes"]["429"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifact_cache_hits_after_a_restart_and_snapshot_instances_count() {
    let cache = tempfile::tempdir().unwrap();
    let serve = || {
        Wisp::serve(
            &guest("init-prints"),
            &[
                "--cache-dir",
                cache.path().to_str().unwrap(),
                "--admin",
                "127.0.0.1:0",
            ],
        )
    };
    let cached = |m: &(Scrape, String), hit: &str, kind: &str| {
        value(
            m,
            &format!("wisp_artifact_cache_{hit}_total"),
            &[("kind", kind)],
        )
    };
    {
        let wisp = serve();
        // Its code is in the cache once new instances start from it.
        wisp.wait_for_log("snapshot ready");
        let m = scrape(&wisp).await;
        // Fresh cache: the component and its snapshot were compiled, init ran.
        assert!(cached(&m, "misses", "compiled") >= 1.0, "{}", m.1);
        assert_eq!(cached(&m, "misses", "snapshot"), 1.0, "{}", m.1);
        assert_eq!(cached(&m, "hits", "snapshot"), 0.0, "{}", m.1);
    }
    let wisp = serve();
    assert_eq!(common::get(&format!("{}/", wisp.url)).await.0, 200);
    let m = scrape(&wisp).await;
    assert_eq!(cached(&m, "misses", "compiled"), 0.0, "{}", m.1);
    assert!(cached(&m, "hits", "compiled") >= 1.0, "{}", m.1);
    assert_eq!(cached(&m, "hits", "snapshot"), 1.0, "{}", m.1);
    assert_eq!(cached(&m, "misses", "snapshot"), 0.0, "{}", m.1);
    // `wisp serve` names the function after the file.
    let from_snapshot = [("function", "init-prints")];
    assert_eq!(
        value(&m, "wisp_instances_from_snapshot_total", &from_snapshot),
        1.0,
        "{}",
        m.1
    );
    // Nothing was compiled on the way: the restart took only hits.
    assert!(!wisp.logs().contains("compiling"), "{}", wisp.logs());
}
