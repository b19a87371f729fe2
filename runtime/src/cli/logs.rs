//! `wisp logs FUNCTION`: a function's stored guest output and access
//! records through the admin API, printed for people or as JSON lines.

use anyhow::{Context, Result};
use clap::Args;
use http::Method;
use http_body_util::BodyExt;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::cli::AdminArgs;
use crate::cli::client::{self, Target};

#[derive(Args)]
pub struct LogsArgs {
    /// The function whose log to read.
    pub function: String,
    /// Only this invocation's lines (its id is in the x-wisp-invocation-id
    /// response header and in every log line).
    #[arg(long)]
    pub invocation: Option<String>,
    /// Only lines since a duration ago (`10m`, `2h`) or a time
    /// (`2026-01-02T15:04:05Z`).
    #[arg(long)]
    pub since: Option<String>,
    /// Only the invocations that answered this status class (`5xx`) or code
    /// (`404`), each with all its lines.
    #[arg(long)]
    pub status: Option<String>,
    /// The newest this many lines [default: 1000, at most 10000].
    #[arg(long)]
    pub limit: Option<usize>,
    /// Then keep printing new lines until interrupted.
    #[arg(long, short)]
    pub follow: bool,
    /// One JSON object per line, with every field.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `time invocation stream line`, and an access record's duration.
fn print(line: &Value, json: bool) {
    if json {
        println!("{line}");
        return;
    }
    let field = |name| line[name].as_str().unwrap_or("-");
    let duration =
        line["duration_ms"]
            .as_f64()
            .map_or(String::new(), |ms| match line["cpu_ms"].as_f64() {
                Some(cpu) => format!(
                    " ({ms} ms, cpu {cpu} ms, {} GB-s)",
                    line["gb_s"].as_f64().unwrap_or(0.0)
                ),
                None => format!(" ({ms} ms)"),
            });
    println!(
        "{} {} {:<6} {}{duration}",
        field("time"),
        field("invocation"),
        field("stream"),
        field("line")
    );
}

pub async fn logs(args: LogsArgs) -> Result<()> {
    let admin = Target::new(args.admin)?;
    let mut query = Vec::new();
    for (key, value) in [
        ("invocation", args.invocation),
        ("since", args.since),
        ("status", args.status),
        ("limit", args.limit.map(|n| n.to_string())),
    ] {
        if let Some(value) = value {
            query.push(format!(
                "{key}={}",
                utf8_percent_encode(&value, NON_ALPHANUMERIC)
            ));
        }
    }
    if args.follow {
        query.push("follow=true".into());
    }
    let path = format!(
        "/v1/functions/{}/logs?{}",
        utf8_percent_encode(&args.function, NON_ALPHANUMERIC),
        query.join("&")
    );
    if !args.follow {
        let page = client::call(&admin, Method::GET, &path, Vec::new()).await?;
        for line in page["lines"].as_array().into_iter().flatten() {
            print(line, args.json);
        }
        return Ok(());
    }
    // Follow: JSON lines, as long as the server sends them.
    let mut body = client::stream(&admin, &path).await?;
    let mut buffer = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("the admin API ended the follow")?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line: Value = serde_json::from_slice(&line)
                .context("the admin API sent a log line that is not JSON")?;
            print(&line, args.json);
        }
    }
    Ok(())
}
