//! The admin API's blob stores, for operators (`wisp blobs`): list objects,
//! read, write and delete them as raw bytes. Guests reach the same stores
//! through wasi:blobstore. Object names go in the path percent-encoded
//! (`a%2Fb`) or with plain `/`s; both mean the same object.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Serialize;
use wasmtime_wasi_http::WasiBody;

use crate::http::admin::{Admin, Reply, unknown};
use crate::http::respond::{empty, json};
use crate::invoke::full;
use crate::state::blobstore::Blobs;
use crate::state::blobstore::backend::Error;

#[derive(Serialize)]
struct Listed {
    name: String,
    size: u64,
    created_at: u64,
}

fn failed(e: Error) -> (StatusCode, String) {
    (StatusCode::SERVICE_UNAVAILABLE, e.0)
}

fn decode(text: &str) -> Result<String, (StatusCode, String)> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("`{text}` is not UTF-8 once percent-decoded"),
            )
        })
}

/// The `prefix` query parameter, decoded.
fn prefix_of<B>(req: &Request<B>) -> Result<String, (StatusCode, String)> {
    let prefix = req
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("prefix="))
        .unwrap_or("");
    decode(prefix)
}

impl Admin {
    fn blob_store(&self, name: &str) -> Result<Arc<Blobs>, (StatusCode, String)> {
        self.services.blob_store(name).cloned().ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!(
                    "no blob store `{name}`; blob stores are declared with [[store]] tables \
                     with kind = \"blobstore\" in wisp.toml"
                ),
            )
        })
    }

    pub(super) async fn blobs(
        &self,
        method: &Method,
        segments: &[&str],
        req: Request<Incoming>,
    ) -> Reply {
        match (method, segments) {
            (&Method::GET, ["v1", "blobs"]) => {
                Ok(json(StatusCode::OK, &self.services.blob_store_names()))
            }
            (&Method::GET, ["v1", "blobs", store, "objects"]) => {
                let blobs = self.blob_store(store)?;
                let mut listed = Vec::new();
                for name in blobs.list(&prefix_of(&req)?).await.map_err(failed)? {
                    // Deleted since it was listed: leave it out.
                    if let Ok(info) = blobs.info(&name).await {
                        listed.push(Listed {
                            name,
                            size: info.size,
                            created_at: info.created_at,
                        });
                    }
                }
                Ok(json(StatusCode::OK, &listed))
            }
            (_, ["v1", "blobs", store, "objects", name @ ..]) if !name.is_empty() => {
                let blobs = self.blob_store(store)?;
                let name = decode(&name.join("/"))?;
                self.object(method, &blobs, &name, req).await
            }
            _ => Err(unknown(method, segments)),
        }
    }

    async fn object(
        &self,
        method: &Method,
        blobs: &Blobs,
        name: &str,
        req: Request<Incoming>,
    ) -> Reply {
        match *method {
            Method::GET => {
                if !blobs.exists(name).await.map_err(failed)? {
                    return Err((
                        StatusCode::NOT_FOUND,
                        format!("no object `{name}` in blob store `{}`", blobs.name()),
                    ));
                }
                let bytes = blobs
                    .read(name, 0, u64::MAX)
                    .await
                    .map_err(failed)?
                    .bytes()
                    .await
                    .map_err(failed)?;
                Ok(octets(bytes))
            }
            Method::PUT => {
                let mut staged = blobs.stage().map_err(failed)?;
                let mut body = req.into_body();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| {
                        (
                            StatusCode::BAD_REQUEST,
                            format!("could not read the request body: {e}"),
                        )
                    })?;
                    if let Some(data) = frame.data_ref() {
                        staged
                            .write(data)
                            .map_err(|e| (StatusCode::PAYLOAD_TOO_LARGE, e.0))?;
                    }
                }
                blobs
                    .write(name, staged)
                    .await
                    .map_err(|e| (StatusCode::BAD_REQUEST, e.0))?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            Method::DELETE => {
                blobs
                    .delete(name)
                    .await
                    .map_err(|e| (StatusCode::BAD_REQUEST, e.0))?;
                Ok(empty(StatusCode::NO_CONTENT))
            }
            _ => Err((
                StatusCode::METHOD_NOT_ALLOWED,
                format!("objects take GET, PUT and DELETE, not {method}"),
            )),
        }
    }
}

fn octets(bytes: Vec<u8>) -> Response<WasiBody> {
    let mut resp = Response::new(full(bytes.into()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp
}
