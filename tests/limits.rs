//! Every limit answers with the status a user expects and a log line naming
//! it; no guest behaviour harms the host or other functions.

mod common;

use std::time::Duration;

use common::{Wisp, access_lines, client, counter, get, guest, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bomb_fails_inside_the_guest() {
    // A pool of one instance: a slot kept by a failed invocation would turn
    // every later request into a 503.
    let wisp = Wisp::serve(
        &guest("memory-bomb"),
        &[
            "--memory",
            "32Mi",
            "--pool-instances",
            "1",
            "--name",
            "bomb",
            "--admin",
            "127.0.0.1:0",
        ],
    );
    for attempt in 1..=5 {
        let (status, body) = get(&format!("{}/", wisp.url)).await;
        assert_eq!(
            status, 500,
            "attempt {attempt} (503: the pool slot was not returned): {body}"
        );
        assert!(body.contains("invocation id"), "{body}");
        // The 500 can reach the client just before the failed instance is
        // dropped; once it is no longer live its slot is back in the pool.
        wisp.wait_for_metrics("bomb", "the failed instance dropped", |m| {
            counter(m, "instances_live") == 0
        })
        .await;
    }
    // Each attempt ran into the limit inside the guest.
    wisp.wait_for_log_count("memory limit reached", 5);
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
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[function]]\nname = \"trap\"\ncomponent = \"{}\"\nroute = \"/trap\"\n\n[[function]]\nname = \"hello\"\ncomponent = \"{}\"\nroute = \"/hello\"\n",
        guest("trap-after-headers").display(),
        guest("hello").display()
    );
    let wisp = Wisp::up(dir.path(), &manifest);
    let (mut head_lost, mut body_broken) = (0, 0);
    for attempt in 1..=3 {
        // Either the head never made it out, or it did and the body breaks
        // off: never a response that looks complete.
        match client().get(format!("{}/trap", wisp.url)).send().await {
            Err(e) => {
                assert!(
                    !e.is_connect() && !e.is_timeout(),
                    "attempt {attempt}: wisp did not take the request: {e}"
                );
                head_lost += 1;
            }
            Ok(resp) => {
                assert_eq!(resp.status(), 200, "attempt {attempt}");
                assert!(
                    resp.bytes().await.is_err(),
                    "attempt {attempt}: the body must not look complete"
                );
                body_broken += 1;
            }
        }
    }
    // Every attempt ran the guest into its trap, and wisp, whose response
    // had started as a 200, logged each as incomplete.
    wisp.wait_for_log_count("trap after headers, on purpose", 3);
    let logs = wisp.wait_for_access_log("GET /trap 200", 3);
    for line in access_lines(&logs, "GET /trap 200") {
        assert!(
            line.contains("complete=false"),
            "logged as complete ({head_lost} heads lost, {body_broken} bodies broken): {line}"
        );
    }
    // And the server goes on serving.
    assert_eq!(
        get(&format!("{}/hello", wisp.url)).await,
        (200, "Hello, world! path=/hello\n".into())
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_time_stops_a_spinning_guest_with_its_own_status() {
    // The wall-clock timeout is far away: only the CPU limit can end it.
    let wisp = Wisp::serve(
        &guest("loop"),
        &[
            "--cpu-time",
            "100ms",
            "--timeout",
            "60s",
            "--admin",
            "127.0.0.1:0",
            "--name",
            "spin",
        ],
    );
    let (status, body) = get(&format!("{}/", wisp.url)).await;
    assert_eq!(status, 508, "{body}");
    assert!(body.contains("cpu_time limit of 100ms"), "{body}");
    wisp.wait_for_log("cpu time limit reached");
    // Counted when the instance is dropped, which may follow the response.
    let metrics = wisp
        .wait_for_metrics("spin", "counted the cpu limit", |m| {
            common::counter(m, "cpu_limit_reached") == 1
        })
        .await;
    // At least the limit was charged before it was stopped.
    assert!(common::counter(&metrics, "cpu_time_ms") >= 100, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_is_not_cpu_time() {
    // Sleeping ten times the CPU limit is fine: wall time is not CPU time.
    let wisp = Wisp::serve(&guest("slow"), &["--cpu-time", "20ms"]);
    assert_eq!(
        get(&format!("{}/?ms=300", wisp.url)).await,
        (200, "slept 300 ms\n".into())
    );
    // Computing within the limit is fine too; past it is not.
    let wisp = Wisp::serve(&guest("burn"), &["--cpu-time", "1s"]);
    let (status, body) = get(&format!("{}/?ms=30", wisp.url)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("burned 30 ms"), "{body}");
    let (status, body) = get(&format!("{}/?ms=3000", wisp.url)).await;
    assert_eq!(status, 508, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heavy_guest_that_finishes_does_not_keep_the_cores() {
    // A reused instance that computed for long and then went idle must not
    // keep its turn on the cores: another function's long computation after
    // it still runs (on a 2-core machine there is one such turn).
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[[function]]\nname = \"kept\"\ncomponent = \"{burn}\"\nroute = \"/kept\"\nisolation = \"instance\"\n\n[[function]]\nname = \"next\"\ncomponent = \"{burn}\"\nroute = \"/next\"\n",
        burn = guest("burn").display()
    );
    let wisp = Wisp::up(dir.path(), &manifest);
    for path in ["/kept?ms=200", "/next?ms=200", "/kept?ms=200"] {
        let (status, body) = get(&format!("{}{path}", wisp.url)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.starts_with("burned 200 ms"), "{path}: {body}");
    }
}
