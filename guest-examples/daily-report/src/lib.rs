//! `daily-report`: the function the `daily-report` schedule runs every day
//! at 06:00 in Asia/Seoul (guest-examples/wisp.toml).
//!
//! Each firing arrives as a `dev.wisp.schedule.fired` CloudEvent in binary
//! mode, with data `{"schedule": "daily-report", "scheduled_time":
//! "2026-11-28T21:00:00.000Z"}` and the id `daily-report-<due time in ms>`,
//! the same on every retry of that firing. It prints one line
//! (`daily-report: report for <scheduled_time> (event <id>)`) and
//! acknowledges (`204`). A real report would be keyed on that id, so that a
//! redelivered firing does not send the report twice.
//!
//! Events of other types are acknowledged and ignored. A firing without a
//! `scheduled_time` fails (`500`), so Wisp retries it up to the schedule's
//! `max_attempts`.

use wisp_sdk::serde_json::Value;
use wisp_sdk::{CloudEvent, event_handler};

/// The type of the events a schedule sends.
const FIRED: &str = "dev.wisp.schedule.fired";

/// The time the firing was due, from its data.
fn scheduled_time(event: &CloudEvent) -> Result<String, String> {
    let data: Value = event.data_json().map_err(|e| e.to_string())?;
    data.get("scheduled_time")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "the event's data has no `scheduled_time`".into())
}

#[event_handler]
fn daily_report(event: CloudEvent) -> Result<(), String> {
    if event.event_type() != FIRED {
        println!("daily-report: ignoring event {} of type {}", event.id(), event.event_type());
        return Ok(());
    }
    let due = scheduled_time(&event)?;
    println!("daily-report: report for {due} (event {})", event.id());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firing(data: &str) -> CloudEvent {
        CloudEvent::new("daily-report-1795899600000", "/schedules/daily-report", FIRED)
            .with_attribute("subject", "daily-report")
            .with_data("application/json", data)
    }

    #[test]
    fn a_firing_makes_the_report() {
        let event = firing(r#"{"schedule": "daily-report", "scheduled_time": "2026-11-28T21:00:00.000Z"}"#);
        assert_eq!(scheduled_time(&event).as_deref(), Ok("2026-11-28T21:00:00.000Z"));
        assert_eq!(daily_report(event), Ok(()));
        assert_eq!(daily_report(CloudEvent::new("e1", "/shop", "com.example.other")), Ok(()));
    }

    #[test]
    fn a_firing_without_its_time_fails_so_it_is_retried() {
        assert!(daily_report(firing(r#"{"schedule": "daily-report"}"#)).is_err());
        assert!(daily_report(firing("not json")).is_err());
    }
}
