//! Command functions over HTTP, as CGI/1.1 (and WAGI) run them: each
//! request runs the command once, with the request in CGI variables and the
//! body on stdin; stdout is the response — CGI headers (`Status:` among
//! them), a blank line, then the body, streamed as it is written.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, request::Parts};
use http_body_util::{BodyExt, StreamBody};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::time::Instant;
use tokio_util::io::ReaderStream;
use tracing::Instrument;
use wasmtime::Engine;
use wasmtime_wasi::cli::AsyncStdoutStream;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use crate::invoke::admission::Admission;
use crate::invoke::instances::next_instance_id;
use crate::invoke::{Failure, Invocation, LiveRevision, Running};
use crate::sandbox::command::{self, Exit, STDOUT_BUDGET, Stdio};
use crate::sandbox::host::{Host, HostConfig};
use crate::sandbox::tag::InstanceTag;
use crate::telemetry::traces;

/// CGI response headers read at most before the body.
const MAX_HEADERS: usize = 64 << 10;

/// A command function's way of running.
pub struct Cgi {
    pub engine: Engine,
    pub pre: CommandPre<Host>,
    pub host: HostConfig,
    /// At most `max_instances` commands at once, with the usual queue.
    pub admission: Admission,
    /// Runs start from a pre-initialized snapshot.
    pub snapshotted: bool,
}

/// The CGI/1.1 variables of a request (RFC 3875, section 4.1).
fn variables(parts: &Parts, route: &str, content_length: usize) -> Vec<(String, String)> {
    let path = parts.uri.path();
    let script = if route == "/" { "" } else { route };
    let path_info = path.strip_prefix(script).unwrap_or(path);
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let (server_name, server_port) = match host.and_then(|h| h.rsplit_once(':')) {
        Some((name, port)) => (name.to_string(), port.to_string()),
        None => (host.unwrap_or("localhost").to_string(), "80".to_string()),
    };
    let mut vars = vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        ("SERVER_PROTOCOL", format!("{:?}", parts.version)),
        (
            "SERVER_SOFTWARE",
            format!("wisp/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("SERVER_NAME", server_name),
        ("SERVER_PORT", server_port),
        ("REQUEST_METHOD", parts.method.to_string()),
        ("SCRIPT_NAME", script.to_string()),
        ("PATH_INFO", path_info.to_string()),
        ("QUERY_STRING", parts.uri.query().unwrap_or("").to_string()),
        ("CONTENT_LENGTH", content_length.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect::<Vec<_>>();
    for (name, value) in &parts.headers {
        let Ok(value) = value.to_str() else { continue };
        if name == http::header::CONTENT_TYPE {
            vars.push(("CONTENT_TYPE".into(), value.to_string()));
        } else if name != http::header::CONTENT_LENGTH {
            let name = name.as_str().to_ascii_uppercase().replace('-', "_");
            vars.push((format!("HTTP_{name}"), value.to_string()));
        }
    }
    vars
}

/// Reads the CGI header block; `None` when stdout ended before it did.
async fn read_head<R: AsyncRead + Unpin>(
    out: &mut BufReader<R>,
) -> Result<Option<(StatusCode, HeaderMap)>, String> {
    let mut headers = HeaderMap::new();
    let mut status = None;
    let mut read = 0;
    loop {
        let mut line = String::new();
        let n = out.read_line(&mut line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(None);
        }
        read += n;
        if read > MAX_HEADERS {
            return Err(format!("more than {MAX_HEADERS} bytes of CGI headers"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("`{line}` is not a CGI header line (`Name: value`)"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("");
            status = Some(
                code.parse::<u16>()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or_else(|| format!("`Status: {value}` is not an HTTP status"))?,
            );
            continue;
        }
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|e| format!("header `{name}`: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("header `{name}`: {e}"))?;
        headers.append(name, value);
    }
    // RFC 3875 6.2.3: a Location without a Status is a redirect.
    let status = status.unwrap_or(if headers.contains_key(http::header::LOCATION) {
        StatusCode::FOUND
    } else {
        StatusCode::OK
    });
    Ok(Some((status, headers)))
}

/// Stops the command when the response body is dropped unread.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves `request` by running the command once.
pub async fn serve(
    live: &LiveRevision,
    cgi: &Cgi,
    invocation: &Arc<Invocation>,
    request: Request<WasiBody>,
    arrived: Instant,
) -> Result<(Response<WasiBody>, Running), Failure> {
    let place = cgi
        .admission
        .admit(arrived + cgi.admission.queue_timeout())
        .instrument(traces::admission_span())
        .await
        .map_err(Failure::AtCapacity)?;
    invocation.hold(place);
    let (parts, body) = request.into_parts();
    let stdin = body
        .collect()
        .await
        .map_err(|e| Failure::BadBody(e.to_string()))?
        .to_bytes();
    let (writer, reader) = tokio::io::duplex(STDOUT_BUDGET);
    let stdio = Stdio {
        args: live.spec.args.clone(),
        env: variables(&parts, live.spec.delivery_path(), stdin.len()),
        stdin,
        stdout: Some(AsyncStdoutStream::new(STDOUT_BUDGET, writer)),
        stderr: None,
    };
    let tag = InstanceTag::new(cgi.host.function.clone(), next_instance_id(), false);
    tag.set_invocation(invocation.id);
    invocation.started_on(&tag);
    if let Some(cx) = invocation.trace() {
        tag.set_trace(cx.clone());
    }
    let host = Host::command(&cgi.host, tag, live.metrics.clone(), stdio)
        .map_err(|e| Failure::StartFailed(format!("{e:#}")))?;
    live.metrics.instance_created(cgi.snapshotted);
    live.metrics.instance_first_use();
    let (engine, pre, metrics, timeout) = (
        cgi.engine.clone(),
        cgi.pre.clone(),
        live.metrics.clone(),
        live.spec.timeout.0,
    );
    let run = tokio::spawn(async move {
        let exit = command::run(&engine, &pre, host, timeout).await;
        metrics.instance_dropped();
        exit
    });
    let abort = AbortOnDrop(run.abort_handle());
    let mut out = BufReader::new(reader);
    let head = read_head(&mut out).await;
    let (status, headers) = match head {
        Ok(Some(head)) => head,
        Ok(None) | Err(_) => {
            let exit = run
                .await
                .unwrap_or(Exit::Failed("the command was stopped".into()));
            let why = match (head, exit) {
                (_, Exit::TimedOut) => return Err(Failure::TimedOut(live.spec.timeout)),
                (Err(e), _) => format!("bad CGI output: {e}"),
                (_, Exit::Code(0)) => "it printed no CGI headers".to_string(),
                (_, exit) => format!("{exit} before any CGI headers"),
            };
            return Err(Failure::CommandFailed(why));
        }
    };
    let stream = ReaderStream::new(out)
        .map_ok(http_body::Frame::data)
        .map_err(|e| HttpError::InternalError(Some(format!("reading the command's output: {e}"))));
    let body = StreamBody::new(stream)
        .map_frame(move |frame: http_body::Frame<Bytes>| {
            // The run lives as long as its response body.
            let _run = &abort;
            frame
        })
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    let running = Running {
        invocation: invocation.clone(),
        _place: None,
        finished: false,
    };
    Ok((response, running))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heads_give_status_headers_and_redirects() {
        let mut out =
            BufReader::new(&b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nbody"[..]);
        let (status, headers) = read_head(&mut out).await.unwrap().unwrap();
        assert_eq!(
            (status, &headers["content-type"]),
            (
                StatusCode::NOT_FOUND,
                &HeaderValue::from_static("text/plain")
            )
        );
        let mut out = BufReader::new(&b"Location: /elsewhere\n\n"[..]);
        assert_eq!(
            read_head(&mut out).await.unwrap().unwrap().0,
            StatusCode::FOUND
        );
        let mut out = BufReader::new(&b"no colon here\n\n"[..]);
        assert!(
            read_head(&mut out)
                .await
                .unwrap_err()
                .contains("not a CGI header")
        );
        let mut out = BufReader::new(&b"Content-Type: text/plain\n"[..]);
        assert!(read_head(&mut out).await.unwrap().is_none());
    }

    #[test]
    fn variables_follow_rfc_3875() {
        let (parts, _) = Request::builder()
            .method("POST")
            .uri("/app/items/7?x=1")
            .header("host", "example.com:8080")
            .header("content-type", "application/json")
            .header("x-trace", "abc")
            .body(())
            .unwrap()
            .into_parts();
        let vars: std::collections::HashMap<String, String> =
            variables(&parts, "/app", 5).into_iter().collect();
        assert_eq!(vars["SCRIPT_NAME"], "/app");
        assert_eq!(vars["PATH_INFO"], "/items/7");
        assert_eq!(vars["QUERY_STRING"], "x=1");
        assert_eq!(vars["CONTENT_LENGTH"], "5");
        assert_eq!(vars["CONTENT_TYPE"], "application/json");
        assert_eq!(vars["HTTP_X_TRACE"], "abc");
        assert_eq!(
            (vars["SERVER_NAME"].as_str(), vars["SERVER_PORT"].as_str()),
            ("example.com", "8080")
        );
    }
}
