//! A sum over the trailing hour, kept in per-minute buckets: what a
//! function's `budget` is checked against (GB-seconds used in the last
//! hour). Adding and reading are a short mutex each.

use std::sync::Mutex;
use std::time::Duration;

/// Buckets in the window: one per minute of the hour.
const BUCKETS: usize = 60;
/// Each bucket's span.
pub const BUCKET: Duration = Duration::from_secs(60);

/// The sum of what was added in the last [`BUCKETS`] minutes.
#[derive(Debug, Default)]
pub struct HourWindow {
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    /// Indexed by minute modulo [`BUCKETS`].
    sums: [f64; BUCKETS],
    /// The minute (since the epoch) each bucket holds.
    minutes: [u64; BUCKETS],
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets {
            sums: [0.0; BUCKETS],
            minutes: [0; BUCKETS],
        }
    }
}

impl Buckets {
    /// The bucket of `minute`, emptied first if it held an older minute.
    fn at(&mut self, minute: u64) -> &mut f64 {
        let i = (minute % BUCKETS as u64) as usize;
        if self.minutes[i] != minute {
            self.minutes[i] = minute;
            self.sums[i] = 0.0;
        }
        &mut self.sums[i]
    }

    /// `(minute, sum)` of the buckets inside the hour ending at `minute`.
    fn live(&self, minute: u64) -> impl Iterator<Item = (u64, f64)> + '_ {
        self.minutes
            .iter()
            .zip(&self.sums)
            .filter(move |(m, _)| minute.saturating_sub(**m) < BUCKETS as u64 && **m <= minute)
            .map(|(m, s)| (*m, *s))
    }
}

impl HourWindow {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `amount` at `now` (time since the epoch).
    pub fn add(&self, now: Duration, amount: f64) {
        *self.lock().at(minute(now)) += amount;
    }

    /// The sum over the hour up to `now`.
    pub fn sum(&self, now: Duration) -> f64 {
        self.lock().live(minute(now)).map(|(_, s)| s).sum()
    }

    /// How long after `now` the sum falls to `limit` or below, as the
    /// oldest minutes leave the window; `None` if it is already there.
    pub fn below_in(&self, now: Duration, limit: f64) -> Option<Duration> {
        let buckets = self.lock();
        let current = minute(now);
        let mut live: Vec<(u64, f64)> = buckets.live(current).collect();
        let mut sum: f64 = live.iter().map(|(_, s)| s).sum();
        if sum <= limit {
            return None;
        }
        live.sort_by_key(|(m, _)| *m);
        for (m, s) in live {
            sum -= s;
            if sum <= limit {
                // Minute `m` leaves the window when minute m + BUCKETS starts.
                let leaves = BUCKET * u32::try_from(m + BUCKETS as u64).unwrap_or(u32::MAX);
                return Some(leaves.saturating_sub(now));
            }
        }
        // Only rounding gets here: all of it has left within the hour.
        Some(BUCKET * BUCKETS as u32)
    }
}

fn minute(now: Duration) -> u64 {
    now.as_secs() / BUCKET.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_minute(m: u64, s: u64) -> Duration {
        Duration::from_secs(m * 60 + s)
    }

    #[test]
    fn sums_the_trailing_hour_and_says_when_it_frees_up() {
        let w = HourWindow::default();
        w.add(at_minute(1000, 5), 2.0);
        w.add(at_minute(1000, 50), 1.0);
        w.add(at_minute(1010, 0), 4.0);
        assert_eq!(w.sum(at_minute(1010, 30)), 7.0);
        // Under the limit: nothing to wait for.
        assert_eq!(w.below_in(at_minute(1010, 30), 7.0), None);
        // Minute 1000 leaves at the start of minute 1060.
        assert_eq!(
            w.below_in(at_minute(1059, 30), 5.0),
            Some(Duration::from_secs(30))
        );
        assert_eq!(w.sum(at_minute(1060, 0)), 4.0);
        // A bucket reused an hour later starts from zero.
        w.add(at_minute(1060, 1), 1.0);
        assert_eq!(w.sum(at_minute(1060, 2)), 5.0);
        assert_eq!(w.sum(at_minute(1200, 0)), 0.0);
    }
}
