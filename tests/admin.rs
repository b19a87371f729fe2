//! The admin API and CLI: deploy, swap under load, roll back, survive a
//! restart, delete.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{Wisp, client, eventually, get, guest, send, wisp_command};

fn manifest(state: &Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n",
        state.display()
    )
}

fn cli(wisp: &Wisp, args: &[&str]) -> (bool, String) {
    let mut full = args.to_vec();
    let admin = wisp.admin.clone().expect("admin API address");
    full.extend(["--admin", admin.as_str()]);
    let out = wisp_command(&full);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn deploy(wisp: &Wisp, greeting: &str) {
    let env = format!("GREETING={greeting}");
    let hello = guest("hello");
    let (ok, out) = cli(
        wisp,
        &[
            "deploy",
            "greet",
            hello.to_str().unwrap(),
            "--route",
            "/greet",
            "--env",
            &env,
        ],
    );
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_swap_rollback_restart_delete() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut wisp = Wisp::up(dir.path(), &manifest(&state));
    let url = format!("{}/greet", wisp.url);
    assert_eq!(get(&url).await.0, 404);

    deploy(&wisp, "v1");
    assert_eq!(get(&url).await, (200, "v1, world! path=/greet\n".into()));

    // Redeploy under concurrent load: no request fails, and once the deploy
    // has returned every new request sees the new revision.
    let v1 = "v1, world! path=/greet\n";
    let v2 = "v2, world! path=/greet\n";
    let stop = Arc::new(AtomicBool::new(false));
    let deployed = Arc::new(AtomicBool::new(false));
    // Requests answered in all, and those sent after the deploy returned.
    let answered = Arc::new(AtomicUsize::new(0));
    let answered_after = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (url, stop, deployed) = (url.clone(), stop.clone(), deployed.clone());
            let (answered, answered_after) = (answered.clone(), answered_after.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let after_deploy = deployed.load(Ordering::SeqCst);
                    let answer = get(&url).await;
                    answered.fetch_add(1, Ordering::SeqCst);
                    if after_deploy {
                        answered_after.fetch_add(1, Ordering::SeqCst);
                    }
                    seen.push((after_deploy, answer));
                }
                seen
            })
        })
        .collect();
    eventually("the load is running", || {
        answered.load(Ordering::SeqCst) >= 8
    })
    .await;
    let wisp_ref = &wisp;
    tokio::task::block_in_place(|| deploy(wisp_ref, "v2"));
    deployed.store(true, Ordering::SeqCst);
    assert_eq!(get(&url).await, (200, v2.into()));
    eventually("the load ran on after the deploy", || {
        answered_after.load(Ordering::SeqCst) >= 8
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for task in load {
        for (after_deploy, (status, body)) in task.await.unwrap() {
            total += 1;
            assert_eq!(status, 200, "{body}");
            if after_deploy {
                assert_eq!(body, v2, "sent after the deploy returned");
            } else {
                assert!(body == v1 || body == v2, "{body}");
            }
        }
    }
    assert!(
        total > 8,
        "the load generator made too few requests to mean anything: {total}"
    );

    let (ok, out) = cli(&wisp, &["functions", "revisions", "greet"]);
    assert!(ok && out.contains("sha256:"), "{out}");
    let (ok, out) = cli(&wisp, &["functions", "rollback", "greet"]);
    assert!(ok && out.contains("revision 1"), "{out}");
    assert_eq!(get(&url).await, (200, "v1, world! path=/greet\n".into()));

    // A restart with the same state keeps the function at the rolled-back revision.
    wisp.signal("TERM");
    assert!(wisp.wait_exit(std::time::Duration::from_secs(30)).success());
    let wisp = Wisp::up(dir.path(), &manifest(&state));
    let url = format!("{}/greet", wisp.url);
    assert_eq!(get(&url).await, (200, "v1, world! path=/greet\n".into()));
    let (ok, out) = cli(&wisp, &["functions", "list"]);
    assert!(
        ok && out.contains("greet") && out.contains("/greet"),
        "{out}"
    );

    let (ok, out) = cli(&wisp, &["functions", "delete", "greet"]);
    assert!(ok, "{out}");
    assert_eq!(get(&url).await.0, 404);
    drop(wisp);
    let wisp = Wisp::up(dir.path(), &manifest(&state));
    assert_eq!(get(&format!("{}/greet", wisp.url)).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_refusals_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(&dir.path().join("state")));
    let admin = wisp.admin.clone().unwrap();
    assert_eq!(get(&format!("{admin}/healthz")).await, (200, "ok\n".into()));

    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").unwrap()).unwrap();
    let (ok, out) = cli(&wisp, &["deploy", "bad", core.to_str().unwrap()]);
    assert!(!ok && out.contains("core WebAssembly module"), "{out}");

    let (status, body) = send(
        client()
            .post(format!("{admin}/v1/components"))
            .header("content-type", "application/wasm")
            .body("not wasm"),
    )
    .await;
    assert!(
        status == 400 && body.contains("not a WebAssembly file"),
        "{status}: {body}"
    );

    let (status, body) = send(
        client()
            .put(format!("{admin}/v1/functions/x"))
            .body("{\"route\": 5}"),
    )
    .await;
    assert!(
        status == 400 && body.contains("invalid function settings"),
        "{status}: {body}"
    );

    let (status, body) = send(
        client()
            .put(format!("{admin}/v1/functions/x"))
            .body(format!("{{\"component\": \"sha256:{}\"}}", "0".repeat(64))),
    )
    .await;
    assert!(
        status == 400 && body.contains("is not in the state directory"),
        "{status}: {body}"
    );

    let (ok, out) = cli(&wisp, &["functions", "get", "ghost"]);
    assert!(
        !ok && out.contains("404") && out.contains("no function named `ghost`"),
        "{out}"
    );
    let (ok, out) = cli(&wisp, &["functions", "rollback", "ghost"]);
    assert!(!ok && out.contains("no function named `ghost`"), "{out}");

    // Two functions cannot share a route.
    deploy(&wisp, "a");
    let hello = guest("hello");
    let (ok, out) = cli(
        &wisp,
        &[
            "deploy",
            "other",
            hello.to_str().unwrap(),
            "--route",
            "/greet/",
        ],
    );
    assert!(
        !ok && out.contains("route `/greet` is already served by function `greet`"),
        "{out}"
    );
}

#[test]
fn cli_without_server_says_how_to_reach_it() {
    let out = wisp_command(&["functions", "list", "--admin", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not reach the admin API at http://127.0.0.1:9"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_edits_apply_on_restart_and_admin_deploys_survive() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let with_hello = format!(
        "{}[[function]]\nname = \"hello\"\ncomponent = \"{}\"\nroute = \"/hello\"\n",
        manifest(&state),
        guest("hello").display()
    );
    let wisp = Wisp::up(dir.path(), &with_hello);
    deploy(&wisp, "admin");
    drop(wisp);

    // Same manifest: nothing changes, the admin deploy is still there.
    let wisp = Wisp::up(dir.path(), &with_hello);
    assert_eq!(get(&format!("{}/hello", wisp.url)).await.0, 200);
    assert_eq!(
        get(&format!("{}/greet", wisp.url)).await,
        (200, "admin, world! path=/greet\n".into())
    );
    let (ok, out) = cli(&wisp, &["functions", "revisions", "hello"]);
    assert!(ok && out.lines().count() == 2, "one revision only:\n{out}");
    drop(wisp);

    // The manifest no longer lists hello: it goes; greet (admin) stays.
    let wisp = Wisp::up(dir.path(), &manifest(&state));
    assert_eq!(get(&format!("{}/hello", wisp.url)).await.0, 404);
    assert_eq!(get(&format!("{}/greet", wisp.url)).await.0, 200);
    wisp.wait_for_log("no longer in the manifest");
}
