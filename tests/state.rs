//! State through WASI, end to end against the real binary: wasi:keyvalue
//! stores (embedded SQLite and a real `redis-server`), grants, wasi:config
//! values and secrets.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::redis::Redis;
use common::{Wisp, client, get, guest, send};

/// The secret the tests hand the server; it must never show up anywhere
/// but inside the granted guest.
const SECRET: &str = "sk_test_wisp_4242_do_not_print";

fn manifest(dir: &Path, backend: Option<&str>, extra: &str) -> String {
    let backend = backend
        .map(|url| format!("backend = {{ redis = \"{url}\" }}"))
        .unwrap_or_default();
    format!(
        r#"
{server}
[[store]]
name = "cache"
kind = "keyvalue"
{backend}

[[store]]
name = "other"
kind = "keyvalue"

[[function]]
name = "probe"
component = "{probe}"
route = "/probe"
keyvalue = ["cache"]
max_instances = 200
max_queue = 1000
queue_timeout = "60s"
{extra}
"#,
        server = common::server_table(dir),
        probe = guest("kv-probe").display(),
    )
}

/// The key-value contract both backends keep, from the guest's side: every
/// call of both wasi:keyvalue drafts, then concurrent increments from fresh
/// instances adding up exactly.
async fn key_value_contract(backend: Option<&str>, increments: usize) {
    let _ = rlimit::increase_nofile_limit(8192);
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), backend, ""));
    let (status, body) = get(&format!("{}/probe/suite?store=cache&prefix=t1-", wisp.url)).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"), "{}", wisp.logs());

    let http = client();
    let url = format!("{}/probe/incr?store=cache&key=visits", wisp.url);
    let tasks: Vec<_> = (0..increments)
        .map(|_| {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move { send(http.get(url)).await })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200, "{body}");
        seen.push(body.trim().parse::<u64>().unwrap());
    }
    // Every increment saw a different value: none was lost or doubled.
    seen.sort_unstable();
    assert_eq!(seen, (1..=increments as u64).collect::<Vec<_>>());
    let (_, last) = get(&url).await;
    assert_eq!(last.trim(), (increments + 1).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_the_contract_and_1000_concurrent_increments_add_up() {
    key_value_contract(None, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_keeps_the_same_contract() {
    let redis = Redis::start();
    key_value_contract(Some(&redis.url), 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(dir.path(), None, "");
    let mut wisp = Wisp::up(dir.path(), &text);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (acked, base) = (acked.clone(), wisp.url.clone());
            tokio::spawn(async move {
                let http = client();
                for i in 0.. {
                    let key = format!("w{w}-{i}");
                    let url = format!("{base}/probe/set?store=cache&key={key}");
                    match http.post(url).body(format!("value-{i}")).send().await {
                        Ok(resp) if resp.status() == 200 => acked.lock().unwrap().push(key),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    wisp.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too few writes before the kill: {}",
        acked.len()
    );

    let wisp = Wisp::up(dir.path(), &text);
    for key in &acked {
        let (status, body) = get(&format!("{}/probe/get?store=cache&key={key}", wisp.url)).await;
        let i = key.rsplit('-').next().unwrap();
        assert_eq!(
            (status, body.as_str()),
            (200, format!("value-{i}").as_str()),
            "acknowledged write {key} lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_opens_only_the_stores_it_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    let counter = format!(
        r#"
[[function]]
name = "visits"
component = "{}"
route = "/visits"
"#,
        guest("visit-counter").display()
    );
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), None, &counter));
    let (status, body) = get(&format!("{}/probe/open?store=cache", wisp.url)).await;
    assert_eq!((status, body.as_str()), (200, "opened\n"));
    // Declared but not granted, and not declared at all: the same refusal,
    // inside the guest, from both drafts.
    for store in ["other", "nope"] {
        let (status, body) = get(&format!("{}/probe/open?store={store}", wisp.url)).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body.starts_with("draft: Err(\"AccessDenied\"); draft2: Err(\"")
                && body.trim_end().ends_with("AccessDenied\")"),
            "{body}"
        );
    }
    let (status, body) = get(&format!("{}/visits", wisp.url)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("not granted the key-value store `counter`"),
        "{body}"
    );
    assert!(!wisp.logs().contains("function failed"), "{}", wisp.logs());
}

fn up_with_secret(dir: &Path, manifest: &str) -> Wisp {
    let file = dir.join("wisp.toml");
    std::fs::write(&file, manifest).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
    cmd.arg("up").arg("-f").arg(&file).env("STRIPE_KEY", SECRET);
    Wisp::start(cmd).expect("wisp up did not start")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_and_secrets_reach_the_granted_guest_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/db"), "db-password-77\n").unwrap();
    let extra = format!(
        r#"config = {{ currency = "KRW" }}
secrets = ["stripe-key", "db"]

[[secret]]
name = "stripe-key"
env = "STRIPE_KEY"

[[secret]]
name = "db"
file = "secrets/db"

[[function]]
name = "ungranted"
component = "{}"
route = "/ungranted"
"#,
        guest("kv-probe").display()
    );
    let wisp = up_with_secret(dir.path(), &manifest(dir.path(), None, &extra));
    let read = |path: &str| format!("{}/{path}", wisp.url);
    assert_eq!(
        get(&read("probe/config?key=currency")).await,
        (200, "KRW".into())
    );
    assert_eq!(
        get(&read("probe/config?key=stripe-key")).await,
        (200, SECRET.into())
    );
    assert_eq!(
        get(&read("probe/config?key=db")).await,
        (200, "db-password-77".into())
    );
    // Spin's wasi:config version reads the same values.
    assert_eq!(
        get(&read("probe/config-draft?key=stripe-key")).await,
        (200, SECRET.into())
    );
    assert_eq!(get(&read("probe/config-draft?key=nope")).await.0, 404);
    // A function not granted the secret does not see it.
    assert_eq!(get(&read("ungranted/config?key=stripe-key")).await.0, 404);
    assert_eq!(get(&read("ungranted/config-all")).await, (200, "\n".into()));

    // Printed by the guest: redacted in the log.
    assert_eq!(get(&read("probe/print-config?key=stripe-key")).await.0, 200);
    let logs = wisp.wait_for_log("the value of stripe-key is [redacted]");
    assert!(
        !logs.contains(SECRET),
        "the secret reached the log:\n{logs}"
    );

    // The admin API lists secret names, never values.
    let admin = wisp.admin.as_ref().unwrap();
    for path in [
        "v1/functions",
        "v1/functions/probe",
        "v1/functions/probe/revisions",
    ] {
        let (status, body) = send(client().get(format!("{admin}/{path}"))).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body.contains("stripe-key") && body.contains("KRW"),
            "{body}"
        );
        assert!(
            !body.contains(SECRET) && !body.contains("db-password"),
            "{body}"
        );
    }
    // Nor does the state directory.
    assert!(!contains_recursive(
        &dir.path().join("state"),
        SECRET.as_bytes()
    ));
}

fn contains_recursive(dir: &Path, needle: &[u8]) -> bool {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.iter().any(|path| {
        if path.is_dir() {
            contains_recursive(path, needle)
        } else {
            let bytes = std::fs::read(path).unwrap_or_default();
            bytes.windows(needle.len()).any(|w| w == needle)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_and_write_stores_with_wisp_kv() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), None, ""));
    let admin = wisp.admin.clone().unwrap();
    let kv = |args: &[&str]| {
        let mut all = vec!["kv"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin", &admin]);
        let out = common::wisp_command(&all);
        assert!(
            out.status.success(),
            "wisp {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    kv(&["set", "cache", "greeting", "hi there"]);
    assert_eq!(kv(&["get", "cache", "greeting"]).trim(), "hi there");
    assert_eq!(kv(&["list", "cache"]).trim(), "greeting");
    assert!(kv(&["list"]).contains("other"));
    kv(&["delete", "cache", "greeting"]);
    assert_eq!(kv(&["list", "cache"]).trim(), "");
    let out = common::wisp_command(&["kv", "get", "nope", "k", "--admin", &admin]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no store `nope`"));
}
