//! Cost metering through the real binary: every invocation's access record
//! carries its guest CPU time, peak memory and GB-seconds (in `wisp logs
//! --json` and the admin API), the totals reach `/metrics` and `wisp
//! functions describe`, and a function past its `budget` answers 429,
//! saying why and until when.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::prom::{buckets, scrape, value};
use common::{Wisp, client, guest, refused_at_load, send, server_table, wisp_command};
use serde_json::Value;

fn manifest(dir: &Path) -> String {
    format!(
        r#"{server}
[[function]]
name = "burn"
component = "{burn}"
route = "/burn"
memory = "256Mi"

[[function]]
name = "slow"
component = "{slow}"
route = "/slow"
memory = "128Mi"

[[function]]
name = "tmp"
component = "{tmp}"
route = "/tmp"
memory = "64Mi"

[[function]]
name = "tiny"
component = "{slow}"
route = "/tiny"
memory = "128Mi"
budget = 0.01
"#,
        server = server_table(dir),
        burn = guest("burn").display(),
        slow = guest("slow").display(),
        tmp = guest("tmp-probe").display(),
    )
}

/// GETs `url`; returns the status, the invocation id header and the body.
async fn invoke(url: &str) -> (u16, String, String) {
    let resp = client().get(url).send().await.unwrap();
    let id = resp.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let status = resp.status().as_u16();
    (status, id, resp.text().await.unwrap())
}

/// The access record of invocation `id` of `function` from the admin API,
/// polled until it is written (records are written asynchronously).
async fn access_record(wisp: &Wisp, function: &str, id: &str) -> Value {
    let admin = wisp.admin.as_ref().unwrap();
    let url = format!("{admin}/v1/functions/{function}/logs?invocation={id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = send(client().get(&url)).await;
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        let lines = page["lines"].as_array().unwrap();
        if let Some(record) = lines.iter().find(|l| l["stream"] == "access") {
            return record.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no access record of {id}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn number(record: &Value, field: &str) -> f64 {
    record[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no {field} in {record}"))
}

/// The memory limit × wall time of `record`, in GiB-seconds.
fn expected_gb_s(record: &Value, limit_mib: f64) -> f64 {
    limit_mib / 1024.0 * number(record, "duration_ms") / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_invocation_is_metered_and_totals_reach_metrics_and_describe() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path()));
    let url = &wisp.url;

    let (status, burned, _) = invoke(&format!("{url}/burn?ms=500")).await;
    assert_eq!(status, 200);
    let (status, slept, _) = invoke(&format!("{url}/slow?ms=500")).await;
    assert_eq!(status, 200);
    let (status, filled, body) = invoke(&format!("{url}/tmp/fill?mb=8")).await;
    assert_eq!((status, body.as_str()), (200, "wrote 8 MiB\n"));

    // Computing 500 ms is charged CPU time (sampled at 10 ms ticks, so a
    // loaded machine may charge less, never much more).
    let burn = access_record(&wisp, "burn", &burned).await;
    assert!(number(&burn, "cpu_ms") >= 100.0, "{burn}");
    assert!(
        number(&burn, "cpu_ms") <= number(&burn, "duration_ms") + 10.0,
        "{burn}"
    );
    // Sleeping 500 ms is not.
    let slow = access_record(&wisp, "slow", &slept).await;
    assert!(number(&slow, "duration_ms") >= 500.0, "{slow}");
    assert!(
        number(&slow, "cpu_ms") <= number(&slow, "duration_ms") / 10.0,
        "{slow}"
    );
    // GB-seconds are the memory limit × wall time.
    for (record, limit_mib) in [(&burn, 256.0), (&slow, 128.0)] {
        let want = expected_gb_s(record, limit_mib);
        let got = number(record, "gb_s");
        assert!(
            (got - want).abs() <= want * 0.01 + 1e-6,
            "{got} vs {want}: {record}"
        );
    }
    // The 8 MiB written to /tmp count in the peak, beside linear memory.
    let tmp = access_record(&wisp, "tmp", &filled).await;
    let peak = record_u64(&tmp, "peak_memory_bytes");
    assert!(peak >= 8 << 20, "{tmp}");
    assert!(peak <= 64 << 20, "{tmp}");

    // `wisp logs --json` shows the same fields; people get them too.
    let admin = wisp.admin.clone().unwrap();
    let out = wisp_command(&["logs", "burn", "--json", "--admin", &admin]);
    let json = String::from_utf8(out.stdout).unwrap();
    let line: Value = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["stream"] == "access")
        .unwrap_or_else(|| panic!("no access line in {json}"));
    assert_eq!(line["cpu_ms"], burn["cpu_ms"]);
    assert_eq!(line["gb_s"], burn["gb_s"]);
    let out = wisp_command(&["logs", "burn", "--admin", &admin]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("GB-s)") && text.contains(", cpu "), "{text}");

    // Totals per function and trigger in /metrics.
    let m = scrape(&wisp).await;
    let http = |function| [("function", function), ("trigger", "http")];
    let cpu = value(&m, "wisp_invocation_cpu_seconds_total", &http("burn"));
    assert!(
        (cpu - number(&burn, "cpu_ms") / 1000.0).abs() < 1e-9,
        "{cpu}"
    );
    let gb_s = value(&m, "wisp_invocation_gb_seconds_total", &http("slow"));
    assert!((gb_s - number(&slow, "gb_s")).abs() < 1e-9, "{gb_s}");
    // One observation above 8 MiB: none in the buckets below it.
    let peaks = buckets(&m, "wisp_invocation_peak_memory_bytes", &http("tmp"));
    for (le, count) in peaks {
        let want = if le >= peak as f64 { 1.0 } else { 0.0 };
        assert_eq!(count, want, "bucket {le}");
    }

    // And in `wisp functions describe`.
    let out = wisp_command(&["functions", "describe", "burn", "--admin", &admin]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "revision       1 (wasi:http@0.2)",
        "memory         256Mi",
        "invocations    1",
        "cpu seconds    ",
        "GB-seconds     ",
        "peak memory    ",
    ] {
        assert!(text.contains(want), "no `{want}` in\n{text}");
    }
    let metrics = wisp.metrics("burn").await;
    assert!(
        (number(&metrics, "cpu_seconds") - cpu).abs() < 1e-9,
        "{metrics}"
    );
    assert!(number(&metrics, "wall_seconds") >= 0.5, "{metrics}");
}

/// A reused instance is charged for the CPU its requests use, not for the
/// time it sat idle between them: its epoch deadline is renewed when new
/// work starts (it used to date from its previous request, so every
/// request after an idle tick was charged 10 ms and waited for a CPU turn
/// as if it had computed for long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_instance_is_not_charged_for_its_idle_time() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "{}\n[[function]]\nname = \"reused\"\ncomponent = \"{}\"\nroute = \"/reused\"\n\
         isolation = \"instance\"\n",
        server_table(dir.path()),
        guest("slow").display()
    );
    let wisp = Wisp::up(dir.path(), &manifest);
    let url = format!("{}/reused", wisp.url);
    // The instance is made and serves its first request.
    assert_eq!(invoke(&url).await.0, 200);
    let mut charged = Vec::new();
    for _ in 0..5 {
        // The scenario, not a synchronisation: the instance sits idle
        // across at least one 10 ms epoch tick.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let (status, id, _) = invoke(&url).await;
        assert_eq!(status, 200);
        charged.push(number(&access_record(&wisp, "reused", &id).await, "cpu_ms"));
    }
    // Each request computes for well under a millisecond: a tick falls
    // inside one now and then, not inside every one.
    assert!(
        charged.contains(&0.0),
        "cpu_ms of each request: {charged:?}"
    );
    let metrics = wisp.metrics("reused").await;
    assert_eq!(record_u64(&metrics, "instances_reused"), 5, "{metrics}");
}

fn record_u64(record: &Value, field: &str) -> u64 {
    record[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {record}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_past_its_budget_answers_429_saying_until_when() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path()));
    let url = &wisp.url;
    // 128 MiB for at least 200 ms is 0.025 GB-s, past the 0.01 budget.
    let (status, _, _) = invoke(&format!("{url}/tiny?ms=200")).await;
    assert_eq!(status, 200);
    let resp = client().get(format!("{url}/tiny")).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    let retry_after: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("budget spent")
            && body.contains("budget = 0.01 GB-s")
            && body.contains("refused until 20"),
        "{body}"
    );
    wisp.wait_for_log("budget spent: the function used more than budget = 0.01 GB-s");
    // Other functions are not affected.
    let (status, _, _) = invoke(&format!("{url}/slow")).await;
    assert_eq!(status, 200);
    let m = scrape(&wisp).await;
    let refused = value(
        &m,
        "wisp_invocation_outcomes_total",
        &[
            ("function", "tiny"),
            ("trigger", "http"),
            ("outcome", "budget"),
        ],
    );
    assert_eq!(refused, 1.0);
    let metrics = wisp.metrics("tiny").await;
    assert!(
        number(&metrics, "gb_seconds_last_hour") >= 0.025,
        "{metrics}"
    );
}

#[test]
fn a_budget_that_is_not_a_positive_number_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let function = |budget: &str| {
        format!(
            "[[function]]\nname = \"f\"\ncomponent = \"{}\"\nbudget = {budget}\n",
            guest("slow").display()
        )
    };
    let err = refused_at_load(dir.path(), &function("-1.0"), "budget");
    assert!(err.contains("not a positive number of GB-seconds"), "{err}");
    refused_at_load(dir.path(), &function("0"), "positive number");
    refused_at_load(dir.path(), &function("\"lots\""), "budget");
}
