//! Every example function answers correctly through the runtime, served from
//! the example app manifest (guest-examples/wisp.toml): one route per
//! function, in every language (Rust, JavaScript, Python, C, Go).

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::{Wisp, client, get, guest, repo, send};

/// Starts of the example app take turns; the flag says whether its big
/// components are already in the artifact cache (see [`warm_big_components`]).
static STARTING: Mutex<bool> = Mutex::new(false);

/// Components larger than this (the JS, Python and Go ones, with their
/// engines or runtimes inside) are compiled on their own before the first
/// `wisp up`.
const BIG_COMPONENT: u64 = 1024 * 1024;

/// `text` with `from` replaced by `to`; `from` must occur, so a change to the
/// example manifest fails here rather than silently serving something else.
fn rewrite(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the example manifest changed shape: no `{from}` in\n{text}"
    );
    text.replace(from, to)
}

/// `wisp up` loads a manifest's functions one after another before it
/// listens, and a cold start of a 13-18 MB JS or Python component compiles
/// it for about a minute on two cores: all of them in one start would miss
/// the harness's start deadline. So each big component of the manifest is
/// first served alone, which leaves its compiled code in the artifact cache
/// for the `wisp up` that follows.
fn warm_big_components(manifest: &str, examples: &Path) {
    let components = manifest.lines().filter_map(|line| {
        line.trim()
            .strip_prefix("component = \"")?
            .strip_suffix('"')
    });
    for component in components {
        let path = examples.join(component);
        let size = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        // Commands (preview-1 modules such as ruby.wasm) are no HTTP
        // functions to serve alone; `wisp up` compiles them in time.
        let core_module = std::fs::read(&path).is_ok_and(|b| b.get(4..8) == Some(&[1, 0, 0, 0]));
        if size > BIG_COMPONENT && !core_module {
            drop(Wisp::serve(&path, &[]));
        }
    }
}

/// The example app, with an ephemeral port, no admin API, and absolute
/// component and directory paths (the manifest is copied to a temporary
/// directory, which also holds its state dir). The outbound example may call
/// this same server whatever its port.
fn example_app() -> (tempfile::TempDir, Wisp) {
    guest("hello"); // builds the guests if needed
    let examples = repo().join("guest-examples");
    let original = std::fs::read_to_string(examples.join("wisp.toml")).unwrap();
    let text = rewrite(
        &original,
        "listen = \"127.0.0.1:8080\"\nadmin = \"127.0.0.1:8081\"",
        "listen = \"127.0.0.1:0\"",
    );
    let text = rewrite(
        &text,
        "component = \"target/",
        &format!("component = \"{}/target/", examples.display()),
    );
    let text = rewrite(
        &text,
        "= \"static-files/public\"",
        &format!("= \"{}/static-files/public\"", examples.display()),
    );
    let text = rewrite(
        &text,
        "= \"ruby-app\"",
        &format!("= \"{}/ruby-app\"", examples.display()),
    );
    let text = rewrite(
        &text,
        "file = \"secrets/",
        &format!("file = \"{}/secrets/", examples.display()),
    );
    let text = rewrite(
        &text,
        "allowed_outbound_hosts = [\"http://127.0.0.1:8080\"]",
        "allowed_outbound_hosts = [\"http://127.0.0.1:*\"]",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut warmed = STARTING.lock().unwrap_or_else(|e| e.into_inner());
    if !*warmed {
        warm_big_components(&original, &examples);
        *warmed = true;
    }
    let wisp = Wisp::up(dir.path(), &text);
    drop(warmed);
    (dir, wisp)
}

/// `value` percent-encoded for a query string.
fn query_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
    // Fresh instances each time, yet the visits add up: they live in the
    // `counter` key-value store.
    assert_eq!(get(&format!("{u}/visits")).await, (200, "1\n".into()));
    assert_eq!(get(&format!("{u}/visits")).await, (200, "2\n".into()));
    // Each visit changed the store, and its storage event reached visit-log.
    wisp.wait_for_log_count(
        "source=//wisp/stores/counter type=dev.wisp.kv.key.updated data={\"key\":\"visits\"",
        2,
    );
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

/// The photo pipeline: a PPM stored through `photo-upload` becomes a storage
/// event on which `thumbnail` writes its half-size copy, which the upload
/// function then serves; a file that is no PPM is stored but not scaled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_photo_gets_its_thumbnail() {
    let (_dir, wisp) = example_app();
    let u = &wisp.url;
    // 4×2 pixels, each byte its own index: the thumbnail is 2×1, pixels
    // (0,0) and (2,0).
    let mut photo = b"P6\n4 2\n255\n".to_vec();
    photo.extend(0..24u8);
    let (status, body) = send(
        client()
            .put(format!("{u}/photos/2024/cat.ppm"))
            .body(photo.clone()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(client().put(format!("{u}/photos/notes.txt")).body("hello")).await;
    assert_eq!(status, 201, "{body}");
    wisp.wait_for_log("thumbnail: skipping notes.txt: not a binary PPM");
    let thumbnail = format!("{u}/photos/2024/cat.ppm?size=thumbnail");
    wisp.wait_for_log("thumbnail: 2024/cat.ppm:");
    let resp = client().get(&thumbnail).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut expected = b"P6\n2 1\n255\n".to_vec();
    expected.extend([0, 1, 2, 6, 7, 8]);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), expected.as_slice());
    let original = client()
        .get(format!("{u}/photos/2024/cat.ppm"))
        .send()
        .await
        .unwrap();
    assert_eq!(original.bytes().await.unwrap().as_ref(), photo.as_slice());
    assert_eq!(
        get(&format!("{u}/photos/notes.txt?size=thumbnail")).await.0,
        404
    );
}

/// The cart API at `base` (…/cart): carts outlive instances, the currency
/// comes from `config`, checkout numbers the order `order` and shows only
/// the last four characters of the payment secret.
async fn check_cart(base: &str, user: &str, order: u64) {
    let json = |body: &str| -> serde_json::Value {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{base}: {e}: {body}"))
    };
    let cart = |items: serde_json::Value| serde_json::json!({"user": user, "items": items, "currency": "KRW"});
    let url = format!("{base}/{user}");
    let add = |body: &'static str| send(client().post(&url).body(body));

    let (status, body) = get(&url).await;
    assert_eq!((status, json(&body)), (200, cart(serde_json::json!({}))));
    for item in [
        r#"{"item": "tea", "quantity": 2}"#,
        r#"{"item": "cake"}"#,
        r#"{"item": "tea", "quantity": 1}"#,
    ] {
        let (status, body) = add(item).await;
        assert_eq!(status, 200, "{base}: {body}");
    }
    let (status, body) = get(&url).await;
    let items = serde_json::json!({"tea": 3, "cake": 1});
    assert_eq!((status, json(&body)), (200, cart(items.clone())), "{base}");

    for bad in [
        "{nope",
        r#"{"item": " "}"#,
        r#"{"item": "x", "quantity": 0}"#,
    ] {
        let (status, body) = add(bad).await;
        assert_eq!(status, 400, "{base}: {bad} → {body}");
        assert!(json(&body)["error"].is_string(), "{base}: {body}");
    }
    assert_eq!(get(&format!("{base}/no%20spaces")).await.0, 400, "{base}");
    assert_eq!(send(client().put(&url)).await.0, 405, "{base}");
    assert_eq!(get(&format!("{url}/checkout")).await.0, 405, "{base}");
    assert_eq!(get(&format!("{url}/other")).await.0, 404, "{base}");

    let checkout = || send(client().post(format!("{url}/checkout")));
    let (status, body) = checkout().await;
    assert_eq!(status, 200, "{base}: {body}");
    let mut expected = cart(items);
    expected["order"] = order.into();
    expected["payment_key"] = "…4242".into();
    assert_eq!(json(&body), expected, "{base}");
    assert!(!body.contains("sk_test_wisp_example"), "{base}: {body}");
    let (status, body) = checkout().await;
    assert_eq!(status, 409, "{base}: {body}");

    add(r#"{"item": "jam"}"#).await;
    let (status, body) = send(client().delete(&url)).await;
    assert_eq!((status, json(&body)), (200, cart(serde_json::json!({}))));
    assert_eq!(json(&get(&url).await.1), cart(serde_json::json!({})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carts_in_rust_js_and_python_share_one_store() {
    let (_dir, wisp) = example_app();
    let u = &wisp.url;
    // One order counter in the shared store numbers the orders of all three.
    check_cart(&format!("{u}/cart"), "ann", 1).await;
    check_cart(&format!("{u}/js-cart/cart"), "bob", 2).await;
    check_cart(&format!("{u}/py-cart/cart"), "cy", 3).await;
    // What one language wrote, another reads.
    let (status, _) = send(
        client()
            .post(format!("{u}/js-cart/cart/dee"))
            .body(r#"{"item": "tea"}"#),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = get(&format!("{u}/py-cart/cart/dee")).await;
    assert_eq!(
        (status, body.contains(r#""tea": 1"#)),
        (200, true),
        "{body}"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_language_answers_on_its_route() {
    let (_dir, wisp) = example_app();
    let u = &wisp.url;

    // The hellos answer the same way in every language, with the full path.
    for (route, greeting) in [
        ("hello", "Hello, world!"),
        ("js-hello", "Hello from JS, world!"),
        ("py-hello", "Hello from Python, world!"),
        ("c-hello", "Hello from C, world!"),
        ("go-hello", "Hello from Go, world!"),
        // wasi:http@0.3 on a reused instance; ?ms waits without blocking it.
        ("p3-hello", "Hello, world!"),
    ] {
        let path = format!("/{route}/a/b?ms=20");
        assert_eq!(
            get(&format!("{u}{path}")).await,
            (200, format!("{greeting} path={path}\n")),
            "{route}"
        );
    }

    // The JSON APIs route on the end of the path, under their own prefix.
    for api in ["js-api", "go-api"] {
        assert_eq!(
            get(&format!("{u}/{api}/items/7")).await,
            (200, r#"{"id":7,"name":"item-7"}"#.into()),
            "{api}"
        );
        let created = send(
            client()
                .post(format!("{u}/{api}/items"))
                .body(r#"{"name":"x"}"#),
        )
        .await;
        assert_eq!(created, (201, r#"{"id":1,"name":"x"}"#.into()), "{api}");
        let (status, body) = get(&format!("{u}/{api}/nothing")).await;
        assert_eq!(status, 404, "{api}: {body}");
        assert!(
            body.contains(&format!("no route for /{api}/nothing")),
            "{body}"
        );
    }

    // Python: a binary-mode CloudEvent comes back transformed.
    let resp = client()
        .post(format!("{u}/py-events"))
        .header("ce-specversion", "1.0")
        .header("ce-id", "evt-py")
        .header("ce-source", "/tests")
        .header("ce-type", "com.example.order.created")
        .header("content-type", "application/json")
        .body(r#"{" Item ":" Book "}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    let event: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(event["id"], "evt-py", "{body}");
    assert_eq!(event["type"], "COM.EXAMPLE.ORDER.CREATED", "{body}");
    assert_eq!(event["wispreceivedmode"], "binary", "{body}");
    assert_eq!(event["data"], serde_json::json!({"item": "Book"}), "{body}");

    // C: the body's checksums (the algorithms' check values).
    assert_eq!(
        send(client().post(format!("{u}/c-checksum")).body("123456789")).await,
        (200, "crc32=cbf43926 adler32=091e01de bytes=9\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_outbound_and_cpu_time_use_their_settings() {
    let (_dir, wisp) = example_app();
    let u = &wisp.url;

    // `dirs` maps static-files/public to the guest's /static.
    let file = repo().join("guest-examples/static-files/public/hello.txt");
    let expected = std::fs::read_to_string(&file).unwrap();
    assert_eq!(get(&format!("{u}/static/hello.txt")).await, (200, expected));
    let (status, body) = get(&format!("{u}/static/missing.txt")).await;
    assert_eq!(status, 404, "{body}");

    // outbound calls hello through this same server (an allowed origin)...
    let target = format!("{u}/hello/via-outbound");
    let resp = client()
        .get(format!("{u}/outbound?url={}", query_encode(&target)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream-status"], "200");
    assert_eq!(
        resp.text().await.unwrap(),
        "Hello, world! path=/hello/via-outbound\n"
    );
    // ...and nowhere else.
    let denied = format!("{u}/outbound?url={}", query_encode("http://127.0.0.2:9/"));
    let (status, body) = get(&denied).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");

    // burn computes within its cpu_time, and is stopped past it.
    let (status, body) = get(&format!("{u}/burn?ms=20")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("burned 20 ms"), "{body}");
    let (status, body) = get(&format!("{u}/burn?ms=5000")).await;
    assert_eq!(status, 508, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_flows_from_the_api_to_every_consumer() {
    let (_dir, wisp) = example_app();
    let (status, body) = send(
        client()
            .post(format!("{}/orders", wisp.url))
            .header("content-type", "application/json")
            .body(r#"{"id": 7, "item": "tea", "quantity": 2}"#),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = answer["event_id"].as_str().unwrap().to_string();
    for consumer in ["on-order", "js-on-order", "py-on-order"] {
        wisp.wait_for_log(&format!(
            "{consumer}: order 7 item=\"tea\" quantity=2 ce-id={id} attempt=1"
        ));
    }

    let (status, body) = send(
        client()
            .post(format!("{}/orders", wisp.url))
            .header("content-type", "application/json")
            .body(r#"{"id": 8, "item": "", "quantity": 2}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("item"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_task_and_schedule_handlers_answer_on_their_routes() {
    let (_dir, wisp) = example_app();
    let (status, body) = send(
        client()
            .post(format!("{}/send-email", wisp.url))
            .header("x-wisp-task", "welcome-42")
            .header("x-wisp-task-attempt", "1")
            .body(r#"{"to": "a@example.com", "subject": "hi"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wisp.wait_for_log("send-email: to=a@example.com subject=hi task=welcome-42 attempt=1");
    let (status, _) = send(client().post(format!("{}/send-email", wisp.url)).body("{}")).await;
    assert_eq!(status, 400);

    let (status, body) = send(
        client()
            .post(format!("{}/daily-report", wisp.url))
            .header("ce-specversion", "1.0")
            .header("ce-id", "daily-report-1")
            .header("ce-source", "/schedules/daily-report")
            .header("ce-type", "dev.wisp.schedule.fired")
            .header("content-type", "application/json")
            .body(r#"{"schedule": "daily-report", "scheduled_time": "2026-11-29T21:00:00.000Z"}"#),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    wisp.wait_for_log("daily-report: report for 2026-11-29T21:00:00.000Z (event daily-report-1)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_functions_answer_in_every_language() {
    let (_dir, wisp) = example_app();
    for (path, expected) in [
        ("/cgi/hi", "hello from CGI: GET /hi"),
        ("/c-cgi/hi", "Hello from C CGI, world! GET /hi"),
        ("/ruby/hi", "hello from Ruby"),
    ] {
        let (status, body) = get(&format!("{}{path}", wisp.url)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains(expected), "{path}: {body}");
    }
}
