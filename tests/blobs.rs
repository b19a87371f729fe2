//! Blob stores through wasi:blobstore, end to end against the real binary:
//! both interface versions from a guest, `wisp_sdk::blob`, grants, names
//! that try to leave their directory, `wisp blobs`, size limits, and writes
//! that are all or nothing when the guest traps or the server is killed.

mod common;

use std::path::{Path, PathBuf};

use common::{Wisp, client, eventually, get, guest, refused_at_load, send};
use tokio::io::AsyncWriteExt;

fn manifest(dir: &Path, extra: &str) -> String {
    format!(
        r#"
{server}
[[store]]
name = "photos"
kind = "blobstore"

[[store]]
name = "scratch"
kind = "blobstore"

[[store]]
name = "small"
kind = "blobstore"
max_object_size = "1Mi"

[[store]]
name = "other"
kind = "blobstore"

[[store]]
name = "cache"
kind = "keyvalue"

[[function]]
name = "probe"
component = "{probe}"
route = "/probe"
blobstore = ["photos", "scratch", "small"]

[[function]]
name = "ungranted"
component = "{probe}"
route = "/ungranted"
{extra}
"#,
        server = common::server_table(dir),
        probe = guest("blob-probe").display(),
    )
}

fn blobs_dir(dir: &Path) -> PathBuf {
    dir.join("state/blobs")
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn put(wisp: &Wisp, store: &str, name: &str, body: Vec<u8>) -> (u16, String) {
    let url = format!("{}/probe/put?store={store}&name={name}", wisp.url);
    send(client().post(url).body(body)).await
}

async fn get_bytes(wisp: &Wisp, query: &str) -> (u16, Vec<u8>) {
    let resp = client()
        .get(format!("{}/probe/{query}", wisp.url))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_keep_the_blobstore_contract_in_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), ""));
    let (status, body) = get(&format!("{}/probe/suite?store=scratch&prefix=s-", wisp.url)).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"), "{}", wisp.logs());

    // The SDK: put, get, ranges, list by prefix, info, delete.
    let photo = pattern(300_000, 7);
    assert_eq!(
        put(&wisp, "photos", "2024%2Fcat.jpg", photo.clone()).await,
        (200, "ok\n".into())
    );
    put(&wisp, "photos", "2024%2Fdog.jpg", b"woof".to_vec()).await;
    put(&wisp, "photos", "2025%2Fbird.jpg", b"tweet".to_vec()).await;
    assert_eq!(
        get_bytes(&wisp, "get?store=photos&name=2024%2Fcat.jpg").await,
        (200, photo.clone())
    );
    assert_eq!(
        get_bytes(
            &wisp,
            "range?store=photos&name=2024%2Fcat.jpg&start=1000&end=1999"
        )
        .await,
        (200, photo[1000..2000].to_vec())
    );
    assert_eq!(
        get(&format!(
            "{}/probe/list?store=photos&prefix=2024%2F",
            wisp.url
        ))
        .await,
        (200, "2024/cat.jpg\n2024/dog.jpg\n".into())
    );
    assert_eq!(
        get(&format!(
            "{}/probe/info?store=photos&name=2024%2Fcat.jpg",
            wisp.url
        ))
        .await,
        (200, "300000\n".into())
    );
    // Copy across two granted containers, then move back.
    let copy = "copy?store=photos&name=2025%2Fbird.jpg&to-store=scratch&to=bird";
    assert_eq!(get(&format!("{}/probe/{copy}", wisp.url)).await.0, 200);
    assert_eq!(
        get_bytes(&wisp, "get?store=scratch&name=bird").await,
        (200, b"tweet".to_vec())
    );
    let back = "move?store=scratch&name=bird&to-store=photos&to=bird";
    assert_eq!(get(&format!("{}/probe/{back}", wisp.url)).await.0, 200);
    assert_eq!(get_bytes(&wisp, "get?store=scratch&name=bird").await.0, 404);
    let (status, _) = get(&format!(
        "{}/probe/delete?store=photos&name=2024%2Fdog.jpg",
        wisp.url
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        get_bytes(&wisp, "get?store=photos&name=2024%2Fdog.jpg")
            .await
            .0,
        404
    );

    // Names that look like paths stay files inside the store's directory.
    for name in ["..%2F..%2F..%2Fescape", "%2Ftmp%2Fescape", "..", "."] {
        let (status, body) = put(&wisp, "photos", name, b"inside".to_vec()).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let listed = get(&format!("{}/probe/list?store=photos", wisp.url))
        .await
        .1;
    for name in ["../../../escape", "/tmp/escape", "..", "."] {
        assert!(
            listed.lines().any(|l| l == name),
            "{name} not in:\n{listed}"
        );
    }
    let store_dir = blobs_dir(dir.path()).join("photos");
    for file in files(dir.path()) {
        if file.to_string_lossy().contains("escape") {
            assert_eq!(
                file.parent(),
                Some(store_dir.as_path()),
                "{}",
                file.display()
            );
        }
    }
    assert!(!Path::new("/tmp/escape").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_gets_only_the_containers_it_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), ""));
    let (status, body) = get(&format!("{}/probe/open?store=photos", wisp.url)).await;
    assert_eq!((status, body.as_str()), (200, "opened\n"));
    // Another function's store, an undeclared one, a key-value store: the
    // same refusal from both versions.
    for store in ["other", "nope", "cache"] {
        let (status, body) = get(&format!("{}/probe/open?store={store}", wisp.url)).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body.matches("access denied").count(), 2, "{body}");
    }
    let (status, body) = get(&format!("{}/ungranted/open?store=photos", wisp.url)).await;
    assert_eq!(status, 403, "{body}");
    // Nor can an object be copied into (or out of) an ungranted container.
    put(&wisp, "photos", "secret", b"mine".to_vec()).await;
    let copy = "copy?store=photos&name=secret&to-store=other&to=stolen";
    let (status, body) = get(&format!("{}/probe/{copy}", wisp.url)).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("not granted the container `other`"), "{body}");
    let (status, body) = get(&format!(
        "{}/ungranted/get?store=photos&name=secret",
        wisp.url
    ))
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("access denied"), "{body}");
    assert!(files(&blobs_dir(dir.path()).join("other")).is_empty());
    assert!(!wisp.logs().contains("panicked"), "{}", wisp.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_read_and_write_objects_with_wisp_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), ""));
    let admin = wisp.admin.clone().unwrap();
    let blobs = |args: &[&str], stdin: Option<&[u8]>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wisp"));
        cmd.arg("blobs")
            .args(args)
            .args(["--admin", &admin])
            .env("WISP_ADMIN_TOKEN", common::ADMIN_TOKEN)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut input, stdin.unwrap_or_default()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    };
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let file = dir.path().join("photo.bin");
    let photo = pattern(200_000, 3);
    std::fs::write(&file, &photo).unwrap();
    ok(blobs(
        &["put", "photos", "in/photo.bin", file.to_str().unwrap()],
        None,
    ));
    ok(blobs(
        &["put", "photos", "in/note?#%.txt", "-"],
        Some(b"from stdin"),
    ));
    ok(blobs(&["put", "photos", "top.txt", "-"], Some(b"top")));

    // What the operator wrote, the guest reads, and the other way round.
    assert_eq!(
        get_bytes(&wisp, "get?store=photos&name=in%2Fphoto.bin").await,
        (200, photo.clone())
    );
    put(&wisp, "photos", "in%2Ffrom-guest", b"guest bytes".to_vec()).await;
    assert_eq!(
        ok(blobs(&["get", "photos", "in/from-guest"], None)),
        b"guest bytes"
    );
    assert_eq!(
        ok(blobs(&["get", "photos", "in/note?#%.txt"], None)),
        b"from stdin"
    );
    let out = dir.path().join("out.bin");
    ok(blobs(
        &["get", "photos", "in/photo.bin", "-o", out.to_str().unwrap()],
        None,
    ));
    assert_eq!(std::fs::read(&out).unwrap(), photo);

    let listed = String::from_utf8(ok(blobs(&["ls", "photos", "in/"], None))).unwrap();
    let names: Vec<&str> = listed
        .lines()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(
        names,
        ["in/from-guest", "in/note?#%.txt", "in/photo.bin"],
        "{listed}"
    );
    assert!(listed.contains("200000"), "{listed}");
    let stores = String::from_utf8(ok(blobs(&["ls"], None))).unwrap();
    assert_eq!(
        stores.lines().collect::<Vec<_>>(),
        ["other", "photos", "scratch", "small"]
    );

    ok(blobs(&["rm", "photos", "in/photo.bin"], None));
    assert_eq!(
        get_bytes(&wisp, "get?store=photos&name=in%2Fphoto.bin")
            .await
            .0,
        404
    );
    let out = blobs(&["get", "photos", "in/photo.bin"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no object `in/photo.bin` in blob store `photos`"),
        "{err}"
    );
    let out = blobs(&["ls", "nope"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no blob store `nope`"));

    // Past max_object_size: refused, nothing stored.
    let big = dir.path().join("big.bin");
    std::fs::write(&big, pattern(2 << 20, 1)).unwrap();
    let out = blobs(&["put", "small", "big", big.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("413") && err.contains("1Mi limit"), "{err}");
    assert_eq!(ok(blobs(&["ls", "small"], None)), b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_write_past_the_limit_or_cut_by_a_trap_leaves_the_old_object() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path(), ""));
    let old = pattern(500_000, 9);
    assert_eq!(put(&wisp, "small", "obj", old.clone()).await.0, 200);

    let (status, body) = put(&wisp, "small", "obj", pattern(3 << 20, 2)).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("larger than the 1Mi limit"), "{body}");
    assert_eq!(
        get_bytes(&wisp, "get?store=small&name=obj").await,
        (200, old.clone())
    );

    let url = format!("{}/probe/trap?store=small&name=obj", wisp.url);
    let (status, _) = send(client().post(url).body(pattern(800_000, 4))).await;
    assert_eq!(status, 500);
    let url = format!("{}/probe/trap?store=small&name=new", wisp.url);
    assert_eq!(send(client().post(url).body(b"x".to_vec())).await.0, 500);
    assert_eq!(
        get_bytes(&wisp, "get?store=small&name=obj").await,
        (200, old)
    );
    assert_eq!(get_bytes(&wisp, "get?store=small&name=new").await.0, 404);
    // The trapped instances' staged files went with them.
    let staging = blobs_dir(dir.path()).join(".staging");
    eventually("staged files are removed", || files(&staging).is_empty()).await;
}

/// Starts a guest write of `total` bytes to `name` and sends only `sent`
/// of them, keeping the connection open.
async fn start_cut_write(
    wisp: &Wisp,
    name: &str,
    total: usize,
    sent: &[u8],
) -> tokio::net::TcpStream {
    let addr = wisp.url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /probe/put?store=photos&name={name} HTTP/1.1\r\nhost: {addr}\r\n\
         content-length: {total}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(sent).await.unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_by_kill_9_leaves_the_old_object_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let text = manifest(dir.path(), "");
    let mut wisp = Wisp::up(dir.path(), &text);
    let old = pattern(4 << 20, 5);
    assert_eq!(put(&wisp, "photos", "big", old.clone()).await.0, 200);

    // Two writes, 2 MiB into 8 MiB each: over the old object and to a new
    // name. Once their bytes are staged, the server is killed.
    let half = pattern(2 << 20, 6);
    let _over = start_cut_write(&wisp, "big", 8 << 20, &half).await;
    let _fresh = start_cut_write(&wisp, "fresh", 8 << 20, &half).await;
    let staging = blobs_dir(dir.path()).join(".staging");
    eventually("both writes are staged", || {
        let staged = files(&staging);
        staged.len() == 2
            && staged
                .iter()
                .all(|f| std::fs::metadata(f).map_or(0, |m| m.len()) >= 1 << 20)
    })
    .await;
    wisp.kill();

    let wisp = Wisp::up(dir.path(), &text);
    assert_eq!(
        get_bytes(&wisp, "get?store=photos&name=big").await,
        (200, old)
    );
    assert_eq!(get_bytes(&wisp, "get?store=photos&name=fresh").await.0, 404);
    assert!(
        files(&staging).is_empty(),
        "staging was not emptied at start"
    );
    assert_eq!(
        get(&format!("{}/probe/list?store=photos", wisp.url)).await,
        (200, "big\n".into())
    );
}

#[test]
fn bad_blob_store_manifests_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let function = |grant: &str| {
        format!(
            "[[function]]\nname = \"f\"\ncomponent = \"{}\"\nblobstore = [\"{grant}\"]\n",
            guest("blob-probe").display()
        )
    };
    let stores = "[[store]]\nname = \"cache\"\nkind = \"keyvalue\"\n\n\
                  [[store]]\nname = \"photos\"\nkind = \"blobstore\"\n\n";
    let err = refused_at_load(
        dir.path(),
        &format!("{stores}{}", function("cache")),
        "no blob store `cache`",
    );
    assert!(
        err.contains("`blobstore`") && err.contains("declared: photos"),
        "{err}"
    );
    refused_at_load(
        dir.path(),
        &format!("{stores}{}", function("missing")),
        "no blob store `missing`",
    );
    refused_at_load(
        dir.path(),
        "[[store]]\nname = \"photos\"\nkind = \"blobstore\"\nbackend = { redis = \"redis://127.0.0.1/0\" }\n",
        "Redis is a key-value backend only",
    );
    refused_at_load(
        dir.path(),
        "[[store]]\nname = \"cache\"\nkind = \"keyvalue\"\nmax_object_size = \"1Mi\"\n",
        "only a kind = \"blobstore\" store has objects to limit",
    );
}
