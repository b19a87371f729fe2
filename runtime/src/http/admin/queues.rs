//! The admin API's task queues and schedules: add, list and delete tasks;
//! pause, resume and purge queues; list, run, pause and resume schedules.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use crate::http::admin::{Admin, Reply, limit_of, unknown};
use crate::http::respond::{empty, json};
use crate::tasks::TasksError;
use crate::tasks::internal::status_of;

fn refusal(e: TasksError) -> (StatusCode, String) {
    (status_of(&e), e.to_string())
}

impl Admin {
    pub(super) async fn queues(
        &self,
        method: &Method,
        segments: &[&str],
        req: Request<Incoming>,
    ) -> Reply {
        let tasks = &self.tasks;
        match (method, segments) {
            (&Method::GET, ["v1", "queues"]) => Ok(json(StatusCode::OK, &tasks.stats())),
            (&Method::POST, ["v1", "queues", queue, "tasks"]) => {
                let (parts, body) = req.into_parts();
                Ok(tasks.enqueue_http(queue, &parts.headers, body).await)
            }
            (&Method::GET, ["v1", "queues", queue, "tasks"]) => {
                let listed = tasks.list(queue, limit_of(&req)?).await.map_err(refusal)?;
                Ok(json(StatusCode::OK, &listed))
            }
            (&Method::DELETE, ["v1", "queues", queue, "tasks", name]) => {
                tasks.delete(queue, name).await.map_err(refusal)?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&Method::POST, ["v1", "queues", queue, action @ ("pause" | "resume")]) => {
                tasks
                    .set_paused(queue, *action == "pause")
                    .await
                    .map_err(refusal)?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&Method::POST, ["v1", "queues", queue, "purge"]) => {
                let purged = tasks.purge(queue).await.map_err(refusal)?;
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({ "purged": purged }),
                ))
            }
            (&Method::GET, ["v1", "schedules"]) => {
                Ok(json(StatusCode::OK, &tasks.schedules().await))
            }
            (&Method::POST, ["v1", "schedules", name, "run"]) => {
                tasks.run_schedule(name).await.map_err(refusal)?;
                Ok(empty(StatusCode::ACCEPTED))
            }
            (&Method::POST, ["v1", "schedules", name, action @ ("pause" | "resume")]) => {
                tasks
                    .pause_schedule(name, *action == "pause")
                    .await
                    .map_err(refusal)?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            _ => Err(unknown(method, segments)),
        }
    }
}
