//! `kv-probe`: a test guest for Wisp's state interfaces (tests/state.rs).
//! The last path segment picks what it does; `store`, `key`, `prefix` come
//! from the query.
//!
//! - `incr`: `wisp_sdk::kv` increment of `key` by 1 → the new value
//! - `set` (body = value), `get` → the value or 404; `delete` → `ok`
//! - `open`: opens `store` with both drafts → `opened`, or 403 naming the
//!   error each draft returned
//! - `suite`: every call of both wasi:keyvalue drafts against `store`, on
//!   keys under `prefix` → `ok`, or 500 naming the first mismatch
//! - `config` / `config-draft` (`key`): wasi:config rc.1 (the SDK) / Spin's
//!   draft → the value or 404; `config-all` → `k=v` lines
//! - `print-config` (`key`): prints the value to stdout → `printed`
//! - `bench` (`op` = set|get|incr, `n`, `prefix`): `n` calls on keys
//!   `{prefix}-0…`, each timed inside the guest → one nanosecond figure per
//!   line (benches/keyvalue.py)

#[cfg(target_arch = "wasm32")]
mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "wisp:kv-probe/probe",
        generate_all,
    });
}

#[cfg(target_arch = "wasm32")]
mod suite;

use wisp_sdk::kv;
use wisp_sdk::{Request, Response, http_handler};

fn param(req: &Request, name: &str) -> String {
    req.query_param(name).unwrap_or_default()
}

#[http_handler]
fn handle(mut req: Request) -> Response {
    let (store, key) = (param(&req, "store"), param(&req, "key"));
    let last = req.path().rsplit('/').next().unwrap_or("").to_string();
    let outcome: Result<Response, String> = match last.as_str() {
        "incr" => kv::open(&store)
            .and_then(|s| s.increment(&key, 1))
            .map(|n| Response::text(format!("{n}\n")))
            .map_err(|e| e.to_string()),
        "set" => {
            let value = req.text().map(str::to_owned).unwrap_or_default();
            kv::open(&store)
                .and_then(|s| s.set(&key, value))
                .map(|()| Response::text("ok\n"))
                .map_err(|e| e.to_string())
        }
        "delete" => kv::open(&store)
            .and_then(|s| s.delete(&key))
            .map(|()| Response::text("ok\n"))
            .map_err(|e| e.to_string()),
        "get" => kv::open(&store)
            .and_then(|s| s.get(&key))
            .map(|v| match v {
                Some(v) => Response::bytes("application/octet-stream", v),
                None => Response::text("absent\n").with_status(404),
            })
            .map_err(|e| e.to_string()),
        "open" => Ok(open(&store)),
        "bench" => bench(
            &store,
            &param(&req, "op"),
            &param(&req, "n"),
            &param(&req, "prefix"),
        ),
        "suite" => run_suite(&store, &param(&req, "prefix")),
        "config" => wisp_sdk::config::get(&key)
            .map(found)
            .map_err(|e| e.to_string()),
        "config-draft" => config_draft(&key),
        "config-all" => wisp_sdk::config::get_all()
            .map(|all| {
                let lines: Vec<String> = all.iter().map(|(k, v)| format!("{k}={v}")).collect();
                Response::text(lines.join("\n") + "\n")
            })
            .map_err(|e| e.to_string()),
        "print-config" => wisp_sdk::config::get(&key)
            .map(|v| {
                println!("the value of {key} is {}", v.unwrap_or_default());
                Response::text("printed\n")
            })
            .map_err(|e| e.to_string()),
        _ => Ok(Response::text("unknown probe\n").with_status(404)),
    };
    outcome.unwrap_or_else(|e| Response::text(format!("{e}\n")).with_status(500))
}

/// Times `n` calls of `op`, each on its own key (`get` reads what a `set`
/// run wrote; `incr` bumps one counter).
fn bench(store: &str, op: &str, n: &str, prefix: &str) -> Result<Response, String> {
    let n: usize = n.parse().map_err(|_| format!("n=`{n}` is not a count"))?;
    let store = kv::open(store).map_err(|e| e.to_string())?;
    let value = [b'v'; 64];
    let mut lines = String::new();
    for i in 0..n {
        let key = format!("{prefix}-{i}");
        let started = std::time::Instant::now();
        let done = match op {
            "set" => store.set(&key, value),
            "get" => store.get(&key).map(drop),
            "incr" => store.increment(prefix, 1).map(drop),
            _ => return Err(format!("op=`{op}`: use set, get or incr")),
        };
        let took = started.elapsed();
        done.map_err(|e| e.to_string())?;
        lines.push_str(&format!("{}\n", took.as_nanos()));
    }
    Ok(Response::text(lines))
}

fn found(value: Option<String>) -> Response {
    match value {
        Some(v) => Response::text(v),
        None => Response::text("absent\n").with_status(404),
    }
}

/// Opens `store` through both drafts: granted stores open in both, any
/// other name is access-denied in both.
fn open(store: &str) -> Response {
    let draft = kv::open(store).map(drop).map_err(|e| format!("{e:?}"));
    let draft2 = open_draft2(store);
    match (draft, draft2) {
        (Ok(()), Ok(())) => Response::text("opened\n"),
        (a, b) => Response::text(format!("draft: {a:?}; draft2: {b:?}\n")).with_status(403),
    }
}

#[cfg(target_arch = "wasm32")]
fn open_draft2(store: &str) -> Result<(), String> {
    use bindings::wasi::keyvalue0_2_0_draft2::store as s;
    s::open(store).map(drop).map_err(|e| format!("{e:?}"))
}

#[cfg(target_arch = "wasm32")]
fn run_suite(store: &str, prefix: &str) -> Result<Response, String> {
    suite::draft(store, prefix)?;
    suite::draft2(store, prefix)?;
    Ok(Response::text("ok\n"))
}

#[cfg(target_arch = "wasm32")]
fn config_draft(key: &str) -> Result<Response, String> {
    use bindings::wasi::config::store as c;
    c::get(key).map(found).map_err(|e| format!("{e:?}"))
}

// The host target has no wasi imports; the probe only runs as a component.
#[cfg(not(target_arch = "wasm32"))]
fn open_draft2(_: &str) -> Result<(), String> {
    Err("wasm only".into())
}

#[cfg(not(target_arch = "wasm32"))]
fn run_suite(_: &str, _: &str) -> Result<Response, String> {
    Err("wasm only".into())
}

#[cfg(not(target_arch = "wasm32"))]
fn config_draft(_: &str) -> Result<Response, String> {
    Err("wasm only".into())
}
