//! The outbound policy end to end: wildcard origins never reach loopback nor
//! Wisp's own ports, even through a name that resolves there, while origins
//! naming an address literally still reach it.

mod common;

use std::sync::atomic::Ordering;

use common::{Wisp, get, guest, upstream};

/// `wisp up` with the outbound example at `/`, the admin API on, and
/// `allowed` as its `allowed_outbound_hosts` entries.
fn wisp_allowing(dir: &std::path::Path, allowed: &[&str]) -> Wisp {
    let allowed: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
    Wisp::up(
        dir,
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
             [[function]]\nname = \"out\"\ncomponent = \"{}\"\nallowed_outbound_hosts = [{}]\n",
            guest("outbound").display(),
            allowed.join(", ")
        ),
    )
}

/// Asks the guest to fetch `url`; returns status and body.
async fn fetch(wisp: &Wisp, url: &str) -> (u16, String) {
    get(&format!("{}/?url={url}", wisp.url)).await
}

/// Asserts the guest's fetch of `url` was denied, and that the log line
/// saying so for `url` gives `why`.
async fn assert_denied(wisp: &Wisp, url: &str, why: &str) {
    let (status, body) = fetch(wisp, url).await;
    assert_eq!(status, 502, "{url}: {body}");
    assert!(body.contains("HttpRequestDenied"), "{url}: {body}");
    let logs = wisp.wait_for_lines(&format!("denial of {url}"), 1, |line| {
        line.contains("outbound request denied") && line.contains(&format!("uri={url}"))
    });
    let line = logs
        .lines()
        .find(|line| {
            line.contains("outbound request denied") && line.contains(&format!("uri={url}"))
        })
        .unwrap();
    assert!(
        line.contains(why),
        "{url}: the denial does not say `{why}`: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_never_reaches_loopback_nor_wisps_own_ports() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let wisp = wisp_allowing(dir.path(), &["*"]);
    let admin = wisp.admin.clone().unwrap();

    assert_denied(
        &wisp,
        &format!("{}/data", up.url),
        "127.0.0.1 is a loopback address, and only origins naming it literally may reach it",
    )
    .await;
    // The check is on the resolved address: a name for loopback is no way in.
    assert_denied(
        &wisp,
        &format!("http://localhost:{}/data", up.port),
        "is a loopback address",
    )
    .await;
    // Nor is the IPv4-mapped IPv6 form of the address.
    assert_denied(
        &wisp,
        &format!("http://[::ffff:127.0.0.1]:{}/data", up.port),
        "::ffff:127.0.0.1 is a loopback address",
    )
    .await;
    // Wisp's own listeners, known only after they were bound.
    assert_denied(
        &wisp,
        &format!("{admin}/healthz"),
        "is on Wisp's own admin API port",
    )
    .await;
    assert_denied(
        &wisp,
        &format!("{}/again", wisp.url),
        "is on Wisp's own functions port",
    )
    .await;
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        0,
        "a denied request reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_origins_still_reach_what_they_name() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let wisp = wisp_allowing(dir.path(), &["http://127.0.0.1:*"]);
    let admin = wisp.admin.clone().unwrap();

    assert_eq!(
        fetch(&wisp, &format!("{}/data", up.url)).await,
        (200, "upstream says hi".into())
    );
    // Naming the address covers Wisp's own ports on it too.
    assert_eq!(
        fetch(&wisp, &format!("{admin}/healthz")).await,
        (200, "ok\n".into())
    );
    // Only what is named: another spelling of loopback is not it.
    let (status, body) = fetch(&wisp, &format!("http://localhost:{}/data", up.port)).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_origin_beside_a_wildcard_opens_only_itself() {
    let up = upstream().await;
    let other = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let wisp = wisp_allowing(dir.path(), &["*", &up.url]);

    assert_eq!(
        fetch(&wisp, &format!("{}/data", up.url)).await,
        (200, "upstream says hi".into())
    );
    assert_denied(
        &wisp,
        &format!("{}/data", other.url),
        "127.0.0.1 is a loopback address",
    )
    .await;
    assert_eq!(other.connections.load(Ordering::SeqCst), 0);
}
