//! The app manifest (`wisp.toml`) that `wisp up` serves: server settings and
//! a list of functions. Every error names the file, the line and the key.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Result;
use serde::Deserialize;

use crate::config::server::ServerSettings;
use crate::config::{
    BuildSpec, CronSchedule, FunctionSpec, JobSpec, QueueSpec, ScheduleSpec, SecretSpec, StateSpec,
    StoreSpec, TopicSpec, check_state_names,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    server: ServerSettings,
    #[serde(default, rename = "topic")]
    topics: Vec<TopicSpec>,
    #[serde(default, rename = "queue")]
    queues: Vec<QueueSpec>,
    #[serde(default, rename = "schedule")]
    schedules: Vec<ScheduleSpec>,
    #[serde(default, rename = "store")]
    stores: Vec<StoreSpec>,
    #[serde(default, rename = "secret")]
    secrets: Vec<SecretSpec>,
    #[serde(default, rename = "job")]
    jobs: Vec<JobSpec>,
    #[serde(default, rename = "function")]
    functions: Vec<FunctionSpec>,
}

/// A parsed, checked manifest. Function `component`s are absolute paths.
#[derive(Debug)]
pub struct Manifest {
    pub server: ServerSettings,
    pub topics: Vec<TopicSpec>,
    pub queues: Vec<QueueSpec>,
    pub schedules: Vec<ScheduleSpec>,
    /// Stores and secrets; secret files are absolute paths.
    pub state: StateSpec,
    /// Component paths and `dirs` are absolute.
    pub jobs: Vec<JobSpec>,
    pub functions: Vec<FunctionSpec>,
    /// `[function.build]` sections, by function name.
    pub builds: BTreeMap<String, BuildSpec>,
}

/// Whether a function's component must exist when the manifest is loaded.
#[derive(Clone, Copy, PartialEq)]
pub enum Components {
    /// Every one (`wisp up`).
    Built,
    /// None need exist yet (`wisp build`, which makes them; a function
    /// without a build of its own may serve what another one's build writes).
    MayBeUnbuilt,
}

impl Manifest {
    /// Just `functions`, with these server settings (`wisp serve`).
    pub fn of_functions(server: ServerSettings, functions: Vec<FunctionSpec>) -> Self {
        Manifest {
            server,
            topics: Vec::new(),
            queues: Vec::new(),
            schedules: Vec::new(),
            state: StateSpec::default(),
            jobs: Vec::new(),
            functions,
            builds: BTreeMap::new(),
        }
    }
}

/// Spans of each array-of-tables entry, to point errors at lines.
#[derive(Deserialize)]
struct Locate {
    #[serde(default)]
    function: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    topic: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    queue: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    schedule: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    store: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    secret: Vec<toml::Spanned<toml::Table>>,
    #[serde(default)]
    job: Vec<toml::Spanned<toml::Table>>,
}

/// Which array of tables an error is about.
#[derive(Clone, Copy)]
enum Kind {
    Function,
    Topic,
    Queue,
    Schedule,
    Store,
    Secret,
    Job,
}

struct Source<'a> {
    path: &'a Path,
    text: &'a str,
    functions: Vec<std::ops::Range<usize>>,
    topics: Vec<std::ops::Range<usize>>,
    queues: Vec<std::ops::Range<usize>>,
    schedules: Vec<std::ops::Range<usize>>,
    stores: Vec<std::ops::Range<usize>>,
    secrets: Vec<std::ops::Range<usize>>,
    jobs: Vec<std::ops::Range<usize>>,
}

impl Source<'_> {
    fn line_at(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    /// `file:line: function `name`: key: message`
    fn error(&self, index: usize, key: &str, name: &str, message: &str) -> anyhow::Error {
        self.error_in(Kind::Function, index, key, name, message)
    }

    fn error_in(
        &self,
        kind: Kind,
        index: usize,
        key: &str,
        name: &str,
        message: &str,
    ) -> anyhow::Error {
        let (tables, noun) = match kind {
            Kind::Function => (&self.functions, "function"),
            Kind::Topic => (&self.topics, "topic"),
            Kind::Queue => (&self.queues, "queue"),
            Kind::Schedule => (&self.schedules, "schedule"),
            Kind::Store => (&self.stores, "store"),
            Kind::Secret => (&self.secrets, "secret"),
            Kind::Job => (&self.jobs, "job"),
        };
        let span = tables.get(index).cloned().unwrap_or(0..0);
        let body = &self.text[span.clone()];
        let offset = body
            .lines()
            .scan(0, |pos, line| {
                let start = *pos;
                *pos += line.len() + 1;
                Some((start, line))
            })
            .find(|(_, line)| {
                line.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|(start, _)| span.start + start)
            .unwrap_or(span.start);
        let who = if name.is_empty() {
            format!("{noun} #{}", index + 1)
        } else {
            format!("{noun} `{name}`")
        };
        anyhow::anyhow!(
            "{}:{}: {who}: `{key}`: {message}",
            self.path.display(),
            self.line_at(offset)
        )
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        Self::load_with(path, Components::Built)
    }

    pub fn load_with(path: &Path, components: Components) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "could not read manifest `{}`: {e}; pass the right file with -f",
                path.display()
            )
        })?;
        Self::parse_with(path, &text, components)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Manifest> {
        Self::parse_with(path, text, Components::Built)
    }

    fn parse_with(path: &Path, text: &str, components: Components) -> Result<Manifest> {
        let doc: Document =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        doc.server
            .check_admin()
            .and_then(|()| doc.server.check_limits())
            .map_err(|e| anyhow::anyhow!("{}: [server] {e}", path.display()))?;
        let locate: Locate =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let src = Source {
            path,
            text,
            functions: locate.function.iter().map(|t| t.span()).collect(),
            topics: locate.topic.iter().map(|t| t.span()).collect(),
            queues: locate.queue.iter().map(|t| t.span()).collect(),
            schedules: locate.schedule.iter().map(|t| t.span()).collect(),
            stores: locate.store.iter().map(|t| t.span()).collect(),
            secrets: locate.secret.iter().map(|t| t.span()).collect(),
            jobs: locate.job.iter().map(|t| t.span()).collect(),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let topics = check_topics(&src, doc.topics)?;
        let state = check_state(&src, base, doc.stores, doc.secrets, &topics)?;

        let mut names = HashMap::new();
        let mut routes = HashMap::new();
        let mut functions = Vec::with_capacity(doc.functions.len());
        let mut builds = BTreeMap::new();
        for (i, mut spec) in doc.functions.into_iter().enumerate() {
            let build = spec.build.take();
            if let Some(build) = &build {
                build.validate().map_err(|(key, msg)| {
                    src.error(i, key, &spec.name, &format!("[function.build] {msg}"))
                })?;
            }
            spec.validate()
                .and_then(|_| check_topic_names(&spec, &topics))
                .and_then(|()| check_queue_names(&spec, &doc.queues))
                .and_then(|()| check_state_names(&spec, &state))
                .map_err(|(key, msg)| src.error(i, key, &spec.name, &msg))?;
            if let Some(first) = names.insert(spec.name.clone(), i) {
                return Err(src.error(
                    i,
                    "name",
                    &spec.name,
                    &format!("duplicate name; function #{} already uses it", first + 1),
                ));
            }
            if let Some(route) = spec.http_route().map(str::to_string)
                && let Some(first) = routes.insert(route.clone(), spec.name.clone())
            {
                return Err(src.error(
                    i,
                    "route",
                    &spec.name,
                    &format!("route `{route}` is already served by function `{first}`"),
                ));
            }
            let component = base.join(&spec.component);
            if !component.is_file() && components == Components::Built {
                let how = if build.is_some() {
                    "build it with `wisp build` (or `wisp up --watch`, which builds first)"
                } else {
                    "build the guests with scripts/build-guests"
                };
                return Err(src.error(
                    i,
                    "component",
                    &spec.name,
                    &format!(
                        "no file at `{}` (paths are relative to the manifest); {how}",
                        component.display()
                    ),
                ));
            }
            spec.component = component.to_string_lossy().into_owned();
            for host in spec.dirs.values_mut() {
                *host = base.join(&*host).to_string_lossy().into_owned();
            }
            if let Some(build) = build {
                builds.insert(spec.name.clone(), build);
            }
            functions.push(spec);
        }
        let mut server = doc.server;
        server.state_dir =
            Some(base.join(server.state_dir.as_deref().unwrap_or(Path::new(".wisp"))));
        server.admin_token_file = server.admin_token_file.map(|f| base.join(f));
        server.files_root = server.files_root.map(|f| base.join(f));
        check_queues(&src, &doc.queues, &names)?;
        let job_names: Vec<&str> = doc.jobs.iter().map(|j| j.name.as_str()).collect();
        check_schedules(&src, &doc.schedules, &names, &job_names)?;
        Ok(Manifest {
            server,
            topics,
            queues: doc.queues,
            schedules: doc.schedules,
            state,
            jobs: check_jobs(&src, doc.jobs, base)?,
            functions,
            builds,
        })
    }
}

/// Jobs are checked and their paths made absolute, as functions' are.
fn check_jobs(src: &Source, jobs: Vec<JobSpec>, base: &Path) -> Result<Vec<JobSpec>> {
    let mut names = HashMap::new();
    let mut checked = Vec::with_capacity(jobs.len());
    for (i, mut job) in jobs.into_iter().enumerate() {
        let name = job.name.clone();
        let error = |key: &str, msg: &str| src.error_in(Kind::Job, i, key, &name, msg);
        job.validate().map_err(|(key, msg)| error(key, &msg))?;
        if let Some(first) = names.insert(job.name.clone(), i) {
            return Err(error(
                "name",
                &format!("duplicate name; job #{} already uses it", first + 1),
            ));
        }
        let component = base.join(&job.component);
        if !component.is_file() {
            return Err(error(
                "component",
                &format!(
                    "no file at `{}` (paths are relative to the manifest); build the guests with scripts/build-guests",
                    component.display()
                ),
            ));
        }
        job.component = component.to_string_lossy().into_owned();
        for host in job.dirs.values_mut() {
            *host = base.join(&*host).to_string_lossy().into_owned();
        }
        checked.push(job);
    }
    Ok(checked)
}

/// A function a queue or schedule names must be declared in the manifest.
fn missing_function(name: &str, functions: &HashMap<String, usize>) -> Option<String> {
    (!functions.contains_key(name)).then(|| {
        format!("no function `{name}` in this manifest; declare it with a [[function]] table")
    })
}

fn check_queues(
    src: &Source,
    queues: &[QueueSpec],
    functions: &HashMap<String, usize>,
) -> Result<()> {
    let mut names = HashMap::new();
    for (i, queue) in queues.iter().enumerate() {
        let error = |key: &str, msg: &str| src.error_in(Kind::Queue, i, key, &queue.name, msg);
        queue.validate().map_err(|(key, msg)| error(key, &msg))?;
        if let Some(first) = names.insert(queue.name.as_str(), i) {
            return Err(error(
                "name",
                &format!("duplicate name; queue #{} already uses it", first + 1),
            ));
        }
        if let Some(msg) = missing_function(&queue.function, functions) {
            return Err(error("function", &msg));
        }
    }
    Ok(())
}

fn check_schedules(
    src: &Source,
    schedules: &[ScheduleSpec],
    functions: &HashMap<String, usize>,
    jobs: &[&str],
) -> Result<()> {
    let mut names = HashMap::new();
    for (i, schedule) in schedules.iter().enumerate() {
        let error =
            |key: &str, msg: &str| src.error_in(Kind::Schedule, i, key, &schedule.name, msg);
        schedule.validate().map_err(|(key, msg)| error(key, &msg))?;
        CronSchedule::parse(&schedule.cron, &schedule.time_zone)
            .map_err(|(key, msg)| error(key, &msg))?;
        if let Some(first) = names.insert(schedule.name.as_str(), i) {
            return Err(error(
                "name",
                &format!("duplicate name; schedule #{} already uses it", first + 1),
            ));
        }
        match &schedule.job {
            Some(job) if !jobs.contains(&job.as_str()) => {
                return Err(error(
                    "job",
                    &format!("no job `{job}` in this manifest; declare it with a [[job]] table"),
                ));
            }
            Some(_) => {}
            None => {
                if let Some(msg) = missing_function(schedule.function(), functions) {
                    return Err(error("function", &msg));
                }
            }
        }
    }
    Ok(())
}

/// Every queue a function may add tasks to must be declared.
pub fn check_queue_names(
    spec: &FunctionSpec,
    queues: &[QueueSpec],
) -> Result<(), (&'static str, String)> {
    match spec
        .enqueue
        .iter()
        .find(|q| !queues.iter().any(|d| d.name == **q))
    {
        Some(queue) => Err((
            "enqueue",
            format!("no queue `{queue}`; declare it with a [[queue]] table"),
        )),
        None => Ok(()),
    }
}

fn check_topics(src: &Source, topics: Vec<TopicSpec>) -> Result<Vec<TopicSpec>> {
    let mut names = HashMap::new();
    for (i, topic) in topics.iter().enumerate() {
        topic
            .validate()
            .map_err(|(key, msg)| src.error_in(Kind::Topic, i, key, &topic.name, &msg))?;
        if let Some(first) = names.insert(topic.name.as_str(), i) {
            return Err(src.error_in(
                Kind::Topic,
                i,
                "name",
                &topic.name,
                &format!("duplicate name; topic #{} already uses it", first + 1),
            ));
        }
    }
    Ok(topics)
}

fn check_state(
    src: &Source,
    base: &Path,
    stores: Vec<StoreSpec>,
    mut secrets: Vec<SecretSpec>,
    topics: &[TopicSpec],
) -> Result<StateSpec> {
    let mut names = HashMap::new();
    for (i, store) in stores.iter().enumerate() {
        store
            .validate()
            .map_err(|(key, msg)| src.error_in(Kind::Store, i, key, &store.name, &msg))?;
        if let Some(topic) = &store.events
            && !topics.iter().any(|t| &t.name == topic)
        {
            return Err(src.error_in(
                Kind::Store,
                i,
                "events",
                &store.name,
                &no_topic(topic, topics),
            ));
        }
        if let Some(first) = names.insert(store.name.as_str(), i) {
            return Err(src.error_in(
                Kind::Store,
                i,
                "name",
                &store.name,
                &format!("duplicate name; store #{} already uses it", first + 1),
            ));
        }
    }
    let mut names = HashMap::new();
    for (i, secret) in secrets.iter_mut().enumerate() {
        secret
            .validate()
            .map_err(|(key, msg)| src.error_in(Kind::Secret, i, key, &secret.name, &msg))?;
        if let Some(first) = names.insert(secret.name.clone(), i) {
            return Err(src.error_in(
                Kind::Secret,
                i,
                "name",
                &secret.name,
                &format!("duplicate name; secret #{} already uses it", first + 1),
            ));
        }
        secret.file = secret.file.as_ref().map(|f| base.join(f));
    }
    Ok(StateSpec { stores, secrets })
}

/// The refusal of a topic name that is not declared.
fn no_topic(name: &str, topics: &[TopicSpec]) -> String {
    let declared: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
    format!(
        "no topic `{name}`; declare it with a [[topic]] table (declared: {})",
        if declared.is_empty() {
            "none".to_string()
        } else {
            declared.join(", ")
        }
    )
}

/// Every topic a function names (subscribes to, dead-letters to, publishes
/// to) must be declared.
pub fn check_topic_names(
    spec: &FunctionSpec,
    topics: &[TopicSpec],
) -> Result<(), (&'static str, String)> {
    let known = |name: &str| topics.iter().any(|t| t.name == name);
    let missing = |name: &str| no_topic(name, topics);
    if let Some(trigger) = &spec.trigger {
        if !known(&trigger.topic) {
            return Err(("topic", missing(&trigger.topic)));
        }
        if let Some(dead) = &trigger.dead_letter_topic
            && !known(dead)
        {
            return Err(("dead_letter_topic", missing(dead)));
        }
    }
    match spec.publish.iter().find(|t| !known(t)) {
        Some(topic) => Err(("publish", missing(topic))),
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
