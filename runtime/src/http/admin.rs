//! The admin API: deploy, inspect, roll back and delete functions at
//! runtime. JSON in and out; errors are `{"error": "..."}` with a status that
//! says whose fault it was.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use wasmtime_wasi_http::WasiBody;

use crate::config::FunctionSpec;
use crate::deploy::registry::{NotFound, Registry};
use crate::http::respond::{empty, json, plain};
use crate::telemetry::metrics::prometheus;

/// Largest component upload; JS and Python components are 13-18 MB.
const MAX_UPLOAD: usize = 256 << 20;
/// Largest JSON body (settings, rollback).
const MAX_JSON: usize = 1 << 20;

pub struct Admin {
    registry: Arc<Registry>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    revision: Option<u64>,
}

#[derive(Serialize)]
struct Uploaded {
    component: String,
}

type Reply = Result<Response<WasiBody>, (StatusCode, String)>;

impl Admin {
    pub fn new(registry: Arc<Registry>) -> Arc<Self> {
        Arc::new(Admin { registry })
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<WasiBody> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let reply = match (&method, segments.as_slice()) {
            (&Method::GET, ["healthz"]) => Ok(self.health()),
            (&Method::GET, ["metrics"]) => {
                let metrics = self.registry.metrics();
                Ok(plain(
                    StatusCode::OK,
                    prometheus(metrics.iter().map(|(n, m)| (n.as_str(), &**m))),
                ))
            }
            (&Method::POST, ["v1", "components"]) => self.upload(req).await,
            (&Method::GET, ["v1", "functions"]) => Ok(json(StatusCode::OK, &self.registry.list())),
            (&Method::GET, ["v1", "functions", name]) => self
                .registry
                .info(name)
                .map(|i| json(StatusCode::OK, &i))
                .map_err(refusal),
            (&Method::PUT, ["v1", "functions", name]) => {
                let name = name.to_string();
                self.deploy(&name, req).await
            }
            (&Method::DELETE, ["v1", "functions", name]) => {
                match self.registry.delete(name).await {
                    Ok(()) => Ok(empty(StatusCode::NO_CONTENT)),
                    Err(e) => Err(refusal(e)),
                }
            }
            (&Method::GET, ["v1", "functions", name, "revisions"]) => self
                .registry
                .revisions(name)
                .map(|r| json(StatusCode::OK, &r))
                .map_err(refusal),
            (&Method::POST, ["v1", "functions", name, "rollback"]) => {
                let name = name.to_string();
                self.rollback(&name, req).await
            }
            _ => Err((
                StatusCode::NOT_FOUND,
                format!("no admin endpoint {method} {path}; see docs/admin-api.md"),
            )),
        };
        let resp = reply.unwrap_or_else(|(status, message)| {
            json(status, &serde_json::json!({ "error": message }))
        });
        tracing::info!(target: "wisp::admin", %method, %path, status = resp.status().as_u16());
        resp
    }

    /// `200 ok`, or `503` naming every function that failed to load at
    /// start and why.
    fn health(&self) -> Response<WasiBody> {
        let failed = self.registry.failures();
        if failed.is_empty() {
            return plain(StatusCode::OK, "ok\n".into());
        }
        let mut body = format!(
            "unhealthy: {} function(s) failed to restore; deploy them again, roll them back or \
             delete them\n",
            failed.len()
        );
        for (name, error) in failed {
            body.push_str(&format!("{name}: {error}\n"));
        }
        plain(StatusCode::SERVICE_UNAVAILABLE, body)
    }

    async fn upload(&self, req: Request<Incoming>) -> Reply {
        let bytes = read_body(req, MAX_UPLOAD).await?;
        let component = self
            .registry
            .add_component(bytes.to_vec())
            .await
            .map_err(refusal)?;
        Ok(json(StatusCode::CREATED, &Uploaded { component }))
    }

    async fn deploy(&self, name: &str, req: Request<Incoming>) -> Reply {
        let body = read_body(req, MAX_JSON).await?;
        let mut spec: FunctionSpec = serde_json::from_slice(&body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("invalid function settings: {e}"),
            )
        })?;
        if spec.name.is_empty() {
            spec.name = name.to_string();
        } else if spec.name != name {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "settings name `{}` differs from the URL's `{name}`",
                    spec.name
                ),
            ));
        }
        let revision = self.registry.deploy(spec, None).await.map_err(refusal)?;
        Ok(json(StatusCode::OK, &revision))
    }

    async fn rollback(&self, name: &str, req: Request<Incoming>) -> Reply {
        let body = read_body(req, MAX_JSON).await?;
        let target: RollbackBody = if body.iter().all(u8::is_ascii_whitespace) {
            RollbackBody::default()
        } else {
            serde_json::from_slice(&body).map_err(|e| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("invalid rollback body: {e}"),
                )
            })?
        };
        let revision = self
            .registry
            .rollback(name, target.revision)
            .await
            .map_err(refusal)?;
        Ok(json(StatusCode::OK, &revision))
    }
}

fn refusal(e: anyhow::Error) -> (StatusCode, String) {
    let status = if e.is::<NotFound>() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, format!("{e:#}"))
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, (StatusCode, String)> {
    Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("could not read the request body (limit {limit} bytes): {e}"),
            )
        })
}
