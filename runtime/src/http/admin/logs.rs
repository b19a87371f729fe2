//! `GET /v1/functions/{name}/logs`: a function's stored log records, as one
//! JSON page, or with `follow=true` as a stream of JSON lines (NDJSON) that
//! goes on with every new record until the client goes away or the server
//! stops.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use wasmtime_wasi_http::Error as HttpError;

use crate::http::admin::{Admin, Reply, refusal};
use crate::http::respond::json;
use crate::logs::{LogStore, Page, Query};

/// Pages of lines a follow may have on their way to a slow client.
const FOLLOW_BUFFER: usize = 16;

/// Whether the query string asks to follow.
fn follow(query: Option<&str>) -> Result<bool, (StatusCode, String)> {
    let value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("follow="));
    match value {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err((
            StatusCode::BAD_REQUEST,
            format!("`follow` = `{other}`: write true or false"),
        )),
    }
}

/// One JSON object per line.
fn ndjson(page: &Page) -> Bytes {
    let mut out = Vec::new();
    for line in &page.lines {
        if serde_json::to_writer(&mut out, line).is_ok() {
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}

impl Admin {
    pub(super) async fn logs(&self, name: &str, req: &Request<Incoming>) -> Reply {
        self.registry.info(name).map_err(refusal)?;
        let query = req.uri().query();
        let mut q = Query::parse(query).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        let store = self.logs.clone();
        let failed = |e: anyhow::Error| (StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}"));
        if !follow(query)? {
            let page = store.query(name, &q).await.map_err(failed)?;
            return Ok(json(StatusCode::OK, &page));
        }
        // The first page now, so a bad store fails the request, not the
        // stream.
        let mut newest = store.subscribe();
        newest.borrow_and_update();
        let page = store.query(name, &q).await.map_err(failed)?;
        q.after = Some(page.next);
        let (tx, rx) = mpsc::channel(FOLLOW_BUFFER);
        let _ = tx.try_send(ndjson(&page));
        tokio::spawn(follow_on(store, name.to_string(), q, newest, tx));
        let frames = futures::stream::unfold(rx, |mut rx| async move {
            let bytes = rx.recv().await?;
            Some((Ok::<_, HttpError>(Frame::data(bytes)), rx))
        });
        let body = StreamBody::new(frames);
        let mut resp = Response::new(body.boxed_unsync());
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        Ok(resp)
    }
}

/// Sends each new page of `q` to `tx` as records are written, until the
/// client or the server goes.
async fn follow_on(
    store: LogStore,
    function: String,
    mut q: Query,
    mut newest: tokio::sync::watch::Receiver<i64>,
    tx: mpsc::Sender<Bytes>,
) {
    loop {
        tokio::select! {
            changed = newest.changed() => if changed.is_err() { return },
            _ = tx.closed() => return,
            _ = store.stopping() => return,
        }
        newest.borrow_and_update();
        loop {
            let page = match store.query(&function, &q).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!("a follow of {function}'s logs ended: {e:#}");
                    return;
                }
            };
            let full = page.lines.len() >= q.limit;
            q.after = Some(page.next);
            if !page.lines.is_empty() && tx.send(ndjson(&page)).await.is_err() {
                return;
            }
            if !full {
                break;
            }
        }
    }
}
