//! `spin-kv`: a visit counter written for Spin with `spin-sdk` 7.0.0 and
//! its key-value API, `spin_sdk::key_value::Store::open_default()` — what
//! Spin's documentation shows. It imports `spin:key-value/key-value@3.0.0`
//! (an async WASIp3 interface), which Wisp does not serve: Wisp refuses it at
//! deploy and names that import (`tests/state.rs`). `spin-wasi-kv` is the
//! same counter on the standard interface, which runs. See
//! docs/state.md, "Running Spin components".

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

#[http_service]
async fn handle(_req: Request) -> anyhow::Result<impl IntoResponse> {
    let store = Store::open_default().await?;
    let visits = match store.get("visits").await? {
        Some(bytes) => String::from_utf8(bytes)?.parse::<u64>()? + 1,
        None => 1,
    };
    store.set("visits", visits.to_string()).await?;
    Ok(format!("{visits}\n"))
}
