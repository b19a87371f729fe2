use super::*;
use crate::logs::query::StatusFilter;
use crate::logs::{Access, RecordLine};
use crate::telemetry::ids::Trigger;

fn guest(function: &str, invocation: u64, line: &str) -> Entry {
    Entry::guest(
        function.into(),
        Some(InvocationId(invocation)),
        "stdout",
        line.into(),
    )
}

fn access(function: &str, invocation: u64, status: u16) -> Entry {
    Entry::access(
        function.into(),
        Some(3),
        InvocationId(invocation),
        Trigger::Http,
        Access {
            status,
            duration_ms: 1.5,
            request: Some((http::Method::GET, "/x".into())),
            cpu_ms: 10.0,
            peak_memory_bytes: 1 << 20,
            gb_s: 0.0002,
        },
        RecordLine::Request,
    )
}

async fn store(max_bytes: u64) -> LogStore {
    let bounds = Bounds {
        max_bytes,
        max_age: Duration::from_secs(3600),
    };
    LogStore::open(None, bounds).unwrap()
}

#[tokio::test]
async fn status_selects_whole_invocations_and_guest_lines_get_their_revision() {
    let logs = store(1 << 20).await;
    for e in [
        guest("f", 1, "one"),
        access("f", 1, 200),
        guest("f", 2, "two"),
        access("f", 2, 503),
        guest("g", 2, "other function"),
    ] {
        logs.record(e);
    }
    let failing = Query {
        status: Some("5xx".parse::<StatusFilter>().unwrap()),
        ..Query::default()
    };
    let page = logs.query("f", &failing).await.unwrap();
    let got: Vec<_> = page.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(got, ["two", "GET /x 503"]);
    assert_eq!(page.lines[0].revision, Some(3));
    assert_eq!(page.lines[0].trigger.as_deref(), Some("http"));
    // Following from the cursor: a later failing invocation comes whole.
    logs.record(guest("f", 4, "four"));
    logs.record(access("f", 4, 500));
    let later = Query {
        after: Some(page.next),
        ..failing
    };
    let page = logs.query("f", &later).await.unwrap();
    let got: Vec<_> = page.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(got, ["four", "GET /x 500"]);
    // A stream filter leaves the guest's lines out.
    let access_only = Query {
        stream: Some("access"),
        ..Query::default()
    };
    let page = logs.query("f", &access_only).await.unwrap();
    let got: Vec<_> = page.lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(got, ["GET /x 200", "GET /x 503", "GET /x 500"]);
}

#[tokio::test]
async fn a_function_with_its_own_bounds_keeps_them() {
    let logs = store(1 << 20).await;
    logs.set_bounds("small", Some(20 * (RECORD_OVERHEAD + 10)), None);
    for i in 0..200 {
        logs.record(guest("small", 1, &format!("line {i:05}")));
        logs.record(guest("large", 1, &format!("line {i:05}")));
    }
    logs.flush().await.unwrap();
    let all = Query {
        limit: 10_000,
        ..Query::default()
    };
    assert!(logs.query("small", &all).await.unwrap().lines.len() <= 20);
    assert_eq!(logs.query("large", &all).await.unwrap().lines.len(), 200);
}

#[tokio::test]
async fn a_function_keeps_its_newest_records_within_its_bytes() {
    let max = 100 * (RECORD_OVERHEAD + 10);
    let logs = store(max).await;
    for i in 0..1000 {
        logs.record(guest("f", 1, &format!("line {i:05}")));
    }
    logs.record(guest("g", 1, "kept"));
    logs.flush().await.unwrap();
    let all = Query {
        limit: 10_000,
        ..Query::default()
    };
    let lines = logs.query("f", &all).await.unwrap().lines;
    assert!(lines.len() <= 100 && lines.len() >= 80, "{}", lines.len());
    assert_eq!(lines.last().unwrap().line, "line 00999");
    assert_eq!(logs.query("g", &all).await.unwrap().lines.len(), 1);
}
