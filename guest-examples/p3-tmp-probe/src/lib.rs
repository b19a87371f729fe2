//! `p3-tmp-probe`: a test guest for the in-memory `/tmp` of a wasi 0.3
//! component, through the `wasi:filesystem@0.3` bindings (Rust's `std::fs`
//! goes through `wasi:filesystem@0.2` even in a p3 component, so it would
//! not reach this interface).
//!
//! | path ends in | answer |
//! |---|---|
//! | `/exercise` | `200`, one line per step: whether `/tmp/marker` was already there (left by an earlier request to the same instance), then a write, read-back, stat, listing and removal of `/tmp/probe.txt`; then it leaves `/tmp/marker` |
//! | `/cat?path=P` | `200` and the contents of the file at absolute path `P`, read through the preopen it lies under (a `dirs` directory, served by wasmtime-wasi, or `/tmp`) |
//! | `/fill?mb=N` | writes N MiB to `/tmp/fill` in 1 MiB steps: `200` `wrote N MiB`, or `507` `wrote K MiB, then: <error>` when a write fails, then removes the file |
//!
//! Any failing step answers `500` with the step and its error.

use wasip3::filesystem::preopens::get_directories;
use wasip3::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};
use wasip3::http::types::{ErrorCode as HttpError, Fields, Request, Response};
use wasip3::{wit_bindgen, wit_future, wit_stream};

wasip3::http::service::export!(P3TmpProbe);

const MIB: usize = 1 << 20;

struct P3TmpProbe;

impl wasip3::exports::http::handler::Guest for P3TmpProbe {
    async fn handle(request: Request) -> Result<Response, HttpError> {
        let path = request.get_path_with_query().unwrap_or_default();
        let (path, query) = path.split_once('?').unwrap_or((&path, ""));
        // The last segment, whatever route the function is served at.
        let answer = match path.rsplit('/').next().unwrap_or_default() {
            "exercise" => match exercise().await {
                Ok(report) => (200, report),
                Err(e) => (500, format!("{e}\n")),
            },
            "fill" => {
                let mb = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("mb="))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                fill(mb).await
            }
            "cat" => {
                let path = query.strip_prefix("path=").unwrap_or_default();
                match cat(path).await {
                    Ok(text) => (200, text),
                    Err(e) => (500, format!("{e}\n")),
                }
            }
            _ => (404, "try /exercise, /cat?path=P or /fill?mb=N\n".to_owned()),
        };
        Ok(respond(answer.0, answer.1.into_bytes()))
    }
}

/// Names the step that failed.
fn step<T>(name: &str, result: Result<T, ErrorCode>) -> Result<T, String> {
    result.map_err(|e| format!("{name}: {e:?}"))
}

/// The `/tmp` preopen.
fn tmp() -> Result<Descriptor, String> {
    get_directories()
        .into_iter()
        .find_map(|(dir, path)| (path == "/tmp").then_some(dir))
        .ok_or_else(|| "no /tmp among the preopens".to_owned())
}

async fn open(
    dir: &Descriptor,
    name: &str,
    open_flags: OpenFlags,
) -> Result<Descriptor, ErrorCode> {
    let flags = DescriptorFlags::READ | DescriptorFlags::WRITE;
    dir.open_at(PathFlags::empty(), name.to_owned(), open_flags, flags)
        .await
}

async fn write(file: &Descriptor, bytes: Vec<u8>, offset: u64) -> Result<(), ErrorCode> {
    let (mut tx, rx) = wit_stream::new();
    let done = file.write_via_stream(rx, offset);
    tx.write_all(bytes).await;
    drop(tx);
    done.await
}

async fn read(file: &Descriptor) -> Result<Vec<u8>, ErrorCode> {
    let (rx, done) = file.read_via_stream(0);
    let bytes = rx.collect().await;
    done.await?;
    Ok(bytes)
}

async fn list(dir: &Descriptor) -> Result<Vec<String>, ErrorCode> {
    let (rx, done) = dir.read_directory();
    let entries = rx.collect().await;
    done.await?;
    Ok(entries.into_iter().map(|e| e.name).collect())
}

async fn exercise() -> Result<String, String> {
    let dir = tmp()?;
    let mut report = String::new();
    let seen = dir
        .stat_at(PathFlags::empty(), "marker".to_owned())
        .await
        .is_ok();
    report += &format!("marker before: {seen}\n");

    let create = OpenFlags::CREATE | OpenFlags::TRUNCATE;
    let file = step("create", open(&dir, "probe.txt", create).await)?;
    step("write", write(&file, b"hello from p3".to_vec(), 0).await)?;
    drop(file);
    let file = step("open", open(&dir, "probe.txt", OpenFlags::empty()).await)?;
    let text = step("read", read(&file).await)?;
    report += &format!("read: {}\n", String::from_utf8_lossy(&text));
    let size = step("stat", file.stat().await)?.size;
    report += &format!("size: {size}\n");
    drop(file);
    report += &format!("list: {}\n", step("list", list(&dir).await)?.join(","));

    step("remove", dir.unlink_file_at("probe.txt".to_owned()).await)?;
    let gone = dir
        .stat_at(PathFlags::empty(), "probe.txt".to_owned())
        .await;
    report += &format!("removed: {}\n", matches!(gone, Err(ErrorCode::NoEntry)));

    let marker = step("create marker", open(&dir, "marker", create).await)?;
    step("write marker", write(&marker, b"here".to_vec(), 0).await)?;
    Ok(report)
}

async fn cat(path: &str) -> Result<String, String> {
    let (dir, rest) = get_directories()
        .into_iter()
        .find_map(|(dir, root)| {
            let rest = path.strip_prefix(root.as_str())?.strip_prefix('/')?;
            Some((dir, rest.to_owned()))
        })
        .ok_or_else(|| format!("{path} is under no preopen"))?;
    let flags = DescriptorFlags::READ;
    let file = step(
        "open",
        dir.open_at(PathFlags::empty(), rest, OpenFlags::empty(), flags)
            .await,
    )?;
    let bytes = step("read", read(&file).await)?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

async fn fill(mb: usize) -> (u16, String) {
    let dir = match tmp() {
        Ok(dir) => dir,
        Err(e) => return (500, format!("{e}\n")),
    };
    let file = match open(&dir, "fill", OpenFlags::CREATE | OpenFlags::TRUNCATE).await {
        Ok(f) => f,
        Err(e) => return (500, format!("create: {e:?}\n")),
    };
    let mut answer = (200, format!("wrote {mb} MiB\n"));
    for written in 0..mb {
        if let Err(e) = write(&file, vec![7; MIB], (written * MIB) as u64).await {
            answer = (507, format!("wrote {written} MiB, then: {e:?}\n"));
            break;
        }
    }
    drop(file);
    let _ = dir.unlink_file_at("fill".to_owned()).await;
    answer
}

fn respond(status: u16, body: Vec<u8>) -> Response {
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(Fields::new(), Some(body_rx), trailers_rx);
    drop(trailers_tx);
    let _ = response.set_status_code(status);
    wit_bindgen::spawn_local(async move {
        body_tx.write_all(body).await;
    });
    response
}
