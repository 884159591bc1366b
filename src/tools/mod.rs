//! The commands that talk to a running manager, for people and scripts:
//! `clients` (ask), `watch` (follow), `status` (announce) (issue 6) and
//! `start` (start a plugin, issue 14).
//!
//! Each finds the manager from the same config file as the daemon
//! ([`endpoints`] inverts the daemon's directions). What is pure (where to
//! connect, the table, the change lines, the colours) is kept apart from the
//! few functions that use sockets (`net` and each command's `run`).

pub mod changes;
pub mod clients;
pub mod colour;
pub mod endpoints;
mod net;
pub mod start;
pub mod status;
pub mod table;
pub mod watch;

use std::fmt;
use std::time::Duration;

/// How long a command waits for the manager unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// A command that failed: one line for stderr, exit code 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError(pub String);

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolError {}

/// `3 s`, `0.5 s`: a timeout as a user wrote it.
pub fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// What `stdout` writes failing on: a closed pipe (`watch | head -3`) is
/// the reader's way of saying "enough", not an error.
fn stdout_failed(error: std::io::Error) -> Option<ToolError> {
    (error.kind() != std::io::ErrorKind::BrokenPipe).then(|| ToolError(format!("cannot write to stdout: {error}")))
}

/// The map of a `json!({...})` literal, for the tests of the pure modules
/// (the table, the change lines), which take clients maps.
#[cfg(test)]
fn json_map(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

/// A reply in plain framing, for the tests of the commands that read replies.
#[cfg(test)]
fn plain_reply(action: &str, body: &str) -> crate::wire::ReceivedReply {
    crate::wire::ReceivedReply {
        framing: crate::wire::Framing::Plain,
        action: action.into(),
        body: body.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_as_typed() {
        assert_eq!(seconds(Duration::from_secs(3)), "3 s");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
    }
}
