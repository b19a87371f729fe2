//! `GET /v1/dashboard/series?window=1h`: every function's last minutes —
//! invocations, errors, p50/p99 latency and cold starts per minute, and
//! their totals — read from the per-minute ring its metrics keep
//! ([`crate::telemetry::metrics::minutes`]).

use std::time::Duration;

use http::StatusCode;
use serde::Serialize;

use crate::deploy::registry::{Registry, Status};
use crate::telemetry::metrics::minutes::{KEPT, Minutes, Window, current_minute};

/// The window when the request names none: all that is kept.
const DEFAULT_WINDOW: usize = KEPT;

#[derive(Serialize)]
pub struct Series {
    pub window_minutes: usize,
    /// The start of each minute, in seconds since the Unix epoch, oldest
    /// first; the last is the current, partial minute.
    pub minutes: Vec<u64>,
    pub functions: Vec<FunctionSeries>,
}

#[derive(Serialize)]
pub struct FunctionSeries {
    pub name: String,
    pub status: Status,
    pub current_revision: u64,
    #[serde(flatten)]
    pub window: Window,
}

/// The `window` query parameter: whole minutes, from 1m to 1h.
fn window(query: Option<&str>) -> Result<usize, String> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("window="))
    else {
        return Ok(DEFAULT_WINDOW);
    };
    let bad = || format!("`window` = `{value}`: write whole minutes from 1m to 1h, like 15m or 1h");
    let d = humantime::parse_duration(value).map_err(|_| bad())?;
    let minutes = d.as_secs() / 60;
    if d != Duration::from_secs(minutes * 60) || !(1..=KEPT as u64).contains(&minutes) {
        return Err(bad());
    }
    Ok(minutes as usize)
}

/// Every function's series over the window the query asks for.
pub fn series(registry: &Registry, query: Option<&str>) -> Result<Series, (StatusCode, String)> {
    let minutes = window(query).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let now = current_minute();
    let functions = registry
        .list()
        .into_iter()
        .map(|info| FunctionSeries {
            window: registry
                .function_metrics(&info.name)
                .map(|m| m.last_minutes(now, minutes))
                // A function that failed to load before it ever served.
                .unwrap_or_else(|| Minutes::default().window(now, minutes)),
            name: info.name,
            status: info.status,
            current_revision: info.current_revision,
        })
        .collect();
    Ok(Series {
        window_minutes: minutes,
        minutes: (now + 1 - minutes as u64..=now).map(|m| m * 60).collect(),
        functions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_minutes_up_to_an_hour() {
        assert_eq!(window(None), Ok(60));
        assert_eq!(window(Some("window=15m")), Ok(15));
        assert_eq!(window(Some("x=1&window=1h")), Ok(60));
        for bad in ["2h", "90s", "0m", "soon"] {
            let e = window(Some(&format!("window={bad}"))).unwrap_err();
            assert!(e.contains(bad) && e.contains("1m to 1h"), "{e}");
        }
    }
}
