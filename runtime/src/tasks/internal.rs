//! Guests add tasks at `POST http://wisp.internal/queues/{queue}/tasks`,
//! with the same JSON body as the admin API, to the queues in their
//! `enqueue` list.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use wasmtime_wasi_http::WasiBody;

use crate::events::publish::{json, refuse};
use crate::sandbox::outbound::internal::{Answer, Caller, Service};
use crate::tasks::task::NewTask;
use crate::tasks::{Tasks, TasksError};
use crate::telemetry::traces;

/// Enqueue bodies larger than this are refused before parsing (tasks are
/// further held to their queue's `max_task_size`).
pub const MAX_ENQUEUE_BODY: usize = 32 << 20;

/// The status a refusal answers with.
pub fn status_of(e: &TasksError) -> StatusCode {
    match e {
        TasksError::NotFound(_) => StatusCode::NOT_FOUND,
        TasksError::Invalid(_) => StatusCode::BAD_REQUEST,
        TasksError::Taken(_) => StatusCode::CONFLICT,
        TasksError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl Tasks {
    /// Adds the task in one HTTP request body to `queue`: 201 `{"name"}`.
    /// A `traceparent` among the request's `headers` goes with the task
    /// (as one of its headers, unless it has one) so its delivery continues
    /// the producer's trace.
    pub async fn enqueue_http<B>(
        &self,
        queue: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Response<WasiBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let body = match Limited::new(body, MAX_ENQUEUE_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("could not read the task: {e}"),
                );
            }
        };
        let mut task: NewTask = if body.iter().all(u8::is_ascii_whitespace) {
            NewTask::default()
        } else {
            match serde_json::from_slice(&body) {
                Ok(task) => task,
                Err(e) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "invalid task: {e}; send JSON like {{\"name\": \"welcome-42\", \"path\": \"/send\", \"body\": \"...\"}}"
                        ),
                    );
                }
            }
        };
        if let Some(traceparent) = traces::carried(headers)
            && !(task.headers.keys()).any(|h| h.eq_ignore_ascii_case(traces::TRACEPARENT))
        {
            (task.headers).insert(traces::TRACEPARENT.into(), traceparent.into());
        }
        match self.enqueue(queue, task).await {
            Ok(name) => json(StatusCode::CREATED, &serde_json::json!({ "name": name })),
            Err(e) => refuse(status_of(&e), e.to_string()),
        }
    }
}

/// The `wisp.internal` service for queues.
pub struct Internal(pub Arc<Tasks>);

impl Service for Internal {
    fn serve(&self, caller: Caller, request: Request<WasiBody>) -> Answer {
        let tasks = self.0.clone();
        Box::pin(async move {
            let path = request.uri().path().to_string();
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            let ["queues", queue, "tasks"] = segments.as_slice() else {
                return refuse(
                    StatusCode::NOT_FOUND,
                    format!(
                        "nothing at http://wisp.internal{path}; add tasks with POST /queues/{{queue}}/tasks"
                    ),
                );
            };
            let queue = queue.to_string();
            if request.method() != Method::POST {
                return refuse(StatusCode::METHOD_NOT_ALLOWED, "add tasks with POST");
            }
            if !caller.grants.enqueue.contains(&queue) {
                tracing::warn!(function = %caller.function, queue, "enqueue denied: queue not in `enqueue`");
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "function `{}` may not add tasks to queue `{queue}`; add it to the function's `enqueue` list",
                        caller.function
                    ),
                );
            }
            let (parts, body) = request.into_parts();
            tasks.enqueue_http(&queue, &parts.headers, body).await
        })
    }
}
