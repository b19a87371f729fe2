//! A schedule's firing loop: sleeps until the cron's next time in its zone,
//! then records the firing durably (a task of the schedule's own queue, and
//! the schedule's last due time, in one transaction) and hands it to that
//! queue's dispatcher, which runs and retries it. After downtime, the
//! `missed` policy decides what runs for the firings that fell due.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{CronSchedule, MAX_MISSED_RUNS, Missed, Overlap, ScheduleSpec};
use crate::events::cloudevent::new_event;
use crate::events::now_ms;
use crate::tasks::dispatch::Dispatcher;
use crate::tasks::store::{Pending, TaskStore};
use crate::tasks::task::{Checked, Request, rfc3339};

/// The CloudEvent type a schedule's function receives.
pub const FIRED: &str = "dev.wisp.schedule.fired";

pub struct Schedule {
    pub spec: ScheduleSpec,
    cron: CronSchedule,
    pub dispatcher: Arc<Dispatcher>,
    store: TaskStore,
    paused: AtomicBool,
    wake: Notify,
    stop: CancellationToken,
}

/// What `wisp schedules list` shows.
#[derive(Serialize)]
pub struct ScheduleInfo {
    pub name: String,
    pub cron: String,
    pub time_zone: String,
    pub function: String,
    pub paused: bool,
    /// The next firing on the schedule's clock, and in UTC.
    pub next: Option<String>,
    pub next_utc: Option<String>,
    pub last_run: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub running: bool,
}

fn from_ms(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms as i64).unwrap_or_default()
}

impl Schedule {
    pub fn new(
        spec: ScheduleSpec,
        cron: CronSchedule,
        dispatcher: Arc<Dispatcher>,
        store: TaskStore,
    ) -> Arc<Self> {
        Arc::new(Schedule {
            spec,
            cron,
            dispatcher,
            store,
            paused: AtomicBool::new(false),
            wake: Notify::new(),
            stop: CancellationToken::new(),
        })
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The request one firing sends: the schedule's `target`, or a
    /// `dev.wisp.schedule.fired` CloudEvent in binary mode.
    fn firing(&self, due_ms: u64) -> Checked {
        let name = Some(format!("{}-{due_ms}", self.spec.name));
        if let Some(target) = &self.spec.target {
            return Checked {
                name,
                due_ms: None,
                request: Request {
                    method: target.method.clone(),
                    path: target.path.clone(),
                    headers: target.headers.clone().into_iter().collect(),
                },
                body: Bytes::from(target.body.clone()),
            };
        }
        let data = serde_json::json!({
            "schedule": self.spec.name,
            "scheduled_time": rfc3339(due_ms),
        });
        let mut event = new_event(
            &format!("/schedules/{}", self.spec.name),
            FIRED,
            Some("application/json"),
            Bytes::from(data.to_string()),
        );
        // The same firing has the same id on every attempt and restart.
        event.set_attribute("id", format!("{}-{due_ms}", self.spec.name));
        event.set_attribute("subject", self.spec.name.clone());
        event.set_attribute("time", rfc3339(due_ms));
        let headers = event
            .binary_headers()
            .iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        Checked {
            name,
            due_ms: None,
            request: Request {
                method: "POST".into(),
                path: None,
                headers,
            },
            body: event.data.clone(),
        }
    }

    /// Records a firing due at `due_ms` and hands it to the dispatcher;
    /// with `overlap = "skip"` (unless `forced`), not while a run is going.
    pub async fn fire(&self, due_ms: u64, forced: bool) {
        let name = &self.spec.name;
        if !forced && self.spec.overlap == Overlap::Skip && self.dispatcher.busy() {
            tracing::warn!(schedule = %name, due = %rfc3339(due_ms), "skipped: the previous run is still going (overlap = \"skip\")");
            return;
        }
        match self.store.fire(name, due_ms, self.firing(due_ms)).await {
            Ok(Some(seq)) => {
                tracing::info!(schedule = %name, due = %rfc3339(due_ms), "fired");
                self.dispatcher.add(Pending {
                    seq,
                    name: format!("{name}-{due_ms}"),
                    due_ms: now_ms(),
                    attempts: 0,
                    first_attempt_ms: None,
                });
            }
            Ok(None) => tracing::debug!(schedule = %name, "firing {due_ms} already recorded"),
            Err(e) => tracing::error!(schedule = %name, "could not record a firing: {e:#}"),
        }
    }

    /// Firings due after `last_ms` up to `now`, oldest first (capped).
    fn missed(&self, last_ms: u64, now: DateTime<Utc>) -> Vec<u64> {
        let mut due = Vec::new();
        let mut at = from_ms(last_ms);
        while let Some(next) = self.cron.next_after(at) {
            if next > now {
                break;
            }
            due.push(next.timestamp_millis() as u64);
            if due.len() > MAX_MISSED_RUNS {
                due.remove(0);
            }
            at = next;
        }
        due
    }

    /// Catches up per `missed`, then fires on time until stopped.
    pub async fn run(self: Arc<Self>) {
        let state = match self.store.schedule_state(&self.spec.name).await {
            Ok(state) => state,
            Err(e) => {
                tracing::error!(schedule = %self.spec.name, "{e:#}");
                return;
            }
        };
        self.paused.store(state.paused, Relaxed);
        let now = Utc::now();
        let mut last = now;
        if let Some(last_ms) = state.last_due_ms
            && !state.paused
        {
            let missed = self.missed(last_ms, now);
            if !missed.is_empty() {
                tracing::info!(
                    schedule = %self.spec.name,
                    "{} firing(s) fell due while the server was down: missed = {:?}",
                    missed.len(),
                    self.spec.missed
                );
            }
            let run: &[u64] = match self.spec.missed {
                Missed::Skip => &[],
                Missed::RunOnce => missed.last().map(std::slice::from_ref).unwrap_or(&[]),
                Missed::RunAll => &missed,
            };
            for &due in run {
                self.fire(due, true).await;
            }
        }
        loop {
            if self.paused.load(Relaxed) {
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    _ = self.wake.notified() => {}
                }
                last = Utc::now();
                continue;
            }
            let Some(next) = self.cron.next_after(last.max(Utc::now())) else {
                tracing::warn!(schedule = %self.spec.name, "the cron expression has no future firing");
                return;
            };
            let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = self.wake.notified() => continue,
                _ = tokio::time::sleep(wait) => {}
            }
            if self.paused.load(Relaxed) {
                continue;
            }
            self.fire(next.timestamp_millis() as u64, false).await;
            last = next;
        }
    }

    pub async fn set_paused(&self, paused: bool) -> anyhow::Result<()> {
        self.store
            .set_schedule_paused(&self.spec.name, paused)
            .await?;
        self.paused.store(paused, Relaxed);
        self.wake.notify_one();
        Ok(())
    }

    pub async fn info(&self) -> ScheduleInfo {
        let state = self
            .store
            .schedule_state(&self.spec.name)
            .await
            .unwrap_or_default();
        let paused = self.paused.load(Relaxed);
        let next = (!paused)
            .then(|| self.cron.next_after(Utc::now()))
            .flatten();
        ScheduleInfo {
            name: self.spec.name.clone(),
            cron: self.spec.cron.clone(),
            time_zone: self.spec.time_zone.clone(),
            function: match &self.spec.job {
                Some(job) => format!("job {job}"),
                None => self.spec.function().to_string(),
            },
            paused,
            next: next.map(|t| self.cron.local(t).to_rfc3339()),
            next_utc: next.map(|t| t.to_rfc3339()),
            last_run: state.last_run_ms.map(rfc3339),
            last_status: state.last_status,
            last_error: state.last_error,
            running: self.dispatcher.busy(),
        }
    }
}
