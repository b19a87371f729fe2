//! Pre-initialized snapshots and the artifact cache: init runs once at
//! deploy (for HTTP functions, command functions and jobs); with a fresh
//! cache an HTTP function serves before its snapshot is compiled, each
//! instance running init when made, then from the snapshot; a warm restart
//! compiles nothing, damaged entries are rebuilt.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Wisp, client, counter, get, guest, send, wisp_command};
use serde_json::{Value, json};

/// Logged when a snapshot made at deploy is compiled and new instances
/// start from it.
const SNAPSHOT_READY: &str = "snapshot ready: new instances start from it";

fn serve_cached(name: &str, cache: &Path, extra: &[&str]) -> Wisp {
    let mut args = vec!["--cache-dir", cache.to_str().unwrap()];
    args.extend_from_slice(extra);
    Wisp::serve(&guest(name), &args)
}

fn count(logs: &str, needle: &str) -> usize {
    logs.matches(needle).count()
}

/// `GET path` of `function` (`wisp serve` names it after the file) three
/// times at once, then once more after [`SNAPSHOT_READY`]: the responses,
/// and the function's counters between the two.
async fn before_and_after_the_switch(
    wisp: &Wisp,
    function: &str,
    path: &str,
) -> (Vec<(u16, String)>, Value) {
    let url = format!("{}{path}", wisp.url);
    let mut responses = futures::future::join_all((0..3).map(|_| get(&url))).await;
    let before = wisp.metrics(function).await;
    wisp.wait_for_log(SNAPSHOT_READY);
    responses.push(get(&url).await);
    (responses, before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_runs_once_at_deploy_and_printing_works_per_request() {
    let cache = tempfile::tempdir().unwrap();
    let wisp = serve_cached("init-prints", cache.path(), &["--admin", "127.0.0.1:0"]);
    let (responses, before) = before_and_after_the_switch(&wisp, "init-prints", "/").await;
    for response in &responses {
        assert_eq!(response, &(200, "ok\n".to_string()));
    }
    // The cache was empty: the snapshot's code takes far longer to compile
    // than the first request to be answered, by an instance of the
    // component instrumented for init that ran init when it was made.
    assert!(
        counter(&before, "instances_created") > counter(&before, "instances_from_snapshot"),
        "the first requests were served before the snapshot was compiled: {before}"
    );
    let after = wisp.metrics("init-prints").await;
    assert_eq!(
        counter(&after, "instances_from_snapshot") - counter(&before, "instances_from_snapshot"),
        1,
        "the request after the switch: {after}"
    );
    let (_, info) = get(&format!(
        "{}/v1/functions/init-prints",
        wisp.admin.as_ref().unwrap()
    ))
    .await;
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["snapshotted"], true, "{info}");
    // Guest output reaches the log in the order it was printed (through its
    // own logging thread): once the last request's line is there, so is
    // everything printed before it, the deploy's output included.
    wisp.wait_for_access_log("GET / 200", 4);
    let logs = wisp.wait_for_log_count("init-prints: handling request", 4);
    assert!(logs.contains("pre-initialized"), "{logs}");
    // Printed once, at deploy: the instances made before the switch ran
    // init again, quietly, before their request (not lazily in it, which
    // would print), and those after it started from the snapshot.
    assert_eq!(
        count(&logs, "init-prints: init ran"),
        1,
        "init's output is logged once, at deploy:\n{logs}"
    );
    assert_eq!(count(&logs, "init-prints: handling request"), 4, "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p3_handler_serves_before_and_after_its_snapshot_is_compiled() {
    let cache = tempfile::tempdir().unwrap();
    let wisp = serve_cached("p3-hello", cache.path(), &["--admin", "127.0.0.1:0"]);
    let (responses, _) = before_and_after_the_switch(&wisp, "p3-hello", "/x").await;
    for response in &responses {
        assert_eq!(response, &(200, "Hello, world! path=/x\n".to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_snapshot_init_runs_lazily_per_instance() {
    let cache = tempfile::tempdir().unwrap();
    let wisp = serve_cached("init-prints", cache.path(), &["--no-snapshot"]);
    for _ in 0..3 {
        assert_eq!(get(&format!("{}/", wisp.url)).await, (200, "ok\n".into()));
    }
    // Each instance printed `init ran` before `handling request`; guest
    // output reaches the log in that order.
    wisp.wait_for_access_log("GET / 200", 3);
    let logs = wisp.wait_for_log_count("init-prints: handling request", 3);
    assert_eq!(count(&logs, "init-prints: init ran"), 3, "{logs}");
    assert!(!logs.contains("pre-initialized"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_heavy_answers_from_its_snapshot() {
    let cache = tempfile::tempdir().unwrap();
    let wisp = serve_cached("init-heavy", cache.path(), &["--admin", "127.0.0.1:0"]);
    // The table init built, the same whether this instance ran init when
    // made (before the switch) or started from the snapshot (after it).
    let (responses, _) = before_and_after_the_switch(&wisp, "init-heavy", "/?key=42").await;
    for (status, body) in &responses {
        assert_eq!(*status, 200);
        assert!(
            body.starts_with("key=42 value=") && body.ends_with("init_runs=1\n"),
            "{body}"
        );
        assert_eq!(body, &responses[0].1);
    }
    wisp.wait_for_log("pre-initialized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_restart_compiles_nothing_and_corrupt_entries_are_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    {
        let mut wisp = serve_cached("init-prints", cache.path(), &[]);
        assert_eq!(get(&format!("{}/", wisp.url)).await.0, 200);
        let logs = wisp.wait_for_access_log("GET / 200", 1);
        assert!(
            logs.contains("compiling") && logs.contains("pre-initialized"),
            "{logs}"
        );
        // Stopped at once: a graceful stop waits for the snapshot still
        // compiling, so that the next start finds its code in the cache.
        wisp.signal("INT");
        assert!(wisp.wait_exit(Duration::from_secs(30)).success());
        let logs = wisp.logs();
        let ready = logs.find(SNAPSHOT_READY).expect(&logs);
        assert!(ready < logs.find("bye").expect(&logs), "{logs}");
    }
    {
        let wisp = serve_cached("init-prints", cache.path(), &[]);
        assert_eq!(get(&format!("{}/", wisp.url)).await, (200, "ok\n".into()));
        // Start-up is logged in full once the request's access line is, and
        // anything the guest printed before answering once its line is.
        wisp.wait_for_access_log("GET / 200", 1);
        let logs = wisp.wait_for_log("init-prints: handling request");
        assert!(
            !logs.contains("compiling"),
            "warm cache must not compile:\n{logs}"
        );
        assert!(
            !logs.contains("pre-initialized"),
            "warm cache must not re-run init:\n{logs}"
        );
        assert!(!logs.contains("init-prints: init ran"), "{logs}");
        assert!(
            !logs.contains(SNAPSHOT_READY),
            "nothing to switch to:\n{logs}"
        );
        // Only the snapshot's code: the original is neither compiled nor
        // loaded when its snapshot is cached.
        assert_eq!(
            count(&logs, "loaded compiled code from the artifact cache"),
            1,
            "{logs}"
        );
        let loaded = logs
            .lines()
            .find(|l| l.contains("loaded compiled code"))
            .unwrap();
        assert!(loaded.contains("(snapshot)"), "{loaded}");
    }
    // Flip one byte in every cached entry.
    let mut damaged = 0;
    for entry in walk(cache.path()) {
        let mut data = std::fs::read(&entry).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0x55;
        std::fs::write(&entry, data).unwrap();
        damaged += 1;
    }
    assert_eq!(
        damaged, 2,
        "expected the snapshot and its compiled code in the cache, and nothing of the original"
    );
    let wisp = serve_cached("init-prints", cache.path(), &[]);
    assert_eq!(get(&format!("{}/", wisp.url)).await, (200, "ok\n".into()));
    let logs = wisp.wait_for_access_log("GET / 200", 1);
    assert!(
        logs.contains("corrupt artifact")
            && logs.contains("compiling")
            && logs.contains("pre-initialized"),
        "{logs}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_keyed_by_environment() {
    let cache = tempfile::tempdir().unwrap();
    for (env, fresh) in [("MODE=a", true), ("MODE=a", false), ("MODE=b", true)] {
        let wisp = serve_cached("init-prints", cache.path(), &["--env", env]);
        assert_eq!(get(&format!("{}/", wisp.url)).await.0, 200);
        // Start-up is logged in full once the request's access line is.
        let logs = wisp.wait_for_access_log("GET / 200", 1);
        assert_eq!(logs.contains("pre-initialized"), fresh, "{env}:\n{logs}");
        assert_eq!(
            logs.contains("loaded snapshot from the artifact cache"),
            !fresh,
            "{env}:\n{logs}"
        );
    }
}

#[test]
fn failing_init_refuses_the_deploy_with_the_guest_output() {
    let cache = tempfile::tempdir().unwrap();
    let out = wisp_command(&[
        "serve",
        guest("init-fails").to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--cache-dir",
        cache.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "pre-initialization refused the deploy",
        "stdout: init-fails: loading configuration",
        "init-fails: configuration is missing, on purpose",
    ] {
        assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
    }
}

/// `cgi-init` (a command with a prime sieve as its init hook) twice: as a
/// CGI function with snapshots and without, and as a job.
fn command_manifest(dir: &Path) -> String {
    format!(
        r#"
{server}cache_dir = "{cache}"

[[function]]
name = "primes"
component = "{cgi}"
handler = "cgi"
route = "/primes"
args = ["--flag", "x"]
env = {{ GREETING = "hello" }}

[[function]]
name = "primes-lazy"
component = "{cgi}"
handler = "cgi"
route = "/lazy"
snapshot = false

[[job]]
name = "primes-job"
component = "{cgi}"
tasks = 2
"#,
        server = common::server_table(dir),
        // Its own cache: init runs (and prints) at this start.
        cache = dir.join("cache").display(),
        cgi = guest("cgi-init").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_from_their_snapshot_with_per_run_variables_and_args() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &command_manifest(dir.path()));
    let url = &wisp.url;
    for (method, path) in [("GET", "/a?q=1"), ("POST", "/b"), ("GET", "/c")] {
        let request = client().request(method.parse().unwrap(), format!("{url}/primes{path}"));
        let (status, body) = send(request).await;
        assert_eq!(status, 200, "{body}");
        for expected in [
            "primes below 5000000: 348513\n".to_string(),
            "init: ran 1 time(s), in the snapshot\n".to_string(),
            // Init saw the configured env but no request: it ran at deploy.
            "init saw: GREETING=hello REQUEST_METHOD=(unset)\n".to_string(),
            // Read per run, after the snapshot: this request's, not init's.
            format!("request: {method} {path}\n"),
            "args: [\"--flag\", \"x\"]\n".to_string(),
        ] {
            assert!(
                body.contains(&expected),
                "expected `{expected}` in:\n{body}"
            );
        }
    }
    let (status, body) = get(&format!("{url}/lazy/d")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("init: ran 1 time(s), in this run\n")
            && body.contains("init saw: GREETING=(unset) REQUEST_METHOD=GET\n"),
        "without a snapshot init runs in the request:\n{body}"
    );
    // The deploy printed init's line once (the snapshots of `primes` and of
    // the job); only the lazy request printed it again.
    let logs = wisp.wait_for_log_count("cgi-init: building the prime table", 3);
    assert_eq!(
        count(&logs, "pre-initialized"),
        2,
        "the function and the job are pre-initialized, `primes-lazy` is not:\n{logs}"
    );

    let admin = wisp.admin.as_ref().unwrap();
    let (status, text) = send(
        client()
            .post(format!("{admin}/v1/jobs/primes-job/executions"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    // The tasks' stdout goes to the log (the CGI responses did not).
    let logs = wisp.wait_for_log_count("in the snapshot", 2);
    assert_eq!(
        count(&logs, "cgi-init: building the prime table"),
        3,
        "tasks start from the snapshot, init does not run again:\n{logs}"
    );
    let id = serde_json::from_str::<Value>(&text).unwrap()["execution"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(logs.contains(&id), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ruby_job_runs_each_task_from_the_booted_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"
{server}
[[job]]
name = "ruby-job"
component = "{ruby}"
args = ["/app/job.rb", "extra"]
dirs = {{ "/app" = "{app}" }}
tasks = 2
"#,
        server = common::server_table(dir.path()),
        ruby = guest("ruby").display(),
        app = common::repo().join("guest-examples/ruby-app").display(),
    );
    let wisp = Wisp::up(dir.path(), &manifest);
    let logs = wisp.logs();
    assert!(
        logs.contains("pre-initialized")
            || logs.contains("loaded snapshot from the artifact cache"),
        "ruby.wasm exports wizer-initialize: the job starts from a snapshot:\n{logs}"
    );
    let admin = wisp.admin.as_ref().unwrap();
    let (status, text) = send(
        client()
            .post(format!("{admin}/v1/jobs/ruby-job/executions"))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["execution"]
        .as_str()
        .unwrap()
        .to_string();
    // Each task's variables and the job's args reach Ruby's ENV and ARGV,
    // although the interpreter booted before any task existed.
    let logs = wisp.wait_for_log_count("ruby job: task", 4);
    for task in 0..2 {
        let line = format!("ruby job: task {task}/2 attempt 0 execution {id} args=[\"extra\"]");
        assert!(logs.contains(&line), "expected `{line}` in:\n{logs}");
    }
}
