//! The admin API: deploy, inspect, roll back and delete functions at
//! runtime. JSON in and out; errors are `{"error": "..."}` with a status that
//! says whose fault it was. Every request passes the [`guard`] first.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use wasmtime_wasi_http::WasiBody;

use crate::config::FunctionSpec;
use crate::deploy::registry::{NotFound, Registry};
use crate::events::Events;
use crate::http::dashboard;
use crate::http::respond::{empty, json, plain};
use crate::jobs::Jobs;
use crate::logs::LogStore;
use crate::state::Services;
use crate::store::Revision;
use crate::tasks::Tasks;
use crate::telemetry::metrics::CONTENT_TYPE;

mod blobs;
mod guard;
mod jobs;
mod logs;
mod queues;
mod stores;
mod token;
mod topics;

pub use guard::Guard;
pub use token::{AdminToken, TOKEN_FILE, read_token_file};

/// Largest component upload; JS and Python components are 13-18 MB.
pub(super) const MAX_UPLOAD: usize = 256 << 20;
/// Largest JSON body (settings, rollback).
pub(super) const MAX_JSON: usize = 1 << 20;

/// The media type component uploads must declare.
const WASM_TYPE: &str = "application/wasm";

/// What the admin API manages beside functions.
pub struct Triggers {
    pub events: Arc<Events>,
    pub tasks: Arc<Tasks>,
    pub jobs: Arc<Jobs>,
    /// Key-value and blob stores, for `wisp kv` and `wisp blobs`.
    pub services: Arc<Services>,
    /// Functions' logs, for `wisp logs`.
    pub logs: LogStore,
}

pub struct Admin {
    registry: Arc<Registry>,
    events: Arc<Events>,
    tasks: Arc<Tasks>,
    jobs: Arc<Jobs>,
    services: Arc<Services>,
    logs: LogStore,
    guard: Guard,
    /// `[server] files_root`, resolved: where admin deploys' `dirs` must lie.
    files_root: Option<PathBuf>,
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

pub(super) type Reply = Result<Response<WasiBody>, (StatusCode, String)>;

impl Admin {
    /// `files_root` must be canonical (see [`canonical_files_root`]).
    pub fn new(
        registry: Arc<Registry>,
        triggers: Triggers,
        guard: Guard,
        files_root: Option<PathBuf>,
    ) -> Arc<Self> {
        Arc::new(Admin {
            registry,
            events: triggers.events,
            tasks: triggers.tasks,
            jobs: triggers.jobs,
            services: triggers.services,
            logs: triggers.logs,
            guard,
            files_root,
        })
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<WasiBody> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let reply = match self.guard.check(req.headers(), &path) {
            Ok(()) => self.route(&method, &path, req).await,
            Err(refusal) => Err(refusal),
        };
        let mut resp = reply.unwrap_or_else(|(status, message)| {
            json(status, &serde_json::json!({ "error": message }))
        });
        if resp.status() == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wisp admin\""),
            );
        }
        tracing::info!(target: "wisp::admin", %method, %path, status = resp.status().as_u16());
        resp
    }

    async fn route(&self, method: &Method, path: &str, req: Request<Incoming>) -> Reply {
        if method == Method::GET
            && let Some(page) = dashboard::file(path)
        {
            return Ok(page);
        }
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (&Method::GET, ["healthz"]) => Ok(self.health()),
            (&Method::GET, ["v1", "dashboard", "series"]) => {
                let series = dashboard::series(&self.registry, req.uri().query())?;
                Ok(json(StatusCode::OK, &series))
            }
            (&Method::GET, ["metrics"]) => {
                let mut resp = plain(StatusCode::OK, self.registry.telemetry().encode());
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
                Ok(resp)
            }
            (&Method::POST, ["v1", "components"]) => self.upload(req).await,
            (&Method::GET, ["v1", "functions"]) => {
                let mut list = self.registry.list();
                for spec in list.iter_mut().filter_map(|info| info.spec.as_mut()) {
                    spec.hide_env_values();
                }
                Ok(json(StatusCode::OK, &list))
            }
            (&Method::GET, ["v1", "functions", name]) => {
                let mut info = self.registry.info(name).map_err(refusal)?;
                if let Some(spec) = info.spec.as_mut() {
                    spec.hide_env_values();
                }
                Ok(json(StatusCode::OK, &info))
            }
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
            (&Method::GET, ["v1", "functions", name, "revisions"]) => {
                let mut revisions = self.registry.revisions(name).map_err(refusal)?;
                for revision in &mut revisions {
                    revision.spec.hide_env_values();
                }
                Ok(json(StatusCode::OK, &revisions))
            }
            (&Method::GET, ["v1", "functions", name, "logs"]) => self.logs(name, &req).await,
            (&Method::POST, ["v1", "functions", name, "rollback"]) => {
                let name = name.to_string();
                self.rollback(&name, req).await
            }
            (_, ["v1", "topics", ..]) => self.topics(method, &segments, req).await,
            (_, ["v1", "queues" | "schedules", ..]) => self.queues(method, &segments, req).await,
            (_, ["v1", "jobs" | "executions", ..]) => self.jobs(method, &segments, req).await,
            (_, ["v1", "stores", ..]) => self.stores(method, &segments, req).await,
            (_, ["v1", "blobs", ..]) => self.blobs(method, &segments, req).await,
            _ => Err((
                StatusCode::NOT_FOUND,
                format!("no admin endpoint {method} {path}; see docs/admin-api.md"),
            )),
        }
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
        let declared = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim);
        if !declared.is_some_and(|t| t.eq_ignore_ascii_case(WASM_TYPE)) {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "upload the component's bytes with `Content-Type: {WASM_TYPE}` (got {})",
                    declared.map_or("none".into(), |t| format!("`{t}`"))
                ),
            ));
        }
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
        confine_dirs(&mut spec, self.files_root.as_deref())
            .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        self.events
            .check_spec(&spec)
            .and_then(|()| self.tasks.check_spec(&spec))
            .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        let revision = self.registry.deploy(spec, None).await.map_err(refusal)?;
        Ok(shown(revision))
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
        Ok(shown(revision))
    }
}

/// A revision as the admin API answers it: env values may be secrets.
fn shown(mut revision: Revision) -> Response<WasiBody> {
    revision.spec.hide_env_values();
    json(StatusCode::OK, &revision)
}

/// `[server] files_root` made canonical once at start, so that `dirs` can be
/// compared with it.
pub fn canonical_files_root(root: &Path) -> anyhow::Result<PathBuf> {
    root.canonicalize().map_err(|e| {
        anyhow::anyhow!(
            "files_root `{}`: {e}; create the directory or fix the path",
            root.display()
        )
    })
}

/// Admin deploys may preopen host directories only under `files_root`:
/// each `dirs` path (relative ones are taken from `files_root`) is made
/// canonical, so neither `..` nor a symlink leads out, and stored that way.
fn confine_dirs(spec: &mut FunctionSpec, files_root: Option<&Path>) -> Result<(), String> {
    if spec.dirs.is_empty() {
        return Ok(());
    }
    let Some(root) = files_root else {
        return Err(
            "`dirs`: admin deploys may preopen host directories only under [server] files_root, \
             which this server does not set; set it (wisp serve: --files-root) or deploy \
             without dirs"
                .into(),
        );
    };
    for (guest, host) in spec.dirs.iter_mut() {
        let real = root
            .join(&*host)
            .canonicalize()
            .map_err(|e| format!("`dirs`: `{guest}` = `{host}`: {e}"))?;
        if !real.starts_with(root) {
            return Err(format!(
                "`dirs`: `{guest}` = `{host}` is `{}`, outside [server] files_root `{}`; admin \
                 deploys may preopen directories only under it",
                real.display(),
                root.display()
            ));
        }
        *host = real
            .to_str()
            .ok_or_else(|| format!("`dirs`: `{guest}` = `{host}`: the path is not UTF-8"))?
            .to_string();
    }
    Ok(())
}

fn refusal(e: anyhow::Error) -> (StatusCode, String) {
    let status = if e.is::<NotFound>() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, format!("{e:#}"))
}

pub(super) async fn read_body(
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, (StatusCode, String)> {
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

/// Entries a listing returns when the request names no `limit`.
const DEFAULT_LIMIT: usize = 100;

/// The `limit` query parameter of a listing.
fn limit_of<B>(req: &Request<B>) -> Result<usize, (StatusCode, String)> {
    req.uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("limit="))
        .map(|n| {
            n.parse().map_err(|_| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("limit `{n}` is not a number"),
                )
            })
        })
        .transpose()
        .map(|limit| limit.unwrap_or(DEFAULT_LIMIT))
}

/// The refusal for a path the admin API does not serve.
fn unknown(method: &Method, segments: &[&str]) -> (StatusCode, String) {
    (
        StatusCode::NOT_FOUND,
        format!(
            "no admin endpoint {method} /{}; see docs/admin-api.md",
            segments.join("/")
        ),
    )
}
