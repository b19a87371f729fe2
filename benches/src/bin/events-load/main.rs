//! `events-load`: the load generator of benchmark sections 6 (events) and
//! 7 (task queues).
//!
//! It talks to a running `wisp up` through its admin API only. For events
//! it publishes binary-mode CloudEvents to `POST /v1/topics/{topic}/events`
//! and reads `GET /metrics` for `wisp_events_acked_total{topic,function}`
//! and `wisp_event_store_commits_total`; for tasks it adds them with
//! `POST /v1/queues/{queue}/tasks` and reads the queue's counters from
//! `GET /v1/queues`. The event modes:
//!
//! - `wait`: until the subscription of `--function` to `--topic` shows in
//!   the metrics (the server is up and the subscription started);
//! - `throughput`: publishes `--events` events over `--connections`
//!   keep-alive connections as fast as each connection gets its `202`,
//!   then polls the metrics every `--poll-ms` until all of them are
//!   acknowledged by the function; prints the publish rate, the
//!   end-to-end rate (events ÷ (last ack seen − first publish sent)) and
//!   the store's commits per event;
//! - `latency`: publishes one event every `--interval-ms` over one
//!   connection, and prints each event's id with the wall-clock time (Unix
//!   nanoseconds) just before it was sent and when its `202` came back.
//!   `benches/events.py` joins those with the ack times of Wisp's access log
//!   (same machine, same clock).
//!
//! The task modes (`--queue`):
//!
//! - `queue-wait`: until the queue shows in `GET /v1/queues`;
//! - `tasks`: adds `--tasks` tasks named `{id-prefix}-{n}` over
//!   `--connections` keep-alive connections as fast as each gets its `201`,
//!   then polls the queue's counters every `--poll-ms` until `completed`
//!   has grown by that many; prints the add rate and the end-to-end rate
//!   (tasks ÷ (all completed − first add sent)). `benches/tasks.py` reads
//!   the completion times of each task from Wisp's access log. With
//!   `--paused` the queue is paused first and resumed once every task is
//!   stored: the rate from the resume to the last completion is then the
//!   dispatcher's alone, not bounded by how fast tasks come in.
//!
//! A current-thread runtime: on a 2-core machine the load generator should
//! take one core at most, leaving the other to the server.
//!
//! Output: one JSON object on stdout; progress and problems on stderr. The
//! admin token comes from `WISP_ADMIN_TOKEN` (or `--token`), not argv.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use serde_json::json;
use wisp_benches::percentile;

mod conn;
mod counters;

use conn::{Conn, open_when_listening};
use counters::{Metrics, QueueCounters};

#[derive(Parser)]
#[command(
    about = "Publishes events or adds tasks through a Wisp admin API and measures their delivery (JSON on stdout)"
)]
struct Args {
    /// The admin API's address, e.g. 127.0.0.1:8081.
    #[arg(long)]
    admin: String,
    /// The admin API's bearer token.
    #[arg(long, env = "WISP_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long, default_value = "bench")]
    topic: String,
    /// The subscribed function whose acknowledgements are counted (events).
    #[arg(long, default_value = "noop")]
    function: String,
    /// The queue tasks are added to (tasks).
    #[arg(long, default_value = "bench")]
    queue: String,
    /// Prefix of the `ce-id`s or task names sent (ids must be unique per
    /// source; task names per queue, for an hour).
    #[arg(long, default_value = "bench")]
    id_prefix: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Waits until the subscription shows in the metrics.
    Wait {
        #[arg(long, default_value_t = 120.0)]
        timeout_secs: f64,
    },
    /// Publishes as fast as possible, then waits for every ack.
    Throughput {
        #[arg(long)]
        events: u64,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        #[arg(long, default_value_t = 5)]
        poll_ms: u64,
        #[arg(long, default_value_t = 300.0)]
        timeout_secs: f64,
    },
    /// One event every `interval_ms`, each id with its send time.
    Latency {
        #[arg(long)]
        events: u64,
        #[arg(long, default_value_t = 10.0)]
        interval_ms: f64,
        #[arg(long, default_value_t = 120.0)]
        timeout_secs: f64,
    },
    /// Waits until the queue shows in `GET /v1/queues`.
    QueueWait {
        #[arg(long, default_value_t = 120.0)]
        timeout_secs: f64,
    },
    /// Adds tasks as fast as possible, then waits until all have completed.
    Tasks {
        #[arg(long)]
        tasks: u64,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Pauses the queue while adding, then resumes it.
        #[arg(long)]
        paused: bool,
        #[arg(long, default_value_t = 5)]
        poll_ms: u64,
        #[arg(long, default_value_t = 300.0)]
        timeout_secs: f64,
    },
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

struct Client {
    args: Args,
}

impl Client {
    fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            // The admin API refuses any Host but its own address.
            .header(header::HOST, &self.args.admin)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.args.token))
    }

    /// A binary-mode CloudEvent with a tiny JSON body.
    fn event(&self, id: &str, n: u64) -> Result<Request<Full<Bytes>>> {
        Ok(self
            .request(
                Method::POST,
                &format!("/v1/topics/{}/events", self.args.topic),
            )
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/bench/events-load")
            .header("ce-type", "com.example.bench")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(format!("{{\"n\":{n}}}"))))?)
    }

    async fn publish(&self, conn: &mut Conn, id: &str, n: u64) -> Result<()> {
        let (status, body) = conn.send(self.event(id, n)?).await?;
        ensure!(
            status == StatusCode::ACCEPTED,
            "publish answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    async fn metrics(&self, conn: &mut Conn) -> Result<Metrics> {
        let req = self
            .request(Method::GET, "/metrics")
            .body(Full::new(Bytes::new()))?;
        let (status, body) = conn.send(req).await?;
        ensure!(
            status == StatusCode::OK,
            "GET /metrics answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(Metrics::parse(
            std::str::from_utf8(&body)?,
            &self.args.topic,
            &self.args.function,
        ))
    }

    /// Adds a task named `name` with a tiny body; expects `201`.
    async fn add_task(&self, conn: &mut Conn, name: &str, n: u64) -> Result<()> {
        let task = json!({ "name": name, "body": format!("{{\"n\":{n}}}") });
        let req = self
            .request(
                Method::POST,
                &format!("/v1/queues/{}/tasks", self.args.queue),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(task.to_string())))?;
        let (status, body) = conn.send(req).await?;
        ensure!(
            status == StatusCode::CREATED,
            "adding task {name} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    /// `POST /v1/queues/{queue}/{action}` (pause, resume); expects `204`.
    async fn queue_action(&self, conn: &mut Conn, action: &str) -> Result<()> {
        let req = self
            .request(
                Method::POST,
                &format!("/v1/queues/{}/{action}", self.args.queue),
            )
            .body(Full::new(Bytes::new()))?;
        let (status, body) = conn.send(req).await?;
        ensure!(
            status == StatusCode::NO_CONTENT,
            "{action} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(())
    }

    /// The queue's counters from `GET /v1/queues`; `None` if it is not
    /// listed.
    async fn queue(&self, conn: &mut Conn) -> Result<Option<QueueCounters>> {
        let req = self
            .request(Method::GET, "/v1/queues")
            .body(Full::new(Bytes::new()))?;
        let (status, body) = conn.send(req).await?;
        ensure!(
            status == StatusCode::OK,
            "GET /v1/queues answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let queues: serde_json::Value = serde_json::from_slice(&body)?;
        let queue = queues
            .as_array()
            .context("GET /v1/queues: not a JSON array")?
            .iter()
            .find(|q| q["name"] == self.args.queue.as_str());
        Ok(queue.map(QueueCounters::of))
    }

    /// Polls the queue every `poll` until `done` holds, within `timeout`.
    async fn poll_queue_until(
        &self,
        conn: &mut Conn,
        poll: Duration,
        timeout: Duration,
        what: &str,
        done: impl Fn(&QueueCounters) -> bool,
    ) -> Result<(QueueCounters, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            let q = self.queue(conn).await?.unwrap_or_default();
            let at = Instant::now();
            if q.listed && done(&q) {
                return Ok((q, at));
            }
            if at > deadline {
                bail!("{what}: not within {timeout:?}; last counters: {q:?}");
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Polls every `poll` until `done` holds, within `timeout`.
    async fn poll_until(
        &self,
        conn: &mut Conn,
        poll: Duration,
        timeout: Duration,
        what: &str,
        done: impl Fn(&Metrics) -> bool,
    ) -> Result<(Metrics, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.metrics(conn).await?;
            let at = Instant::now();
            if done(&m) {
                return Ok((m, at));
            }
            if at > deadline {
                bail!("{what}: not within {timeout:?}; last metrics: {m:?}");
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Waits until the store's commit counter stops moving: acks are
    /// settled in the store shortly after the function answers, and those
    /// commits belong to the events just delivered.
    async fn settled(&self, conn: &mut Conn) -> Result<Metrics> {
        let mut last = self.metrics(conn).await?;
        let mut same = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while same < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let m = self.metrics(conn).await?;
            if m.commits == last.commits {
                same += 1;
            } else {
                same = 0;
            }
            last = m;
        }
        Ok(last)
    }
}

/// What each request of a fan-out does.
#[derive(Clone, Copy)]
enum Work {
    Publish,
    AddTask,
}

/// Sends `count` requests over `connections` connections as fast as they
/// go; returns each one's latency (ms, sorted), when it started, and that
/// start as Unix nanoseconds.
async fn fan_out(
    client: &Arc<Client>,
    connections: usize,
    count: u64,
    work: Work,
) -> Result<(Vec<f64>, Instant, u64)> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Conn::open(&client.args.admin).await?);
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let started_ns = unix_ns();
    let mut workers = Vec::with_capacity(connections);
    for mut conn in conns {
        let (client, next) = (client.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let id = format!("{}-{n}", client.args.id_prefix);
                let t = Instant::now();
                match work {
                    Work::Publish => client.publish(&mut conn, &id, n).await?,
                    Work::AddTask => client.add_task(&mut conn, &id, n).await?,
                }
                latencies.push(ms(t.elapsed()));
            }
        }));
    }
    let mut latencies = Vec::with_capacity(count as usize);
    for worker in workers {
        latencies.extend(worker.await??);
    }
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, started, started_ns))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn wait(client: &Client, timeout_secs: f64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout_secs);
    let mut conn = open_when_listening(&client.args.admin, deadline).await?;
    let left = deadline.saturating_duration_since(Instant::now());
    let (m, _) = client
        .poll_until(
            &mut conn,
            Duration::from_millis(20),
            left,
            "the subscription",
            |m| m.acked.is_some(),
        )
        .await?;
    println!(
        "{}",
        json!({ "mode": "wait", "acked": m.acked(), "commits": m.commits })
    );
    Ok(())
}

async fn throughput(
    client: Arc<Client>,
    events: u64,
    connections: usize,
    poll_ms: u64,
    timeout_secs: f64,
) -> Result<()> {
    ensure!(events > 0 && connections > 0, "need events and connections");
    let mut control = Conn::open(&client.args.admin).await?;
    let before = client.settled(&mut control).await?;
    ensure!(
        before.acked.is_some(),
        "no subscription of `{}` to `{}` in the metrics",
        client.args.function,
        client.args.topic
    );
    let (latencies, started, started_ns) =
        fan_out(&client, connections, events, Work::Publish).await?;
    let published = started.elapsed();
    // Acks cannot all be in before the last 202, so polling starts here and
    // does not take the server's CPU during the publishing.
    let target = before.acked() + events;
    let (acked_m, acked_at) = client
        .poll_until(
            &mut control,
            Duration::from_millis(poll_ms),
            Duration::from_secs_f64(timeout_secs),
            "all acks",
            |m| m.acked() >= target,
        )
        .await?;
    let end_to_end = acked_at - started;
    let after = client.settled(&mut control).await?;
    let commits = after.commits - before.commits;
    println!(
        "{}",
        json!({
            "mode": "throughput",
            "events": events,
            "connections": connections,
            "started_unix_ns": started_ns,
            "publish_seconds": published.as_secs_f64(),
            "publish_rate": events as f64 / published.as_secs_f64(),
            "publish_p50_ms": percentile(&latencies, 50.0),
            "publish_p99_ms": percentile(&latencies, 99.0),
            "end_to_end_seconds": end_to_end.as_secs_f64(),
            "end_to_end_rate": events as f64 / end_to_end.as_secs_f64(),
            "poll_ms": poll_ms,
            "acked": acked_m.acked() - before.acked(),
            "delivered": after.delivered - before.delivered,
            "retried": after.retried - before.retried,
            "dead_lettered": after.dead_lettered - before.dead_lettered,
            "dropped": after.dropped - before.dropped,
            "published": after.published - before.published,
            "commits": commits,
            "commits_per_event": commits as f64 / events as f64,
        })
    );
    Ok(())
}

async fn latency(client: &Client, events: u64, interval_ms: f64, timeout_secs: f64) -> Result<()> {
    let mut control = Conn::open(&client.args.admin).await?;
    let before = client.settled(&mut control).await?;
    let mut conn = Conn::open(&client.args.admin).await?;
    let interval = Duration::from_secs_f64(interval_ms / 1e3);
    let start = Instant::now();
    let mut sent = Vec::with_capacity(events as usize);
    for n in 0..events {
        tokio::time::sleep_until((start + interval * n as u32).into()).await;
        let id = format!("{}-{n}", client.args.id_prefix);
        let sent_ns = unix_ns();
        client.publish(&mut conn, &id, n).await?;
        sent.push(json!([id, sent_ns, unix_ns()]));
    }
    let target = before.acked() + events;
    let (m, _) = client
        .poll_until(
            &mut control,
            Duration::from_millis(20),
            Duration::from_secs_f64(timeout_secs),
            "all acks",
            |m| m.acked() >= target,
        )
        .await?;
    let after = client.settled(&mut control).await?;
    let commits = after.commits - before.commits;
    println!(
        "{}",
        json!({
            "mode": "latency",
            "interval_ms": interval_ms,
            "acked": m.acked() - before.acked(),
            "retried": after.retried - before.retried,
            "commits": commits,
            "commits_per_event": commits as f64 / events as f64,
            // [ce-id, unix ns just before sending, unix ns at the 202]
            "sent": sent,
        })
    );
    Ok(())
}

async fn queue_wait(client: &Client, timeout_secs: f64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(timeout_secs);
    let mut conn = open_when_listening(&client.args.admin, deadline).await?;
    let left = deadline.saturating_duration_since(Instant::now());
    let (q, _) = client
        .poll_queue_until(
            &mut conn,
            Duration::from_millis(20),
            left,
            "the queue",
            |_| true,
        )
        .await?;
    println!(
        "{}",
        json!({ "mode": "queue-wait", "completed": q.completed })
    );
    Ok(())
}

async fn tasks(
    client: Arc<Client>,
    tasks: u64,
    connections: usize,
    paused: bool,
    poll_ms: u64,
    timeout_secs: f64,
) -> Result<()> {
    ensure!(tasks > 0 && connections > 0, "need tasks and connections");
    let mut control = Conn::open(&client.args.admin).await?;
    let before = client
        .queue(&mut control)
        .await?
        .with_context(|| format!("no queue `{}` in GET /v1/queues", client.args.queue))?;
    if paused {
        client.queue_action(&mut control, "pause").await?;
    }
    let (latencies, started, started_ns) =
        fan_out(&client, connections, tasks, Work::AddTask).await?;
    let added = started.elapsed();
    let resumed = Instant::now();
    if paused {
        client.queue_action(&mut control, "resume").await?;
    }
    // Polling starts after the last add: the queue cannot have completed
    // them all before, and the adds keep the server's CPU meanwhile.
    let target = before.completed + tasks;
    let (done, done_at) = client
        .poll_queue_until(
            &mut control,
            Duration::from_millis(poll_ms),
            Duration::from_secs_f64(timeout_secs),
            "all tasks completed",
            |q| q.completed >= target,
        )
        .await?;
    let end_to_end = done_at - started;
    let drained = done_at - resumed;
    println!(
        "{}",
        json!({
            "mode": "tasks",
            "tasks": tasks,
            "connections": connections,
            "started_unix_ns": started_ns,
            "enqueue_seconds": added.as_secs_f64(),
            "enqueue_rate": tasks as f64 / added.as_secs_f64(),
            "enqueue_p50_ms": percentile(&latencies, 50.0),
            "enqueue_p99_ms": percentile(&latencies, 99.0),
            "end_to_end_seconds": end_to_end.as_secs_f64(),
            "end_to_end_rate": tasks as f64 / end_to_end.as_secs_f64(),
            "paused": paused,
            // From the last add's 201 (paused: the resume sent) to all
            // completed.
            "drain_seconds": drained.as_secs_f64(),
            "drain_rate": paused.then(|| tasks as f64 / drained.as_secs_f64()),
            "poll_ms": poll_ms,
            "completed": done.completed - before.completed,
            "dispatched": done.dispatched - before.dispatched,
            "retried": done.retried - before.retried,
            "failed": done.failed - before.failed,
            "waiting": done.waiting,
            "in_flight": done.in_flight,
        })
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = Arc::new(Client { args });
    match client.args.mode {
        Mode::Wait { timeout_secs } => wait(&client, timeout_secs).await,
        Mode::Throughput {
            events,
            connections,
            poll_ms,
            timeout_secs,
        } => throughput(client.clone(), events, connections, poll_ms, timeout_secs).await,
        Mode::Latency {
            events,
            interval_ms,
            timeout_secs,
        } => latency(&client, events, interval_ms, timeout_secs).await,
        Mode::QueueWait { timeout_secs } => queue_wait(&client, timeout_secs).await,
        Mode::Tasks {
            tasks: n,
            connections,
            paused,
            poll_ms,
            timeout_secs,
        } => {
            tasks(
                client.clone(),
                n,
                connections,
                paused,
                poll_ms,
                timeout_secs,
            )
            .await
        }
    }
}
