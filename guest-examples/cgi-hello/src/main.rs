//! `cgi-hello`: a command function (`handler = "cgi"`), a `wasi:cli/run`
//! command that answers one HTTP request per run, CGI/1.1 style: the request
//! in env vars (`REQUEST_METHOD`, `PATH_INFO`, `QUERY_STRING`, …) and the body
//! on stdin; the response on stdout as CGI headers, a blank line, the body.
//!
//! | `PATH_INFO` | answer |
//! |---|---|
//! | `/missing` | `Status: 404 Not Found`, `no such page: /missing` |
//! | `/stream` | five lines, 100 ms apart, each flushed as it is written |
//! | `/crash` | nothing: exits 3 before any header (Wisp answers 502) |
//! | `/tmp` | a `POST`'s body is written to `/tmp/body` (the run's in-memory `/tmp`); answers `read back from /tmp/body: ` and what the file holds (nothing when there is no such file) |
//! | anything else | `hello from CGI: METHOD PATH_INFO?QUERY`; a `POST`'s body is echoed after it |

use std::io::{self, Read, Write};
use std::time::Duration;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Exits with `code`. `std::process::exit` reaches the host as a plain
/// failure (status 1) on wasip2; `wasi:cli/exit.exit-with-code` carries the code.
fn exit(code: u8) -> ! {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    wasi::cli::exit::exit_with_code(code);
    std::process::exit(i32::from(code))
}

fn main() -> io::Result<()> {
    let method = var("REQUEST_METHOD");
    let path = var("PATH_INFO");
    let query = var("QUERY_STRING");
    let mut out = io::stdout().lock();

    match path.as_str() {
        "/crash" => {
            eprintln!("cgi-hello: crashing before any header, as /crash asks");
            exit(3);
        }
        "/tmp" => {
            if method == "POST" {
                let mut body = Vec::new();
                io::stdin().lock().read_to_end(&mut body)?;
                std::fs::write("/tmp/body", body)?;
            }
            let kept = std::fs::read_to_string("/tmp/body").unwrap_or_default();
            write!(out, "Content-Type: text/plain\r\n\r\n")?;
            writeln!(out, "read back from /tmp/body: {kept}")?;
        }
        "/missing" => {
            write!(
                out,
                "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n"
            )?;
            writeln!(out, "no such page: {path}")?;
        }
        "/stream" => {
            write!(out, "Content-Type: text/plain\r\n\r\n")?;
            out.flush()?;
            for i in 1..=5 {
                writeln!(out, "line {i} of 5")?;
                out.flush()?;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        _ => {
            write!(
                out,
                "Content-Type: text/plain\r\nX-Powered-By: cgi-hello\r\n\r\n"
            )?;
            if query.is_empty() {
                writeln!(out, "hello from CGI: {method} {path}")?;
            } else {
                writeln!(out, "hello from CGI: {method} {path}?{query}")?;
            }
            if method == "POST" {
                // CONTENT_LENGTH bounds the body when it is given; stdin's end does otherwise.
                let mut body = Vec::new();
                match var("CONTENT_LENGTH").trim().parse::<u64>() {
                    Ok(len) => io::stdin().lock().take(len).read_to_end(&mut body)?,
                    Err(_) => io::stdin().lock().read_to_end(&mut body)?,
                };
                out.write_all(&body)?;
            }
        }
    }
    out.flush()
}
