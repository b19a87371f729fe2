//! The `wisp` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use clap::{Args, Parser, Subcommand};

use http::Method;
use serde_json::Value;

use crate::config::{
    ByteSize, FunctionSpec, Isolation, Manifest, OtlpEndpoint, PoolSettings, ServerSettings, Span,
    TelemetrySettings,
};
use crate::http::server;

mod blobs;
mod client;
mod events;
mod jobs;
mod kv;
mod logs;
mod tasks;

/// Wisp: serve WebAssembly HTTP functions, each request in a fresh instance.
#[derive(Parser)]
#[command(name = "wisp", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve one component at every path (like `wasmtime serve`).
    Serve(ServeArgs),
    /// Serve the functions of an app manifest (wisp.toml).
    Up(UpArgs),
    /// Upload a component and deploy it as a new revision of a function.
    Deploy(DeployArgs),
    /// Inspect and manage deployed functions through the admin API.
    Functions(FunctionsArgs),
    /// Publish a CloudEvent to a topic; prints its id.
    Publish(events::PublishArgs),
    /// Inspect topics and their subscriptions, dead letters and replays.
    Topics(events::TopicsArgs),
    /// Add, list and delete the tasks of a queue.
    Tasks(tasks::TasksArgs),
    /// List, pause, resume and purge task queues.
    Queues(tasks::QueuesArgs),
    /// List schedules; run, pause and resume one.
    Schedules(tasks::SchedulesArgs),
    /// Run jobs; list, describe, follow and cancel their executions.
    Jobs(jobs::JobsArgs),
    /// Read and write the key-value stores.
    Kv(kv::KvArgs),
    /// A function's guest output and access records: query or follow them.
    Logs(logs::LogsArgs),
    /// List, read, write and delete the objects of the blob stores.
    Blobs(blobs::BlobsArgs),
}

#[derive(Args)]
pub struct ServeArgs {
    /// The .wasm component (wasi:http proxy world) to serve.
    pub component: PathBuf,
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Also serve the admin API on this address (beyond loopback only with
    /// --admin-token-file or WISP_ADMIN_TOKEN).
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// File holding the admin API's bearer token [default: WISP_ADMIN_TOKEN,
    /// else generated into STATE_DIR/admin-token, else into a temporary file
    /// printed at start].
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// The directory under which admin deploys may preopen `dirs` [default:
    /// none; admin deploys may not use dirs].
    #[arg(long)]
    pub files_root: Option<PathBuf>,
    /// Keep admin deployments (and the generated admin token) here across
    /// restarts (none by default).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Artifact cache for compiled code and snapshots
    /// [default: $WISP_CACHE_DIR or ~/.cache/wisp/artifacts].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Revisions kept per function in the state directory, the current one
    /// always among them ([server] keep_revisions).
    #[arg(long, default_value = "10")]
    pub keep_revisions: std::num::NonZeroUsize,
    /// Disk space the artifact cache may take, least recently used entries
    /// out first ([server] cache_max_size).
    #[arg(long, default_value = "2Gi")]
    pub cache_max_size: ByteSize,
    /// Guest output and access records kept per function for `wisp logs`
    /// ([server] logs_max_bytes).
    #[arg(long, default_value = "16Mi")]
    pub logs_max_bytes: ByteSize,
    /// How long log records are kept at most ([server] logs_max_age).
    #[arg(long, default_value = "24h")]
    pub logs_max_age: Span,
    /// Function name used in logs and metrics [default: the file's stem].
    #[arg(long)]
    pub name: Option<String>,
    /// How long in-flight requests may finish after SIGINT/SIGTERM.
    #[arg(long, default_value = "30s")]
    pub shutdown_grace: Span,
    /// Component instances alive at once across the server ([server.pool] instances).
    #[arg(long)]
    pub pool_instances: Option<u32>,
    /// Export traces to this OTLP/HTTP collector, e.g. http://127.0.0.1:4318
    /// ([server.telemetry] otlp_endpoint) [default: no traces].
    #[arg(long)]
    pub otlp_endpoint: Option<OtlpEndpoint>,
    #[command(flatten)]
    pub spec: SpecArgs,
}

#[derive(Args)]
pub struct UpArgs {
    /// The app manifest.
    #[arg(short = 'f', long = "file", default_value = "wisp.toml")]
    pub file: PathBuf,
}

/// Function settings; each flag mirrors the manifest key of the same name.
#[derive(Args, Default)]
pub struct SpecArgs {
    /// Path prefix the function serves (`route`) [default: /].
    #[arg(long)]
    pub route: Option<String>,
    /// Linear-memory limit per instance, e.g. 64Mi (`memory`) [default: 128Mi].
    #[arg(long)]
    pub memory: Option<ByteSize>,
    /// Wall-clock limit per invocation, e.g. 5s (`timeout`) [default: 60s].
    #[arg(long)]
    pub timeout: Option<Span>,
    /// Instances alive at once (`max_instances`) [default: 100].
    #[arg(long)]
    pub max_instances: Option<u32>,
    /// Requests that may wait for a busy function before 429 (`max_queue`) [default: 100].
    #[arg(long)]
    pub max_queue: Option<u32>,
    /// How long a request may wait in the queue (`queue_timeout`) [default: 10s].
    #[arg(long)]
    pub queue_timeout: Option<Span>,
    /// Largest request body accepted (`max_request_body`) [default: 32Mi].
    #[arg(long)]
    pub max_request_body: Option<ByteSize>,
    /// Environment variable for the guest, KEY=VALUE; repeatable (`env`).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Origin the guest may call, e.g. http://127.0.0.1:9000; repeatable
    /// (`allowed_outbound_hosts`).
    #[arg(long = "allow-outbound", value_name = "ORIGIN")]
    pub allowed_outbound_hosts: Vec<String>,
    /// `invocation` (a fresh instance per request) or `instance` (reused)
    /// (`isolation`) [default: invocation].
    #[arg(long)]
    pub isolation: Option<Isolation>,
    /// Requests one reused instance serves at once (`concurrency`) [default: 1].
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Requests after which a reused instance is replaced (`max_requests_per_instance`).
    #[arg(long)]
    pub max_requests_per_instance: Option<u64>,
    /// Idle time after which a reused instance is dropped (`idle_timeout`) [default: 60s].
    #[arg(long)]
    pub idle_timeout: Option<Span>,
    /// Reused instances kept ready ahead of traffic (`min_instances`) [default: 0].
    #[arg(long)]
    pub min_instances: Option<u32>,
    /// Host directory the guest may read, GUEST_PATH=HOST_DIR, e.g.
    /// /static=./public; repeatable (`dirs`).
    #[arg(long = "dir", value_name = "GUEST_PATH=HOST_DIR")]
    pub dirs: Vec<String>,
    /// Run the component as it is even if it exports `wizer-initialize`
    /// (`snapshot = false`).
    #[arg(long)]
    pub no_snapshot: bool,
    /// CPU time one invocation may use, e.g. 100ms (`cpu_time`) [default:
    /// no limit beyond the timeout].
    #[arg(long)]
    pub cpu_time: Option<Span>,
    /// Share of the cores when functions compute at once, 1-100
    /// (`cpu_weight`) [default: 1].
    #[arg(long)]
    pub cpu_weight: Option<u32>,
}

impl SpecArgs {
    pub fn apply(self, spec: &mut FunctionSpec) -> Result<()> {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { spec.$field = v; } )* };
        }
        spec.route = self.route.or(spec.route.take());
        set!(
            memory,
            timeout,
            max_instances,
            max_queue,
            queue_timeout,
            max_request_body,
            isolation,
            concurrency,
            min_instances,
            cpu_weight
        );
        spec.cpu_time = self.cpu_time.or(spec.cpu_time);
        spec.max_requests_per_instance = self
            .max_requests_per_instance
            .or(spec.max_requests_per_instance);
        spec.idle_timeout = self.idle_timeout.or(spec.idle_timeout);
        for pair in self.env {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("--env `{pair}`: write it as KEY=VALUE"))?;
            spec.env.insert(k.to_string(), v.to_string());
        }
        spec.allowed_outbound_hosts
            .extend(self.allowed_outbound_hosts);
        for pair in self.dirs {
            let (guest, host) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("--dir `{pair}`: write it as GUEST_PATH=HOST_DIR"))?;
            let host = std::path::absolute(host)?;
            spec.dirs
                .insert(guest.to_string(), host.to_string_lossy().into_owned());
        }
        if self.no_snapshot {
            spec.snapshot = false;
        }
        spec.validate()
            .map(drop)
            .map_err(|(key, msg)| anyhow!("--{}: {msg}", key.replace('_', "-")))
    }
}

/// Where the admin API is and how to authenticate; the token is taken from
/// the first of --admin-token, --admin-token-file, WISP_ADMIN_TOKEN and
/// STATE_DIR/admin-token.
#[derive(Args)]
pub struct AdminArgs {
    /// Admin API base URL.
    #[arg(
        long,
        env = "WISP_ADMIN",
        default_value = "http://127.0.0.1:3001",
        global = true
    )]
    pub admin: String,
    /// The admin API's bearer token (visible to other local users in the
    /// process list; prefer the file or WISP_ADMIN_TOKEN).
    #[arg(long, global = true)]
    pub admin_token: Option<String>,
    /// File holding the admin API's bearer token.
    #[arg(long, global = true)]
    pub admin_token_file: Option<PathBuf>,
    /// The server's state directory, whose admin-token is used when no other
    /// token is given (`wisp up` keeps it in .wisp beside wisp.toml).
    #[arg(long, global = true, default_value = ".wisp")]
    pub state_dir: PathBuf,
}

#[derive(Args)]
pub struct DeployArgs {
    /// Function name.
    pub name: String,
    /// The .wasm component to deploy.
    pub component: PathBuf,
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Args)]
pub struct FunctionsArgs {
    #[command(subcommand)]
    pub command: FunctionsCommand,
    #[command(flatten)]
    pub admin: AdminArgs,
}

#[derive(Subcommand)]
pub enum FunctionsCommand {
    /// List functions with their current revision and route.
    List,
    /// Show one function's settings and counters.
    Get { name: String },
    /// List a function's revisions.
    Revisions { name: String },
    /// Make an earlier revision current again.
    Rollback {
        name: String,
        /// Revision to go back to [default: the one before the current].
        #[arg(long)]
        to: Option<u64>,
    },
    /// Delete a function and its route.
    Delete { name: String },
}

fn stem_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("function");
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "function".into()
    } else {
        name
    }
}

impl Cli {
    pub async fn run(self) -> Result<()> {
        match self.command {
            Command::Serve(args) => {
                let name = args.name.unwrap_or_else(|| stem_name(&args.component));
                let mut spec = FunctionSpec::new(name, args.component.to_string_lossy());
                args.spec.apply(&mut spec)?;
                let mut pool = PoolSettings::default();
                if let Some(n) = args.pool_instances {
                    pool.instances = n;
                }
                let settings = ServerSettings {
                    listen: args.listen,
                    admin: args.admin,
                    admin_token_file: args.admin_token_file,
                    files_root: args.files_root,
                    state_dir: args.state_dir,
                    cache_dir: args.cache_dir,
                    keep_revisions: args.keep_revisions,
                    cache_max_size: args.cache_max_size,
                    logs_max_bytes: args.logs_max_bytes,
                    logs_max_age: args.logs_max_age,
                    shutdown_grace: args.shutdown_grace,
                    pool,
                    telemetry: TelemetrySettings {
                        otlp_endpoint: args.otlp_endpoint,
                    },
                    ..ServerSettings::default()
                };
                server::run(Manifest::of_functions(settings, vec![spec])).await
            }
            Command::Up(args) => server::run(Manifest::load(&args.file)?).await,
            Command::Deploy(args) => {
                let mut spec = FunctionSpec::new(args.name, args.component.to_string_lossy());
                args.spec.apply(&mut spec)?;
                client::deploy(&client::Target::new(args.admin)?, spec).await
            }
            Command::Functions(args) => {
                functions(&client::Target::new(args.admin)?, args.command).await
            }
            Command::Publish(args) => events::publish(args).await,
            Command::Topics(args) => events::topics(args).await,
            Command::Tasks(args) => tasks::tasks(args).await,
            Command::Queues(args) => tasks::queues(args).await,
            Command::Schedules(args) => tasks::schedules(args).await,
            Command::Jobs(args) => jobs::jobs(args).await,
            Command::Kv(args) => kv::kv(args).await,
            Command::Logs(args) => logs::logs(args).await,
            Command::Blobs(args) => blobs::blobs(args).await,
        }
    }
}

/// `wisp functions …`: the admin API's answers, printed for people.
async fn functions(admin: &client::Target, command: FunctionsCommand) -> Result<()> {
    match command {
        FunctionsCommand::List => {
            let list = client::call(admin, Method::GET, "/v1/functions", Vec::new()).await?;
            println!(
                "{:<24} {:>8}  {:<16} {:<8} ROUTE",
                "NAME", "REVISION", "WORLD", "STATUS"
            );
            for f in list.as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:>8}  {:<16} {:<8} {}",
                    f["name"].as_str().unwrap_or(""),
                    f["current_revision"],
                    f["world"].as_str().unwrap_or("-"),
                    f["status"].as_str().unwrap_or(""),
                    f["spec"]["route"]
                        .as_str()
                        .or(f["spec"]["trigger"]["topic"].as_str().map(|_| "(events)"))
                        .unwrap_or("/")
                );
                if let Some(error) = f["error"].as_str() {
                    println!("  error: {error}");
                }
            }
        }
        FunctionsCommand::Get { name } => print_json(
            &client::call(
                admin,
                Method::GET,
                &format!("/v1/functions/{name}"),
                Vec::new(),
            )
            .await?,
        )?,
        FunctionsCommand::Revisions { name } => {
            let revs = client::call(
                admin,
                Method::GET,
                &format!("/v1/functions/{name}/revisions"),
                Vec::new(),
            )
            .await?;
            println!("{:>8}  {:<12} COMPONENT", "REVISION", "CREATED");
            for r in revs.as_array().into_iter().flatten() {
                println!(
                    "{:>8}  {:<12} {}",
                    r["number"],
                    r["created"],
                    r["spec"]["component"].as_str().unwrap_or("")
                );
            }
        }
        FunctionsCommand::Rollback { name, to } => {
            let body = serde_json::to_vec(&serde_json::json!({ "revision": to }))?;
            let rev = client::call(
                admin,
                Method::POST,
                &format!("/v1/functions/{name}/rollback"),
                body,
            )
            .await?;
            println!("{name} now serves revision {}", rev["number"]);
        }
        FunctionsCommand::Delete { name } => {
            client::call(
                admin,
                Method::DELETE,
                &format!("/v1/functions/{name}"),
                Vec::new(),
            )
            .await?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

pub(crate) fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
