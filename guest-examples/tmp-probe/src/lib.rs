//! `tmp-probe`: a test guest for the instance's in-memory `/tmp`, through
//! plain `std::fs`.
//!
//! | path ends in | answer |
//! |---|---|
//! | `/exercise` | `200`, one line per step: whether `/tmp/marker` was already there (left by an earlier request to the same instance), then a write, append, read-back, listing, rename and delete under `/tmp/probe`; then it leaves `/tmp/marker` |
//! | `/fill?mb=N` | writes N MiB to `/tmp/fill` in 1 MiB steps: `200` `wrote N MiB`, or `507` `wrote K MiB, then: <error>` when a write fails, then deletes the file |
//!
//! Any failing step of `/exercise` answers `500` with the step and its error.

use std::fs;
use std::io::{self, Write};

use wisp_sdk::{Request, Response, http_handler};

const MIB: usize = 1 << 20;

#[http_handler]
fn handle(req: Request) -> Response {
    // The last segment, whatever route the function is served at.
    match req.path().rsplit('/').next().unwrap_or_default() {
        "exercise" => match exercise() {
            Ok(report) => Response::text(report).with_status(200),
            Err(e) => Response::text(format!("{e}\n")).with_status(500),
        },
        "fill" => {
            let mb = req
                .query_param("mb")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            fill(mb)
        }
        _ => Response::text("try /exercise or /fill?mb=N\n").with_status(404),
    }
}

/// Names the step that failed.
fn step<T>(name: &str, result: io::Result<T>) -> io::Result<T> {
    result.map_err(|e| io::Error::new(e.kind(), format!("{name}: {e}")))
}

fn exercise() -> io::Result<String> {
    let mut report = String::new();
    let seen = fs::metadata("/tmp/marker").is_ok();
    report += &format!("marker before: {seen}\n");

    step("mkdir", fs::create_dir_all("/tmp/probe/sub"))?;
    step("write", fs::write("/tmp/probe/a.txt", "hello"))?;
    let mut f = step(
        "open for append",
        fs::OpenOptions::new().append(true).open("/tmp/probe/a.txt"),
    )?;
    step("append", f.write_all(b", world"))?;
    drop(f);
    let text = step("read", fs::read_to_string("/tmp/probe/a.txt"))?;
    report += &format!("read: {text}\n");
    let size = step("stat", fs::metadata("/tmp/probe/a.txt"))?.len();
    report += &format!("size: {size}\n");

    let mut names = step("list", fs::read_dir("/tmp/probe"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    report += &format!("list: {}\n", names.join(","));

    step(
        "rename",
        fs::rename("/tmp/probe/a.txt", "/tmp/probe/sub/b.txt"),
    )?;
    let old_gone = fs::metadata("/tmp/probe/a.txt").is_err();
    let moved = step("read renamed", fs::read_to_string("/tmp/probe/sub/b.txt"))?;
    report += &format!("renamed: {moved} (old name gone: {old_gone})\n");

    step("delete", fs::remove_file("/tmp/probe/sub/b.txt"))?;
    step("rmdir", fs::remove_dir_all("/tmp/probe"))?;
    report += &format!("deleted: {}\n", fs::metadata("/tmp/probe").is_err());

    step("write marker", fs::write("/tmp/marker", "here"))?;
    Ok(report)
}

fn fill(mb: usize) -> Response {
    let chunk = vec![7u8; MIB];
    let mut file = match fs::File::create("/tmp/fill") {
        Ok(f) => f,
        Err(e) => return Response::text(format!("create: {e}\n")).with_status(500),
    };
    for written in 0..mb {
        if let Err(e) = file.write_all(&chunk) {
            drop(file);
            let _ = fs::remove_file("/tmp/fill");
            return Response::text(format!("wrote {written} MiB, then: {e}\n")).with_status(507);
        }
    }
    drop(file);
    let _ = fs::remove_file("/tmp/fill");
    Response::text(format!("wrote {mb} MiB\n")).with_status(200)
}
