//! The admin API's topics: publish, inspect, list dead letters, replay.

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use crate::events::EventsError;
use crate::http::admin::{Admin, Reply, limit_of, unknown};
use crate::http::respond::json;

fn refusal(e: EventsError) -> (StatusCode, String) {
    let status = match e {
        EventsError::UnknownTopic(_) => StatusCode::NOT_FOUND,
        EventsError::Invalid(_) => StatusCode::BAD_REQUEST,
        EventsError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, e.to_string())
}

impl Admin {
    pub(super) async fn topics(
        &self,
        method: &Method,
        segments: &[&str],
        req: Request<Incoming>,
    ) -> Reply {
        match (method, segments) {
            (&Method::GET, ["v1", "topics"]) => Ok(json(StatusCode::OK, &self.events.stats())),
            (&Method::POST, ["v1", "topics", topic, "events"]) => {
                let (parts, body) = req.into_parts();
                Ok(self.events.publish_http(topic, &parts.headers, body).await)
            }
            (&Method::GET, ["v1", "topics", topic, "events"]) => {
                let limit = limit_of(&req)?;
                let kept = self.events.kept(topic, limit).await.map_err(refusal)?;
                Ok(json(StatusCode::OK, &kept))
            }
            (&Method::POST, ["v1", "topics", topic, "replay"]) => {
                let replayed = self.events.replay(topic).await.map_err(refusal)?;
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({ "replayed": replayed }),
                ))
            }
            _ => Err(unknown(method, segments)),
        }
    }
}
