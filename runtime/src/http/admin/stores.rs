//! The admin API's key-value stores, for operators (`wisp kv`): list keys,
//! read, write and delete values. Guests reach the same stores through
//! wasi:keyvalue.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;

use crate::http::admin::{Admin, MAX_UPLOAD, Reply, read_body, unknown};
use crate::http::respond::{empty, json};
use crate::state::keyvalue::KeyValue;

fn failed(e: impl std::fmt::Display) -> (StatusCode, String) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the store failed: {e}"),
    )
}

impl Admin {
    fn store(&self, name: &str) -> Result<&std::sync::Arc<dyn KeyValue>, (StatusCode, String)> {
        self.services.store(name).ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!(
                    "no store `{name}`; stores are declared with [[store]] tables in wisp.toml"
                ),
            )
        })
    }

    pub(super) async fn stores(
        &self,
        method: &Method,
        segments: &[&str],
        req: Request<Incoming>,
    ) -> Reply {
        match (method, segments) {
            (&Method::GET, ["v1", "stores"]) => {
                Ok(json(StatusCode::OK, &self.services.store_names()))
            }
            (&Method::GET, ["v1", "stores", store, "keys"]) => {
                let store = self.store(store)?;
                let mut keys = Vec::new();
                let mut cursor = None;
                loop {
                    let page = store.list_keys(cursor).await.map_err(failed)?;
                    keys.extend(page.keys);
                    match page.cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                Ok(json(StatusCode::OK, &keys))
            }
            (&Method::GET, ["v1", "stores", store, "keys", key]) => {
                let value = self.store(store)?.get(key).await.map_err(failed)?;
                let Some(value) = value else {
                    return Err((
                        StatusCode::NOT_FOUND,
                        format!("no key `{key}` in store `{store}`"),
                    ));
                };
                let shown = match String::from_utf8(value) {
                    Ok(text) => serde_json::json!({ "key": key, "value": text }),
                    Err(e) => {
                        serde_json::json!({ "key": key, "value_base64": BASE64.encode(e.into_bytes()) })
                    }
                };
                Ok(json(StatusCode::OK, &shown))
            }
            (&Method::PUT, ["v1", "stores", store, "keys", key]) => {
                let key = key.to_string();
                let store = self.store(store)?.clone();
                let value = read_body(req, MAX_UPLOAD).await?;
                store
                    .set(&key, value.to_vec())
                    .await
                    .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            (&Method::DELETE, ["v1", "stores", store, "keys", key]) => {
                self.store(store)?.delete(key).await.map_err(failed)?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            _ => Err(unknown(method, segments)),
        }
    }
}
