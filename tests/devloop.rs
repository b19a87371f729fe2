//! The developer loop through the real binary, outside the repo: `wisp new`
//! in a temp dir for each language, `wisp build`, `wisp up`, the function
//! answers; `wisp up --watch` redeploys a saved edit and keeps the old
//! revision serving through a build that fails; and the inputs refused.
//!
//! The projects build against a Wisp kit that the real installer links to
//! this checkout in a temp dir (`WISP_KIT_DIR`). Rust projects share the
//! guest target dir (`WISP_GUEST_TARGET_DIR`, as scripts/build-guests does),
//! so std for wasm is never rebuilt here.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::{Wisp, client, eventually, get, send};

/// The kit every test's projects use, linked once per test binary.
fn kit() -> &'static Path {
    static KIT: OnceLock<tempfile::TempDir> = OnceLock::new();
    KIT.get_or_init(|| {
        let kit = tempfile::tempdir().unwrap();
        let out = Command::new(common::repo().join("scripts/install-guest-toolchains"))
            .args(["rust", "js", "python", "c", "go"])
            .env("WISP_KIT_DIR", kit.path())
            .output()
            .expect("could not run scripts/install-guest-toolchains");
        assert!(
            out.status.success(),
            "install-guest-toolchains failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        kit
    })
    .path()
}

/// `wisp ARGS` in `dir`, with the test kit, building Rust guests in the
/// guest target dir (not the host's CARGO_TARGET_DIR a test run exports).
fn wisp(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
    cmd.args(args)
        .current_dir(dir)
        .env("WISP_KIT_DIR", kit())
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    wisp(dir, args).output().expect("could not run wisp")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `wisp new NAME ARGS` in a fresh temp dir; returns it and the project.
/// The manifest is moved to free ports (its admin API, if any, too).
fn new_project(name: &str, args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::tempdir().unwrap();
    let out = run(parent.path(), &[&["new", name], args].concat());
    assert!(out.status.success(), "wisp new failed:\n{}", text(&out));
    let project = parent.path().join(name);
    let manifest = project.join("wisp.toml");
    let written = std::fs::read_to_string(&manifest).unwrap();
    assert!(written.contains("route = \"/\"") || written.contains("[function.trigger]"));
    let moved = written
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:3001", "127.0.0.1:0");
    std::fs::write(&manifest, moved).unwrap();
    (parent, project)
}

/// `wisp build` succeeds and prints one summary line for `name`.
fn build(project: &Path, name: &str) {
    let out = run(project, &["build"]);
    let printed = text(&out);
    assert!(out.status.success(), "wisp build failed:\n{printed}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with(&format!("built {name}: "))
                && l.contains(" in ")
                && l.contains("B)")),
        "no summary line for {name} in:\n{printed}"
    );
}

/// `wisp up [--watch]` on the project (`-f` with the full path, where the
/// harness looks for an admin API).
fn up(project: &Path, watch: bool) -> Wisp {
    let manifest = project.join("wisp.toml");
    let mut cmd = wisp(project, &["up", "-f", manifest.to_str().unwrap()]);
    if watch {
        cmd.arg("--watch");
    }
    Wisp::start(cmd).expect("wisp up did not start")
}

/// `wisp new`, `wisp build`, `wisp up`: the templated function answers.
async fn answers(name: &str, lang: &str) {
    let (_parent, project) = new_project(name, &["--lang", lang]);
    build(&project, name);
    let wisp = up(&project, false);
    let (status, body) = get(&format!("{}/some/path", wisp.url)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("Hello from {name}! path=/some/path\n"));
}

#[tokio::test]
async fn rust_project_redeploys_each_save_and_survives_a_broken_one() {
    let (_parent, project) = new_project("hello-rs", &["--lang", "rust"]);
    for file in [
        "Cargo.toml",
        ".cargo/config.toml",
        "src/lib.rs",
        ".gitignore",
    ] {
        assert!(project.join(file).is_file(), "no {file}");
    }
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    assert_eq!(readme.lines().count(), 5, "{readme}");
    let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    let sdk = kit().join("sdk");
    assert!(
        cargo.contains(&format!("path = \"{}\"", sdk.display())),
        "{cargo}"
    );

    // A second function serving the same file, with no build of its own:
    // rebuilding hello-rs must leave it on its first revision.
    let manifest = project.join("wisp.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        "\n[[function]]\nname = \"other\"\ncomponent = \"target/hello_rs.wasm\"\nroute = \"/other\"\n",
    );
    std::fs::write(&manifest, text).unwrap();

    build(&project, "hello-rs");
    let wisp = up(&project, true);
    wisp.wait_for_log("watching the sources of hello-rs");
    let url = format!("{}/x", wisp.url);
    assert_eq!(
        get(&url).await,
        (200, "Hello from hello-rs! path=/x\n".into())
    );

    let source = project.join("src/lib.rs");
    let original = std::fs::read_to_string(&source).unwrap();
    assert!(original.contains("Hello from"), "{original}");
    std::fs::write(&source, original.replace("Hello from", "Howdy from")).unwrap();
    eventually("the edit is built and deployed", || {
        wisp.logs().contains("deployed as revision 2")
    })
    .await;
    assert_eq!(
        get(&url).await,
        (200, "Howdy from hello-rs! path=/x\n".into())
    );

    std::fs::write(
        &source,
        original.replace("Hello from", "Howdy from\" broken"),
    )
    .unwrap();
    eventually("the broken build is reported", || {
        wisp.logs().contains("hello-rs: revision 2 keeps serving")
    })
    .await;
    let logs = wisp.logs();
    assert!(
        logs.contains("error: could not compile `hello-rs`"),
        "the compiler's error is not in the output:\n{logs}"
    );
    assert_eq!(
        get(&url).await,
        (200, "Howdy from hello-rs! path=/x\n".into())
    );
}

#[tokio::test]
async fn rust_event_project_takes_events_of_its_topic() {
    let (_parent, project) = new_project("events-rs", &["--lang", "rust", "--trigger", "event"]);
    build(&project, "events-rs");
    let wisp = up(&project, false);
    let admin = wisp
        .admin
        .as_ref()
        .expect("the event template serves the admin API");
    let req = client()
        .post(format!("{admin}/v1/topics/events/events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "evt-1")
        .header("ce-source", "/test")
        .header("ce-type", "com.example.hello")
        .header("content-type", "application/json")
        .body(r#"{"hi":1}"#);
    let (status, body) = send(req).await;
    assert_eq!(status, 202, "{body}");
    wisp.wait_for_log("events-rs: event evt-1 of type com.example.hello from /test");
}

/// JavaScript and Python share one test: their components take the
/// longest to build and to compile on first load.
#[tokio::test]
async fn js_and_python_projects_build_and_answer() {
    answers("hello-js", "js").await;
    answers("hello-py", "python").await;
}

#[tokio::test]
async fn c_project_builds_and_answers() {
    answers("hello-c", "c").await;
}

#[tokio::test]
async fn go_project_builds_and_answers() {
    answers("hello-go", "go").await;
}

#[test]
fn wisp_new_refuses_what_it_cannot_make() {
    let parent = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], expected: &str| {
        let out = run(parent.path(), args);
        let printed = text(&out);
        assert!(!out.status.success(), "wisp {args:?} succeeded:\n{printed}");
        assert!(
            printed.contains(expected),
            "expected `{expected}` in:\n{printed}"
        );
    };
    refused(
        &["new", "f", "--lang", "cobol"],
        "[possible values: rust, js, python, c, go]",
    );
    refused(
        &["new", "no good", "--lang", "rust"],
        "function name: `no good` is not a valid name",
    );
    refused(
        &["new", "f", "--lang", "js", "--trigger", "event"],
        "has an event template for rust only",
    );
    let taken = parent.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    refused(&["new", "taken", "--lang", "c"], "exists and is not empty");
    assert!(!taken.join("wisp.toml").exists());
    let forced = run(parent.path(), &["new", "taken", "--lang", "c", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(taken.join("app.c").is_file() && taken.join("notes.txt").is_file());
}

#[test]
fn wisp_build_reports_a_failed_command_and_a_missing_toolchain() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = |command: &str, toolchain: &str| {
        let text = format!(
            "[[function]]\nname = \"f\"\ncomponent = \"f.wasm\"\n[function.build]\ncommand = \"{command}\"\n{toolchain}\n"
        );
        std::fs::write(dir.path().join("wisp.toml"), text).unwrap();
    };

    manifest("echo compiling f; exit 3", "");
    let out = run(dir.path(), &["build"]);
    let printed = text(&out);
    assert!(!out.status.success(), "{printed}");
    assert!(
        printed.contains("compiling f"),
        "the command's output is not shown:\n{printed}"
    );
    assert!(
        printed.contains("building f failed: `echo compiling f; exit 3` (exit status 3)"),
        "{printed}"
    );

    manifest("true", "");
    let printed = text(&run(dir.path(), &["build"]));
    assert!(printed.contains("succeeded but wrote no"), "{printed}");

    // A kit folder with nothing in it: the toolchain is named, with the
    // installer's command.
    let empty = tempfile::tempdir().unwrap();
    manifest("true", "toolchain = \"go\"");
    let out = wisp(dir.path(), &["build"])
        .env("WISP_KIT_DIR", empty.path())
        .output()
        .unwrap();
    let printed = text(&out);
    assert!(!out.status.success(), "{printed}");
    let installer = common::repo()
        .join("scripts/install-guest-toolchains")
        .canonicalize()
        .unwrap();
    assert!(
        printed.contains(&format!("{} go", installer.display())),
        "no install command in:\n{printed}"
    );

    // Unbuilt, `wisp up` says how to build it.
    let out = run(dir.path(), &["up"]);
    assert!(
        text(&out).contains("build it with `wisp build`"),
        "{}",
        text(&out)
    );
}
