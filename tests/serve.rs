//! `wisp serve`: one component at every path, fresh instance per request,
//! and every refused input with its message.

mod common;

use common::{Wisp, get, guest, wisp_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_with_path_and_invocation_id() {
    let wisp = Wisp::serve(&guest("hello"), &[]);
    let resp = common::client()
        .get(format!("{}/some/path?x=1", wisp.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp
        .headers()
        .get("x-wisp-invocation-id")
        .expect("invocation id header")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 16);
    assert_eq!(
        resp.text().await.unwrap(),
        "Hello, world! path=/some/path?x=1\n"
    );
    // One access-log line per invocation, carrying the same id and the
    // trigger that caused it.
    let logs = wisp.wait_for_access_log("GET /some/path 200", 1);
    let lines = common::access_lines(&logs, "GET /some/path 200");
    assert_eq!(lines.len(), 1, "{logs}");
    let fields: Vec<&str> = lines[0].split_whitespace().collect();
    for field in [
        format!("invocation={id}"),
        "status=200".into(),
        "trigger=http".into(),
    ] {
        assert!(fields.contains(&field.as_str()), "no {field} in {logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_reaches_the_guest_and_nothing_else_does() {
    let wisp = Wisp::serve(&guest("hello"), &["--env", "GREETING=Howdy"]);
    assert_eq!(
        get(&format!("{}/", wisp.url)).await,
        (200, "Howdy, world! path=/\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_a_fresh_instance() {
    let wisp = Wisp::serve(&guest("counter"), &[]);
    for _ in 0..5 {
        assert_eq!(get(&format!("{}/", wisp.url)).await, (200, "1\n".into()));
    }
    let futures: Vec<_> = (0..20)
        .map(|_| get_owned(format!("{}/", wisp.url)))
        .collect();
    for (status, body) in futures::future::join_all(futures).await {
        assert_eq!((status, body.as_str()), (200, "1\n"));
    }
}

/// A fresh instance's slot is reset in place, dirty pages and all, even
/// after an instance that dirtied more than the 32 separate runs of pages
/// wasmtime's reset collects per scan (`counter` dirties 96): the next
/// instance re-faults none of them. Without the patch in vendor/ (see its
/// README), each request here paid ~200 page faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_slot_is_reset_in_place_past_32_dirty_regions() {
    const REQUESTS: u64 = 100;
    let wisp = Wisp::serve(&guest("counter"), &[]);
    let url = format!("{}/", wisp.url);
    for _ in 0..5 {
        assert_eq!(get(&url).await, (200, "1\n".into()));
    }
    let before = minor_faults(wisp.pid());
    for _ in 0..REQUESTS {
        assert_eq!(get(&url).await, (200, "1\n".into()));
    }
    let per_request = (minor_faults(wisp.pid()) - before) / REQUESTS;
    assert!(
        per_request < 50,
        "{per_request} page faults per request: the slot's dirty pages were handed back to the \
         kernel instead of being reset in place (wasmtime's reset needs Linux 6.7's PAGEMAP_SCAN \
         and vendor/'s patch)"
    );
}

/// Minor page faults of process `pid` so far (`/proc/PID/stat`, field 10).
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which ends at the last ')'.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(7).unwrap().parse().unwrap()
}

async fn get_owned(url: String) -> (u16, String) {
    get(&url).await
}

fn refused(args: &[&str]) -> String {
    let out = wisp_command(args);
    assert!(!out.status.success(), "expected failure for {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn refuses_missing_file() {
    let err = refused(&["serve", "/nonexistent/x.wasm", "--listen", "127.0.0.1:0"]);
    assert!(
        err.contains("could not read component `/nonexistent/x.wasm`"),
        "{err}"
    );
}

#[test]
fn refuses_non_wasm_core_modules_and_components_without_handler() {
    let dir = tempfile::tempdir().unwrap();
    // Exports `wizer-initialize` (pre-initialized at deploy), after `extra`.
    let init = |extra: &str| {
        wat::parse_str(format!(
            r#"(component {extra}
                 (core module $m (func (export "wizer-initialize")))
                 (core instance $i (instantiate $m))
                 (func $f (canon lift (core func $i "wizer-initialize")))
                 (export "wizer-initialize" (func $f)))"#
        ))
        .unwrap()
    };
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "text.wasm",
            b"definitely not wasm".to_vec(),
            "not a WebAssembly file",
        ),
        (
            "core.wasm",
            wat::parse_str("(module)").unwrap(),
            "core WebAssembly module, not a component; build for the wasm32-wasip2 target, or wrap it with `wasm-tools component new",
        ),
        (
            "empty.wasm",
            wat::parse_str("(component)").unwrap(),
            "exports no HTTP handler",
        ),
        (
            "imports.wasm",
            wat::parse_str(
                r#"(component (import "acme:db/query@1.0.0" (instance (export "run" (func)))))"#,
            )
            .unwrap(),
            "acme:db/query@1.0.0",
        ),
        // Init runs on an instrumented copy, which exports more: the
        // refusal names only what the component itself exports.
        (
            "init.wasm",
            init(""),
            "but it exports `wizer-initialize`. Build it",
        ),
        // What does not link is refused before init would run, as such.
        (
            "init-imports.wasm",
            init(r#"(import "acme:db/query@1.0.0" (instance (export "run" (func))))"#),
            "init-imports.wasm`): the component imports something Wisp does not provide",
        ),
    ];
    for (file, bytes, expected) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).unwrap();
        // A fresh cache: a component with `wizer-initialize` is pre-initialized.
        let cache = dir.path().join(format!("cache-{file}"));
        let err = refused(&[
            "serve",
            path.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            cache.to_str().unwrap(),
        ]);
        assert!(
            err.contains(expected),
            "{file}: expected `{expected}` in:\n{err}"
        );
    }
}

#[test]
fn refuses_bad_flags_with_their_name() {
    let hello = guest("hello");
    let hello = hello.to_str().unwrap();
    let err = refused(&["serve", hello, "--memory", "lots"]);
    assert!(
        err.contains("--memory") && err.contains("invalid size"),
        "{err}"
    );
    let err = refused(&["serve", hello, "--env", "NOEQUALS"]);
    assert!(err.contains("KEY=VALUE"), "{err}");
    let err = refused(&["serve", hello, "--memory", "8Gi", "--listen", "127.0.0.1:0"]);
    assert!(
        err.contains("exceeds the largest memory the instance pool allows"),
        "{err}"
    );
    let err = refused(&["serve", hello, "--allow-outbound", "ftp://x"]);
    assert!(
        err.contains("--allowed-outbound-hosts") || err.contains("ftp://x"),
        "{err}"
    );
}

#[test]
fn help_covers_every_subcommand() {
    for sub in [
        &["serve"][..],
        &["up"],
        &["deploy"],
        &["functions"],
        &["functions", "rollback"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = wisp_command(&args);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: wisp"), "{args:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_request() {
    let mut wisp = Wisp::serve(&guest("slow"), &[]);
    let url = format!("{}/?ms=1500", wisp.url);
    let in_flight = tokio::spawn(async move { get(&url).await });
    wisp.wait_for_log("instance started");
    wisp.signal("TERM");
    assert_eq!(in_flight.await.unwrap(), (200, "slept 1500 ms\n".into()));
    let status = tokio::task::block_in_place(|| wisp.wait_exit(std::time::Duration::from_secs(30)));
    assert!(status.success(), "{status:?}");
    // wait_exit read the log to its end.
    let logs = wisp.logs();
    assert!(logs.contains("SIGTERM"), "{logs}");
}

/// A reused instance still alive when the server stops goes with it quietly:
/// no request was waiting on it, so nothing failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_with_an_idle_reused_instance_reports_no_failure() {
    let args = ["--isolation", "instance", "--idle-timeout", "10m"];
    let mut wisp = Wisp::serve(&guest("hello"), &args);
    assert_eq!(get(&wisp.url).await.0, 200);
    wisp.signal("INT");
    let status = tokio::task::block_in_place(|| wisp.wait_exit(std::time::Duration::from_secs(30)));
    assert!(status.success(), "{status:?}");
    let logs = wisp.logs();
    assert!(logs.contains("SIGINT"), "{logs}");
    assert!(!logs.contains("WARN"), "{logs}");
}

/// `wisp` is linked at a fixed address (runtime/build.rs; docs/security.md,
/// "A fixed-address executable"): its ELF type is `ET_EXEC`, not the
/// `ET_DYN` of a position-independent executable, unless built with
/// `WISP_PIE=1`.
#[test]
fn the_binary_is_linked_at_a_fixed_address() {
    use std::io::Read;
    let mut header = [0u8; 18];
    std::fs::File::open(env!("CARGO_BIN_EXE_wisp"))
        .and_then(|mut f| f.read_exact(&mut header))
        .unwrap();
    assert_eq!(&header[..4], b"\x7fELF");
    let e_type = u16::from_le_bytes([header[16], header[17]]);
    let pie = option_env!("WISP_PIE").is_some_and(|v| !v.is_empty() && v != "0");
    let (expected, what) = if pie { (3, "ET_DYN") } else { (2, "ET_EXEC") };
    assert_eq!(e_type, expected, "expected an {what} binary");
}
