//! Headless Chromium driven over the DevTools protocol: start it, open a
//! page, evaluate JavaScript in it, poll the DOM until a condition holds,
//! take a screenshot. The browser is the Debian package `chromium`
//! (`scripts/test` installs it); `WISP_CHROMIUM` names another binary.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// How long a condition may take to hold before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The Chromium binary: `WISP_CHROMIUM`, else the first of the usual names
/// on `PATH`.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WISP_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Whether the test must run: under CI (`CI` set and not `false`) a
/// missing browser fails it; elsewhere the test is skipped with a message.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A headless Chromium with one page; killed on drop.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    page: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Browser {
    /// Starts `binary` with a fresh profile and a `width`×`height` window,
    /// and opens a blank page.
    pub fn start(binary: &Path, width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(binary)
            .args([
                "--headless",
                // Tests run as root in CI, where Chromium's sandbox cannot
                // start; the pages loaded are the test's own.
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.path().display()),
                &format!("--window-size={width},{height}"),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.display()));
        // Chromium writes its port and the browser's WebSocket path here
        // once it listens.
        let active = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + PATIENCE;
        let (port, path) = loop {
            let text = std::fs::read_to_string(&active).unwrap_or_default();
            if let [port, path] = text.lines().collect::<Vec<_>>()[..] {
                break (port.to_string(), path.to_string());
            }
            assert!(
                Instant::now() < deadline,
                "{} wrote no DevToolsActivePort within {PATIENCE:?}",
                binary.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut browser = Browser {
            child,
            _profile: profile,
            page: connect(&format!("ws://127.0.0.1:{port}{path}")),
            next_id: 0,
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target = target["targetId"].as_str().unwrap().to_string();
        browser.page = connect(&format!("ws://127.0.0.1:{port}/devtools/page/{target}"));
        browser
    }

    /// Sends one DevTools command and returns its result; events that
    /// arrive meanwhile are ignored.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(request.to_string()))
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        loop {
            let message = self
                .page
                .read()
                .unwrap_or_else(|e| panic!("{method}: no answer: {e}"));
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] != id {
                continue;
            }
            if let Some(error) = answer.get("error") {
                panic!("{method} failed: {error}");
            }
            return answer["result"].clone();
        }
    }

    /// Loads `url` in the page and waits until its document has loaded.
    pub fn navigate(&mut self, url: &str) {
        let loaded = self.call("Page.navigate", json!({ "url": url }));
        assert!(
            loaded.get("errorText").is_none(),
            "could not load {url}: {loaded}"
        );
        let document = url.split('#').next().unwrap_or(url);
        self.wait_for(
            &format!("{document} loaded"),
            &format!(
                "location.href.split('#')[0] === {} && document.readyState === 'complete'",
                json!(document)
            ),
            |v| v == true,
        );
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns
    /// its value as JSON.
    pub fn eval(&mut self, expression: &str) -> Value {
        let out = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(thrown) = out.get("exceptionDetails") {
            panic!("`{expression}` threw: {thrown}");
        }
        out["result"]["value"].clone()
    }

    /// Evaluates `expression` until `done` holds for its value (the page
    /// polls its data, so it gets there by itself), for up to 30 s; returns
    /// that value.
    pub fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.eval(expression);
            if done(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}; last it showed:\n{value:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the page's viewport.
    pub fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine;
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }
}

fn connect(url: &str) -> WebSocket<MaybeTlsStream<TcpStream>> {
    let (socket, _) =
        tungstenite::connect(url).unwrap_or_else(|e| panic!("DevTools at {url}: {e}"));
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
    }
    socket
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
