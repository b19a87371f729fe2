//! Run-to-completion jobs (Cloud Run Jobs, built in): a command run as N
//! indexed tasks, P at a time, each retried; executions and task states are
//! durable ([`store`]), so after `kill -9` an execution resumes and no
//! finished task runs again ([`run`]).

pub mod metrics;
pub mod run;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::config::{AllowedHosts, JobSpec, check_tasks};
use crate::deploy::command;
use crate::deploy::component;
use crate::deploy::registry::Registry;
use crate::deploy::snapshot::Init;
use crate::jobs::metrics::Counters;
use crate::jobs::run::{Job, execute};
use crate::jobs::store::{Execution, JobStore, LogLine, TaskState};
use crate::sandbox::engine::WispEngine;
use crate::sandbox::host::{HostConfig, preopens};

/// Why a job operation was refused.
#[derive(Debug)]
pub enum JobsError {
    NotFound(String),
    Invalid(String),
    Store(anyhow::Error),
}

impl std::fmt::Display for JobsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobsError::NotFound(e) | JobsError::Invalid(e) => f.write_str(e),
            JobsError::Store(e) => write!(f, "{e:#}"),
        }
    }
}

/// A job as `wisp jobs list` shows it.
#[derive(Serialize)]
pub struct JobInfo {
    pub name: String,
    pub tasks: u32,
    pub parallelism: u32,
    pub max_retries: u32,
}

/// An execution with its tasks, as `wisp jobs describe` shows it.
#[derive(Serialize)]
pub struct Described {
    #[serde(flatten)]
    pub execution: Execution,
    pub task_states: Vec<TaskState>,
}

/// Overrides for one execution.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub tasks: Option<u32>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

pub struct Jobs {
    pub(crate) jobs: HashMap<String, Arc<Job>>,
    store: JobStore,
    engine: Arc<WispEngine>,
    /// Executions running in this process, by id.
    running: Mutex<HashMap<String, CancellationToken>>,
}

/// What a job's instances are given.
fn host_config(spec: &JobSpec, engine: &WispEngine) -> Result<HostConfig> {
    let allowed = AllowedHosts::parse(&spec.allowed_outbound_hosts)
        .map_err(|e| anyhow!("`allowed_outbound_hosts`: {e}"))?;
    let dirs = preopens(&spec.dirs)?;
    Ok(HostConfig {
        env: spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        allowed: Arc::new(allowed),
        dirs,
        ..HostConfig::bare(&spec.name, engine, spec.memory.bytes())
    })
}

/// Reads, adapts, compiles (through the artifact cache), pre-initializes
/// (when it exports `wizer-initialize`) and links a job's command.
async fn load(spec: JobSpec, engine: &Arc<WispEngine>, registry: &Registry) -> Result<Job> {
    let path = PathBuf::from(&spec.component);
    let bytes = component::read(&path)?;
    let host = host_config(&spec, engine)?;
    let init = spec.snapshot.then(|| Init {
        name: &spec.name,
        observed: (&spec).into(),
        host: &host,
        timeout: spec.task_timeout.0,
    });
    let label = format!("job {}", spec.name);
    let command = command::load(registry.artifacts(), engine, bytes.into(), init, &label).await?;
    Ok(Job {
        pre: command.pre,
        host,
        metrics: Arc::new(registry.telemetry().function(&spec.name)),
        counters: Counters::default(),
        spec,
    })
}

fn execution_id(job: &str) -> String {
    let mut bytes = [0u8; 3];
    let _ = getrandom::fill(&mut bytes);
    format!("{job}-{}", hex::encode(bytes))
}

impl Jobs {
    /// Loads every job's command; a job that cannot be loaded stops the
    /// start with its reason. `store` is opened before (`JobStore::open`),
    /// while the engine was being made.
    pub async fn open(
        store: JobStore,
        specs: Vec<JobSpec>,
        engine: Arc<WispEngine>,
        registry: &Registry,
    ) -> Result<Arc<Self>> {
        let mut jobs = HashMap::new();
        for spec in specs {
            let name = spec.name.clone();
            let component = spec.component.clone();
            let job = load(spec, &engine, registry)
                .await
                .with_context(|| format!("job `{name}` (`{component}`)"))?;
            jobs.insert(name, Arc::new(job));
        }
        Ok(Arc::new(Jobs {
            jobs,
            store,
            engine,
            running: Mutex::default(),
        }))
    }

    /// Resumes the executions a stop or crash interrupted.
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        for exec in self.store.running().await? {
            match self.store.execution(&exec.id).await? {
                Some((exec, tasks)) => {
                    tracing::info!(execution = %exec.id, "resuming execution");
                    self.spawn(exec, tasks);
                }
                None => continue,
            }
        }
        Ok(())
    }

    /// Waits for recorded output to be on disk; running executions resume
    /// at the next start.
    pub async fn stop(&self) {
        if let Err(e) = self.store.flush().await {
            tracing::warn!("job store: {e:#}");
        }
    }

    fn job(&self, name: &str) -> Result<&Arc<Job>, JobsError> {
        self.jobs.get(name).ok_or_else(|| {
            JobsError::NotFound(format!(
                "no job `{name}`; jobs are declared with [[job]] tables in wisp.toml"
            ))
        })
    }

    fn spawn(self: &Arc<Self>, exec: Execution, tasks: Vec<TaskState>) {
        let Some(job) = self.jobs.get(&exec.job).cloned() else {
            tracing::warn!(execution = %exec.id, "job `{}` is no longer declared: not resuming", exec.job);
            return;
        };
        // Only `cancel` ends an execution early: when the server stops, its
        // tasks are dropped unrecorded and the execution resumes next start.
        let cancel = CancellationToken::new();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(exec.id.clone(), cancel.clone());
        let jobs = self.clone();
        let id = exec.id.clone();
        tokio::spawn(async move {
            let engine = jobs.engine.engine.clone();
            execute(job, exec, tasks, jobs.store.clone(), engine, cancel).await;
            jobs.running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        });
    }

    /// Starts an execution of `job`; returns its id.
    pub async fn run(
        self: &Arc<Self>,
        job: &str,
        request: RunRequest,
    ) -> Result<String, JobsError> {
        let spec = &self.job(job)?.spec;
        let tasks = request.tasks.unwrap_or(spec.tasks);
        check_tasks(tasks).map_err(|e| JobsError::Invalid(format!("`tasks`: {e}")))?;
        for key in request.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(JobsError::Invalid(format!(
                    "`env`: invalid variable name `{key}`"
                )));
            }
        }
        let mut env = spec.env.clone();
        env.extend(request.env);
        let exec = Execution {
            id: execution_id(job),
            job: job.to_string(),
            state: "running".into(),
            tasks,
            parallelism: spec.parallelism.unwrap_or(tasks).min(tasks),
            created: String::new(),
            finished: None,
            env,
        };
        self.store.create(&exec).await.map_err(JobsError::Store)?;
        let (exec, tasks) = self
            .store
            .execution(&exec.id)
            .await
            .map_err(JobsError::Store)?
            .ok_or_else(|| JobsError::Store(anyhow!("the execution vanished")))?;
        let id = exec.id.clone();
        self.job(job)?
            .counters
            .executions_started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.spawn(exec, tasks);
        Ok(id)
    }

    pub fn list(&self) -> Vec<JobInfo> {
        let mut list: Vec<JobInfo> = self
            .jobs
            .values()
            .map(|j| JobInfo {
                name: j.spec.name.clone(),
                tasks: j.spec.tasks,
                parallelism: j.spec.parallelism.unwrap_or(j.spec.tasks),
                max_retries: j.spec.max_retries,
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    pub async fn executions(&self, job: &str) -> Result<Vec<Execution>, JobsError> {
        self.job(job)?;
        self.store
            .executions(job, 100)
            .await
            .map_err(JobsError::Store)
    }

    pub async fn describe(&self, id: &str) -> Result<Described, JobsError> {
        match self.store.execution(id).await.map_err(JobsError::Store)? {
            Some((execution, task_states)) => Ok(Described {
                execution,
                task_states,
            }),
            None => Err(JobsError::NotFound(format!("no execution `{id}`"))),
        }
    }

    pub async fn logs(
        &self,
        id: &str,
        task: Option<u32>,
        after: i64,
    ) -> Result<Vec<LogLine>, JobsError> {
        self.describe(id).await?;
        self.store
            .logs(id, task, after, 1000)
            .await
            .map_err(JobsError::Store)
    }

    /// Stops starting tasks of `id` and stops its running ones.
    pub async fn cancel(&self, id: &str) -> Result<(), JobsError> {
        let described = self.describe(id).await?;
        if described.execution.state != "running" {
            return Err(JobsError::Invalid(format!(
                "execution `{id}` is already {}",
                described.execution.state
            )));
        }
        let token = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        match token {
            Some(token) => token.cancel(),
            None => self
                .store
                .finish(id, "cancelled")
                .await
                .map_err(JobsError::Store)?,
        }
        Ok(())
    }
}
