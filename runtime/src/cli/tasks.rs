//! `wisp tasks …`, `wisp queues …` and `wisp schedules …`: task queues and
//! schedules through the admin API.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Map, Value, json};

use crate::cli::client::{self, Target};
use crate::cli::{AdminArgs, print_json};
use crate::config::Span;

#[derive(Args)]
pub struct TasksArgs {
    #[command(subcommand)]
    pub command: TasksCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Add a task (an HTTP request for the queue's function); prints its name.
    Add(AddArgs),
    /// A queue's tasks: pending, scheduled, in flight, failed (with the last status).
    List {
        queue: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Delete a task.
    Delete { queue: String, name: String },
}

#[derive(Args)]
pub struct AddArgs {
    queue: String,
    /// Name it, so adding it again within an hour is refused (409).
    #[arg(long)]
    name: Option<String>,
    /// Request path [default: the function's route].
    #[arg(long)]
    path: Option<String>,
    #[arg(long, default_value = "POST")]
    method: String,
    /// Header NAME:VALUE; repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// Request body, as text.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Request body read from a file (any bytes).
    #[arg(long)]
    body_file: Option<PathBuf>,
    /// Deliver not before this RFC 3339 time.
    #[arg(long, conflicts_with = "delay")]
    at: Option<String>,
    /// Deliver not before this long from now, e.g. 10m.
    #[arg(long)]
    delay: Option<Span>,
}

#[derive(Args)]
pub struct QueuesArgs {
    #[command(subcommand)]
    pub command: QueuesCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand)]
pub enum QueuesCommand {
    /// Every queue with its counters and backlog.
    List,
    /// Stop dispatching (tasks are still accepted).
    Pause {
        queue: String,
    },
    Resume {
        queue: String,
    },
    /// Delete every task of the queue.
    Purge {
        queue: String,
    },
}

#[derive(Args)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    pub command: SchedulesCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule: next firing in its zone and UTC, last result.
    List,
    /// Fire now.
    Run {
        name: String,
    },
    Pause {
        name: String,
    },
    /// Resume; firings missed while paused do not run.
    Resume {
        name: String,
    },
}

fn task_body(args: AddArgs) -> Result<(String, Value)> {
    let AddArgs {
        queue,
        name,
        path,
        method,
        headers,
        body,
        body_file,
        at,
        delay,
    } = args;
    let mut task = Map::new();
    task.insert("method".into(), json!(method));
    if let Some(name) = name {
        task.insert("name".into(), json!(name));
    }
    if let Some(path) = path {
        task.insert("path".into(), json!(path));
    }
    let mut header_map = Map::new();
    for pair in headers {
        let (k, v) = pair
            .split_once(':')
            .with_context(|| format!("--header `{pair}`: write it as NAME:VALUE"))?;
        header_map.insert(k.trim().to_string(), json!(v.trim()));
    }
    task.insert("headers".into(), Value::Object(header_map));
    if let Some(body) = body {
        task.insert("body".into(), json!(body));
    } else if let Some(file) = body_file {
        use base64::Engine;
        let bytes =
            std::fs::read(&file).with_context(|| format!("--body-file `{}`", file.display()))?;
        task.insert(
            "body_base64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
    }
    let when = match (at, delay) {
        (Some(at), _) => Some(at),
        (None, Some(delay)) => Some(
            (chrono::Utc::now() + chrono::Duration::from_std(delay.0)?)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
        (None, None) => None,
    };
    if let Some(when) = when {
        task.insert("schedule_time".into(), json!(when));
    }
    Ok((queue, Value::Object(task)))
}

pub async fn tasks(args: TasksArgs) -> Result<()> {
    let admin = Target::new(args.admin)?;
    match args.command {
        TasksCommand::Add(add) => {
            let (queue, task) = task_body(add)?;
            let answer = client::call(
                &admin,
                Method::POST,
                &format!("/v1/queues/{queue}/tasks"),
                serde_json::to_vec(&task)?,
            )
            .await?;
            println!("{}", answer["name"].as_str().unwrap_or_default());
        }
        TasksCommand::List { queue, limit } => {
            let tasks = client::call(
                &admin,
                Method::GET,
                &format!("/v1/queues/{queue}/tasks?limit={limit}"),
                Vec::new(),
            )
            .await?;
            println!(
                "{:<32} {:<10} {:<25} {:>8} {:>6}  LAST ERROR",
                "NAME", "STATE", "SCHEDULE TIME", "ATTEMPTS", "STATUS"
            );
            for t in tasks.as_array().into_iter().flatten() {
                println!(
                    "{:<32} {:<10} {:<25} {:>8} {:>6}  {}",
                    t["name"].as_str().unwrap_or(""),
                    t["state"].as_str().unwrap_or(""),
                    t["schedule_time"].as_str().unwrap_or(""),
                    t["attempts"],
                    t["last_status"]
                        .as_u64()
                        .map_or("-".into(), |s| s.to_string()),
                    t["last_error"].as_str().unwrap_or("")
                );
            }
        }
        TasksCommand::Delete { queue, name } => {
            client::call(
                &admin,
                Method::DELETE,
                &format!("/v1/queues/{queue}/tasks/{name}"),
                Vec::new(),
            )
            .await?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

pub async fn queues(args: QueuesArgs) -> Result<()> {
    let admin = Target::new(args.admin)?;
    let (path, done) = match args.command {
        QueuesCommand::List => {
            return print_json(&client::call(&admin, Method::GET, "/v1/queues", Vec::new()).await?);
        }
        QueuesCommand::Pause { queue } => (
            format!("/v1/queues/{queue}/pause"),
            format!("paused {queue}"),
        ),
        QueuesCommand::Resume { queue } => (
            format!("/v1/queues/{queue}/resume"),
            format!("resumed {queue}"),
        ),
        QueuesCommand::Purge { queue } => (
            format!("/v1/queues/{queue}/purge"),
            format!("purged {queue}"),
        ),
    };
    client::call(&admin, Method::POST, &path, Vec::new()).await?;
    println!("{done}");
    Ok(())
}

pub async fn schedules(args: SchedulesArgs) -> Result<()> {
    let admin = Target::new(args.admin)?;
    let (path, done) = match args.command {
        SchedulesCommand::List => {
            let list = client::call(&admin, Method::GET, "/v1/schedules", Vec::new()).await?;
            println!(
                "{:<20} {:<16} {:<18} {:<7} {:<27} {:<27} LAST",
                "NAME", "CRON", "TIME ZONE", "PAUSED", "NEXT (ZONE)", "NEXT (UTC)"
            );
            for s in list.as_array().into_iter().flatten() {
                let last = match (s["last_run"].as_str(), s["last_status"].as_u64()) {
                    (Some(at), Some(status)) => format!("{status} at {at}"),
                    _ => "-".into(),
                };
                println!(
                    "{:<20} {:<16} {:<18} {:<7} {:<27} {:<27} {last}",
                    s["name"].as_str().unwrap_or(""),
                    s["cron"].as_str().unwrap_or(""),
                    s["time_zone"].as_str().unwrap_or(""),
                    s["paused"],
                    s["next"].as_str().unwrap_or("-"),
                    s["next_utc"].as_str().unwrap_or("-"),
                );
            }
            return Ok(());
        }
        SchedulesCommand::Run { name } => {
            (format!("/v1/schedules/{name}/run"), format!("fired {name}"))
        }
        SchedulesCommand::Pause { name } => (
            format!("/v1/schedules/{name}/pause"),
            format!("paused {name}"),
        ),
        SchedulesCommand::Resume { name } => (
            format!("/v1/schedules/{name}/resume"),
            format!("resumed {name}"),
        ),
    };
    client::call(&admin, Method::POST, &path, Vec::new()).await?;
    println!("{done}");
    Ok(())
}
