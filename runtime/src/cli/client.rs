//! The admin API client the CLI uses (`wisp deploy`, `wisp functions …`).

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::cli::AdminArgs;
use crate::config::{ADMIN_TOKEN_ENV, FunctionSpec};
use crate::deploy::component;
use crate::http::admin::{TOKEN_FILE, read_token_file};

/// The admin API to call and the token to call it with.
pub struct Target {
    url: String,
    /// `Bearer <token>`, when a token was found.
    authorization: Option<HeaderValue>,
    /// Where the token came from, or where none was found: said on a 401.
    token_source: String,
}

impl Target {
    /// Takes the token from the first of `--admin-token`,
    /// `--admin-token-file`, `WISP_ADMIN_TOKEN` and `STATE_DIR/admin-token`;
    /// without any, requests go without one and a 401 says where to look.
    pub fn new(args: AdminArgs) -> Result<Target> {
        let state_file = args.state_dir.join(TOKEN_FILE);
        let (token, token_source) = if let Some(token) = args.admin_token {
            (Some(token), "--admin-token".to_string())
        } else if let Some(file) = args.admin_token_file {
            (
                Some(read_token_file(&file)?),
                format!("--admin-token-file `{}`", file.display()),
            )
        } else if let Some(token) = std::env::var_os(ADMIN_TOKEN_ENV).filter(|t| !t.is_empty()) {
            let token = token
                .into_string()
                .map_err(|_| anyhow::anyhow!("{ADMIN_TOKEN_ENV} is not valid UTF-8"))?;
            (Some(token), ADMIN_TOKEN_ENV.to_string())
        } else if state_file.exists() {
            (
                Some(read_token_file(&state_file)?),
                format!("`{}`", state_file.display()),
            )
        } else {
            (
                None,
                format!(
                    "any of --admin-token, --admin-token-file, {ADMIN_TOKEN_ENV} and `{}` (run \
                     from the folder of wisp.toml, or pass --state-dir)",
                    state_file.display()
                ),
            )
        };
        let authorization = token
            .map(|t| HeaderValue::try_from(format!("Bearer {}", t.trim())))
            .transpose()
            .with_context(|| {
                format!("the admin token from {token_source} is not valid in a header")
            })?;
        Ok(Target {
            url: args.admin.trim_end_matches('/').to_string(),
            authorization,
            token_source,
        })
    }
}

/// One admin API call with a JSON body (or none); a non-2xx answer becomes
/// an error carrying its message.
pub async fn call(admin: &Target, method: Method, path: &str, body: Vec<u8>) -> Result<Value> {
    send(admin, method, path, "application/json", body).await
}

/// One admin API call with a body of `content_type`.
pub async fn send(
    admin: &Target,
    method: Method,
    path: &str,
    content_type: &'static str,
    body: Vec<u8>,
) -> Result<Value> {
    let body = request(admin, method, path, content_type, body)
        .await?
        .collect()
        .await?
        .to_bytes();
    Ok(json_or_text(&body))
}

/// A GET whose answer is read as it comes (`wisp logs --follow`).
pub async fn stream(admin: &Target, path: &str) -> Result<Incoming> {
    request(admin, Method::GET, path, "application/json", Vec::new()).await
}

/// A GET whose answer's bytes are returned as they came (`wisp blobs get`).
pub async fn bytes(admin: &Target, path: &str) -> Result<Bytes> {
    Ok(stream(admin, path).await?.collect().await?.to_bytes())
}

fn json_or_text(body: &[u8]) -> Value {
    if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::String(String::from_utf8_lossy(body).into()))
    }
}

/// Sends the request; a non-2xx answer becomes an error carrying its
/// message.
async fn request(
    admin: &Target,
    method: Method,
    path: &str,
    content_type: &'static str,
    body: Vec<u8>,
) -> Result<Incoming> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("{}{path}", admin.url);
    let mut req = Request::builder()
        .method(method)
        .uri(&url)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(authorization) = &admin.authorization {
        req = req.header(header::AUTHORIZATION, authorization);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .with_context(|| format!("invalid admin URL `{}`", admin.url))?;
    let resp = client.request(req).await.with_context(|| {
        format!("could not reach the admin API at {}; is `wisp up` running with [server] admin set? (--admin or WISP_ADMIN choose the address)", admin.url)
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp.into_body());
    }
    let value = json_or_text(&resp.into_body().collect().await?.to_bytes());
    let message = value
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| value.to_string());
    let found = match (status.as_u16(), &admin.authorization) {
        (401, Some(_)) => format!("; the CLI sent the token from {}", admin.token_source),
        (401, None) => format!("; the CLI found no token in {}", admin.token_source),
        _ => String::new(),
    };
    bail!(
        "{} {}: {message}{found}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
}

/// Uploads the component, then deploys `spec` pointing at it.
pub async fn deploy(admin: &Target, mut spec: FunctionSpec) -> Result<()> {
    let bytes = component::read(std::path::Path::new(&spec.component))?;
    component::check_header(&bytes).with_context(|| format!("`{}`", spec.component))?;
    let uploaded = send(
        admin,
        Method::POST,
        "/v1/components",
        "application/wasm",
        bytes,
    )
    .await?;
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
