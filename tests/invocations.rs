//! The invocation core: cancellation when the client goes away, one access
//! line per invocation naming its trigger, admission in both isolation
//! modes, instance bookkeeping across redeploys, and guest output tagged
//! with the invocation or the shared instance it came from.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Wisp, access_lines, client, counter, get, guest, send};

/// A `[[function]]` table running guest `guest_name`; `settings` holds the
/// other keys (route, limits, isolation …), one per line.
fn function(name: &str, guest_name: &str, settings: &str) -> String {
    format!(
        "\n[[function]]\nname = \"{name}\"\ncomponent = \"{}\"\n{settings}\n",
        guest(guest_name).display()
    )
}

/// `wisp up` with the admin API, a state directory in `dir`, and `functions`.
fn up(dir: &Path, functions: &[String]) -> Wisp {
    let manifest = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n{}",
        dir.join("state").display(),
        functions.concat()
    );
    Wisp::up(dir, &manifest)
}

/// Starts a GET of `path` that holds the function's only instance, and
/// returns it once it is running there.
async fn hold_the_only_instance(wisp: &Wisp, path: &str) -> tokio::task::JoinHandle<(u16, String)> {
    let url = format!("{}{path}", wisp.url);
    let holder = tokio::spawn(async move { get(&url).await });
    wisp.wait_for_metrics("f", "the holding request running", |m| {
        counter(m, "in_flight") == 1 && counter(m, "instances_live") == 1
    })
    .await;
    holder
}

/// Whether `line` has the log field `key=value` exactly (fields are
/// separated by spaces in tracing's fmt output).
fn has_field(line: &str, key_value: &str) -> bool {
    line.split_whitespace().any(|token| token == key_value)
}

/// The value of log field `key` in `line`, if any.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(prefix.as_str()))
}

/// Whether `line` is the guest output line of p3-slow's requested trap,
/// written by an instance of `function`.
fn is_trap_line(line: &str, function: &str) -> bool {
    line.contains("wisp::guest")
        && line.contains("p3-slow: trap requested")
        && has_field(line, &format!("function={function}"))
}

/// Index of the first access line of `request` (`"GET /path STATUS"`).
fn position(logs: &str, request: &str) -> usize {
    logs.lines()
        .position(|line| common::is_access_line(line, request))
        .unwrap_or_else(|| panic!("no access line `{request}` in:\n{logs}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_and_logs_499() {
    let dir = tempfile::tempdir().unwrap();
    // One instance and no queue: a slot still held by the abandoned
    // invocation would turn the request after it into a 429.
    let wisp = up(
        dir.path(),
        &[function(
            "f",
            "slow",
            "route = \"/\"\ntimeout = \"60s\"\nmax_instances = 1\nmax_queue = 0",
        )],
    );
    let address = wisp.url.strip_prefix("http://").unwrap().to_string();
    let mut socket = std::net::TcpStream::connect(&address).unwrap();
    socket
        .write_all(b"GET /?ms=30000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The invocation is running on its instance.
    wisp.wait_for_metrics("f", "running the 30 s request", |m| {
        counter(m, "in_flight") == 1 && counter(m, "instances_live") == 1
    })
    .await;
    drop(socket);

    // Far sooner than the 30 s the guest would sleep: cancelled, its
    // instance dropped and its place freed.
    wisp.wait_for_metrics(
        "f",
        "back to nothing in flight and no instance live after the disconnect",
        |m| counter(m, "in_flight") == 0 && counter(m, "instances_live") == 0,
    )
    .await;
    let logs = wisp.wait_for_access_log("GET / 499", 1);
    let line = access_lines(&logs, "GET / 499")[0];
    assert!(
        has_field(line, "trigger=http") && has_field(line, "status=499"),
        "{line}"
    );
    wisp.wait_for_log(
        "cancelled: nobody waits for the response any more (client went away); instance dropped",
    );

    // The only slot is free again.
    let (status, body) = get(&format!("{}/?ms=1", wisp.url)).await;
    assert_eq!((status, body.as_str()), (200, "slept 1 ms\n"));
    // Everything logged before that response finished: one 499, no other
    // line for the abandoned request.
    let logs = wisp.wait_for_access_log("GET / 200", 1);
    assert_eq!(
        access_lines(&logs, "GET / 499").len(),
        1,
        "the abandoned request is logged exactly once:\n{logs}"
    );
    assert_eq!(
        access_lines(&logs, "GET / ").len(),
        2,
        "one line for the abandoned request, one for the next:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploying_with_min_instances_leaks_no_instance() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = up(
        dir.path(),
        &[function(
            "f",
            "counter",
            "route = \"/\"\nisolation = \"instance\"\nmin_instances = 2",
        )],
    );
    let admin = wisp.admin.clone().expect("admin API address");
    wisp.wait_for_metrics("f", "2 instances live (min_instances)", |m| {
        counter(m, "instances_live") == 2
    })
    .await;

    let component = common::upload(&admin, std::fs::read(guest("counter")).unwrap()).await;

    let (status, body) = get(&format!("{admin}/v1/functions/f")).await;
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut spec = info["spec"].clone();
    assert_eq!(spec["min_instances"], 2, "{spec}");
    spec["component"] = component.into();
    for i in 1..=50 {
        spec["env"] = serde_json::json!({ "REV": i.to_string() });
        let (status, body) = send(
            client()
                .put(format!("{admin}/v1/functions/f"))
                .header("content-type", "application/json")
                .body(spec.to_string()),
        )
        .await;
        assert_eq!(status, 200, "deploy {i}: {body}");
    }

    let (status, body) = get(&format!("{admin}/v1/functions/f")).await;
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["current_revision"], 51, "{body}");
    // The admin API shows env keys only; the revision number says which.
    assert_eq!(info["spec"]["env"]["REV"], "(set)", "{body}");

    // Only the current revision keeps instances: the 50 replaced ones
    // dropped theirs.
    wisp.wait_for_metrics("f", "back to 2 live instances after 50 redeploys", |m| {
        counter(m, "instances_live") == 2
    })
    .await;
    let (status, body) = get(&format!("{}/", wisp.url)).await;
    assert_eq!(status, 200, "{body}");
    let metrics = wisp.metrics("f").await;
    assert_eq!(
        counter(&metrics, "instances_live"),
        2,
        "a ready instance served the request; none more were kept: {metrics}"
    );
    assert_eq!(counter(&metrics, "in_flight"), 0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_instance_output_is_tagged_with_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = up(
        dir.path(),
        &[
            function(
                "shared",
                "p3-slow",
                "route = \"/shared\"\nisolation = \"instance\"\nconcurrency = 4",
            ),
            function(
                "single",
                "p3-slow",
                "route = \"/single\"\nisolation = \"instance\"\nconcurrency = 1",
            ),
        ],
    );

    // concurrency = 4: the output belongs to the instance, not to one request.
    let (status, body) = get(&format!("{}/shared?trap=1", wisp.url)).await;
    assert_eq!(status, 500, "{body}");
    let logs = wisp.wait_for_lines("shared trap", 1, |l| is_trap_line(l, "shared"));
    let line = logs.lines().find(|l| is_trap_line(l, "shared")).unwrap();
    assert!(has_field(line, "invocation=-"), "{line}");
    let instance = field(line, "instance").unwrap_or_else(|| panic!("no instance field: {line}"));
    assert!(
        instance.len() == 16 && instance.bytes().all(|b| b.is_ascii_hexdigit()),
        "instance is not 16 hex digits: {line}"
    );

    // concurrency = 1: the output belongs to the one request it served.
    let resp = client()
        .get(format!("{}/single?trap=1", wisp.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let id = resp
        .headers()
        .get("x-wisp-invocation-id")
        .expect("x-wisp-invocation-id header")
        .to_str()
        .unwrap()
        .to_string();
    let logs = wisp.wait_for_lines("single trap", 1, |l| is_trap_line(l, "single"));
    let line = logs.lines().find(|l| is_trap_line(l, "single")).unwrap();
    assert!(
        has_field(line, &format!("invocation={id}")),
        "not tagged with the request's invocation {id}: {line}"
    );
    let instance = field(line, "instance").unwrap_or_else(|| panic!("no instance field: {line}"));
    assert!(
        instance.len() == 16 && instance.bytes().all(|b| b.is_ascii_hexdigit()),
        "instance is not 16 hex digits: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_mode_answers_429_after_queue_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = up(
        dir.path(),
        &[function(
            "f",
            "p3-slow",
            "route = \"/\"\nisolation = \"instance\"\nmax_instances = 1\nconcurrency = 1\nqueue_timeout = \"1s\"\nmax_queue = 10",
        )],
    );
    let first = hold_the_only_instance(&wisp, "/?ms=6000").await;

    let started = Instant::now();
    let resp = client()
        .get(format!("{}/?ms=1", wisp.url))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .expect("retry-after header"),
        "1"
    );
    assert!(
        waited >= Duration::from_secs(1),
        "answered after {waited:?}, before queue_timeout = 1s"
    );
    wisp.wait_for_log("max_instances reached");
    assert!(
        !first.is_finished(),
        "the first request ended before the second was refused"
    );

    assert_eq!(
        first.await.unwrap(),
        (200, "slept 6000 ms count=1\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_are_served_in_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let wisp = up(
        dir.path(),
        &[function(
            "f",
            "slow",
            "route = \"/\"\nmax_instances = 1\nmax_queue = 10\nqueue_timeout = \"20s\"",
        )],
    );
    let hold = hold_the_only_instance(&wisp, "/hold?ms=3000").await;

    // Each request is sent only once the previous one has reached the
    // gateway (counted in flight as soon as it arrives, queued or not).
    let mut queued = Vec::new();
    for (i, path) in ["/a", "/b", "/c"].into_iter().enumerate() {
        let url = format!("{}{path}?ms=1", wisp.url);
        queued.push(tokio::spawn(async move { get(&url).await }));
        let want = i as u64 + 2;
        wisp.wait_for_metrics("f", &format!("{want} invocations started"), |m| {
            counter(m, "invocations") >= want
        })
        .await;
    }
    let metrics = wisp.metrics("f").await;
    assert_eq!(
        counter(&metrics, "in_flight"),
        4,
        "the holding request must still run while /a, /b and /c wait \
         (a very slow machine could break this premise): {metrics}"
    );

    assert_eq!(hold.await.unwrap(), (200, "slept 3000 ms\n".into()));
    for request in queued {
        assert_eq!(request.await.unwrap(), (200, "slept 1 ms\n".into()));
    }
    wisp.wait_for_access_log("GET /a 200", 1);
    wisp.wait_for_access_log("GET /b 200", 1);
    let logs = wisp.wait_for_access_log("GET /c 200", 1);
    let order = [
        position(&logs, "GET /hold 200"),
        position(&logs, "GET /a 200"),
        position(&logs, "GET /b 200"),
        position(&logs, "GET /c 200"),
    ];
    assert!(
        order.is_sorted(),
        "served out of arrival order (log line positions {order:?}):\n{logs}"
    );
}
