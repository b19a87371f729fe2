//! One function's last hour, minute by minute: invocations, errors, latency
//! and cold starts, for the dashboard's charts, and GB-seconds used, which
//! a function's `budget` is checked against. The Prometheus series keep
//! totals since start; this keeps a ring of per-minute buckets (wall-clock
//! minutes), so rates and quantiles over the last hour need no time-series
//! database. A bucket is about 500 bytes; a function keeps [`KEPT`].

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::telemetry::metrics::Outcome;

/// Minutes kept: the current one and the 59 before it.
pub const KEPT: usize = 60;

/// Latency buckets per doubling: bucket `i` holds durations from 2^(i/4)
/// to 2^((i+1)/4) µs, so a quantile read as its bucket's geometric middle
/// is within about 9% of the true value.
const PER_DOUBLING: f64 = 4.0;
/// 2^(120/4) µs ≈ 18 minutes; longer durations count in the last bucket.
const LATENCY_BUCKETS: usize = 120;

/// Minutes since the Unix epoch, now.
pub fn current_minute() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
        / 60
}

/// Whether an outcome counts as an error on the dashboard: the function
/// answered 5xx, or it failed in a way that is not the client's doing
/// (pool full, timeout, memory, trap, CPU time). 4xx, 413, 429 and clients
/// that went away are not errors.
fn is_error(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::ServerError
            | Outcome::Unavailable
            | Outcome::TimedOut
            | Outcome::Memory
            | Outcome::Trap
            | Outcome::CpuTime
    )
}

#[derive(Clone)]
struct Bucket {
    /// The minute (since the epoch) counted; a bucket of an older minute
    /// is reset before it counts again.
    minute: u64,
    finished: u32,
    errors: u32,
    cold: u32,
    warm: u32,
    /// GB-seconds of the invocations metered in it.
    gb_s: f64,
    latency: [u32; LATENCY_BUCKETS],
}

impl Bucket {
    fn empty(minute: u64) -> Self {
        Bucket {
            minute,
            finished: 0,
            errors: 0,
            cold: 0,
            warm: 0,
            gb_s: 0.0,
            latency: [0; LATENCY_BUCKETS],
        }
    }
}

/// The per-minute ring of one function.
pub struct Minutes {
    ring: Mutex<Vec<Bucket>>,
}

impl std::fmt::Debug for Minutes {
    /// Without the buckets: 30 KB of mostly zeros.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minutes").finish_non_exhaustive()
    }
}

impl Default for Minutes {
    fn default() -> Self {
        Minutes {
            ring: Mutex::new(vec![Bucket::empty(0); KEPT]),
        }
    }
}

/// Some minutes of one function, oldest first: each `Vec` has one entry
/// per minute.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Window {
    /// Invocations finished.
    pub invocations: Vec<u32>,
    /// Of them, errors (the function's 5xx and Wisp's kills; not 4xx).
    pub errors: Vec<u32>,
    /// Invocations started on an instance that had served none before.
    pub cold: Vec<u32>,
    /// Invocations started on an instance that had served one before.
    pub warm: Vec<u32>,
    /// Median duration in milliseconds (`None` without invocations).
    pub p50_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// The whole window.
    pub total: Total,
}

/// A [`Window`] summed up.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Total {
    pub invocations: u64,
    pub errors: u64,
    pub cold: u64,
    pub warm: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Minutes {
    /// An invocation ended after `duration`.
    pub fn finished(&self, outcome: Outcome, duration: Duration) {
        self.count(current_minute(), |b| {
            b.finished += 1;
            b.errors += u32::from(is_error(outcome));
            b.latency[latency_bucket(duration)] += 1;
        });
    }

    /// An invocation started on an instance: a new one (`cold`) or one
    /// that had served before.
    pub fn started(&self, cold: bool) {
        self.count(current_minute(), |b| {
            if cold {
                b.cold += 1;
            } else {
                b.warm += 1;
            }
        });
    }

    /// GB-seconds used at `now` (time since the epoch).
    pub fn spend(&self, now: Duration, gb_s: f64) {
        self.count(minute_of(now), |b| b.gb_s += gb_s);
    }

    /// GB-seconds used in the hour up to `now`.
    pub fn spent(&self, now: Duration) -> f64 {
        self.spending(minute_of(now)).iter().map(|(_, s)| s).sum()
    }

    /// How long after `now` the GB-seconds of the trailing hour fall to
    /// `limit` or below, as the oldest minutes leave it; `None` if they
    /// are there already.
    pub fn spent_below_in(&self, now: Duration, limit: f64) -> Option<Duration> {
        let mut spending = self.spending(minute_of(now));
        let mut sum: f64 = spending.iter().map(|(_, s)| s).sum();
        if sum <= limit {
            return None;
        }
        spending.sort_by_key(|(m, _)| *m);
        for (m, s) in spending {
            sum -= s;
            if sum <= limit {
                // Minute `m` leaves the hour when minute m + KEPT starts.
                let leaves = Duration::from_secs((m + KEPT as u64) * 60);
                return Some(leaves.saturating_sub(now));
            }
        }
        // Only rounding gets here: all of it has left within the hour.
        Some(Duration::from_secs(KEPT as u64 * 60))
    }

    /// `(minute, GB-seconds)` of the minutes in the hour up to `minute`.
    fn spending(&self, minute: u64) -> Vec<(u64, f64)> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter()
            .filter(|b| b.minute <= minute && minute - b.minute < KEPT as u64 && b.gb_s > 0.0)
            .map(|b| (b.minute, b.gb_s))
            .collect()
    }

    fn count(&self, minute: u64, add: impl FnOnce(&mut Bucket)) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = &mut ring[(minute % KEPT as u64) as usize];
        if bucket.minute != minute {
            *bucket = Bucket::empty(minute);
        }
        add(bucket);
    }

    /// The `minutes` minutes up to and including `now` (at most [`KEPT`]).
    pub fn window(&self, now: u64, minutes: usize) -> Window {
        let minutes = minutes.min(KEPT) as u64;
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = Window::default();
        let mut all = [0u32; LATENCY_BUCKETS];
        for minute in (now + 1).saturating_sub(minutes)..=now {
            let bucket = &ring[(minute % KEPT as u64) as usize];
            let empty = Bucket::empty(minute);
            let b = if bucket.minute == minute {
                bucket
            } else {
                &empty
            };
            w.invocations.push(b.finished);
            w.errors.push(b.errors);
            w.cold.push(b.cold);
            w.warm.push(b.warm);
            w.p50_ms.push(quantile(&b.latency, 0.5));
            w.p99_ms.push(quantile(&b.latency, 0.99));
            for (sum, n) in all.iter_mut().zip(&b.latency) {
                *sum += n;
            }
        }
        let sum = |v: &[u32]| v.iter().map(|&n| u64::from(n)).sum();
        w.total = Total {
            invocations: sum(&w.invocations),
            errors: sum(&w.errors),
            cold: sum(&w.cold),
            warm: sum(&w.warm),
            p50_ms: quantile(&all, 0.5),
            p99_ms: quantile(&all, 0.99),
        };
        w
    }
}

fn minute_of(since_epoch: Duration) -> u64 {
    since_epoch.as_secs() / 60
}

fn latency_bucket(d: Duration) -> usize {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1.0 {
        return 0;
    }
    ((micros.log2() * PER_DOUBLING) as usize).min(LATENCY_BUCKETS - 1)
}

/// The `q` quantile of a latency histogram, in milliseconds: the geometric
/// middle of the bucket holding it.
fn quantile(histogram: &[u32; LATENCY_BUCKETS], q: f64) -> Option<f64> {
    let n: u64 = histogram.iter().map(|&c| u64::from(c)).sum();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as u64).max(1);
    let mut seen = 0;
    let i = histogram.iter().position(|&c| {
        seen += u64::from(c);
        seen >= rank
    })?;
    Some(2f64.powf((i as f64 + 0.5) / PER_DOUBLING) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let m = Minutes::default();
        let now = current_minute();
        for i in 1..=100 {
            m.count(now, |b| b.latency[latency_bucket(ms(i))] += 1);
        }
        let w = m.window(now, 1);
        let (p50, p99) = (w.p50_ms[0].unwrap(), w.p99_ms[0].unwrap());
        assert!((p50 / 50.0 - 1.0).abs() < 0.1, "p50 {p50}");
        assert!((p99 / 99.0 - 1.0).abs() < 0.1, "p99 {p99}");
        assert_eq!(latency_bucket(Duration::ZERO), 0);
        assert_eq!(
            latency_bucket(Duration::from_secs(1 << 20)),
            LATENCY_BUCKETS - 1
        );
    }

    #[test]
    fn minutes_fall_out_of_the_ring_and_windows_end_now() {
        let m = Minutes::default();
        let now = 1_000_000;
        m.count(now - 2, |b| b.finished += 3);
        m.count(now, |b| {
            b.finished += 1;
            b.errors += 1;
            b.cold += 1;
        });
        let w = m.window(now, 3);
        assert_eq!(w.invocations, [3, 0, 1]);
        assert_eq!(
            (w.total.invocations, w.total.errors, w.total.cold),
            (4, 1, 1)
        );
        assert_eq!(w.p50_ms, [None, None, None]);
        assert_eq!(m.window(now, 1000).invocations.len(), KEPT);
        // An hour later the same slots count new minutes.
        m.count(now + KEPT as u64, |b| b.finished += 7);
        let later = m.window(now + KEPT as u64, KEPT);
        assert_eq!(later.total.invocations, 7, "{later:?}");
    }

    fn at_minute(m: u64, s: u64) -> Duration {
        Duration::from_secs(m * 60 + s)
    }

    #[test]
    fn spending_sums_the_trailing_hour_and_says_when_it_frees_up() {
        let m = Minutes::default();
        m.spend(at_minute(1000, 5), 2.0);
        m.spend(at_minute(1000, 50), 1.0);
        m.spend(at_minute(1010, 0), 4.0);
        assert_eq!(m.spent(at_minute(1010, 30)), 7.0);
        // Under the limit: nothing to wait for.
        assert_eq!(m.spent_below_in(at_minute(1010, 30), 7.0), None);
        // Minute 1000 leaves at the start of minute 1060.
        assert_eq!(
            m.spent_below_in(at_minute(1059, 30), 5.0),
            Some(Duration::from_secs(30))
        );
        assert_eq!(m.spent(at_minute(1060, 0)), 4.0);
        // A bucket reused an hour later starts from zero.
        m.spend(at_minute(1060, 1), 1.0);
        assert_eq!(m.spent(at_minute(1060, 2)), 5.0);
        assert_eq!(m.spent(at_minute(1200, 0)), 0.0);
    }

    #[test]
    fn errors_are_server_side_failures() {
        let m = Minutes::default();
        for outcome in Outcome::ALL {
            m.finished(outcome, ms(1));
        }
        m.started(true);
        m.started(false);
        m.started(false);
        // Counted in this minute or, had it just turned, the one before.
        let w = m.window(current_minute(), 2);
        assert_eq!(w.total.invocations, Outcome::ALL.len() as u64);
        assert_eq!(w.total.errors, 6);
        assert_eq!((w.total.cold, w.total.warm), (1, 2));
    }
}
