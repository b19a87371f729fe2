//! The log store through the real binary: `wisp logs` and
//! `GET /v1/functions/{name}/logs` return each invocation's guest output and
//! access record, filtered by invocation, time and status, followed live,
//! bounded in size, kept across a restart, and secrets stay redacted;
//! `WISP_LOG_FORMAT=json` turns stderr into JSON lines.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_TOKEN, Wisp, client, guest, server_table, wisp_command};
use serde_json::Value;

const SECRET: &str = "sk_live_logs_test_7777";

fn manifest(dir: &Path) -> String {
    format!(
        r#"{server}
[[secret]]
name = "api-key"
env = "LOGS_TEST_SECRET"

[[function]]
name = "chatty"
component = "{chatty}"
route = "/chatty"

[[queue]]
name = "q"
function = "chatty"

[[function]]
name = "panic"
component = "{panic}"
route = "/panic"

[[function]]
name = "probe"
component = "{probe}"
route = "/probe"
secrets = ["api-key"]
"#,
        server = server_table(dir),
        chatty = guest("chatty").display(),
        panic = guest("panic").display(),
        probe = guest("kv-probe").display(),
    )
}

fn up(dir: &Path) -> Wisp {
    let file = dir.join("wisp.toml");
    std::fs::write(&file, manifest(dir)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
    cmd.arg("up")
        .arg("-f")
        .arg(&file)
        .env("LOGS_TEST_SECRET", SECRET);
    Wisp::start(cmd).expect("wisp up did not start")
}

/// GETs `url`; returns the status and the invocation id header.
async fn invoke(url: &str) -> (u16, String) {
    let resp = client().get(url).send().await.unwrap();
    let id = resp.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let status = resp.status().as_u16();
    resp.bytes().await.unwrap();
    (status, id)
}

/// `wisp logs ARGS --admin ADMIN`: stdout on success, stderr on failure.
fn wisp_logs(admin: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--admin", admin]);
    let out = wisp_command(&all);
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8(out.stderr).unwrap())
    }
}

/// `wisp logs ... --json`, parsed.
fn json_lines(admin: &str, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    wisp_logs(admin, &all)
        .unwrap_or_else(|e| panic!("wisp logs {args:?} failed: {e}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Queries until `done` holds for the answer (records are written
/// asynchronously), for up to 30 s; returns that answer.
fn until(admin: &str, args: &[&str], done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = json_lines(admin, args);
        if done(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "wisp logs {args:?} never got there:\n{lines:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn texts(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["line"].as_str().unwrap()).collect()
}

fn has_access(lines: &[Value]) -> bool {
    lines.iter().any(|l| l["stream"] == "access")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_kept_per_invocation_filtered_followed_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut wisp = up(dir.path());
    let admin = wisp.admin.clone().unwrap();
    let (status, first) = invoke(&format!("{}/chatty?lines=3", wisp.url)).await;
    assert_eq!(status, 200);
    let (_, second) = invoke(&format!("{}/chatty?lines=2", wisp.url)).await;
    let (status, refused) = invoke(&format!("{}/chatty?lines=many", wisp.url)).await;
    assert_eq!(status, 400);

    // Exactly the invocation's lines, then its access record.
    let lines = until(&admin, &["chatty", "--invocation", &first], |l| {
        l.len() >= 4 && has_access(l)
    });
    assert_eq!(
        texts(&lines),
        [
            "chatty: line 0",
            "chatty: line 1",
            "chatty: line 2",
            "GET /chatty 200"
        ]
    );
    for line in &lines {
        assert_eq!(line["invocation"], first.as_str(), "{line}");
        assert_eq!(line["function"], "chatty");
        assert_eq!(line["revision"], 1, "{line}");
        assert_eq!(line["trigger"], "http", "{line}");
    }
    let access = &lines[3];
    assert_eq!(access["status"], 200);
    assert_eq!(
        (&access["method"], &access["path"]),
        (&"GET".into(), &"/chatty".into())
    );
    assert!(access["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[0]["stream"], "stdout");

    // People get time, invocation, stream and line.
    let text = wisp_logs(&admin, &["chatty", "--invocation", &first]).unwrap();
    let text: Vec<&str> = text.lines().collect();
    assert_eq!(text.len(), 4, "{text:?}");
    assert!(
        text[0].contains(&first)
            && text[0].contains(" stdout ")
            && text[0].ends_with("chatty: line 0"),
        "{text:?}"
    );
    assert!(
        text[3].contains(" access ") && text[3].contains("GET /chatty 200 ("),
        "{text:?}"
    );

    // A status filter selects invocations by their access record.
    let failing = until(&admin, &["chatty", "--status", "4xx"], has_access);
    assert!(
        failing.iter().all(|l| l["invocation"] == refused.as_str()),
        "{failing:#?}"
    );
    assert_eq!(texts(&failing), ["GET /chatty 400"]);
    assert!(json_lines(&admin, &["chatty", "--status", "5xx"]).is_empty());
    until(&admin, &["chatty", "--status", "400"], |l| l.len() == 1);
    let (status, panicked) = invoke(&format!("{}/panic", wisp.url)).await;
    assert_eq!(status, 500);
    let failing = until(&admin, &["panic", "--status", "5xx"], |l| {
        has_access(l)
            && texts(l)
                .iter()
                .any(|t| t.contains("guest panicked on purpose"))
    });
    assert!(failing.iter().all(|l| l["invocation"] == panicked.as_str()));
    assert!(
        failing.iter().any(|l| l["stream"] == "stderr"),
        "{failing:#?}"
    );
    assert!(json_lines(&admin, &["panic", "--status", "2xx"]).is_empty());

    // --since: a duration back, or a time.
    let all = until(&admin, &["chatty", "--since", "10m"], |l| {
        l.iter().filter(|l| l["stream"] == "access").count() == 3
    });
    assert!(all.iter().any(|l| l["invocation"] == second.as_str()));
    assert!(json_lines(&admin, &["chatty", "--since", "2099-01-01T00:00:00Z"]).is_empty());

    // --follow prints what happens after it started.
    let mut follow = Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(["logs", "chatty", "--follow", "--json", "--admin", &admin])
        .env("WISP_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Its first line (the tail of the log) says it is following.
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the follow printed nothing");
    let (_, later) = invoke(&format!("{}/chatty?lines=1", wisp.url)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &Value| l["invocation"] == later.as_str() && l["stream"] == "access")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the follow never showed {later}: {seen:#?}"));
        seen.push(serde_json::from_str(&line).unwrap());
    }
    assert!(
        seen.iter()
            .any(|l| l["invocation"] == later.as_str() && l["line"] == "chatty: line 0")
    );
    let _ = follow.kill();
    let _ = follow.wait();

    // Secrets stay redacted in the store, as on stderr.
    let (status, probed) = invoke(&format!("{}/probe/print-config?key=api-key", wisp.url)).await;
    assert_eq!(status, 200);
    let lines = until(&admin, &["probe", "--invocation", &probed], has_access);
    assert_eq!(texts(&lines)[0], "the value of api-key is [redacted]");

    // Other triggers' invocations are kept the same way.
    let added = wisp_command(&[
        "tasks",
        "add",
        "q",
        "--path",
        "/chatty?lines=1",
        "--admin",
        &admin,
    ]);
    assert!(added.status.success(), "{added:?}");
    let tasks = until(&admin, &["chatty", "--since", "10m"], |l| {
        l.iter()
            .any(|l| l["trigger"] == "task" && l["stream"] == "access")
    });
    let access = tasks
        .iter()
        .find(|l| l["trigger"] == "task" && l["stream"] == "access")
        .unwrap();
    assert_eq!(access["status"], 200);
    assert!(
        access["line"].as_str().unwrap().starts_with("task q/"),
        "{access}"
    );
    let printed = tasks
        .iter()
        .find(|l| l["invocation"] == access["invocation"] && l["stream"] == "stdout")
        .expect("the task's output is not kept");
    assert_eq!(
        (&printed["trigger"], &printed["revision"]),
        (&"task".into(), &1.into())
    );

    // A graceful restart keeps them.
    wisp.signal("TERM");
    assert!(tokio::task::block_in_place(|| wisp.wait_exit(Duration::from_secs(30))).success());
    for file in std::fs::read_dir(dir.path().join("state")).unwrap() {
        let file = file.unwrap().path();
        if file.to_string_lossy().contains("logs.sqlite3") {
            let bytes = std::fs::read(&file).unwrap();
            let leaked = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!leaked, "the secret is in {}", file.display());
        }
    }
    let wisp = up(dir.path());
    let admin = wisp.admin.clone().unwrap();
    let lines = json_lines(&admin, &["chatty", "--invocation", &first]);
    assert_eq!(texts(&lines).len(), 4, "{lines:#?}");
    assert_eq!(texts(&lines)[3], "GET /chatty 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_keeps_its_newest_lines_within_logs_max_bytes() {
    let max = 8 * 1024;
    let wisp = Wisp::serve(
        &guest("chatty"),
        &["--admin", "127.0.0.1:0", "--logs-max-bytes", "8Ki"],
    );
    let admin = wisp.admin.clone().unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, id) = invoke(&format!("{}/?lines=400", wisp.url)).await;
        assert_eq!(status, 200);
        ids.push(id);
    }
    let last = &ids[2];
    let lines = until(&admin, &["chatty", "--invocation", last], |l| {
        texts(l).contains(&"chatty: line 399") && has_access(l)
    });
    assert!(
        !texts(&lines).contains(&"chatty: line 0"),
        "the oldest lines were kept"
    );
    // The access record comes after its invocation's output.
    assert_eq!(lines.last().unwrap()["stream"], "access");
    let all = json_lines(&admin, &["chatty", "--limit", "10000"]);
    // Each record counts its line plus 64 bytes.
    let bytes: usize = all
        .iter()
        .map(|l| l["line"].as_str().unwrap().len() + l["path"].as_str().map_or(0, str::len) + 64)
        .sum();
    assert!(bytes <= max, "{bytes} bytes kept");
    assert!(json_lines(&admin, &["chatty", "--invocation", &ids[0]]).is_empty());
}

/// Records past `max_age` are trimmed at a write; a function's own
/// `[function.logs]` bounds replace the server's for it alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_older_than_max_age_are_trimmed_per_function() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"{server}
[[function]]
name = "brief"
component = "{chatty}"
route = "/brief"

[function.logs]
max_age = "1s"

[[function]]
name = "kept"
component = "{chatty}"
route = "/kept"
"#,
        server = server_table(dir.path()),
        chatty = guest("chatty").display(),
    );
    let wisp = Wisp::up(dir.path(), &text);
    let admin = wisp.admin.clone().unwrap();
    let (_, old) = invoke(&format!("{}/brief?lines=1", wisp.url)).await;
    let (_, kept) = invoke(&format!("{}/kept?lines=1", wisp.url)).await;
    until(&admin, &["brief", "--invocation", &old], has_access);
    // Trims happen when records are written: keep invoking until the
    // record, once more than a second old, is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !json_lines(&admin, &["brief", "--invocation", &old]).is_empty() {
        assert!(Instant::now() < deadline, "{old} was never trimmed");
        invoke(&format!("{}/brief?lines=1", wisp.url)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The newest of `brief` are there; `kept` (the server's 24 hours) is whole.
    assert!(!json_lines(&admin, &["brief"]).is_empty());
    let lines = json_lines(&admin, &["kept", "--invocation", &kept]);
    assert_eq!(texts(&lines), ["chatty: line 0", "GET /kept 200"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format_makes_every_stderr_line_json() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
    cmd.arg("serve")
        .arg(guest("chatty"))
        .args(["--listen", "127.0.0.1:0"])
        .env("WISP_LOG_FORMAT", "json");
    let mut wisp = Wisp::start(cmd).expect("wisp serve did not start");
    let (status, id) = invoke(&format!("{}/?lines=2", wisp.url)).await;
    assert_eq!(status, 200);
    wisp.wait_for_log("chatty: line 1");
    wisp.wait_for_access_log("GET / 200", 1);
    wisp.signal("TERM");
    let status = tokio::task::block_in_place(|| wisp.wait_exit(Duration::from_secs(30)));
    assert!(status.success(), "{status}; logs:\n{}", wisp.logs());
    let records: Vec<Value> = wisp
        .logs()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let guest_line = records
        .iter()
        .find(|r| r["message"] == "chatty: line 1")
        .expect("no guest line");
    assert_eq!(guest_line["target"], "wisp::guest");
    assert_eq!(guest_line["invocation"], id.as_str());
    assert_eq!(guest_line["stream"], "stdout");
    let access = records
        .iter()
        .find(|r| r["target"] == "wisp::access")
        .expect("no access line");
    assert_eq!(access["status"], 200);
    assert_eq!(access["invocation"], id.as_str());
    assert!(access["duration_ms"].is_number());

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
    cmd.arg("serve")
        .arg(guest("chatty"))
        .args(["--listen", "127.0.0.1:0"])
        .env("WISP_LOG_FORMAT", "xml");
    let err = Wisp::start(cmd)
        .err()
        .expect("WISP_LOG_FORMAT=xml was accepted");
    assert!(
        err.contains("WISP_LOG_FORMAT = `xml`") && err.contains("json"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_refused_naming_the_problem() {
    let wisp = Wisp::serve(&guest("chatty"), &["--admin", "127.0.0.1:0"]);
    let admin = wisp.admin.clone().unwrap();
    for (args, expected) in [
        (vec!["nosuch"], "404"),
        (
            vec!["chatty", "--since", "yesterday"],
            "`since` = `yesterday`",
        ),
        (vec!["chatty", "--status", "9xx"], "`status` = `9xx`"),
        (vec!["chatty", "--invocation", "42"], "`invocation` = `42`"),
    ] {
        let err = wisp_logs(&admin, &args).expect_err("accepted");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let err = wisp_logs(&admin, &["nosuch"]).unwrap_err();
    assert!(err.contains("nosuch"), "{err}");
    // The admin API answers the same way.
    let resp = client()
        .get(format!("{admin}/v1/functions/chatty/logs?status=teapot"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("`status` = `teapot`"));
}
