//! Command functions over HTTP (`handler = "cgi"`) through the real binary:
//! CGI variables, stdin, `Status:`, streamed bodies, a command that fails
//! before its headers; a Rust wasi:cli/run command, a C preview-1 program
//! adapted at deploy, and Ruby (ruby.wasm with a script from `dirs`,
//! pre-initialized at deploy and not).

mod common;

use common::{Wisp, client, guest, repo, send};

fn manifest() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[function]]
name = "cgi-hello"
component = "{cgi}"
handler = "cgi"
route = "/cgi"

[[function]]
name = "c-cgi"
component = "{c}"
handler = "cgi"
route = "/c-cgi"

[[function]]
name = "ruby-hello"
component = "{ruby}"
handler = "cgi"
route = "/ruby"
args = ["/app/hello.rb"]
dirs = {{ "/app" = "{app}" }}

[[function]]
name = "ruby-cold"
component = "{ruby}"
handler = "cgi"
route = "/ruby-cold"
args = ["--disable-gems", "/app/hello.rb"]
dirs = {{ "/app" = "{app}" }}
snapshot = false
"#,
        cgi = guest("cgi-hello").display(),
        c = guest("c-cgi").display(),
        ruby = guest("ruby").display(),
        app = repo().join("guest-examples/ruby-app").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgi_commands_answer_with_their_headers_status_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest());
    let url = &wisp.url;

    let (status, body) = send(client().get(format!("{url}/cgi/hello?x=1"))).await;
    assert_eq!(
        (status, body.trim()),
        (200, "hello from CGI: GET /hello?x=1")
    );
    let (status, body) = send(client().post(format!("{url}/cgi/echo")).body("ping")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("hello from CGI: POST /echo") && body.contains("ping"),
        "{body}"
    );
    let (status, body) = send(client().get(format!("{url}/cgi/missing"))).await;
    assert_eq!(
        (status, body.contains("no such page: /missing")),
        (404, true),
        "{body}"
    );
    let (status, body) = send(client().get(format!("{url}/cgi/stream"))).await;
    assert_eq!(status, 200);
    assert_eq!(body.lines().count(), 5, "{body}");

    let resp = client()
        .get(format!("{url}/cgi/crash"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let id = resp.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.text().await.unwrap();
    assert!(body.contains(&id) && body.contains("exit code 3"), "{body}");

    // A C program built as a preview-1 module, adapted at deploy.
    let (status, body) = send(client().get(format!("{url}/c-cgi/x?y=2"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Hello from C CGI, world! GET /x?y=2"),
        "{body}"
    );

    // Ruby: the interpreter with a script from `dirs`, stdin and all,
    // booted at deploy (ruby.wasm exports `wizer-initialize`): the request's
    // CGI variables and headers reach `ENV` although init saw none of them.
    for route in ["ruby", "ruby-cold"] {
        let (status, body) = send(client().post(format!("{url}/{route}/orders")).body("tea")).await;
        assert_eq!(status, 200, "{route}: {body}");
        assert!(
            body.contains("hello from Ruby")
                && body.contains("POST /orders")
                && body.contains("tea"),
            "{route}: {body}"
        );
        let (status, _) = send(client().get(format!("{url}/{route}/missing"))).await;
        assert_eq!(status, 404, "{route}");
        let (status, body) = send(
            client()
                .get(format!("{url}/{route}/json?q=1"))
                .header("x-trace", "abc"),
        )
        .await;
        assert_eq!(status, 200, "{route}: {body}");
        assert!(
            body.contains(r#""path":"/json","query":"q=1""#)
                && body.contains(r#""HTTP_X_TRACE":"abc""#),
            "{route}: {body}"
        );
    }
    let logs = wisp.logs();
    let snapshots = logs.matches("pre-initialized").count()
        + logs
            .matches("loaded snapshot from the artifact cache")
            .count();
    assert_eq!(
        snapshots, 1,
        "ruby-hello is pre-initialized (now or in the cache), ruby-cold is not:\n{logs}"
    );
}
