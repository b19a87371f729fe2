//! State that survives faults: `kill -9` in the middle of deploys,
//! rollbacks and deletes never leaves a broken state directory; two servers
//! cannot share one; a function that fails to restore is reported, not
//! dropped; old revisions, unused components and temp files are collected.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Wisp, client, get, guest, send};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wisp::store::{History, TEMP_PREFIX};

/// Shared by every server here, and kept between runs, so the guests
/// compile once.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults-artifacts")
}

fn manifest(state: &Path, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n\
         cache_dir = \"{}\"\n{extra}",
        state.display(),
        cache_dir().display()
    )
}

fn admin_url(wisp: &Wisp) -> String {
    wisp.admin.clone().expect("admin API address")
}

/// `sha256:<hex>` of a guest, as the admin API names it.
fn reference(name: &str) -> String {
    let bytes = std::fs::read(guest(name)).unwrap();
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

async fn upload(admin: &str, name: &str) -> String {
    common::upload(admin, std::fs::read(guest(name)).unwrap()).await
}

fn spec(component: &str, greeting: &str) -> Value {
    json!({ "component": component, "route": "/f", "env": { "GREETING": greeting } })
}

fn put(admin: &str, name: &str, spec: &Value) -> reqwest::RequestBuilder {
    client()
        .put(format!("{admin}/v1/functions/{name}"))
        .header("content-type", "application/json")
        .body(spec.to_string())
}

/// Deploys and returns the new revision's number.
async fn deploy(admin: &str, name: &str, spec: &Value) -> u64 {
    let (status, body) = send(put(admin, name, spec)).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["number"]
        .as_u64()
        .unwrap()
}

/// `GET /v1/functions/NAME`, `None` on 404.
async fn info(admin: &str, name: &str) -> Option<Value> {
    let (status, body) = get(&format!("{admin}/v1/functions/{name}")).await;
    match status {
        404 => None,
        200 => Some(serde_json::from_str(&body).unwrap()),
        _ => panic!("GET /v1/functions/{name}: {status} {body}"),
    }
}

async fn revisions(admin: &str, name: &str) -> Vec<u64> {
    let (status, body) = get(&format!("{admin}/v1/functions/{name}/revisions")).await;
    assert_eq!(status, 200, "{body}");
    let revs: Vec<Value> = serde_json::from_str(&body).unwrap();
    revs.iter().map(|r| r["number"].as_u64().unwrap()).collect()
}

/// What function `f` answers at `/f` when it runs `spec`.
fn answer(spec: &Value) -> String {
    if spec["component"] == reference("hello").as_str() {
        format!(
            "{}, world! path=/f\n",
            spec["env"]["GREETING"].as_str().unwrap()
        )
    } else {
        "1\n".to_string()
    }
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn component_files(state: &Path) -> HashSet<String> {
    names(&state.join("components"))
        .into_iter()
        .map(|n| format!("sha256:{}", n.trim_end_matches(".wasm")))
        .collect()
}

/// Checks the state directory as a restarted server left it: no temp files,
/// every record parses, its current revision exists, every revision's
/// component is stored intact, and no other component is.
fn check_state(state: &Path) -> Vec<History> {
    let mut referenced = HashSet::new();
    let mut histories = Vec::new();
    for name in names(&state.join("functions")) {
        assert!(!name.starts_with(TEMP_PREFIX), "temp file left: {name}");
        let text = std::fs::read(state.join("functions").join(&name)).unwrap();
        let history: History = serde_json::from_slice(&text)
            .unwrap_or_else(|e| panic!("record {name} does not parse ({e}): {text:?}"));
        assert!(
            history.current_revision().is_some(),
            "{name}: current revision {} is missing",
            history.current
        );
        for r in &history.revisions {
            let digest = r.spec.component.strip_prefix("sha256:").unwrap();
            let path = state.join("components").join(format!("{digest}.wasm"));
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{name} revision {}: {e}", r.number));
            assert_eq!(
                hex::encode(Sha256::digest(bytes)),
                digest,
                "{name} revision {}: damaged component",
                r.number
            );
            referenced.insert(r.spec.component.clone());
        }
        histories.push(history);
    }
    let stored = component_files(state);
    assert!(
        stored.iter().all(|c| !c.contains(TEMP_PREFIX)),
        "temp file left: {stored:?}"
    );
    assert_eq!(
        stored, referenced,
        "stored components: exactly those in use"
    );
    histories
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Deploy,
    Rollback,
    Delete,
}

/// Keeps the thread busy for `d`: varies where in the operation the kill
/// lands without waiting on anything.
fn busy_wait(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// 20 times: fire `op` at function `f`, `kill -9` the server at a varying
/// point, restart it on the same state dir and check that the state is the
/// last acknowledged one, or the operation in flight done whole.
async fn kill_during(op: Op) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // Deploys keep every revision, so each acknowledged one can be checked.
    let manifest = manifest(&state, "keep_revisions = 25\n");
    let mut wisp = Wisp::up(dir.path(), &manifest);
    let mut acked_deploys: Vec<(u64, Value)> = Vec::new();
    let (mut acked, mut landed) = (0, 0);
    // How long the operation takes when nothing interrupts it; the kills
    // land from right after sending to past its answer.
    let mut took = Duration::ZERO;
    for i in 0..21u32 {
        let admin = admin_url(&wisp);
        // The acknowledged state this operation starts from.
        let before = match info(&admin, "f").await {
            Some(before) => before,
            None => {
                let first = spec(&upload(&admin, "hello").await, "first");
                acked_deploys = vec![(deploy(&admin, "f", &first).await, first)];
                if op == Op::Rollback {
                    let second = spec(&upload(&admin, "counter").await, "second");
                    acked_deploys.push((deploy(&admin, "f", &second).await, second));
                }
                info(&admin, "f").await.unwrap()
            }
        };
        let current = before["current_revision"].as_u64().unwrap();
        let known = revisions(&admin, "f").await;
        // The request, and the current revision it leads to (`None`: deleted).
        let (request, after, new_spec) = match op {
            Op::Deploy => {
                let guest = if i % 2 == 0 { "counter" } else { "hello" };
                let new = spec(&upload(&admin, guest).await, &format!("g{i}"));
                let number = known.iter().max().unwrap() + 1;
                (put(&admin, "f", &new), Some(number), Some(new))
            }
            Op::Rollback => {
                let target = *known.iter().find(|&&n| n != current).unwrap();
                let request = client()
                    .post(format!("{admin}/v1/functions/f/rollback"))
                    .body(json!({ "revision": target }).to_string());
                (request, Some(target), None)
            }
            Op::Delete => (
                client().delete(format!("{admin}/v1/functions/f")),
                None,
                None,
            ),
        };
        let started = Instant::now();
        let sent = tokio::spawn(async move { request.send().await.map(|r| r.status()) });
        if i == 0 {
            let status = sent.await.unwrap().unwrap();
            assert!(status.is_success(), "{op:?}: {status}");
            took = started.elapsed();
            if let (Some(number), Some(spec)) = (after, new_spec) {
                acked_deploys.push((number, spec));
            }
            continue;
        }
        // A restarted server may well take longer than the measured run.
        busy_wait(took.max(Duration::from_millis(12)) * 5 / 2 * i / 20);
        wisp.kill();
        let done = matches!(sent.await.unwrap(), Ok(s) if s.is_success());
        if done {
            acked += 1;
            if let (Some(number), Some(spec)) = (after, new_spec) {
                acked_deploys.push((number, spec));
            }
        }

        wisp = Wisp::up(dir.path(), &manifest);
        let histories = check_state(&state);
        let admin = admin_url(&wisp);
        let (status, health) = get(&format!("{admin}/healthz")).await;
        assert_eq!(status, 200, "{op:?} #{i}: {health}");
        let now = info(&admin, "f").await;
        let context = format!("{op:?} #{i} (acknowledged: {done}): before {before}, now {now:?}");
        let Some(now) = now else {
            assert_eq!(op, Op::Delete, "{context}");
            landed += 1;
            assert!(histories.is_empty(), "{context}");
            assert_eq!(get(&format!("{}/f", wisp.url)).await.0, 404, "{context}");
            continue;
        };
        assert!(!(op == Op::Delete && done), "deleted, yet {context}");
        assert_eq!(now["status"], "ready", "{context}");
        let revision = now["current_revision"].as_u64().unwrap();
        if revision != current {
            landed += 1;
        }
        if done {
            assert_eq!(Some(revision), after, "{context}");
        } else {
            assert!(revision == current || Some(revision) == after, "{context}");
        }
        let stored = revisions(&admin, "f").await;
        for (number, spec) in &acked_deploys {
            assert!(stored.contains(number), "deploy {number} lost: {context}");
            let r = histories[0].revisions.iter().find(|r| r.number == *number);
            assert_eq!(
                r.unwrap().spec.env["GREETING"],
                spec["env"]["GREETING"],
                "{context}"
            );
        }
        // The admin API hides env values; the stored record has them.
        let serving = histories[0].current_revision().unwrap();
        let (status, body) = get(&format!("{}/f", wisp.url)).await;
        assert_eq!(
            (status, body),
            (200, answer(&serde_json::to_value(&serving.spec).unwrap())),
            "{context}"
        );
    }
    eprintln!(
        "{op:?} ({took:?} uninterrupted): of 20 killed, {landed} landed, {acked} of them \
         acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_deploys_keeps_the_last_acknowledged_state() {
    kill_during(Op::Deploy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_rollbacks_keeps_the_last_acknowledged_state() {
    kill_during(Op::Rollback).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_deletes_keeps_the_last_acknowledged_state() {
    kill_during(Op::Delete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_state_dir_is_refused_naming_the_pid() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut first = Wisp::up(dir.path(), &manifest(&state, ""));
    let Err(refused) = Wisp::up_result(other.path(), &manifest(&state, "")) else {
        panic!("a second server started on the same state dir");
    };
    assert!(
        refused.contains("is in use by another wisp server")
            && refused.contains(&format!("(pid {})", first.pid())),
        "{refused}"
    );
    // The lock goes with its holder, also on kill -9.
    first.kill();
    let second = Wisp::up(other.path(), &manifest(&state, ""));
    let holder = std::fs::read_to_string(state.join("lock")).unwrap();
    assert_eq!(holder.trim(), second.pid().to_string());
}

fn cli(wisp: &Wisp, args: &[&str]) -> String {
    let admin = admin_url(wisp);
    let out = common::wisp_command(&[args, &["--admin", &admin]].concat());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_that_fail_to_restore_are_reported_and_recover_with_their_history() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let manifest = manifest(&state, "");
    let mut wisp = Wisp::up(dir.path(), &manifest);
    let admin = admin_url(&wisp);
    let (hello, counter) = (
        upload(&admin, "hello").await,
        upload(&admin, "counter").await,
    );
    // f: its current component gets damaged; g: its current revision gets
    // a reference to a component that was never stored; h: its record gets
    // unreadable; ok stays fine.
    deploy(&admin, "f", &spec(&hello, "f1")).await;
    deploy(&admin, "f", &spec(&counter, "f2")).await;
    deploy(&admin, "g", &json!({ "component": hello, "route": "/g" })).await;
    deploy(
        &admin,
        "g",
        &json!({ "component": hello, "route": "/g", "env": {"V": "2"} }),
    )
    .await;
    deploy(&admin, "h", &json!({ "component": hello, "route": "/h" })).await;
    deploy(&admin, "ok", &json!({ "component": hello, "route": "/ok" })).await;
    wisp.kill();

    let counter_file = state
        .join("components")
        .join(format!("{}.wasm", counter.trim_start_matches("sha256:")));
    std::fs::write(&counter_file, b"not the component any more").unwrap();
    let g_file = state.join("functions/g.json");
    let mut g: Value = serde_json::from_slice(&std::fs::read(&g_file).unwrap()).unwrap();
    g["revisions"][1]["spec"]["component"] = format!("sha256:{}", "0".repeat(64)).into();
    std::fs::write(&g_file, g.to_string()).unwrap();
    std::fs::write(state.join("functions/h.json"), "{\"name\": \"h\", ").unwrap();

    let wisp = Wisp::up(dir.path(), &manifest);
    let admin = admin_url(&wisp);
    let (status, body) = get(&format!("{admin}/v1/functions")).await;
    assert_eq!(status, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    let by_name = |name: &str| list.iter().find(|f| f["name"] == name).cloned().unwrap();
    for (name, why) in [
        ("f", "damaged"),
        ("g", "not in the state directory"),
        ("h", "unreadable"),
    ] {
        let f = by_name(name);
        assert_eq!(f["status"], "failed", "{f}");
        assert!(f["error"].as_str().unwrap().contains(why), "{f}");
    }
    assert_eq!(by_name("f")["current_revision"], 2);
    assert_eq!(by_name("ok")["status"], "ready");
    assert!(by_name("ok").get("error").is_none());

    let listed = cli(&wisp, &["functions", "list"]);
    let f_line = listed.lines().find(|l| l.starts_with("f ")).unwrap();
    assert!(f_line.contains("failed"), "{listed}");
    assert!(listed.contains("error: component sha256:"), "{listed}");

    let (status, health) = get(&format!("{admin}/healthz")).await;
    assert_eq!(status, 503, "{health}");
    for name in ["f", "g", "h"] {
        assert!(health.contains(&format!("\n{name}: ")), "{health}");
    }
    assert!(!health.contains("ok: "), "{health}");
    assert_eq!(get(&format!("{}/ok", wisp.url)).await.0, 200);
    assert_eq!(get(&format!("{}/f", wisp.url)).await.0, 404);
    // Nothing an unreadable record might reference was collected.
    assert!(counter_file.exists());

    // A redeploy continues f's history; a rollback brings g back; h goes.
    let counter_again = upload(&admin, "counter").await;
    assert_eq!(deploy(&admin, "f", &spec(&counter_again, "f3")).await, 3);
    assert_eq!(revisions(&admin, "f").await, [1, 2, 3]);
    assert_eq!(get(&format!("{}/f", wisp.url)).await, (200, "1\n".into()));
    let (status, body) = send(
        client()
            .post(format!("{admin}/v1/functions/g/rollback"))
            .body(r#"{"revision": 1}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&format!("{}/g", wisp.url)).await.0, 200);
    let (status, health) = get(&format!("{admin}/healthz")).await;
    assert_eq!(status, 503, "{health}");
    assert!(
        health.contains("\nh: ") && !health.contains("\ng: "),
        "{health}"
    );
    let (status, body) = send(client().delete(format!("{admin}/v1/functions/h"))).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(get(&format!("{admin}/healthz")).await, (200, "ok\n".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_revisions_trims_histories_and_unused_code_leaves_disk_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let wisp = Wisp::up(dir.path(), &manifest(&state, "keep_revisions = 2\n"));
    let admin = admin_url(&wisp);
    let mut deployed = Vec::new();
    for (i, name) in ["hello", "counter", "echo"].into_iter().enumerate() {
        let component = upload(&admin, name).await;
        deploy(&admin, "f", &spec(&component, &format!("v{i}"))).await;
        deployed.push(component);
    }
    assert_eq!(revisions(&admin, "f").await, [2, 3]);
    assert_eq!(
        component_files(&state),
        HashSet::from([deployed[1].clone(), deployed[2].clone()]),
        "hello's component left with revision 1"
    );

    // Code a live revision does not use leaves memory: going back to
    // counter loads it from the artifact cache on disk again.
    let short = &deployed[1]["sha256:".len()..][..12];
    let loads = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("loaded compiled code") && l.contains(short))
            .count()
    };
    let before = loads(&wisp.logs());
    let (status, body) = send(client().post(format!("{admin}/v1/functions/f/rollback"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&format!("{}/f", wisp.url)).await, (200, "1\n".into()));
    assert_eq!(loads(&wisp.logs()), before + 1, "{}", wisp.logs());
    drop(wisp);

    // A smaller bound applies at start; the current revision always stays.
    let wisp = Wisp::up(dir.path(), &manifest(&state, "keep_revisions = 1\n"));
    assert_eq!(revisions(&admin_url(&wisp), "f").await, [2]);
    assert_eq!(
        component_files(&state),
        HashSet::from([deployed[1].clone()])
    );
    assert_eq!(get(&format!("{}/f", wisp.url)).await, (200, "1\n".into()));
    check_state(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_files_left_by_a_crash_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cache = dir.path().join("cache");
    let manifest = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\ncache_dir = \"{}\"\n",
        state.display(),
        cache.display()
    );
    let mut wisp = Wisp::up(dir.path(), &manifest);
    let crashed = wisp.pid();
    wisp.kill();
    let fingerprint = cache.join(&names(&cache)[0]);
    let leftovers = [
        state.join(format!("components/{TEMP_PREFIX}{crashed}-a1")),
        state.join(format!("functions/{TEMP_PREFIX}{crashed}-b2")),
        fingerprint.join(format!("compiled/{TEMP_PREFIX}{crashed}-c3")),
        fingerprint.join(format!("snapshots/{TEMP_PREFIX}{crashed}-d4")),
    ];
    // Another server sharing the cache (here: this test) is still writing.
    let in_progress = fingerprint.join(format!("compiled/{TEMP_PREFIX}{}-e5", std::process::id()));
    for path in leftovers.iter().chain([&in_progress]) {
        std::fs::write(path, b"half a file").unwrap();
    }
    let _wisp = Wisp::up(dir.path(), &manifest);
    for path in &leftovers {
        assert!(!path.exists(), "{} is left", path.display());
    }
    assert!(
        in_progress.exists(),
        "a live writer's temp file was removed"
    );
}
