//! The admin API's protections: the bearer token and where it comes from,
//! Host and Origin checks, the upload media type, hidden env values, and
//! `dirs` of admin deploys confined to `files_root`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{ADMIN_TOKEN, Wisp, anonymous_client, client, get, guest, send, wisp_command};

/// A manifest with the admin API on an ephemeral loopback port; the state
/// dir is `.wisp` beside it unless `extra` says otherwise.
fn manifest(extra: &str) -> String {
    format!("[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{extra}")
}

/// `wisp up` of `manifest` in `dir` without `WISP_ADMIN_TOKEN`, so the
/// server finds or makes its token itself.
fn up_without_env_token(dir: &Path, manifest: &str) -> Result<Wisp, String> {
    let file = dir.join("wisp.toml");
    std::fs::write(&file, manifest).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
    cmd.arg("up")
        .arg("-f")
        .arg(&file)
        .env_remove("WISP_ADMIN_TOKEN");
    Wisp::start(cmd)
}

/// Runs the CLI in `cwd` without `WISP_ADMIN_TOKEN`; success and output.
fn cli_in(cwd: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .current_dir(cwd)
        .env_remove("WISP_ADMIN_TOKEN")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs the CLI with the harness's token; success and output.
fn cli(args: &[&str]) -> (bool, String) {
    let out = wisp_command(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn port_of(admin: &str) -> &str {
    admin.rsplit(':').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(""));
    let admin = wisp.admin.clone().unwrap();
    let anonymous = anonymous_client();

    let resp = anonymous
        .get(format!("{admin}/v1/functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"wisp admin\""
    );
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("missing admin token")
            && body.contains("Authorization: Bearer <token>")
            && body.contains("WISP_ADMIN_TOKEN"),
        "{body}"
    );
    for req in [
        anonymous.get(format!("{admin}/metrics")),
        anonymous.get(format!("{admin}/v1/functions/ghost")),
        anonymous.delete(format!("{admin}/v1/functions/ghost")),
        anonymous.post(format!("{admin}/v1/functions/ghost/rollback")),
        anonymous
            .put(format!("{admin}/v1/functions/ghost"))
            .body("{}"),
    ] {
        let (status, body) = send(req).await;
        assert_eq!(status, 401, "{body}");
    }
    assert_eq!(
        send(anonymous.get(format!("{admin}/healthz"))).await,
        (200, "ok\n".into()),
        "health checks need no token"
    );

    let (status, body) = send(
        anonymous
            .get(format!("{admin}/v1/functions"))
            .bearer_auth("wisp-test-admin-token-9876543210"),
    )
    .await;
    assert!(
        status == 401 && body.contains("wrong admin token"),
        "{status}: {body}"
    );
    let (status, body) = send(
        anonymous
            .get(format!("{admin}/v1/functions"))
            .basic_auth("admin", Some(ADMIN_TOKEN)),
    )
    .await;
    assert!(
        status == 401 && body.contains("not a bearer token"),
        "{status}: {body}"
    );

    assert_eq!(
        send(client().get(format!("{admin}/v1/functions"))).await,
        (200, "[]".into())
    );
    let (status, body) = send(
        anonymous
            .get(format!("{admin}/v1/functions"))
            .header("authorization", format!("bearer {ADMIN_TOKEN}")),
    )
    .await;
    assert_eq!(status, 200, "the scheme is case-insensitive: {body}");

    // WISP_ADMIN_TOKEN wins: nothing was generated in the state dir.
    assert!(wisp.admin_token_file.is_none());
    assert!(!dir.path().join(".wisp/admin-token").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_token_is_private_reused_and_found_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = up_without_env_token(dir.path(), &manifest("")).unwrap();
    let admin = wisp.admin.clone().unwrap();
    let file = dir.path().join(".wisp/admin-token");
    assert_eq!(wisp.admin_token_file.as_deref(), Some(file.as_path()));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is private");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );

    let functions = format!("{admin}/v1/functions");
    let (status, body) = send(anonymous_client().get(&functions).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(send(client().get(&functions)).await.0, 401);

    // The CLI run from the manifest's folder finds .wisp/admin-token itself.
    let hello = guest("hello");
    let (ok, out) = cli_in(
        dir.path(),
        &[
            "deploy",
            "greet",
            hello.to_str().unwrap(),
            "--route",
            "/greet",
            "--admin",
            &admin,
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(get(&format!("{}/greet", wisp.url)).await.0, 200);

    // Elsewhere it finds none, and says where it looked.
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, out) = cli_in(elsewhere.path(), &["functions", "list", "--admin", &admin]);
    assert!(
        !ok && out.contains("401")
            && out.contains("missing admin token")
            && out.contains("found no token")
            && out.contains(".wisp/admin-token"),
        "{out}"
    );
    let state_dir = dir.path().join(".wisp");
    let (ok, out) = cli_in(
        elsewhere.path(),
        &[
            "functions",
            "list",
            "--admin",
            &admin,
            "--state-dir",
            state_dir.to_str().unwrap(),
        ],
    );
    assert!(ok && out.contains("greet"), "{out}");
    let (ok, out) = cli_in(
        dir.path(),
        &[
            "functions",
            "list",
            "--admin",
            &admin,
            "--admin-token",
            "not-the-right-token-at-all",
        ],
    );
    assert!(
        !ok && out.contains("wrong admin token")
            && out.contains("sent the token from --admin-token"),
        "{out}"
    );

    // A restart reuses the token.
    drop(wisp);
    let wisp = up_without_env_token(dir.path(), &manifest("")).unwrap();
    let admin = wisp.admin.clone().unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let (status, body) = send(
        anonymous_client()
            .get(format!("{admin}/v1/functions"))
            .bearer_auth(&token),
    )
    .await;
    assert!(status == 200 && body.contains("greet"), "{status}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_token_file_is_used_and_the_env_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secret")).unwrap();
    let token_file = dir.path().join("secret/token");
    let file_token = "file-token-0123456789abcdef";
    std::fs::write(&token_file, format!("{file_token}\n")).unwrap();
    let text = manifest("admin_token_file = \"secret/token\"\n");

    let wisp = up_without_env_token(dir.path(), &text).unwrap();
    let functions = format!("{}/v1/functions", wisp.admin.clone().unwrap());
    let (status, body) = send(anonymous_client().get(&functions).bearer_auth(file_token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(send(client().get(&functions)).await.0, 401);
    assert!(wisp.admin_token_file.is_none());
    assert!(!dir.path().join(".wisp/admin-token").exists());
    let (ok, out) = cli_in(
        dir.path(),
        &[
            "functions",
            "list",
            "--admin",
            wisp.admin.as_deref().unwrap(),
            "--admin-token-file",
            "secret/token",
        ],
    );
    assert!(ok, "{out}");
    drop(wisp);

    // The harness sets WISP_ADMIN_TOKEN: it wins over the file.
    let wisp = Wisp::up(dir.path(), &text);
    let functions = format!("{}/v1/functions", wisp.admin.clone().unwrap());
    assert_eq!(send(client().get(&functions)).await.0, 200);
    let (status, _) = send(anonymous_client().get(&functions).bearer_auth(file_token)).await;
    assert_eq!(status, 401);
    drop(wisp);

    // A guessable token is refused at start.
    std::fs::write(&token_file, "short\n").unwrap();
    let logs = match up_without_env_token(dir.path(), &text) {
        Ok(_) => panic!("a 5-character token was accepted"),
        Err(logs) => logs,
    };
    assert!(
        logs.contains("secret/token") && logs.contains("use at least 16"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_admin_needs_a_configured_token() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"0.0.0.0:0\"\n";
    let logs = match up_without_env_token(dir.path(), text) {
        Ok(_) => panic!("a non-loopback admin API without a configured token started"),
        Err(logs) => logs,
    };
    let says_what_to_do = |text: &str| {
        text.contains("not a loopback address")
            && text.contains("only with an explicitly configured token")
            && text.contains("admin_token_file")
            && text.contains("WISP_ADMIN_TOKEN")
    };
    assert!(
        logs.contains("wisp.toml") && says_what_to_do(&logs),
        "{logs}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_wisp"))
        .arg("serve")
        .arg(guest("hello"))
        .args(["--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0"])
        .env_remove("WISP_ADMIN_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && says_what_to_do(&err), "{err}");
    assert!(
        err.contains("--admin-token-file"),
        "wisp serve's flag is named: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_and_origins_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(""));
    let admin = wisp.admin.clone().unwrap();
    let port = port_of(&admin);
    let functions = format!("{admin}/v1/functions");

    for path in ["/v1/functions", "/healthz", "/dashboard"] {
        let (status, body) = send(
            client()
                .get(format!("{admin}{path}"))
                .header("host", format!("evil.example:{port}")),
        )
        .await;
        assert!(
            status == 403
                && body.contains("Host `evil.example:")
                && body.contains("DNS rebinding")
                && body.contains(&format!("http://127.0.0.1:{port}")),
            "{path}: {status}: {body}"
        );
    }
    let (status, _) = send(client().get(&functions).header("host", "127.0.0.1:1")).await;
    assert_eq!(status, 403, "another port is another address");
    for host in [
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("127.0.0.1:{port}"),
    ] {
        let (status, body) = send(client().get(&functions).header("host", &host)).await;
        assert_eq!(status, 200, "{host}: {body}");
    }

    let hello = std::fs::read(guest("hello")).unwrap();
    let (status, body) = send(
        client()
            .post(format!("{admin}/v1/components"))
            .header("origin", "http://evil.example")
            .header("content-type", "application/wasm")
            .body(hello.clone()),
    )
    .await;
    assert!(
        status == 403 && body.contains("cross-origin request from `http://evil.example`"),
        "{status}: {body}"
    );
    for origin in [
        "null",
        "https://127.0.0.1",
        &format!("http://127.0.0.1:{port}.evil"),
    ] {
        let (status, body) = send(client().get(&functions).header("origin", origin)).await;
        assert_eq!(status, 403, "{origin}: {body}");
    }
    let (status, body) = send(
        client()
            .post(format!("{admin}/v1/components"))
            .header("origin", format!("http://localhost:{port}"))
            .header("content-type", "application/wasm")
            .body(hello),
    )
    .await;
    assert_eq!(status, 201, "the admin API's own origin: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_must_declare_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(""));
    let components = format!("{}/v1/components", wisp.admin.clone().unwrap());
    let hello = std::fs::read(guest("hello")).unwrap();

    let (status, body) = send(client().post(&components).body(hello.clone())).await;
    assert!(
        status == 415
            && body.contains("Content-Type: application/wasm")
            && body.contains("got none"),
        "{status}: {body}"
    );
    let (status, body) = send(
        client()
            .post(&components)
            .header("content-type", "application/octet-stream")
            .body(hello.clone()),
    )
    .await;
    assert!(
        status == 415 && body.contains("`application/octet-stream`"),
        "{status}: {body}"
    );
    let (status, body) = send(
        client()
            .post(&components)
            .header("content-type", "Application/WASM")
            .body(hello),
    )
    .await;
    assert!(
        status == 201 && body.contains("sha256:"),
        "{status}: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_values_are_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(""));
    let admin = wisp.admin.clone().unwrap();
    let hello = guest("hello");
    let (ok, out) = cli(&[
        "deploy",
        "greet",
        hello.to_str().unwrap(),
        "--route",
        "/greet",
        "--env",
        "GREETING=hunter2-secret",
        "--admin",
        &admin,
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        get(&format!("{}/greet", wisp.url)).await,
        (200, "hunter2-secret, world! path=/greet\n".into()),
        "the guest still gets the value"
    );

    // A second revision through the API, to see its answer too.
    let (status, body) = send(
        client()
            .post(format!("{admin}/v1/components"))
            .header("content-type", "application/wasm")
            .body(std::fs::read(&hello).unwrap()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let component: serde_json::Value = serde_json::from_str(&body).unwrap();
    let spec = serde_json::json!({
        "component": component["component"],
        "route": "/greet",
        "env": { "GREETING": "hunter3-secret" },
    });
    let (status, deployed) = send(
        client()
            .put(format!("{admin}/v1/functions/greet"))
            .body(spec.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{deployed}");
    let (_, rolled_back) =
        send(client().post(format!("{admin}/v1/functions/greet/rollback"))).await;

    for (what, body) in [
        ("deploy", deployed),
        ("rollback", rolled_back),
        ("list", get(&format!("{admin}/v1/functions")).await.1),
        ("get", get(&format!("{admin}/v1/functions/greet")).await.1),
        (
            "revisions",
            get(&format!("{admin}/v1/functions/greet/revisions"))
                .await
                .1,
        ),
    ] {
        assert!(
            body.contains("\"GREETING\": \"(set)\"") && !body.contains("secret"),
            "{what}: {body}"
        );
    }
    let (ok, out) = cli(&["functions", "get", "greet", "--admin", &admin]);
    assert!(
        ok && out.contains("GREETING") && !out.contains("secret"),
        "{out}"
    );
    let (ok, out) = cli(&["functions", "list", "--admin", &admin]);
    assert!(
        ok && out.contains("greet") && out.contains("/greet"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deploys_preopen_dirs_only_under_files_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("www/public")).unwrap();
    std::fs::write(root.join("www/public/note.txt"), "inside\n").unwrap();
    std::fs::create_dir(root.join("secret")).unwrap();
    std::fs::write(root.join("secret/note.txt"), "outside\n").unwrap();
    std::os::unix::fs::symlink(root.join("secret"), root.join("www/escape")).unwrap();
    let files = guest("static-files");
    let deploy = |wisp: &Wisp, host_dir: &Path| {
        let dirs = format!("/static={}", host_dir.display());
        cli(&[
            "deploy",
            "files",
            files.to_str().unwrap(),
            "--dir",
            &dirs,
            "--admin",
            wisp.admin.as_deref().unwrap(),
        ])
    };

    let wisp = Wisp::up(root, &manifest(""));
    let (ok, out) = deploy(&wisp, &root.join("www/public"));
    assert!(
        !ok && out.contains("400") && out.contains("files_root") && out.contains("does not set"),
        "{out}"
    );
    drop(wisp);

    let wisp = Wisp::up(root, &manifest("files_root = \"www\"\n"));
    let (ok, out) = deploy(&wisp, &root.join("www/public"));
    assert!(ok, "{out}");
    let note = format!("{}/note.txt", wisp.url);
    assert_eq!(get(&note).await, (200, "inside\n".into()));

    for outside in [
        root.join("www/../secret"),
        root.join("www/escape"),
        Path::new("/etc").to_path_buf(),
    ] {
        let (ok, out) = deploy(&wisp, &outside);
        assert!(
            !ok && out.contains("400") && out.contains("outside [server] files_root"),
            "{}: {out}",
            outside.display()
        );
    }
    assert_eq!(
        get(&note).await,
        (200, "inside\n".into()),
        "still revision 1"
    );

    // Through the API a relative path is taken from files_root.
    let admin = wisp.admin.clone().unwrap();
    let (status, body) = send(
        client()
            .post(format!("{admin}/v1/components"))
            .header("content-type", "application/wasm")
            .body(std::fs::read(&files).unwrap()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let component: serde_json::Value = serde_json::from_str(&body).unwrap();
    for (host, expected) in [("public", 200), ("../secret", 400)] {
        let spec = serde_json::json!({
            "component": component["component"],
            "dirs": { "/static": host },
        });
        let (status, body) = send(
            client()
                .put(format!("{admin}/v1/functions/files"))
                .body(spec.to_string()),
        )
        .await;
        assert_eq!(status, expected, "{host}: {body}");
    }
    assert_eq!(get(&note).await, (200, "inside\n".into()));
}
