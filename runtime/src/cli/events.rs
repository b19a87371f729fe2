//! `wisp publish` and `wisp topics …`: events through the admin API.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Map, Value, json};

use crate::cli::client::{self, Target};
use crate::cli::{AdminArgs, print_json};

#[derive(Args)]
pub struct PublishArgs {
    /// The topic to publish to.
    pub topic: String,
    /// The event's `type`, e.g. com.example.order.created.
    #[arg(long = "type")]
    pub event_type: String,
    /// The event's `source`, e.g. /shop.
    #[arg(long)]
    pub source: String,
    /// The event's `subject`.
    #[arg(long)]
    pub subject: Option<String>,
    /// The event's `id` [default: assigned by Wisp].
    #[arg(long)]
    pub id: Option<String>,
    /// Data, as text (JSON when --content-type is JSON).
    #[arg(long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// Data read from a file (any bytes).
    #[arg(long)]
    pub data_file: Option<PathBuf>,
    /// The data's media type (`datacontenttype`).
    #[arg(long, default_value = "application/json")]
    pub content_type: String,
    /// Extension attribute NAME=VALUE, e.g. partitionkey=customer-7; repeatable.
    #[arg(long = "ext", value_name = "NAME=VALUE")]
    pub extensions: Vec<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    pub command: TopicsCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Each topic and subscription: published, delivered, acked, retried,
    /// dead-lettered, backlog, oldest unacknowledged age.
    List,
    /// The events kept in a dead-letter topic, with why each failed.
    DeadLetters {
        topic: String,
        /// Events shown at most.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Publish a dead-letter topic's events again to the topics they came
    /// from, and take them out of it.
    Replay { topic: String },
}

/// The structured-mode event `args` describe.
fn structured(args: &PublishArgs) -> Result<Value> {
    let mut event = Map::new();
    event.insert("specversion".into(), json!("1.0"));
    event.insert("type".into(), json!(args.event_type));
    event.insert("source".into(), json!(args.source));
    event.insert("datacontenttype".into(), json!(args.content_type));
    if let Some(id) = &args.id {
        event.insert("id".into(), json!(id));
    }
    if let Some(subject) = &args.subject {
        event.insert("subject".into(), json!(subject));
    }
    for pair in &args.extensions {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--ext `{pair}`: write it as NAME=VALUE"))?;
        event.insert(name.to_string(), json!(value));
    }
    let json_type = {
        let t = args.content_type.to_ascii_lowercase();
        t.starts_with("application/json") || t.contains("+json")
    };
    if let Some(data) = &args.data {
        let value = match serde_json::from_str::<Value>(data) {
            Ok(value) if json_type => value,
            _ => Value::String(data.clone()),
        };
        event.insert("data".into(), value);
    } else if let Some(file) = &args.data_file {
        let bytes =
            std::fs::read(file).with_context(|| format!("--data-file `{}`", file.display()))?;
        let value = match std::str::from_utf8(&bytes) {
            Ok(text) if json_type => serde_json::from_str(text).with_context(|| {
                format!(
                    "--data-file `{}` is not JSON; pass --content-type",
                    file.display()
                )
            })?,
            Ok(text) => Value::String(text.to_string()),
            Err(_) => {
                use base64::Engine;
                event.insert(
                    "data_base64".into(),
                    json!(base64::engine::general_purpose::STANDARD.encode(&bytes)),
                );
                return Ok(Value::Object(event));
            }
        };
        event.insert("data".into(), value);
    }
    Ok(Value::Object(event))
}

pub async fn publish(args: PublishArgs) -> Result<()> {
    let event = structured(&args)?;
    let admin = Target::new(args.admin)?;
    let answer = client::send(
        &admin,
        Method::POST,
        &format!("/v1/topics/{}/events", args.topic),
        "application/cloudevents+json",
        serde_json::to_vec(&event)?,
    )
    .await?;
    println!("{}", answer["id"].as_str().unwrap_or_default());
    Ok(())
}

pub async fn topics(args: TopicsArgs) -> Result<()> {
    let admin = Target::new(args.admin)?;
    match args.command {
        TopicsCommand::List => {
            let topics = client::call(&admin, Method::GET, "/v1/topics", Vec::new()).await?;
            println!(
                "{:<20} {:<20} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}  OLDEST",
                "TOPIC",
                "SUBSCRIPTION",
                "PUBLISHED",
                "DELIVERED",
                "ACKED",
                "RETRIED",
                "DEAD",
                "DROPPED",
                "BACKLOG"
            );
            for topic in topics.as_array().into_iter().flatten() {
                let name = topic["name"].as_str().unwrap_or("");
                let subs = topic["subscriptions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if subs.is_empty() {
                    println!("{name:<20} {:<20} {:>9}", "-", topic["published"]);
                }
                for s in subs {
                    let oldest = s["oldest_unacked_age_ms"]
                        .as_u64()
                        .map(|ms| {
                            humantime::format_duration(std::time::Duration::from_millis(
                                ms / 1000 * 1000,
                            ))
                            .to_string()
                        })
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{name:<20} {:<20} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}  {oldest}",
                        s["function"].as_str().unwrap_or(""),
                        topic["published"],
                        s["delivered"],
                        s["acked"],
                        s["retried"],
                        s["dead_lettered"],
                        s["dropped"],
                        s["backlog"],
                    );
                }
            }
        }
        TopicsCommand::DeadLetters { topic, limit } => print_json(
            &client::call(
                &admin,
                Method::GET,
                &format!("/v1/topics/{topic}/events?limit={limit}"),
                Vec::new(),
            )
            .await?,
        )?,
        TopicsCommand::Replay { topic } => {
            let answer = client::call(
                &admin,
                Method::POST,
                &format!("/v1/topics/{topic}/replay"),
                Vec::new(),
            )
            .await?;
            println!("replayed {} events from {topic}", answer["replayed"]);
        }
    }
    Ok(())
}
