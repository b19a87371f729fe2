//! The admin API's jobs: start executions, list and describe them, read
//! their logs, cancel them.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use crate::http::admin::{Admin, MAX_JSON, Reply, read_body, unknown};
use crate::http::respond::{empty, json};
use crate::jobs::{JobsError, RunRequest};
use crate::telemetry::traces;

fn refusal(e: JobsError) -> (StatusCode, String) {
    let status = match e {
        JobsError::NotFound(_) => StatusCode::NOT_FOUND,
        JobsError::Invalid(_) => StatusCode::BAD_REQUEST,
        JobsError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, e.to_string())
}

/// A query parameter's value.
fn param<'a, B>(req: &'a Request<B>, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

impl Admin {
    pub(super) async fn jobs(
        &self,
        method: &Method,
        segments: &[&str],
        req: Request<Incoming>,
    ) -> Reply {
        let jobs = &self.jobs;
        match (method, segments) {
            (&Method::GET, ["v1", "jobs"]) => Ok(json(StatusCode::OK, &jobs.list())),
            (&Method::POST, ["v1", "jobs", job, "executions"]) => {
                let job = job.to_string();
                let traceparent = traces::carried(req.headers()).map(str::to_owned);
                let body = read_body(req, MAX_JSON).await?;
                let mut request: RunRequest = if body.iter().all(u8::is_ascii_whitespace) {
                    RunRequest::default()
                } else {
                    serde_json::from_slice(&body).map_err(|e| {
                        (StatusCode::BAD_REQUEST, format!("invalid run request: {e}"))
                    })?
                };
                // The execution continues the caller's trace (see jobs::run).
                if let Some(traceparent) = traceparent {
                    (request.env)
                        .entry(traces::TRACEPARENT_ENV.into())
                        .or_insert(traceparent);
                }
                let id = jobs.run(&job, request).await.map_err(refusal)?;
                Ok(json(
                    StatusCode::CREATED,
                    &serde_json::json!({ "execution": id }),
                ))
            }
            (&Method::GET, ["v1", "jobs", job, "executions"]) => Ok(json(
                StatusCode::OK,
                &jobs.executions(job).await.map_err(refusal)?,
            )),
            (&Method::GET, ["v1", "executions", id]) => Ok(json(
                StatusCode::OK,
                &jobs.describe(id).await.map_err(refusal)?,
            )),
            (&Method::GET, ["v1", "executions", id, "logs"]) => {
                let number = |name: &str| -> Result<Option<i64>, (StatusCode, String)> {
                    param(&req, name)
                        .map(|v| {
                            v.parse().map_err(|_| {
                                (
                                    StatusCode::BAD_REQUEST,
                                    format!("`{name}` = `{v}` is not a number"),
                                )
                            })
                        })
                        .transpose()
                };
                let task = number("task")?.map(|t| t as u32);
                let after = number("after")?.unwrap_or(0);
                Ok(json(
                    StatusCode::OK,
                    &jobs.logs(id, task, after).await.map_err(refusal)?,
                ))
            }
            (&Method::POST, ["v1", "executions", id, "cancel"]) => {
                jobs.cancel(id).await.map_err(refusal)?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            _ => Err(unknown(method, segments)),
        }
    }
}
