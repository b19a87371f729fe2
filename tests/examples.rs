//! Every example function answers correctly through the runtime, served from
//! the example app manifest (guest-examples/wisp.toml).

mod common;

use common::{Wisp, client, get, guest, repo, send};

/// The example app, with ephemeral ports and absolute component paths.
fn example_app() -> (tempfile::TempDir, Wisp) {
    guest("hello"); // builds the guests if needed
    let text = std::fs::read_to_string(repo().join("guest-examples/wisp.toml")).unwrap();
    let target = repo().join("guest-examples/target");
    let text = text
        .replace(
            "127.0.0.1:8080\"\nadmin = \"127.0.0.1:8081\"",
            "127.0.0.1:0\"",
        )
        .replace(
            "component = \"target/",
            &format!("component = \"{}/", target.display()),
        );
    assert!(
        text.contains("127.0.0.1:0"),
        "the example manifest changed shape:\n{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &text);
    (dir, wisp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_examples() {
    let (_dir, wisp) = example_app();
    let u = &wisp.url;
    assert_eq!(
        get(&format!("{u}/hello/there")).await,
        (200, "Hello, world! path=/hello/there\n".into())
    );
    assert_eq!(get(&format!("{u}/counter")).await, (200, "1\n".into()));
    assert_eq!(get(&format!("{u}/counter")).await, (200, "1\n".into()));
    assert_eq!(
        get(&format!("{u}/slow?ms=20")).await,
        (200, "slept 20 ms\n".into())
    );
    assert_eq!(get(&format!("{u}/slow?ms=soon")).await.0, 400);

    let (status, body) = get(&format!("{u}/lookup?key=7")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("key=7 value=") && body.ends_with("init_runs=1\n"),
        "{body}"
    );
    assert_eq!(get(&format!("{u}/lookup?key=99999999999")).await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_streams_large_bodies_back() {
    let (_dir, wisp) = example_app();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let resp = client()
        .post(format!("{}/echo", wisp.url))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert!(resp.bytes().await.unwrap() == body, "echoed body differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_api_routes_and_validates() {
    let (_dir, wisp) = example_app();
    let u = &wisp.url;
    assert_eq!(
        get(&format!("{u}/api/items/7")).await,
        (200, r#"{"id":7,"name":"item-7"}"#.into())
    );
    let created = client()
        .post(format!("{u}/api/items"))
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.text().await.unwrap(), r#"{"id":1,"name":"x"}"#);
    let bad = client()
        .post(format!("{u}/api/items"))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("\"error\""));
    assert_eq!(get(&format!("{u}/api/nothing")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudevents_binary_structured_poison_and_malformed() {
    let (_dir, wisp) = example_app();
    let url = format!("{}/events", wisp.url);
    let binary = client()
        .post(&url)
        .header("ce-specversion", "1.0")
        .header("ce-id", "evt-1")
        .header("ce-source", "/tests")
        .header("ce-type", "com.example.hi")
        .header("content-type", "application/json")
        .body(r#"{"hello":"world"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 204);
    wisp.wait_for_log("cloudevent: id=evt-1");

    let structured = |event: &'static str| {
        client()
            .post(&url)
            .header("content-type", "application/cloudevents+json")
            .body(event)
    };
    let ok = r#"{"specversion":"1.0","id":"evt-2","source":"/tests","type":"com.example.hi","data":{"n":1}}"#;
    assert_eq!(send(structured(ok)).await.0, 204);
    wisp.wait_for_log("cloudevent: id=evt-2");
    let poison =
        r#"{"specversion":"1.0","id":"evt-3","source":"/tests","type":"com.example.poison"}"#;
    assert_eq!(send(structured(poison)).await.0, 500);
    let (status, body) = send(structured("{not json")).await;
    assert_eq!(status, 400, "{body}");

    let missing = client()
        .post(&url)
        .header("ce-specversion", "1.0")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let text = missing.text().await.unwrap();
    assert!(
        text.contains("ce-id") && text.contains("ce-source"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_prints_output_reaches_the_log_tagged() {
    let wisp = Wisp::serve(&guest("init-prints"), &[]);
    let resp = client().get(format!("{}/", wisp.url)).send().await.unwrap();
    let id = resp.headers()["x-wisp-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(resp.text().await.unwrap(), "ok\n");
    let logs = wisp.wait_for_log("init-prints: handling request");
    let line = logs
        .lines()
        .find(|l| l.contains("init-prints: handling request"))
        .unwrap();
    assert!(
        line.contains(&format!("invocation={id}")) && line.contains("stream=\"stdout\""),
        "{line}"
    );
}
