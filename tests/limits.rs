//! Every limit answers with the status a user expects and a log line naming
//! it; no guest behaviour harms the host or other functions.

mod common;

use std::time::Duration;

use common::{Wisp, client, get, guest, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_fails_inside_the_guest() {
    let wisp = Wisp::serve(&guest("memory-bomb"), &["--memory", "32Mi"]);
    let (status, body) = get(&format!("{}/", wisp.url)).await;
    assert_eq!(status, 500);
    assert!(body.contains("invocation id"), "{body}");
    wisp.wait_for_log("memory limit reached");
    // The pool slot came back: the next invocation runs (and fails) the same way.
    assert_eq!(get(&format!("{}/", wisp.url)).await.0, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_loop_times_out_with_504() {
    let wisp = Wisp::serve(&guest("loop"), &["--timeout", "1s"]);
    let (status, body) = get(&format!("{}/", wisp.url)).await;
    assert_eq!(status, 504, "{body}");
    wisp.wait_for_log("timeout reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_overflow_panic_and_no_response_are_500() {
    for name in ["stack-overflow", "panic", "no-response"] {
        let wisp = Wisp::serve(&guest(name), &[]);
        let (status, body) = get(&format!("{}/", wisp.url)).await;
        assert_eq!(status, 500, "{name}: {body}");
        wisp.wait_for_log("function failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_message_reaches_the_log() {
    let wisp = Wisp::serve(&guest("panic"), &[]);
    assert_eq!(get(&format!("{}/", wisp.url)).await.0, 500);
    wisp.wait_for_log("guest panicked on purpose");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_response_streams_completely() {
    let wisp = Wisp::serve(&guest("huge-response"), &[]);
    let resp = client().get(format!("{}/", wisp.url)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_after_headers_aborts_the_body() {
    let wisp = Wisp::serve(&guest("trap-after-headers"), &[]);
    for _ in 0..3 {
        // Either the head never made it out, or it did and the body breaks
        // off: never a response that looks complete.
        if let Ok(resp) = client().get(format!("{}/", wisp.url)).send().await {
            assert_eq!(resp.status(), 200);
            assert!(
                resp.bytes().await.is_err(),
                "the body must not look complete"
            );
        }
    }
    wisp.wait_for_log("trap after headers, on purpose");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_above_max_instances_gets_429_with_retry_after() {
    let wisp = Wisp::serve(
        &guest("loop"),
        &[
            "--max-instances",
            "1",
            "--max-queue",
            "0",
            "--timeout",
            "3s",
        ],
    );
    let url = format!("{}/", wisp.url);
    let first = tokio::spawn(async move { get(&url).await });
    // Wait until the first request holds the only instance.
    wisp.wait_for_log("instance started");
    let resp = client().get(format!("{}/", wisp.url)).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "1");
    wisp.wait_for_log("max_instances reached");
    assert_eq!(first.await.unwrap().0, 504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_request_runs_when_an_instance_frees_up() {
    let wisp = Wisp::serve(
        &guest("counter"),
        &["--max-instances", "1", "--max-queue", "50"],
    );
    let futures: Vec<_> = (0..20)
        .map(|_| {
            let url = format!("{}/", wisp.url);
            async move { get(&url).await }
        })
        .collect();
    for (status, body) in futures::future::join_all(futures).await {
        assert_eq!((status, body.as_str()), (200, "1\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_exhaustion_answers_503() {
    let wisp = Wisp::serve(
        &guest("loop"),
        &["--pool-instances", "1", "--timeout", "3s"],
    );
    let url = format!("{}/", wisp.url);
    let first = tokio::spawn(async move { get(&url).await });
    wisp.wait_for_log("instance started");
    let resp = client().get(format!("{}/", wisp.url)).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    wisp.wait_for_log("instance pool exhausted");
    assert_eq!(first.await.unwrap().0, 504);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_limit_413_declared_and_chunked() {
    let wisp = Wisp::serve(&guest("echo"), &["--max-request-body", "1Ki"]);
    let url = format!("{}/", wisp.url);
    let (status, body) = send(client().post(&url).body(vec![b'a'; 1000])).await;
    assert_eq!((status, body.len()), (200, 1000));
    let (status, _) = send(client().post(&url).body(vec![b'a'; 4096])).await;
    assert_eq!(status, 413);

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b'b'; 512])).collect();
    let chunked = client()
        .post(&url)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(chunked.status(), 413);
    wisp.wait_for_log("request body limit reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_on_every_worker_do_not_stall_other_functions() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[function]]
name = "spin"
component = "{}"
route = "/spin"
timeout = "20s"

[[function]]
name = "hello"
component = "{}"
route = "/hello"
"#,
        guest("loop").display(),
        guest("hello").display()
    );
    let wisp = Wisp::up(dir.path(), &manifest);
    // More endless loops than the runtime has worker threads (one per core).
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let loops: Vec<_> = (0..workers * 2)
        .map(|_| {
            let url = format!("{}/spin", wisp.url);
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while wisp.logs().matches("instance started").count() < loops.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "loops never started:\n{}",
            wisp.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(&format!("{}/hello", wisp.url)).await,
        (200, "Hello, world! path=/hello\n".into())
    );
    assert!(
        loops.iter().all(|l| !l.is_finished()),
        "hello must answer while the loops still run"
    );
    for l in loops {
        assert_eq!(l.await.unwrap().0, 504);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trapping_guest_then_healthy_request() {
    let dir = tempfile::tempdir().unwrap();
    // A pool of two instances: a slot leaked by any failure would show as 503.
    let manifest = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[server.pool]\ninstances = 2\n\n[[function]]\nname = \"boom\"\ncomponent = \"{}\"\nroute = \"/boom\"\n\n[[function]]\nname = \"hello\"\ncomponent = \"{}\"\nroute = \"/\"\n",
        guest("panic").display(),
        guest("hello").display()
    );
    let wisp = Wisp::up(dir.path(), &manifest);
    for _ in 0..5 {
        assert_eq!(get(&format!("{}/boom", wisp.url)).await.0, 500);
        assert_eq!(
            get(&format!("{}/ok", wisp.url)).await,
            (200, "Hello, world! path=/ok\n".into())
        );
    }
}
