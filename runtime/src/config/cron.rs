//! Cron expressions in a time zone, as `[[schedule]]` tables write them:
//! parsed by croner (5 fields, 6 with seconds first, `@hourly` and kin,
//! `L`, `#`, `W`), evaluated in an IANA zone by chrono-tz. Across daylight
//! saving changes croner's rules apply, as Vixie cron's: a fixed time in a
//! spring-forward gap runs when the gap ends (a 02:30 job at 03:00 that
//! day), one in a fall-back overlap runs once (at the first), and interval
//! patterns keep their interval through both.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed `cron` in its `time_zone`.
#[derive(Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}", self.cron.pattern, self.zone)
    }
}

const FIELDS_5: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
const FIELDS_6: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day of month",
    "month",
    "day of week",
];

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).build()
}

impl CronSchedule {
    /// Parses `expr` in `zone`; errors are `(key, message)`, the message
    /// naming the cron field at fault when one is.
    pub fn parse(expr: &str, zone: &str) -> Result<Self, (&'static str, String)> {
        let zone: Tz = zone.parse().map_err(|_| {
            (
                "time_zone",
                format!("`{zone}` is not an IANA time zone name, like \"Asia/Seoul\" or \"UTC\""),
            )
        })?;
        let cron = parser()
            .parse(expr)
            .map_err(|e| ("cron", describe(expr, &e)))?;
        Ok(CronSchedule { cron, zone })
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The same instant on the schedule's own clock.
    pub fn local(&self, at: DateTime<Utc>) -> DateTime<Tz> {
        at.with_timezone(&self.zone)
    }
}

/// croner's error, with the field that fails alone when there is one: each
/// field is replaced by `*` in turn, and the one whose replacement makes
/// the expression parse is named.
fn describe(expr: &str, error: &croner::errors::CronError) -> String {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let names: &[&str] = match fields.len() {
        5 => &FIELDS_5,
        6 => &FIELDS_6,
        _ => {
            return format!(
                "`{expr}`: {error}; write 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or an alias like @hourly"
            );
        }
    };
    for (i, name) in names.iter().enumerate() {
        let mut trial = fields.clone();
        trial[i] = "*";
        if parser().parse(&trial.join(" ")).is_ok() {
            return format!(
                "`{expr}`: the {name} field `{}` is invalid: {error}",
                fields[i]
            );
        }
    }
    format!("`{expr}`: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn fires_in_its_zone() {
        let s = CronSchedule::parse("0 6 * * *", "Asia/Seoul").unwrap();
        // 06:00 in Seoul is 21:00 UTC the day before.
        assert_eq!(
            s.next_after(at("2026-11-28T12:00:00Z")),
            Some(at("2026-11-28T21:00:00Z"))
        );
        let every_two = CronSchedule::parse("*/2 * * * * *", "UTC").unwrap();
        assert_eq!(
            every_two.next_after(at("2026-11-28T12:00:00Z")),
            Some(at("2026-11-28T12:00:02Z"))
        );
        assert!(CronSchedule::parse("@hourly", "UTC").is_ok());
    }

    #[test]
    fn a_fixed_time_in_a_dst_gap_runs_when_the_gap_ends() {
        // New York springs forward at 02:00 on 2026-03-08: 02:30 does not
        // exist that day, so it runs at 03:00 EDT; the next day at 02:30.
        let s = CronSchedule::parse("30 2 * * *", "America/New_York").unwrap();
        let next = s.next_after(at("2026-03-08T05:00:00Z")).unwrap();
        assert_eq!(next, at("2026-03-08T07:00:00Z"));
        assert_eq!(s.next_after(next), Some(at("2026-03-09T06:30:00Z")));
    }

    #[test]
    fn errors_name_the_field_and_the_key() {
        let (key, msg) = CronSchedule::parse("61 * * * *", "UTC").unwrap_err();
        assert_eq!(key, "cron");
        assert!(msg.contains("minute field `61`"), "{msg}");
        let (key, msg) = CronSchedule::parse("* * * *", "UTC").unwrap_err();
        assert_eq!(key, "cron");
        assert!(msg.contains("5 fields"), "{msg}");
        let (key, msg) = CronSchedule::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(key, "time_zone");
        assert!(msg.contains("IANA"), "{msg}");
    }
}
