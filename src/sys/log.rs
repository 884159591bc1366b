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
use std::time::{Duration, SystemTime, UNIX_EPOCH};
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

/// How `watch` and `clients --history` write a time: in this machine's
/// time zone, as `journalctl` shows the log (the default), or in UTC
/// (`--utc`, as the log's own timestamps and journalctl's `--utc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Zone {
    #[default]
    Local,
    Utc,
}

/// `time` in `zone`: `2026-11-24T17:05:01.123+01:00` in local time (the
/// offset of the system's zone at that instant: `TZ`, else
/// `/etc/localtime`, read by the C library's `localtime_r`),
/// `2026-11-24T16:05:01.123Z` in UTC.
pub(crate) fn timestamp(time: SystemTime, zone: Zone) -> String {
    match zone {
        Zone::Utc => utc_timestamp(time),
        Zone::Local => with_offset(time, local_offset(time)),
    }
}

/// `time` written with an offset east of UTC of `offset` seconds (whole
/// minutes, as RFC 3339 writes it): the local date and time, then `+01:00`
/// (`+00:00` for a local zone at UTC: `Z` is kept for UTC proper). A time
/// the offset would move before 1970 is written in UTC.
pub(crate) fn with_offset(time: SystemTime, offset: i32) -> String {
    let shift = Duration::from_secs(u64::from(offset.unsigned_abs()));
    let local = if offset >= 0 { time.checked_add(shift) } else { time.checked_sub(shift) };
    let Some(local) = local.filter(|local| *local >= UNIX_EPOCH) else {
        return utc_timestamp(time);
    };
    let fields = utc_timestamp(local);
    let minutes = offset.unsigned_abs() / 60;
    let sign = if offset < 0 { '-' } else { '+' };
    format!("{}{sign}{:02}:{:02}", fields.trim_end_matches('Z'), minutes / 60, minutes % 60)
}

/// The system time zone's offset east of UTC at `time`, in seconds (0 when
/// the C library cannot tell).
fn local_offset(time: SystemTime) -> i32 {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let seconds = libc::time_t::try_from(seconds).unwrap_or(libc::time_t::MAX);
    // SAFETY: localtime_r only writes into `tm`, a plain C struct for which
    // all zeroes is a valid value, and reads the zone (TZ, /etc/localtime).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { !libc::localtime_r(&seconds, &mut tm).is_null() };
    if converted {
        i32::try_from(tm.tm_gmtoff).unwrap_or(0)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn local_times_carry_their_offset() {
        let time = UNIX_EPOCH + Duration::from_millis(1_371_071_554_160); // 2013-06-12T21:12:34.160Z
        assert_eq!(with_offset(time, 3600), "2013-06-12T22:12:34.160+01:00");
        assert_eq!(with_offset(time, 7200), "2013-06-12T23:12:34.160+02:00");
        // Across midnight, and a zone west of UTC with half hours.
        assert_eq!(with_offset(time, 5 * 3600), "2013-06-13T02:12:34.160+05:00");
        assert_eq!(with_offset(time, -(3 * 3600 + 1800)), "2013-06-12T17:42:34.160-03:30");
        assert_eq!(with_offset(time, 0), "2013-06-12T21:12:34.160+00:00");
        // Before 1970 once shifted: UTC instead of a panic.
        assert_eq!(with_offset(UNIX_EPOCH, -3600), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(time, Zone::Utc), "2013-06-12T21:12:34.160Z");
    }

    #[test]
    fn timestamps_are_utc_rfc3339_with_milliseconds() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let time = UNIX_EPOCH + Duration::from_millis(1_371_071_554_160);
        assert_eq!(utc_timestamp(time), "2013-06-12T21:12:34.160Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_timestamp(leap_day), "2000-02-29T00:00:00.000Z");
    }
}
