//! Publishing over HTTP, the same for the admin API and for guests at
//! `http://wisp.internal/topics/{topic}`: structured, batch or binary
//! CloudEvents in, `202 {"id": ...}` (a batch: `{"ids": [...]}`) out once
//! the events are durable.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use wasmtime_wasi_http::WasiBody;

use crate::events::cloudevent::from_http;
use crate::events::{Events, EventsError};
use crate::invoke::full;
use crate::sandbox::outbound::internal::{Answer, Caller, Service};

/// The content type of a batch of structured events.
const BATCH: &str = "application/cloudevents-batch+json";

/// Events one batch may carry, each within `max_event_size`.
const MAX_BATCH: usize = 1000;

/// A compact JSON answer, as `wisp.internal` services give them.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<WasiBody> {
    let mut response = Response::new(full(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A refusal as JSON `{"error": ...}`, as the admin API words them.
pub fn refuse(status: StatusCode, message: impl Into<String>) -> Response<WasiBody> {
    json(status, &serde_json::json!({ "error": message.into() }))
}

impl Events {
    /// Publishes the events in one HTTP request body to `topic`.
    pub async fn publish_http<B>(
        &self,
        topic: &str,
        headers: &HeaderMap,
        body: B,
    ) -> Response<WasiBody>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let max_event_size = match self.topic_spec(topic) {
            Ok(spec) => spec.max_event_size.bytes() as usize,
            Err(e) => return refuse(StatusCode::NOT_FOUND, e.to_string()),
        };
        let batch = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(BATCH));
        // Structured JSON and base64 data take more room than the event.
        let one = max_event_size.saturating_mul(2).saturating_add(64 << 10);
        let limit = if batch {
            one.saturating_mul(MAX_BATCH)
        } else {
            one
        };
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "could not read the events: {e} (each event may be at most the topic's max_event_size = {max_event_size} bytes)"
                    ),
                );
            }
        };
        let events = match from_http(headers, body, max_event_size) {
            Ok(events) if events.len() > MAX_BATCH => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("a batch carries at most {MAX_BATCH} events; split it"),
                );
            }
            Ok(events) => events,
            Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
        };
        match self.publish(topic, events).await {
            Ok(ids) if batch => json(StatusCode::ACCEPTED, &serde_json::json!({ "ids": ids })),
            Ok(ids) => json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "id": ids.first() }),
            ),
            Err(EventsError::UnknownTopic(t)) => refuse(
                StatusCode::NOT_FOUND,
                EventsError::UnknownTopic(t).to_string(),
            ),
            Err(e) => {
                tracing::error!(topic, "publish failed: {e}");
                refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("could not store the events: {e}"),
                )
            }
        }
    }
}

/// Guests publish at `POST http://wisp.internal/topics/{topic}`.
pub struct Internal(pub Arc<Events>);

impl Service for Internal {
    fn serve(&self, caller: Caller, request: Request<WasiBody>) -> Answer {
        let events = self.0.clone();
        Box::pin(async move {
            let path = request.uri().path().to_string();
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            let topic = match segments.as_slice() {
                ["topics", topic] | ["topics", topic, "events"] => topic.to_string(),
                _ => {
                    return refuse(
                        StatusCode::NOT_FOUND,
                        format!(
                            "nothing at http://wisp.internal{path}; publish with POST /topics/{{topic}}"
                        ),
                    );
                }
            };
            if request.method() != Method::POST {
                return refuse(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("publish with POST, not {}", request.method()),
                );
            }
            if !caller.grants.publish.contains(&topic) {
                tracing::warn!(function = %caller.function, topic, "publish denied: topic not in `publish`");
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "function `{}` may not publish to topic `{topic}`; add it to the function's `publish` list",
                        caller.function
                    ),
                );
            }
            let (parts, body) = request.into_parts();
            events.publish_http(&topic, &parts.headers, body).await
        })
    }
}

/// Stores' change events enter the events machinery like any publish.
#[async_trait::async_trait]
impl crate::state::events::Publish for Events {
    async fn publish(
        &self,
        topic: &str,
        events: Vec<crate::events::cloudevent::CloudEvent>,
    ) -> Result<(), crate::state::events::PublishError> {
        Events::publish(self, topic, events)
            .await
            .map(drop)
            .map_err(|e| crate::state::events::PublishError {
                lasting: matches!(e, EventsError::UnknownTopic(_)),
                message: e.to_string(),
            })
    }
}
