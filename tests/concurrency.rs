//! Instance reuse: `isolation = "instance"`, `concurrency` for wasi:http@0.3
//! guests, `min_instances`, idle expiry, and the combinations refused.

mod common;

use std::time::Duration;

use common::{Wisp, counter, get, guest};

fn app(dir: &std::path::Path, guest_name: &str, settings: &str) -> Wisp {
    let manifest = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n\n[[function]]\nname = \"f\"\ncomponent = \"{}\"\n{settings}\n",
        dir.join("state").display(),
        guest(guest_name).display()
    );
    Wisp::up(dir, &manifest)
}

/// One of the function's counters from the admin API.
async fn metric(wisp: &Wisp, name: &str) -> u64 {
    counter(&wisp.metrics("f").await, name)
}

async fn wait_for_metric(wisp: &Wisp, name: &str, want: u64) {
    wisp.wait_for_metrics("f", &format!("{name} = {want}"), |m| {
        counter(m, name) == want
    })
    .await;
}

/// Starts `n` GETs of `path`, a few milliseconds apart, and returns them.
async fn staggered(wisp: &Wisp, path: &str, n: usize) -> Vec<(u16, String)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let url = format!("{}{path}", wisp.url);
        tasks.push(tokio::spawn(async move { get(&url).await }));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Starts `guest_name` with `concurrency = 16` and `max_instances = 1`,
/// checks one warm-up request (path, body), sends 16 staggered slow `path`
/// requests, checks that the warm-up's instance served them all, and
/// returns their answers.
///
/// max_instances = 1 keeps the count exact: ProxyHandler starts another
/// instance when a request lands while the busy one is still running guest
/// code (likely on a loaded machine). `queue_timeout` is shorter than the 16
/// slow requests served one at a time, so their success shows concurrency.
async fn sixteen_on_one_instance(
    guest_name: &str,
    warm_up: (&str, &str),
    path: &str,
    queue_timeout: &str,
) -> Vec<(u16, String)> {
    let dir = tempfile::tempdir().unwrap();
    let wisp = app(
        dir.path(),
        guest_name,
        &format!(
            "isolation = \"instance\"\nconcurrency = 16\nmax_instances = 1\nqueue_timeout = \"{queue_timeout}\""
        ),
    );
    assert_eq!(
        get(&format!("{}{}", wisp.url, warm_up.0)).await,
        (200, warm_up.1.into())
    );
    let results = staggered(&wisp, path, 16).await;
    assert_eq!(metric(&wisp, "instances_created").await, 1);
    assert_eq!(metric(&wisp, "instances_reused").await, 16);
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_p3_instance_serves_16_concurrent_requests() {
    // One at a time, 16 requests of 1 s would take 16 s.
    let warm_up = ("/?ms=1", "slept 1 ms count=1\n");
    let results = sixteen_on_one_instance("p3-slow", warm_up, "/?ms=1000", "10s").await;
    let mut counts: Vec<u64> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body.trim()
                .rsplit("count=")
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        (2..=17).collect::<Vec<_>>(),
        "all requests ran in the warm-up's instance"
    );
}

/// The same, for a p3 handler written with the SDK (`#[wisp_sdk::p3::http_handler]`,
/// pre-initialized through its `wizer-initialize` export like p2 SDK functions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_p3_handler_serves_16_concurrent_requests_from_one_instance() {
    // One at a time, 16 requests of 300 ms would take 4.8 s.
    let warm_up = ("/a/b?x=1", "Hello, world! path=/a/b?x=1\n");
    for (status, body) in sixteen_on_one_instance("p3-hello", warm_up, "/?ms=300", "2s").await {
        assert_eq!(
            (status, body.as_str()),
            (200, "Hello, world! path=/?ms=300\n")
        );
    }
}

/// Without an admin API, state directory or jobs, the functions served are
/// all a server will ever run, and it reserves only the fiber stacks they
/// can use at once (twice `max_instances × concurrency`, plus one): every
/// one of those requests still runs, in rounds that recycle the instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_set_of_functions_gets_the_stacks_it_can_use() {
    let args = [
        "--isolation",
        "instance",
        "--concurrency",
        "8",
        "--max-instances",
        "2",
        "--max-requests-per-instance",
        "4",
        "--queue-timeout",
        "20s",
    ];
    let wisp = Wisp::serve(&guest("p3-slow"), &args);
    wisp.wait_for_log(
        "instance pool: 33 fiber stacks, as many as the 1 function(s) served can use",
    );
    for _ in 0..2 {
        let results = staggered(&wisp, "/?ms=300", 16).await;
        assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    }

    let wisp = Wisp::serve(&guest("slow"), &["--max-instances", "3"]);
    wisp.wait_for_log("instance pool: 7 fiber stacks");
    let results = staggered(&wisp, "/?ms=200", 12).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");

    // With an admin API (deploys at run time) the pool keeps a stack per
    // instance.
    let wisp = Wisp::serve(&guest("slow"), &["--admin", "127.0.0.1:0"]);
    assert!(!wisp.logs().contains("fiber stacks"), "{}", wisp.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_1_needs_an_instance_per_request_up_to_max_instances() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = app(
        dir.path(),
        "p3-slow",
        "isolation = \"instance\"\nconcurrency = 1\nmax_instances = 4",
    );
    let results = staggered(&wisp, "/?ms=600", 8).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "{results:?}");
    // Four instances ran at once; the other requests queued for them.
    assert_eq!(metric(&wisp, "instances_created").await, 4);
    assert_eq!(metric(&wisp, "instances_reused").await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_counter_grows_in_instance_mode() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = app(dir.path(), "counter", "isolation = \"instance\"");
    for expected in ["1\n", "2\n", "3\n"] {
        assert_eq!(
            get(&format!("{}/", wisp.url)).await,
            (200, expected.to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_instances_are_ready_before_traffic_and_after_idle_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = app(
        dir.path(),
        "p3-slow",
        "isolation = \"instance\"\nconcurrency = 1\nmin_instances = 2\nidle_timeout = \"1s\"",
    );
    wait_for_metric(&wisp, "instances_live", 2).await;
    assert_eq!(metric(&wisp, "instances_created").await, 2);

    // A burst of four slow requests: with concurrency = 1 each needs an
    // instance of its own, two more than min_instances keeps ready.
    let burst: Vec<_> = (0..4)
        .map(|_| {
            let url = format!("{}/?ms=1500", wisp.url);
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    // The burst's instances stay live while they serve and for idle_timeout
    // after: this sees them however slowly the requests arrive.
    let busy = wisp
        .wait_for_metrics("f", "4 instances live for the burst", |m| {
            counter(m, "instances_live") >= 4
        })
        .await;
    let created_for_burst = counter(&busy, "instances_created");
    assert!(created_for_burst >= 4, "{busy}");
    for request in burst {
        assert_eq!(
            request.await.unwrap(),
            (200, "slept 1500 ms count=1\n".into()),
            "each request had an instance of its own"
        );
    }

    // Every instance that served the burst (the two ready ones included)
    // expires after its idle timeout; only a top-up brings live back to two,
    // with two instances made after the burst's. Without expiry live stays
    // at four; without the top-up it falls to zero and nothing is created.
    wisp.wait_for_metrics(
        "f",
        "back to min_instances = 2 after idle expiry, topped up with new instances",
        |m| {
            counter(m, "instances_live") == 2
                && counter(m, "in_flight") == 0
                && counter(m, "instances_created") >= created_for_burst + 2
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_in_a_shared_instance_fails_its_requests_not_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    // max_instances = 1: the trap request can only go to the instance the
    // slow request is running in (it waits in the queue if that one is busy).
    let wisp = app(
        dir.path(),
        "p3-slow",
        "isolation = \"instance\"\nconcurrency = 4\nmax_instances = 1",
    );
    assert_eq!(get(&format!("{}/?ms=1", wisp.url)).await.0, 200);
    // Long enough never to finish on its own before the trap ends it.
    let url = format!("{}/?ms=10000", wisp.url);
    let sharing = tokio::spawn(async move { get(&url).await });
    // The slow request has started in the warm-up's instance.
    wait_for_metric(&wisp, "instances_reused", 1).await;
    assert_eq!(metric(&wisp, "instances_created").await, 1);
    assert_eq!(get(&format!("{}/?trap=1", wisp.url)).await.0, 500);
    assert_eq!(
        sharing.await.unwrap().0,
        500,
        "the request sharing the trapped instance fails too"
    );
    assert_eq!(
        get(&format!("{}/?ms=1", wisp.url)).await,
        (200, "slept 1 ms count=1\n".into())
    );
    wisp.wait_for_log("p3-slow: trap requested");
}

#[test]
fn invalid_combinations_are_refused_with_their_reason() {
    let cases = [
        (
            "counter",
            "isolation = \"instance\"\nconcurrency = 4",
            "concurrency = 4 needs a wasi:http@0.3 component",
        ),
        (
            "p3-slow",
            "concurrency = 2",
            "`concurrency`: applies to isolation = \"instance\" only",
        ),
        (
            "counter",
            "min_instances = 1",
            "`min_instances`: applies to isolation = \"instance\" only",
        ),
        (
            "counter",
            "isolation = \"instance\"\nmin_instances = 5\nmax_instances = 2",
            "5 is more than max_instances = 2",
        ),
        (
            "counter",
            "idle_timeout = \"5s\"",
            "`idle_timeout`: applies to isolation = \"instance\" only",
        ),
        (
            "counter",
            "isolation = \"shared\"",
            "unknown variant `shared`",
        ),
    ];
    for (guest_name, settings, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[[function]]\nname = \"f\"\ncomponent = \"{}\"\n{settings}\n",
            guest(guest_name).display()
        );
        let logs = match Wisp::up_result(dir.path(), &manifest) {
            Ok(_) => panic!("accepted: {settings}"),
            Err(logs) => logs,
        };
        assert!(logs.contains(expected), "expected `{expected}` in:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_flags_mirror_the_reuse_settings() {
    let wisp = Wisp::serve(
        &guest("counter"),
        &["--isolation", "instance", "--idle-timeout", "30s"],
    );
    for expected in ["1\n", "2\n"] {
        assert_eq!(
            get(&format!("{}/", wisp.url)).await,
            (200, expected.to_string())
        );
    }
    let out = common::wisp_command(&[
        "serve",
        guest("counter").to_str().unwrap(),
        "--isolation",
        "shared",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("use `invocation` or `instance`"));
}
