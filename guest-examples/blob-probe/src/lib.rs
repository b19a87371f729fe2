//! `blob-probe`: a test guest for Wisp's blob stores (tests/blobs.rs). The
//! last path segment picks what it does; `store`, `name`, `prefix`,
//! `start`, `end`, `to-store`, `to` come from the query.
//!
//! Through `wisp_sdk::blob`:
//! - `put` (the request body, streamed) → `ok`
//! - `get` → the bytes or 404; `range` (`start`, `end`) → those bytes
//! - `list` (`prefix`) → one name per line; `delete`; `info` → `SIZE`
//! - `copy` / `move` (`to-store`, `to`) through wasi:blobstore's functions
//! - `trap` (body): writes the body, then traps before finishing
//!
//! Through each wasi:blobstore version's own bindings:
//! - `open` → `opened`, or 403 naming each version's error
//! - `suite` (`prefix`) → `ok`, or 500 naming the first mismatch

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "wisp:blob-probe/probe",
        generate_all,
    });
}

#[cfg(target_arch = "wasm32")]
mod suite;

use std::io::Write;

use wisp_sdk::blob;
use wisp_sdk::{Request, Response, http_handler};

fn param(req: &Request, name: &str) -> String {
    req.query_param(name).unwrap_or_default()
}

fn number(req: &Request, name: &str) -> u64 {
    param(req, name).parse().unwrap_or(u64::MAX)
}

#[http_handler]
fn handle(req: Request) -> Response {
    let last = req.path().rsplit('/').next().unwrap_or("").to_string();
    let outcome = match last.as_str() {
        "open" => Ok(open(&param(&req, "store"))),
        "suite" => run_suite(&param(&req, "store"), &param(&req, "prefix")),
        "copy" | "move" => copy(&req, last == "move"),
        _ => with_container(req, &last),
    };
    outcome.unwrap_or_else(|e| Response::text(format!("{e}\n")).with_status(500))
}

fn with_container(req: Request, what: &str) -> Result<Response, String> {
    let (store, name) = (param(&req, "store"), param(&req, "name"));
    let c = blob::container(&store).map_err(|e| e.to_string())?;
    let e = |e: blob::Error| e.to_string();
    match what {
        "put" | "trap" => {
            let mut writer = c.writer(&name).map_err(e)?;
            let trap = what == "trap";
            std::io::copy(&mut req.into_body_reader(), &mut writer).map_err(|e| e.to_string())?;
            writer.flush().map_err(|e| e.to_string())?;
            if trap {
                panic!("trapping before the value is finished");
            }
            writer.finish().map_err(e)?;
            Ok(Response::text("ok\n"))
        }
        "get" => Ok(match c.get(&name).map_err(e)? {
            Some(bytes) => Response::bytes("application/octet-stream", bytes),
            None => Response::text("absent\n").with_status(404),
        }),
        "range" => c
            .get_range(&name, number(&req, "start"), number(&req, "end"))
            .map(|bytes| Response::bytes("application/octet-stream", bytes))
            .map_err(e),
        "list" => {
            let names = c.list(&param(&req, "prefix")).map_err(e)?;
            Ok(Response::text(
                names.iter().map(|n| format!("{n}\n")).collect::<String>(),
            ))
        }
        "delete" => c.delete(&name).map(|()| Response::text("ok\n")).map_err(e),
        "info" => c
            .info(&name)
            .map(|info| Response::text(format!("{}\n", info.size)))
            .map_err(e),
        _ => Ok(Response::text("unknown probe\n").with_status(404)),
    }
}

#[cfg(target_arch = "wasm32")]
fn open(store: &str) -> Response {
    use bindings::wasi::blobstore0_2_0_draft::blobstore as draft;
    use bindings::wasi::blobstore0_2_0_draft_2024_09_01::blobstore as spin;
    match (draft::get_container(store), spin::get_container(store)) {
        (Ok(_), Ok(_)) => Response::text("opened\n"),
        (a, b) => Response::text(format!(
            "draft: {:?}; spin: {:?}\n",
            a.map(drop),
            b.map(drop)
        ))
        .with_status(403),
    }
}

#[cfg(target_arch = "wasm32")]
fn copy(req: &Request, rename: bool) -> Result<Response, String> {
    use bindings::wasi::blobstore0_2_0_draft::blobstore as b;
    let id = |container: &str, object: &str| b::ObjectId {
        container: param(req, container),
        object: param(req, object),
    };
    let (src, dest) = (id("store", "name"), id("to-store", "to"));
    if rename {
        b::move_object(&src, &dest)?;
    } else {
        b::copy_object(&src, &dest)?;
    }
    Ok(Response::text("ok\n"))
}

#[cfg(target_arch = "wasm32")]
fn run_suite(store: &str, prefix: &str) -> Result<Response, String> {
    suite::draft(store, prefix)?;
    suite::spin(store, prefix)?;
    Ok(Response::text("ok\n"))
}

// The host target has no wasi imports; the probe only runs as a component.
#[cfg(not(target_arch = "wasm32"))]
fn open(_: &str) -> Response {
    Response::text("wasm only\n").with_status(500)
}

#[cfg(not(target_arch = "wasm32"))]
fn copy(_: &Request, _: bool) -> Result<Response, String> {
    Err("wasm only".into())
}

#[cfg(not(target_arch = "wasm32"))]
fn run_suite(_: &str, _: &str) -> Result<Response, String> {
    Err("wasm only".into())
}
