//! Log lines on stderr, one per event, with their level.
//!
//! When stderr is journald's stream (`JOURNAL_STREAM` names it) each line
//! starts with a syslog priority such as `<4>`, which journald turns into
//! the entry's level, and carries no timestamp of its own (journald adds
//! one). Elsewhere a line reads `2026-11-24T16:05:01.123Z warn: ...`.
//!
//! [`RateLimiter`] keeps a flood of bad input from flooding the log.

use std::ffi::OsStr;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
    Trace = 4,
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

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    /// The syslog priority journald understands.
    fn syslog_priority(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        }
    }
}

static MAX_LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static UNDER_JOURNAL: AtomicBool = AtomicBool::new(false);

/// Sets the level and detects journald. Until called, `info` and above
/// are written with timestamps.
pub fn init(level: Level) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
    UNDER_JOURNAL.store(stderr_is_journal(), Ordering::Relaxed);
}

/// Whether journald reads our stderr. systemd sets `JOURNAL_STREAM` to the
/// stream it gives a service; the variable alone is not enough, as children
/// inherit it with their stderr sent elsewhere (`2>file`, a test harness),
/// and those want plain lines with timestamps.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let stderr = std::io::stderr().as_fd().try_clone_to_owned().map(std::fs::File::from);
    match stderr.and_then(|file| file.metadata()) {
        Ok(metadata) => names_stream(&stream, metadata.dev(), metadata.ino()),
        Err(_) => false,
    }
}

/// `JOURNAL_STREAM` is `DEVICE:INODE`, in decimal (systemd.exec(5)).
fn names_stream(value: &OsStr, device: u64, inode: u64) -> bool {
    value
        .to_str()
        .and_then(|value| value.split_once(':'))
        .is_some_and(|(d, i)| d.parse() == Ok(device) && i.parse() == Ok(inode))
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

/// Writes one line; use the `error!`..`trace!` macros rather than this.
pub fn write(level: Level, message: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let line = if UNDER_JOURNAL.load(Ordering::Relaxed) {
        format!("<{}>{}: {}\n", level.syslog_priority(), level.name(), message)
    } else {
        format!("{} {}: {}\n", utc_timestamp(SystemTime::now()), level.name(), message)
    };
    // A closed stderr must not stop the daemon: the line is lost, no more.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Writes the one line of an error that ends the process before [`init`]
/// (a usage, config or start-up error): `dmg_manager: MESSAGE`, with
/// journald's priority `err` (`<3>`) first when stderr is the journal, so
/// that `journalctl -p err` shows why a service did not start.
pub fn fatal(message: std::fmt::Arguments<'_>) {
    let priority = if stderr_is_journal() { "<3>" } else { "" };
    let _ = writeln!(std::io::stderr().lock(), "{priority}dmg_manager: {message}");
}

#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($arg)*)) } }
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($arg)*)) } }
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($arg)*)) } }
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($arg)*)) } }
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Trace, format_args!($($arg)*)) } }

/// `2026-11-24T16:05:01.123Z`.
pub fn utc_timestamp(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let second_of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since_epoch.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm), so we need no date crate for a log prefix.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Lets through at most `burst` lines per `window`, and counts the rest
/// so the next line that goes through can say how many were suppressed.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    window: Duration,
    burst: u32,
    window_start: Option<Instant>,
    in_window: u32,
    suppressed: u64,
}

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; `suppressed` lines were dropped since the last one written.
    Write {
        suppressed: u64,
    },
    Suppress,
}

impl RateLimiter {
    pub fn new(burst: u32, window: Duration) -> RateLimiter {
        RateLimiter {
            window,
            burst,
            window_start: None,
            in_window: 0,
            suppressed: 0,
        }
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
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
    }

    #[test]
    fn journal_stream_must_name_this_very_stderr() {
        assert!(names_stream(OsStr::new("8:12345"), 8, 12345));
        assert!(
            !names_stream(OsStr::new("8:12345"), 8, 99),
            "inherited, stderr elsewhere"
        );
        assert!(!names_stream(OsStr::new("8:12345"), 9, 12345));
        for garbage in ["", "8", "8:", ":1", "a:b", "8:12345:1"] {
            assert!(!names_stream(OsStr::new(garbage), 8, 12345), "{garbage:?}");
        }
    }

    #[test]
    fn timestamps_are_utc_iso8601() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let time = UNIX_EPOCH + Duration::from_millis(1_371_071_554_160);
        assert_eq!(utc_timestamp(time), "2013-06-12T21:12:34.160Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(leap_day), "2000-02-29T00:00:00.000Z");
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
