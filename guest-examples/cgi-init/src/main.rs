//! `cgi-init`: a command function (`handler = "cgi"`, or a job) whose init
//! hook does real work — a sieve of Eratosthenes up to 5 000 000 — so Wisp
//! pre-initializes it at deploy (`wisp_sdk::command_init!`) and every request
//! starts with the table built.
//!
//! Each response (CGI, `text/plain`) says what a run saw:
//!
//! ```text
//! primes below 5000000: 348513
//! init: ran 1 time(s), in the snapshot
//! init saw: GREETING=hello REQUEST_METHOD=(unset)
//! request: GET /path?query
//! args: ["--flag", "x"]
//! ```
//!
//! `in the snapshot` when the hook ran at deploy, `in this run` when it ran
//! lazily (`snapshot = false`, or a host without pre-initialization). Init
//! reads `GREETING` (a configured variable, the same for every run) and
//! `REQUEST_METHOD` (a CGI variable: unset at deploy); the request line is read
//! per run, so it is the request's, not init's. Init prints one line to stderr.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex};

const LIMIT: usize = 5_000_000;

static INIT_RUNS: AtomicU32 = AtomicU32::new(0);
/// Set by `main` before anything else: init ran during this run, not before.
static RUN_STARTED: AtomicBool = AtomicBool::new(false);
static INIT_IN_RUN: AtomicBool = AtomicBool::new(false);
static SEEN_AT_INIT: Mutex<String> = Mutex::new(String::new());
static PRIMES: LazyLock<u32> = LazyLock::new(|| count_primes(LIMIT));

fn count_primes(limit: usize) -> u32 {
    let mut composite = vec![false; limit];
    let mut count = 0;
    for n in 2..limit {
        if !composite[n] {
            count += 1;
            // n * n would overflow a wasm32 usize past 65535; those n have
            // no multiples left to strike below the limit anyway.
            if n <= (limit - 1) / n {
                for multiple in (n * n..limit).step_by(n) {
                    composite[multiple] = true;
                }
            }
        }
    }
    count
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| "(unset)".into())
}

fn init() {
    INIT_RUNS.fetch_add(1, Ordering::SeqCst);
    INIT_IN_RUN.store(RUN_STARTED.load(Ordering::SeqCst), Ordering::SeqCst);
    eprintln!("cgi-init: building the prime table");
    LazyLock::force(&PRIMES);
    *SEEN_AT_INIT.lock().unwrap() = format!(
        "GREETING={} REQUEST_METHOD={}",
        var("GREETING"),
        var("REQUEST_METHOD")
    );
}

wisp_sdk::command_init!(init);

fn main() -> io::Result<()> {
    RUN_STARTED.store(true, Ordering::SeqCst);
    wisp_sdk::init_once(init);
    let when = if INIT_IN_RUN.load(Ordering::SeqCst) {
        "in this run"
    } else {
        "in the snapshot"
    };
    let query = var("QUERY_STRING");
    let mut out = io::stdout().lock();
    write!(out, "Content-Type: text/plain\r\n\r\n")?;
    writeln!(out, "primes below {LIMIT}: {}", *PRIMES)?;
    writeln!(
        out,
        "init: ran {} time(s), {when}",
        INIT_RUNS.load(Ordering::SeqCst)
    )?;
    writeln!(out, "init saw: {}", SEEN_AT_INIT.lock().unwrap())?;
    let path = var("PATH_INFO");
    if query.is_empty() {
        writeln!(out, "request: {} {path}", var("REQUEST_METHOD"))?;
    } else {
        writeln!(out, "request: {} {path}?{query}", var("REQUEST_METHOD"))?;
    }
    writeln!(
        out,
        "args: {:?}",
        std::env::args().skip(1).collect::<Vec<_>>()
    )?;
    out.flush()
}
