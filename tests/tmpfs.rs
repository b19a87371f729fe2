//! Every instance's in-memory `/tmp` through the real binary: a guest using
//! plain `std::fs` writes, appends, reads, lists, renames and deletes files;
//! a fresh instance starts with an empty `/tmp` while a reused one keeps its
//! files; writing past the function's `memory` limit fails in the guest with
//! ENOSPC (and the server keeps serving); a wasi 0.3 component gets the same
//! `/tmp` through wasi:filesystem@0.3; CGI commands (a Rust wasi:cli/run
//! component and a C preview-1 program) have a `/tmp` too;
//! `dirs` may not map `/tmp`.

mod common;

use common::{Wisp, client, get, guest, refused_at_load, send};

fn manifest() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[function]]
name = "tmp"
component = "{probe}"
route = "/tmp"
memory = "32Mi"

[[function]]
name = "tmp-reused"
component = "{probe}"
route = "/reused"
isolation = "instance"
max_instances = 1

[[function]]
name = "p3-tmp"
component = "{p3}"
route = "/p3"
memory = "32Mi"

[[function]]
name = "cgi-hello"
component = "{cgi}"
handler = "cgi"
route = "/cgi"
memory = "32Mi"

[[function]]
name = "c-cgi"
component = "{c}"
handler = "cgi"
route = "/c-cgi"
"#,
        probe = guest("tmp-probe").display(),
        cgi = guest("cgi-hello").display(),
        c = guest("c-cgi").display(),
        p3 = guest("p3-tmp-probe").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tmp_is_writable_per_instance_and_limited_by_memory() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest());
    let url = &wisp.url;

    let (status, body) = get(&format!("{url}/tmp/exercise")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "marker before: false\n\
         read: hello, world\n\
         size: 12\n\
         list: a.txt,sub\n\
         renamed: hello, world (old name gone: true)\n\
         deleted: true\n"
    );
    // A fresh instance per request: the first request's marker is gone.
    let (status, body) = get(&format!("{url}/tmp/exercise")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("marker before: false\n"), "{body}");

    // A reused instance keeps its /tmp, as a Cloud Run instance does.
    let (status, body) = get(&format!("{url}/reused/exercise")).await;
    assert!(
        status == 200 && body.starts_with("marker before: false\n"),
        "{body}"
    );
    let (status, body) = get(&format!("{url}/reused/exercise")).await;
    assert!(
        status == 200 && body.starts_with("marker before: true\n"),
        "{body}"
    );

    // /tmp and linear memory share the 32 MiB limit: 8 MiB fits, 64 fails
    // inside the guest with ENOSPC, which it reports.
    let (status, body) = get(&format!("{url}/tmp/fill?mb=8")).await;
    assert_eq!((status, body.as_str()), (200, "wrote 8 MiB\n"));
    let (status, body) = get(&format!("{url}/tmp/fill?mb=64")).await;
    assert_eq!(status, 507, "{body}");
    assert!(body.contains("No space left on device"), "{body}");
    let written: u32 = body
        .strip_prefix("wrote ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {body}"));
    assert!((8..32).contains(&written), "{body}");
    // The server, and the function, keep serving.
    let (status, body) = get(&format!("{url}/tmp/fill?mb=1")).await;
    assert_eq!((status, body.as_str()), (200, "wrote 1 MiB\n"));
}

/// The same `/tmp`, through wasi:filesystem@0.3 (`p3-tmp-probe` uses the
/// 0.3 bindings directly: Rust's `std::fs` would go through 0.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_components_get_tmp_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static/hello.txt"), "from dirs").unwrap();
    let manifest = format!(
        r#"{}
[[function]]
name = "p3-dirs"
component = "{}"
route = "/p3-dirs"
dirs = {{ "/static" = "static" }}
"#,
        manifest(),
        guest("p3-tmp-probe").display()
    );
    let wisp = Wisp::up(dir.path(), &manifest);
    let url = &wisp.url;

    // `dirs` are still wasmtime-wasi's, next to /tmp.
    let cat = format!("{url}/p3-dirs/cat?path=/static/hello.txt");
    assert_eq!(get(&cat).await, (200, "from dirs".to_owned()));
    let (status, body) = get(&format!("{url}/p3-dirs/exercise")).await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = get(&format!("{url}/p3/exercise")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "marker before: false\n\
         read: hello from p3\n\
         size: 13\n\
         list: probe.txt\n\
         removed: true\n"
    );
    // A fresh instance per request: the first request's marker is gone.
    let (status, body) = get(&format!("{url}/p3/exercise")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("marker before: false\n"), "{body}");

    // The 32 MiB limit again: 8 MiB fits, 64 fails in the guest with
    // insufficient-space, which it reports.
    let (status, body) = get(&format!("{url}/p3/fill?mb=8")).await;
    assert_eq!((status, body.as_str()), (200, "wrote 8 MiB\n"));
    let (status, body) = get(&format!("{url}/p3/fill?mb=64")).await;
    assert_eq!(status, 507, "{body}");
    assert!(
        body.ends_with(", then: ErrorCode::InsufficientSpace\n"),
        "{body}"
    );
    let written: u32 = body
        .strip_prefix("wrote ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {body}"));
    assert!((8..32).contains(&written), "{body}");
    let (status, body) = get(&format!("{url}/p3/fill?mb=1")).await;
    assert_eq!((status, body.as_str()), (200, "wrote 1 MiB\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgi_commands_write_and_read_tmp() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest());
    let url = &wisp.url;
    let (status, body) = send(client().post(format!("{url}/cgi/tmp")).body("kept in /tmp")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "read back from /tmp/body: kept in /tmp\n")
    );
    // The next run is a new instance, with an empty /tmp.
    let (status, body) = send(client().get(format!("{url}/cgi/tmp"))).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "read back from /tmp/body: \n")
    );
}

#[test]
fn dirs_may_not_map_tmp() {
    let dir = tempfile::tempdir().unwrap();
    for guest_path in ["/tmp", "/tmp/", "/tmp/cache", "//tmp"] {
        let text = format!(
            r#"
[[function]]
name = "f"
component = "{probe}"
route = "/f"
dirs = {{ "{guest_path}" = "." }}
"#,
            probe = guest("tmp-probe").display(),
        );
        refused_at_load(
            dir.path(),
            &text,
            "/tmp is each instance's own in-memory directory",
        );
    }
}
