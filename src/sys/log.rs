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
//! Its level and rate limiter are pure: [`crate::core::log_policy`].

use crate::core::log_policy::Level;
use std::io::Write;
use std::time::SystemTime;
use systemd_journal_logger::JournalLog;

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
pub(crate) fn init(level: Level) {
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
pub(crate) fn fatal(message: std::fmt::Arguments<'_>) {
    let priority = if systemd_journal_logger::connected_to_journal() {
        "<3>"
    } else {
        ""
    };
    let _ = writeln!(std::io::stderr().lock(), "{priority}dmg_manager: {message}");
}

/// `2026-11-24T16:05:01.123Z`: UTC, RFC 3339, milliseconds.
pub(crate) fn utc_timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_are_utc_rfc3339_with_milliseconds() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let time = UNIX_EPOCH + Duration::from_millis(1_371_071_554_160);
        assert_eq!(utc_timestamp(time), "2013-06-12T21:12:34.160Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(leap_day), "2000-02-29T00:00:00.000Z");
    }
}
