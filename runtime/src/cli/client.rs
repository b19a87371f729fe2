//! The admin API client the CLI uses (`wisp deploy`, `wisp functions …`).

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::config::FunctionSpec;
use crate::deploy::component;

/// One admin API call; a non-2xx answer becomes an error carrying its
/// message.
pub async fn call(admin: &str, method: Method, path: &str, body: Vec<u8>) -> Result<Value> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("{}{path}", admin.trim_end_matches('/'));
    let req = Request::builder()
        .method(method)
        .uri(&url)
        .body(Full::new(Bytes::from(body)))
        .with_context(|| format!("invalid admin URL `{admin}`"))?;
    let resp = client.request(req).await.with_context(|| {
        format!("could not reach the admin API at {admin}; is `wisp up` running with [server] admin set? (--admin or WISP_ADMIN choose the address)")
    })?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    let value: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into()))
    };
    if !status.is_success() {
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        bail!(
            "{} {}: {message}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
    }
    Ok(value)
}

/// Uploads the component, then deploys `spec` pointing at it.
pub async fn deploy(admin: &str, mut spec: FunctionSpec) -> Result<()> {
    let bytes = component::read(std::path::Path::new(&spec.component))?;
    component::check_header(&bytes).with_context(|| format!("`{}`", spec.component))?;
    let uploaded = call(admin, Method::POST, "/v1/components", bytes).await?;
    spec.component = uploaded["component"]
        .as_str()
        .context("admin API returned no component reference")?
        .to_string();
    let name = spec.name.clone();
    let revision = call(
        admin,
        Method::PUT,
        &format!("/v1/functions/{name}"),
        serde_json::to_vec(&spec)?,
    )
    .await?;
    println!(
        "deployed {name} revision {} ({})",
        revision["number"], spec.component
    );
    Ok(())
}
