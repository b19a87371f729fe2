//! Run-to-completion jobs through the real binary: parallelism, retries,
//! failure, cancel, `kill -9` and resume, and the commands Wisp refuses.
//!
//! The `resize` guest reports each task's start and end to a [`Sink`] this
//! test runs (see guest-examples/resize).

mod common;

use std::path::Path;
use std::time::Duration;

use common::prom::{scrape, value};
use common::{Sink, Wisp, client, eventually, guest, send, wisp_command};
use serde_json::{Value, json};

fn manifest(dir: &Path, sink: &Sink, job: &str) -> String {
    format!(
        r#"
{server}
[[job]]
name = "resize"
component = "{resize}"
args = ["--quality", "80"]
allowed_outbound_hosts = ["{sink}"]
{job}
"#,
        server = common::server_table(dir),
        resize = guest("resize").display(),
        sink = sink.url,
    )
}

async fn run(wisp: &Wisp, body: Value) -> String {
    let admin = wisp.admin.as_ref().unwrap();
    let (status, text) = send(
        client()
            .post(format!("{admin}/v1/jobs/resize/executions"))
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["execution"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn describe(wisp: &Wisp, id: &str) -> Value {
    let admin = wisp.admin.as_ref().unwrap();
    let (status, text) = send(client().get(format!("{admin}/v1/executions/{id}"))).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Waits until execution `id` is no longer running; returns it described.
async fn finished(wisp: &Wisp, id: &str) -> Value {
    for _ in 0..600 {
        let d = describe(wisp, id).await;
        if d["state"] != "running" {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("execution {id} never finished");
}

/// `(task, event)` pairs the sink saw for execution `id`, in order.
fn events(sink: &Sink, id: &str) -> Vec<(u64, String)> {
    sink.reports()
        .iter()
        .filter(|r| r.body["execution"] == id)
        .map(|r| {
            (
                r.body["task"].as_u64().unwrap(),
                r.body["event"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_tasks_run_three_at_a_time_and_each_index_once() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        "tasks = 10\nparallelism = 3\nenv = {{ SINK = \"{}\", SLEEP_MS = \"150\" }}",
        sink.url
    );
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, &job));
    let id = run(&wisp, json!({})).await;
    let done = finished(&wisp, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let mut running = 0i32;
    let mut most = 0;
    let mut started = std::collections::BTreeSet::new();
    for (task, event) in events(&sink, &id) {
        if event == "start" {
            running += 1;
            started.insert(task);
        } else {
            running -= 1;
        }
        most = most.max(running);
    }
    assert!(most <= 3, "{most} tasks ran at once");
    assert!(most >= 2, "the tasks never overlapped");
    assert_eq!(started, (0..10).collect());
    for t in done["task_states"].as_array().unwrap() {
        assert_eq!(
            (t["state"].clone(), t["exit"].clone()),
            (json!("succeeded"), json!("exit code 0")),
            "{t}"
        );
    }
    wisp.wait_for_log("resize: task 3/10 attempt 0 args=[\"--quality\", \"80\"]");
    let admin = wisp.admin.as_ref().unwrap();
    let (_, logs) = send(client().get(format!("{admin}/v1/executions/{id}/logs?task=3"))).await;
    let logs: Value = serde_json::from_str(&logs).unwrap();
    assert!(
        logs.as_array().unwrap().iter().all(|l| l["task"] == 3),
        "{logs}"
    );
    assert!(logs.to_string().contains("resize: task 3/10"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_attempts_are_retried_and_a_task_out_of_retries_fails_the_execution() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(
        dir.path(),
        &manifest(dir.path(), &sink, "tasks = 3\nmax_retries = 2"),
    );
    let id = run(&wisp, json!({ "env": { "FAIL_UNTIL_ATTEMPT": "2" } })).await;
    let done = finished(&wisp, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    for t in done["task_states"].as_array().unwrap() {
        assert_eq!(t["attempts"], 3, "{t}");
    }
    let id = run(&wisp, json!({ "env": { "FAIL_TASK": "1" } })).await;
    let done = finished(&wisp, &id).await;
    assert_eq!(done["state"], "failed", "{done}");
    let t1 = &done["task_states"][1];
    assert_eq!(
        (
            t1["state"].clone(),
            t1["attempts"].clone(),
            t1["exit"].clone()
        ),
        (json!("failed"), json!(3), json!("exit code 2"))
    );
    assert_eq!(done["task_states"][0]["state"], "succeeded");

    // Per job: 3 × 3 attempts, then 3 + 1 + 1; each attempt an invocation
    // of trigger `job`, metered under the job's name.
    let job = [("job", "resize")];
    let mut m = scrape(&wisp).await;
    let ended = |m: &(prometheus_parse::Scrape, String)| {
        value(m, "wisp_job_executions_succeeded_total", &job)
            + value(m, "wisp_job_executions_failed_total", &job)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ended(&m) < 2.0 {
        assert!(std::time::Instant::now() < deadline, "{}", m.1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = scrape(&wisp).await;
    }
    for (name, want) in [
        ("wisp_job_executions_started_total", 2.0),
        ("wisp_job_executions_succeeded_total", 1.0),
        ("wisp_job_executions_failed_total", 1.0),
        ("wisp_job_task_attempts_total", 14.0),
        ("wisp_job_tasks_succeeded_total", 5.0),
        ("wisp_job_tasks_retried_total", 8.0),
        ("wisp_job_tasks_failed_total", 1.0),
    ] {
        assert_eq!(value(&m, name, &job), want, "{name}");
    }
    let as_job = [("function", "resize"), ("trigger", "job")];
    assert_eq!(value(&m, "wisp_invocations_total", &as_job), 14.0);
    let outcome = |class| {
        value(
            &m,
            "wisp_invocation_outcomes_total",
            &[as_job[0], as_job[1], ("outcome", class)],
        )
    };
    assert_eq!((outcome("2xx"), outcome("5xx")), (5.0, 9.0));
    assert!(value(&m, "wisp_invocation_gb_seconds_total", &as_job) > 0.0);

    // The CLI follows an execution and says how it ended in its status.
    let admin = wisp.admin.clone().unwrap();
    let out = wisp_command(&[
        "jobs", "run", "resize", "--tasks", "2", "--wait", "--admin", &admin,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = wisp_command(&[
        "jobs",
        "run",
        "resize",
        "--env",
        "FAIL_TASK=0",
        "--wait",
        "--admin",
        &admin,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_running_tasks() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        "tasks = 4\nparallelism = 2\nenv = {{ SINK = \"{}\", SLEEP_MS = \"30000\" }}",
        sink.url
    );
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, &job));
    let id = run(&wisp, json!({})).await;
    eventually("two tasks start", || events(&sink, &id).len() >= 2).await;
    let admin = wisp.admin.as_ref().unwrap();
    let (status, body) = send(client().post(format!("{admin}/v1/executions/{id}/cancel"))).await;
    assert_eq!(status, 204, "{body}");
    let done = finished(&wisp, &id).await;
    assert_eq!(done["state"], "cancelled", "{done}");
    assert_eq!(
        events(&sink, &id).len(),
        2,
        "more tasks started after the cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_execution_resumes_without_rerunning_finished_tasks() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        "tasks = 6\nparallelism = 1\nenv = {{ SINK = \"{}\", SLEEP_MS = \"300\" }}",
        sink.url
    );
    let text = manifest(dir.path(), &sink, &job);
    let mut wisp = Wisp::up(dir.path(), &text);
    let id = run(&wisp, json!({})).await;
    // Tasks recorded as succeeded (what a restart trusts), then the kill.
    let ended_before: Vec<u64> = loop {
        let d = describe(&wisp, &id).await;
        let done: Vec<u64> = d["task_states"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "succeeded")
            .map(|t| t["index"].as_u64().unwrap())
            .collect();
        if done.len() >= 2 {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    wisp.kill();
    assert!(ended_before.len() < 6, "all tasks finished before the kill");
    wisp = Wisp::up(dir.path(), &text);
    let done = finished(&wisp, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let all = events(&sink, &id);
    for task in ended_before {
        let starts = all
            .iter()
            .filter(|(t, e)| *t == task && e == "start")
            .count();
        assert_eq!(
            starts, 1,
            "task {task} finished before the kill and ran again"
        );
    }
    for task in 0..6 {
        assert!(
            all.iter().any(|(t, e)| *t == task && e == "end"),
            "task {task} never finished"
        );
    }
}

#[test]
fn components_that_are_not_commands_are_refused_naming_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let reactor = dir.path().join("reactor.wasm");
    std::fs::write(
        &reactor,
        wat::parse_str(r#"(module (func (export "_initialize")))"#).unwrap(),
    )
    .unwrap();
    let cases = [
        (reactor.display().to_string(), "no `_start`"),
        (guest("hello").display().to_string(), "not a command"),
    ];
    for (component, expected) in cases {
        let text = format!("[[job]]\nname = \"j\"\ncomponent = \"{component}\"\n");
        let err = match Wisp::up_result(dir.path(), &text) {
            Ok(_) => panic!("a job of {component} was accepted"),
            Err(logs) => logs,
        };
        assert!(
            err.contains(expected) && err.contains("job `j`"),
            "expected `{expected}` in:\n{err}"
        );
    }
    let text = format!(
        "[[job]]\nname = \"j\"\ncomponent = \"{}\"\ntasks = 0\n",
        guest("resize").display()
    );
    let err = Wisp::up_result(dir.path(), &text).err().unwrap();
    assert!(
        err.contains("wisp.toml:") && err.contains("`tasks`: 0 is not between"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_starts_executions_of_a_job() {
    let sink = Sink::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let job =
        "tasks = 2\n\n[[schedule]]\nname = \"nightly\"\ncron = \"* * * * * *\"\njob = \"resize\"\n";
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), &sink, job));
    let admin = wisp.admin.clone().unwrap();
    let execution = loop {
        let (_, body) = send(client().get(format!("{admin}/v1/jobs/resize/executions"))).await;
        let list: Value = serde_json::from_str(&body).unwrap();
        if let Some(first) = list.as_array().and_then(|l| l.last()) {
            break first["id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let done = finished(&wisp, &execution).await;
    assert_eq!(
        (done["state"].clone(), done["tasks"].clone()),
        (json!("succeeded"), json!(2))
    );
    let (_, body) = send(client().get(format!("{admin}/v1/schedules"))).await;
    assert!(body.contains("job resize"), "{body}");
}
