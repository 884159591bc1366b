//! The log: the `log` facade's records (`error!`..`trace!`, with fields),
//! sent where the service's log is read.
//!
//! When journald reads our stderr (`JOURNAL_STREAM` names it) each record
//! goes to the journal in its native protocol (systemd-journal-logger):
//! `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER=dmg_manager`, and the record's
//! fields as journal fields, upper-cased:
//!
//! - `CLIENT_ID` (key `client_id`): the client a line is about, as in the
//!   clients list (`domogik-diskfree.myhost`), so that
//!   `journalctl -u domogik-manager CLIENT_ID=domogik-diskfree.myhost` shows
//!   one plugin's story;
//! - `PEER` (key `peer`): the ZeroMQ address of the other end, on lines
//!   about a connection (`tcp://127.0.0.1:40412`).
//!
//! Elsewhere (a terminal, a file, a test) a record is one text line on
//! stderr, `2026-11-24T16:05:01.123Z warn: ...`, its fields left out (the
//! message names the client already). Should the journal refuse a record,
//! the line goes to stderr with its syslog priority first (`<4>warn: ...`),
//! which journald also understands.
//!
//! [`RateLimiter`] keeps a flood of bad input from flooding the log.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};
use systemd_journal_logger::JournalLog;

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

/// Where records go: the journal, or text lines on stderr.
struct Logger {
    journal: Option<JournalLog>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sent = self
            .journal
            .as_ref()
            .is_some_and(|journal| journal.journal_send(record).is_ok());
        if !sent {
            write_line(record, self.journal.is_some());
        }
    }

    fn flush(&self) {}
}

/// One record as a text line on stderr: timestamped, or with its syslog
/// priority first when stderr is the journal's stream.
fn write_line(record: &log::Record<'_>, to_journal_stream: bool) {
    let level = level_name(record.level());
    let line = if to_journal_stream {
        format!("<{}>{level}: {}\n", syslog_priority(record.level()), record.args())
    } else {
        format!("{} {level}: {}\n", utc_timestamp(SystemTime::now()), record.args())
    };
    // A closed stderr must not stop the daemon: the line is lost, no more.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// The priority the journal logger gives each level (its documented
/// mapping: info is `notice`, debug `info`, trace `debug`), so that a line
/// has the same priority whichever way it reaches the journal.
fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 5,
        log::Level::Debug => 6,
        log::Level::Trace => 7,
    }
}

/// Installs the logger at `level`: to the journal when journald reads our
/// stderr and its socket answers, as text on stderr otherwise. Until
/// called, records are dropped (errors before it go through [`fatal`]). A
/// second call only changes the level.
pub fn init(level: Level) {
    let journal = if systemd_journal_logger::connected_to_journal() {
        // Err: no socket at /run/systemd/journal/socket (a container
        // without it): the stream still takes text lines.
        JournalLog::new()
            .ok()
            .map(|journal| journal.with_syslog_identifier("dmg_manager".to_owned()))
    } else {
        None
    };
    // Err: a logger was installed already, by an earlier call.
    let _ = log::set_boxed_logger(Box::new(Logger { journal }));
    log::set_max_level(log::Level::from(level).to_level_filter());
}

/// Writes the one line of an error that ends the process before [`init`]
/// (a usage, config or start-up error): `dmg_manager: MESSAGE`, with
/// journald's priority `err` (`<3>`) first when stderr is the journal, so
/// that `journalctl -p err` shows why a service did not start.
pub fn fatal(message: std::fmt::Arguments<'_>) {
    let priority = if systemd_journal_logger::connected_to_journal() {
        "<3>"
    } else {
        ""
    };
    let _ = writeln!(std::io::stderr().lock(), "{priority}dmg_manager: {message}");
}

/// `2026-11-24T16:05:01.123Z`: UTC, RFC 3339, milliseconds.
pub fn utc_timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
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
    use std::time::UNIX_EPOCH;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("WARNING"), Some(Level::Warn));
        assert_eq!(Level::parse("trace"), Some(Level::Trace));
        assert_eq!(Level::parse("verbose"), None);
        assert!(Level::Error < Level::Debug);
        assert_eq!(log::Level::from(Level::Warn), log::Level::Warn);
    }

    #[test]
    fn timestamps_are_utc_rfc3339_with_milliseconds() {
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
