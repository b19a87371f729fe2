//! Task queues and schedules through the real binary: rates and
//! concurrency, schedule_time, dedup, retries, failure, `kill -9`; cron
//! firings, pause and resume, missed firings after downtime, time zones.
//!
//! Tasks carry CloudEvent headers so the `event-probe` guest takes them;
//! it reports each delivery (with `x-wisp-task-attempt` as its attempt) to
//! a [`Sink`] this test runs, then answers as the task's body asks.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Sink, Wisp, client, eventually, guest, send};
use serde_json::{Value, json};

fn manifest(dir: &Path, sink: &Sink, extra: &str) -> String {
    format!(
        r#"
{server}
[[function]]
name = "probe"
component = "{probe}"
route = "/probe"
env = {{ SINK = "{sink}" }}
allowed_outbound_hosts = ["{sink}"]
{extra}
"#,
        server = common::server_table(dir),
        probe = guest("event-probe").display(),
        sink = sink.url,
    )
}

/// A task the probe takes: CloudEvent headers, and `data` as its body.
fn task(id: &str, data: Value) -> Value {
    json!({
        "headers": {
            "ce-specversion": "1.0", "ce-id": id, "ce-source": "/tasks",
            "ce-type": "com.example.task", "content-type": "application/json"
        },
        "body": data.to_string(),
    })
}

async fn enqueue(wisp: &Wisp, queue: &str, body: Value) -> (u16, String) {
    let admin = wisp.admin.as_ref().unwrap();
    send(
        client()
            .post(format!("{admin}/v1/queues/{queue}/tasks"))
            .json(&body),
    )
    .await
}

async fn admin(wisp: &Wisp, method: &str, path: &str) -> (u16, String) {
    let admin = wisp.admin.as_ref().unwrap();
    let req = client().request(method.parse().unwrap(), format!("{admin}{path}"));
    send(req).await
}

fn firings_of(sink: &Sink, schedule: &str) -> Vec<Value> {
    sink.reports()
        .iter()
        .filter(|r| r.body["type"] == "dev.wisp.schedule.fired" && r.body["subject"] == schedule)
        .map(|r| serde_json::from_str(r.body["data"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_bounds_the_rate_and_max_concurrent_the_parallelism() {
    let sink = Sink::start(Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let queue = r#"
[[queue]]
name = "emails"
function = "probe"
max_dispatches_per_second = 20
max_burst = 10
max_concurrent = 3
"#;
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, queue));
    let started = Instant::now();
    for i in 0..100 {
        let (status, body) = enqueue(&wisp, "emails", task(&format!("e{i}"), json!({}))).await;
        assert_eq!(status, 201, "{body}");
    }
    eventually("all 100 tasks are delivered", || sink.ids().len() == 100).await;
    let elapsed = sink.reports().last().unwrap().at - started;
    // 100 dispatches with a burst of 10 at 20/s take at least 90 × 50 ms.
    assert!(
        elapsed >= Duration::from_millis(4450),
        "100 tasks in {elapsed:?}: faster than the bucket allows"
    );
    assert!(
        sink.max_in_flight() <= 3,
        "{} at once",
        sink.max_in_flight()
    );
    assert_eq!(sink.reports()[0].body["queue"], "emails");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_time_dedup_retries_and_failure() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let queue = r#"
[[queue]]
name = "q"
function = "probe"
max_attempts = 3
min_backoff = "200ms"
max_backoff = "10s"
max_task_size = "1Ki"
"#;
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, queue));

    // Not before its schedule_time.
    let at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let mut later = task("later", json!({}));
    later["schedule_time"] = json!(at.to_rfc3339());
    let enqueued = Instant::now();
    assert_eq!(enqueue(&wisp, "q", later).await.0, 201);
    // In the past: delivered now.
    let mut past = task("past", json!({}));
    past["schedule_time"] = json!("2020-01-01T00:00:00Z");
    assert_eq!(enqueue(&wisp, "q", past).await.0, 201);

    // Named: a second add within the hour is refused.
    let mut named = task("named", json!({}));
    named["name"] = json!("welcome-42");
    let (status, body) = enqueue(&wisp, "q", named.clone()).await;
    assert_eq!((status, body.contains("welcome-42")), (201, true), "{body}");
    let (status, body) = enqueue(&wisp, "q", named).await;
    assert_eq!(status, 409, "{body}");

    // Always failing: three attempts with growing backoff, then failed.
    let mut failing = task("failing", json!({ "status": 500 }));
    failing["name"] = json!("doomed");
    assert_eq!(enqueue(&wisp, "q", failing).await.0, 201);

    eventually("the scheduled task runs", || !sink.of("later").is_empty()).await;
    assert!(sink.of("later")[0].at - enqueued >= Duration::from_millis(1900));
    assert!(!sink.of("past").is_empty());
    eventually("the failing task is tried three times", || {
        sink.of("failing").len() >= 3
    })
    .await;
    let seen = sink.of("failing");
    let attempts: Vec<_> = seen
        .iter()
        .map(|r| r.body["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(200));
    assert!(seen[2].at - seen[1].at >= Duration::from_millis(400));
    let doomed = loop {
        let (_, body) = admin(&wisp, "GET", "/v1/queues/q/tasks").await;
        let list: Value = serde_json::from_str(&body).unwrap();
        let doomed = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "doomed")
            .cloned()
            .unwrap();
        if doomed["state"] == "failed" {
            break doomed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        (doomed["attempts"].clone(), doomed["last_status"].clone()),
        (json!(3), json!(500))
    );

    // Bad input names what is wrong.
    let (status, body) = enqueue(&wisp, "q", json!({ "body": "x".repeat(2000) })).await;
    assert_eq!(status, 400);
    assert!(body.contains("max_task_size"), "{body}");
    let (status, body) = enqueue(&wisp, "q", json!({ "schedule_time": "soon" })).await;
    assert_eq!(status, 400);
    assert!(body.contains("schedule_time"), "{body}");
    let (status, body) = enqueue(&wisp, "nope", json!({})).await;
    assert_eq!(status, 404);
    assert!(body.contains("no queue `nope`"), "{body}");
    let (status, _) = admin(&wisp, "DELETE", "/v1/queues/q/tasks/doomed").await;
    assert_eq!(status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_tasks_pending_and_in_flight_loses_none() {
    let sink = Sink::start(Duration::from_millis(10)).await;
    let dir = tempfile::tempdir().unwrap();
    let queue = "[[queue]]\nname = \"q\"\nfunction = \"probe\"\nmax_concurrent = 4\n";
    let text = manifest(dir.path(), &sink, queue);
    let mut wisp = Wisp::up(dir.path(), &text);
    for i in 0..200 {
        let (status, body) = enqueue(&wisp, "q", task(&format!("k{i}"), json!({}))).await;
        assert_eq!(status, 201, "{body}");
    }
    eventually("some tasks are delivered", || sink.ids().len() >= 50).await;
    wisp.kill();
    assert!(sink.ids().len() < 200, "all delivered before the kill");
    wisp = Wisp::up(dir.path(), &text);
    eventually("every task is delivered", || sink.ids().len() == 200).await;
    drop(wisp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seconds_cron_fires_and_pause_and_resume_stop_and_restart_it() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let schedule = r#"
[[schedule]]
name = "tick"
cron = "* * * * * *"
function = "probe"
"#;
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, schedule));
    eventually("it fires twice", || firings_of(&sink, "tick").len() >= 2).await;

    assert_eq!(
        admin(&wisp, "POST", "/v1/schedules/tick/pause").await.0,
        204
    );
    let (_, body) = admin(&wisp, "GET", "/v1/schedules").await;
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["paused"], true);
    assert!(list[0]["next"].is_null());
    let paused_at = firings_of(&sink, "tick").len();
    // Observe a window of more than two periods: nothing fires.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        firings_of(&sink, "tick").len(),
        paused_at,
        "fired while paused"
    );

    assert_eq!(
        admin(&wisp, "POST", "/v1/schedules/tick/resume").await.0,
        204
    );
    eventually("it fires again", || {
        firings_of(&sink, "tick").len() > paused_at
    })
    .await;

    // `run` fires at once, also while paused.
    assert_eq!(
        admin(&wisp, "POST", "/v1/schedules/tick/pause").await.0,
        204
    );
    let before = firings_of(&sink, "tick").len();
    assert_eq!(admin(&wisp, "POST", "/v1/schedules/tick/run").await.0, 202);
    eventually("the manual run happens", || {
        firings_of(&sink, "tick").len() > before
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missed_firings_run_once_run_all_or_are_skipped_after_downtime() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let schedules = ["skip", "run-once", "run-all"]
        .iter()
        .map(|policy| {
            format!(
                "[[schedule]]\nname = \"{policy}\"\ncron = \"* * * * * *\"\nfunction = \"probe\"\nmissed = \"{policy}\"\n"
            )
        })
        .collect::<String>();
    let text = manifest(dir.path(), &sink, &schedules);
    let mut wisp = Wisp::up(dir.path(), &text);
    eventually("each schedule fires once", || {
        ["skip", "run-once", "run-all"]
            .iter()
            .all(|s| !firings_of(&sink, s).is_empty())
    })
    .await;
    let policies = ["skip", "run-once", "run-all"];
    let times = |schedule: &str| -> Vec<chrono::DateTime<chrono::Utc>> {
        firings_of(&sink, schedule)
            .iter()
            .map(|f| f["scheduled_time"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    wisp.kill();
    let last_seen: Vec<_> = policies
        .iter()
        .map(|s| times(s).into_iter().max().unwrap())
        .collect();
    // Downtime across several due times.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let restart = chrono::Utc::now();
    wisp = Wisp::up(dir.path(), &text);
    // Firings due while down: after the last one seen, before the restart.
    let missed = |i: usize| {
        times(policies[i])
            .into_iter()
            .filter(|t| *t > last_seen[i] && *t < restart)
            .count()
    };
    eventually("run-all catches up every missed firing", || missed(2) >= 3).await;
    eventually("run-once catches up one", || missed(1) >= 1).await;
    // Each fires on time again after the restart.
    eventually("skip fires again after the restart", || {
        times("skip").iter().any(|t| *t > restart)
    })
    .await;
    assert_eq!(missed(0), 0, "skip ran a missed firing");
    assert_eq!(missed(1), 1, "run-once ran more than one missed firing");
    drop(wisp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_firings_in_a_dst_changing_zone_are_the_librarys() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let schedule = r#"
[[schedule]]
name = "report"
cron = "30 2 * * *"
time_zone = "America/New_York"
function = "probe"
"#;
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, schedule));
    let (_, body) = admin(&wisp, "GET", "/v1/schedules").await;
    let list: Value = serde_json::from_str(&body).unwrap();
    let next_utc: chrono::DateTime<chrono::Utc> =
        list[0]["next_utc"].as_str().unwrap().parse().unwrap();
    let cron = wisp::config::CronSchedule::parse("30 2 * * *", "America/New_York").unwrap();
    let expected = cron
        .next_after(chrono::Utc::now() - chrono::Duration::seconds(5))
        .unwrap();
    assert_eq!(next_utc, expected);
    assert!(
        list[0]["next"].as_str().unwrap().contains("T02:30:00"),
        "{}",
        list[0]
    );
}

#[test]
fn bad_schedules_and_queues_are_refused_at_load_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let probe = guest("event-probe");
    let function = format!(
        "[[function]]\nname = \"f\"\ncomponent = \"{}\"\n",
        probe.display()
    );
    let cases = [
        (
            "[[schedule]]\nname = \"s\"\ncron = \"61 * * * *\"\nfunction = \"f\"\n",
            "`cron`: `61 * * * *`: the minute field `61`",
        ),
        (
            "[[schedule]]\nname = \"s\"\ncron = \"* * * * *\"\ntime_zone = \"Mars/Olympus\"\nfunction = \"f\"\n",
            "`time_zone`",
        ),
        (
            "[[schedule]]\nname = \"s\"\ncron = \"* * * * *\"\nfunction = \"nobody\"\n",
            "no function `nobody`",
        ),
        (
            "[[queue]]\nname = \"q\"\nfunction = \"nobody\"\n",
            "queue `q`: `function`: no function `nobody`",
        ),
        (
            "[[queue]]\nname = \"q\"\nfunction = \"f\"\nmax_dispatches_per_second = 0\n",
            "`max_dispatches_per_second`",
        ),
    ];
    for (text, expected) in cases {
        common::refused_at_load(dir.path(), &format!("{function}\n{text}"), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_add_tasks_to_granted_queues_only() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"enqueue = ["q"]

[[queue]]
name = "q"
function = "probe"
max_attempts = 1

[[queue]]
name = "other"
function = "probe"
"#;
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, extra));
    let child = task("child", json!({}));
    let (status, body) = enqueue(
        &wisp,
        "q",
        task(
            "parent",
            json!({ "enqueue": { "queue": "q", "task": child } }),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    eventually("the task the guest added runs", || {
        !sink.of("child").is_empty()
    })
    .await;
    assert_eq!(sink.of("child")[0].body["queue"], "q");

    let sneaky = task("sneaky", json!({}));
    let (status, _) = enqueue(
        &wisp,
        "q",
        task(
            "denied",
            json!({ "enqueue": { "queue": "other", "task": sneaky } }),
        ),
    )
    .await;
    assert_eq!(status, 201);
    wisp.wait_for_log("enqueue denied: queue not in `enqueue`");
    assert!(sink.of("sneaky").is_empty());
}
