//! `wisp up`: several functions from a manifest, routing, outbound policy,
//! and manifest errors that name file, line and key.

mod common;

use common::{Wisp, get, guest, wisp_command};

fn two_functions(extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[function]]
name = "hello"
component = "{hello}"
route = "/hello"
env = {{ GREETING = "hi" }}
{extra}

[[function]]
name = "counter"
component = "{counter}"
route = "/"
"#,
        hello = guest("hello").display(),
        counter = guest("counter").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_on_whole_segments_longest_prefix_wins() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &two_functions(""));
    assert_eq!(
        get(&format!("{}/hello", wisp.url)).await,
        (200, "hi, world! path=/hello\n".into())
    );
    assert_eq!(
        get(&format!("{}/hello/a/b?q=1", wisp.url)).await,
        (200, "hi, world! path=/hello/a/b?q=1\n".into())
    );
    // `/hellox` is not under `/hello`: it falls through to the root function.
    assert_eq!(
        get(&format!("{}/hellox", wisp.url)).await,
        (200, "1\n".into())
    );
    assert_eq!(
        get(&format!("{}/anything", wisp.url)).await,
        (200, "1\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_path_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[[function]]\nname = \"hello\"\ncomponent = \"{}\"\nroute = \"/hello\"\n",
        guest("hello").display()
    );
    let wisp = Wisp::up(dir.path(), &manifest);
    let (status, body) = get(&format!("{}/other", wisp.url)).await;
    assert_eq!(status, 404);
    assert!(body.contains("no function is routed at `/other`"), "{body}");
}

fn outbound_manifest(allowed: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[[function]]\nname = \"out\"\ncomponent = \"{}\"\nallowed_outbound_hosts = [{allowed}]\n",
        guest("outbound").display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_call_allowed_when_listed() {
    let upstream = common::upstream().await.url;
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &outbound_manifest(&format!("\"{upstream}\"")));
    let (status, body) = get(&format!("{}/?url={upstream}/data", wisp.url)).await;
    assert_eq!((status, body.as_str()), (200, "upstream says hi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_call_denied_by_default() {
    let upstream = common::upstream().await.url;
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &outbound_manifest(""));
    let (status, body) = get(&format!("{}/?url={upstream}/data", wisp.url)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    wisp.wait_for_log("outbound request denied");
}

fn up_fails(manifest: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    match Wisp::up_result(dir.path(), manifest) {
        Ok(_) => panic!("manifest was accepted:\n{manifest}"),
        Err(logs) => logs,
    }
}

#[test]
fn manifest_errors_name_file_line_and_key() {
    let hello = guest("hello");
    let hello = hello.display();
    let cases = [
        (
            format!("[[function]]\nname = \"a\"\ncomponent = \"{hello}\"\nmemroy = \"64Mi\"\n"),
            "unknown field `memroy`",
        ),
        (
            format!("[[function]]\nname = \"a\"\ncomponent = \"{hello}\"\nmemory = \"64Q\"\n"),
            "line 4",
        ),
        (
            format!("[[function]]\nname = \"a\"\ncomponent = \"{hello}\"\ntimeout = \"soon\"\n"),
            "invalid duration",
        ),
        (
            "[[function]]\nname = \"a\"\ncomponent = \"nope.wasm\"\n".to_string(),
            "wisp.toml:3: function `a`: `component`: no file",
        ),
        (
            format!(
                "[[function]]\nname = \"a\"\ncomponent = \"{hello}\"\n[[function]]\nname = \"a\"\ncomponent = \"{hello}\"\nroute = \"/b\"\n"
            ),
            "wisp.toml:5: function `a`: `name`: duplicate name",
        ),
        (
            format!(
                "[[function]]\nname = \"a\"\ncomponent = \"{hello}\"\n[[function]]\nname = \"b\"\ncomponent = \"{hello}\"\n"
            ),
            "function `b`: `route`: route `/` is already served by function `a`",
        ),
    ];
    for (manifest, expected) in cases {
        let logs = up_fails(&manifest);
        assert!(logs.contains(expected), "expected `{expected}` in:\n{logs}");
        assert!(logs.contains("wisp.toml"), "file not named in:\n{logs}");
    }
}

#[test]
fn missing_manifest_says_how_to_point_at_one() {
    let out = wisp_command(&["up", "-f", "/nonexistent/wisp.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not read manifest `/nonexistent/wisp.toml`") && err.contains("-f"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_are_closed_unless_configured() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/note.txt"), "from the host\n").unwrap();
    let component = guest("static-files");
    let open = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[[function]]\nname = \"files\"\ncomponent = \"{}\"\ndirs = {{ \"/static\" = \"public\" }}\n",
        component.display()
    );
    let wisp = Wisp::up(dir.path(), &open);
    assert_eq!(
        get(&format!("{}/note.txt", wisp.url)).await,
        (200, "from the host\n".into())
    );
    assert_eq!(get(&format!("{}/missing.txt", wisp.url)).await.0, 404);
    drop(wisp);

    let closed = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[[function]]\nname = \"files\"\ncomponent = \"{}\"\n",
        component.display()
    );
    let wisp = Wisp::up(dir.path(), &closed);
    assert_eq!(
        get(&format!("{}/note.txt", wisp.url)).await.0,
        404,
        "no directory is preopened by default"
    );
    // One server per state directory.
    drop(wisp);

    let missing = format!("{closed}dirs = {{ \"/static\" = \"nowhere\" }}\n");
    let logs = match Wisp::up_result(dir.path(), &missing) {
        Ok(_) => panic!("a missing directory was accepted"),
        Err(logs) => logs,
    };
    assert!(
        logs.contains("`dirs`: `/static`") && logs.contains("no such directory"),
        "{logs}"
    );
}
