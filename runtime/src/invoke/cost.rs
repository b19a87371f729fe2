//! Cost metering and `budget`: what each invocation used — wall time,
//! guest CPU time, peak memory, GB-seconds — counted per function and
//! trigger, and the refusal of new invocations once a function's
//! GB-seconds in the trailing hour pass its `budget`.
//!
//! GB-seconds are the function's `memory` limit in GiB × the invocation's
//! wall time, as serverless billing counts them (what was reserved, not
//! what was touched). An invocation refused before it ran on an instance
//! costs nothing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Span;
use crate::invoke::{Failure, Invocation, LiveRevision};
use crate::logs::Access;
use crate::telemetry::metrics::{FunctionMetrics, Usage};

const GIB: f64 = (1u64 << 30) as f64;

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Measures what `invocation` used in `wall`, its function's `memory`
/// limit being `memory` bytes, and counts it in the function's `metrics`
/// and budget window.
pub fn meter(
    metrics: &FunctionMetrics,
    memory: u64,
    invocation: &Invocation,
    wall: Duration,
) -> Usage {
    let usage = match invocation.usage() {
        None => Usage {
            wall,
            ..Usage::default()
        },
        Some((cpu, peak_memory)) => Usage {
            wall,
            cpu,
            peak_memory,
            gb_s: memory as f64 / GIB * wall.as_secs_f64(),
        },
    };
    metrics.invocation_metered(invocation.trigger, &usage, since_epoch());
    usage
}

/// Refuses a new invocation of `live` when its function used more than its
/// `budget` of GB-seconds in the trailing hour.
pub fn check_budget(live: &LiveRevision) -> Result<(), Failure> {
    let Some(budget) = live.spec.budget else {
        return Ok(());
    };
    let now = since_epoch();
    match live.metrics.minutes.spent_below_in(now, budget) {
        None => Ok(()),
        Some(frees_in) => Err(Failure::BudgetSpent {
            budget: budget.to_string(),
            // Whole seconds, rounded up: never earlier than it frees.
            frees_in: Span(Duration::from_secs(frees_in.as_secs() + 1)),
        }),
    }
}

impl Access {
    /// An access record of an invocation that used `usage`.
    pub fn metered(status: u16, usage: &Usage, request: Option<(http::Method, String)>) -> Access {
        Access {
            status,
            duration_ms: crate::telemetry::logging::millis(usage.wall),
            request,
            cpu_ms: usage.cpu.as_secs_f64() * 1000.0,
            peak_memory_bytes: usage.peak_memory,
            gb_s: usage.gb_s,
        }
    }
}
