//! Percentiles of timed samples, and the units the table prints.

use std::time::Duration;

/// The median and 99th percentile of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
}

/// Nearest-rank percentiles; `samples` is sorted in place.
pub fn summarize(samples: &mut [Duration]) -> Summary {
    samples.sort_unstable();
    let rank = |percent: usize| -> Duration {
        if samples.is_empty() {
            return Duration::ZERO;
        }
        let index = (samples.len() * percent).div_ceil(100).max(1) - 1;
        samples[index.min(samples.len() - 1)]
    };
    Summary {
        p50: rank(50),
        p99: rank(99),
    }
}

/// `87 µs`, `1.42 ms`, `2.31 s`.
pub fn duration(d: Duration) -> String {
    let micros = d.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1_000_000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

/// `p50 / p99` of a summary.
pub fn p50_p99(summary: &Summary) -> String {
    format!("{} / {}", duration(summary.p50), duration(summary.p99))
}

/// `1.31×`, or `-` when there is nothing to compare with.
pub fn ratio(value: f64, floor: f64) -> String {
    if floor > 0.0 && value.is_finite() {
        format!("{:.2}×", value / floor)
    } else {
        "-".into()
    }
}

/// Kibibytes as `812 KiB` or `3.6 MiB`.
pub fn kib(k: u64) -> String {
    if k < 1024 {
        format!("{k} KiB")
    } else {
        format!("{:.1} MiB", k as f64 / 1024.0)
    }
}

/// A rate as `123 k/s`.
pub fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

pub fn rate(per_second: f64) -> String {
    format!("{:.0} k/s", per_second / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let summary = summarize(&mut samples);
        assert_eq!(summary.p50, Duration::from_micros(50));
        assert_eq!(summary.p99, Duration::from_micros(99));
    }
}
