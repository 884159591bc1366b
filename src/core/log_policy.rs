//! What the core decides about the log, with no I/O: the config's
//! `log_level` ([`Level`]) and the [`RateLimiter`] that keeps a flood of bad
//! input from flooding the log. Writing the records is `sys::log`.

use std::time::{Duration, Instant};

/// The `log_level` of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// Parses a config value; `warning` is accepted as Python's name for `warn`.
    pub fn parse(text: &str) -> Option<Level> {
        match text.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            "trace" => Some(Level::Trace),
            _ => None,
        }
    }
}

impl From<Level> for log::Level {
    fn from(level: Level) -> log::Level {
        match level {
            Level::Error => log::Level::Error,
            Level::Warn => log::Level::Warn,
            Level::Info => log::Level::Info,
            Level::Debug => log::Level::Debug,
            Level::Trace => log::Level::Trace,
        }
    }
}

/// Lets through at most `burst` lines per `window`, and counts the rest
/// so the next line that goes through can say how many were suppressed.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    window: Duration,
    burst: u32,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Write it; `suppressed` lines were dropped since the last one written.
    Write {
        suppressed: u64,
    },
    Suppress,
}

impl RateLimiter {
    pub(crate) fn new(burst: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            window,
            burst,
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    pub(crate) fn check(&mut self, now: Instant) -> Verdict {
        let window_over = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= self.window);
        if window_over {
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            Verdict::Write {
                suppressed: std::mem::take(&mut self.suppressed),
            }
        } else {
            self.suppressed += 1;
            Verdict::Suppress
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse("trace"), Some(Level::Trace));
        assert_eq!(Level::parse("verbose"), None);
        assert!(Level::Error < Level::Debug);
        assert_eq!(log::Level::from(Level::Warn), log::Level::Warn);
    }

    #[test]
    fn rate_limiter_lets_a_burst_through_then_counts() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(2, Duration::from_secs(10));
        assert_eq!(limiter.check(start), Verdict::Write { suppressed: 0 });
        assert_eq!(limiter.check(start), Verdict::Write { suppressed: 0 });
        for _ in 0..1000 {
            assert_eq!(limiter.check(start + Duration::from_secs(1)), Verdict::Suppress);
        }
        assert_eq!(
            limiter.check(start + Duration::from_secs(10)),
            Verdict::Write { suppressed: 1000 }
        );
        assert_eq!(
            limiter.check(start + Duration::from_secs(11)),
            Verdict::Write { suppressed: 0 }
        );
        assert_eq!(limiter.check(start + Duration::from_secs(12)), Verdict::Suppress);
    }
}
