//! The dashboard in a real browser: headless Chromium loads the page from
//! the real binary's admin address while the test sends traffic (successes,
//! client errors, server errors, a task, an event that fails into its
//! dead-letter topic, a job execution whose task fails) and reads the DOM over the DevTools protocol until
//! the tables and charts show those numbers; then it saves a screenshot
//! (its path is printed). Skipped, with a message, only when Chromium is
//! missing outside CI.

mod common;

use std::io::Write;
use std::path::Path;

use common::browser::{self, Browser};
use common::{ADMIN_TOKEN, Wisp, anonymous_client, client, get, guest, send, server_table};
use serde_json::Value;

fn manifest(dir: &Path) -> String {
    format!(
        r#"{server}
[[topic]]
name = "orders"

[[topic]]
name = "orders-dlq"

[[queue]]
name = "reports"
function = "chatty"

[[job]]
name = "resize"
component = "{resize}"
tasks = 2
max_retries = 0

[[function]]
name = "hello"
component = "{hello}"
route = "/hello"

[[function]]
name = "panic"
component = "{panic}"
route = "/panic"

[[function]]
name = "chatty"
component = "{chatty}"
route = "/chatty"

[[function]]
name = "on-order"
component = "{panic}"
[function.trigger]
topic = "orders"
max_attempts = 2
min_backoff = "100ms"
dead_letter_topic = "orders-dlq"
"#,
        server = server_table(dir),
        hello = guest("hello").display(),
        panic = guest("panic").display(),
        chatty = guest("chatty").display(),
        resize = guest("resize").display(),
    )
}

/// The functions table as `{function: {column: text}}`, with how many
/// times the page has refreshed.
const FUNCTIONS: &str = r##"(() => {
  const rows = {};
  for (const tr of document.querySelectorAll("#functions tbody tr[data-function]")) {
    rows[tr.dataset.function] = Object.fromEntries([...tr.cells].map((td) => [td.dataset.col, td.textContent]));
  }
  return { updates: Number(document.body.dataset.updates || 0), rows };
})()"##;

/// Per chart: how many series it has, and for each function how many of
/// its canvas pixels have exactly that function's colour (its swatch in
/// the table): the lines and points uPlot drew for it.
const CHARTS: &str = r##"(() => {
  const colours = {};
  for (const tr of document.querySelectorAll("#functions tbody tr[data-function]")) {
    const [r, g, b] = tr.querySelector(".swatch").style.backgroundColor.match(/\d+/g).map(Number);
    colours[tr.dataset.function] = [r, g, b];
  }
  const charts = {};
  for (const figure of document.querySelectorAll(".charts figure")) {
    const canvas = figure.querySelector("canvas");
    const drawn = {};
    if (canvas) {
      const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      for (const [name, [r, g, b]] of Object.entries(colours)) {
        let n = 0;
        for (let i = 0; i < px.length; i += 4) {
          if (px[i] === r && px[i + 1] === g && px[i + 2] === b && px[i + 3] === 255) n++;
        }
        drawn[name] = n;
      }
    }
    charts[figure.id] = { series: Number(figure.dataset.series || 0), drawn };
  }
  return charts;
})()"##;

/// A table's rows as lists of `{column: text}`.
fn rows_of(table: &str) -> String {
    format!(
        r##"[...document.querySelectorAll("#{table} tbody tr")].map((tr) =>
             Object.fromEntries([...tr.cells].map((td) => [td.dataset.col || "", td.textContent])))"##
    )
}

fn cell<'a>(row: &'a Value, column: &str) -> &'a str {
    row[column].as_str().unwrap_or("")
}

async fn hit(url: &str, times: usize, status: u16) {
    for _ in 0..times {
        assert_eq!(get(url).await.0, status, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_numbers_in_a_real_browser() {
    let Some(chromium) = browser::find() else {
        assert!(
            !browser::required(),
            "CI is set but no Chromium was found: install the Debian package `chromium` \
             (scripts/test does) or name a binary in WISP_CHROMIUM"
        );
        // Straight to stderr: the test harness would hide eprintln! output
        // of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the_dashboard_shows_live_numbers_in_a_real_browser: no Chromium on PATH; \
             `apt-get install chromium` (scripts/test does) or set WISP_CHROMIUM"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wisp = Wisp::up(dir.path(), &manifest(dir.path()));
    let admin = wisp.admin.clone().unwrap();

    // The page's files need no token, its data does.
    let (status, page) = send(anonymous_client().get(format!("{admin}/dashboard"))).await;
    assert_eq!(status, 200);
    assert!(page.contains("/dashboard/app.js"), "{page}");
    let (status, _) = send(anonymous_client().get(format!("{admin}/v1/dashboard/series"))).await;
    assert_eq!(status, 401);
    let (status, body) = get(&format!("{admin}/v1/dashboard/series?window=2h")).await;
    assert_eq!(status, 400);
    assert!(body.contains("1m to 1h"), "{body}");

    hit(&format!("{}/hello", wisp.url), 6, 200).await;
    hit(&format!("{}/panic", wisp.url), 3, 500).await;
    hit(&format!("{}/chatty?lines=many", wisp.url), 4, 400).await;
    let (status, _) = send(
        client()
            .post(format!("{admin}/v1/queues/reports/tasks"))
            .json(&serde_json::json!({ "path": "/chatty?lines=1" })),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(
        client()
            .post(format!("{admin}/v1/topics/orders/events"))
            .header("ce-specversion", "1.0")
            .header("ce-id", "order-1")
            .header("ce-source", "/dashboard-test")
            .header("ce-type", "com.example.order.created")
            .body("{}"),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _) = send(
        client()
            .post(format!("{admin}/v1/jobs/resize/executions"))
            .json(&serde_json::json!({ "env": { "FAIL_TASK": "1" } })),
    )
    .await;
    assert_eq!(status, 201);

    let mut page = Browser::start(&chromium, 1400, 1900);

    // Without a token the page asks for one, and says when it is wrong.
    page.navigate(&format!("{admin}/dashboard"));
    page.wait_for(
        "the login form",
        r#"!document.getElementById("login").hidden"#,
        |v| v == true,
    );
    page.eval(
        r##"document.getElementById("token").value = "not-the-admin-token-at-all";
           document.querySelector("#login button").click(); true"##,
    );
    page.wait_for(
        "that the token is wrong",
        r#"document.getElementById("login-error").textContent"#,
        |v| v.as_str().unwrap_or("").contains("wrong admin token"),
    );

    // A `#token=` fragment signs in and leaves the address bar.
    page.navigate(&format!("{admin}/dashboard#token={ADMIN_TOKEN}"));
    let expected = |rows: &Value, function: &str, invocations: &str, errors: &str| {
        let row = &rows[function];
        cell(row, "invocations") == invocations && cell(row, "errors") == errors
    };
    let shown = page.wait_for("every invocation the test caused", FUNCTIONS, |v| {
        let rows = &v["rows"];
        expected(rows, "hello", "6", "0")
            && expected(rows, "panic", "3", "3")
            && expected(rows, "chatty", "5", "0")
            && expected(rows, "on-order", "2", "2")
    });
    let rows = &shown["rows"];
    assert_eq!(cell(&rows["panic"], "error-rate"), "100.0%", "{rows:#}");
    assert_eq!(cell(&rows["hello"], "error-rate"), "0.0%", "{rows:#}");
    // Every hello invocation ran on a new instance (no reuse configured).
    assert_eq!(cell(&rows["hello"], "cold"), "100.0%", "{rows:#}");
    for function in ["hello", "panic", "chatty"] {
        assert_eq!(cell(&rows[function], "revision"), "1");
        for quantile in ["p50", "p99"] {
            let text = cell(&rows[function], quantile);
            let ms: f64 = text
                .trim_end_matches(" ms")
                .parse()
                .unwrap_or_else(|_| panic!("{function} {quantile}: `{text}`"));
            assert!(ms > 0.0, "{function} {quantile}: {text}");
        }
    }
    assert_eq!(
        page.eval(r#"location.hash"#),
        "",
        "the token stayed in the address"
    );
    assert_eq!(
        page.eval(r#"sessionStorage.getItem("wisp-admin-token")"#),
        ADMIN_TOKEN
    );

    // Each chart has a series per function (two for latency), drawn in
    // its colour. Invocation counts differ, so every function's line shows
    // in the rate chart; elsewhere equal values (0% and 100% errors, 100%
    // cold) hide each other's points.
    let charts = page.eval(CHARTS);
    for (chart, series, visible) in [
        ("chart-rate", 4, 4),
        ("chart-errors", 4, 2),
        ("chart-latency", 8, 1),
        ("chart-cold", 4, 1),
    ] {
        assert_eq!(charts[chart]["series"], series, "{chart}: {charts:#}");
        let drawn = charts[chart]["drawn"].as_object().unwrap();
        let shown = drawn.values().filter(|n| n.as_u64() > Some(0)).count();
        assert!(shown >= visible, "{chart}: {charts:#}");
    }
    for function in ["hello", "panic", "chatty", "on-order"] {
        assert!(
            charts["chart-rate"]["drawn"][function].as_u64() > Some(0),
            "no {function} in the rate chart: {charts:#}"
        );
    }

    // Topics, queues and jobs: the failed event is dead-lettered, the task
    // completed, the execution failed.
    let topics = page.wait_for("the dead-lettered event", &rows_of("topics"), |v| {
        v.as_array().unwrap().iter().any(|r| {
            cell(r, "topic") == "orders"
                && cell(r, "function") == "on-order"
                && cell(r, "dead-lettered") == "1"
        })
    });
    let orders = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|r| cell(r, "topic") == "orders")
        .unwrap();
    assert_eq!(
        (cell(orders, "published"), cell(orders, "backlog")),
        ("1", "0")
    );
    page.wait_for("the completed task", &rows_of("queues"), |v| {
        v.as_array().unwrap().iter().any(|r| {
            cell(r, "queue") == "reports" && cell(r, "completed") == "1" && cell(r, "failed") == "0"
        })
    });

    page.wait_for("the failed execution", &rows_of("jobs"), |v| {
        v.as_array().unwrap().iter().any(|r| {
            cell(r, "job") == "resize"
                && cell(r, "failed") == "1"
                && cell(r, "running") == "0"
                && cell(r, "last").starts_with("failed")
        })
    });

    // A function's revisions and recent invocations, which link to their
    // logs.
    page.eval(r#"location.hash = "function=panic"; true"#);
    let invocations = page.wait_for(
        "panic's recent invocations",
        &format!(
            r#"document.getElementById("detail-name").textContent === "panic" && {}"#,
            rows_of("invocations")
        ),
        |v| {
            v.as_array().is_some_and(|rows| {
                rows.len() == 3 && rows.iter().all(|r| cell(r, "status") == "500")
            })
        },
    );
    for row in invocations.as_array().unwrap() {
        assert_eq!(cell(row, "request"), "GET /panic");
        assert!(cell(row, "duration").ends_with(" ms"), "{row}");
        // Cost shows when the access record has it, else a dash.
        for cost in ["cpu", "memory", "gb-s"] {
            let text = cell(row, cost);
            let number = text.split(' ').next().unwrap_or("");
            assert!(
                text == "—" || number.parse::<f64>().is_ok(),
                "{cost}: {row}"
            );
        }
    }
    let revisions = page.eval(&rows_of("revisions"));
    assert_eq!(cell(&revisions[0], "revision"), "1", "{revisions}");
    assert_eq!(cell(&revisions[0], "route"), "/panic", "{revisions}");
    let invocation = cell(&invocations[0], "invocation").to_string();
    page.eval(r##"document.querySelector("#invocations tbody a").click(); true"##);
    let logs = page.wait_for("the invocation's logs", &rows_of("log-lines"), |v| {
        v.as_array().is_some_and(|rows| {
            rows.iter().any(|r| cell(r, "line") == "GET /panic 500")
                && rows
                    .iter()
                    .any(|r| cell(r, "stream") == "stderr" && cell(r, "line").contains("panicked"))
        })
    });
    assert_eq!(
        page.eval(r#"document.getElementById("logs-id").textContent"#),
        invocation.as_str(),
        "{logs:#}"
    );

    // Live: new traffic shows without reloading the page.
    hit(&format!("{}/hello", wisp.url), 4, 200).await;
    page.wait_for("hello's new invocations", FUNCTIONS, |v| {
        cell(&v["rows"]["hello"], "invocations") == "10"
    });

    let png = page.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, png).unwrap();
    println!("dashboard screenshot: {}", path.display());
}
