//! `wisp jobs …`: run-to-completion jobs through the admin API.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Map, Value, json};

use crate::cli::client::{self, Target};
use crate::cli::{AdminArgs, print_json};

/// How often `--wait` and `--follow` ask again.
const POLL: Duration = Duration::from_millis(500);

#[derive(Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: JobsCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Every declared job.
    List,
    /// Start an execution; prints its id.
    Run {
        job: String,
        /// Tasks of this execution [default: the job's `tasks`].
        #[arg(long)]
        tasks: Option<u32>,
        /// Environment variable KEY=VALUE for every task; repeatable.
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Follow the execution; exit 0 when it succeeded, 1 when not.
        #[arg(long)]
        wait: bool,
    },
    /// A job's executions, newest first.
    Executions { job: String },
    /// An execution and each task's state, attempts, exit and duration.
    Describe { execution: String },
    /// What an execution's tasks printed, tagged with task and attempt.
    Logs {
        execution: String,
        #[arg(long)]
        task: Option<u32>,
        /// Keep printing until the execution ends.
        #[arg(long)]
        follow: bool,
    },
    /// Stop an execution: no new tasks start, running ones are stopped.
    Cancel { execution: String },
}

async fn describe(admin: &Target, execution: &str) -> Result<Value> {
    client::call(
        admin,
        Method::GET,
        &format!("/v1/executions/{execution}"),
        Vec::new(),
    )
    .await
}

/// Prints the log lines after `after`; returns the last id printed.
async fn print_logs(
    admin: &Target,
    execution: &str,
    task: Option<u32>,
    mut after: i64,
) -> Result<i64> {
    loop {
        let task = task.map(|t| format!("&task={t}")).unwrap_or_default();
        let lines = client::call(
            admin,
            Method::GET,
            &format!("/v1/executions/{execution}/logs?after={after}{task}"),
            Vec::new(),
        )
        .await?;
        let lines = lines.as_array().cloned().unwrap_or_default();
        for line in &lines {
            println!(
                "[task {} attempt {} {}] {}",
                line["task"],
                line["attempt"],
                line["stream"].as_str().unwrap_or(""),
                line["line"].as_str().unwrap_or("")
            );
            after = line["id"].as_i64().unwrap_or(after);
        }
        if lines.is_empty() {
            return Ok(after);
        }
    }
}

/// Polls until the execution is no longer running; returns its state.
async fn wait(admin: &Target, execution: &str, follow_logs: Option<Option<u32>>) -> Result<String> {
    let mut after = 0;
    loop {
        if let Some(task) = follow_logs {
            after = print_logs(admin, execution, task, after).await?;
        }
        let state = describe(admin, execution).await?["state"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if state != "running" {
            if let Some(task) = follow_logs {
                print_logs(admin, execution, task, after).await?;
            }
            return Ok(state);
        }
        tokio::time::sleep(POLL).await;
    }
}

pub async fn jobs(args: JobsArgs) -> Result<()> {
    let admin = Target::new(args.admin)?;
    match args.command {
        JobsCommand::List => {
            print_json(&client::call(&admin, Method::GET, "/v1/jobs", Vec::new()).await?)?
        }
        JobsCommand::Run {
            job,
            tasks,
            env,
            wait: waiting,
        } => {
            let mut vars = Map::new();
            for pair in env {
                let (k, v) = pair
                    .split_once('=')
                    .with_context(|| format!("--env `{pair}`: write it as KEY=VALUE"))?;
                vars.insert(k.to_string(), json!(v));
            }
            let body = json!({ "tasks": tasks, "env": vars });
            let answer = client::call(
                &admin,
                Method::POST,
                &format!("/v1/jobs/{job}/executions"),
                serde_json::to_vec(&body)?,
            )
            .await?;
            let id = answer["execution"].as_str().unwrap_or_default().to_string();
            println!("{id}");
            if waiting {
                let state = wait(&admin, &id, None).await?;
                println!("{id} {state}");
                if state != "succeeded" {
                    bail!(
                        "execution {id} {state}; see `wisp jobs describe {id}` and `wisp jobs logs {id}`"
                    );
                }
            }
        }
        JobsCommand::Executions { job } => {
            let list = client::call(
                &admin,
                Method::GET,
                &format!("/v1/jobs/{job}/executions"),
                Vec::new(),
            )
            .await?;
            println!(
                "{:<28} {:<10} {:>6}  {:<25} FINISHED",
                "EXECUTION", "STATE", "TASKS", "CREATED"
            );
            for e in list.as_array().into_iter().flatten() {
                println!(
                    "{:<28} {:<10} {:>6}  {:<25} {}",
                    e["id"].as_str().unwrap_or(""),
                    e["state"].as_str().unwrap_or(""),
                    e["tasks"],
                    e["created"].as_str().unwrap_or(""),
                    e["finished"].as_str().unwrap_or("-")
                );
            }
        }
        JobsCommand::Describe { execution } => {
            let d = describe(&admin, &execution).await?;
            println!(
                "{} ({}): {}",
                d["id"].as_str().unwrap_or(""),
                d["job"].as_str().unwrap_or(""),
                d["state"].as_str().unwrap_or("")
            );
            println!(
                "{:>6} {:<10} {:>8} {:>10}  LAST EXIT",
                "TASK", "STATE", "ATTEMPTS", "DURATION"
            );
            for t in d["task_states"].as_array().into_iter().flatten() {
                println!(
                    "{:>6} {:<10} {:>8} {:>10}  {}",
                    t["index"],
                    t["state"].as_str().unwrap_or(""),
                    t["attempts"],
                    t["duration_ms"]
                        .as_u64()
                        .map_or("-".into(), |ms| format!("{ms}ms")),
                    t["exit"].as_str().unwrap_or("-")
                );
            }
        }
        JobsCommand::Logs {
            execution,
            task,
            follow,
        } => {
            if follow {
                wait(&admin, &execution, Some(task)).await?;
            } else {
                print_logs(&admin, &execution, task, 0).await?;
            }
        }
        JobsCommand::Cancel { execution } => {
            client::call(
                &admin,
                Method::POST,
                &format!("/v1/executions/{execution}/cancel"),
                Vec::new(),
            )
            .await?;
            println!("cancelled {execution}");
        }
    }
    Ok(())
}
