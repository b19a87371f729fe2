//! Helpers shared by the Wisp benchmark binaries. The benchmark itself is
//! driven by `benches/run` (see `benches/README.md`); the binaries here are
//! the parts that have to be Rust: the in-process invocation measurement,
//! which links the Wisp library, the native hyper server that serves as
//! the throughput ceiling in the HTTP comparison, and the load generator
//! of the events and task-queue sections (6 and 7).

use std::time::Duration;

/// Summary of one series of per-invocation timings, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

impl Summary {
    /// Summarizes `samples`; `None` for an empty series, so a mode that could
    /// not run is reported as missing rather than as zero.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut us: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        Some(Summary {
            n: us.len(),
            p50_us: percentile(&us, 50.0),
            p99_us: percentile(&us, 99.0),
            mean_us: us.iter().sum::<f64>() / us.len() as f64,
        })
    }
}

/// Nearest-rank percentile of an ascending, non-empty slice: always one of
/// the measured values, never an interpolation between two of them, so a
/// p99 of a short series is an invocation that really happened.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0], 0.0), 1.0);
    }

    #[test]
    fn summary_of_durations() {
        let samples: Vec<Duration> = [3, 1, 2, 4].map(Duration::from_micros).into();
        let s = Summary::of(&samples).unwrap();
        assert_eq!((s.n, s.p50_us, s.p99_us, s.mean_us), (4, 2.0, 4.0, 2.5));
        assert!(Summary::of(&[]).is_none());
    }
}
