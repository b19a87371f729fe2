//! Test harness: builds the guests once, starts the real `wisp` binary on an
//! ephemeral loopback port, and talks to it over real sockets.
#![allow(dead_code)]

pub mod browser;
pub mod prom;
pub mod redis;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Path of a built guest component. The first call per test binary runs
/// `scripts/build-guests` (incremental: seconds when nothing changed) unless
/// the test script already did (`WISP_GUESTS_BUILT=1`).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        if std::env::var_os("WISP_GUESTS_BUILT").is_none() {
            let status = Command::new(repo().join("scripts/build-guests"))
                .status()
                .expect("could not run scripts/build-guests");
            assert!(
                status.success(),
                "scripts/build-guests failed; run scripts/install-guest-toolchains first"
            );
        }
    });
    let path = repo()
        .join("guest-examples/target")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "guest {name} is not built at {}; run scripts/build-guests",
        path.display()
    );
    path
}

/// The admin token every `wisp` the harness starts gets through
/// `WISP_ADMIN_TOKEN` (unless the test set or removed that variable), and
/// that [`client`] and [`wisp_command`] send.
pub const ADMIN_TOKEN: &str = "wisp-test-admin-token-0123456789";

/// A running `wisp` process; killed on drop.
pub struct Wisp {
    child: Child,
    pub url: String,
    pub admin: Option<String>,
    /// The token file wisp generated and printed (`wisp: admin token in`).
    pub admin_token_file: Option<PathBuf>,
    logs: Arc<Mutex<String>>,
    /// Copies the process's stderr into `logs`; finishes at end of stream.
    stderr_reader: JoinHandle<()>,
}

impl Wisp {
    pub fn serve(component: &Path, args: &[&str]) -> Wisp {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
        cmd.arg("serve")
            .arg(component)
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        Wisp::start(cmd).expect("wisp serve did not start")
    }

    /// `wisp up -f <dir>/wisp.toml` after writing `manifest` there.
    pub fn up(dir: &Path, manifest: &str) -> Wisp {
        Wisp::up_result(dir, manifest).expect("wisp up did not start")
    }

    pub fn up_result(dir: &Path, manifest: &str) -> Result<Wisp, String> {
        let file = dir.join("wisp.toml");
        std::fs::write(&file, manifest).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wisp"));
        cmd.arg("up").arg("-f").arg(&file);
        Wisp::start(cmd)
    }

    /// Starts the command; returns its stderr if it exits before listening.
    pub fn start(mut cmd: Command) -> Result<Wisp, String> {
        if !cmd.get_envs().any(|(k, _)| k == "WISP_ADMIN_TOKEN") {
            cmd.env("WISP_ADMIN_TOKEN", ADMIN_TOKEN);
        }
        cmd.env("WISP_LOG", "info,wisp::invoke=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("could not spawn wisp");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut url, mut admin, mut admin_token_file) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(u) = line.strip_prefix("wisp: listening on ") {
                        url = Some(u.to_string());
                    } else if let Some(a) = line.strip_prefix("wisp: admin API on ") {
                        admin = Some(a.to_string());
                    } else if let Some(f) = line.strip_prefix("wisp: admin token in ") {
                        admin_token_file = Some(PathBuf::from(f));
                    }
                    // The admin line, when there is one, follows the listen line.
                    if url.is_some() && (admin.is_some() || !cmd_has_admin(&cmd)) {
                        break;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(_)) = child.try_wait() {
                        wait_for_eof(&stderr_reader);
                        return Err(logs.lock().unwrap().clone());
                    }
                }
                Err(_) => {
                    let _ = child.wait();
                    wait_for_eof(&stderr_reader);
                    return Err(logs.lock().unwrap().clone());
                }
            }
        }
        let Some(url) = url else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "wisp printed no listen line; logs:\n{}",
                logs.lock().unwrap()
            ));
        };
        Ok(Wisp {
            child,
            url,
            admin,
            admin_token_file,
            logs,
            stderr_reader,
        })
    }

    /// `kill -9`: the process gets no chance to tidy up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        wait_for_eof(&self.stderr_reader);
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The process id of the `wisp` process (for /proc/PID/… readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the logs contain `needle` (logs are written asynchronously).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "log never contained `{needle}`:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until at least `n` lines of the logs satisfy `matches` (`what`
    /// names them in the failure message), and returns the logs.
    pub fn wait_for_lines(&self, what: &str, n: usize, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let logs = self.logs();
            let found = logs.lines().filter(|&line| matches(line)).count();
            if found >= n {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "the log had {found} of {n} {what} lines:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until at least `n` log lines contain `needle`.
    pub fn wait_for_log_count(&self, needle: &str, n: usize) -> String {
        self.wait_for_lines(&format!("`{needle}`"), n, |line| line.contains(needle))
    }

    /// Waits for `n` access-log lines of `request` — `"GET /path STATUS"`,
    /// the line wisp writes when a response is done — and returns the logs.
    ///
    /// Wisp logs in order on one stream, so the returned logs hold everything
    /// it logged before those responses finished, start-up included: only
    /// then does a check that something was *not* logged mean anything.
    /// Guest output is the exception: it reaches the log through a logging
    /// thread of its own, in the order it was printed but possibly after the
    /// response; wait for the guest's last line ([`Wisp::wait_for_log`]) to
    /// see everything it printed before.
    pub fn wait_for_access_log(&self, request: &str, n: usize) -> String {
        self.wait_for_lines(&format!("access `{request}`"), n, |line| {
            is_access_line(line, request)
        })
    }

    /// The counters of `function` from the admin API (`metrics` of
    /// `GET /v1/functions/NAME`); needs the admin API.
    pub async fn metrics(&self, function: &str) -> serde_json::Value {
        let admin = self.admin.as_ref().expect("metrics need the admin API");
        let (status, body) = get(&format!("{admin}/v1/functions/{function}")).await;
        assert_eq!(status, 200, "{body}");
        let info: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        info["metrics"].clone()
    }

    /// Polls the counters of `function` until `done` holds for them (`what`
    /// describes that in the failure message), for up to 20 s, and returns
    /// the counters that satisfied it.
    pub async fn wait_for_metrics(
        &self,
        function: &str,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let metrics = self.metrics(function).await;
            if done(&metrics) {
                return metrics;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}; metrics: {metrics}\nlogs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; the logs then hold all it wrote.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                wait_for_eof(&self.stderr_reader);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "wisp did not exit; logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits (up to 10 s) until the stderr reader of an exited process has read
/// to the end of the stream, so the logs hold everything the process wrote.
fn wait_for_eof(reader: &JoinHandle<()>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `line` is wisp's access-log line of `request` (`"GET /path STATUS"`).
pub fn is_access_line(line: &str, request: &str) -> bool {
    line.contains("wisp::access") && line.contains(request)
}

/// The access-log lines of `request` (`"GET /path STATUS"`) in `logs`.
pub fn access_lines<'a>(logs: &'a str, request: &str) -> Vec<&'a str> {
    logs.lines()
        .filter(|line| is_access_line(line, request))
        .collect()
}

/// Counts the log lines containing `needle`.
pub fn count_lines(logs: &str, needle: &str) -> usize {
    logs.lines().filter(|line| line.contains(needle)).count()
}

/// The value of counter `name` in `metrics` (from [`Wisp::metrics`]).
pub fn counter(metrics: &serde_json::Value, name: &str) -> u64 {
    metrics[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no metric {name} in {metrics}"))
}

/// Polls `done` every 10 ms until it holds, for up to 30 s (`what` describes
/// it in the failure message).
pub async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn cmd_has_admin(cmd: &Command) -> bool {
    let args: Vec<_> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if args.iter().any(|a| a == "--admin") {
        return true;
    }
    // `wisp up -f FILE`: look for an admin key in the manifest.
    args.windows(2)
        .find(|w| w[0] == "-f")
        .and_then(|w| std::fs::read_to_string(&w[1]).ok())
        .is_some_and(|m| {
            m.lines().any(|l| {
                l.trim_start()
                    .strip_prefix("admin")
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        })
}

impl Drop for Wisp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that sends `Authorization: Bearer ADMIN_TOKEN` with every
/// request (functions ignore it; the admin API needs it).
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A client that sends no admin token.
pub fn anonymous_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// GET `url`, returning status and body text.
pub async fn get(url: &str) -> (u16, String) {
    let resp = client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Sends a prepared request, returning status and body text.
pub async fn send(req: reqwest::RequestBuilder) -> (u16, String) {
    let resp = req.send().await.expect("request failed");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// Runs `wisp` with `args` and `WISP_ADMIN_TOKEN` set to [`ADMIN_TOKEN`] to
/// completion (CLI commands, refused inputs).
pub fn wisp_command(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wisp"))
        .args(args)
        .env("WISP_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("could not run wisp")
}

/// Uploads `bytes` as a component through the admin API at `admin` and
/// returns its `sha256:` reference.
pub async fn upload(admin: &str, bytes: Vec<u8>) -> String {
    let (status, body) = send(
        client()
            .post(format!("{admin}/v1/components"))
            .header("content-type", "application/wasm")
            .body(bytes),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let uploaded: serde_json::Value = serde_json::from_str(&body).unwrap();
    let component = uploaded["component"].as_str().unwrap().to_string();
    assert!(component.starts_with("sha256:"), "{body}");
    component
}

/// A loopback service answering `upstream says hi`; counts the connections
/// it accepts.
pub struct Upstream {
    pub url: String,
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
}

pub async fn upstream() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from("upstream says hi")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        url: format!("http://{addr}"),
        port: addr.port(),
        connections,
    }
}

/// `wisp up` refuses `text`, naming `expected` and the manifest's
/// file:line; returns what it printed.
pub fn refused_at_load(dir: &Path, text: &str, expected: &str) -> String {
    let err = match Wisp::up_result(dir, text) {
        Ok(_) => panic!("wisp up accepted:\n{text}"),
        Err(logs) => logs,
    };
    assert!(err.contains(expected), "expected `{expected}` in:\n{err}");
    assert!(err.contains("wisp.toml:"), "no file:line in:\n{err}");
    err
}

/// A `[server]` table on ephemeral loopback ports, admin API on, state
/// under `dir/state` (the same across restarts of a test).
pub fn server_table(dir: &Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n",
        dir.join("state").display()
    )
}

/// What a [`Sink`] received: the JSON body of one POST, and when.
#[derive(Clone, Debug)]
pub struct Report {
    pub at: Instant,
    pub body: serde_json::Value,
}

/// A loopback HTTP service that records the JSON bodies POSTed to it (the
/// `event-probe` guest reports every delivery it gets to one), answering
/// 204 after `delay` (to keep deliveries in flight for a while).
pub struct Sink {
    pub url: String,
    reports: Arc<Mutex<Vec<Report>>>,
    /// Requests being answered now, and the most there ever were.
    in_flight: Arc<(AtomicUsize, AtomicUsize)>,
}

impl Sink {
    pub async fn start(delay: Duration) -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
        let in_flight: Arc<(AtomicUsize, AtomicUsize)> = Arc::default();
        let (kept, counted) = (reports.clone(), in_flight.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (kept, counted) = (kept.clone(), counted.clone());
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (kept, counted) = (kept.clone(), counted.clone());
                        async move {
                            use http_body_util::BodyExt;
                            let now = counted.0.fetch_add(1, Ordering::SeqCst) + 1;
                            counted.1.fetch_max(now, Ordering::SeqCst);
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body =
                                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                            kept.lock().unwrap().push(Report {
                                at: Instant::now(),
                                body,
                            });
                            tokio::time::sleep(delay).await;
                            counted.0.fetch_sub(1, Ordering::SeqCst);
                            let mut resp = hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::new(),
                            ));
                            *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        Sink {
            url,
            reports,
            in_flight,
        }
    }

    /// The most requests the sink was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.1.load(Ordering::SeqCst)
    }

    pub fn reports(&self) -> Vec<Report> {
        self.reports.lock().unwrap().clone()
    }

    /// Reports about the event with this id, in arrival order.
    pub fn of(&self, id: &str) -> Vec<Report> {
        self.reports()
            .into_iter()
            .filter(|r| r.body["id"] == id)
            .collect()
    }

    /// Distinct event ids reported so far.
    pub fn ids(&self) -> std::collections::HashSet<String> {
        self.reports()
            .iter()
            .filter_map(|r| r.body["id"].as_str().map(str::to_string))
            .collect()
    }
}
