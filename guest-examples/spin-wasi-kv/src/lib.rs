//! `spin-wasi-kv`: `spin-kv`'s visit counter on the standard interfaces
//! `spin-sdk` 7.0.0 also binds (`spin_sdk::experimental`):
//! `wasi:keyvalue@0.2.0-draft2` (`store.open("default")`, `atomics.increment`)
//! and `wasi:config@0.2.0-draft-2024-09-27`, inside spin-sdk's wasi:http@0.3
//! handler. Every import is one Wisp serves, so the Spin component runs on
//! Wisp unchanged, given a store named `default` (`tests/state.rs`).
//!
//! `GET` → `<greeting> <visits>`, the greeting from the config key `greeting`.

use anyhow::anyhow;
use spin_sdk::experimental::wasi::config::store as config;
use spin_sdk::experimental::wasi::keyvalue::{atomics, store};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(_req: Request) -> anyhow::Result<impl IntoResponse> {
    let bucket = store::open("default").map_err(|e| anyhow!("opening the store failed: {e:?}"))?;
    let visits =
        atomics::increment(&bucket, "visits", 1).map_err(|e| anyhow!("increment failed: {e:?}"))?;
    let greeting = config::get("greeting").map_err(|e| anyhow!("config failed: {e:?}"))?;
    Ok(format!(
        "{} {visits}\n",
        greeting.as_deref().unwrap_or("visits:")
    ))
}
